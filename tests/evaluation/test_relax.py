"""CHGNet relaxation: a rattled relaxed crystal relaxes back (small RMSD), energies go down."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from topodiff.evaluation.relax import displacement_rmsd, matcher_rmsd, relax_structures

warnings.filterwarnings("ignore")


FCC = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])


def silicon(a: float = 5.45) -> Structure:
    """Conventional 8-atom diamond cell (built directly: from_spacegroup is slow)."""
    return Structure(Lattice.cubic(a), ["Si"] * 8, np.concatenate([FCC, FCC + 0.25]))


def test_displacement_rmsd_is_translation_free_and_exact():
    s = silicon()
    t = s.copy()
    t.translate_sites(range(len(t)), [0.3, 0.1, -0.2])              # rigid shift: no displacement
    assert displacement_rmsd(s, t) == pytest.approx(0.0, abs=1e-10)
    m = s.copy()
    m.translate_sites([0], [0.1 / 5.45, 0, 0])                       # one atom of 8 moved by 0.1 Å
    # translation removed: the moved atom carries 7/8 of it, the other seven 1/8
    expect = 0.1 * np.sqrt((49 / 64 + 7 / 64) / 8)
    assert displacement_rmsd(s, m) == pytest.approx(expect, rel=1e-9)
    assert matcher_rmsd(s, m) == pytest.approx(expect, rel=1e-6)


def test_rattled_crystal_relaxes_back():
    ref = relax_structures([silicon()], fmax=0.02, steps=200, progress=False)[0]
    assert ref.error is None and ref.converged
    relaxed = ref.structure
    rng = np.random.default_rng(0)
    rattled = Structure(relaxed.lattice, relaxed.species,
                        relaxed.cart_coords + rng.normal(scale=0.08, size=(len(relaxed), 3)),
                        coords_are_cartesian=True)
    r = relax_structures([rattled], fmax=0.02, steps=300, progress=False)[0]
    assert r.error is None and r.converged and r.steps > 0
    assert r.energy_final < r.energy_initial                      # relaxation lowers the energy
    assert r.energy_final == pytest.approx(ref.energy_final, abs=2e-3)
    # RMSD generated → relaxed ≈ the rattle; relaxed state ≈ the original minimum
    assert 0.05 < r.rmsd < 0.25
    assert r.displacement_rmsd == pytest.approx(r.rmsd, rel=0.05)
    assert displacement_rmsd(relaxed, r.structure) < 0.02
    assert abs(r.structure.volume - relaxed.volume) / relaxed.volume < 0.01


def test_bad_inputs_give_errors_not_exceptions():
    overlap = Structure(Lattice.cubic(4.0), ["Si", "Si"], [[0, 0, 0], [0.05, 0, 0]])
    res = relax_structures([overlap, None], progress=False)
    assert res[0].structure is None and "invalid" in res[0].error
    assert res[1].error == "no structure"
    assert res[0].energy_final is None

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


class _PressureCalculator:
    """Fake potential E = -p V (eV; p in eV/Å³): a constant pressure that expands (p > 0) or
    collapses (p < 0) the cell without end, as an exploding relaxation does. Records every volume
    it was called at."""

    def __new__(cls, p: float):
        from ase.calculators.calculator import Calculator, all_changes

        class Pressure(Calculator):
            implemented_properties = ["energy", "free_energy", "forces", "stress"]
            volumes: list[float] = []

            def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
                super().calculate(atoms, properties, system_changes)
                v = self.atoms.get_volume()
                self.volumes.append(v)
                e = -p * v
                # stress = (1/V) dE/dε = -p I (ASE Voigt order xx yy zz yz xz xy)
                self.results = {"energy": e, "free_energy": e, "forces": np.zeros((len(self.atoms), 3)),
                                "stress": np.array([-p, -p, -p, 0.0, 0.0, 0.0])}

        calc = Pressure()
        calc.volumes = []
        return calc


@pytest.mark.parametrize("pressure, message", [(0.5, "volume changed x3"), (-0.5, "volume changed x0.3")])
def test_exploding_relaxation_stops_that_crystal_with_an_error(pressure, message):
    """A cell driven to explode (or collapse) is stopped by the guard before the potential ever sees
    a geometry outside the limits; the other crystal of the batch relaxes normally."""
    from topodiff.evaluation.guards import CrystalLimits
    from topodiff.evaluation.relax import relax_structure

    limits = CrystalLimits(max_volume_ratio=3.0, max_neighbors_per_atom=200)
    calc = _PressureCalculator(pressure)
    s = silicon()
    res = relax_structure(s, calculator=calc, steps=500, limits=limits)
    assert res.structure is None and res.error.startswith("relaxation stopped") and message in res.error
    assert "limit" in res.error and res.steps > 0
    ratios = np.array(calc.volumes) / s.volume
    assert len(ratios) >= res.steps                                   # it ran until the guard tripped
    assert ratios.max() <= 3.0 + 1e-9 and ratios.min() >= 1 / 3.0 - 1e-9  # never called outside the limits
    assert max(ratios.max(), 1 / ratios.min()) > 1.5                 # and the cell really ran away
    # in a batch: an error row for it, the batch goes on
    out = relax_structures([s, None], calculator=_PressureCalculator(pressure), steps=500, limits=limits,
                           progress=False)
    assert out[0].error.startswith("relaxation stopped") and out[1].error == "no structure"


def test_guard_counts_neighbours_of_a_piled_up_cell():
    """The exact neighbour count catches atoms piled into one spot of an otherwise normal cell."""
    from topodiff.evaluation.guards import CrystalLimits, ResourceLimitError, check_relax_geometry

    cell = np.eye(3) * 10.0
    pos = np.random.default_rng(0).normal(5.0, 0.8, size=(40, 3))  # 40 atoms in a ~2 Å blob
    limits = CrystalLimits(max_neighbors_per_atom=30)
    with pytest.raises(ResourceLimitError, match="neighbours per atom"):
        check_relax_geometry(cell, pos, 1000.0, limits)
    check_relax_geometry(cell, pos[:5], 1000.0, limits)  # a few atoms: fine
    with pytest.raises(ResourceLimitError, match="non-finite"):
        check_relax_geometry(cell * np.nan, pos, 1000.0, limits)


def test_relaxed_crystal_keeps_its_symmetrised_standard_cell():
    """A crystal 0.01 Å off R-3m that a (here force-free) relaxation leaves in place is kept as its
    exactly symmetric standard primitive cell; ``structure`` keeps the atom order of the input."""
    from helpers import distorted_bi2se3, flat_calculator

    from topodiff.crystal.symmetry import analyze

    s = distorted_bi2se3()
    assert analyze(s, symprec=1e-3).number != 166
    r = relax_structures([s], calculator=flat_calculator(), progress=False)[0]
    assert r.error is None and r.converged and r.displacement_rmsd == pytest.approx(0.0, abs=1e-9)
    assert r.kept is r.symmetrized and len(r.kept) == 5 and len(r.structure) == len(s)
    assert analyze(r.kept, symprec=1e-5).number == 166               # exactly R-3m

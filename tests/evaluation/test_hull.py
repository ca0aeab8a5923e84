"""Energy above hull on a synthetic phase diagram, S.U.N. counting and the shipped CHGNet table."""
from __future__ import annotations

import json

import numpy as np
import pytest
from pymatgen.analysis.phase_diagram import PDEntry
from pymatgen.core import Composition

from topodiff.errors import TopodiffInputError
from topodiff.evaluation import hull as H


def toy_reference() -> H.HullReference:
    # A and B at 0 eV/atom, AB at -1 eV/atom: hull = triangle A–AB–B
    return H.HullReference([PDEntry(Composition("Li"), 0.0), PDEntry(Composition("Na"), 0.0),
                            PDEntry(Composition("LiNa"), -2.0)])


def test_e_above_hull_on_a_known_hull():
    ref = toy_reference()
    comps = [Composition("LiNa"), Composition("LiNa"), Composition("Li3Na"), Composition("Li"), Composition("LiK")]
    e = H.e_above_hull(comps, [-0.9, -1.2, -0.5, 0.3, -1.0], ref)
    assert e[0] == pytest.approx(0.1)
    assert e[1] == pytest.approx(-0.2)                   # below the reference hull: negative
    assert e[2] == pytest.approx(-0.5 - 0.5 * -1.0)      # hull at x=1/4 between Li (0) and LiNa (-1)
    assert e[3] == pytest.approx(0.3)
    assert np.isnan(e[4])                                # K is not in the reference
    assert np.isnan(H.e_above_hull([Composition("Li")], [float("nan")], ref)[0])


def test_sun_counts():
    eh = np.array([0.0, 0.05, 0.2, np.nan, 0.01])
    unique = np.array([True, True, True, True, False])
    novel = np.array([True, False, True, True, True])
    c = H.sun_counts(eh, unique, novel, threshold=0.1)
    assert c["num_stable"] == 3 and c["num_stable_unique"] == 2 and c["num_sun"] == 1
    assert c["sun_rate"] == pytest.approx(0.2)
    assert H.sun_counts(eh, unique, None)["num_sun"] == 2


def test_shipped_reference_table():
    ref = H.HullReference()
    symbols = {el.symbol for el in ref.elements}
    # the topological-materials chemistry and the Perov-5 anions need their elemental corners
    assert {"Bi", "Sb", "Se", "Te", "Sn", "Pb", "Hg", "Cd", "As", "Na", "O", "N", "F", "S"} <= symbols
    assert len(ref.entries) > 1000
    # every reference entry lies on or above its own hull
    si = [e for e in ref.entries if e.composition.reduced_formula == "Si"]
    assert si and ref.e_above_hull(Composition("Si"), min(e.energy_per_atom for e in si)) == pytest.approx(0.0, abs=1e-9)


def test_bad_reference_file(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"format": "something-else", "entries": []}))
    with pytest.raises(TopodiffInputError):
        H.load_reference(str(p))
    with pytest.raises(TopodiffInputError):
        H.load_reference(str(tmp_path / "missing.json"))

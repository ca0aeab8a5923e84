"""Formation energies and the DFT-referenced hull: a synthetic hull with known answers, the shipped
Materials Project data (known compounds sit on it), missing elements, leave-one-out, S.U.N."""
from __future__ import annotations

import json

import numpy as np
import pytest
from pymatgen.core import Composition

from topodiff.errors import TopodiffInputError
from topodiff.evaluation import hull as H
from topodiff.evaluation.hull import BELOW_HULL_NOTE

REFS = {"Li": -1.9, "Na": -1.3, "K": -1.1}


def toy_hull() -> H.DFTHull:
    # Li and Na at 0, LiNa at e_form = -1 eV/atom: the hull is the triangle Li–LiNa–Na
    return H.DFTHull([H.DFTEntry("t-1", Composition("LiNa"), -1.0)], references=REFS)


def test_formation_energy_from_elemental_references():
    h = toy_hull()
    # E/atom of LiNa = e_form + (μ_Li + μ_Na)/2
    e, note = h.formation_energy(Composition("LiNa"), -0.9 + (-1.9 - 1.3) / 2)
    assert e == pytest.approx(-0.9) and note is None
    e, _ = h.formation_energy(Composition("Li3Na"), -1.0)
    assert e == pytest.approx(-1.0 - (0.75 * -1.9 + 0.25 * -1.3))


def test_e_above_hull_on_a_known_hull():
    h = toy_hull()
    assert h.evaluate(Composition("LiNa"), e_form=-0.9).e_above_hull == pytest.approx(0.1)
    below = h.evaluate(Composition("LiNa"), e_form=-1.2)
    assert below.e_above_hull == pytest.approx(-0.2) and below.note == BELOW_HULL_NOTE   # below: negative, said so
    assert h.evaluate(Composition("LiNa"), e_form=-0.9).note is None
    r = h.evaluate(Composition("Li3Na"), e_form=-0.5)
    assert r.e_above_hull == pytest.approx(-0.5 - 0.5 * -1.0)       # hull at x_Na = 1/4 is -0.5
    assert r.num_references == 1 and r.note is None
    # an elemental crystal 0.3 eV/atom above its reference
    assert h.evaluate(Composition("Li"), energy_per_atom=-1.6).e_above_hull == pytest.approx(0.3)
    # a system without any DFT compound: elements only, and the row says so
    r = h.evaluate(Composition("LiK"), e_form=-0.1)
    assert r.e_above_hull == pytest.approx(-0.1) and r.num_references == 0 and "elements only" in r.note
    assert BELOW_HULL_NOTE in r.note


def test_leave_one_out_removes_the_own_entry():
    h = toy_hull()
    assert h.evaluate(Composition("LiNa"), e_form=-1.0).e_above_hull == pytest.approx(0.0, abs=1e-12)
    loo = h.evaluate(Composition("LiNa"), e_form=-1.0, exclude=["t-1"])
    assert loo.e_above_hull == pytest.approx(-1.0) and loo.num_references == 0
    assert h.evaluate(Composition("LiNa"), e_form=-1.0).e_above_hull == pytest.approx(0.0, abs=1e-12)  # cache intact


def test_missing_element_gives_null_with_the_reason():
    h = toy_hull()
    r = h.evaluate(Composition("LiRb"), energy_per_atom=-2.0)
    assert r.e_above_hull is None and r.e_form is None and "Rb" in r.note
    r = H.default_hull().evaluate(Composition("RaO"), energy_per_atom=-5.0)   # Ra: no MP reference
    assert r.e_above_hull is None and "no MP elemental reference for Ra" == r.note
    r = H.default_hull().evaluate(Composition("RfO2"), energy_per_atom=-5.0)  # Z = 104
    assert r.e_above_hull is None and "Rf" in r.note
    rows = H.evaluate_energies([Composition("LiNa"), None, Composition("LiNa")], [float("nan"), -1.0, None], h)
    assert all(x.e_above_hull is None and x.note for x in rows)


@pytest.mark.parametrize("formula", ["Bi2Se3", "NaCl", "GaAs", "Bi2Te3"])
def test_known_ground_states_sit_on_the_shipped_dft_hull(formula):
    h = H.default_hull()
    comp = Composition(formula)
    system = frozenset(el.symbol for el in comp.elements)
    same = [e for e in h.references_of(system) if e.composition.reduced_formula == formula]
    assert same, f"{formula} is in the MP hull data"
    best = min(same, key=lambda e: e.e_form)
    r = h.evaluate(comp, e_form=best.e_form)
    assert r.e_above_hull == pytest.approx(0.0, abs=1e-6)
    assert r.num_references >= len(same)
    # the same compound from a total energy on MP's scale: e_form + Σ x μ
    mu = sum(comp.get_atomic_fraction(el) * h.references[el.symbol] for el in comp.elements)
    assert h.evaluate(comp, energy_per_atom=best.e_form + mu).e_above_hull == pytest.approx(0.0, abs=1e-6)
    # 50 meV/atom above the ground state is 50 meV/atom above the hull
    assert h.evaluate(comp, e_form=best.e_form + 0.05).e_above_hull == pytest.approx(0.05, abs=1e-6)


def test_shipped_data_is_complete():
    refs = H.elemental_references()
    assert len(refs) == 89 and {"Bi", "Se", "Te", "Hg", "O", "H"} <= set(refs)
    assert len(H.dft_entries()) == 46918
    # an elemental reference has formation energy 0 by construction
    assert H.default_hull().formation_energy(Composition("O2"), refs["O"])[0] == pytest.approx(0.0)


def test_bad_reference_files(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"format": "something-else", "elements": {}}))
    with pytest.raises(TopodiffInputError):
        H.elemental_references(str(p))
    with pytest.raises(TopodiffInputError):
        H.dft_entries(str(tmp_path / "missing.csv.gz"))


def test_sun_counts():
    eh = np.array([0.0, 0.05, 0.2, np.nan, 0.01, -0.1])
    unique = np.array([True, True, True, True, False, True])
    novel = np.array([True, False, True, True, True, True])
    c = H.sun_counts(eh, unique, novel, threshold=0.1)
    assert c["num_stable"] == 4 and c["num_on_or_below_hull"] == 2 and c["num_stability_unknown"] == 1
    assert c["num_stable_unique"] == 3 and c["num_sun"] == 2
    assert c["sun_rate"] == pytest.approx(2 / 6)
    assert H.sun_counts(np.array([0.1]), np.array([True]), np.array([True]))["num_sun"] == 1  # ≤ threshold

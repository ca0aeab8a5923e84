"""The learned topology judge: valid verdicts, no verdict without data, held-out score, split, pieces."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from topodiff.crystal.catalogue import CLASSES
from topodiff.judge import judge_structures
from topodiff.judge.data import formula_split, group_folds
from topodiff.judge.metrics import balanced_accuracy, f1_scores, reliability
from topodiff.judge.topogivity import fit_topogivity, topogivity
from topodiff.judge.train import isotonic_map

DATA = Path(__file__).resolve().parents[1] / "data"
#: Floor for the committed held-out sample (80 training-pool crystals whose formulas the shipped judge
#: never saw; 40 trivial, 40 not): the issue's bar. The shipped judge scored 0.96 here (2026-12-03).
HELDOUT_FLOOR = 0.85


def nacl() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_verdicts_are_valid_dicts():
    from topodiff.crystal.io import read_structure

    rows = judge_structures([read_structure(DATA / "crystals" / "Bi2Se3.cif"), nacl()])
    assert len(rows) == 2
    for r in rows:
        assert r["catalogue_class"] in CLASSES and 0.0 <= r["p_topological"] <= 1.0
        assert set(r["probabilities"]) == set(CLASSES)
        assert math.isclose(sum(r["probabilities"].values()), 1.0, abs_tol=1e-9)
        assert math.isclose(r["p_topological"], 1.0 - r["probabilities"]["trivial"], abs_tol=1e-12)
        assert r["catalogue_class"] == max(r["probabilities"], key=r["probabilities"].get)
        json.dumps(r)  # plain floats and strings only
    assert rows[1]["catalogue_class"] == "trivial"  # rock-salt NaCl, a textbook band insulator


def test_no_verdict_without_data():
    am = Structure(Lattice.cubic(5.0), ["Am", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])  # no Am in the training pools
    rows = judge_structures([None, am])
    assert all(r["catalogue_class"] is None and r["p_topological"] is None for r in rows)
    assert "no structure" in rows[0]["judge_note"] and "Am" in rows[1]["judge_note"]
    assert judge_structures([]) == []


def test_shipped_judge_scores_above_floor_on_held_out_training_pool_sample():
    from topodiff.crystal.io import structure_from_cif_text
    from topodiff.judge.model import load_judge

    df = pd.read_csv(DATA / "judge" / "heldout_sample.csv.gz")
    structures = [structure_from_cif_text(c) for c in df["cif"]]
    formulas = [s.composition.reduced_formula for s in structures]
    assert formula_split(formulas).all()  # every crystal of the sample is on the held-out side
    rows = judge_structures(structures)
    truth = df["catalogue_class"].to_numpy() != "trivial"
    pred = np.array([r["p_topological"] > 0.5 for r in rows])
    assert balanced_accuracy(truth, pred) >= HELDOUT_FLOOR
    assert load_judge().recipe["data"]["n_heldout"] > 0


def test_formula_split_and_folds_never_share_a_formula():
    formulas = [f"A{i}B{j}" for i in range(1, 40) for j in range(1, 6)] * 2  # every formula twice
    held = formula_split(formulas)
    assert 0.1 < held.mean() < 0.3
    assert not set(np.array(formulas)[held]) & set(np.array(formulas)[~held])
    folds = group_folds(formulas)
    for k in range(5):
        assert not set(np.array(formulas)[folds == k]) & set(np.array(formulas)[folds != k])
    assert (formula_split(formulas[::-1]) == held[::-1]).all()  # independent of row order


def test_metrics_on_hand_made_cases():
    assert balanced_accuracy([True, True, False, False], [True, False, False, False]) == 0.75
    f1 = f1_scores(["ti", "trivial", "ti"], ["ti", "ti", None], ["ti", "trivial", "tci"])
    assert f1["ti"] == pytest.approx(0.5) and f1["trivial"] == 0.0 and math.isnan(f1["tci"])
    rel = reliability([0.05, 0.05, 0.95, 0.95], [0, 0, 1, 1], n_bins=10)
    assert rel["count"] == [2.0, 2.0] and rel["ece"][0] == pytest.approx(0.05)


def test_isotonic_map_is_monotone_and_calibrates():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=4000)
    y = rng.uniform(size=4000) < p ** 2  # true probability p², scores too high
    xs, ys = isotonic_map(p, y)
    assert np.all(np.diff(xs) > 0) and np.all(np.diff(ys) >= 0)
    assert np.interp(0.5, xs, ys) == pytest.approx(0.25, abs=0.06)


def test_topogivity_learns_element_signs():
    # element 0 makes a material topological, element 1 trivial, element 2 is neutral filler
    rng = np.random.default_rng(1)
    f = rng.dirichlet(np.ones(3), size=400)
    topo = f[:, 0] > f[:, 1]
    tau = fit_topogivity(f, topo)
    assert tau[0] > 0 > tau[1]
    assert balanced_accuracy(topo, topogivity(f, tau) > 0) > 0.9

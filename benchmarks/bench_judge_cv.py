"""Model choice for the topology judge: 5-fold formula-grouped CV on the TRAINING split only.

Called by ``benchmarks/bench_judge.py cv``; writes ``runs/judge/cv.json`` and prints one table.
Balanced accuracy is trivial vs non-trivial at P = 0.5 (out of fold, uncalibrated).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from topodiff.crystal.catalogue import CLASSES
from topodiff.judge.features import feature_names
from topodiff.judge.metrics import balanced_accuracy, f1_scores
from topodiff.judge.topogivity import fit_topogivity, topogivity
from topodiff.judge.train import DEFAULT_ROUNDS, oof_proba, train_split

NAMES = feature_names()
ELEM = np.array([n.startswith("x_") for n in NAMES])
STRUCTURE_ONLY = {"n_atoms_prim", "nelec_prim", "nelec_prim_mod2", "nelec_prim_mod4", "spg", "pg_order", "inversion",
                  "crystal_system", "vol_per_atom", "packing", "min_bond_ratio"}
COMPOSITION = np.array([n not in STRUCTURE_ONLY for n in NAMES])


def _binary_fit(X: np.ndarray, y: np.ndarray, params: Any, rounds: int) -> Any:
    """A binary LightGBM (non-trivial vs trivial) wrapped to return 4-column probabilities."""
    import lightgbm

    from topodiff.judge.train import DEFAULT_PARAMS, class_weights

    p = {**DEFAULT_PARAMS, "objective": "binary", **(params or {})}
    p.pop("num_class", None)
    topo = (y != 0).astype(float)
    booster = lightgbm.train(p, lightgbm.Dataset(X, label=topo, weight=class_weights(y)), num_boost_round=rounds)

    class Wrapped:
        def predict(self, Xt: np.ndarray) -> np.ndarray:
            q = booster.predict(Xt)
            return np.stack([1 - q, q / 3, q / 3, q / 3], axis=1)

    return Wrapped()


def _scores(y: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    topo = y != 0
    return {"balanced_accuracy": round(balanced_accuracy(topo, proba[:, 0] < 0.5), 4),
            "f1": {k: round(v, 3) for k, v in f1_scores([CLASSES[i] for i in y],
                                                         [CLASSES[i] for i in proba.argmax(1)], CLASSES).items()}}


def run_cv(pool: dict[str, np.ndarray], out: Path, log: Callable[[str], None]) -> dict[str, Any]:
    s = train_split(pool)
    tr = ~s["heldout"]
    X, y, folds = s["X"][tr], s["y"][tr], s["folds"][tr]
    log(f"CV on the training split: {tr.sum()} labelled crystals, {len(set(s['formula'][tr]))} formulas")
    variants: dict[str, tuple[np.ndarray, dict, int, Any]] = {
        "lgbm, all features (shipped)": (np.ones(len(NAMES), bool), {}, DEFAULT_ROUNDS, None),
        "lgbm, no element fractions": (~ELEM, {}, DEFAULT_ROUNDS, None),
        "lgbm, composition only": (COMPOSITION, {}, DEFAULT_ROUNDS, None),
        "lgbm, binary objective": (np.ones(len(NAMES), bool), {}, DEFAULT_ROUNDS, _binary_fit),
        "lgbm, 15 leaves, 800 rounds, lr 0.025": (np.ones(len(NAMES), bool), {"num_leaves": 15, "learning_rate": 0.025},
                                                  800, None),
        "lgbm, 63 leaves, 200 rounds": (np.ones(len(NAMES), bool), {"num_leaves": 63}, 200, None),
    }
    results: dict[str, Any] = {}
    for name, (cols, params, rounds, fit) in variants.items():
        t0 = time.perf_counter()
        proba = oof_proba(X[:, cols], y, folds, params, rounds, fit=fit)
        results[name] = {**_scores(y, proba), "seconds": round(time.perf_counter() - t0, 1)}
        log(f"{name}: {results[name]}")
    fr = X[:, ELEM]
    g = np.zeros(len(y))
    for k in np.unique(folds):
        te = folds == k
        g[te] = topogivity(fr[te], fit_topogivity(fr[~te], y[~te] != 0))
    results["topogivity (formula only)"] = {"balanced_accuracy": round(balanced_accuracy(y != 0, g > 0), 4)}
    log(f"topogivity: {results['topogivity (formula only)']}")
    (out / "cv.json").write_text(json.dumps(results, indent=1))
    print(f"{'model (5-fold formula-grouped CV, training split)':48s} {'bal.acc':>8s}  F1 trivial/ti/tci/semimetal")
    for name, r in results.items():
        f1 = "/".join(f"{r['f1'][c]:.2f}" for c in CLASSES) if "f1" in r else "-"
        print(f"{name:48s} {r['balanced_accuracy']:8.3f}  {f1}")
    return results


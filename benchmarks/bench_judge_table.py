"""The held-out table of ``benchmarks/bench_judge.py table``: (a) Slater-Koster screen, (b) topogivity,
(c) the shipped learned judge, scored against catalogue labels on formula-disjoint held-out crystals."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from topodiff.crystal.catalogue import CLASSES
from topodiff.judge.metrics import balanced_accuracy, f1_scores, reliability
from topodiff.judge.topogivity import fit_topogivity, topogivity
from topodiff.judge.train import train_split

#: Slater-Koster ``topo_class`` → catalogue class (the SK screen has no TCI verdict).
SK_TO_CATALOGUE = {"trivial_insulator": "trivial", "strong_ti": "ti", "weak_ti": "ti", "metal": "semimetal"}


def _row(name: str, n: int, y: np.ndarray, topo_pred: np.ndarray, cls_pred: list | None, note: str = "") -> dict:
    true_cls = [CLASSES[i] for i in y]
    f1 = f1_scores(true_cls, cls_pred, CLASSES) if cls_pred is not None else {}
    rec_topo = float(np.mean(topo_pred[y != 0])) if (y != 0).any() else float("nan")
    rec_triv = float(np.mean(~topo_pred[y == 0])) if (y == 0).any() else float("nan")
    return {"verdict": name, "n": int(n), "balanced_accuracy": round(balanced_accuracy(y != 0, topo_pred), 3),
            "recall_nontrivial": round(rec_topo, 3), "recall_trivial": round(rec_triv, 3),
            "f1": {k: round(v, 3) for k, v in f1.items()}, "note": note}


def _plot(p_raw: np.ndarray, p_cal: np.ndarray, topo: np.ndarray, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 4.2), dpi=120)
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="perfect calibration")
    for p, lab, mark in ((p_raw, "raw LightGBM", "s--"), (p_cal, "isotonic-calibrated (shipped)", "o-")):
        r = reliability(p, topo)
        ax.plot(r["mean_predicted"], r["observed"], mark, ms=4, label=f"{lab}, ECE {r['ece'][0]:.3f}")
    ax.set_xlabel("predicted P(non-trivial)")
    ax.set_ylabel("fraction non-trivial (DFT catalogues)")
    ax.set_title(f"Topology judge, held-out formulas (n={len(topo)})", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def run_table(pool: dict[str, np.ndarray], args: Any, read_sk: Callable[[str], dict], sample_fn: Callable,
              out: Path, log: Callable[[str], None]) -> dict[str, Any]:
    from topodiff.judge.model import load_judge

    s = train_split(pool)
    ho, tr = s["heldout"], ~s["heldout"]
    judge = load_judge()
    elem = np.array([n.startswith("x_") for n in judge.features])
    tau = fit_topogivity(s["X"][tr][:, elem], s["y"][tr] != 0)
    q_raw = judge.raw_proba(s["X"])
    proba = judge.proba(s["X"])
    g = topogivity(s["X"][:, elem], tau)
    sample = sample_fn(s, args.n if hasattr(args, "n") else 300)
    rows = []
    for subset_name, idx in (("held-out", np.flatnonzero(ho)), ("SK sample", sample)):
        y = s["y"][idx]
        rows.append(_row(f"(b) topogivity [{subset_name}]", len(idx), y, g[idx] > 0, None, "formula only"))
        rows.append(_row(f"(c) learned judge [{subset_name}]", len(idx), y, proba[idx, 0] < 0.5,
                         [CLASSES[k] for k in proba[idx].argmax(1)]))
    for tag in [t for t in args.sk_tags.split(",") if t]:
        sk = read_sk(tag)
        ids = s["material_id"][sample]
        ok = np.array([sk.get(m, {}).get("topo_class") is not None for m in ids])
        idx = sample[ok]
        pred = [SK_TO_CATALOGUE[sk[m]["topo_class"]] for m in s["material_id"][idx]]
        rows.append(_row(f"(a) Slater-Koster screen, {tag} [SK sample]", len(idx), s["y"][idx],
                         np.array([p != "trivial" for p in pred]), pred,
                         f"{(~ok).sum()} of {len(sample)} not screened (no verdict) left out"))
    print(f"{'verdict (MP-20 subset + MPTS-52 val, formula-disjoint held-out)':58s} {'n':>4s} {'bal.acc':>7s} "
          f"{'rec.topo':>8s} {'rec.triv':>8s}  F1 trivial/ti/tci/semimetal")
    for r in rows:
        f1 = "/".join("-" if np.isnan(r["f1"].get(c, np.nan)) else f"{r['f1'][c]:.2f}" for c in CLASSES)
        print(f"{r['verdict']:58s} {r['n']:4d} {r['balanced_accuracy']:7.3f} {r['recall_nontrivial']:8.3f} "
              f"{r['recall_trivial']:8.3f}  {f1}  {r['note']}")
    topo = s["y"][ho] != 0
    rel = {"raw": reliability(1 - q_raw[ho, 0], topo), "calibrated": reliability(1 - proba[ho, 0], topo)}
    print(f"held-out ECE of P(non-trivial): raw {rel['raw']['ece'][0]:.3f}, calibrated {rel['calibrated']['ece'][0]:.3f}")
    if args.plot:
        _plot(1 - q_raw[ho, 0], 1 - proba[ho, 0], topo, args.plot)
        log(f"reliability plot -> {args.plot}")
    result = {"rows": rows, "reliability_heldout": rel, "n_heldout": int(ho.sum()), "n_train": int(tr.sum())}
    (out / "table.json").write_text(json.dumps(result, indent=1))
    return result

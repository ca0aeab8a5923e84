"""Validate the DFT-referenced hull: CHGNet-relaxed e_above_hull vs DFT on MP-20 / MPTS-52 test.

Two phases (the first is CPU-heavy and resumable):

``relax``  — a fixed random subset (``--seed``, ``--num`` per set, drawn uniformly without any
             size rule) of ``mp_20/test.csv.gz`` and ``mpts_52/test.csv.gz``, relaxed with CHGNet
             from the DFT geometry (positions + cell, BFGS, ``--fmax`` eV/Å, at most ``--steps``
             steps); one JSON line per crystal appended to ``--out`` (material, CHGNet energy/atom
             of the DFT geometry and of the relaxed one, steps, converged).
``analyse`` — formation energies from MP's elemental references (``topodiff.evaluation.hull``),
             energy above the DFT hull of ``hull/mp_formation_energies.csv.gz``; MAE vs the test
             file's DFT ``e_above_hull`` column and vs the hull evaluated at the DFT formation
             energy; fraction called stable (≤ 0.1 eV/atom); the leave-one-out variant (the
             material's own entry removed from the hull for CHGNet and DFT alike). Prints JSON.

Usage::

    nice -n 5 python benchmarks/bench_hull.py relax --num 400 --seed 0 --out runs/bench_hull/relaxed.jsonl
    python benchmarks/bench_hull.py analyse --out runs/bench_hull/relaxed.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
SETS = {"mp_20": ("mp_20/test.csv.gz", "e_above_hull"),
        "mpts_52": ("mpts_52/test.csv.gz", "energy_above_hull")}


def _sample(name: str, num: int, seed: int):
    """``num`` rows of a test set drawn uniformly at random with ``seed`` (a fixed subset)."""
    import pandas as pd

    df = pd.read_csv(DATA / SETS[name][0])
    idx = np.random.default_rng(seed).choice(len(df), size=min(num, len(df)), replace=False)
    return df.iloc[idx]


def _done(path: Path) -> set[tuple[str, str]]:
    if not path.exists():
        return set()
    out = set()
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            out.add((r["set"], r["material_id"]))
    return out


def relax(args: argparse.Namespace) -> int:
    """Relax the subset (both sets interleaved, so that both grow together), appending JSON lines."""
    import torch
    from pymatgen.core import Structure

    from topodiff.evaluation.relax import relax_structure, single_point_energies

    torch.set_num_threads(1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = _done(out)
    frames = {name: _sample(name, args.num, args.seed) for name in (args.only or SETS)}
    order = [(name, frames[name].iloc[k]) for k in range(args.num) for name in frames if k < len(frames[name])]
    if args.upto:
        order = [o for o in order if o[1]["material_id"] in set(frames[o[0]]["material_id"].iloc[:args.upto])]
    if args.reverse:
        order = order[::-1]
    for name, row in order:
        if (name, row["material_id"]) in done or (name, row["material_id"]) in _done(out):   # another worker?
            continue
        t0 = time.perf_counter()
        s = Structure.from_str(row["cif"], fmt="cif")
        res = relax_structure(s, fmax=args.fmax, steps=args.steps, optimizer="BFGS")
        e_static = float(single_point_energies([s])[0])
        e_relax = float(single_point_energies([res.structure])[0]) if res.structure is not None else None
        rec = {"set": name, "material_id": row["material_id"], "formula": s.composition.formula,
               "num_atoms": len(s), "dft_e_above_hull": float(row[SETS[name][1]]),
               "dft_e_form": float(row["formation_energy_per_atom"]), "chgnet_e_static": e_static,
               "chgnet_e_relaxed": e_relax, "steps": res.steps, "converged": res.converged,
               "error": res.error, "seconds": round(time.perf_counter() - t0, 2)}
        with open(out, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(f"{name} {row['material_id']} {len(s)} atoms {res.steps} steps {rec['seconds']} s", file=sys.stderr, flush=True)
    return 0


def main() -> int:
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("phase", choices=["relax", "analyse"])
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_hull" / "relaxed.jsonl"))
    ap.add_argument("--num", type=int, default=400, help="crystals drawn per test set")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fmax", type=float, default=0.05)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--only", action="append", choices=list(SETS), help="relax only this set (repeatable; "
                    "run one process per set to use two cores; appends to the same --out)")
    ap.add_argument("--reverse", action="store_true", help="walk the subset from its end (a second worker "
                    "on the same --out meets the first one in the middle; the union stays the first --num)")
    ap.add_argument("--upto", type=int, default=0, help="relax only the first N of the --num draw")
    ap.add_argument("--threshold", type=float, default=0.1, help="stable: e_above_hull ≤ threshold (eV/atom)")
    args = ap.parse_args()
    if not DATA.exists():
        print(f"error: {DATA} not found (the benchmark needs ../shared/data)", file=sys.stderr)
        return 2
    if args.phase == "relax":
        return relax(args)
    return analyse(args)


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    return round(float(np.mean(np.abs(a - b))), 4)


def _scores(pred: np.ndarray, true: np.ndarray, threshold: float) -> dict[str, float]:
    """MAE and stability classification (stable: ≤ threshold) of predicted vs true e_above_hull."""
    p, t = pred <= threshold, true <= threshold
    tp, fp, fn = int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    p0, t0 = pred <= 1e-6, true <= 1e-6             # matbench-discovery's F1 is at 0 (1e-6: hull round-off)
    tp0, fp0, fn0 = int((p0 & t0).sum()), int((p0 & ~t0).sum()), int((~p0 & t0).sum())
    return {"f1_stable_at_0": round(2 * tp0 / (2 * tp0 + fp0 + fn0), 3) if tp0 else 0.0,
            "num_stable_at_0_dft": int(t0.sum()),
            "mae": _mae(pred, true), "median_ae": round(float(np.median(np.abs(pred - true))), 4),
            "fraction_called_stable": round(float(p.mean()), 3), "fraction_stable_dft": round(float(t.mean()), 3),
            "f1_stable": round(f1, 3), "mean_signed_error": round(float(np.mean(pred - true)), 4)}


def analyse(args: argparse.Namespace) -> int:
    """MAE of CHGNet-relaxed e_above_hull vs DFT, with and without the material's own hull entry."""
    from pymatgen.core import Composition

    from topodiff.evaluation.hull import default_hull

    recs = list({(r["set"], r["material_id"]): r for r in
                 (json.loads(line) for line in Path(args.out).read_text().splitlines() if line.strip())}.values())
    hull = default_hull()
    report: dict[str, object] = {"fmax": args.fmax, "steps": args.steps, "seed": args.seed,
                                 "threshold_ev": args.threshold, "sets": {}}
    for name in SETS:
        done = {r["material_id"]: r for r in recs if r["set"] == name}
        rows = []
        for mid in _sample(name, args.num, args.seed)["material_id"]:   # the longest relaxed prefix of
            if mid not in done:                                          # the seeded draw: a uniform
                break                                                    # random subset
            rows.append(done[mid])
        ok = [r for r in rows if r["chgnet_e_relaxed"] is not None]
        cols: dict[str, list[float]] = {k: [] for k in ("chgnet", "chgnet_static", "dft_hull", "column",
                                                        "chgnet_loo", "dft_loo", "e_form_err")}
        skipped = 0
        for r in ok:
            comp = Composition(r["formula"])
            res = hull.evaluate(comp, energy_per_atom=r["chgnet_e_relaxed"])
            if res.e_above_hull is None:
                skipped += 1
                continue
            own = (r["material_id"],)
            cols["chgnet"].append(res.e_above_hull)
            cols["chgnet_static"].append(hull.evaluate(comp, energy_per_atom=r["chgnet_e_static"]).e_above_hull)
            cols["dft_hull"].append(hull.evaluate(comp, e_form=r["dft_e_form"]).e_above_hull)
            cols["column"].append(r["dft_e_above_hull"])
            cols["chgnet_loo"].append(hull.evaluate(comp, e_form=res.e_form, exclude=own).e_above_hull)
            cols["dft_loo"].append(hull.evaluate(comp, e_form=r["dft_e_form"], exclude=own).e_above_hull)
            cols["e_form_err"].append(res.e_form - r["dft_e_form"])
        a = {k: np.asarray(v, dtype=float) for k, v in cols.items()}
        report["sets"][name] = {                                           # type: ignore[index]
            "num_relaxed": len(ok), "num_failed": len(rows) - len(ok), "num_no_reference": skipped,
            "num_scored": int(a["chgnet"].size),
            "converged_fraction": round(float(np.mean([r["converged"] for r in ok])), 3),
            "mean_steps": round(float(np.mean([r["steps"] for r in ok])), 1),
            "mean_atoms": round(float(np.mean([r["num_atoms"] for r in ok])), 1),
            "e_form_mae_vs_dft": _mae(a["e_form_err"], 0.0),
            "dft_hull_vs_column_mae": _mae(a["dft_hull"], a["column"]),
            "chgnet_relaxed_vs_column": _scores(a["chgnet"], a["column"], args.threshold),
            "chgnet_relaxed_vs_dft_hull": _scores(a["chgnet"], a["dft_hull"], args.threshold),
            "chgnet_static_vs_dft_hull": _scores(a["chgnet_static"], a["dft_hull"], args.threshold),
            "leave_one_out_chgnet_vs_dft": _scores(a["chgnet_loo"], a["dft_loo"], args.threshold),
            "fraction_on_or_below_hull_chgnet": round(float((a["chgnet"] <= 0).mean()), 3)}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())

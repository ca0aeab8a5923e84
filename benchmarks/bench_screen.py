"""Benchmark of the Slater-Koster topology screen.

1. Throughput on small cells: the first ``--n-small`` crystals of ``mp_40/test.csv`` with ≤ 20
   atoms, screened with ``--workers`` processes (wall clock, crystals/s, including pool start-up).
2. The whole ``mp_40/test.csv`` (708 Materials Project crystals, ≤ 40 atoms): distribution of
   screened classes, time per crystal, and the metal/insulator call against the PBE ``band_gap``
   column (PBE gap > 0 ⇒ insulator) under both metal rules (``direct``, ``indirect``).
3. The test crystals of ``tests/data/sk`` (known answers).

Writes ``docs/img/screen_mp40.png`` and prints a markdown table. Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_screen.py [--workers 2] [--n-small 100] [--limit N]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MP40 = ROOT / ".." / "shared" / "data" / "mp_40" / "test.csv"


def _classes(rows: list[dict], rule: str, tol: float = 0.01) -> list[str]:
    """Class of every row under ``rule`` (rows were screened with ``metal_rule="direct"``)."""
    out = []
    for r in rows:
        cls = r.get("topo_class")
        if cls is None:
            out.append("error")
        elif (rule == "indirect" or (rule == "auto" and r.get("open_shell"))) and cls != "metal" \
                and (r.get("gap") or 0.0) < tol:
            out.append("metal")
        else:
            out.append(cls)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--n-small", type=int, default=100)
    ap.add_argument("--limit", type=int, default=None, help="screen only the first N mp_40 rows")
    ap.add_argument("--rows-json", default=None, help="also save the per-crystal mp_40 rows here")
    ap.add_argument("--replot", default=None, help="only redraw the PNG from rows saved with --rows-json")
    ap.add_argument("--skip-full", action="store_true", help="only the small-cell throughput part")
    ap.add_argument("--png", default=str(ROOT / "docs" / "img" / "screen_mp40.png"))
    args = ap.parse_args()
    if args.replot:
        import json

        rows = json.loads(Path(args.replot).read_text())
        plot(rows, np.array([r.get("n_atoms") or 0 for r in rows]), args.png)
        return
    if not MP40.exists():
        sys.exit(f"mp_40 data not found at {MP40}")

    from topodiff.crystal.io import read_structures
    from topodiff.evaluation.screen import records_to_tasks, screen_path, screen_tasks

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = read_structures(MP40)
    print(f"read {len(records)} mp_40 rows", file=sys.stderr)

    # ---- 1. throughput on <= 20-atom cells
    small = [i for i, r in enumerate(records) if r.structure is not None and len(r.structure) <= 20][:args.n_small]
    atoms = [len(records[i].structure) for i in small]
    t0 = time.perf_counter()
    rows_small = [r for _, r in screen_tasks(records_to_tasks(records, {}, small), workers=args.workers)]
    wall = time.perf_counter() - t0
    cpu = np.array([r.get("cpu_s", np.nan) for r in rows_small], float)
    load = os.getloadavg()[0]
    print(f"\n| small cells (<= 20 atoms, mean {np.mean(atoms):.1f}) | {len(small)} crystals | {wall:.1f} s wall | "
          f"{len(small) / wall:.2f} crystals/s with {args.workers} workers (load average {load:.1f}) | "
          f"CPU per crystal: median {np.nanmedian(cpu):.3f} s, mean {np.nanmean(cpu):.3f} s -> "
          f"{args.workers / np.nanmean(cpu):.2f} crystals/s on {args.workers} free cores |")
    if args.skip_full:
        return

    # ---- 2. all of mp_40
    idx = list(range(len(records)))[:args.limit]
    t0 = time.perf_counter()
    rows = [r for _, r in screen_tasks(records_to_tasks(records, {"metal_rule": "direct"}, idx),
                                       workers=args.workers)]
    if args.rows_json:
        import json

        Path(args.rows_json).write_text(json.dumps(rows, default=str))
    wall = time.perf_counter() - t0
    times = np.array([r.get("time_s", np.nan) for r in rows], float)
    nat = np.array([len(records[i].structure) if records[i].structure is not None else 0 for i in idx])
    pbe = np.array([records[i].properties.get("band_gap", np.nan) for i in idx])
    print(f"\nmp_40: {len(rows)} crystals in {wall:.1f} s wall ({len(rows) / wall:.2f} crystals/s, "
          f"{args.workers} workers); per-crystal time median {np.nanmedian(times):.3f} s, "
          f"mean {np.nanmean(times):.3f} s, max {np.nanmax(times):.2f} s")
    print("\n| rule (auto = default) | trivial_insulator | strong_ti | weak_ti | metal | error | metal/insulator agreement with PBE |")
    print("|---|---|---|---|---|---|---|")
    dist = {}
    for rule in ("auto", "direct", "indirect"):
        cls = _classes(rows, rule)
        c = Counter(cls)
        dist[rule] = c
        ok = [(k != "metal") == (g > 0) for k, g in zip(cls, pbe) if k != "error" and np.isfinite(g)]
        print(f"| {rule} | {c['trivial_insulator']} | {c['strong_ti']} | {c['weak_ti']} | {c['metal']} | "
              f"{c['error']} | {100 * np.mean(ok):.1f} % of {len(ok)} |")
    errors = Counter((r.get("error") or "").split(":")[0][:60] for r in rows if r.get("topo_class") is None)
    print("\nerror reasons:", dict(errors.most_common(6)))
    for rule in ("auto", "direct"):
        strong = [(r.get("formula"), r.get("space_group")) for r, c in zip(rows, _classes(rows, rule))
                  if c == "strong_ti"]
        print(f"strong_ti calls ({rule} rule, {len(strong)}):", strong[:40])
    print(f"PBE metals (band_gap == 0): {np.mean(pbe[np.isfinite(pbe)] == 0) * 100:.1f} %")

    # ---- 3. known crystals
    print("\n| crystal | class | gap (eV) | direct gap (eV) | z2 | time (s) |\n|---|---|---|---|---|---|")
    for r in screen_path(ROOT / "tests" / "data" / "sk", workers=1):
        print(f"| {Path(r['source']).stem} | {r['topo_class']} | {r['gap']} | {r.get('direct_gap')} | {r['z2']} | "
              f"{r.get('time_s')} |")

    plot(rows, nat, args.png)


def plot(rows: list[dict], nat: np.ndarray, png: str) -> None:
    """Bar chart of classes under the three metal rules + CPU time per crystal vs atoms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    names = ["trivial_insulator", "strong_ti", "weak_ti", "metal", "error"]
    x = np.arange(len(names))
    for off, rule in ((-0.27, "auto"), (0.0, "direct"), (0.27, "indirect")):
        c = Counter(_classes(rows, rule))
        ax[0].bar(x + off, [c[n] for n in names], width=0.27, label=f"metal rule: {rule}")
    ax[0].set_xticks(x, names, rotation=20)
    ax[0].set_ylabel("crystals")
    ax[0].set_title(f"mp_40 test ({len(rows)} crystals): screened classes")
    ax[0].legend()
    cpu = np.array([r.get("cpu_s", np.nan) for r in rows], float)
    good = np.isfinite(cpu)
    ax[1].scatter(nat[good], cpu[good], s=8)
    ax[1].set_yscale("log")
    ax[1].set_xlabel("atoms per cell")
    ax[1].set_ylabel("CPU seconds per crystal (1 thread)")
    ax[1].set_title("screen cost per crystal")
    fig.tight_layout()
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    print(f"\nwrote {png}", file=sys.stderr)


if __name__ == "__main__":
    main()

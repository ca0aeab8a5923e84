"""Benchmark: a 101 × 101 Haldane (M, φ) Chern phase diagram at nk = 24 (target < 30 s on 2 CPU cores).

Run: ``OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_phase_diagram.py [--n 101] [--nk 24]``.
Prints one JSON line: wall time, counts per Chern number, and the fraction of grid points that
disagree with the analytic boundary |M| < 3√3 t2 |sin φ| (Haldane 1988) more than 0.05 eV away from it.
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

from topodiff.physics.phase_diagram import Axis, chern_phase_diagram, haldane_boundary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=101)
    ap.add_argument("--nk", type=int, default=24)
    ap.add_argument("--t2", type=float, default=0.15)
    args = ap.parse_args()
    t0 = time.perf_counter()
    pd = chern_phase_diagram("haldane", Axis("phi", -math.pi, math.pi, args.n), Axis("M", -1.0, 1.0, args.n),
                             nk=args.nk, params={"t2": args.t2})
    wall = time.perf_counter() - t0
    PHI, M = np.meshgrid(pd.x.values, pd.y.values, indexing="ij")
    bound = np.abs(haldane_boundary(PHI, args.t2))
    far = np.abs(np.abs(M) - bound) > 0.05
    expect = np.where(np.abs(M) < bound, 1, 0)
    wrong = far & (np.abs(pd.chern) != expect)
    print(json.dumps({"grid": [args.n, args.n], "nk": args.nk, "seconds": round(wall, 3),
                      "torch_threads": torch.get_num_threads(), "counts": pd.counts(),
                      "disagree_away_from_boundary": int(wrong.sum()), "checked_points": int(far.sum())}))


if __name__ == "__main__":
    main()

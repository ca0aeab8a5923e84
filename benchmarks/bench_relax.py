"""Relaxation throughput of the CHGNet evaluator: crystals per minute (≤ 20 atoms each).

Input: the first N crystals with ≤ 20 atoms of a CDVAE CSV (default ``../shared/data/mp_40/test.csv``,
real Materials Project crystals, rattled by 0.05 Å so that every one needs some steps), relaxed
positions + cell with BFGS (``--optimizer FIRE``) to fmax = 0.1 eV/Å (max 300 steps), as ``topodiff evaluate --relax``.

Usage: ``python benchmarks/bench_relax.py [--csv PATH] [--num 20] [--rattle 0.05]``
Prints one JSON line: crystals/min, mean atoms, mean steps, converged fraction, mean RMSD.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", default=str(ROOT.parent / "shared" / "data" / "mp_40" / "test.csv"))
    ap.add_argument("--num", type=int, default=20)
    ap.add_argument("--max-atoms", type=int, default=20)
    ap.add_argument("--rattle", type=float, default=0.05, help="Gaussian rattle (Å) applied before relaxing")
    ap.add_argument("--fmax", type=float, default=0.1)
    ap.add_argument("--optimizer", default="BFGS", choices=["BFGS", "FIRE"])
    args = ap.parse_args()
    path = Path(args.csv)
    if not path.exists():
        print(f"error: {path} not found (the benchmark needs ../shared/data)", file=sys.stderr)
        return 2
    from pymatgen.core import Structure

    from topodiff.evaluation.relax import load_chgnet, relax_structures

    rng = np.random.default_rng(0)
    structs = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            s = Structure.from_str(row["cif"], fmt="cif")
            if len(s) <= args.max_atoms:
                noise = rng.normal(scale=args.rattle, size=(len(s), 3))
                structs.append(Structure(s.lattice, s.species, s.cart_coords + noise, coords_are_cartesian=True))
            if len(structs) == args.num:
                break
    load_chgnet()                                   # model loading is not part of the throughput
    t0 = time.perf_counter()
    t_cpu = time.process_time()
    res = relax_structures(structs, fmax=args.fmax, optimizer=args.optimizer, progress=True)
    cpu = time.process_time() - t_cpu
    wall = time.perf_counter() - t0
    ok = [r for r in res if r.error is None]
    out = {"num": len(structs), "optimizer": args.optimizer, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
           "cpu_s_per_crystal": round(cpu / len(structs), 2),
           "crystals_per_min": round(60 * len(structs) / wall, 2),
           "mean_atoms": round(float(np.mean([len(s) for s in structs])), 1),
           "mean_steps": round(float(np.mean([r.steps for r in ok])), 1),
           "converged_fraction": round(len([r for r in ok if r.converged]) / len(structs), 3),
           "mean_rmsd_A": round(float(np.mean([r.displacement_rmsd for r in ok])), 4),
           "fmax": args.fmax, "rattle_A": args.rattle, "csv": str(path)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

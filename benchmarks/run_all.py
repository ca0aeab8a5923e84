"""Run every benchmark script in this folder, one after another, with one BLAS thread.

Usage: ``.venv/bin/python benchmarks/run_all.py [NAME ...]`` (names without ``bench_`` / ``.py``).
Each script prints its own side-by-side table; this runner reports the wall time and exit code of each.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(names: list[str]) -> int:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in names]
    failed = 0
    for script in scripts:
        print(f"\n=== {script.name} ===", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(script)], env=env, cwd=HERE.parent)
        print(f"=== {script.name}: exit {rc}, {time.perf_counter() - t0:.1f} s ===", flush=True)
        failed += rc != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Bott index + Chern marker wall and CPU time against supercell size (QWZ u = −1, W = 1 eV, one seed).

Run: ``nice .venv/bin/python benchmarks/bench_bott_sizes.py`` (one BLAS thread).
"""
from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import time  # noqa: E402

import torch  # noqa: E402

from topodiff.physics.bott import real_space_invariants  # noqa: E402
from topodiff.physics.library import build_model  # noqa: E402

torch.set_num_threads(1)


def main() -> None:
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.1f}")
    print("| L | states | Bott | marker (bulk) | wall (s) | CPU (s) |")
    print("|---|---|---|---|---|---|")
    for L in (12, 20, 30, 40):
        w, c = time.perf_counter(), time.process_time()
        r = real_space_invariants(build_model("qwz", u=-1.0), L, 1.0, 0)
        print(f"| {L} | {2 * L * L} | {r.bott[0]} | {r.marker_bulk[0]:.4f} | {time.perf_counter() - w:.1f} "
              f"| {time.process_time() - c:.1f} |", flush=True)


if __name__ == "__main__":
    main()

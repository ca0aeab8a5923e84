"""Python-API wall times with topodiff's threading default vs the libraries' own defaults.

Each case runs in a fresh interpreter whose environment has no OMP/OPENBLAS/MKL_NUM_THREADS:
``default`` (topodiff applies one thread at the first heavy call) against ``TOPODIFF_NUM_THREADS=off``
(torch/OpenBLAS keep their own thread counts, i.e. the API before the threading default).

    python benchmarks/bench_api_threads.py [--repeats 2] [--out runs/bench_api_threads.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    "haldane_chern_nk400": "import topodiff; m = topodiff.load_model('haldane'); t = T(); "
                           "topodiff.chern_number(m, nk=400); out = T() - t",
    "kane_mele_z2": "import topodiff; m = topodiff.load_model('kane_mele'); t = T(); "
                    "topodiff.z2_invariant(m); out = T() - t",
    "screen_Bi2Se3_cif": "import topodiff; t = T(); topodiff.screen('tests/data/crystals/Bi2Se3.cif'); out = T() - t",
    "generate_num8": "import topodiff; t = T(); topodiff.generate(num=8, seed=0); out = T() - t",
}
LIB_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TOPODIFF_NUM_THREADS")


def run_case(code: str, threads: str | None) -> float:
    env = {k: v for k, v in os.environ.items() if k not in LIB_VARS}
    if threads is not None:
        env["TOPODIFF_NUM_THREADS"] = threads
    script = f"from time import perf_counter as T\n{code.replace('; ', chr(10))}\nprint(out)"
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        raise RuntimeError(res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "failed")
    return float(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    ap.add_argument("--out", type=Path, default=Path("runs/bench_api_threads.json"))
    args = ap.parse_args()
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu_count": os.cpu_count(),
               "loadavg_start": os.getloadavg(), "cases": {}}
    for name in args.cases:
        row = {}
        for label, threads in (("default_1_thread", None), ("libraries_default", "off")):
            row[label] = [round(run_case(CASES[name], threads), 3) for _ in range(args.repeats)]
        results["cases"][name] = row
        print(name, row, flush=True)
    results["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results))


if __name__ == "__main__":
    main()

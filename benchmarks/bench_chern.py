"""Chern number (FHS) speed: topodiff vs PythTB 2.0.2, side by side, one BLAS thread, one process.

Run: ``.venv/bin/python benchmarks/bench_chern.py [--repeat 3]``. PythTB 2.0.2 is loaded from
``benchmarks/_ref/pythtb2`` (installed there on first use: it declares Python >= 3.12 but its
pure-Python wheel runs on 3.11). Both sides go from the model to the Chern number: build H on the
grid, diagonalise, FHS plaquettes (PythTB: ``WFArray.solve_model`` + ``chern_number``).
"""
from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import glob  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import best_of  # noqa: E402

torch.set_num_threads(1)
REF = Path(__file__).resolve().parent / "_ref" / "pythtb2"


def ensure_pythtb2() -> None:
    """Put PythTB 2.0.2 on sys.path, installing it into benchmarks/_ref/pythtb2 if missing."""
    if not (REF / "pythtb").is_dir():
        tmp = "/tmp/pythtb2-wheel"
        pip = [sys.executable, "-m", "pip"]
        subprocess.run(pip + ["download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
                              "pythtb==2.0.2", "-d", tmp], check=True)
        subprocess.run(pip + ["install", "--no-deps", "--ignore-requires-python", "--target", str(REF),
                              *glob.glob(f"{tmp}/pythtb-2.0.2*.whl")], check=True)
    sys.path.insert(0, str(REF))


def to_pythtb2(model):
    import pythtb

    assert (REF / "pythtb-2.0.2.dist-info").is_dir(), "expected the PythTB 2.0.2 wheel in benchmarks/_ref/pythtb2"
    tb = pythtb.tb_model(model.dim, model.lattice.shape[1], model.lattice.tolist(), model.orbitals.tolist(),
                         nspin=model.n_spin)
    tb.set_onsite([o if model.spinful else float(o[0, 0].real) for o in model.onsite])
    for i, j, R, t in zip(model.hop_i, model.hop_j, model.hop_R, model.hop_t):
        tb.set_hop(t if model.spinful else complex(t[0, 0]), int(i), int(j), [int(x) for x in R], mode="add")
    return tb


def pythtb2_chern(tb, n: int, occ: int) -> float:
    import pythtb

    mesh = pythtb.Mesh(["k", "k"])
    mesh.build_grid(shape=(n, n))
    wfa = pythtb.WFArray(tb.lattice, mesh, spinful=tb.spinful)
    wfa.solve_model(tb)
    return float(np.asarray(wfa.chern_number(plane=(0, 1), state_idx=np.arange(occ))))




def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    ensure_pythtb2()
    import pythtb

    from topodiff.physics.berry import chern_result
    from topodiff.physics.library import build_model

    cases = [("Haldane", build_model("haldane"), 400), ("Haldane", build_model("haldane"), 200),
             ("Haldane near M_c", build_model("haldane", M=0.97 * 3 * np.sqrt(3) * 0.15), 400),
             ("Kane-Mele (4 bands)", build_model("kane_mele"), 200)]
    print(f"# torch {torch.__version__}, PythTB 2.0.2 wheel (module says {pythtb.__version__}), "
          f"1 thread, best of {args.repeat}", file=sys.stderr)
    rows = []
    for label, m, n in cases:
        chern_result(m, 16, refine=False)  # warm-up (imports, allocator)
        t_ours, res = best_of(lambda: chern_result(m, n, refine=False), args.repeat)
        tb = to_pythtb2(m)
        t_ref, ref = best_of(lambda: pythtb2_chern(tb, n, m.occupied), args.repeat)
        rows.append((f"{label} {n}x{n}", t_ours, t_ref, res.raw, ref))
    print(f"| case | topodiff (s) | PythTB 2.0.2 (s) | speed-up | C topodiff | C PythTB |")
    print("|---|---|---|---|---|---|")
    for name, a, b, c1, c2 in rows:
        print(f"| {name} | {a:.3f} | {b:.3f} | {b / a:.1f}x | {c1:+.6f} | {c2:+.6f} |")


if __name__ == "__main__":
    main()

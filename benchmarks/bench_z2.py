"""Z2 speed: topodiff (WCC flow, adaptive) vs Z2Pack 2.2.1 on the same Hamiltonians, one thread.

Run: ``.venv/bin/python benchmarks/bench_z2.py [--repeat 3]``. Z2Pack gets a fast NumPy closure
``H(κ) = Σ_R T_R e^{2πiκ·R}`` (Bloch convention I) and its default convergence settings; topodiff
runs :func:`topodiff.physics.z2.z2_result` with its defaults. Both must give the same invariants.
"""
from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import best_of  # noqa: E402

torch.set_num_threads(1)
logging.getLogger("z2pack").setLevel(logging.ERROR)


def numpy_hamiltonian(model):
    Rs, T = model.table
    Rs = Rs.astype(float)

    def ham(k):
        ph = np.exp(2j * np.pi * (Rs @ np.asarray(k, dtype=float)[: model.dim]))
        return np.tensordot(ph, T, axes=1)
    return ham


def z2pack_invariant(model):
    import z2pack

    for name in list(logging.root.manager.loggerDict):  # Z2Pack logs a report per surface at INFO
        if name.startswith("z2pack"):
            logging.getLogger(name).setLevel(logging.ERROR)
    system = z2pack.hm.System(numpy_hamiltonian(model), dim=model.dim, bands=model.occupied)

    def plane(surface) -> int:
        with contextlib.redirect_stdout(io.StringIO()):  # Z2Pack prints a convergence report per surface
            res = z2pack.surface.run(system=system, surface=surface, save_file=None)
        return int(z2pack.invariant.z2(res))

    if model.dim == 2:
        return plane(lambda t1, t2: [t1 / 2, t2])
    z = {}
    for ax in range(3):
        others = [a for a in range(3) if a != ax]
        for val in (0.0, 0.5):
            def surf(t1, t2, ax=ax, val=val, o=others):
                k = [0.0, 0.0, 0.0]
                k[ax], k[o[0]], k[o[1]] = val, t1 / 2, t2
                return k
            z[(ax, val)] = plane(surf)
    return ((z[(0, 0.0)] + z[(0, 0.5)]) % 2, z[(0, 0.5)], z[(1, 0.5)], z[(2, 0.5)])




def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import z2pack

    from topodiff.physics.library import build_model
    from topodiff.physics.z2 import z2_result

    cases = [("Fu-Kane-Mele STI (3D)", build_model("fu_kane_mele", dt1=0.4)),
             ("Fu-Kane-Mele WTI (3D)", build_model("fu_kane_mele", dt1=-0.4)),
             ("Bi2Se3 Zhang (3D)", build_model("bi2se3")),
             ("Kane-Mele QSH (2D)", build_model("kane_mele", lambda_v=0.1)),
             ("Kane-Mele trivial (2D)", build_model("kane_mele", lambda_v=0.4))]
    print(f"# torch {torch.__version__}, Z2Pack {z2pack.__version__}, 1 thread, best of {args.repeat}", file=sys.stderr)
    z2_result(build_model("kane_mele"))  # warm-up
    rows = []
    for label, m in cases:
        t_ours, res = best_of(lambda: z2_result(m), args.repeat)
        t_ref, ref = best_of(lambda: z2pack_invariant(m), args.repeat)
        rows.append((label, t_ours, t_ref, res.z2, ref))
    print("| model | topodiff (s) | Z2Pack 2.2.1 (s) | speed-up | Z2 topodiff | Z2 Z2Pack |")
    print("|---|---|---|---|---|---|")
    for label, a, b, z1, z2 in rows:
        print(f"| {label} | {a:.3f} | {b:.3f} | {b / a:.1f}x | {z1} | {z2} |")
    if any(r[3] != r[4] for r in rows):
        print("MISMATCH between topodiff and Z2Pack", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Observables side by side in one run: σ_xy vs a PythTB 1.8.0 Berry-flux evaluation and WannierBerri, the Sancho-Rubio
surface Green's function vs a hand-built slab diagonalisation, and real-space / Hofstadter timings.

Run: ``nice .venv/bin/python benchmarks/bench_observables.py [--quick]`` (one BLAS thread, one process).

* σ_xy: PythTB's band-resolved FHS plaquette fluxes (``wf_array.berry_flux([n], individual_phases=True)``)
  weighted by the T = 0 occupation of band n at the plaquette centre (mean of its corners' energies),
  ``σ = (1/2π) Σ_n Σ_plaq f_n F_n`` — a different discretisation (link variables, not Kubo) of the
  same integral; both sides build H, diagonalise and integrate.
* Surface: ``A_s(k, E)`` of the first principal layer from the decimation vs the end-cell projected
  spectral function of an N-cell slab (``Σ_n |ψ_n(end)|² δ_η(E − E_n)``) at the same η; N is chosen
  ≫ v/η so the two must agree; time per k-point for all energies.
"""
from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import best_of  # noqa: E402

from topodiff.physics.interop import to_pythtb  # noqa: E402

torch.set_num_threads(1)


def pythtb_sigma(tb, n: int, fermi: np.ndarray) -> np.ndarray:
    """σ_xy(E_F) from PythTB band-resolved plaquette fluxes with T = 0 occupations."""
    import pythtb

    wf = pythtb.wf_array(tb, [n + 1, n + 1])
    wf.solve_on_grid([0.0, 0.0])
    kk = np.linspace(0, 1, n + 1)
    k = np.stack(np.meshgrid(kk, kk, indexing="ij"), -1).reshape(-1, 2)
    e = np.array([tb.solve_one(p) for p in k]).reshape(n + 1, n + 1, -1)  # [n+1, n+1, nb]
    centre = 0.25 * (e[:-1, :-1] + e[1:, :-1] + e[:-1, 1:] + e[1:, 1:])  # [n, n, nb]
    out = np.zeros(len(fermi))
    for b in range(e.shape[-1]):
        flux = wf.berry_flux([b], individual_phases=True)  # [n, n]
        out += ((centre[..., b, None] < fermi) * flux[..., None]).sum((0, 1))
    return out / (2 * math.pi)


def bench_hall(quick: bool) -> None:
    from topodiff.physics.hall import hall_conductivity
    from topodiff.physics.library import build_model

    fermi = np.array([-2.5, -1.5, -1.0, 0.0, 0.6, 1.2])
    n_ref = 100 if quick else 300
    print(f"\n## σ_xy (e²/h), Haldane, T = 0: topodiff (Kubo, adaptive) vs PythTB 1.8.0 band fluxes ({n_ref}²)")
    print("| model | E_F (eV) | topodiff | PythTB fluxes | abs. difference |")
    print("|---|---|---|---|---|")
    for label, m in (("Haldane φ=π/2", build_model("haldane")), ("Haldane φ=0.8", build_model("haldane", phi=0.8))):
        t0 = time.perf_counter()
        res = hall_conductivity(m, fermi, nk=96)
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = pythtb_sigma(to_pythtb(m), n_ref, fermi)
        t_ref = time.perf_counter() - t0
        for ef, a, b in zip(fermi, res.sigma_xy(), ref):
            print(f"| {label} | {ef:+.2f} | {a:+.5f} | {b:+.5f} | {abs(a - b):.1e} |")
        print(f"| {label} | time (s) | {t_ours:.2f} ({res.points} k) | {t_ref:.2f} ({(n_ref + 1) ** 2} k) | |")


def bench_wannierberri(quick: bool) -> None:
    """3D Weyl model: σ tensor vs WannierBerri 26.10 (``AHC``, Fermi sea, same grid, no refinement there)."""
    from topodiff.physics.hall import E2_H_SIEMENS, hall_conductivity
    from topodiff.physics.library import build_model

    ref_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ref", "wberri")
    print("\n## σ (S/cm), Weyl semimetal k0 = π/3 (3D): topodiff vs WannierBerri 26.10, NK = 48³")
    if not os.path.isdir(os.path.join(ref_dir, "wannierberri")):
        print(f"WannierBerri not installed: pip install --no-deps --target {ref_dir} wannierberri==26.10 "
              "wannier90io==0.1.0b1 colorama termcolor numba llvmlite (it pulls no torch)")
        return
    sys.path.insert(0, ref_dir)
    import wannierberri as wb

    m = build_model("weyl", k0=math.pi / 3)
    ef = np.array([-0.5, 0.0, 0.3])
    nk = 24 if quick else 48
    t0 = time.perf_counter()
    ours = hall_conductivity(m, ef, nk=nk).tensor_s_per_cm()[:, 1, 2]
    t_ours = time.perf_counter() - t0
    system = wb.system.System_PythTB(to_pythtb(m))
    t0 = time.perf_counter()
    res = wb.run(system, grid=wb.Grid(system, NK=nk), calculators={"ahc": wb.calculators.static.AHC(Efermi=ef)},
                 print_Kpoints=False, adpt_num_iter=0)
    t_ref = time.perf_counter() - t0
    theirs = -res.results["ahc"].data[:, 0] / 100.0  # O_x = −σ_yz in S/m → σ_yz in S/cm
    exact = (1 - 1 / 3) * E2_H_SIEMENS * 1e8
    print("| E_F (eV) | topodiff σ_yz | WannierBerri σ_yz | analytic at E_F = 0 |")
    print("|---|---|---|---|")
    for e, a_, b_ in zip(ef, ours, theirs):
        print(f"| {e:+.2f} | {a_:.1f} | {b_:.1f} | {f'{-exact:.1f}' if e == 0 else ''} |")
    print(f"| time (s) | {t_ours:.1f} | {t_ref:.1f} (incl. numba JIT) | |")


def slab_end_weight(model, edge: str, k: np.ndarray, E: np.ndarray, eta: float, cells: int) -> np.ndarray:
    """End-cell spectral weight ``[n_E, n_k]`` of a ``cells``-thick slab (dense eigh per k)."""
    from topodiff.physics.finite import cut
    from topodiff.physics.surface import rebase, surface_basis

    geom = cut(rebase(model, surface_basis(model, edge)), cells, finite=model.dim - 1)
    e, v = torch.linalg.eigh(geom.model.hamiltonian(k, convention=1))
    w = (v[:, :model.num_bands, :].abs() ** 2).sum(1).numpy()
    G = (w[None] / (E[:, None, None] + 1j * eta - e.numpy()[None])).sum(-1)
    return -G.imag / math.pi


def bench_surface(quick: bool) -> None:
    from topodiff.physics.library import build_model
    from topodiff.physics.surface import surface_spectrum

    print("\n## Surface spectral function: Sancho-Rubio vs slab diagonalisation (same η, first cell)")
    print("| model, edge | η (eV) | slab cells | max ΔA / max A | SR time per k (ms) | slab time per k (ms) | SR iterations |")
    print("|---|---|---|---|---|---|---|---|")
    cases = [("Kane-Mele, zigzag", build_model("kane_mele"), "zigzag", 0.05, np.linspace(0, 0.5, 16)[:, None], 300),
             ("Bi2Se3 (Zhang), 001", build_model("bi2se3"), "0,0,1", 0.01,
              np.stack([np.linspace(0, 0.05, 16), np.zeros(16)], 1), 200 if quick else 400)]
    for label, m, edge, eta, k, cells in cases:
        E = np.linspace(-0.6, 0.6, 121)
        t_sr, sp = best_of(lambda: surface_spectrum(m, edge, k, E, eta=eta), 2)
        t_slab, ref = best_of(lambda: slab_end_weight(m, edge, k, E, eta, cells), 1)
        dev = np.abs(sp.surface - ref).max() / ref.max()
        print(f"| {label} | {eta} | {cells} | {dev:.1e} | {1e3 * t_sr / len(k):.2f} | {1e3 * t_slab / len(k):.1f} "
              f"| {sp.iterations} |")


def bench_real_space(quick: bool) -> None:
    from topodiff.physics.bott import real_space_invariants
    from topodiff.physics.hofstadter import hofstadter_gaps
    from topodiff.physics.library import build_model

    print("\n## Bott index + Chern marker (dense), QWZ u = −1, W = 1 eV, one seed")
    print("| L | states | Bott | marker (bulk) | time (s) |")
    print("|---|---|---|---|---|")
    for L in ((12, 20) if quick else (12, 20, 30, 40)):
        t0 = time.perf_counter()
        r = real_space_invariants(build_model("qwz", u=-1.0), L, 1.0, 0)
        print(f"| {L} | {2 * L * L} | {r.bott[0]} | {r.marker_bulk[0]:.4f} | {time.perf_counter() - t0:.1f} |")
    print("\n## Hofstadter gaps (FHS on the magnetic bands)")
    print("| p/q | gaps | Chern numbers | time (s) |")
    print("|---|---|---|---|")
    for p, q in ((1, 3), (2, 5), (3, 7), (5, 17), (7, 31)):
        t0 = time.perf_counter()
        gaps = hofstadter_gaps(p, q)
        print(f"| {p}/{q} | {len(gaps)} | {[g.chern for g in gaps][:8]}{' ...' if len(gaps) > 8 else ''} "
              f"| {time.perf_counter() - t0:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller reference grids and sizes")
    args = ap.parse_args()
    import pythtb

    print(f"# torch {torch.__version__}, PythTB {pythtb.__version__}, 1 thread, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    bench_hall(args.quick)
    bench_wannierberri(args.quick)
    bench_surface(args.quick)
    bench_real_space(args.quick)


if __name__ == "__main__":
    main()

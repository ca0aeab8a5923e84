"""``topodiff demo``: a two-minute tour of the physics engine, written as PNGs plus ``summary.json``."""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import typer

from topodiff.commands._common import print_json

MAX_GRID = 401  # phase-diagram points per axis (401² Chern numbers at nk = 24: minutes)


def build_demo(out: Path, *, grid: int = 81, log=lambda msg: None) -> dict[str, Any]:
    """Compute and draw the demo figures into ``out``; return the summary (also written as JSON).

    Haldane phase diagram (``grid × grid``, nk = 24) with the analytic boundary, Haldane Berry
    curvature, Kane-Mele zigzag ribbon (QSH and trivial), Kane-Mele WCC flow, the critical staggered
    potential of Kane-Mele against 3√3 λ_SO, and the known-materials checks.
    """
    from topodiff.io_utils import atomic_write_json

    t_start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"files": {}}
    timings: dict[str, float] = {}
    stages = [("haldane_phase_diagram", lambda: _haldane_phase_diagram(out, grid)),
              ("haldane_berry_curvature", lambda: _haldane_berry_curvature(out)),
              ("kane_mele_ribbons", lambda: _kane_mele_ribbons(out)),
              ("kane_mele_wcc_flow", lambda: _kane_mele_wcc_flow(out)),
              ("kane_mele_field_sweep", _kane_mele_critical_field),
              ("validate_known", _validate_known)]
    for name, stage in stages:
        t0 = time.perf_counter()
        files, results = stage()
        summary["files"].update(files)
        summary.update(results)
        timings[name] = round(time.perf_counter() - t0, 3)
        log(f"  {name}: {timings[name]:.2f} s")
    summary["timings_s"] = timings
    summary["wall_time_s"] = round(time.perf_counter() - t_start, 3)
    summary["files"]["summary"] = str(out / "summary.json")
    atomic_write_json(out / "summary.json", summary)
    return summary


_Stage = tuple[dict[str, str], dict[str, Any]]  # (figure files by name, summary entries)


def _haldane_phase_diagram(out: Path, grid: int) -> _Stage:
    """Chern number of the Haldane model over (φ, M) at t2 = 0.15, with the analytic boundary."""
    from topodiff.physics.phase_diagram import Axis, chern_phase_diagram, haldane_boundary
    from topodiff.physics.plots import plot_phase_diagram

    t2 = 0.15
    pd = chern_phase_diagram("haldane", Axis("phi", -math.pi, math.pi, grid), Axis("M", -1.0, 1.0, grid), nk=24,
                             params={"t2": t2})
    path = plot_phase_diagram(pd, out / "haldane_phase_diagram.png", boundary=lambda phi: haldane_boundary(phi, t2),
                              boundary_label="M = ±3√3 t2 sin φ",
                              title=f"Haldane model: Chern number ({grid}×{grid}, nk = 24)")
    return ({"haldane_phase_diagram": str(path)},
            {"haldane_phase_diagram": {"grid": [grid, grid], "nk": 24, "counts": pd.counts(),
                                       "seconds": round(pd.seconds, 3)}})


def _haldane_berry_curvature(out: Path) -> _Stage:
    """Berry curvature of the default Haldane model over the BZ and its Chern number."""
    from topodiff.physics.berry import berry_curvature, chern_number
    from topodiff.physics.library import build_model
    from topodiff.physics.plots import plot_berry_curvature

    hal = build_model("haldane")
    k, omega = berry_curvature(hal, nk=120, cartesian=True)
    C = chern_number(hal, nk=48)
    path = plot_berry_curvature(k, omega, out / "haldane_berry_curvature.png", lattice=hal.lattice,
                                title=f"Haldane (M = 0.2, φ = π/2): Berry curvature, C = {C}")
    return {"haldane_berry_curvature": str(path)}, {"haldane": {"params": hal.params, "chern": C}}


def _kane_mele_ribbons(out: Path) -> _Stage:
    """Zigzag-ribbon spectra of Kane-Mele in the QSH (λ_v = 0.1) and trivial (λ_v = 0.4) phases."""
    from topodiff.physics.bands import band_gaps
    from topodiff.physics.finite import edge_spectrum, ribbon
    from topodiff.physics.library import build_model
    from topodiff.physics.plots import plot_edge_spectrum
    from topodiff.physics.z2 import z2_invariant

    files, ribbons = {}, {}
    for tag, lam_v in (("qsh", 0.1), ("trivial", 0.4)):
        km = build_model("kane_mele", lambda_v=lam_v)
        gaps = band_gaps(km)
        spec = edge_spectrum(ribbon(km, 20), nk=241)
        z2 = int(z2_invariant(km))
        path = plot_edge_spectrum(spec, out / f"kane_mele_ribbon_{tag}.png",
                                  title=f"Kane-Mele zigzag ribbon, λ_v = {lam_v} (Z2 = {z2})",
                                  ylim=(gaps.vbm - 0.8, gaps.cbm + 0.8))
        files[f"kane_mele_ribbon_{tag}"] = str(path)
        ribbons[tag] = {"lambda_v": lam_v, "z2": z2, "bulk_gap": gaps.indirect}
    return files, {"kane_mele_ribbons": ribbons}


def _kane_mele_wcc_flow(out: Path) -> _Stage:
    """Wannier-centre flow of Kane-Mele over half the BZ (the Z2 route)."""
    from topodiff.physics.library import build_model
    from topodiff.physics.plots import plot_wcc_flow
    from topodiff.physics.wilson import wcc_flow
    from topodiff.physics.z2 import z2_invariant

    km = build_model("kane_mele")
    flow = wcc_flow(km, k_range=(0.0, 0.5), num_lines=51)
    path = plot_wcc_flow(flow.k, flow.wcc, out / "kane_mele_wcc_flow.png", xlabel="κ1 (0 → 1/2)",
                         title=f"Kane-Mele WCC flow (Z2 = {int(z2_invariant(km))})")
    return {"kane_mele_wcc_flow": str(path)}, {}


def _kane_mele_critical_field() -> _Stage:
    """The staggered potential that closes Kane-Mele's QSH gap, against the analytic 3√3 λ_SO."""
    import numpy as np

    from topodiff.physics.fields import field_sweep

    lam_so = 0.06
    sweep = field_sweep(("kane_mele", {"lambda_r": 0.0, "lambda_v": 0.0, "lambda_so": lam_so}), "staggered",
                        np.linspace(0.0, 0.6, 7), "z2")
    crit = sweep.transitions[0]["critical"] if sweep.transitions else None
    analytic = 3 * math.sqrt(3) * lam_so
    return {}, {"kane_mele_critical_field": {"computed": crit, "analytic_3sqrt3_lambda_so": analytic,
                                             "relative_error": None if crit is None else abs(crit / analytic - 1)}}


def _validate_known() -> _Stage:
    """The known-materials checks (:mod:`topodiff.physics.known`)."""
    from topodiff.physics.known import run_checks

    checks = run_checks()
    return {}, {"validate_known": {"all_match": all(c.match for c in checks), "checks": [c.to_dict() for c in checks]}}


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(
        out: Path = typer.Option(Path("topodiff-demo"), "--out", help="output directory"),
        grid: int = typer.Option(81, "--grid", help="phase-diagram grid points per axis"),
        overwrite: bool = typer.Option(False, "--overwrite", help="clear a non-empty --out that holds another run"),
        as_json: bool = typer.Option(False, "--json", help="print the summary as one JSON object on stdout"),
    ) -> None:
        """Physics-engine tour: Haldane phase diagram, Berry curvature, Kane-Mele edge states and WCC flow."""
        from topodiff.commands._common import check_int_range, claim_run_output

        grid = check_int_range("--grid", grid, 2, MAX_GRID, why="grid² Chern numbers are computed")
        claim_run_output(out, "demo", options={"grid": grid}, overwrite=overwrite)
        print(f"topodiff demo → {out}/", file=sys.stderr)
        summary = build_demo(out, grid=grid, log=lambda msg: print(msg, file=sys.stderr))
        if as_json:
            print_json(summary)
            return
        for key, path in summary["files"].items():
            print(f"{key:28s} {path}")
        crit = summary["kane_mele_critical_field"]
        print(f"Kane-Mele critical λ_v = {crit['computed']:.6f} eV "
              f"(3√3 λ_SO = {crit['analytic_3sqrt3_lambda_so']:.6f})")
        print(f"known materials: {'all match' if summary['validate_known']['all_match'] else 'MISMATCH'}; "
              f"wall time {summary['wall_time_s']:.1f} s")

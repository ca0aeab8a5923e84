"""``topodiff surface``: surface/edge spectral function by the Sancho-Rubio surface Green's function."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from topodiff.commands._common import check_finite, check_int_range, check_nk, emit, parse_params, record_plot
from topodiff.errors import TopodiffInputError


def parse_kpath(text: str | None, dim: int):
    """Nodes ``[n, dim-1]`` from ``"a;b;c"`` (2D ribbons) or ``"a,b;c,d;..."`` (3D slabs), reduced."""
    import numpy as np

    if text is None:
        return np.array([[-0.5], [0.5]]) if dim == 2 else np.array([[0.5, 0.0], [0.0, 0.0], [0.5, 0.5]])
    try:
        nodes = np.array([[float(x) for x in node.split(",")] for node in text.replace(" ", "").split(";") if node])
    except ValueError:
        nodes = np.zeros((0, 0))
    if nodes.ndim != 2 or nodes.shape[0] < 2 or nodes.shape[1] != dim - 1 or not np.all(np.isfinite(nodes)):
        raise TopodiffInputError(f"--kpath needs >= 2 points of {dim - 1} reduced coordinates separated by ';', "
                                 f"e.g. {'-0.5;0.5' if dim == 2 else '0.5,0;0,0;0.5,0.5'}, got {text!r}")
    return nodes


def _window(m, energy: Optional[float], emin: Optional[float], emax: Optional[float]) -> tuple[float, float, float]:
    from topodiff.physics.bands import band_gaps

    g = band_gaps(m)
    mid = 0.5 * (g.vbm + g.cbm)
    half = max(0.3, 2.5 * g.indirect) if g.indirect > 0 else 1.0
    e = mid if energy is None else check_finite("--energy", energy)
    lo = mid - half if emin is None else check_finite("--emin", emin)
    hi = mid + half if emax is None else check_finite("--emax", emax)
    if hi <= lo:
        raise TopodiffInputError(f"--emax must be above --emin, got {lo:g} .. {hi:g}")
    return e, lo, hi


def register(app: typer.Typer) -> None:
    @app.command("surface")
    def surface_cmd(
        model: str = typer.Argument(..., help="2D/3D model: topodiff-tb/1 JSON, Wannier90 _hr.dat, or built-in name"),
        edge: str = typer.Option(..., "--edge", help="zigzag | armchair (2D) or Miller indices, e.g. 0,1 or 0,0,1"),
        energy: Optional[float] = typer.Option(None, "--energy", help="energy (eV) of the k-summed weight and contour "
                                                                     "(default: mid-gap)"),
        kpath: Optional[str] = typer.Option(None, "--kpath", help="surface k-path nodes, reduced: '-0.5;0.5' (2D) or "
                                                                 "'0.5,0;0,0;0.5,0.5' (3D); use --kpath=... for a leading -"),
        eta: float = typer.Option(0.01, "--eta", help="broadening (eV)"),
        layers: Optional[int] = typer.Option(None, "--layers", help="cells per principal (surface) layer"),
        nk: Optional[int] = typer.Option(None, "--nk", help="surface-BZ grid for the k sum (default 512 in 2D, 64 in 3D)"),
        ne: int = typer.Option(200, "--ne", help="energies of the ARPES-like plot"),
        emin: Optional[float] = typer.Option(None, "--emin", help="plot window bottom (eV)"),
        emax: Optional[float] = typer.Option(None, "--emax", help="plot window top (eV)"),
        num: int = typer.Option(200, "--num", help="k-points along the path"),
        filling: Optional[int] = typer.Option(None, "--filling", help="occupied bands (for the default energy)"),
        param: Optional[list[str]] = typer.Option(None, "--param", help="built-in model parameter KEY=VALUE (repeatable)"),
        out: Optional[Path] = typer.Option(None, "--out", help="PNG: ARPES-like surface spectral function along --kpath"),
        contour: Optional[Path] = typer.Option(None, "--contour", help="PNG: constant-energy contour at --energy "
                                                                      "(3D; window = the k-path's extent)"),
        as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
    ) -> None:
        """Surface-layer spectral weight at an energy (k-summed), ARPES-like map and Fermi-arc contour."""
        import numpy as np

        from topodiff.physics.io import load_model
        from topodiff.physics.surface import path_points, surface_grid, surface_spectrum

        check_finite("--eta", eta, lo=0.0, lo_open=True)
        check_int_range("--ne", ne, 1, 5000)
        check_int_range("--num", num, 2, 5000)
        if layers is not None:
            check_int_range("--layers", layers, 1, 64)
        m = load_model(model, filling=filling, params=parse_params(param))
        if m.dim not in (2, 3):
            raise TopodiffInputError(f"surface needs a 2D or 3D model, got {m.dim}D")
        if nk is not None:
            check_nk(nk, m.dim - 1)
        nodes = parse_kpath(kpath, m.dim)
        e0, lo, hi = _window(m, energy, emin, emax)
        grid = surface_grid(m.dim, nk or (512 if m.dim == 2 else 64))
        sp = surface_spectrum(m, edge, grid, [e0], eta=eta, layers=layers)
        result: dict = {"model": m.name, "edge": edge, "energy": e0, "eta": eta,
                        "spectral_weight": float(sp.surface.mean()),
                        "spectral_weight_opposite": float(sp.opposite.mean()),
                        "bulk_weight": float(sp.bulk.mean()), "unit": "states/eV per surface cell (BZ average)",
                        "surface_basis": sp.basis.tolist(), "principal_layer_cells": sp.layers,
                        "k_points": len(grid), "iterations": sp.iterations}
        if out is not None:
            from topodiff.physics.observable_plots import plot_surface_bands

            k, x = path_points(nodes, num)
            arp = surface_spectrum(m, edge, k, np.linspace(lo, hi, ne), eta=eta, layers=layers)
            plot_surface_bands(x, arp.energies, arp.surface, out, title=f"{m.name}: surface {edge}, η = {eta:g} eV")
            record_plot(result, "plot", out)
        if contour is not None:
            from topodiff.physics.observable_plots import plot_contour

            if m.dim != 3:
                raise TopodiffInputError("--contour is for 3D models (a 2D model's edge has a 1D k-space)")
            w = float(np.abs(nodes).max()) or 0.5
            n2 = 101
            cgrid = surface_grid(3, n2, w) + w / n2
            cec = surface_spectrum(m, edge, cgrid, [e0], eta=eta, layers=layers)
            ax = cgrid[::n2, 0]
            plot_contour(ax, ax, cec.surface[0].reshape(n2, n2), contour,
                         title=f"{m.name}: surface {edge} at E = {e0:.3g} eV")
            record_plot(result, "contour_plot", contour)
        emit(result, as_json, f"{m.name} {edge}: surface spectral weight {result['spectral_weight']:.6g} states/eV "
                              f"at E = {e0:.6g} eV (bulk {result['bulk_weight']:.6g})")

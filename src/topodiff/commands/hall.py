"""``topodiff hall``: anomalous Hall conductivity from the Kubo / Berry-curvature integral."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from topodiff.commands._common import check_finite, check_int_range, check_nk, emit, parse_params, record_plot
from topodiff.errors import TopodiffInputError


def register(app: typer.Typer) -> None:
    @app.command("hall")
    def hall_cmd(
        model: str = typer.Argument(..., help="topodiff-tb/1 JSON file, Wannier90 _hr.dat, or built-in model name"),
        fermi: Optional[float] = typer.Option(None, "--fermi", help="Fermi level (eV; default: mid-gap at the filling)"),
        temperature: float = typer.Option(0.0, "--temperature", help="temperature (K) of the Fermi-Dirac occupation"),
        nk: Optional[int] = typer.Option(None, "--nk", help="base k-grid per direction (default 128 in 2D, 24 in 3D)"),
        filling: Optional[int] = typer.Option(None, "--filling", help="occupied bands for the default Fermi level"),
        param: Optional[list[str]] = typer.Option(None, "--param", help="built-in model parameter KEY=VALUE (repeatable)"),
        scan: Optional[tuple[float, float, int]] = typer.Option(None, "--scan", help="EMIN EMAX N: σ_xy over N Fermi levels"),
        out: Optional[Path] = typer.Option(None, "--out", help="with --scan: write the σ_xy(E_F) plot (PNG) here"),
        as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
    ) -> None:
        """σ_xy (e²/h; 3D: the tensor in S/cm and σ_xy per layer) = the Chern number in a gap (same sign)."""
        from topodiff.physics.bands import band_gaps
        from topodiff.physics.hall import hall_conductivity, hall_scan
        from topodiff.physics.io import load_model

        check_finite("--temperature", temperature, lo=0.0)
        if fermi is not None:
            check_finite("--fermi", fermi)
        if scan is not None:
            emin = check_finite("--scan EMIN", scan[0])
            emax = check_finite("--scan EMAX", scan[1], lo=emin)
            num = check_int_range("--scan N", scan[2], 1, 2000)
        m = load_model(model, filling=filling, params=parse_params(param))
        if m.dim not in (2, 3):
            raise TopodiffInputError(f"hall needs a 2D or 3D model, got {m.dim}D")
        if nk is not None:
            check_nk(nk, m.dim)
        gaps = band_gaps(m)
        ef = fermi if fermi is not None else 0.5 * (gaps.vbm + gaps.cbm)
        res = hall_conductivity(m, ef, temperature=temperature, nk=nk)
        sxy, sxy_coarse = res.sigma_xy(), res.sigma_xy(coarse=True)
        result: dict = {"model": m.name, "dim": m.dim, "fermi": ef, "temperature": temperature,
                        "sigma_xy": None if math.isnan(sxy[0]) else float(sxy[0]), "unit": "e^2/h",
                        "in_gap": bool(gaps.indirect > 1e-6 and gaps.vbm < ef < gaps.cbm),
                        "vbm": gaps.vbm, "cbm": gaps.cbm, "nk": res.nk, "k_points": res.points,
                        "refinement_levels": res.levels,
                        "sigma_xy_unrefined": None if math.isnan(sxy_coarse[0]) else float(sxy_coarse[0])}
        if not res.resolved:
            result["warning"] = (f"a band crossing near the Fermi level is not resolved on the {res.nk}-point grid "
                                 "(semimetal or tiny gap): sigma_xy converges slowly there; raise --nk")
        if m.dim == 3:
            result["sigma"] = res.tensor_s_per_cm()[0].tolist()
            result["sigma_unit"] = "S/cm"
            result["layer_thickness"] = res.layer
            result["unit"] = "e^2/h per layer"
            if res.layer is None:
                result["sigma_xy_note"] = "no layer thickness: a3 is not the only lattice vector out of the xy plane"
        if scan is not None:
            sc = hall_scan(m, emin, emax, num, temperature=temperature, nk=nk, levels=1)
            scan_xy = sc.sigma_xy()
            result["scan"] = {"fermi": sc.fermi.tolist(), "sigma_xy": scan_xy.tolist()}
            if out is not None:
                from topodiff.physics.observable_plots import plot_hall_scan

                plot_hall_scan(sc.fermi, scan_xy, out, title=f"{m.name}: anomalous Hall conductivity",
                               gap=(gaps.vbm, gaps.cbm), unit="e²/h" if m.dim == 2 else "e²/h per layer")
                record_plot(result, "plot", out)
        elif out is not None:
            raise TopodiffInputError("--out draws σ_xy(E_F): give --scan EMIN EMAX N")
        emit(result, as_json, f"{m.name}: sigma_xy = {result['sigma_xy']} {result['unit']} at E_F = {ef:.6g} eV, "
                              f"T = {temperature:g} K")

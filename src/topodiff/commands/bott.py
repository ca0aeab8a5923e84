"""``topodiff bott``: Bott index and local Chern marker of (disordered) supercells."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from topodiff.commands._common import check_finite, check_int_range, check_seed, emit, parse_params, record_plot


def register(app: typer.Typer) -> None:
    @app.command("bott")
    def bott_cmd(
        model: str = typer.Argument(..., help="2D model: topodiff-tb/1 JSON file, Wannier90 _hr.dat, or built-in name"),
        size: int = typer.Option(..., "--size", help="supercell of L x L cells"),
        disorder: float = typer.Option(0.0, "--disorder", help="Anderson disorder W (eV): onsite uniform in [-W/2, W/2]"),
        seed: int = typer.Option(0, "--seed", help="disorder realisation"),
        filling: Optional[int] = typer.Option(None, "--filling", help="occupied bands per cell (default: half filling)"),
        param: Optional[list[str]] = typer.Option(None, "--param", help="built-in model parameter KEY=VALUE (repeatable)"),
        sweep: Optional[tuple[float, int]] = typer.Option(None, "--sweep", help="WMAX N: Bott index for N disorder "
                                                                             "strengths 0..WMAX"),
        seeds: int = typer.Option(8, "--seeds", help="with --sweep: realisations per disorder strength"),
        out: Optional[Path] = typer.Option(None, "--out", help="PNG: the marker map (or, with --sweep, Bott vs W)"),
        as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
    ) -> None:
        """Bott index (= Chern number, same sign) and bulk local Chern marker of an L x L supercell."""
        from topodiff.physics.bott import disorder_sweep, real_space_invariants
        from topodiff.physics.io import load_model

        check_int_range("--size", size, 2, why="a supercell needs at least 2 x 2 cells")
        check_finite("--disorder", disorder, lo=0.0)
        check_seed(seed)
        if sweep is not None:
            check_finite("--sweep WMAX", sweep[0], lo=0.0)
            check_int_range("--sweep N", sweep[1], 1, 200)
            check_int_range("--seeds", seeds, 1, 1000)
        m = load_model(model, filling=filling, params=parse_params(param))
        res = real_space_invariants(m, size, disorder, seed)
        result: dict = {"model": m.name, "size": size, "disorder": disorder, "seed": seed,
                        "bott": int(res.bott[0]), "bott_raw": float(res.bott_raw[0]),
                        "local_chern_marker_bulk": float(res.marker_bulk[0]), "gap": float(res.gap[0])}
        if abs(res.bott_raw[0] - res.bott[0]) > 1e-3:
            result["warning"] = f"raw Bott index {res.bott_raw[0]:.4f} is not an integer"
        if sweep is not None:
            sw = disorder_sweep(m, size, sweep[0], sweep[1], seeds)
            result["sweep"] = {"W": sw["W"].tolist(), "bott_mean": sw["bott_mean"].tolist(),
                               "bott_std": sw["bott_std"].tolist(), "seeds": seeds}
        if out is not None:
            from topodiff.physics.observable_plots import plot_bott_sweep, plot_marker_map

            if sweep is not None:
                plot_bott_sweep(sw["W"], sw["bott_mean"], sw["bott_std"], out,
                                title=f"{m.name}: Bott index vs disorder ({size}x{size}, {seeds} seeds)")
            else:
                plot_marker_map(res.marker[0], out, title=f"{m.name}: local Chern marker, {size}x{size}, W = {disorder:g} eV")
            record_plot(result, "plot", out)
        emit(result, as_json, f"{m.name}: Bott index {result['bott']} (raw {result['bott_raw']:.6f}), "
                              f"bulk Chern marker {result['local_chern_marker_bulk']:.4f}")

"""``topodiff hofstadter``: gaps of the square-lattice Hofstadter model and their Chern numbers."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from topodiff.commands._common import check_finite, check_int_range, check_nk, emit, parse_params, record_plot
from topodiff.errors import TopodiffInputError


def register(app: typer.Typer) -> None:
    @app.command("hofstadter")
    def hofstadter_cmd(
        p: int = typer.Option(..., "--p", help="flux numerator: φ = p/q flux quanta per plaquette"),
        q: int = typer.Option(..., "--q", help="flux denominator (q >= 1, gcd(p, q) = 1)"),
        t: float = typer.Option(1.0, "--t", help="nearest-neighbour hopping (eV) of the square lattice"),
        model: Optional[str] = typer.Option(None, "--model", help="any 2D model (file or built-in name) instead of "
                                                                  "the square lattice: Peierls phases, φ per unit cell"),
        param: Optional[list[str]] = typer.Option(None, "--param", help="built-in model parameter KEY=VALUE"),
        nk: Optional[int] = typer.Option(None, "--nk", help="magnetic-BZ grid per direction (default max(12, 2q))"),
        butterfly: bool = typer.Option(False, "--butterfly", help="also draw the butterfly (needs --out)"),
        qmax: int = typer.Option(16, "--qmax", help="with --butterfly: all fluxes p/q with q <= QMAX"),
        out: Optional[Path] = typer.Option(None, "--out", help="PNG of the butterfly"),
        as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
    ) -> None:
        """Open gaps at flux p/q: filling fraction r/q, Chern number (FHS on the magnetic bands), width."""
        from topodiff.physics.hofstadter import butterfly as butterfly_data
        from topodiff.physics.hofstadter import MAX_Q, check_flux, hofstadter_gaps

        check_int_range("--q", q, 1, MAX_Q)
        check_flux(p, q)
        if check_finite("--t", t) == 0:
            raise TopodiffInputError("--t must be non-zero")
        if nk is not None:
            check_nk(nk, 2)
        check_int_range("--qmax", qmax, 1, 64)
        if butterfly != (out is not None):
            raise TopodiffInputError("--butterfly and --out go together (the butterfly is drawn to --out)")
        base = None
        if model is not None:
            from topodiff.physics.io import load_model

            base = load_model(model, params=parse_params(param))
        elif param:
            raise TopodiffInputError("--param needs --model")
        gaps = hofstadter_gaps(p, q, t, model=base, nk=nk)
        result: dict = {"p": p, "q": q, "flux": p / q, "t": t, "model": base.name if base else "square",
                        "gaps": [g.to_dict() for g in gaps]}
        if butterfly:
            from topodiff.physics.observable_plots import plot_butterfly

            data = butterfly_data(qmax, t)
            plot_butterfly(data, out, title=f"Hofstadter butterfly (q ≤ {qmax}), gaps coloured by Chern number")
            result["butterfly"] = {"qmax": qmax, "fluxes": len(data["flux"])}
            record_plot(result, "plot", out)
        emit(result, as_json, "\n".join(f"gap {g['filling']}: Chern {g['chern']:+d}, width {g['gap']:.6g} eV"
                                         for g in result["gaps"]) or f"no open gap at flux {p}/{q}")

"""``topodiff phase-diagram``: Chern-number phase diagram of a built-in model over two parameters."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from topodiff.commands._common import check_int_range, check_nk, parse_params, print_json

MAX_AXIS_POINTS = 1001  # parameter values per axis


def register(app: typer.Typer) -> None:
    @app.command("phase-diagram")
    def phase_diagram_cmd(
        model: str = typer.Argument(..., help="built-in 2D model name (topodiff models list)"),
        x: tuple[str, float, float, int] = typer.Option(..., "--x", help="NAME A B N: x parameter and its range"),
        y: tuple[str, float, float, int] = typer.Option(..., "--y", help="NAME A B N: y parameter and its range"),
        nk: int = typer.Option(24, "--nk", help="k-grid nk x nk per parameter point"),
        param: Optional[list[str]] = typer.Option(None, "--param", help="fixed model parameter KEY=VALUE"),
        filling: Optional[int] = typer.Option(None, "--filling", help="occupied bands (default: half)"),
        out: Optional[Path] = typer.Option(None, "--out", help="write a PNG plot here"),
        as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
    ) -> None:
        """Chern number on an N x N parameter grid, vectorised (undetermined points: gap closes on the grid)."""
        from topodiff.physics.phase_diagram import Axis, chern_phase_diagram, haldane_boundary

        fixed = parse_params(param)
        nk = check_nk(nk, 2)
        for flag, axis in (("--x", x), ("--y", y)):
            check_int_range(f"{flag} N", axis[3], 2, MAX_AXIS_POINTS)
        pd = chern_phase_diagram(model, Axis(*x), Axis(*y), nk=nk, params=fixed, filling=filling)
        doc = pd.to_dict()
        if out is not None:
            from topodiff.physics.plots import plot_phase_diagram

            boundary = None
            if pd.model == "haldane" and (pd.x.name, pd.y.name) == ("phi", "M"):
                t2 = pd.params.get("t2", 0.15)
                boundary = lambda phi: haldane_boundary(phi, t2)  # noqa: E731
            plot_phase_diagram(pd, out, boundary=boundary, boundary_label="M = ±3√3 t2 sin φ")
            doc["plot"] = str(out)
            print(f"wrote {out}", file=sys.stderr)
        if as_json:
            print_json(doc)
            return
        print(f"{pd.model}: {pd.x.num} x {pd.y.num} grid of ({pd.x.name}, {pd.y.name}), nk = {pd.nk}, "
              f"{pd.seconds:.2f} s")
        for key, count in sorted(pd.counts().items()):
            print(f"  Chern {key:>12}: {count} points")

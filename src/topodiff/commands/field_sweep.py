"""``topodiff field-sweep``: scan a field, locate the critical field of a topological transition."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from topodiff.commands._common import check_finite, check_int_range, check_nk, parse_params, print_json
from topodiff.errors import TopodiffInputError

MAX_SCAN_POINTS = 1001  # scan points before bisection (bisection then reaches a relative resolution of 1e-6)


def register(app: typer.Typer) -> None:
    @app.command("field-sweep")
    def field_sweep_cmd(
        model: str = typer.Argument(..., help="built-in model name, topodiff-tb/1 JSON file or Wannier90 _hr.dat"),
        field: str = typer.Option(..., "--field", help="staggered | zeeman_x | zeeman_y | zeeman_z (eV), "
                                                       "or a parameter of a built-in model (e.g. lambda_v)"),
        field_range: tuple[float, float] = typer.Option(..., "--range", help="field range A B (A < B)"),
        num: int = typer.Option(13, "--num", help="scan points before bisection"),
        invariant: Optional[str] = typer.Option(None, "--invariant", help="z2 or chern (default: z2 for spinful "
                                                                          "models, chern otherwise)"),
        param: Optional[list[str]] = typer.Option(None, "--param", help="built-in model parameter KEY=VALUE"),
        nk: int = typer.Option(48, "--nk", help="k-grid for Chern numbers"),
        out: Optional[Path] = typer.Option(None, "--out", help="write a PNG plot (gap and invariant vs field)"),
        as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
    ) -> None:
        """Find where the invariant changes as a field grows (scan, then bisection / gap minimum).

        Example: Kane-Mele's critical staggered potential 3√3 λ_SO, with Rashba off (default λ_R = 0.05):

        topodiff field-sweep kane_mele --field staggered --range 0 0.6 --param lambda_r=0 --param lambda_v=0
        """
        import numpy as np

        from topodiff.physics.fields import field_sweep, model_builder
        from topodiff.physics.io import load_model
        from topodiff.physics.library import list_models

        a, b = (check_finite("--range", v) for v in field_range)
        if not a < b:
            raise TopodiffInputError(f"--range A B needs A < B, got {a:g} {b:g}")
        num = check_int_range("--num", num, 2, MAX_SCAN_POINTS)
        nk = check_nk(nk, 2)
        params = parse_params(param)
        base = load_model(model, params=params)
        if base.dim != 2:
            raise TopodiffInputError(f"field sweeps need a 2D model, got {base.dim}D")
        inv = invariant or ("z2" if base.spinful else "chern")
        source = (model.lower(), params) if model.lower() in list_models() else base
        model_builder(source, field)  # rejects an unknown field before the scan starts
        print(f"sweeping {field} over [{a:g}, {b:g}] ({num} points, invariant {inv})", file=sys.stderr)
        res = field_sweep(source, field, np.linspace(a, b, num), inv, nk=nk)
        doc = {"model": base.name, **res.to_dict(),
               "critical": res.transitions[0]["critical"] if res.transitions else None}
        if out is not None:
            from topodiff.physics.plots import plot_curves

            inv_num = [np.nan if v is None else (v if not isinstance(v, tuple) else v[0]) for v in res.invariants]
            plot_curves(res.values, [res.gaps, np.asarray(inv_num, dtype=float)], ["direct gap (eV)", inv],
                        out, xlabel=field, title=f"{base.name}: {field} sweep",
                        vlines=[t["critical"] for t in res.transitions])
            doc["plot"] = str(out)
            print(f"wrote {out}", file=sys.stderr)
        if as_json:
            print_json(doc)
            return
        for v, i, g in zip(res.values, res.invariants, res.gaps):
            print(f"{field} = {v:10.5g}   {inv} = {i!s:>6}   gap = {g:.4g} eV")
        if not res.transitions:
            print("no transition in this range")
        for t in res.transitions:
            print(f"transition {t['from']} -> {t['to']} at {field} = {t['critical']:.6g} (gap there {t['gap']:.2g} eV)")

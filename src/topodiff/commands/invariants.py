"""``topodiff invariants``: topological invariants of a model (CONTRACTS §3)."""
from __future__ import annotations

import sys
from typing import Optional

import typer

from topodiff.commands._common import check_nk, parse_params, print_json


def register(app: typer.Typer) -> None:
    @app.command("invariants")
    def invariants_cmd(
        model: str = typer.Argument(..., help="topodiff-tb/1 JSON file, Wannier90 _hr.dat, built-in model name, "
                               "or crystal file (CIF/POSCAR: the Slater-Koster model `screen` builds)"),
        filling: Optional[int] = typer.Option(None, "--filling", help="occupied bands (needed for Wannier90 files; default for others: half filling)"),
        nk: Optional[int] = typer.Option(None, "--nk", help="k-points per direction (default 200/64/24 in 1D/2D/3D)"),
        param: Optional[list[str]] = typer.Option(None, "--param", help="built-in model parameter KEY=VALUE (repeatable)"),
        basis: Optional[str] = typer.Option(None, "--basis", help="crystal files: orbital basis sp3 or sp3s* (as `screen`)"),
        no_soc: bool = typer.Option(False, "--no-soc", help="crystal files: no on-site spin-orbit coupling (as `screen`)"),
        lattice: Optional[str] = typer.Option(None, "--lattice", help="Wannier90 files without a cell: a .win, wt.in "
                                                "or POSCAR holding it, or nine numbers a1 a2 a3 (Å)"),
        as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
    ) -> None:
        """Zak phase / winding (1D), Chern and Z2 (2D), (ν0; ν1ν2ν3) and plane Chern numbers (3D)."""
        from topodiff.api import load_model  # any model source, crystals with the screen's options
        from topodiff.physics.summary import invariant_summary

        m = load_model(model, filling=filling, params=parse_params(param), basis=basis,
                       soc=False if no_soc else None)
        if lattice is not None:
            from topodiff.physics.io import with_lattice

            m = with_lattice(m, lattice)
        if nk is not None:
            nk = check_nk(nk, m.dim, num_bands=m.num_bands)
        result = invariant_summary(m, nk=nk)
        if as_json:
            print_json(result)
            return
        for key, value in result.items():
            if key == "warning":
                continue
            print(f"{key}: {value}")
        if "warning" in result:
            print(f"warning: {result['warning']}", file=sys.stderr)

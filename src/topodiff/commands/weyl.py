"""``topodiff weyl``: Weyl nodes of a 3D model and their chiralities (CONTRACTS §3)."""
from __future__ import annotations

import sys
from typing import Optional

import typer

from topodiff.commands._common import parse_params, print_json
from topodiff.errors import TopodiffInputError


def register(app: typer.Typer) -> None:
    @app.command("weyl")
    def weyl_cmd(
        model: str = typer.Argument(..., help="topodiff-tb/1 JSON file, Wannier90 _hr.dat, built-in model name, "
                               "or crystal file (CIF/POSCAR: the Slater-Koster model `screen` builds)"),
        filling: Optional[int] = typer.Option(None, "--filling", help="occupied bands (needed for Wannier90 files; default for others: half filling)"),
        nk: int = typer.Option(20, "--nk", help="coarse search grid per direction"),
        param: Optional[list[str]] = typer.Option(None, "--param", help="built-in model parameter KEY=VALUE (repeatable)"),
        basis: Optional[str] = typer.Option(None, "--basis", help="crystal files: orbital basis sp3 or sp3s* (as `screen`)"),
        no_soc: bool = typer.Option(False, "--no-soc", help="crystal files: no on-site spin-orbit coupling (as `screen`)"),
        lattice: Optional[str] = typer.Option(None, "--lattice", help="Wannier90 files without a cell: a .win, wt.in "
                                                "or POSCAR holding it, or nine numbers a1 a2 a3 (Å)"),
        as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
    ) -> None:
        """Find Weyl nodes (gap minima) and their chiralities (Berry flux through a small sphere)."""
        from topodiff.api import load_model  # any model source, crystals with the screen's options
        from topodiff.physics.weyl import weyl_search

        if nk < 4:
            raise TopodiffInputError(f"--nk must be at least 4, got {nk}")
        m = load_model(model, filling=filling, params=parse_params(param), basis=basis,
                       soc=False if no_soc else None)
        if lattice is not None:
            from topodiff.physics.io import with_lattice

            m = with_lattice(m, lattice)
        res = weyl_search(m, nk=nk)
        result = {**res.to_dict(), **({"notes": list(m.notes)} if m.notes else {})}
        if as_json:
            print_json(result)
            return
        print(f"{len(res.nodes)} Weyl node(s), net chirality {res.net_chirality}")
        for n in res.nodes:
            k = ", ".join(f"{x:.6f}" for x in n.k_reduced)
            print(f"  k = ({k})  chirality {n.chirality:+d}  gap {n.gap:.2e} eV")
        for d in res.degeneracies:
            k = ", ".join(f"{x:.6f}" for x in d.k_reduced)
            print(f"  k = ({k})  {d.kind}  gap {d.gap:.2e} eV")
        for line in (*res.warnings, *m.notes):
            print(f"note: {line}", file=sys.stderr)

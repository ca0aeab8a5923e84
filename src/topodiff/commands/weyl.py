"""``topodiff weyl``: Weyl nodes of a 3D model and their chiralities (CONTRACTS §3)."""
from __future__ import annotations

import sys
from typing import Any

import typer

from topodiff.commands._common import check_nk, model_command, print_json


def register(app: typer.Typer) -> None:
    @model_command(app, "weyl")
    def weyl_cmd(
        m: Any, source: str,
        nk: int = typer.Option(20, "--nk", help="coarse search grid per direction"),
        as_json: bool = False,
    ) -> None:
        """Find Weyl nodes (gap minima) and their chiralities (Berry flux through a small sphere)."""
        from topodiff.physics.weyl import weyl_search

        nk = check_nk(nk, 3, why_lo="a coarser search grid misses nodes")  # per side; the search holds no grid of states
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

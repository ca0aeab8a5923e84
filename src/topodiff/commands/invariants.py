"""``topodiff invariants``: topological invariants of a model (CONTRACTS §3)."""
from __future__ import annotations

import sys
from typing import Any, Optional

import typer

from topodiff.commands._common import check_nk, model_command, print_json


def register(app: typer.Typer) -> None:
    @model_command(app, "invariants")
    def invariants_cmd(
        m: Any, source: str,
        nk: Optional[int] = typer.Option(None, "--nk", help="k-points per direction (default 200/64/24 in 1D/2D/3D)"),
        as_json: bool = False,
    ) -> None:
        """Zak phase / winding (1D), Chern and Z2 (2D), (ν0; ν1ν2ν3) and plane Chern numbers (3D)."""
        from topodiff.physics.summary import invariant_summary

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

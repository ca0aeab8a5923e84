"""``topodiff checkpoints``: list the generator checkpoints shipped inside the package."""
from __future__ import annotations

import typer

from topodiff.commands._common import print_json


def register(app: typer.Typer) -> None:
    @app.command("checkpoints")
    def checkpoints(json_out: bool = typer.Option(False, "--json", help="print one JSON object")) -> None:
        """List shipped generator checkpoints (usable as --checkpoint NAME)."""
        from topodiff.generative.checkpoint import list_checkpoints

        rows = list_checkpoints()
        if json_out:
            print_json({"checkpoints": [{"name": r["name"], "path": r["path"], "size_bytes": r["size_bytes"],
                                         "recipe": r["recipe"], "formula_model": r["formula_model"]} for r in rows]})
            return
        if not rows:
            typer.echo("no shipped checkpoints")
        for r in rows:
            desc = r["recipe"].get("description", "")
            formulas = " (+ formula model)" if r["formula_model"] else ""
            typer.echo(f"{r['name']:<16} {r['size_bytes'] / 1e6:6.2f} MB  {desc}{formulas}")

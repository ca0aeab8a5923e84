"""``topodiff validate-known``: expected vs computed topology of known materials."""
from __future__ import annotations

import sys

import typer

from topodiff.commands._common import print_json


def _fmt(v: object) -> str:
    if isinstance(v, (tuple, list)) and len(v) == 4 and all(isinstance(x, int) for x in v):
        return f"({v[0]};{v[1]}{v[2]}{v[3]})"
    return "-" if v is None else str(v)


def register(app: typer.Typer) -> None:
    @app.command("validate-known")
    def validate_known_cmd(
        as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout (table on stderr)"),
    ) -> None:
        """Graphene, Bi2Se3, HgTe quantum well, Weyl semimetal: expected vs computed (exit 0 only if all match)."""
        from rich.console import Console
        from rich.table import Table

        from topodiff.physics.known import run_checks

        results = run_checks()
        table = Table(title="topodiff validate-known")
        for col in ("material", "model", "quantity", "expected", "computed", "match", "s"):
            table.add_column(col)
        for r in results:
            mark = "[green]yes[/green]" if r.match else "[red]NO[/red]"
            table.add_row(r.material, r.model, r.quantity, _fmt(r.expected),
                          _fmt(r.computed) if r.error is None else f"error: {r.error}", mark, f"{r.seconds:.2f}")
        Console(file=sys.stderr if as_json else sys.stdout, width=140).print(table)
        ok = all(r.match for r in results)
        if as_json:
            print_json({"all_match": ok, "num_checks": len(results),
                        "num_failed": sum(not r.match for r in results),
                        "checks": [r.to_dict() for r in results]})
        if not ok:
            failed = [f"{r.material} {r.quantity}" for r in results if not r.match]
            from topodiff.cli import fail

            raise fail(f"{len(failed)} of {len(results)} checks failed: {', '.join(failed)}", code=1)

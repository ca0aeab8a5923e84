"""``topodiff report DIR``: write DIR/report.html (self-contained) and print a compact summary."""
from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        directory: Path = typer.Argument(..., help="Directory written by `evaluate`/`pipeline` (or holding structures: it is evaluated first)."),
        top: int = typer.Option(5, "--top", min=0, help="Number of top candidates with band structures."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    ) -> None:
        """Build the HTML discovery report (figures embedded; opens offline)."""
        import sys

        from topodiff.commands._common import print_json
        from topodiff.evaluation.report import build_report, summary_lines

        path, summary = build_report(directory, top_k=top)
        for m in summary.get("messages", [])[:20]:
            print(f"warning: {m}", file=sys.stderr)
        if json_out:
            print_json({"report": str(path), "summary": {k: v for k, v in summary.items()
                                                         if k not in ("reference_distributions", "messages")},
                        "messages": summary.get("messages", [])})
            return
        for line in summary_lines(summary):
            print(line)
        print(f"report: {path}")

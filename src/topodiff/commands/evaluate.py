"""``topodiff evaluate PATH``: validity, uniqueness, novelty, coverage, DFT hull, topology verdicts."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate(
        path: Path = typer.Argument(..., help="Directory written by `generate`, an extxyz file, or a directory of CIFs."),
        reference: Optional[List[Path]] = typer.Option(None, "--reference", help="Extra reference set (CDVAE CSV / extxyz / CIF dir): novelty beyond the shipped index of known crystals, coverage, Wasserstein distances; repeatable."),
        relax: bool = typer.Option(False, "--relax", help="Relax with CHGNet before the energy above the DFT hull (else: single points of the input)."),
        out: Optional[Path] = typer.Option(None, "--out", help="Output directory for metrics.json / structures.csv / relaxed.extxyz (default: PATH_eval beside the input)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Clear a non-empty --out that holds another run."),
        dataset: Optional[str] = typer.Option(None, "--dataset", help="COV cutoffs: mp20, carbon or perovskite (default: guessed from the reference name)."),
        no_screen: bool = typer.Option(False, "--no-screen", help="Skip the tight-binding topology screen."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout (with a \"structures\" row per crystal)."),
    ) -> None:
        """Evaluate crystals: CDVAE/MatterGen metrics, novelty vs known crystals, DFT hull, S.U.N., topology."""
        from topodiff.commands._common import claim_run_output, print_json
        from topodiff.errors import TopodiffInputError
        from topodiff.evaluation.evaluate import default_out_dir, evaluate_path
        from topodiff.evaluation.outputs import json_rows

        if not path.exists():
            raise TopodiffInputError(f"no such file or directory: {path}")
        od = out or default_out_dir(path)
        claim_run_output(od, "evaluate", sources=[path, *(reference or [])], overwrite=overwrite, resume=True,
                         options={"relax": relax, "dataset": dataset, "screen": not no_screen})
        summary, rows = evaluate_path(path, reference=reference or None, relax=relax, out_dir=od,
                                      screen=not no_screen, dataset=dataset, progress=True)
        if json_out:
            print_json({**{k: v for k, v in summary.items() if k != "reference_distributions"},
                        "structures": json_rows(rows)})
        else:
            from topodiff.evaluation.report import summary_lines

            for line in summary_lines(summary):
                print(line)
            print(f"per-structure table: {summary['outputs']['structures_csv']}", file=sys.stderr)

"""``topodiff evaluate PATH``: validity, uniqueness, novelty, coverage, relaxation, topology."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate(
        path: Path = typer.Argument(..., help="Directory written by `generate`, an extxyz file, or a directory of CIFs."),
        reference: Optional[List[Path]] = typer.Option(None, "--reference", help="Reference set (CDVAE CSV / extxyz / CIF dir) for novelty, coverage, Wasserstein distances; repeatable."),
        relax: bool = typer.Option(False, "--relax", help="Relax with CHGNet: energies, RMSD to relaxed, energy above hull, S.U.N."),
        out: Optional[Path] = typer.Option(None, "--out", help="Output directory for metrics.json / structures.csv / relaxed.extxyz (default: PATH if a directory, else PATH_eval)."),
        dataset: Optional[str] = typer.Option(None, "--dataset", help="COV cutoffs: mp20, carbon or perovskite (default: guessed from the reference name)."),
        no_screen: bool = typer.Option(False, "--no-screen", help="Skip the tight-binding topology screen."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    ) -> None:
        """Evaluate crystals with the CDVAE/MatterGen metrics, optional CHGNet relaxation and topology screen."""
        from topodiff.commands._common import print_json
        from topodiff.evaluation.evaluate import evaluate_path

        summary, _ = evaluate_path(path, reference=reference or None, relax=relax, out_dir=out,
                                   screen=not no_screen, dataset=dataset, progress=True)
        if json_out:
            print_json({k: v for k, v in summary.items() if k != "reference_distributions"})
        else:
            from topodiff.evaluation.report import summary_lines

            for line in summary_lines(summary):
                print(line)
            print(f"per-structure table: {summary['outputs']['structures_csv']}", file=sys.stderr)

"""``topodiff csp``: crystal structure prediction for given compositions (thin wrapper)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from topodiff.commands._common import print_json


def register(app: typer.Typer) -> None:
    @app.command("csp")
    def csp(
        input: Path = typer.Argument(..., help="text file of formulas (one per line) or CDVAE-style CSV"),
        out: Path = typer.Option(..., "--out", help="output directory"),
        checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="checkpoint path or shipped name (default: perov5-csp)"),
        samples: int = typer.Option(1, "--samples", help="structures per composition"),
        seed: int = typer.Option(0, "--seed"),
        steps: Optional[int] = typer.Option(None, "--steps", help="sampler steps (default: the checkpoint's)"),
        json_out: bool = typer.Option(False, "--json", help="print the metadata as one JSON object"),
    ) -> None:
        """Predict structures with exactly the given compositions: DIR/structures.extxyz + DIR/metadata.json."""
        from topodiff.generative.generate import csp_to_dir

        meta = csp_to_dir(input, out, checkpoint=checkpoint or "perov5-csp", samples=samples, seed=seed, steps=steps)
        if json_out:
            print_json(meta)
        else:
            typer.echo(f"wrote {meta['num_structures']} structures for {meta['num_compositions']} compositions to {out}")

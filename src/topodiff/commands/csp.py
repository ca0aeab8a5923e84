"""``topodiff csp``: crystal structure prediction for given compositions (thin wrapper)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from topodiff.commands._common import check_count, check_int_range, check_seed, claim_run_output, print_json


def register(app: typer.Typer) -> None:
    @app.command("csp")
    def csp(
        input: Path = typer.Argument(..., help="text file of formulas (one per line) or CDVAE-style CSV"),
        out: Path = typer.Option(..., "--out", help="output directory"),
        checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="checkpoint path or shipped name (default: perov5-csp)"),
        samples: int = typer.Option(1, "--samples", help="structures per composition"),
        seed: int = typer.Option(0, "--seed"),
        prescreen: int = typer.Option(1, "--prescreen", help="draw K× --samples structures per composition and keep "
                                      "the --samples of lowest CHGNet energy per atom, lowest first (1 = off)"),
        steps: Optional[int] = typer.Option(None, "--steps", help="sampler steps (default: the checkpoint's)"),
        overwrite: bool = typer.Option(False, "--overwrite", help="clear a non-empty --out that holds another run"),
        json_out: bool = typer.Option(False, "--json", help="print the metadata as one JSON object"),
    ) -> None:
        """Predict structures with exactly the given compositions: DIR/structures.extxyz + DIR/metadata.json."""
        from topodiff.commands.generate import MAX_PRESCREEN, MAX_STEPS
        from topodiff.generative.checkpoint import resolve_checkpoint
        from topodiff.generative.generate import csp_to_dir, read_compositions

        samples = check_count("--samples", samples)
        seed = check_seed(seed)
        if steps is not None:
            steps = check_int_range("--steps", steps, 1, MAX_STEPS)
        comps = read_compositions(input)  # bad input (unreadable rows, too many atoms) fails before any output
        prescreen = check_int_range("--prescreen", prescreen, 1, MAX_PRESCREEN)
        check_count("compositions × --samples × --prescreen", len(comps) * samples * prescreen)
        ckpt = resolve_checkpoint(checkpoint or "perov5-csp")
        claim_run_output(out, "csp", sources=[input, ckpt], overwrite=overwrite,
                         options=dict(samples=samples, seed=seed, steps=steps,
                                      **({"prescreen": prescreen} if prescreen > 1 else {})))
        meta = csp_to_dir(input, out, checkpoint=str(ckpt), samples=samples, seed=seed, steps=steps,
                          prescreen=prescreen)
        if json_out:
            print_json(meta)
        else:
            typer.echo(f"wrote {meta['num_structures']} structures for {meta['num_compositions']} compositions to {out}")

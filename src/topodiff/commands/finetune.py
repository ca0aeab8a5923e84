"""``topodiff finetune``: add property condition(s) to a trained generator (thin wrapper)."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

import typer

from topodiff.commands._common import check_finite, check_int_range, check_seed, print_json


def register(app: typer.Typer) -> None:
    @app.command("finetune")
    def finetune(
        checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="base checkpoint path or shipped name (default: the shipped default)"),
        data: Path = typer.Option(..., "--data", help="CSV of crystals (cif column) with the property column(s); NaN = unlabelled"),
        prop: list[str] = typer.Option(..., "--property", help="new condition key, e.g. band_gap (repeatable)"),
        out: Path = typer.Option(..., "--out", help="fine-tuned checkpoint to write (.ckpt)"),
        steps: int = typer.Option(500, "--steps", help="optimiser steps"),
        batch_size: int = typer.Option(64, "--batch-size", help="crystals per step"),
        lr: float = typer.Option(1e-3, "--lr", help="peak learning rate (AdamW, warm-up + cosine)"),
        seed: int = typer.Option(0, "--seed"),
        train_base: bool = typer.Option(False, "--train-base", help="also train the base weights (default: adapters only)"),
        p_uncond: float = typer.Option(0.2, "--p-uncond", help="probability of training a row unconditionally"),
        overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing --out file"),
        json_out: bool = typer.Option(False, "--json", help="print a summary as one JSON object"),
    ) -> None:
        """Fine-tune a generator with zero-init adapters so `generate --condition KEY=VALUE` accepts new keys."""
        from topodiff.commands.generate import MAX_BATCH, MAX_STEPS
        from topodiff.generative.finetune import finetune as run
        from topodiff.io_utils import check_output_file

        steps = check_int_range("--steps", steps, 1, MAX_STEPS)
        batch_size = check_int_range("--batch-size", batch_size, 1, MAX_BATCH)
        lr = check_finite("--lr", lr, lo=0.0, hi=1.0, lo_open=True)
        p_uncond = check_finite("--p-uncond", p_uncond, lo=0.0, hi=1.0, hi_open=True)
        seed = check_seed(seed)
        check_output_file(out, overwrite=overwrite)
        args = ["topodiff", "finetune", *(["--checkpoint", checkpoint] if checkpoint else []), "--data", str(data),
                *[a for p in prop for a in ("--property", p)], "--out", str(out), "--steps", str(steps),
                "--batch-size", str(batch_size), "--lr", str(lr), "--seed", str(seed), "--p-uncond", str(p_uncond),
                *(["--train-base"] if train_base else [])]
        command = " ".join(shlex.quote(a) for a in args)
        summary = run(checkpoint, data, list(prop), out, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                      train_base=train_base, p_uncond=p_uncond, command=command)
        if json_out:
            print_json(summary)
        else:
            typer.echo(f"wrote {summary['out']} ({summary['steps']} steps, "
                       f"labelled rows {summary['labelled_rows']} of {summary['num_rows']})")

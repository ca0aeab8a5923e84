"""``topodiff generate``: sample crystals from a generator checkpoint (thin wrapper)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from topodiff.commands._common import print_json
from topodiff.errors import TopodiffInputError


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate(
        out: Path = typer.Option(..., "--out", help="output directory"),
        num: int = typer.Option(100, "--num", help="number of structures"),
        checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="checkpoint path or shipped name (default: perov5)"),
        condition: Optional[list[str]] = typer.Option(None, "--condition", help="KEY=VALUE (repeatable)"),
        guidance: Optional[float] = typer.Option(None, "--guidance", help="classifier-free guidance strength "
                                                 "(default: the checkpoint's default when conditions are given, else 0)"),
        steps: Optional[int] = typer.Option(None, "--steps", help="sampler steps (default: the checkpoint's)"),
        seed: int = typer.Option(0, "--seed"),
        batch_size: int = typer.Option(500, "--batch-size", help="crystals sampled together"),
        json_out: bool = typer.Option(False, "--json", help="print the metadata as one JSON object"),
    ) -> None:
        """Generate crystals: DIR/structures.extxyz, DIR/cif/NNNN.cif, DIR/metadata.json."""
        from topodiff.generative.generate import generate_to_dir

        conds = {}
        for item in condition or []:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise TopodiffInputError(f"--condition expects KEY=VALUE, got {item!r}")
            conds[key.strip()] = value.strip()
        if batch_size <= 0:
            raise TopodiffInputError(f"--batch-size must be positive, got {batch_size}")
        meta = generate_to_dir(out, num=num, checkpoint=checkpoint, conditions=conds, guidance=guidance,
                               steps=steps, seed=seed, batch_size=batch_size)
        if json_out:
            print_json(meta)
        else:
            typer.echo(f"wrote {meta['num_structures']} structures to {out} "
                       f"({meta['structures_per_s']:.1f} structures/s)")

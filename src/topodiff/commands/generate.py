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
        checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="checkpoint path or shipped name (default: the shipped default)"),
        condition: Optional[list[str]] = typer.Option(None, "--condition", help="KEY=VALUE (repeatable)"),
        guidance: Optional[float] = typer.Option(None, "--guidance", help="classifier-free guidance strength "
                                                 "(default: the checkpoint's default when conditions are given, else 0)"),
        steps: Optional[int] = typer.Option(None, "--steps", help="sampler steps (default: the checkpoint's)"),
        seed: int = typer.Option(0, "--seed"),
        batch_size: int = typer.Option(500, "--batch-size", help="crystals sampled together"),
        repulsion: float = typer.Option(0.0, "--repulsion", help="strength of the distance-floor guidance "
                                        "(pushes atoms closer than max(1 Å, the checkpoint's floor) apart; 0 = off)"),
        predictor_guidance: float = typer.Option(0.0, "--predictor-guidance", help="classifier guidance by the "
                                                 "property predictor toward the topo_class/band_gap conditions (0 = off)"),
        predictor: str = typer.Option("default", "--predictor", help="property predictor file or shipped name"),
        prescreen: int = typer.Option(1, "--prescreen", help="sample K× --num crystals and keep the --num that the "
                                      "property predictor puts closest to the topo_class/band_gap targets (1 = off)"),
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
        guide = {}
        if repulsion:
            guide["repulsion"] = repulsion
        if predictor_guidance:
            guide.update(predictor=predictor, predictor_scale=predictor_guidance)
        meta = generate_to_dir(out, num=num, checkpoint=checkpoint, conditions=conds, guidance=guidance,
                               steps=steps, seed=seed, batch_size=batch_size, guide_options=guide or None,
                               prescreen=prescreen, predictor=predictor)
        if json_out:
            print_json(meta)
        else:
            typer.echo(f"wrote {meta['num_structures']} structures to {out} "
                       f"({meta['structures_per_s']:.1f} structures/s)")

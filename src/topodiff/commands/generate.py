"""``topodiff generate``: sample crystals from a generator checkpoint (thin wrapper)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from topodiff.commands._common import (MAX_STRUCTURES, check_count, check_finite, check_int_range,
                                      check_numeric_values, check_seed, claim_run_output, parse_key_values, print_json)

MAX_GUIDANCE = 100.0    # classifier-free / classifier guidance strengths
MAX_STEPS = 100_000     # sampler steps
MAX_BATCH = 10_000      # crystals sampled together
MAX_PRESCREEN = 100     # --prescreen multiplier


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate(
        out: Path = typer.Option(..., "--out", help="output directory"),
        num: int = typer.Option(100, "--num", help=f"number of structures (1-{MAX_STRUCTURES:,})"),
        checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="checkpoint path or shipped name (default: the shipped default)"),
        condition: Optional[list[str]] = typer.Option(None, "--condition", help="KEY=VALUE (repeatable)"),
        guidance: Optional[float] = typer.Option(None, "--guidance", help="classifier-free guidance strength "
                                                 "(default: the checkpoint's default when conditions are given, else 0)"),
        steps: Optional[int] = typer.Option(None, "--steps", help="sampler steps (default: the checkpoint's)"),
        seed: int = typer.Option(0, "--seed"),
        batch_size: int = typer.Option(128, "--batch-size", help="crystals sampled together (similar sizes together)"),
        repulsion: float = typer.Option(0.0, "--repulsion", help="strength of the distance-floor guidance "
                                        "(pushes atoms closer than max(1 Å, the checkpoint's floor) apart; 0 = off)"),
        predictor_guidance: float = typer.Option(0.0, "--predictor-guidance", help="classifier guidance by the "
                                                 "property predictor toward the topo_class/band_gap conditions (0 = off)"),
        predictor: str = typer.Option("default", "--predictor", help="property predictor file or shipped name"),
        prescreen: int = typer.Option(1, "--prescreen", help="sample K× --num crystals and keep the --num that the "
                                      "property predictor (topo_class, band_gap) and the learned topology judge "
                                      "(catalogue_class) put closest to the conditions (1 = off)"),
        prescreen_novel: bool = typer.Option(False, "--prescreen-novel", help="with --prescreen: keep crystals whose "
                                             "formula no known crystal has first (discovery)"),
        sampler: Optional[list[str]] = typer.Option(None, "--sampler", help="KEY=VALUE sampler setting for this run "
                                                    "instead of the checkpoint's (e.g. predictor_noise_scale=0.7; repeatable)"),
        templates: Optional[str] = typer.Option(None, "--templates", help="template library (.npz path or shipped "
                                                "name: mp20): each crystal takes the space group, Wyckoff orbits and "
                                                "atom count of a library crystal drawn at random"),
        formulas: str = typer.Option("auto", "--formulas", help="what draws each cell formula before the network "
                                     "places the atoms: auto (the checkpoint's formula model where it has one and "
                                     "it can honour the run, else the network), network (the network's own species), "
                                     "or a formula-model file or shipped name (with --templates: each formula on "
                                     "the library's closest crystal of the same atom counts)"),
        overwrite: bool = typer.Option(False, "--overwrite", help="clear a non-empty --out that holds another run"),
        json_out: bool = typer.Option(False, "--json", help="print the metadata as one JSON object"),
    ) -> None:
        """Generate crystals: DIR/structures.extxyz, DIR/cif/NNNN.cif, DIR/metadata.json."""
        from topodiff.generative.checkpoint import parse_sampler_settings, resolve_checkpoint
        from topodiff.generative.generate import check_conditions, generate_to_dir
        from topodiff.generative.prescreen import check_prescreen_novel

        conds = parse_key_values(condition, "--condition")
        check_numeric_values(conds, "--condition")
        num = check_count("--num", num)
        seed = check_seed(seed)
        batch_size = check_int_range("--batch-size", batch_size, 1, MAX_BATCH)
        prescreen = check_int_range("--prescreen", prescreen, 1, MAX_PRESCREEN)
        check_count("--num × --prescreen", num * prescreen)
        check_prescreen_novel(prescreen, prescreen_novel)
        if steps is not None:
            steps = check_int_range("--steps", steps, 1, MAX_STEPS)
        if guidance is not None:
            guidance = check_finite("--guidance", guidance, lo=0.0, hi=MAX_GUIDANCE)
        repulsion = check_finite("--repulsion", repulsion, lo=0.0, hi=MAX_GUIDANCE)
        predictor_guidance = check_finite("--predictor-guidance", predictor_guidance, lo=0.0, hi=MAX_GUIDANCE)
        guide = {}
        if repulsion:
            guide["repulsion"] = repulsion
        if predictor_guidance:
            guide.update(predictor=predictor, predictor_scale=predictor_guidance)
        settings = parse_sampler_settings(sampler)
        ckpt = resolve_checkpoint(checkpoint)
        check_conditions(ckpt, conds, guide_options=guide or None, prescreen=prescreen)
        library = None
        if templates is not None:
            from topodiff.generative.templates import TemplateLibrary, resolve_templates

            library = resolve_templates(templates)
            TemplateLibrary.load(library)  # a file that is not a library fails before --out is claimed
        formulas_path = formula_file(formulas, ckpt)
        claim_run_output(out, "generate", sources=[ckpt, *([library] if library else []),
                                                   *([formulas_path] if formulas_path else [])],
                         overwrite=overwrite, options=dict(formulas=formulas,
            num=num, conditions=conds, guidance=guidance, steps=steps, seed=seed, batch_size=batch_size,
            guide=guide, prescreen=prescreen, predictor=predictor, sampler=settings,
            **({"prescreen_novel": True} if prescreen_novel else {})))
        meta = generate_to_dir(out, num=num, checkpoint=str(ckpt), conditions=conds, guidance=guidance,
                               steps=steps, seed=seed, batch_size=batch_size, guide_options=guide or None,
                               prescreen=prescreen, predictor=predictor, sampler=settings,
                               prescreen_novel=prescreen_novel, templates=library, formulas=formulas)
        if json_out:
            print_json(meta)
        else:
            typer.echo(f"wrote {meta['num_structures']} structures to {out} "
                       f"({meta['structures_per_s']:.1f} structures/s)")


def formula_file(formulas: str, checkpoint: Path) -> Path | None:
    """The formula-model file a run may read, loaded once so a bad file fails before ``--out`` is claimed."""
    from topodiff.generative.formula_model import formula_model_path, load_formula_model

    path = formula_model_path(formulas, checkpoint)
    if path is not None and formulas != "auto":
        load_formula_model(path)
    return path

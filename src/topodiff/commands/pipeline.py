"""``topodiff pipeline --out DIR``: generate → relax → screen → evaluate → report."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from topodiff.evaluation.pipeline import DEFAULT_NUM


def register(app: typer.Typer) -> None:
    @app.command("pipeline")
    def pipeline(
        out: Path = typer.Option(..., "--out", help="Output directory (generated/, metrics.json, structures.csv, report.html)."),
        num: int = typer.Option(DEFAULT_NUM, "--num", min=1, help="Number of crystals to generate."),
        checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Checkpoint path or shipped name (default: the shipped one)."),
        condition: Optional[List[str]] = typer.Option(None, "--condition", help="Condition KEY=VALUE (catalogue_class, topo_class, band_gap, chemical_system, space_group, num_atoms, num_elements); repeatable."),
        guidance: Optional[float] = typer.Option(None, "--guidance", help="Classifier-free guidance γ "
                                                 "(0 unconditional, 1 conditional; default: the checkpoint's)."),
        steps: Optional[int] = typer.Option(None, "--steps", help="Sampler steps (default: the checkpoint's)."),
        seed: int = typer.Option(0, "--seed", help="Random seed."),
        relax: bool = typer.Option(True, "--relax/--no-relax", help="Relax with CHGNet (energies, RMSD, hull, S.U.N.)."),
        reference: Optional[List[Path]] = typer.Option(None, "--reference", help="Reference set for novelty/coverage (CDVAE CSV, extxyz, CIF dir); repeatable."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Clear a non-empty --out that holds another run."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
        sampler: Optional[List[str]] = typer.Option(None, "--sampler", help="KEY=VALUE sampler setting instead of "
                                                    "the checkpoint's (e.g. predictor_noise_scale=0.7); repeatable."),
        prescreen: int = typer.Option(1, "--prescreen", help="Sample K× --num crystals and keep the --num that the "
                                      "learned judge / property predictor put closest to the catalogue_class / "
                                      "topo_class / band_gap conditions (1 = off)."),
        prescreen_novel: bool = typer.Option(False, "--prescreen-novel", help="With --prescreen: keep crystals whose "
                                             "formula no known crystal has first (discovery)."),
        templates: Optional[str] = typer.Option(None, "--templates", help="Template library (.npz path or shipped "
                                                "name: mp20, mp20-ti): each crystal takes the space group, Wyckoff "
                                                "orbits and atom count of a library crystal drawn at random."),
        formulas: str = typer.Option("auto", "--formulas", help="What draws each cell formula: auto (the "
                                     "checkpoint's formula model where it has one and it can honour the run), "
                                     "network, or a formula-model file or shipped name."),
        verify_dft: int = typer.Option(0, "--verify-dft", min=0, help="Verify the top K candidates with DFT "
                                       "(GPAW PBE+SOC; minutes each): OUT/dft/comparison.md, bands_*.png."),
    ) -> None:
        """Run the main job end to end and print where the report is."""
        from topodiff.commands._common import (check_count, check_finite, check_int_range, check_numeric_values,
                                              check_seed, claim_run_output, parse_key_values, print_json)
        from topodiff.commands.generate import MAX_GUIDANCE, MAX_PRESCREEN, MAX_STEPS, formula_file
        from topodiff.crystal.io import structure_files
        from topodiff.errors import TopodiffInputError
        from topodiff.evaluation.pipeline import parse_conditions, run_pipeline
        from topodiff.evaluation.report import summary_lines
        from topodiff.generative.checkpoint import parse_sampler_settings, resolve_checkpoint
        from topodiff.generative.generate import check_conditions
        from topodiff.generative.prescreen import check_prescreen_novel

        # every argument is checked before anything is generated
        num = check_count("--num", num)
        seed = check_seed(seed)
        if guidance is not None:
            guidance = check_finite("--guidance", guidance, lo=0.0, hi=MAX_GUIDANCE)
        if steps is not None:
            steps = check_int_range("--steps", steps, 1, MAX_STEPS)
        check_numeric_values(parse_key_values(condition, "--condition"), "--condition")
        prescreen = check_int_range("--prescreen", prescreen, 1, MAX_PRESCREEN)
        check_count("--num × --prescreen", num * prescreen)
        check_prescreen_novel(prescreen, prescreen_novel)
        settings = parse_sampler_settings(sampler)
        for ref in reference or []:
            if not structure_files(ref):
                raise TopodiffInputError(f"--reference {ref}: no structure files (CIF, POSCAR, extxyz, CSV) there")
        if verify_dft:
            from topodiff.dft.lcao import require_gpaw

            require_gpaw()  # before anything is generated
        ckpt = resolve_checkpoint(checkpoint)
        check_conditions(ckpt, parse_conditions(condition), prescreen=prescreen)
        library = None
        if templates is not None:
            from topodiff.generative.templates import TemplateLibrary, resolve_templates

            library = resolve_templates(templates)
            TemplateLibrary.load(library)  # a file that is not a library fails before --out is claimed
        formulas_path = formula_file(formulas, ckpt)
        claim_run_output(out, "pipeline", sources=[ckpt, *(reference or []), *([library] if library else []),
                                                   *([formulas_path] if formulas_path else [])],
                         overwrite=overwrite, options=dict(formulas=formulas,
            num=num, conditions=list(condition or []), guidance=guidance, steps=steps, seed=seed, relax=relax,
            sampler=settings, **({"prescreen": prescreen, "prescreen_novel": prescreen_novel} if prescreen > 1 else {})))
        result = run_pipeline(out, num=num, checkpoint=str(ckpt) if checkpoint else None, conditions=parse_conditions(condition),
                              seed=seed, relax=relax, guidance=guidance, steps=steps, sampler=settings,
                              prescreen=prescreen, prescreen_novel=prescreen_novel, templates=library, formulas=formulas,
                              reference=reference or None, verify_dft=verify_dft)  # DFT before the report
        if json_out:
            print_json(result)
            return
        for line in summary_lines(result["summary"]):
            print(line)
        if result.get("top_candidates"):
            from topodiff.evaluation.summary import candidate_lines

            print("top candidates (✔ = novel ∧ stable ∧ topological):")
            for line in candidate_lines(result["top_candidates"]):
                print("  " + line)
        print(f"time: {result['timings']['total_s']:.0f} s "
              f"(generate {result['timings']['generate_s']:.0f}, evaluate {result['timings']['evaluate_s']:.0f}, "
              f"report {result['timings']['report_s']:.0f})")
        print(f"report: {result['report']}")
        if verify_dft:
            print(f"DFT check of the top {verify_dft}: {Path(out) / 'dft' / 'comparison.md'}")

"""``topodiff csp``: crystal structure prediction for given compositions (thin wrapper)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from topodiff.commands._common import check_count, check_int_range, check_seed, claim_run_output, print_json
from topodiff.errors import TopodiffInputError


def register(app: typer.Typer) -> None:
    @app.command("csp")
    def csp(
        input: Path = typer.Argument(..., help="text file of formulas (one per line) or CDVAE-style CSV"),
        out: Path = typer.Option(..., "--out", help="output directory"),
        checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="checkpoint path or shipped name (default: mp20-csp; perov5-csp for Perov-5)"),
        samples: int = typer.Option(1, "--samples", help="structures per composition"),
        seed: int = typer.Option(0, "--seed"),
        prescreen: int = typer.Option(1, "--prescreen", help="draw K× --samples structures per composition and keep "
                                      "the --samples of lowest CHGNet energy per atom, lowest first (1 = off)"),
        steps: Optional[int] = typer.Option(None, "--steps", help="sampler steps (default: the checkpoint's)"),
        templates: Optional[str] = typer.Option(None, "--templates", help="template library (a .npz path or a shipped "
                                                "name: mp20): compositions with a known crystal of the same atom counts "
                                                "per element keep its space group and Wyckoff orbits"),
        template_start: Optional[float] = typer.Option(None, "--template-start", help="with --templates: noise level "
                                                       "t0 in (0, 1] the network refines each template from (default "
                                                       "0.3; 1 = from noise, symmetry kept)"),
        overwrite: bool = typer.Option(False, "--overwrite", help="clear a non-empty --out that holds another run"),
        json_out: bool = typer.Option(False, "--json", help="print the metadata as one JSON object"),
    ) -> None:
        """Predict structures with exactly the given compositions: DIR/structures.extxyz + DIR/metadata.json."""
        from topodiff.commands.generate import MAX_PRESCREEN, MAX_STEPS
        from topodiff.generative.checkpoint import DEFAULT_CSP_CHECKPOINT, resolve_checkpoint
        from topodiff.generative.csp import check_compositions, csp_to_dir
        from topodiff.generative.templates import TEMPLATE_START
        from topodiff.generative.compositions import read_compositions

        samples = check_count("--samples", samples)
        seed = check_seed(seed)
        if steps is not None:
            steps = check_int_range("--steps", steps, 1, MAX_STEPS)
        comps = read_compositions(input)  # bad input (unreadable rows, too many atoms) fails before any output
        prescreen = check_int_range("--prescreen", prescreen, 1, MAX_PRESCREEN)
        check_count("compositions × --samples × --prescreen", len(comps) * samples * prescreen)
        ckpt = resolve_checkpoint(checkpoint or DEFAULT_CSP_CHECKPOINT)
        check_compositions(ckpt, comps)  # an element the checkpoint never saw fails before --out is claimed
        library = None
        template_start = TEMPLATE_START if template_start is None else float(template_start)
        if templates is not None:
            from topodiff.generative.templates import TemplateLibrary, resolve_templates

            library = resolve_templates(templates)
            TemplateLibrary.load(library)  # a file that is not a library fails before --out is claimed
            if not 0 < template_start <= 1:
                raise TopodiffInputError(f"--template-start must be in (0, 1], got {template_start}")
        claim_run_output(out, "csp", sources=[input, ckpt] + ([library] if library else []), overwrite=overwrite,
                         options=dict(samples=samples, seed=seed, steps=steps,
                                      **({"prescreen": prescreen} if prescreen > 1 else {}),
                                      **({"template_start": template_start} if library else {})))
        meta = csp_to_dir(input, out, checkpoint=str(ckpt), samples=samples, seed=seed, steps=steps,
                          prescreen=prescreen, templates=library, template_start=template_start)
        if json_out:
            print_json(meta)
        else:
            typer.echo(f"wrote {meta['num_structures']} structures for {meta['num_compositions']} compositions to {out}")
            print_summary(out / "structures.extxyz")


#: rows of the summary table printed after a run (the file holds all of them)
SUMMARY_ROWS = 20


def print_summary(extxyz: Path, limit: int = SUMMARY_ROWS) -> None:
    """A table of the first ``limit`` predicted structures: input row, sample, formula, space group (spglib,
    0.1 Å), volume per atom (Å³) and density (g/cm³)."""
    from rich.console import Console
    from rich.table import Table

    from topodiff.crystal.io import read_structures
    from topodiff.crystal.symmetry import space_group

    records = read_structures(extxyz)
    table = Table(title=f"CSP: first {min(limit, len(records))} of {len(records)} ({extxyz})")
    for col in ("row", "sample", "formula", "SG", "Å³/atom", "g/cm³"):
        table.add_column(col)
    for rec in records[:limit]:
        index, sample = (str(int(rec.properties.get(k, -1))) for k in ("index", "sample"))
        st = rec.structure
        if st is None:  # unreadable, or read but rejected (e.g. overlapping atoms): the reason, not numbers
            table.add_row(index, sample, f"[red]{rec.error}[/red]", "", "", "")
            continue
        number, symbol = space_group(st)
        table.add_row(index, sample, st.composition.reduced_formula, f"{number} {symbol}",
                      f"{st.volume / len(st):.2f}", f"{st.density:.2f}")
    Console().print(table)

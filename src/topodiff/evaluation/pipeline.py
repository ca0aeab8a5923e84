"""The end-to-end main job: generate → relax → screen → evaluate → report, in one output directory.

Layout of ``OUT``::

    OUT/generated/            structures.extxyz, cif/NNNN.cif, metadata.json (from the generator)
    OUT/metrics.json          evaluation summary (CONTRACTS §3 keys)
    OUT/structures.csv        one row per crystal
    OUT/relaxed.extxyz        CHGNet-relaxed crystals (with relaxation)
    OUT/dft/                  comparison.json/.md, bands_<i>.png (with ``verify_dft``; before the report)
    OUT/report.html           self-contained report
    OUT/pipeline.json         settings and wall time of each stage

The generator is :func:`topodiff.generative.generate.generate_to_dir` (imported lazily); tests
and other callers may inject any function with the same signature.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from topodiff.errors import TopodiffInputError

#: Default number of crystals: generation + CHGNet relaxation + TB screen + report of 24 small
#: crystals fits well inside 10 minutes on a 2-core CPU (measured: docs/evaluation.md).
DEFAULT_NUM = 24

GenerateFn = Callable[..., dict]


def parse_conditions(items: Sequence[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` condition strings → dict; numbers become int/float, the rest stays text."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise TopodiffInputError(f"--condition expects KEY=VALUE, got {item!r}")
        try:
            num = float(value)
            out[key] = int(num) if num.is_integer() and "." not in value else num
        except ValueError:
            out[key] = value
    return out


CANDIDATE_KEYS = ("index", "formula", "space_group", "space_group_symbol", "novel", "formula_novel", "known_match",
                  "e_above_hull", "hull_note", "topo_class", "z2", "z2_basis", "z2_conventional", "gap", "direct_gap",
                  "catalogue_class", "p_topological", "source")


def top_candidates(structures_csv: str | Path, k: int) -> list[dict[str, Any]]:
    """The report's top ``k`` candidates (novel ∧ stable ∧ topological first) as plain dicts."""
    from topodiff.evaluation.judging import discovery_hit
    from topodiff.evaluation.report import is_discovery, rank_candidates, read_rows

    rows = read_rows(structures_csv)
    return [{**{key: r.get(key) for key in CANDIDATE_KEYS}, "novel_stable_topological": is_discovery(r),
             "discovery_hit": discovery_hit(r)}
            for r in rank_candidates(rows, None, k)]


def _default_generate() -> GenerateFn:
    try:
        from topodiff.generative.generate import generate_to_dir
    except ImportError as exc:
        raise TopodiffInputError(f"the generator is not available in this installation ({exc})") from None
    return generate_to_dir


def run_pipeline(out: str | Path, *, num: int = DEFAULT_NUM, checkpoint: str | None = None,
                 conditions: dict[str, Any] | None = None, seed: int = 0, relax: bool = True,
                 guidance: float | None = None, steps: int | None = None, sampler: dict[str, Any] | None = None,
                 prescreen: int = 1, prescreen_novel: bool = False, templates: str | Path | None = None,
                 formulas: str = "auto",
                 reference: Sequence[str | Path] | None = None, screen: bool = True, top_k: int = 5,
                 generate_fn: GenerateFn | None = None, progress: bool = True, verify_dft: int = 0) -> dict[str, Any]:
    """Run the whole job; returns ``{"report", "metrics", "timings", ...}``.

    Parameters
    ----------
    out : output directory (created). num : crystals to generate (≥ 1).
    checkpoint, conditions, guidance, steps, seed, sampler, prescreen, prescreen_novel : passed to the generator
        (``sampler``: settings that replace the checkpoint's sampler defaults for this run; ``prescreen`` K > 1:
        sample K× and keep the ``num`` closest to the targets, new formulas first with ``prescreen_novel``;
        :mod:`topodiff.generative.prescreen`).
    templates : template library (path or shipped name): known structure types for the generator
        (:mod:`topodiff.generative.templates`).
    formulas : what draws the cell formulas (``auto``, ``network`` or a formula model; ``generate --formulas``).
    relax : CHGNet relaxation (energies, RMSD, energy above hull, S.U.N.).
    reference : optional reference set(s) for novelty / coverage / Wasserstein distances.
    generate_fn : generator with ``generate_to_dir``'s signature (default: the shipped one).
    verify_dft : verify the top K candidates with DFT (GPAW) into ``OUT/dft`` before the report.
    """
    from topodiff.evaluation.evaluate import evaluate_path
    from topodiff.evaluation.report import build_report
    from topodiff.io_utils import atomic_write_json

    if num < 1:
        raise TopodiffInputError(f"--num must be at least 1, got {num}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    gen_dir = out / "generated"
    gen = generate_fn or _default_generate()
    timings: dict[str, float] = {}

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t = time.time()
    log(f"[1/3] generating {num} crystals → {gen_dir}")
    gen_info = gen(gen_dir, num=num, checkpoint=checkpoint, conditions=conditions or None, guidance=guidance,
                   steps=steps, seed=seed, sampler=sampler or None,
                   **_optional_generator_options(prescreen, prescreen_novel, templates, formulas))
    timings["generate_s"] = round(time.time() - t, 2)

    t = time.time()
    log(f"[2/3] evaluating{' + relaxing (CHGNet)' if relax else ''}: DFT hull, novelty"
        f"{', topology screen' if screen else ''}, learned judge")
    summary, _ = evaluate_path(gen_dir, reference=reference, relax=relax, out_dir=out, screen=screen,
                               progress=progress)
    timings["evaluate_s"] = round(time.time() - t, 2)

    dft_rows = None
    if verify_dft:  # before the report, which shows dft/comparison.json
        from topodiff.dft.candidates import verify_candidates

        t = time.time()
        log(f"[DFT] verifying the top {verify_dft} candidates with GPAW")
        dft_rows = verify_candidates(out, verify_dft, progress=log)
        timings["dft_s"] = round(time.time() - t, 2)

    t = time.time()
    log("[3/3] writing the report")
    report, rsum = build_report(out, top_k=top_k, evaluate_if_missing=False)
    timings["report_s"] = round(time.time() - t, 2)
    top = top_candidates(out / "structures.csv", top_k)
    timings["total_s"] = round(sum(timings.values()), 2)
    result = {"report": str(report), "metrics": str(out / "metrics.json"), "generated": str(gen_dir), "num": num,
              "checkpoint": checkpoint, "conditions": conditions or {}, "seed": seed, "sampler": dict(sampler or {}),
              "relax": relax, "timings": timings,
              "generator": {k: v for k, v in (gen_info or {}).items() if isinstance(v, (str, int, float, bool))},
              "summary": {k: v for k, v in summary.items() if k not in ("reference_distributions",)},
              "top_candidates": top, "messages": rsum.get("messages", [])}
    if dft_rows is not None:
        result["dft"] = dft_rows
    atomic_write_json(out / "pipeline.json", {k: v for k, v in result.items() if k != "summary"})
    return result


def _optional_generator_options(prescreen: int, prescreen_novel: bool, templates: str | Path | None,
                                formulas: str) -> dict[str, Any]:
    """The generator options that differ from their defaults (a custom ``generate_fn`` need not take
    the others)."""
    options: dict[str, Any] = {}
    if int(prescreen) > 1:
        options.update(prescreen=int(prescreen), prescreen_novel=bool(prescreen_novel))
    if templates is not None:
        options["templates"] = templates
    if formulas != "auto":
        options["formulas"] = formulas
    return options

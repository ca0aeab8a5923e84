"""Library side of ``topodiff csp``: structures for given compositions, optionally on known templates.

Without templates every structure is drawn from noise by the network. With a template library
(:mod:`topodiff.generative.templates`) each composition that has a template (a known crystal with
the same atom counts per element, chosen by chemical similarity) is sampled under that crystal's
space group and Wyckoff orbits, starting from the template's own structure noised to
``template_start`` (the network then refines the positions and sizes the cell for the new elements);
compositions without one are drawn from noise as before.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from topodiff.errors import TopodiffInputError
from topodiff.generative.checkpoint import DEFAULT_CSP_CHECKPOINT, load_generator
from topodiff.generative.compositions import read_compositions
from topodiff.generative.generate import _chunks, _extxyz_text, _to_atoms, sample_guarded
from topodiff.generative.prescreen import lowest_energy_draws
from topodiff.generative.sampler import sampler_settings
from topodiff.generative.templates import TEMPLATE_START, TemplateLibrary, resolve_templates
from topodiff.io_utils import atomic_write_json, atomic_write_text

def _place_on_templates(comps: list[np.ndarray], library: Path | None) -> tuple[list[np.ndarray], list]:
    """Each composition's atoms in its template's site order, and the templates (None: no template)."""
    if library is None:
        return comps, [None] * len(comps)
    lib = TemplateLibrary.load(library)
    templates = [lib.match(z) for z in comps]
    return [z if t is None else t.species for z, t in zip(comps, templates)], templates


def check_compositions(checkpoint: str | Path, comps: list[np.ndarray]) -> None:
    """Raise :class:`TopodiffInputError` when ``checkpoint`` never saw an element of ``comps`` (atomic
    numbers per cell) — what ``topodiff csp`` checks before it claims its output directory."""
    from topodiff.generative.sampler import check_known_species

    model, _ = load_generator(checkpoint)
    check_known_species(model, np.concatenate(comps))  # read_compositions never returns an empty list


def csp_to_dir(input: str | Path, out_dir: str | Path, *, checkpoint: str | None = None, samples: int = 1,
               seed: int = 0, steps: int | None = None, batch_size: int = 128, prescreen: int = 1,
               templates: str | Path | None = None, template_start: float = TEMPLATE_START) -> dict[str, Any]:
    """Crystal structure prediction: ``samples`` structures per composition of ``input``; ``prescreen``
    K > 1: draw K × ``samples`` and keep the ``samples`` of lowest CHGNet energy per atom, lowest first
    (:func:`~topodiff.generative.prescreen.lowest_energy_draws`); ``templates``: a template library
    (path or shipped name) whose matches are refined from ``template_start`` (module docstring)."""
    if int(samples) <= 0 or int(prescreen) <= 0:
        raise TopodiffInputError(f"--samples and --prescreen must be positive integers, got {samples}, {prescreen}")
    if not 0 < float(template_start) <= 1:
        raise TopodiffInputError(f"--template-start must be in (0, 1], got {template_start}")
    draws = int(samples) * int(prescreen)
    library = None if templates is None else resolve_templates(templates)
    comps, tpls = _place_on_templates(read_compositions(input), library)
    model, config = load_generator(checkpoint or DEFAULT_CSP_CHECKPOINT)
    gen = torch.Generator().manual_seed(int(seed))
    jobs = sorted(((i, k) for i in range(len(comps)) for k in range(draws)), key=lambda job: len(comps[job[0]]))
    t0 = time.time()
    frames = []
    for templated in (True, False):
        group = [job for job in jobs if (tpls[job[0]] is not None) == templated]
        for chunk in _chunks(group, [len(comps[i]) for i, _ in group], batch_size, padded=True):
            num_atoms = torch.tensor([len(comps[i]) for i, _ in chunk], dtype=torch.long)
            species = torch.as_tensor(np.concatenate([comps[i] for i, _ in chunk]), dtype=torch.long)
            batch, _ = sample_guarded(model, num_atoms, species=species, steps=steps, generator=gen,
                                      templates=[tpls[i] for i, _ in chunk] if templated else None,
                                      start_time=float(template_start) if templated else 1.0)
            for (i, k), (f, L, z) in zip(chunk, batch.split()):
                frames.append(_to_atoms(f, L, z, {"index": i, "sample": k, **_template_info(tpls[i])}))
            print(f"csp {len(frames)}/{len(jobs)}", file=sys.stderr, flush=True)
    frames.sort(key=lambda atoms: (atoms.info["index"], atoms.info["sample"]))  # input order
    if int(prescreen) > 1:
        frames = lowest_energy_draws(frames, int(samples))
    wall = time.time() - t0
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "structures.extxyz", _extxyz_text(frames))
    meta = {"checkpoint": config.get("checkpoint_path"), "input": str(input), "num_compositions": len(comps),
            "samples": int(samples), "num_structures": len(frames), "seed": int(seed),
            "steps": int(steps or model.cfg.sample_steps), "sampler": sampler_settings(model.cfg), "wall_time_s": wall,
            "structures_per_s": len(frames) / wall if wall > 0 else None, "prescreen": int(prescreen),
            "prescreen_by": ["CHGNet energy per atom (single point)"] if int(prescreen) > 1 else [],
            "templates": None if library is None else str(library),
            "template_start": float(template_start) if templates is not None else None,
            "num_templated": sum(t is not None for t in tpls)}
    atomic_write_json(out_dir / "metadata.json", meta)
    return meta


def _template_info(tpl) -> dict[str, Any]:
    """The frame's record of its template: source id and space group (``none`` / 0 without one)."""
    return {"template": "none", "template_space_group": 0} if tpl is None else \
        {"template": tpl.source or "unnamed", "template_space_group": int(tpl.space_group)}

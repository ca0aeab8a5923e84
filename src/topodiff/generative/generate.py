"""Library side of ``topodiff generate`` and ``topodiff csp``: sample, guard, write files.

Output layout (CONTRACTS §3): ``DIR/structures.extxyz`` (all structures), ``DIR/cif/NNNN.cif`` and
``DIR/metadata.json`` for ``generate``; ``DIR/structures.extxyz`` (frames carry ``index`` and
``sample``) and ``DIR/metadata.json`` for ``csp``.
"""
from __future__ import annotations

import io
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from topodiff.errors import TopodiffInputError
from topodiff.generative.batch import CrystalBatch
from topodiff.generative.checkpoint import check_sampler_values, load_generator
from topodiff.generative.conditions import conditions_tensor, fewest_atoms, parse_conditions
from topodiff.generative.element_count import distinct_elements, draw_element_counts
from topodiff.generative.embeddings import CATEGORY_NAMES
from topodiff.generative.formula_source import choose_formula_model, draw_formulas, match_templates
from topodiff.generative.neighbours import pair_distances, periodic_pairs
from topodiff.generative.prescreen import (PREDICTOR_TARGETS, PRESCREEN_TARGETS, check_prescreen_novel,
                                           prescreen_keep, prescreen_scorers)
from topodiff.generative.sampler import sampler_settings
from topodiff.generative.templates import TEMPLATE_START
from topodiff.io_utils import atomic_write_json, atomic_write_text

PAIR_BUDGET = 256_000     # Σ N² of the crystals sampled together (bounds the pair tensors' memory)


def min_distances(batch: CrystalBatch) -> torch.Tensor:
    """``[B]`` smallest periodic interatomic distance (Å) of each crystal, over all periodic images
    (:func:`~topodiff.generative.neighbours.periodic_pairs`, vesin), so also right for strongly
    skewed cells. An atom's own images count (a one-atom crystal gives its shortest lattice vector);
    ``inf`` for a degenerate cell.

    The cutoff is the shortest of the three lattice vectors: the smallest distance never exceeds it
    (every atom has an image at each lattice vector), so the list always holds the minimum.
    """
    frac, lattice = batch.frac.detach().double(), batch.lattice.detach().double()
    cutoff = torch.linalg.norm(lattice, dim=-1).amin(-1) * (1 + 1e-9) + 1e-9
    i, j, shift = periodic_pairs(frac, lattice, batch.num_atoms, cutoff)
    r = pair_distances(frac, lattice, batch.num_atoms, i, j, shift)
    crystal = batch.batch_index[i]
    out = torch.full((batch.num_crystals,), math.inf, dtype=torch.float64)
    return out.scatter_reduce(0, crystal, r, reduce="amin")


def _to_atoms(frac: np.ndarray, lattice: np.ndarray, species: np.ndarray, info: dict[str, Any] | None = None):
    from ase import Atoms

    atoms = Atoms(numbers=species.astype(int), cell=lattice.astype(float), scaled_positions=np.mod(frac, 1.0), pbc=True)
    atoms.info.update(info or {})
    return atoms


def _extxyz_text(frames: list) -> str:
    from ase.io import write

    buf = io.StringIO()
    write(buf, frames, format="extxyz")
    return buf.getvalue()


def _cif_text(frac: np.ndarray, lattice: np.ndarray, species: np.ndarray) -> str:
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    s = Structure(Lattice(lattice.astype(float)), [int(z) for z in species], np.mod(frac, 1.0).astype(float))
    return str(CifWriter(s))


def element_sets_match(batch: CrystalBatch, system: torch.Tensor) -> torch.Tensor:
    """``[B]`` bool: crystal ``i`` contains exactly the elements of the multi-hot ``system [max_z+1]``."""
    present = distinct_elements(batch.species.long(), batch.batch_index, batch.num_crystals, system.shape[0])
    return (present == system.bool()[None]).all(-1)


def sample_guarded(model, num_atoms: torch.Tensor, *, species: torch.Tensor | None = None,
                   conditions: dict[str, Any] | None = None, guidance: float = 1.0, steps: int | None = None,
                   generator: torch.Generator | None = None, retries: int = 3, guide=None,
                   templates: list | None = None, start_time: float = 1.0) -> tuple[CrystalBatch, int]:
    """Sample, then re-sample (up to ``retries`` rounds) crystals whose smallest distance is below
    ``cfg.min_distance``, whose element set differs from a ``chemical_system`` condition, or whose
    number of elements differs from its target (the ``num_elements`` condition, or with
    ``element_count: data`` a draw from the training data's ``p(k | N)``). Crystals still off their
    element count (or chemical system) then get one more round in which the reveal enforces it
    (:mod:`topodiff.generative.element_count`), so both are exact while most crystals keep the
    network's own composition. ``templates`` (per-crystal symmetry templates or None) and ``start_time``
    go to the sampler. Returns ``(batch, number still failing)``."""
    conditions = dict(conditions or {})
    system = None
    if "chemical_system" in conditions and species is None:
        system = torch.as_tensor(conditions["chemical_system"], dtype=torch.bool)
        if "chemical_system" not in model.cfg.conditions:
            conditions.pop("chemical_system")
    kinds = None if species is not None else _element_targets(model, num_atoms, conditions, system, generator,
                                                                templates)
    for key in [k for k in conditions if k not in model.cfg.conditions]:
        conditions.pop(key)  # enforced by the sampler (num_atoms, num_elements) or a guide (predictor targets)
    offsets = (torch.cumsum(num_atoms, 0) - num_atoms).tolist()

    def draw(idx: torch.Tensor, exact: bool) -> CrystalBatch:
        k = int(idx.shape[0])
        sub_species = None if species is None else torch.cat(
            [species[offsets[i]:offsets[i] + int(num_atoms[i])] for i in idx.tolist()])
        mask = None if system is None else system[None].expand(k, -1)
        return model.sample(num_atoms[idx], species=sub_species, conditions=conditions_tensor(conditions, k),
                            guidance=guidance, steps=steps, generator=generator, species_mask=mask, guide=guide,
                            num_elements=kinds[idx] if exact and kinds is not None else None,
                            templates=None if templates is None else [templates[i] for i in idx.tolist()],
                            start_time=start_time)

    def failing(batch: CrystalBatch, idx: torch.Tensor) -> torch.Tensor:
        bad = min_distances(batch) < model.cfg.min_distance
        if system is not None:
            bad = bad | ~element_sets_match(batch, system)   # the exact set, so also its size (kinds)
        elif kinds is not None:
            present = distinct_elements(batch.species.long(), batch.batch_index, batch.num_crystals,
                                        model.cfg.max_z + 1)
            bad = bad | (present.sum(-1) != kinds[idx])
        return bad

    frames: list[Any] = [None] * int(num_atoms.shape[0])
    bad = torch.arange(len(frames))
    for exact in [False] * (retries + 1) + ([True] if kinds is not None else []):
        if bad.numel() == 0:
            break
        out = draw(bad, exact)
        for i, frame in zip(bad.tolist(), out.split()):
            frames[i] = frame
        bad = bad[failing(out, bad)]
    batch = CrystalBatch(torch.as_tensor(np.concatenate([f[0] for f in frames])),
                         torch.as_tensor(np.stack([f[1] for f in frames])),
                         torch.as_tensor(np.concatenate([f[2] for f in frames])), num_atoms.clone())
    return batch, int(bad.numel())


def _element_targets(model, num_atoms: torch.Tensor, conditions: dict[str, Any], system: torch.Tensor | None,
                     generator: torch.Generator | None, templates: list | None = None) -> torch.Tensor | None:
    """``[B]`` element count each de novo crystal must have (None: the network's): the ``num_elements``
    condition, the size of a ``chemical_system`` (whose mask then makes the elements exact), the
    template's own number of elements, or with ``element_count: data`` a draw from the training data."""
    if "num_elements" in conditions:
        return torch.full_like(num_atoms, int(conditions["num_elements"]))
    if system is not None:
        return torch.full_like(num_atoms, int(system.sum()))
    if templates is not None:
        return torch.tensor([len(set(t.species.tolist())) for t in templates], dtype=torch.long)
    if getattr(model.cfg, "element_count", "network") != "data":
        return None
    if float(model.num_elements_counts.sum()) <= 0:
        raise TopodiffInputError("this checkpoint has no element-count statistics (trained before they were "
                                 "recorded); use --sampler element_count=network")
    return draw_element_counts(model.num_elements_counts, num_atoms, generator)


def _draw_structure_types(templates: Any, num: int, generator: torch.Generator, cond: dict[str, Any],
                          min_atoms: int, max_atoms: int) -> list | None:
    """``num`` symmetry templates drawn from a library (None without one), honouring ``num_atoms``."""
    if templates is None:
        return None
    from topodiff.generative.templates import TemplateLibrary, resolve_templates

    lib = templates if isinstance(templates, TemplateLibrary) else TemplateLibrary.load(resolve_templates(templates))
    fixed = int(cond["num_atoms"]) if "num_atoms" in cond else None
    return lib.draw(num, generator, num_atoms=fixed, min_atoms=min_atoms, max_atoms=max_atoms)


def _check_run_numbers(num: int, prescreen: int, steps: int | None, guidance: float | None) -> None:
    """Refuse counts below one and negative guidance (the CLI checks them too; this is the library)."""
    if int(prescreen) < 1:
        raise TopodiffInputError(f"--prescreen must be a positive integer, got {prescreen}")
    if int(num) <= 0:
        raise TopodiffInputError(f"--num must be a positive integer, got {num}")
    if steps is not None and int(steps) <= 0:
        raise TopodiffInputError(f"--steps must be a positive integer, got {steps}")
    if guidance is not None and not guidance >= 0:
        raise TopodiffInputError(f"--guidance must be ≥ 0, got {guidance}")


def generate_to_dir(out_dir: str | Path, *, num: int, checkpoint: str | None = None,
                    conditions: dict[str, Any] | None = None, guidance: float | None = None,
                    steps: int | None = None, seed: int = 0, batch_size: int = 128,
                    guide_options: dict[str, Any] | None = None, prescreen: int = 1,
                    predictor: str | None = "default", sampler: dict[str, Any] | None = None,
                    prescreen_novel: bool = False, templates: Any = None, formulas: str | None = "auto"
                    ) -> dict[str, Any]:
    """Generate ``num`` crystals into ``out_dir`` (extxyz + one CIF each + metadata.json); returns the metadata.

    ``sampler``: :data:`~topodiff.generative.config.SAMPLER_SETTINGS` → value for this run instead of the
    checkpoint's defaults (e.g. ``{"predictor_noise_scale": 0.7}``); the metadata records what was used.

    ``guidance`` None: the checkpoint's ``default_guidance`` when a trained condition is given, else 0.
    ``guide_options``: keyword arguments of :func:`topodiff.generative.guidance.build_guide` (physics
    and property-predictor guidance); None or empty: no guide.
    ``prescreen = k > 1``: sample ``k · num`` crystals and keep the ``num`` closest to the
    ``topo_class``/``band_gap`` (property ``predictor``) and ``catalogue_class`` (learned judge) targets,
    in sampling order (:mod:`topodiff.generative.prescreen`); these targets need not be trained conditions.
    ``prescreen_novel``: the pre-screen keeps crystals of formulas absent from the known-crystal index first.
    ``templates``: a template library (path, shipped name or
    :class:`~topodiff.generative.templates.TemplateLibrary`); each crystal then takes the space group,
    Wyckoff orbits and atom count of a library row drawn at random, and the network chooses one
    species per orbit, the positions and the cell (:mod:`topodiff.generative.symmetry_projection`).
    ``formulas``: what draws each crystal's cell formula before the network places its atoms
    (:func:`choose_formula_model`): ``auto``, ``network`` (the network's own species) or a formula model.
    """
    _check_run_numbers(num, prescreen, steps, guidance)
    model, config = load_generator(checkpoint)
    for key, value in check_sampler_values(sampler or {}).items():
        setattr(model.cfg, key, value)
    cond, guidance, formula_guidance = _run_conditions(model, conditions, guidance, guide_options, prescreen)
    guide = None
    if guide_options:
        from topodiff.generative.guidance import build_guide

        guide = build_guide(model, config, cond, **guide_options)
    min_atoms = fewest_atoms(cond)
    targets = {k: v for k, v in cond.items() if k in PRESCREEN_TARGETS}
    if int(prescreen) > 1 and not (targets or prescreen_novel):
        raise TopodiffInputError("--prescreen needs a topo_class, band_gap or catalogue_class condition to screen "
                                 "toward, or --prescreen-novel")
    check_prescreen_novel(prescreen, prescreen_novel)
    total = int(num) * int(prescreen)
    gen = torch.Generator().manual_seed(int(seed))
    t0 = time.time()
    formula_model, sizes, cells, structure_types = _draw_cells(model, config, cond, formulas, templates, total,
                                                                formula_guidance, gen, min_atoms)
    matched = formula_model is not None and templates is not None
    slots, below = _sample_in_chunks(model, sizes, cells, structure_types, batch_size,
                                     template_start=TEMPLATE_START if matched else 1.0, conditions=cond,
                                     guidance=guidance, steps=steps, generator=gen, guide=guide)
    frames, kept = slots, list(range(total))
    if int(prescreen) > 1:
        kept = prescreen_keep(frames, targets, predictor, num, new_formulas=prescreen_novel)
        frames = [frames[i] for i in kept]
    wall = time.time() - t0
    _write_frames(Path(out_dir), frames, kept, structure_types)
    meta = {"checkpoint": config.get("checkpoint_path"), "num_structures": len(frames),
            "conditions": dict(conditions or {}), "guidance": guidance,
            "steps": int(steps or model.cfg.sample_steps), "sampler": sampler_settings(model.cfg),
            "seed": int(seed), "wall_time_s": wall,
            "structures_per_s": len(frames) / wall if wall > 0 else None,
            "min_distance_floor": model.cfg.min_distance, "below_min_distance": below,
            "formulas": "network" if formula_model is None else formula_model.source,
            "formula_guidance": None if formula_model is None else formula_guidance,
            "num_templated": None if structure_types is None else sum(structure_types[k] is not None for k in kept),
            "sampler_overrides": dict(sampler or {}), "guide": dict(guide_options or {}), "prescreen": int(prescreen),
            "predictor": predictor if int(prescreen) > 1 and any(k in targets for k in PREDICTOR_TARGETS) else None,
            "prescreen_by": prescreen_scorers(targets, prescreen_novel) if int(prescreen) > 1 else [],
            "templates": None if templates is None else
            (str(templates) if isinstance(templates, (str, Path)) else f"{len(templates)} crystals given in memory")}
    atomic_write_json(Path(out_dir) / "metadata.json", meta)
    return meta


def check_conditions(checkpoint: str | Path, conditions: dict[str, Any] | None, *,
                     guide_options: dict[str, Any] | None = None, prescreen: int = 1) -> None:
    """Raise :class:`TopodiffInputError` for a condition ``checkpoint`` cannot take (unknown key or class,
    a value out of range) — what a CLI checks before it claims its output directory."""
    model, _ = load_generator(checkpoint)
    _run_conditions(model, conditions, None, guide_options, prescreen)


def _run_conditions(model, conditions: dict[str, Any] | None, guidance: float | None,
                    guide_options: dict[str, Any] | None, prescreen: int) -> tuple[dict[str, Any], float, float]:
    """``(parsed conditions, the network's guidance, the formula model's guidance)`` of a run. Conditions
    may name what the network was trained on and the targets of predictor guidance and the pre-screen;
    ``guidance`` None: the checkpoint's ``default_guidance`` when a trained condition is given, else 0
    (the formula model's: 1, conditional)."""
    trained = list(model.cfg.conditions)
    if guide_options and float(guide_options.get("predictor_scale", 0.0) or 0.0) > 0:
        trained += [k for k in PREDICTOR_TARGETS if k not in trained]  # targets of the predictor's guidance
    if int(prescreen) > 1:
        trained += [k for k in PRESCREEN_TARGETS if k not in trained]  # targets of the pre-screen
    cond = parse_conditions(conditions, trained, {name: getattr(model, f"{name}_counts").cpu().numpy()
                                                  for name in CATEGORY_NAMES})
    if guidance is not None:
        return cond, float(guidance), float(guidance)
    embedded = [k for k in cond if k in model.cfg.conditions]
    return cond, float(model.cfg.default_guidance) if embedded else 0.0, 1.0


def _draw_cells(model, config: dict, cond: dict[str, Any], formulas: str | None, templates: Any, total: int,
                formula_guidance: float, gen: torch.Generator, min_atoms: int) -> tuple:
    """``(formula model or None, sizes [total], cell formulas or None, structure types or None)`` of a run:
    the formula model (:func:`choose_formula_model`) draws each cell's formula and atom count (unless
    ``num_atoms`` is given), placed on a matching template with ``templates``; without one, sizes (and
    structure types) come from the templates, ``num_atoms`` or the network's training histogram."""
    largest = int(cond["num_atoms"]) if "num_atoms" in cond else int(torch.nonzero(model.num_atoms_counts).max())
    formula_model = choose_formula_model(formulas, config.get("checkpoint_path"), cond, templates, largest)
    if formula_model is None:
        structure_types = _draw_structure_types(templates, total, gen, cond, min_atoms, model.cfg.max_atoms)
        return None, _cell_sizes(model, structure_types, cond, total, gen, min_atoms), None, structure_types
    fixed = torch.full((total,), int(cond.get("num_atoms", 0)), dtype=torch.long)   # 0: drawn with the formula
    cells = draw_formulas(formula_model, fixed, cond, formula_guidance, gen, model.species_allowed,
                          size_range=(min_atoms, largest))
    structure_types = None
    if templates is not None:   # each formula on its own structure type
        structure_types = match_templates(templates, cells)
        cells = [z if t is None else t.species for z, t in zip(cells, structure_types)]
    return formula_model, torch.tensor([len(z) for z in cells], dtype=torch.long), cells, structure_types


def _cell_sizes(model, structure_types: list | None, cond: dict[str, Any], total: int, generator: torch.Generator,
                min_atoms: int) -> torch.Tensor:
    """``[total]`` atoms per crystal: the templates', the ``num_atoms`` condition, or drawn from training."""
    if structure_types is not None:
        return torch.tensor([t.num_atoms for t in structure_types], dtype=torch.long)
    if "num_atoms" in cond:
        return torch.full((total,), int(cond["num_atoms"]), dtype=torch.long)
    return model.sample_num_atoms(total, generator, min_atoms=min_atoms)


def _sample_in_chunks(model, sizes: torch.Tensor, cells: list[np.ndarray] | None, structure_types: list | None,
                      batch_size: int, template_start: float = 1.0, **sample_options) -> tuple[list, int]:
    """Every crystal through :func:`sample_guarded`, crystals on a template first, then the others, each
    group by size (the denoiser pads every crystal to its batch's largest). ``cells``: the species of
    each crystal (None: the network's); ``structure_types``: a template or None per crystal (None: no
    library); ``template_start``: the time the templated ones start from (the others start from noise).
    Returns ``(frames in input order, number below the distance floor)``."""
    order = torch.argsort(sizes, stable=True).tolist()
    types = structure_types or [None] * len(order)
    slots: list[Any] = [None] * len(order)
    below = 0
    for templated in (True, False):
        group = [i for i in order if (types[i] is not None) == templated]
        for chunk in _chunks(group, [int(sizes[i]) for i in group], batch_size, padded=True):
            species = None if cells is None else torch.as_tensor(np.concatenate([cells[i] for i in chunk]))
            batch, nb = sample_guarded(model, sizes[chunk], species=species, **sample_options,
                                       templates=[types[i] for i in chunk] if templated else None,
                                       start_time=template_start if templated else 1.0)
            below += nb
            for i, frame in zip(chunk, batch.split()):
                slots[i] = frame
            print(f"generated {sum(f is not None for f in slots)}/{len(slots)}", file=sys.stderr, flush=True)
    return slots, below


def _write_frames(out_dir: Path, frames: list, kept: list[int], structure_types: list | None) -> None:
    """``structures.extxyz`` (frames carry ``index`` and, on templates, ``template``) and one CIF each."""
    atoms = [_to_atoms(f, L, z, {"index": i, **({} if structure_types is None else
                                                {"template": "none" if structure_types[k] is None else
                                                 structure_types[k].source or "unnamed"})})
             for i, (k, (f, L, z)) in enumerate(zip(kept, frames))]
    atomic_write_text(out_dir / "structures.extxyz", _extxyz_text(atoms))
    width = max(4, len(str(len(frames) - 1)))
    for i, (f, L, z) in enumerate(frames):
        atomic_write_text(out_dir / "cif" / f"{i:0{width}d}.cif", _cif_text(f, L, z))


def _chunks(jobs: list, sizes: list[int], batch_size: int, *, padded: bool = False) -> list[list]:
    """Consecutive runs of ``jobs`` (atom counts ``sizes``) with at most ``batch_size`` items and at
    most :data:`PAIR_BUDGET` atom pairs: Σ n², or with ``padded`` items × (largest n)², the size of
    the denoiser's padded pair tensors (one item always fits)."""
    out, cur, pairs, largest = [], [], 0, 0
    for job, n in zip(jobs, sizes):
        cost = (len(cur) + 1) * max(largest, n) ** 2 if padded else pairs + n * n
        if cur and (len(cur) >= batch_size or cost > PAIR_BUDGET):
            out.append(cur)
            cur, pairs, largest = [], 0, 0
        cur.append(job)
        pairs += n * n
        largest = max(largest, n)
    return out + ([cur] if cur else [])

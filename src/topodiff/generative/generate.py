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
from topodiff.generative.compositions import MAX_ATOMS, read_compositions
from topodiff.generative.element_count import distinct_elements, draw_element_counts
from topodiff.generative.embeddings import CATEGORY_NAMES, CONDITION_KINDS
from topodiff.generative.neighbours import pair_distances, periodic_pairs
from topodiff.generative.prescreen import (PREDICTOR_TARGETS, PRESCREEN_TARGETS, check_prescreen_novel,
                                           lowest_energy_draws, prescreen_keep, prescreen_scorers)
from topodiff.generative.sampler import sampler_settings
from topodiff.io_utils import atomic_write_json, atomic_write_text

MAX_BAND_GAP = 20.0       # eV, largest band_gap condition
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


#: a topo_class value needs at least this share of the training labels to be asked for
MIN_CLASS_SUPPORT = 0.05
#: conditions every checkpoint honours without having been trained on them (enforced at sampling)
SAMPLER_CONDITIONS = ("chemical_system", "num_atoms", "num_elements")
#: conditions the sampler enforces that no network embeds (not in ``CONDITION_KINDS``)
COUNT_CONDITIONS = ("num_elements",)


def parse_conditions(raw: dict[str, Any] | None, trained: list[str],
                     class_counts: dict[str, Any] | None = None) -> dict[str, float | list[float]]:
    """Validate user conditions (``KEY -> text or number``) into numbers the model embeds.

    ``chemical_system``, ``num_atoms`` and ``num_elements`` (distinct elements per crystal) are accepted
    by every checkpoint (the sampler enforces them exactly); the others need a checkpoint trained with
    them. ``class_counts`` (training crystals per class of each categorical condition, e.g.
    ``{"topo_class": [...]}``) rejects classes with less than :data:`MIN_CLASS_SUPPORT` of that
    condition's labels.
    """
    out: dict[str, Any] = {}
    for key, value in (raw or {}).items():
        if key not in CONDITION_KINDS and key not in COUNT_CONDITIONS:
            raise TopodiffInputError(f"unknown condition {key!r}; known: "
                                     f"{', '.join((*CONDITION_KINDS, *COUNT_CONDITIONS))}")
        if key not in trained and key not in SAMPLER_CONDITIONS:
            raise TopodiffInputError(f"this checkpoint was not trained with condition {key!r} "
                                     f"(it knows: {', '.join(trained) or 'none'})")
        text = str(value).strip()
        if key in CATEGORY_NAMES:
            out[key] = _category_index(key, text, (class_counts or {}).get(key))
        elif key == "chemical_system":
            from pymatgen.core import Element

            hot = [0.0] * CONDITION_KINDS[key][1]
            symbols = [sym.strip() for sym in text.split("-")]
            try:
                if not text or any(not sym for sym in symbols):
                    raise ValueError
                for sym in symbols:
                    z = Element(sym).Z
                    if z >= len(hot):
                        raise IndexError
                    hot[z] = 1.0
            except (ValueError, KeyError, IndexError, AttributeError):
                raise TopodiffInputError(f"chemical_system must be element symbols joined by '-' (e.g. Bi-Se), "
                                         f"got {text!r}") from None
            out[key] = hot
        else:
            try:
                number = float(text)
            except ValueError:
                raise TopodiffInputError(f"condition {key} expects a number, got {text!r}") from None
            if not math.isfinite(number):
                raise TopodiffInputError(f"condition {key} must be a finite number, got {text}")
            if key == "space_group" and not (1 <= number <= 230 and number == int(number)):
                raise TopodiffInputError(f"space_group must be an integer 1-230, got {text}")
            if key in ("num_atoms", "num_elements") and not (1 <= number <= MAX_ATOMS and number == int(number)):
                raise TopodiffInputError(f"{key} must be an integer 1-{MAX_ATOMS}, got {text}")
            if key == "band_gap" and not 0 <= number <= MAX_BAND_GAP:
                raise TopodiffInputError(f"band_gap must be ≥ 0 and ≤ {MAX_BAND_GAP:g} eV, got {text}")
            out[key] = number
    return out


def _fewest_atoms(cond: dict[str, Any]) -> int:
    """The smallest cell that holds the requested elements (``chemical_system``, ``num_elements``);
    raises when ``num_atoms`` is smaller or the two element conditions disagree."""
    system = int(sum(1 for v in cond.get("chemical_system", []) if v))
    count = int(cond.get("num_elements", 0))
    if system and count and system != count:
        raise TopodiffInputError(f"num_elements={count} contradicts chemical_system ({system} elements)")
    fewest = max(system, count, 1)
    if "num_atoms" in cond and int(cond["num_atoms"]) < fewest:
        raise TopodiffInputError(f"num_atoms={int(cond['num_atoms'])} cannot hold {fewest} elements")
    return fewest


def _category_index(key: str, text: str, counts: Any) -> float:
    """Index of class ``text`` of categorical condition ``key``; refused when unknown or when it had
    less than :data:`MIN_CLASS_SUPPORT` of the checkpoint's training labels (``counts``)."""
    classes = CATEGORY_NAMES[key]
    if text not in classes:
        raise TopodiffInputError(f"{key} must be one of {', '.join(classes)}, got {text!r}")
    if counts is not None:
        counts = np.asarray(counts, dtype=np.float64)
        share = counts[classes.index(text)] / max(counts.sum(), 1.0)
        if counts.sum() > 0 and share < MIN_CLASS_SUPPORT:
            raise TopodiffInputError(
                f"{key}={text}: only {100 * share:.1f} % of this checkpoint's training crystals had "
                f"that label (< {100 * MIN_CLASS_SUPPORT:.0f} %), too few to condition on")
    return float(classes.index(text))


def _conditions_tensor(cond: dict[str, Any], b: int) -> dict[str, torch.Tensor]:
    return {k: torch.tensor([v] * b, dtype=torch.float32) for k, v in cond.items()}


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
        return model.sample(num_atoms[idx], species=sub_species, conditions=_conditions_tensor(conditions, k),
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


def generate_to_dir(out_dir: str | Path, *, num: int, checkpoint: str | None = None,
                    conditions: dict[str, Any] | None = None, guidance: float | None = None,
                    steps: int | None = None, seed: int = 0, batch_size: int = 128,
                    guide_options: dict[str, Any] | None = None, prescreen: int = 1,
                    predictor: str | None = "default", sampler: dict[str, Any] | None = None,
                    prescreen_novel: bool = False, templates: Any = None) -> dict[str, Any]:
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
    """
    if int(prescreen) < 1:
        raise TopodiffInputError(f"--prescreen must be a positive integer, got {prescreen}")
    if int(num) <= 0:
        raise TopodiffInputError(f"--num must be a positive integer, got {num}")
    if steps is not None and int(steps) <= 0:
        raise TopodiffInputError(f"--steps must be a positive integer, got {steps}")
    if guidance is not None and not guidance >= 0:
        raise TopodiffInputError(f"--guidance must be ≥ 0, got {guidance}")
    model, config = load_generator(checkpoint)
    for key, value in check_sampler_values(sampler or {}).items():
        setattr(model.cfg, key, value)
    trained = list(model.cfg.conditions)
    if guide_options and float(guide_options.get("predictor_scale", 0.0) or 0.0) > 0:
        trained += [k for k in PREDICTOR_TARGETS if k not in trained]  # targets of the predictor's guidance
    if int(prescreen) > 1:
        trained += [k for k in PRESCREEN_TARGETS if k not in trained]  # targets of the pre-screen
    cond = parse_conditions(conditions, trained, {name: getattr(model, f"{name}_counts").cpu().numpy()
                                                  for name in CATEGORY_NAMES})
    if guidance is None:
        embedded = [k for k in cond if k in model.cfg.conditions]
        guidance = float(model.cfg.default_guidance) if embedded else 0.0
    guide = None
    if guide_options:
        from topodiff.generative.guidance import build_guide

        guide = build_guide(model, config, cond, **guide_options)
    min_atoms = _fewest_atoms(cond)
    targets = {k: v for k, v in cond.items() if k in PRESCREEN_TARGETS}
    if int(prescreen) > 1 and not (targets or prescreen_novel):
        raise TopodiffInputError("--prescreen needs a topo_class, band_gap or catalogue_class condition to screen "
                                 "toward, or --prescreen-novel")
    check_prescreen_novel(prescreen, prescreen_novel)
    total = int(num) * int(prescreen)
    gen = torch.Generator().manual_seed(int(seed))
    t0 = time.time()
    frames, below = [], 0
    structure_types = _draw_structure_types(templates, total, gen, cond, min_atoms, model.cfg.max_atoms)
    if structure_types is not None:
        sizes = torch.tensor([t.num_atoms for t in structure_types], dtype=torch.long)
    elif "num_atoms" in cond:
        sizes = torch.full((total,), int(cond["num_atoms"]), dtype=torch.long)
    else:
        sizes = model.sample_num_atoms(total, gen, min_atoms=min_atoms)
    # crystals of similar size sampled together (the denoiser pads every crystal to the batch's largest)
    order = torch.argsort(sizes, stable=True).tolist()
    slots: list[Any] = [None] * total
    for chunk in _chunks(order, [int(sizes[i]) for i in order], batch_size, padded=True):
        batch, nb = sample_guarded(model, sizes[chunk], conditions=cond, guidance=guidance, steps=steps,
                                   generator=gen, guide=guide,
                                   templates=None if structure_types is None else [structure_types[i] for i in chunk])
        below += nb
        for i, frame in zip(chunk, batch.split()):
            slots[i] = frame
        done = sum(f is not None for f in slots)
        print(f"generated {done}/{total}", file=sys.stderr, flush=True)
    frames, kept = slots, list(range(total))
    if int(prescreen) > 1:
        kept = prescreen_keep(frames, targets, predictor, num, new_formulas=prescreen_novel)
        frames = [frames[i] for i in kept]
    wall = time.time() - t0
    out_dir = Path(out_dir)
    atoms = [_to_atoms(f, L, z, {"index": i, **({} if structure_types is None else
                                                {"template": structure_types[k].source or "unnamed"})})
             for i, (k, (f, L, z)) in enumerate(zip(kept, frames))]
    atomic_write_text(out_dir / "structures.extxyz", _extxyz_text(atoms))
    width = max(4, len(str(len(frames) - 1)))
    for i, (f, L, z) in enumerate(frames):
        atomic_write_text(out_dir / "cif" / f"{i:0{width}d}.cif", _cif_text(f, L, z))
    meta = {"checkpoint": config.get("checkpoint_path"), "num_structures": len(frames),
            "conditions": dict(conditions or {}), "guidance": guidance,
            "steps": int(steps or model.cfg.sample_steps), "sampler": sampler_settings(model.cfg),
            "seed": int(seed), "wall_time_s": wall,
            "structures_per_s": len(frames) / wall if wall > 0 else None,
            "min_distance_floor": model.cfg.min_distance, "below_min_distance": below,
            "sampler_overrides": dict(sampler or {}), "guide": dict(guide_options or {}), "prescreen": int(prescreen),
            "predictor": predictor if int(prescreen) > 1 and any(k in targets for k in PREDICTOR_TARGETS) else None,
            "prescreen_by": prescreen_scorers(targets, prescreen_novel) if int(prescreen) > 1 else [],
            "templates": None if templates is None else
            (str(templates) if isinstance(templates, (str, Path)) else f"{len(templates)} crystals given in memory")}
    atomic_write_json(out_dir / "metadata.json", meta)
    return meta


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

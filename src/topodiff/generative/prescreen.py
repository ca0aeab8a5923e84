"""Pre-screening of generated crystals (``topodiff generate --prescreen K``): sample K× the crystals
and keep the ones that cheap models put closest to the requested properties.

Best-of-K selection toward a condition, a cheap stand-in for classifier guidance: of the model's
samples, those with the highest ``p(target | x)`` are kept. Two scorers, summed in log space:

- the property predictor (:mod:`topodiff.generative.predictor`, on the crystal as generated) for
  ``topo_class`` (``log p(class)``) and ``band_gap`` (``−|predicted − target| / 0.1 eV``);
- the learned topology judge (:mod:`topodiff.judge`, trained on the DFT catalogues) for
  ``catalogue_class`` (``log p(class)``); a crystal the judge cannot read (an element it never saw)
  scores −∞ and is kept last.

For crystal structure prediction (``topodiff csp --prescreen K``) the scorer is CHGNet's energy per
atom of each drawn structure (single point, no relaxation; :func:`lowest_energy_draws`), as
structure-search codes rank their candidates: the lowest-energy draws of each composition are kept.

With ``new_formulas`` (discovery), crystals whose reduced formula is in the known-crystal index
(:mod:`topodiff.evaluation.known`) rank after all others: the judge is surest of the known compounds it
was trained on, so without it a screen toward ``ti`` keeps rediscoveries (Sb2Te3, MnSb, ...).
"""
from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import torch

from topodiff.generative.batch import CrystalBatch
from topodiff.generative.embeddings import CATALOGUE_CLASSES

PREDICTOR_TARGETS = ("topo_class", "band_gap")          # scored by the property predictor
PRESCREEN_TARGETS = PREDICTOR_TARGETS + ("catalogue_class",)
MIN_PROBABILITY = 1e-12                                  # floor under log p


def check_prescreen_novel(prescreen: int, novel: bool) -> None:
    """``--prescreen-novel`` ranks within a pre-screen, so it needs ``--prescreen K`` with K ≥ 2."""
    from topodiff.errors import TopodiffInputError

    if novel and int(prescreen) < 2:
        raise TopodiffInputError("--prescreen-novel needs --prescreen K with K ≥ 2")


def prescreen_scores(frames: list, cond: dict[str, Any], predictor: str | None) -> np.ndarray:
    """``[n]`` scores (higher = closer to the targets in ``cond``) of crystals ``frames``
    (``(frac [N, 3], lattice [3, 3] Å rows, atomic numbers [N])`` each); ``cond`` holds parsed
    conditions (class indices, gap in eV); keys outside :data:`PRESCREEN_TARGETS` are ignored."""
    score = np.zeros(len(frames), dtype=np.float64)
    if any(k in cond for k in PREDICTOR_TARGETS):
        score += _predictor_scores(frames, cond, predictor)
    if "catalogue_class" in cond:
        score += _judge_log_probability(frames, CATALOGUE_CLASSES[int(cond["catalogue_class"])])
    return score


def prescreen_keep(frames: list, cond: dict[str, Any], predictor: str | None, num: int, *,
                   new_formulas: bool = False) -> list[int]:
    """Indices of the ``num`` best-scored ``frames`` (:func:`prescreen_scores`), in sampling order;
    ``new_formulas``: crystals of known formulas only where too few others are left."""
    score = prescreen_scores(frames, cond, predictor)
    known = _formula_known(frames) if new_formulas else np.zeros(len(frames), dtype=bool)
    order = np.lexsort((-score, known))          # new formulas first, then by score; stable
    return sorted(int(i) for i in order[:int(num)])


def prescreen_scorers(targets: dict[str, Any], new_formulas: bool = False) -> list[str]:
    """Names of what ranks the kept crystals (recorded in ``generate``'s metadata)."""
    return (["property predictor"] if any(k in targets for k in PREDICTOR_TARGETS) else []) + \
        (["learned topology judge"] if "catalogue_class" in targets else []) + \
        (["new formulas first (known-crystal index)"] if new_formulas else [])


def _predictor_scores(frames: list, cond: dict[str, Any], predictor: str | None) -> np.ndarray:
    from topodiff.generative.predictor import load_predictor, predict_batch

    model = load_predictor(predictor)
    batch = CrystalBatch(torch.as_tensor(np.concatenate([f[0] for f in frames]), dtype=torch.float32),
                         torch.as_tensor(np.stack([f[1] for f in frames]), dtype=torch.float32),
                         torch.as_tensor(np.concatenate([f[2] for f in frames])).long(),
                         torch.tensor([len(f[2]) for f in frames]))
    with torch.no_grad():
        probs, gap = predict_batch(model, batch)
    score = torch.zeros(len(frames), dtype=torch.float64)
    if "topo_class" in cond:
        score += torch.log(probs[:, int(cond["topo_class"])].double().clamp_min(MIN_PROBABILITY))
    if "band_gap" in cond:
        score -= (gap.double() - float(cond["band_gap"])).abs() / 0.1
    return score.numpy()


def _structures(frames: list) -> list:
    from pymatgen.core import Lattice, Structure

    return [Structure(Lattice(np.asarray(lat, dtype=float)), [int(z) for z in species],
                      np.mod(np.asarray(frac, dtype=float), 1.0)) for frac, lat, species in frames]


def _formula_known(frames: list) -> np.ndarray:
    """``[n]`` bool: a crystal of this reduced formula is in the shipped known-crystal index."""
    from pymatgen.core import Composition, Element

    from topodiff.evaluation.known import load_index

    index = load_index()
    formulas = [Composition({Element.from_Z(z): n for z, n in Counter(int(z) for z in species).items()}).reduced_formula
                for _, _, species in frames]
    return np.array([index.formula_known(f) for f in formulas], dtype=bool)


def _judge_log_probability(frames: list, target: str) -> np.ndarray:
    """``log p_judge(target)`` of each crystal as generated (−∞ where the judge gives no verdict)."""
    from topodiff.judge import judge_structures

    rows = judge_structures(_structures(frames))
    p = np.array([r["probabilities"].get(target, 0.0) if r.get("probabilities") else np.nan for r in rows])
    return np.where(np.isnan(p), -np.inf, np.log(np.clip(p, MIN_PROBABILITY, 1.0)))


def lowest_energy_draws(frames: list, keep: int) -> list:
    """The ``keep`` draws of lowest CHGNet energy per atom of each composition, lowest first.

    ``frames``: ASE Atoms with ``info["index"]`` (composition) and ``info["sample"]`` (draw number).
    Returned frames are in input order, then by energy; ``info["sample"]`` is renumbered 0..keep-1 and
    ``info["draw"]`` / ``info["energy_per_atom"]`` (eV/atom, NaN where CHGNet failed: ranked last) added.
    """
    from pymatgen.io.ase import AseAtomsAdaptor

    from topodiff.evaluation.relax import single_point_energies

    energy = single_point_energies([AseAtomsAdaptor.get_structure(a) for a in frames])
    ranked = sorted(range(len(frames)), key=lambda i: (frames[i].info["index"], np.isnan(energy[i]),
                                                       np.nan_to_num(energy[i]), frames[i].info["sample"]))
    out, kept = [], Counter()
    for i in ranked:
        comp = frames[i].info["index"]
        if kept[comp] < keep:
            atoms = frames[i].copy()
            atoms.info.update(draw=frames[i].info["sample"], sample=kept[comp], energy_per_atom=float(energy[i]))
            kept[comp] += 1
            out.append(atoms)
    return out


"""User conditions of ``generate`` (``KEY -> text``) checked and turned into the numbers the model embeds."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from topodiff.errors import TopodiffInputError
from topodiff.generative.compositions import MAX_ATOMS
from topodiff.generative.embeddings import CATEGORY_NAMES, CONDITION_KINDS

MAX_BAND_GAP = 20.0       # eV, largest band_gap condition

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


def fewest_atoms(cond: dict[str, Any]) -> int:
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


def conditions_tensor(cond: dict[str, Any], b: int) -> dict[str, torch.Tensor]:
    return {k: torch.tensor([v] * b, dtype=torch.float32) for k, v in cond.items()}

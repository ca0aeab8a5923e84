"""The number of distinct elements per crystal, drawn and enforced while the species are revealed.

A de novo crystal's element count ``k`` is either left to the network (``element_count: network``) or
fixed before sampling: asked for (the ``num_elements`` condition) or drawn from the training data's
``p(k | N)`` for its atom count ``N`` (``element_count: data``), as the atom count itself is drawn
from the training histogram. ``generate`` first re-samples crystals with another count
(:func:`topodiff.generative.generate.sample_guarded`), keeping the network's own compositions where
it can; for those still off, the reveal keeps each crystal on course for exactly ``k`` elements:
once ``k`` elements are present, a masked atom may only take one of them; when the masked atoms left
are just enough for the missing elements, each must take a new one. Atoms revealed in the same step
are revealed one at a time per crystal so the rule sees each choice. A drawn species that the rule
allows is kept, otherwise it is re-drawn from the network's probabilities restricted to the allowed
species, which together is a draw from those restricted probabilities. Where the network allows
none of them (logits −∞, e.g. outside a requested chemical system), the drawn species stands.
"""
from __future__ import annotations

import numpy as np
import torch

from topodiff.errors import TopodiffInputError

MASK = 0


def element_count_table(num_atoms: np.ndarray, species: np.ndarray, max_atoms: int) -> np.ndarray:
    """``[max_atoms+1, max_atoms+1]`` counts of crystals with ``N`` atoms (row) and ``k`` distinct
    elements (column), from flat arrays (``species`` concatenated crystal by crystal)."""
    n = np.asarray(num_atoms, dtype=np.int64)
    if n.size and int(n.max()) > max_atoms:
        raise TopodiffInputError(f"the data hold crystals of {int(n.max())} atoms, more than max_atoms={max_atoms}")
    crystal = np.repeat(np.arange(len(n)), n)
    pairs = np.unique(np.stack([crystal, np.asarray(species, dtype=np.int64).reshape(-1)]), axis=1)
    table = np.zeros((max_atoms + 1, max_atoms + 1))
    np.add.at(table, (n, np.bincount(pairs[0], minlength=len(n))), 1.0)
    return table


def distinct_elements(species: torch.Tensor, batch: torch.Tensor, num_crystals: int, width: int) -> torch.Tensor:
    """``[B, width]`` bool: element ``z`` (≥ 1) occurs among the revealed atoms of crystal ``b``."""
    present = torch.zeros(num_crystals, width, dtype=torch.bool, device=species.device)
    present[batch, species.clamp(0, width - 1)] = True
    present[:, MASK] = False
    return present


def draw_element_counts(table: torch.Tensor, num_atoms: torch.Tensor, generator: torch.Generator | None = None
                        ) -> torch.Tensor:
    """``[B]`` element counts, each drawn from the table's row for that crystal's atom count; a row
    with no training crystal raises :class:`TopodiffInputError`."""
    rows = table.to(torch.float64)[num_atoms.long().cpu()]
    if bool((rows.sum(-1) <= 0).any()):
        sizes = sorted(set(num_atoms[(rows.sum(-1) <= 0).to(num_atoms.device)].tolist()))
        raise TopodiffInputError(f"the training data have no crystal with {sizes} atoms to draw an element count "
                                 "from; use --sampler element_count=network")
    return torch.multinomial(rows, 1, generator=generator).squeeze(-1).to(num_atoms.device)


def allowed_species(species: torch.Tensor, batch: torch.Tensor, target: torch.Tensor, width: int) -> torch.Tensor:
    """``[N, width]`` bool: the species each atom may take so its crystal can end with exactly
    ``target [B]`` elements (rows of revealed atoms are all True; their species is fixed anyway)."""
    b = int(target.shape[0])
    present = distinct_elements(species, batch, b, width)
    have = present.sum(-1)
    masked_left = torch.zeros(b, dtype=torch.long, device=species.device).index_add_(
        0, batch, (species == MASK).long())
    full = have >= target                                   # only elements already present
    must_add = (target - have >= masked_left) & ~full        # only new elements
    allowed = torch.ones(b, width, dtype=torch.bool, device=species.device)
    allowed = torch.where(full[:, None], present, allowed)
    allowed = torch.where(must_add[:, None], ~present, allowed)
    allowed[:, MASK] = False
    return allowed[batch] | (species != MASK)[:, None]


def reveal_with_element_count(species: torch.Tensor, reveal: torch.Tensor, draw: torch.Tensor,
                              logits: torch.Tensor, batch: torch.Tensor, target: torch.Tensor,
                              generator: torch.Generator | None = None) -> torch.Tensor:
    """Reveal the atoms marked in ``reveal`` with species ``draw``, one atom per crystal at a time,
    re-drawing from ``softmax(logits)`` restricted by :func:`allowed_species` where ``draw`` breaks it."""
    out = species.clone()
    pending = reveal.clone()
    index = torch.arange(species.shape[0], device=species.device)
    b = int(target.shape[0])
    while bool(pending.any()):
        first = torch.full((b,), species.shape[0], dtype=torch.long, device=species.device)
        first = first.scatter_reduce(0, batch[pending], index[pending], reduce="amin")
        atoms = first[first < species.shape[0]]
        allowed = allowed_species(out, batch, target, logits.shape[-1])[atoms]
        restricted = logits[atoms].float().masked_fill(~allowed, float("-inf"))
        possible = torch.isfinite(restricted).any(-1)   # the network allows none (e.g. outside a chemical system)
        keep = allowed.gather(1, draw[atoms, None]).squeeze(1) | ~possible
        restricted = torch.where(possible[:, None], restricted, torch.zeros_like(restricted))
        redraw = torch.multinomial(torch.softmax(restricted, -1), 1, generator=generator).squeeze(-1)
        out[atoms] = torch.where(keep, draw[atoms], redraw)
        pending[atoms] = False
    return out

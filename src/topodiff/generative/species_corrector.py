"""Species corrector: Gibbs sweeps over a de novo crystal's composition after the joint pass.

The reveal of the absorbing-state (masked) species diffusion never revisits an atom: a species drawn
early, while most of the crystal was still masked, stays even when the rest of the crystal makes it
unlikely. A corrector sweep re-masks one atom per crystal and re-draws it from the network's
conditional given every other atom (coordinates at ``t = 0``, species time ``1/N``: one masked atom
of ``N``), the Gibbs / predictor-corrector step of masked discrete diffusion (Campbell et al. 2022;
Zhao et al. 2024, "informed correctors"). The atom re-masked is the least self-consistent one: the
largest ``−log p(own species | crystal) + Gumbel noise``, so a crystal's odd one out is revisited
first and every atom can be. Chemical-system masks still hold (the caller's logits carry them).

Measured on the step-40,000 ``default`` (500 samples, training side, docs/generator.md): 20 sweeps
bring the element count closer to the data's (d_elem 0.413 → 0.35-0.38) and lower compositional
validity (82.4 → 79.6 %), so they are off by default.
"""
from __future__ import annotations

from typing import Callable

import torch

from topodiff.generative.corruption.d3pm import MASK, gumbel_noise

#: ``logits_of(species [N], species_time [B]) -> logits [N, max_z+1]`` (−inf where not allowed)
LogitsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def least_consistent_atom(logits: torch.Tensor, species: torch.Tensor, batch: torch.Tensor, num_crystals: int,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """``[B]`` index of one atom per crystal: the largest ``−log p(own species) + Gumbel`` noise."""
    logp = torch.log_softmax(logits.float(), -1).gather(1, species[:, None]).squeeze(1)
    score = (-logp).nan_to_num(posinf=1e9) + gumbel_noise(species.shape, generator, species.device)
    best = torch.full((num_crystals,), -float("inf"), device=species.device).scatter_reduce(0, batch, score, "amax")
    is_best = score == best[batch]
    index = torch.arange(species.shape[0], device=species.device)
    first = torch.full((num_crystals,), species.shape[0], dtype=torch.long, device=species.device)
    return first.scatter_reduce(0, batch[is_best], index[is_best], "amin")


def gibbs_sweeps(species: torch.Tensor, num_atoms: torch.Tensor, logits_of: LogitsFn, sweeps: int, *,
                 temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """``sweeps`` corrector steps on fully revealed ``species [N]``; returns the new species.

    Each step evaluates the network twice (nothing masked, to choose the atom; then that atom masked,
    to re-draw it at ``temperature``)."""
    b = int(num_atoms.shape[0])
    batch = torch.repeat_interleave(torch.arange(b, device=species.device), num_atoms)
    clean, one_masked = torch.zeros(b, device=species.device), 1.0 / num_atoms.to(torch.float32)
    species = species.clone()
    for _ in range(int(sweeps)):
        pick = least_consistent_atom(logits_of(species, clean), species, batch, b, generator)
        masked = species.clone()
        masked[pick] = MASK
        logits = logits_of(masked, one_masked)[pick] / float(temperature)
        species[pick] = torch.multinomial(torch.softmax(logits.float(), -1), 1, generator=generator).squeeze(1)
    return species

"""Masked (absorbing-state) discrete diffusion of the species (D3PM, Austin et al. 2021).

Each atom's species is independently replaced by the mask token 0 with probability ``m(t)``
(``m(0) = 0``, ``m(1) = 1``). Reverse step ``t → s``: a masked atom is revealed with probability
``(m(t) − m(s)) / m(t)`` and takes a species drawn from the network's logits; revealed atoms stay.
With ``order="confident"`` the number revealed per crystal is drawn the same way, but the atoms
revealed are the masked ones whose drawn species is most probable (with Gumbel noise scaled by
``reveal_noise · t``), as in MaskGIT (Chang et al. 2022): confident atoms first, the rest conditioned on them.
The training loss is the cross-entropy on the masked atoms (the x0-parametrised ELBO up to weights).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from topodiff.errors import TopodiffInputError
from topodiff.generative.config import REVEAL_ORDERS
from topodiff.generative.corruption.schedules import get_schedule
from topodiff.generative.element_count import reveal_with_element_count

MASK = 0


class MaskedD3PM:
    """Absorbing-state species diffusion over atomic numbers 1..max_z (0 = mask)."""

    def __init__(self, schedule: str = "linear") -> None:
        self.mask_prob = get_schedule("mask", schedule)

    def q_sample(self, species: torch.Tensor, t_atom: torch.Tensor, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(species_t [N], masked [N] bool)`` for per-atom times ``t_atom [N]``."""
        u = torch.rand(species.shape, generator=generator, device=species.device)
        masked = u < self.mask_prob(t_atom)
        return torch.where(masked, torch.full_like(species, MASK), species), masked

    @staticmethod
    def loss(logits: torch.Tensor, species0: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over masked atoms (0 if none); ``logits [N, max_z+1]``."""
        if not bool(masked.any()):
            return torch.nan_to_num(logits, neginf=0.0).sum() * 0.0  # keeps the graph, no -inf·0
        return F.cross_entropy(logits[masked], species0[masked])

    def reverse_step(self, species_t: torch.Tensor, logits: torch.Tensor, t_atom: torch.Tensor, s_atom: torch.Tensor,
                     generator: torch.Generator | None = None, *, batch: torch.Tensor | None = None,
                     order: str = "random", reveal_noise: float = 1.0,
                     num_elements: torch.Tensor | None = None) -> torch.Tensor:
        """One reverse step ``t → s`` (per atom); ``logits`` must be −inf on disallowed species.
        ``order="confident"`` and ``num_elements`` (``[B]`` exact element count per crystal,
        :mod:`topodiff.generative.element_count`) need ``batch`` (crystal index of each atom)."""
        if order not in REVEAL_ORDERS:
            raise TopodiffInputError(f"unknown species reveal order {order!r}; choose from {', '.join(REVEAL_ORDERS)}")
        m_t, m_s = self.mask_prob(t_atom), self.mask_prob(s_atom)
        p_reveal = torch.where(m_t > 0, (m_t - m_s) / m_t.clamp_min(1e-12), torch.ones_like(m_t))
        u = torch.rand(species_t.shape, generator=generator, device=species_t.device)
        masked = species_t == MASK
        reveal = masked & (u < p_reveal)
        probs = torch.softmax(logits.float(), dim=-1)
        draw = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        if order == "confident":
            if batch is None:
                raise TopodiffInputError("order='confident' needs the batch index of each atom")
            reveal = masked & _most_confident(probs.gather(1, draw[:, None]).squeeze(1), masked, reveal, batch,
                                              reveal_noise * t_atom, generator)
        if num_elements is not None:
            if batch is None:
                raise TopodiffInputError("num_elements needs the batch index of each atom")
            return reveal_with_element_count(species_t, reveal, draw, logits, batch, num_elements, generator)
        return torch.where(reveal, draw, species_t)


def gumbel_noise(shape: tuple[int, ...], generator: torch.Generator | None, device=None) -> torch.Tensor:
    """Standard Gumbel draws ``−log(−log u)``, ``u`` uniform in (0, 1)."""
    u = torch.rand(shape, generator=generator, device=device).clamp(1e-12, 1 - 1e-12)
    return -torch.log(-torch.log(u))


def _most_confident(p_draw: torch.Tensor, masked: torch.Tensor, reveal: torch.Tensor, batch: torch.Tensor,
                    noise: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """For each crystal, mark its ``reveal.sum()`` masked atoms of highest ``log p_draw + noise·Gumbel``."""
    score = p_draw.clamp_min(1e-30).log() + noise * gumbel_noise(p_draw.shape, generator, p_draw.device)
    score = torch.where(masked, score, torch.full_like(score, -math.inf))
    by_score = torch.argsort(score, descending=True, stable=True)
    ordered = by_score[torch.argsort(batch[by_score], stable=True)]   # crystal by crystal, best first
    nb = int(batch.max()) + 1 if batch.numel() else 0
    counts = torch.zeros(nb, dtype=torch.long, device=batch.device).index_add_(0, batch, reveal.long())
    sizes = torch.bincount(batch, minlength=nb)
    start = torch.cumsum(sizes, 0) - sizes
    rank = torch.empty_like(ordered)
    rank[ordered] = torch.arange(ordered.numel(), device=batch.device) - start[batch[ordered]]
    return rank < counts[batch]

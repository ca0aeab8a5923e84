"""Masked (absorbing-state) discrete diffusion of the species (D3PM, Austin et al. 2021).

Each atom's species is independently replaced by the mask token 0 with probability ``m(t)``
(``m(0) = 0``, ``m(1) = 1``). Reverse step ``t → s``: a masked atom is revealed with probability
``(m(t) − m(s)) / m(t)`` and takes a species drawn from the network's logits; revealed atoms stay.
The training loss is the cross-entropy on the masked atoms (the x0-parametrised ELBO up to weights).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from topodiff.generative.corruption.schedules import get_schedule

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
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """One reverse step ``t → s`` (per atom); ``logits`` must be −inf on disallowed species."""
        m_t, m_s = self.mask_prob(t_atom), self.mask_prob(s_atom)
        p_reveal = torch.where(m_t > 0, (m_t - m_s) / m_t.clamp_min(1e-12), torch.ones_like(m_t))
        u = torch.rand(species_t.shape, generator=generator, device=species_t.device)
        reveal = (species_t == MASK) & (u < p_reveal)
        probs = torch.softmax(logits.float(), dim=-1)
        draw = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        return torch.where(reveal, draw, species_t)

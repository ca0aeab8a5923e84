"""Variance-preserving diffusion of the lattice toward a volume-scaled isotropic prior.

With ``s(n) = (n · v)^(1/3)`` (v: mean volume per atom of the training data, Å³) the lattice
``L [B,3,3]`` (rows = vectors, Å) is mapped to the latent ``Y = (L / s − I) / σ_L``, and ``Y`` follows
a standard DDPM: ``Y_t = sqrt(ᾱ_t) Y_0 + sqrt(1 − ᾱ_t) ε``. In lattice units the prior is therefore
``L_1 ∼ s(n) · (I + σ_L ε)``: a cube of the right volume with isotropic Gaussian noise (as MatterGen's
lattice corruption, Zeni et al. 2025, whose prior mean also scales with the atom count).
"""
from __future__ import annotations

import torch

from topodiff.generative.corruption.schedules import get_schedule


class LatticeVP:
    """VP lattice corruption; ``alpha_bar(t)`` from a named schedule."""

    def __init__(self, schedule: str = "cosine", prior_std: float = 0.3) -> None:
        self.alpha_bar = get_schedule("alpha_bar", schedule)
        self.prior_std = float(prior_std)

    @staticmethod
    def scale(num_atoms: torch.Tensor, volume_per_atom: torch.Tensor | float) -> torch.Tensor:
        """``s(n) = (n v)^(1/3)`` in Å, shape ``[B]``."""
        return (num_atoms.to(torch.float32) * volume_per_atom) ** (1.0 / 3.0)

    def to_latent(self, lattice: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        eye = torch.eye(3, dtype=lattice.dtype, device=lattice.device)
        return (lattice / s[:, None, None].to(lattice.dtype) - eye) / self.prior_std

    def from_latent(self, y: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        eye = torch.eye(3, dtype=y.dtype, device=y.device)
        return (eye + self.prior_std * y) * s[:, None, None].to(y.dtype)

    def q_sample(self, y0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y_t, ε)`` for latents ``y0 [B,3,3]`` at times ``t [B]``."""
        ab = self.alpha_bar(t)[:, None, None].to(y0.dtype)
        eps = torch.randn(y0.shape, generator=generator, dtype=y0.dtype, device=y0.device)
        return ab.sqrt() * y0 + (1 - ab).sqrt() * eps, eps

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        ab = self.alpha_bar(t)
        return ab / (1 - ab)

    def prior_sample(self, b: int, generator: torch.Generator | None = None, dtype=torch.float32, device=None) -> torch.Tensor:
        return torch.randn((b, 3, 3), generator=generator, dtype=dtype, device=device)

    def posterior_step(self, y_t: torch.Tensor, y0_hat: torch.Tensor, t: torch.Tensor, s: torch.Tensor,
                       generator: torch.Generator | None = None, eta: float = 1.0) -> torch.Tensor:
        """Sample ``q(y_s | y_t, ŷ_0)`` (DDPM posterior between arbitrary times s < t, per crystal).

        ``eta < 1`` takes the DDIM step (Song et al. 2021) with ``eta`` × the posterior standard
        deviation; ``eta = 1`` is the DDPM posterior, ``eta = 0`` deterministic."""
        ab_t = self.alpha_bar(t)[:, None, None].to(y_t.dtype)
        ab_s = torch.where(s > 0, self.alpha_bar(s), torch.ones_like(s))[:, None, None].to(y_t.dtype)
        a_ts = ab_t / ab_s
        var_t = 1 - ab_t
        var = ((1 - ab_s) * (1 - a_ts) / var_t).clamp_min(0)
        z = torch.randn(y_t.shape, generator=generator, dtype=y_t.dtype, device=y_t.device)
        if eta == 1.0:
            mean = (ab_s.sqrt() * (1 - a_ts) / var_t) * y0_hat + (a_ts.sqrt() * (1 - ab_s) / var_t) * y_t
            return mean + var.sqrt() * z
        var = eta ** 2 * var
        eps_hat = (y_t - ab_t.sqrt() * y0_hat) / var_t.clamp_min(1e-12).sqrt()
        return ab_s.sqrt() * y0_hat + (1 - ab_s - var).clamp_min(0).sqrt() * eps_hat + var.sqrt() * z

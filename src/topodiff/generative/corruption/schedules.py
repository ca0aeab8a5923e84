"""Swappable noise schedules, all functions of diffusion time ``t`` in [0, 1] (0 = data).

* :class:`GeometricSigma` — σ(t) = σ_min^(1−t) σ_max^t (variance-exploding, Song et al. 2021).
* :class:`CosineAlphaBar` — ᾱ(t) = cos²(π/2 · (t+s)/(1+s)) / cos²(π/2 · s/(1+s)) (Nichol & Dhariwal 2021).
* :class:`LinearAlphaBar` — ᾱ(t) = exp(−β₀t − ½(β₁−β₀)t²), the continuous linear-β DDPM.
* :class:`LinearMask`, :class:`CosineMask` — absorbing-state mask probability m(t), m(0)=0, m(1)=1.
"""
from __future__ import annotations

import math

import torch

from topodiff.errors import TopodiffInputError


class GeometricSigma:
    """σ(t) = σ_min^(1−t) σ_max^t."""

    def __init__(self, sigma_min: float = 0.005, sigma_max: float = 0.5) -> None:
        if not 0 < sigma_min < sigma_max:
            raise TopodiffInputError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma_min ** (1 - t) * self.sigma_max ** t


class CosineAlphaBar:
    """Cosine ᾱ(t), clipped to [1e-4, 1 − 1e-6]."""

    def __init__(self, s: float = 0.008) -> None:
        self.s = s

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        f = torch.cos((t + self.s) / (1 + self.s) * math.pi / 2) ** 2
        f0 = math.cos(self.s / (1 + self.s) * math.pi / 2) ** 2
        return (f / f0).clamp(1e-4, 1 - 1e-6)


class LinearAlphaBar:
    """Continuous-time linear-β ᾱ(t), clipped to [1e-4, 1 − 1e-6]."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0) -> None:
        self.b0, self.b1 = beta_min, beta_max

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self.b0 * t - 0.5 * (self.b1 - self.b0) * t ** 2).clamp(1e-4, 1 - 1e-6)


class LinearMask:
    """m(t) = t."""

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        return t.clamp(0.0, 1.0)


class CosineMask:
    """m(t) = 1 − cos(π t / 2)."""

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        return 1 - torch.cos(t.clamp(0.0, 1.0) * math.pi / 2)


_ALPHA_BAR = {"cosine": CosineAlphaBar, "linear": LinearAlphaBar}
_MASK = {"linear": LinearMask, "cosine": CosineMask}


def get_schedule(kind: str, name: str, **kwargs):
    """Schedule by family (``"alpha_bar"``, ``"mask"``, ``"sigma"``) and name."""
    table = {"alpha_bar": _ALPHA_BAR, "mask": _MASK, "sigma": {"geometric": GeometricSigma}}.get(kind)
    if table is None:
        raise TopodiffInputError(f"unknown schedule family {kind!r}")
    if name not in table:
        raise TopodiffInputError(f"unknown {kind} schedule {name!r}; choose from {', '.join(sorted(table))}")
    return table[name](**kwargs)

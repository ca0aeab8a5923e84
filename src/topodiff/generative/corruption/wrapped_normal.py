"""Variance-exploding diffusion of fractional coordinates on the torus [0, 1)³ (wrapped normal).

The forward kernel is the wrapped normal ``p_σ(x) = Σ_k N(x + k; 0, σ²)`` applied per coordinate to
the displacement ``x = f_t − f_0``. Its score ``∂_x log p_σ(x) = Σ_k w_k · (−(x+k)/σ²)`` with
``w_k = softmax_k(−(x+k)²/2σ²)`` is computed stably (as in DiffCSP, Jiao et al. 2023, and MatterGen).
The network regresses the score divided by ``sqrt(λ(σ))``, ``λ(σ) = E_{x∼p_σ}[(∂_x log p_σ)²]``
(computed by quadrature), so that the target has unit scale at every noise level.
"""
from __future__ import annotations

import functools
import math

import torch

from topodiff.generative.corruption.schedules import GeometricSigma


def _shifts(n_images: int, like: torch.Tensor) -> torch.Tensor:
    return torch.arange(-n_images, n_images + 1, dtype=like.dtype, device=like.device)


def wrapped_normal_log_density(x: torch.Tensor, sigma: torch.Tensor, n_images: int = 5) -> torch.Tensor:
    """Exact (truncated-sum) log density of the 1D wrapped normal, elementwise; ``sigma`` broadcasts."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    y = x[..., None] + _shifts(n_images, x)
    s = sigma[..., None]
    return torch.logsumexp(-y ** 2 / (2 * s ** 2), dim=-1) - torch.log(s) - 0.5 * torch.log(torch.tensor(2 * torch.pi, dtype=x.dtype))


def wrapped_normal_score(x: torch.Tensor, sigma: torch.Tensor, n_images: int = 5) -> torch.Tensor:
    """``∂_x log p_σ(x)`` of the wrapped normal, elementwise (x in any range, σ broadcasts)."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    x = x - torch.round(x)
    y = x[..., None] + _shifts(n_images, x)
    s2 = (sigma ** 2)[..., None]
    w = torch.softmax(-y ** 2 / (2 * s2), dim=-1)
    return (w * (-y / s2)).sum(-1)


def score_norm(sigma: torch.Tensor, n_grid: int = 256, n_images: int = 5) -> torch.Tensor:
    """``λ(σ) = E_{x∼p_σ}[(∂_x log p_σ(x))²]`` by midpoint quadrature on [−½, ½); shape of ``sigma``.

    For σ too small for the grid (σ · n_grid < 8) the Gaussian limit ``1/σ²`` is used.
    """
    sigma = torch.as_tensor(sigma)
    dtype = sigma.dtype if sigma.is_floating_point() else torch.float64
    sig = sigma.reshape(-1).to(torch.float64)
    x = (torch.arange(n_grid, dtype=torch.float64, device=sig.device) + 0.5) / n_grid - 0.5
    y = x[None, :, None] + _shifts(n_images, x)                # [S, G, M]
    s2 = (sig ** 2)[:, None, None]
    logw = -y ** 2 / (2 * s2)
    p = torch.softmax(torch.logsumexp(logw, -1), -1)           # normalised density on the grid
    sc = (torch.softmax(logw, -1) * (-y / s2)).sum(-1)
    lam = (p * sc ** 2).sum(-1)
    lam = torch.where(sig * n_grid < 8, 1 / sig ** 2, lam)
    return lam.reshape(sigma.shape).to(dtype)


@functools.lru_cache(maxsize=8)
def _log_norm_table(log_lo: float, log_hi: float, size: int) -> torch.Tensor:
    """``log λ(σ)`` on ``size`` points of ``log σ ∈ [log_lo, log_hi]`` (float32). Computed once per process
    (0.27 s: every model load built it again); callers only read it."""
    grid = torch.linspace(log_lo, log_hi, size, dtype=torch.float64)
    return torch.log(score_norm(torch.exp(grid))).to(torch.float32)


class WrappedNormalVE:
    """VE wrapped-normal corruption of fractional coordinates.

    ``q(f_t | f_0) = WN(f_0, σ(t)²)`` per coordinate with geometric σ(t).
    """

    def __init__(self, sigma_min: float = 0.005, sigma_max: float = 0.5, table_size: int = 2048) -> None:
        self.sigma = GeometricSigma(sigma_min, sigma_max)
        # λ(σ) tabulated on a log grid and interpolated (it is needed for every atom at every step)
        self._log_lo, self._log_hi = math.log(sigma_min) - 1e-3, math.log(sigma_max) + 1e-3
        self._log_lam = _log_norm_table(self._log_lo, self._log_hi, table_size)  # shared: read only

    def norm(self, sigma: torch.Tensor) -> torch.Tensor:
        """``λ(σ)`` by linear interpolation of ``log λ`` on a log-σ grid (rel. error < 1e-5)."""
        n = self._log_lam.numel()
        u = ((torch.log(sigma.float()) - self._log_lo) / (self._log_hi - self._log_lo) * (n - 1)).clamp(0, n - 1)
        i0 = u.floor().long().clamp(max=n - 2)
        w = u - i0
        table = self._log_lam.to(sigma.device)
        return torch.exp(table[i0] * (1 - w) + table[i0 + 1] * w).to(sigma.dtype)

    def q_sample(self, frac0: torch.Tensor, t_atom: torch.Tensor, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise ``frac0 [N,3]`` at per-atom times ``t_atom [N]``.

        Returns ``(frac_t [N,3] in [0,1), target [N,3])`` where target is the normalised score
        ``∂ log q(f_t|f_0) / sqrt(λ(σ))``.
        """
        sig = self.sigma(t_atom)[:, None]
        eps = torch.randn(frac0.shape, generator=generator, dtype=frac0.dtype, device=frac0.device)
        disp = sig * eps
        frac_t = torch.remainder(frac0 + disp, 1.0)
        target = wrapped_normal_score(disp, sig) / torch.sqrt(self.norm(sig))
        return frac_t, target

    def prior_sample(self, n: int, generator: torch.Generator | None = None, dtype=torch.float32, device=None) -> torch.Tensor:
        """Uniform fractional coordinates ``[n, 3]`` (the σ_max ≈ ½ wrapped normal is uniform to 1e-4)."""
        return torch.rand((n, 3), generator=generator, dtype=dtype, device=device)

    def score(self, pred: torch.Tensor, sigma_atom: torch.Tensor) -> torch.Tensor:
        """Un-normalise a network output ``pred [N,3]`` at ``sigma_atom [N]`` into a score."""
        return pred * torch.sqrt(self.norm(sigma_atom))[:, None]

    def predictor_step(self, frac: torch.Tensor, score: torch.Tensor, sig_t: torch.Tensor, sig_s: torch.Tensor,
                       generator: torch.Generator | None = None, noise_scale: float = 1.0) -> torch.Tensor:
        """Reverse-diffusion (ancestral VE) step σ_t → σ_s < σ_t; per-atom ``sig_* [N]``.

        ``noise_scale`` multiplies the step's noise (1: the exact ancestral step; < 1 sharpens the
        samples toward the modes of the learned density)."""
        st, ss = sig_t[:, None], sig_s[:, None]
        var = st ** 2 - ss ** 2
        std = noise_scale * torch.sqrt(ss ** 2 * var / st ** 2)
        z = torch.randn(frac.shape, generator=generator, dtype=frac.dtype, device=frac.device)
        return torch.remainder(frac + var * score + std * z, 1.0)

    def corrector_step(self, frac: torch.Tensor, score: torch.Tensor, sig_t: torch.Tensor, step_lr: float,
                       generator: torch.Generator | None = None, noise_scale: float = 1.0) -> torch.Tensor:
        """Langevin step with size ``step_lr · (σ_t/σ_min)²`` (DiffCSP's corrector).

        ``noise_scale`` multiplies the Langevin noise: the chain then targets ``p^(1/noise_scale²)``
        (a lower temperature for ``noise_scale < 1``; 1 is plain Langevin dynamics)."""
        step = (step_lr * (sig_t / self.sigma.sigma_min) ** 2)[:, None]
        z = torch.randn(frac.shape, generator=generator, dtype=frac.dtype, device=frac.device)
        return torch.remainder(frac + step * score + noise_scale * torch.sqrt(2 * step) * z, 1.0)

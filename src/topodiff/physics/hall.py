"""Anomalous Hall conductivity from the Kubo formula (Berry curvature of the occupied states).

TKNN / Xiao, Chang & Niu (RMP 82, 1959 (2010), Eq. 3.13):

    σ_ab = (e²/ħ) ∫ d^dk/(2π)^d Σ_n f(E_n) Ω_n^ab,
    Ω_n^ab = −2 Im Σ_{m≠n} ⟨n|∂_a H|m⟩⟨m|∂_b H|n⟩ / (E_n − E_m)²,

with ``Ω = ∇×A``, ``A = i⟨u|∇u⟩`` (the CONTRACTS §2 sign) and ``f`` the Fermi-Dirac occupation.
The pair form ``Σ_n f_n Ω_n = −Σ_{n,m} (f_n − f_m) Im(X_nm Y_mn)/(E_n − E_m)²`` needs no care at
degenerate pairs (equal occupations cancel), so it is evaluated for all bands at once.

* 2D: ``σ_xy`` in e²/h, in reduced coordinates (x along a1, y completing a right-handed pair);
  ``σ_xy = (1/2π) ∫ Σ f Ω d²κ`` equals the Chern number of ``chern`` (same sign) in a gap.
* 3D: the Cartesian tensor ``σ_ab = (e²/h)(2π/V)⟨Σ f Ω_ab⟩_κ`` in S/cm, plus the sheet value
  ``σ_xy · d`` (e²/h per layer of thickness ``d = V/|a1×a2|``) when a3 is the only vector out of the xy plane.

Bloch convention II (orbital positions) is used: the physical curvature, whose integral inside a
band depends on it. Integration: midpoint rule on a uniform grid (spectrally accurate for a smooth
periodic integrand), doubled near band crossings until the narrowest curvature peak is resolved;
cells holding a sharp (T = 0) Fermi surface are then split ``split^d`` times, repeatedly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from topodiff.errors import TopodiffInputError
from topodiff.physics.model import COMPLEX, REAL, TBModel, bloch_hamiltonian

__all__ = ["HallResult", "hall_conductivity", "hall_scan", "velocity_matrices", "fermi_dirac", "KB_EV",
           "E2_H_SIEMENS"]

KB_EV = 8.617333262e-5  # Boltzmann constant (eV/K)
E2_H_SIEMENS = 3.874045865e-5  # e²/h in S
TWO_PI = 2.0 * math.pi
RESOLVE = 2.0  # the uniform grid is doubled until the narrowest curvature peak spans RESOLVE cells


def fermi_dirac(e: torch.Tensor, mu: torch.Tensor, temperature: float) -> torch.Tensor:
    """Occupation ``f(E − μ)`` at ``temperature`` (K); a step (½ at E = μ) for T = 0. Broadcasts."""
    if temperature <= 0:
        return torch.where(e < mu, 1.0, torch.where(e > mu, 0.0, 0.5)).to(REAL)
    return torch.sigmoid(-(e - mu) / (KB_EV * temperature))


def velocity_matrices(model: TBModel, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``H(κ)`` and ``∂H/∂κ_a`` (convention II) at reduced k-points ``[n, dim]``.

    Returns ``H [n, nb, nb]`` and ``dH [dim, n, nb, nb]`` (eV per unit of reduced κ, so it includes 2π).
    """
    Rs, T = model.table
    pos = torch.as_tensor(model.state_positions, dtype=REAL)
    Rt = torch.as_tensor(Rs)
    Tt = torch.as_tensor(T)
    H = bloch_hamiltonian(k, Rt, Tt, pos)
    TR = Tt[None] * Rt.T.to(COMPLEX)[:, :, None, None]  # [dim, n_R, nb, nb]
    dH = bloch_hamiltonian(k, Rt, TR, pos)  # [dim, n, nb, nb]
    dtau = (pos[None, :, :] - pos[:, None, :]).permute(2, 0, 1).to(COMPLEX)  # [dim, nb, nb]: τ_j − τ_i
    dH = 2j * math.pi * (dH + dtau[:, None] * H[None])
    return H, dH


def _pairs(model: TBModel) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Component pairs and the reduced→Cartesian derivative map ``J [n_cart, dim]`` (identity in 2D)."""
    if model.dim == 2:
        return [(0, 1)], np.eye(2)
    if model.dim != 3:
        raise TopodiffInputError(f"Hall conductivity needs a 2D or 3D model, got {model.dim}D")
    lat = model.lattice[:, :3]
    return [(1, 2), (2, 0), (0, 1)], lat.T / TWO_PI  # ∂/∂k_c = Σ_a (A_ac / 2π) ∂/∂κ_a


def _integrand(model: TBModel, k: np.ndarray, mu: torch.Tensor, temperature: float, width: float, chunk: int
               ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``Σ_n f_n Ω_n`` ``[n_k, n_pairs, n_mu]``, the cells of half-width ``width`` holding a sharp Fermi
    surface ``[n_k, n_mu]``, and the narrowest curvature peak on the points (reduced units).

    Fermi surface: ``|E_n − μ| < 2√d |∇E_n| · width`` (the cell's corners, with a margin for curved
    bands) while ``k_B T < |∇E_n| · width`` (a step the temperature does not smooth). Peak width:
    ``min (E_m − E_n) / (|∇E_n| + |∇E_m|)`` over pairs with different occupations (a near crossing
    of an occupied and an empty band makes ``Ω`` a peak of about that width).
    """
    pairs, J = _pairs(model)
    Jt = torch.as_tensor(J, dtype=COMPLEX)
    kT = KB_EV * temperature
    out, flags, narrow = [], [], math.inf
    for s in range(0, len(k), chunk):
        kt = torch.as_tensor(k[s:s + chunk], dtype=REAL)
        H, dH = velocity_matrices(model, kt)
        e, V = torch.linalg.eigh(H)
        D = V.mH[None] @ dH @ V[None]  # [dim, n, nb, nb] in the eigenbasis
        grad = D.diagonal(dim1=-2, dim2=-1).real.norm(dim=0)  # [n, nb] |∇_κ E_n|
        Dc = torch.einsum("ca,anij->cnij", Jt, D)
        de = e[:, :, None] - e[:, None, :]
        inv2 = torch.where(de.abs() > 1e-9, 1.0 / torch.where(de.abs() > 1e-9, de, 1.0) ** 2, 0.0)
        f = fermi_dirac(e[..., None], mu, temperature)  # [n, nb, n_mu]
        df = f[:, :, None, :] - f[:, None, :, :]  # [n, nb, nb, n_mu]
        out.append(torch.stack([-torch.einsum("nij,nijm->nm", (Dc[a] * Dc[b].mT).imag * inv2, df)
                                for a, b in pairs], dim=1))
        peak = de.abs() / (grad[:, :, None] + grad[:, None, :]).clamp_min(1e-12)
        mixed = (df.abs() > 1e-3).any(-1)
        if mixed.any():
            narrow = min(narrow, float(peak[mixed].min()))
        near = (e[..., None] - mu).abs() < grad[..., None] * width * 2 * math.sqrt(k.shape[1])  # corner + curvature
        flags.append((near & (grad[..., None] * width > kT)).any(1))
    return torch.cat(out), torch.cat(flags), narrow


@dataclass
class HallResult:
    """σ at one or more Fermi levels.

    fermi ``[n_mu]`` (eV); sigma ``[n_mu, n_pairs]`` in e²/h (2D, one pair xy) or e²/h per Å
    (3D: yz, zx, xy, Cartesian); coarse: the same on the first grid (no refinement); nk: the
    uniform grid used after doubling; points: k-points evaluated in all; levels: Fermi-surface
    refinement levels used; resolved: the narrowest curvature peak spans at least one cell.
    """

    fermi: np.ndarray
    sigma: np.ndarray
    coarse: np.ndarray
    nk: int
    points: int
    levels: int
    dim: int
    resolved: bool
    layer: float | None = None

    def sigma_xy(self, *, coarse: bool = False) -> np.ndarray:
        """``[n_mu]`` σ_xy: e²/h (2D) or the sheet value per layer in e²/h (3D; NaN if no layer);
        ``coarse``: the same from the first grid (no refinement)."""
        s = self.coarse if coarse else self.sigma
        if self.dim == 2:
            return s[:, 0]
        return s[:, 2] * (self.layer if self.layer else math.nan)

    def tensor_s_per_cm(self) -> np.ndarray:
        """3D: ``[n_mu, 3, 3]`` antisymmetric σ in S/cm."""
        s = self.sigma * E2_H_SIEMENS * 1e8
        out = np.zeros((len(s), 3, 3))
        for c, (a, b) in enumerate([(1, 2), (2, 0), (0, 1)]):
            out[:, a, b], out[:, b, a] = s[:, c], -s[:, c]
        return out


def _layer_thickness(model: TBModel) -> float | None:
    lat = model.lattice[:, :3]
    if np.allclose(lat[:2, 2], 0.0) and abs(lat[2, 2]) > 0:
        return abs(float(np.linalg.det(lat))) / float(np.linalg.norm(np.cross(lat[0], lat[1])))
    return None


def _uniform(dim: int, nk: int) -> np.ndarray:
    axes = (np.arange(nk) + 0.5) / nk
    return np.stack(np.meshgrid(*[axes] * dim, indexing="ij"), axis=-1).reshape(-1, dim)


def hall_conductivity(model: TBModel, fermi: float | np.ndarray, *, temperature: float = 0.0, nk: int | None = None,
                      max_nk: int | None = None, levels: int = 3, split: int = 4,
                      max_points: int = 400_000, chunk: int | None = None) -> HallResult:
    """Anomalous Hall conductivity at Fermi level(s) ``fermi`` (eV) and ``temperature`` (K).

    Two refinements, as the integrand needs them:

    * near band crossings: the uniform midpoint grid (spectrally accurate for a smooth periodic
      integrand) is doubled from ``nk`` (default 128 in 2D, 24 in 3D) up to ``max_nk`` (default
      ``min(8 nk, 1024)`` in 2D, ``2 nk`` in 3D, lowered for many bands) until the narrowest
      curvature peak spans ``RESOLVE`` cells (a semimetal's nodes never do: ``resolved`` is False);
    * Fermi surfaces (T = 0 steps): up to ``levels`` times, every cell that may hold one is split
      into ``split^dim`` sub-cells, for that Fermi level only (at most ``max_points`` new k-points
      per level, largest contributions first).
    """
    dim = model.dim
    _pairs(model)
    nk = nk or (128 if dim == 2 else 24)
    if nk < 2:
        raise TopodiffInputError(f"nk must be at least 2, got {nk}")
    if temperature < 0 or not math.isfinite(temperature):
        raise TopodiffInputError(f"temperature must be a finite number >= 0 K, got {temperature}")
    budget = int((3e9 / model.num_bands ** 3) ** (1 / dim))
    max_nk = max(nk, max_nk or min(min(8 * nk, 1024) if dim == 2 else 2 * nk, budget))
    mu = torch.as_tensor(np.atleast_1d(np.asarray(fermi, dtype=float)), dtype=REAL)
    chunk = chunk or max(256, (1 << 22) // (model.num_bands ** 2 * max(1, len(mu))))
    points, first = 0, None
    while True:
        centres, width = _uniform(dim, nk), 1.0 / nk
        g, flag, narrow = _integrand(model, centres, mu, temperature, width / 2, chunk)
        points += len(centres)
        first = g.sum(0) * width ** dim if first is None else first
        resolved = narrow >= RESOLVE * width
        if resolved or 2 * nk > max_nk:
            break
        nk *= 2
    total = g.sum(0) * width ** dim
    offsets = (np.arange(split) + 0.5) / split - 0.5
    sub = np.stack(np.meshgrid(*[offsets] * dim, indexing="ij"), axis=-1).reshape(-1, dim)
    used, active = 0, torch.ones_like(flag)
    for _ in range(levels):  # per Fermi level: only its own Fermi-surface cells are refined
        score = g.abs().amax(dim=1)  # [n_k, n_mu]: priority when capped
        sel = active & flag
        idx = torch.nonzero(sel.any(1)).reshape(-1)
        if idx.numel() == 0:
            break
        cap = max(1, max_points // len(sub))
        if idx.numel() > cap:
            idx = idx[torch.argsort((score * sel).amax(1)[idx], descending=True)[:cap]]
        total = total - (g[idx] * sel[idx, None, :]).sum(0) * width ** dim
        centres = (centres[idx.numpy()][:, None, :] + width * sub[None]).reshape(-1, dim)
        active = sel[idx].repeat_interleave(len(sub), dim=0)
        width = width / split
        g, flag, _ = _integrand(model, centres, mu, temperature, width / 2, chunk)
        total = total + (g * active[:, None, :]).sum(0) * width ** dim
        points += len(centres)
        used += 1
    scale = 1 / TWO_PI if dim == 2 else TWO_PI / abs(float(np.linalg.det(model.lattice[:, :3])))
    return HallResult(mu.numpy(), (total * scale).T.numpy(), (first * scale).T.numpy(), nk, points, used, dim,
                      bool(resolved), _layer_thickness(model) if dim == 3 else None)


def hall_scan(model: TBModel, emin: float, emax: float, num: int, **options: object) -> HallResult:
    """σ over ``num`` Fermi levels from ``emin`` to ``emax`` (eV), in one pass over the grid."""
    if num < 1 or not (math.isfinite(emin) and math.isfinite(emax)) or emax < emin:
        raise TopodiffInputError(f"scan needs finite EMIN <= EMAX and N >= 1, got {emin}, {emax}, {num}")
    return hall_conductivity(model, np.linspace(emin, emax, num), **options)  # type: ignore[arg-type]

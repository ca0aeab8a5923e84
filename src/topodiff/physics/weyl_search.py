"""Finding band degeneracies in 3D: gap-minimum seeds, batched Newton refinement, k-space symmetries.

The direct gap ``g(κ) = E_f(κ) − E_{f−1}(κ)`` between bands ``f−1`` and ``f`` is scanned on a coarse
``nk³`` grid (separable Bloch sums, chunked so memory stays bounded); every periodic local minimum
below a threshold is re-scanned on a finer zoom grid around it, so that two nodes closer than the
coarse spacing give two seeds. Each seed is refined by Newton's method on the two-band ``d``-vector
(``h = ε + d·σ`` projected on bands ``f−1, f``, ``∂d/∂κ`` from Hellmann-Feynman matrix elements
``⟨a|∂H/∂κ_j|b⟩``): a Weyl node is a simple zero of ``d``, reached quadratically; on a nodal line
``∂d/∂κ`` is singular and the minimum-norm (pseudo-inverse) step lands on the line.

k-space symmetries of the band structure (``E(Gκ) = E(κ)`` up to a tolerance) are found among the
lattice's point-group operations in reduced coordinates (``−1`` holds with time reversal or
inversion); images of found nodes under them are extra seeds, each verified by refinement.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from topodiff.physics.model import REAL, TBModel
from topodiff.physics.spectra import grid_hamiltonian

__all__ = ["gap_grid", "local_minima", "slice_minima", "zoom_seeds", "newton_refine", "kspace_symmetries", "periodic_distance", "wrap"]


def periodic_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Largest-component distance on the 3-torus between reduced points ``a [..., 3]`` and ``b [..., 3]``."""
    d = np.remainder(np.asarray(a) - np.asarray(b) + 0.5, 1.0) - 0.5
    return np.abs(d).max(-1)


def gap_grid(model: TBModel, occ: int, axes: list[np.ndarray], chunk_points: int = 1500) -> np.ndarray:
    """Direct gap (eV) on the product grid ``axes`` (three 1D arrays), ``[n0, n1, n2]``.

    The Hamiltonians are built slab by slab along axis 0 (at most ``chunk_points`` k-points at once),
    so memory is ``chunk_points × nb²`` complex numbers whatever the grid.
    """
    n12 = len(axes[1]) * len(axes[2])
    step = max(1, chunk_points // max(1, n12))
    out = []
    for s in range(0, len(axes[0]), step):
        H = grid_hamiltonian(model, [axes[0][s:s + step], axes[1], axes[2]], convention=1)
        e = torch.linalg.eigvalsh(H)
        out.append((e[..., occ] - e[..., occ - 1]).numpy())
    return np.concatenate(out, axis=0)


def local_minima(gap: np.ndarray, *, periodic: bool) -> np.ndarray:
    """Boolean mask of points not above any of their 26 neighbours (periodic or edge-padded grid)."""
    g = gap if periodic else np.pad(gap, 1, constant_values=np.inf)
    mask = np.ones_like(g, dtype=bool)
    for s in itertools.product((-1, 0, 1), repeat=3):
        if s != (0, 0, 0):
            mask &= g <= np.roll(g, shift=s, axis=(0, 1, 2))
    return mask if periodic else mask[1:-1, 1:-1, 1:-1]


def slice_minima(gap: np.ndarray) -> np.ndarray:
    """Points of a periodic grid that are minima among their 8 neighbours in at least one of the three
    lattice planes through them (nodes pinned to a mirror plane sit in a valley of that plane whose
    3D minimum can lie far off the plane)."""
    mask = np.zeros_like(gap, dtype=bool)
    for normal in range(3):
        m = np.ones_like(gap, dtype=bool)
        for s in itertools.product((-1, 0, 1), repeat=2):
            if s != (0, 0):
                shift = list(s)
                shift.insert(normal, 0)
                m &= gap <= np.roll(gap, shift=shift, axis=(0, 1, 2))
        mask |= m
    return mask


def zoom_seeds(model: TBModel, occ: int, centres: np.ndarray, half_width: float, m: int,
               threshold: float) -> np.ndarray:
    """Local minima (gap < ``threshold``) of ``m³`` grids spanning ``±half_width`` around each centre."""
    offs = np.linspace(-half_width, half_width, m)
    seeds = []
    for c in centres:
        g = gap_grid(model, occ, [c[0] + offs, c[1] + offs, c[2] + offs])
        idx = np.argwhere(local_minima(g, periodic=False) & (g < threshold))
        seeds.extend(c + offs[idx])
    return wrap(np.asarray(seeds, dtype=float).reshape(-1, 3))


def _h_and_derivatives(model: TBModel, k: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Convention-I ``H(κ)`` ``[n, nb, nb]`` and ``∂H/∂κ_j`` ``[3, n, nb, nb]`` (per unit of reduced κ)."""
    Rs, T = model.table
    nb = T.shape[-1]
    Tt = torch.as_tensor(T.reshape(len(Rs), nb * nb))
    Rt = torch.as_tensor(Rs, dtype=REAL)
    ph = torch.exp(2j * math.pi * (torch.as_tensor(k, dtype=REAL) @ Rt.T).to(Tt.dtype))  # [n, n_R]
    fac = torch.cat([torch.ones(1, len(Rs), dtype=Tt.dtype), (2j * math.pi * Rt.T).to(Tt.dtype)])  # [4, n_R]
    out = ((ph[None] * fac[:, None]) @ Tt).reshape(4, len(k), nb, nb)
    return out[0], out[1:]


def _newton_step(model: TBModel, occ: int, k: np.ndarray, max_step: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Newton step at points ``k [n, 3]``: ``(gap [n], σ_min/σ_max of ∂d/∂κ [n], new k [n, 3])``."""
    H, dH = _h_and_derivatives(model, k)
    e, V = torch.linalg.eigh(H)
    a = V[..., occ - 1:occ + 1]  # [n, nb, 2]
    M = a.mH[None] @ dH @ a[None]  # [3, n, 2, 2]
    J = torch.stack([M[..., 0, 1].real, -M[..., 0, 1].imag, (M[..., 0, 0] - M[..., 1, 1]).real / 2],
                    dim=-1).permute(1, 2, 0)  # [n, component of d, j]
    g = (e[:, occ] - e[:, occ - 1]).numpy()
    sv = torch.linalg.svdvals(J).numpy()
    d = torch.zeros(len(k), 3, dtype=REAL)
    d[:, 2] = -torch.as_tensor(g) / 2  # in the band basis d = (0, 0, −gap/2)
    step = -(torch.linalg.pinv(J, rtol=1e-8) @ d[..., None])[..., 0].numpy()
    step = step / np.maximum(1.0, np.abs(step).max(-1) / max_step)[:, None]
    return g, sv[:, -1] / np.maximum(sv[:, 0], 1e-300), k + _backtrack(model, occ, k, step, g)[:, None] * step


def _backtrack(model: TBModel, occ: int, k: np.ndarray, step: np.ndarray, g: np.ndarray,
               fractions: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)) -> np.ndarray:
    """Largest fraction of each Newton step that lowers the gap (the smallest one if none does), so a
    seed between two close nodes is not thrown out of its node's basin by an anisotropic cone."""
    f = np.asarray(fractions)
    trial = (k[None] + f[:, None, None] * step[None]).reshape(-1, 3)
    e = torch.linalg.eigvalsh(model.hamiltonian(trial, convention=1)).numpy()
    gt = (e[:, occ] - e[:, occ - 1]).reshape(len(f), len(k))
    ok = gt < g[None]
    return np.where(ok.any(0), f[np.argmax(ok, axis=0)], f[-1])


def newton_refine(model: TBModel, occ: int, seeds: np.ndarray, *, max_step: float, iters: int = 30,
                  tol: float = 1e-10, chunk: int = 64, patience: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Newton on the two-band ``d``-vector from every seed (batched).

    Returns the best point per seed ``[n, 3]`` (reduced, in [0, 1)), its gap ``[n]`` (eV) and the
    singular-value ratio ``σ_min/σ_max`` of ``∂d/∂κ`` there ``[n]`` (≈ 0 on a nodal line).
    Steps are clipped to ``max_step`` per component; a seed stops once its gap is below ``tol``, when
    its best gap has not halved in ``patience`` steps (a gapped minimum), or when it reaches a point
    another seed already holds (within 1e-7).
    """
    k = np.asarray(seeds, dtype=float).reshape(-1, 3).copy()
    best_k, best_g = k.copy(), np.full(len(k), np.inf)
    ratio, history = np.ones(len(k)), [best_g.copy()]
    active = np.arange(len(k))
    for it in range(iters):
        if active.size == 0:
            break
        for s in range(0, active.size, chunk):
            idx = active[s:s + chunk]
            at = k[idx].copy()
            g, r, k[idx] = _newton_step(model, occ, at, max_step)
            better = g < best_g[idx]
            best_g[idx[better]], best_k[idx[better]], ratio[idx[better]] = g[better], at[better], r[better]
        history.append(best_g.copy())
        keep = best_g[active] >= tol
        if it >= patience:
            keep &= best_g[active] <= 0.5 * history[-1 - patience][active]
        active = _drop_duplicates(k, active[keep])
    return wrap(best_k), best_g, ratio


def _drop_duplicates(k: np.ndarray, active: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    """Active seeds minus those sitting (within ``tol``) where an earlier active seed sits."""
    if active.size < 2:
        return active
    key = np.round(np.remainder(k[active], 1.0) / tol).astype(np.int64)
    _, first = np.unique(key, axis=0, return_index=True)
    return active[np.sort(first)]


def wrap(k: np.ndarray) -> np.ndarray:
    """Reduced points in [0, 1), with values within 1e-12 of an integer snapped to 0."""
    k = np.remainder(k, 1.0)
    k[(k < 1e-12) | (k > 1.0 - 1e-12)] = 0.0
    return k


def _point_group_candidates(lattice: np.ndarray) -> list[np.ndarray]:
    """Integer 3x3 matrices G (entries −1, 0, 1, |det| = 1) with ``G`` preserving the reciprocal metric."""
    B = 2 * math.pi * np.linalg.inv(lattice).T  # rows b_i
    gstar = B @ B.T
    G = np.array(list(itertools.product((-1, 0, 1), repeat=9)), dtype=float).reshape(-1, 3, 3)
    G = G[np.abs(np.abs(np.linalg.det(G)) - 1) < 1e-9]
    err = np.abs(G @ gstar @ np.swapaxes(G, 1, 2) - gstar).max(axis=(1, 2))  # κ' = κ G^T preserves |k|
    return list(G[err <= 1e-6 * np.abs(gstar).max()])


def kspace_symmetries(model: TBModel, *, rel_tol: float = 1e-3, n_test: int = 4) -> list[np.ndarray]:
    """Point operations ``G`` (reduced coordinates, ``κ → G κ``) under which the spectrum is invariant.

    Tested at ``n_test`` random k-points: ``max |E(Gκ) − E(κ)| ≤ rel_tol ×`` the spectral width. The
    identity is excluded. Real Wannier models break their symmetries slightly; images found with
    these operations are only seeds, each verified by refinement.
    """
    cands = [G for G in _point_group_candidates(model.lattice) if not np.allclose(G, np.eye(3))]
    if not cands:
        return []
    k = np.random.default_rng(7).random((n_test, 3))
    pts = np.concatenate([k] + [k @ G.T for G in cands])
    e = torch.linalg.eigvalsh(model.hamiltonian(pts, convention=1)).numpy().reshape(len(cands) + 1, n_test, -1)
    width = float(e[0].max() - e[0].min()) or 1.0
    err = np.abs(e[1:] - e[0][None]).max(axis=(1, 2))
    return [G for G, x in zip(cands, err) if x <= rel_tol * width]

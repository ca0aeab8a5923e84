"""Weyl nodes of 3D models: gap-minimum search and chirality from the Berry flux through a sphere.

Search: the direct gap between bands ``filling−1`` and ``filling`` on a coarse ``nk³`` grid
(one batched eigvalsh), its periodic local minima, each refined with scipy's Nelder-Mead; minima
with gap < ``gap_tol`` are nodes. Chirality (CONTRACTS §2): FHS Berry flux of the occupied bands
out of a small sphere in Cartesian k around the node, ``+1`` for ``+2π`` (for ``H = Σ v_ij q_j σ_i``
this is ``sign det v``). By the Nielsen-Ninomiya theorem the chiralities of all nodes sum to 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize

from topodiff.errors import ConvergenceError, TopodiffInputError
from topodiff.physics.berry import _plaquettes
from topodiff.physics.model import TBModel
from topodiff.physics.spectra import eigh_fast, grid_hamiltonian, resolve_filling

__all__ = ["WeylNode", "find_weyl_nodes", "weyl_chirality", "sphere_flux"]


@dataclass
class WeylNode:
    """A node: ``k_reduced [3]``, ``chirality`` (±1, or another integer for multi-Weyl), ``gap`` (eV), ``flux`` (/2π)."""

    k_reduced: np.ndarray
    chirality: int
    gap: float
    flux: float

    def to_dict(self) -> dict[str, object]:
        return {"k_reduced": [float(x) for x in self.k_reduced], "chirality": int(self.chirality),
                "gap": float(self.gap)}


def _gap_at(model: TBModel, occ: int, k: np.ndarray) -> np.ndarray:
    e = torch.linalg.eigvalsh(model.hamiltonian(np.atleast_2d(k), convention=1))
    return (e[..., occ] - e[..., occ - 1]).numpy()


def sphere_flux(model: TBModel, k_reduced: np.ndarray, occ: int, radius: float, n: int = 24) -> float:
    """Berry flux (units of 2π) of the occupied bands out of a sphere of Cartesian radius ``radius`` (1/Å).

    The sphere is parametrised by (θ, φ) with ``e_θ × e_φ`` outward; its points map to reduced
    coordinates by ``κ = A k / 2π`` (A: lattice rows), so the orientation is kept for right-handed cells.
    """
    lat = model.lattice
    B = 2 * math.pi * np.linalg.inv(lat).T  # reciprocal rows: k_cart = κ @ B
    k0 = np.asarray(k_reduced, dtype=float) @ B
    th = np.linspace(0.0, math.pi, n + 1)
    ph = np.arange(2 * n) * (math.pi / n)
    unit = np.stack([np.sin(th)[:, None] * np.cos(ph)[None], np.sin(th)[:, None] * np.sin(ph)[None],
                     np.cos(th)[:, None] * np.ones_like(ph)[None]], axis=-1)
    kc = k0 + radius * unit
    kappa = kc @ lat.T / (2 * math.pi)
    _, v = eigh_fast(model.hamiltonian(kappa, convention=1))
    F = _plaquettes(v[..., :occ], None)
    sign = 1.0 if np.linalg.det(lat) > 0 else -1.0
    return sign * float(F.sum()) / (2 * math.pi)


def weyl_chirality(model: TBModel, k_reduced: np.ndarray, filling: int | None = None, *, radius: float | None = None,
                   n: int = 24) -> tuple[int, float]:
    """Chirality (int) and raw flux (/2π) of the node at ``k_reduced``; radius defaults to 1 % of |b|min."""
    occ = resolve_filling(model, filling)
    if model.dim != 3:
        raise TopodiffInputError(f"Weyl nodes need a 3D model, got {model.dim}D")
    if radius is None:
        radius = 0.01 * float(np.linalg.norm(2 * math.pi * np.linalg.inv(model.lattice).T, axis=1).min())
    flux = sphere_flux(model, k_reduced, occ, radius, n)
    if abs(flux - round(flux)) > 0.05:
        flux = sphere_flux(model, k_reduced, occ, radius, 4 * n)
    if abs(flux - round(flux)) > 0.05:
        raise ConvergenceError(f"Berry flux {flux:.3f}×2π around the node is not an integer")
    return int(round(flux)), flux


def find_weyl_nodes(model: TBModel, filling: int | None = None, *, nk: int = 20, gap_tol: float = 1e-5,
                    max_candidates: int = 64, radius: float | None = None) -> list[WeylNode]:
    """Weyl nodes between bands ``filling−1`` and ``filling`` of a 3D model.

    Parameters
    ----------
    nk : coarse grid ``nk³`` for the gap-minimum search.
    gap_tol : refined gap (eV) below which a minimum is a node.
    max_candidates : refine at most this many of the smallest-gap local minima (those with a coarse
        gap below a quarter of the median gap).
    radius : Cartesian radius (1/Å) of the chirality sphere (default: 1 % of the shortest
        reciprocal vector, shrunk to a quarter of the distance to the nearest other node).
    """
    if model.dim != 3:
        raise TopodiffInputError(f"Weyl nodes need a 3D model, got {model.dim}D")
    if nk < 4:
        raise TopodiffInputError(f"nk must be at least 4, got {nk}")
    occ = resolve_filling(model, filling)
    ax = np.arange(nk) / nk
    e = torch.linalg.eigvalsh(grid_hamiltonian(model, [ax, ax, ax], convention=1))
    gap = (e[..., occ] - e[..., occ - 1]).numpy()
    is_min = np.ones_like(gap, dtype=bool)
    for s in np.ndindex(3, 3, 3):
        if s != (1, 1, 1):
            is_min &= gap <= np.roll(gap, shift=(s[0] - 1, s[1] - 1, s[2] - 1), axis=(0, 1, 2))
    is_min &= gap < 0.25 * float(np.median(gap))  # a node inside a cell leaves a small gap at its corners
    idx = np.argwhere(is_min)
    idx = idx[np.argsort(gap[tuple(idx.T)])][:max_candidates]
    found: list[tuple[np.ndarray, float]] = []
    for i in idx:
        x0 = i / nk
        simplex = x0 + np.vstack([np.zeros(3), np.eye(3) * (0.5 / nk)])
        res = minimize(lambda x: float(_gap_at(model, occ, x)[0]), x0, method="Nelder-Mead",
                       options={"initial_simplex": simplex, "xatol": 1e-9, "fatol": 1e-11, "maxiter": 4000})
        k = np.remainder(res.x, 1.0)
        k[np.abs(k - np.round(k)) < 1e-9] = 0.0
        g = float(_gap_at(model, occ, k)[0])
        if g >= gap_tol:
            continue
        if any(np.max(np.abs((k - f + 0.5) % 1.0 - 0.5)) < 1e-4 for f, _ in found):
            continue
        found.append((k, g))
    nodes = []
    bmin = float(np.linalg.norm(2 * math.pi * np.linalg.inv(model.lattice).T, axis=1).min())
    for k, g in found:
        r = radius if radius is not None else 0.01 * bmin
        others = [o for o, _ in found if o is not k]
        if others and radius is None:
            dmin = min(np.linalg.norm(((k - o + 0.5) % 1.0 - 0.5) @ (2 * math.pi * np.linalg.inv(model.lattice).T))
                       for o in others)
            r = min(r, 0.25 * dmin)
        chi, flux = weyl_chirality(model, k, occ, radius=r)
        nodes.append(WeylNode(k, chi, g, flux))
    nodes.sort(key=lambda nd: tuple(np.round(nd.k_reduced, 8)))
    return nodes

"""Weyl nodes of 3D models: a complete degeneracy search and chirality from the Berry flux.

Search (:mod:`topodiff.physics.weyl_search`): gap minima on a coarse grid, re-scanned on zoom
grids, every seed refined by Newton's method on the two-band ``d``-vector; images of each node
under the k-space symmetries of the band structure (``κ → −κ`` with time reversal or inversion,
mirrors, rotations) are refined too, so symmetry partners closer than the grid are not lost.
Chirality (CONTRACTS §2): FHS Berry flux of the occupied bands out of a small sphere in Cartesian k
around the node, ``+1`` for ``+2π`` (for ``H = Σ v_ij q_j σ_i`` this is ``sign det v``).

Degeneracies that are not Weyl nodes are reported apart: points on a nodal line (the Jacobian of
``d`` is singular and refinement from a nearby point lands elsewhere on the degeneracy) and point
degeneracies with zero flux. By the Nielsen-Ninomiya theorem the chiralities of all Weyl nodes sum
to 0; when they do not, the search is repeated on a finer grid and a warning says so if it persists.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from topodiff.errors import ConvergenceError, TopodiffInputError
from topodiff.physics.berry import _plaquettes
from topodiff.physics.model import TBModel
from topodiff.physics.spectra import eigh_fast, resolve_filling
from topodiff.physics.weyl_search import (gap_grid, kspace_symmetries, local_minima, newton_refine,
                                          periodic_distance, slice_minima, wrap, zoom_seeds)

__all__ = ["WeylNode", "Degeneracy", "WeylSearch", "weyl_search", "find_weyl_nodes", "weyl_chirality",
           "sphere_flux"]


@dataclass
class WeylNode:
    """A node: ``k_reduced [3]``, ``chirality`` (±1, or another integer for multi-Weyl), ``gap`` (eV),
    ``flux`` (/2π) and ``velocity_ratio`` (σ_min/σ_max of ∂d/∂κ: ≈ 0 for a point on a nodal line)."""

    k_reduced: np.ndarray
    chirality: int
    gap: float
    flux: float
    velocity_ratio: float = 1.0

    def to_dict(self) -> dict[str, object]:
        return {"k_reduced": [float(x) for x in self.k_reduced], "chirality": int(self.chirality),
                "gap": float(self.gap), "velocity_ratio": float(self.velocity_ratio)}


@dataclass
class Degeneracy:
    """A band touching that is not a Weyl node: ``kind`` is ``"nodal_line"`` (a point on a line of
    degeneracies), ``"zero_flux"`` (a point with zero Berry flux, e.g. a Dirac point or two
    coincident opposite nodes) or ``"unresolved"`` (flux not an integer at the smallest sphere)."""

    k_reduced: np.ndarray
    kind: str
    gap: float
    flux: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {"k_reduced": [float(x) for x in self.k_reduced], "kind": self.kind, "gap": float(self.gap),
                "flux": None if self.flux is None else float(self.flux)}


@dataclass
class WeylSearch:
    """Result of :func:`weyl_search`: Weyl ``nodes``, other ``degeneracies``, the k-space
    ``symmetries`` used to complete the set, the number of refinement starts, and ``warnings``."""

    nodes: list[WeylNode]
    degeneracies: list[Degeneracy]
    symmetries: int
    starts: int
    nk: int
    warnings: list[str]

    @property
    def net_chirality(self) -> int:
        return int(sum(n.chirality for n in self.nodes))

    def to_dict(self) -> dict[str, object]:
        """The ``topodiff weyl --json`` object (CONTRACTS §3 keys plus the classification)."""
        out: dict[str, object] = {"nodes": [n.to_dict() for n in self.nodes], "net_chirality": self.net_chirality,
                                  "degeneracies": [d.to_dict() for d in self.degeneracies],
                                  "search": {"nk": self.nk, "refinement_starts": self.starts,
                                             "kspace_symmetries": self.symmetries}}
        if self.warnings:
            out["warning"] = "; ".join(self.warnings)
        return out


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


def _bmin(model: TBModel) -> float:
    """Length of the shortest reciprocal vector (1/Å)."""
    return float(np.linalg.norm(2 * math.pi * np.linalg.inv(model.lattice).T, axis=1).min())


def weyl_chirality(model: TBModel, k_reduced: np.ndarray, filling: int | None = None, *, radius: float | None = None,
                   n: int = 24) -> tuple[int, float]:
    """Chirality (int) and raw flux (/2π) of the node at ``k_reduced``; radius defaults to 1 % of |b|min."""
    occ = resolve_filling(model, filling)
    if model.dim != 3:
        raise TopodiffInputError(f"Weyl nodes need a 3D model, got {model.dim}D")
    if radius is None:
        radius = 0.01 * _bmin(model)
    flux = sphere_flux(model, k_reduced, occ, radius, n)
    if abs(flux - round(flux)) > 0.05:
        flux = sphere_flux(model, k_reduced, occ, radius, 4 * n)
    if abs(flux - round(flux)) > 0.05:
        raise ConvergenceError(f"Berry flux {flux:.3f}×2π around the node is not an integer")
    return int(round(flux)), flux


MERGE_TOL = 1e-4  # reduced distance below which two refined degeneracies are one
NEAR_LINE_RATIO = 3e-3  # WTe2's type-II nodes have 7e-3; IrF4's nodal-chain points 2e-4..1.4e-3


def _dedupe(k: np.ndarray, g: np.ndarray, tol: float) -> list[int]:
    """Indices of distinct points (periodic distance > ``tol``), lowest gap first."""
    keep: list[int] = []
    for i in np.argsort(g):
        if all(periodic_distance(k[i], k[j]) > tol for j in keep):
            keep.append(int(i))
    return keep


def _seeds(model: TBModel, occ: int, nk: int, max_candidates: int) -> np.ndarray:
    """Newton starts: coarse-grid 3D minima (gap < a quarter of the median) and the minima of zoom
    grids around them, plus minima within lattice planes (:func:`slice_minima`) elsewhere."""
    ax = np.arange(nk) / nk
    gap = gap_grid(model, occ, [ax, ax, ax])
    threshold = 0.25 * float(np.median(gap))  # a node inside a cell leaves a small gap at its corners
    low = gap < threshold
    minima = local_minima(gap, periodic=True) & low

    def lowest(mask: np.ndarray) -> np.ndarray:
        idx = np.argwhere(mask)
        return idx[np.argsort(gap[tuple(idx.T)])][:max_candidates] / nk

    coarse = lowest(minima)
    fine = zoom_seeds(model, occ, coarse, half_width=1.0 / nk, m=7, threshold=threshold)
    planar = lowest(slice_minima(gap) & low & ~minima)
    seeds = np.concatenate([coarse, fine.reshape(-1, 3), planar])
    keep = _dedupe(seeds, np.zeros(len(seeds)), 0.1 / nk)
    return seeds[keep]


def _refine_points(model: TBModel, occ: int, seeds: np.ndarray, nk: int, gap_tol: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Newton from every seed; the distinct degenerate points ``(k, gap, jacobian ratio)``."""
    if len(seeds) == 0:
        return np.zeros((0, 3)), np.zeros(0), np.zeros(0)
    k, g, r = newton_refine(model, occ, seeds, max_step=0.5 / nk)
    ok = g < gap_tol
    k, g, r = k[ok], g[ok], r[ok]
    keep = _dedupe(k, g, MERGE_TOL)
    return k[keep], g[keep], r[keep]


def _on_line(model: TBModel, occ: int, k: np.ndarray, nk: int, gap_tol: float) -> np.ndarray:
    """Whether each singular-Jacobian point lies on a line: refinement from points ``±δ`` away
    (six directions) lands on degeneracies at least ``δ/2`` from it (a multi-Weyl point pulls back)."""
    if len(k) == 0:
        return np.zeros(0, dtype=bool)
    delta = 0.2 / nk
    dirs = np.concatenate([np.eye(3), -np.eye(3)]) * delta
    starts = (k[:, None, :] + dirs[None]).reshape(-1, 3)
    kk, gg, _ = newton_refine(model, occ, starts, max_step=0.25 * delta)
    far = (gg < gap_tol) & (periodic_distance(kk, np.repeat(k, 6, axis=0)) > 0.5 * delta)
    return far.reshape(len(k), 6).any(axis=1)


def _classify(model: TBModel, occ: int, k: np.ndarray, g: np.ndarray, ratio: np.ndarray, nk: int,
              gap_tol: float, radius: float | None) -> tuple[list[WeylNode], list[Degeneracy]]:
    """Split refined degeneracies into Weyl nodes (integer non-zero flux) and other degeneracies."""
    line = np.zeros(len(k), dtype=bool)
    singular = np.flatnonzero(ratio < 1e-2)
    line[singular] = _on_line(model, occ, k[singular], nk, gap_tol)
    B = 2 * math.pi * np.linalg.inv(model.lattice).T
    nodes: list[WeylNode] = []
    other = [Degeneracy(k[i], "nodal_line", float(g[i])) for i in np.flatnonzero(line)]
    r0 = radius if radius is not None else 0.01 * _bmin(model)
    for i in np.flatnonzero(~line):
        r = r0
        dist = [np.linalg.norm((np.remainder(k[i] - k[j] + 0.5, 1.0) - 0.5) @ B) for j in range(len(k)) if j != i]
        if dist and radius is None:
            r = min(r, 0.25 * min(dist))
        try:
            chi, flux = weyl_chirality(model, k[i], occ, radius=r, n=16)
        except ConvergenceError:
            other.append(Degeneracy(k[i], "unresolved", float(g[i])))
            continue
        if chi == 0:
            other.append(Degeneracy(k[i], "zero_flux", float(g[i]), flux))
        else:
            nodes.append(WeylNode(k[i], chi, float(g[i]), flux, float(ratio[i])))
    return nodes, _thin_lines(other, 1.0 / nk)


def _thin_lines(items: list[Degeneracy], spacing: float) -> list[Degeneracy]:
    """Keep nodal-line points at least ``spacing`` apart (a line yields one point per seed)."""
    out: list[Degeneracy] = []
    for d in items:
        if d.kind == "nodal_line" and any(o.kind == "nodal_line" and
                                          periodic_distance(o.k_reduced, d.k_reduced) < spacing for o in out):
            continue
        out.append(d)
    return out


def _search(model: TBModel, occ: int, nk: int, gap_tol: float, max_candidates: int,
            ops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Degenerate points from grid seeds, completed by symmetry images (refined and verified)."""
    seeds = _seeds(model, occ, nk, max_candidates)
    k, g, r = _refine_points(model, occ, seeds, nk, gap_tol)
    starts = len(seeds)
    if len(k) and ops:
        images = wrap(np.concatenate([k @ G.T for G in ops]))
        new = np.array([periodic_distance(k, x).min() > MERGE_TOL for x in images], dtype=bool)
        images = images[new]
        if len(images):
            images = images[_dedupe(images, np.zeros(len(images)), MERGE_TOL)]
            ki, gi, ri = _refine_points(model, occ, images, nk, gap_tol)
            starts += len(images)
            k, g, r = np.concatenate([k, ki]), np.concatenate([g, gi]), np.concatenate([r, ri])
            keep = _dedupe(k, g, MERGE_TOL)
            k, g, r = k[keep], g[keep], r[keep]
    return k, g, r, starts


def weyl_search(model: TBModel, filling: int | None = None, *, nk: int = 20, gap_tol: float = 1e-5,
                max_candidates: int = 96, radius: float | None = None, use_symmetry: bool = True) -> WeylSearch:
    """All band degeneracies between bands ``filling−1`` and ``filling`` of a 3D model, classified.

    Parameters
    ----------
    nk : coarse grid ``nk³`` for the gap-minimum search (zoom grids refine around its minima).
    gap_tol : refined gap (eV) below which a point is a degeneracy.
    max_candidates : coarse minima (smallest gaps first) that get a zoom grid.
    radius : Cartesian radius (1/Å) of the chirality sphere (default: 1 % of the shortest
        reciprocal vector, shrunk to a quarter of the distance to the nearest other degeneracy).
    use_symmetry : complete the set with images under the k-space symmetries of the spectrum.

    When the chiralities do not sum to zero the search is repeated once at ``2 nk`` (keeping what
    was found) and a ``warning`` is set if they still do not.
    """
    if model.dim != 3:
        raise TopodiffInputError(f"Weyl nodes need a 3D model, got {model.dim}D")
    if nk < 4:
        raise TopodiffInputError(f"nk must be at least 4, got {nk}")
    occ = resolve_filling(model, filling)
    ops = kspace_symmetries(model) if use_symmetry else []
    k, g, r, starts = _search(model, occ, nk, gap_tol, max_candidates, ops)
    nodes, other = _classify(model, occ, k, g, r, nk, gap_tol, radius)
    warnings: list[str] = []
    used_nk = nk
    if sum(n.chirality for n in nodes) != 0:
        used_nk = 2 * nk
        k2, g2, r2, s2 = _search(model, occ, used_nk, gap_tol, max_candidates, ops)
        k, g, r = np.concatenate([k, k2]), np.concatenate([g, g2]), np.concatenate([r, r2])
        keep = _dedupe(k, g, MERGE_TOL)
        nodes, other = _classify(model, occ, k[keep], g[keep], r[keep], used_nk, gap_tol, radius)
        starts += s2
        net = sum(n.chirality for n in nodes)
        if net != 0:
            warnings.append(f"chiralities sum to {net:+d}, not 0, after a second search at nk = {used_nk}: "
                            "a node is missing (outside the searched bands' minima, or too close to another)")
    soft = sum(n.velocity_ratio < NEAR_LINE_RATIO for n in nodes)
    if soft:
        warnings.append(f"{soft} node(s) have a nearly singular velocity (sigma_min/sigma_max < {NEAR_LINE_RATIO:g}): "
                        "they may be points of a nodal line that small symmetry breaking in the Hamiltonian "
                        "splits into Weyl nodes")
    nodes.sort(key=lambda nd: tuple(np.round(nd.k_reduced, 8)))
    other.sort(key=lambda d: (d.kind, tuple(np.round(d.k_reduced, 8))))
    return WeylSearch(nodes, other, len(ops), starts, used_nk, warnings)


def find_weyl_nodes(model: TBModel, filling: int | None = None, *, nk: int = 20, gap_tol: float = 1e-5,
                    max_candidates: int = 96, radius: float | None = None) -> list[WeylNode]:
    """Weyl nodes between bands ``filling−1`` and ``filling`` of a 3D model (see :func:`weyl_search`)."""
    return weyl_search(model, filling, nk=nk, gap_tol=gap_tol, max_candidates=max_candidates, radius=radius).nodes

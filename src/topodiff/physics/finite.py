"""Finite geometries cut from a bulk model: ribbons (2D → 1D) and slabs (3D → 2D), edge spectra.

A cut keeps the model periodic along every lattice direction except ``finite``, along which it
stacks ``n_cells`` copies of the unit cell (open boundaries). Orbital ``o`` of cell ``c`` becomes
orbital ``c·n_orb + o`` of the finite model; a bulk hopping ``(i, j, R)`` connects cell ``c`` to
cell ``c + R_finite`` when that cell exists. For the honeycomb lattice with a1 = (1, 0),
a2 = (1/2, √3/2), cutting along a2 (``finite=1``) gives a zigzag ribbon periodic along a1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from topodiff.errors import TopodiffInputError
from topodiff.physics.model import TBModel


@dataclass
class FiniteGeometry:
    """A ribbon or slab: its periodic model plus where every orbital sits across the cut.

    Attributes
    ----------
    model : the (dim − 1)-dimensional periodic model, ``n_cells × n_orb_bulk`` orbitals.
    cartesian : ``[n_orb, n_cart]`` Cartesian orbital positions (Å), bulk cell 0 at the origin.
    layer : ``[n_orb]`` cell index along the finite direction (0 … n_cells − 1).
    n_cells : number of cells across.
    finite : index of the bulk lattice direction that was cut.
    normal : ``[n_cart]`` unit vector across the geometry (perpendicular to the periodic directions).
    """

    model: TBModel
    cartesian: np.ndarray
    layer: np.ndarray
    n_cells: int
    finite: int
    normal: np.ndarray

    def replace_model(self, model: TBModel) -> "FiniteGeometry":
        """The same geometry with another model of the same orbitals (e.g. after adding a field)."""
        if model.n_orb != self.model.n_orb:
            raise TopodiffInputError("replacement model has a different number of orbitals")
        return FiniteGeometry(model, self.cartesian, self.layer, self.n_cells, self.finite, self.normal)


def cut(model: TBModel, n_cells: int, finite: int | None = None) -> FiniteGeometry:
    """Open the bulk ``model`` along lattice direction ``finite`` with ``n_cells`` cells.

    Parameters
    ----------
    model : bulk model of dimension 2 (→ ribbon) or 3 (→ slab).
    n_cells : cells across (≥ 1).
    finite : lattice direction to cut (default: the last one).
    """
    dim = model.dim
    if dim < 2:
        raise TopodiffInputError("a ribbon/slab needs a 2D or 3D bulk model")
    finite = dim - 1 if finite is None else int(finite)
    if not 0 <= finite < dim:
        raise TopodiffInputError(f"finite direction must be 0..{dim - 1}, got {finite}")
    n_cells = int(n_cells)
    if n_cells < 1:
        raise TopodiffInputError(f"n_cells must be at least 1, got {n_cells}")
    keep = [d for d in range(dim) if d != finite]
    n_orb = model.n_orb
    cells = np.arange(n_cells)
    # orbitals: [n_cells, n_orb] → flat index c * n_orb + o
    orbitals = np.broadcast_to(model.orbitals[None, :, keep], (n_cells, n_orb, dim - 1)).reshape(-1, dim - 1)
    reduced = np.broadcast_to(model.orbitals[None], (n_cells, n_orb, dim)).copy()
    reduced[:, :, finite] += cells[:, None]
    cartesian = reduced.reshape(-1, dim) @ model.lattice
    onsite = np.broadcast_to(model.onsite[None], (n_cells, *model.onsite.shape)).reshape(-1, *model.onsite.shape[1:])
    # hoppings: every (hop, source cell) pair whose target cell exists
    c_src = np.broadcast_to(cells[None, :], (len(model.hop_i), n_cells))
    c_dst = c_src + model.hop_R[:, finite][:, None]
    ok = (c_dst >= 0) & (c_dst < n_cells)
    h_idx = np.broadcast_to(np.arange(len(model.hop_i))[:, None], ok.shape)[ok]
    hop_i = c_src[ok] * n_orb + model.hop_i[h_idx]
    hop_j = c_dst[ok] * n_orb + model.hop_j[h_idx]
    hop_R = model.hop_R[h_idx][:, keep]
    hop_t = model.hop_t[h_idx]
    lattice = model.lattice[keep]
    # unit normal: the component of the cut lattice vector perpendicular to the kept ones
    a = model.lattice[finite]
    q, _ = np.linalg.qr(lattice.T)
    perp = a - q @ (q.T @ a)
    normal = perp / np.linalg.norm(perp)
    filling = None if model.filling is None else n_cells * int(model.filling)
    kind = "ribbon" if dim == 2 else "slab"
    sub = TBModel(lattice, orbitals, onsite, hop_i, hop_j, hop_R, hop_t, spinful=model.spinful, filling=filling,
                  name=f"{model.name}_{kind}{n_cells}", params=dict(model.params))
    return FiniteGeometry(sub, cartesian, np.repeat(cells, n_orb), n_cells, finite, normal)


def ribbon(model: TBModel, n_cells: int, finite: int = 1) -> FiniteGeometry:
    """A ribbon (1D) from a 2D model, ``n_cells`` cells wide along lattice direction ``finite``."""
    if model.dim != 2:
        raise TopodiffInputError(f"ribbon needs a 2D model, got {model.dim}D")
    return cut(model, n_cells, finite)


def slab(model: TBModel, n_cells: int, finite: int = 2) -> FiniteGeometry:
    """A slab (2D) from a 3D model, ``n_cells`` cells thick along lattice direction ``finite``."""
    if model.dim != 3:
        raise TopodiffInputError(f"slab needs a 3D model, got {model.dim}D")
    return cut(model, n_cells, finite)


@dataclass
class EdgeSpectrum:
    """Spectrum of a finite geometry with the location of every state.

    ``k [n_k, dim-1]`` reduced; ``energies [n_k, nb]`` eV (ascending); ``edge [n_k, nb]`` weight in
    the outer ``depth`` cells on both sides (0 … 1); ``side [n_k, nb]`` mean position across the
    geometry in [−1, 1] (−1: cell 0, +1: cell n_cells − 1).
    """

    k: np.ndarray
    energies: np.ndarray
    edge: np.ndarray
    side: np.ndarray


def state_location(geom: FiniteGeometry, vectors: torch.Tensor | np.ndarray,
                   depth: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Edge weight and mean position of eigenvectors ``[..., nb, n_states]`` (columns are states).

    Returns ``(edge [..., n_states], side [..., n_states])`` as in :class:`EdgeSpectrum`.
    """
    v = torch.as_tensor(vectors)
    prob = (v.abs() ** 2).real.cpu().numpy()  # [..., nb, n_states]
    ns = geom.model.n_spin
    prob = prob.reshape(*prob.shape[:-2], geom.model.n_orb, ns, prob.shape[-1]).sum(-2)  # per orbital
    layer = geom.layer
    depth = max(1, min(int(depth), geom.n_cells))
    at_edge = ((layer < depth) | (layer >= geom.n_cells - depth)).astype(float)
    across = 2.0 * layer / max(1, geom.n_cells - 1) - 1.0
    edge = np.einsum("...os,o->...s", prob, at_edge)
    side = np.einsum("...os,o->...s", prob, across)
    return edge, side


def edge_spectrum(geom: FiniteGeometry, nk: int = 200, depth: int = 2) -> EdgeSpectrum:
    """Bands of a ribbon (κ ∈ [0, 1], ``nk`` points) or slab (``nk × nk`` grid) with edge weights."""
    if nk < 2:
        raise TopodiffInputError(f"nk must be at least 2, got {nk}")
    d = geom.model.dim
    if d == 1:
        k = np.linspace(0.0, 1.0, nk)[:, None]
    else:
        axes = [np.linspace(0.0, 1.0, nk, endpoint=False)] * d
        k = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, d)
    e, v = torch.linalg.eigh(geom.model.hamiltonian(k, convention=1))
    edge, side = state_location(geom, v, depth)
    return EdgeSpectrum(k, e.numpy(), edge, side)


def edge_crossings(spec: EdgeSpectrum, energy: float, *, side_cut: float = 0.5) -> dict[str, np.ndarray]:
    """States crossing ``energy`` between neighbouring k-points of a ribbon spectrum.

    Returns arrays over the crossings: ``k`` (reduced, midpoint), ``velocity_sign`` (+1 if the band
    rises through ``energy``), ``side`` (−1 near cell 0, +1 near the far edge, 0 in the bulk,
    from the mean position with threshold ``side_cut``).

    Bands are the sorted eigenvalues, so two states that cross each other exactly at ``energy``
    (e.g. the left and right edge modes of an inversion-symmetric ribbon at the band centre) are
    not seen; pick an energy slightly off such symmetric points.
    """
    if spec.k.shape[1] != 1:
        raise TopodiffInputError("edge crossings are defined for ribbon (1D) spectra")
    e = spec.energies - energy
    flip = np.sign(e[:-1]) * np.sign(e[1:]) < 0  # [n_k-1, nb]
    kk, bb = np.nonzero(flip)
    vel = np.sign(e[kk + 1, bb] - e[kk, bb])
    s = 0.5 * (spec.side[kk, bb] + spec.side[kk + 1, bb])
    where = np.where(s > side_cut, 1, np.where(s < -side_cut, -1, 0))
    return {"k": 0.5 * (spec.k[kk, 0] + spec.k[kk + 1, 0]), "velocity_sign": vel.astype(int), "side": where}

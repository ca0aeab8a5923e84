"""Surface (edge) spectral functions by the iterative Sancho-Rubio surface Green's function.

Lopez Sancho, Lopez Sancho, Sancho & Rubio, J. Phys. F 15, 851 (1985). The bulk model is rewritten
in a lattice basis whose last vector is the stacking direction of the termination (``edge``), the
stack is grouped into principal layers of ``n`` cells (n = the longest hopping range across the
cut, or ``layers``), and with ``H00(k∥)``, ``H01(k∥)`` (layer i → i+1) the decimation

    ε_s ← ε_s + α g β,  ε ← ε + α g β + β g α,  α ← α g α,  β ← β g β,  g = (ω − ε)⁻¹,

starting from ε = ε_s = H00, α = H01, β = H01†, ω = E + iη, converges (in log₂ of the decay length)
to ``G_s = (ω − ε_s)⁻¹`` (the surface at the first cell of the stack) and ``G_b = (ω − ε)⁻¹``
(bulk). The opposite surface uses ``ε_s' ← ε_s' + β g α``. All k∥ and energies are one batch.

Spectral weight ``A(k∥, E) = −(1/π) Im Tr G`` over the principal layer (states/eV per surface
cell); the k-summed weight is its average over a uniform surface-BZ grid (surface DOS per cell).

Terminations: 2D ``zigzag`` = an edge along a1 (honeycomb: the zigzag edge), ``armchair`` = an edge
along the shortest lattice vector perpendicular to a1 (honeycomb: armchair), or Miller indices
``hk`` / ``hkl`` (``"0,1"``, ``"111"``, ``"1,-1,0"``) of the edge line / surface plane with
respect to the model's own reciprocal basis.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from itertools import product

import numpy as np
import torch

from topodiff.errors import TopodiffInputError
from topodiff.physics.finite import cut
from topodiff.physics.model import COMPLEX, TBModel

__all__ = ["surface_basis", "rebase", "principal_layers", "sancho_rubio", "surface_spectrum", "SurfaceSpectrum",
           "parse_miller"]


def parse_miller(text: str, dim: int) -> np.ndarray:
    """Miller indices from ``"0,1"``, ``"111"``, ``"(1-10)"`` or ``"1 -1 0"``; ``dim`` integers, not all 0."""
    body = text.strip().strip("()[]")
    parts = re.split(r"[,\s]+", body) if re.search(r"[,\s]", body) else re.findall(r"-?\d", body)
    try:
        idx = np.array([int(p) for p in parts if p != ""], dtype=np.int64)
    except ValueError:
        idx = np.zeros(0, np.int64)
    if len(idx) != dim or not np.any(idx) or "".join(parts).replace("-", "").isdigit() is False:
        raise TopodiffInputError(f"unknown edge {text!r}: use zigzag, armchair or {dim} Miller indices "
                                 f"(e.g. {'0,1' if dim == 2 else '0,0,1'})")
    return idx // math.gcd(*[int(abs(x)) for x in idx])


def _shortest(cands: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    return cands[np.argmin(np.linalg.norm(cands @ lattice, axis=1))]


def surface_basis(model: TBModel, edge: str) -> np.ndarray:
    """Unimodular integer matrix ``M [dim, dim]``: rows = new lattice vectors in old ones, last = stacking."""
    dim, lat = model.dim, model.lattice
    if dim not in (2, 3):
        raise TopodiffInputError(f"surface spectra need a 2D or 3D model, got {dim}D")
    rng = np.arange(-6, 7)
    vecs = np.array([v for v in product(rng[::-1], repeat=dim) if any(v)], dtype=np.int64)  # ties: positive first
    if edge in ("zigzag", "armchair"):
        if dim != 2:
            raise TopodiffInputError(f"edge {edge!r} is for 2D models; give Miller indices (e.g. 0,0,1) for 3D")
        if edge == "zigzag":
            miller = np.array([0, 1])
        else:
            a1 = lat[0] / np.linalg.norm(lat[0])
            perp = vecs[np.abs((vecs @ lat) @ a1) < 1e-8 * np.linalg.norm(vecs @ lat, axis=1)]
            if len(perp) == 0:
                raise TopodiffInputError("no lattice vector perpendicular to a1: no armchair edge in this lattice")
            v = _shortest(perp, lat)
            miller = np.array([v[1], -v[0]]) // math.gcd(int(abs(v[0])), int(abs(v[1])))
    else:
        miller = parse_miller(edge, dim)
    inplane = vecs[(vecs @ miller) == 0]
    inplane = inplane[[math.gcd(*[int(abs(x)) for x in v]) == 1 for v in inplane]]
    rows = [_shortest(inplane, lat)]
    if dim == 3:
        cross = np.cross(rows[0], inplane)
        ok = np.all(cross == miller, axis=1) | np.all(cross == -miller, axis=1)
        if not ok.any():
            raise TopodiffInputError(f"Miller indices {miller.tolist()} too large for the surface-cell search")
        rows.append(_shortest(inplane[ok], lat))
    out = vecs[(vecs @ miller) == 1]
    normal = np.linalg.solve(lat[:, :dim].T if lat.shape[1] == dim else lat @ lat.T, miller.astype(float))
    angle = np.abs((out @ lat) @ (normal if lat.shape[1] == dim else normal @ lat)) / np.linalg.norm(out @ lat, axis=1)
    rows.append(out[np.argmax(angle - 1e-9 * np.linalg.norm(out @ lat, axis=1))])
    M = np.array(rows, dtype=np.int64)
    if round(np.linalg.det(M)) == -1:
        M[0] = -M[0]  # right-handed, the stacking vector kept
    if abs(round(np.linalg.det(M))) != 1:
        raise TopodiffInputError(f"could not build a primitive surface cell for edge {edge!r}")
    return M


def rebase(model: TBModel, M: np.ndarray) -> TBModel:
    """The same model in the lattice basis ``M @ lattice`` (orbitals wrapped into the new cell)."""
    Minv = np.linalg.inv(M)
    tau = model.orbitals @ Minv
    shift = np.floor(tau + 1e-9)
    tau = tau - shift
    R = model.hop_R @ Minv + shift[model.hop_j] - shift[model.hop_i]
    return model.replace(lattice=M @ model.lattice, orbitals=tau, hop_R=np.rint(R).astype(np.int64))


def principal_layers(model: TBModel, layers: int | None = None) -> tuple[TBModel, int]:
    """Slab model of two principal layers (``n`` cells each) cut along the last lattice direction, and n."""
    reach = int(np.abs(model.hop_R[:, -1]).max()) if len(model.hop_R) else 0
    if reach == 0:
        raise TopodiffInputError("no hopping crosses the chosen surface: the layers are decoupled")
    n = reach if layers is None else int(layers)
    if n < reach:
        raise TopodiffInputError(f"--layers must be at least the hopping range across the surface ({reach})")
    return cut(model, 2 * n, finite=model.dim - 1).model, n


def sancho_rubio(H00: torch.Tensor, H01: torch.Tensor, omega: torch.Tensor, *, tol: float = 1e-10,
                 max_iter: int = 100) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Surface, opposite-surface and bulk Green's functions ``[..., m, m]`` of a semi-infinite stack.

    ``H00, H01 [..., m, m]`` broadcast against complex energies ``omega [...]`` (Im ω > 0). Returns
    ``(G_s, G_s', G_b, iterations)``; raises if the couplings do not decay within ``max_iter``.
    """
    eye = torch.eye(H00.shape[-1], dtype=COMPLEX)
    w = omega[..., None, None] * eye
    eps = eps_s = eps_o = H00.expand(*w.shape[:-2], *H00.shape[-2:])
    a, b = H01.expand_as(eps), H01.mH.expand_as(eps)
    for it in range(1, max_iter + 1):
        g = torch.linalg.inv(w - eps)
        ag, bg = a @ g, b @ g
        agb, bga = ag @ b, bg @ a
        eps_s, eps_o = eps_s + agb, eps_o + bga
        eps = eps + agb + bga
        a, b = ag @ a, bg @ b
        if float(a.abs().amax()) < tol and float(b.abs().amax()) < tol:
            break
    else:
        raise TopodiffInputError(f"surface Green's function did not converge in {max_iter} iterations; raise --eta")
    inv = torch.linalg.inv
    return inv(w - eps_s), inv(w - eps_o), inv(w - eps), it


@dataclass
class SurfaceSpectrum:
    """``surface/opposite/bulk [n_E, n_k]`` spectral weights (states/eV per surface cell) at ``k [n_k, dim-1]``."""

    k: np.ndarray
    energies: np.ndarray
    surface: np.ndarray
    opposite: np.ndarray
    bulk: np.ndarray
    layers: int
    basis: np.ndarray
    iterations: int


def surface_spectrum(model: TBModel, edge: str, k: np.ndarray, energies: np.ndarray, *, eta: float = 0.01,
                     layers: int | None = None, chunk: int = 1 << 22) -> SurfaceSpectrum:
    """Spectral weights of the two terminations and the bulk for ``edge`` at surface k ``[n_k, dim-1]``
    (reduced, in the surface cell ``basis[:-1]``) and ``energies [n_E]`` (eV), broadening ``eta`` (eV)."""
    if not (math.isfinite(eta) and eta > 0):
        raise TopodiffInputError(f"eta must be a positive number (eV), got {eta}")
    energies = np.atleast_1d(np.asarray(energies, float))
    if not np.all(np.isfinite(energies)):
        raise TopodiffInputError("energies must be finite")
    M = surface_basis(model, edge)
    slab, n = principal_layers(rebase(model, M), layers)
    k = np.asarray(k, float).reshape(-1, model.dim - 1)
    Hs = slab.hamiltonian(k, convention=1)
    m = Hs.shape[-1] // 2
    H00, H01 = Hs[:, None, :m, :m], Hs[:, None, :m, m:]
    per = max(1, chunk // (len(energies) * m * m * 16))
    outs, its = [], 0
    for s in range(0, len(k), per):
        om = torch.as_tensor(energies + 1j * eta, dtype=COMPLEX)[None, :].expand(min(per, len(k) - s), -1)
        Gs, Go, Gb, it = sancho_rubio(H00[s:s + per], H01[s:s + per], om)
        its = max(its, it)
        outs.append(torch.stack([-G.diagonal(dim1=-2, dim2=-1).sum(-1).imag / math.pi for G in (Gs, Go, Gb)]))
    A = torch.cat(outs, dim=1).permute(0, 2, 1).numpy()  # [3, n_E, n_k]
    return SurfaceSpectrum(k, energies, A[0], A[1], A[2], n, M, its)


def surface_grid(dim: int, nk: int, window: float = 0.5) -> np.ndarray:
    """Uniform surface-BZ points ``[nk^(dim-1), dim-1]`` in ``[−window, window)`` (reduced)."""
    ax = -window + 2 * window * np.arange(nk) / nk
    return np.stack(np.meshgrid(*[ax] * (dim - 1), indexing="ij"), -1).reshape(-1, dim - 1)


def path_points(nodes: np.ndarray, num: int) -> tuple[np.ndarray, np.ndarray]:
    """``num`` points along straight segments through ``nodes [n, d]`` (reduced) and their distance."""
    nodes = np.asarray(nodes, float)
    seg = np.linalg.norm(np.diff(nodes, axis=0), axis=1)
    x = np.linspace(0.0, seg.sum(), num)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    i = np.clip(np.searchsorted(cum, x, side="right") - 1, 0, len(seg) - 1)
    f = ((x - cum[i]) / np.where(seg[i] > 0, seg[i], 1.0))[:, None]
    return nodes[i] + f * (nodes[i + 1] - nodes[i]), x

"""Chern numbers and Berry curvature by the Fukui-Hatsugai-Suzuki link-variable method.

FHS (J. Phys. Soc. Jpn. 74, 1674 (2005)), CONTRACTS §2 sign: on a grid of reduced k-points,
``U_μ(k) = det⟨u(k)|u(k+e_μ)⟩`` over the occupied bands and the plaquette flux
``F(k) = −Im ln[U1(k) U2(k+e1) U1(k+e2)* U2(k)*]`` (principal branch, ``|F| < π``).
``C = (1/2π) Σ F`` equals ``(1/2π)∫Ω`` with ``A = i⟨u|∇u⟩`` (PythTB's sign); QWZ at ``u = −1``
gives ``C = +1``. The sum of principal-branch fluxes is an integer for any grid on which the
occupied states are gapped; it is the *right* integer once every ``|F|`` is well below π, which
:func:`chern_result` checks (refining the grid if needed) before returning an integer.

States may be in Bloch convention II (default; the wrap-around link uses
``u(κ + e_μ) = e^{−2πi τ_μ} u(κ)``) or I; integers do not depend on it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from topodiff.errors import ConvergenceError, TopodiffInputError
from topodiff.physics.model import TBModel
from topodiff.physics.spectra import boundary_phase, eigh_fast, occupied_states, resolve_filling, shift_states

__all__ = ["ChernResult", "chern_number", "chern_result", "chern_from_states", "chern_from_hamiltonians",
           "plaquette_flux", "plane_flux", "berry_curvature", "plane_kpoints"]

TWO_PI = 2.0 * math.pi


def _det(M: torch.Tensor) -> torch.Tensor:
    return M[..., 0, 0] if M.shape[-1] == 1 else torch.linalg.det(M)


def _links(V: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``det(V† W)`` over the last two axes ``[..., nb, m]`` → ``[...]`` complex."""
    return _det(V.mH @ W)


def _plaquettes(block: torch.Tensor, phase2: torch.Tensor | None) -> torch.Tensor:
    """Fluxes ``[m, n2]`` between consecutive rows of ``block [m+1, n2, nb, occ]`` (axis 2 closed)."""
    U2 = _links(block, shift_states(block, -3, phase2))  # [m+1, n2]
    U1 = _links(block[:-1], block[1:])  # [m, n2]
    loop = U1 * U2[1:] * torch.roll(U1, -1, dims=-1).conj() * U2[:-1].conj()
    return -torch.angle(loop)


def plaquette_flux(V: torch.Tensor, positions: np.ndarray | torch.Tensor | None = None) -> torch.Tensor:
    """FHS plaquette fluxes of occupied states on a closed 2D grid.

    Parameters
    ----------
    V : ``[..., n1, n2, nb, occ]`` occupied eigenvectors (any gauge, any leading batch).
    positions : ``[nb, 2]`` reduced state positions along the two grid axes when ``V`` is in
        convention II (closes the loops with ``u(κ+G) = e^{−iG·τ}u(κ)``); None for convention I.

    Returns
    -------
    ``[..., n1, n2]`` float64 fluxes in (−π, π]; plaquette (i, j) spans κ_(i..i+1, j..j+1).
    """
    ph1 = boundary_phase(positions, 0, V.device)
    ph2 = boundary_phase(positions, 1, V.device)
    V1 = shift_states(V, -4, ph1)
    V2 = shift_states(V, -3, ph2)
    U1 = _links(V, V1)  # [..., n1, n2]
    U2 = _links(V, V2)
    loop = U1 * torch.roll(U2, -1, dims=-2) * torch.roll(U1, -1, dims=-1).conj() * U2.conj()
    return -torch.angle(loop)


def chern_from_states(V: torch.Tensor, positions: np.ndarray | torch.Tensor | None = None) -> torch.Tensor:
    """Raw (float) Chern number ``(1/2π) Σ F`` of states ``[..., n1, n2, nb, occ]`` → ``[...]``."""
    return plaquette_flux(V, positions).sum(dim=(-2, -1)) / TWO_PI


def chern_from_hamiltonians(H: torch.Tensor, occ: int, positions: np.ndarray | torch.Tensor | None = None
                            ) -> torch.Tensor:
    """Raw Chern numbers of a batch of Hamiltonians on closed grids (phase diagrams).

    Parameters
    ----------
    H : ``[..., n1, n2, nb, nb]`` Hermitian Bloch matrices on the grid κ = (i/n1, j/n2).
    occ : number of occupied bands.
    positions : ``[nb, 2]`` reduced state positions if ``H`` is in convention II, else None.

    Returns
    -------
    ``[...]`` float64 raw Chern numbers (not rounded: check ``|raw − round(raw)|`` yourself).
    """
    _, V = eigh_fast(H)
    return chern_from_states(V[..., :occ], positions)


def plane_kpoints(dim: int, axes: tuple[int, int], fixed: dict[int, float] | None,
                  k1: np.ndarray, k2: np.ndarray) -> np.ndarray:
    """Reduced k-points ``[len(k1), len(k2), dim]`` of a plane spanned by ``axes`` (others ``fixed``)."""
    k = np.zeros((len(k1), len(k2), dim))
    k[..., axes[0]] = np.asarray(k1)[:, None]
    k[..., axes[1]] = np.asarray(k2)[None, :]
    for ax, val in (fixed or {}).items():
        k[..., ax] = val
    return k


def plane_flux(model: TBModel, occ: int, n1: int, n2: int | None = None, *, axes: tuple[int, int] = (0, 1),
               fixed: dict[int, float] | None = None, convention: int = 2, max_elems: int = 1 << 23,
               device: torch.device | str | None = None) -> tuple[torch.Tensor, float]:
    """FHS fluxes ``[n1, n2]`` over a BZ plane of ``model`` and the smallest direct gap on it (eV).

    Rows are diagonalised in chunks of at most ``max_elems`` matrix elements, so grids of large
    (e.g. Wannier90) models fit in memory; the wrap-around row is closed with the convention-II phase.
    """
    n2 = n1 if n2 is None else n2
    nb = model.num_bands
    pos = model.state_positions if convention == 2 else None
    ph1 = boundary_phase(pos, axes[0], device)
    ph2 = boundary_phase(pos, axes[1], device)
    rows = max(1, max_elems // max(1, n2 * nb * nb))
    k2 = np.arange(n2) / n2
    tail = first = None
    gap = math.inf
    out = []
    for r0 in range(0, n1, rows):
        r = np.arange(r0, min(n1, r0 + rows))
        axes_k: list = [0.0] * model.dim
        axes_k[axes[0]], axes_k[axes[1]] = r / n1, k2
        for ax, val in (fixed or {}).items():
            axes_k[ax] = float(val)
        V, g = occupied_states(model, axes_k, occ, convention=convention, device=device)
        gap = min(gap, g)
        if first is None:
            first = V[:1]
        block = V if tail is None else torch.cat([tail, V])
        if block.shape[0] > 1:
            out.append(_plaquettes(block, ph2))
        tail = V[-1:]
    wrap = first if ph1 is None else ph1[:, None] * first
    out.append(_plaquettes(torch.cat([tail, wrap]), ph2))
    return torch.cat(out), gap


@dataclass
class ChernResult:
    """Chern number with its diagnostics.

    chern : the integer (``round(raw)``); raw : ``(1/2π) Σ F``; gap : smallest direct gap on the
    grid (eV); max_flux : largest ``|F|`` of a plaquette (rad); nk : grid used; warning : None when
    the integer can be trusted, else why not.
    """

    chern: int
    raw: float
    gap: float
    max_flux: float
    nk: int
    warning: str | None = None


def chern_result(model: TBModel, nk: int = 64, filling: int | None = None, *, plane: tuple[int, float] | None = None,
                 refine: bool = True, max_nk: int | None = None, flux_tol: float = 1.0, gap_tol: float = 1e-6,
                 int_tol: float = 1e-6, convention: int = 1, device: torch.device | str | None = None) -> ChernResult:
    """Chern number of the occupied bands with diagnostics (never raises on convergence).

    Parameters
    ----------
    nk : starting grid ``nk × nk``; with ``refine`` it is doubled (up to ``max_nk``) while a
        plaquette flux exceeds ``flux_tol`` rad (Berry curvature not resolved); ``max_nk`` defaults
        to 1024, lowered for many bands so that ``nk² · nb³`` stays below ~2e8 (seconds, not hours).
    plane : for 3D models, ``(axis, value)``: the plane ``κ_axis = value`` (the other two axes span it).
    gap_tol : smallest direct gap (eV) on the grid accepted as insulating.
    convention : Bloch convention of the states (1 by default: cheapest; the integer is the same).
    device : torch device for the grid (e.g. ``"cuda"``); the result is the same.
    int_tol : allowed ``|raw − round(raw)|`` (the FHS sum is an integer up to round-off).
    """
    if nk < 2:
        raise TopodiffInputError(f"nk must be at least 2, got {nk}")
    occ = resolve_filling(model, filling)
    if model.dim == 2 and plane is None:
        axes, fixed = (0, 1), None
    elif model.dim == 3 and plane is not None:
        ax, val = plane
        axes = tuple(a for a in range(3) if a != ax)  # type: ignore[assignment]
        fixed = {ax: float(val)}
    else:
        raise TopodiffInputError(f"a Chern number needs a 2D model or a plane of a 3D model (model is {model.dim}D)")
    n = int(nk)
    if max_nk is None:
        max_nk = min(1024, max(n, int(math.sqrt(2e8 / model.num_bands ** 3))))
    dirac_like = 0
    while True:
        F, gap = plane_flux(model, occ, n, axes=axes, fixed=fixed, convention=convention,  # type: ignore[arg-type]
                            device=device)
        max_flux = float(F.abs().max())
        # a flux ≈ ±π that survives refinement is a band touching (Dirac point) inside a plaquette
        dirac_like = dirac_like + 1 if max_flux > 3.0 else 0
        if not refine or max_flux <= flux_tol or 2 * n > max_nk or gap < gap_tol or dirac_like >= 3:
            break
        n *= 2
    raw = float(F.sum()) / TWO_PI
    c = int(round(raw))
    warning = None
    if gap < gap_tol:
        warning = f"direct gap {gap:.3g} eV on the {n}x{n} grid is below {gap_tol:g} eV: bands touch, Chern number undefined"
    elif abs(raw - c) > int_tol:
        warning = f"raw Chern number {raw:.6f} is not an integer"
    elif dirac_like >= 3:
        warning = (f"a plaquette carries Berry flux {max_flux:.2f} rad ≈ π on grids up to {n}x{n}: "
                   "the bands touch at a point (Dirac/Weyl node), Chern number undefined")
    elif max_flux > flux_tol:
        warning = (f"Berry curvature not resolved on the {n}x{n} grid (largest plaquette flux {max_flux:.2f} rad): "
                   "the integer may be wrong; increase nk")
    return ChernResult(c, raw, gap, max_flux, n, warning)


def chern_number(model: TBModel, nk: int = 64, filling: int | None = None, *, raise_on_small_gap: bool = True,
                 **options: object) -> int:
    """Chern number (int) of the occupied bands of a 2D model (CONTRACTS §2 sign, FHS method).

    Parameters
    ----------
    model : 2D :class:`TBModel` (or a 3D one with ``plane=(axis, value)``).
    nk : starting ``nk × nk`` grid (refined automatically where the curvature is unresolved).
    filling : occupied bands (default: the model's).
    raise_on_small_gap : raise :class:`ConvergenceError` when the result cannot be trusted
        (gap closing on the grid, non-integer, unresolved curvature); otherwise return the nearest integer.
    **options : passed to :func:`chern_result` (``refine``, ``max_nk``, ``flux_tol``, ``gap_tol``, ``plane``).
    """
    res = chern_result(model, nk, filling, **options)  # type: ignore[arg-type]
    if res.warning and raise_on_small_gap:
        raise ConvergenceError(res.warning)
    return res.chern


def berry_curvature(model: TBModel, nk: int = 100, filling: int | None = None, *, cartesian: bool = False,
                    convention: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Berry curvature map of the occupied bands of a 2D model (FHS plaquette fluxes).

    Returns
    -------
    k : ``[nk, nk, 2]`` reduced coordinates of the plaquette centres.
    omega : ``[nk, nk]`` curvature, ``F · nk²`` in reduced units (``C = (1/2π)∫Ω d²κ``), or with
        ``cartesian`` in Å² (``Ω_red · A_cell / (2π)²``, ``C = (1/2π)∫Ω d²k``).
    """
    if model.dim != 2:
        raise TopodiffInputError(f"berry_curvature needs a 2D model, got {model.dim}D")
    if nk < 2:
        raise TopodiffInputError(f"nk must be at least 2, got {nk}")
    occ = resolve_filling(model, filling)
    F, _ = plane_flux(model, occ, nk, convention=convention)
    omega = F.cpu().numpy() * nk * nk
    if cartesian:
        lat = model.lattice[:, :2] if model.lattice.shape[1] >= 2 else model.lattice
        area = abs(np.linalg.det(lat[:2, :2])) if lat.shape[1] == 2 else np.linalg.norm(np.cross(*model.lattice))
        omega = omega * area / TWO_PI ** 2
    c = (np.arange(nk) + 0.5) / nk
    return np.stack(np.meshgrid(c, c, indexing="ij"), axis=-1), omega

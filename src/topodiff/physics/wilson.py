"""Wilson loops and hybrid Wannier charge centres (WCC), with Z2Pack-style adaptive refinement.

A Wilson loop along reduced axis ``l`` at fixed other coordinates is the ordered product of
occupied-state overlaps ``W = Π_j ⟨u(κ_j)|u(κ_{j+1})⟩`` over ``κ_l = j/N``, closed with
``u(κ + e_l) = e^{−2πi τ_l} u(κ)`` (Bloch convention II, so WCCs include orbital positions). Its
eigenvalues ``e^{−2πi x̄}`` give the hybrid WCCs ``x̄ ∈ [0, 1)`` (reduced units along ``l``; same
sign as the Berry phase ``−Im ln det W = 2π Σ x̄`` with ``A = i⟨u|∇u⟩``).

Refinement follows Gresch et al., PRB 95, 075146 (2017) (Z2Pack): each loop is converged in the
number of k-points (``pos_tol``), and lines are inserted between neighbouring lines where the
largest gap moves too close to a WCC (``gap_tol``) or WCCs move too far (``move_tol``).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from topodiff.errors import TopodiffInputError
from topodiff.physics.model import TBModel
from topodiff.physics.spectra import boundary_phase, eigh_fast, grid_hamiltonian, resolve_filling

__all__ = ["chain_product", "wilson_from_states", "wcc_from_states", "wilson_wcc", "largest_gap",
           "WCCFlow", "wcc_flow", "chern_from_flow"]


def chain_product(M: torch.Tensor) -> torch.Tensor:
    """Ordered product ``M_0 M_1 ⋯ M_{N−1}`` of ``M [..., N, n, n]`` by pairwise (log N) reduction."""
    while M.shape[-3] > 1:
        if M.shape[-3] % 2:
            eye = torch.eye(M.shape[-1], dtype=M.dtype, device=M.device).expand(*M.shape[:-3], 1, *M.shape[-2:])
            M = torch.cat([M, eye], dim=-3)
        M = M[..., 0::2, :, :] @ M[..., 1::2, :, :]
    return M[..., 0, :, :]


def wilson_from_states(V: torch.Tensor, phase: torch.Tensor | None = None) -> torch.Tensor:
    """Wilson matrices ``[..., occ, occ]`` of loops of occupied states ``V [..., N, nb, occ]``.

    ``phase [nb]``: convention-II closure ``u(κ+e) = phase · u(κ)`` (None for convention I).
    Overlap matrices are replaced by their unitary part (SVD) before multiplying, which removes the
    discretisation's norm loss without changing the gauge-invariant spectrum in the continuum limit.
    """
    nxt = torch.roll(V, -1, dims=-3)
    if phase is not None:
        nxt = nxt.clone()
        nxt[..., -1, :, :] = phase[:, None] * nxt[..., -1, :, :]
    M = V.mH @ nxt
    U, _, Vh = torch.linalg.svd(M)
    return chain_product(U @ Vh)


def wcc_from_states(V: torch.Tensor, phase: torch.Tensor | None = None) -> torch.Tensor:
    """Sorted hybrid WCCs ``[..., occ]`` in ``[0, 1)`` of loops ``V [..., N, nb, occ]``."""
    lam = torch.linalg.eigvals(wilson_from_states(V, phase))
    x = torch.remainder(-torch.angle(lam) / (2 * math.pi), 1.0)
    x = torch.where(x >= 1.0 - 1e-12, torch.zeros_like(x), x)
    return torch.sort(x, dim=-1).values


def _loop_states(model: TBModel, occ: int, loop_axis: int, flow_axis: int, flow_k: np.ndarray,
                 fixed: dict[int, float], n_loop: int, device: torch.device | str | None = None
                 ) -> tuple[torch.Tensor, float]:
    """Occupied states ``[n_lines, n_loop, nb, occ]`` (convention II) and the smallest direct gap."""
    axes_k: list = [0.0] * model.dim
    axes_k[flow_axis] = np.asarray(flow_k, dtype=float)
    axes_k[loop_axis] = np.arange(n_loop) / n_loop
    for ax, val in fixed.items():
        axes_k[ax] = float(val)
    H = grid_hamiltonian(model, axes_k, convention=2, device=device)
    if loop_axis < flow_axis:
        H = H.transpose(0, 1)
    e, v = eigh_fast(H)
    return v[..., :occ], float((e[..., occ] - e[..., occ - 1]).min())


def wilson_wcc(model: TBModel, flow_k: np.ndarray, *, filling: int | None = None, loop_axis: int = 1,
               flow_axis: int = 0, fixed: dict[int, float] | None = None, n_loop: int = 32
               ) -> tuple[torch.Tensor, float]:
    """WCCs ``[len(flow_k), occ]`` of Wilson loops along ``loop_axis`` at ``κ_flow = flow_k`` and the gap (eV)."""
    occ = resolve_filling(model, filling)
    V, gap = _loop_states(model, occ, loop_axis, flow_axis, np.atleast_1d(flow_k), dict(fixed or {}), n_loop)
    return wcc_from_states(V, boundary_phase(model.state_positions, loop_axis)), gap


def largest_gap(wcc: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Midpoint and size of the largest gap between sorted WCCs ``[..., occ]`` on the unit circle."""
    w = np.asarray(wcc, dtype=float)
    nxt = np.concatenate([w[..., 1:], w[..., :1] + 1.0], axis=-1)
    gaps = nxt - w
    idx = np.argmax(gaps, axis=-1)
    size = np.take_along_axis(gaps, idx[..., None], -1)[..., 0]
    mid = np.remainder(np.take_along_axis(w, idx[..., None], -1)[..., 0] + size / 2, 1.0)
    return mid, size


def _circ(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.abs(a - b) % 1.0
    return np.minimum(d, 1.0 - d)


@dataclass
class WCCFlow:
    """Hybrid WCCs along a family of Wilson loops.

    k : ``[n_lines]`` flow coordinate (reduced); wcc : ``[n_lines, occ]`` sorted WCCs in [0, 1);
    gap_pos, gap_size : largest-gap midpoint and size per line; n_loop : k-points per loop;
    energy_gap : smallest direct gap over all loop points (eV); converged : every check passed;
    notes : why not.
    """

    k: np.ndarray
    wcc: np.ndarray
    gap_pos: np.ndarray
    gap_size: np.ndarray
    n_loop: int
    energy_gap: float
    converged: bool
    loop_axis: int = 1
    flow_axis: int = 0
    fixed: dict[int, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _neighbour_ok(w0: np.ndarray, w1: np.ndarray, z0: np.ndarray, z1: np.ndarray, g0: np.ndarray,
                  g1: np.ndarray, gap_tol: float, move_tol: float) -> np.ndarray:
    """Z2Pack's gap and move checks between lines ``i`` and ``i+1`` (arrays over i)."""
    gap_ok = ((_circ(w1, z0[:, None]).min(-1) > gap_tol * g0) & (_circ(w0, z1[:, None]).min(-1) > gap_tol * g1))
    move = _circ(w1[:, :, None], w0[:, None, :]).min(-1).max(-1)
    return gap_ok & (move < move_tol * np.minimum(g0, g1))


def wcc_flow(model: TBModel, filling: int | None = None, *, loop_axis: int = 1, flow_axis: int = 0,
             fixed: dict[int, float] | None = None, k_range: tuple[float, float] = (0.0, 1.0),
             num_lines: int = 11, n_loop: int = 16, adaptive: bool = True, pos_tol: float = 0.01,
             gap_tol: float = 0.3, move_tol: float = 0.3, min_spacing: float = 1e-4, max_lines: int = 800,
             max_loop: int = 512, device: torch.device | str | None = None) -> WCCFlow:
    """Flow of hybrid WCCs of the occupied bands as the loops move across the BZ.

    Parameters
    ----------
    loop_axis, flow_axis : reduced axes along which loops run / which the flow sweeps.
    fixed : values of the remaining axes (3D: ``{axis: κ}``, e.g. a TRIM plane).
    k_range : swept interval of ``κ_flow`` (``(0, 0.5)`` for Z2, ``(0, 1)`` for Chern / plots).
    num_lines, n_loop : initial lines and k-points per loop.
    adaptive : converge every loop in k-points (WCC change < ``pos_tol`` when halving) and insert
        lines where neighbours fail the gap check (``gap_tol`` × gap size) or move check
        (``move_tol`` × gap size), down to ``min_spacing``, at most ``max_lines`` lines.
    device : torch device for the loops (e.g. ``"cuda"``); WCCs come back as NumPy arrays.
    """
    occ = resolve_filling(model, filling)
    dim = model.dim
    fixed = dict(fixed or {})
    if {loop_axis, flow_axis} | set(fixed) != set(range(dim)) or loop_axis == flow_axis:
        raise TopodiffInputError(f"loop_axis, flow_axis and fixed must cover the {dim} axes exactly once")
    if num_lines < 2 or n_loop < 2:
        raise TopodiffInputError("num_lines and n_loop must be at least 2")
    phase = boundary_phase(model.state_positions, loop_axis, device)
    notes: list[str] = []

    def compute(ks: np.ndarray, n: int) -> tuple[np.ndarray, float]:
        V, g = _loop_states(model, occ, loop_axis, flow_axis, ks, fixed, n, device)
        return wcc_from_states(V, phase).cpu().numpy(), g

    ks = np.linspace(k_range[0], k_range[1], num_lines)
    n = int(n_loop)
    wcc, egap = compute(ks, n)
    if adaptive:
        n, wcc, egap = _converge_loops(compute, ks, n, wcc, egap, pos_tol, max_loop, notes)
    converged = not notes
    if adaptive:
        ks, wcc, egap, refined = _refine_lines(compute, ks, n, wcc, egap, (gap_tol, move_tol, min_spacing, max_lines),
                                              notes)
        converged = converged and refined
    z, g = largest_gap(wcc)
    return WCCFlow(ks, wcc, z, g, n, egap, converged, loop_axis, flow_axis, fixed, notes)


_Compute = Callable[[np.ndarray, int], tuple[np.ndarray, float]]


def _converge_loops(compute: _Compute, ks: np.ndarray, n: int, wcc: np.ndarray, egap: float, pos_tol: float,
                    max_loop: int, notes: list[str]) -> tuple[int, np.ndarray, float]:
    """Double the k-points per loop until no WCC moves by ``pos_tol`` (at most ``max_loop`` points;
    a note says when that is not reached). Returns ``(n, wcc, smallest gap)``."""
    while True:
        w2, g2 = compute(ks, 2 * n)
        diff = float(_circ(w2[..., :, None], wcc[..., None, :]).min(-1).max())
        n, wcc, egap = 2 * n, w2, min(egap, g2)
        if diff < pos_tol:
            return n, wcc, egap
        if 2 * n > max_loop:
            notes.append(f"Wilson loops not converged in k-points (WCC change {diff:.3g} at {n} points)")
            return n, wcc, egap


def _refine_lines(compute: _Compute, ks: np.ndarray, n: int, wcc: np.ndarray, egap: float,
                  limits: tuple[float, float, float, int], notes: list[str]
                  ) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """Insert lines midway between neighbours that fail the gap or move check (``limits`` = gap_tol,
    move_tol, min_spacing, max_lines). Returns ``(ks, wcc, smallest gap, converged)``."""
    gap_tol, move_tol, min_spacing, max_lines = limits
    z, g = largest_gap(wcc)
    while True:
        ok = _neighbour_ok(wcc[:-1], wcc[1:], z[:-1], z[1:], g[:-1], g[1:], gap_tol, move_tol)
        bad = np.nonzero(~ok & (np.diff(ks) > min_spacing))[0]
        if len(bad) == 0:
            if not ok.all():
                notes.append("WCC flow not converged: neighbouring lines still fail the gap/move check "
                             f"at spacing {min_spacing:g}")
            return ks, wcc, egap, bool(ok.all())
        if len(ks) + len(bad) > max_lines:
            notes.append(f"WCC flow not converged within {max_lines} lines")
            return ks, wcc, egap, False
        new_k = (ks[bad] + ks[bad + 1]) / 2
        w_new, g_new = compute(new_k, n)
        egap = min(egap, g_new)
        ks = np.concatenate([ks, new_k])
        order = np.argsort(ks, kind="stable")
        ks = ks[order]
        wcc = np.concatenate([wcc, w_new])[order]
        z, g = largest_gap(wcc)


def chern_from_flow(flow: WCCFlow) -> float:
    """Winding of ``Σ x̄`` over a full flow ``κ_flow ∈ [0, 1]`` (raw float; = Chern number, FHS sign)."""
    s = flow.wcc.sum(-1)
    d = np.diff(s)
    d = d - np.round(d)
    return float(d.sum())

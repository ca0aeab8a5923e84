"""1D invariants: Zak (Berry) phase and the chiral winding number.

* Zak phase (Zak, PRL 62, 2747 (1989)): ``φ = −Im ln det Π_j ⟨u(κ_j)|u(κ_{j+1})⟩`` over the
  occupied bands, Bloch convention II (so it is ``2π`` × the electronic centre in reduced units,
  orbital positions included), in ``[0, 2π)``.
* Winding (CONTRACTS §2): for a chiral model (a sublattice split A/B with ``H_AA = H_BB = 0``),
  ``w = (1/2πi) ∮ d ln det H_BA(κ)``, κ: 0 → 1 in convention I, counter-clockwise positive.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from topodiff.errors import ConvergenceError, TopodiffInputError
from topodiff.physics.model import TBModel
from topodiff.physics.spectra import boundary_phase, occupied_states, resolve_filling
from topodiff.physics.wilson import wilson_from_states

__all__ = ["berry_phase", "berry_phase_from_states", "chiral_partition", "winding", "winding_from_hamiltonians"]

TWO_PI = 2.0 * math.pi


def berry_phase_from_states(V: torch.Tensor, phase: torch.Tensor | None = None) -> torch.Tensor:
    """Berry phase in ``[0, 2π)`` of closed loops of occupied states ``V [..., N, nb, occ]`` → ``[...]``."""
    det = torch.linalg.det(wilson_from_states(V, phase))
    phi = torch.remainder(-torch.angle(det), TWO_PI)
    return torch.where(phi > TWO_PI - 1e-10, torch.zeros_like(phi), phi)


def berry_phase(model: TBModel, nk: int = 200, filling: int | None = None, *, gap_tol: float = 1e-6) -> float:
    """Zak phase (rad, ``[0, 2π)``) of the occupied bands of a 1D model on ``nk`` k-points.

    Raises :class:`ConvergenceError` when the direct gap on the grid is below ``gap_tol`` (eV).
    """
    if model.dim != 1:
        raise TopodiffInputError(f"the Zak phase needs a 1D model, got {model.dim}D")
    if nk < 2:
        raise TopodiffInputError(f"nk must be at least 2, got {nk}")
    occ = resolve_filling(model, filling)
    V, gap = occupied_states(model, [np.arange(nk) / nk], occ, convention=2)
    if gap < gap_tol:
        raise ConvergenceError(f"direct gap {gap:.3g} eV on the grid is below {gap_tol:g} eV: Zak phase undefined")
    return float(berry_phase_from_states(V, boundary_phase(model.state_positions, 0)))


def chiral_partition(model: TBModel, *, atol: float = 1e-10) -> tuple[np.ndarray, np.ndarray] | None:
    """State indices ``(A, B)`` of a sublattice split with no A-A or B-B terms (any R), or None.

    The coupling graph of the hopping table (including onsite terms) must be bipartite with
    ``|A| = |B|``; otherwise the model is not chiral in its basis.
    """
    _, T = model.table
    nb = T.shape[-1]
    coupled = np.any(np.abs(T) > atol, axis=0)
    if np.any(np.diag(coupled)):
        return None
    colour = -np.ones(nb, dtype=int)
    for start in range(nb):
        if colour[start] >= 0:
            continue
        colour[start] = 0
        stack = [start]
        while stack:
            a = stack.pop()
            for b in np.nonzero(coupled[a] | coupled[:, a])[0]:
                if colour[b] < 0:
                    colour[b] = 1 - colour[a]
                    stack.append(b)
                elif colour[b] == colour[a]:
                    return None
    A, B = np.nonzero(colour == 0)[0], np.nonzero(colour == 1)[0]
    if len(A) != len(B):
        return None
    return A, B


def winding_from_hamiltonians(H: torch.Tensor, A: np.ndarray, B: np.ndarray, *, det_tol: float = 1e-8) -> torch.Tensor:
    """Raw winding ``[...]`` of ``det H_BA`` over closed loops ``H [..., N, nb, nb]`` (convention I)."""
    d = torch.linalg.det(H[..., B[:, None], A[None, :]])
    if float(d.abs().min()) < det_tol:
        raise ConvergenceError("det H_BA vanishes on the loop: gap closing, winding undefined")
    ratio = torch.roll(d, -1, dims=-1) / d
    return torch.angle(ratio).sum(-1) / TWO_PI


def winding(model: TBModel, nk: int = 400) -> int | None:
    """Chiral winding number of a 1D model (int), or None when the model is not chiral.

    Raises :class:`ConvergenceError` if ``det H_BA`` vanishes on the grid or the result is not an integer.
    """
    if model.dim != 1:
        raise TopodiffInputError(f"the winding number needs a 1D model, got {model.dim}D")
    if nk < 3:
        raise TopodiffInputError(f"nk must be at least 3, got {nk}")
    part = chiral_partition(model)
    if part is None:
        return None
    k = (np.arange(nk) / nk)[:, None]
    raw = float(winding_from_hamiltonians(model.hamiltonian(k, convention=1), *part))
    w = int(round(raw))
    if abs(raw - w) > 1e-6:
        raise ConvergenceError(f"raw winding {raw:.4f} is not an integer; increase nk")
    return w

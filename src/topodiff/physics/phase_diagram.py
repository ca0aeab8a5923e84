"""Chern-number phase diagrams of built-in models over a 2D parameter grid, fully vectorised.

The whole grid is built at once as a batch of hopping tables (``library.build_tables``), Bloch
Hamiltonians are formed for a chunk of grid points on an ``nk × nk`` k-grid in one contraction
(``bloch_hamiltonian`` with a leading batch of tables, convention I so H is periodic), diagonalised
by one batched ``eigh`` and reduced to FHS Chern numbers (``berry.chern_from_states``). Points whose
smallest direct gap on the k-grid is below ``gap_tol`` or whose raw Chern sum is not an integer are
reported as undetermined (phase boundaries), never silently rounded.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from topodiff.errors import TopodiffInputError
from topodiff.physics.berry import chern_from_states
from topodiff.physics.library import build_tables, model_parameters
from topodiff.physics.model import bloch_hamiltonian, checked_filling, k_grid

UNDETERMINED = -999  # marker in the integer Chern array for gapless / non-integer points


@dataclass
class Axis:
    """A swept parameter: ``name`` and ``num`` values from ``start`` to ``stop`` (inclusive)."""

    name: str
    start: float
    stop: float
    num: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.stop)):
            raise TopodiffInputError(f"range of {self.name!r} must be finite")
        if self.start >= self.stop:
            raise TopodiffInputError(f"range of {self.name!r}: start {self.start:g} must be below stop {self.stop:g}")
        if int(self.num) < 2:
            raise TopodiffInputError(f"{self.name!r} needs at least 2 points, got {self.num}")
        self.num = int(self.num)

    @property
    def values(self) -> np.ndarray:
        return np.linspace(self.start, self.stop, self.num)


@dataclass
class PhaseDiagram:
    """Result on the grid ``[nx, ny]`` (x first): integer ``chern`` (``UNDETERMINED`` where not
    trustworthy), ``raw`` FHS sums, smallest direct ``gap`` on the k-grid (eV)."""

    model: str
    x: Axis
    y: Axis
    nk: int
    filling: int
    params: dict[str, float]
    chern: np.ndarray
    raw: np.ndarray
    gap: np.ndarray
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def determined(self) -> np.ndarray:
        return self.chern != UNDETERMINED

    def counts(self) -> dict[str, int]:
        vals, cnt = np.unique(self.chern, return_counts=True)
        return {("undetermined" if v == UNDETERMINED else str(int(v))): int(c) for v, c in zip(vals, cnt)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (``chern`` rows are x values, ``null`` where undetermined)."""
        chern = [[None if v == UNDETERMINED else int(v) for v in row] for row in self.chern]
        return {"model": self.model, "invariant": "chern", "nk": self.nk, "filling": self.filling,
                "params": self.params,
                "x": {"name": self.x.name, "values": self.x.values.tolist()},
                "y": {"name": self.y.name, "values": self.y.values.tolist()},
                "chern": chern, "gap": self.gap.tolist(), "counts": self.counts(), "seconds": self.seconds}


def lower_band_2x2(H: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gap and lower eigenvector of 2x2 Hermitian matrices ``[..., 2, 2]`` in closed form.

    ``H = d0 + d·σ``: the gap is ``2|d|``; the lower state is ``(dx − i dy, −(dz + |d|))`` where
    ``dz ≥ 0`` and ``(dz − |d|, dx + i dy)`` elsewhere (each well conditioned on its side; the FHS
    Chern number does not depend on this choice of gauge). Returns ``(gap [...], v [..., 2])``.
    """
    dz = 0.5 * (H[..., 0, 0] - H[..., 1, 1]).real
    off = H[..., 1, 0]  # dx + i dy
    norm_d = torch.sqrt(dz * dz + off.real ** 2 + off.imag ** 2)
    pos = (dz >= 0)
    a = torch.where(pos, off.conj(), (dz - norm_d).to(off.dtype))
    b = torch.where(pos, -(dz + norm_d).to(off.dtype), off)
    n = torch.sqrt(a.real ** 2 + a.imag ** 2 + b.real ** 2 + b.imag ** 2).clamp_min(1e-300)
    return 2.0 * norm_d, torch.stack([a / n, b / n], dim=-1)


def chern_one_band(v: torch.Tensor) -> torch.Tensor:
    """Raw FHS Chern number of one occupied band ``v [..., n1, n2, nb]`` on a closed convention-I grid.

    Same formula and sign as :func:`topodiff.physics.berry.chern_from_states` (CONTRACTS §2), with
    the 1x1 link determinants written as plain inner products (much faster for big batches).
    """
    U1 = (v.conj() * torch.roll(v, -1, dims=-3)).sum(-1)  # ⟨u(k)|u(k+e1)⟩, [..., n1, n2]
    U2 = (v.conj() * torch.roll(v, -1, dims=-2)).sum(-1)  # ⟨u(k)|u(k+e2)⟩
    loop = U1 * torch.roll(U2, -1, dims=-2) * torch.roll(U1, -1, dims=-1).conj() * U2.conj()
    return -torch.angle(loop).sum(dim=(-2, -1)) / (2.0 * math.pi)


def chern_phase_diagram(model: str, x: Axis, y: Axis, *, nk: int = 24, params: dict[str, float] | None = None,
                        filling: int | None = None, gap_tol: float = 1e-6, int_tol: float = 1e-3,
                        max_elems: int = 1 << 22, device: str | torch.device | None = None) -> PhaseDiagram:
    """Chern number of a built-in 2D model on an ``x.num × y.num`` parameter grid.

    Parameters
    ----------
    model : built-in model name (``library.list_models``); must be 2D.
    x, y : swept parameters (names from ``library.model_parameters``); ``params`` fixes the others.
    nk : k-grid ``nk × nk`` per grid point.
    filling : occupied bands (default half filling).
    gap_tol : a grid point with a smaller direct gap (eV) on the k-grid is undetermined.
    int_tol : allowed ``|raw − round(raw)|``.
    max_elems : complex matrix elements per chunk (memory bound: ~16 B × 3 × max_elems).
    """
    nk = int(nk)
    if nk <= 1:
        raise TopodiffInputError(f"nk must be at least 2, got {nk}")
    names = model_parameters(model)  # also rejects unknown models
    fixed = dict(params or {})
    for ax in (x, y):
        if ax.name not in names:
            raise TopodiffInputError(f"model {model!r} has no parameter {ax.name!r}; valid: {', '.join(names)}")
    if x.name == y.name:
        raise TopodiffInputError("--x and --y must be different parameters")
    for ax in (x, y):
        fixed.pop(ax.name, None)
    t0 = time.perf_counter()
    X, Y = np.meshgrid(x.values, y.values, indexing="ij")
    Rs, T, _ = build_tables(model, {**fixed, x.name: X, y.name: Y})
    if Rs.shape[1] != 2:
        raise TopodiffInputError(f"a Chern phase diagram needs a 2D model; {model!r} is {Rs.shape[1]}D")
    nb = T.shape[-1]
    occ = checked_filling(nb // 2 if filling is None else filling, nb)  # 2.5 is refused, not truncated
    flatT = torch.as_tensor(T.reshape(-1, *T.shape[-3:]), device=device)
    Rt = torch.as_tensor(Rs, device=device)
    k = torch.as_tensor(k_grid([nk, nk]), device=device)
    per_point = nk * nk * nb * nb
    chunk = max(1, max_elems // per_point)
    raws, gaps = [], []
    for s in range(0, flatT.shape[0], chunk):
        H = bloch_hamiltonian(k, Rt, flatT[s:s + chunk])  # [g, nk, nk, nb, nb], convention I
        if nb == 2:
            g, v = lower_band_2x2(H)
            gaps.append(g.amin(dim=(-2, -1)).cpu())
            raws.append(chern_one_band(v).cpu())
            continue
        e, V = torch.linalg.eigh(H)
        gaps.append((e[..., occ] - e[..., occ - 1]).amin(dim=(-2, -1)).cpu())
        raws.append((chern_one_band(V[..., 0]) if occ == 1 else chern_from_states(V[..., :occ])).cpu())
    raw = torch.cat(raws).numpy().reshape(X.shape)
    gap = torch.cat(gaps).numpy().reshape(X.shape)
    chern = np.rint(raw).astype(np.int64)
    bad = (gap < gap_tol) | (np.abs(raw - chern) > int_tol)
    chern[bad] = UNDETERMINED
    used = {k_: float(v) for k_, v in {**model_parameters(model), **fixed}.items()
            if k_ not in (x.name, y.name)}
    return PhaseDiagram(model, x, y, nk, occ, used, chern, raw, gap, time.perf_counter() - t0)


def haldane_boundary(phi: np.ndarray, t2: float) -> np.ndarray:
    """Analytic Haldane phase boundary ``M = 3√3 t2 sin φ`` (Haldane, PRL 61, 2015 (1988)); the
    Chern insulator is ``|M| < 3√3 |t2 sin φ|``. Returns the positive branch ``[len(phi)]``."""
    return 3.0 * math.sqrt(3.0) * t2 * np.sin(np.asarray(phi, dtype=float))

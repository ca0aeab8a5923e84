"""Batched spectra on k-point grids and the occupied-state helpers the invariants share."""
from __future__ import annotations

import math

import numpy as np
import torch

from topodiff.physics.model import COMPLEX, REAL, TBModel, checked_filling

__all__ = ["grid_hamiltonian", "eigh_fast", "eigh_grid", "direct_gap", "occupied_states", "resolve_filling", "boundary_phase", "shift_states"]


def resolve_filling(model: TBModel, filling: int | None) -> int:
    """Occupied band count: ``filling`` if given, else the model's; checked against ``1..nb-1``."""
    return checked_filling(model.occupied if filling is None else filling, model.num_bands)


def _dense_table(model: TBModel) -> tuple[list[np.ndarray], np.ndarray]:
    """Table as a dense array over the distinct R values of each axis: ``[U_0, ..., U_{d-1}, nb*nb]``."""
    Rs, T = model.table
    nb = T.shape[-1]
    uniq, inv = zip(*(np.unique(Rs[:, a], return_inverse=True) for a in range(Rs.shape[1])))
    dense = np.zeros([len(u) for u in uniq] + [nb * nb], dtype=np.complex128)
    dense[tuple(np.asarray(i).reshape(-1) for i in inv)] = T.reshape(len(Rs), nb * nb)
    return list(uniq), dense


def grid_hamiltonian(model: TBModel, axes_k: list[np.ndarray | float], *, convention: int = 2,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """``H(κ)`` on a product grid, contracting one axis at a time (separable Bloch phases).

    Parameters
    ----------
    axes_k : one entry per dimension: a 1D array of reduced values (a grid axis) or a float (fixed).
    convention : Bloch convention (2 with orbital positions, 1 without).

    Returns
    -------
    ``[*grid, nb, nb]`` complex128, grid = the lengths of the array entries in order; equal to
    ``model.hamiltonian`` on the meshgrid, at a cost of ~``n_k · nb² · U`` instead of ``n_k · nb² · n_R``.
    """
    uniq, dense = _dense_table(model)
    nb = model.num_bands
    X = torch.as_tensor(dense, device=device)
    pos = model.state_positions
    d = None
    for a, ka in enumerate(axes_k):
        arr = np.asarray(ka, dtype=float)
        ang = torch.as_tensor(2 * math.pi * arr[..., None] * uniq[a], dtype=REAL, device=device)
        ph = torch.polar(torch.ones_like(ang), ang)  # [n_a, U_a] or [U_a]
        X = torch.tensordot(ph, X, dims=([-1], [0]))
        if arr.ndim:
            X = torch.movedim(X, 0, -2)
        if convention == 2:
            angd = torch.as_tensor(2 * math.pi * arr[..., None] * pos[:, a], dtype=REAL, device=device)
            q = torch.polar(torch.ones_like(angd), angd)  # [n_a, nb] or [nb]
            if d is None:
                d = q
            elif arr.ndim:
                d = d.unsqueeze(-2) * q if d.ndim > 1 else d * q
            else:
                d = d * q
    grid = X.shape[:-1]
    H = X.reshape(*grid, nb, nb)
    if convention == 2 and d is not None:
        d = d.expand(*grid, nb)
        H = H * d.conj()[..., :, None] * d[..., None, :]
    return H


def eigh_fast(H: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched ``eigh``; closed form for 2x2 Hermitian matrices.

    For ``H = ε + [[dz, b], [b*, -dz]]``: ``E = ε ∓ r``, ``r = √(dz² + |b|²)``; each eigenvector is
    taken from the row of ``H − E`` with the larger norm (``x = |dz| + r``), so it is well conditioned.
    Returns energies ``[..., nb]`` ascending and eigenvectors ``[..., nb, nb]`` (columns, normalised).
    """
    if H.shape[-1] != 2:
        return torch.linalg.eigh(H)
    a, c, b = H[..., 0, 0].real, H[..., 1, 1].real, H[..., 0, 1]
    eps, dz = (a + c) / 2, (a - c) / 2
    b2 = b.real * b.real + b.imag * b.imag
    r = torch.sqrt(dz * dz + b2)
    x = dz.abs() + r
    n = torch.sqrt(b2 + x * x)
    safe = n > 0
    inv = torch.where(safe, 1.0 / torch.where(safe, n, torch.ones_like(n)), torch.zeros_like(n))
    pos = (dz >= 0)
    xc = (x * inv).to(H.dtype)
    bn, bcn = b * inv, b.conj() * inv
    # lower: dz >= 0 -> (b, -x); else (-x, b*).  upper: dz <= 0 -> (b, x); else (x, b*)
    lo0 = torch.where(pos, bn, -xc)
    lo1 = torch.where(pos, -xc, bcn)
    up0 = torch.where(pos, xc, bn)
    up1 = torch.where(pos, bcn, xc)
    one, zero = torch.ones_like(xc), torch.zeros_like(xc)
    lo0, lo1 = torch.where(safe, lo0, one), torch.where(safe, lo1, zero)
    up0, up1 = torch.where(safe, up0, zero), torch.where(safe, up1, one)
    V = torch.stack([torch.stack([lo0, up0], -1), torch.stack([lo1, up1], -1)], -2)
    return torch.stack([eps - r, eps + r], dim=-1), V


def eigh_grid(model: TBModel, k: np.ndarray | torch.Tensor, *, convention: int = 2,
              device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigen-decomposition of ``H(κ)`` on any batch of reduced k-points.

    Parameters
    ----------
    k : ``[..., dim]`` reduced coordinates.
    convention : Bloch convention (2: with orbital positions, CONTRACTS §1; 1: without).

    Returns
    -------
    energies ``[..., nb]`` (eV, ascending, float64) and states ``[..., nb, nb]`` (columns, complex128).
    """
    return eigh_fast(model.hamiltonian(k, convention=convention, device=device))


def direct_gap(energies: torch.Tensor | np.ndarray, occ: int) -> float:
    """Smallest direct gap ``min_k E_occ(k) - E_{occ-1}(k)`` (eV) over a batch of spectra ``[..., nb]``."""
    e = torch.as_tensor(energies)
    return float((e[..., occ] - e[..., occ - 1]).min())


def occupied_states(model: TBModel, k: np.ndarray | torch.Tensor | list, occ: int, *, convention: int = 2,
                    device: torch.device | str | None = None) -> tuple[torch.Tensor, float]:
    """Occupied eigenvectors ``[..., nb, occ]`` and the direct gap above them (eV).

    ``k`` is either ``[..., dim]`` reduced points or a list of per-axis values for :func:`grid_hamiltonian`.
    """
    H = (grid_hamiltonian(model, k, convention=convention, device=device) if isinstance(k, list)
         else model.hamiltonian(k, convention=convention, device=device))
    e, v = eigh_fast(H)
    return v[..., :occ], direct_gap(e, occ)


def boundary_phase(positions: np.ndarray | torch.Tensor | None, axis: int, device: torch.device | None = None
                   ) -> torch.Tensor | None:
    """``[nb]`` phases ``e^{-2πi τ_axis}`` with ``u(κ + e_axis) = diag(phase) u(κ)`` (convention II)."""
    if positions is None:
        return None
    tau = torch.as_tensor(np.asarray(positions)[:, axis] if not torch.is_tensor(positions) else positions[:, axis],
                          dtype=REAL, device=device)
    return torch.exp(-2j * math.pi * tau.to(COMPLEX))


def shift_states(V: torch.Tensor, axis: int, phase: torch.Tensor | None) -> torch.Tensor:
    """States at the next grid point along a closed ``axis`` of ``V [..., n_axis, ..., nb, m]``.

    ``roll(V, -1)``, with the wrapped slice multiplied by the convention-II boundary ``phase`` (rows).
    """
    out = torch.roll(V, -1, dims=axis)
    if phase is not None:
        idx = [slice(None)] * V.ndim
        idx[axis] = slice(-1, None)
        out = out.clone()
        out[tuple(idx)] = phase[:, None] * out[tuple(idx)]
    return out

"""All invariants of a model by dimension, as the ``topodiff invariants --json`` object (CONTRACTS §3)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from topodiff.errors import ConvergenceError, TopodiffInputError
from topodiff.physics.bands import band_gaps
from topodiff.physics.berry import chern_result
from topodiff.physics.model import TBModel
from topodiff.physics.oned import berry_phase, winding
from topodiff.physics.spectra import grid_hamiltonian, resolve_filling
from topodiff.physics.z2 import time_reversal_check
from topodiff.physics.z2_routes import z2_with_routes

__all__ = ["grid_gap", "invariant_summary", "DEFAULT_NK"]

DEFAULT_NK = {1: 200, 2: 64, 3: 24}


def grid_gap(model: TBModel, occ: int, nk: int) -> float:
    """Smallest direct gap (eV) between bands ``occ−1`` and ``occ`` on the ``nk^dim`` grid."""
    ax = np.arange(nk) / nk
    e = torch.linalg.eigvalsh(grid_hamiltonian(model, [ax] * model.dim, convention=1))
    return float((e[..., occ] - e[..., occ - 1]).min())


def invariant_summary(model: TBModel, *, nk: int | None = None, filling: int | None = None) -> dict[str, Any]:
    """Invariants of ``model`` by dimension; unreliable integers become ``None`` plus a ``warning``.

    Keys: ``dim``, ``filling``, ``num_bands``, ``gap`` (eV, on the ``nk`` grid), and
    1D ``berry_phase`` (rad, [0, 2π)), ``winding`` (int or None if not chiral);
    2D ``chern``, ``z2`` (even filling, else None); 3D ``z2`` ``[ν0, ν1, ν2, ν3]`` (even filling,
    else None) and ``chern_planes`` ``{"k1=0": C, "k1=0.5": C, ...}``.
    """
    if nk is not None and (isinstance(nk, bool) or int(nk) != nk or nk <= 0):
        raise TopodiffInputError(f"nk must be a positive integer, got {nk!r}")
    occ = resolve_filling(model, filling)
    dim = model.dim
    n = int(nk) if nk is not None else DEFAULT_NK[dim]
    out: dict[str, Any] = {"model": model.name, "dim": dim, "filling": occ, "num_bands": model.num_bands,
                           "gap": grid_gap(model, occ, n)}
    warnings: list[str] = []
    if dim == 1:
        try:
            out["berry_phase"] = berry_phase(model, max(n, 3), occ)
        except ConvergenceError as exc:
            out["berry_phase"] = None
            warnings.append(str(exc))
        try:
            out["winding"] = winding(model, max(n, 3))
        except ConvergenceError as exc:
            out["winding"] = None
            warnings.append(str(exc))
    elif dim == 2:
        res = chern_result(model, max(n, 2), occ)
        out["chern"] = None if res.warning else res.chern
        if res.warning:
            warnings.append(f"chern: {res.warning}")
        out["z2"] = _z2(model, occ, out, warnings)
    else:
        out["z2"] = _z2(model, occ, out, warnings)
        planes: dict[str, int | None] = {}
        for ax in range(3):
            for val in (0.0, 0.5):
                key = f"k{ax + 1}={val:g}"
                res = chern_result(model, max(n, 2), occ, plane=(ax, val))
                planes[key] = None if res.warning else res.chern
                if res.warning:
                    warnings.append(f"chern plane {key}: {res.warning}")
        out["chern_planes"] = planes
    if dim >= 2:
        out["time_reversal"] = time_reversal_check(model).to_dict()
    if model.notes:
        out["notes"] = list(model.notes)
    if warnings:
        out["warning"] = "; ".join(warnings)
    return out


def _z2(model: TBModel, occ: int, out: dict[str, Any], warnings: list[str]) -> int | list[int] | None:
    """Z2 (WCC flow, then parity / spin-Chern routes) or None with the reason in ``warnings``.

    Sets ``z2_route`` and, for a filling whose Fermi level lies inside a band (the bands at the
    filling overlap: no gap anywhere between them), returns None: Z2 is not that material's invariant.
    """
    if occ % 2:  # CONTRACTS §3: null for odd filling (no Kramers pairs), not a warning
        return None
    gaps = band_gaps(model, occ, nk=_gap_nk(model))
    if gaps.indirect < -FERMI_OVERLAP_TOL:
        warnings.append(f"z2: the Fermi level at filling {occ} lies inside a band (band {occ} at "
                        f"{gaps.vbm:.3f} eV overlaps band {occ + 1} at {gaps.cbm:.3f} eV): a metal, no Z2; "
                        "check --filling")
        return None
    res = z2_with_routes(model, occ)
    out["z2_route"] = res.route if res.converged else None
    if res.note:
        out["z2_note"] = res.note
    if res.warning:
        warnings.append(f"z2: {res.warning}")
    if not res.converged:
        return None
    return list(res.z2) if isinstance(res.z2, tuple) else int(res.z2)


FERMI_OVERLAP_TOL = 0.05  # eV: semimetals (1T'-WTe2-like) keep a Z2 of the lowest bands; deeper overlap is a metal


def _gap_nk(model: TBModel) -> int:
    return {2: 48, 3: 12}.get(model.dim, 48)

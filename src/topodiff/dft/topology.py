"""Z2 and gaps of the DFT tight-binding model (:mod:`topodiff.dft.model`), and the verdict.

* **Parity route** (inversion): Fu-Kane parities at the eight TRIM, which lie on the even
  Γ-centred mesh, so they are those of the DFT states themselves (no interpolation). Inversion
  acts on the Löwdin orbitals as on atomic ones: orbital ``(a, l, m)`` → ``(π(a), l, m)`` times
  ``(−1)^l`` times the Bloch phase of the lattice shift
  (:func:`topodiff.physics.parity.parity_z2`).
* **WCC route** (no inversion): Wilson-loop flows on the six TRIM planes with Z2Pack-style
  adaptive refinement of lines and loop points (:func:`topodiff.physics.z2.z2_result`) on the
  Fourier-interpolated model; an unconverged flow gives no Z2.
* **Gaps**: ``gap_direct`` / ``gap_indirect`` (eV) between bands ``N_e − 1`` and ``N_e`` from the
  DFT eigenvalues on the mesh (exact there; extrema between mesh points are missed).
* **Verdict**: ``metal`` when the direct gap is below ``metal_tol`` or the electron count is odd;
  ``inconclusive`` when the Z2 could not be computed or the gap is below ``trust_gap`` (LCAO and
  plane-wave gaps differ by 0.1-0.2 eV) — unless ``trust_small_gap``; else ``strong_ti``
  (ν0 = 1), ``weak_ti`` or ``trivial_insulator``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from topodiff.errors import TopodiffInputError
from topodiff.evaluation.screen import classify
from topodiff.physics.model import TBModel

VERDICTS = ("strong_ti", "weak_ti", "trivial_insulator", "metal", "inconclusive")
METAL_TOL = 0.01  # eV
TRUST_GAP = 0.15  # eV


def mesh_gaps(Hk: np.ndarray, filling: int) -> tuple[float, float, np.ndarray]:
    """``(direct, indirect, eigenvalues [n_k, nb])`` (eV) of orthogonal Hamiltonians ``Hk`` at ``filling``."""
    E = np.linalg.eigvalsh(Hk)
    vb, cb = E[:, filling - 1], E[:, filling]
    return float((cb - vb).min()), float(cb.min() - vb.max()), E


def parity_route(model: TBModel, atom_of_orbital: np.ndarray, l_of_orbital: np.ndarray,
                 inversion: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    """``{"z2", "delta" [8], "trim_gap"}`` by Fu-Kane parity (raises ArithmeticError on a TRIM degeneracy)."""
    from topodiff.physics.parity import TRIM, parity_z2

    res = parity_z2(model, atom_of_orbital, np.where(l_of_orbital % 2 == 0, 1, -1), *inversion)
    return {"z2": [int(x) for x in res["z2"]], "parities": {_trim_label(k): int(d) for k, d in zip(TRIM, res["delta"])},
            "trim_gap": float(res["trim_gap"])}


def _trim_label(k: np.ndarray) -> str:
    return "(" + ",".join("0" if x == 0 else "1/2" for x in k) + ")"


def wcc_route(model: TBModel, *, gap_tol: float = 1e-3, max_lines: int = 400) -> dict[str, Any]:
    """``{"z2" or None, "converged", "warning", "wcc_gap"}`` from adaptive WCC flows on the six TRIM planes."""
    from topodiff.physics.z2 import z2_result

    res = z2_result(model, gap_tol=gap_tol, max_lines=max_lines)
    out = {"z2": [int(x) for x in res.z2] if res.converged else None, "converged": bool(res.converged),
           "wcc_gap": float(res.energy_gap), "lines": int(sum(len(f.k) for f in res.flows.values()))}
    if res.warning:
        out["warning"] = res.warning
    return out


def verdict(z2: list[int] | None, gap_direct: float, filling: int, *, metal_tol: float = METAL_TOL,
            trust_gap: float = TRUST_GAP, routes_agree: bool = True) -> tuple[str, str | None]:
    """``(verdict, reason)``; ``reason`` says why a result is ``metal`` or ``inconclusive``."""
    if filling % 2:
        return "metal", f"odd number of valence electrons ({filling}): Kramers-degenerate partly filled band"
    if gap_direct < metal_tol:
        return "metal", f"direct gap {gap_direct:.3f} eV < {metal_tol} eV on the k-mesh"
    if z2 is None:
        return "inconclusive", "Z2 could not be computed"
    if not routes_agree:
        return "inconclusive", "parity and WCC routes disagree"
    if gap_direct < trust_gap:
        return "inconclusive", (f"direct gap {gap_direct:.3f} eV < {trust_gap} eV: below the LCAO/plane-wave "
                                "difference; rerun with --basis pw")
    cls = classify(z2)
    if cls is None:
        raise TopodiffInputError("internal: no class")
    return cls, None

"""Z2 invariants: WCC flow with the largest-gap rule (2D, 3D) and the Fu-Kane parity criterion.

* 2D (Soluyanov & Vanderbilt, PRB 83, 235401 (2011)): follow the hybrid WCCs of loops along κ_2
  while κ_1 sweeps half the BZ, [0, 1/2]; between neighbouring lines count the WCCs that the
  midpoint of the largest gap jumps over; Z2 is that count mod 2. Needs an even filling.
* 3D (Fu, Kane & Mele, PRL 98, 106803 (2007)): ``νi`` = 2D Z2 of the plane ``κ_i = 1/2``;
  ``ν0`` = Z2(κ_i = 0) + Z2(κ_i = 1/2) mod 2 (the same for every i, which is checked).
* Parity (Fu & Kane, PRB 76, 045302 (2007)), with inversion: ``δ_Γ = Π`` of one parity
  eigenvalue per Kramers pair at each TRIM; ``(−1)^ν0 = Π_8 δ``, ``(−1)^νi = Π_{κ_i = 1/2} δ``;
  2D: ``(−1)^ν = Π_4 δ``.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import torch

from topodiff.errors import ConvergenceError, TopodiffInputError
from topodiff.physics.model import TBModel
from topodiff.physics.spectra import resolve_filling
from topodiff.physics.wilson import WCCFlow, largest_gap, wcc_flow

__all__ = ["z2_from_flow", "kramers_paired", "Z2Result", "z2_result", "z2_invariant", "z2_parity", "parities_from_states",
           "has_time_reversal", "time_reversal_check", "TimeReversal", "trim_points"]


def kramers_paired(wcc: np.ndarray, *, tol: float = 1e-4) -> bool:
    """Whether sorted WCCs ``[n]`` of a time-reversal-invariant line form degenerate pairs (mod 1)."""
    w = np.sort(np.remainder(np.asarray(wcc, dtype=float), 1.0))
    if len(w) % 2:
        return False
    for shift in (0, 1):  # a pair may straddle 0 ≡ 1
        r = np.roll(w, -shift)
        d = np.abs(r[0::2] - r[1::2]) % 1.0
        if np.all(np.minimum(d, 1.0 - d) < tol):
            return True
    return False


def z2_from_flow(wcc: np.ndarray | torch.Tensor, *, check_kramers: bool = False, kramers_tol: float = 1e-4) -> int:
    """Z2 of a WCC flow ``[n_lines, occ]`` over half the BZ by the largest-gap rule (pure function).

    Between lines i and i+1 count the WCCs of line i+1 strictly between the two gap midpoints
    ``z_i`` and ``z_{i+1}``; the total mod 2 is Z2 (with an even number of WCCs, which side of the
    circle is counted does not change the parity). With ``check_kramers`` the first and last lines
    (the time-reversal-invariant κ = 0 and 1/2) must hold Kramers pairs, else TopodiffInputError.
    """
    w = np.asarray(wcc, dtype=float)
    if w.ndim != 2 or w.shape[0] < 2:
        raise TopodiffInputError("a WCC flow needs shape [n_lines >= 2, n_wcc]")
    if check_kramers and not (kramers_paired(w[0], tol=kramers_tol) and kramers_paired(w[-1], tol=kramers_tol)):
        raise TopodiffInputError("WCCs at the time-reversal-invariant lines are not Kramers pairs")
    w = np.sort(np.remainder(w, 1.0), axis=-1)
    z, _ = largest_gap(w)
    lo = np.minimum(z[:-1], z[1:])[:, None]
    hi = np.maximum(z[:-1], z[1:])[:, None]
    count = int(((w[1:] > lo) & (w[1:] < hi)).sum())
    return count % 2


@dataclass
class TimeReversal:
    """How far a model is from time-reversal symmetry: ``breaking`` = max |H(−κ) − Θ H(κ) Θ⁻¹| (eV)
    over test points for the best of the candidate operators, ``relative`` = breaking / ``scale``
    (the largest hopping amplitude, eV), ``holds`` = relative ≤ ``tolerance``; ``operator`` names Θ."""

    holds: bool
    breaking: float
    relative: float
    scale: float
    tolerance: float
    operator: str

    def to_dict(self) -> dict[str, object]:
        return {"holds": self.holds, "breaking_eV": self.breaking, "relative": self.relative,
                "hopping_scale_eV": self.scale, "tolerance": self.tolerance, "operator": self.operator}


TRS_REL_TOL = 0.1  # real Wannier files: Bi2Se3 6.8e-4, 1T'-MoS2 5.3e-2 of the hopping scale; Haldane 1.5, QWZ 4


def time_reversal_check(model: TBModel, *, rel_tol: float = TRS_REL_TOL, n_test: int = 8) -> TimeReversal:
    """Compare ``H(−κ)`` with ``Θ H(κ) Θ⁻¹``, ``Θ = iσ_y K`` (spinful, orbital- or spin-major basis) or
    ``K`` (spinless), at ``n_test`` random points; the tolerance is relative to the hopping scale, so
    the few-meV noise of a real Wannier Hamiltonian is not mistaken for magnetism."""
    rng = np.random.default_rng(0)
    k = rng.random((n_test, model.dim))
    H, Hm = model.hamiltonian(k), model.hamiltonian(-k)
    nb = model.num_bands
    cands: dict[str, torch.Tensor] = {}
    if model.spinful or nb % 2 == 0:
        isy = torch.tensor([[0, 1], [-1, 0]], dtype=H.dtype)
        half = nb // 2
        cands["i sigma_y K (orbital-major spin)"] = torch.kron(torch.eye(half, dtype=H.dtype), isy)
        cands["i sigma_y K (spin-major)"] = torch.kron(isy, torch.eye(half, dtype=H.dtype))
    if not model.spinful:
        cands["K (spinless)"] = torch.eye(nb, dtype=H.dtype)
    errs = {name: float((Hm - U @ H.conj() @ U.mH).abs().max()) for name, U in cands.items()}
    name = min(errs, key=errs.get)
    Rs, T = model.table
    off = T.copy()
    zero = np.flatnonzero(~np.any(Rs != 0, axis=1))
    if zero.size:
        off[zero[0]] -= np.diag(np.diag(T[zero[0]]))
    scale = float(np.abs(off).max()) or float(np.abs(T).max()) or 1.0
    rel = errs[name] / scale
    return TimeReversal(rel <= rel_tol, errs[name], rel, scale, rel_tol, name)


def has_time_reversal(model: TBModel, *, n_test: int = 8, rel_tol: float = TRS_REL_TOL) -> bool:
    """Whether ``H(−κ) = Θ H(κ) Θ⁻¹`` within ``rel_tol`` of the hopping scale (:func:`time_reversal_check`)."""
    return time_reversal_check(model, rel_tol=rel_tol, n_test=n_test).holds


def trim_points(dim: int) -> np.ndarray:
    """``[2**dim, dim]`` time-reversal-invariant momenta, reduced coordinates in {0, 1/2}."""
    return np.array(list(itertools.product((0.0, 0.5), repeat=dim)))


@dataclass
class Z2Result:
    """Z2 with diagnostics: ``z2`` (2D int, 3D tuple (ν0, ν1, ν2, ν3)), the flows, ``warning``."""

    z2: int | tuple[int, int, int, int]
    flows: dict[str, WCCFlow] = field(default_factory=dict)
    plane_z2: dict[str, int] = field(default_factory=dict)
    energy_gap: float = float("inf")
    converged: bool = True
    time_reversal: bool = True
    warning: str | None = None
    trs: TimeReversal | None = None
    route: str = "wcc"
    note: str | None = None


def _plane(model: TBModel, occ: int, fixed_axis: int | None, value: float, opts: dict) -> tuple[int, WCCFlow]:
    if fixed_axis is None:
        flow_axis, loop_axis, fixed = 0, 1, {}
    else:
        flow_axis, loop_axis = [a for a in range(3) if a != fixed_axis]
        fixed = {fixed_axis: value}
    flow = wcc_flow(model, occ, loop_axis=loop_axis, flow_axis=flow_axis, fixed=fixed, k_range=(0.0, 0.5), **opts)
    return z2_from_flow(flow.wcc), flow


def z2_result(model: TBModel, filling: int | None = None, *, gap_tol: float = 1e-6, **flow_options: object) -> Z2Result:
    """Z2 of a 2D or 3D model from WCC flows (never raises on convergence; see ``warning``).

    Parameters
    ----------
    filling : occupied bands; must be even.
    gap_tol : smallest direct gap (eV) along the loops accepted as insulating.
    **flow_options : passed to :func:`topodiff.physics.wilson.wcc_flow` (``num_lines``, ``n_loop``, tolerances).
    """
    occ = resolve_filling(model, filling)
    if occ % 2:
        raise TopodiffInputError(f"Z2 needs an even number of occupied bands, got {occ}")
    if model.dim not in (2, 3):
        raise TopodiffInputError(f"Z2 is defined here for 2D and 3D models, got {model.dim}D")
    res = Z2Result(0)
    if model.dim == 2:
        z, flow = _plane(model, occ, None, 0.0, flow_options)
        res.z2, res.flows["plane"], res.plane_z2["plane"] = z, flow, z
    else:
        for ax, val in itertools.product(range(3), (0.0, 0.5)):
            key = f"k{ax + 1}={val:g}"
            res.plane_z2[key], res.flows[key] = _plane(model, occ, ax, val, flow_options)
        nu = [res.plane_z2[f"k{i}=0.5"] for i in (1, 2, 3)]
        nu0s = {(res.plane_z2[f"k{i}=0"] + res.plane_z2[f"k{i}=0.5"]) % 2 for i in (1, 2, 3)}
        res.z2 = (min(nu0s), *nu)  # type: ignore[assignment]
        if len(nu0s) > 1:
            res.converged = False
            res.warning = "inconsistent strong index from the three plane pairs (gap closing or unconverged flow)"
    res.energy_gap = min(f.energy_gap for f in res.flows.values())
    res.trs = time_reversal_check(model)
    res.time_reversal = res.trs.holds
    # Kramers pairs split by ~ breaking / gap when time reversal holds only approximately (real files)
    ktol = max(1e-4, min(0.1, 2 * res.trs.breaking / max(res.energy_gap, 1e-12)))
    notes = [n for f in res.flows.values() for n in f.notes]
    if res.energy_gap < gap_tol:
        res.converged = False
        res.warning = f"direct gap {res.energy_gap:.3g} eV on the Wilson loops is below {gap_tol:g} eV: Z2 undefined"
    elif notes:
        res.converged = False
        res.warning = res.warning or notes[0]
    if res.warning is None and not res.time_reversal:
        res.warning = (f"model is not time-reversal symmetric (|H(-k) - T H(k) T^-1| = {res.trs.breaking:.3g} eV, "
                       f"{res.trs.relative:.2g} of the hopping scale): Z2 is not a protected invariant")
    elif res.warning is None and not all(kramers_paired(f.wcc[0], tol=ktol) and kramers_paired(f.wcc[-1], tol=ktol)
                                         for f in res.flows.values()):
        res.warning = "WCCs on a time-reversal-invariant line are not Kramers-degenerate (check the model/filling)"
    return res


def z2_invariant(model: TBModel, filling: int | None = None, *, raise_on_failure: bool = True,
                 **options: object) -> int | tuple[int, int, int, int]:
    """Z2 invariant: an int (2D) or ``(ν0, ν1, ν2, ν3)`` (3D) from the WCC flow (CONTRACTS §2).

    Raises :class:`ConvergenceError` when the gap closes on the loops or the flow does not converge
    (unless ``raise_on_failure=False``). ``options`` go to :func:`z2_result`.
    """
    res = z2_result(model, filling, **options)  # type: ignore[arg-type]
    if raise_on_failure and not res.converged:
        raise ConvergenceError(res.warning or "Z2 did not converge")
    return res.z2


def _inversion_convention(model: TBModel, P: torch.Tensor, atol: float = 1e-8) -> int:
    k = np.random.default_rng(1).random((6, model.dim))
    for conv in (1, 2):  # convention I first: there a constant P commutes with H at every TRIM
        H, Hm = model.hamiltonian(k, convention=conv), model.hamiltonian(-k, convention=conv)
        if torch.allclose(Hm, P @ H @ P.mH, atol=atol):
            return conv
    raise TopodiffInputError("the inversion matrix is not a symmetry of the model (H(-k) != P H(k) P^-1 "
                             "in either Bloch convention)")


def parities_from_states(V: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """Number of parity −1 states in the occupied space of ``V [..., nb, occ]`` (gauge invariant).

    Diagonalises ``V† P V`` (so degenerate/rotated states are fine) and raises
    :class:`ConvergenceError` when the occupied space is not inversion invariant.
    """
    Q = V.mH @ P @ V
    Q = (Q + Q.mH) / 2
    ev = torch.linalg.eigvalsh(Q)
    if torch.any((ev.abs() - 1).abs() > 1e-3):
        raise ConvergenceError("occupied states at a TRIM are not parity eigenstates (degeneracy at the Fermi level)")
    return (ev < 0).sum(-1)


def z2_parity(model: TBModel, inversion_matrix: np.ndarray | torch.Tensor, filling: int | None = None
              ) -> int | tuple[int, int, int, int]:
    """Fu-Kane Z2 from parity eigenvalues at the TRIM (a cross-check; needs inversion and time reversal).

    Parameters
    ----------
    inversion_matrix : ``[nb, nb]`` unitary P with ``H(−κ) = P H(κ) P⁻¹`` in Bloch convention II
        or I (the one that holds is used).
    """
    occ = resolve_filling(model, filling)
    if occ % 2:
        raise TopodiffInputError(f"the parity criterion needs an even number of occupied bands, got {occ}")
    if model.dim not in (2, 3):
        raise TopodiffInputError(f"parity Z2 is defined for 2D and 3D models, got {model.dim}D")
    P = torch.as_tensor(np.asarray(inversion_matrix), dtype=torch.complex128)
    if P.shape != (model.num_bands, model.num_bands):
        raise TopodiffInputError(f"inversion matrix must be {model.num_bands}x{model.num_bands}, got {tuple(P.shape)}")
    conv = _inversion_convention(model, P)
    trim = trim_points(model.dim)
    e, v = torch.linalg.eigh(model.hamiltonian(trim, convention=conv))
    if conv == 2:  # at a TRIM, -κ = κ - 2κ: the symmetry is D(-2κ) P with H(κ+G) = D(G)† H(κ) D(G)
        ang = torch.as_tensor(-2 * np.pi * 2 * trim @ model.state_positions.T)  # [n_trim, nb]
        P = torch.polar(torch.ones_like(ang), ang)[..., :, None] * P
    if float((e[:, occ] - e[:, occ - 1]).min()) < 1e-8:
        raise ConvergenceError("gap closes at a TRIM: parity criterion undefined")
    nminus = parities_from_states(v[..., :occ], P).numpy()
    if np.any(nminus % 2):
        raise TopodiffInputError("odd number of negative parities at a TRIM: no Kramers pairs (time reversal broken?)")
    delta = (nminus // 2) % 2  # δ = (−1)^{delta}
    if model.dim == 2:
        return int(delta.sum() % 2)
    nu0 = int(delta.sum() % 2)
    nus = [int(delta[trim[:, i] == 0.5].sum() % 2) for i in range(3)]
    return (nu0, *nus)  # type: ignore[return-value]

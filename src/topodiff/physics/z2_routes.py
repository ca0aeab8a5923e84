"""Z2 when the WCC flow cannot be converged (a tiny gap): Fu-Kane parity or the spin Chern number.

A barely inverted quantum well (BHZ with |M| ~ 0.1 meV) has Berry curvature concentrated in a
region ~|M|/A around Γ, which no affordable Wilson-loop discretisation resolves. Two exact routes
need no such resolution:

* **parity** (Fu & Kane, PRB 76, 045302 (2007)) when the model has inversion: the inversion matrix
  is searched among orbital permutations (positions ``τ → −τ + t``) times a parity ``±1`` per
  orbital, and verified (``H(−κ) = P H(κ) P⁻¹``) before it is used;
* **spin Chern** (Sheng et al., PRL 97, 036808 (2006)) when ``S_z`` is conserved: ``Z2 = C_↑ mod 2``,
  with ``C_↑`` the FHS Chern number of the spin-up block (``C_↓ = −C_↑`` is checked).

:func:`z2_with_routes` tries the WCC flow first and reports which ``route`` gave the answer.
"""
from __future__ import annotations

import itertools

import numpy as np
import torch

from topodiff.errors import ConvergenceError, TopodiffInputError
from topodiff.physics.berry import chern_result
from topodiff.physics.model import TBModel
from topodiff.physics.z2 import Z2Result, z2_parity, z2_result

__all__ = ["find_inversion_matrix", "spin_up_states", "spin_block", "spin_chern_z2", "z2_with_routes"]

MAX_SIGN_STATES = 10  # parity signs are enumerated (2^n candidates) up to this many orbitals


def _position_permutations(model: TBModel) -> list[np.ndarray]:
    """Orbital permutations π with ``−τ_i + t ≡ τ_π(i)`` (mod 1) for some centre ``t = τ_0 + τ_j``."""
    tau = np.remainder(model.orbitals, 1.0)
    perms = []
    for t in {tuple(np.round(np.remainder(tau[0] + x, 1.0), 8)) for x in tau}:
        img = np.remainder(-tau + np.asarray(t), 1.0)
        d = np.abs(np.remainder(img[:, None] - tau[None] + 0.5, 1.0) - 0.5).max(-1)  # [i, j]
        perm = np.full(model.n_orb, -1)
        for i in range(model.n_orb):
            same = np.flatnonzero(d[i] < 1e-6)
            free = [j for j in same if j not in perm]
            if not free:
                break
            perm[i] = free[0]  # orbitals on one site keep their order
        if np.all(perm >= 0):
            perms.append(perm)
    return perms


def _is_symmetry(model: TBModel, P: np.ndarray, k: np.ndarray, tol: float) -> bool:
    Pt = torch.as_tensor(P, dtype=torch.complex128)
    for conv in (1, 2):
        H, Hm = model.hamiltonian(k, convention=conv), model.hamiltonian(-k, convention=conv)
        if float((Hm - Pt @ H @ Pt.mH).abs().max()) <= tol:
            return True
    return False


def find_inversion_matrix(model: TBModel, *, rel_tol: float = 1e-6) -> np.ndarray | None:
    """An inversion matrix ``P [nb, nb]`` of the model (permutation × parities), or None.

    Candidates: every position permutation of :func:`_position_permutations` times every sign
    pattern over orbitals (spin untouched); accepted when ``|H(−κ) − P H(κ) P⁻¹| ≤ rel_tol × max|H|``
    at random points in either Bloch convention. Only for models with ≤ ``MAX_SIGN_STATES`` orbitals.
    """
    n = model.n_orb
    if n > MAX_SIGN_STATES:
        return None
    k = np.random.default_rng(3).random((4, model.dim))
    tol = rel_tol * max(1.0, float(model.hamiltonian(k).abs().max()))
    for perm in _position_permutations(model):
        for signs in itertools.product((1.0, -1.0), repeat=n):
            if signs[0] < 0:
                continue  # −P is the same symmetry
            Po = np.zeros((n, n))
            Po[perm, np.arange(n)] = signs
            P = np.kron(Po, np.eye(model.n_spin))
            if _is_symmetry(model, P, k, tol):
                return P
    return None


def spin_up_states(model: TBModel, *, rel_tol: float = 1e-8) -> np.ndarray | None:
    """Boolean mask of the spin-up basis states when ``[H(κ), S_z] = 0``, else None.

    ``S_z`` is tried in orbital-major (up, down alternating) and spin-major (all up, then all down)
    order; for a spinless-basis model (a Wannier file) either may hold.
    """
    nb = model.num_bands
    if nb % 2:
        return None
    k = np.random.default_rng(5).random((6, model.dim))
    H = model.hamiltonian(k)
    tol = rel_tol * max(1.0, float(H.abs().max()))
    for up in (np.arange(nb) % 2 == 0, np.arange(nb) < nb // 2):
        if float(H[:, up][:, :, ~up].abs().max()) <= tol:
            return up
    return None


def spin_block(model: TBModel, up: np.ndarray) -> TBModel:
    """The block of the states in mask ``up [nb]`` of an ``S_z``-conserving model, as a spinless model."""
    if model.spinful:  # orbital-major (up, down) per orbital: the block is one spin component
        s = slice(0, 1) if up[0] else slice(1, 2)
        return TBModel(model.lattice, model.orbitals, model.onsite[:, s, s], model.hop_i, model.hop_j,
                       model.hop_R, model.hop_t[:, s, s], name=f"{model.name}[spin block]")
    new = np.cumsum(up) - 1
    keep = up[model.hop_i] & up[model.hop_j]
    return TBModel(model.lattice, model.orbitals[up], model.onsite[up], new[model.hop_i[keep]],
                   new[model.hop_j[keep]], model.hop_R[keep], model.hop_t[keep], name=f"{model.name}[spin block]")


def spin_chern_z2(model: TBModel, occ: int, up: np.ndarray, nk: int = 64) -> tuple[int, int]:
    """``(Z2, C_↑)`` from the Chern numbers of the two spin blocks; raises ConvergenceError when either
    is not an integer or ``C_↑ + C_↓ ≠ 0`` (time reversal broken)."""
    cs = []
    for mask in (up, ~up):
        block = spin_block(model, mask)
        res = chern_result(block, nk, occ // 2)
        if res.warning:
            raise ConvergenceError(f"spin Chern: {res.warning}")
        cs.append(res.chern)
    if cs[0] + cs[1] != 0:
        raise ConvergenceError(f"spin Chern numbers {cs[0]} and {cs[1]} do not cancel (time reversal broken?)")
    return cs[0] % 2, cs[0]


def _parity_route(model: TBModel, occ: int) -> int | tuple[int, int, int, int]:
    P = find_inversion_matrix(model)
    if P is None:
        raise ConvergenceError("no inversion symmetry found")
    return z2_parity(model, P, occ)


def _spin_route(model: TBModel, occ: int) -> int:
    if model.dim != 2:
        raise ConvergenceError("spin Chern route is for 2D models")
    up = spin_up_states(model)
    if up is None:
        raise ConvergenceError("S_z is not conserved")
    return spin_chern_z2(model, occ, up)[0]


def z2_with_routes(model: TBModel, occ: int, **flow_options: object) -> Z2Result:
    """Z2 by the WCC flow; when that does not converge (and the gap is open, time reversal holds),
    by parity, then by the spin Chern number. ``route`` says which gave ``z2``; when none did,
    ``converged`` is False and ``warning`` lists why each route failed."""
    res = z2_result(model, occ, **flow_options)  # type: ignore[arg-type]
    if res.converged or res.energy_gap < 1e-6 or not res.time_reversal:
        return res
    reasons = [f"wcc: {res.warning}"]
    for route, fn in (("parity", _parity_route), ("spin_chern", _spin_route)):
        try:
            z = fn(model, occ)
        except (ConvergenceError, TopodiffInputError, ArithmeticError) as exc:
            reasons.append(f"{route}: {exc}")
            continue
        res.z2, res.converged, res.route = z, True, route  # type: ignore[assignment]
        res.warning = None
        res.note = f"WCC flow not converged (gap {res.energy_gap:.2g} eV); Z2 from the {route} route"
        return res
    res.warning = "; ".join(reasons)
    return res

"""Fu-Kane parity Z2 of inversion-symmetric, time-reversal-symmetric atomic tight-binding models.

L. Fu and C. L. Kane, Phys. Rev. B 76, 045302 (2007), Eq. (3): at each of the eight TRIM
``Γ_n = (n1, n2, n3)/2`` (reduced coordinates), ``δ_n = Π_m ξ_2m(Γ_n)`` is the product of the
inversion eigenvalues of the occupied Kramers pairs; ``(−1)^ν0 = Π_n δ_n`` and
``(−1)^νi = Π_{n_i = 1} δ_n`` (the four TRIM on the plane ``κ_i = 1/2``).

Inversion ``x → −x + t`` maps atom a onto atom π(a) in cell ``L_a``; on the convention-I Bloch
basis ``|α, κ⟩ = Σ_R e^{2πi κ·R} |α, R⟩`` it acts at a TRIM as the matrix
``P[π(α), α] = p_α e^{2πi κ·L_a}`` (orbital parity p: s → +1, p → −1; spin untouched).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from topodiff.errors import TopodiffInputError
from topodiff.physics.model import TBModel

TRIM = np.array([[n1, n2, n3] for n1 in (0, 1) for n2 in (0, 1) for n3 in (0, 1)], dtype=float) / 2.0


def find_inversion(frac: np.ndarray, numbers: np.ndarray, lattice: np.ndarray, *, symprec: float = 1e-3,
                   symmetry: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Inversion centre of a crystal as an atom permutation.

    Parameters
    ----------
    frac : ``[n_at, 3]`` fractional coordinates; numbers : ``[n_at]`` atomic numbers;
    lattice : ``[3, 3]`` lattice rows (Å).
    symmetry : optional precomputed spglib ``(rotations, translations)`` of this cell.

    Returns
    -------
    ``(perm [n_at], shift [n_at, 3] int)`` with ``−x_a + t = x_perm[a] + shift[a]``, or None when
    spglib finds no operation with rotation −1.
    """
    if symmetry is None:
        import spglib

        symmetry = spglib.get_symmetry((lattice, frac, numbers), symprec=symprec)
        if symmetry is None:
            return None
        symmetry = (symmetry["rotations"], symmetry["translations"])
    rotations, translations = symmetry
    inv = [k for k, rot in enumerate(rotations) if np.array_equal(rot, -np.eye(3, dtype=int))]
    if not inv:
        return None
    t = np.asarray(translations[inv[0]], float)
    image = -frac + t  # [n_at, 3]
    diff = image[:, None, :] - frac[None, :, :]  # [a, b, 3]
    shift = np.round(diff)
    err = np.abs(diff - shift).max(axis=-1)
    err = np.where(numbers[:, None] == numbers[None, :], err, np.inf)
    perm = np.argmin(err, axis=1)
    if np.any(err[np.arange(len(perm)), perm] > 10 * symprec) or len(set(perm.tolist())) != len(perm):
        return None
    return perm, shift[np.arange(len(perm)), perm].astype(np.int64)


def inversion_matrices(model: TBModel, atom_of_orbital: np.ndarray, orbital_parity: np.ndarray,
                       perm: np.ndarray, shift: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``[n_k, nb, nb]`` inversion operator at TRIM ``k [n_k, 3]`` on the spinful convention-I basis.

    ``atom_of_orbital`` / ``orbital_parity``: ``[n_orb]`` atom index and parity (±1) of each orbital.
    Orbitals of one atom must be contiguous and ordered identically for every atom of a species.
    """
    n_orb = model.n_orb
    first = np.searchsorted(atom_of_orbital, np.arange(atom_of_orbital.max() + 1))
    local = np.arange(n_orb) - first[atom_of_orbital]
    target = first[perm[atom_of_orbital]] + local  # orbital α → π(α)
    phase = np.exp(2j * np.pi * (k @ shift[atom_of_orbital].T)).real.round()  # [n_k, n_orb], ±1 at TRIM
    P = np.zeros((len(k), n_orb, n_orb))
    P[:, target, np.arange(n_orb)] = phase * orbital_parity[None, :]
    return np.kron(P, np.eye(2)[None])  # spin untouched


def parity_z2(model: TBModel, atom_of_orbital: np.ndarray, orbital_parity: np.ndarray,
              perm: np.ndarray, shift: np.ndarray, *, filling: int | None = None,
              gap_tol: float = 1e-6) -> dict[str, Any]:
    """Fu-Kane ``(ν0, ν1, ν2, ν3)`` from inversion eigenvalues at the 8 TRIM.

    Returns ``{"z2": (ν0, ν1, ν2, ν3), "delta": [8] ±1, "trim_gap": eV}``, where ``trim_gap`` is the
    smallest direct gap at the filling over the TRIM. Raises :class:`TopodiffInputError` if the
    filling is odd (no Kramers pairs) and ArithmeticError if the parity eigenvalues are not ±1
    (occupied space not inversion-invariant, i.e. a degeneracy at the filling).
    """
    nocc = model.occupied if filling is None else int(filling)
    if nocc % 2:
        raise TopodiffInputError(f"parity Z2 needs an even filling (Kramers pairs), got {nocc}")
    H = model.hamiltonian(TRIM, convention=1)  # [8, nb, nb]
    E, U = torch.linalg.eigh(H)
    trim_gap = float((E[:, nocc] - E[:, nocc - 1]).min())
    Uo = U[..., :nocc]
    P = torch.as_tensor(inversion_matrices(model, atom_of_orbital, orbital_parity, perm, shift, TRIM),
                        dtype=Uo.dtype)
    M = Uo.conj().transpose(-1, -2) @ P @ Uo  # [8, nocc, nocc], Hermitian with eigenvalues ±1
    xi = torch.linalg.eigvalsh(0.5 * (M + M.conj().transpose(-1, -2)))
    if trim_gap > gap_tol and not torch.allclose(xi.abs(), torch.ones_like(xi), atol=1e-3):
        raise ArithmeticError("occupied states at a TRIM are not inversion eigenstates (check the inversion map)")
    n_minus = (xi < 0).sum(dim=-1).numpy()  # even for Kramers pairs
    delta = np.where((n_minus // 2) % 2 == 0, 1, -1)
    nu0 = int(np.prod(delta) < 0)
    nus = [int(np.prod(delta[TRIM[:, i] == 0.5]) < 0) for i in range(3)]
    return {"z2": (nu0, *nus), "delta": delta.tolist(), "trim_gap": trim_gap}

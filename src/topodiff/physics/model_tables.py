"""The hopping-table accumulator behind the built-in models (:mod:`topodiff.physics.library`).

A builder fills a convention-I table ``T_R [*grid, nb, nb]`` for a fixed set of offsets ``R``, for any
broadcast shape ``grid`` of parameter values; one builder gives both a single model and a whole
phase-diagram grid. Energies in eV, lengths in Å.
"""
from __future__ import annotations

import numpy as np

from topodiff.physics.model import TBModel

S0 = np.eye(2, dtype=np.complex128)
SX = np.array([[0, 1], [1, 0]], dtype=np.complex128)
SY = np.array([[0, -1j], [1j, 0]], dtype=np.complex128)
SZ = np.array([[1, 0], [0, -1]], dtype=np.complex128)

__all__ = ["S0", "SX", "SY", "SZ", "_Table", "_pauli2", "_kron_grid"]


# ---------------------------------------------------------------------------------------------
# table accumulator
class _Table:
    """Convention-I hopping table ``{R: T_R [*grid, nb, nb]}`` over canonical ``R`` (``T_{-R} = T_R†``)."""

    def __init__(self, lattice: np.ndarray, orbitals: np.ndarray, spinful: bool, grid: tuple[int, ...]) -> None:
        self.lattice = np.atleast_2d(np.asarray(lattice, dtype=float))
        self.orbitals = np.asarray(orbitals, dtype=float).reshape(-1, self.lattice.shape[0])
        self.spinful = spinful
        self.ns = 2 if spinful else 1
        self.nb = self.orbitals.shape[0] * self.ns
        self.grid = grid
        self.terms: dict[tuple[int, ...], np.ndarray] = {}

    @property
    def dim(self) -> int:
        return self.lattice.shape[0]

    def _slot(self, R: tuple[int, ...]) -> np.ndarray:
        if R not in self.terms:
            self.terms[R] = np.zeros((*self.grid, self.nb, self.nb), dtype=np.complex128)
        return self.terms[R]

    def add_block(self, R: tuple[int, ...] | list[int], M: np.ndarray) -> None:
        """Add ``M [*grid, nb, nb]`` to ``T_R`` (for ``R = 0`` M must be Hermitian)."""
        R = tuple(int(x) for x in R)
        M = np.broadcast_to(np.asarray(M, dtype=np.complex128), (*self.grid, self.nb, self.nb))
        if not any(R):
            self._slot(R)[...] += M
        elif R > tuple(-x for x in R):
            self._slot(R)[...] += M
        else:
            self._slot(tuple(-x for x in R))[...] += np.conj(np.swapaxes(M, -1, -2))

    def hop(self, i: int, j: int, R: tuple[int, ...] | list[int], t: np.ndarray | complex,
            spin: np.ndarray | None = None) -> None:
        """Add the term ``t c†_i c_{j,R}`` (+ h.c.); ``t [*grid]`` times an optional 2x2 ``spin`` block."""
        t = np.asarray(t, dtype=np.complex128)
        block = t[..., None, None] * (S0 if spin is None and self.spinful else
                                      (np.ones((1, 1)) if spin is None else spin))
        ns = self.ns
        M = np.zeros((*self.grid, self.nb, self.nb), dtype=np.complex128)
        M[..., i * ns:(i + 1) * ns, j * ns:(j + 1) * ns] = block
        if not any(R) and i != j:
            M = M + np.conj(np.swapaxes(M, -1, -2))
        self.add_block(R, M)

    def onsite(self, i: int, e: np.ndarray | float, spin: np.ndarray | None = None) -> None:
        """Add an onsite energy ``e [*grid]`` (times an optional Hermitian 2x2 ``spin`` block)."""
        self.hop(i, i, (0,) * self.dim, e, spin)

    def fourier(self, kind: str, d: int, M: np.ndarray) -> None:
        """Add ``f(2πκ_d) M`` with ``f`` = ``"cos"`` or ``"sin"``, M ``[*grid, nb, nb]`` Hermitian."""
        R = [0] * self.dim
        R[d] = 1
        M = np.asarray(M, dtype=np.complex128)
        self.add_block(R, M / 2 if kind == "cos" else M / 2j)

    def const(self, M: np.ndarray) -> None:
        """Add a k-independent Hermitian matrix ``M [*grid, nb, nb]``."""
        self.add_block((0,) * self.dim, M)

    # -------------------------------------------------------------- outputs
    def dense(self) -> tuple[np.ndarray, np.ndarray]:
        """``Rs [n_R, dim]`` (sorted as ``TBModel.table``) and ``T [*grid, n_R, nb, nb]`` incl. ``-R``."""
        dim = self.dim
        zero = (0,) * dim
        keys = sorted(self.terms)
        canon = [R for R in keys if R != zero]
        all_R = np.array([zero] + canon + [tuple(-x for x in R) for R in canon], dtype=np.int64).reshape(-1, dim)
        Rs, inverse = np.unique(all_R, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        T = np.zeros((*self.grid, len(Rs), self.nb, self.nb), dtype=np.complex128)
        if zero in self.terms:
            T[..., inverse[0], :, :] = self.terms[zero]
        for n, R in enumerate(canon):
            T[..., inverse[1 + n], :, :] = self.terms[R]
            T[..., inverse[1 + len(canon) + n], :, :] = np.conj(np.swapaxes(self.terms[R], -1, -2))
        return Rs, T

    def to_model(self, mask: dict[tuple[int, ...], np.ndarray], name: str, params: dict[str, float]) -> TBModel:
        """A :class:`TBModel` keeping every block that is non-zero here or in ``mask`` (structural zeros dropped)."""
        ns, n_orb, dim = self.ns, self.orbitals.shape[0], self.dim
        zero = (0,) * dim
        onsite = np.zeros((n_orb, ns, ns), dtype=np.complex128)
        hi, hj, hR, ht = [], [], [], []
        for R in sorted(self.terms):
            B = self.terms[R].reshape(n_orb, ns, n_orb, ns).transpose(0, 2, 1, 3)  # [i, j, ns, ns]
            keep = np.any(np.abs(B) > 0, axis=(2, 3)) | mask.get(R, np.zeros((n_orb, n_orb), bool))
            for i in range(n_orb):
                for j in range(n_orb):
                    if R == zero:
                        if i == j:
                            onsite[i] = B[i, i]
                            continue
                        if i > j:
                            continue
                    if keep[i, j]:
                        hi.append(i); hj.append(j); hR.append(R); ht.append(B[i, j])
        return TBModel(self.lattice, self.orbitals, onsite, np.array(hi, np.int64), np.array(hj, np.int64),
                       np.array(hR, np.int64).reshape(-1, dim),
                       np.array(ht).reshape(-1, ns, ns) if ht else np.zeros((0, ns, ns)),
                       spinful=self.spinful, name=name, params=dict(params))

    def block_mask(self) -> dict[tuple[int, ...], np.ndarray]:
        ns, n_orb = self.ns, self.orbitals.shape[0]
        out = {}
        for R, T in self.terms.items():
            B = T.reshape(*self.grid, n_orb, ns, n_orb, ns)
            out[R] = np.any(np.abs(B) > 0, axis=tuple(range(len(self.grid))) + (-3, -1))
        return out


def _pauli2(grid: tuple[int, ...], *coef_mat: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    out = np.zeros((*grid, 2, 2), dtype=np.complex128)
    for c, m in coef_mat:
        out = out + np.asarray(c, dtype=np.complex128)[..., None, None] * m
    return out


def _kron_grid(grid: tuple[int, ...], *terms: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """``Σ c [*grid] · kron(orbital, spin)`` as ``[*grid, nb, nb]``."""
    out = 0
    for c, orb, spin in terms:
        out = out + np.asarray(c, dtype=np.complex128)[..., None, None] * np.kron(orb, spin)
    return np.broadcast_to(out, (*grid, *np.kron(terms[0][1], terms[0][2]).shape))

"""A tight-binding model from GPAW LCAO matrices: Löwdin orthogonalisation + Fourier interpolation.

On the Γ-centred mesh the spinful LCAO problem ``(H ⊗ 1 + V_SO) c = ε (S ⊗ 1) c`` becomes an ordinary
Hermitian one in the Löwdin basis ``S^{-1/2}``: ``H̃(κ) = S^{-1/2} (H ⊗ 1 + V_SO) S^{-1/2}``. Löwdin
orbitals are smooth and periodic in κ and transform under the crystal's symmetries exactly like the
atomic orbitals they come from (``S`` commutes with every symmetry operator), so

* parities at the TRIM are those of ``⟨ψ|Î|ψ⟩ = c† S P c`` — the generalised eigenproblem done right;
* the occupied-band projector, hence every Wilson loop and Z2, is that of the DFT bands.

``H̃(R) = (1/N) Σ_κ H̃(κ) e^{−2πiκ·R}`` is then folded onto the Wigner-Seitz images of the mesh
supercell (each (atom a, atom b, R) term goes to the shortest ``R + N∘T`` bond, split equally among
ties, as Wannier90 does), which reproduces ``H̃`` exactly on the mesh and interpolates between.
"""
from __future__ import annotations

import itertools

import numpy as np

from topodiff.dft.lcao import LCAOData
from topodiff.physics.model import TBModel

_TIE = 1e-5  # Å: bond lengths equal within this are Wigner-Seitz ties
_DROP = 1e-7  # eV: hopping blocks below this are dropped


def lowdin_hamiltonians(data: LCAOData, soc: bool = True) -> np.ndarray:
    """``[n_k, 2nM, 2nM]`` orthogonalised spinful Hamiltonians ``S^{-1/2} (H ⊗ 1 + V_SO) S^{-1/2}`` (eV)."""
    w, U = np.linalg.eigh(data.S)
    if w.min() <= 1e-8:
        raise ArithmeticError(f"LCAO overlap matrix is near-singular (smallest eigenvalue {w.min():.2g})")
    X = (U * w[:, None, :] ** -0.5) @ U.conj().transpose(0, 2, 1)
    eye = np.eye(2)
    H2 = np.einsum("kmn,st->kmsnt", data.H, eye).reshape(len(data.H), 2 * data.H.shape[1], -1)
    if soc and data.V_soc is not None:
        H2 = H2 + data.V_soc
    X2 = np.einsum("kmn,st->kmsnt", X, eye).reshape(H2.shape)
    Ht = X2 @ H2 @ X2
    return 0.5 * (Ht + Ht.conj().transpose(0, 2, 1))


def _mesh_index(kpts: np.ndarray, mesh: tuple[int, int, int]) -> np.ndarray:
    """Integer mesh coordinates of the reduced points (Γ-centred mesh)."""
    idx = np.rint(np.asarray(kpts) * np.asarray(mesh)).astype(int)
    if not np.allclose(idx / np.asarray(mesh), kpts, atol=1e-8):
        raise ValueError("k-points are not on the Γ-centred mesh")
    return idx


def fold_to_real_space(Hk: np.ndarray, kpts: np.ndarray, mesh: tuple[int, int, int], lattice: np.ndarray,
                       atom_pos: np.ndarray, atom_of_state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(Rs [n_R, 3], T [n_R, nb, nb])`` with ``H(κ) = Σ_R T_R e^{2πiκ·R}`` exact on the mesh (see module)."""
    N = np.asarray(mesh)
    if len(kpts) != int(np.prod(N)):
        raise ValueError("need the full mesh")
    _mesh_index(kpts, mesh)
    base = np.stack(np.meshgrid(*[np.arange(n) - n // 2 for n in N], indexing="ij"), -1).reshape(-1, 3)
    F = np.einsum("rk,kij->rij", np.exp(-2j * np.pi * base @ kpts.T), Hk) / len(kpts)
    shifts = np.array(list(itertools.product((-1, 0, 1), repeat=3)))
    images = base[:, None, :] + shifts[None, :, :] * N  # [n_base, 27, 3]
    bond = (images[:, :, None, None, :] + atom_pos[None, None, None, :, :] - atom_pos[None, None, :, None, :])
    dist = np.linalg.norm(bond @ lattice, axis=-1)  # [n_base, 27, n_at, n_at]
    best = dist <= dist.min(axis=1, keepdims=True) + _TIE
    weight = best / best.sum(axis=1, keepdims=True)
    out: dict[tuple[int, int, int], np.ndarray] = {}
    a, b = atom_of_state[:, None], atom_of_state[None, :]
    for r, s in zip(*np.nonzero(best.any(axis=(2, 3)))):
        key = tuple(int(x) for x in images[r, s])
        contrib = F[r] * weight[r, s][a, b]
        out[key] = out[key] + contrib if key in out else contrib
    Rs = np.array(sorted(out))
    return Rs, np.stack([out[tuple(R)] for R in Rs])


def table_to_model(Rs: np.ndarray, T: np.ndarray, lattice: np.ndarray, orbitals: np.ndarray, filling: int,
                   name: str) -> TBModel:
    """Spinful :class:`TBModel` (basis ``(orb, spin)`` interleaved) from a dense Hermitian table."""
    n_orb = len(orbitals)
    B = T.reshape(len(Rs), n_orb, 2, n_orb, 2).transpose(0, 1, 3, 2, 4)  # [n_R, i, j, 2, 2]
    nz = Rs != 0
    first = np.argmax(nz, axis=1)
    positive = nz.any(axis=1) & (Rs[np.arange(len(Rs)), first] > 0)
    zero = int(np.flatnonzero(~nz.any(axis=1))[0])
    keep = np.zeros(B.shape[:3], bool)
    keep[positive] = True
    keep[zero] = np.triu(np.ones((n_orb, n_orb), bool), k=1)
    keep &= np.abs(B).max(axis=(-1, -2)) > _DROP
    r, i, j = np.nonzero(keep)
    onsite = B[zero, np.arange(n_orb), np.arange(n_orb)]
    onsite = 0.5 * (onsite + onsite.conj().transpose(0, 2, 1))
    return TBModel(lattice=lattice, orbitals=orbitals, onsite=onsite, hop_i=i, hop_j=j, hop_R=Rs[r],
                   hop_t=B[r, i, j], spinful=True, filling=filling, name=name)


def dft_model(data: LCAOData, *, soc: bool = True, name: str = "gpaw-lcao", Hk: np.ndarray | None = None) -> TBModel:
    """The spinful Löwdin tight-binding model of a GPAW LCAO run (filling = valence electrons);
    ``Hk``: :func:`lowdin_hamiltonians` of ``data`` and ``soc`` when the caller already has them."""
    if Hk is None:
        Hk = lowdin_hamiltonians(data, soc)
    state_atom = np.repeat(data.atom_of_orbital, 2)
    Rs, T = fold_to_real_space(Hk, data.kpts, data.mesh, data.lattice, data.frac, state_atom)
    orbitals = data.frac[data.atom_of_orbital]
    return table_to_model(Rs, T, data.lattice, orbitals, data.n_valence, name)

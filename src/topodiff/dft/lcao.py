"""GPAW LCAO ground state and its Bloch matrices with spin-orbit coupling (PAW, PBE).

One self-consistent PBE calculation (scalar-relativistic, spin-paired, k-point symmetry used), then
one non-self-consistent pass at fixed density on the full Γ-centred mesh without symmetry, from
which we read, at every mesh point κ (reduced coordinates):

* ``H_MM(κ)``, ``S_MM(κ)``: the LCAO Hamiltonian (eV) and overlap of the Bloch sums
  ``Φ_Mκ = Σ_R e^{2πiκ·R} φ_M(r − τ_M − R)`` (convention I, phase on the cell only);
* ``P^a_Mi(κ)``: PAW projector overlaps, which carry the on-site spin-orbit operator
  ``V_SO = Σ_a Σ_ij |p̃^a_i⟩ ξ^a_ij(σ) ⟨p̃^a_j|`` with GPAW's radial ``ξ`` (``gpaw.spinorbit.soc``,
  from ``dV/dr`` of the self-consistent potential). Non-self-consistent SOC as in
  ``gpaw.spinorbit.soc_eigenstates``, but in the full LCAO basis instead of a truncated band basis.

The spinful matrices use the basis order ``(M0,↑), (M0,↓), (M1,↑), ...`` of
:class:`topodiff.physics.model.TBModel`. Setups and basis sets come from the ``gpaw-data`` package:
nothing is downloaded.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from topodiff.errors import TopodiffInputError

HARTREE = 27.211386245988  # eV
INSTALL_HINT = ("DFT verification needs GPAW: install it with "
                "`CC=g++ .venv/bin/pip install 'topodiff[dft]'` (or `make install`); "
                "plain `pip install gpaw` fails to compile with gcc")


def require_gpaw() -> None:
    """Raise :class:`TopodiffInputError` with the install recipe when GPAW (or its data) is missing."""
    try:
        import gpaw  # noqa: F401
        import gpaw_data  # noqa: F401
    except ImportError:
        raise TopodiffInputError(INSTALL_HINT) from None


def gpaw_available() -> bool:
    try:
        require_gpaw()
    except TopodiffInputError:
        return False
    return True


def mesh_for(lattice: np.ndarray, k_density: float, minimum: int = 4) -> tuple[int, int, int]:
    """Even Γ-centred mesh ``n_i = max(minimum, 2⌈k_density / (2|a_i|)⌉)``, ``k_density`` in Å (holds the TRIM)."""
    from topodiff.evaluation.screen import k_mesh_shape

    return tuple(max(minimum, n) for n in k_mesh_shape(lattice, k_density))  # type: ignore[return-value]


@dataclass
class LCAOData:
    """Everything the topology step needs from one GPAW run.

    kpts : ``[n_k, 3]`` reduced mesh points; mesh : the mesh shape;
    H, S : ``[n_k, nM, nM]`` complex LCAO Hamiltonian (eV) and overlap (spin-free);
    V_soc : ``[n_k, 2nM, 2nM]`` spin-orbit matrix (eV) in the spinful basis, or None;
    atom_of_orbital, l_of_orbital : ``[nM]`` atom index and angular momentum of each basis function;
    lattice : ``[3, 3]`` Å; frac : ``[n_at, 3]``; numbers : ``[n_at]``; n_valence : electrons per cell;
    energy : total PBE energy (eV); scf_seconds, nscf_seconds : wall times.
    """

    kpts: np.ndarray
    mesh: tuple[int, int, int]
    H: np.ndarray
    S: np.ndarray
    V_soc: np.ndarray | None
    atom_of_orbital: np.ndarray
    l_of_orbital: np.ndarray
    lattice: np.ndarray
    frac: np.ndarray
    numbers: np.ndarray
    n_valence: int
    energy: float
    scf_seconds: float
    nscf_seconds: float


def _calculator(mode: str, mesh: tuple[int, int, int], h: float, **extra: Any) -> Any:
    from gpaw.calculator import GPAW  # the legacy calculator exposes LCAO matrices and PAW densities

    return GPAW(mode=mode, basis="dzp", xc="PBE", kpts={"size": mesh, "gamma": True}, h=h,
                occupations={"name": "fermi-dirac", "width": 0.01}, txt=None,
                convergence={"density": 1e-5}, **extra)


def _full(A: np.ndarray) -> np.ndarray:
    """GPAW stores the lower triangle of Hermitian LCAO matrices: complete them."""
    from gpaw.utilities.tools import tri2full

    A = np.array(A, dtype=complex)
    tri2full(A)
    return A


def soc_blocks(calc: Any) -> dict[int, np.ndarray]:
    """Per atom ``[2, 2, ni, ni]`` spin-orbit blocks ``ξ^a_{ss'}`` (eV) from GPAW's ``soc``."""
    from gpaw.spinorbit import soc

    out = {}
    for a, D_sp in calc.density.D_asp.items():
        dVL = soc(calc.wfs.setups[a], calc.hamiltonian.xc, D_sp) * HARTREE
        blk = np.empty((2, 2, *dVL.shape[1:]), complex)
        blk[0, 0], blk[1, 1] = dVL[2], -dVL[2]
        blk[0, 1], blk[1, 0] = dVL[0] - 1j * dVL[1], dVL[0] + 1j * dVL[1]
        out[a] = blk
    return out


def soc_matrix(P_aMi: dict[int, np.ndarray], blocks: dict[int, np.ndarray], nM: int) -> np.ndarray:
    """``[2nM, 2nM]`` spin-orbit matrix ``⟨Φ_M s|V_SO|Φ_M' s'⟩`` in the interleaved spinful basis.

    ``P_aMi[a][M, i] = ⟨p̃^a_i|Φ_M⟩``. GPAW's LCAO matrices are the complex conjugates of
    ``⟨Φ_M|·|Φ_M'⟩``; this returns the same convention as its ``H_MM`` (checked against
    ``gpaw.spinorbit.soc_eigenstates`` to 1e-6 eV in ``tests/dft``).
    """
    V = np.zeros((nM, 2, nM, 2), complex)
    for a, P in P_aMi.items():
        V += np.einsum("mi,stij,nj->msnt", P, blocks[a], P.conj())
    return V.reshape(2 * nM, 2 * nM)


def basis_layout(calc: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(atom_of_orbital, l_of_orbital)`` ``[nM]`` of the LCAO basis (orbitals of an atom contiguous)."""
    atoms, ls = [], []
    for a, setup in enumerate(calc.wfs.setups):
        for bf in setup.basis_functions_J:
            l = bf.get_angular_momentum_number()
            atoms += [a] * (2 * l + 1)
            ls += [l] * (2 * l + 1)
    return np.asarray(atoms), np.asarray(ls)


def _tr_map(kd: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(ibz_of_bz, conj)`` when every mesh point is an IBZ point or its time-reversed partner
    (``κ = −κ_ibz``, where the spin-free LCAO matrices are complex conjugates), else None."""
    ops = np.asarray(kd.symmetry.op_scc)[np.asarray(kd.sym_k)]
    if not (ops == np.eye(3, dtype=int)).all():
        return None
    return np.asarray(kd.bz2ibz_k, int), np.asarray(kd.time_reversal_k, bool)


def _mesh_matrices(calc: Any, soc: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``H``, ``S`` ``[n_k, nM, nM]`` and ``V_soc`` on the full mesh (``kd.bzk_kc`` order) from a calculator
    whose IBZ covers the mesh up to time reversal (:func:`_tr_map`); eV, ``⟨Φ_M|X|Φ_M'⟩`` convention."""
    wfs = calc.wfs
    ibz_of, conj = _tr_map(wfs.kd)
    nM = wfs.setups.nao
    blocks = soc_blocks(calc) if soc else None
    H_q, S_q, P_q = {}, {}, {}
    for kpt in wfs.kpt_u:  # GPAW stores the complex conjugates of ⟨Φ_M|X|Φ_M'⟩
        H_q[kpt.k] = _full(wfs.eigensolver.calculate_hamiltonian_matrix(calc.hamiltonian, wfs, kpt)) * HARTREE
        S_q[kpt.k] = _full(wfs.S_qMM[kpt.q])
        P_q[kpt.k] = {a: np.asarray(P[kpt.q]) for a, P in wfs.P_aqMi.items()}
    H, S, V = [], [], []
    for k, tr in zip(ibz_of, conj):
        flip = (lambda A: A.conj()) if tr else (lambda A: A)  # −κ: conjugate Bloch sums, same matrices conjugated
        H.append(flip(H_q[k]).conj())
        S.append(flip(S_q[k]).conj())
        if blocks is not None:
            V.append(soc_matrix({a: flip(P) for a, P in P_q[k].items()}, blocks, nM).conj())
    return np.asarray(H), np.asarray(S), np.asarray(V) if V else None


def nscf_parameters(params: dict[str, Any], grid: Any, mesh: tuple[int, int, int]) -> dict[str, Any]:
    """Parameters of the fixed-density pass on ``mesh`` (time reversal only) on the SCF's real-space ``grid``.

    GPAW picks the grid from ``h`` and the point group, enlarging one that the point group does not
    map onto itself (``gpaw.utilities.gpts``); without the point group ``h`` alone can give a smaller
    grid, onto which the SCF density cannot be copied. So the grid is pinned (``gpts``), never re-derived.
    """
    out = dict(params)
    out.pop("h", None)  # GPAW refuses both h and gpts
    out.update(gpts=tuple(int(n) for n in grid), kpts={"size": tuple(mesh), "gamma": True},
               symmetry={"point_group": False, "time_reversal": True})
    return out


def _fixed_density(calc: Any, atoms: Any, mesh: tuple[int, int, int]) -> Any:
    """A calculator on ``mesh`` reduced by time reversal only, holding the potential of ``calc``'s
    converged density, its LCAO matrices set up but not diagonalised: what ``calc.fixed_density(...)``
    builds before its eigensolver loop, which at fixed density only repeats the same diagonalisation."""
    from gpaw.calculator import GPAW

    params = nscf_parameters(calc.parameters, calc.density.gd.N_c, mesh)
    nscf = GPAW(communicator=calc.world, txt=None, **params)
    nscf.initialize(atoms)
    nscf.density.initialize_from_other_density(calc.density, nscf.wfs.kptband_comm)
    nscf.density.fixed = True
    nscf.set_positions(atoms)  # LCAO: basis-function overlaps + projections, then the fixed density's potential
    return nscf


def run_lcao(atoms: Any, mesh: tuple[int, int, int], *, soc: bool = True, h: float = 0.2) -> LCAOData:
    """SCF (symmetry-reduced mesh), then the LCAO matrices on the full ``mesh`` (see the module docstring).

    When the SCF's k-points already cover the mesh up to time reversal (no point-group reduction: P1,
    most generated crystals) its own matrices are used; otherwise one fixed-density pass on the mesh
    reduced by time reversal only. ``H(−κ) = H(κ)*`` for the spin-free, real-orbital LCAO matrices.
    """
    import time

    require_gpaw()
    t0 = time.perf_counter()
    calc = _calculator("lcao", mesh, h)
    atoms = atoms.copy()
    atoms.calc = calc
    with contextlib.redirect_stdout(io.StringIO()):
        energy = float(atoms.get_potential_energy())
        t1 = time.perf_counter()
        source = calc if _tr_map(calc.wfs.kd) is not None else _fixed_density(calc, atoms, mesh)
    wfs = source.wfs
    if wfs.nspins != 1 or len(wfs.kpt_u) != wfs.kd.nibzkpts or _tr_map(wfs.kd) is None:
        raise RuntimeError("expected a spin-paired, undistributed calculation reduced by time reversal only")
    H, S, V = _mesh_matrices(source, soc)
    atom_of, l_of = basis_layout(source)
    return LCAOData(kpts=np.asarray(wfs.kd.bzk_kc, float), mesh=tuple(mesh), H=H, S=S, V_soc=V,
                    atom_of_orbital=atom_of, l_of_orbital=l_of,
                    lattice=np.asarray(atoms.cell[:], float), frac=atoms.get_scaled_positions(wrap=False),
                    numbers=atoms.numbers.copy(), n_valence=int(round(wfs.nvalence)), energy=energy,
                    scf_seconds=t1 - t0, nscf_seconds=time.perf_counter() - t1)

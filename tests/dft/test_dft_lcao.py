"""GPAW LCAO + SOC → tight-binding model → Z2: fast checks on silicon (default suite; needs GPAW)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gpaw", reason="GPAW not installed (pip install 'topodiff[dft]' with CC=g++)")

from ase.build import bulk  # noqa: E402

from topodiff.dft.lcao import run_lcao  # noqa: E402
from topodiff.dft.model import dft_model, lowdin_hamiltonians  # noqa: E402
from topodiff.dft.topology import mesh_gaps, parity_route  # noqa: E402
from topodiff.physics.parity import TRIM, find_inversion, inversion_matrices  # noqa: E402

H_GRID = 0.3  # Å: coarse real-space grid, enough for these checks and fast


@pytest.fixture(scope="module")
def si_data():
    atoms = bulk("Si", "diamond", 5.431)  # inversion centre at the bond centre (1/8, 1/8, 1/8), not the origin
    return atoms, run_lcao(atoms, (4, 4, 4), soc=True, h=H_GRID)


def test_model_reproduces_dft_on_the_mesh(si_data):
    _, data = si_data
    model = dft_model(data)
    Hk = lowdin_hamiltonians(data)
    assert np.abs(model.hamiltonian(data.kpts, convention=1).numpy() - Hk).max() < 1e-5
    # the Löwdin eigenvalues are those of the generalised LCAO problem (H ⊗ 1 + V_SO) c = ε (S ⊗ 1) c
    import scipy.linalg as sl

    k = 5
    H2 = np.kron(data.H[k], np.eye(2)) + data.V_soc[k]
    ref = sl.eigh(H2, np.kron(data.S[k], np.eye(2)), eigvals_only=True)
    assert np.allclose(np.linalg.eigvalsh(Hk[k]), ref, atol=1e-6)


def test_si_is_a_trivial_insulator(si_data):
    atoms, data = si_data
    direct, indirect, _ = mesh_gaps(lowdin_hamiltonians(data), data.n_valence)
    assert data.n_valence == 8
    assert 0.3 < indirect < direct < 4.0  # PBE Si: indirect gap ~0.6 eV, direct ~2.6 eV
    inv = find_inversion(atoms.get_scaled_positions(), atoms.numbers, np.asarray(atoms.cell[:]))
    assert inv is not None
    res = parity_route(dft_model(data), data.atom_of_orbital, data.l_of_orbital, inv)
    assert res["z2"] == [0, 0, 0, 0]
    # +1 at Γ and the three X (two 1/2 entries), −1 at the four L: the plane-wave route agrees (test_dft_pw)
    assert all(v == (1 if k.count("1/2") in (0, 2) else -1) for k, v in res["parities"].items())


def test_parities_from_the_generalised_problem(si_data):
    """Oracle without the Löwdin model: δ from ``c† S P c`` of the LCAO eigenvectors at each TRIM."""
    import scipy.linalg as sl

    atoms, data = si_data
    inv = find_inversion(atoms.get_scaled_positions(), atoms.numbers, np.asarray(atoms.cell[:]))
    model = dft_model(data)
    ref = parity_route(model, data.atom_of_orbital, data.l_of_orbital, inv)
    P = inversion_matrices(model, data.atom_of_orbital, np.where(data.l_of_orbital % 2 == 0, 1, -1), *inv, TRIM)
    for t, kappa in enumerate(TRIM):
        k = int(np.flatnonzero(np.all(np.isclose(data.kpts % 1.0, kappa % 1.0), axis=1))[0])
        S2 = np.kron(data.S[k], np.eye(2))
        _, C = sl.eigh(np.kron(data.H[k], np.eye(2)) + data.V_soc[k], S2)
        occ = C[:, :data.n_valence]
        xi = np.linalg.eigvals(occ.conj().T @ S2 @ P[t] @ occ)
        assert np.allclose(np.abs(xi), 1, atol=1e-6)
        delta = 1 if (np.sum(xi.real < 0) // 2) % 2 == 0 else -1
        label = "(" + ",".join("0" if x == 0 else "1/2" for x in kappa) + ")"
        assert ref["parities"][label] == delta


def _p1_sic():
    """Zinc-blende SiC with a sheared cell and a displaced atom: no symmetry but time reversal."""
    atoms = bulk("SiC", "zincblende", 4.36)
    atoms.set_cell(atoms.cell[:] + [[0.0, 0.05, 0.0], [0.03, 0.0, 0.0], [0.0, 0.0, 0.02]], scale_atoms=True)
    atoms.positions[1] += [0.04, -0.07, 0.05]
    return atoms


@pytest.mark.parametrize("make, reuses_scf", [(lambda: bulk("Si", "diamond", 5.431), False), (_p1_sic, True)],
                         ids=["Si-fixed-density-pass", "P1-SiC-SCF-reused"])
def test_soc_matrix_matches_gpaw_soc_eigenstates(make, reuses_scf):
    """Our full-basis LCAO SOC equals GPAW's band-basis SOC when all LCAO bands are kept, off-TRIM k too,
    on the full mesh rebuilt from time-reversal partners: from a fixed-density pass (Si, point group
    reduced SCF) or from the SCF itself (P1 cell: its k-points cover the mesh up to time reversal)."""
    from gpaw.spinorbit import soc_eigenstates

    from topodiff.dft.lcao import _calculator, _tr_map

    atoms = make()
    data = run_lcao(atoms, (3, 3, 3), soc=True, h=H_GRID)
    nM = data.H.shape[1]
    calc = _calculator("lcao", (3, 3, 3), H_GRID, nbands=nM)
    atoms.calc = calc
    atoms.get_potential_energy()
    assert (_tr_map(calc.wfs.kd) is not None) == reuses_scf
    nscf = calc.fixed_density(kpts={"size": (3, 3, 3), "gamma": True}, txt=None,
                              symmetry={"point_group": False, "time_reversal": False})
    assert np.allclose(nscf.wfs.kd.bzk_kc, data.kpts)
    ref = soc_eigenstates(nscf).eigenvalues()
    ours = np.linalg.eigvalsh(lowdin_hamiltonians(data))
    assert np.allclose(ours, ref, atol=1e-4)
    no_soc = np.linalg.eigvalsh(lowdin_hamiltonians(data, soc=False))
    assert np.abs(ours - no_soc).max() > 1e-3  # SOC does something (Si: ~0.05 eV splitting at Γ)

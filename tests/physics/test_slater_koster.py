"""Structure → Slater-Koster TB: symmetries of H(k), invariance, and known materials."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import importlib

import pytest
import torch

from topodiff.errors import TopodiffInputError
from topodiff.physics.model import k_grid
from topodiff.physics.parity import find_inversion, parity_z2
from topodiff.physics.sk_params import term_values, valence_sp_electrons
from topodiff.physics.slater_koster import orbital_parity, soc_blocks, structure_to_tb

from helpers import load_sk_crystal  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "sk"


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


load = load_sk_crystal


def eigvals(model, k: np.ndarray) -> np.ndarray:
    return torch.linalg.eigvalsh(model.hamiltonian(k, convention=1)).numpy()


RNG = np.random.default_rng(7)
K_RANDOM = RNG.random((12, 3))


@pytest.mark.parametrize("name", ["Si", "Bi2Se3", "HgTe"])
def test_hamiltonian_is_hermitian(name: str) -> None:
    model = structure_to_tb(load(name))
    H = model.hamiltonian(K_RANDOM).numpy()
    assert np.abs(H - np.conj(np.swapaxes(H, -1, -2))).max() < 1e-12


@pytest.mark.parametrize("name", ["Bi2Se3", "HgTe"])
def test_time_reversal_with_soc(name: str) -> None:
    """Θ = (1 ⊗ iσ_y) K: H(−k) = U H(k)* U†, and SOC really mixes spins (the test can fail)."""
    model = structure_to_tb(load(name))
    U = np.kron(np.eye(model.n_orb), np.array([[0, 1], [-1, 0]]))
    Hk = model.hamiltonian(K_RANDOM, convention=1).numpy()
    Hmk = model.hamiltonian(-K_RANDOM, convention=1).numpy()
    assert np.abs(Hmk - U @ Hk.conj() @ U.T).max() < 1e-10
    up, dn = Hk[:, 0::2, 0::2], Hk[:, 1::2, 1::2]
    assert np.abs(Hk[:, 0::2, 1::2]).max() > 0.1 or np.abs(up - dn).max() > 0.1  # spin is not conserved


def test_soc_block_spectrum() -> None:
    """ζ L·S on a p shell: j = 3/2 at +ζ/2 (×4), j = 1/2 at −ζ (×2)."""
    H = soc_blocks(0.7).transpose(0, 2, 1, 3).reshape(6, 6)
    np.testing.assert_allclose(np.linalg.eigvalsh(H), [-0.7, -0.7, 0.35, 0.35, 0.35, 0.35], atol=1e-12)


def test_rotation_and_translation_invariance() -> None:
    """Rotating the Cartesian frame and translating all atoms leaves every band energy unchanged."""
    from pymatgen.core import Lattice, Structure
    from scipy.spatial.transform import Rotation

    s = load("Bi2Se3")
    R = Rotation.from_rotvec([0.3, -1.1, 0.7]).as_matrix()
    rotated = Structure(Lattice(s.lattice.matrix @ R.T), s.species, s.frac_coords + np.array([0.13, -0.41, 0.27]))
    e0 = eigvals(structure_to_tb(s), K_RANDOM)
    e1 = eigvals(structure_to_tb(rotated), K_RANDOM)
    np.testing.assert_allclose(e0, e1, atol=1e-9)


def test_valence_counts_and_term_values() -> None:
    assert [valence_sp_electrons(x) for x in ("Si", "Ga", "Bi", "Hg", "Fe", "Se")] == [4, 3, 5, 2, 2, 6]
    es, ep = term_values("Si")
    assert es < ep < 0  # s below p, both bound
    with pytest.raises(TopodiffInputError, match="unknown element"):
        valence_sp_electrons("Xx")


def test_term_values_without_nist_data_fall_back_quietly() -> None:
    """pymatgen has no atomic orbitals for Pu: the documented fallback applies and no warning reaches the
    user's terminal (it used to print mid-progress-bar during `make run`)."""
    import warnings

    term_values.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        es, ep = term_values("Pu")
    assert es == pytest.approx(-4.1) and ep == pytest.approx(0.4 * es)


@pytest.mark.parametrize("name", ["Si", "Ge"])
def test_diamond_semiconductors_are_gapped(name: str) -> None:
    model = structure_to_tb(load(name))
    E = eigvals(model, k_grid((8, 8, 8)).reshape(-1, 3))
    f = model.occupied
    assert f == 8
    assert E[:, f].min() - E[:, f - 1].max() > 0.3


def test_graphene_is_gapless_at_K() -> None:
    s = load("graphene")  # hexagonal cell with γ = 120°: K = (1/3, 1/3, 0)
    model = structure_to_tb(s)
    f = model.occupied
    e_K = eigvals(model, np.array([[1 / 3, 1 / 3, 0.0]]))[0]
    e_G = eigvals(model, np.array([[0.0, 0.0, 0.0]]))[0]
    assert e_K[f] - e_K[f - 1] < 1e-3  # Dirac point (SOC gap of carbon is far below 1 meV)
    assert e_G[f] - e_G[f - 1] > 1.0


def _parity(model, s, basis="sp3"):
    n_o = len(orbital_parity(basis))
    inv = find_inversion(model.orbitals[::n_o], np.asarray(s.atomic_numbers), model.lattice)
    assert inv is not None
    return parity_z2(model, np.repeat(np.arange(len(s)), n_o), np.tile(orbital_parity(basis), len(s)), *inv)


HARRISON = {"fit": "none"}  # force Harrison's universal integrals (no compound or shell fit)


@pytest.mark.parametrize("name", ["Bi2Se3", "Bi2Te3"])
def test_tetradymites_have_inverted_bands(name: str) -> None:
    """Harrison defaults: Fu-Kane (1;000), the inversion at Γ alone (δ_Γ = −1)."""
    s = load(name)
    res = _parity(structure_to_tb(s, params=HARRISON), s)
    assert tuple(res["z2"]) == (1, 0, 0, 0)
    assert res["delta"][0] == -1 and all(d == 1 for d in res["delta"][1:])
    assert res["trim_gap"] > 0.01


def test_bi2se3_inversion_needs_spin_orbit() -> None:
    """With Harrison's integrals the inversion is driven by SOC (no SOC → trivial)."""
    s = load("Bi2Se3")
    assert tuple(_parity(structure_to_tb(s, soc=False, params=HARRISON), s)["z2"]) == (0, 0, 0, 0)


def test_bi2se3_published_shell_fit() -> None:
    """Bi2Se3 uses the three-shell sp3+SOC table (sk_params.BI2SE3_KOBAYASHI) by default: sites and
    shells are resolved (central Se ≠ outer Se), the Γ inversion survives, and the TRIM gap is large."""
    from topodiff.physics.sk_params import BI2SE3_KOBAYASHI as fit

    s = load("Bi2Se3")
    model = structure_to_tb(s)
    assert model.params["shell_fit"] == 1.0
    assert structure_to_tb(s, params=HARRISON).params["shell_fit"] == 0.0
    es = model.onsite[0::4, 0, 0].real  # s level of each atom (4 orbitals per atom, spin in the block)
    central = [i for i, site in enumerate(s) if site.specie.symbol == "Se" and np.allclose(site.frac_coords % 1, 0)]
    assert len(central) == 1
    for i, site in enumerate(s):
        label = "Bi" if site.specie.symbol == "Bi" else ("Se2" if i in central else "Se1")
        assert es[i] == pytest.approx(fit.onsite[label]["s"])
    res = _parity(model, s)
    assert tuple(res["z2"]) == (1, 0, 0, 0)
    assert res["delta"][0] == -1 and all(d == 1 for d in res["delta"][1:])
    assert res["trim_gap"] > 0.3
    # shells are found by rank, not by fixed distances: a 3 % compressed cell keeps the same model
    strained = s.copy()
    strained.scale_lattice(s.volume * 0.97 ** 3)
    m2 = structure_to_tb(strained)
    assert m2.params["shell_fit"] == 1.0 and len(m2.hop_t) == len(model.hop_t)
    e1, e2 = eigvals(model, np.zeros((1, 3))), eigvals(m2, np.zeros((1, 3)))
    assert np.abs(e1 - e2).max() < 1e-8  # Γ: no distance scaling inside a shell
    # another Bi-Se phase (rock salt BiSe: every Se has 6 Bi) does not match the site pattern
    from pymatgen.core import Lattice, Structure

    rs = Structure(Lattice([[0, 2.9, 2.9], [2.9, 0, 2.9], [2.9, 2.9, 0]]), ["Bi", "Se"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert structure_to_tb(rs).params["shell_fit"] == 0.0


def test_parity_agrees_with_wannier_centres() -> None:
    """Two independent routes (Fu-Kane parity here, WCC flow in physics.z2) give the same indices."""
    z2 = importlib.import_module("topodiff.physics.z2")
    s = load("Bi2Se3")
    model = structure_to_tb(s)
    assert tuple(z2.z2_invariant(model)) == tuple(_parity(model, s)["z2"]) == (1, 0, 0, 0)


def test_vogl_sp3s_star_silicon() -> None:
    """Vogl's sp3s* Si (published fit): indirect gap, CBM away from Γ, gap of order 1 eV."""
    model = structure_to_tb(load("Si"), basis="sp3s*")
    assert model.n_orb == 10
    k = k_grid((12, 12, 12)).reshape(-1, 3)
    E = eigvals(model, k)
    f = model.occupied
    gap = E[:, f].min() - E[:, f - 1].max()
    assert 0.5 < gap < 1.6
    assert np.linalg.norm(k[np.argmin(E[:, f])]) > 0.1  # indirect: CBM not at Γ
    with pytest.raises(TopodiffInputError, match="s\\*"):
        structure_to_tb(load("Bi2Se3"), basis="sp3s*")


def test_bad_structures_raise() -> None:
    from pymatgen.core import Lattice, Structure
    from pymatgen.core.periodic_table import DummySpecies

    lat = Lattice.cubic(4.0)
    with pytest.raises(TopodiffInputError, match="overlapping"):
        structure_to_tb(Structure(lat, ["Si", "Si"], [[0, 0, 0], [0.01, 0, 0]]))
    with pytest.raises(TopodiffInputError, match="partial occupancies"):
        structure_to_tb(Structure(lat, [{"Si": 0.5, "Ge": 0.5}], [[0, 0, 0]]))
    with pytest.raises(TopodiffInputError, match="unknown element"):
        structure_to_tb(Structure(lat, [DummySpecies("X")], [[0, 0, 0]]))
    with pytest.raises(TopodiffInputError, match="basis"):
        structure_to_tb(load("Si"), basis="spd")


def _rutile_tio2():
    from pymatgen.core import Lattice, Structure

    u = 0.305
    return Structure(Lattice.tetragonal(4.594, 2.959), ["Ti", "Ti", "O", "O", "O", "O"],
                     [[0, 0, 0], [0.5, 0.5, 0.5], [u, u, 0], [1 - u, 1 - u, 0], [0.5 + u, 0.5 - u, 0.5],
                      [0.5 - u, 0.5 + u, 0.5]])


def test_ionic_transfer_counts_donated_d_and_f_electrons() -> None:
    from topodiff.physics.sk_params import ionic_transfer
    from topodiff.physics.slater_koster import sp_filling

    assert ionic_transfer((("O", 2), ("Ti", 1))) == {"Ti": 2}  # Ti4+: 4s2 + 3d2 to O 2p
    assert ionic_transfer((("Fe", 3), ("O", 4))) == {"Fe": 2}  # mixed valence: 8 − 3·2
    assert ionic_transfer((("La", 1), ("Sb", 1))) == {"La": 1}  # La3+: 6s2 + 5d1
    assert ionic_transfer((("Bi", 2), ("Se", 3))) == {}  # Bi3+ keeps its 6s2 in the sp basis
    assert ionic_transfer((("Al", 1), ("Ni", 1))) == {}  # intermetallic: no oxidation states
    species = ["Ti", "Ti", "O", "O", "O", "O"]
    assert sp_filling(species) == 32 and sp_filling(species, ionic=False) == 28


def test_rutile_is_a_trivial_insulator_only_with_the_ionic_count() -> None:
    """O 2p bands are full in TiO2 (Materiae: trivial insulator, PBE gap 1.8 eV); counting Ti's
    4s² alone leaves them partly empty, a spurious metal."""
    from topodiff.evaluation.screen import screen_structure

    tio2 = _rutile_tio2()
    ionic = screen_structure(tio2)
    assert ionic["topo_class"] == "trivial_insulator" and ionic["gap"] > 0.5
    sp_only = screen_structure(tio2, params={"filling": "sp"})
    assert sp_only["topo_class"] == "metal"

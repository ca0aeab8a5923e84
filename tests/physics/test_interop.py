"""PythTB / TBmodels import and export, the PythTB-style builder, and crystals as models."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from topodiff.errors import TopodiffInputError
from topodiff.physics import TBModel, build_model, chern_number, z2_invariant
from topodiff.physics.interop import (TBBuilder, crystal_model, from_pythtb, from_tbmodels, is_crystal_file,
                                      square_cell, tbmodels_arguments, to_pythtb)

pythtb = pytest.importorskip("pythtb")
CRYSTALS = Path(__file__).resolve().parents[1] / "data" / "crystals"
RNG = np.random.default_rng(7)


def bands(model, k):
    return torch.linalg.eigvalsh(model.hamiltonian(k)).numpy()


def pythtb_bands(tb, k):
    """PythTB's own eigenvalues ``[nk, n_states]`` (its solve_all puts bands first)."""
    return np.asarray(tb.solve_all(k)).T


def pythtb_haldane(m=0.2, t=-1.0, t2=0.15):
    """Haldane's model written directly with PythTB (as in PythTB's haldane example)."""
    tb = pythtb.tb_model(2, 2, [[1.0, 0.0], [0.5, np.sqrt(3) / 2]], [[1 / 3, 1 / 3], [2 / 3, 2 / 3]])
    tb.set_onsite([m, -m])
    for R in ([0, 0], [-1, 0], [0, -1]):
        tb.set_hop(t, 0, 1, R)
    for R in ([1, 0], [-1, 1], [0, -1]):
        tb.set_hop(1j * t2, 0, 0, R)
        tb.set_hop(-1j * t2, 1, 1, R)
    return tb


def pythtb_kane_mele(esite=0.1, soc=0.06, rashba=0.05):
    """Spinful Kane-Mele (+ Rashba ``iλ(σ×d)_z`` on each bond) written with PythTB's Pauli vectors."""
    lat = np.array([[1.0, 0.0], [0.5, np.sqrt(3) / 2]])
    orb = np.array([[1 / 3, 1 / 3], [2 / 3, 2 / 3]])
    tb = pythtb.tb_model(2, 2, lat, orb, nspin=2)
    tb.set_onsite([esite, -esite])
    for R in ([0, 0], [0, -1], [-1, 0]):
        d = (orb[1] + R - orb[0]) @ lat
        d = d / np.linalg.norm(d)
        tb.set_hop(1.0, 0, 1, R)
        tb.set_hop(1j * rashba * np.array([0, d[1], -d[0], 0]), 0, 1, R, mode="add")
    for i, sign in ((0, 1), (1, -1)):
        for R in ([0, 1], [1, -1], [-1, 0]):
            tb.set_hop([0, 0, 0, sign * soc * 1j], i, i, R)
    return tb


def test_pythtb_haldane_imports_with_identical_bands_and_chern():
    tb = pythtb_haldane()
    model = from_pythtb(tb)
    k = RNG.random((40, 2))
    np.testing.assert_allclose(bands(model, k), pythtb_bands(tb, k), atol=1e-12)
    flipped = from_pythtb(pythtb_haldane(t2=-0.15))
    assert chern_number(model, nk=48) == -chern_number(flipped, nk=48) != 0


def test_pythtb_spinful_kane_mele_imports_with_identical_bands_and_z2():
    tb = pythtb_kane_mele()
    model = from_pythtb(tb, filling=2)
    assert model.spinful and model.num_bands == 4
    k = RNG.random((40, 2))
    np.testing.assert_allclose(bands(model, k), pythtb_bands(tb, k), atol=1e-12)
    assert z2_invariant(model) == 1
    assert z2_invariant(from_pythtb(pythtb_kane_mele(esite=0.7), filling=2)) == 0


@pytest.mark.parametrize("name", ["haldane", "kane_mele", "bhz", "fu_kane_mele", "weyl", "rice_mele", "graphene"])
def test_export_to_pythtb_round_trips_with_identical_bands(name):
    model = build_model(name)
    tb = to_pythtb(model)
    k = RNG.random((30, model.dim))
    ref = bands(model, k)
    np.testing.assert_allclose(pythtb_bands(tb, k), ref, atol=1e-10)
    back = from_pythtb(tb, filling=model.filling)
    np.testing.assert_allclose(bands(back, k), ref, atol=1e-12)
    np.testing.assert_allclose(back.orbitals, model.orbitals)


def test_square_cell_keeps_lengths_angles_and_is_right_handed():
    lat = np.array([[1.0, 0.2, 0.3], [0.1, -0.9, 0.4]])  # a 2D cell in 3D space
    cell = square_cell(lat)
    assert cell.shape == (2, 2) and np.linalg.det(cell) > 0
    np.testing.assert_allclose(cell @ cell.T, lat @ lat.T, atol=1e-12)
    left = np.diag([1.0, 1.0, -1.0])
    assert np.linalg.det(square_cell(left)) > 0
    np.testing.assert_allclose(square_cell(left) @ square_cell(left).T, np.eye(3))


def test_builder_reproduces_pythtb_call_by_call():
    lat, orb = [[1.0, 0.0], [0.5, np.sqrt(3) / 2]], [[1 / 3, 1 / 3], [2 / 3, 2 / 3]]
    b = TBBuilder(lat, orb, spinful=True)
    tb = pythtb.tb_model(2, 2, lat, orb, nspin=2)
    calls = [("onsite", ([0.3, -0.3],)), ("hop", (1.0, 0, 1, [0, 0])), ("hop", ([0, 0, 0, 0.05j], 0, 0, [1, 0])),
             ("hop", ([0.2, 0.1, 0.0, 0.0], 1, 0, [0, 1])), ("hop", (np.array([[0.1, 0.2j], [-0.2j, 0.1]]), 0, 1, [1, 0])),
             ("hop", (0.5, 0, 1, [0, 0], "add"))]
    for kind, args in calls:
        (b.set_onsite if kind == "onsite" else b.set_hop)(*args)
        (tb.set_onsite if kind == "onsite" else tb.set_hop)(*args)
    k = RNG.random((30, 2))
    np.testing.assert_allclose(bands(b.build(), k), pythtb_bands(tb, k), atol=1e-12)


def test_builder_ssh_equals_library_ssh():
    lib = build_model("ssh")
    v, w = lib.params["v"], lib.params["w"]
    b = TBBuilder([[1.0]], [[0.0], [0.5]], name="ssh")
    b.set_onsite([0.0, 0.0]).set_hop(v, 0, 1, [0]).set_hop(w, 1, 0, 1)
    k = RNG.random((20, 1))
    np.testing.assert_allclose(bands(b.build(), k), bands(lib, k), atol=1e-12)


@pytest.mark.parametrize("call, message", [
    (lambda b: b.set_hop(1.0, 0, 0, [0, 0]), "onsite"),
    (lambda b: b.set_hop(1.0, 0, 3, [0, 0]), "out of range"),
    (lambda b: b.set_hop(1.0, 0, 1, [0.5, 0]), "integers"),
    (lambda b: (b.set_hop(1.0, 0, 1, [1, 0]), b.set_hop(1.0, 1, 0, [-1, 0])), "conjugate"),
    (lambda b: (b.set_hop(1.0, 0, 1, [1, 0]), b.set_hop(1.0, 0, 1, [1, 0])), "already set"),
    (lambda b: (b.set_onsite(1.0, 0), b.set_onsite(2.0, 0)), "already set"),
    (lambda b: b.set_onsite(1j, 0), "Hermitian"),
    (lambda b: b.set_onsite([1.0, 2.0, 3.0]), "3 values"),
    (lambda b: b.set_hop(float("nan"), 0, 1, [0, 0]), "non-finite"),
])
def test_builder_rejects_mistakes_like_pythtb(call, message):
    b = TBBuilder([[1.0, 0.0], [0.0, 1.0]], [[0, 0], [0.5, 0.5]])
    with pytest.raises(TopodiffInputError, match=message):
        call(b)


class FakeTBModels:
    """The storage of ``tbmodels.Model`` transcribed from TBmodels 1.4 (``_reduce_hop``, ``hamilton``):
    full hoppings (``contains_cc=True``) are kept for R with a positive first non-zero component, the
    R = 0 matrix halved, and ``H(k) = Σ_R hop[R] e^{2πi k·R} + h.c.``."""

    def __init__(self, *, hop, pos, uc, occ, dim, size, contains_cc=True):
        assert contains_cc
        self.hop = {}
        for R, mat in hop.items():
            nz = np.nonzero(R)[0]
            if len(nz) == 0:
                self.hop[R] = 0.5 * mat
            elif R[nz[0]] > 0:
                self.hop[R] = mat
        self.pos, self.uc, self.occ, self.dim, self.size = np.asarray(pos), uc, occ, dim, size

    def hamilton(self, k):
        H = sum(hop * np.exp(2j * np.pi * np.dot(R, k)) for R, hop in self.hop.items())
        return H + H.conjugate().T


@pytest.mark.parametrize("name", ["haldane", "kane_mele", "fu_kane_mele"])
def test_tbmodels_arguments_and_import_follow_tbmodels_storage(name):
    model = build_model(name)
    fake = FakeTBModels(**tbmodels_arguments(model))
    k = RNG.random((20, model.dim))
    ref = bands(model, k)
    np.testing.assert_allclose(np.array([np.linalg.eigvalsh(fake.hamilton(kk)) for kk in k]), ref, atol=1e-12)
    back = from_tbmodels(fake)
    assert back.occupied == model.occupied and back.num_bands == model.num_bands
    np.testing.assert_allclose(bands(back, k), ref, atol=1e-12)


def test_crystal_model_is_the_screen_model_and_files_are_detected(tmp_path):
    from pymatgen.core import Structure

    from topodiff.physics.slater_koster import structure_to_tb

    s = Structure.from_file(CRYSTALS / "POSCAR_NaCl")
    model = crystal_model(CRYSTALS / "POSCAR_NaCl")
    ref = structure_to_tb(s)
    assert model.occupied == ref.occupied and model.num_bands == ref.num_bands
    k = RNG.random((5, 3))
    np.testing.assert_allclose(bands(model, k), bands(ref, k), atol=1e-12)
    assert is_crystal_file(CRYSTALS / "Bi2Se3.cif") and is_crystal_file(CRYSTALS / "HgTe.vasp")
    renamed = tmp_path / "structure.txt"
    renamed.write_text((CRYSTALS / "Bi2Se3.cif").read_text())
    assert is_crystal_file(renamed)
    model_json = tmp_path / "m.json"
    model_json.write_text('{"format": "topodiff-tb/1"}')
    assert not is_crystal_file(model_json) and not is_crystal_file(tmp_path / "missing.cif")


class _Stored:
    """A TBmodels ``Model`` as stored in the fixture (its own ``hop`` storage, ``pos``, ``uc``, ``occ``)."""

    def __init__(self, doc):
        self.hop = {tuple(R): np.array(re) + 1j * np.array(im) for R, re, im in doc["hop"]}
        self.pos, self.uc, self.occ, self.dim, self.size = doc["pos"], doc["uc"], doc["occ"], doc["dim"], doc["size"]


@pytest.mark.parametrize("name", ["haldane", "kane_mele"])
def test_real_tbmodels_output_round_trips(name):
    """TBmodels 1.4.3 itself built these models from ``tbmodels_arguments`` (tests/data/interop):
    its eigenvalues equal ours, and its stored ``hop`` reads back into the same model."""
    import json

    fixture = json.loads((Path(__file__).resolve().parents[1] / "data" / "interop" / "tbmodels_1.4.3.json").read_text())
    doc, k = fixture["models"][name], np.array(fixture["k"])
    ours = TBModel.from_dict(doc["topodiff_model"])  # the model the fixture was made from
    np.testing.assert_allclose(np.array(doc["eigenvalues"]), bands(ours, k), atol=1e-10)
    back = from_tbmodels(_Stored(doc))
    assert back.occupied == ours.occupied
    np.testing.assert_allclose(bands(back, k), np.array(doc["eigenvalues"]), atol=1e-10)


def test_physics_commands_take_a_crystal_file_with_the_screen_options(capsys):
    """``topodiff bands|invariants|weyl x.cif`` use the screen's Slater-Koster model (issue #18)."""
    import json

    from topodiff.cli import main

    si = str(Path(__file__).resolve().parents[1] / "data" / "sk" / "Si.cif")

    def run(*args):
        capsys.readouterr()
        code = main(list(args))
        return code, capsys.readouterr()

    code, out = run("bands", si, "--nk", "4", "--num", "20", "--json")
    assert code == 0 and json.loads(out.out)["model"] == "sk-sp3:Si" and json.loads(out.out)["direct_gap"] > 1
    code, out = run("invariants", si, "--nk", "4", "--no-soc", "--json")
    assert code == 0 and json.loads(out.out)["z2"] == [0, 0, 0, 0]
    code, out = run("weyl", si, "--nk", "4", "--basis", "sp3", "--json")
    assert code == 0 and json.loads(out.out)["nodes"] == []
    code, out = run("invariants", "haldane", "--no-soc")
    assert code == 2 and out.err.startswith("error: ") and len(out.err.strip().splitlines()) == 1


def test_crystal_path_follows_the_space_group_and_folds_onto_the_primitive_bands():
    """seekpath with the atoms: a hexagonal supercell of rhombohedral Bi2Se3 (R-3m) gets the
    rhombohedral path, and at every labelled point the primitive cell's bands are among the
    supercell's (band folding: the mapping into the supercell's basis is right)."""
    import warnings

    from pymatgen.core import Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    from topodiff.physics.bands import high_symmetry_path
    from topodiff.physics.interop import crystal_path
    from topodiff.physics.slater_koster import structure_to_tb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prim = Structure.from_file(Path(__file__).resolve().parents[1] / "data" / "sk" / "Bi2Se3.cif")
        conv = SpacegroupAnalyzer(prim, symprec=0.01).get_conventional_standard_structure()
    assert len(conv) == 3 * len(prim)
    lattice_labels = {n for piece in high_symmetry_path(conv.lattice.matrix).pieces for n, _ in piece}
    p_prim, p_conv = crystal_path(prim), crystal_path(conv)
    labels = [[n for n, _ in piece] for piece in p_conv.pieces]
    assert labels == [[n for n, _ in piece] for piece in p_prim.pieces]
    assert "K" in lattice_labels and "K" not in {n for piece in labels for n in piece}  # hexagonal → rhombohedral
    m_prim, m_conv = structure_to_tb(prim), structure_to_tb(conv)
    nodes_prim = {n: k for piece in p_prim.pieces for n, k in piece}
    for name, k in {n: k for piece in p_conv.pieces for n, k in piece}.items():
        e_prim = bands(m_prim, nodes_prim[name][None])[0]
        e_conv = bands(m_conv, k[None])[0]
        assert np.abs(e_conv[None, :] - e_prim[:, None]).min(axis=1).max() < 1e-6, name
    assert crystal_path("haldane") is None

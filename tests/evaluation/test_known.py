"""The index of known crystals: fingerprint invariances, what is known / new, file round trip,
and the shipped index on hand-made known compounds (NaCl, Bi2Se3)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from topodiff.errors import TopodiffInputError
from topodiff.evaluation import known as K

warnings.filterwarnings("ignore")
FCC = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])


def rocksalt(a: float = 5.64) -> Structure:
    return Structure(Lattice.cubic(a), ["Na"] * 4 + ["Cl"] * 4, np.concatenate([FCC, FCC + [0.5, 0, 0]]) % 1.0)


def cscl_nacl(a: float = 3.4) -> Structure:
    return Structure(Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def perovskite(a: str = "Sr", b: str = "Ti") -> Structure:
    return Structure(Lattice.cubic(3.9), [a, b, "O", "O", "O"],
                     [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])


def bi2se3() -> Structure:
    """Bi2Se3, R-3m (166), hexagonal setting (Nakajima 1963: a 4.143, c 28.636 Å)."""
    return Structure.from_spacegroup(166, Lattice.hexagonal(4.143, 28.636), ["Bi", "Se", "Se"],
                                     [[0, 0, 0.4008], [0, 0, 0], [0, 0, 0.2117]])


def distance(a: Structure, b: Structure) -> float:
    return float(np.abs(K.structure_fingerprint(a) - K.structure_fingerprint(b)).mean())


def test_fingerprint_invariances():
    s = rocksalt()
    moved = rocksalt(5.9)                                      # isotropic scaling
    moved.translate_sites(range(len(moved)), [0.13, 0.27, 0.41])
    sup = s.copy()
    sup.make_supercell([2, 1, 1])                              # another cell of the same crystal
    prim = s.get_primitive_structure()
    for other in (moved, sup, prim):
        assert distance(s, other) == pytest.approx(0.0, abs=1e-9)
    assert distance(s, cscl_nacl()) > 3 * K.SG_MATCH_TOL      # another polymorph of NaCl
    # swapping the two cations between the perovskite sites changes the fingerprint
    assert distance(perovskite("Sr", "Ti"), perovskite("Ti", "Sr")) > K.MATCH_TOL


def test_index_query_on_hand_made_cases():
    idx = K.KnownIndex(["NaCl"], np.array([225]), K.structure_fingerprint(rocksalt())[None, :], ["mp-22862"],
                       composition_only=["Bi2Se3", "NaCl"])
    assert "NaCl" not in idx.composition_only and idx.num_formulas == 2
    noisy = rocksalt(5.5)
    noisy.perturb(0.02)
    q = idx.query(noisy)
    assert (q.formula_novel, q.structure_novel, q.novel, q.match) == (False, False, False, "mp-22862")
    q = idx.query(cscl_nacl())                                 # known formula, new structure
    assert (q.formula_novel, q.structure_novel, q.novel) == (False, True, True)
    q = idx.query(bi2se3())                                    # formula known only from the DFT entries
    assert (q.formula_novel, q.structure_novel, q.novel) == (False, None, False) and "unknown" in q.note
    q = idx.query(perovskite("Bi", "Na"))                      # hypothetical formula
    assert (q.formula_novel, q.structure_novel, q.novel) == (True, True, True)


def test_catalogue_pairs_and_incomplete_formulas_keep_known_crystals_from_being_new():
    """Bi (R-3m) and Sb2Te3 were called novel by the main job: their MP ground states have no
    structure in the index. A catalogue (formula, space group) pair makes a crystal known; a formula
    whose MP entries are not all stored leaves a non-matching structure unknown, not novel."""
    idx = K.KnownIndex(["NaCl"], np.array([225]), K.structure_fingerprint(rocksalt())[None, :], ["mp-22862"],
                       known_pairs={"Bi2Se3#166": "materiae:mp-541837"}, incomplete=["NaCl"])
    q = idx.query(bi2se3())                                    # known only as a catalogue row with its space group
    assert (q.formula_novel, q.structure_novel, q.novel, q.match) == (False, False, False, "materiae:mp-541837")
    q = idx.query(cscl_nacl())                                 # another NaCl polymorph; MP has more than stored
    assert (q.formula_novel, q.structure_novel, q.novel) == (False, None, False) and "unknown" in q.note
    assert idx.query(rocksalt()).match == "mp-22862"           # a stored structure still matches first
    complete = K.KnownIndex(["NaCl"], np.array([225]), K.structure_fingerprint(rocksalt())[None, :], ["mp-22862"])
    assert complete.query(cscl_nacl()).novel                   # all MP entries stored: a new polymorph is new


def test_save_and_load_round_trip(tmp_path):
    fps = np.stack([K.structure_fingerprint(rocksalt()), K.structure_fingerprint(cscl_nacl())])
    idx = K.KnownIndex(["NaCl", "NaCl"], np.array([225, 221]), fps, ["b", "a"], ["SrTiO3"], {"x": 2},
                       {"KCl#225": "tang:KCl@225"}, ["NaCl"])
    path = idx.save(tmp_path / "known.npz")
    back = K.load_index(str(path))
    assert len(back) == 2 and back.sources == {"x": 2} and back.composition_only == {"SrTiO3", "KCl"}
    assert back.known_pairs == {"KCl#225": "tang:KCl@225"} and back.incomplete == {"NaCl"}
    assert back.query(cscl_nacl()).match == "a" and back.query(rocksalt()).match == "b"
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(TopodiffInputError):
        K.load_index(str(tmp_path / "bad.npz"))


@pytest.mark.skipif(not K.INDEX_PATH.exists(), reason="shipped index not built (benchmarks/build_known_index.py)")
def test_shipped_index_knows_nacl_and_bi2se3():
    idx = K.load_index()
    assert len(idx) > 30000 and idx.num_formulas > 30000
    for s in (rocksalt(), bi2se3()):
        q = idx.query(s)
        assert not q.novel and not q.formula_novel, s.composition.reduced_formula
    assert idx.query(rocksalt()).match is not None              # NaCl rock salt is in the structure sets
    assert idx.query(perovskite("Hg", "Pb")).formula_novel      # HgPbO3: no such formula known
    assert not idx.query(perovskite("Bi", "Na")).novel          # NaBiO3: a Perov-5 crystal


@pytest.mark.skipif(not K.INDEX_PATH.exists(), reason="shipped index not built (benchmarks/build_known_index.py)")
def test_shipped_index_does_not_call_textbook_topological_materials_new():
    """Elemental Bi (A7, R-3m) and tetradymite Sb2Te3: well known, never novel."""
    bismuth = Structure.from_spacegroup(166, Lattice.hexagonal(4.546, 11.862), ["Bi"], [[0, 0, 0.2341]])
    sb2te3 = Structure.from_spacegroup(166, Lattice.hexagonal(4.264, 30.458), ["Sb", "Te", "Te"],
                                       [[0, 0, 0.3988], [0, 0, 0], [0, 0, 0.2128]])
    for s in (bismuth, sb2te3):
        q = K.load_index().query(s)
        assert not q.formula_novel and not q.novel, (s.composition.reduced_formula, q)

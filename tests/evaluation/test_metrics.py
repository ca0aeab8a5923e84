"""CDVAE/DiffCSP metrics on hand-made crystals whose answers are known."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from pymatgen.core import Composition, Lattice, Structure

from topodiff.evaluation import fingerprints as F
from topodiff.evaluation import metrics as M

warnings.filterwarnings("ignore")


FCC = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])


def rocksalt(a: float = 5.64, species=("Na", "Cl")) -> Structure:
    """Conventional 8-atom rock-salt cell (built directly: from_spacegroup is slow)."""
    return Structure(Lattice.cubic(a), [species[0]] * 4 + [species[1]] * 4,
                     np.concatenate([FCC, FCC + [0.5, 0, 0]]) % 1.0)


def cscl(a: float = 4.12) -> Structure:
    return Structure(Lattice.cubic(a), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def silicon(a: float = 5.43) -> Structure:
    """Conventional 8-atom diamond cell."""
    return Structure(Lattice.cubic(a), ["Si"] * 8, np.concatenate([FCC, FCC + 0.25]))


# ---------------------------------------------------------------- validity
def test_atoms_closer_than_half_angstrom_are_invalid():
    s = Structure(Lattice.cubic(5.0), ["Na", "Cl"], [[0, 0, 0], [0.06, 0, 0]])   # 0.3 Å apart
    assert M.min_distance(s) == pytest.approx(0.3, abs=1e-9)
    assert not M.structure_valid(s)
    s_ok = Structure(Lattice.cubic(5.0), ["Na", "Cl"], [[0, 0, 0], [0.12, 0, 0]])  # 0.6 Å
    assert M.structure_valid(s_ok)


def test_distance_across_the_cell_boundary_and_self_images():
    s = Structure(Lattice.cubic(5.0), ["Na", "Cl"], [[0.01, 0, 0], [0.97, 0, 0]])  # 0.2 Å through the boundary
    assert not M.structure_valid(s)
    tiny = Structure(Lattice.tetragonal(0.4, 6.0), ["C"], [[0, 0, 0]])            # atom meets its own image
    assert not M.structure_valid(tiny)


def test_tiny_volume_is_invalid():
    s = Structure(Lattice([[1, 0, 0], [0, 1, 0], [0, 0, 0.05]]), ["H"], [[0, 0, 0]])
    assert not M.structure_valid(s)
    assert M.structure_valid(rocksalt())


def test_smact_composition_validity():
    assert M.composition_valid(Composition("NaCl"))
    assert M.composition_valid(Composition("Bi2Se3"))
    assert not M.composition_valid(Composition("ArCl2"))  # SMACT gives Ar no oxidation states (None): invalid, not a crash
    assert M.composition_valid(Composition("BaTiO3"))
    assert not M.composition_valid(Composition("NaCl2"))      # no charge-neutral oxidation states
    assert M.composition_valid(Composition("Si"))             # single element
    assert M.composition_valid(Composition("Fe3Al"))          # all-metal alloy


# ---------------------------------------------------------------- uniqueness / novelty
def test_two_identical_crystals_give_uniqueness_one_half():
    assert M.uniqueness([rocksalt(), rocksalt()]) == pytest.approx(0.5)
    # the same crystal rotated, translated and with a scaled cell is still the same crystal
    s2 = rocksalt(5.70)
    s2.translate_sites(range(len(s2)), [0.1, 0.2, 0.3])
    assert M.uniqueness([rocksalt(), s2, cscl()]) == pytest.approx(2 / 3)
    labels = M.unique_labels([rocksalt(), cscl(), s2])
    assert labels[0] == labels[2] != labels[1]


def test_crystal_from_the_reference_is_not_novel():
    ref = [rocksalt(), silicon()]
    assert M.novelty([rocksalt(5.6)], ref) == 0.0
    assert M.novelty([cscl()], ref) == 1.0
    np.testing.assert_array_equal(M.novel_mask([silicon(), cscl()], ref), [False, True])


# ---------------------------------------------------------------- distributions
def test_wasserstein_distances():
    a = [rocksalt(), silicon()]
    assert M.wdist_density(a, a) == pytest.approx(0.0, abs=1e-12)
    assert M.wdist_num_elems(a, a) == pytest.approx(0.0, abs=1e-12)
    # all one-element vs all two-element crystals: W1 of #elements is exactly 1
    assert M.wdist_num_elems([silicon()], [rocksalt(), cscl()]) == pytest.approx(1.0)
    # compressing a crystal raises its density by the volume ratio
    d0, d1 = M.densities([silicon(5.43), silicon(5.43 / 1.1)])
    assert d1 / d0 == pytest.approx(1.1 ** 3, rel=1e-9)


def test_coverage_on_synthetic_fingerprints():
    rng = np.random.default_rng(0)
    ref_s, ref_c = rng.normal(size=(20, 61)), rng.normal(size=(20, 114))
    r, p = M.coverage(ref_s.copy(), ref_c.copy(), ref_s, ref_c, struct_cutoff=0.4, comp_cutoff=10)
    assert (r, p) == (1.0, 1.0)
    # half of the generated set far away in structure space: precision halves, recall drops to 1/2
    gen_s = ref_s[:10].copy()
    gen_s = np.concatenate([gen_s, gen_s + 100.0])
    gen_c = np.concatenate([ref_c[:10], ref_c[:10]])
    r, p = M.coverage(gen_s, gen_c, ref_s, ref_c, struct_cutoff=0.4, comp_cutoff=10)
    assert r == pytest.approx(0.5) and p == pytest.approx(0.5)
    # invalid crystals count in the precision denominator (CDVAE)
    r, p = M.coverage(ref_s, ref_c, ref_s, ref_c, struct_cutoff=0.4, comp_cutoff=10, num_generated=40)
    assert p == pytest.approx(0.5)


# ---------------------------------------------------------------- CSP
def test_csp_match_rate_and_rmse():
    ref = [rocksalt(), silicon(), cscl()]
    rate, rmse = M.csp_match_rate([rocksalt(), silicon(), cscl()], ref)
    assert rate == 1.0 and rmse == pytest.approx(0.0, abs=1e-6)
    moved = silicon()
    moved.translate_sites([0], [0.02, 0.0, 0.0])                  # one atom off by ~0.1 Å
    rate, rmse = M.csp_match_rate([rocksalt(species=("Cs", "Cl")), moved, None], ref)
    assert rate == pytest.approx(1 / 3)                            # CsCl-type ≠ rock-salt; None = miss
    assert 0.0 < rmse < 0.1
    with pytest.raises(ValueError):
        M.csp_match_rate([rocksalt()], ref)


# ---------------------------------------------------------------- fingerprints
def test_structure_fingerprint_is_invariant_and_sees_coordination():
    s = rocksalt()
    fp = F.structure_fingerprint(s)
    assert fp.shape == (F.STRUCT_FP_DIM,) == (61,)
    # rock salt: every site octahedral, CN 6 weight ≈ 1 and octahedral order parameter ≈ 1
    labels = F.structure_feature_labels()
    assert len(labels) == 61
    assert fp[labels.index("wt CN_6")] > 0.9
    assert fp[labels.index("octahedral CN_6")] > 0.9
    assert fp[labels.index("tetrahedral CN_4")] < 0.1
    rot = s.copy()
    rot.apply_operation(__import__("pymatgen.core.operations", fromlist=["SymmOp"]).SymmOp.from_axis_angle_and_translation(
        [1, 2, 3], 37.0, translation_vec=[0.3, -0.2, 0.1]))
    np.testing.assert_allclose(F.structure_fingerprint(rot), fp, atol=1e-8)
    si = F.structure_fingerprint(silicon())
    assert si[labels.index("tetrahedral CN_4")] > 0.9
    assert np.linalg.norm(si - fp) > 0.5   # tetrahedral ≠ octahedral


def test_composition_fingerprint_statistics():
    fp = F.composition_fingerprints([Composition("NaCl"), Composition("ClNa"), Composition("Na3Cl")])
    assert fp.shape == (3, F.COMP_FP_DIM)
    np.testing.assert_allclose(fp[0], fp[1])
    table = F.element_table()
    n_stats = len(F.STATS)
    z_col = F.ELEMENT_PROPERTIES.index("Number")
    stats = fp.reshape(3, -1, n_stats)[:, z_col]
    # NaCl: min 11, max 17, range 6, mean 14, avg_dev 3; Na3Cl: mean 12.5, mode 11 (Na most abundant)
    np.testing.assert_allclose(stats[0], [11, 17, 6, 14, 3, 11])
    assert stats[2][3] == pytest.approx(0.75 * 11 + 0.25 * 17)
    assert stats[2][5] == 11
    assert np.all(np.isfinite(table))

"""Quality filters: periodic minimum distance, density, size, SMACT charge balance."""
from __future__ import annotations

import math

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from topodiff.crystal.filters import (StructureFilter, charge_balanced, compositional_validity, density,
                                      min_distance, structural_validity)


def rocksalt(a: float = 5.64) -> Structure:
    return Structure.from_spacegroup(225, Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_min_distance_matches_geometry():
    assert min_distance(rocksalt(5.64)) == pytest.approx(2.82, abs=1e-9)
    cscl = Structure(Lattice.cubic(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert min_distance(cscl) == pytest.approx(math.sqrt(3) / 2 * 4.12, abs=1e-9)
    # the shortest distance crosses the cell boundary (minimum image)
    s = Structure(Lattice.cubic(6.0), ["Na", "Cl"], [[0.02, 0.5, 0.5], [0.97, 0.5, 0.5]])
    assert min_distance(s) == pytest.approx(0.05 * 6.0, abs=1e-9)


def test_density_of_rocksalt():
    # NaCl: 4 formula units of 58.44 g/mol in a 5.64 Å cube → 2.16 g/cm³
    expected = 4 * 58.443 / 6.02214076e23 / (5.64e-8) ** 3
    assert density(rocksalt()) == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("formula, ok", [("NaCl", True), ("Bi2Se3", True), ("HgTe", True), ("Na3Bi", True),
                                         ("Fe2O3", True), ("CdCuN3", True), ("NaCl2", False), ("CaO10", False),
                                         ("NaF2", False), ("CuZn", True), ("Si", True)])
def test_charge_balance(formula, ok):
    assert charge_balanced(formula) is ok


def test_charge_balance_pauling_and_alloys():
    # all-metal compositions are alloys: valid unless alloys are excluded
    assert charge_balanced("Cu3Au") and not charge_balanced("Cu3Au", include_alloys=False)
    assert charge_balanced("NaCl", use_pauling_test=False)
    # gcd reduction: Na2Cl2 behaves as NaCl
    assert charge_balanced({"Na": 2, "Cl": 2})


def test_structure_filter_reasons():
    nacl = rocksalt()
    assert StructureFilter().check(nacl) is None
    assert "atoms" in StructureFilter(max_atoms=4).check(nacl)
    assert "density" in StructureFilter(density_range=(3.0, 10.0)).check(nacl)
    assert "apart" in StructureFilter(min_distance=3.0).check(nacl)
    bad = Structure(Lattice.cubic(5.64), ["Na", "Cl", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]])
    assert "charge" in StructureFilter(charge_balance=True).check(bad)
    mask = StructureFilter(density_range=(1.0, 3.0)).mask([nacl, rocksalt(3.0)])
    assert mask.tolist() == [True, False]


def test_cdvae_validity_vectors():
    ok = rocksalt()
    overlap = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.05, 0, 0]])
    np.testing.assert_array_equal(structural_validity([ok, overlap]), [True, False])
    nacl2 = Structure(Lattice.cubic(5.0), ["Na", "Cl", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5], [0, 0.5, 0.5]])
    np.testing.assert_array_equal(compositional_validity([ok, nacl2]), [True, False])

"""One symmetry analysis per crystal (topodiff.crystal.symmetry), used everywhere a space group is shown."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from topodiff.crystal.symmetry import ANGLE_TOLERANCE, SYMPREC, analyze, symmetrized, weak_indices_in
from topodiff.errors import TopodiffInputError

from helpers import distorted_bi2se3  # noqa: E402

warnings.filterwarnings("ignore")
BI2SE3 = Path(__file__).resolve().parents[1] / "data" / "sk" / "Bi2Se3.cif"
R3M_POINTS = {"Γ", "T", "L", "F", "H₀", "H₂", "S₀", "S₂"}   # seekpath's points for R-3m (hR2), as printed (H_0 → H₀)


def test_project_tolerance_finds_r3m_where_a_tight_one_does_not() -> None:
    s = distorted_bi2se3()
    sym = analyze(s)
    assert (SYMPREC, ANGLE_TOLERANCE) == (0.1, 5.0)
    assert sym is not None and (sym.number, sym.symbol, sym.symprec) == (166, "R-3m", SYMPREC)
    assert analyze(s, symprec=1e-3).number < 166          # the distortion is real
    assert sym.has_inversion


def test_symmetrised_standard_cells_are_exact() -> None:
    sym = analyze(distorted_bi2se3())
    prim, conv = sym.primitive, sym.conventional
    assert len(prim) == 5 and len(conv) == 15             # rhombohedral primitive, hexagonal conventional
    for cell in (prim, conv):                              # exactly symmetric: any tolerance finds R-3m
        assert analyze(cell, symprec=1e-5).number == 166
    assert round(abs(np.linalg.det(sym.primitive_to_conventional))) == 3
    np.testing.assert_allclose(sym.primitive_to_conventional @ prim.lattice.matrix, conv.lattice.matrix, atol=1e-8)
    # to_conventional maps the input cell onto the (unidealised) conventional cell: same volume ratio
    assert abs(np.linalg.det(sym.to_conventional)) == pytest.approx(3.0, abs=1e-6)
    fixed, changed = symmetrized(distorted_bi2se3())
    assert changed and len(fixed) == 5 and analyze(fixed, symprec=1e-5).number == 166


def test_bad_tolerance_is_an_input_error() -> None:
    for bad in (0.0, -0.1, float("nan")):
        with pytest.raises(TopodiffInputError):
            analyze(Structure.from_file(BI2SE3), symprec=bad)


def test_weak_indices_transform_as_a_reciprocal_vector_mod_2() -> None:
    """G = π b3 of a tetragonal cell is (0,0,1) in the conventional cell and (1,0,1) in the sheared
    cell (a1 + a3, a2, a3); the map back gives (0,0,1) again. A supercell's indices cannot be mapped back."""
    C = np.array([[1, 0, -1], [0, 1, 0], [0, 0, 1]])    # conventional rows from the sheared ones
    assert weak_indices_in([1, 0, 1], C) == [0, 0, 1]
    assert weak_indices_in([0, 0, 0], C) == [0, 0, 0]
    assert weak_indices_in([1, 0, 0], np.diag([0.5, 1, 1])) is None
    tet = Structure(Lattice.tetragonal(3.0, 5.0), ["Si"], [[0, 0, 0]])
    sheared = Structure(Lattice(np.array([[1, 0, 1], [0, 1, 0], [0, 0, 1]]) @ tet.lattice.matrix), ["Si"], [[0, 0, 0]])
    sym = analyze(sheared)
    assert sym.number == 123
    assert weak_indices_in([1, 0, 1], sym.to_conventional) == [0, 0, 1]


def test_one_space_group_in_screen_evaluate_judge_index_and_k_path() -> None:
    """The distorted crystal is R-3m wherever topodiff shows a space group, and its band path is R-3m's."""
    from topodiff.crystal.io import space_group
    from topodiff.evaluation.evaluate import _space_group
    from topodiff.evaluation.known import space_group as known_space_group
    from topodiff.judge.features import _symmetry
    from topodiff.physics.interop import crystal_path

    s = distorted_bi2se3()
    assert space_group(s) == (166, "R-3m") and known_space_group(s) == 166
    assert _space_group(s) == {"space_group": 166, "space_group_symbol": "R-3m"}
    assert _symmetry(s)[0] == 166.0
    path = crystal_path(s)
    labels = {label for piece in path.pieces for label, _ in piece}
    assert path.space_group == 166 and labels <= R3M_POINTS and {"T", "L", "F"} <= labels

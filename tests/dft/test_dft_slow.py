"""Textbook crystals through `verify_structure` (slow suite: minutes each on a CPU; needs GPAW)."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("gpaw", reason="GPAW not installed (pip install 'topodiff[dft]' with CC=g++)")

from topodiff.crystal.io import read_structure  # noqa: E402
from topodiff.dft.verify import verify_structure  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "crystals"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]  # minutes each on a busy 2-core CPU


def test_bi2se3_is_a_strong_ti_with_soc_and_trivial_without():
    s = read_structure(DATA / "Bi2Se3.cif")  # 15-atom hexagonal cell -> 5-atom primitive
    row = verify_structure(s, cross_check=False, escalate=False)
    assert row["n_atoms"] == 5 and row["route"] == "parity"
    assert row["z2"] == [1, 0, 0, 0] and row["verdict"] == "strong_ti"
    par = row["parities"]
    assert par["(0,0,0)"] == 1 and sum(v == -1 for v in par.values()) == 7  # band inversion at Γ only
    assert 0.15 < row["gap_direct"] < 0.6
    row0 = verify_structure(s, soc=False, cross_check=False, escalate=False)
    assert row0["z2"] == [0, 0, 0, 0] and row0["verdict"] == "trivial_insulator"
    assert all(v == -1 for v in row0["parities"].values())


def test_gaas_goes_through_the_wcc_route():
    from ase.build import bulk

    from pymatgen.io.ase import AseAtomsAdaptor

    row = verify_structure(AseAtomsAdaptor.get_structure(bulk("GaAs", "zincblende", 5.653)), escalate=False)
    assert row["route"] == "wcc" and row["space_group"] == 216
    assert row["z2"] == [0, 0, 0, 0] and row["verdict"] == "trivial_insulator"
    assert row["gap_direct"] > 0.3


def test_plane_wave_escalation_keeps_the_lcao_result():
    from ase.build import bulk
    from pymatgen.io.ase import AseAtomsAdaptor

    row = verify_structure(AseAtomsAdaptor.get_structure(bulk("Si", "diamond", 5.431)), basis="pw",
                           cross_check=False, k_density=8.0)
    assert row["basis"] == "pw" and row["route"] == "parity"
    assert row["z2"] == row["z2_lcao"] == [0, 0, 0, 0] and row["verdict"] == "trivial_insulator"
    assert abs(row["gap_direct"] - row["gap_direct_lcao"]) < 0.5  # LCAO vs PW: same physics, other basis

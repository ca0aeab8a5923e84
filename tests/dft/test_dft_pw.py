"""Plane-wave check: parities from PW coefficients + PAW corrections agree with the LCAO route (Si)."""
from __future__ import annotations

import pytest

pytest.importorskip("gpaw", reason="GPAW not installed (pip install 'topodiff[dft]' with CC=g++)")

from ase.build import bulk  # noqa: E402
from pymatgen.io.ase import AseAtomsAdaptor  # noqa: E402

from topodiff.dft.pw import pw_check  # noqa: E402
from topodiff.dft.verify import precheck  # noqa: E402


def si_pattern(par: dict[str, int]) -> bool:
    """Si (fcc primitive cell): δ = +1 at Γ and the three X (two 1/2 entries), −1 at the four L
    (one or three 1/2 entries) — what the LCAO route gives (tests/dft/test_dft_lcao.py)."""
    return all(v == (1 if k.count("1/2") in (0, 2) else -1) for k, v in par.items())


def test_pw_parities_of_silicon():
    atoms, inversion, sg = precheck(AseAtomsAdaptor.get_structure(bulk("Si", "diamond", 5.431)))
    assert sg == 227 and inversion is not None
    out = pw_check(atoms, inversion, (4, 4, 4), soc=True, ecut=250,
                   lcao_row={"n_valence": 8, "z2": [0, 0, 0, 0], "gap_direct": 2.6})
    assert out["basis"] == "pw" and out["route"] == "parity"
    assert out["z2"] == [0, 0, 0, 0] and out["verdict"] == "trivial_insulator"
    assert len(out["parities"]) == 8 and si_pattern(out["parities"])
    assert 0.4 < out["gap_indirect"] < out["gap_direct"] < 3.5

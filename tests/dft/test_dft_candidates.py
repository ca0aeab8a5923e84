"""`verify_candidates`: DFT on a pipeline run's top candidates beside Slater-Koster and the judge (slow)."""
from __future__ import annotations

import csv
import json

import pytest

pytest.importorskip("gpaw", reason="GPAW not installed (pip install 'topodiff[dft]' with CC=g++)")

from ase.build import bulk  # noqa: E402
from pymatgen.io.ase import AseAtomsAdaptor  # noqa: E402

from topodiff.crystal.io import write_structures  # noqa: E402
from topodiff.dft.candidates import verify_candidates  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def test_verify_candidates_writes_the_side_by_side_table(tmp_path):
    s = AseAtomsAdaptor.get_structure(bulk("Si", "diamond", 5.431))
    write_structures([s], tmp_path / "relaxed.extxyz")
    cols = ["index", "formula", "source", "valid", "unique", "novel", "e_above_hull", "topo_class", "z2",
            "catalogue_class", "p_topological"]
    with open(tmp_path / "structures.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, cols)
        w.writeheader()
        w.writerow({"index": 0, "formula": "Si", "source": f"{tmp_path / 'relaxed.extxyz'}#0", "valid": True,
                    "unique": True, "novel": False, "e_above_hull": 0.0, "topo_class": "trivial_insulator",
                    "z2": "[0, 0, 0, 0]", "catalogue_class": "trivial", "p_topological": 0.1})
    rows = verify_candidates(tmp_path, 1, opts={"cross_check": False, "escalate": False, "k_density": 8.0}, timeout=900)
    assert len(rows) == 1
    r = rows[0]
    assert r["verdict"] == "trivial_insulator" and r["z2"] == [0, 0, 0, 0]
    assert r["sk_class"] == "trivial_insulator" and r["judge_class"] == "trivial"
    assert (tmp_path / "dft" / r["bands_png"]).stat().st_size > 1000
    table = (tmp_path / "dft" / "comparison.md").read_text()
    assert "| 0 | Si | trivial_insulator | (0;000) |" in table
    assert json.loads((tmp_path / "dft" / "comparison.json").read_text())["candidates"][0]["formula"] == "Si"

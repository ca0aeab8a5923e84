"""``topodiff screen --json`` rows carry both verdicts: the physics one and the learned judge's."""
from __future__ import annotations

import json
from pathlib import Path

from topodiff.crystal.catalogue import CLASSES

DATA = Path(__file__).resolve().parents[1] / "data" / "crystals"


def test_screen_json_rows_hold_the_judging_keys(capsys):
    from topodiff.cli import main

    code = main(["screen", str(DATA / "Bi2Se3.cif"), "--json", "--workers", "1"])
    out, _ = capsys.readouterr()
    assert code == 0
    (row,) = json.loads(out)["structures"]
    assert row["topo_class"] == "strong_ti" and row["z2"] == [1, 0, 0, 0]  # the physics verdict, unchanged
    assert row["catalogue_class"] in CLASSES and 0.0 <= row["p_topological"] <= 1.0


def test_screen_row_of_an_unreadable_file_has_null_judging_keys(tmp_path, capsys):
    from topodiff.evaluation.screen import screen_path

    (tmp_path / "a.cif").write_text("not a cif")
    rows = screen_path(tmp_path / "a.cif", workers=1)
    assert rows[0]["topo_class"] is None and rows[0]["catalogue_class"] is None
    assert rows[0]["p_topological"] is None and rows[0]["judge_note"]

"""The HTML report: self-contained, robust to bad inputs, candidates ranked as documented."""
from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from topodiff.evaluation.evaluate import evaluate_path
from topodiff.evaluation.report import build_report, rank_candidates, read_rows

warnings.filterwarnings("ignore")

FCC = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])


def nacl() -> Structure:
    return Structure(Lattice.cubic(5.64), ["Na"] * 4 + ["Cl"] * 4, np.concatenate([FCC, FCC + [0.5, 0, 0]]) % 1.0)


def si() -> Structure:
    return Structure(Lattice.cubic(5.43), ["Si"] * 8, np.concatenate([FCC, FCC + 0.25]))


def _write_inputs(d):
    d.mkdir()
    nacl().to(filename=str(d / "a_nacl.cif"))
    si().to(filename=str(d / "b_si.cif"))
    Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.05, 0, 0]]).to(filename=str(d / "c_overlap.cif"))
    (d / "d_broken.cif").write_text("data_x\n_this is not a cif\n")


def test_report_is_self_contained_and_lists_problems(tmp_path):
    src = tmp_path / "in"
    _write_inputs(src)
    out = tmp_path / "out"
    summary, rows = evaluate_path(src, out_dir=out, screen=False, progress=False)
    assert summary["num_structures"] == 4 and summary["num_readable"] == 3
    assert summary["structural_validity"] == pytest.approx(0.5)      # overlap + unparseable are invalid
    path, s = build_report(out, top_k=2)
    text = path.read_text()
    # every image is an embedded PNG; nothing is fetched from outside
    srcs = re.findall(r'src="([^"]+)"', text)
    assert len(srcs) >= 5 and all(u.startswith("data:image/png;base64,") for u in srcs)
    assert "http://" not in text and "https://" not in text and "<script" not in text
    assert "d_broken.cif" in text and "overlapping atoms" in text
    assert any("d_broken.cif" in m for m in s["messages"])
    # the table of candidates holds the two valid crystals (NaCl and Si) with band structures
    assert "Top candidates" in text and text.count('alt="bands') == 2


def test_directory_of_structures_is_evaluated_first(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    si().to(filename=str(src / "si.cif"))
    path, s = build_report(src, top_k=0)
    assert path.exists() and (src / "metrics.json").exists()
    assert s["num_structures"] == 1 and s["structural_validity"] == 1.0
    rows = read_rows(src / "structures.csv")
    assert rows[0]["formula"] == "Si" and rows[0]["valid"] is True and rows[0]["space_group"] == 227


def test_empty_directory_still_gives_a_report(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    path, s = build_report(d)
    assert path.exists()
    assert any("no" in m and ("structure" in m or "CIF" in m) for m in s["messages"])


def test_rank_candidates_prefers_target_then_stability():
    rows = [
        {"index": 0, "valid": True, "unique": True, "topo_class": "metal", "e_above_hull": 0.0},
        {"index": 1, "valid": True, "unique": True, "topo_class": "strong_ti", "e_above_hull": 0.3},
        {"index": 2, "valid": True, "unique": True, "topo_class": "strong_ti", "e_above_hull": 0.05},
        {"index": 3, "valid": False, "unique": True, "topo_class": "strong_ti", "e_above_hull": -1.0},
        {"index": 4, "valid": True, "unique": True, "topo_class": "trivial_insulator", "e_above_hull": -0.1},
        {"index": 5, "valid": True, "unique": True, "topo_class": "strong_ti", "e_above_hull": None,
         "energy_final": -9.0},                                 # stability unknown: after the known ones
    ]
    assert [r["index"] for r in rank_candidates(rows, None, 4)] == [2, 1, 5, 4]
    assert [r["index"] for r in rank_candidates(rows, "trivial_insulator", 2)] == [4, 0]


def test_report_cli(tmp_path, capsys):
    from topodiff.cli import main

    src = tmp_path / "in"
    _write_inputs(src)
    assert main(["evaluate", str(src), "--no-screen", "--json", "--out", str(tmp_path / "o")]) == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("num_structures", "structural_validity", "compositional_validity", "uniqueness", "topo_class_counts"):
        assert key in data
    assert main(["report", str(tmp_path / "o"), "--top", "1"]) == 0
    out = capsys.readouterr().out
    assert "report:" in out and (tmp_path / "o" / "report.html").exists()
    assert main(["report", str(tmp_path / "missing")]) == 2

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
    out = tmp_path / "in_eval"                      # evaluated beside the input, never into it
    assert sorted(p.name for p in src.iterdir()) == ["si.cif"]
    assert path == out / "report.html" and path.exists() and (out / "metrics.json").exists()
    assert s["num_structures"] == 1 and s["structural_validity"] == 1.0
    rows = read_rows(out / "structures.csv")
    assert rows[0]["formula"] == "Si" and rows[0]["valid"] is True and rows[0]["space_group"] == 227


def test_empty_directory_still_gives_a_report(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    path, s = build_report(d)
    assert path.exists()
    assert any("no" in m and ("structure" in m or "CIF" in m) for m in s["messages"])


def test_rank_candidates_puts_novel_stable_topological_first():
    base = {"valid": True, "unique": True, "novel": True}
    rows = [
        {**base, "index": 0, "topo_class": "metal", "catalogue_class": "trivial", "e_above_hull": 0.0},
        {**base, "index": 1, "topo_class": "strong_ti", "catalogue_class": "ti", "p_topological": 0.9,
         "e_above_hull": 0.3},                                   # topological but unstable
        {**base, "index": 2, "topo_class": "metal", "catalogue_class": "tci", "p_topological": 0.7,
         "e_above_hull": 0.05},                                  # novel ∧ stable ∧ topological (learned)
        {**base, "index": 3, "valid": False, "catalogue_class": "ti", "e_above_hull": -1.0},   # invalid: out
        {**base, "index": 4, "novel": False, "catalogue_class": "ti", "p_topological": 0.95,
         "e_above_hull": 0.0},                                   # known compound: not a discovery
        {**base, "index": 5, "topo_class": "strong_ti", "catalogue_class": None, "e_above_hull": None},
        {**base, "index": 6, "unique": False, "catalogue_class": "ti", "e_above_hull": 0.0},  # duplicate: out
        {**base, "index": 7, "topo_class": "strong_ti", "catalogue_class": None, "e_above_hull": 0.02},
    ]
    # 2 and 7 (no learned verdict: the SK screen's strong_ti counts) are discoveries; then topological
    # ones by p_topological, unknown stability after known; the trivial one last
    assert [r["index"] for r in rank_candidates(rows, None, 10)] == [2, 7, 4, 1, 5, 0]
    assert [r["index"] for r in rank_candidates(rows, "trivial", 3)] == [2, 7, 0]


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


def test_report_finds_the_crystals_from_the_run_directory_not_the_cwd(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    _write_inputs(work / "in")
    evaluate_path("in", out_dir="out", screen=False, progress=False)      # relative paths
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path, s = build_report(work / "out", top_k=2)
    assert not any("structure not found" in m for m in s["messages"])
    assert path.read_text().count('alt="bands') == 2


def test_report_row_of_a_relaxed_crystal_shows_its_space_group_gaps_and_z2_basis(tmp_path):
    """Bi2Se3 0.01 Å off R-3m, relaxed (force-free stand-in for CHGNet) → kept as its symmetrised R-3m
    cell: the row, the band path and the screen agree on 166; both SK gaps and the Z2 basis are shown."""
    from helpers import distorted_bi2se3, flat_calculator

    from topodiff.evaluation.relax import relax_structures
    from topodiff.evaluation.report_bands import band_png

    s = distorted_bi2se3()
    src = tmp_path / "in"
    src.mkdir()
    s.to(filename=str(src / "bi2se3.cif"))
    relax = lambda structs, **kw: relax_structures(structs, calculator=flat_calculator(), progress=False)  # noqa: E731
    summary, rows = evaluate_path(src, out_dir=tmp_path / "out", relax=True, relax_fn=relax, progress=False, judge=False)
    r = read_rows(tmp_path / "out" / "structures.csv")[0]
    assert (r["space_group"], r["space_group_symbol"], r["space_group_unrelaxed"]) == (166, "R-3m", 166)
    assert r["topo_class"] == "strong_ti" and r["z2_conventional"] == [1, 0, 0, 0] and r["z2_basis"] == "standard_primitive"
    assert 0 < r["gap"] <= r["direct_gap"]
    path, s_out = build_report(tmp_path / "out", top_k=1)
    text = path.read_text()
    assert "166 R-3m" in text and "(1;000) conv." in text and "SK gap direct (eV)" in text
    assert f"{r['gap']:.4g}" in text and f"{r['direct_gap']:.4g}" in text
    assert not any("band path" in m for m in s_out["messages"])   # the path is R-3m's
    img, err = band_png(s, "x", space_group=2)                    # a wrong row SG would be reported
    assert img is not None and err == "band path is that of space group 166, not 2"


def test_a_candidate_below_the_dft_hull_is_marked_for_dft_confirmation():
    from topodiff.evaluation.hull import BELOW_HULL_NOTE
    from topodiff.evaluation.report import _hull_cell
    from topodiff.evaluation.summary import candidate_lines

    below = {"formula": "La3Ga11", "e_above_hull": -0.065, "hull_note": BELOW_HULL_NOTE, "novel": True}
    above = {"formula": "LaGa2", "e_above_hull": 0.02, "hull_note": None, "novel": True}
    assert "DFT to confirm" in _hull_cell(below) and "CHGNet" in _hull_cell(below)
    assert _hull_cell(above) == "0.02" and _hull_cell({"e_above_hull": None, "hull_note": None}) == "unknown"
    lines = candidate_lines([below, above])
    assert "DFT to confirm" in lines[0] and "DFT to confirm" not in lines[1]

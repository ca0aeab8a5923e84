"""The discovery benchmark (benchmarks/bench_discovery.py): the hit rule, the per-arm figures and a tiny
end-to-end run (unconditional samples and ion substitution, CHGNet relaxation, DFT hull, known-crystal
index, both topology verdicts) that resumes and refuses a different run in its directory."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from helpers import load_benchmark
from pymatgen.core import Lattice, Structure

from topodiff.evaluation.judging import discovery_hit
from topodiff.evaluation.summary import summary_lines


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_discovery")


HIT = {"formula": "X2Y", "formula_novel": True, "e_above_hull": 0.05, "catalogue_class": "ti"}


@pytest.mark.parametrize("change, hit", [
    ({}, True),
    ({"catalogue_class": "tci"}, True),
    ({"e_above_hull": 0.1}, True),                  # the bound is inclusive
    ({"e_above_hull": -0.2}, True),                 # below the DFT hull
    ({"e_above_hull": 0.1001}, False),
    ({"e_above_hull": None}, False),                # stability unknown is not stable
    ({"e_above_hull": float("nan")}, False),
    ({"formula_novel": None}, False),               # novelty unknown is not novel
    ({"formula_novel": False}, False),
    ({"catalogue_class": "semimetal"}, False),      # topological, but not a ti/tci hit
    ({"catalogue_class": "trivial"}, False),
    ({"catalogue_class": None}, False),
])
def test_hit_rule(change, hit):
    assert discovery_hit({**HIT, **change}) is hit


def test_arm_summary_counts_hits_distinct_formulas_and_cpu(bench):
    rows = [dict(HIT, formula="A", index=0), dict(HIT, formula="A", index=1), dict(HIT, formula="B", index=2),
            dict(HIT, formula="C", index=3, catalogue_class="trivial"), dict(HIT, formula="D", index=4, e_above_hull=None)]
    s = bench.arm_summary("x", rows, {"cpu_s": 30.0}, 90.0, 10, 0)
    assert s["num_hits"] == 3 and s["distinct_hit_formulas"] == 2
    assert s["hits_per_100"] == pytest.approx(30.0)
    assert s["cpu_minutes"] == pytest.approx(2.0) and s["hits_per_cpu_minute"] == pytest.approx(1.5)
    assert s["funnel"]["stable"] == 4 and s["funnel"]["learned_ti_tci"] == 4
    assert [h["index"] for h in s["hits"]] == [0, 1, 2]
    assert s["e_above_hull"] == [0.05] * 4


def test_judged_prefix_counts_whole_chunks_without_a_gap(bench):
    chunk = {"rows": [{}] * 4}
    assert bench.judged_prefix({}, 10) == 0
    assert bench.judged_prefix({0: chunk, 1: chunk, 3: chunk}, 16) == 8      # chunk 2 missing
    assert bench.judged_prefix({0: chunk, 1: chunk, 2: {"rows": [{}] * 2}}, 10) == 10


def test_judge_chunk_reads_back_a_chunk_another_run_wrote(bench, tmp_path):
    done = tmp_path / "0000.json"
    done.write_text(json.dumps({"rows": [{"index": 0}], "cpu_s": 1.0}))
    res = bench.judge_chunk((str(tmp_path / "missing.extxyz"), [0], 10, str(done)))
    assert res == {"rows": [{"index": 0}], "cpu_s": 1.0, "reused": True}


def test_evaluation_summary_shows_hits():
    lines = summary_lines({"discovery": {"num_sun_topological_learned": 1, "num_sun_topological_slater_koster": 0,
                                         "num_sun_topological_both": 0, "num_hits": 4}})
    assert any(line.startswith("discovery hits") and " 4 " in line for line in lines)


def test_report_ranks_hits_first():
    """A formula-novel ti beats a S.U.N. semimetal with a higher p_topological (both ✔, only one ★)."""
    from topodiff.evaluation.report import is_discovery, rank_candidates

    base = {"valid": True, "unique": True, "novel": True, "e_above_hull": 0.0}
    rows = [{**base, "index": 0, "formula_novel": False, "catalogue_class": "semimetal", "p_topological": 0.99},
            {**base, "index": 1, "formula_novel": True, "catalogue_class": "ti", "p_topological": 0.6}]
    assert all(is_discovery(r) for r in rows) and [discovery_hit(r) for r in rows] == [False, True]
    assert [r["index"] for r in rank_candidates(rows, None, 2)] == [1, 0]


def _templates(path: Path) -> Path:
    pbte = Structure.from_spacegroup(225, Lattice.cubic(6.46), ["Pb", "Te"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    tini = Structure(Lattice.cubic(3.0), ["Ti", "Ni"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    pd.DataFrame({"material_id": ["t-1", "t-2"], "cif": [pbte.to(fmt="cif"), tini.to(fmt="cif")],
                  "catalogue_class": ["ti", "ti"], "catalogue_source": ["catalogue", "catalogue"]}).to_csv(path, index=False)
    return path


def test_end_to_end_resumes_and_refuses_another_run(bench, tmp_path, capsys):
    out = tmp_path / "disc"
    argv = ["--out", str(out), "--num", "2", "--chunk", "1", "--arms", "unconditional,substitution",
            "--templates", str(_templates(tmp_path / "train.csv")), "--hits-json", str(tmp_path / "all_hits.json")]
    assert bench.main(argv) == 0
    doc = json.loads((out / "discovery.json").read_text())
    assert set(doc["arms"]) == {"unconditional", "substitution"}
    for name, arm in doc["arms"].items():
        assert arm["num_candidates"] == arm["num_judged"] == arm["num_made"] == 2
        assert arm["cpu_minutes"] > arm["cpu_minutes_candidates"] > 0
        assert arm["num_hits"] == len(arm["hits"]) and 0 <= arm["hits_per_100"] <= 100
        assert math.isclose(arm["hits_per_100"], 50.0 * arm["num_hits"])
        chunks = sorted((out / name / "chunks").glob("*.json"))
        rows = [r for f in chunks for r in json.loads(f.read_text())["rows"]]
        assert [r["index"] for r in rows] == [0, 1]
        assert all(r["relax_error"] or r["relaxed_cif"] for r in rows)          # relaxed with CHGNet
        assert all(r["e_above_hull"] is not None or r["hull_note"] for r in rows)
        assert all("formula_novel" in r and "catalogue_class" in r and "topo_class" in r for r in rows)
    sub = json.loads((out / "substitution" / "candidates.json").read_text())["info"]
    assert sub["templates"] == 2 and "train.csv" in sub["template_source"]
    for f in ("discovery.md", "discovery.png", "hits.json"):
        assert (out / f).stat().st_size > 0
    assert "| substitution | 2 |" in (out / "discovery.md").read_text()
    assert "catalogue_class=ti" in json.loads((tmp_path / "all_hits.json").read_text())["targets"]
    capsys.readouterr()

    assert bench.main(argv) == 0                      # resumed: nothing recomputed
    err = capsys.readouterr().err
    assert "judging 0 chunks of 1 (4 done before)" in err and "candidates:" not in err
    assert json.loads((out / "discovery.json").read_text())["arms"]["substitution"]["hits"] == \
        doc["arms"]["substitution"]["hits"]

    assert bench.main([*argv, "--seed", "1"]) == 2    # another run: refused, one error line
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    others = [["--sampler", "predictor_noise_scale=0.7"], ["--sampler", "predictor_noise_scale=-1"],
              ["--prescreen", "2"], ["--prescreen", "0"]]     # other / invalid sampler settings and pre-screens
    for other in others:
        assert bench.main([*argv, *other]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ")

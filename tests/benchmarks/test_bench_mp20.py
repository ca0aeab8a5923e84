"""``benchmarks/bench_mp20.py`` scores known crystals as a generated set: novelty against the
training file, missing crystals as invalid, CSP misses for compositions left unwritten."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import load_benchmark

from topodiff.crystal.writers import write_structures

@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_mp20")


@pytest.fixture
def mp20(shared_data: Path) -> Path:
    d = shared_data / "mp_20"
    if not (d / "train.csv.gz").is_file():
        pytest.skip(f"MP-20 subset not found at {d}")
    return d


@pytest.fixture
def sets(bench, mp20: Path):
    return bench.read_reference(mp20 / "train.csv.gz", 60), bench.read_reference(mp20 / "test.csv.gz", 40)


def test_denovo_novelty_against_train_and_missing_as_invalid(bench, sets, tmp_path: Path) -> None:
    train, test = sets
    gen = tmp_path / "gen"
    gen.mkdir()
    write_structures(train[:4] + test[:4], gen / "structures.extxyz")
    r = bench.score_denovo(gen, test, train, max_cov_reference=8)
    assert r["num_structures"] == 8
    assert r["structural_validity"] == 1.0
    assert r["novelty_vs_train"] == 0.5           # the 4 training crystals are found, the 4 test ones not
    assert r["novelty_vs_test"] == 0.5
    assert r["uniqueness"] == 1.0
    assert r["wdist_density"] >= 0 and np.isfinite(r["wdist_num_elems"])
    (gen / "metadata.json").write_text(json.dumps({"num_requested": 10}))
    r2 = bench.score_denovo(gen, test, train, max_cov_reference=8)
    assert r2["num_structures"] == 10 and r2["num_not_written"] == 2
    assert r2["structural_validity"] == pytest.approx(0.8)
    assert r2["novelty_vs_train"] == pytest.approx(0.4)


def test_csp_exact_answers_match_and_unwritten_ones_miss(bench, sets, tmp_path: Path) -> None:
    _, test = sets
    out = tmp_path / "csp"
    out.mkdir()
    keep = [0, 1, 2, 3, 5, 7]                      # rows 4 and 6 not written
    write_structures([test[i] for i in keep], out / "structures.extxyz",
                     info=[{"index": i, "sample": 0} for i in keep])
    (out / "metadata.json").write_text(json.dumps({"num_compositions": 8, "samples": 1}))
    r = bench.score_csp(out, test[:8])
    assert r["csp_num_compositions"] == 8 and r["csp_matched"] == 6
    assert r["csp_match_rate"] == pytest.approx(0.75)
    assert r["csp_rmse"] < 1e-3


def test_table_marks_unmeasured_cells(bench) -> None:
    md = bench.table({**bench.PUBLISHED, "mine": {"csp_match_rate": 0.5, "csp_rmse": 0.1, "csp_num_compositions": 4}})
    lines = md.splitlines()
    assert len(lines) == 2 + len(bench.PUBLISHED) + 1
    assert "| mine | — |" in md and "50.00 %" in lines[-1]
    assert "35.02" not in md and "0.350" in md     # DiffCSP published d_ρ


def test_a_generator_that_wrote_nothing_scores_zero_not_a_traceback(bench, sets, tmp_path: Path) -> None:
    train, test = sets
    for d, meta in (("gen", {"num_requested": 5}), ("csp", {"num_compositions": 6})):
        (tmp_path / d).mkdir()
        write_structures([], tmp_path / d / "structures.extxyz")
        (tmp_path / d / "metadata.json").write_text(json.dumps(meta))
    r = bench.score_denovo(tmp_path / "gen", test, train, max_cov_reference=8)
    assert r["num_structures"] == 5 and r["structural_validity"] == 0.0 and r["wdist_num_elems"] is None
    c = bench.score_csp(tmp_path / "csp", test[:8])
    assert c["csp_num_compositions"] == 6 and c["csp_matched"] == 0 and c["csp_rmse"] is None

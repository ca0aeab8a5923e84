"""benchmarks/bench_dft_candidates.py: agreement counts and the table (no DFT run)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import load_benchmark

@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_dft_candidates")


ROWS = [
    {"source": "a#0", "formula": "Sb", "verdict": "strong_ti", "k_mesh": [4, 4, 4], "z2": [1, 1, 1, 1],
     "gap_direct": 0.26, "gap_indirect": 0.26, "route": "parity", "basis": "lcao", "sk_class": "strong_ti",
     "sk_z2": [1, 1, 1, 1], "judge_class": "ti", "p_topological": 0.8, "seconds": 20.0, "cpu_seconds": 11.0},
    {"source": "a#1", "formula": "CdTe", "verdict": "trivial_insulator", "k_mesh": [4, 4, 4], "z2": [0, 0, 0, 0],
     "gap_direct": 0.28, "gap_indirect": 0.28, "route": "wcc", "basis": "lcao", "sk_class": "weak_ti",
     "judge_class": "trivial", "p_topological": 0.2},
    {"source": "a#2", "formula": "Bi", "verdict": "metal", "k_mesh": None, "n_valence": 15, "sk_class": "metal",
     "judge_class": "semimetal"},
    {"source": "a#3", "formula": "HgSe", "verdict": "inconclusive", "k_mesh": [6, 6, 6], "sk_class": "trivial_insulator"},
    {"source": "a#4", "formula": "MnO", "verdict": None, "error": "magnetic element(s) Mn", "sk_class": "metal"},
]


def test_agreement_counts_only_what_dft_decided(bench):
    a = bench.agreement(ROWS)
    assert (a["rows"], a["verified"], a["decided"], a["decided_scf"]) == (5, 4, 3, 2)
    assert a["sk_agree"] == 2 and a["sk_pairs"]["trivial->topological"] == 1 and a["sk_exact"] == 2
    assert a["judge_agree"] == 3 and a["judge_agree_scf"] == 2
    assert a["dft_verdicts"] == {"strong_ti": 1, "trivial_insulator": 1, "metal": 1, "inconclusive": 1}


def test_table_states_refusals_and_metals_without_scf(bench, tmp_path):
    (tmp_path / "rows.json").write_text(json.dumps({"rows": ROWS}))
    bench.main(["--out", str(tmp_path), "--render"])
    text = (tmp_path / "table.md").read_text()
    assert "| a#0 | Sb |" in text and "strong_ti | (1;111) | 0.26 / 0.26 | parity / lcao | strong_ti (1;111) | ti (0.80)" in text
    assert "metal (odd electron count 15, no SCF)" in text
    assert "not verified: magnetic element(s) Mn" in text
    assert json.loads(text.strip().splitlines()[-1])["decided"] == 3

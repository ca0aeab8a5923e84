"""``topodiff dataset build|stats|synth`` through the real CLI entry point."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from topodiff.crystal.filters import StructureFilter
from topodiff.crystal.io import read_structures

DATA = Path(__file__).resolve().parents[1] / "data" / "crystals"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    from topodiff.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def small_csv(tmp_path: Path) -> Path:
    path = tmp_path / "perov_small.csv"
    shutil.copy(DATA / "perov_small.csv", path)
    return path


def test_build_json_then_up_to_date(capsys, small_csv):
    code, out, err = run(capsys, "dataset", "build", str(small_csv), "--json")
    assert code == 0
    info = json.loads(out)  # exactly one JSON object on stdout
    assert info["num_structures"] == 5 and info["skipped"] == 1 and info["rebuilt"] is True
    assert Path(info["cache_dir"]).is_dir()
    code, out, _ = run(capsys, "dataset", "build", str(small_csv), "--json")
    assert code == 0 and json.loads(out)["rebuilt"] is False
    code, out, _ = run(capsys, "dataset", "build", str(small_csv), "--force", "--json")
    assert code == 0 and json.loads(out)["rebuilt"] is True


@pytest.mark.parametrize("args, message", [
    (["dataset", "build", "/nonexistent/x.csv"], "no such"),
    (["dataset", "build", str(DATA / "bad_empty.cif")], "no usable structures"),
    (["dataset", "synth", "--num", "2", "--out", "x.txt"], ".csv or .extxyz"),
    (["dataset", "synth", "--num", "2", "--out", "x.csv", "--elements", "Bi,Qq"], "unknown element"),
    (["dataset", "stats", str(DATA / "bad_overlap.cif"), "--no-cache"], "no usable structures"),
    # limits up front (issue #17): finite, in range, capped; exit 2 before any work
    (["dataset", "synth", "--num", "1000000000", "--out", "x.csv"], "--num must be 1..100000"),
    (["dataset", "synth", "--num", "1e9", "--out", "x.csv"], "valid integer"),
    (["dataset", "synth", "--num", "2", "--out", "x.csv", "--prototype-fraction", "nan"], "finite"),
    (["dataset", "synth", "--num", "2", "--out", "x.csv", "--min-distance", "inf"], "finite"),
    (["dataset", "synth", "--num", "2", "--out", "x.csv", "--max-atoms", "100000"], "--max-atoms must be"),
    (["dataset", "synth", "--num", "2", "--out", "x.csv", "--seed", "-3"], "--seed must be"),
    (["dataset", "synth", "--num", "2", "--out", "x.csv", "--workers", "64"], "--workers must be"),
    (["dataset", "stats", str(DATA / "perov_small.csv"), "--symprec", "nan"], "--symprec must be a finite"),
    (["dataset", "stats", str(DATA / "perov_small.csv"), "--symprec", "0"], "--symprec must lie in"),
    (["dataset", "build", str(DATA / "perov_small.csv"), "--workers", "0"], "--workers must be"),
    (["dataset", "label", str(DATA / "perov_small.csv"), "--out", "o.csv", "--gap-tol", "nan"], "finite"),
    (["dataset", "label", str(DATA / "perov_small.csv"), "--out", "o.csv", "--chunk", "0"], "--chunk must be"),
    (["predictor", "train", "--train", "t.csv", "--val", "v.csv", "--out", "p.ckpt", "--steps", "0"], "--steps must be"),
    (["predictor", "train", "--train", "t.csv", "--val", "v.csv", "--out", "p.ckpt", "--batch-size", "100000"],
     "--batch-size must be"),
])
def test_bad_input_exit_2_one_line(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert "Traceback" not in err


def test_stats_json_and_png(capsys, small_csv, tmp_path):
    png = tmp_path / "stats.png"
    code, out, _ = run(capsys, "dataset", "stats", str(small_csv), "--json", "--png", str(png))
    assert code == 0
    stats = json.loads(out)
    assert stats["num_structures"] == 5 and stats["skipped"] == 1
    assert sum(stats["elements"].values()) == stats["num_atoms_total"] == 25
    assert sum(stats["space_groups"].values()) == 5
    assert stats["atoms_per_structure"]["histogram"] == {"5": 5}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_synth_20_csv_passes_filters(capsys, tmp_path):
    out_csv = tmp_path / "syn.csv"
    code, out, err = run(capsys, "dataset", "synth", "--num", "20", "--out", str(out_csv), "--seed", "7", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["num"] == 20
    records = read_structures(out_csv)
    assert len(records) == 20 and all(r.ok for r in records)
    filt = StructureFilter(min_distance=1.0, density_range=(0.5, 25.0))
    assert all(filt.check(r.structure) is None for r in records)
    assert [r.labels["material_id"] for r in records] == [f"synth-7-{i}" for i in range(20)]
    assert all(1 <= r.properties["space_group_number"] <= 230 for r in records)


def test_synth_extxyz_with_options(capsys, tmp_path):
    out_x = tmp_path / "syn.extxyz"
    code, out, err = run(capsys, "dataset", "synth", "--num", "3", "--out", str(out_x), "--elements", "Sn,Te",
                         "--space-groups", "225,221", "--charge-balance", "--max-atoms", "8")
    assert code == 0, err
    records = read_structures(out_x)
    assert len(records) == 3 and all(r.ok for r in records)
    assert all({e.symbol for e in r.structure.composition} <= {"Sn", "Te"} for r in records)
    assert "wrote 3 crystals" in out


def test_synth_prototypes_json(capsys, tmp_path):
    out_csv = tmp_path / "proto.csv"
    code, out, err = run(capsys, "dataset", "synth", "--num", "4", "--out", str(out_csv), "--prototype-fraction", "1",
                         "--prototypes", "rocksalt,zincblende", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert set(summary["prototypes"]) <= {"rocksalt", "zincblende"} and sum(summary["prototypes"].values()) == 4
    records = read_structures(out_csv)
    assert {r.labels["prototype"] for r in records} == set(summary["prototypes"])
    assert {int(r.properties["space_group_number"]) for r in records} <= {216, 225}


def test_stats_on_a_read_only_input_dir_writes_nothing_there(capsys, small_csv, tmp_path):
    """Issue #17: `dataset stats` (like finetune and predictor train, through the same dataset cache)
    wrote its cache beside the input; now the cache is in the user cache, keyed by content."""
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    shutil.copy(small_csv, ro / "data.csv")
    os.chmod(ro, 0o555)
    try:
        code, out, err = run(capsys, "dataset", "stats", str(ro / "data.csv"), "--json")
        assert code == 0, err
        assert json.loads(out)["num_structures"] == 5
        assert sorted(p.name for p in ro.iterdir()) == ["data.csv"]
        assert any((Path(os.environ["TOPODIFF_CACHE"]) / "datasets").iterdir())
    finally:
        os.chmod(ro, 0o755)

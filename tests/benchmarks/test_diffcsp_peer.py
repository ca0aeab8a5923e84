"""``benchmarks/peers/diffcsp_peer.py``: bad input is one ``error:`` line (exit 2); with a DiffCSP
checkout present (``DIFFCSP_ROOT``, default /work/peers/DiffCSP, deps on ``DIFFCSP_PATH``) it trains
to a CPU budget, resumes without training further, and writes an extxyz that topodiff reads."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DRIVER = Path(__file__).resolve().parents[2] / "benchmarks" / "peers" / "diffcsp_peer.py"
DIFFCSP_ROOT = Path(os.environ.get("DIFFCSP_ROOT", "/work/peers/DiffCSP"))
DIFFCSP_PATH = os.environ.get("DIFFCSP_PATH", "/work/peers/shim:/work/peers/site")


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DRIVER), *args], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **env})


def test_bad_input_is_one_error_line(tmp_path: Path) -> None:
    r = _run(["--diffcsp-root", str(tmp_path), "--mode", "gen", "--train", str(tmp_path / "none.csv"),
              "--out", str(tmp_path / "o"), "--cpu-seconds", "1"])
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [f"error: file not found: {tmp_path / 'none.csv'}"]
    csv = tmp_path / "t.csv"
    csv.write_text("material_id,cif\n")
    r = _run(["--diffcsp-root", str(tmp_path), "--mode", "gen", "--train", str(csv), "--out", str(tmp_path / "o"),
              "--cpu-seconds", "1"])
    assert r.returncode == 2 and r.stderr.strip().startswith("error: --diffcsp-root") and "Traceback" not in r.stderr


@pytest.mark.slow
def test_train_resume_sample_csp(shared_data: Path, tmp_path: Path) -> None:
    if not (DIFFCSP_ROOT / "diffcsp" / "pl_modules" / "diffusion.py").is_file():
        pytest.skip(f"no DiffCSP checkout at {DIFFCSP_ROOT} (set DIFFCSP_ROOT)")
    import pandas as pd

    from topodiff.evaluation.evaluate import load_entries

    rows = pd.read_csv(shared_data / "mp_20" / "train.csv.gz", nrows=8)
    rows = rows[rows["cif"].str.count("\n") < 40]            # small cells: a fast test
    train = tmp_path / "train.csv"
    rows.to_csv(train, index=False)
    args = ["--diffcsp-root", str(DIFFCSP_ROOT), "--mode", "csp", "--train", str(train), "--out",
            str(tmp_path / "o"), "--cpu-seconds", "1", "--batch-size", "4", "--num", "2", "--csp-input", str(train),
            "--resume"]
    r = _run(args, PYTHONPATH=DIFFCSP_PATH)
    assert r.returncode == 0, r.stderr[-2000:]
    first = json.loads(r.stdout)
    assert first["train_progress"]["step"] >= 1 and first["train_progress"]["cpu_s"] >= 1
    r = _run(args + ["--no-sample"], PYTHONPATH=DIFFCSP_PATH)
    assert r.returncode == 0
    assert json.loads(r.stdout)["train_progress"]["step"] == first["train_progress"]["step"]   # budget spent
    meta = json.loads((tmp_path / "o" / "samples" / "metadata.json").read_text())
    assert meta["num_compositions"] == 2 and meta["steps"] == 1000
    entries = load_entries(tmp_path / "o" / "samples")
    assert [e.labels["index"] for e in entries] == sorted(e.labels["index"] for e in entries)
    assert len(entries) + len(meta["not_constructible"]) == 2


def test_cached_training_arrays_are_split_reading_each_member_once() -> None:
    """The training cache is an ``.npz`` whose ``z[key]`` decompresses the whole member on every
    access; splitting 10,000 crystals by indexing it per crystal used 24 GB and never finished."""
    import importlib.util

    import numpy as np

    spec = importlib.util.spec_from_file_location("diffcsp_peer", DRIVER)
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    arrays = {"num_atoms": np.array([2, 1]), "frac_coords": np.arange(9.0).reshape(3, 3),
              "atom_types": np.array([8, 8, 26]), "lengths": np.ones((2, 3)), "angles": np.full((2, 3), 90.0)}
    reads: dict[str, int] = {}

    class CountingNpz(dict):
        def __getitem__(self, key: str) -> np.ndarray:
            reads[key] = reads.get(key, 0) + 1
            return super().__getitem__(key)

    crystals = peer._split(CountingNpz(arrays))
    assert set(reads.values()) == {1}
    assert [c["atom_types"].tolist() for c in crystals] == [[8, 8], [26]]
    assert crystals[1]["frac_coords"].tolist() == [[6.0, 7.0, 8.0]] and crystals[1]["angles"].tolist() == [90.0] * 3

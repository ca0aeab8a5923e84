"""Atomic checkpoint writes and choosing the checkpoint to resume from."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings

import pytest
import torch

from topodiff.training.checkpoint_files import (atomic_torch_save, find_resume_checkpoint, read_checkpoint,
                                                remove_stale_temporaries, step_checkpoint_name)


def _ckpt(step: int, size: int = 10) -> dict:
    return {"global_step": step, "state_dict": {"model.w": torch.full((size,), float(step))},
            "hyper_parameters": {"config": {"trainer": {"max_steps": 100}}}, "ema_state_dict": {}}


def _write_run(directory, steps):
    for s in steps:
        atomic_torch_save(_ckpt(s), directory / step_checkpoint_name(s))


def test_newest_valid_checkpoint_is_chosen(tmp_path):
    _write_run(tmp_path, [10, 20, 30])
    path, step = find_resume_checkpoint(tmp_path)
    assert step == 30 and path.name == "step=000030.ckpt"
    assert find_resume_checkpoint(tmp_path / "nothing") is None


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "foreign"])
def test_corrupt_newest_checkpoint_is_skipped_with_warning(tmp_path, damage):
    _write_run(tmp_path, [10, 20, 30])
    newest = tmp_path / "step=000030.ckpt"
    data = newest.read_bytes()
    if damage == "truncate":
        newest.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        newest.write_bytes(b"\x00not a checkpoint" * 10)
    elif damage == "empty":
        newest.write_bytes(b"")
    else:
        torch.save({"something": 1}, newest)
    with pytest.warns(UserWarning, match="skipping checkpoint"):
        path, step = find_resume_checkpoint(tmp_path)
    assert step == 20 and path.name == "step=000020.ckpt"
    assert float(read_checkpoint(path)["state_dict"]["model.w"][0]) == 20.0


def test_last_ckpt_used_when_newer_and_valid(tmp_path):
    _write_run(tmp_path, [10])
    atomic_torch_save(_ckpt(15), tmp_path / "last.ckpt")
    path, step = find_resume_checkpoint(tmp_path)
    assert (path.name, step) == ("last.ckpt", 15)
    (tmp_path / "last.ckpt").write_bytes(b"broken")
    with pytest.warns(UserWarning):
        path, step = find_resume_checkpoint(tmp_path)
    assert (path.name, step) == ("step=000010.ckpt", 10)


def test_failed_write_keeps_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "step=000010.ckpt"
    atomic_torch_save(_ckpt(10), target)
    before = target.read_bytes()

    def broken_save(obj, fh, *a, **k):
        fh.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_torch_save(_ckpt(11), target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step=000010.ckpt"]


_WRITER = """
import sys, torch
from topodiff.training.checkpoint_files import atomic_torch_save, step_checkpoint_name
from pathlib import Path
d = Path(sys.argv[1])
big = torch.randn(2_000_000)
print("ready", flush=True)
for step in range(1, 10_000):
    atomic_torch_save({"global_step": step, "state_dict": {"w": big + step}, "hyper_parameters": {}},
                      d / step_checkpoint_name(step))
"""


def test_sigkill_during_writes_never_leaves_a_corrupt_ckpt(tmp_path):
    """Kill a process that writes 8 MB checkpoints in a loop at several moments; every ``*.ckpt`` left
    must load, and resume must find the newest of them."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    for trial, delay in enumerate((0.3, 0.7, 1.3)):
        d = tmp_path / f"run{trial}"
        d.mkdir()
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(d)], stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        ckpts = sorted(d.glob("*.ckpt"))
        for p in ckpts:
            read_checkpoint(p)  # raises on a partial file
        if ckpts:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # no corrupt file to skip
                _, step = find_resume_checkpoint(d)
            assert step == max(int(p.stem.split("=")[1]) for p in ckpts)
        remove_stale_temporaries(d)
        assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]

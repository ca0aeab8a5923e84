"""`topodiff train` as users run it: SIGKILL mid-run, then `--resume`."""
from __future__ import annotations

import json
import signal
import subprocess
import time

from topodiff.training.checkpoint_files import read_checkpoint, step_files

from training.helpers import REPO, TINY_CONFIG, cli_env, topodiff_cmd, run_cli


def test_sigkill_then_resume_continues_the_step_counter(crystal_csv, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--config", str(TINY_CONFIG), f"data.train={crystal_csv}", f"output_dir={out}",
            "trainer.max_steps=60", "trainer.checkpoint_every=5", "trainer.val_every=20", "data.batch_size=8"]
    proc = subprocess.Popen([*topodiff_cmd(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=cli_env(), cwd=REPO)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if any(step >= 10 for step, _ in step_files(out)):
                break
            time.sleep(0.02)
        assert proc.poll() is None, "training finished or failed before it could be killed: " + proc.stderr.read().decode()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    killed_at = max(step for step, _ in step_files(out))
    assert 10 <= killed_at < 60
    for _, path in step_files(out):
        read_checkpoint(path)  # every file under a .ckpt name is complete

    # --resume without --config reuses the run's own config.yaml
    res = run_cli("train", "--resume", "--json", f"output_dir={out}", timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(res.stdout)
    assert summary["start_step"] >= 10 and summary["resumed_from"] is not None
    assert summary["global_step"] == 60
    assert read_checkpoint(out / "last.ckpt")["global_step"] == 60
    logs = sorted((out / "logs").glob("version_*/metrics.csv"))
    assert len(logs) == 2  # one CSV log per launch


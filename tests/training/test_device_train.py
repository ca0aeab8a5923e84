"""scripts/device_train.py: the budgeted side-by-side training driver used on lent GPUs (run here on CPU)."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from training.helpers import REPO, TINY_CONFIG, cli_env

SCRIPT = REPO / "scripts" / "device_train.py"


def _module():
    spec = importlib.util.spec_from_file_location("device_train", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_parse_run_and_step_plan():
    dt = _module()
    name, (config, over) = dt.parse_run("csp=configs/mp20-csp.yaml:data.batch_size=256,model.hidden=192")
    assert (name, config, over) == ("csp", "configs/mp20-csp.yaml", ["data.batch_size=256", "model.hidden=192"])
    with pytest.raises(SystemExit):
        dt.parse_run("configs/mp20.yaml")
    runs = {"a": ("c.yaml", ["data.batch_size=256"]), "b": ("c.yaml", []), "failed": ("c.yaml", [])}
    probe = {"a": {"crystals_per_s": 1000.0}, "b": {"crystals_per_s": 640.0}, "failed": {"failed": 1}}
    plan = dt.plan_steps(runs, probe, left_s=100.0, probe_steps=50)
    assert plan["a"][0] == "trainer.max_steps=351"     # 0.9 * 100 s * 1000 / 256
    assert plan["b"][0] == "trainer.max_steps=900"     # batch 64 when the run does not set it
    assert plan["failed"][0] == "trainer.max_steps=50"  # no rate: the probe's length
    assert all(p[1].startswith("trainer.max_minutes=") for p in plan.values())


def test_budgeted_run_exports_loadable_weights(tmp_path, crystal_csv):
    out, runs_dir, table = tmp_path / "out", tmp_path / "runs", tmp_path / "descriptors.npy"
    subprocess.run([sys.executable, str(SCRIPT), "--write-descriptors", str(table)], check=True, env=cli_env(), cwd=REPO)
    from topodiff.generative.embeddings import element_descriptors

    np.testing.assert_allclose(np.load(table), element_descriptors(100).numpy())
    run = f"tiny={TINY_CONFIG}:data.train={crystal_csv},trainer.val_every=1000"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--budget-s", "25", "--probe-steps", "3", "--export-s", "5",
                           "--out", str(out), "--runs-dir", str(runs_dir), "--descriptors", str(table), run],
                          capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["logs.tar.gz", "tiny.ckpt"]
    with tarfile.open(out / "logs.tar.gz") as tar:
        summary = json.load(tar.extractfile("device_train.json"))
        assert {"tiny.json", "probe_tiny.log", "train_tiny.log"} <= set(tar.getnames())
    steps = int(summary["plan"]["tiny"][0].split("=")[1])
    assert summary["probe"]["tiny"]["global_step"] == 3
    assert summary["train"]["tiny"]["global_step"] == steps >= 3
    from topodiff.generative.checkpoint import load_generator

    model, config = load_generator(out / "tiny.ckpt")
    assert config["model"]["hidden"] == 32 and sum(p.numel() for p in model.parameters()) > 0

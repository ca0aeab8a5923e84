"""DDP wiring (devices x nodes > 1), SLURM environment detection and the generated job script."""
from __future__ import annotations

import json
import re

import pytest

from topodiff.errors import TopodiffInputError
from topodiff.hpc.slurm import SlurmJob, render_script
from topodiff.training.config import load_config

from training.helpers import TINY_CONFIG, run_cli


def _kwargs(*overrides: str, has_val: bool = True) -> dict:
    from topodiff.training.run import trainer_kwargs

    return trainer_kwargs(load_config(TINY_CONFIG, list(overrides)), has_val=has_val)


def test_single_process_uses_auto_strategy():
    kw = _kwargs("trainer.devices=1", "trainer.accelerator=cpu")
    assert kw["strategy"] == "auto" and kw["devices"] == 1 and kw["num_nodes"] == 1
    assert kw["use_distributed_sampler"] is False  # our sampler shards by rank itself
    assert kw["enable_checkpointing"] is False  # PeriodicCheckpoint writes the files atomically
    assert kw["gradient_clip_val"] == 1.0 and kw["precision"] == "32"


def test_several_devices_select_ddp_with_gloo_on_cpu():
    from lightning.pytorch.strategies import DDPStrategy

    kw = _kwargs("trainer.devices=2", "trainer.accelerator=cpu")
    assert isinstance(kw["strategy"], DDPStrategy)
    assert kw["strategy"]._process_group_backend == "gloo"
    kw = _kwargs("trainer.devices=1", "trainer.num_nodes=2", "trainer.accelerator=cpu")
    assert isinstance(kw["strategy"], DDPStrategy)


def test_fp16_on_cpu_is_refused_and_bf16_allowed():
    with pytest.raises(TopodiffInputError, match="16-mixed"):
        _kwargs("trainer.precision=16-mixed", "trainer.accelerator=cpu")
    assert _kwargs("trainer.precision=bf16-mixed", "trainer.accelerator=cpu")["precision"] == "bf16-mixed"


def test_lightning_reads_the_slurm_environment(monkeypatch):
    """Under srun (task 5 of 2 nodes x 4 tasks) our Trainer settings give rank 5 of 8 with no launcher."""
    import lightning.pytorch as pl

    env = {"SLURM_NTASKS": "8", "SLURM_NTASKS_PER_NODE": "4", "SLURM_PROCID": "5", "SLURM_LOCALID": "1",
           "SLURM_NODEID": "1", "SLURM_NODELIST": "gpu[01-02]", "SLURM_JOB_NAME": "topodiff-train",
           "SLURM_JOB_ID": "1234", "SLURM_JOB_NUM_NODES": "2"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    kw = _kwargs("trainer.devices=4", "trainer.num_nodes=2", "trainer.accelerator=cpu")
    kw.update(logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer = pl.Trainer(**kw)
    assert type(trainer.strategy.cluster_environment).__name__ == "SLURMEnvironment"
    assert (trainer.global_rank, trainer.local_rank, trainer.node_rank, trainer.world_size) == (5, 1, 1, 8)


def test_slurm_script_one_task_per_gpu():
    text = render_script(SlurmJob(nodes=3, gpus_per_node=4, time="12:00:00", partition="gpu",
                                  config="configs/perov5.yaml", overrides=["data.batch_size=128"]))
    assert text.startswith("#!/bin/bash\n")
    for line in ("#SBATCH --nodes=3", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --time=12:00:00", "#SBATCH --partition=gpu"):
        assert line in text.splitlines(), line
    commands = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    sruns = [ln for ln in commands if ln.startswith("srun ")]
    assert len(sruns) == 1
    srun = sruns[0].split()
    assert srun[1:3] == ["topodiff", "train"]
    assert "trainer.devices=4" in srun and "trainer.num_nodes=3" in srun and "trainer.strategy=ddp" in srun
    assert srun[srun.index("--config") + 1] == "configs/perov5.yaml" and "data.batch_size=128" in srun
    assert not re.search(r"torchrun|torch\.distributed\.(launch|run)", "\n".join(commands))
    # requeue → resume from the newest checkpoint
    assert "--resume" in srun and "#SBATCH --requeue" in text


@pytest.mark.parametrize("job, msg", [
    (dict(nodes=0, gpus_per_node=4), "--nodes"),
    (dict(nodes=1, gpus_per_node=0), "--gpus-per-node"),
    (dict(nodes=1, gpus_per_node=1, time="soon"), "--time"),
    (dict(nodes=1, gpus_per_node=1, overrides=["trainer.devices=8"]), "trainer.devices"),
])
def test_slurm_bad_arguments(job, msg):
    with pytest.raises(TopodiffInputError, match=re.escape(msg)):
        render_script(SlurmJob(**job))


def test_slurm_cli_writes_script_and_validates_config(tmp_path):
    out = tmp_path / "job.sh"
    res = run_cli("slurm", "--nodes", "2", "--gpus-per-node", "8", "--config", str(TINY_CONFIG), "--out", str(out))
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    assert "#SBATCH --ntasks-per-node=8" in text and "trainer.num_nodes=2" in text
    res = run_cli("slurm", "--nodes", "2", "--gpus-per-node", "8", "--config", str(TINY_CONFIG), "trainer.bogus=1")
    assert res.returncode == 2 and "trainer.bogus" in res.stderr and res.stderr.startswith("error:")


@pytest.mark.slow
def test_cpu_ddp_two_processes(crystal_csv, tmp_path):
    """Two gloo processes train together; rank 0 writes the checkpoints and prints the JSON."""
    res = run_cli("train", "--config", str(TINY_CONFIG), f"data.train={crystal_csv}", f"output_dir={tmp_path}",
                  "trainer.devices=2", "trainer.accelerator=cpu", "trainer.max_steps=6",
                  "trainer.checkpoint_every=3", "data.batch_size=4", "--json", timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout)
    assert summary["devices"] == 2 and summary["global_step"] == 6
    assert (tmp_path / "step=000006.ckpt").is_file()

"""Lightning training: overfit one batch, checkpoint contents, bit-for-bit resume, LR schedule, bad data."""
from __future__ import annotations

import math

import lightning.pytorch as pl
import importlib

import pytest
import torch
from torch import nn

from topodiff.errors import TopodiffInputError
from topodiff.training.checkpoint_files import read_checkpoint
from topodiff.training.config import load_config, to_container
from topodiff.training.datasets import build_datasets
from topodiff.training.lightning_module import lr_factor
from topodiff.training.run import train

from training.helpers import TINY_CONFIG, write_crystal_csv


def _cfg(csv, out, *extra: str):
    return load_config(TINY_CONFIG, [f"data.train={csv}", f"output_dir={out}", *extra])


class LatticeRegressor(nn.Module):
    """Stand-in generator: predicts each crystal's lattice from noisy atoms (memorisable loss)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(100, 32)
        self.net = nn.Sequential(nn.Linear(35, 64), nn.SiLU(), nn.Linear(64, 9))

    def loss(self, batch) -> dict[str, torch.Tensor]:
        x = batch.frac + 0.01 * torch.randn_like(batch.frac)
        h = self.net(torch.cat([self.emb(batch.species), x], -1))
        b = batch.num_crystals
        pooled = torch.zeros(b, 9).index_add_(0, batch.batch_index, h) / batch.num_atoms[:, None]
        loss = ((pooled.view(b, 3, 3) - batch.lattice / 4.0) ** 2).mean()
        return {"loss": loss, "loss_lattice": loss.detach()}


def _fixed_noise_loss(model: nn.Module, batch, seeds: int = 8) -> float:
    vals = []
    with torch.no_grad():
        for s in range(seeds):
            torch.manual_seed(1000 + s)
            v = model.loss(batch)["loss"]
            if torch.isfinite(v):
                vals.append(float(v))
    return sum(vals) / len(vals)


def test_overfit_one_batch_machinery(crystal_csv, tmp_path):
    """AdamW + warm-up + cosine + clipping through Lightning memorise one batch (loss / 30 or better)."""
    cfg = _cfg(crystal_csv, tmp_path, "data.max_train_rows=8", "data.val_fraction=0", "data.batch_size=8",
               "trainer.max_steps=150", "trainer.checkpoint_every=150", "optim.lr=1e-2", "ema.decay=0")
    datasets = build_datasets(cfg.data)
    batch = datasets[0].__getitems__(list(range(8)))
    torch.manual_seed(0)
    model = LatticeRegressor()
    before = _fixed_noise_loss(model, batch)
    summary = train(cfg, model=model, datasets=datasets)
    after = _fixed_noise_loss(model, batch)
    assert summary["global_step"] == 150
    assert after < before / 30, (before, after)


def test_overfit_one_batch_crystal_diffusion(crystal_csv, tmp_path):
    """The real generator (tiny config) fitted to one crystal: its fixed-noise loss falls clearly."""
    importlib.import_module("topodiff.generative.model")
    from topodiff.training.lightning_module import build_model

    cfg = _cfg(crystal_csv, tmp_path, "data.max_train_rows=1", "data.val_fraction=0", "data.batch_size=8",
               "trainer.max_steps=200", "trainer.checkpoint_every=200", "optim.lr=1e-2", "optim.warmup_steps=10",
               "ema.decay=0")
    datasets = build_datasets(cfg.data)
    batch = datasets[0].__getitems__([0] * 8)
    torch.manual_seed(0)
    model = build_model(to_container(cfg))
    model.fit_statistics(**datasets[0].statistics())
    model.eval()
    before = _fixed_noise_loss(model, batch)
    model.train()
    train(cfg, model=model, datasets=datasets)
    model.eval()
    after = _fixed_noise_loss(model, batch)
    assert after < before / 1.5, (before, after)


class _Crash(pl.Callback):
    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.at:
            raise RuntimeError("simulated crash")


def test_checkpoint_contents_and_bitwise_resume(crystal_csv, tmp_path):
    """An interrupted run resumed from its checkpoint ends with exactly the uninterrupted run's weights,
    EMA and optimiser state; the checkpoint has the keys load_generator relies on."""
    importlib.import_module("topodiff.generative.model")
    common = ("trainer.max_steps=12", "trainer.checkpoint_every=4", "trainer.val_every=6", "data.batch_size=8",
              "data.max_train_rows=24", "optim.warmup_steps=3", "ema.decay=0.9")
    cfg_a = _cfg(crystal_csv, tmp_path / "a", *common)
    res_a = train(cfg_a)
    assert res_a["global_step"] == 12
    ck_a = read_checkpoint(tmp_path / "a" / "last.ckpt")

    # contract: Lightning keys + hyper_parameters["config"] + ema_state_dict with model.state_dict() keys
    for key in ("epoch", "global_step", "pytorch-lightning_version", "state_dict", "loops", "callbacks",
                "optimizer_states", "lr_schedulers", "hyper_parameters", "ema_state_dict"):
        assert key in ck_a, key
    assert ck_a["hyper_parameters"]["config"] == to_container(cfg_a)
    model_keys = {k.removeprefix("model.") for k in ck_a["state_dict"]}
    assert all(k.startswith("model.") for k in ck_a["state_dict"])
    assert set(ck_a["ema_state_dict"]) == model_keys
    assert ck_a["global_step"] == 12
    assert sorted(p.name for p in (tmp_path / "a").glob("*.ckpt")) == [
        "last.ckpt", "step=000004.ckpt", "step=000008.ckpt", "step=000012.ckpt"]
    assert (tmp_path / "a" / "config.yaml").is_file()
    assert load_config(tmp_path / "a" / "config.yaml") == cfg_a
    # EMA differs from the raw weights (decay 0.9) but is close to them
    w = ck_a["state_dict"]
    diffs = [float((ck_a["ema_state_dict"][k] - w["model." + k]).abs().max()) for k in model_keys
             if w["model." + k].is_floating_point()]
    assert max(diffs) > 0

    cfg_b = _cfg(crystal_csv, tmp_path / "b", *common)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg_b, extra_callbacks=[_Crash(at=6)])
    assert read_checkpoint(tmp_path / "b" / "last.ckpt")["global_step"] == 4
    res_b = train(cfg_b, resume=True)
    assert res_b["start_step"] == 4 and res_b["global_step"] == 12
    assert res_b["resumed_from"].endswith("step=000004.ckpt")
    ck_b = read_checkpoint(tmp_path / "b" / "last.ckpt")
    for k, v in ck_a["state_dict"].items():
        assert torch.equal(v, ck_b["state_dict"][k]), k
    for k, v in ck_a["ema_state_dict"].items():
        assert torch.equal(v, ck_b["ema_state_dict"][k]), k
    sa, sb = ck_a["optimizer_states"][0]["state"], ck_b["optimizer_states"][0]["state"]
    for i in sa:
        assert torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"])
    assert ck_a["lr_schedulers"][0]["last_epoch"] == ck_b["lr_schedulers"][0]["last_epoch"] == 12

    # the generator's loader reads the EMA weights of a training checkpoint
    checkpoint = importlib.import_module("topodiff.generative.checkpoint")
    model, config = checkpoint.load_generator(tmp_path / "b" / "last.ckpt")
    assert config["trainer"]["max_steps"] == 12
    for k, v in model.state_dict().items():
        assert torch.equal(v, ck_b["ema_state_dict"][k]), k

    # resuming a finished run is a no-op that reports the final step
    res_c = train(cfg_b, resume=True)
    assert res_c["global_step"] == 12
    # resuming with another network is refused with a clear input error
    with pytest.raises(TopodiffInputError, match="hidden"):
        train(_cfg(crystal_csv, tmp_path / "b", *common, "model.hidden=48"), resume=True)
    # ... but sampler settings only steer sampling: the same run, resumable with them changed
    from topodiff.training.run_dir import run_fingerprint

    sampler = _cfg(crystal_csv, tmp_path / "b", *common, "model.species_temperature=0.5",
                   "model.species_reveal=confident")
    assert run_fingerprint(sampler) == run_fingerprint(cfg_b)
    assert run_fingerprint(_cfg(crystal_csv, tmp_path / "b", *common, "model.hidden=48")) != run_fingerprint(cfg_b)
    assert train(sampler, resume=True)["global_step"] == 12


def test_lr_schedule_shape():
    kw = dict(warmup=10, max_steps=110, min_ratio=0.1)
    f = [lr_factor(s, schedule="cosine", **kw) for s in range(110)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(f[:9], f[1:10]))  # warm-up rises
    assert all(a >= b for a, b in zip(f[10:], f[11:]))  # cosine falls
    assert f[60] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(110, schedule="cosine", **kw) == pytest.approx(0.1)
    assert lr_factor(50, schedule="constant", **kw) == 1.0


def test_unusable_data_is_an_input_error(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text(",material_id,cif,heat_all\n")
    cfg = load_config(TINY_CONFIG, [f"data.train={empty}", f"output_dir={tmp_path / 'o'}"])
    with pytest.raises(TopodiffInputError):
        train(cfg)
    cfg = load_config(TINY_CONFIG, [f"data.train={tmp_path / 'missing.csv'}", f"output_dir={tmp_path / 'o'}"])
    with pytest.raises(TopodiffInputError, match="not found"):
        train(cfg)


def test_plateau_needs_validation(crystal_csv, tmp_path):
    cfg = _cfg(crystal_csv, tmp_path, "optim.schedule=plateau", "data.val_fraction=0")
    with pytest.raises(TopodiffInputError, match="plateau"):
        train(cfg, model=LatticeRegressor())


def test_two_sources_are_concatenated(crystal_csv, tmp_path):
    other = write_crystal_csv(tmp_path / "other.csv", 6, seed=5)
    cfg = load_config(TINY_CONFIG, [f"data.train=[{crystal_csv},{other}]", "data.val_fraction=0",
                                    "data.max_train_rows=0"])
    train_set, val_set = build_datasets(cfg.data)
    assert len(train_set) == 48 + 6 and val_set is None


def test_max_minutes_stops_early_with_a_final_checkpoint(crystal_csv, tmp_path):
    cfg = _cfg(crystal_csv, tmp_path, "trainer.max_steps=1000000", "trainer.max_minutes=0.02",
               "trainer.checkpoint_every=1000000", "data.val_fraction=0")
    summary = train(cfg, model=LatticeRegressor())
    assert 0 < summary["global_step"] < 1_000_000
    assert read_checkpoint(tmp_path / "last.ckpt")["global_step"] == summary["global_step"]
    # the limit is per launch: a resumed run trains again (it used to stop at once, the checkpoint's
    # elapsed time already past the limit)
    again = train(cfg, model=LatticeRegressor(), resume=True)
    assert again["global_step"] > summary["global_step"]


def test_auto_threads_respects_processes_and_machine_load():
    from topodiff.training.run import auto_threads

    assert auto_threads(16, 1, 0.0) == 16
    assert auto_threads(16, 4, 0.0) == 4  # DDP: cores shared by the local processes
    assert auto_threads(16, 2, 8.0) == 4  # 8 busy cores leave 8 for 2 processes
    assert auto_threads(2, 1, 9.0) == 1  # oversubscribed machine: one thread
    assert auto_threads(8, 1, None) == 8  # no load average available


def test_init_from_copies_generator_weights(crystal_csv, tmp_path):
    from topodiff.generative.checkpoint import load_generator

    first = train(_cfg(crystal_csv, tmp_path / "a", "trainer.max_steps=2", "data.val_fraction=0"))
    base, _ = load_generator(first["last_checkpoint"])
    # zero steps of training: the new run's weights are exactly the base's
    cfg = _cfg(crystal_csv, tmp_path / "b", f"init_from={first['last_checkpoint']}", "trainer.max_steps=1",
               "optim.lr=1e-12", "data.val_fraction=0")
    train(cfg)
    again, _ = load_generator(str(tmp_path / "b" / "last.ckpt"))
    params = dict(again.named_parameters())
    for k, v in base.named_parameters():  # (data-statistics buffers keep being refined by training)
        torch.testing.assert_close(params[k], v, atol=1e-6, rtol=1e-5, msg=k)
    bad = _cfg(crystal_csv, tmp_path / "c", f"init_from={first['last_checkpoint']}", "model.hidden=48",
               "trainer.max_steps=1", "data.val_fraction=0")
    with pytest.raises(TopodiffInputError, match="do not fit"):
        train(bad)


@pytest.mark.parametrize("extension", ["species_copy", "pair_messages"])
def test_init_from_adds_a_zero_initialised_extension_and_older_runs_still_resume(crystal_csv, tmp_path, extension):
    """A model with the species copy path (or pair messages) starts from a checkpoint without it (same
    outputs); a run saved before the setting existed resumes under a config that leaves it at its old value."""
    from topodiff.generative.checkpoint import load_generator
    from topodiff.training.run import check_resume_compatible
    from topodiff.training.run_dir import run_fingerprint

    first = train(_cfg(crystal_csv, tmp_path / "a", "trainer.max_steps=2", "data.val_fraction=0"))
    cfg = _cfg(crystal_csv, tmp_path / "b", f"init_from={first['last_checkpoint']}", f"model.{extension}=true",
               "trainer.max_steps=1", "optim.lr=1e-12", "data.val_fraction=0")
    train(cfg)
    base, _ = load_generator(first["last_checkpoint"])
    grown, _ = load_generator(str(tmp_path / "b" / "last.ckpt"))
    assert getattr(grown.cfg, extension)
    params = dict(grown.named_parameters())
    for k, v in base.named_parameters():
        torch.testing.assert_close(params[k], v, atol=1e-6, rtol=1e-5, msg=k)
    plain = _cfg(crystal_csv, tmp_path / "a", "trainer.max_steps=2", "data.val_fraction=0")
    legacy = {"hyper_parameters": {"config": {"model": {k: v for k, v in to_container(plain)["model"].items()
                                                         if k != extension}}}}
    check_resume_compatible(legacy, plain, tmp_path / "a" / "last.ckpt")          # missing key = old value
    with pytest.raises(TopodiffInputError, match=extension):
        check_resume_compatible(legacy, cfg, tmp_path / "a" / "last.ckpt")
    assert run_fingerprint(plain) != run_fingerprint(_cfg(crystal_csv, tmp_path / "a", "trainer.max_steps=2",
                                                           "data.val_fraction=0", f"model.{extension}=true"))


def test_oversample_setting_is_validated_and_a_run_started_before_it_resumes(crystal_csv, tmp_path):
    from omegaconf import OmegaConf

    from topodiff.training.run_dir import claim_run_dir

    for bad in ("data.oversample.catalogue_class.ti=0", "data.oversample.catalogue_class.ti=1.5",
                "data.oversample.catalogue_class=4"):
        with pytest.raises(TopodiffInputError, match="data.oversample"):
            _cfg(crystal_csv, tmp_path / "x", bad)
    plain = _cfg(crystal_csv, tmp_path / "a")
    legacy = OmegaConf.create(to_container(plain))  # a run claimed before the key existed
    del legacy.data["oversample"]
    out = claim_run_dir(legacy, resume=False)
    (out / "last.ckpt").write_text("x")
    assert claim_run_dir(plain, resume=True) == out  # the unset key does not make it another run
    weighted = _cfg(crystal_csv, tmp_path / "a", "data.oversample.catalogue_class.ti=4")
    assert dict(weighted.data.oversample) == {"catalogue_class": {"ti": 4}}
    with pytest.raises(TopodiffInputError, match="data.oversample.catalogue_class.ti"):
        claim_run_dir(weighted, resume=True)


def test_datamodule_oversamples_labelled_crystals(crystal_csv, tmp_path):
    import numpy as np
    import pandas as pd

    from topodiff.training.datamodule import CrystalDataModule

    df = pd.read_csv(crystal_csv, index_col=0)
    df["catalogue_class"] = ["ti" if i % 8 == 0 else "trivial" for i in range(len(df))]
    path = tmp_path / "labelled.csv"
    df.to_csv(path)
    cfg = _cfg(path, tmp_path / "run", "data.val_fraction=0", "data.batch_size=4",
               "data.oversample.catalogue_class.ti=3")
    dm = CrystalDataModule(cfg.data, seed=0)
    labels = dm.train_set.base.arrays.labels["catalogue_class"]
    counts = np.bincount(np.concatenate(list(dm.train_dataloader().batch_sampler)), minlength=len(labels))
    np.testing.assert_array_equal(counts, np.where(labels == "ti", 3, 1))
    with pytest.raises(TopodiffInputError, match="no training crystal has catalogue_class=tci"):
        CrystalDataModule(_cfg(path, tmp_path / "run", "data.val_fraction=0", "data.oversample.catalogue_class.tci=2").data, seed=0)

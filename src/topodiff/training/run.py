"""Run a training job from a resolved config: threads, seed, data, model, trainer, resume, fit.

``train(cfg, resume=True)`` continues from the newest readable checkpoint in ``cfg.output_dir``
(step counter, optimiser, LR schedule, EMA and data order restored); a truncated or corrupt newest
file is skipped with a warning.
"""
from __future__ import annotations

import logging
import os
import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import Dataset

from topodiff.errors import TopodiffInputError
from topodiff.io_utils import available_cpus
from topodiff.generative.config import ADDED_MODEL_SETTINGS, SAMPLER_SETTINGS
from topodiff.training.callbacks import EMA, AtomicCheckpointIO, LaunchTimer, PeriodicCheckpoint, StderrProgressBar
from topodiff.training.checkpoint_files import find_resume_checkpoint, read_checkpoint, remove_stale_temporaries
from topodiff.training.config import save_config, to_container
from topodiff.training.datamodule import CrystalDataModule
from topodiff.training.lightning_module import DiffusionModule

log = logging.getLogger("topodiff.training")


class Throughput(pl.Callback):
    """Counts crystals and wall time of the optimiser steps of this process (after the first step)."""

    def __init__(self) -> None:
        self.crystals = 0
        self.steps = 0
        self.t0: float | None = None
        self.t1: float | None = None
        self.last_loss: float | None = None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        now = time.perf_counter()
        if self.t0 is None:  # the first step includes warm-up costs; time the rest
            self.t0 = now
        else:
            self.crystals += int(getattr(batch, "num_crystals", 0))
            self.steps += 1
        self.t1 = now
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if torch.is_tensor(loss):
            self.last_loss = float(loss.detach())

    @property
    def crystals_per_s(self) -> float | None:
        if self.t0 is None or self.t1 is None or self.t1 <= self.t0 or self.crystals == 0:
            return None
        return self.crystals / (self.t1 - self.t0)


def local_processes(cfg: DictConfig) -> int:
    """Training processes on this node (1 unless DDP with several devices)."""
    devices = cfg.trainer.devices
    if isinstance(devices, int):
        return devices
    gpu = str(cfg.trainer.accelerator) in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return max(1, torch.cuda.device_count()) if gpu else 1


def auto_threads(cores: int, processes: int, load: float | None) -> int:
    """torch intra-op threads for ``processes`` training processes on ``cores`` cores.

    Each process gets ``cores // processes``, reduced to the cores left idle by the rest of the
    machine (1-minute load average): on an oversubscribed CPU, intra-op threads wait on one
    another and a step gets many times slower (measured here: 16x slower with 2 threads than
    with 1 on a 2-core machine at load 9; docs/training.md).
    """
    n = max(1, cores // max(1, processes))
    if load is not None:
        idle = int(cores - load + 0.5)
        n = min(n, max(1, idle // max(1, processes)))
    return n


def configure_threads(cfg: DictConfig) -> int:
    """Set torch's intra-op threads: ``trainer.num_threads``, or :func:`auto_threads` when 0."""
    n = int(cfg.trainer.num_threads)
    if n <= 0:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = None
        n = auto_threads(available_cpus(), local_processes(cfg), load)
    torch.set_num_threads(n)
    return n


def resolve_accelerator(cfg: DictConfig) -> str:
    acc = str(cfg.trainer.accelerator)
    if acc == "auto":
        acc = "gpu" if torch.cuda.is_available() else "cpu"
    if acc in ("gpu", "cuda") and not torch.cuda.is_available():
        raise TopodiffInputError("trainer.accelerator=gpu but no CUDA device is available (use trainer.accelerator=cpu)")
    return acc


def trainer_kwargs(cfg: DictConfig, *, has_val: bool) -> dict[str, Any]:
    """Keyword arguments of ``lightning.pytorch.Trainer`` for a config (no callbacks or loggers)."""
    t = cfg.trainer
    acc = resolve_accelerator(cfg)
    if acc == "cpu" and t.precision == "16-mixed":
        raise TopodiffInputError("trainer.precision=16-mixed needs a GPU; use 32 or bf16-mixed on CPU")
    devices = t.devices if t.devices != "auto" else ("auto" if acc != "cpu" else 1)
    world = (devices if isinstance(devices, int) else (torch.cuda.device_count() if acc != "cpu" else 1)) * t.num_nodes
    strategy: Any = str(t.strategy)
    if strategy == "auto" and world > 1:
        strategy = "ddp"
    if strategy in ("ddp", "ddp_spawn"):
        from lightning.pytorch.strategies import DDPStrategy

        # conditions dropped to the null embedding leave parameters unused in some steps
        strategy = DDPStrategy(start_method="spawn" if strategy == "ddp_spawn" else "popen",
                               find_unused_parameters=True,
                               process_group_backend="gloo" if acc == "cpu" else None)
    return dict(
        accelerator=acc, devices=devices, num_nodes=int(t.num_nodes), strategy=strategy,
        precision=str(t.precision), max_steps=int(t.max_steps), max_epochs=-1,
        gradient_clip_val=float(cfg.optim.grad_clip) or None, gradient_clip_algorithm="norm",
        val_check_interval=int(t.val_every) if has_val else None, check_val_every_n_epoch=None,
        limit_val_batches=1.0 if has_val else 0, num_sanity_val_steps=0,
        log_every_n_steps=int(t.log_every), enable_checkpointing=False, enable_progress_bar=bool(t.progress_bar),
        use_distributed_sampler=False, default_root_dir=str(cfg.output_dir), enable_model_summary=True,
    )


def _loggers(out: Path) -> list:
    from lightning.pytorch.loggers import CSVLogger

    loggers: list = [CSVLogger(save_dir=str(out), name="logs")]
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return loggers
    from lightning.pytorch.loggers import TensorBoardLogger

    loggers.append(TensorBoardLogger(save_dir=str(out), name="tensorboard"))
    return loggers


def check_resume_compatible(ckpt: dict[str, Any], cfg: DictConfig, path: Path) -> None:
    """A checkpoint's network must match the config's ``model`` section (else TopodiffInputError);
    sampler settings (:data:`SAMPLER_SETTINGS`) may differ."""
    saved = ((ckpt.get("hyper_parameters") or {}).get("config") or {}).get("model")
    if saved is None:
        return
    current = to_container(cfg)["model"]
    saved = {**ADDED_MODEL_SETTINGS, **saved}
    diff = sorted(k for k in set(saved) | set(current)
                  if saved.get(k) != current.get(k) and k not in SAMPLER_SETTINGS)
    if diff:
        raise TopodiffInputError(f"--resume: {path} was trained with other model settings ({', '.join(diff)}); "
                                 f"resume with the run's config.yaml or start a new output_dir")


def init_weights(model: nn.Module, source: str) -> None:
    """Copy the (EMA) weights of generator checkpoint ``source`` into ``model`` (settings must match,
    except for zero-initialised extensions the model adds, :data:`ZERO_INIT_EXTENSIONS`)."""
    from topodiff.generative.checkpoint import load_generator
    from topodiff.generative.model import ZERO_INIT_EXTENSIONS, load_weights

    base, _ = load_generator(source)
    try:
        load_weights(model, base.state_dict(), may_lack=ZERO_INIT_EXTENSIONS)
    except RuntimeError as exc:
        raise TopodiffInputError(f"init_from={source}: its weights do not fit this model "
                                 f"({str(exc).splitlines()[0]}); use the same model settings") from None
    log.info("initialised the weights from %s", source)


def _fit(trainer: pl.Trainer, module: pl.LightningModule, dm: pl.LightningDataModule, ckpt_path: Path | None) -> None:
    """``trainer.fit``, turning Lightning's own Ctrl-C handling (it catches KeyboardInterrupt, tears
    down, then calls ``sys.exit(1)``) back into a KeyboardInterrupt so the CLI exits 130."""
    import signal

    try:
        trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt_path) if ckpt_path else None)
    except SystemExit:
        if not trainer.interrupted:
            raise
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning ignores further Ctrl-C
        raise KeyboardInterrupt from None


def _resume_point(cfg: DictConfig, out: Path) -> tuple[Path | None, int]:
    """``(checkpoint, step)`` to resume from: the newest readable checkpoint in ``out``, checked
    against ``cfg``; ``(None, 0)`` with a warning when there is none."""
    found = find_resume_checkpoint(out)
    if found is None:
        warnings.warn(f"--resume: no readable checkpoint in {out}; starting from step 0", stacklevel=3)
        return None, 0
    ckpt_path, start_step = found
    log.info("resuming from %s (step %d)", ckpt_path, start_step)
    check_resume_compatible(read_checkpoint(ckpt_path), cfg, ckpt_path)
    return ckpt_path, start_step


def _callbacks(cfg: DictConfig, out: Path, meter: pl.Callback) -> list[pl.Callback]:
    """EMA, throughput, periodic checkpoints, the wall-clock stop, the progress bar and a model summary."""
    from lightning.pytorch.callbacks import ModelSummary  # plain summary (logging → stderr), not rich → stdout

    callbacks: list[pl.Callback] = [EMA(float(cfg.ema.decay)), meter,
                                    PeriodicCheckpoint(out, int(cfg.trainer.checkpoint_every), int(cfg.trainer.keep_last))]
    if cfg.trainer.max_minutes > 0:
        callbacks.append(LaunchTimer(duration=timedelta(minutes=float(cfg.trainer.max_minutes)), interval="step"))
    if cfg.trainer.progress_bar:
        callbacks.append(StderrProgressBar(refresh_rate=max(1, int(cfg.trainer.log_every) // 4)))
    callbacks.append(ModelSummary(max_depth=1))
    return callbacks


def train(cfg: DictConfig, *, resume: bool = False, model: nn.Module | None = None,
          datasets: tuple[Dataset, Dataset | None] | None = None, collate_fn: Any = None,
          extra_callbacks: list[pl.Callback] | None = None, fit_statistics: bool = True) -> dict[str, Any]:
    """Train (or resume) and return a summary dict.

    Parameters
    ----------
    cfg : resolved config (:func:`topodiff.training.config.load_config`).
    resume : continue from the newest readable checkpoint in ``cfg.output_dir`` (fresh start with a
        warning when there is none).
    model, datasets, collate_fn : replace the generator / crystal datasets (tests, custom models).
    fit_statistics : refit the model's data statistics to the training set (``False`` keeps a given
        model's own, as fine-tuning does).

    Returns
    -------
    ``{"output_dir", "resumed_from", "start_step", "global_step", "last_checkpoint", "train_loss",
    "val_loss", "crystals_per_s", "wall_s", "threads", "devices"}``.
    """
    t_start = time.perf_counter()
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        remove_stale_temporaries(out)
    ckpt_path, start_step = _resume_point(cfg, out) if resume else (None, 0)
    threads = configure_threads(cfg)
    pl.seed_everything(int(cfg.trainer.seed), workers=True, verbose=False)

    dm = CrystalDataModule(cfg.data, int(cfg.trainer.seed), datasets=datasets, collate_fn=collate_fn)
    if cfg.optim.schedule == "plateau" and not dm.has_val:
        raise TopodiffInputError("optim.schedule=plateau needs validation data (data.val or data.val_fraction > 0)")
    config = to_container(cfg)
    module = DiffusionModule(config, model=model)
    if fit_statistics and hasattr(module.model, "fit_statistics") and hasattr(dm.train_set, "statistics"):
        # atom-count histogram, volume per atom and allowed species of the training set (a resumed
        # run overwrites them with the checkpoint's buffers); too many atoms → TopodiffInputError
        module.model.fit_statistics(**dm.train_set.statistics())
    if str(cfg.get("init_from") or "") and ckpt_path is None:
        init_weights(module.model, str(cfg.init_from))

    meter = Throughput()
    callbacks = _callbacks(cfg, out, meter) + list(extra_callbacks or [])
    kwargs = trainer_kwargs(cfg, has_val=dm.has_val)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*`max_epochs` is.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        trainer = pl.Trainer(callbacks=callbacks, logger=_loggers(out), plugins=[AtomicCheckpointIO()], **kwargs)
        if trainer.is_global_zero:
            save_config(cfg, out / "config.yaml")
        if ckpt_path is not None and start_step >= int(cfg.trainer.max_steps):
            log.info("checkpoint step %d already reaches trainer.max_steps=%d", start_step, cfg.trainer.max_steps)
        else:
            _fit(trainer, module, dm, ckpt_path)
    val = trainer.callback_metrics.get("val/loss")
    last = out / "last.ckpt"
    return {
        "output_dir": str(out),
        "resumed_from": str(ckpt_path) if ckpt_path else None,
        "start_step": int(start_step),
        "global_step": max(int(trainer.global_step), int(start_step)),
        "last_checkpoint": str(last) if last.exists() else None,
        "train_loss": meter.last_loss,
        "val_loss": float(val) if val is not None else None,
        "crystals_per_s": meter.crystals_per_s,
        "steps_timed": meter.steps,
        "wall_s": time.perf_counter() - t_start,
        "threads": threads,
        "devices": trainer.world_size,
        "rank": trainer.global_rank,
    }

"""EMA weights, atomic periodic checkpoints and finding the checkpoint to resume from.

Checkpoint format (``*.ckpt``, a ``torch.save`` dict of tensors and plain data only; read it with
``torch.load(path, map_location="cpu", weights_only=True)``, as
:func:`topodiff.training.checkpoint_files.safe_load` does — nothing is unpickled beyond that):

- Lightning's standard keys: ``epoch``, ``global_step``, ``pytorch-lightning_version``,
  ``state_dict`` (the training weights; keys are ``"model." + key`` for each key of
  ``CrystalDiffusion.state_dict()``), ``loops``, ``callbacks``, ``optimizer_states``,
  ``lr_schedulers``, ``hyper_parameters``.
- ``hyper_parameters["config"]``: the full resolved training config as a plain dict
  (``config["model"]`` holds the ``ModelConfig`` fields).
- ``ema_state_dict``: the EMA weights with exactly the keys of ``CrystalDiffusion.state_dict()``
  (no prefix). It equals the training weights when ``ema.decay = 0``. Use it for sampling.
- ``topodiff``: ``{"format": "topodiff-ckpt/1", "step": int}``.

Files in ``output_dir``: ``step=NNNNNN.ckpt`` (the newest ``trainer.keep_last`` of them) and
``last.ckpt`` (the newest), each written to a temporary file in the same directory, fsynced and
renamed into place, so a crash never leaves a partial file under a ``*.ckpt`` name.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Timer, TQDMProgressBar

from topodiff.training.checkpoint_files import (CKPT_FORMAT, atomic_link, atomic_torch_save,  # noqa: F401
                                                find_resume_checkpoint, read_checkpoint, remove_stale_temporaries,
                                                safe_load, step_checkpoint_name, step_files)
from topodiff.training.ema import WeightEMA


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O: ``save_checkpoint`` is atomic (temp file + fsync + rename) and
    ``load_checkpoint`` reads tensors and plain data only (:func:`safe_load`), whatever Lightning asks."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options")
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
                        ) -> dict[str, Any]:
        return safe_load(path)


# --------------------------------------------------------------------------------------------
# EMA

class EMA(pl.Callback):
    """Exponential moving average of ``pl_module.model``'s weights (:class:`WeightEMA`).

    After every optimiser step ``ema ← d·ema + (1−d)·θ`` with ``d = min(decay, (1+n)/(10+n))``
    (n = optimiser steps so far). Validation runs on the EMA weights (swapped in and out); the EMA
    is written to ``checkpoint["ema_state_dict"]`` and restored from it on resume. Buffers are
    copied, not averaged.
    """

    def __init__(self, decay: float) -> None:
        self.decay = float(decay)
        self.averager: WeightEMA | None = None
        self._loaded: dict[str, torch.Tensor] | None = None
        self._backup: dict[str, torch.Tensor] | None = None

    @property
    def ema(self) -> dict[str, torch.Tensor] | None:
        """The EMA state dict (``None`` before training starts)."""
        return None if self.averager is None else self.averager.state

    @staticmethod
    def _model(pl_module: pl.LightningModule) -> torch.nn.Module:
        return pl_module.model

    def _ensure(self, pl_module: pl.LightningModule) -> dict[str, torch.Tensor]:
        if self.averager is None:
            self.averager = WeightEMA(self._model(pl_module), self.decay, initial=self._loaded)
            self._loaded = None
        return self.averager.state

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._ensure(pl_module)

    @torch.no_grad()
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._ensure(pl_module)
        self.averager.update(trainer.global_step)

    def _swap_in(self, pl_module: pl.LightningModule) -> None:
        if self.ema is None or self.decay == 0.0:
            return
        model = self._model(pl_module)
        self._backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.ema)

    def _swap_out(self, pl_module: pl.LightningModule) -> None:
        if self._backup is not None:
            self._model(pl_module).load_state_dict(self._backup)
            self._backup = None

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._swap_in(pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._swap_out(pl_module)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        ema = self._ensure(pl_module)
        checkpoint["ema_state_dict"] = {k: v.detach().cpu().clone() for k, v in ema.items()}
        checkpoint["topodiff"] = {"format": CKPT_FORMAT, "step": int(trainer.global_step)}

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        loaded = checkpoint.get("ema_state_dict")
        if loaded is not None:
            self._loaded = loaded
            self.averager = None


class StderrProgressBar(TQDMProgressBar):
    """Lightning's tqdm progress bar on stderr (Lightning writes it to stdout, which ``--json`` keeps
    for the one summary object)."""

    def _on_stderr(self, make: Any) -> Any:
        with contextlib.redirect_stdout(sys.stderr):  # Lightning passes file=sys.stdout when it builds a bar
            return make()

    def init_sanity_tqdm(self) -> Any:
        return self._on_stderr(super().init_sanity_tqdm)

    def init_train_tqdm(self) -> Any:
        return self._on_stderr(super().init_train_tqdm)

    def init_validation_tqdm(self) -> Any:
        return self._on_stderr(super().init_validation_tqdm)


# --------------------------------------------------------------------------------------------
# periodic checkpoints

class PeriodicCheckpoint(pl.Callback):
    """Write ``step=NNNNNN.ckpt`` every ``every`` optimiser steps and at the end of training.

    Each file is written atomically (through the trainer's :class:`AtomicCheckpointIO`), then
    ``last.ckpt`` is pointed at it atomically, and only the newest ``keep_last`` step files are
    kept. All ranks call ``trainer.save_checkpoint`` (it synchronises); rank 0 writes.
    """

    def __init__(self, dirpath: str | os.PathLike, every: int, keep_last: int = 3) -> None:
        self.dirpath = Path(dirpath)
        self.every = int(every)
        self.keep_last = int(keep_last)
        self._last_saved = -1

    def _save(self, trainer: pl.Trainer) -> None:
        step = int(trainer.global_step)
        if step == self._last_saved or step == 0:
            return
        path = self.dirpath / step_checkpoint_name(step)
        trainer.save_checkpoint(path, weights_only=False)
        self._last_saved = step
        if trainer.is_global_zero:
            atomic_link(path, self.dirpath / "last.ckpt")
            self._prune()

    def _prune(self) -> None:
        steps = sorted(step_files(self.dirpath), reverse=True)
        for _, old in steps[self.keep_last:]:
            try:
                old.unlink()
            except FileNotFoundError:
                pass

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.global_step % self.every == 0:
            self._save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save(trainer)


class LaunchTimer(Timer):
    """Lightning's ``Timer`` (stop with a final checkpoint after ``duration``), counting this launch
    only: a resumed run gets ``trainer.max_minutes`` afresh instead of the time its checkpoint used."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Ignore the elapsed time stored in the checkpoint."""

"""Lightning wrapper of the crystal diffusion model: loss, logging, AdamW + warm-up + schedule.

The wrapped network is ``self.model`` (a ``CrystalDiffusion`` or anything with
``loss(batch) -> dict[str, Tensor]`` holding the key ``"loss"``). The random numbers of training
step ``s`` on rank ``r`` are seeded from ``(seed, s, r)``, so a resumed run draws the same noise as
the uninterrupted one; validation uses fixed noise per batch so that its loss is comparable
between evaluations.
"""
from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn



def step_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (``numpy.random.SeedSequence``)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def lr_factor(step: int, *, warmup: int, max_steps: int, schedule: str, min_ratio: float) -> float:
    """Learning-rate multiplier at optimiser step ``step`` (0-based).

    Linear warm-up ``(step+1)/warmup`` for ``step < warmup``; then ``cosine`` decays from 1 to
    ``min_ratio`` at ``max_steps``, ``constant`` (and ``plateau``, which is handled separately) stay 1.
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "cosine":
        progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def build_model(config: dict[str, Any]) -> nn.Module:
    """``CrystalDiffusion`` from the ``model`` section of a plain config dict."""
    from topodiff.generative.config import ModelConfig
    from topodiff.generative.model import CrystalDiffusion

    return CrystalDiffusion(ModelConfig.from_dict(config.get("model") or {}))


class DiffusionModule(pl.LightningModule):
    """Training/validation steps and optimiser of a diffusion model.

    Parameters
    ----------
    config : the full resolved training config as a plain dict (stored as
        ``hyper_parameters["config"]`` in every checkpoint).
    model : the network; built from ``config["model"]`` when omitted.
    """

    def __init__(self, config: dict[str, Any], model: nn.Module | None = None) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.config = config
        self.model = model if model is not None else build_model(config)
        self._seed = int(config["trainer"]["seed"])
        self._bad_steps = 0
        self._skipped = 0
        self.max_bad_steps = 10

    # ---- data --------------------------------------------------------------------------------
    def on_train_start(self) -> None:
        """Put the seeded sampler at the (restored) global step: data order continues exactly."""
        dm = getattr(self.trainer, "datamodule", None)
        sampler = getattr(dm, "train_sampler", None)
        if sampler is None:  # a plain DataLoader passed to fit()
            loader = self.trainer.train_dataloader
            sampler = getattr(loader, "batch_sampler", None)
        if sampler is not None and hasattr(sampler, "start_step"):
            sampler.start_step = int(self.global_step)

    @staticmethod
    def _batch_size(batch: Any) -> int:
        return int(batch.num_crystals) if hasattr(batch, "num_crystals") else 1

    # ---- steps -------------------------------------------------------------------------------
    def _reseed(self, *parts: int) -> None:
        """Seed the RNGs this step draws from (CPU, and the current CUDA device when training there).

        ``torch.manual_seed`` would also queue a lazy seed of every accelerator back-end, which
        costs milliseconds per call; seeding only what is used keeps it cheap.
        """
        seed = step_seed(*parts)
        torch.default_generator.manual_seed(seed)
        if self.device.type == "cuda":
            torch.cuda.manual_seed(seed)

    def _log_every(self) -> int:
        return int(self.config["trainer"]["log_every"])

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self._reseed(self._seed, self.global_step, self.global_rank)
        out = self.model.loss(batch)
        loss = out["loss"]
        bs = self._batch_size(batch)
        if not torch.isfinite(loss.detach()):
            # skip the update (zero gradients through every parameter keeps DDP ranks in step);
            # give up when it keeps happening
            self._bad_steps += 1
            self._skipped += 1
            if self._bad_steps > self.max_bad_steps:
                raise FloatingPointError(f"training loss non-finite in {self._bad_steps} consecutive steps "
                                         f"(step {self.global_step}); lower optim.lr or check the data")
            return sum(p.sum() * 0.0 for p in self.model.parameters())
        self._bad_steps = 0
        if self.config["trainer"].get("progress_bar", False):
            self.log("loss", loss.detach(), on_step=True, prog_bar=True, logger=False, batch_size=bs)
        step = self.global_step + 1  # the step this update completes
        if step % self._log_every() == 0 or step == 1:
            # straight to the loggers: Lightning's per-step result bookkeeping costs ~5 ms per metric
            metrics = {f"train/{k}": float(v.detach()) for k, v in out.items() if torch.is_tensor(v) and v.numel() == 1}
            metrics["train/lr"] = float(self.trainer.optimizers[0].param_groups[0]["lr"])
            metrics["train/skipped_nonfinite"] = float(self._skipped)
            metrics["epoch"] = float(self.current_epoch)
            for logger in self.loggers:
                logger.log_metrics(metrics, step=step)
                logger.save()  # flushed now, so a killed run keeps its log
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._reseed(self._seed, 10**9 + batch_idx, self.global_rank)
        out = self.model.loss(batch)
        bs = self._batch_size(batch)
        metrics = {f"val/{k}": v.detach().float() for k, v in out.items() if torch.is_tensor(v) and v.numel() == 1}
        self.log_dict(metrics, on_step=False, on_epoch=True, sync_dist=True, batch_size=bs,
                      prog_bar=False)

    # ---- optimiser ---------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        o, t = self.config["optim"], self.config["trainer"]
        opt = torch.optim.AdamW(self.model.parameters(), lr=float(o["lr"]), weight_decay=float(o["weight_decay"]),
                                betas=tuple(float(b) for b in o["betas"]))
        if o["schedule"] == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=float(o["plateau_factor"]),
                                                               patience=int(o["plateau_patience"]))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val/loss", "interval": "step",
                                                       "frequency": int(t["val_every"]), "strict": False}}
        kw = dict(warmup=int(o["warmup_steps"]), max_steps=int(t["max_steps"]), schedule=str(o["schedule"]),
                  min_ratio=float(o["min_lr_ratio"]))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, **kw))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Linear warm-up for the plateau schedule (the other schedules include it in LambdaLR)."""
        o = self.config["optim"]
        warmup = int(o["warmup_steps"])
        if o["schedule"] == "plateau" and self.global_step <= warmup:
            factor = min(1.0, (self.global_step + 1) / warmup) if warmup > 0 else 1.0
            for group in optimizer.param_groups:
                group["lr"] = float(o["lr"]) * factor

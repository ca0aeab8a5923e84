"""A minimal single-process training loop (AdamW, warm-up + cosine LR, EMA, gradient clipping,
wall-clock budget, atomic checkpoints). ``topodiff train`` (Lightning) is the full-featured path;
this loop exists for quick experiments and for CPU-only recipes.
"""
from __future__ import annotations

import copy
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from topodiff.generative.checkpoint import save_generator
from topodiff.generative.config import ModelConfig
from topodiff.generative.data import CrystalTorchDataset, batch_from_dataset
from topodiff.generative.model import CrystalDiffusion



@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float, trainable_only: bool = False) -> None:
    """``ema ← decay·ema + (1 − decay)·model`` for parameters (only those that train with
    ``trainable_only``); buffers (data statistics) are copied."""
    for pe, pm in zip(ema.parameters(), model.parameters()):
        if pm.requires_grad or not trainable_only:
            pe.mul_(decay).add_(pm.detach(), alpha=1 - decay)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)

def train_generator(dataset: CrystalTorchDataset, out_dir: str | Path, cfg: ModelConfig, *, batch_size: int = 128,
                    lr: float = 1e-3, weight_decay: float = 0.0, max_steps: int = 100000, max_minutes: float = 30.0,
                    warmup: int = 200, ema_decay: float = 0.999, grad_clip: float = 1.0, seed: int = 0,
                    checkpoint_every: int = 1000, log_every: int = 100, recipe: dict[str, Any] | None = None
                    ) -> CrystalDiffusion:
    """Train on ``dataset`` until ``max_steps`` or ``max_minutes``; writes ``out_dir/last.ckpt`` (EMA weights).

    The LR decays with a cosine to 5 % over the fraction of the budget used (steps or wall-clock
    time, whichever is larger).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    model = CrystalDiffusion(cfg)
    model.fit_statistics(**dataset.statistics())
    ema = copy.deepcopy(model).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    n = len(dataset)
    perm, pos = rng.permutation(n), 0
    t0 = time.time()
    budget = max_minutes * 60
    config = {"model": cfg.to_dict(), "train": {"batch_size": batch_size, "lr": lr, "max_steps": max_steps,
                                                 "max_minutes": max_minutes, "ema_decay": ema_decay, "seed": seed}}
    step = 0
    run = {}
    while step < max_steps and time.time() - t0 < budget:
        if pos + batch_size > n:
            perm, pos = rng.permutation(n), 0
        batch = batch_from_dataset(dataset, perm[pos:pos + batch_size])
        pos += batch_size
        # cosine over whichever budget binds first: steps or wall-clock time
        frac = min(1.0, max(step / max(1, max_steps), (time.time() - t0) / budget))
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        model.train()
        out = model.loss(batch)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        step += 1
        ema_update(ema, model, min(ema_decay, (1 + step) / (10 + step)))
        for k, v in out.items():
            fv = float(v.detach())
            run[k] = 0.98 * run.get(k, fv) + 0.02 * fv
        if step % log_every == 0 or step in (10, 50):
            msg = " ".join(f"{k}={v:.4f}" for k, v in run.items())
            print(f"step {step} t={time.time() - t0:.0f}s lr={opt.param_groups[0]['lr']:.2e} {msg}", file=sys.stderr, flush=True)
        if step % checkpoint_every == 0:
            save_generator(ema, config, out_dir / "last.ckpt", recipe, {"global_step": step})
    save_generator(ema, config, out_dir / "last.ckpt", recipe, {"global_step": step})
    print(f"done: {step} steps in {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    return ema


def main(argv: list[str] | None = None) -> None:
    """``python -m topodiff.generative.trainer --train CSV --out DIR [--minutes M] [--batch-size B]
    [--lr LR] [--steps S] [--seed S] [model.KEY=VALUE ...]``."""
    import argparse

    from topodiff.crystal.dataset import load_dataset

    ap = argparse.ArgumentParser(prog="python -m topodiff.generative.trainer")
    ap.add_argument("--train", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--steps", type=int, default=100000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("overrides", nargs="*", help="model.KEY=VALUE")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    fields = ModelConfig.__dataclass_fields__
    kw: dict[str, Any] = {}
    for item in args.overrides:
        key, _, value = item.partition("=")
        key = key.removeprefix("model.")
        if key not in fields:
            raise SystemExit(f"error: unknown model key {key!r}")
        typ = type(getattr(ModelConfig(), key))
        kw[key] = (value.lower() in ("1", "true", "yes")) if typ is bool else (
            [v for v in value.split(",") if v] if typ is list else typ(value))
    cfg = ModelConfig(**kw)
    ds = CrystalTorchDataset(load_dataset(args.train))
    recipe = {"command": "python -m topodiff.generative.trainer " + " ".join(argv or sys.argv[1:]), "train_data": args.train}
    train_generator(ds, args.out, cfg, batch_size=args.batch_size, lr=args.lr, max_steps=args.steps,
                    max_minutes=args.minutes, ema_decay=args.ema, seed=args.seed, recipe=recipe)


if __name__ == "__main__":
    main()

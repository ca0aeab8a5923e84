"""Training throughput (crystals/s) of `topodiff train` with configs/perov5.yaml on this machine.

    .venv/bin/python benchmarks/bench_training.py [--steps 40] [--threads 2] [KEY=VALUE ...]

Runs the real training loop (Lightning, AdamW, EMA, checkpoints, validation off) on Perov-5
(``../shared/data/perov_5/val.csv``) for ``--steps`` optimiser steps in a temporary directory and
prints one JSON object: crystals/s and s/step over all steps but the first (which pays one-off
costs), plus the wall time including start-up. Exits 0 with a ``skipped`` reason when the data is
absent.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]


def plain_loop_rate(cfg, train_set, steps: int) -> float:
    """Crystals/s of a bare ``loss → backward → clip → AdamW step`` loop on the same batches."""
    import torch

    from topodiff.training.config import to_container
    from topodiff.training.datasets import StepBatchSampler
    from topodiff.training.lightning_module import build_model

    torch.manual_seed(0)
    model = build_model(to_container(cfg))
    model.fit_statistics(**train_set.statistics())
    opt = torch.optim.AdamW(model.parameters(), lr=float(cfg.optim.lr))
    sampler = StepBatchSampler(len(train_set), int(cfg.data.batch_size), int(cfg.trainer.seed))
    crystals, t0 = 0, None
    for step in range(steps):
        if step == 1:
            t0 = time.perf_counter()
        batch = train_set.__getitems__(sampler.batch_for_step(step))
        loss = model.loss(batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(cfg.optim.grad_clip) or 1e9)
        opt.step()
        crystals += batch.num_crystals if step >= 1 else 0
    return crystals / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "configs" / "perov5.yaml"))
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    ap.add_argument("--baseline", action="store_true",
                    help="also time a plain PyTorch loop (same model, batches, AdamW) to show the loop's overhead")
    ap.add_argument("overrides", nargs="*", help="extra KEY=VALUE config overrides")
    args = ap.parse_args(argv)

    data = REPO / ".." / "shared" / "data" / "perov_5" / "val.csv"
    if not data.is_file():
        print(json.dumps({"skipped": f"Perov-5 data not found at {data} (see ../shared/data/README.md)"}))
        return 0
    from topodiff.training.config import load_config
    from topodiff.training.datasets import build_datasets
    from topodiff.training.run import train

    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"data.train={data}", f"output_dir={tmp}", f"trainer.max_steps={args.steps}",
                     f"trainer.checkpoint_every={args.steps}", "data.val_fraction=0", "trainer.progress_bar=false",
                     f"trainer.num_threads={args.threads}", *args.overrides]
        cfg = load_config(args.config, overrides)
        t0 = time.perf_counter()
        datasets = build_datasets(cfg.data)
        t_data = time.perf_counter() - t0
        summary = train(cfg, datasets=datasets)
        wall = time.perf_counter() - t0
    rate = summary["crystals_per_s"]
    baseline = plain_loop_rate(cfg, datasets[0], args.steps) if args.baseline else None
    result = {
        "benchmark": "training throughput, Perov-5 (val.csv)",
        "config": os.path.relpath(args.config, REPO),
        "overrides": args.overrides,
        "steps": summary["global_step"],
        "batch_size": int(cfg.data.batch_size),
        "model": {k: cfg.model[k] for k in ("hidden", "layers", "heads", "pair_dim") if k in cfg.model},
        "precision": str(cfg.trainer.precision),
        "threads": summary["threads"],
        "crystals_per_s": round(rate, 2) if rate else None,
        "s_per_step": round(int(cfg.data.batch_size) / rate, 4) if rate else None,
        "plain_loop_crystals_per_s": round(baseline, 2) if baseline else None,
        "data_load_s": round(t_data, 2),
        "wall_s": round(wall, 2),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

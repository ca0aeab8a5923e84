"""The output directory of a training run: owned by one run, continued only by ``--resume`` of it.

Light on imports (no Lightning) so the CLI can claim the directory before any computing.
"""
from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, ListConfig

from topodiff.generative.config import ADDED_MODEL_SETTINGS, SAMPLER_SETTINGS
from topodiff.io_utils import claim_output_dir, fingerprint
from topodiff.training.config import to_container

# keys that may change between launches of one run (how long, how often to save/log, which hardware,
# how the model samples); data paths are replaced by the contents of the files they name
RUN_CONTROL_KEYS = {"trainer": ("max_steps", "max_minutes", "checkpoint_every", "keep_last", "log_every",
                                "progress_bar", "num_threads", "accelerator", "devices", "num_nodes", "strategy"),
                    "data": ("num_workers", "train", "val"), "model": SAMPLER_SETTINGS}


def is_rank_zero_launch() -> bool:
    """True in the process a user started (not a DDP/SLURM worker rank that re-runs the command)."""
    return all(os.environ.get(var, "0") == "0" for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def run_fingerprint(cfg: DictConfig) -> str:
    """Fingerprint of a training run: the contents of its data files and ``init_from`` checkpoint, every
    setting that shapes the trajectory, and the topodiff version (not :data:`RUN_CONTROL_KEYS`)."""
    config = to_container(cfg)
    for section, keys in RUN_CONTROL_KEYS.items():
        for key in keys:
            config[section].pop(key, None)
    config.pop("output_dir", None)
    model = config.get("model", {})
    for key, legacy in ADDED_MODEL_SETTINGS.items():  # a run started before the key keeps its fingerprint
        if model.get(key, legacy) == legacy:
            model.pop(key, None)
    train = cfg.data.train
    sources = [str(x) for x in (train if isinstance(train, (list, ListConfig)) else [train])]
    if cfg.data.val:
        sources.append(str(cfg.data.val))
    init = str(cfg.get("init_from") or "")
    if init and Path(init).is_file():
        sources.append(init)
    return fingerprint(sources=sources, options=config)


def claim_run_dir(cfg: DictConfig, *, resume: bool, overwrite: bool = False) -> Path:
    """Own ``cfg.output_dir`` for this run (:func:`topodiff.io_utils.claim_output_dir`): a fresh run needs
    an empty or missing directory (or ``overwrite``); ``resume`` continues only the same run."""
    out = Path(cfg.output_dir)
    if not is_rank_zero_launch():
        return out
    control = [f"{section}.{key}" for section, keys in RUN_CONTROL_KEYS.items() for key in keys]
    return claim_output_dir(out, job="train", fingerprint=run_fingerprint(cfg), overwrite=overwrite,
                            resume=resume, exempt=control)

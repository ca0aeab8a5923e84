"""Fine-tuning: add property condition(s) to a trained generator through zero-init adapters.

The base generator (shipped name or checkpoint file) is copied with one
:class:`~topodiff.generative.adapters.PropertyAdapter` per new property and trained on a labelled
CSV with the ordinary denoising loss. Labels may be sparse: a row whose property is NaN uses the
adapter's null embedding and so trains the unconditional branch, as do rows dropped with probability
``p_uncond`` (classifier-free guidance). By default only the new adapters are trained; the base
weights stay bit-identical. The result is a ``topodiff-generator/1`` checkpoint that ``topodiff
generate --condition KEY=VALUE`` accepts.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from topodiff.errors import TopodiffInputError
from topodiff.generative.adapters import adapter_parameters, add_adapters
from topodiff.generative.checkpoint import load_generator, resolve_checkpoint, save_generator
from topodiff.generative.data import CrystalTorchDataset, batch_from_dataset
from topodiff.generative.embeddings import CONDITION_KINDS
from topodiff.training.ema import WeightEMA


def labelled_rows(dataset: CrystalTorchDataset, name: str) -> int:
    """Rows of ``dataset`` with a (non-NaN) value of condition ``name``; unknown columns count 0."""
    value = dataset.conditions.get(name)
    if value is None:
        return 0
    value = np.asarray(value, dtype=np.float64)
    nan = np.isnan(value) if value.ndim == 1 else np.isnan(value).any(-1)
    return int((~nan).sum())


def _is_number(text: Any) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def check_property_columns(arrays: Any, properties: list[str], source: Path) -> None:
    """Refuse text in a numeric property column and unknown ``topo_class`` names (they would silently
    become unlabelled rows)."""
    from topodiff.generative.data import CSV_ALIASES

    labels = getattr(arrays, "labels", None) or {}
    for prop in properties:
        if CONDITION_KINDS[prop][0] == "scalar" or prop == "space_group":
            for column in CSV_ALIASES.get(prop, (prop,)):
                if column in labels:
                    sample = next((v for v in labels[column] if v not in (None, "") and not _is_number(v)), None)
                    raise TopodiffInputError(f"{source}: column {column!r} holds text (e.g. {sample!r}); "
                                             f"--property {prop} needs numbers (empty = unlabelled)")
        if prop == "topo_class" and prop in labels:
            from topodiff.generative.embeddings import TOPO_CLASSES

            bad = sorted({str(v) for v in labels[prop] if v not in (None, "") and v not in TOPO_CLASSES})
            if bad:
                raise TopodiffInputError(f"{source}: unknown topo_class value(s) {bad[:5]}; "
                                         f"allowed: {', '.join(TOPO_CLASSES)}")


def finetune(checkpoint: str | Path | None, data_csv: str | Path, properties: list[str], out: str | Path, *,
             steps: int = 500, batch_size: int = 64, lr: float = 1e-3, seed: int = 0, train_base: bool = False,
             p_uncond: float = 0.2, ema_decay: float = 0.999, warmup: int = 50, grad_clip: float = 1.0,
             command: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Fine-tune ``checkpoint`` on ``data_csv`` so that it also accepts ``properties`` as conditions.

    Parameters
    ----------
    checkpoint : base generator, a ``.ckpt`` file or a shipped name (``None``: the default).
    data_csv : crystals with a ``cif`` column and the property columns (band gap in eV under
        ``band_gap``/``ind_gap``/``dir_gap``/``gap``; NaN = unlabelled).
    properties : new condition keys (see :data:`CONDITION_KINDS`), not yet known to the base.
    out : the written ``topodiff-generator/1`` checkpoint (atomically; EMA weights).
    steps, batch_size, lr, seed : optimisation (AdamW, linear warm-up over ``warmup`` steps then cosine to 5 %).
    train_base : also train the base weights (default: only the new adapters).
    p_uncond : probability of dropping all conditions of a training row to the null embeddings.
    ema_decay : EMA of the weights saved (``0``: no EMA); early steps use ``min(decay, (1+s)/(10+s))``.

    Returns a summary ``{"out", "steps", "labelled_rows", "num_rows", "trainable_parameters", "final_loss",
    "wall_time_s"}``. Bad input raises :class:`TopodiffInputError`.
    """
    from topodiff.crystal.dataset import load_dataset

    properties = [str(p) for p in properties]
    if not properties:
        raise TopodiffInputError("give at least one --property")
    for p in properties:
        if p not in CONDITION_KINDS:
            raise TopodiffInputError(f"unknown property {p!r}; known: {', '.join(CONDITION_KINDS)}")
    if steps <= 0:
        raise TopodiffInputError(f"--steps must be positive, got {steps}")
    if batch_size <= 0:
        raise TopodiffInputError(f"--batch-size must be positive, got {batch_size}")
    if not lr > 0:
        raise TopodiffInputError(f"--lr must be positive, got {lr}")
    if not 0.0 <= p_uncond < 1.0:
        raise TopodiffInputError(f"p_uncond must be in [0, 1), got {p_uncond}")
    data_csv = Path(data_csv)
    if not data_csv.is_file():
        raise TopodiffInputError(f"data file not found: {data_csv}")
    base_path = resolve_checkpoint(checkpoint)
    base, base_config = load_generator(base_path)
    already = [p for p in properties if p in base.cfg.conditions]
    if already:
        raise TopodiffInputError(f"the base model {base_path.name} is already conditioned on {', '.join(already)}")

    arrays = load_dataset(data_csv)
    check_property_columns(arrays, properties, data_csv)
    dataset = CrystalTorchDataset(arrays)
    n = len(dataset)
    counts = {p: labelled_rows(dataset, p) for p in properties}
    for p, c in counts.items():
        if c == 0:
            raise TopodiffInputError(f"{data_csv} has no labelled rows of property {p!r} (no column, or all NaN)")
    if int(dataset.num_atoms.max()) > base.cfg.max_atoms:
        raise TopodiffInputError(f"{data_csv} has a crystal with {int(dataset.num_atoms.max())} atoms > "
                                 f"max_atoms={base.cfg.max_atoms} of the base model")

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = add_adapters(base, properties)
    model.cfg.p_uncond = float(p_uncond)
    if model.cfg.default_guidance == 0.0:
        # `generate` uses default_guidance when a condition is given; with CFG as out_u + γ (out_c − out_u)
        # γ = 0 would ignore the new condition, γ = 1 samples the conditional model
        model.cfg.default_guidance = 1.0
    trainable = list(model.parameters()) if train_base else adapter_parameters(model, properties)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in trainable:
        p.requires_grad_(True)
    ema = WeightEMA(model, ema_decay) if ema_decay > 0 else None
    opt = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)

    from topodiff.progress import progress as progress_bar

    perm, pos = rng.permutation(n), 0
    run: dict[str, float] = {}
    t0 = time.time()
    bar = progress_bar(range(steps), desc="finetune", enabled=None if progress else False)
    for step in bar:
        if pos + batch_size > n:
            perm, pos = rng.permutation(n), 0
        batch = batch_from_dataset(dataset, perm[pos:pos + batch_size])
        pos += batch_size
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / max(1, warmup)) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        model.train()
        loss = model.loss(batch, gen)
        if not torch.isfinite(loss["loss"]):
            raise RuntimeError(f"non-finite loss at step {step}")
        opt.zero_grad(set_to_none=True)
        loss["loss"].backward()
        torch.nn.utils.clip_grad_norm_(trainable, grad_clip)
        opt.step()
        if ema is not None:
            ema.update(step + 1)
        for k, v in loss.items():
            fv = float(v.detach())
            run[k] = 0.95 * run.get(k, fv) + 0.05 * fv
        bar.set_postfix(loss=f"{run['loss']:.4f}", refresh=False)
    bar.close()
    wall = time.time() - t0

    final = model.eval()
    if ema is not None:
        final.load_state_dict(ema.state)
    for p in final.parameters():
        p.requires_grad_(True)
    config = {k: v for k, v in base_config.items() if k != "checkpoint_path"}
    settings = {"base": str(checkpoint) if checkpoint is not None else base_path.stem, "base_path": str(base_path),
                "data": str(data_csv), "properties": properties, "steps": int(steps), "batch_size": int(batch_size),
                "lr": float(lr), "seed": int(seed), "train_base": bool(train_base), "p_uncond": float(p_uncond),
                "ema_decay": float(ema_decay), "labelled_rows": counts, "num_rows": n}
    config["finetune"] = settings
    recipe = {"description": f"{base_path.stem} fine-tuned with adapter condition(s) {', '.join(properties)}",
              "command": command or f"finetune(checkpoint={checkpoint!r}, data_csv={str(data_csv)!r}, "
                                    f"properties={properties!r}, steps={steps}, batch_size={batch_size}, lr={lr}, "
                                    f"seed={seed}, train_base={train_base})",
              **settings, "final_loss": {k: round(v, 5) for k, v in run.items()}, "wall_time_s": round(wall, 1)}
    path = save_generator(final, config, out, recipe, {"global_step": int(steps)})
    return {"out": str(path), "steps": int(steps), "labelled_rows": counts, "num_rows": n,
            "trainable_parameters": int(sum(p.numel() for p in trainable)),
            "final_loss": {k: float(v) for k, v in run.items()}, "wall_time_s": wall}

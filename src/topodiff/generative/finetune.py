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

from pathlib import Path
from typing import Any

import numpy as np
import torch

from topodiff.errors import TopodiffInputError
from topodiff.generative.adapters import adapter_parameters, add_adapters
from topodiff.generative.checkpoint import load_generator, resolve_checkpoint, save_generator
from topodiff.generative.data import CrystalTorchDataset
from topodiff.generative.embeddings import CONDITION_KINDS


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


def _train_adapters(model: torch.nn.Module, dataset: CrystalTorchDataset, out: Path, *, steps: int,
                    batch_size: int, lr: float, seed: int, ema_decay: float, warmup: int, grad_clip: float,
                    progress: bool) -> tuple[dict[str, float], float]:
    """Train ``model``'s parameters that require grad with ``topodiff train``'s Lightning loop
    (:func:`topodiff.training.run.train`: AdamW, warm-up + cosine to 5 %, gradient clipping, EMA) and
    load the EMA weights into it. The run directory is temporary, beside ``out``. Returns
    ``({"loss": last training loss}, wall seconds)``.
    """
    import tempfile

    from topodiff.training.checkpoint_files import safe_load
    from topodiff.training.config import load_config
    from topodiff.training.datasets import BatchedCrystalDataset
    from topodiff.training.run import train

    out.parent.mkdir(parents=True, exist_ok=True)
    model.train()  # a loaded base is in eval mode; Lightning keeps the mode it finds
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.run-", dir=out.parent) as run_dir:
        cfg = load_config(None, [
            f"output_dir={run_dir}", f"trainer.max_steps={steps}", f"trainer.seed={seed}",
            f"trainer.checkpoint_every={steps}", "trainer.keep_last=1", f"trainer.log_every={max(1, steps // 20)}",
            f"trainer.progress_bar={bool(progress)}", f"trainer.num_threads={torch.get_num_threads()}",
            f"data.batch_size={min(batch_size, len(dataset))}", "data.val_fraction=0", f"optim.lr={lr}",
            "optim.weight_decay=0.0", f"optim.warmup_steps={warmup}", "optim.schedule=cosine",
            "optim.min_lr_ratio=0.05", f"optim.grad_clip={grad_clip}", f"ema.decay={ema_decay}"])
        summary = train(cfg, model=model, datasets=(BatchedCrystalDataset(dataset), None), fit_statistics=False)
        state = safe_load(summary["last_checkpoint"])["ema_state_dict"]
    model.load_state_dict({k: v.to(model.state_dict()[k].device) for k, v in state.items()})
    loss = summary["train_loss"]
    return ({"loss": float(loss)} if loss is not None else {}), float(summary["wall_s"])


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
    properties = [str(p) for p in properties]
    _check_options(properties, steps, batch_size, lr, p_uncond)
    data_csv = Path(data_csv)
    if not data_csv.is_file():
        raise TopodiffInputError(f"data file not found: {data_csv}")
    base_path = resolve_checkpoint(checkpoint)
    base, base_config = load_generator(base_path)
    already = [p for p in properties if p in base.cfg.conditions]
    if already:
        raise TopodiffInputError(f"the base model {base_path.name} is already conditioned on {', '.join(already)}")
    dataset, counts = _labelled_dataset(data_csv, properties, base.cfg.max_atoms)
    n = len(dataset)

    torch.manual_seed(seed)
    model, trainable = _adapted_model(base, properties, p_uncond, train_base)
    opts = dict(steps=steps, batch_size=batch_size, lr=lr, seed=seed, ema_decay=ema_decay, warmup=warmup,
                grad_clip=grad_clip, progress=progress)
    run, wall = _train_adapters(model, dataset, Path(out), **opts)

    final = model.eval()
    for p in final.parameters():
        p.requires_grad_(True)
    settings = {"base": str(checkpoint) if checkpoint is not None else base_path.stem, "base_path": str(base_path),
                "data": str(data_csv), "properties": properties, "steps": int(steps), "batch_size": int(batch_size),
                "lr": float(lr), "seed": int(seed), "train_base": bool(train_base), "p_uncond": float(p_uncond),
                "ema_decay": float(ema_decay), "labelled_rows": counts, "num_rows": n}
    config = {**{k: v for k, v in base_config.items() if k != "checkpoint_path"}, "finetune": settings}
    call = (f"finetune(checkpoint={checkpoint!r}, data_csv={str(data_csv)!r}, properties={properties!r}, "
            f"steps={steps}, batch_size={batch_size}, lr={lr}, seed={seed}, train_base={train_base})")
    recipe = {"description": f"{base_path.stem} fine-tuned with adapter condition(s) {', '.join(properties)}",
              "command": command or call, **settings, "final_loss": {k: round(v, 5) for k, v in run.items()},
              "wall_time_s": round(wall, 1)}
    path = save_generator(final, config, out, recipe, {"global_step": int(steps)})
    return {"out": str(path), "steps": int(steps), "labelled_rows": counts, "num_rows": n,
            "trainable_parameters": int(sum(p.numel() for p in trainable)),
            "final_loss": {k: float(v) for k, v in run.items()}, "wall_time_s": wall}


def _adapted_model(base: Any, properties: list[str], p_uncond: float, train_base: bool) -> tuple[Any, list[Any]]:
    """``base`` with adapters for ``properties`` and the parameters to train (only the adapters'
    unless ``train_base``); the rest is frozen. A base without guidance gets ``default_guidance`` 1."""
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
    return model, trainable


def _check_options(properties: list[str], steps: int, batch_size: int, lr: float, p_uncond: float) -> None:
    """Raise :class:`TopodiffInputError` for an unusable fine-tuning option."""
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


def _labelled_dataset(data_csv: Path, properties: list[str], max_atoms: int) -> tuple[Any, dict[str, int]]:
    """The crystals of ``data_csv`` as a ``CrystalTorchDataset`` and the labelled rows per property;
    a property without labels or a cell above the base model's ``max_atoms`` raises."""
    from topodiff.crystal.dataset import load_dataset

    arrays = load_dataset(data_csv)
    check_property_columns(arrays, properties, data_csv)
    dataset = CrystalTorchDataset(arrays)
    counts = {p: labelled_rows(dataset, p) for p in properties}
    for p, c in counts.items():
        if c == 0:
            raise TopodiffInputError(f"{data_csv} has no labelled rows of property {p!r} (no column, or all NaN)")
    if int(dataset.num_atoms.max()) > max_atoms:
        raise TopodiffInputError(f"{data_csv} has a crystal with {int(dataset.num_atoms.max())} atoms > "
                                 f"max_atoms={max_atoms} of the base model")
    return dataset, counts

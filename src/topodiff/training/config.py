"""One typed configuration schema for training (dataclasses + OmegaConf structured config).

``TrainConfig`` has five sections (``data``, ``model``, ``optim``, ``trainer``, ``ema``) and
``output_dir``. The ``model`` section is the generator's ``ModelConfig`` dataclass. A config is
built from the defaults, then a YAML file, then dotted ``key=value`` overrides; an unknown key or a
value of the wrong type raises :class:`TopodiffInputError` naming the key. ``to_yaml`` writes the
complete config with a comment on every key, and reading it back gives the same config.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf import errors as oc_errors

from topodiff.errors import TopodiffInputError
from topodiff.io_utils import atomic_write_text

PRECISIONS = ("32", "bf16-mixed", "16-mixed")
SCHEDULES = ("cosine", "plateau", "constant")
STRATEGIES = ("auto", "ddp", "ddp_spawn")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
DEFAULT_TRAIN = "../shared/data/perov_5/val.csv"


def _f(default: Any, help: str) -> Any:
    """A dataclass field with a default (copied when mutable) and a one-line help string."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class DataConfig:
    """Where the crystals come from and how they are batched."""

    train: Any = _f(DEFAULT_TRAIN, "training data: CDVAE-style CSV, extxyz or dataset cache path, or a list of them")
    val: Optional[str] = _f(None, "validation data path; null = hold out val_fraction of the training rows")
    val_fraction: float = _f(0.05, "fraction of training rows held out for validation when val is null (0 = no validation)")
    split_seed: int = _f(0, "seed of the train/validation split")
    max_train_rows: int = _f(0, "use at most this many training rows (0 = all)")
    max_val_rows: int = _f(512, "use at most this many validation rows (0 = all)")
    batch_size: int = _f(64, "crystals per optimiser step per device")
    val_batch_size: int = _f(0, "crystals per validation batch (0 = batch_size)")
    size_buckets: int = _f(0, "group crystals of similar size: sort each run of size_buckets global batches by "
                              "atom count before batching (0 = off; padding costs ~n_max² per crystal)")
    num_workers: int = _f(0, "DataLoader worker processes per device (0 = load in the main process)")
    oversample: dict = _f({}, "repeat rare labelled crystals within each epoch: {label column: {value: integer "
                              "factor >= 1}}, e.g. {catalogue_class: {ti: 4, tci: 4}} (empty = every crystal once)")


@dataclass
class OptimConfig:
    """AdamW with linear warm-up and a learning-rate schedule."""

    lr: float = _f(1.0e-3, "peak learning rate of AdamW")
    weight_decay: float = _f(0.0, "AdamW decoupled weight decay")
    betas: list = _f([0.9, 0.999], "AdamW (beta1, beta2)")
    warmup_steps: int = _f(100, "linear warm-up from 0 to lr over this many optimiser steps")
    schedule: str = _f("cosine", "after warm-up: cosine (to min_lr_ratio*lr at max_steps) | plateau (on val/loss) | constant")
    min_lr_ratio: float = _f(0.05, "cosine: final learning rate as a fraction of lr")
    plateau_factor: float = _f(0.5, "plateau: multiply lr by this when val/loss stops improving")
    plateau_patience: int = _f(5, "plateau: validations without improvement before lowering lr")
    grad_clip: float = _f(1.0, "clip the global gradient norm to this value (0 = no clipping)")


@dataclass
class TrainerConfig:
    """Steps, checkpoints, precision and devices (passed to Lightning's Trainer)."""

    max_steps: int = _f(2000, "total optimiser steps of the run (a resumed run continues to this number)")
    max_minutes: float = _f(0.0, "also stop after this many minutes of this launch, with a final checkpoint (0 = no limit); the LR schedule still spans max_steps")
    checkpoint_every: int = _f(200, "write step=NNNNNN.ckpt and last.ckpt every this many steps (and at the end)")
    keep_last: int = _f(3, "keep this many newest step=NNNNNN.ckpt files (last.ckpt is kept too)")
    val_every: int = _f(200, "run validation (EMA weights) every this many steps")
    log_every: int = _f(20, "log training losses every this many steps")
    precision: str = _f("32", "the one precision setting: 32 | bf16-mixed | 16-mixed (GPU); coordinates, lattices and reductions stay fp32")
    accelerator: str = _f("auto", "auto | cpu | gpu")
    devices: Any = _f("auto", "devices per node: an integer or auto")
    num_nodes: int = _f(1, "number of nodes (SLURM sets the rest of the environment)")
    strategy: str = _f("auto", "auto (DDP when devices x nodes > 1) | ddp | ddp_spawn")
    seed: int = _f(0, "seed of weights, data order and diffusion noise (each step's noise depends on seed, step, rank)")
    num_threads: int = _f(0, "CPU threads for torch per process (0 = CPU cores / processes on this node)")
    progress_bar: bool = _f(True, "show a progress bar on stderr")


@dataclass
class EMAConfig:
    """Exponential moving average of the weights, used for validation and saved in checkpoints."""

    decay: float = _f(0.999, "EMA decay per step (0 = no EMA); early steps use min(decay, (1+step)/(10+step))")


def _default_model_config() -> Any:
    """The generator's ``ModelConfig`` defaults (empty when the generator is not importable)."""
    try:
        from topodiff.generative.config import ModelConfig
    except ImportError:  # generator not installed: the model section stays free-form
        return {}
    return ModelConfig()


@dataclass
class TrainConfig:
    """The complete training configuration."""

    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "training data"})
    model: Any = field(default_factory=_default_model_config,
                       metadata={"help": "generator hyper-parameters (topodiff.generative.config.ModelConfig)"})
    optim: OptimConfig = field(default_factory=OptimConfig, metadata={"help": "optimiser and learning-rate schedule"})
    trainer: TrainerConfig = field(default_factory=TrainerConfig, metadata={"help": "steps, checkpoints, precision, devices"})
    ema: EMAConfig = field(default_factory=EMAConfig, metadata={"help": "exponential moving average of the weights"})
    output_dir: str = field(default="runs/train", metadata={"help": "checkpoints, resolved config.yaml and logs go here"})
    init_from: str = field(default="", metadata={"help": "start from the weights of this generator checkpoint (file or "
                                                         "shipped name; same model settings, or these plus a "
                                                         "zero-initialised extension such as model.species_copy or "
                                                         "model.pair_messages; "
                                                         "fresh optimiser and step counter; ignored when --resume "
                                                         "finds a checkpoint)"})


# --------------------------------------------------------------------------------------------
# building a config

def default_config() -> DictConfig:
    """The default config as a structured (type-checked, closed) ``DictConfig``."""
    return OmegaConf.structured(TrainConfig)


def _describe(exc: Exception, source: str) -> TopodiffInputError:
    key = getattr(exc, "full_key", None) or ""
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, oc_errors.ConfigKeyError) or "not in" in msg:
        return TopodiffInputError(f"{source}: unknown config key {key!r} ({msg})")
    return TopodiffInputError(f"{source}: bad value for config key {key!r}: {msg}")


def parse_overrides(items: list[str] | None) -> list[str]:
    """Check that each override is ``dotted.key=value`` and return them unchanged."""
    out = []
    for item in items or []:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip() or key.startswith("-"):
            raise TopodiffInputError(f"override must be dotted.key=value, got {item!r}")
        out.append(item)
    return out


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> DictConfig:
    """Defaults ← YAML file ← ``key=value`` overrides, type-checked and validated.

    Raises :class:`TopodiffInputError` naming the key for an unknown key or a wrong type.
    """
    cfg = default_config()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise TopodiffInputError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_bytes().decode("utf-8"))
        except UnicodeDecodeError:
            raise TopodiffInputError(f"{p}: not a YAML config (not UTF-8 text)") from None
        except yaml.YAMLError as exc:
            raise TopodiffInputError(f"{p}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise TopodiffInputError(f"{p}: a config must be a YAML mapping")
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.create(loaded))
        except (oc_errors.OmegaConfBaseException, ValueError, TypeError) as exc:
            raise _describe(exc, str(p)) from None
    for item in parse_overrides(overrides):
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([item]))
        except (oc_errors.OmegaConfBaseException, ValueError, TypeError) as exc:
            raise _describe(exc, f"override {item!r}") from None
    validate(cfg)
    return cfg


def _positive(cfg: DictConfig, key: str, *, allow_zero: bool = False) -> None:
    value = OmegaConf.select(cfg, key)
    if not (value > 0 or (allow_zero and value == 0)) or (isinstance(value, float) and not math.isfinite(value)):
        raise TopodiffInputError(f"config key {key!r} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def _non_finite(node: Any, prefix: str = "") -> str | None:
    """Dotted key of the first non-finite float in a plain config container (``None``: all finite)."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = ((str(i), v) for i, v in enumerate(node))
    else:
        return prefix if isinstance(node, float) and not math.isfinite(node) else None
    for key, value in items:
        found = _non_finite(value, f"{prefix}.{key}" if prefix else str(key))
        if found:
            return found
    return None


def validate(cfg: DictConfig) -> None:
    """Checks beyond types: finite numbers, allowed choices and ranges, a buildable model section.
    Raises :class:`TopodiffInputError` naming the key."""
    bad = _non_finite(OmegaConf.to_container(cfg, resolve=True))
    if bad:
        raise TopodiffInputError(f"config key {bad!r} must be a finite number, got {OmegaConf.select(cfg, bad)!r}")
    model = model_config(cfg)
    if hasattr(model, "check"):
        model.check()
    train = cfg.data.train
    items = list(train) if isinstance(train, (list, ListConfig)) else [train]
    if not items or not all(isinstance(x, str) and x for x in items):
        raise TopodiffInputError(f"config key 'data.train' must be a path or a list of paths, got {train!r}")
    choices = {"trainer.precision": PRECISIONS, "optim.schedule": SCHEDULES, "trainer.strategy": STRATEGIES,
               "trainer.accelerator": ACCELERATORS}
    for key, allowed in choices.items():
        value = str(OmegaConf.select(cfg, key))
        if value not in allowed:
            raise TopodiffInputError(f"config key {key!r} must be one of {', '.join(allowed)}; got {value!r}")
    devices = cfg.trainer.devices
    if not (devices == "auto" or (isinstance(devices, int) and not isinstance(devices, bool) and devices > 0)):
        raise TopodiffInputError(f"config key 'trainer.devices' must be a positive integer or auto, got {devices!r}")
    for key in ("trainer.max_steps", "trainer.checkpoint_every", "trainer.keep_last", "trainer.val_every",
                "trainer.log_every", "trainer.num_nodes", "data.batch_size", "optim.lr"):
        _positive(cfg, key)
    for key in ("trainer.num_threads", "data.num_workers", "data.max_train_rows", "data.max_val_rows",
                "data.val_batch_size", "data.size_buckets", "optim.warmup_steps", "optim.weight_decay", "optim.grad_clip",
                "optim.min_lr_ratio", "optim.plateau_patience", "trainer.max_minutes"):
        _positive(cfg, key, allow_zero=True)
    _check_oversample(cfg.data.oversample)
    if not 0.0 <= cfg.data.val_fraction < 1.0:
        raise TopodiffInputError(f"config key 'data.val_fraction' must be in [0, 1), got {cfg.data.val_fraction}")
    if not 0.0 <= cfg.ema.decay < 1.0:
        raise TopodiffInputError(f"config key 'ema.decay' must be in [0, 1), got {cfg.ema.decay}")
    if not 0.0 < cfg.optim.plateau_factor < 1.0:
        raise TopodiffInputError(f"config key 'optim.plateau_factor' must be in (0, 1), got {cfg.optim.plateau_factor}")
    if len(cfg.optim.betas) != 2 or not all(0.0 <= float(b) < 1.0 for b in cfg.optim.betas):
        raise TopodiffInputError(f"config key 'optim.betas' must be two numbers in [0, 1), got {list(cfg.optim.betas)}")


def _check_oversample(spec: Any) -> None:
    """``data.oversample`` is ``{column: {value: integer factor >= 1}}``."""
    for column, factors in (spec or {}).items():
        if not isinstance(factors, (dict, DictConfig)) or not factors:
            raise TopodiffInputError(f"config key 'data.oversample.{column}' must map label values to repeat factors, "
                                     f"e.g. {{ti: 4}}; got {factors!r}")
        for value, factor in factors.items():
            if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
                raise TopodiffInputError(f"config key 'data.oversample.{column}.{value}' must be an integer >= 1 "
                                         f"(times each such crystal appears per epoch), got {factor!r}")


def to_container(cfg: DictConfig) -> dict:
    """Plain ``dict`` of a config (what checkpoints store in ``hyper_parameters["config"]``)."""
    return OmegaConf.to_container(cfg, resolve=True)


def model_config(cfg: DictConfig) -> Any:
    """The ``model`` section as the generator's ``ModelConfig`` dataclass instance."""
    node = cfg.model
    if OmegaConf.get_type(node) not in (dict, None) and dataclasses.is_dataclass(OmegaConf.get_type(node)):
        return OmegaConf.to_object(node)
    from topodiff.generative.config import ModelConfig

    return ModelConfig(**OmegaConf.to_container(node, resolve=True))


# --------------------------------------------------------------------------------------------
# YAML with a comment on every key

_COMMENTED_FIELD = re.compile(r"^\s*(\w+)\s*:[^=#]*=[^#]*#\s*(.+)$")


def _field_help(cls: Any) -> dict[str, str]:
    """Help per field: ``metadata["help"]``, else the field's trailing ``# comment`` in the source."""
    helps = {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
    if helps and not all(helps.values()):
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            source = ""
        section = ""
        for line in source.splitlines():
            head = re.match(r"^\s*#\s*-+\s*(.+?)\s*-+\s*$", line)
            if head:
                section = head.group(1)
            m = _COMMENTED_FIELD.match(line)
            if m and m.group(1) in helps and not helps[m.group(1)]:
                helps[m.group(1)] = m.group(2).strip()
            bare = re.match(r"^\s*(\w+)\s*:", line)
            if not m and bare and section and bare.group(1) in helps and not helps[bare.group(1)]:
                helps[bare.group(1)] = f"{section}: {bare.group(1)}"
    doc = getattr(cls, "__doc__", "") or ""
    # numpy-style "name : type\n    description" lines in the class docstring fill missing help strings
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        name, sep, _ = line.strip().partition(" : ")
        if sep and name in helps and not helps[name]:
            nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
            helps[name] = nxt or _
    return helps


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text[:-4].strip() if text.endswith("\n...") else text.removesuffix("...").strip()


def _emit(node: Any, cls: Any, indent: int, out: list[str]) -> None:
    helps = _field_help(cls)
    pad = "  " * indent
    for key in node:
        value = node[key]
        comment = helps.get(key) or (f"{key} (see {getattr(cls, '__module__', '')}.{getattr(cls, '__name__', '')})"
                                     if dataclasses.is_dataclass(cls) else "")  # entries of a plain mapping: none
        comment = " ".join(comment.split())
        if isinstance(value, DictConfig):
            sub_cls = OmegaConf.get_type(value)
            if comment:
                out.append(f"{pad}# {comment}")
            out.append(f"{pad}{key}:")
            if len(value) == 0:
                out[-1] += " {}"
            _emit(value, sub_cls, indent + 1, out)
        else:
            plain = OmegaConf.to_container(value, resolve=True) if isinstance(value, ListConfig) else value
            out.append(f"{pad}{key}: {_scalar(plain)}" + (f"  # {comment}" if comment else ""))


def to_yaml(cfg: DictConfig, header: str | None = None) -> str:
    """The whole config as YAML with a ``#`` comment on every key."""
    out: list[str] = []
    if header:
        out.extend(f"# {line}" if line else "#" for line in header.splitlines())
    _emit(cfg, TrainConfig, 0, out)
    return "\n".join(out) + "\n"


def save_config(cfg: DictConfig, path: str | os.PathLike) -> Path:
    """Write the resolved config atomically (commented YAML)."""
    return atomic_write_text(path, to_yaml(cfg, header="resolved topodiff training config"))

"""Loading, exporting and listing generator checkpoints.

Two layouts are read:

* shipped / exported files (``format: topodiff-generator/1``): ``config`` (the full config dict; its
  ``model`` section is a :class:`ModelConfig`), ``state_dict`` (EMA weights, no prefix), ``recipe``;
* training checkpoints from ``topodiff train`` (Lightning): ``hyper_parameters["config"]`` and EMA
  weights under ``ema_state_dict`` (preferred) or ``state_dict`` keys prefixed ``ema_model.`` / ``model.``.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

import torch

from topodiff.errors import TopodiffInputError
from topodiff.generative.config import SAMPLER_SETTINGS, ModelConfig
from topodiff.io_utils import atomic_write, atomic_write_json

FORMAT = "topodiff-generator/1"
CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
DEFAULT_CHECKPOINT = "default"
#: what `topodiff csp` / `csp_to_dir` use without a checkpoint: CSP on Materials Project compositions
DEFAULT_CSP_CHECKPOINT = "mp20-csp"
#: shipped files beside the generators that are other models (property predictors, formula models)
COMPANION_SUFFIXES = (".predictor.ckpt", ".formula.ckpt")


def list_checkpoints() -> list[dict[str, Any]]:
    """Shipped checkpoints: ``[{"name", "path", "size_bytes", "recipe", "formula_model"}]`` sorted by name
    (``formula_model``: the companion ``<name>.formula.ckpt`` that ``generate`` uses, or None)."""
    from topodiff.generative.formula_model import formula_model_path

    out = []
    for p in sorted(CHECKPOINT_DIR.glob("*.ckpt")):
        if p.name.endswith(COMPANION_SUFFIXES):
            continue  # predictors and formula models (topodiff.generative.predictor, .formula_model), not generators
        recipe_path = p.with_suffix(".json")
        recipe = json.loads(recipe_path.read_text()) if recipe_path.exists() else {}
        formulas = formula_model_path("auto", p)
        out.append({"name": p.stem, "path": str(p), "size_bytes": p.stat().st_size, "recipe": recipe,
                    "formula_model": None if formulas is None else str(formulas)})
    return out


def resolve_shipped_file(path_or_name: str | os.PathLike, suffix: str, what: str) -> Path:
    """A file path, or the name of a file shipped as ``CHECKPOINT_DIR/<name><suffix>``; else a clear
    error naming the shipped ones (``what``: e.g. "predictor")."""
    p = Path(path_or_name)
    if p.is_file():
        return p
    shipped = CHECKPOINT_DIR / f"{path_or_name}{suffix}"
    if shipped.is_file():
        return shipped
    names = ", ".join(sorted(q.name[:-len(suffix)] for q in CHECKPOINT_DIR.glob(f"*{suffix}"))) or "none"
    raise TopodiffInputError(f"{what} not found: {path_or_name} (not a file; shipped: {names})")


def load_model_file(path: Path, fmt: str, what: str, build: Callable[[dict[str, Any]], Any]) -> Any:
    """A model stored as ``{"format": fmt, "config", "state_dict", "recipe"}`` (a predictor, a formula
    model), read without unpickling code; ``build(config)`` makes the empty network. Eval mode, with
    ``recipe`` and ``source`` attributes; any mismatch is a :class:`TopodiffInputError` naming ``what``."""
    from topodiff.training.checkpoint_files import load_user_checkpoint

    data = load_user_checkpoint(path, what)
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise TopodiffInputError(f"not a topodiff {what} ({fmt}): {path}")
    try:
        model = build(data["config"])
        model.load_state_dict(data["state_dict"])
    except TopodiffInputError:
        raise
    except (RuntimeError, TypeError, KeyError, ValueError) as exc:
        raise TopodiffInputError(f"{what} {path} does not fit the model: {str(exc).splitlines()[0]}") from None
    model.recipe = data.get("recipe") or {}
    model.source = str(path)
    return model.eval()


def resolve_checkpoint(path_or_name: str | os.PathLike | None) -> Path:
    """A file path, or the name of a shipped checkpoint (``None``: the default)."""
    if path_or_name is None:
        path_or_name = DEFAULT_CHECKPOINT
    p = Path(path_or_name)
    if p.is_file():
        return p
    shipped = CHECKPOINT_DIR / f"{path_or_name}.ckpt"
    if shipped.is_file() and not shipped.name.endswith(COMPANION_SUFFIXES):
        return shipped
    names = ", ".join(c["name"] for c in list_checkpoints()) or "none"
    raise TopodiffInputError(f"checkpoint not found: {path_or_name} (not a file; shipped names: {names})")


def _read(path: Path) -> dict[str, Any]:
    """The checkpoint's dict, read with :func:`safe_load` (tensors and plain data only; never code)."""
    from topodiff.training.checkpoint_files import load_user_checkpoint

    data = load_user_checkpoint(path)
    if not isinstance(data, dict):
        raise TopodiffInputError(f"not a topodiff checkpoint: {path}")
    return data


def _strip(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _extract(data: dict[str, Any], path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(full config dict, model state dict)`` of either layout."""
    if data.get("format") == FORMAT:
        config, state = data.get("config"), data.get("state_dict")
    elif "hyper_parameters" in data:
        config = (data.get("hyper_parameters") or {}).get("config")
        state = data.get("ema_state_dict")
        if not state:
            sd = data.get("state_dict") or {}
            state = _strip(sd, "ema_model.") or _strip(sd, "model.")
    else:
        raise TopodiffInputError(f"not a topodiff checkpoint (no config/weights): {path}")
    if not isinstance(config, dict) or not isinstance(state, dict) or not state:
        raise TopodiffInputError(f"checkpoint {path} lacks its config or weights")
    return dict(config), state


def load_generator(path_or_name: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
    """Load a generator: ``(CrystalDiffusion in eval mode, full config dict)``.

    ``path_or_name``: a ``.ckpt`` file (shipped/exported or from ``topodiff train``) or a shipped name.
    Missing, unreadable or mismatching files raise :class:`TopodiffInputError`.
    """
    from topodiff.generative.model import CrystalDiffusion, load_weights

    path = resolve_checkpoint(path_or_name)
    config, state = _extract(_read(path), path)
    model_cfg = config.get("model", config)
    try:
        model = CrystalDiffusion(ModelConfig.from_dict(dict(model_cfg)))
        load_weights(model, state)
    except TopodiffInputError:
        raise
    except (RuntimeError, TypeError, KeyError, ValueError) as exc:
        msg = str(exc).splitlines()[0]
        raise TopodiffInputError(f"checkpoint {path} does not fit the model: {msg}") from None
    model.eval()
    config["checkpoint_path"] = str(path)
    return model.to(device), config


def save_generator(model, config: dict[str, Any], out_path: str | os.PathLike, recipe: dict[str, Any] | None = None,
                   extra: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights + config (+ recipe) in the shipped format, atomically."""
    config = dict(config)
    config["model"] = model.cfg.to_dict()
    obj = {"format": FORMAT, "config": config, "recipe": recipe or {},
           "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
    obj.update(extra or {})
    return atomic_write(out_path, lambda fh: torch.save(obj, fh), mode="wb")


def export_generator(ckpt: str | os.PathLike, out_path: str | os.PathLike, recipe: dict[str, Any] | None = None) -> Path:
    """Strip a (training) checkpoint to EMA weights + config and write ``out_path`` plus a
    ``<name>.json`` recipe beside it. Returns the written checkpoint path."""
    model, config = load_generator(ckpt)
    config.pop("checkpoint_path", None)
    out = save_generator(model, config, out_path, recipe)
    atomic_write_json(Path(out_path).with_suffix(".json"), {"format": FORMAT, "config": config, **(recipe or {})})
    return out


def _append_note(old: str | None, note: str) -> str:
    return "; ".join(x for x in (old, note) if x)


def check_sampler_values(values: dict[str, Any]) -> dict[str, Any]:
    """Validated copy of ``values`` (:data:`SAMPLER_SETTINGS` → value of the field's type, numbers ≥ 0;
    an int is accepted for a float field); raises :class:`TopodiffInputError` otherwise."""
    unknown = sorted(set(values) - set(SAMPLER_SETTINGS))
    if unknown:
        raise TopodiffInputError(f"not sampler setting(s): {unknown}; allowed: {', '.join(SAMPLER_SETTINGS)}")
    defaults = ModelConfig()
    values = dict(values)
    for key, value in values.items():
        kind = type(getattr(defaults, key))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            values[key] = value = float(value)
        if type(value) is not kind or (kind in (int, float) and not 0 <= value < float("inf")):
            raise TopodiffInputError(f"{key} must be a{' finite non-negative' if kind in (int, float) else ''} "
                                     f"{kind.__name__}, got {value!r}")
    ModelConfig.from_dict({**ModelConfig().to_dict(), **values})  # the config's own checks (e.g. reveal order)
    return values


def parse_sampler_settings(items: list[str] | None) -> dict[str, Any]:
    """``["KEY=VALUE", ...]`` (JSON values: ``0.7``, ``true``, ``"confident"`` or a bare word) → checked settings."""
    return check_sampler_values(dict(_parse_setting(x) for x in items or []))


def _edit_exported(path_or_name: str | os.PathLike, edit: Callable[[dict[str, Any], dict[str, Any]], None]) -> Path:
    """Rewrite an exported/shipped checkpoint in place: ``edit(data, sidecar)`` changes the file's dict and
    its ``.json`` sidecar's (an empty dict when there is none); both are written atomically."""
    path = resolve_checkpoint(path_or_name)
    data = _read(path)
    if data.get("format") != FORMAT:
        raise TopodiffInputError(f"{path} is a training checkpoint; export it first (python -m {__name__} CKPT OUT)")
    sidecar = path.with_suffix(".json")
    side = json.loads(sidecar.read_text()) if sidecar.exists() else None
    edit(data, {} if side is None else side)
    atomic_write(path, lambda fh: torch.save(data, fh), mode="wb")
    if side is not None:
        atomic_write_json(sidecar, side)
    return path


def update_sampler_defaults(path_or_name: str | os.PathLike, values: dict[str, Any], note: str) -> Path:
    """Change the sampler defaults stored in an exported/shipped checkpoint, weights untouched.

    ``values``: :data:`SAMPLER_SETTINGS` → new value; ``note`` (how they were chosen) is appended to the
    recipe's ``sampler_update`` in the file and in its ``.json`` sidecar. Both are rewritten atomically.
    """
    values = check_sampler_values(values)

    def edit(data: dict[str, Any], side: dict[str, Any]) -> None:
        config = dict(data["config"])
        config["model"] = ModelConfig.from_dict({**config.get("model", {}), **values}).to_dict()
        recipe = dict(data.get("recipe") or {})
        recipe["sampler_update"] = _append_note(recipe.get("sampler_update"), note)
        data.update(config=config, recipe=recipe)
        side.update(config=config, sampler_update=_append_note(side.get("sampler_update"), note))

    return _edit_exported(path_or_name, edit)


def record_element_counts(path_or_name: str | os.PathLike, data: str | os.PathLike) -> Path:
    """Fill the element-count table (training crystals per atom count and number of distinct elements,
    used by ``element_count: data``) of an exported/shipped checkpoint from its training data ``data``
    (anything ``topodiff train`` reads), weights untouched; the recipe records the source. Checkpoints
    trained since the table exists have it already."""
    from topodiff.crystal.dataset import load_dataset
    from topodiff.generative.element_count import element_count_table

    arrays = load_dataset(data)
    note = f"element-count table from {data} ({len(arrays.num_atoms)} crystals)"

    def edit(stored: dict[str, Any], side: dict[str, Any]) -> None:
        max_atoms = int(ModelConfig.from_dict(stored["config"].get("model", {})).max_atoms)
        table = element_count_table(arrays.num_atoms, arrays.species, max_atoms)
        stored["state_dict"] = {**stored["state_dict"], "num_elements_counts": torch.as_tensor(table,
                                                                                             dtype=torch.float32)}
        stored["recipe"] = {**(stored.get("recipe") or {}), "element_counts": note}
        side["element_counts"] = note

    return _edit_exported(path_or_name, edit)


def _parse_setting(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with a JSON value (``0.5``, ``1e-5``, ``true``); anything else stays a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise TopodiffInputError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def main(argv: list[str] | None = None) -> None:
    """``python -m topodiff.generative.checkpoint CKPT OUT [--description TEXT] [--command TEXT] [--results JSON]``:
    export a training checkpoint for shipping;
    ``python -m topodiff.generative.checkpoint CKPT --set KEY=VALUE [...] --note TEXT``: change the
    sampler defaults of an exported/shipped checkpoint in place;
    ``python -m topodiff.generative.checkpoint CKPT --element-counts-from DATA``: fill its element-count table."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m topodiff.generative.checkpoint")
    ap.add_argument("ckpt")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--description", default="")
    ap.add_argument("--command", default="", help="the training command (recorded in the recipe)")
    ap.add_argument("--results", default=None, help="JSON file of measured benchmark results to record")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help=f"sampler default to change in place ({', '.join(SAMPLER_SETTINGS)})")
    ap.add_argument("--note", default="", help="how the --set values were chosen (recorded in the recipe)")
    ap.add_argument("--element-counts-from", default=None, metavar="DATA",
                    help="fill CKPT's element-count table in place from its training data (a CSV or dataset)")
    args = ap.parse_args(argv)
    if args.element_counts_from:
        if args.out or args.set:
            ap.error("--element-counts-from changes CKPT in place: give no OUT and no --set")
        print(record_element_counts(args.ckpt, args.element_counts_from))
        return
    if args.set:
        if args.out or not args.note:
            ap.error("--set changes CKPT in place: give no OUT, and say how the values were chosen with --note")
        print(update_sampler_defaults(args.ckpt, dict(_parse_setting(x) for x in args.set), args.note))
        return
    if not args.out:
        ap.error("OUT is required to export a checkpoint")
    recipe: dict[str, Any] = {"description": args.description, "training_command": args.command,
                              "source_checkpoint": str(args.ckpt)}
    if args.results:
        recipe["measured"] = json.loads(Path(args.results).read_text())
    print(export_generator(args.ckpt, args.out, recipe))


if __name__ == "__main__":
    try:
        main()
    except TopodiffInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None

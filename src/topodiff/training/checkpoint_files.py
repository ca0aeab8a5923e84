"""Checkpoint files on disk: atomic writes, reading, and choosing the one to resume from.

Light on imports (torch only) so that readers such as ``load_generator`` need not import
Lightning. The checkpoint *contents* are documented in :mod:`topodiff.training.callbacks`.
"""
from __future__ import annotations

import os
import pickle
import re
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from topodiff.errors import TopodiffInputError
from topodiff.io_utils import atomic_write, fsync_dir

CKPT_FORMAT = "topodiff-ckpt/1"
STEP_RE = re.compile(r"^step=(\d+)\.ckpt$")
REQUIRED_KEYS = ("state_dict", "global_step", "hyper_parameters")


def step_checkpoint_name(step: int) -> str:
    """``step=NNNNNN.ckpt`` (six digits, more when needed)."""
    return f"step={step:06d}.ckpt"


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file beside ``path``, fsync, rename into place, fsync the directory."""
    return atomic_write(path, lambda fh: torch.save(obj, fh), mode="wb")


def atomic_link(src: Path, dst: Path) -> None:
    """Make ``dst`` a copy of ``src`` atomically (hard link when possible, else a copy), then rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(dst.parent)


def step_files(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(step, path)`` for every ``step=N.ckpt`` in ``directory`` (unsorted)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    out = []
    for p in directory.iterdir():
        m = STEP_RE.match(p.name)
        if m and p.is_file():
            out.append((int(m.group(1)), p))
    return out


# what torch's weights-only unpickler says when a file asks for a class or function (code), as
# opposed to a corrupt byte stream ("Unsupported operand", truncated data)
_CODE_MARKERS = ("GLOBAL", "call reduce", "new object", "Can only build")


class UnsafeCheckpointError(TopodiffInputError):
    """A checkpoint file holding Python objects other than tensors and plain data (never unpickled)."""


def safe_load(path: str | os.PathLike) -> Any:
    """``torch.load`` restricted to tensors and plain data (``weights_only=True``), on CPU.

    Every topodiff checkpoint (shipped, exported, predictor, Lightning training file) holds only
    tensors, numbers, strings, lists and dicts. A file that needs anything else to unpickle (a class,
    a function: code) raises :class:`UnsafeCheckpointError` and nothing in it runs; a truncated or
    corrupt file raises ``ValueError``.
    """
    if Path(path).is_file() and not zipfile.is_zipfile(path):  # e.g. a CSV or a legacy pickle: never parsed
        raise ValueError(f"unreadable checkpoint {path}: not a checkpoint file (a topodiff checkpoint is the zip "
                         "archive torch.save writes)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if any(marker in str(exc) for marker in _CODE_MARKERS):
            raise UnsafeCheckpointError(
                f"refusing to load {path}: it holds Python objects other than tensors and plain data "
                "(topodiff never unpickles code from a file)") from None
        raise ValueError(f"unreadable checkpoint {path}: corrupt or not a checkpoint ({_detail(exc)})") from None
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as exc:  # truncated zip, not a torch file, ...
        raise ValueError(f"unreadable checkpoint {path}: {type(exc).__name__}: {_detail(exc)}") from None


def load_user_checkpoint(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """:func:`safe_load` for a file a user named: every failure is a :class:`TopodiffInputError`
    (``cannot read <what> PATH: ...``, or the refusal of a file that would run code)."""
    try:
        return safe_load(path)
    except TopodiffInputError:
        raise
    except ValueError as exc:  # truncated or corrupt
        raise TopodiffInputError(str(exc).replace("unreadable checkpoint", f"cannot read {what}", 1)) from None
    except OSError as exc:
        raise TopodiffInputError(f"cannot read {what} {path}: {exc.strerror}") from None


def _detail(exc: BaseException) -> str:
    """The informative line of a load error (for torch's weights-only errors, the unpickler's own line)."""
    text = str(exc).strip()
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].strip()
    return text.splitlines()[0] if text else ""


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a training checkpoint safely (:func:`safe_load`) and check it has the keys training needs.

    Raises ``ValueError`` for a truncated, corrupt or foreign file and :class:`UnsafeCheckpointError`
    for one that would need code to unpickle.
    """
    ckpt = safe_load(path)
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED_KEYS):
        raise ValueError(f"not a topodiff training checkpoint: {path}")
    return ckpt


def find_resume_checkpoint(directory: str | os.PathLike) -> tuple[Path, int] | None:
    """Newest readable checkpoint in ``directory`` as ``(path, step)``; ``None`` if there is none.

    Candidates are ``step=N.ckpt`` (newest first) and ``last.ckpt``; an unreadable newer file (what
    a crash leaves) is skipped with a warning and the next one is used; a file that would need code to
    unpickle is refused (:class:`UnsafeCheckpointError`), not skipped.
    """
    candidates = sorted(step_files(directory), key=lambda t: t[0], reverse=True)
    last = Path(directory) / "last.ckpt"
    best: tuple[Path, int] | None = None
    for step, path in candidates:
        try:
            ckpt = read_checkpoint(path)
        except UnsafeCheckpointError:
            raise
        except ValueError as exc:
            warnings.warn(f"skipping checkpoint: {exc}", stacklevel=2)
            continue
        best = (path, int(ckpt["global_step"]))
        break
    if last.is_file() and (best is None or not last.samefile(best[0])):
        try:
            ckpt = read_checkpoint(last)
            if best is None or int(ckpt["global_step"]) > best[1]:
                best = (last, int(ckpt["global_step"]))
        except UnsafeCheckpointError:
            raise
        except ValueError as exc:
            warnings.warn(f"skipping checkpoint: {exc}", stacklevel=2)
    return best


def remove_stale_temporaries(directory: str | os.PathLike) -> int:
    """Delete temporary files left by an interrupted checkpoint write; returns how many."""
    directory = Path(directory)
    n = 0
    if directory.is_dir():
        for p in directory.glob(".*.ckpt.*.tmp"):
            try:
                p.unlink()
                n += 1
            except OSError:
                pass
    return n

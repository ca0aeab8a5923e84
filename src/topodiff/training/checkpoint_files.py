"""Checkpoint files on disk: atomic writes, reading, and choosing the one to resume from.

Light on imports (torch only) so that readers such as ``load_generator`` need not import
Lightning. The checkpoint *contents* are documented in :mod:`topodiff.training.callbacks`.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

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


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint on CPU and check that it has the keys training needs.

    Raises ``ValueError`` for a truncated, corrupt or foreign file.
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated zip, pickling error, ...
        raise ValueError(f"unreadable checkpoint {path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED_KEYS):
        raise ValueError(f"not a topodiff training checkpoint: {path}")
    return ckpt


def find_resume_checkpoint(directory: str | os.PathLike) -> tuple[Path, int] | None:
    """Newest readable checkpoint in ``directory`` as ``(path, step)``; ``None`` if there is none.

    Candidates are ``step=N.ckpt`` (newest first) and ``last.ckpt``; an unreadable newer file is
    skipped with a warning and the next one is used.
    """
    candidates = sorted(step_files(directory), key=lambda t: t[0], reverse=True)
    last = Path(directory) / "last.ckpt"
    best: tuple[Path, int] | None = None
    for step, path in candidates:
        try:
            ckpt = read_checkpoint(path)
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

"""Where topodiff keeps derived data (dataset caches, reference fingerprints): one place, never
beside a user's input.

``cache_dir(kind)`` is ``$TOPODIFF_CACHE/<kind>`` when that variable is set, else
``$XDG_CACHE_HOME/topodiff/<kind>`` (``~/.cache/topodiff/<kind>``). Entries inside are named by
the content hash of what they were derived from, so a moved input reuses its cache, a changed input
gets a new one, and a read-only input directory is never written to. When the cache location itself
cannot be written, callers work without a cache (:func:`writable`).
"""
from __future__ import annotations

import os
from pathlib import Path

ENV = "TOPODIFF_CACHE"


def cache_root() -> Path:
    """``$TOPODIFF_CACHE``, else ``$XDG_CACHE_HOME/topodiff``, else ``~/.cache/topodiff``."""
    base = os.environ.get(ENV)
    if base:
        return Path(base).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "topodiff"


def cache_dir(kind: str) -> Path:
    """The cache folder for one kind of derived data (e.g. ``"datasets"``, ``"fingerprints"``)."""
    return cache_root() / kind


def writable(directory: Path) -> bool:
    """True when ``directory`` (or the nearest existing folder above it) can be written by us *and*
    is not marked read-only (root ignores permission bits; a 0555 folder is meant to stay untouched)."""
    for p in [directory, *directory.parents]:
        if p.exists():
            return p.is_dir() and bool(p.stat().st_mode & 0o200) and os.access(p, os.W_OK | os.X_OK)
    return False

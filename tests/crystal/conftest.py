"""Every crystal test gets its own empty user cache (``$TOPODIFF_CACHE``), so tests neither read nor
litter the real ``~/.cache/topodiff``."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path_factory.mktemp("user-cache")
    monkeypatch.setenv("TOPODIFF_CACHE", str(path))
    return path

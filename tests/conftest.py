"""Shared test set-up: one BLAS thread, the ``helpers`` module, and the shared-data fixture."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

if "helpers" not in sys.modules:  # tests run with --import-mode=importlib: make `import helpers` work
    _spec = importlib.util.spec_from_file_location("helpers", Path(__file__).with_name("helpers.py"))
    _mod = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
    sys.modules["helpers"] = _mod
    _spec.loader.exec_module(_mod)  # type: ignore[union-attr]

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (CDVAE-style CSVs); skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared crystal data not found at {SHARED_DATA}")
    return SHARED_DATA

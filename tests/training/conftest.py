"""Fixtures for the training tests (helpers live in ``training/helpers.py``)."""
from __future__ import annotations

from pathlib import Path

import pytest

from training.helpers import write_crystal_csv


@pytest.fixture(scope="session")
def crystal_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 synthetic 5-atom crystals (written once per session, cache built beside it)."""
    return write_crystal_csv(tmp_path_factory.mktemp("data") / "perov_syn.csv", 48)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)

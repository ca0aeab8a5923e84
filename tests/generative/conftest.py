"""Fixtures of the generator tests: a tiny model and a small synthetic batch of crystals."""
from __future__ import annotations

import pytest
import torch

from generative.helpers import make_batch
from topodiff.generative.batch import CrystalBatch  # noqa: F401
from topodiff.generative.config import ModelConfig
from topodiff.generative.model import CrystalDiffusion

TINY = dict(hidden=32, layers=2, heads=2, pair_dim=16, num_freqs=4, num_rbf=8, sample_steps=5)


@pytest.fixture
def tiny_cfg() -> ModelConfig:
    return ModelConfig(**TINY)


@pytest.fixture
def tiny_model(tiny_cfg) -> CrystalDiffusion:
    torch.manual_seed(0)
    return CrystalDiffusion(tiny_cfg)


@pytest.fixture
def batch() -> CrystalBatch:
    return make_batch()

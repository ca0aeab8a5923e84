"""Fixtures of the generator tests: a tiny model and a small synthetic batch of crystals."""
from __future__ import annotations

import pytest
import torch

from topodiff.generative.batch import CrystalBatch
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


def make_batch(num_atoms=(5, 3, 4), seed: int = 0) -> CrystalBatch:
    """Random crystals with near-cubic lattices (~4 Å) and random species."""
    g = torch.Generator().manual_seed(seed)
    n = torch.tensor(num_atoms)
    total = int(n.sum())
    lattice = 4.0 * torch.eye(3).expand(len(num_atoms), 3, 3) + 0.4 * torch.randn(len(num_atoms), 3, 3, generator=g)
    return CrystalBatch(torch.rand(total, 3, generator=g), lattice, torch.randint(1, 60, (total,), generator=g), n)


@pytest.fixture
def batch() -> CrystalBatch:
    return make_batch()

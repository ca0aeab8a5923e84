"""The Lightning data module: seeded resumable training batches, sequential validation batches.

Datasets and the sampler live in :mod:`topodiff.training.datasets` (importable without Lightning).
"""
from __future__ import annotations

from typing import Callable, Sequence

import lightning.pytorch as pl
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

from topodiff.errors import TopodiffInputError
from topodiff.training.datasets import (BatchedCrystalDataset, ResumableDataLoader, StepBatchSampler,  # noqa: F401
                                        build_datasets, identity_collate, oversample_repeats)


class CrystalDataModule(pl.LightningDataModule):
    """Lightning data module: seeded resumable training batches, sequential validation batches.

    Datasets are built eagerly (so an unusable dataset fails before any process starts training).
    ``data.batch_size`` is per device; DDP ranks read disjoint slices of each global batch.
    """

    def __init__(self, data: DictConfig, seed: int, *, datasets: tuple[Dataset, Dataset | None] | None = None,
                 collate_fn: Callable | None = None) -> None:
        super().__init__()
        self.data_cfg = data
        self.seed = int(seed)
        self.train_set, self.val_set = datasets if datasets is not None else build_datasets(data)
        if len(self.train_set) == 0:
            raise TopodiffInputError("training dataset has no usable rows")
        self.collate_fn = collate_fn or identity_collate
        self.train_sampler: StepBatchSampler | None = None
        self.train_base = getattr(self.train_set, "base", self.train_set)
        labels = getattr(getattr(self.train_base, "arrays", None), "labels", None) or {}
        self.repeats = oversample_repeats(labels, len(self.train_set), data.get("oversample") or {})

    @property
    def has_val(self) -> bool:
        return self.val_set is not None and len(self.val_set) > 0

    def train_dataloader(self) -> DataLoader:
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)
        buckets = int(self.data_cfg.get("size_buckets", 0) or 0)
        sizes = getattr(self.train_base, "num_atoms", None) if buckets > 1 else None
        self.train_sampler = StepBatchSampler(len(self.train_set), int(self.data_cfg.batch_size), self.seed,
                                              rank=rank, world_size=world, sizes=sizes, size_buckets=buckets,
                                              repeats=self.repeats)
        workers = int(self.data_cfg.num_workers)
        return ResumableDataLoader(self.train_set, batch_sampler=self.train_sampler, collate_fn=self.collate_fn,
                                   num_workers=workers, persistent_workers=workers > 0)

    def val_dataloader(self) -> DataLoader | Sequence:
        if not self.has_val:
            return []
        bs = int(self.data_cfg.val_batch_size) or int(self.data_cfg.batch_size)
        workers = int(self.data_cfg.num_workers)
        return DataLoader(self.val_set, batch_size=bs, shuffle=False, collate_fn=self.collate_fn,
                          num_workers=workers, persistent_workers=workers > 0, drop_last=False)

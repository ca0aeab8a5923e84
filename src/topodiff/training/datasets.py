"""Crystal datasets for training and the resumable seeded batch sampler (no Lightning import).

Data order is a pure function of ``(seed, global step, rank)``: the batch of step ``s`` is taken
from the permutation of epoch ``s // steps_per_epoch`` (``numpy`` ``default_rng([seed, epoch])``),
each rank reading its own slice. A resumed run sets the sampler to the restored global step, so it
sees exactly the batches the uninterrupted run would have seen.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from omegaconf import DictConfig, ListConfig
from torch.utils.data import DataLoader, Dataset, Sampler

from topodiff.errors import TopodiffInputError

log = logging.getLogger(__name__)


class StepBatchSampler(Sampler[list[int]]):
    """Seeded batches keyed by the optimiser step; resumable by setting ``start_step``.

    Parameters
    ----------
    num_items : dataset length ``n``.
    batch_size : items per batch on this rank.
    seed : data-order seed.
    rank, world_size : this process's slice of each global batch of ``batch_size * world_size``.

    repeats : ``[n]`` integers >= 1, how often each item appears per epoch (oversampling; None = once).

    One epoch is ``max(1, N // (batch_size * world_size))`` steps, ``N = sum(repeats)``; positions wrap
    around the permutation when the dataset is smaller than a global batch. ``__iter__`` yields the
    batches from ``start_step`` to the end of that epoch and then moves ``start_step`` to the next epoch.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 sizes: np.ndarray | None = None, size_buckets: int = 0, repeats: np.ndarray | None = None) -> None:
        if num_items <= 0:
            raise TopodiffInputError("training dataset has no usable rows")
        self.items = _repeated_items(int(num_items), repeats)
        self.num_items = len(self.items)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.steps_per_epoch = max(1, self.num_items // (self.batch_size * self.world_size))
        self.start_step = 0
        self.sizes = None if sizes is None else np.asarray(sizes)
        if self.sizes is not None and self.sizes.shape != (int(num_items),):
            raise TopodiffInputError(f"sizes must have one entry per item ({int(num_items)})")
        if self.sizes is not None:
            self.sizes = self.sizes[self.items]
        self.size_buckets = int(size_buckets)

    def __len__(self) -> int:
        return self.steps_per_epoch

    def permutation(self, epoch: int) -> np.ndarray:
        """``[n]`` order of the items in ``epoch``.

        With ``size_buckets = k > 1`` and ``sizes``, each run of ``k`` global batches of the random
        order is sorted by size and cut into batches, and the batches are then shuffled: every batch
        holds crystals of similar size (less padding), still a pure function of ``(seed, epoch)``.
        """
        rng = np.random.default_rng([self.seed, int(epoch)])
        perm = rng.permutation(self.num_items)
        if self.sizes is None or self.size_buckets <= 1:
            return self.items[perm]
        g = self.batch_size * self.world_size
        run = g * self.size_buckets
        n_runs = -(-self.num_items // run)
        # sort within runs: key = (run index, size, position) with one lexsort
        pos = np.arange(self.num_items)
        order = np.lexsort((pos, self.sizes[perm], pos // run))
        perm = perm[order]
        n_full = self.num_items // g
        if n_full > 1 and n_runs:
            head = perm[:n_full * g].reshape(n_full, g)[rng.permutation(n_full)].ravel()
            perm = np.concatenate([head, perm[n_full * g:]])
        return self.items[perm]

    def batch_for_step(self, step: int) -> list[int]:
        """Indices of this rank's batch at global optimiser step ``step``."""
        epoch, i = divmod(int(step), self.steps_per_epoch)
        first = i * self.batch_size * self.world_size + self.rank * self.batch_size
        pos = (first + np.arange(self.batch_size)) % self.num_items
        return self.permutation(epoch)[pos].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        start = int(self.start_step)
        end = (start // self.steps_per_epoch + 1) * self.steps_per_epoch
        self.start_step = end
        perm_epoch, perm = -1, None
        for step in range(start, end):
            epoch, i = divmod(step, self.steps_per_epoch)
            if epoch != perm_epoch:
                perm_epoch, perm = epoch, self.permutation(epoch)
            first = i * self.batch_size * self.world_size + self.rank * self.batch_size
            yield perm[(first + np.arange(self.batch_size)) % self.num_items].tolist()


def _repeated_items(num_items: int, repeats: np.ndarray | None) -> np.ndarray:
    """``[sum(repeats)]`` item indices, item ``i`` listed ``repeats[i]`` times (``arange`` without repeats)."""
    if repeats is None:
        return np.arange(num_items)
    repeats = np.asarray(repeats)
    if repeats.shape != (num_items,) or not np.issubdtype(repeats.dtype, np.integer) or (repeats < 1).any():
        raise TopodiffInputError(f"repeats must be {num_items} integers >= 1")
    return np.repeat(np.arange(num_items), repeats)


def oversample_repeats(labels: dict[str, np.ndarray], num_items: int, spec: Any) -> np.ndarray | None:
    """Per-crystal repeat factors from ``data.oversample`` (``{column: {value: factor}}``); a crystal
    matching several entries takes the largest factor. None when ``spec`` is empty.

    Raises :class:`TopodiffInputError` when a column is absent or no crystal carries a value (a typo
    would otherwise silently train on the unweighted data).
    """
    if not spec:
        return None
    repeats = np.ones(num_items, dtype=np.int64)
    for column, factors in spec.items():
        if column not in labels:
            have = ", ".join(sorted(labels)) or "none"
            raise TopodiffInputError(f"data.oversample: the training data has no label column {column!r} (it has: {have})")
        col = np.asarray(labels[column], dtype=object)
        for value, factor in factors.items():
            hit = col == str(value)
            if not hit.any():
                raise TopodiffInputError(f"data.oversample: no training crystal has {column}={value}")
            repeats[hit] = np.maximum(repeats[hit], int(factor))
    return repeats


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` over a :class:`StepBatchSampler` that Lightning treats as resumable.

    Its position is restored from the trainer's global step (see
    ``DiffusionModule.on_train_start``), so the state saved here is informational.
    """

    def state_dict(self) -> dict[str, Any]:
        s = self.batch_sampler
        return {"seed": s.seed, "batch_size": s.batch_size, "world_size": s.world_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        s = self.batch_sampler
        if state and (state.get("seed"), state.get("batch_size")) != (s.seed, s.batch_size):
            log.warning("data.batch_size or trainer.seed changed since the checkpoint: the data order differs")


# --------------------------------------------------------------------------------------------
# datasets

class BatchedCrystalDataset(Dataset):
    """A ``CrystalTorchDataset`` whose batches are gathered in one vectorised step.

    ``DataLoader`` calls ``__getitems__(indices)`` (torch ≥ 2.0), which returns a finished
    ``CrystalBatch``; the loader's ``collate_fn`` is then :func:`identity_collate`.
    """

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> Any:
        return self.base[i]

    def __getitems__(self, indices: list[int]) -> Any:
        from topodiff.generative.data import batch_from_dataset

        return batch_from_dataset(self.base, np.asarray(indices, dtype=np.int64))

    def statistics(self) -> dict[str, np.ndarray]:
        return self.base.statistics()


def identity_collate(batch: Any) -> Any:
    """``collate_fn`` for :class:`BatchedCrystalDataset` (the batch is already built)."""
    return batch


def _paths(value: Any) -> list[str]:
    if isinstance(value, (list, tuple, ListConfig)):
        return [str(v) for v in value]
    return [str(value)]


def load_arrays(source: str) -> Any:
    """One source (CSV / extxyz / CIF directory / cache directory) as ``CrystalArrays``."""
    from topodiff.crystal.dataset import load_dataset

    if not Path(source).exists():
        raise TopodiffInputError(f"training data not found: {source}")
    return load_dataset(source)


def _subsample(n: int, max_rows: int, seed: int) -> np.ndarray:
    idx = np.arange(n)
    if max_rows and n > max_rows:
        idx = np.sort(np.random.default_rng([seed, 1]).permutation(n)[:max_rows])
    return idx


def build_datasets(data: DictConfig) -> tuple[Dataset, Dataset | None]:
    """Training and validation datasets (:class:`BatchedCrystalDataset`) from the ``data`` section.

    Training sources are concatenated. With ``data.val`` null, a seeded ``val_fraction`` of the
    training rows is held out (``topodiff.crystal.splits.split_indices``). Raises
    :class:`TopodiffInputError` when a source is missing or has no usable rows.
    """
    from topodiff.crystal.dataset import CrystalArrays
    from topodiff.crystal.splits import split_indices
    from topodiff.generative.data import CrystalTorchDataset

    sources = _paths(data.train)
    parts = [load_arrays(p) for p in sources]
    for p, arr in zip(sources, parts):
        if len(arr) == 0:
            log.warning("training source %s has no usable rows", p)
    train = parts[0] if len(parts) == 1 else CrystalArrays.concat(parts)
    if len(train) == 0:
        raise TopodiffInputError(f"training data has no usable rows: {', '.join(sources)}")
    val = None
    if data.val:
        val = load_arrays(str(data.val))
        if len(val) == 0:
            raise TopodiffInputError(f"validation data has no usable rows: {data.val}")
    elif data.val_fraction > 0 and len(train) >= 2:
        split = split_indices(len(train), int(data.split_seed), (1.0 - float(data.val_fraction), float(data.val_fraction)))
        if len(split["val"]) and len(split["train"]):
            train, val = train.subset(split["train"]), train.subset(split["val"])
    train = train.subset(_subsample(len(train), int(data.max_train_rows), int(data.split_seed)))
    if val is not None:
        val = val.subset(_subsample(len(val), int(data.max_val_rows), int(data.split_seed) + 1))
    wrap = lambda arr: BatchedCrystalDataset(CrystalTorchDataset(arr))  # noqa: E731
    return wrap(train), (wrap(val) if val is not None else None)

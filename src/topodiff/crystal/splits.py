"""Reproducible train/val/test splits (numpy ``default_rng``: same indices on every run and machine)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from topodiff.errors import TopodiffInputError

SPLIT_NAMES = ("train", "val", "test")


def split_indices(n: int, seed: int = 0, fractions: Sequence[float] = (0.8, 0.1, 0.1), *,
                  groups: Sequence[object] | None = None) -> dict[str, np.ndarray]:
    """Split ``range(n)`` into disjoint, sorted index arrays ``{"train", "val", "test"}``.

    Parameters
    ----------
    n : number of items.
    seed : seed of ``numpy.random.default_rng`` (PCG64: identical across platforms).
    fractions : 2 or 3 non-negative fractions summing to 1 (names ``train``, ``val``[, ``test``]);
        split sizes are ``round(cumsum(fractions) * n)`` differences, so they sum to ``n``.
    groups : optional key per item (e.g. the reduced formula); items sharing a key land in the same
        split (no composition leakage). Group sizes then make the fractions approximate.

    Returns
    -------
    dict name → ``[n_split]`` int64 indices, sorted ascending.
    """
    frac = np.asarray(list(fractions), dtype=np.float64)
    if n < 0:
        raise TopodiffInputError(f"split: n must be >= 0, got {n}")
    if frac.ndim != 1 or not 2 <= frac.size <= 3 or np.any(frac < 0) or not np.isfinite(frac).all() \
            or abs(frac.sum() - 1.0) > 1e-6:
        raise TopodiffInputError(f"split fractions must be 2 or 3 non-negative numbers summing to 1, got {list(fractions)}")
    names = SPLIT_NAMES[:frac.size]
    rng = np.random.default_rng(seed)
    if groups is None:
        order = rng.permutation(n)
        bounds = np.round(np.cumsum(frac) * n).astype(np.int64)
        bounds[-1] = n
        parts = np.split(order, bounds[:-1])
        return {name: np.sort(p).astype(np.int64) for name, p in zip(names, parts)}
    keys = np.asarray([str(g) for g in groups], dtype=object)
    if keys.shape[0] != n:
        raise TopodiffInputError(f"split: {keys.shape[0]} group keys for {n} items")
    uniq, inverse, counts = np.unique(keys.astype(str), return_inverse=True, return_counts=True)
    order = rng.permutation(uniq.size)
    # assign whole groups in random order until each split's cumulative atom count is reached
    cum = np.cumsum(counts[order])
    bounds = np.round(np.cumsum(frac) * n)
    split_of_group = np.empty(uniq.size, dtype=np.int64)
    split_of_group[order] = np.minimum(np.searchsorted(bounds, cum - 0.5 * counts[order]), frac.size - 1)
    item_split = split_of_group[inverse]
    return {name: np.flatnonzero(item_split == k).astype(np.int64) for k, name in enumerate(names)}

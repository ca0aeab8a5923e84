"""The step-keyed batch sampler: epochs are permutations, resume continues the order exactly, ranks are disjoint."""
from __future__ import annotations

import numpy as np
import pytest

from topodiff.errors import TopodiffInputError
from topodiff.training.datasets import StepBatchSampler


def _take(sampler: StepBatchSampler, n: int) -> list[list[int]]:
    out: list[list[int]] = []
    while len(out) < n:
        out.extend(list(sampler))  # one epoch (or the rest of one) per __iter__
    return out[:n]


def test_each_epoch_is_a_permutation_and_epochs_differ():
    s = StepBatchSampler(40, 8, seed=3)
    e0, e1 = list(s), list(s)
    assert len(e0) == len(s) == 5
    assert sorted(np.concatenate(e0).tolist()) == list(range(40))
    assert sorted(np.concatenate(e1).tolist()) == list(range(40))
    assert e0 != e1  # a new permutation each epoch
    assert list(StepBatchSampler(40, 8, seed=3)) == e0  # same seed, same order
    assert list(StepBatchSampler(40, 8, seed=4)) != e0


@pytest.mark.parametrize("start", [0, 3, 5, 12])
def test_resume_from_any_step_continues_the_order(start):
    full = _take(StepBatchSampler(37, 6, seed=1), 20)
    s = StepBatchSampler(37, 6, seed=1)
    s.start_step = start
    resumed = _take(s, 20 - start)
    assert resumed == full[start:]
    assert all(s.batch_for_step(k) == full[k] for k in range(start, 20))


def test_ranks_read_disjoint_slices_of_the_global_batch():
    n, b, w = 48, 4, 3
    ranks = [list(StepBatchSampler(n, b, seed=0, rank=r, world_size=w)) for r in range(w)]
    assert all(len(r) == n // (b * w) for r in ranks)
    for step in range(len(ranks[0])):
        got = [set(r[step]) for r in ranks]
        assert all(len(g) == b for g in got)
        assert not (got[0] & got[1] or got[0] & got[2] or got[1] & got[2])
    assert sorted(np.concatenate([np.concatenate(r) for r in ranks]).tolist()) == list(range(n))


def test_tiny_dataset_wraps_and_empty_is_an_input_error():
    s = StepBatchSampler(3, 8, seed=0)
    batches = list(s)
    assert len(batches) == 1 and len(batches[0]) == 8 and set(batches[0]) == {0, 1, 2}
    with pytest.raises(TopodiffInputError, match="no usable rows"):
        StepBatchSampler(0, 8, seed=0)


def test_size_buckets_keep_a_permutation_group_sizes_and_resume():
    sizes = np.random.default_rng(0).integers(1, 17, size=1000)
    plain = StepBatchSampler(1000, 64, seed=3)
    bucketed = StepBatchSampler(1000, 64, seed=3, sizes=sizes, size_buckets=8)
    for epoch in (0, 1):
        assert sorted(bucketed.permutation(epoch).tolist()) == list(range(1000))
    spread = lambda s: np.mean([np.ptp(sizes[s.batch_for_step(i)]) for i in range(15)])  # noqa: E731
    assert spread(bucketed) < 0.5 * spread(plain)
    # iteration from a resumed step gives the batches batch_for_step promises
    bucketed.start_step = 5
    it = iter(bucketed)
    for step in range(5, 10):
        assert next(it) == bucketed.batch_for_step(step)
    with pytest.raises(TopodiffInputError):
        StepBatchSampler(10, 4, seed=0, sizes=np.ones(9), size_buckets=2)


def test_repeats_oversample_items_in_every_epoch_and_resume():
    repeats = np.array([1, 4, 1, 1, 2, 1, 1, 1, 3, 1] * 6)
    for buckets, sizes in ((0, None), (3, np.arange(60) % 7 + 1)):
        s = StepBatchSampler(60, 4, seed=2, sizes=sizes, size_buckets=buckets, repeats=repeats)
        assert len(s) == repeats.sum() // 4
        counts = np.bincount(np.concatenate(list(s)), minlength=60)
        np.testing.assert_array_equal(counts, repeats)  # one epoch holds item i exactly repeats[i] times
        full = _take(StepBatchSampler(60, 4, seed=2, sizes=sizes, size_buckets=buckets, repeats=repeats), 40)
        r = StepBatchSampler(60, 4, seed=2, sizes=sizes, size_buckets=buckets, repeats=repeats)
        r.start_step = 25
        assert _take(r, 15) == full[25:]
    with pytest.raises(TopodiffInputError, match="integers >= 1"):
        StepBatchSampler(3, 2, seed=0, repeats=np.array([1, 0, 2]))


def test_oversample_repeats_from_labels_and_clear_errors():
    from topodiff.training.datasets import oversample_repeats

    labels = {"catalogue_class": np.array(["ti", "trivial", "tci", "ti", None], dtype=object),
              "source": np.array(["a", "b", "a", "b", "a"], dtype=object)}
    assert oversample_repeats(labels, 5, {}) is None
    got = oversample_repeats(labels, 5, {"catalogue_class": {"ti": 4, "tci": 2}, "source": {"a": 3}})
    assert got.tolist() == [4, 1, 3, 4, 3]  # the largest factor wins where entries overlap
    with pytest.raises(TopodiffInputError, match="no label column 'topo_class'"):
        oversample_repeats(labels, 5, {"topo_class": {"ti": 2}})
    with pytest.raises(TopodiffInputError, match="no training crystal has catalogue_class=TI"):
        oversample_repeats(labels, 5, {"catalogue_class": {"TI": 2}})

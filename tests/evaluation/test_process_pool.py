"""Pools that survive a dead worker: the task that kills its worker gets an error row, the rest finish."""
from __future__ import annotations

import multiprocessing as mp
import os
import signal

import pytest

from topodiff.process_pool import CRASH_MESSAGE, resilient_map

pytestmark = pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs the fork start method")


def _square_or_die(x: int) -> int:
    """Dies with SIGKILL (as the out-of-memory killer does) on negative input."""
    if x < 0:
        os.kill(os.getpid(), signal.SIGKILL)
    if x == 99:
        raise ValueError("ninety-nine")
    return x * x


def test_killed_workers_cost_only_their_own_task():
    tasks = [1, 2, -3, 4, 5, -6, 7, 99, 8]
    notes: list[str] = []
    out = list(resilient_map(_square_or_die, tasks, workers=2, context=mp.get_context("fork"),
                             on_crash=lambda t, msg: ("crash", t, msg), log=notes.append))
    assert [i for i, _ in out] == list(range(len(tasks)))  # every task once, in order
    by = dict(out)
    for i, t in enumerate(tasks):
        if t < 0:
            assert by[i] == ("crash", t, CRASH_MESSAGE)
        elif t == 99:
            assert by[i] == ("crash", 99, "ValueError: ninety-nine")
        else:
            assert by[i] == t * t  # innocent bystanders of a crash were recomputed, not lost
    assert len(notes) >= 2 and all("pool rebuilt" in n for n in notes)  # one rebuild at least per killer


def test_results_stream_before_the_batch_ends():
    """Results arrive while later tasks still run (resumable jobs append them as they come)."""
    it = resilient_map(_square_or_die, [3, -1, 4], workers=1, context=mp.get_context("fork"),
                       on_crash=lambda t, msg: None)
    assert next(it) == (0, 9)
    assert list(it) == [(1, None), (2, 16)]

"""Process pools that survive a dead worker (one mechanism for every batch job).

:func:`resilient_map` runs ``fn(task)`` for each task in worker processes and yields
``(index, result)`` in task order. When a worker process dies (SIGKILL from the out-of-memory
killer, a segfault in a C extension, ``os._exit``), ``concurrent.futures`` marks the whole pool
broken and fails every task in flight. Here the pool is rebuilt and the tasks that were in flight
are rerun *one at a time*: a task that kills its worker again when it runs alone gets
``on_crash(task, message)`` as its result; the others are computed normally. Results already
yielded are never lost, and the batch goes on.

At most ``workers`` tasks are in flight at any time, so memory for pending task arguments stays
bounded and the suspects of a crash are exactly the tasks that were running.

Test hook: with the environment variable ``TOPODIFF_TEST_KILL_WORKER=TEXT`` set when the pool
starts, a worker that calls :func:`fault_hook` with a key containing ``TEXT`` kills itself with
SIGKILL (only inside a pool worker, never the main process). Tests use it to simulate an
out-of-memory kill.
"""
from __future__ import annotations

import concurrent.futures as cf
import os
import signal
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

KILL_ENV = "TOPODIFF_TEST_KILL_WORKER"
CRASH_MESSAGE = ("the worker process died while processing this entry (killed by the system, e.g. out of "
                 "memory, or crashed in native code); it was retried alone and died again")


def fault_hook(key: str) -> None:
    """Kill this pool worker with SIGKILL when ``$TOPODIFF_TEST_KILL_WORKER`` occurs in ``key`` (tests)."""
    import multiprocessing as mp

    text = os.environ.get(KILL_ENV)
    if text and text in key and mp.parent_process() is not None:
        os.kill(os.getpid(), signal.SIGKILL)


def resilient_map(fn: Callable[[Any], Any], tasks: Iterable[Any], *, workers: int,
                  on_crash: Callable[[Any, str], Any], context: Any = None,
                  initializer: Callable[[], None] | None = None,
                  log: Callable[[str], None] | None = None) -> Iterator[tuple[int, Any]]:
    """Yield ``(i, fn(tasks[i]))`` in task order as results arrive, surviving dead workers (module doc).

    Parameters
    ----------
    fn : picklable function of one task; it should catch its own exceptions. An exception it does
        raise becomes ``on_crash(task, "ExcType: message")`` for that task (no pool rebuild).
    workers : worker processes (≥ 1). context : a ``multiprocessing`` context (default: the platform's).
    on_crash : result for a task whose worker died (or whose ``fn`` raised).
    initializer : run once in every new worker. log : one-line notices (pool rebuilt).
    """
    tasks = list(tasks)
    state = _State(todo=deque(range(len(tasks))))
    while state.todo or state.suspects:
        pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=initializer)
        state.broken = False
        try:
            for _ in _run(pool, fn, tasks, state, workers, on_crash):
                yield from state.ready()
        finally:
            pool.shutdown(wait=not state.broken, cancel_futures=True)
        if state.broken and log is not None:
            n = len(state.suspects)
            log("a worker process died; pool rebuilt" + (f", rerunning {n} entries in flight one at a time" if n else ""))
    yield from state.ready()


@dataclass
class _State:
    """Bookkeeping of :func:`resilient_map`: what is left, what to rerun alone, results not yet yielded."""

    todo: deque[int]
    suspects: deque[int] = field(default_factory=deque)
    results: dict[int, Any] = field(default_factory=dict)
    emitted: int = 0
    broken: bool = False

    def ready(self) -> Iterator[tuple[int, Any]]:
        """Pop the results that can be yielded in task order."""
        while self.emitted in self.results:
            yield self.emitted, self.results.pop(self.emitted)
            self.emitted += 1


def _run(pool: cf.ProcessPoolExecutor, fn: Callable[[Any], Any], tasks: list[Any], state: _State,
         workers: int, on_crash: Callable[[Any, str], Any]) -> Iterator[None]:
    """Run tasks in ``pool``, yielding after each result, until all are done or the pool breaks.

    Suspects (tasks in flight at an earlier break) run one at a time first; a suspect that breaks the
    pool again gets ``on_crash``. Otherwise up to ``workers`` tasks are in flight; when the pool
    breaks, those without a result become suspects. A break sets ``state.broken`` and ends the run.
    """
    from concurrent.futures.process import BrokenProcessPool

    while state.suspects:
        i = state.suspects.popleft()
        try:
            state.results[i] = pool.submit(fn, tasks[i]).result()
        except BrokenProcessPool:
            state.results[i] = on_crash(tasks[i], CRASH_MESSAGE)
            state.broken = True
            return
        except Exception as exc:  # noqa: BLE001 - fn raised: that task's error, not the batch's
            state.results[i] = on_crash(tasks[i], f"{type(exc).__name__}: {exc}")
        yield
    running: dict[cf.Future, int] = {}
    while state.todo or running:
        while state.todo and len(running) < workers:
            i = state.todo.popleft()
            running[pool.submit(fn, tasks[i])] = i
        done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
        for fut in done:
            i = running.pop(fut)
            try:
                state.results[i] = fut.result()
            except BrokenProcessPool:
                state.suspects.append(i)
                state.broken = True
            except Exception as exc:  # noqa: BLE001
                state.results[i] = on_crash(tasks[i], f"{type(exc).__name__}: {exc}")
        if state.broken:
            state.suspects.extend(running.values())
            state.suspects = deque(sorted(state.suspects))
            return
        yield

"""One threading default for the command line and the Python API.

Tiny dense matrices (tight-binding Hamiltonians, the generator's small crystals) stall BLAS/OpenMP
thread pools on small machines: on this project's 2-core machine a MoS2 Chern number took 45-79 s
with two threads and 2.4 s with one (issue #15). topodiff therefore runs with **one thread** unless
told otherwise, in the CLI and in the Python API alike.

Precedence (highest first):

1. :func:`set_threads` called by the user (``n`` threads, or ``None``: leave the libraries alone);
2. the environment variable ``TOPODIFF_NUM_THREADS`` (an integer ≥ 1, or ``0`` / ``off``: leave
   the libraries alone);
3. the user's own ``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` / ``MKL_NUM_THREADS`` (already
   obeyed by the libraries: topodiff does not touch them);
4. otherwise one thread.

Two routes apply the same value: :func:`set_env_defaults` writes the environment variables before
numpy/torch are imported (the ``topodiff`` executable does this first thing), and
:func:`ensure_threads` sets the pools of libraries already loaded — ``torch.set_num_threads`` and
``threadpoolctl`` for numpy's OpenBLAS and OpenMP — once per process, at the first heavy API call
(``topodiff.generate``, ``topodiff.screen``, ..., or importing :mod:`topodiff.physics`,
:mod:`topodiff.generative` or :mod:`topodiff.evaluation`).
"""
from __future__ import annotations

import os
import sys

ENV_VAR = "TOPODIFF_NUM_THREADS"
DEFAULT_THREADS = 1
LIBRARY_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_OFF = ("0", "off", "none", "")

_state: dict[str, object] = {"applied": False, "limits": None}


def requested_threads() -> int | None:
    """Threads topodiff should use: ``TOPODIFF_NUM_THREADS``, else the library variables' value
    when the user set one (then None: they already apply), else :data:`DEFAULT_THREADS`.

    Returns None when topodiff should leave the libraries' thread pools as they are.
    """
    raw = os.environ.get(ENV_VAR)
    if raw is not None:
        if raw.strip().lower() in _OFF:
            return None
        try:
            n = int(raw)
        except ValueError:
            n = 0
        if n < 1:
            from topodiff.errors import TopodiffInputError

            raise TopodiffInputError(f"{ENV_VAR} must be a positive integer or 'off', got {raw!r}")
        return n
    if any(var in os.environ for var in LIBRARY_ENV):
        return None
    return DEFAULT_THREADS


def set_env_defaults() -> None:
    """Write the default into the library environment variables (before numpy/torch load).

    ``TOPODIFF_NUM_THREADS`` overrides them; otherwise a variable the user set is kept and the
    others default to one thread (the command line's behaviour since its first version).
    """
    raw = os.environ.get(ENV_VAR)
    if raw is not None and raw.strip().lower() in _OFF:
        return
    try:
        n = requested_threads() if raw is not None else None
    except Exception:  # a bad value is reported by ensure_threads inside the command (exit 2)
        n = None
    for var in LIBRARY_ENV:
        if n is not None:
            os.environ[var] = str(n)
        else:
            os.environ.setdefault(var, str(DEFAULT_THREADS))


def set_threads(n: int | None) -> None:
    """Use ``n`` threads in torch, OpenBLAS and OpenMP from now on (``None``: leave them as they are).

    Also exported as ``topodiff.set_threads``. It sets the environment variables too, so that
    worker processes started later (the screen's process pool) inherit the choice. Calling it
    before any topodiff call stops :func:`ensure_threads` from applying the default.
    """
    _state["applied"] = True
    if n is None:
        return
    if isinstance(n, bool) or int(n) != n or int(n) < 1:
        from topodiff.errors import TopodiffInputError

        raise TopodiffInputError(f"threads must be a positive integer or None, got {n!r}")
    n = int(n)
    for var in LIBRARY_ENV:
        os.environ[var] = str(n)
    import torch

    torch.set_num_threads(n)
    _limit_loaded_pools(n)


def _limit_loaded_pools(n: int) -> None:
    """Limit the BLAS/OpenMP pools already loaded in the process (threadpoolctl), if available."""
    if "numpy" not in sys.modules and "torch" not in sys.modules:
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional at run time: torch.set_num_threads still applies
        return
    _state["limits"] = threadpool_limits(limits=n)  # kept: the limits last for the process


def ensure_threads() -> None:
    """Apply :func:`requested_threads` once per process (no-op after :func:`set_threads`)."""
    if _state["applied"]:
        return
    n = requested_threads()
    if n is None:
        _state["applied"] = True
        return
    set_threads(n)


def current_threads() -> dict[str, int]:
    """Threads in use now: ``torch`` (intra-op) and, when threadpoolctl is installed, each loaded pool."""
    import torch

    out = {"torch": int(torch.get_num_threads())}
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return out
    for pool in threadpool_info():
        out[f"{pool['internal_api']}:{os.path.basename(pool['filepath'])}"] = int(pool["num_threads"])
    return out

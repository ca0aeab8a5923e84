"""Helpers shared by the CLI sub-commands."""
from __future__ import annotations

import json
import math
import sys
from typing import Any

from topodiff.errors import TopodiffInputError
from topodiff.io_utils import available_cpus, claim_output_dir, fingerprint


def parse_params(items: list[str] | None) -> dict[str, float]:
    """Parse ``KEY=VALUE`` pairs into floats; a malformed pair is a :class:`TopodiffInputError`."""
    return {key: check_finite(f"--param {key}", value) for key, value in parse_key_values(items, "--param").items()}


def print_json(obj: Any) -> None:
    """Print exactly one JSON object on stdout (numpy scalars converted)."""
    def default(o: Any) -> Any:
        if hasattr(o, "tolist"):
            return o.tolist()
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    sys.stdout.write(json.dumps(obj, default=default, allow_nan=False) + "\n")


# --- validation of numbers at the CLI boundary ---------------------------------------------------
# Each check returns the (converted) value or raises TopodiffInputError naming the option, the value
# and the allowed range, so every command refuses bad numbers before computing anything.

SEED_MAX = 2**32 - 1
MAX_STRUCTURES = 100_000      # --num / --samples per run (memory of the sampler batch, files written)
MAX_NK_1D, MAX_NK_2D, MAX_NK_3D = 100_000, 1024, 128   # k-grid side per dimension (memory of eigenvectors)
NK_ELEMENT_BUDGET = 2 ** 25   # nk^dim × bands² of one grid (~4 GB of eigenvectors and work arrays at ~128 B each,
#                               measured: Haldane nk = 1024 peaked at 0.8 GB)
MAX_PATH_POINTS = 100_000      # k-points along a band path (one eigvalsh each: time, not memory)
MIN_NK = 4                    # below 4 points per direction discrete Berry phases/fluxes alias
#                               (Haldane at nk = 2: Chern 0 instead of -1)
MIN_NK_WHY = "coarser grids alias the discrete Berry phases (Haldane at --nk 2 gives Chern 0, not -1)"


def _fmt(value: Any) -> str:
    return repr(value) if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)


def check_finite(name: str, value: Any, *, lo: float | None = None, hi: float | None = None,
                 lo_open: bool = False, hi_open: bool = False) -> float:
    """``value`` as a finite float in ``[lo, hi]`` (open ends with ``lo_open``/``hi_open``)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TopodiffInputError(f"{name}: {value!r} is not a number") from None
    if not math.isfinite(x):
        raise TopodiffInputError(f"{name} must be a finite number, got {value}")
    low_bad = lo is not None and (x <= lo if lo_open else x < lo)
    high_bad = hi is not None and (x >= hi if hi_open else x > hi)
    if low_bad or high_bad:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        rng = f"{left}{_fmt(float(lo)) if lo is not None else '-inf'}, {_fmt(float(hi)) if hi is not None else 'inf'}{right}"
        raise TopodiffInputError(f"{name} must lie in {rng}, got {_fmt(x)}")
    return x


def check_int_range(name: str, value: Any, lo: int, hi: int | None = None, *, why: str = "") -> int:
    """``value`` as an int in ``[lo, hi]``; ``why`` explains the cap in the error."""
    if isinstance(value, bool):
        raise TopodiffInputError(f"{name}: {value!r} is not an integer")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise TopodiffInputError(f"{name} must be an integer, got {_fmt(value)}")
        value = int(value)
    elif not isinstance(value, int):
        try:
            value = int(str(value).strip())
        except ValueError:
            raise TopodiffInputError(f"{name}: {value!r} is not an integer") from None
    if value < lo or (hi is not None and value > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise TopodiffInputError(f"{name} must be {rng}{f' ({why})' if why else ''}, got {value}")
    return value


def check_seed(value: Any, name: str = "--seed") -> int | None:
    """A random seed in 0..2**32-1 (``None`` passes through)."""
    return None if value is None else check_int_range(name, value, 0, SEED_MAX)


def check_workers(value: Any, name: str = "--workers") -> int | None:
    """Worker processes: 1..available CPUs (``None`` passes through: the command's automatic choice)."""
    if value is None:
        return None
    n = available_cpus()
    return check_int_range(name, value, 1, n, why=f"this machine lets the process use {n} CPUs")


def check_count(name: str, value: Any, hi: int = MAX_STRUCTURES, lo: int = 1) -> int:
    """A number of things to make (structures, samples) in ``[lo, hi]``."""
    return check_int_range(name, value, lo, hi, why=f"cap {hi:,} per run; split larger jobs")


def check_nk(value: Any, dim: int, *, num_bands: int | None = None, eigenvectors: bool = True, lo: int = MIN_NK,
             name: str = "--nk", why_lo: str = MIN_NK_WHY) -> int:
    """A k-grid side for a ``dim``-dimensional model with ``num_bands`` bands: at least ``lo`` (what the
    invariant needs, explained by ``why_lo``), at most what keeps the whole grid's states (``num_bands²``
    numbers per k-point; with ``eigenvectors=False`` only its ``num_bands`` energies) within
    :data:`NK_ELEMENT_BUDGET` (and the per-dimension caps)."""
    hi = {1: MAX_NK_1D, 2: MAX_NK_2D}.get(dim, MAX_NK_3D)
    if num_bands:
        per_k = num_bands ** 2 if eigenvectors else num_bands
        hi = max(lo, min(hi, int((NK_ELEMENT_BUDGET / per_k) ** (1.0 / max(dim, 1)) + 1e-9)))
    n = check_int_range(name, value, 1)
    if n < lo:
        raise TopodiffInputError(f"{name} must be at least {lo}, got {n}{f'; {why_lo}' if why_lo else ''}")
    if n > hi:
        bands = f" with {num_bands} bands" if num_bands else ""
        raise TopodiffInputError(f"{name} must be at most {hi} for this {dim}D model{bands} (larger grids do not "
                                 f"fit in memory), got {n}")
    return n


def check_dense_spectrum(num_k: int, states: int, what: str) -> None:
    """Dense spectra of ``num_k`` Hamiltonians with ``states`` states each (all eigenvectors at once) must
    stay within :data:`NK_ELEMENT_BUDGET` matrix elements; ``what`` names the options that set them."""
    if num_k * states ** 2 > NK_ELEMENT_BUDGET:
        raise TopodiffInputError(f"{what} give {num_k} k-points of {states} states: {num_k * states ** 2:,} matrix "
                                 f"elements, above the {NK_ELEMENT_BUDGET:,} that fit in memory; use fewer")


def parse_key_values(items: list[str] | None, option: str) -> dict[str, str]:
    """``KEY=VALUE`` strings into a dict of stripped strings; a malformed pair is a TopodiffInputError."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TopodiffInputError(f"{option} expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def check_numeric_values(values: dict[str, str], option: str) -> None:
    """Every value of ``KEY=VALUE`` pairs that reads as a number must be finite (``band_gap=nan`` is refused)."""
    for key, value in values.items():
        try:
            number = float(value)
        except ValueError:
            continue
        if not math.isfinite(number):
            raise TopodiffInputError(f"{option} {key}: must be a finite number, got {value}")


def claim_run_output(out: Any, job: str, *, sources: Any = (), options: dict[str, Any] | None = None,
                     overwrite: bool = False, resume: bool = False) -> Any:
    """Own the output directory ``out`` for this run of ``job`` (fingerprint of ``sources`` contents and
    ``options``): :func:`topodiff.io_utils.claim_output_dir`. Call it after validating the arguments and
    before computing anything."""
    fp = fingerprint(sources=[s for s in sources if s is not None], options=options)
    return claim_output_dir(out, job=job, fingerprint=fp, overwrite=overwrite, resume=resume)


def record_plot(result: dict[str, Any], key: str, path: Any) -> None:
    """Note a written figure ``path`` under ``result[key]`` and say so on stderr."""
    result[key] = str(path)
    print(f"wrote {path}", file=sys.stderr)


def emit(result: dict[str, Any], as_json: bool, summary: str) -> None:
    """Print ``result`` as one JSON object with ``--json``, else the one-line human ``summary``."""
    if as_json:
        print_json(result)
    else:
        print(summary)


# --- one model source for the physics commands (bands, invariants, weyl) -------------------------

def model_command(app: Any, name: str) -> Any:
    """Decorator: register ``func(m, source, **options, as_json)`` as the sub-command ``name`` of the
    Typer ``app``, with the shared model-source arguments of :func:`model_source_command`."""
    def register(func: Any) -> Any:
        return app.command(name)(model_source_command(func))

    return register


def model_source_command(func: Any) -> Any:
    """Decorate a command ``func(m, source, **options, as_json)`` that acts on one tight-binding model.

    The decorated command takes the shared model-source arguments (``MODEL`` first, then
    ``--filling``, ``--param``, ``--basis``, ``--no-soc``, ``--lattice``, ``--json``, with the same
    meaning in every command), loads the model once (:func:`topodiff.api.load_model`; a crystal file gives the
    Slater-Koster model ``screen`` builds) and calls ``func`` with it and the MODEL text.
    """
    import functools
    import inspect
    from typing import Optional

    import typer

    P = inspect.Parameter
    shared = [
        ("model", str, typer.Argument(..., help="topodiff-tb/1 JSON file, Wannier90 _hr.dat, built-in model "
                                      "name, or crystal file (CIF/POSCAR: the Slater-Koster model `screen` builds)")),
        ("filling", Optional[int], typer.Option(None, "--filling", help="occupied bands (needed for Wannier90 "
                                                "files; default for others: half filling)")),
        ("param", Optional[list[str]], typer.Option(None, "--param", help="built-in model parameter KEY=VALUE "
                                                    "(repeatable)")),
        ("basis", Optional[str], typer.Option(None, "--basis", help="crystal files: orbital basis sp3 or sp3s* "
                                              "(as `screen`)")),
        ("no_soc", bool, typer.Option(False, "--no-soc", help="crystal files: no on-site spin-orbit coupling "
                                      "(as `screen`)")),
        ("lattice", Optional[str], typer.Option(None, "--lattice", help="Wannier90 files without a cell: a .win, "
                                                "wt.in or POSCAR holding it, or nine numbers a1 a2 a3 (Å)")),
        ("as_json", bool, typer.Option(False, "--json", help="print one JSON object on stdout")),
    ]
    names = {name for name, _, _ in shared}
    own = [p for p in list(inspect.signature(func).parameters.values())[2:] if p.name not in names]  # after (m, source)

    @functools.wraps(func)
    def command(**kwargs: Any) -> Any:
        from topodiff.api import load_model

        model, filling, param, basis, no_soc, lattice = (kwargs.pop(name) for name, _, _ in shared[:-1])
        m = load_model(model, filling=filling, params=parse_params(param), basis=basis,
                       soc=False if no_soc else None)
        if lattice is not None:
            from topodiff.physics.io import with_lattice

            m = with_lattice(m, lattice)
        return func(m, model, **kwargs)  # as_json passes through

    params = [P(name, P.KEYWORD_ONLY, default=default, annotation=typ) for name, typ, default in shared[:1]]
    params += [p.replace(kind=P.KEYWORD_ONLY) for p in own]
    params += [P(name, P.KEYWORD_ONLY, default=default, annotation=typ) for name, typ, default in shared[1:]]
    command.__signature__ = inspect.Signature(params)
    hints = dict(getattr(func, "__annotations__", {}))  # strings, resolved in func's module
    hints.update({name: typ for name, typ, _ in shared})
    command.__annotations__ = {k: v for k, v in hints.items() if k in {p.name for p in params}}
    return command

"""Verify many crystals: one child process per crystal (hard timeout), results cached for resuming.

Each crystal's result is keyed by :func:`topodiff.io_utils.fingerprint` of its content (lattice,
species, coordinates) and the options, so rerunning the same command over the same ``--out``
directory skips what is done (``OUT/results/<key>.json``, written atomically) and retries what
failed or timed out only when ``retry_failed``.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

from topodiff.errors import TopodiffInputError

JOB = "verify-dft"


#: Options that only gate which crystals run (not their result): left out of the fingerprints.
GATE_OPTIONS = ("max_atoms",)


def _result_options(opts: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in opts.items() if k not in GATE_OPTIONS}


def crystal_key(structure: Any, opts: dict[str, Any]) -> str:
    """Fingerprint of a crystal's content (rounded to 1e-6) plus the options and code version."""
    from topodiff.io_utils import fingerprint

    content = {"lattice": np.round(structure.lattice.matrix, 6).tolist(),
               "numbers": [int(z) for z in structure.atomic_numbers],
               "frac": np.round(np.mod(structure.frac_coords, 1.0), 6).tolist()}
    return fingerprint(options={"crystal": content, **_result_options(opts)})


def _child(conn: Any, structure: Any, opts: dict[str, Any]) -> None:
    import contextlib

    from topodiff.dft.verify import verify_structure

    try:
        with contextlib.redirect_stdout(sys.stderr):
            conn.send(("ok", verify_structure(structure, **opts)))
    except TopodiffInputError as exc:
        conn.send(("input", str(exc)))
    except Exception as exc:  # an internal failure on one crystal must not stop the batch
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def run_isolated(structure: Any, opts: dict[str, Any], timeout: float) -> tuple[str, Any]:
    """Run :func:`verify_structure` in a child process; ``("timeout", msg)`` after ``timeout`` s."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, structure, opts), daemon=True)
    proc.start()
    child.close()
    previous = signal.signal(signal.SIGTERM, _terminate) if threading.current_thread() is threading.main_thread() else None
    try:
        if parent.poll(timeout):
            return parent.recv()
        return "timeout", f"timed out after {timeout:g} s (--timeout)"
    except EOFError:
        return "error", f"the DFT process died (exit code {proc.exitcode}); out of memory?"
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        parent.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM → SystemExit, so that :func:`run_isolated` kills its DFT child before exiting."""
    raise SystemExit(128 + signum)


def verify_records(records: list[Any], opts: dict[str, Any], *, timeout: float, out: Path | None = None,
                   progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """One row per record (input order): the result, or ``verdict: None`` with ``error``."""
    from topodiff.dft.verify import MAX_ATOMS, precheck
    from topodiff.io_utils import atomic_write_json

    rows = []
    for rec in records:
        if not rec.ok:
            rows.append({"source": rec.source, "formula": None, "verdict": None, "error": rec.error})
            continue
        try:  # refusals (magnetic, f-electron, too large) cost no DFT and no child process
            precheck(rec.structure, max_atoms=int(opts.get("max_atoms", MAX_ATOMS)), symmetrize=opts.get("symmetrize"))
        except TopodiffInputError as exc:
            rows.append({"source": rec.source, "formula": rec.structure.composition.reduced_formula,
                         "verdict": None, "error": str(exc), "error_kind": "input"})
            continue
        key = crystal_key(rec.structure, opts)
        cache = out / "results" / f"{key[:24]}.json" if out is not None else None
        if cache is not None and cache.is_file():
            rows.append({**json.loads(cache.read_text()), "source": rec.source, "cached": True})
            continue
        if progress:
            progress(f"verify --dft: {rec.source} ({rec.structure.composition.reduced_formula}, {len(rec.structure)} atoms)")
        status, value = run_isolated(rec.structure, opts, timeout)
        if status == "ok":
            row = {"source": rec.source, **value}
            if cache is not None:
                atomic_write_json(cache, row)
        else:
            row = {"source": rec.source, "formula": rec.structure.composition.reduced_formula, "verdict": None,
                   "error": value, "error_kind": status}
        rows.append(row)
    return rows


def verify_path(path: str | os.PathLike, opts: dict[str, Any], *, timeout: float = 600.0,
                out: str | os.PathLike | None = None, overwrite: bool = False,
                progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Verify every crystal of a file / directory / ``generate`` output (resumable with ``out``)."""
    from topodiff.crystal.io import read_structures
    from topodiff.dft.lcao import require_gpaw
    from topodiff.io_utils import atomic_write_json, claim_output_dir, fingerprint

    if not timeout > 0:
        raise TopodiffInputError(f"--timeout must be > 0 s, got {timeout}")
    require_gpaw()
    records = read_structures(path)
    out_dir = None
    if out is not None:
        out_dir = claim_output_dir(out, job=JOB, fingerprint=fingerprint(sources=[path], options=_result_options(opts)),
                                   overwrite=overwrite, resume=True)
    rows = verify_records(records, opts, timeout=timeout, out=out_dir, progress=progress)
    if out_dir is not None:
        atomic_write_json(out_dir / "verify.json", {"structures": rows, "options": opts})
    return rows

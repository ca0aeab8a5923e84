"""Resumable topology labelling of a crystal dataset (``topodiff dataset label``).

Every entry of the source (a CDVAE-style CSV or anything :func:`topodiff.crystal.io.read_structures`
reads) is screened with :func:`topodiff.evaluation.screen.screen_structure`.

**One run, one fingerprint.** The job's state lives in the directory ``OUT.progress/``, owned by one
run through :func:`topodiff.io_utils.claim_output_dir` with the fingerprint of (source content,
screen options, topodiff version). Rerunning the same command resumes; rerunning after the source or
an option changed is refused with a message naming the difference (``--overwrite`` starts afresh), so
labels of one setting are never mixed into another's output. An ``OUT`` that exists without such a
state directory was not written by this job and is not overwritten without ``--overwrite``.
Symlinked ``OUT`` or state files are refused.

**Rows keyed by content.** ``OUT.progress/rows.jsonl`` holds one JSON line per screened entry,
``{"key", "id", "source", "topo_class", "gap", "z2", "error"}``, where ``key`` is the sha256 of the
entry's structure (lattice, species, fractional coordinates; or of its read error). It is appended
in chunks, each a single ``write`` of whole lines followed by ``fsync`` (opened without following
symlinks). A run killed at any point loses at most the chunk in flight; a truncated last line is
ignored and those rows are recomputed. A rerun screens only entries whose key is missing and finally
writes ``OUT`` (atomically) with every row exactly once, in source order: the source's columns plus
``topo_class``, ``gap``, ``z2`` (``"ν0;ν1;ν2;ν3"`` or empty) and ``label_error``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from topodiff.errors import TopodiffInputError
from topodiff.io_utils import RUN_MARKER, atomic_write, claim_output_dir, fingerprint

LABEL_COLUMNS = ("topo_class", "gap", "z2", "label_error")
JOB = "dataset-label"


def state_dir(out: str | os.PathLike) -> Path:
    """The directory holding the state of the labelling run that writes ``out``."""
    out = Path(out)
    return out.with_name(out.name + ".progress")


def progress_path(out: str | os.PathLike) -> Path:
    """The progress file (JSON lines) of the labelling run that writes ``out``."""
    return state_dir(out) / "rows.jsonl"


def row_key(record: Any) -> str:
    """sha256 of an entry's content: its structure (lattice, atomic numbers, fractional coordinates
    as float64) or, for an unreadable entry, its source and error."""
    h = hashlib.sha256()
    s = record.structure
    if s is None or record.error is not None:
        h.update(f"error\0{record.source}\0{record.error}".encode())
    else:
        h.update(b"structure\0")
        h.update(np.ascontiguousarray(s.lattice.matrix, dtype=np.float64).tobytes())
        h.update(np.asarray(s.atomic_numbers, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(s.frac_coords, dtype=np.float64).tobytes())
    return h.hexdigest()


def read_progress(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """``{key: result}`` from a progress file; unparsable (truncated) lines are skipped."""
    done: dict[str, dict[str, Any]] = {}
    path = Path(path)
    if not path.exists():
        return done
    with open(path, "rb") as fh:
        for raw in fh:
            try:
                item = json.loads(raw.decode("utf-8"))
                done.setdefault(str(item["key"]), item)
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                continue  # a line cut by a kill mid-write: that row is recomputed
    return done


def append_progress(path: str | os.PathLike, items: list[dict[str, Any]]) -> None:
    """Append ``items`` as JSON lines with one ``write`` + ``fsync`` (all lines or a cut tail).

    The file is opened with ``O_NOFOLLOW``: a symlink planted at its place is refused, not written through.
    """
    if not items:
        return
    data = "".join(json.dumps(it, allow_nan=False) + "\n" for it in items).encode("utf-8")
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        if path.is_symlink():
            raise TopodiffInputError(f"{path} is a symlink; refusing to write through it") from None
        raise TopodiffInputError(f"cannot write the progress file {path}: {exc.strerror}") from None
    try:
        # a previous run killed mid-line leaves a tail without newline: start on a fresh line
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _z2_text(z2: Any) -> str:
    return "" if z2 is None else ";".join(str(int(x)) for x in z2)


def _finite_or_none(x: Any) -> Any:
    try:
        return None if x is None or x != x else float(x)
    except (TypeError, ValueError):
        return None


def label_dataset(source: str | os.PathLike, out: str | os.PathLike, *, workers: int | None = None,
                  chunk: int = 20, limit: int | None = None, screen_opts: dict[str, Any] | None = None,
                  overwrite: bool = False, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Label every structure of ``source`` and write ``out`` (CSV); resumable (see module doc).

    Parameters
    ----------
    source : CDVAE-style CSV (its columns are kept) or any input of ``read_structures``.
    out : output CSV path; the run's state is in ``out + ".progress/"``.
    workers : screening processes (None: up to 2). chunk : results per progress append.
    limit : stop after screening this many new rows (for tests/benchmarks; ``out`` is then not
        written until a later run completes).
    screen_opts : options of the screen (``limits``: a ``CrystalLimits``); they enter the fingerprint.
    overwrite : discard the state of a run with another fingerprint (or a foreign ``out``) and start afresh.

    Returns
    -------
    ``{"rows", "screened_now", "resumed", "complete", "out", "counts", "fingerprint"}``.
    """
    import pandas as pd

    from topodiff.crystal.io import read_structures

    log = log or (lambda msg: print(msg, file=sys.stderr))
    if chunk < 1:
        raise TopodiffInputError(f"--chunk must be at least 1, got {chunk}")
    out = Path(out)
    if out.suffix.lower() != ".csv":
        raise TopodiffInputError(f"--out must be a .csv file, got {out}")
    if not Path(source).exists():
        raise TopodiffInputError(f"no such file or directory: {source}")
    screen_opts = dict(screen_opts or {})
    fp = fingerprint(sources=[source], options={"job": JOB, "screen": _jsonable(screen_opts)})
    records = read_structures(source)  # an unreadable source fails before the run's state is claimed
    _claim(out, fp, overwrite)
    n = len(records)
    keys = [row_key(r) for r in records]
    prog = progress_path(out)
    done = read_progress(prog)
    todo = [i for i in range(n) if keys[i] not in done]
    if limit is not None:
        todo = todo[:max(0, int(limit))]
    resumed = sum(k in done for k in keys)
    if resumed:
        log(f"resuming: {resumed}/{n} rows already labelled in {prog}")
    screened = _screen_rows(records, keys, todo, done, prog, screen_opts, workers, (chunk, resumed), log)
    rows = {i: done[k] for i, k in enumerate(keys) if k in done}
    complete = len(rows) == n
    counts: dict[str, int] = {}
    for r in rows.values():
        name = r.get("topo_class") or "error"
        counts[name] = counts.get(name, 0) + 1
    if complete:
        _write_output(source, records, rows, out, pd)
        log(f"wrote {out} ({n} rows)")
    return {"rows": n, "screened_now": screened, "resumed": resumed, "complete": complete, "out": str(out),
            "counts": counts, "fingerprint": fp}


def _screen_rows(records: list[Any], keys: list[str], todo: list[int], done: dict[str, dict[str, Any]], prog: Path,
                 screen_opts: dict[str, Any], workers: int | None, counts: tuple[int, int],
                 log: Callable[[str], None]) -> int:
    """Screen the rows ``todo``, add their labels to ``done`` (by row key) and append them to the
    progress file ``prog`` every ``chunk`` results (``counts`` = chunk, rows labelled before this run,
    for the progress lines); returns how many were screened."""
    from topodiff.evaluation.screen import records_to_tasks, screen_tasks

    (chunk, already), n = counts, len(records)
    buffer: list[dict[str, Any]] = []
    screened = 0
    for index, row in screen_tasks(records_to_tasks(records, screen_opts, todo), workers=workers, log=log):
        item = {"key": keys[index], "id": index, "source": records[index].source,
                "topo_class": row.get("topo_class"), "gap": _finite_or_none(row.get("gap")), "z2": row.get("z2"),
                "error": row.get("error")}
        buffer.append(item)
        done.setdefault(keys[index], item)
        screened += 1
        if len(buffer) >= chunk:
            append_progress(prog, buffer)
            buffer = []
            log(f"labelled {already + screened}/{n}")
    append_progress(prog, buffer)
    return screened


def _jsonable(opts: dict[str, Any]) -> dict[str, Any]:
    """Screen options as plain JSON (a ``CrystalLimits`` becomes its fields)."""
    return {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in opts.items()}


def _claim(out: Path, fp: str, overwrite: bool) -> None:
    """Own ``OUT.progress/`` for this run (resume the same fingerprint, refuse another) and refuse an
    ``OUT`` that is a symlink or that exists without a labelling run's state beside it."""
    state = state_dir(out)
    for p in (out, state, state / "rows.jsonl"):
        if p.is_symlink():
            raise TopodiffInputError(f"{p} is a symlink; refusing to write through it (choose another --out)")
    if out.exists() and not (state / RUN_MARKER).exists() and not overwrite:
        raise TopodiffInputError(f"{out} exists and was not written by `dataset label` (no {state.name}/ beside "
                                 "it); pass --overwrite to replace it or choose another --out")
    claim_output_dir(state, job=JOB, fingerprint=fp, overwrite=overwrite, resume=True)


def _write_output(source: str | os.PathLike, records: list[Any], done: dict[int, dict[str, Any]],
                  out: Path, pd: Any) -> None:
    """Write the labelled table (source columns + label columns), atomically."""
    n = len(records)
    from topodiff.crystal.io import is_csv

    src = Path(source)
    if src.is_file() and is_csv(src):
        df = pd.read_csv(src, dtype={"material_id": str}, keep_default_na=True)
        if len(df) != n:
            raise TopodiffInputError(f"{src}: {len(df)} CSV rows but {n} structures were read")
    else:
        df = pd.DataFrame({"source": [r.source for r in records],
                           "cif": [r.structure.to(fmt="cif") if r.structure is not None else "" for r in records]})
    df = df.drop(columns=[c for c in LABEL_COLUMNS if c in df.columns])
    df["topo_class"] = [done[i].get("topo_class") for i in range(n)]
    df["gap"] = [done[i].get("gap") for i in range(n)]
    df["z2"] = [_z2_text(done[i].get("z2")) for i in range(n)]
    df["label_error"] = [done[i].get("error") for i in range(n)]
    atomic_write(out, lambda fh: df.to_csv(fh, index=False))

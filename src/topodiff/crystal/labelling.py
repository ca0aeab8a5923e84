"""Resumable topology labelling of a crystal dataset (``topodiff dataset label``).

Every entry of the source (a CDVAE-style CSV or anything :func:`topodiff.crystal.io.read_structures`
reads) is screened with :func:`topodiff.evaluation.screen.screen_structure`. Results go to a
progress file ``OUT.progress.jsonl`` beside the output, one JSON line per entry keyed by its row
id (``{"id", "source", "topo_class", "gap", "z2", "error"}``), appended in chunks: each chunk is a
single ``write`` of whole lines followed by ``fsync``. A run killed at any point loses at most the
chunk in flight; a truncated last line is ignored and those rows are recomputed. A rerun reads the
progress file, screens only the missing ids and finally writes ``OUT`` (atomically) with every row
exactly once, in source order: the source's columns plus ``topo_class``, ``gap``, ``z2``
(``"ν0;ν1;ν2;ν3"`` or empty) and ``label_error``.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from topodiff.errors import TopodiffInputError
from topodiff.io_utils import atomic_write

LABEL_COLUMNS = ("topo_class", "gap", "z2", "label_error")


def progress_path(out: str | os.PathLike) -> Path:
    """The progress file that belongs to output ``out``."""
    out = Path(out)
    return out.with_name(out.name + ".progress.jsonl")


def read_progress(path: str | os.PathLike) -> dict[int, dict[str, Any]]:
    """``{id: result}`` from a progress file; unparsable (truncated) lines are skipped."""
    done: dict[int, dict[str, Any]] = {}
    path = Path(path)
    if not path.exists():
        return done
    with open(path, "rb") as fh:
        for raw in fh:
            try:
                item = json.loads(raw.decode("utf-8"))
                done.setdefault(int(item["id"]), item)
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                continue  # a line cut by a kill mid-write: that row is recomputed
    return done


def append_progress(path: str | os.PathLike, items: list[dict[str, Any]]) -> None:
    """Append ``items`` as JSON lines with one ``write`` + ``fsync`` (all lines or a cut tail)."""
    if not items:
        return
    data = "".join(json.dumps(it, allow_nan=False) + "\n" for it in items).encode("utf-8")
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        # a previous run killed mid-line leaves a tail without newline: start on a fresh line
        if os.fstat(fd).st_size:
            with open(path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
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
                  log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Label every structure of ``source`` and write ``out`` (CSV); resumable (see module doc).

    Parameters
    ----------
    source : CDVAE-style CSV (its columns are kept) or any input of ``read_structures``.
    out : output CSV path; the progress file is ``out + ".progress.jsonl"``.
    workers : screening processes (None: up to 2). chunk : results per progress append.
    limit : stop after screening this many new rows (for tests/benchmarks; ``out`` is then not
        written until a later run completes).

    Returns
    -------
    ``{"rows", "screened_now", "resumed", "complete", "out", "counts"}``.
    """
    import pandas as pd

    from topodiff.crystal.io import read_structures
    from topodiff.evaluation.screen import records_to_tasks, screen_tasks

    log = log or (lambda msg: print(msg, file=sys.stderr))
    if chunk < 1:
        raise TopodiffInputError(f"--chunk must be at least 1, got {chunk}")
    out = Path(out)
    if out.suffix.lower() != ".csv":
        raise TopodiffInputError(f"--out must be a .csv file, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    records = read_structures(source)
    n = len(records)
    prog = progress_path(out)
    done = {i: r for i, r in read_progress(prog).items() if 0 <= i < n}
    for i, r in done.items():
        if r.get("source") != records[i].source:
            raise TopodiffInputError(f"{prog} belongs to another source (row {i}: {r.get('source')!r} vs "
                                     f"{records[i].source!r}); delete it or choose another --out")
    todo = [i for i in range(n) if i not in done]
    if limit is not None:
        todo = todo[:max(0, int(limit))]
    resumed = len(done)
    if resumed:
        log(f"resuming: {resumed}/{n} rows already labelled in {prog}")
    buffer: list[dict[str, Any]] = []
    screened = 0
    for index, row in screen_tasks(records_to_tasks(records, screen_opts or {}, todo), workers=workers):
        item = {"id": index, "source": records[index].source, "topo_class": row.get("topo_class"),
                "gap": _finite_or_none(row.get("gap")), "z2": row.get("z2"), "error": row.get("error")}
        buffer.append(item)
        done[index] = item
        screened += 1
        if len(buffer) >= chunk:
            append_progress(prog, buffer)
            buffer = []
            log(f"labelled {len(done)}/{n}")
    append_progress(prog, buffer)
    complete = len(done) == n
    counts: dict[str, int] = {}
    for r in done.values():
        key = r.get("topo_class") or "error"
        counts[key] = counts.get(key, 0) + 1
    if complete:
        _write_output(source, records, done, out, pd)
        log(f"wrote {out} ({n} rows)")
    return {"rows": n, "screened_now": screened, "resumed": resumed, "complete": complete, "out": str(out),
            "counts": counts}


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

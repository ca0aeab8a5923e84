"""Crystal structure prediction metrics of ``topodiff csp`` output (DiffCSP match rate and RMSE)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pymatgen.core import Structure

from topodiff.errors import TopodiffInputError
from topodiff.evaluation import metrics as M
from topodiff.evaluation.entries import Entry


def csp_output_metadata(path: str | os.PathLike) -> dict[str, Any] | None:
    """``metadata.json`` of a ``topodiff csp`` output directory (it has ``num_compositions``), else None."""
    meta_path = Path(path) / "metadata.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and "num_compositions" in meta else None


def csp_metrics(entries: Sequence[Entry], reference: Sequence[Structure], rows: list[dict[str, Any]] | None = None
                ) -> dict[str, Any]:
    """DiffCSP match rate and RMSE of ``topodiff csp`` output against the structures it was asked for.

    Frame ``info["index"]`` (the input row) pairs each prediction with ``reference[index]``, so the
    reference must be the CSP input file itself. With ``K`` samples per composition a composition is
    matched when any sample matches, and its RMSE is the smallest among them (DiffCSP's multi-sample
    metric). Writes ``csp_rms`` into ``rows`` (None: no match).
    """
    index = _input_rows(entries, reference)
    return _match_summary([e.structure for e in entries], index, reference, rows)


def relaxed_csp_metrics(entries: Sequence[Entry], relaxed: Sequence[Structure | None],
                        reference: Sequence[Structure]) -> dict[str, Any]:
    """:func:`csp_metrics` of the relaxed crystals as ``topodiff evaluate --relax`` writes them (a crystal
    whose relaxation failed keeps its prediction): ``csp_relaxed_match_rate``, ``csp_relaxed_rmse``."""
    index = _input_rows(entries, reference)
    after = [e.structure if r is None else r for e, r in zip(entries, relaxed)]
    metrics = _match_summary(after, index, reference)
    return {"csp_relaxed_match_rate": metrics["csp_match_rate"], "csp_relaxed_rmse": metrics["csp_rmse"]}


def _input_rows(entries: Sequence[Entry], reference: Sequence[Structure]) -> np.ndarray:
    """The input row of each prediction (frame ``info["index"]``), checked against ``reference``."""
    index = [e.labels.get("index") for e in entries]
    if any(i is None for i in index):
        raise TopodiffInputError("CSP metrics need the frames of a `topodiff csp` output (info 'index' missing)")
    index = np.asarray(index, dtype=int)
    if index.min() < 0 or index.max() >= len(reference):
        raise TopodiffInputError(f"CSP output refers to input row {index.max()}, but the reference has "
                                 f"{len(reference)} structures: pass the CSP input file as --reference")
    for e, i in zip(entries, index):
        if e.structure is not None and e.structure.composition != reference[i].composition:
            raise TopodiffInputError(f"{e.source} has composition {e.structure.composition.formula} but reference row "
                                     f"{i} is {reference[i].composition.formula}: pass the CSP input file as --reference")
    return index


def _match_summary(structures: Sequence[Structure | None], index: np.ndarray, reference: Sequence[Structure],
                   rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Match rate and RMSE over the compositions asked for, best sample each (see :func:`csp_metrics`)."""
    matcher = M.csp_matcher()
    best = np.full(len(reference), np.inf)
    for k, (s, i) in enumerate(zip(structures, index)):
        d = M.csp_rms(s, reference[i], matcher)
        if rows is not None:
            rows[k]["csp_rms"] = d
        if d is not None:
            best[i] = min(best[i], d)
    asked = np.unique(index)
    matched = np.isfinite(best[asked])
    return {"csp_num_compositions": int(len(asked)),
            "csp_samples_per_composition": float(len(structures) / len(asked)),
            "csp_match_rate": float(matched.mean()),
            "csp_rmse": float(best[asked][matched].mean()) if matched.any() else None}

"""Evaluate a set of (generated) crystals: validity, uniqueness, novelty against the index of known
crystals (and ``--reference``), coverage, CHGNet energies → energy above the DFT hull, S.U.N., the
Slater-Koster topology screen and the learned topology judge.

Entry points: :func:`evaluate_entries` (the metrics of a list of crystals) and
:func:`evaluate_path` (read → evaluate → write ``metrics.json``, ``structures.csv`` and, with
relaxation, ``relaxed.extxyz`` into an output directory — never into the input directory).
Reading lives in :mod:`.entries`, the judging stages in :mod:`.judging`, reference-set metrics in
:mod:`.distribution`, CSP metrics in :mod:`.csp_eval`, the written files in :mod:`.outputs`.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from pymatgen.core import Structure

from topodiff.errors import TopodiffInputError
from topodiff.evaluation import metrics as M
from topodiff.evaluation.csp_eval import csp_metrics, csp_output_metadata, relaxed_csp_metrics
from topodiff.evaluation.distribution import MAX_COV_REFERENCE, reference_metrics
from topodiff.evaluation.entries import Entry, guess_dataset, load_entries, load_reference
from topodiff.evaluation.judging import (discovery_counts, energy_stage, hull_stage, hull_summary, judge_stage,
                                         novelty_stage)
from topodiff.evaluation.outputs import write_outputs

__all__ = ["Entry", "evaluate_entries", "evaluate_path", "default_out_dir", "load_entries", "load_reference",
           "guess_dataset", "MAX_COV_REFERENCE"]


#: Keys of a screen row (:func:`topodiff.evaluation.screen.screen_structure`) copied into evaluate's rows.
SCREEN_KEYS = ("gap", "direct_gap", "z2", "z2_basis", "z2_conventional", "topo_class")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _screen_rows(structures: Sequence[Structure | None], progress: bool,
                 valid: Sequence[bool] | None = None) -> list[dict[str, Any]] | None:
    """Topology screen per structure (``topodiff.evaluation.screen``); None if unavailable.

    Structurally invalid crystals (``valid[i]`` False: overlapping atoms) are not screened: a
    tight-binding model of overlapping atoms means nothing and can be very slow to diagonalise.
    """
    try:
        from topodiff.evaluation.screen import screen_structure
    except ImportError:
        _log("topology screen unavailable (topodiff.evaluation.screen missing): topo_class left empty")
        return None
    from tqdm import tqdm

    rows = []
    for s in tqdm(structures, desc="screen (SK-TB)", unit="crystal", file=sys.stderr, disable=not progress):
        if s is None:
            rows.append({"topo_class": None, "screen_error": "no structure"})
            continue
        if valid is not None and not valid[len(rows)]:
            rows.append({"topo_class": None, "screen_error": "structurally invalid: not screened"})
            continue
        try:
            r = dict(screen_structure(s))
            rows.append({**{k: r.get(k) for k in SCREEN_KEYS}, "screen_error": r.get("error")})
        except Exception as exc:  # one crystal's screen failure must not stop the run
            rows.append({"topo_class": None, "screen_error": f"{type(exc).__name__}: {exc}"})
    return rows


def _space_group(s: Structure) -> dict[str, Any]:
    """``space_group`` / ``space_group_symbol`` of the one symmetry analysis (None when none found)."""
    from topodiff.crystal.symmetry import analyze

    sym = analyze(s)
    return {"space_group": sym.number if sym else None, "space_group_symbol": sym.symbol if sym else None}


def _composition_valid(s: Structure) -> bool:
    """SMACT validity; an element SMACT does not know (e.g. Z ≥ 104) makes the crystal invalid."""
    try:
        return M.composition_valid(s.composition)
    except (KeyError, ValueError, TypeError):
        return False


def _basic_rows(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i, e in enumerate(entries):
        s = e.structure
        row: dict[str, Any] = {"index": i, "source": e.source, "read_error": e.error}
        if s is not None:
            d = M.min_distance(s, cutoff=3.0)
            row.update(formula=s.composition.reduced_formula, num_atoms=len(s),
                       elements=" ".join(sorted(el.symbol for el in s.composition.elements)),
                       num_elements=len(s.composition.elements), density=float(s.density),
                       volume=float(s.volume), min_distance=None if not np.isfinite(d) else d,
                       **_space_group(s), structure_valid=M.structure_valid(s),
                       composition_valid=_composition_valid(s))
        else:
            row.update(structure_valid=False, composition_valid=False)
        row["valid"] = bool(row["structure_valid"] and row["composition_valid"])
        rows.append(row)
    return rows


def _symmetric_fraction(rows: Sequence[dict[str, Any]]) -> float | None:
    """Share of the readable crystals, as given (before any relaxation), whose space group at 0.1 Å is
    above P1 (1.7 % of 300 ``mp_20/train`` crystals are P1; a generator's excess P1 share is disorder)."""
    groups = [r.get("space_group") for r in rows if r.get("formula") is not None]
    return float(np.mean([g is not None and g > 1 for g in groups])) if groups else None


def _uniqueness(structs: Sequence[Structure | None], rows: list[dict[str, Any]]) -> tuple[np.ndarray, float]:
    """``[n]`` bool (first member of each StructureMatcher class) and the uniqueness fraction."""
    n = len(structs)
    ridx = [i for i, s in enumerate(structs) if s is not None]
    labels = M.unique_labels([structs[i] for i in ridx]) if ridx else np.array([], dtype=int)
    first = np.zeros(n, dtype=bool)
    for k, i in enumerate(ridx):
        rows[i]["class_label"] = int(ridx[labels[k]])
        first[i] = labels[k] == k
        rows[i]["unique"] = bool(first[i])
    return first, float(len(np.unique(labels)) / n) if ridx else 0.0


def evaluate_entries(entries: Sequence[Entry], *, reference: Sequence[Structure] | None = None,
                     dataset: str = "mp20", relax: bool = False, screen: bool = True,
                     relax_fmax: float = 0.1, relax_steps: int = 300, max_cov_reference: int = MAX_COV_REFERENCE,
                     progress: bool = True, judge: bool = True,
                     relax_fn: Callable[..., list] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]], list]:
    """Compute the metrics of a list of crystals.

    Returns
    -------
    summary : dict with CONTRACTS §3 keys (``num_structures``, ``structural_validity``,
        ``compositional_validity``, ``uniqueness``, ``novelty``, ``rmsd_to_relaxed``,
        ``topo_class_counts``) plus hull coverage, S.U.N., the learned judge's counts and, with a
        reference, coverage and Wasserstein distances.
    rows : one dict per crystal (the CSV rows; ``outputs.json_rows`` gives the ``--json`` rows).
    relaxed : relaxed structures (None where not relaxed), in order.
    """
    t0 = time.time()
    n = len(entries)
    if n == 0:
        raise TopodiffInputError("no structures to evaluate")
    structs = [e.structure for e in entries]
    rows = _basic_rows(entries)
    sv = np.array([r["structure_valid"] for r in rows])
    cv = np.array([r["composition_valid"] for r in rows])
    first, uniq = _uniqueness(structs, rows)
    summary: dict[str, Any] = {
        "num_structures": n, "num_readable": int(sum(s is not None for s in structs)),
        "structural_validity": float(sv.mean()), "compositional_validity": float(cv.mean()),
        "validity": float((sv & cv).mean()), "uniqueness": uniq, "symmetric_fraction": _symmetric_fraction(rows)}
    not_in_ref = None
    if reference is not None:
        ref_summary, not_in_ref = reference_metrics(structs, [r["valid"] for r in rows], reference,
                                                    dataset=dataset, max_cov_reference=max_cov_reference)
        summary.update(ref_summary)
    novel, nov_summary = novelty_stage(structs, rows, not_in_ref)
    summary.update(nov_summary)

    relaxed, e_summary = energy_stage(structs, list(sv), rows, relax=relax, relax_fn=relax_fn,
                                      relax_fmax=relax_fmax, relax_steps=relax_steps, progress=progress)
    summary.update(e_summary)
    eh = hull_stage(structs, relaxed, list(sv), rows)
    summary.update(hull_summary(eh, rows, first, novel))

    final = [relaxed[i] if relaxed[i] is not None else structs[i] for i in range(n)]
    for i in range(n):
        if relaxed[i] is not None:   # the rows show the relaxed crystal's space group (and keep the input's)
            rows[i]["space_group_unrelaxed"] = rows[i].get("space_group")
            rows[i].update(_space_group(relaxed[i]))
    scr = _screen_rows(final, progress, valid=list(sv)) if screen else None
    counts: dict[str, int] = {}
    if scr is not None:
        for i, r in enumerate(scr):
            rows[i].update(r)
            key = r.get("topo_class") or "unscreened"
            counts[key] = counts.get(key, 0) + 1
    summary["topo_class_counts"] = counts
    if judge:
        summary.update(judge_stage([s if sv[i] else None for i, s in enumerate(final)], rows))
    summary["discovery"] = discovery_counts(eh, rows, first, novel)
    summary["wall_time_s"] = round(time.time() - t0, 2)
    return summary, rows, relaxed


def default_out_dir(path: str | os.PathLike) -> Path:
    """``<PATH>_eval`` beside the input (a directory or a file): never the input directory itself."""
    p = Path(path)
    return p.with_name((p.stem if p.is_file() else p.name) + "_eval")


def evaluate_path(path: str | os.PathLike, *, reference: Sequence[str | os.PathLike] | None = None,
                  relax: bool = False, out_dir: str | os.PathLike | None = None, screen: bool = True,
                  dataset: str | None = None, progress: bool = True, **kwargs: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read ``path``, evaluate it (see :func:`evaluate_entries`) and write results to ``out_dir``
    (default :func:`default_out_dir`). Raises :class:`TopodiffInputError` when no crystal was read."""
    p = Path(path)
    ds = dataset or (guess_dataset(reference) if reference else "mp20")
    if ds not in M.COV_CUTOFFS:
        raise TopodiffInputError(f"unknown dataset {ds!r} (expected one of {', '.join(M.COV_CUTOFFS)})")
    entries = load_entries(p)
    if not entries:
        raise TopodiffInputError(f"{p}: no structures found")
    ref = load_reference(reference) if reference else None
    summary, rows, relaxed = evaluate_entries(entries, reference=ref, dataset=ds, relax=relax, screen=screen,
                                              progress=progress, **kwargs)
    if ref is not None and p.is_dir() and csp_output_metadata(p) is not None:
        summary.update(csp_metrics(entries, ref, rows))
        if relax:
            summary.update(relaxed_csp_metrics(entries, relaxed, ref))
    od = Path(out_dir) if out_dir else default_out_dir(p)
    summary["input"] = str(p.resolve())
    summary["input_relative_to_output"] = os.path.relpath(p.resolve(), od.resolve())
    if reference:
        summary["reference"] = [str(Path(r).resolve()) for r in reference]
    write_outputs(od, summary, rows, relaxed)
    if summary["num_readable"] == 0:
        raise TopodiffInputError(f"{p}: none of the {len(entries)} crystals could be read "
                                 f"(first problem: {entries[0].error}); outputs in {od}")
    return summary, rows

"""A topology judge learned from DFT catalogues (Materiae, TQC, Tang et al.).

:func:`judge_structures` predicts, for each crystal, the catalogue class it would most likely get
(``trivial`` | ``ti`` | ``tci`` | ``semimetal``) and the calibrated probability that it is
non-trivial. It is a descriptor model (composition statistics, electron counting, symmetry,
packing; :mod:`topodiff.judge.features`) trained on the labelled Materials Project training pools,
split by reduced formula; see ``docs/judge.md`` and the recipe ``judge.json`` beside the model.
It knows what DFT (PBE + spin-orbit) catalogues say about *relaxed, known-like* crystals; it does
not compute bands, and it has no opinion on elements it never saw.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from topodiff.crystal.catalogue import CLASSES

__all__ = ["CLASSES", "add_judgement", "judge_structures"]


def _none_row(note: str) -> dict[str, Any]:
    return {"catalogue_class": None, "p_topological": None, "probabilities": {}, "judge_note": note}


def judge_structures(structures: Sequence[Any], *, model_dir: str | None = None) -> list[dict[str, Any]]:
    """Learned topology verdict of each pymatgen ``Structure`` (``None`` entries allowed).

    Returns one dict per input, in order: ``catalogue_class`` (most probable class, or None),
    ``p_topological`` (calibrated P(not trivial), or None), ``probabilities`` (class → p) and, when
    there is no verdict, ``judge_note`` saying why (e.g. an element the judge never saw).
    """
    from topodiff.judge.features import structure_features
    from topodiff.judge.model import load_judge

    judge = load_judge(model_dir)
    rows: list[dict[str, Any] | None] = []
    feats, where = [], []
    for i, s in enumerate(structures):
        if s is None or len(s) == 0:
            rows.append(_none_row("no structure"))
            continue
        unknown = sorted({el.symbol for el in s.composition.elements} - judge.known_elements)
        if unknown:
            rows.append(_none_row(f"element(s) {', '.join(unknown)} absent from the judge's training data"))
            continue
        try:
            feats.append(structure_features(s))
        except Exception as exc:  # symmetry / neighbour search failure on a pathological cell
            rows.append(_none_row(f"features could not be computed: {exc}"))
            continue
        rows.append(None)
        where.append(i)
    if feats:
        proba = judge.proba(np.stack(feats))
        for i, p in zip(where, proba):
            k = int(np.argmax(p))
            rows[i] = {"catalogue_class": judge.classes[k], "p_topological": float(1.0 - p[judge.classes.index("trivial")]),
                       "probabilities": {c: float(v) for c, v in zip(judge.classes, p)}}
    return [r for r in rows if r is not None]


def add_judgement(rows: list[dict[str, Any]], structures: Sequence[Any]) -> list[dict[str, Any]]:
    """Add ``catalogue_class`` and ``p_topological`` (and ``judge_note`` when None) to each row.

    ``rows[i]`` belongs to ``structures[i]``; rows are updated in place and returned. The judge
    is loaded once; a judge that cannot be loaded gives None with the reason in ``judge_note``.
    """
    if len(rows) != len(structures):
        raise ValueError(f"{len(rows)} rows for {len(structures)} structures")
    try:
        verdicts = judge_structures(structures)
    except Exception as exc:  # a missing or broken model file must not stop a screen
        verdicts = [_none_row(f"judge unavailable: {exc}")] * len(rows)
    for row, v in zip(rows, verdicts):
        row["catalogue_class"], row["p_topological"] = v["catalogue_class"], v["p_topological"]
        if v.get("judge_note"):
            row["judge_note"] = v["judge_note"]
    return rows

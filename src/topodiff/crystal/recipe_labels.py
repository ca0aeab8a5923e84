"""DFT-catalogue and learned-judge labels for a recipe's crystals (column ``catalogue_class``).

A recipe with a ``labels:`` section (see ``configs/data/mp20.yaml``) labels its crystals with

* ``catalogue_class`` — the DFT topological class (``trivial`` | ``ti`` | ``tci`` | ``semimetal``)
  from the catalogues joined by :mod:`topodiff.crystal.catalogue` (by Materials Project id, and by
  (space group, reduced formula) for Tang et al.) where they agree, else, with ``judge: true``, the
  most probable class of the learned judge (:func:`topodiff.judge.judge_structures`);
* ``catalogue_source`` — ``catalogue``, ``judge`` or empty (no verdict), so a user can train on
  catalogue labels only and every figure can say which labels it used;
* ``p_topological`` — the judge's calibrated P(not trivial) (NaN where the judge was not asked).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

LABEL_KEYS = {"screen", "catalogue", "judge"}


def check_label_spec(spec: Any, recipe_path: Path) -> dict[str, Any]:
    """Validate a recipe's ``labels:`` mapping; resolves ``catalogue`` relative to the recipe."""
    from topodiff.errors import TopodiffInputError

    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise TopodiffInputError(f"{recipe_path}: labels must be a mapping")
    unknown = sorted(set(spec) - LABEL_KEYS)
    if unknown:
        raise TopodiffInputError(f"{recipe_path}: unknown labels key(s) {unknown}; known: {sorted(LABEL_KEYS)}")
    out = dict(spec)
    if "screen" in out and not (isinstance(out["screen"], list) and all(isinstance(s, str) for s in out["screen"])):
        raise TopodiffInputError(f"{recipe_path}: labels.screen must be a list of source names (e.g. [prototypes])")
    if out.get("catalogue"):
        cat = Path(str(out["catalogue"]))
        cat = cat if cat.is_absolute() else (recipe_path.parent / cat).resolve()
        if not cat.is_dir():
            raise TopodiffInputError(f"{recipe_path}: catalogue directory not found: {out['catalogue']}")
        out["catalogue"] = str(cat)
    if not isinstance(out.get("judge", False), bool):
        raise TopodiffInputError(f"{recipe_path}: labels.judge must be true or false")
    return out


def add_catalogue_labels(df: Any, structures: list[Any], spec: dict[str, Any],
                         log: Callable[[str], None] = print) -> dict[str, Any]:
    """Add ``catalogue_class``, ``catalogue_source`` and ``p_topological`` to ``df`` in place.

    ``structures`` are the rows' pymatgen structures (None for unreadable rows); ``df`` needs
    ``mp_id`` (Materials Project id or empty) and ``space_group_number``. Returns class counts per
    label source.
    """
    from topodiff.crystal.catalogue import CLASSES, label_rows, load_catalogues, tang_formula
    from topodiff.crystal.io import quiet

    n = len(df)
    cls: list[Any] = [np.nan] * n
    source: list[str] = [""] * n
    if spec.get("catalogue"):
        cats = load_catalogues(spec["catalogue"])
        ids = [str(m) if isinstance(m, str) and m.startswith(("mp-", "mvc-")) else None for m in df["mp_id"]]
        with quiet():
            formulas = [tang_formula(s.composition) if s is not None else None for s in structures]
        sgs = [int(g) if np.isfinite(g) else None for g in df["space_group_number"].astype(float)]
        joined = label_rows(ids, sgs, formulas, cats)["catalogue_class"]
        for i, c in enumerate(joined):
            if isinstance(c, str):
                cls[i], source[i] = c, "catalogue"
        log(f"catalogue classes for {sum(s == 'catalogue' for s in source)} of {n} crystals")
    p_topo = np.full(n, np.nan)
    if spec.get("judge"):
        from topodiff.judge import judge_structures

        todo = [i for i in range(n) if source[i] != "catalogue" and structures[i] is not None]
        log(f"learned judge on {len(todo)} crystals without a catalogue class")
        for i, row in zip(todo, judge_structures([structures[i] for i in todo])):
            if row.get("catalogue_class") is not None:
                cls[i], source[i], p_topo[i] = row["catalogue_class"], "judge", row["p_topological"]
    df["catalogue_class"] = cls
    df["catalogue_source"] = source
    df["p_topological"] = p_topo
    return {src: {c: int(sum(1 for k, s in zip(cls, source) if s == src and k == c)) for c in CLASSES}
            for src in ("catalogue", "judge")}

"""DFT topology-catalogue labels joined to crystals: column ``catalogue_class``.

Three catalogues (gzip CSVs under ``../shared/data/topology/``; see its README):

* **Materiae** (T. Zhang et al., Nature 566, 475 (2019)), by MP id, ``soc_class``;
* **TQC** as Materials Project shows it (M. G. Vergniory et al., Nature 566, 480 (2019)), by MP
  id, ``topo_class`` ∈ trivial / TI / SM;
* **Tang et al.** (F. Tang et al., Nature 566, 486 (2019), via topogivity), by (space group,
  reduced formula written ``Al1Cl7Se1``: elements alphabetical, every count written).

Each catalogue entry names the set of classes of ``CLASSES`` it is compatible with:

=================  =====================================  ==============================
catalogue          label                                  classes
=================  =====================================  ==============================
Materiae           Triv_Ins / TI / TCI                    {trivial} / {ti} / {tci}
Materiae           HSP_SM, HSL_SM                         {semimetal}
Materiae           Unknown                                none (no information)
TQC                trivial / SM                           {trivial} / {semimetal}
TQC                TI (split EBR or no linear combination) {ti, tci}: TQC does not tell a
                                                          Z2 TI from a crystalline one
Tang et al.        trivial_insulator_case1 / semimetal_case3 / TI / TCI   one class each
=================  =====================================  ==============================

The join intersects the sets of every catalogue that knows the crystal: one class left →
``catalogue_class``; none left (the catalogues disagree), several left (TQC alone says TI) or no
catalogue → NaN. ``catalogue_topological`` is the coarser verdict non-trivial (True) / trivial
(False) when every catalogue that knows the crystal agrees on it, else NaN: a TQC-only "TI", or
a crystal one catalogue calls a semimetal and another a TCI, is non-trivial though its class is NaN.
Materiae's TI includes weak TIs.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from topodiff.errors import TopodiffInputError

#: The learned judge's classes, in this order everywhere (probability vectors, metrics).
CLASSES = ("trivial", "ti", "tci", "semimetal")

MATERIAE_CLASSES: dict[str, frozenset[str]] = {
    "Triv_Ins": frozenset({"trivial"}), "TI": frozenset({"ti"}), "TCI": frozenset({"tci"}),
    "HSP_SM": frozenset({"semimetal"}), "HSL_SM": frozenset({"semimetal"}),
}
TQC_CLASSES: dict[str, frozenset[str]] = {
    "trivial": frozenset({"trivial"}), "TI": frozenset({"ti", "tci"}), "SM": frozenset({"semimetal"}),
}
TANG_CLASSES: dict[str, frozenset[str]] = {
    "trivial_insulator_case1": frozenset({"trivial"}), "TI": frozenset({"ti"}), "TCI": frozenset({"tci"}),
    "semimetal_case3": frozenset({"semimetal"}),
}
CATALOGUE_FILES = {"materiae": "materiae.csv.gz", "tqc": "tqc.csv.gz", "tang": "topogivity.csv.gz"}


def tang_formula(composition: Any) -> str:
    """Reduced formula in the Tang et al. / topogivity spelling: ``Bi2Se3`` → ``Bi2Se3``, ``NaCl`` → ``Cl1Na1``."""
    from pymatgen.core import Composition

    comp = composition if isinstance(composition, Composition) else Composition(str(composition))
    reduced = comp.reduced_composition
    return "".join(f"{el.symbol}{int(round(reduced[el]))}" for el in sorted(reduced.elements, key=lambda e: e.symbol))


def combine(label_sets: Iterable[frozenset[str] | None]) -> tuple[str | None, bool | None, str]:
    """Join the class sets of the catalogues that know a crystal.

    Returns ``(catalogue_class, catalogue_topological, status)``; ``status`` is ``"none"`` (no
    catalogue), ``"agree"``, ``"disagree"`` or ``"ambiguous"`` (sets intersect in several classes).
    """
    sets = [s for s in label_sets if s]
    if not sets:
        return None, None, "none"
    topo = {c != "trivial" for s in sets for c in s}
    topological = topo.pop() if len(topo) == 1 else None
    common = frozenset.intersection(*sets)
    if not common:
        return None, topological, "disagree"
    if len(common) > 1:
        return None, topological, "ambiguous"
    return next(iter(common)), topological, "agree"


def load_catalogues(directory: str | os.PathLike) -> dict[str, Any]:
    """Read the three catalogues from ``directory`` into lookup tables.

    Returns ``{"materiae": {mp_id: set}, "tqc": {mp_id: set}, "tang": {(spg, formula): set}}``;
    a catalogue file that is absent gives an empty table (say so to the user: see ``missing``).
    """
    import pandas as pd

    d = Path(directory)
    if not d.is_dir():
        raise TopodiffInputError(f"catalogue directory not found: {d}")
    out: dict[str, Any] = {"materiae": {}, "tqc": {}, "tang": {}, "missing": []}
    for name, fname in CATALOGUE_FILES.items():
        path = d / fname
        if not path.is_file():
            path = d / fname.removesuffix(".gz")
        if not path.is_file():
            out["missing"].append(fname)
            continue
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        except Exception as exc:
            raise TopodiffInputError(f"{path}: unreadable CSV: {str(exc).strip().splitlines()[0]}") from None
        out[name] = _table(name, df, path)
    if len(out["missing"]) == len(CATALOGUE_FILES):
        raise TopodiffInputError(f"{d}: none of {', '.join(CATALOGUE_FILES.values())} found")
    return out


def _table(name: str, df: Any, path: Path) -> dict[Any, frozenset[str]]:
    cols = {"materiae": ("material_id", "soc_class"), "tqc": ("material_id", "topo_class"),
            "tang": ("spacegroup", "reduced_formula", "label")}[name]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise TopodiffInputError(f"{path}: missing column(s) {', '.join(missing)}")
    mapping = {"materiae": MATERIAE_CLASSES, "tqc": TQC_CLASSES, "tang": TANG_CLASSES}[name]
    table: dict[Any, frozenset[str]] = {}
    if name == "tang":
        for spg, formula, label in zip(df["spacegroup"], df["reduced_formula"], df["label"]):
            if label in mapping and spg.strip().isdigit():
                table[(int(spg), formula.strip())] = mapping[label]
    else:
        for mid, label in zip(df[cols[0]], df[cols[1]]):
            if label in mapping:  # Materiae "Unknown" carries no information
                table[mid.strip()] = mapping[label]
    return table


def label_rows(material_ids: Iterable[str | None], space_groups: Iterable[int | None],
               formulas: Iterable[str | None], catalogues: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Catalogue columns for rows given by MP id, space group (1-230) and Tang-style formula.

    Returns columns ``catalogue_class``, ``catalogue_topological``, ``catalogue_status`` and the
    per-catalogue verdicts ``materiae``, ``tqc``, ``tang`` (class names joined by ``|``, or None).
    """
    cols: dict[str, list[Any]] = {k: [] for k in ("catalogue_class", "catalogue_topological",
                                                  "catalogue_status", "materiae", "tqc", "tang")}
    for mid, spg, formula in zip(material_ids, space_groups, formulas):
        found = {"materiae": catalogues["materiae"].get(mid) if mid else None,
                 "tqc": catalogues["tqc"].get(mid) if mid else None,
                 "tang": catalogues["tang"].get((int(spg), formula)) if spg and formula else None}
        cls, topo, status = combine(found.values())
        cols["catalogue_class"].append(cls if cls is not None else np.nan)
        cols["catalogue_topological"].append(topo if topo is not None else np.nan)
        cols["catalogue_status"].append(status)
        for key, s in found.items():
            cols[key].append("|".join(c for c in CLASSES if c in s) if s else None)
    return cols


def status_counts(status: Iterable[str], catalogues_per_row: Iterable[int]) -> dict[str, int]:
    """Counts of rows by join status, and of agreements among rows known to ≥ 2 catalogues."""
    status, n_cat = list(status), list(catalogues_per_row)
    out = {s: sum(1 for x in status if x == s) for s in ("agree", "disagree", "ambiguous", "none")}
    out["multi_catalogue"] = sum(1 for k in n_cat if k >= 2)
    out["multi_catalogue_agree"] = sum(1 for s, k in zip(status, n_cat) if k >= 2 and s == "agree")
    out["multi_catalogue_disagree"] = sum(1 for s, k in zip(status, n_cat) if k >= 2 and s == "disagree")
    return out


def _space_groups(df: Any, records: list[Any]) -> list[int | None]:
    """Space group per row: the file's ``spacegroup.number``-like column, else spglib (symprec 0.1)."""
    from topodiff.crystal.io import space_group

    for col in ("spacegroup.number", "space_group_number", "spacegroup", "space_group"):
        if df is not None and col in df.columns and df[col].notna().all():
            return [int(v) for v in df[col]]
    return [space_group(r.structure)[0] if r.ok else None for r in records]


def label_file(source: str | os.PathLike, out: str | os.PathLike, catalogue_dir: str | os.PathLike,
               *, num_workers: int | None = None) -> dict[str, Any]:
    """Join catalogue labels to every crystal of ``source`` and write ``out`` (``.csv`` or ``.csv.gz``).

    A CDVAE-style CSV keeps its columns (``band_gap`` included) and gains ``catalogue_class``,
    ``catalogue_topological``, ``catalogue_status``, ``materiae``, ``tqc``, ``tang``; other inputs
    give ``source``, ``material_id`` (from the file, if any), ``cif`` and those columns. MP ids are
    taken from a ``material_id`` column. Returns the counts of :func:`status_counts` and of classes.
    """
    import pandas as pd

    from topodiff.crystal.io import is_csv, quiet, read_structures
    from topodiff.io_utils import atomic_write

    if not is_csv(out):
        raise TopodiffInputError(f"--out must end in .csv or .csv.gz, got {Path(out).name!r}")
    cats = load_catalogues(catalogue_dir)
    records = read_structures(source, num_workers=num_workers)
    df = pd.read_csv(source, dtype={"material_id": str}) if Path(source).is_file() and is_csv(source) else None
    if df is None:
        df = pd.DataFrame({"source": [r.source for r in records],
                           "material_id": [r.labels.get("material_id") for r in records],
                           "cif": [r.structure.to(fmt="cif") if r.ok else "" for r in records]})
    elif len(df) != len(records):
        raise TopodiffInputError(f"{source}: {len(df)} CSV rows but {len(records)} structures were read")
    ids = [str(m) if isinstance(m, str) and m else None for m in df.get("material_id", [None] * len(df))]
    with quiet():  # pymatgen warns about noble gases without an electronegativity
        formulas = [tang_formula(r.structure.composition) if r.ok else None for r in records]
    cols = label_rows(ids, _space_groups(df, records), formulas, cats)
    for key, values in cols.items():
        df[key] = values
    n_cat = [sum(v is not None for v in trio) for trio in zip(cols["materiae"], cols["tqc"], cols["tang"])]
    counts = status_counts(cols["catalogue_status"], n_cat)
    counts["classes"] = {c: int(sum(1 for v in cols["catalogue_class"] if v == c)) for c in CLASSES}
    counts["rows"], counts["missing_catalogues"] = len(df), cats["missing"]
    compression = "gzip" if str(out).lower().endswith(".gz") else None
    atomic_write(out, lambda fh: df.to_csv(fh, index=False, compression=compression), mode="wb")
    return counts

"""The judge's training pool: ``mp_20/train`` + ``mpts_52/val`` joined with the DFT catalogues.

Never reads a ``test`` file. Rows are deduplicated by MP id (first occurrence kept). The held-out
split is by reduced formula (:func:`formula_split`): the same formula never sits on both sides.
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from topodiff.errors import TopodiffInputError

#: Training pools, relative to the shared data directory. Test files are never listed here.
POOL_FILES = ("mp_20/train.csv.gz", "mpts_52/val.csv.gz")
#: Fraction of formulas held out for the final, once-only measurement.
HOLDOUT_FRACTION = 0.2


def formula_bucket(formula: str, n_buckets: int = 1000) -> int:
    """Stable bucket 0..n-1 of a reduced formula (sha256): independent of row order and platform."""
    return int(hashlib.sha256(formula.encode()).hexdigest()[:8], 16) % n_buckets


def formula_split(formulas: Sequence[str], holdout: float = HOLDOUT_FRACTION) -> np.ndarray:
    """Boolean mask of held-out rows: the formulas whose bucket falls below ``holdout``."""
    return np.array([formula_bucket(f) < holdout * 1000 for f in formulas], dtype=bool)


def group_folds(formulas: Sequence[str], k: int = 5) -> np.ndarray:
    """Fold index 0..k-1 per row, one fold per formula group (formula-disjoint k-fold)."""
    return np.array([int(hashlib.sha256(("fold:" + f).encode()).hexdigest()[:8], 16) % k for f in formulas])


def load_pool(data_dir: str | os.PathLike, *, log: Any = None) -> dict[str, Any]:
    """Read, featurise and label the training pools.

    Returns a dict of arrays: ``material_id``, ``formula`` (reduced), ``tang_formula``, ``spg``,
    ``catalogue_class`` (str or ''), ``catalogue_topological`` (1/0/-1 unknown), ``band_gap``
    (PBE, NaN where the file has none), ``status`` and ``X`` (``[n, n_features]``).
    """
    from topodiff.crystal.catalogue import label_rows, load_catalogues, tang_formula
    from topodiff.crystal.io import read_structures
    from topodiff.judge.features import feature_names, structure_features

    log = log or (lambda msg: print(msg, file=sys.stderr))
    d = Path(data_dir)
    cats = load_catalogues(d / "topology")
    seen: set[str] = set()
    cols: dict[str, list[Any]] = {k: [] for k in ("material_id", "formula", "tang_formula", "spg", "band_gap")}
    feats = []
    for rel in POOL_FILES:
        if not (d / rel).is_file():
            raise TopodiffInputError(f"training pool file not found: {d / rel}")
        records = read_structures(d / rel, num_workers=1)
        log(f"{rel}: {len(records)} rows read")
        for rec in records:
            mid = rec.labels.get("material_id")
            if not rec.ok or mid is None or mid in seen:
                continue
            seen.add(mid)
            x = structure_features(rec.structure)
            feats.append(x)
            comp = rec.structure.composition
            cols["material_id"].append(mid)
            cols["formula"].append(comp.reduced_formula)
            cols["tang_formula"].append(tang_formula(comp))
            cols["spg"].append(int(x[feature_names().index("spg")]))
            cols["band_gap"].append(rec.properties.get("band_gap", np.nan))
    labels = label_rows(cols["material_id"], cols["spg"], cols["tang_formula"], cats)
    cls = np.array(["" if not isinstance(c, str) else c for c in labels["catalogue_class"]])
    topo = np.array([-1 if not isinstance(t, bool) else int(t) for t in labels["catalogue_topological"]])
    out = {k: np.array(v) for k, v in cols.items()}
    out.update(catalogue_class=cls, catalogue_topological=topo, status=np.array(labels["catalogue_status"]),
               X=np.stack(feats))
    return out


def save_pool(pool: dict[str, Any], path: str | os.PathLike) -> None:
    """Cache the pool as ``.npz`` (strings as unicode arrays; no pickling)."""
    from topodiff.io_utils import atomic_write

    atomic_write(path, lambda fh: np.savez_compressed(fh, **pool), mode="wb")


def read_pool(path: str | os.PathLike) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}

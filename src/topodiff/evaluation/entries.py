"""Reading the crystals to evaluate and the reference sets.

:func:`load_entries` keeps crystals the reader rejects for overlapping atoms (the reader's ``raw``
structure, so that they count as structurally invalid) and never reads topodiff's own outputs back as input
(``structures.csv`` / ``relaxed.extxyz`` beside a ``metrics.json``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from pymatgen.core import Structure

from topodiff.errors import TopodiffInputError

RECOVERABLE = ("overlapping atoms", "degenerate cell")
#: Files ``evaluate`` writes; in a directory that holds ``metrics.json`` they are outputs, not input.
OWN_OUTPUTS = ("structures.csv", "relaxed.extxyz")


@dataclass
class Entry:
    """One input crystal: ``structure`` is None only when it could not be parsed at all."""

    source: str
    structure: Structure | None
    error: str | None = None
    labels: dict[str, Any] = field(default_factory=dict)


def input_files(path: str | os.PathLike) -> list[Path]:
    """Structure files of ``path`` (``crystal.io.structure_files``) without topodiff's own outputs."""
    from topodiff.crystal.io import structure_files

    p = Path(path)
    files = structure_files(p)
    if p.is_dir() and (p / "metrics.json").exists():
        files = [f for f in files if f.name not in OWN_OUTPUTS]
        if not files:
            raise TopodiffInputError(f"{p}: holds only the outputs of an earlier evaluation, no input crystals")
    return files


def load_entries(path: str | os.PathLike) -> list[Entry]:
    """Read all crystals in ``path`` (``topodiff.crystal.io.read_structures`` formats).

    Unparseable entries keep ``structure=None`` and their error; overlapping-atom crystals keep
    the reader's parsed ``raw`` structure so that validity metrics see them.
    """
    from topodiff.crystal.io import read_structures

    out = []
    for file in input_files(path):
        for rec in read_structures(file):
            s = rec.structure
            if s is None and rec.error and rec.error.startswith(RECOVERABLE):
                s = rec.raw
            labels = {**rec.labels, **rec.properties}
            out.append(Entry(rec.source, s, rec.error, labels))
    return out


def load_reference(paths: Sequence[str | os.PathLike]) -> list[Structure]:
    """Readable structures of one or more reference files (CDVAE CSV, extxyz, CIF directory)."""
    from topodiff.crystal.io import read_structures

    ref: list[Structure] = []
    for p in paths:
        recs = read_structures(p)
        ref.extend(r.structure for r in recs if r.structure is not None)
    if not ref:
        raise TopodiffInputError(f"reference {', '.join(map(str, paths))}: no readable structures")
    return ref


def guess_dataset(paths: Sequence[str | os.PathLike]) -> str:
    """COV cutoff family from the reference file names (perov / carbon / otherwise MP-20)."""
    text = " ".join(str(p).lower() for p in paths)
    if "perov" in text:
        return "perovskite"
    if "carbon" in text:
        return "carbon"
    return "mp20"

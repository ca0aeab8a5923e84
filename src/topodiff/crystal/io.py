"""Reading, writing and standardising crystal structures (pymatgen / ASE / spglib do the parsing).

Accepted inputs of :func:`read_structures`:

- a CIF file (``source`` = the path; ``path#k`` when the file holds several data blocks),
- a POSCAR / CONTCAR / ``*.vasp`` / ``*.poscar`` file,
- an extended XYZ file (``*.extxyz`` / ``*.xyz``; ``source`` = ``path#frame``, frames from 0),
- a CDVAE-style CSV, ``.csv`` or gzip ``.csv.gz``, with a ``cif`` column (``source`` =
  ``path#row``, data rows from 0); numeric columns become ``properties``, other text columns ``labels``,
- a directory written by ``topodiff generate`` (it holds ``structures.extxyz``), or any other
  directory: its CIF/POSCAR/extxyz/CSV files in sorted order (not recursive).

A bad entry (unreadable CIF, empty file, atoms closer than 0.5 Å, unknown element, partial
occupancies, no periodic cell) becomes a record with ``structure=None`` and a one-line ``error``;
the other entries are read normally. Units: Å; lattice rows are lattice vectors.

The work is split by concern: :mod:`~topodiff.crystal.records` (records, validity check),
:mod:`~topodiff.crystal.readers` (one reader per format), :mod:`~topodiff.crystal.writers` and
:mod:`~topodiff.crystal.standard` (standardisation), :mod:`~topodiff.crystal.symmetry` (space groups);
every public name stays
importable from here.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from topodiff.crystal.readers import (_read_cif, _read_csv, _read_extxyz, _read_poscar,
                                      _standardize_record, structure_from_cif_text)
from topodiff.crystal.records import (OVERLAP_DISTANCE, StructureRecord, check_structure, min_pair_distance,
                                      quiet)
from topodiff.crystal.standard import standardize, wrap_frac
from topodiff.crystal.symmetry import space_group
from topodiff.crystal.writers import (cif_text, structure_to_atoms, write_cif, write_csv, write_poscar,
                                      write_structures)
from topodiff.errors import TopodiffInputError

__all__ = ["CIF_SUFFIXES", "CSV_SUFFIXES", "EXTXYZ_SUFFIXES", "OVERLAP_DISTANCE", "POSCAR_NAMES", "POSCAR_SUFFIXES",
           "StructureRecord", "check_structure", "cif_text", "is_csv", "min_pair_distance", "quiet",
           "read_structure", "read_structures", "space_group", "standardize", "structure_files",
           "structure_from_cif_text", "structure_to_atoms", "wrap_frac", "write_cif", "write_csv", "write_poscar",
           "write_structures"]

CIF_SUFFIXES = (".cif",)
POSCAR_SUFFIXES = (".vasp", ".poscar")
POSCAR_NAMES = ("POSCAR", "CONTCAR")
EXTXYZ_SUFFIXES = (".extxyz", ".xyz")
#: CDVAE-style CSV, plain or gzip-compressed (pandas decompresses by the suffix).
CSV_SUFFIXES = (".csv", ".csv.gz")


def is_csv(path: str | os.PathLike) -> bool:
    """True for a ``.csv`` or ``.csv.gz`` file name (case-insensitive)."""
    return str(path).lower().endswith(CSV_SUFFIXES)


def _kind(path: Path) -> str | None:
    name = path.name
    low = name.lower()
    if low.endswith(CIF_SUFFIXES):
        return "cif"
    if low.endswith(EXTXYZ_SUFFIXES):
        return "extxyz"
    if is_csv(low):
        return "csv"
    if low.endswith(POSCAR_SUFFIXES) or any(name.startswith(p) for p in POSCAR_NAMES):
        return "poscar"
    return None


def structure_files(path: str | os.PathLike) -> list[Path]:
    """The structure files a path stands for (a file itself, ``DIR/structures.extxyz`` of a
    ``generate`` output directory, or the supported files of a directory, sorted)."""
    path = Path(path)
    if not path.exists():
        raise TopodiffInputError(f"no such file or directory: {path}")
    if path.is_file():
        return [path]
    gen = path / "structures.extxyz"
    if gen.is_file():
        return [gen]
    files = sorted(p for p in path.iterdir() if p.is_file() and _kind(p) is not None)
    if not files:
        raise TopodiffInputError(f"{path}: directory holds no CIF, POSCAR, extxyz or CSV files")
    return files


def read_structures(path: str | os.PathLike, *, num_workers: int | None = None,
                    standardize: bool = False) -> list[StructureRecord]:
    """Read every structure in ``path`` (file or directory, see the module docstring).

    Parameters
    ----------
    path : CIF, POSCAR/CONTCAR/*.vasp, extxyz, CDVAE-style CSV, or a directory of them.
    num_workers : processes used to parse a large CSV (``None``: automatic, 1 for < 1000 rows).
    standardize : return Niggli-reduced primitive cells (:func:`standardize`).

    Returns
    -------
    One :class:`StructureRecord` per entry, in file order; bad entries carry ``error``.
    """
    out: list[StructureRecord] = []
    for file in structure_files(path):
        kind = _kind(file)
        if kind == "csv":
            out.extend(_read_csv(file, num_workers, standardize))
            continue
        if kind == "extxyz":
            records = _read_extxyz(file)
        elif kind == "poscar":
            records = _read_poscar(file)
        elif kind == "cif":
            records = _read_cif(file)
        else:  # a single file of unknown type: let pymatgen guess, else say what is accepted
            records = _read_guess(file)
        out.extend([_standardize_record(r) for r in records] if standardize else records)
    return out


def _read_guess(path: Path) -> list[StructureRecord]:
    text = path.read_text(errors="replace")
    if not text.strip():
        return [StructureRecord(str(path), None, "empty file")]
    if "_cell_length_a" in text:
        return _read_cif(path)
    return [StructureRecord(str(path), None,
                            "unrecognised file type (expected .cif, POSCAR/CONTCAR/.vasp, .extxyz/.xyz or .csv/.csv.gz)")]


def read_structure(path: str | os.PathLike) -> Any:
    """Read exactly one structure from a file; any problem raises :class:`TopodiffInputError`."""
    path = Path(path)
    if not path.exists():
        raise TopodiffInputError(f"no such file: {path}")
    if path.is_dir():
        raise TopodiffInputError(f"{path} is a directory; expected a single structure file")
    records = read_structures(path)
    if len(records) != 1:
        raise TopodiffInputError(f"{path} holds {len(records)} structures; use read_structures for several")
    rec = records[0]
    if rec.error is not None:
        raise TopodiffInputError(f"{rec.source}: {rec.error}")
    return rec.structure

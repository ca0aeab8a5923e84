"""Format readers: CIF, POSCAR, extended XYZ and CDVAE-style CSV (``.csv`` or ``.csv.gz``).

Each reader returns :class:`~topodiff.crystal.records.StructureRecord` entries; a bad entry becomes
a record with an ``error`` instead of an exception. :func:`topodiff.crystal.io.read_structures`
picks the reader by file name.
"""
from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from topodiff.crystal.records import StructureRecord, _record, quiet
from topodiff.crystal.standard import standardize
from topodiff.errors import TopodiffInputError

#: Columns of a CDVAE-style CSV that are bookkeeping, not properties.
_INDEX_COLUMNS = ("", "Unnamed: 0", "index")


def _structures_from_cif_text(text: str) -> list[Any]:
    from pymatgen.io.cif import CifParser

    if not text.strip():
        raise TopodiffInputError("empty file")
    if "_cell_length_a" not in text or "_atom_site" not in text:
        raise TopodiffInputError("unreadable CIF: no cell or atom-site data found")
    with quiet():
        parser = CifParser.from_str(text)
        structures = parser.parse_structures(primitive=False, on_error="raise")
    if not structures:
        raise TopodiffInputError("unreadable CIF: no structure found")
    return structures


def structure_from_cif_text(text: str) -> Any:
    """Parse CIF text holding one structure (the first data block if several); no validation."""
    try:
        with quiet():
            return _structures_from_cif_text(text)[0]
    except TopodiffInputError:
        raise
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TopodiffInputError(f"unreadable CIF: {msg}") from None


def _read_cif(path: Path) -> list[StructureRecord]:
    src = str(path)
    text = path.read_text(errors="replace")
    try:
        with quiet():
            structures = _structures_from_cif_text(text)
    except TopodiffInputError as exc:
        return [StructureRecord(src, None, str(exc))]
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [StructureRecord(src, None, f"unreadable CIF: {msg}")]
    if len(structures) == 1:
        return [_record(src, lambda: structures[0], "CIF")]
    return [_record(f"{src}#{k}", lambda s=s: s, "CIF") for k, s in enumerate(structures)]


def _read_poscar(path: Path) -> list[StructureRecord]:
    from pymatgen.io.vasp import Poscar

    src = str(path)
    text = path.read_text(errors="replace")
    if not text.strip():
        return [StructureRecord(src, None, "empty file")]

    def make() -> Any:
        lines = text.splitlines()
        if len(lines) > 5 and lines[5].split() and all(t.isdigit() for t in lines[5].split()):
            # VASP 4 layout: no species line. pymatgen would silently invent H, He, ...; accept
            # symbols written on the comment line (the VASP 4 habit), else refuse
            from pymatgen.core.periodic_table import Element

            n_species = len(lines[5].split())
            names = lines[0].split()[:n_species]
            if len(names) < n_species or not all(Element.is_valid_symbol(t) for t in names):
                raise TopodiffInputError("POSCAR has no element symbols (VASP 4 layout): add the species line "
                                         "above the atom counts")
            return Poscar.from_str(text, default_names=names).structure
        return Poscar.from_str(text).structure

    return [_record(src, make, "POSCAR")]


def _atoms_to_structure(atoms: Any) -> Any:
    from pymatgen.core import Lattice, Structure

    if not np.all(atoms.pbc) or abs(atoms.cell.volume) < 1e-8:
        raise TopodiffInputError("frame has no periodic 3D cell (pbc and Lattice= are required)")
    if np.any(atoms.numbers <= 0):
        raise TopodiffInputError("unknown element (atomic number 0)")
    return Structure(Lattice(np.asarray(atoms.cell.array, dtype=float)), atoms.numbers.tolist(),
                     atoms.get_scaled_positions(wrap=False), coords_are_cartesian=False)


def _split_info(info: dict[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    props: dict[str, float] = {}
    labels: dict[str, str] = {}
    for key, value in info.items():
        if isinstance(value, (bool, np.bool_)):
            props[key] = float(value)
        elif isinstance(value, (int, float, np.integer, np.floating)):
            props[key] = float(value)
        elif isinstance(value, str):
            labels[key] = value
        elif isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "biuf":
            props[key] = float(value.reshape(()))
    return props, labels


def _read_extxyz(path: Path) -> list[StructureRecord]:
    import ase.io

    src = str(path)
    text = path.read_text(errors="replace")
    if not text.strip():
        return [StructureRecord(src, None, "empty file")]
    try:
        with quiet():
            frames = ase.io.read(io.StringIO(text), index=":", format="extxyz")
    except Exception as exc:
        # a broken frame stops ASE's reader: fall back to reading frame by frame
        return _read_extxyz_by_frame(src, text, exc)
    records = []
    for k, atoms in enumerate(frames):
        info = dict(atoms.info)
        if atoms.calc is not None:
            info.update({key: v for key, v in atoms.calc.results.items() if np.ndim(v) == 0})
        props, labels = _split_info(info)
        records.append(_record(f"{src}#{k}", lambda a=atoms: _atoms_to_structure(a), "extxyz frame", props, labels))
    return records


def _extxyz_frames_text(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    out, i = [], 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        try:
            n = int(lines[i].split()[0])
        except ValueError:
            out.append("".join(lines[i:]))
            break
        out.append("".join(lines[i:i + n + 2]))
        i += n + 2
    return out


def _read_extxyz_by_frame(src: str, text: str, first_exc: Exception) -> list[StructureRecord]:
    import ase.io

    records = []
    for k, chunk in enumerate(_extxyz_frames_text(text)):
        def make(chunk: str = chunk) -> Any:
            try:
                atoms = ase.io.read(io.StringIO(chunk), index=0, format="extxyz")
            except KeyError as exc:  # ASE: unknown chemical symbol
                raise TopodiffInputError(f"unknown element {exc.args[0]!r}") from None
            return _atoms_to_structure(atoms)

        records.append(_record(f"{src}#{k}", make, "extxyz frame"))
    if not records:
        msg = str(first_exc).strip().splitlines()[0] if str(first_exc).strip() else type(first_exc).__name__
        records.append(StructureRecord(src, None, f"unreadable extxyz: {msg}"))
    return records


def _csv_rows(path: Path) -> tuple[list[str], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Read a CDVAE-style CSV: (cif texts, numeric columns, text columns)."""
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype={"material_id": str}, keep_default_na=True)
    except pd.errors.EmptyDataError:
        raise TopodiffInputError(f"{path}: empty file") from None
    except Exception as exc:
        raise TopodiffInputError(f"{path}: unreadable CSV: {str(exc).strip().splitlines()[0]}") from None
    if "cif" not in df.columns:
        raise TopodiffInputError(f"{path}: CSV has no 'cif' column (CDVAE layout expected)")
    cifs = df["cif"].fillna("").astype(str).tolist()
    numeric: dict[str, np.ndarray] = {}
    text: dict[str, np.ndarray] = {}
    for col in df.columns:
        if col == "cif" or col in _INDEX_COLUMNS:
            continue
        series = df[col]
        if series.dtype.kind in "biuf":
            numeric[str(col)] = series.to_numpy(dtype=float)
        else:
            text[str(col)] = np.array([None if (v is None or (isinstance(v, float) and math.isnan(v))) else str(v)
                                       for v in series.tolist()], dtype=object)
    return cifs, numeric, text


def _standardize_record(rec: StructureRecord) -> StructureRecord:
    if rec.ok:
        try:
            rec.structure = standardize(rec.structure)
        except Exception as exc:  # symmetry search failure on a pathological cell
            rec.structure, rec.error = None, f"standardisation failed: {exc}"
    return rec


def _parse_cif_rows(args: tuple[bool, list[tuple[int, str]]]) -> list[tuple[int, Any, str | None, Any]]:
    """Worker: parse, validate (and optionally standardise) CIF texts → (row, structure, error, raw)."""
    std, rows = args
    out = []
    for row, cif in rows:
        rec = _record("", lambda c=cif: structure_from_cif_text(c), "CIF")
        if std:
            rec = _standardize_record(rec)
        out.append((row, rec.structure, rec.error, rec.raw))
    return out


def _read_csv(path: Path, num_workers: int | None = None, std: bool = False) -> list[StructureRecord]:
    src = str(path)
    cifs, numeric, text = _csv_rows(path)
    n = len(cifs)
    parsed = _parse_parallel(cifs, num_workers, std)
    records = []
    for row in range(n):
        structure, error, raw = parsed[row]
        props = {k: float(v[row]) for k, v in numeric.items()}
        labels = {k: v[row] for k, v in text.items() if v[row] is not None}
        records.append(StructureRecord(f"{src}#{row}", structure, error, props, labels, raw=raw))
    return records


def _parse_parallel(cifs: Sequence[str], num_workers: int | None,
                    std: bool = False) -> list[tuple[Any, str | None, Any]]:
    """Parse CIF texts, in a process pool when there are many (``num_workers=None``: automatic)."""
    n = len(cifs)
    if num_workers is None:
        num_workers = min(os.cpu_count() or 1, 4) if n >= 1000 else 1
    items = list(enumerate(cifs))
    if num_workers <= 1 or n < 2 * num_workers:
        results = _parse_cif_rows((std, items))
    else:
        import concurrent.futures as cf
        import multiprocessing as mp

        chunk = max(1, math.ceil(n / (4 * num_workers)))
        chunks = [(std, items[i:i + chunk]) for i in range(0, n, chunk)]
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
        with cf.ProcessPoolExecutor(max_workers=num_workers, mp_context=ctx) as pool:
            results = [r for part in pool.map(_parse_cif_rows, chunks) for r in part]
    out: list[tuple[Any, str | None, Any]] = [(None, "not parsed", None)] * n
    for row, structure, error, raw in results:
        out[row] = (structure, error, raw)
    return out

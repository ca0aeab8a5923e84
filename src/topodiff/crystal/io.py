"""Reading, writing and standardising crystal structures (pymatgen / ASE / spglib do the parsing).

Accepted inputs of :func:`read_structures`:

- a CIF file (``source`` = the path; ``path#k`` when the file holds several data blocks),
- a POSCAR / CONTCAR / ``*.vasp`` / ``*.poscar`` file,
- an extended XYZ file (``*.extxyz`` / ``*.xyz``; ``source`` = ``path#frame``, frames from 0),
- a CDVAE-style CSV with a ``cif`` column (``source`` = ``path#row``, data rows from 0); numeric
  columns become ``properties``, other text columns ``labels``,
- a directory written by ``topodiff generate`` (it holds ``structures.extxyz``), or any other
  directory: its CIF/POSCAR/extxyz/CSV files in sorted order (not recursive).

A bad entry (unreadable CIF, empty file, atoms closer than 0.5 Å, unknown element, partial
occupancies, no periodic cell) becomes a record with ``structure=None`` and a one-line ``error``;
the other entries are read normally. Units: Å; lattice rows are lattice vectors.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from topodiff.errors import TopodiffInputError
from topodiff.io_utils import atomic_write, atomic_write_text

#: Minimum interatomic distance (Å) below which atoms count as overlapping (CDVAE's validity cut).
OVERLAP_DISTANCE = 0.5

CIF_SUFFIXES = (".cif",)
POSCAR_SUFFIXES = (".vasp", ".poscar")
POSCAR_NAMES = ("POSCAR", "CONTCAR")
EXTXYZ_SUFFIXES = (".extxyz", ".xyz")
CSV_SUFFIXES = (".csv",)
#: Columns of a CDVAE-style CSV that are bookkeeping, not properties.
_INDEX_COLUMNS = ("", "Unnamed: 0", "index")


@dataclass
class StructureRecord:
    """One entry of an input: a structure or the reason it could not be read.

    Attributes
    ----------
    source : where it came from: ``"path"``, ``"path#frame"`` (extxyz) or ``"path#row"`` (CSV).
    structure : the pymatgen ``Structure``; ``None`` when ``error`` is set.
    error : one-line reason the entry is unusable, else ``None``.
    properties : numeric properties (CSV columns, extxyz info), float.
    labels : text properties (e.g. ``formula``, ``topo_class``, ``material_id``).
    raw : the parsed structure when it was rejected by a check (overlapping atoms, degenerate
        cell, ...) rather than unreadable — for validity metrics that must count such crystals.
    """

    source: str
    structure: Any | None
    error: str | None = None
    properties: dict[str, float] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    raw: Any | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.structure is not None and self.error is None


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the warnings (and stray prints) of pymatgen / ASE / spglib parsers."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------
def check_structure(structure: Any, *, min_distance: float = OVERLAP_DISTANCE) -> str | None:
    """Return a one-line reason why ``structure`` is unusable, or ``None`` when it is fine.

    Checks: at least one atom; every species a real element; full site occupancies; a finite cell
    of volume > 0.1 Å³; no two atoms (periodic images included) closer than ``min_distance`` Å.
    """
    from pymatgen.core.periodic_table import Element

    if len(structure) == 0:
        return "no atoms"
    for site in structure:
        for sp in site.species:
            if not isinstance(getattr(sp, "element", sp), Element):
                return f"unknown element {str(getattr(sp, 'symbol', sp))!r}"
    if not structure.is_ordered:
        bad = next(s for s in structure if not s.is_ordered)
        return f"partial occupancies are not supported (site {bad.species_string} at {np.round(bad.frac_coords, 4).tolist()})"
    matrix = structure.lattice.matrix
    if not np.all(np.isfinite(matrix)) or not np.all(np.isfinite(structure.frac_coords)):
        return "non-finite lattice or coordinates"
    if abs(structure.volume) < 0.1:
        return f"degenerate cell (volume {structure.volume:.3g} Å³)"
    d = min_pair_distance(structure, cutoff=min_distance)
    if d < min_distance:
        i, j = _closest_pair(structure, min_distance)
        return (f"overlapping atoms: {structure[i].specie} and {structure[j].specie} are {d:.3f} Å apart "
                f"(< {min_distance} Å)")
    return None


def min_pair_distance(structure: Any, cutoff: float = OVERLAP_DISTANCE) -> float:
    """Smallest interatomic distance (Å) under periodic boundary conditions, or ``inf`` if none < ``cutoff``.

    Self-images count (a cell shorter than ``cutoff`` along some vector overlaps itself).
    """
    with quiet():
        centers, _, _, dist = structure.get_neighbor_list(cutoff, exclude_self=True)
    return float(dist.min()) if len(dist) else math.inf


def _closest_pair(structure: Any, cutoff: float) -> tuple[int, int]:
    with quiet():
        centers, points, _, dist = structure.get_neighbor_list(cutoff, exclude_self=True)
    k = int(np.argmin(dist))
    return int(centers[k]), int(points[k])


def _record(source: str, make: Any, kind: str, properties: dict | None = None,
            labels: dict | None = None) -> StructureRecord:
    """Build a record from ``make()`` (a zero-argument callable), turning failures into errors."""
    try:
        with quiet():
            structure = make()
    except TopodiffInputError as exc:
        return StructureRecord(source, None, str(exc), properties or {}, labels or {})
    except Exception as exc:  # parser failure on bad text: never a traceback
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, (IndexError, StopIteration)):
            msg = "truncated or malformed file"
        return StructureRecord(source, None, f"unreadable {kind}: {msg}", properties or {}, labels or {})
    with quiet():
        error = check_structure(structure)
    return StructureRecord(source, None if error else structure, error, properties or {}, labels or {},
                           raw=structure if error else None)


# ---------------------------------------------------------------------------------------------
# format readers (each yields records)
# ---------------------------------------------------------------------------------------------
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


def _kind(path: Path) -> str | None:
    name = path.name
    low = name.lower()
    if low.endswith(CIF_SUFFIXES):
        return "cif"
    if low.endswith(EXTXYZ_SUFFIXES):
        return "extxyz"
    if low.endswith(CSV_SUFFIXES):
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
                            "unrecognised file type (expected .cif, POSCAR/CONTCAR/.vasp, .extxyz/.xyz or .csv)")]


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


# ---------------------------------------------------------------------------------------------
# writers
# ---------------------------------------------------------------------------------------------
def structure_to_atoms(structure: Any, info: dict | None = None) -> Any:
    """A periodic ``ase.Atoms`` with the structure's lattice, species and positions."""
    from ase import Atoms

    atoms = Atoms(numbers=[site.specie.Z for site in structure], cell=structure.lattice.matrix,
                  scaled_positions=structure.frac_coords, pbc=True)
    if info:
        atoms.info.update({k: (v.item() if isinstance(v, np.generic) else v) for k, v in info.items()})
    return atoms


def write_structures(structures: Sequence[Any], path: str | os.PathLike,
                     info: Sequence[dict] | None = None) -> Path:
    """Write structures to one extended-XYZ file (atomically), ``info[i]`` kept as frame ``i``'s info."""
    import ase.io

    if info is not None and len(info) != len(structures):
        raise TopodiffInputError(f"info has {len(info)} entries for {len(structures)} structures")
    frames = [structure_to_atoms(s, info[i] if info is not None else None) for i, s in enumerate(structures)]

    def write(fh: Any) -> None:
        if frames:
            ase.io.write(fh, frames, format="extxyz")

    return atomic_write(path, write)


def cif_text(structure: Any, *, symprec: float | None = None) -> str:
    """CIF text of a structure (P1 unless ``symprec`` asks for symmetrised output)."""
    from pymatgen.io.cif import CifWriter

    with quiet():
        return str(CifWriter(structure, symprec=symprec))


def write_cif(structure: Any, path: str | os.PathLike, *, symprec: float | None = None) -> Path:
    """Write one structure as CIF (atomically)."""
    return atomic_write_text(path, cif_text(structure, symprec=symprec))


def write_poscar(structure: Any, path: str | os.PathLike, *, comment: str | None = None) -> Path:
    """Write one structure as a VASP POSCAR (atomically, fractional coordinates)."""
    from pymatgen.io.vasp import Poscar

    return atomic_write_text(path, Poscar(structure, comment=comment).get_str())


def write_csv(structures: Sequence[Any], path: str | os.PathLike,
              columns: dict[str, Sequence[Any]] | None = None) -> Path:
    """Write a CDVAE-style CSV (atomically): a ``material_id`` column (``columns`` may give it), the
    P1 CIF text in ``cif``, ``formula``, and any extra ``columns`` (one value per structure)."""
    import pandas as pd

    n = len(structures)
    data: dict[str, Any] = {"material_id": [str(i) for i in range(n)]}
    for key, values in (columns or {}).items():
        values = list(values)
        if len(values) != n:
            raise TopodiffInputError(f"column {key!r} has {len(values)} values for {n} structures")
        data[key] = values
    data["cif"] = [cif_text(s) for s in structures]
    data.setdefault("formula", [s.composition.reduced_formula for s in structures])
    df = pd.DataFrame(data)
    return atomic_write_text(path, df.to_csv(index=False))


# ---------------------------------------------------------------------------------------------
# standardisation and symmetry
# ---------------------------------------------------------------------------------------------
def wrap_frac(frac: np.ndarray) -> np.ndarray:
    """Fractional coordinates wrapped into [0, 1) (exactly; ``-1e-17 % 1 == 1.0`` is folded to 0)."""
    out = np.asarray(frac, dtype=np.float64) % 1.0
    out[out >= 1.0] = 0.0
    return out


def standardize(structure: Any, *, tolerance: float = 0.25) -> Any:
    """Niggli-reduced primitive cell with fractional coordinates wrapped to [0, 1).

    ``tolerance`` (Å) is pymatgen's site tolerance when searching for the primitive cell.
    """
    from pymatgen.core import Structure

    with quiet():
        prim = structure.get_primitive_structure(tolerance=tolerance)
        red = prim.get_reduced_structure("niggli")
    return Structure(red.lattice, red.species, wrap_frac(red.frac_coords), coords_are_cartesian=False)


def space_group(structure: Any, symprec: float = 0.1) -> tuple[int, str]:
    """International space-group (number, symbol) from spglib; ``(1, "P1")`` if spglib finds none."""
    import spglib

    cell = (np.asarray(structure.lattice.matrix), np.asarray(structure.frac_coords),
            np.array([site.specie.Z for site in structure]))
    for prec in (symprec, symprec / 10):
        with quiet():
            data = spglib.get_symmetry_dataset(cell, symprec=prec)
        if data is not None:
            return int(data.number), str(data.international)
    return 1, "P1"

"""Crystal datasets as flat arrays, cached on disk (MatterGen-style) and memory-mapped.

A dataset of ``n`` crystals with ``N`` atoms in all is stored as

- ``frac``      ``[N, 3]`` float64 fractional coordinates, wrapped into [0, 1),
- ``species``   ``[N]`` int64 atomic numbers,
- ``lattices``  ``[n, 3, 3]`` float64, rows are the lattice vectors (Å),
- ``num_atoms`` ``[n]`` int64 and ``offsets`` ``[n]`` int64 (index of each crystal's first atom),
- ``properties`` name → ``[n]`` float64 (NaN = missing), ``labels`` name → ``[n]`` object (text,
  ``None`` = missing), ``ids`` (``material_id`` when the source has one, else the record source).

The cache is a directory of ``.npy`` files plus ``manifest.json`` (format, source path, sha256 of
the source, counts, skipped rows). It is built once, written atomically (temporary directory, then
rename), memory-mapped on later loads and rebuilt only when the source's hash changes. By default it
lives in the user cache (:mod:`topodiff.cache`, ``$TOPODIFF_CACHE``), named by the source's content
hash — never beside the source; when that place cannot be written the data is loaded without a cache.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from topodiff.cache import writable
from topodiff.errors import TopodiffInputError

CACHE_FORMAT = "topodiff-crystal-cache/1"
MANIFEST = "manifest.json"
_ARRAYS = ("frac", "species", "lattices", "num_atoms", "offsets")


@dataclass
class CrystalArrays:
    """Variable-size crystals as flat arrays (see the module docstring for shapes and units)."""

    frac: np.ndarray
    species: np.ndarray
    lattices: np.ndarray
    num_atoms: np.ndarray
    offsets: np.ndarray
    properties: dict[str, np.ndarray] = field(default_factory=dict)
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.num_atoms.shape[0])

    @property
    def num_atoms_total(self) -> int:
        return int(self.frac.shape[0])

    @property
    def batch_index(self) -> np.ndarray:
        """``[N]`` crystal index of every atom."""
        return np.repeat(np.arange(len(self)), np.asarray(self.num_atoms))

    def atoms_of(self, i: int) -> slice:
        """Slice of crystal ``i``'s atoms in ``frac`` / ``species``."""
        o = int(self.offsets[i])
        return slice(o, o + int(self.num_atoms[i]))

    def structure(self, i: int) -> Any:
        """Crystal ``i`` as a pymatgen ``Structure``."""
        from pymatgen.core import Lattice, Structure

        if not -len(self) <= i < len(self):
            raise IndexError(f"crystal {i} out of range for {len(self)} crystals")
        i = i % len(self)
        sl = self.atoms_of(i)
        return Structure(Lattice(np.array(self.lattices[i])), np.asarray(self.species[sl]).tolist(),
                         np.array(self.frac[sl]), coords_are_cartesian=False)

    def structures(self) -> list[Any]:
        return [self.structure(i) for i in range(len(self))]

    def subset(self, indices: Sequence[int] | np.ndarray) -> "CrystalArrays":
        """A new (in-memory) dataset holding crystals ``indices`` in that order."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"subset index out of range for {len(self)} crystals")
        idx = idx % max(len(self), 1)
        counts = np.asarray(self.num_atoms)[idx]
        starts = np.asarray(self.offsets)[idx]
        new_offsets = np.cumsum(counts) - counts
        # atom index = start of its crystal + position inside the crystal (no loop over crystals)
        atom_idx = np.repeat(starts - new_offsets, counts) + np.arange(int(counts.sum()))
        return CrystalArrays(
            frac=np.asarray(self.frac)[atom_idx], species=np.asarray(self.species)[atom_idx],
            lattices=np.asarray(self.lattices)[idx], num_atoms=counts.astype(np.int64),
            offsets=new_offsets.astype(np.int64),
            properties={k: np.asarray(v)[idx] for k, v in self.properties.items()},
            labels={k: np.asarray(v, dtype=object)[idx] for k, v in self.labels.items()},
            ids=[self.ids[int(i)] for i in idx] if self.ids else [],
        )

    @staticmethod
    def concat(parts: Sequence["CrystalArrays"]) -> "CrystalArrays":
        """Concatenate datasets; property/label columns missing from a part are NaN/None there."""
        parts = list(parts)
        if not parts:
            return CrystalArrays.empty()
        num_atoms = np.concatenate([np.asarray(p.num_atoms, dtype=np.int64) for p in parts])
        prop_keys = list(dict.fromkeys(k for p in parts for k in p.properties))
        label_keys = list(dict.fromkeys(k for p in parts for k in p.labels))
        props = {k: np.concatenate([np.asarray(p.properties[k], dtype=np.float64) if k in p.properties
                                    else np.full(len(p), np.nan) for p in parts]) for k in prop_keys}
        labels = {k: np.concatenate([np.asarray(p.labels[k], dtype=object) if k in p.labels
                                     else np.full(len(p), None, dtype=object) for p in parts]) for k in label_keys}
        ids = [i for p in parts for i in (p.ids if p.ids else [""] * len(p))]
        return CrystalArrays(
            frac=np.concatenate([np.asarray(p.frac, dtype=np.float64).reshape(-1, 3) for p in parts]),
            species=np.concatenate([np.asarray(p.species, dtype=np.int64) for p in parts]),
            lattices=np.concatenate([np.asarray(p.lattices, dtype=np.float64).reshape(-1, 3, 3) for p in parts]),
            num_atoms=num_atoms, offsets=(np.cumsum(num_atoms) - num_atoms).astype(np.int64),
            properties=props, labels=labels, ids=ids)

    @staticmethod
    def empty() -> "CrystalArrays":
        return CrystalArrays(np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros((0, 3, 3)),
                             np.zeros(0, np.int64), np.zeros(0, np.int64))

    @staticmethod
    def from_structures(structures: Sequence[Any], *, properties: dict[str, Sequence[float]] | None = None,
                        labels: dict[str, Sequence[Any]] | None = None,
                        ids: Sequence[str] | None = None) -> "CrystalArrays":
        """Flat arrays from pymatgen structures (fractional coordinates wrapped into [0, 1))."""
        from topodiff.crystal.io import wrap_frac

        n = len(structures)
        num_atoms = np.array([len(s) for s in structures], dtype=np.int64)
        frac = (np.concatenate([s.frac_coords for s in structures]) if n else np.zeros((0, 3)))
        species = (np.array([site.specie.Z for s in structures for site in s], dtype=np.int64) if n
                   else np.zeros(0, np.int64))
        lattices = (np.stack([s.lattice.matrix for s in structures]).astype(np.float64) if n
                    else np.zeros((0, 3, 3)))
        props = {k: np.asarray(v, dtype=np.float64).reshape(n) for k, v in (properties or {}).items()}
        labs = {k: np.array(list(v), dtype=object).reshape(n) for k, v in (labels or {}).items()}
        return CrystalArrays(wrap_frac(frac.reshape(-1, 3)), species, lattices, num_atoms,
                             (np.cumsum(num_atoms) - num_atoms).astype(np.int64), props, labs,
                             list(ids) if ids is not None else [str(i) for i in range(n)])

    @staticmethod
    def from_records(records: Iterable[Any]) -> "CrystalArrays":
        """Flat arrays from the usable :class:`~topodiff.crystal.io.StructureRecord` entries."""
        good = [r for r in records if r.structure is not None and r.error is None]
        prop_keys = list(dict.fromkeys(k for r in good for k in r.properties))
        label_keys = list(dict.fromkeys(k for r in good for k in r.labels if k != "material_id"))
        props = {k: [r.properties.get(k, np.nan) for r in good] for k in prop_keys}
        labels = {k: [r.labels.get(k) for r in good] for k in label_keys}
        ids = [r.labels.get("material_id") or r.source for r in good]
        return CrystalArrays.from_structures([r.structure for r in good], properties=props, labels=labels, ids=ids)


# ---------------------------------------------------------------------------------------------
# on-disk form
# ---------------------------------------------------------------------------------------------
def save_arrays(arrays: CrystalArrays, directory: str | os.PathLike, manifest: dict | None = None) -> Path:
    """Write ``arrays`` into a new directory atomically (temporary directory, then rename).

    An existing directory at that path is replaced. ``manifest`` entries are added to the
    counts written in ``manifest.json``.
    """
    directory = Path(directory)
    if directory.exists() and not (directory.is_dir() and (read_manifest(directory) is not None
                                                            or not any(directory.iterdir()))):
        raise TopodiffInputError(f"{directory} exists and is not a topodiff dataset cache; refusing to overwrite it")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    try:
        for name in _ARRAYS:
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(getattr(arrays, name)))
        prop_files = {}
        for i, (key, values) in enumerate(arrays.properties.items()):
            prop_files[key] = f"prop_{i:03d}.npy"
            np.save(tmp / prop_files[key], np.asarray(values, dtype=np.float64))
        with open(tmp / "labels.json", "w") as fh:
            json.dump({k: [None if v is None else str(v) for v in np.asarray(col, dtype=object).tolist()]
                       for k, col in arrays.labels.items()}, fh)
        with open(tmp / "ids.json", "w") as fh:
            json.dump(list(arrays.ids), fh)
        info = {"format": CACHE_FORMAT, "num_structures": len(arrays), "num_atoms_total": arrays.num_atoms_total,
                "properties": prop_files, "labels": list(arrays.labels)}
        info.update(manifest or {})
        with open(tmp / MANIFEST, "w") as fh:
            json.dump(info, fh, indent=2)
        for p in tmp.iterdir():
            os.chmod(p, 0o644)
        os.chmod(tmp, 0o755)
        _swap_into_place(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _swap_into_place(tmp: Path, directory: Path) -> None:
    """Rename ``tmp`` to ``directory``, moving an old ``directory`` aside first."""
    old = None
    if directory.exists():
        old = directory.with_name(f".{directory.name}.old.{os.getpid()}.{time.time_ns()}")
        try:
            os.replace(directory, old)
        except FileNotFoundError:  # a concurrent build moved it first
            old = None
    try:
        os.replace(tmp, directory)
    except OSError:
        if not directory.exists():  # nobody else won the race: restore
            if old is not None:
                os.replace(old, directory)
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # a concurrent build finished first: keep it
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_manifest(directory: str | os.PathLike) -> dict | None:
    """The cache manifest in ``directory``, or ``None`` when there is none (or it is unreadable)."""
    path = Path(directory) / MANIFEST
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == CACHE_FORMAT else None


def load_arrays(directory: str | os.PathLike, *, mmap: bool = True) -> CrystalArrays:
    """Load a saved dataset; numeric arrays are memory-mapped read-only when ``mmap``."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest is None:
        raise TopodiffInputError(f"{directory}: not a topodiff dataset cache (no valid {MANIFEST})")
    mode = "r" if mmap else None
    try:
        arrs = {name: np.load(directory / f"{name}.npy", mmap_mode=mode) for name in _ARRAYS}
        props = {k: np.load(directory / f, mmap_mode=mode) for k, f in manifest.get("properties", {}).items()}
        with open(directory / "labels.json") as fh:
            labels = {k: np.array(v, dtype=object) for k, v in json.load(fh).items()}
        with open(directory / "ids.json") as fh:
            ids = json.load(fh)
    except (OSError, ValueError) as exc:
        raise TopodiffInputError(f"{directory}: damaged dataset cache ({exc})") from None
    return CrystalArrays(properties=props, labels=labels, ids=ids, **arrs)


# ---------------------------------------------------------------------------------------------
# source hashing and cache location
# ---------------------------------------------------------------------------------------------
def source_sha256(source: str | os.PathLike) -> str:
    """sha256 of a source file, or of a directory's structure files (names and contents)."""
    from topodiff.crystal.io import structure_files

    source = Path(source)
    h = hashlib.sha256()
    files = structure_files(source)
    for f in files:
        if source.is_dir():
            h.update(str(f.relative_to(source)).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def default_cache_dir(source: str | os.PathLike, sha: str, *, standardize: bool = False) -> Path:
    """``<cache>/datasets/<sha256 of the source>[-std]`` under :func:`topodiff.cache.cache_root`
    (``$TOPODIFF_CACHE`` or ``~/.cache/topodiff``) — never beside the source."""
    from topodiff.cache import cache_dir

    return cache_dir("datasets") / (sha[:32] + ("-std" if standardize else ""))


# ---------------------------------------------------------------------------------------------
# build / load
# ---------------------------------------------------------------------------------------------
def build_arrays(source: str | os.PathLike, *, standardize: bool = False,
                 num_workers: int | None = None) -> tuple[CrystalArrays, list[Any]]:
    """Read ``source`` into arrays; returns (arrays, skipped records)."""
    from topodiff.crystal import io as cio

    records = cio.read_structures(source, num_workers=num_workers, standardize=standardize)
    skipped = [r for r in records if not r.ok]
    arrays = CrystalArrays.from_records(records)
    return arrays, skipped


def _usable_arrays(source: Path, *, standardize: bool, num_workers: int | None) -> tuple[CrystalArrays, list[Any]]:
    """:func:`build_arrays`, refusing a source without a single usable structure."""
    arrays, skipped = build_arrays(source, standardize=standardize, num_workers=num_workers)
    if len(arrays) == 0:
        first = f" (first: {skipped[0].source}: {skipped[0].error})" if skipped else ""
        raise TopodiffInputError(f"{source}: no usable structures{first}")
    return arrays, skipped


def build_cache(source: str | os.PathLike, cache_dir: str | os.PathLike, *, standardize: bool = False,
                num_workers: int | None = None, sha: str | None = None) -> dict:
    """Build the cache of ``source`` in ``cache_dir`` (atomically) and return its manifest."""
    source = Path(source)
    sha = sha or source_sha256(source)
    t0 = time.perf_counter()
    arrays, skipped = _usable_arrays(source, standardize=standardize, num_workers=num_workers)
    manifest = {
        "source": str(source.resolve()), "source_sha256": sha, "standardize": bool(standardize),
        "skipped": len(skipped),
        "skipped_examples": [{"source": r.source, "error": r.error} for r in skipped[:20]],
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(time.perf_counter() - t0, 3),
    }
    save_arrays(arrays, cache_dir, manifest)
    return read_manifest(cache_dir) or manifest


def load_dataset(source: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
                 standardize: bool = False, num_workers: int | None = None,
                 rebuild: bool = False) -> CrystalArrays:
    """Load a crystal dataset through its flat-array cache.

    Parameters
    ----------
    source : anything :func:`~topodiff.crystal.io.read_structures` accepts, or a built cache directory.
    cache_dir : where the cache lives (default: :func:`default_cache_dir`, in the user cache; when
        that cannot be written, the source is read without a cache).
    standardize : store Niggli-reduced primitive cells (a separate cache from the raw one).
    num_workers : parser processes for large CSVs (``None``: automatic).
    rebuild : force a rebuild even if the cache is current.

    Returns
    -------
    :class:`CrystalArrays` with memory-mapped numeric arrays. The cache is (re)built only when it is
    missing, of another format/option, or its recorded source hash differs from the source's.
    """
    source = Path(source)
    if not source.exists():
        raise TopodiffInputError(f"no such file or directory: {source}")
    manifest = read_manifest(source) if source.is_dir() else None
    if manifest is not None:  # a cache directory itself
        orig = Path(manifest.get("source", ""))
        if orig.exists() and orig.resolve() != source.resolve() and (
                rebuild or source_sha256(orig) != manifest.get("source_sha256")):
            build_cache(orig, source, standardize=bool(manifest.get("standardize")), num_workers=num_workers)
        return load_arrays(source)
    sha = source_sha256(source)
    target = Path(cache_dir) if cache_dir is not None else default_cache_dir(source, sha, standardize=standardize)
    if target.resolve() == source.resolve():
        raise TopodiffInputError(f"cache directory {target} is the source itself")
    current = read_manifest(target)
    if (rebuild or current is None or current.get("source_sha256") != sha
            or bool(current.get("standardize")) != bool(standardize)):
        if cache_dir is None and not writable(target.parent):  # no usable cache: read the source directly
            return _usable_arrays(source, standardize=standardize, num_workers=num_workers)[0]
        build_cache(source, target, standardize=standardize, num_workers=num_workers, sha=sha)
    return _load_retrying(target)


def _load_retrying(target: Path, tries: int = 3) -> CrystalArrays:
    """Load a cache, retrying briefly if a concurrent rebuild is swapping it in."""
    for k in range(tries):
        try:
            return load_arrays(target)
        except TopodiffInputError:
            if k == tries - 1:
                raise
            time.sleep(0.2 * (k + 1))
    raise AssertionError("unreachable")


def cache_manifest(source: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
                   standardize: bool = False) -> dict | None:
    """The manifest of ``source``'s cache (``None`` when not built)."""
    source = Path(source)
    if source.is_dir() and read_manifest(source) is not None:
        return read_manifest(source)
    sha = source_sha256(source)
    target = Path(cache_dir) if cache_dir is not None else default_cache_dir(source, sha, standardize=standardize)
    return read_manifest(target)

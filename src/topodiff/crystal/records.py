"""Structure records, the validity check every reader applies, and a quiet context for parsers.

Units: Å. A record holds a usable structure or the one-line reason it is unusable.
"""
from __future__ import annotations

import contextlib
import io
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from topodiff.errors import TopodiffInputError

#: Minimum interatomic distance (Å) below which atoms count as overlapping (CDVAE's validity cut).
OVERLAP_DISTANCE = 0.5
#: Å; a longer lattice vector is not a crystal topodiff can judge (the periodic neighbour search's
#: memory grows with the cube of the cell extent: 400 Å already takes 2 GB)
MAX_CELL_LENGTH = 200.0


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



def check_structure(structure: Any, *, min_distance: float = OVERLAP_DISTANCE) -> str | None:
    """Return a one-line reason why ``structure`` is unusable, or ``None`` when it is fine.

    Checks: at least one atom; every species a real element; full site occupancies; a finite cell
    of volume > 0.1 Å³ and lattice vectors ≤ :data:`MAX_CELL_LENGTH`; no two atoms (periodic images
    included) closer than ``min_distance`` Å.
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
    longest = float(np.linalg.norm(matrix, axis=1).max())
    if longest > MAX_CELL_LENGTH:
        return f"implausible cell: a lattice vector of {longest:.4g} Å (limit {MAX_CELL_LENGTH:g} Å)"
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


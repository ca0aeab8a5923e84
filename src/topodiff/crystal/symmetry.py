"""One symmetry analysis per crystal, at one stated tolerance (spglib).

Every place that shows or uses *the* space group of a crystal — the screen's row, ``evaluate``'s
rows and metrics, the known-crystal index, the learned judge's features, the report and the k-paths
of its band plots — calls :func:`analyze` with the project tolerances below, so a crystal shows one
space group everywhere.

* :data:`SYMPREC` = 0.1 Å (distance tolerance) and :data:`ANGLE_TOLERANCE` = 5° — the tolerances
  of Materials Project and the defaults of pymatgen's ``SpacegroupAnalyzer``.
* When spglib finds nothing at ``symprec`` (e.g. two atoms closer than the tolerance) the analysis
  is retried once at ``symprec / 10``; :attr:`SymmetryAnalysis.symprec` records the one used.

The analysis keeps spglib's *symmetrised* (idealised) standard cells: the conventional cell
(Setyawan-Curtarolo / ITA setting of spglib) and the primitive cell obtained from it with spglib's
fixed centring matrix; both are exactly symmetric, so any later tolerance finds the same group.
Cells are rows of lattice vectors (Å); ``C`` matrices below map cell bases as
``a'_j = Σ_k C[j, k] a_k``.

Weak Z2 indices transform as the components of a reciprocal-lattice vector modulo 2:
``G_ν = ½ Σ_i ν_i b_i`` gives ``ν'_j = G_ν · a'_j / π = Σ_k C[j, k] ν_k (mod 2)``
(:func:`weak_indices_in`); ν0 does not depend on the cell.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from topodiff.crystal.records import quiet
from topodiff.errors import TopodiffInputError

SYMPREC = 0.1            # Å: the one distance tolerance for "the space group of a crystal"
ANGLE_TOLERANCE = 5.0    # degrees


@dataclass(frozen=True)
class SymmetryAnalysis:
    """The symmetry of one crystal at one tolerance.

    ``number`` / ``symbol``: international space-group number and Hermann-Mauguin symbol.
    ``conventional`` / ``primitive``: pymatgen ``Structure`` s of the symmetrised standard cells.
    ``to_conventional``: ``[3, 3]`` C with (input cell rows) → (conventional cell rows,
    not idealised): ``a_conv_j = Σ_k C[j, k] a_k`` (spglib's ``transformation_matrix`` P as
    ``P^{-T}``); ``origin_shift`` ``[3]`` (reduced, conventional cell).
    ``primitive_to_conventional``: ``[3, 3]`` integer C from the standard primitive to the standard
    conventional cell (1 for P lattices). ``rotations`` / ``translations``: the operations of the
    input cell (reduced coordinates).
    """

    number: int
    symbol: str
    symprec: float
    angle_tolerance: float
    conventional: Any
    primitive: Any
    to_conventional: np.ndarray
    origin_shift: np.ndarray
    primitive_to_conventional: np.ndarray
    rotations: np.ndarray
    translations: np.ndarray

    @property
    def has_inversion(self) -> bool:
        """True when the group holds the inversion ``x → −x + t``."""
        return bool(any(np.array_equal(r, -np.eye(3, dtype=int)) for r in self.rotations))


def _cell(structure: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.asarray(structure.lattice.matrix, dtype=float), np.mod(np.asarray(structure.frac_coords, float), 1.0),
            np.asarray(structure.atomic_numbers, dtype=int))


def _structure(lattice: np.ndarray, frac: np.ndarray, numbers: np.ndarray) -> Any:
    from pymatgen.core import Lattice, Structure

    return Structure(Lattice(np.asarray(lattice, float)), [int(z) for z in numbers], np.mod(np.asarray(frac, float), 1.0))


def _dataset(cell: tuple, symprec: float, angle_tolerance: float) -> tuple[Any, float]:
    import spglib

    for prec in (symprec, symprec / 10):
        try:
            with quiet():
                data = spglib.get_symmetry_dataset(cell, symprec=prec, angle_tolerance=angle_tolerance)
        except Exception:  # spglib raises on degenerate cells in some versions
            data = None
        if data is not None:
            return data, prec
    return None, symprec


def analyze(structure: Any, *, symprec: float = SYMPREC,
            angle_tolerance: float = ANGLE_TOLERANCE) -> SymmetryAnalysis | None:
    """The :class:`SymmetryAnalysis` of a pymatgen ``Structure`` (None when spglib finds no group).

    ``symprec`` (Å, > 0) and ``angle_tolerance`` (degrees) default to the project tolerances.
    """
    import spglib

    if not (np.isfinite(symprec) and symprec > 0):
        raise TopodiffInputError(f"symmetry tolerance must be a finite number > 0 Å, got {symprec}")
    cell = _cell(structure)
    data, prec = _dataset(cell, symprec, angle_tolerance)
    if data is None:
        return None
    with quiet():
        prim = spglib.standardize_cell(cell, to_primitive=True, no_idealize=False, symprec=prec,
                                       angle_tolerance=angle_tolerance)
    if prim is None:
        return None
    std_lat = np.asarray(data.std_lattice, float)
    return SymmetryAnalysis(
        number=int(data.number), symbol=str(data.international), symprec=float(prec),
        angle_tolerance=float(angle_tolerance),
        conventional=_structure(std_lat, data.std_positions, data.std_types),
        primitive=_structure(*prim),
        to_conventional=np.linalg.inv(np.asarray(data.transformation_matrix, float)).T,
        origin_shift=np.asarray(data.origin_shift, float),
        primitive_to_conventional=np.round(std_lat @ np.linalg.inv(np.asarray(prim[0], float))).astype(int),
        rotations=np.asarray(data.rotations, int), translations=np.asarray(data.translations, float))


def cell_space_group(lattice: np.ndarray, frac: np.ndarray, numbers: np.ndarray, *,
                     symprec: float = SYMPREC) -> int | None:
    """Space-group number of a cell given as arrays (lattice rows ``[3, 3]`` Å, ``frac [n, 3]``,
    atomic numbers ``[n]``) at the project tolerances (retried at ``symprec / 10``); None if none."""
    cell = (np.asarray(lattice, float), np.mod(np.asarray(frac, float), 1.0), np.asarray(numbers, int))
    data, _ = _dataset(cell, symprec, ANGLE_TOLERANCE)
    return None if data is None else int(data.number)


def space_group(structure: Any, *, symprec: float = SYMPREC) -> tuple[int, str]:
    """``(number, symbol)`` of :func:`analyze`; ``(1, "P1")`` when spglib finds none."""
    res = analyze(structure, symprec=symprec)
    return (1, "P1") if res is None else (res.number, res.symbol)


def symmetrized(structure: Any, symprec: float = SYMPREC) -> tuple[Any, bool]:
    """``(structure, changed)``: the symmetrised standard primitive cell at ``symprec`` (Å) — the
    nearest exactly symmetric crystal, as a converged relaxation would give — or the input unchanged
    (``changed`` False) when spglib finds no group."""
    res = analyze(structure, symprec=symprec)
    return (structure, False) if res is None else (res.primitive, True)


def weak_indices_in(nu: Sequence[int], cell_map: np.ndarray, *, tol: float = 1e-4) -> list[int] | None:
    """Weak indices ``[ν1, ν2, ν3]`` of one cell expressed in another cell, ``a'_j = Σ_k C[j, k] a_k``.

    ``ν'_j = Σ_k C[j, k] ν_k mod 2`` (module docstring). None when ``C`` is not an integer matrix
    (the new cell is not a lattice cell of the old one, e.g. the old cell was a supercell).
    """
    C = np.asarray(cell_map, dtype=float)
    if C.shape != (3, 3) or not np.all(np.isfinite(C)) or np.abs(C - np.round(C)).max() > tol:
        return None
    return [int(x) for x in (np.round(C).astype(np.int64) @ np.asarray(nu, dtype=np.int64)) % 2]

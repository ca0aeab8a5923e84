"""Standardisation (Niggli-reduced primitive cell) and space groups (spglib)."""
from __future__ import annotations

from typing import Any

import numpy as np

from topodiff.crystal.records import quiet


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


def symmetry_dataset(structure: Any, symprec: float = 0.1) -> Any | None:
    """spglib's symmetry dataset at ``symprec`` (Å), retried at ``symprec / 10``; None if both fail."""
    import spglib

    cell = (np.asarray(structure.lattice.matrix), np.asarray(structure.frac_coords),
            np.array([site.specie.Z for site in structure]))
    for prec in (symprec, symprec / 10):
        with quiet():
            data = spglib.get_symmetry_dataset(cell, symprec=prec)
        if data is not None:
            return data
    return None


def space_group(structure: Any, symprec: float = 0.1) -> tuple[int, str]:
    """International space-group (number, symbol) from spglib; ``(1, "P1")`` if spglib finds none."""
    data = symmetry_dataset(structure, symprec)
    if data is None:
        return 1, "P1"
    return int(data.number), str(data.international)

"""Standardisation (Niggli-reduced primitive cell); space groups come from :mod:`topodiff.crystal.symmetry`."""
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

"""Per-crystal resource guards: refuse one crystal (an error row), never exhaust the machine.

One mechanism for the batch jobs (``screen``, ``dataset label``, ``evaluate --relax``): a crystal
whose estimated cost exceeds a stated limit raises :class:`ResourceLimitError` (a
:class:`~topodiff.errors.TopodiffInputError`, so batch code turns it into that crystal's error row),
with the limit and how to raise it in the message.

- **Slater-Koster screen** (:func:`check_screen_budget`, before the model is built): atom count, and
  the peak memory of the dense Bloch Hamiltonians. The screen diagonalises ``[n_k, n, n]``
  complex128 blocks (``n`` = atoms × orbitals per atom × 2 spins); the Fu-Kane parity step holds
  the 8 TRIM Hamiltonians, their eigenvectors, inversion matrices and LAPACK workspace at once,
  estimated as ``SCREEN_COPIES × 8 × n² × 16`` bytes. Measured on Si supercells (sp3, SOC), peak
  RSS above the process baseline vs this estimate: 128 atoms 0.61 vs 0.63 GiB, 216 atoms 1.58 vs
  1.78 GiB; a 500-atom cell (n = 4000) is estimated at ~9.5 GiB (issue #17 measured 8.7 GB).
- **Relaxation** (:func:`check_relax_geometry`, before every force call): the cell volume relative
  to the start, and the number of neighbour pairs within the potential's graph cutoff (CHGNet
  builds a graph with one edge per pair within 6 Å and one angle per pair of bonds within 3 Å, so a
  collapsing or shearing cell makes the graph, and memory, explode).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from topodiff.errors import TopodiffInputError

GIB = float(1 << 30)
SCREEN_COPIES = 5  # H(TRIM), eigenvectors, inversion matrices, LAPACK workspace (calibrated, module doc)
TRIM_POINTS = 8


class ResourceLimitError(TopodiffInputError):
    """One crystal would exceed a per-crystal resource limit (the message states the limit)."""


@dataclass(frozen=True)
class CrystalLimits:
    """Per-crystal limits.

    max_atoms : atoms per cell screened. max_memory_gb : estimated peak memory of one screen (GiB).
    max_volume_ratio : relaxation stops when V/V0 leaves ``[1/r, r]``.
    max_neighbors_per_atom : relaxation stops when the mean number of neighbours within
        ``graph_cutoff`` Å exceeds this (dense elemental solids have ~100-160 within 6 Å).
    graph_cutoff : the potential's graph cutoff (Å; CHGNet's atom graph: 6 Å).
    """

    max_atoms: int = 250
    max_memory_gb: float = 4.0
    max_volume_ratio: float = 4.0
    max_neighbors_per_atom: float = 400.0
    graph_cutoff: float = 6.0


DEFAULT_LIMITS = CrystalLimits()


def screen_memory_bytes(n_atoms: int, orbitals_per_atom: int) -> float:
    """Estimated peak bytes of screening one crystal (see the module docstring)."""
    n = float(n_atoms) * orbitals_per_atom * 2
    return SCREEN_COPIES * TRIM_POINTS * n * n * 16.0


def check_screen_budget(structure: Any, basis: str = "sp3", limits: CrystalLimits = DEFAULT_LIMITS) -> None:
    """Raise :class:`ResourceLimitError` when screening ``structure`` would exceed ``limits``."""
    from topodiff.physics.slater_koster import orbital_layout

    n_atoms = len(structure)
    if n_atoms > limits.max_atoms:
        raise ResourceLimitError(f"crystal too large to screen: {n_atoms} atoms > limit {limits.max_atoms} "
                                 "(--max-atoms)")
    n_orb = len(orbital_layout(basis))
    need = screen_memory_bytes(n_atoms, n_orb)
    if need > limits.max_memory_gb * GIB:
        raise ResourceLimitError(
            f"crystal too large to screen: {n_atoms} atoms x {n_orb * 2} states need ~{need / GIB:.1f} GiB "
            f"> limit {limits.max_memory_gb:g} GiB per worker (--max-memory)")


def count_neighbor_pairs(cell: np.ndarray, positions: np.ndarray, cutoff: float) -> int:
    """Ordered neighbour pairs ``(i, j, image)`` with distance < ``cutoff`` Å (vesin)."""
    from vesin import NeighborList

    nl = NeighborList(cutoff=float(cutoff), full_list=True)
    (i,) = nl.compute(points=np.asarray(positions, float), box=np.asarray(cell, float), periodic=True,
                      quantities="i")
    return int(len(i))


def expected_neighbors_per_atom(n_atoms: int, volume: float, cutoff: float) -> float:
    """Mean neighbours within ``cutoff`` Å of an atom at uniform density ``n_atoms / volume``."""
    return n_atoms / max(volume, 1e-12) * 4.0 / 3.0 * math.pi * cutoff ** 3


def check_relax_geometry(cell: np.ndarray, positions: np.ndarray, volume0: float,
                         limits: CrystalLimits = DEFAULT_LIMITS) -> None:
    """Raise :class:`ResourceLimitError` when a relaxation step left the safe region.

    ``cell`` ``[3, 3]`` rows in Å, ``positions`` ``[N, 3]`` Cartesian Å, ``volume0`` the start volume
    (Å³). Checked in order of cost: finite numbers, volume ratio, the neighbour count expected at
    that density (no list built when it is already over the limit), then the exact count.
    """
    cell = np.asarray(cell, float)
    positions = np.asarray(positions, float)
    if not (np.all(np.isfinite(cell)) and np.all(np.isfinite(positions))):
        raise ResourceLimitError("relaxation stopped: non-finite cell or positions")
    volume = abs(float(np.linalg.det(cell)))
    ratio = volume / volume0
    r = limits.max_volume_ratio
    if not 1.0 / r <= ratio <= r:
        raise ResourceLimitError(f"relaxation stopped: cell volume changed x{ratio:.3g} "
                                 f"({volume0:.1f} -> {volume:.1f} A^3), outside the limit [1/{r:g}, {r:g}]")
    n = len(positions)
    cap = limits.max_neighbors_per_atom
    expected = expected_neighbors_per_atom(n, volume, limits.graph_cutoff)
    if expected > cap:
        raise ResourceLimitError(f"relaxation stopped: ~{expected:.0f} neighbours per atom within "
                                 f"{limits.graph_cutoff:g} A > limit {cap:g} (the cell collapsed)")
    per_atom = count_neighbor_pairs(cell, positions, limits.graph_cutoff) / max(n, 1)
    if per_atom > cap:
        raise ResourceLimitError(f"relaxation stopped: {per_atom:.0f} neighbours per atom within "
                                 f"{limits.graph_cutoff:g} A > limit {cap:g} (atoms piled up)")

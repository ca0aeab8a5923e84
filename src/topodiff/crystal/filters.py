"""Quality filters for crystals: interatomic distance, density, size, charge balance (SMACT).

Definitions follow CDVAE's validity metrics (Xie et al., ICLR 2022, ``scripts/eval_utils.py``):
structural validity = every pair distance > 0.5 Å (periodic images included); compositional
validity = some assignment of SMACT oxidation states is charge neutral and passes the Pauling
electronegativity test, single elements and all-metal alloys counting as valid.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from topodiff.crystal.io import min_pair_distance

#: CDVAE's structural-validity cut (Å).
VALIDITY_DISTANCE = 0.5


def min_distance(structure: Any, *, cutoff: float = 6.0) -> float:
    """Smallest interatomic distance (Å) under periodic boundary conditions (``inf`` if none < ``cutoff``)."""
    return min_pair_distance(structure, cutoff=cutoff)


def density(structure: Any) -> float:
    """Mass density in g/cm³."""
    return float(structure.density)


@lru_cache(maxsize=None)
def _smact_element(symbol: str) -> tuple[tuple[int, ...], float | None, bool]:
    import smact

    el = smact.Element(symbol)
    return tuple(int(o) for o in (el.oxidation_states or ()) if o != 0), el.pauling_eneg, symbol in smact.metals


def charge_balanced(composition: Any, *, use_pauling_test: bool = True, include_alloys: bool = True) -> bool:
    """SMACT charge-balance test of a composition (pymatgen ``Composition``, formula or ``{el: n}``).

    True when some combination of the elements' SMACT oxidation states is neutral for the
    gcd-reduced stoichiometry and (optionally) every cation is less electronegative than every
    anion (Pauling test). One element, or only metals with ``include_alloys``, count as balanced.
    """
    from pymatgen.core import Composition

    comp = Composition(composition)
    items = sorted(comp.get_el_amt_dict().items())
    symbols = [s for s, _ in items]
    counts = np.array([round(a) for _, a in items], dtype=np.int64)
    if len(symbols) <= 1:
        return True
    if np.any(np.abs(counts - np.array([a for _, a in items])) > 1e-6):
        return False  # non-integer stoichiometry
    counts = counts // np.gcd.reduce(counts)
    data = [_smact_element(s) for s in symbols]
    if include_alloys and all(d[2] for d in data):
        return True
    states = [d[0] for d in data]
    if any(len(s) == 0 for s in states):
        return False
    # every combination of oxidation states at once: [n_combo, n_el]
    combos = np.array(list(itertools.product(*states)), dtype=np.int64)
    neutral = combos @ counts == 0
    if not neutral.any():
        return False
    if not use_pauling_test:
        return True
    eneg = np.array([np.nan if d[1] is None else d[1] for d in data])
    if np.isnan(eneg).any():
        return True  # SMACT's test cannot judge; CDVAE counts it as valid
    ok = combos[neutral]
    cat = np.where(ok > 0, eneg, -np.inf).max(axis=1)
    an = np.where(ok < 0, eneg, np.inf).min(axis=1)
    return bool(np.any(cat < an))


@dataclass(frozen=True)
class StructureFilter:
    """Quality criteria for a crystal; :meth:`check` names the first one that fails.

    Attributes
    ----------
    min_distance : smallest allowed interatomic distance (Å, periodic images included).
    density_range : allowed mass density (g/cm³), inclusive; ``None`` for no limit.
    max_atoms : most atoms per cell; ``None`` for no limit.
    charge_balance : require SMACT charge balance.
    """

    min_distance: float = VALIDITY_DISTANCE
    density_range: tuple[float, float] | None = None
    max_atoms: int | None = None
    charge_balance: bool = False

    def check(self, structure: Any) -> str | None:
        """``None`` when ``structure`` passes, else a one-line reason."""
        n = len(structure)
        if n == 0:
            return "no atoms"
        if self.max_atoms is not None and n > self.max_atoms:
            return f"{n} atoms > max_atoms {self.max_atoms}"
        if structure.volume <= 0.1:
            return f"volume {structure.volume:.3g} Å³ <= 0.1 Å³"
        if self.density_range is not None:
            rho = density(structure)
            lo, hi = self.density_range
            if not lo <= rho <= hi:
                return f"density {rho:.3g} g/cm³ outside [{lo}, {hi}]"
        d = min_pair_distance(structure, cutoff=self.min_distance)
        if d < self.min_distance:
            return f"atoms {d:.3f} Å apart (< {self.min_distance} Å)"
        if self.charge_balance and not charge_balanced(structure.composition):
            return f"{structure.composition.reduced_formula} is not charge balanced (SMACT)"
        return None

    def passes(self, structure: Any) -> bool:
        return self.check(structure) is None

    def mask(self, structures: Sequence[Any]) -> np.ndarray:
        """``[n]`` bool: which structures pass."""
        return np.array([self.passes(s) for s in structures], dtype=bool)


def structural_validity(structures: Sequence[Any], *, cutoff: float = VALIDITY_DISTANCE) -> np.ndarray:
    """``[n]`` bool, CDVAE's structural validity: all pair distances > 0.5 Å and volume > 0.1 Å³."""
    return np.array([s.volume > 0.1 and min_pair_distance(s, cutoff=cutoff) > cutoff for s in structures],
                    dtype=bool)


def compositional_validity(structures: Sequence[Any]) -> np.ndarray:
    """``[n]`` bool, CDVAE's compositional validity (SMACT charge balance with the Pauling test)."""
    return np.array([charge_balanced(s.composition) for s in structures], dtype=bool)

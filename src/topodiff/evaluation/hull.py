"""Energy above the convex hull against a reference set evaluated with the same potential (CHGNet).

The reference (``topodiff/data/chgnet_hull_reference.json``, rebuilt by
``benchmarks/build_hull_reference.py``) holds CHGNet energies per atom of

* elemental crystals in ASE's reference states (``ase.build.bulk``), relaxed with CHGNet, plus
  dimers in a box for the diatomic elements (H, N, O, F, Cl, Br, I);
* the real crystals in ``shared/data``: Materials Project ``mp_40/test.csv`` (708) and Perov-5
  ``perov_5/val.csv`` (3787), as single points at their DFT-relaxed geometry.

Caveats: this is a *CHGNet* hull (no DFT), built from a few thousand crystals rather than all of
Materials Project, so ``e_above_hull`` is a lower-quality stability proxy: a chemical system that
the reference covers only with elements gives an optimistic (too low) value. Structures with an
element missing from the reference get ``NaN``.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition

from topodiff.errors import TopodiffInputError

REFERENCE_PATH = Path(__file__).resolve().parent.parent / "data" / "chgnet_hull_reference.json"
FORMAT = "topodiff-hull-reference/1"


@lru_cache(maxsize=4)
def load_reference(path: str | None = None) -> tuple[PDEntry, ...]:
    """Reference entries (total energies in eV) from the JSON table."""
    p = Path(path) if path else REFERENCE_PATH
    if not p.exists():
        raise TopodiffInputError(f"hull reference table not found: {p} (run benchmarks/build_hull_reference.py)")
    doc = json.loads(p.read_text())
    if doc.get("format") != FORMAT:
        raise TopodiffInputError(f"{p}: not a {FORMAT} file")
    out = []
    for formula, e_pa, source in doc["entries"]:
        comp = Composition(formula)
        out.append(PDEntry(comp, float(e_pa) * comp.num_atoms, name=str(source)))
    return tuple(out)


class HullReference:
    """Convex hulls per chemical system, built lazily from a list of reference entries."""

    def __init__(self, entries: Sequence[PDEntry] | None = None) -> None:
        self.entries = list(entries if entries is not None else load_reference())
        self.elements = {el for e in self.entries if len(e.composition.elements) == 1
                         for el in e.composition.elements}
        self._by_elements: dict[frozenset, list[PDEntry]] = {}
        for e in self.entries:
            self._by_elements.setdefault(frozenset(e.composition.elements), []).append(e)
        self._cache: dict[frozenset, PhaseDiagram] = {}

    def phase_diagram(self, elements: frozenset) -> PhaseDiagram:
        if elements not in self._cache:
            sub = [e for key, es in self._by_elements.items() if key <= elements for e in es]
            self._cache[elements] = PhaseDiagram(sub)
        return self._cache[elements]

    def e_above_hull(self, composition: Composition, energy_per_atom: float) -> float:
        """Energy above the hull (eV/atom; negative = below the reference hull); NaN if the
        reference lacks one of the elements or the energy is not finite."""
        comp = composition.element_composition
        els = frozenset(comp.elements)
        if not np.isfinite(energy_per_atom) or not els or not els <= self.elements:
            return float("nan")
        entry = PDEntry(comp, float(energy_per_atom) * comp.num_atoms)
        pd = self.phase_diagram(els)
        _, e_hull = pd.get_decomp_and_e_above_hull(entry, allow_negative=True, check_stable=False)
        return float(e_hull)


def e_above_hull(compositions: Sequence[Composition], energies_per_atom: Sequence[float],
                 reference: HullReference | None = None) -> np.ndarray:
    """``[n]`` energies above the CHGNet reference hull (eV/atom), NaN where undefined."""
    ref = reference or HullReference()
    return np.array([ref.e_above_hull(c, float(e) if e is not None else float("nan"))
                     for c, e in zip(compositions, energies_per_atom)], dtype=np.float64)


def sun_counts(e_hull: np.ndarray, unique: np.ndarray, novel: np.ndarray | None = None, *,
               threshold: float = 0.1) -> dict[str, float | int]:
    """S.U.N.-style counts: stable (``e_hull < threshold`` eV/atom), unique, novel.

    Parameters
    ----------
    e_hull : ``[n]`` energies above hull (NaN = unknown, counted as not stable).
    unique : ``[n]`` bool, True for the first member of each StructureMatcher class.
    novel : ``[n]`` bool or None (no reference: novelty not applied).
    """
    n = len(e_hull)
    stable = np.nan_to_num(e_hull, nan=np.inf) < threshold
    sun = stable & unique & (novel if novel is not None else True)
    return {"threshold_ev": threshold, "num_stable": int(stable.sum()),
            "num_stable_unique": int((stable & unique).sum()), "num_sun": int(sun.sum()),
            "sun_rate": float(sun.sum() / n) if n else float("nan"),
            "novelty_applied": novel is not None}

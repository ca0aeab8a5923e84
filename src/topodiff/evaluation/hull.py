"""Formation energy and energy above a DFT-referenced convex hull (Materials Project).

* **Formation energy** of a crystal from a CHGNet energy per atom ``E`` (eV/atom):
  ``e_form = E − Σ_i x_i μ_i`` with ``x_i`` the atomic fractions and ``μ_i`` the energy per atom of
  MP's elemental reference entries (``data/mp_elemental_references.json``). CHGNet 0.4.2 was
  trained on MPtrj, i.e. on MP2020-*corrected* energies, so this ``e_form`` already sits on the
  scale of MP's corrected formation energies (measured: ~0.03 eV/atom for intermetallics, ~0.05 for
  oxides): no MP2020 correction is applied again.
* **Hull**: pymatgen ``PhaseDiagram`` per chemical system over the DFT formation energies of
  46,918 MP entries (``data/mp_formation_energies.csv.gz``, eV/atom, MP2020-corrected; elements at
  0), built from every entry whose elements lie in the system, cached per system.
  ``e_above_hull = e_form − hull(x)`` (eV/atom); negative means below the DFT hull.

Where an element has no MP elemental reference, no number is given: ``e_above_hull`` is None and
``hull_note`` names the element. ``num_references`` reports how many DFT compounds the hull of the
system holds (its coverage; 0 means only the elemental corners are known). A crystal below the hull
gets :data:`BELOW_HULL_NOTE`: its energy comes from CHGNet, the hull from DFT.
Data sources and licences: ``data/SOURCE.md``.
"""
from __future__ import annotations

import csv
import gzip
import json
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition

from topodiff.errors import TopodiffInputError

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
ELEMENTS_PATH = DATA_DIR / "mp_elemental_references.json"
ENTRIES_PATH = DATA_DIR / "mp_formation_energies.csv.gz"
ELEMENTS_FORMAT = "topodiff-elemental-references/1"
STABLE_THRESHOLD = 0.1   # eV/atom: "stable" means e_above_hull ≤ this (MatterGen's S.U.N. convention)
#: the note of a crystal below the DFT hull: its energy is CHGNet's (error ~0.03 eV/atom on MP, Deng et al. 2023),
#: the hull's DFT, so "below" may be the potential's error or a compound the hull lacks
BELOW_HULL_NOTE = "below the DFT hull on CHGNet's energy: a new ground state only if DFT confirms it"


@lru_cache(maxsize=2)
def elemental_references(path: str | None = None) -> dict[str, float]:
    """MP elemental reference energies ``{symbol: eV/atom}``."""
    p = Path(path) if path else ELEMENTS_PATH
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise TopodiffInputError(f"elemental references unreadable: {p} ({exc})") from None
    if doc.get("format") != ELEMENTS_FORMAT:
        raise TopodiffInputError(f"{p}: not a {ELEMENTS_FORMAT} file")
    return {el: float(v["energy_per_atom"]) for el, v in doc["elements"].items()}


@dataclass(frozen=True)
class DFTEntry:
    """One DFT reference: ``e_form`` in eV/atom."""

    material_id: str
    composition: Composition
    e_form: float


@lru_cache(maxsize=2)
def dft_entries(path: str | None = None) -> tuple[DFTEntry, ...]:
    """The DFT formation energies (``material_id, composition, e_form_per_atom`` gzip CSV)."""
    p = Path(path) if path else ENTRIES_PATH
    try:
        with gzip.open(p, "rt", newline="") as fh:
            return tuple(DFTEntry(r["material_id"], Composition(r["composition"]), float(r["e_form_per_atom"]))
                         for r in csv.DictReader(fh))
    except (OSError, KeyError, ValueError) as exc:
        raise TopodiffInputError(f"DFT formation energies unreadable: {p} ({exc})") from None


@dataclass
class HullResult:
    """Outcome for one crystal (energies in eV/atom; None = unknown, with ``note`` saying why)."""

    e_form: float | None
    e_above_hull: float | None
    num_references: int = 0
    note: str | None = None

    def as_row(self) -> dict[str, object]:
        return {"e_form": self.e_form, "e_above_hull": self.e_above_hull,
                "hull_num_references": self.num_references, "hull_note": self.note}


class DFTHull:
    """Energies above the DFT hull, one cached ``PhaseDiagram`` per chemical system.

    Parameters
    ----------
    entries : DFT references (default: the shipped 46,918 MP entries).
    references : elemental reference energies ``{symbol: eV/atom}`` (default: shipped MP ones).
    """

    def __init__(self, entries: Iterable[DFTEntry] | None = None,
                 references: dict[str, float] | None = None) -> None:
        self.references = dict(references if references is not None else elemental_references())
        self._by_system: dict[frozenset[str], list[DFTEntry]] = {}
        for e in (entries if entries is not None else dft_entries()):
            key = frozenset(el.symbol for el in e.composition.elements)
            self._by_system.setdefault(key, []).append(e)
        self._cache: dict[frozenset[str], tuple[PhaseDiagram, int]] = {}

    def references_of(self, system: frozenset[str], exclude: frozenset[str] = frozenset()) -> list[DFTEntry]:
        """DFT compounds whose elements all lie in ``system`` (``exclude``: material ids left out)."""
        els = sorted(system)
        out = []
        for k in range(1, len(els) + 1):
            for sub in combinations(els, k):
                out.extend(e for e in self._by_system.get(frozenset(sub), ()) if e.material_id not in exclude)
        return out

    def _diagram(self, system: frozenset[str], exclude: frozenset[str]) -> tuple[PhaseDiagram, int]:
        if not exclude and system in self._cache:
            return self._cache[system]
        refs = [e for e in self.references_of(system, exclude) if len(e.composition.elements) > 1]
        pd_entries = [PDEntry(Composition(el), 0.0) for el in system]
        pd_entries += [PDEntry(e.composition, e.e_form * e.composition.num_atoms) for e in refs]
        out = (PhaseDiagram(pd_entries), len(refs))
        if not exclude:
            self._cache[system] = out
        return out

    def formation_energy(self, composition: Composition, energy_per_atom: float) -> tuple[float | None, str | None]:
        """``e_form`` (eV/atom) from a total energy per atom on MP's scale; (None, reason) if unknown."""
        comp = composition.element_composition
        missing = sorted(el.symbol for el in comp.elements if el.symbol not in self.references)
        if missing:
            return None, f"no MP elemental reference for {', '.join(missing)}"
        if energy_per_atom is None or not np.isfinite(energy_per_atom):
            return None, "no energy"
        mu = sum(comp.get_atomic_fraction(el) * self.references[el.symbol] for el in comp.elements)
        return float(energy_per_atom - mu), None

    def evaluate(self, composition: Composition, *, energy_per_atom: float | None = None,
                 e_form: float | None = None, exclude: Iterable[str] = ()) -> HullResult:
        """Formation energy and energy above the DFT hull of one crystal.

        Give either a total ``energy_per_atom`` (CHGNet, eV/atom) or ``e_form`` directly.
        ``exclude``: material ids removed from the hull (leave-one-out; not cached).
        """
        comp = composition.element_composition
        if e_form is None:
            e_form, note = self.formation_energy(comp, energy_per_atom)   # type: ignore[arg-type]
            if e_form is None:
                return HullResult(None, None, 0, note)
        system = frozenset(el.symbol for el in comp.elements)
        missing = sorted(s for s in system if s not in self.references)
        if missing:
            return HullResult(float(e_form), None, 0, f"no MP elemental reference for {', '.join(missing)}")
        pd, n_refs = self._diagram(system, frozenset(exclude))
        entry = PDEntry(comp, float(e_form) * comp.num_atoms)
        _, e_hull = pd.get_decomp_and_e_above_hull(entry, allow_negative=True, check_stable=False)
        notes = [] if n_refs or len(system) == 1 else ["no DFT compound known in this chemical system: hull of the "
                                                        "elements only"]
        if e_hull < -1e-6:
            notes.append(BELOW_HULL_NOTE)
        return HullResult(float(e_form), float(e_hull), n_refs, "; ".join(notes) or None)


@lru_cache(maxsize=1)
def default_hull() -> DFTHull:
    """The shipped DFT hull (loaded once per process)."""
    return DFTHull()


def evaluate_energies(compositions: Sequence[Composition | None], energies_per_atom: Sequence[float | None],
                      hull: DFTHull | None = None) -> list[HullResult]:
    """One :class:`HullResult` per crystal (``None`` composition or energy → unknown with a note)."""
    h = hull or default_hull()
    out = []
    for c, e in zip(compositions, energies_per_atom):
        missing = [] if c is None else sorted(el.symbol for el in c.elements if el.symbol not in h.references)
        if c is None:
            out.append(HullResult(None, None, 0, "no structure"))
        elif missing:   # the reason that holds whatever the energy
            out.append(HullResult(None, None, 0, f"no MP elemental reference for {', '.join(missing)}"))
        elif e is None or not np.isfinite(e):
            out.append(HullResult(None, None, 0, "no energy (not computed or relaxation failed)"))
        else:
            out.append(h.evaluate(c, energy_per_atom=float(e)))
    return out


def sun_counts(e_hull: np.ndarray, unique: np.ndarray, novel: np.ndarray, *,
               threshold: float = STABLE_THRESHOLD) -> dict[str, float | int]:
    """S.U.N. counts: stable (``e_hull ≤ threshold`` eV/atom) ∧ unique ∧ novel.

    Parameters
    ----------
    e_hull : ``[n]`` energies above the DFT hull (NaN = unknown, counted as not stable and
        reported in ``num_stability_unknown``).
    unique : ``[n]`` bool, True for the first member of each StructureMatcher class.
    novel : ``[n]`` bool, not in the index of known crystals nor in any ``--reference``.
    """
    n = len(e_hull)
    known = np.isfinite(e_hull)
    stable = known & (np.nan_to_num(e_hull, nan=np.inf) <= threshold)
    on_hull = known & (np.nan_to_num(e_hull, nan=np.inf) <= 0.0)
    sun = stable & unique & novel
    return {"threshold_ev": threshold, "num_stable": int(stable.sum()), "num_on_or_below_hull": int(on_hull.sum()),
            "num_stability_unknown": int((~known).sum()), "num_unique": int(unique.sum()),
            "num_novel": int(novel.sum()), "num_stable_unique": int((stable & unique).sum()),
            "num_sun": int(sun.sum()), "sun_rate": float(sun.sum() / n) if n else None}

"""Synthetic crystals from pyxtal with realistic space groups and Wyckoff occupations.

Prototype statistics: pyxtal ships ``database/spg_num_wps_mp.csv``, a table of
(space group, atoms in the conventional cell, occupied Wyckoff positions, count) tallied over
Materials Project structures. We draw a row with probability proportional to its count (so space
groups and Wyckoff sets follow MP frequencies), split its Wyckoff sites among 1-4 elements, and let
``pyxtal.from_random`` place the atoms. Each crystal then passes :class:`StructureFilter`
(minimum distance, density, size, optional SMACT charge balance); failures are retried with new
choices. Crystal ``i`` depends only on ``(seed, i)``, so results do not depend on the worker count.
"""
from __future__ import annotations

import contextlib
import io
import sys
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from topodiff.crystal.filters import StructureFilter, charge_balanced
from topodiff.crystal.prototypes import PROTOTYPES, check_prototypes, substitute_prototype
from topodiff.errors import TopodiffInputError

#: Elements that dominate known topological materials (Bi2Se3, SnTe, HgTe, Cd3As2, Na3Bi, TlBiSe2, ...).
TOPOLOGICAL_ELEMENTS: tuple[str, ...] = ("Bi", "Sb", "Se", "Te", "Sn", "Pb", "Hg", "Cd", "In", "Ge", "As",
                                         "Tl", "Ga", "S", "Zr", "Hf", "Pt", "Au", "Ir", "W", "Mo")
#: Common partners mixed in (alkali / alkaline-earth cations, light anions, frequent metals).
COMMON_ELEMENTS: tuple[str, ...] = ("Na", "K", "Rb", "Cs", "Li", "Mg", "Ca", "Sr", "Ba", "O", "N", "P", "Si",
                                    "Cl", "Br", "I", "F", "Zn", "Cu", "Ag", "Al", "Y", "La", "Ti")
#: Probability that an element drawn from the default pool is a topological one.
TOPOLOGICAL_WEIGHT = 0.7
#: Probabilities of 1, 2, 3, 4 distinct elements (truncated by the number of Wyckoff sites).
NUM_SPECIES_P = (0.05, 0.45, 0.38, 0.12)


@dataclass(frozen=True)
class _WyckoffRow:
    spg: int
    n_atoms: int
    wps: tuple[int, ...]
    count: int


@lru_cache(maxsize=1)
def mp_wyckoff_table() -> tuple[_WyckoffRow, ...]:
    """pyxtal's Materials Project (space group, Wyckoff set) frequency table."""
    from importlib.resources import files

    import pandas as pd

    path = files("pyxtal") / "database" / "spg_num_wps_mp.csv"
    df = pd.read_csv(str(path))
    rows = []
    for spg, n, wps, count in df[["spg", "n_atoms", "wps", "count"]].itertuples(index=False):
        rows.append(_WyckoffRow(int(spg), int(n), tuple(int(w) for w in str(wps).split("-")), int(count)))
    return tuple(rows)


@lru_cache(maxsize=None)
def _wyckoff(spg: int) -> tuple[tuple[int, str, int], ...]:
    """(multiplicity, label, degrees of freedom) of each Wyckoff position in pyxtal's order (0 = general)."""
    with _quiet():
        g = _group(spg)
        return tuple((int(w.multiplicity), f"{w.multiplicity}{w.letter}", int(w.get_dof()))
                     for w in g.Wyckoff_positions)


class _OutOfBudget(Exception):
    """pyxtal used up its placement budget for one choice."""


@lru_cache(maxsize=None)
def _group(spg: int) -> Any:
    from pyxtal.symmetry import Group

    with _quiet():
        return Group(spg)


@lru_cache(maxsize=1)
def _tolerance_matrix() -> Any:
    from pyxtal.tolerance import Tol_matrix

    return Tol_matrix(prototype="atomic", factor=1.0)


@lru_cache(maxsize=1)
def _budgeted_crystal_class() -> type:
    """pyxtal's ``random_crystal`` with a cap on coordinate-placement rounds.

    pyxtal tries up to 40 lattices x 10 placements; on prototypes with many sites along one polar
    axis that takes seconds and mostly fails. A deterministic cap (not a wall-clock limit, so the
    same seed gives the same crystals on any machine) moves on to another choice instead.
    """
    from pyxtal.crystal import random_crystal

    class BudgetedCrystal(random_crystal):
        budget = 40

        def _set_coords(self):  # noqa: ANN202 - pyxtal's signature
            self._rounds = getattr(self, "_rounds", 0) + 1
            if self._rounds > self.budget:
                raise _OutOfBudget()
            return super()._set_coords()

    return BudgetedCrystal


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _element_pool(elements: Sequence[str] | None) -> tuple[list[str], np.ndarray]:
    """Candidate elements and their sampling weights."""
    from pymatgen.core.periodic_table import Element

    if elements:
        pool = list(dict.fromkeys(str(e).strip() for e in elements if str(e).strip()))
        bad = [e for e in pool if not Element.is_valid_symbol(e)]
        if bad:
            raise TopodiffInputError(f"unknown element symbol(s): {', '.join(bad)}")
        return pool, np.full(len(pool), 1.0 / len(pool))
    pool = list(TOPOLOGICAL_ELEMENTS) + list(COMMON_ELEMENTS)
    w = np.array([TOPOLOGICAL_WEIGHT / len(TOPOLOGICAL_ELEMENTS)] * len(TOPOLOGICAL_ELEMENTS)
                 + [(1 - TOPOLOGICAL_WEIGHT) / len(COMMON_ELEMENTS)] * len(COMMON_ELEMENTS))
    return pool, w / w.sum()


class CrystalSampler:
    """Draws (space group, Wyckoff sites, elements) choices and builds crystals with pyxtal.

    Parameters
    ----------
    elements : chemical space; ``None`` = topological elements mixed with common partners.
    max_atoms : most atoms in pyxtal's conventional cell.
    space_groups : allowed space-group numbers (``None`` = all in the MP table).
    crystal_filter : quality filter every crystal must pass.
    standardize : return Niggli-reduced primitive cells.
    max_sites : most occupied Wyckoff sites per prototype.
    placement_budget : pyxtal coordinate-placement rounds per choice before another is drawn.
    """

    def __init__(self, *, elements: Sequence[str] | None = None, max_atoms: int = 20,
                 space_groups: Sequence[int] | None = None, crystal_filter: StructureFilter | None = None,
                 standardize: bool = True, max_sites: int = 8, placement_budget: int = 40) -> None:
        self.placement_budget = placement_budget
        if max_atoms < 1:
            raise TopodiffInputError(f"max_atoms must be >= 1, got {max_atoms}")
        self.pool, self.weights = _element_pool(elements)
        self.filter = crystal_filter or StructureFilter()
        self.standardize = standardize
        allowed = None
        if space_groups is not None:
            allowed = {int(s) for s in space_groups}
            bad = sorted(s for s in allowed if not 1 <= s <= 230)
            if bad:
                raise TopodiffInputError(f"space groups must be 1-230, got {bad}")
        rows = [r for r in mp_wyckoff_table() if r.n_atoms <= max_atoms and len(r.wps) <= max_sites
                and (allowed is None or r.spg in allowed)]
        if not rows:
            raise TopodiffInputError(f"no Materials Project prototype with <= {max_atoms} atoms"
                                     + (f" in space groups {sorted(allowed)}" if allowed else ""))
        self.rows = rows
        counts = np.array([r.count for r in rows], dtype=np.float64)
        self.row_p = counts / counts.sum()

    # -- choices ---------------------------------------------------------------------------------
    def _choose(self, rng: np.random.Generator, charge_balance: bool) -> tuple[int, list[str], list[int], list[list[str]]] | None:
        """Draw a prototype and an element assignment; ``None`` if no balanced assignment was found."""
        row = self.rows[int(rng.choice(len(self.rows), p=self.row_p))]
        wyck = _wyckoff(row.spg)
        sites = list(row.wps)
        n_sites = len(sites)
        kmax = min(n_sites, len(NUM_SPECIES_P), len(self.pool))
        pk = np.array(NUM_SPECIES_P[:kmax])
        for _ in range(20 if charge_balance else 1):
            k = int(rng.choice(kmax, p=pk / pk.sum())) + 1
            order = rng.permutation(n_sites)
            owner = np.empty(n_sites, dtype=np.int64)
            owner[order[:k]] = np.arange(k)  # each element gets at least one site
            owner[order[k:]] = rng.integers(0, k, size=n_sites - k)
            elems = list(rng.choice(self.pool, size=k, replace=False, p=self.weights))
            num = [int(sum(wyck[sites[j]][0] for j in range(n_sites) if owner[j] == e)) for e in range(k)]
            labels = [[wyck[sites[j]][1] for j in range(n_sites) if owner[j] == e] for e in range(k)]
            if not charge_balance or charge_balanced(dict(zip(elems, num))):
                return row.spg, [str(e) for e in elems], num, labels
        return None

    def sample_one(self, rng: np.random.Generator, *, charge_balance: bool = False,
                   max_tries: int = 50) -> tuple[Any, dict] | None:
        """One crystal passing the filter (and its metadata), or ``None`` after ``max_tries`` failures."""
        from pymatgen.core import Lattice, Structure

        from topodiff.crystal.io import standardize as std, wrap_frac

        crystal_cls = _budgeted_crystal_class()

        for attempt in range(max_tries):
            choice = self._choose(rng, charge_balance)
            if choice is None:
                continue
            spg, elems, num, labels = choice
            state = int(rng.integers(2**31 - 1))
            try:
                with _quiet():
                    crystal_cls.budget = self.placement_budget
                    c = crystal_cls(dim=3, group=_group(spg), species=elems, numIons=num, sites=labels,
                                    tm=_tolerance_matrix(), random_state=state)
                    if not c.valid:
                        continue
                    species = [site.specie for site in c.atom_sites for _ in range(len(site.coords))]
                    frac = np.concatenate([np.asarray(site.coords, dtype=float) for site in c.atom_sites])
                    s = Structure(Lattice(c.lattice.matrix), species, wrap_frac(frac))
                    if self.standardize:
                        s = std(s)
            except (Exception, _OutOfBudget):  # pyxtal gives up on some site/lattice combinations: try another choice
                continue
            if self.filter.check(s) is None:
                return s, {"space_group_target": spg, "wyckoff": " ".join("/".join(l) for l in labels),
                           "attempts": attempt + 1, "prototype": "random", "substitution": ""}
        return None


def _prototype_one(i: int, seed: int, names: Sequence[str], crystal_filter: StructureFilter, strain: float,
                   standardize: bool, max_tries: int = 20) -> tuple[Any, dict] | None:
    rng = np.random.default_rng([seed, i, 1])
    for _ in range(max_tries):
        proto = PROTOTYPES[names[int(rng.integers(len(names)))]]
        s, info = substitute_prototype(proto, rng, strain=strain, standardize=standardize)
        if crystal_filter.check(s) is None:
            return s, {**info, "space_group_target": proto.spg, "wyckoff": "", "attempts": 1}
    return None


def _is_prototype(i: int, seed: int, fraction: float) -> bool:
    return fraction > 0 and np.random.default_rng([seed, i, 2]).random() < fraction


def _worker(args: tuple[dict, int, list[int], bool, dict]) -> list[tuple[int, Any, dict | None]]:
    kwargs, seed, indices, charge_balance, proto = args
    sampler = CrystalSampler(**kwargs)
    out = []
    for i in indices:
        if _is_prototype(i, seed, proto["fraction"]):
            res = _prototype_one(i, seed, proto["names"], sampler.filter, proto["strain"], sampler.standardize)
        else:
            res = sampler.sample_one(np.random.default_rng([seed, i]), charge_balance=charge_balance)
        out.append((i, None, None) if res is None else (i, res[0], res[1]))
    return out


def _crashed_job(job: tuple[dict, int, list[int], bool, dict], message: str) -> list[tuple[int, Any, dict]]:
    """Result of a job whose worker died (:func:`topodiff.process_pool.resilient_map`)."""
    return [(i, None, {"crashed": message}) for i in job[2]]


def synthesize(num: int, *, elements: Sequence[str] | None = None, seed: int = 0, max_atoms: int = 20,
               min_distance: float = 1.0, density_range: tuple[float, float] | None = (0.5, 25.0),
               charge_balance: bool = False, space_groups: Sequence[int] | None = None,
               standardize: bool = True, num_workers: int = 1, progress: bool = True,
               return_info: bool = False, prototype_fraction: float = 0.0,
               prototypes: Sequence[str] | None = None,
               prototype_strain: float = 0.02) -> list[Any] | tuple[list[Any], list[dict]]:
    """Generate ``num`` random crystals that pass the quality filters.

    Parameters
    ----------
    num : number of crystals.
    elements : chemical space (element symbols); default: topological elements + common partners.
    seed : crystal ``i`` is drawn from ``numpy.random.default_rng([seed, i])``.
    max_atoms : most atoms per (conventional) cell.
    min_distance : smallest allowed interatomic distance (Å).
    density_range : allowed density (g/cm³), or ``None``.
    charge_balance : require SMACT charge balance.
    space_groups : restrict to these space-group numbers.
    standardize : Niggli-reduced primitive cells (else pyxtal's conventional cell).
    num_workers : processes (results do not depend on it).
    progress : tqdm bar on stderr.
    return_info : also return per-crystal metadata (target space group, Wyckoff sites, prototype).
    prototype_fraction : probability that crystal ``i`` is a substituted topological prototype
        (:data:`PROTOTYPES`: tetradymite, rock salt, zinc blende, Na3Bi, half-Heusler, A7) instead
        of a random one — random crystals in this chemical space are mostly metals, and a
        conditional generator needs examples of every class.
    prototypes : restrict to these prototype names.
    prototype_strain : largest random strain applied to a substituted prototype cell.

    Returns
    -------
    list of pymatgen ``Structure`` (length ``num``), plus the metadata list with ``return_info``.
    A crystal that fails 50 tries in a row raises :class:`TopodiffInputError` (constraints too tight).
    """
    if num < 0:
        raise TopodiffInputError(f"num must be >= 0, got {num}")
    if density_range is not None and not density_range[0] < density_range[1]:
        raise TopodiffInputError(f"density_range must be (low, high) with low < high, got {density_range}")
    if not 0.0 <= prototype_fraction <= 1.0:
        raise TopodiffInputError(f"prototype_fraction must be in [0, 1], got {prototype_fraction}")
    proto = {"fraction": float(prototype_fraction), "names": check_prototypes(prototypes),
             "strain": float(prototype_strain)}
    filt = StructureFilter(min_distance=min_distance, density_range=density_range,
                           max_atoms=None, charge_balance=charge_balance)
    kwargs = dict(elements=list(elements) if elements else None, max_atoms=max_atoms,
                  space_groups=list(space_groups) if space_groups is not None else None,
                  crystal_filter=filt, standardize=standardize)
    CrystalSampler(**kwargs)  # validate the arguments before starting workers
    chunk = max(1, min(25, -(-num // max(1, 4 * num_workers))))
    jobs = [(kwargs, seed, list(range(a, min(num, a + chunk))), charge_balance, proto)
            for a in range(0, num, chunk)]
    results = _run_jobs(jobs, num, num_workers, progress)
    structures = [results[i][0] for i in range(num)]
    if return_info:
        return structures, [results[i][1] for i in range(num)]
    return structures


def _run_jobs(jobs: list[tuple], num: int, num_workers: int, progress: bool) -> dict[int, tuple[Any, dict | None]]:
    """``{i: (structure, info)}`` for crystals ``0..num-1`` from :func:`_worker` jobs, in this process or
    ``num_workers`` processes. A dead worker raises ``RuntimeError``; a crystal no try could make
    raises :class:`TopodiffInputError`."""
    from tqdm import tqdm

    results: dict[int, tuple[Any, dict | None]] = {}
    bar = tqdm(total=num, desc="synthesizing", unit="crystal", file=sys.stderr, disable=not progress)
    try:
        if num_workers <= 1:
            parts = (_worker(job) for job in jobs)
        else:
            from topodiff.process_pool import resilient_map

            parts = (part for _, part in resilient_map(_worker, jobs, workers=num_workers, on_crash=_crashed_job))
        for part in parts:
            for i, s, info in part:
                results[i] = (s, info)
                bar.update(1)
    finally:
        bar.close()
    crashed = [i for i in range(num) if results[i][1] is not None and "crashed" in results[i][1]]
    if crashed:
        raise RuntimeError(f"a worker process died while generating crystals {crashed[0]}..{crashed[-1]}: "
                           f"{results[crashed[0]][1]['crashed']}")
    failed = [i for i in range(num) if results[i][0] is None]
    if failed:
        raise TopodiffInputError(f"could not generate {len(failed)} of {num} crystals passing the filters "
                                 "(loosen --max-atoms, elements, density or charge balance)")
    return results



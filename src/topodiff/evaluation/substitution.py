"""Data-driven ion substitution: a non-learning baseline for crystal discovery.

Hautier, Fischer, Ehrlacher, Jain & Ceder, Inorg. Chem. 50, 656 (2011): the probability that
species ``s1`` replaces ``s2`` in a known crystal, mined from the ICSD, is
``p(s1|s2) = exp(λ(s1, s2)) / p(s2)``; a substitution of every species of a template has the
product of these conditional probabilities. pymatgen ships the λ table and
:class:`~pymatgen.core.structure_prediction.substitutor.Substitutor`; MatterGen and Szymanski &
Bartel (2024) compare generators with this baseline.

Two tables, one mechanism (pymatgen's ``Substitutor.pred_from_list`` with probability threshold):

* **species** — a template whose oxidation states pymatgen can guess, all of them non-zero and in
  the λ table (an ionic crystal): Hautier's table itself, charge-balanced substitutions only;
* **element** — every other template (intermetallics, most catalogue TIs, have no formal oxidation
  states): the same table marginalised over oxidation states,
  ``λ(e1, e2) = log Σ_{s1 ∈ e1, s2 ∈ e2} exp λ(s1, s2)`` over the listed pairs.

:func:`propose` takes, for each template in a seeded random order, its most probable substitution
(then, when every template has given one, each one's second best, and so on), skipping a candidate
that StructureMatcher (CDVAE tolerances) finds identical to a template or to an earlier candidate. The substituted crystal keeps the template's cell and fractional coordinates: the
relaxation that follows in the benchmark adjusts the volume.
"""
from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np
from pymatgen.core import Composition, Species, Structure

#: Hautier et al.'s default probability threshold (pymatgen's ``Substitutor`` default).
THRESHOLD = 1e-3


@dataclass
class Candidate:
    """One substituted crystal: ``substitution`` maps template element → new element."""

    structure: Structure
    template: str
    substitution: dict[str, str]
    probability: float
    table: str          # "species" or "element"

    def as_info(self) -> dict[str, Any]:
        """Plain-JSON description (the extxyz frame info of the benchmark)."""
        return {"template": self.template, "probability": self.probability, "table": self.table,
                "substitution": " ".join(f"{a}->{b}" for a, b in sorted(self.substitution.items()))}


@lru_cache(maxsize=4)
def _substitutor(table: str, threshold: float = THRESHOLD) -> Any:
    """pymatgen's ``Substitutor`` on Hautier's λ table (``"species"``) or its element marginal."""
    from pymatgen.core.structure_prediction.substitutor import Substitutor

    if table == "species":
        return Substitutor(threshold=threshold)
    return Substitutor(threshold=threshold, lambda_table=[list(r) for r in element_lambda_table()])


@lru_cache(maxsize=1)
def element_lambda_table() -> tuple[tuple[str, str, float], ...]:
    """Hautier's λ table marginalised over oxidation states: rows ``("Bi0+", "Sb0+", λ)``."""
    acc: dict[tuple[str, ...], list[float]] = defaultdict(list)
    for pair, lam in _substitutor("species")._sp._l.items():
        els = sorted(s.symbol for s in pair)
        acc[(els[0], els[-1])].append(lam)
    return tuple((f"{a}0+", f"{b}0+", float(np.log(np.sum(np.exp(lams))))) for (a, b), lams in sorted(acc.items()))


def ionic_species(composition: Composition) -> dict[str, Species] | None:
    """Most likely oxidation state per element (pymatgen's guess) when all lie in Hautier's table."""
    allowed = _substitutor("species").get_allowed_species()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        guesses = composition.oxi_state_guesses(max_sites=-50)
    for guess in guesses[:1]:
        species = {el: Species(el, ox) for el, ox in guess.items()}
        if all(s.oxi_state != 0 and s in allowed for s in species.values()):
            return species
    return None


def substitutions(structure: Structure, *, threshold: float = THRESHOLD) -> list[tuple[dict[str, str], float, str]]:
    """Substitutions of ``structure`` above ``threshold``: ``(element map, probability, table)``.

    The identity (every element kept) is left out; species-table substitutions are charge-balanced.
    """
    comp = structure.composition.element_composition
    ionic = ionic_species(comp)
    if ionic is not None:
        table, species = "species", ionic
    else:
        table = "element"
        allowed = _substitutor(table, threshold).get_allowed_species()
        species = {el.symbol: Species(el.symbol, 0) for el in comp.elements}
        if not all(s in allowed for s in species.values()):
            return []
    sub = _substitutor(table, threshold)
    old = list(species)
    out = []
    for pred in sub.pred_from_list([species[e] for e in old]):
        new = pred["substitutions"]
        if table == "species" and abs(sum(new[species[e]].oxi_state * comp[e] for e in old)) > 1e-9:
            continue
        mapping = {e: new[species[e]].symbol for e in old}
        if len(set(mapping.values())) < len(mapping) or all(k == v for k, v in mapping.items()):
            continue        # two elements merged, or nothing changed
        out.append(({k: v for k, v in mapping.items() if k != v}, float(pred["probability"]), table))
    return out


def _identical(s: Structure, others: Sequence[Structure]) -> bool:
    from topodiff.evaluation.metrics import generation_matcher

    m = generation_matcher()
    return any(m.fit(s, o) for o in others)


def propose(templates: Sequence[tuple[str, Structure]], num: int, *, seed: int = 0,
            threshold: float = THRESHOLD) -> tuple[list[Candidate], dict[str, Any]]:
    """``num`` substituted crystals from ``(id, structure)`` templates (module docstring).

    Templates are visited in a seeded random order, round after round; each visit takes the
    template's most probable substitution not yet used. Returns the candidates in draw order and
    counts (templates per table, pool size, candidates skipped as identical).
    """
    ranked = []
    tables: dict[str, int] = {"species": 0, "element": 0, "none": 0}
    for _, s in templates:
        subs = sorted(substitutions(s, threshold=threshold), key=lambda x: -x[1])
        tables[subs[0][2] if subs else "none"] += 1
        ranked.append(subs)
    seen: dict[str, list[Structure]] = defaultdict(list)
    for _, s in templates:
        seen[s.composition.reduced_formula].append(s)
    order = np.random.default_rng(seed).permutation(len(templates))
    cursor = [0] * len(templates)
    out: list[Candidate] = []
    skipped = 0
    while len(out) < num and any(cursor[t] < len(ranked[t]) for t in order):
        for t in order:
            while len(out) < num and cursor[t] < len(ranked[t]):
                mapping, prob, table = ranked[t][cursor[t]]
                cursor[t] += 1
                s = templates[t][1].copy()
                s.remove_oxidation_states()
                s.replace_species(mapping)
                f = s.composition.reduced_formula
                if _identical(s, seen[f]):
                    skipped += 1
                    continue
                seen[f].append(s)
                out.append(Candidate(s, templates[t][0], mapping, prob, table))
                break
    return out, {"templates": len(templates), "templates_by_table": tables, "pool": sum(map(len, ranked)),
                 "skipped_identical": skipped, "threshold": threshold, "seed": seed}

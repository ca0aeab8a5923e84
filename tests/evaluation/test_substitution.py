"""Data-driven ion substitution (Hautier et al. 2011 via pymatgen): the discovery benchmark's baseline."""
from __future__ import annotations

import math

import numpy as np
import pytest
from pymatgen.core import Composition, Lattice, Species, Structure

from topodiff.evaluation import substitution as S
from topodiff.evaluation.metrics import generation_matcher


def rocksalt(a: str, b: str, lat: float = 6.4) -> Structure:
    return Structure.from_spacegroup(225, Lattice.cubic(lat), [a, b], [[0, 0, 0], [0.5, 0.5, 0.5]])


def cscl(a: str, b: str, lat: float = 3.4) -> Structure:
    return Structure(Lattice.cubic(lat), [a, b], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_element_table_is_the_marginal_of_hautiers_species_table():
    """λ(e1, e2) = log Σ exp λ(s1, s2) over the listed species pairs: ≥ each term, = it for one pair."""
    sp = S._substitutor("species")._sp
    table = {(a, b): lam for a, b, lam in S.element_lambda_table()}
    terms: dict[tuple[str, str], list[float]] = {}
    for pair, lam in sp._l.items():
        els = sorted(s.symbol for s in pair)
        terms.setdefault((f"{els[0]}0+", f"{els[-1]}0+"), []).append(lam)
    assert set(table) == set(terms)
    for key, lams in terms.items():
        assert table[key] >= max(lams) - 1e-12
        assert math.isclose(table[key], math.log(sum(math.exp(x) for x in lams)), rel_tol=1e-12, abs_tol=1e-12)
    assert any(len(v) > 1 for v in terms.values())       # some pairs really are sums


def test_ionic_template_uses_species_table_and_stays_charge_balanced():
    pbs = rocksalt("Pb", "S", 5.9)
    assert S.ionic_species(pbs.composition) == {"Pb": Species("Pb", 2), "S": Species("S", -2)}
    subs = S.substitutions(pbs)
    assert subs and all(table == "species" for _, _, table in subs)
    sp = S._substitutor("species")._sp
    for mapping, p, _ in subs:
        assert mapping and all(k != v for k, v in mapping.items())           # never the identity
        assert p > S.THRESHOLD
    # Pb2+ → Sn2+ is a classic substitution: present, with pymatgen's p(Sn2+|Pb2+) p(S2-|S2-)
    p_sn = [p for m, p, _ in subs if m == {"Pb": "Sn"}]
    assert len(p_sn) == 1
    assert math.isclose(p_sn[0], sp.cond_prob(Species("Sn", 2), Species("Pb", 2)) *
                        sp.cond_prob(Species("S", -2), Species("S", -2)), rel_tol=1e-9)
    # the same set as pymatgen's own charge-balanced route (pred_from_comp) less identity and merges
    ref = set()
    for pred in S._substitutor("species").pred_from_comp(Composition({Species("Pb", 2): 1, Species("S", -2): 1})):
        m = {k.symbol: v.symbol for k, v in pred["substitutions"].items()}
        if len(set(m.values())) == 2 and m != {"Pb": "Pb", "S": "S"}:
            ref.add(tuple(sorted((k, v) for k, v in m.items() if k != v)))
    assert {tuple(sorted(m.items())) for m, _, _ in subs} == ref


def test_intermetallic_template_uses_element_table():
    assert S.ionic_species(Composition("TiNi")) is None        # no formal oxidation states
    subs = S.substitutions(cscl("Ti", "Ni"))
    assert subs and {t for _, _, t in subs} == {"element"}
    assert all(len(set(m.values())) == len(m) for m, _, _ in subs)


def test_propose_skips_templates_and_duplicates_and_is_seeded():
    pbte, snte = rocksalt("Pb", "Te"), rocksalt("Sn", "Te", 6.3)
    templates = [("PbTe", pbte), ("SnTe", snte)]
    a, info = S.propose(templates, 12, seed=1)
    b, _ = S.propose(templates, 12, seed=1)
    assert len(a) == 12
    assert [c.structure.composition.reduced_formula for c in a] == [c.structure.composition.reduced_formula for c in b]
    # PbTe → SnTe (and back) are the templates themselves: skipped, not proposed
    assert info["skipped_identical"] >= 2
    m = generation_matcher()
    for c in a:
        assert not any(m.fit(c.structure, t) for _, t in templates)
        assert c.structure.composition == _substituted(dict(templates)[c.template], c.substitution)
        assert np.allclose(c.structure.frac_coords, dict(templates)[c.template].frac_coords)
    formulas = [c.structure.composition.reduced_formula for c in a]
    assert len(set(formulas)) == len(formulas)        # rock salts of one formula would be duplicates
    # round robin: the first two candidates are each template's most probable substitution
    best = {tid: max(S.substitutions(s), key=lambda x: x[1]) for tid, s in templates}
    firsts = {c.template: c for c in a[:2]}
    assert set(firsts) == {"PbTe", "SnTe"}
    for tid, c in firsts.items():
        if best[tid][0] not in ({"Pb": "Sn"}, {"Sn": "Pb"}):
            assert c.substitution == best[tid][0]


def _substituted(s: Structure, mapping: dict[str, str]) -> Composition:
    return Composition({mapping.get(el.symbol, el.symbol): n for el, n in s.composition.items()})


def test_propose_returns_fewer_when_the_pool_runs_dry():
    out, info = S.propose([("PbTe", rocksalt("Pb", "Te"))], 10_000, seed=0, threshold=0.01)
    assert 0 < len(out) == info["pool"] - info["skipped_identical"] < 10_000


@pytest.mark.parametrize("num", [0, 1])
def test_propose_small_counts(num):
    out, _ = S.propose([("PbTe", rocksalt("Pb", "Te"))], num, seed=0)
    assert len(out) == num

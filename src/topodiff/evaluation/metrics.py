"""Generation and CSP metrics with the CDVAE / DiffCSP / MatterGen definitions (DESIGN §4).

* structural validity — every interatomic distance under periodic boundary conditions (periodic
  images of the same atom included) > 0.5 Å and cell volume > 0.1 Å³ (CDVAE ``structure_validity``);
* compositional validity — SMACT charge balance with the Pauling electronegativity test; single
  elements and all-metal alloys count as valid (CDVAE ``smact_validity``);
* uniqueness — number of StructureMatcher classes / number of structures (ltol 0.2, stol 0.3,
  angle_tol 5°);
* novelty — fraction of structures with no StructureMatcher match in a reference set;
* COV-R / COV-P — CDVAE ``compute_cov``: a reference crystal is *recalled* when some generated
  crystal is within ``struct_cutoff`` in structure-fingerprint distance **and** within
  ``comp_cutoff`` in (standardised) composition-fingerprint distance; precision is the same
  from the generated side;
* Wasserstein distances of density (g/cm³) and of the number of distinct elements;
* CSP match rate and RMSE (DiffCSP ``RecEval``: StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3),
  RMSE = pymatgen ``get_rms_dist`` normalised by ``(V/N)^(1/3)``, averaged over matches).
"""
from __future__ import annotations

import itertools
from collections import defaultdict
from functools import lru_cache
from math import gcd
from typing import Iterable, Sequence

import numpy as np
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Composition, Structure

MIN_DISTANCE = 0.5   # Å
MIN_VOLUME = 0.1     # Å³

# CDVAE scripts/compute_metrics.py, COV_Cutoffs (struct: fingerprint distance, comp: standardised
# Magpie distance) per data set.
COV_CUTOFFS: dict[str, dict[str, float]] = {
    "mp20": {"struct": 0.4, "comp": 10.0},
    "carbon": {"struct": 0.2, "comp": 4.0},
    "perovskite": {"struct": 0.2, "comp": 4.0},
}


def generation_matcher() -> StructureMatcher:
    """StructureMatcher with the uniqueness/novelty tolerances of CDVAE/MatterGen."""
    return StructureMatcher(ltol=0.2, stol=0.3, angle_tol=5)


def csp_matcher() -> StructureMatcher:
    """StructureMatcher with DiffCSP's CSP tolerances."""
    return StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)


# --------------------------------------------------------------------------------------------
# validity
# --------------------------------------------------------------------------------------------
def min_distance(structure: Structure, cutoff: float = MIN_DISTANCE) -> float:
    """Shortest interatomic distance under PBC (Å), periodic self-images included.

    Returns ``inf`` when no pair is closer than ``cutoff`` (only distances below the cutoff are
    searched, with the vesin cell-list neighbour search, so this is fast for any cell).
    """
    if len(structure) == 0:
        return float("inf")
    from vesin import NeighborList

    nl = NeighborList(cutoff=cutoff, full_list=False)
    (d,) = nl.compute(points=structure.cart_coords, box=structure.lattice.matrix, periodic=True,
                      quantities="d")
    return float(d.min()) if len(d) else float("inf")


def structure_valid(structure: Structure, *, cutoff: float = MIN_DISTANCE,
                    min_volume: float = MIN_VOLUME) -> bool:
    """CDVAE structural validity: all distances > ``cutoff`` Å and volume > ``min_volume`` Å³."""
    vol = float(structure.volume)
    if not np.isfinite(vol) or vol <= min_volume or len(structure) == 0:
        return False
    return min_distance(structure, cutoff) > cutoff


@lru_cache(maxsize=65536)
def _smact_valid(symbols: tuple[str, ...], counts: tuple[int, ...]) -> bool:
    import smact
    from smact.screening import pauling_test

    if len(set(symbols)) == 1:
        return True
    if all(s in smact.metals for s in symbols):          # alloys are valid (include_alloys=True)
        return True
    space = smact.element_dictionary(symbols)
    elems = [space[s] for s in symbols]
    eneg = [e.pauling_eneg for e in elems]
    ox_lists = [list(e.oxidation_states or ()) for e in elems]  # None for elements SMACT gives none (noble gases)
    if any(len(o) == 0 for o in ox_lists):
        return False
    # All oxidation-state combinations at once; charge neutral when Σ ox_i n_i = 0.
    grid = np.array(list(itertools.product(*ox_lists)), dtype=np.int64)   # [n_comb, n_el]
    neutral = grid[grid @ np.asarray(counts, dtype=np.int64) == 0]
    for ox in neutral:
        try:
            if pauling_test(tuple(int(x) for x in ox), eneg):
                return True
        except TypeError:   # missing electronegativity: CDVAE counts it as passing
            return True
    return False


def composition_valid(composition: Composition) -> bool:
    """CDVAE ``smact_validity`` (charge balance + Pauling test) of a composition."""
    el_amt = composition.element_composition.get_el_amt_dict()
    symbols = tuple(sorted(el_amt))
    amounts = [el_amt[s] for s in symbols]
    if any(abs(a - round(a)) > 1e-6 for a in amounts):
        return False  # partial occupancy: no integer formula to balance
    ints = [int(round(a)) for a in amounts]
    g = 0
    for a in ints:
        g = gcd(g, a)
    return _smact_valid(symbols, tuple(a // max(g, 1) for a in ints))


# --------------------------------------------------------------------------------------------
# uniqueness and novelty
# --------------------------------------------------------------------------------------------
def _by_formula(structures: Iterable[Structure]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(structures):
        groups[s.composition.reduced_formula].append(i)
    return groups


def unique_labels(structures: Sequence[Structure], matcher: StructureMatcher | None = None) -> np.ndarray:
    """Class label per structure, ``[n]``: equal labels ⇔ StructureMatcher-equivalent.

    Structures are grouped by reduced formula first (a match requires the same formula), so the
    matcher only runs inside each group. Labels are the index of the first member of the class.
    """
    matcher = matcher or generation_matcher()
    labels = np.arange(len(structures))
    for idx in _by_formula(structures).values():
        reps: list[int] = []
        for i in idx:
            for r in reps:
                if matcher.fit(structures[r], structures[i]):
                    labels[i] = r
                    break
            else:
                reps.append(i)
    return labels


def uniqueness(structures: Sequence[Structure], matcher: StructureMatcher | None = None) -> float:
    """Fraction of distinct structures: number of classes / number of structures."""
    if not structures:
        return float("nan")
    labels = unique_labels(structures, matcher)
    return len(np.unique(labels)) / len(structures)


def novel_mask(structures: Sequence[Structure], reference: Sequence[Structure],
               matcher: StructureMatcher | None = None) -> np.ndarray:
    """``[n]`` bool: True where a structure matches no reference structure (same formula first)."""
    matcher = matcher or generation_matcher()
    ref_groups = _by_formula(reference)
    out = np.ones(len(structures), dtype=bool)
    for i, s in enumerate(structures):
        for j in ref_groups.get(s.composition.reduced_formula, []):
            if matcher.fit(s, reference[j]):
                out[i] = False
                break
    return out


def novelty(structures: Sequence[Structure], reference: Sequence[Structure],
            matcher: StructureMatcher | None = None) -> float:
    """Fraction of structures not found in the reference set."""
    if not structures:
        return float("nan")
    return float(novel_mask(structures, reference, matcher).mean())


# --------------------------------------------------------------------------------------------
# distribution metrics
# --------------------------------------------------------------------------------------------
def densities(structures: Sequence[Structure]) -> np.ndarray:
    """Mass densities ``[n]`` in g/cm³."""
    return np.array([float(s.density) for s in structures], dtype=np.float64)


def num_elements(structures: Sequence[Structure]) -> np.ndarray:
    """Number of distinct elements per structure, ``[n]``."""
    return np.array([len(s.composition.elements) for s in structures], dtype=np.float64)


def wdist_density(structures: Sequence[Structure], reference: Sequence[Structure]) -> float:
    """1D Wasserstein distance between density distributions (g/cm³)."""
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(densities(structures), densities(reference)))


def wdist_num_elems(structures: Sequence[Structure], reference: Sequence[Structure]) -> float:
    """1D Wasserstein distance between the distributions of the number of distinct elements."""
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(num_elements(structures), num_elements(reference)))


def coverage(gen_struct_fp: np.ndarray, gen_comp_fp: np.ndarray, ref_struct_fp: np.ndarray,
             ref_comp_fp: np.ndarray, *, struct_cutoff: float, comp_cutoff: float,
             num_generated: int | None = None,
             scaler: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[float, float]:
    """COV-R and COV-P (CDVAE ``compute_cov``).

    Parameters
    ----------
    gen_struct_fp, ref_struct_fp : ``[n_gen, d_s]``, ``[n_ref, d_s]`` structure fingerprints.
    gen_comp_fp, ref_comp_fp : ``[n_gen, d_c]``, ``[n_ref, d_c]`` composition fingerprints, raw;
        both are standardised with ``scaler = (mean, std)`` (CDVAE: fixed MP-20 statistics;
        default here: the reference set's own statistics).
    num_generated : denominator of COV-P (CDVAE divides by all generated crystals, valid or not).

    Returns
    -------
    (cov_recall, cov_precision) in [0, 1].
    """
    from scipy.spatial.distance import cdist

    if len(gen_struct_fp) == 0 or len(ref_struct_fp) == 0:
        return 0.0, 0.0
    if scaler is None:
        mu, sd = ref_comp_fp.mean(axis=0), ref_comp_fp.std(axis=0)
    else:
        mu, sd = scaler
    sd = np.where(np.asarray(sd) > 1e-12, sd, 1.0)
    g = (gen_comp_fp - mu) / sd
    r = (ref_comp_fp - mu) / sd
    d_struct = cdist(gen_struct_fp, ref_struct_fp)   # [n_gen, n_ref]
    d_comp = cdist(g, r)
    close = (d_struct <= struct_cutoff) & (d_comp <= comp_cutoff)
    recall = float(close.any(axis=0).mean())
    n_gen = num_generated if num_generated is not None else len(gen_struct_fp)
    precision = float(close.any(axis=1).sum() / max(n_gen, 1))
    return recall, precision


# --------------------------------------------------------------------------------------------
# crystal structure prediction
# --------------------------------------------------------------------------------------------
def csp_rms(pred: Structure | None, ref: Structure, matcher: StructureMatcher | None = None, *,
            require_valid: bool = True) -> float | None:
    """Normalised RMS distance of one CSP prediction to its reference (``get_rms_dist``, DiffCSP);
    None when it does not match, is missing, or (with ``require_valid``) is not a valid crystal."""
    if pred is None:
        return None
    if require_valid and not (structure_valid(pred) and composition_valid(pred.composition)):
        return None
    try:
        res = (matcher or csp_matcher()).get_rms_dist(pred, ref)
    except Exception:  # pymatgen fails on degenerate lattices: a miss, as in DiffCSP
        return None
    return None if res is None else float(res[0])


def csp_match_rate(pred: Sequence[Structure | None], ref: Sequence[Structure], *,
                   require_valid: bool = True) -> tuple[float, float]:
    """DiffCSP match rate and RMSE of predicted vs reference structures (paired by index).

    A pair counts as matched when ``StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)`` finds a
    match; with ``require_valid`` a prediction must also be structurally and compositionally
    valid (DiffCSP's ``Crystal.valid``). RMSE is the mean over matches of pymatgen's
    ``get_rms_dist`` (normalised by ``(V/N)^(1/3)``); NaN when nothing matched.
    ``None`` predictions (failed samples) count as misses.
    """
    if len(pred) != len(ref):
        from topodiff.errors import TopodiffInputError

        raise TopodiffInputError(f"csp_match_rate: {len(pred)} predictions but {len(ref)} references")
    if not ref:
        return float("nan"), float("nan")
    matcher = csp_matcher()
    rms = [d for d in (csp_rms(p, r, matcher, require_valid=require_valid) for p, r in zip(pred, ref)) if d is not None]
    rate = len(rms) / len(ref)
    return rate, (float(np.mean(rms)) if rms else float("nan"))

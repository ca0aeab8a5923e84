"""The judging stages of ``evaluate``: energies (CHGNet, relaxed or single point) → formation energy
and energy above the DFT hull; novelty against the index of known crystals (and ``--reference``);
the learned topology judge. Each stage fills per-crystal rows in place and returns its summary."""
from __future__ import annotations

import sys
from collections import Counter
from typing import Any, Callable, Sequence

import numpy as np
from pymatgen.core import Structure

from topodiff.evaluation.hull import STABLE_THRESHOLD, evaluate_energies, sun_counts

TOPOLOGICAL_CLASSES = ("ti", "tci", "semimetal")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def stats(x: Sequence[float | None]) -> dict[str, float | int] | None:
    """mean / median / min / max / count of the finite values (None when there are none)."""
    a = np.array([v for v in x if v is not None and np.isfinite(v)], dtype=float)
    if a.size == 0:
        return None
    return {"mean": float(a.mean()), "median": float(np.median(a)), "min": float(a.min()),
            "max": float(a.max()), "count": int(a.size)}


def energy_stage(structs: Sequence[Structure | None], valid: Sequence[bool], rows: list[dict[str, Any]], *,
                 relax: bool, relax_fn: Callable[..., list] | None = None, relax_fmax: float = 0.1,
                 relax_steps: int = 300, progress: bool = True) -> tuple[list[Structure | None], dict[str, Any]]:
    """CHGNet energies per crystal (eV/atom): relaxed with ``relax``, else single points of the
    structurally valid input. Returns the relaxed structures (their symmetrised standard cells,
    :attr:`~topodiff.evaluation.relax.RelaxResult.kept`; None where not relaxed) and summary keys."""
    from topodiff.evaluation.relax import relax_structures, single_point_energies

    n = len(structs)
    relaxed: list[Structure | None] = [None] * n
    summary: dict[str, Any] = {}
    if relax:
        results = (relax_fn or relax_structures)(structs, fmax=relax_fmax, steps=relax_steps, progress=progress)
        for i, r in enumerate(results):
            rows[i].update(r.as_row())
            relaxed[i] = r.kept          # the symmetrised standard cell of the relaxed crystal
            rows[i]["energy_source"] = "CHGNet, relaxed" if rows[i].get("energy_final") is not None else None
        rm = stats([r.get("rmsd_to_relaxed") for r in rows])
        n_relaxed = sum(1 for s in relaxed if s is not None)
        summary.update(rmsd_to_relaxed=rm["mean"] if rm else None, rmsd_to_relaxed_stats=rm,
                       rmsd_match_fraction=float((rm["count"] if rm else 0) / n_relaxed) if n_relaxed else None,
                       displacement_rmsd=stats([r.get("displacement_rmsd") for r in rows]),
                       relax_converged_fraction=float(np.mean([bool(r.get("relax_converged")) for r in rows])),
                       relax_failed=int(sum(1 for r in rows if r.get("relax_error"))))
    else:
        idx = [i for i in range(n) if structs[i] is not None and valid[i]]
        e = single_point_energies([structs[i] for i in idx]) if idx else np.array([])
        for k, i in enumerate(idx):
            if np.isfinite(e[k]):
                rows[i].update(energy_final=float(e[k]), energy_source="CHGNet single point, unrelaxed")
    summary["energy_per_atom"] = stats([r.get("energy_final") for r in rows])
    return relaxed, summary


def hull_stage(structs: Sequence[Structure | None], relaxed: Sequence[Structure | None], valid: Sequence[bool],
               rows: list[dict[str, Any]]) -> np.ndarray:
    """Formation energy and energy above the DFT hull per row; returns ``[n]`` e_above_hull (NaN unknown)."""
    comps = [(relaxed[i] or structs[i]).composition if (relaxed[i] or structs[i]) is not None else None
             for i in range(len(rows))]
    results = evaluate_energies(comps, [r.get("energy_final") for r in rows])
    eh = np.full(len(rows), np.nan)
    for i, (r, res) in enumerate(zip(rows, results)):
        r.update(res.as_row())
        if res.e_above_hull is not None:
            eh[i] = res.e_above_hull
        elif structs[i] is not None and not valid[i] and r.get("energy_final") is None:
            r["hull_note"] = "structurally invalid: no energy computed"
    return eh


def hull_summary(eh: np.ndarray, rows: Sequence[dict[str, Any]], unique: np.ndarray, novel: np.ndarray) -> dict[str, Any]:
    """Coverage of the DFT hull, e_above_hull statistics and S.U.N. counts (unknown stays unknown)."""
    known = np.isfinite(eh)
    reasons = Counter(r.get("hull_note") or "unknown" for r, k in zip(rows, known) if not k)
    elements_only = sum(1 for r, k in zip(rows, known) if k and not r.get("hull_num_references"))
    refs = [r["hull_num_references"] for r, k in zip(rows, known) if k]
    out: dict[str, Any] = {
        "hull": {"reference": "Materials Project DFT formation energies (46,918 entries, MP2020-corrected)",
                 "num_with_e_above_hull": int(known.sum()), "num_unknown": int((~known).sum()),
                 "unknown_reasons": dict(reasons), "num_elements_only_systems": int(elements_only),
                 "median_num_references": float(np.median(refs)) if refs else None},
        "e_above_hull": stats(list(eh)),
        "sun": sun_counts(eh, unique, novel, threshold=STABLE_THRESHOLD)}
    if out["e_above_hull"] is not None:
        out["e_above_hull"]["fraction_stable"] = float((eh[known] <= STABLE_THRESHOLD).mean())
        out["e_above_hull"]["fraction_on_or_below_hull"] = float((eh[known] <= 0).mean())
    return out


def novelty_stage(structs: Sequence[Structure | None], rows: list[dict[str, Any]],
                  not_in_reference: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Novelty against the shipped index of known crystals (and ``--reference`` when given)."""
    from topodiff.errors import TopodiffInputError
    from topodiff.evaluation.known import load_index

    n = len(structs)
    try:
        index = load_index()
    except TopodiffInputError as exc:   # never claim novelty without the index
        _log(f"novelty unknown: {exc}")
        for r in rows:
            r.update(novel=False, formula_novel=None, structure_novel=None, novelty_note="known-crystal index unavailable")
        return np.zeros(n, dtype=bool), {"novelty": None, "formula_novelty": None, "num_novel": 0,
                                         "num_formula_novel": 0, "num_novelty_unknown": n, "known_index": None}
    novel = np.zeros(n, dtype=bool)
    fnovel = np.zeros(n, dtype=bool)
    unknown = 0
    for i, s in enumerate(structs):
        if s is None:
            rows[i].update(novel=False, novelty_note="no structure")
            continue
        try:
            q = index.query(s)
        except Exception as exc:   # a fingerprint failure on a pathological cell: unknown, not novel
            rows[i].update(novel=False, formula_novel=None, structure_novel=None,
                           novelty_note=f"fingerprint failed: {type(exc).__name__}")
            unknown += 1
            continue
        in_ref = not_in_reference is not None and not not_in_reference[i]
        novel[i] = q.novel and not in_ref
        fnovel[i] = q.formula_novel
        unknown += q.structure_novel is None
        note = q.note if not in_ref else "matches a --reference crystal"
        rows[i].update(novel=bool(novel[i]), formula_novel=q.formula_novel, structure_novel=q.structure_novel,
                       known_match=q.match, novelty_note=note)
    summary = {"novelty": float(novel.sum() / n) if n else None,
               "formula_novelty": float(fnovel.sum() / n) if n else None,
               "num_novel": int(novel.sum()), "num_formula_novel": int(fnovel.sum()),
               "num_novelty_unknown": int(unknown),
               "known_index": {"crystals": len(index), "formulas": index.num_formulas,
                               "sources": index.sources}}
    return novel, summary


def judge_stage(structures: Sequence[Structure | None], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The learned topology judge (``topodiff.judge.judge_structures``) on every structure."""
    try:
        from topodiff.judge import judge_structures
    except ImportError as exc:
        _log(f"learned topology judge unavailable ({exc}): catalogue_class left empty")
        for r in rows:
            r.update(catalogue_class=None, p_topological=None, judge_note="learned judge not installed")
        return {"catalogue_class_counts": {}, "judge_available": False}
    idx = [i for i, s in enumerate(structures) if s is not None]
    try:
        verdicts = judge_structures([structures[i] for i in idx]) if idx else []
    except Exception as exc:   # the judge failing must not take the evaluation down
        _log(f"learned topology judge failed: {type(exc).__name__}: {exc}")
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        verdicts = [{"catalogue_class": None, "p_topological": None,
                     "judge_note": f"judge failed: {type(exc).__name__}: {first}"}] * len(idx)
    for r in rows:
        r.update(catalogue_class=None, p_topological=None, judge_note="no structure")
    for i, v in zip(idx, verdicts):
        p = v.get("p_topological")
        rows[i].update(catalogue_class=v.get("catalogue_class"), p_topological=None if p is None else float(p),
                       judge_note=v.get("judge_note"))
    counts = Counter(r["catalogue_class"] or "unknown" for r in rows)
    return {"catalogue_class_counts": dict(sorted(counts.items())), "judge_available": True}


def topological(row: dict[str, Any]) -> bool | None:
    """The learned judge's verdict: True for ti / tci / semimetal, None when it gave none."""
    cls = row.get("catalogue_class")
    return None if cls is None else cls in TOPOLOGICAL_CLASSES


HIT_CLASSES = ("ti", "tci")


def discovery_hit(row: dict[str, Any]) -> bool:
    """A discovery hit (issue #14): formula-novel (unknown is not novel) ∧ e_above_hull ≤ 0.1 eV/atom
    on the DFT hull (unknown is not stable) ∧ ``ti``/``tci`` by the learned judge."""
    eh = row.get("e_above_hull")
    stable = eh is not None and bool(np.isfinite(eh)) and eh <= STABLE_THRESHOLD
    return bool(row.get("formula_novel") or False) and stable and row.get("catalogue_class") in HIT_CLASSES


def discovery_counts(eh: np.ndarray, rows: Sequence[dict[str, Any]], unique: np.ndarray,
                     novel: np.ndarray) -> dict[str, int]:
    """Crystals that are S.U.N. and topological by the learned judge / by the Slater-Koster screen."""
    stable = np.isfinite(eh) & (np.nan_to_num(eh, nan=np.inf) <= STABLE_THRESHOLD)
    sun = stable & unique & novel
    learned = np.array([topological(r) is True for r in rows], dtype=bool)
    sk = np.array([r.get("topo_class") in ("strong_ti", "weak_ti") for r in rows], dtype=bool)
    return {"num_sun_topological_learned": int((sun & learned).sum()),
            "num_sun_topological_slater_koster": int((sun & sk).sum()),
            "num_sun_topological_both": int((sun & learned & sk).sum()),
            "num_hits": int(sum(discovery_hit(r) for r in rows))}

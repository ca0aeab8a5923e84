"""The terminal summary of an evaluation: one metric per line, unknown values said as unknown."""
from __future__ import annotations

from typing import Any


def _pct(x: float | None) -> str:
    return "unknown" if x is None else f"{100 * x:.1f} %"


def _novelty_lines(s: dict[str, Any]) -> list[str]:
    if "novelty" not in s:
        return []
    idx = s.get("known_index")
    if not idx:
        return ["novel                 unknown (the index of known crystals is unavailable)"]
    out = [f"novel                 {_pct(s['novelty'])} ({s.get('num_novel', 0)} crystals; "
           f"{s.get('num_formula_novel', 0)} with a new formula; {s.get('num_novelty_unknown', 0)} unknown) "
           f"vs {idx.get('crystals', 0):,} known crystals / {idx.get('formulas', 0):,} formulas"]
    if "novelty_vs_reference" in s:
        out.append(f"novelty vs reference  {_pct(s['novelty_vs_reference'])} (--reference, {s.get('num_reference')} crystals)")
    return out


def _hull_lines(s: dict[str, Any]) -> list[str]:
    h = s.get("hull")
    if not h:
        return []
    n = s.get("num_structures", 0)
    reasons = "; ".join(f"{k}: {v}" for k, v in sorted(h.get("unknown_reasons", {}).items()))
    out = [f"DFT hull coverage     {h['num_with_e_above_hull']}/{n} with e_above_hull"
           + (f", {h['num_unknown']} unknown ({reasons})" if h["num_unknown"] else "")
           + (f"; {h['num_elements_only_systems']} in systems without a known DFT compound"
              if h.get("num_elements_only_systems") else "")]
    eh, sun = s.get("e_above_hull"), s.get("sun") or {}
    if eh:
        out.append(f"E above DFT hull      median {eh['median']:.3f} eV/atom; stable (≤ {sun.get('threshold_ev', 0.1)}): "
                   f"{sun.get('num_stable', 0)}, on or below the hull (≤ 0): {sun.get('num_on_or_below_hull', 0)}")
    else:
        out.append("E above DFT hull      unknown for every crystal")
    if sun:
        rate = "unknown" if sun.get("sun_rate") is None else f"{100 * sun['sun_rate']:.1f} %"
        out.append(f"S.U.N.                {sun['num_sun']} ({rate}) = stable {sun['num_stable']} ∧ unique "
                   f"{sun.get('num_unique', '?')} ∧ novel {sun.get('num_novel', '?')}"
                   + (f"; stability unknown for {sun['num_stability_unknown']}" if sun.get("num_stability_unknown") else ""))
    return out


def _topology_lines(s: dict[str, Any]) -> list[str]:
    out = []
    if s.get("topo_class_counts"):
        out.append("topology (SK screen)  " + ", ".join(f"{k}: {v}" for k, v in sorted(s["topo_class_counts"].items())))
    if s.get("judge_available"):
        out.append("topology (learned)    " + ", ".join(f"{k}: {v}" for k, v in s.get("catalogue_class_counts", {}).items()))
    elif "judge_available" in s:
        out.append("topology (learned)    unknown: the learned judge is not installed")
    d = s.get("discovery")
    if d:
        out.append(f"S.U.N. ∧ topological  {d['num_sun_topological_learned']} (learned judge), "
                   f"{d['num_sun_topological_slater_koster']} (SK screen), {d['num_sun_topological_both']} (both)")
        if "num_hits" in d:
            out.append(f"discovery hits        {d['num_hits']} (formula-novel ∧ E hull ≤ 0.1 eV/atom ∧ learned ti/tci)")
    return out


def summary_lines(s: dict[str, Any]) -> list[str]:
    """Compact human-readable summary of an evaluation (one metric per line; unknown said as such)."""
    def pct(k: str) -> str:
        return _pct(s.get(k))

    lines = [f"structures            {s.get('num_structures', 0)} ({s.get('num_readable', 0)} readable)",
             f"structural validity   {pct('structural_validity')}",
             f"compositional valid.  {pct('compositional_validity')}",
             f"uniqueness            {pct('uniqueness')}",
             f"symmetric (SG > P1)   {pct('symmetric_fraction')}"]
    lines += _novelty_lines(s)
    if s.get("cov_recall") is not None:
        lines.append(f"COV-R / COV-P         {pct('cov_recall')} / {pct('cov_precision')}")
    if s.get("wdist_density") is not None:
        lines.append(f"W1 density / #elem    {s['wdist_density']:.3f} g/cm3 / {s['wdist_num_elems']:.3f}")
    if "csp_match_rate" in s:
        rmse = "-" if s.get("csp_rmse") is None else f"{s['csp_rmse']:.4f}"
        lines.append(f"CSP match / RMSE      {pct('csp_match_rate')} / {rmse} "
                     f"({s['csp_num_compositions']} compositions, {s['csp_samples_per_composition']:g} samples each)")
    if "csp_relaxed_match_rate" in s:
        rmse = "-" if s.get("csp_relaxed_rmse") is None else f"{s['csp_relaxed_rmse']:.4f}"
        lines.append(f"  after relaxation    {pct('csp_relaxed_match_rate')} / {rmse}")
    if s.get("rmsd_to_relaxed") is not None:
        lines.append(f"RMSD to relaxed       {s['rmsd_to_relaxed']:.3f} Å (mean)")
    return lines + _hull_lines(s) + _topology_lines(s)


def candidate_lines(cands: list[dict[str, Any]]) -> list[str]:
    """One line per top candidate: formula, novelty, DFT hull, both topology verdicts (the SK one with
    its indirect and direct gaps and its Z2 with the basis)."""
    from topodiff.evaluation.screen import gap_text, z2_text

    out = []
    for rank, c in enumerate(cands, 1):
        eh = "E_hull unknown" if c.get("e_above_hull") is None else f"E_hull {c['e_above_hull']:+.3f} eV/atom" + (
            " (below the DFT hull: DFT to confirm)" if c["e_above_hull"] < 0 and c.get("hull_note") else "")
        nov = ("novel" if c.get("novel") else f"known ({c['known_match']})" if c.get("known_match")
               else "novelty unknown (formula known)" if c.get("formula_novel") is False else "not novel")
        p = c.get("p_topological")
        learned = f"{c.get('catalogue_class') or 'unknown'}" + (f" p={p:.2f}" if p is not None else "")
        sk = ", ".join(x for x in (c.get("topo_class") or "unscreened", gap_text(c), z2_text(c)) if x)
        out.append(f"#{rank} {'✔' if c.get('novel_stable_topological') else ' '} {c.get('formula')} "
                   f"(SG {c.get('space_group') or '?'}): {nov}, {eh}, SK {sk}, learned {learned}")
    return out

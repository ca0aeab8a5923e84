"""The discovery report: one self-contained ``report.html`` (PNG figures embedded as base64 data
URIs, no external resources, opens offline) summarising an evaluated set of crystals.

Input is a directory holding ``metrics.json`` + ``structures.csv`` (written by ``topodiff
evaluate`` / ``pipeline``); a directory of structures without them is evaluated first (no
relaxation) into ``<DIR>_eval``. Figures: element and space-group histograms, density and number of
elements vs the reference, RMSD, energy above the DFT hull, both topology verdicts (Slater-Koster
screen and the learned judge), and a table of the top candidates (novel ∧ stable ∧ topological
first) with their Slater-Koster tight-binding band structures. Unknown values are shown as unknown.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from topodiff.crystal.symmetry import ANGLE_TOLERANCE, SYMPREC
from topodiff.errors import TopodiffInputError
from topodiff.evaluation.judging import discovery_hit
from topodiff.evaluation.summary import summary_lines

__all__ = ["build_report", "rank_candidates", "read_rows", "summary_lines"]

NONTRIVIAL = ("strong_ti", "weak_ti")
BOOL_COLS = ("structure_valid", "composition_valid", "valid", "unique", "novel", "formula_novel", "structure_novel",
             "relax_converged")
INT_COLS = ("index", "num_atoms", "num_elements", "space_group", "space_group_unrelaxed", "class_label", "relax_steps",
            "hull_num_references")
FLOAT_COLS = ("density", "volume", "min_distance", "energy_initial", "energy_final", "e_form", "e_above_hull",
              "rmsd_to_relaxed", "displacement_rmsd", "gap", "direct_gap", "p_topological")
JSON_COLS = ("z2", "z2_conventional")   # lists, written as JSON


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def read_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a ``structures.csv`` with numbers and booleans parsed (empty cell → None)."""
    rows = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            out: dict[str, Any] = {}
            for k, v in r.items():
                if v == "" or v is None:
                    out[k] = None
                elif k in BOOL_COLS:
                    out[k] = v == "True"
                elif k in INT_COLS:
                    out[k] = int(float(v))
                elif k in FLOAT_COLS:
                    out[k] = float(v)
                elif k in JSON_COLS:
                    out[k] = json.loads(v)
                else:
                    out[k] = v
            rows.append(out)
    return rows


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------
def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _fig(w: float = 5.0, h: float = 3.2):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(w, h))


def _bar(counts: Sequence[tuple[str, int]], title: str, xlabel: str) -> str:
    fig, ax = _fig(max(4.0, 0.28 * len(counts) + 1.5))
    ax.bar([c[0] for c in counts], [c[1] for c in counts], color="#4c72b0")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("crystals")
    ax.tick_params(axis="x", labelrotation=90 if len(counts) > 8 else 0, labelsize=8)
    return _png(fig)


def _hist_vs(gen: np.ndarray, ref: np.ndarray | None, title: str, xlabel: str, discrete: bool = False) -> str:
    fig, ax = _fig()
    data = [gen] + ([ref] if ref is not None and len(ref) else [])
    lo = min(float(np.min(d)) for d in data)
    hi = max(float(np.max(d)) for d in data)
    bins = np.arange(np.floor(lo) - 0.5, np.ceil(hi) + 1.5) if discrete else np.linspace(lo, hi + 1e-9, 30)
    ax.hist(gen, bins=bins, density=True, alpha=0.6, label=f"generated ({len(gen)})", color="#4c72b0")
    if ref is not None and len(ref):
        ax.hist(ref, bins=bins, density=True, alpha=0.5, label=f"reference ({len(ref)})", color="#dd8452")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("probability density")
    ax.legend(fontsize=8)
    return _png(fig)


# --------------------------------------------------------------------------------------------
# candidates
# --------------------------------------------------------------------------------------------
def is_topological(r: dict[str, Any]) -> bool:
    """The learned judge's verdict (ti / tci / semimetal); the Slater-Koster screen's where it gave none."""
    from topodiff.evaluation.judging import topological

    learned = topological(r)
    return learned if learned is not None else r.get("topo_class") in NONTRIVIAL


def is_discovery(r: dict[str, Any]) -> bool:
    """Novel ∧ stable (e_above_hull ≤ 0.1 eV/atom on the DFT hull) ∧ topological; unknown → False."""
    from topodiff.evaluation.hull import STABLE_THRESHOLD

    eh = r.get("e_above_hull")
    return bool(r.get("novel")) and eh is not None and eh <= STABLE_THRESHOLD and is_topological(r)


def rank_candidates(rows: list[dict[str, Any]], target: str | None = None, k: int = 5) -> list[dict[str, Any]]:
    """Top ``k`` valid, unique crystals: novel ∧ stable ∧ topological first (discovery hits,
    :func:`~topodiff.evaluation.judging.discovery_hit`, before the rest of them), then the target class
    (``topo_class`` or ``catalogue_class``; when given), then topological ones (higher
    ``p_topological`` first), then the lowest energy above the DFT hull (unknown last)."""
    def key(r: dict[str, Any]) -> tuple:
        match = target is not None and target in (r.get("topo_class"), r.get("catalogue_class"))
        eh = r.get("e_above_hull")
        stab = eh if eh is not None else np.inf      # unknown stability ranks after known
        return (not is_discovery(r), not discovery_hit(r), not match, not is_topological(r),
                -(r.get("p_topological") or 0.0), stab, r["index"])

    pool = [r for r in rows if r.get("valid") and r.get("unique", True)]
    return sorted(pool, key=key)[:k]


def _load_structures(summary: dict[str, Any], out_dir: Path) -> dict[int, Any]:
    """Structures by row index: relaxed ones when present, else the evaluated input."""
    found: dict[int, Any] = {}
    relaxed = out_dir / "relaxed.extxyz"
    if relaxed.exists():
        import ase.io
        from pymatgen.io.ase import AseAtomsAdaptor

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for atoms in ase.io.read(relaxed, index=":", format="extxyz"):
                if "index" in atoms.info:
                    found[int(atoms.info["index"])] = AseAtomsAdaptor.get_structure(atoms)
    src = None                                        # the input, found from the run directory first
    for cand in (summary.get("input_relative_to_output"), summary.get("input")):
        if cand and (out_dir / cand).exists():        # (an absolute path stays absolute under "/")
            src = out_dir / cand
            break
    if src is not None:
        from topodiff.evaluation.evaluate import load_entries

        try:
            for i, e in enumerate(load_entries(src)):
                if i not in found and e.structure is not None:
                    found[i] = e.structure
        except TopodiffInputError:
            pass
    return found


# --------------------------------------------------------------------------------------------
# the HTML
# --------------------------------------------------------------------------------------------
CSS = """body{font-family:system-ui,Helvetica,Arial,sans-serif;margin:24px;max-width:1200px;color:#222}
h1{font-size:22px}h2{font-size:17px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}
th{background:#f4f4f4}.grid{display:flex;flex-wrap:wrap;gap:12px}.grid img{border:1px solid #eee}
.warn{background:#fff4e5;border-left:4px solid #f0a030;padding:6px 10px;margin:4px 0;font-size:13px}
.mono{font-family:ui-monospace,monospace;font-size:12px}"""


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def _run_dir(d: Path, evaluate_if_missing: bool, messages: list[str]) -> Path:
    """The directory holding ``metrics.json``: ``d`` itself, or (a directory of structures) its
    evaluation in ``<d>_eval`` — never written into the input directory."""
    if (d / "metrics.json").exists() and (d / "structures.csv").exists() or not evaluate_if_missing:
        return d
    from topodiff.evaluation.evaluate import default_out_dir, evaluate_path
    from topodiff.io_utils import claim_output_dir, fingerprint

    od = default_out_dir(d)
    try:       # the same claim as `topodiff evaluate d` with default options
        fp = fingerprint(sources=[d], options={"relax": False, "dataset": None, "screen": True})
        claim_output_dir(od, job="evaluate", fingerprint=fp, resume=True)
        evaluate_path(d, out_dir=od, relax=False, progress=False)
    except TopodiffInputError as exc:
        messages.append(str(exc))
        return od if (od / "metrics.json").exists() else d
    return od


def _row_messages(rows: list[dict[str, Any]]) -> list[str]:
    messages = []
    for r in rows:
        if r.get("read_error"):   # later stages only repeat that the crystal is missing or invalid
            messages.append(f"{r.get('source')}: {r['read_error']}")
            continue
        for key, what in (("relax_error", "relax"), ("screen_error", "screen")):
            if r.get(key):
                messages.append(f"{r.get('source')}: {what}: {r[key]}")
        if r.get("structure_valid") is False and r.get("min_distance") is not None:
            messages.append(f"{r.get('source')}: atoms {r['min_distance']:.2f} Å apart (structurally invalid)")
    return messages


def _figures(ok: list[dict[str, Any]], summary: dict[str, Any]) -> list[tuple[str, str]]:
    figs: list[tuple[str, str]] = []
    el = Counter(e for r in ok for e in (r.get("elements") or "").split())
    figs.append(("Elements", _bar(el.most_common(30), "Elements (crystals containing each)", "element")))
    sg = Counter(str(r["space_group"]) for r in ok if r.get("space_group"))
    if sg:
        figs.append(("Space groups", _bar(sg.most_common(20), f"Space groups (spglib, {SYMPREC} Å, {ANGLE_TOLERANCE:g}°)",
                                          "space group")))
    refd = summary.get("reference_distributions") or {}
    dens = np.array([r["density"] for r in ok if r.get("density") is not None])
    if dens.size:
        rd = np.asarray(refd.get("density", []), dtype=float)
        figs.append(("Density", _hist_vs(dens, rd if rd.size else None, "Density", "g/cm³")))
    ne = np.array([r["num_elements"] for r in ok if r.get("num_elements") is not None], dtype=float)
    if ne.size:
        rn = np.asarray(refd.get("num_elements", []), dtype=float)
        figs.append(("#elements", _hist_vs(ne, rn if rn.size else None, "Number of elements", "distinct elements", True)))
    rm = np.array([r["displacement_rmsd"] for r in ok if r.get("displacement_rmsd") is not None])
    if rm.size:
        figs.append(("RMSD", _hist_vs(rm, None, "RMS displacement generated → relaxed (CHGNet)", "Å")))
    eh = np.array([r["e_above_hull"] for r in ok if r.get("e_above_hull") is not None])
    if eh.size:
        unknown = sum(1 for r in ok if r.get("e_above_hull") is None)
        figs.append(("E hull", _hist_vs(eh, None, f"Energy above the DFT hull (MP){f'; {unknown} unknown' if unknown else ''}",
                                        "eV/atom (CHGNet e_form vs MP DFT)")))
    tc = Counter(r.get("topo_class") or "unscreened" for r in ok)
    figs.append(("Topology SK", _bar(sorted(tc.items()), "Slater-Koster TB screen (topo_class)", "class")))
    if summary.get("judge_available"):
        cc = Counter(r.get("catalogue_class") or "unknown" for r in ok)
        figs.append(("Topology learned", _bar(sorted(cc.items()), "Learned judge (catalogue_class)", "class")))
    return figs


CAND_COLS = (("formula", "formula"), ("sg_text", "SG"), ("num_atoms", "atoms"), ("novel", "novel"),
             ("known_match", "known as"), ("e_above_hull", "E hull DFT (eV/at)"),
             ("hull_num_references", "DFT refs"), ("topo_class", "SK class"), ("z2_text", "Z2 (ν0;ν1ν2ν3) basis"),
             ("gap", "SK gap indirect (eV)"), ("direct_gap", "SK gap direct (eV)"),
             ("catalogue_class", "learned class"), ("p_topological", "p_topo"))


def _shown(r: dict[str, Any]) -> dict[str, Any]:
    """A candidate row with the derived display columns (space group with symbol, Z2 with its basis)."""
    from topodiff.evaluation.screen import z2_text

    sg = " ".join(str(x) for x in (r.get("space_group"), r.get("space_group_symbol")) if x) or None
    return {**r, "sg_text": sg, "z2_text": z2_text(r) or None}


def _hull_cell(r: dict[str, Any]) -> str:
    """The E-hull cell: the value (a marked one with its note when below the DFT hull), or why it is unknown."""
    if r.get("e_above_hull") is None:
        return _fmt(r.get("hull_note") or "unknown")
    if r["e_above_hull"] < 0 and r.get("hull_note"):
        return f'{_fmt(r["e_above_hull"])} <span title="{html.escape(r["hull_note"])}">⚠ below: DFT to confirm</span>'
    return _fmt(r["e_above_hull"])


def _candidates_html(cands: list[dict[str, Any]], structures: dict[int, Any], messages: list[str]) -> list[str]:
    from topodiff.evaluation.report_bands import band_png

    out = []
    for rank, r in enumerate(cands, 1):
        s = structures.get(r["index"])
        img, err = (band_png(s, f"#{rank} {r.get('formula')}", r.get("space_group")) if s is not None
                    else (None, "structure not found"))
        if err:
            messages.append(f"candidate {r.get('source')}: {err}")
        r = _shown(r)
        cells = "".join(f"<td>{_hull_cell(r) if c == 'e_above_hull' else _fmt(r.get(c))}</td>" for c, _ in CAND_COLS)
        flag = ("✔" if is_discovery(r) else "") + ("★" if discovery_hit(r) else "")
        pic = f'<img alt="bands {rank}" src="{img}" width="320">' if img else "–"
        out.append(f"<tr><td>{rank} {flag}</td>{cells}<td class='mono'>{html.escape(str(r.get('source')))}</td><td>{pic}</td></tr>")
    return out


NOTES = ("<h2>Notes</h2><p>Validity, uniqueness and coverage follow CDVAE/MatterGen definitions. <b>Novel</b>: "
         "not in the shipped index of known crystals (MP-20 subset, MPTS-52, MP-40, Perov-5, Carbon-24 and the "
         "formulas of 46,918 MP DFT entries; same reduced formula and a matching RDF fingerprint, or the formula and "
         "space group of a DFT topology-catalogue entry) nor in any --reference; a known formula whose MP entries "
         "are not all in the index leaves structure novelty unknown (not counted novel). "
         "<b>E hull</b>: CHGNet energy minus MP elemental references against the DFT convex hull of Materials "
         "Project formation energies (validated: docs/evaluation.md); stable means ≤ 0.1 eV/atom. "
         "<b>Topology</b>: the Slater-Koster screen (approximate tight binding; on MP crystals mostly a metal/insulator "
         "split) and the learned judge trained on DFT catalogues (Materiae, TQC) are both shown; ✔ marks novel ∧ "
         "stable ∧ topological (learned judge); ★ marks a discovery hit: formula-novel (no known crystal of that formula) ∧ stable ∧ "
         "ti/tci by the learned judge. Per-structure values: <span class='mono'>structures.csv</span>.</p>")


def build_report(directory: str | os.PathLike, *, top_k: int = 5, evaluate_if_missing: bool = True) -> tuple[Path, dict[str, Any]]:
    """Write ``report.html`` into the run directory; returns its path and the summary it shows.

    A directory of structures without ``metrics.json`` is evaluated first into ``<dir>_eval``
    (``evaluate_if_missing``) and the report written there. Problems with single crystals
    (unparseable file, overlapping atoms) appear as messages; a directory without any structure
    still yields a report that says so.
    """
    d = Path(directory)
    if not d.exists():
        raise TopodiffInputError(f"no such directory: {d}")
    if not d.is_dir():
        raise TopodiffInputError(f"{d} is not a directory")
    messages: list[str] = []
    d = _run_dir(d, evaluate_if_missing, messages)
    metrics, table = d / "metrics.json", d / "structures.csv"
    try:
        summary: dict[str, Any] = json.loads(metrics.read_text()) if metrics.exists() else {}
    except ValueError:
        raise TopodiffInputError(f"{metrics}: not valid JSON (truncated?); rerun `topodiff evaluate`") from None
    rows = read_rows(table) if table.exists() else []
    meta_path = d / "metadata.json"
    for cand in (summary.get("input_relative_to_output"), summary.get("input")):
        if not meta_path.exists() and cand and (d / cand / "metadata.json").exists():
            meta_path = d / cand / "metadata.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    conditions = meta.get("conditions") or {}
    target = conditions.get("topo_class") or conditions.get("catalogue_class") if isinstance(conditions, dict) else None
    messages += _row_messages(rows)
    if not rows and not messages:
        messages.append(f"{d}: no structures found")
    ok = [r for r in rows if r.get("formula")]
    figs = _figures(ok, summary) if ok else []
    cands = rank_candidates(rows, target, top_k)
    cand_html = _candidates_html(cands, _load_structures(summary, d) if cands else {}, messages)

    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>topodiff report</title><style>{CSS}</style></head><body>",
             f"<h1>topodiff discovery report</h1><p class='mono'>{html.escape(str(d.resolve()))}</p>"]
    if meta:
        parts.append("<h2>Generation</h2><table>" + "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{_fmt(json.dumps(v) if isinstance(v, (dict, list)) else v)}</td></tr>"
            for k, v in meta.items()) + "</table>")
    parts.append("<h2>Summary</h2><pre class='mono'>" + html.escape("\n".join(summary_lines(summary))) + "</pre>")
    if messages:
        shown = messages[:50]
        more = f"<div class='warn'>… and {len(messages) - 50} more</div>" if len(messages) > 50 else ""
        parts.append("<h2>Messages</h2>" + "".join(f"<div class='warn'>{html.escape(m)}</div>" for m in shown) + more)
    if figs:
        parts.append("<h2>Distributions</h2><div class='grid'>" + "".join(
            f'<img alt="{html.escape(t)}" src="{u}">' for t, u in figs) + "</div>")
    if cand_html:
        head = "".join(f"<th>{h}</th>" for h in ("#", *(h for _, h in CAND_COLS), "source", "TB bands"))
        crit = (f", then target class <b>{html.escape(target)}</b>" if target else "")
        parts.append(f"<h2>Top candidates</h2><p>Ranked: novel ∧ stable ∧ topological first (✔; discovery hits ★ before the rest){crit}, then "
                     "topological, then energy above the DFT hull. Bands: spinful Slater-Koster sp³ model with "
                     "atomic SOC (approximate), along seekpath's path for the space group shown (one analysis per "
                     f"crystal: spglib, {SYMPREC} Å, {ANGLE_TOLERANCE:g}°). SK gaps on the screen's k-mesh. Z2 weak "
                     "indices in the standard conventional cell (conv.) or the screened cell.</p><table><tr>" + head + "</tr>" + "".join(cand_html) + "</table>")
    from topodiff.evaluation.report_dft import dft_section
    from topodiff.io_utils import atomic_write_text

    parts.append(dft_section(d, rows) + NOTES + "</body></html>")   # "" without dft/comparison.json

    out = atomic_write_text(d / "report.html", "".join(parts))
    summary["messages"] = messages
    return out, summary

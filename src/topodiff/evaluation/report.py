"""The discovery report: one self-contained ``report.html`` (PNG figures embedded as base64 data
URIs, no external resources, opens offline) summarising an evaluated set of crystals.

Input is a directory holding ``metrics.json`` + ``structures.csv`` (written by ``topodiff
evaluate`` / ``pipeline``); a directory of structures without them is evaluated first (no
relaxation). Figures: element and space-group histograms, density and number of elements vs the
reference, RMSD and energy distributions, topological classes, and a table of the top candidates
(by target match, then stability) with their Slater-Koster tight-binding band structures.
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

from topodiff.errors import TopodiffInputError

NONTRIVIAL = ("strong_ti", "weak_ti")
BOOL_COLS = ("structure_valid", "composition_valid", "valid", "unique", "novel", "relax_converged")
INT_COLS = ("index", "num_atoms", "num_elements", "space_group", "class_label", "relax_steps")
FLOAT_COLS = ("density", "volume", "min_distance", "energy_initial", "energy_final", "e_above_hull",
              "rmsd_to_relaxed", "displacement_rmsd", "gap")


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
                else:
                    out[k] = v
            rows.append(out)
    return rows


def summary_lines(s: dict[str, Any]) -> list[str]:
    """Compact human-readable summary of an evaluation (one metric per line)."""
    def pct(k: str) -> str:
        v = s.get(k)
        return "-" if v is None else f"{100 * v:.1f} %"

    lines = [f"structures            {s.get('num_structures', 0)} ({s.get('num_readable', 0)} readable)",
             f"structural validity   {pct('structural_validity')}",
             f"compositional valid.  {pct('compositional_validity')}",
             f"uniqueness            {pct('uniqueness')}"]
    if "novelty" in s:
        lines.append(f"novelty               {pct('novelty')}")
    if s.get("cov_recall") is not None:
        lines.append(f"COV-R / COV-P         {pct('cov_recall')} / {pct('cov_precision')}")
    if s.get("wdist_density") is not None:
        lines.append(f"W1 density / #elem    {s['wdist_density']:.3f} g/cm3 / {s['wdist_num_elems']:.3f}")
    if "csp_match_rate" in s:
        rmse = "-" if s.get("csp_rmse") is None else f"{s['csp_rmse']:.4f}"
        lines.append(f"CSP match / RMSE      {pct('csp_match_rate')} / {rmse} "
                     f"({s['csp_num_compositions']} compositions, {s['csp_samples_per_composition']:g} samples each)")
    if s.get("rmsd_to_relaxed") is not None:
        lines.append(f"RMSD to relaxed       {s['rmsd_to_relaxed']:.3f} Å (mean)")
    eh = s.get("e_above_hull")
    if eh:
        lines.append(f"E above hull          median {eh['median']:.3f} eV/atom, "
                     f"{100 * eh.get('fraction_below_threshold', 0):.0f} % < {s['sun']['threshold_ev']} eV/atom")
        lines.append(f"S.U.N.                {s['sun']['num_sun']} ({100 * s['sun']['sun_rate']:.1f} %)")
    if s.get("topo_class_counts"):
        lines.append("topology              " + ", ".join(f"{k}: {v}" for k, v in sorted(s["topo_class_counts"].items())))
    return lines


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


def _band_png(structure: Any, title: str) -> tuple[str | None, str | None]:
    """Slater-Koster TB band structure figure of a crystal; (data URI, error)."""
    try:
        from topodiff.physics.bands import band_structure
        from topodiff.physics.slater_koster import structure_to_tb
    except ImportError as exc:
        return None, f"band structure unavailable ({exc})"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = structure_to_tb(structure)
            bs = band_structure(model, n=120)
    except Exception as exc:
        return None, f"band structure failed: {type(exc).__name__}: {exc}"
    e = np.asarray(bs.energies)
    occ = getattr(model, "filling", None) or e.shape[1] // 2
    ef = 0.5 * (e[:, occ - 1].max() + e[:, occ].min()) if 0 < occ < e.shape[1] else 0.0
    fig, ax = _fig(3.6, 3.0)
    ax.plot(bs.x, e - ef, color="k", lw=0.7)
    ax.axhline(0.0, color="#c44e52", lw=0.6, ls="--")
    for t in bs.ticks:
        ax.axvline(t, color="0.8", lw=0.5)
    ax.set_xticks(bs.ticks)
    ax.set_xticklabels(bs.labels, fontsize=7)
    ax.set_xlim(bs.x[0], bs.x[-1])
    ax.set_ylim(-4, 4)
    ax.set_ylabel("E − E_mid-gap (eV)")
    ax.set_title(title, fontsize=9)
    return _png(fig), None


# --------------------------------------------------------------------------------------------
# candidates
# --------------------------------------------------------------------------------------------
def rank_candidates(rows: list[dict[str, Any]], target: str | None = None, k: int = 5) -> list[dict[str, Any]]:
    """Top ``k`` valid crystals: target topological class first (non-trivial classes when no
    target), then unique ones, then the lowest energy above hull (unknown last), then the largest
    gap."""
    def key(r: dict[str, Any]) -> tuple:
        cls = r.get("topo_class")
        match = (cls == target) if target else (cls in NONTRIVIAL)
        eh = r.get("e_above_hull")
        stab = eh if eh is not None else np.inf      # unknown stability ranks after known
        return (not match, not r.get("unique", True), stab, -(r.get("gap") or 0.0), r["index"])

    pool = [r for r in rows if r.get("valid")]
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
    src = summary.get("input")
    if src and Path(src).exists():
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


def build_report(directory: str | os.PathLike, *, top_k: int = 5, evaluate_if_missing: bool = True) -> tuple[Path, dict[str, Any]]:
    """Write ``directory/report.html``; returns its path and the summary it shows.

    A directory without ``metrics.json`` is evaluated first (``evaluate_if_missing``). Problems
    with single crystals (unparseable file, overlapping atoms) appear as messages in the report;
    a directory without any structure still yields a report that says so.
    """
    d = Path(directory)
    if not d.exists():
        raise TopodiffInputError(f"no such directory: {d}")
    if not d.is_dir():
        raise TopodiffInputError(f"{d} is not a directory")
    messages: list[str] = []
    metrics, table = d / "metrics.json", d / "structures.csv"
    if not (metrics.exists() and table.exists()) and evaluate_if_missing:
        from topodiff.evaluation.evaluate import evaluate_path

        try:
            evaluate_path(d, out_dir=d, relax=False, progress=False)
        except TopodiffInputError as exc:
            messages.append(str(exc))
    summary: dict[str, Any] = json.loads(metrics.read_text()) if metrics.exists() else {}
    rows = read_rows(table) if table.exists() else []
    meta_path = d / "metadata.json"
    if not meta_path.exists() and summary.get("input"):
        cand = Path(summary["input"]) / "metadata.json"
        meta_path = cand if cand.exists() else meta_path
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    conditions = meta.get("conditions") or {}
    target = conditions.get("topo_class") if isinstance(conditions, dict) else None

    for r in rows:
        if r.get("read_error"):   # later stages only repeat that the crystal is missing or invalid
            messages.append(f"{r.get('source')}: {r['read_error']}")
            continue
        for key, what in (("relax_error", "relax"), ("screen_error", "screen")):
            if r.get(key):
                messages.append(f"{r.get('source')}: {what}: {r[key]}")
        if r.get("structure_valid") is False and not r.get("read_error") and r.get("min_distance") is not None:
            messages.append(f"{r.get('source')}: atoms {r['min_distance']:.2f} Å apart (structurally invalid)")
    if not rows and not messages:
        messages.append(f"{d}: no structures found")

    figs: list[tuple[str, str]] = []
    ok = [r for r in rows if r.get("formula")]
    if ok:
        el = Counter(e for r in ok for e in (r.get("elements") or "").split())
        figs.append(("Elements", _bar(el.most_common(30), "Elements (crystals containing each)", "element")))
        sg = Counter(str(r["space_group"]) for r in ok if r.get("space_group"))
        if sg:
            figs.append(("Space groups", _bar(sg.most_common(20), "Space groups (spglib, symprec 0.1 Å)", "space group")))
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
        ef = np.array([r["energy_final"] for r in ok if r.get("energy_final") is not None])
        if ef.size:
            figs.append(("Energy", _hist_vs(ef, None, "CHGNet energy of relaxed crystals", "eV/atom")))
        eh = np.array([r["e_above_hull"] for r in ok if r.get("e_above_hull") is not None])
        if eh.size:
            figs.append(("E hull", _hist_vs(eh, None, "Energy above CHGNet reference hull", "eV/atom")))
        tc = Counter(r.get("topo_class") or "unscreened" for r in ok)
        figs.append(("Topology", _bar(sorted(tc.items()), "Topological class (Slater-Koster TB screen)", "class")))

    cands = rank_candidates(rows, target, top_k)
    structures = _load_structures(summary, d) if cands else {}
    cand_html = []
    for rank, r in enumerate(cands, 1):
        s = structures.get(r["index"])
        img, err = _band_png(s, f"#{rank} {r.get('formula')}") if s is not None else (None, "structure not found")
        if err:
            messages.append(f"candidate {r.get('source')}: {err}")
        cells = "".join(f"<td>{_fmt(r.get(c))}</td>" for c in
                        ("formula", "space_group", "num_atoms", "topo_class", "z2", "gap", "e_above_hull",
                         "energy_final", "rmsd_to_relaxed", "novel"))
        pic = f'<img alt="bands {rank}" src="{img}" width="320">' if img else "–"
        cand_html.append(f"<tr><td>{rank}</td>{cells}<td class='mono'>{html.escape(str(r.get('source')))}</td><td>{pic}</td></tr>")

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
        head = "".join(f"<th>{h}</th>" for h in ("#", "formula", "SG", "atoms", "class", "Z2", "gap (eV)",
                                                  "E hull (eV/at)", "E (eV/at)", "RMSD (Å)", "novel", "source", "TB bands"))
        crit = f"target class <b>{html.escape(target)}</b>" if target else "non-trivial classes first"
        parts.append(f"<h2>Top candidates</h2><p>Ranked by {crit}, then energy above hull. Bands: spinful "
                     "Slater-Koster sp³ model with atomic SOC (approximate).</p><table><tr>" + head + "</tr>"
                     + "".join(cand_html) + "</table>")
    parts.append("<h2>Notes</h2><p>Validity, uniqueness, novelty and coverage follow CDVAE/MatterGen definitions; "
                 "energies come from CHGNet and the hull from a CHGNet reference set (not DFT). "
                 "Per-structure values: <span class='mono'>structures.csv</span>.</p></body></html>")
    from topodiff.io_utils import atomic_write_text

    out = atomic_write_text(d / "report.html", "".join(parts))
    summary["messages"] = messages
    return out, summary

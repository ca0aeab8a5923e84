"""DFT verification of a pipeline run's top candidates, side by side with the cheap judges.

:func:`verify_candidates` takes an output directory of ``topodiff pipeline`` (its
``structures.csv`` ranks the crystals: novel ∧ stable ∧ topological first), verifies the top ``k``
with :func:`topodiff.dft.verify.verify_structure` — the CHGNet-relaxed crystal of ``OUT/relaxed.extxyz``
that the cheap judges saw, when the run relaxed — (one child process each, timeout, resumable in
``OUT/dft``) and writes ``OUT/dft/comparison.json``, ``OUT/dft/comparison.md`` (DFT vs
Slater-Koster vs learned judge) and ``OUT/dft/bands_<index>.png`` (DFT bands, VBM at 0).
The pipeline command and its report call it for ``--verify-dft K``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from topodiff.errors import TopodiffInputError

COMPARE_KEYS = ("index", "formula", "verdict", "z2", "gap_direct", "gap_indirect", "route", "basis", "reason",
                "sk_class", "sk_z2", "judge_class", "p_topological", "seconds", "bands_png", "error")


def _records_for(sources: list[str]) -> list[Any]:
    """The structure record of each ``path#frame`` / ``path`` source (files read once each)."""
    from topodiff.crystal.io import read_structures

    cache: dict[str, list[Any]] = {}
    out = []
    for src in sources:
        path, sep, frame = str(src).rpartition("#") if "#" in str(src) else (str(src), "", "0")
        recs = cache.setdefault(path, read_structures(path))
        i = int(frame) if frame.isdigit() else 0
        if i >= len(recs):
            raise TopodiffInputError(f"candidate source {src} not found")
        out.append(recs[i])
    return out


def candidate_records(out_dir: Path, cands: list[dict[str, Any]]) -> list[Any]:
    """The crystal the cheap judges saw for each candidate: its CHGNet-relaxed frame in
    ``OUT/relaxed.extxyz`` (matched by ``index``) when the run relaxed it, else its ``source``."""
    from topodiff.crystal.io import read_structures

    relaxed = out_dir / "relaxed.extxyz"
    by_index = {}
    if relaxed.is_file():
        by_index = {int(r.properties["index"]): r for r in read_structures(relaxed) if "index" in r.properties}
    out = []
    for c in cands:
        i = c.get("index")
        rec = by_index.get(int(i)) if i not in (None, "") else None
        out.append(rec if rec is not None else _records_for([c["source"]])[0])
    return out


def compare_rows(cands: list[dict[str, Any]], results: list[dict[str, Any]], dft_dir: Path) -> list[dict[str, Any]]:
    """DFT results beside each candidate's Slater-Koster (``topo_class``, ``z2``) and learned-judge
    (``catalogue_class``, ``p_topological``) columns; plots the DFT bands into ``dft_dir``."""
    rows = []
    for c, r in zip(cands, results):
        z2 = c.get("z2")
        if isinstance(z2, str):  # the CSV stores Z2 as text
            z2 = json.loads(z2) if z2.startswith("[") else None
        row = {**r, "index": c.get("index"), "sk_class": c.get("topo_class"), "sk_z2": z2,
               "judge_class": c.get("catalogue_class"), "p_topological": c.get("p_topological")}
        if r.get("bands"):
            row["bands_png"] = _plot(r, dft_dir / f"bands_{c.get('index')}.png")
        rows.append({key: row.get(key) for key in COMPARE_KEYS})
    return rows


def _plot(row: dict[str, Any], path: Path) -> str | None:
    import numpy as np

    from topodiff.physics.bands import BandStructure
    from topodiff.physics.plots import plot_bands

    b = row.get("bands")
    if not b:
        return None
    bs = BandStructure(np.asarray(b["x"]), np.asarray(b["energies"]), b["ticks"], b["labels"])
    title = f"{row.get('formula')}: DFT {row.get('verdict')} (PBE{'+SOC' if row.get('soc', True) else ''})"
    plot_bands(bs, path, title=title, fermi=0.0)
    return path.name


def comparison_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: DFT vs Slater-Koster vs learned judge, one line per candidate."""
    def z2(z: Any) -> str:
        return "" if not z else f"({z[0]};{''.join(str(x) for x in z[1:])})"

    lines = ["| # | formula | DFT verdict | DFT Z2 | DFT gap dir/ind (eV) | Slater-Koster | learned judge (p_topo) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        gap = "" if r.get("gap_direct") is None else f"{r['gap_direct']:.2f} / {r['gap_indirect']:.2f}"
        p = "" if r.get("p_topological") is None else f" ({float(r['p_topological']):.2f})"
        lines.append(f"| {r.get('index')} | {r.get('formula')} | {r.get('verdict') or 'error: ' + str(r.get('error'))} | "
                     f"{z2(r.get('z2'))} | {gap} | {r.get('sk_class') or ''} {z2(r.get('sk_z2'))} | "
                     f"{r.get('judge_class') or ''}{p} |")
    return "\n".join(lines)


def verify_candidates(out_dir: str | os.PathLike, k: int, *, opts: dict[str, Any] | None = None,
                      timeout: float = 900.0, progress: Any = None) -> list[dict[str, Any]]:
    """Verify the top ``k`` candidates of a pipeline run with DFT; returns the comparison rows."""
    from topodiff.dft.batch import verify_records
    from topodiff.dft.lcao import require_gpaw
    from topodiff.dft.verify import K_DENSITY, MAX_ATOMS
    from topodiff.evaluation.pipeline import top_candidates
    from topodiff.io_utils import atomic_write_json, atomic_write_text

    if k < 1:
        raise TopodiffInputError(f"--verify-dft needs K >= 1, got {k}")
    require_gpaw()
    out_dir = Path(out_dir)
    csv = out_dir / "structures.csv"
    if not csv.is_file():
        raise TopodiffInputError(f"{out_dir} holds no structures.csv (not a pipeline output)")
    opts = {"basis": "lcao", "k_density": K_DENSITY, "soc": True, "cross_check": True, "max_atoms": MAX_ATOMS,
            "escalate": True, **(opts or {})}
    cands = top_candidates(csv, k)
    dft_dir = out_dir / "dft"
    dft_dir.mkdir(exist_ok=True)
    results = verify_records(candidate_records(out_dir, cands), opts, timeout=timeout, out=dft_dir, progress=progress)
    rows = compare_rows(cands, results, dft_dir)
    atomic_write_json(dft_dir / "comparison.json", {"candidates": rows, "options": opts})
    atomic_write_text(dft_dir / "comparison.md", comparison_table(rows) + "\n")
    return rows

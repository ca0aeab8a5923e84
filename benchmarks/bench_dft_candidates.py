"""DFT (GPAW PBE+SOC) vs Slater-Koster screen vs learned judge on generated crystals (issue #19 item 4).

Candidates are the CHGNet-relaxed crystals of ``topodiff pipeline`` runs (``relaxed.extxyz`` +
``structures.csv``), symmetrised at ``--symmetrize`` Å (:func:`topodiff.crystal.symmetry.symmetrized`,
the project's space-group tolerance), deduplicated by (formula, space group, atoms), smallest cells
first. The Slater-Koster screen and the judge run again on exactly the crystal that DFT verifies.
Refusals (f-electron / magnetic elements, cells above ``--max-atoms``) are kept as rows with their
reason. Every crystal runs in its own process with ``--timeout``; results are cached in
``OUT/verify/results`` (rerun the same command to resume); after each crystal ``OUT/rows.json`` and
``OUT/table.md`` are rewritten.

    nice -n 10 .venv/bin/python benchmarks/bench_dft_candidates.py runs/dft30/pipe_* --out runs/dft30 \\
        --max-atoms 4 --timeout 900 --limit 40
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

VERDICT_CLASS = {"strong_ti": "topological", "weak_ti": "topological", "trivial_insulator": "trivial",
                 "metal": "metal"}
SK_CLASS = VERDICT_CLASS
JUDGE_CLASS = {"ti": "topological", "tci": "topological", "trivial": "trivial", "semimetal": "metal"}


def collect(pipeline_dirs: list[Path], symprec: float) -> list[dict[str, Any]]:
    """One candidate per relaxed crystal: ``{"source", "formula", "structure"}`` (symmetrised)."""
    from topodiff.crystal.io import read_structures
    from topodiff.crystal.symmetry import symmetrized

    out = []
    for d in pipeline_dirs:
        with open(d / "structures.csv", newline="") as fh:
            valid = {int(r["index"]): r.get("valid") == "True" for r in csv.DictReader(fh)}
        for rec in read_structures(d / "relaxed.extxyz"):
            i = int(rec.properties.get("index", -1))
            if rec.structure is None or not valid.get(i, False):
                continue
            s = symmetrized(rec.structure, symprec)[0]
            out.append({"source": f"{d.name}#{i}", "formula": s.composition.reduced_formula, "structure": s})
    return out


def collect_hits(path: Path, symprec: float) -> list[dict[str, Any]]:
    """Candidates from a discovery ``hits.json`` (any nesting): every object with a ``relaxed_cif``."""
    from pymatgen.core import Structure

    from topodiff.crystal.symmetry import symmetrized

    found: list[dict[str, Any]] = []

    def walk(x: Any, where: str) -> None:
        if isinstance(x, dict):
            if isinstance(x.get("relaxed_cif"), str):
                s = symmetrized(Structure.from_str(x["relaxed_cif"], fmt="cif"), symprec)[0]
                found.append({"source": f"{where}#{x.get('index', len(found))}", "formula": s.composition.reduced_formula,
                              "structure": s})
            for k, v in x.items():
                walk(v, f"{where}/{k}" if where else str(k))
        elif isinstance(x, list):
            for v in x:
                walk(v, where)

    walk(json.loads(path.read_text()), "")
    return found


def select(cands: list[dict[str, Any]], max_atoms: int, limit: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Unique (formula, space group, atoms) candidates, refusals first noted, then smallest cells first."""
    from topodiff.crystal.symmetry import space_group
    from topodiff.dft.verify import check_supported
    from topodiff.errors import TopodiffInputError

    seen, keep, counts = set(), [], {"relaxed_valid": len(cands), "duplicates": 0, "too_large": 0}
    for c in cands:
        c["space_group"] = space_group(c["structure"])[0]
        key = (c["formula"], c["space_group"], len(c["structure"]))
        if key in seen:
            counts["duplicates"] += 1
            continue
        seen.add(key)
        if len(c["structure"]) > max_atoms:
            counts["too_large"] += 1
            continue
        try:
            check_supported(c["structure"], max_atoms=max_atoms)
        except TopodiffInputError as exc:
            c["refused"] = str(exc)
        keep.append(c)
    keep.sort(key=cost)
    return keep[:limit], counts


def cost(c: dict[str, Any], k_density: float = 18.0) -> float:
    """Rough relative DFT cost: irreducible k-points (time reversal + the crystal's point group at 1e-3 Å)
    times atoms², as cheapest first; 0 for refusals and odd electron counts (no SCF)."""
    import spglib

    from topodiff.crystal.io import structure_to_atoms
    from topodiff.dft.lcao import mesh_for
    from topodiff.dft.verify import valence_electrons

    if c.get("refused"):
        return 0.0
    atoms = structure_to_atoms(c["structure"])
    if valence_electrons(atoms) % 2:
        return 0.0
    mesh = mesh_for(np.asarray(atoms.cell[:]), k_density)
    cell = (np.asarray(atoms.cell[:]), atoms.get_scaled_positions(), atoms.numbers)
    mapping, _ = spglib.get_ir_reciprocal_mesh(mesh, cell, is_shift=[0, 0, 0], is_time_reversal=True, symprec=1e-3)
    return float(len(np.unique(mapping)) * len(atoms) ** 2)


def cheap_judges(cands: list[dict[str, Any]], cache: Path) -> None:
    """Slater-Koster screen and learned judge on each candidate's (symmetrised) crystal, in place;
    cached per crystal in ``cache`` (keyed like the DFT results)."""
    from topodiff.dft.batch import crystal_key
    from topodiff.evaluation.screen import screen_structure
    from topodiff.io_utils import atomic_write_json
    from topodiff.judge import judge_structures

    cache.mkdir(parents=True, exist_ok=True)
    files = [cache / f"{crystal_key(c['structure'], {})[:24]}.json" for c in cands]
    todo = [i for i, f in enumerate(files) if not f.is_file()]
    verdicts = judge_structures([cands[i]["structure"] for i in todo]) if todo else []
    for i, v in zip(todo, verdicts):
        row = {"catalogue_class": v.get("catalogue_class"), "p_topological": v.get("p_topological")}
        try:
            r = screen_structure(cands[i]["structure"])
            row.update(topo_class=r.get("topo_class"), z2=r.get("z2"))
        except Exception as exc:  # a screen failure is a row note, not the end of the benchmark
            row.update(topo_class=None, z2=None, sk_error=f"{type(exc).__name__}: {exc}")
        atomic_write_json(files[i], row)
    for c, f in zip(cands, files):
        c.update(json.loads(f.read_text()))


def agreement(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Agreement with DFT on the crystals it decided (strong/weak TI, trivial, metal), as classes
    topological / trivial / metal; ``*_scf`` counts leave out the metals by odd electron count (no SCF)."""
    decided = [r for r in rows if r.get("verdict") in VERDICT_CLASS]
    out: dict[str, Any] = {"rows": len(rows), "verified": sum(r.get("verdict") is not None for r in rows),
                           "decided": len(decided), "decided_scf": sum(r.get("k_mesh") is not None for r in decided),
                           "dft_verdicts": dict(Counter(r["verdict"] for r in rows if r.get("verdict"))),
                           "sk_exact": sum(r["verdict"] == r.get("sk_class") for r in decided)}
    for name, key, table in (("sk", "sk_class", SK_CLASS), ("judge", "judge_class", JUDGE_CLASS)):
        for sub, part in (("", decided), ("_scf", [r for r in decided if r.get("k_mesh") is not None])):
            pairs = [(VERDICT_CLASS[r["verdict"]], table.get(r.get(key) or "")) for r in part]
            out[f"{name}_agree{sub}"] = sum(a == b for a, b in pairs)
            out[f"{name}_pairs{sub}"] = dict(Counter(f"{a}->{b}" for a, b in pairs))
    return out


def _z2(z: Any) -> str:
    return "" if not z else f"({z[0]};{''.join(str(x) for x in z[1:])})"


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one line per candidate (DFT verdict + gaps, SK class, judge class/p, seconds)."""
    lines = ["| source | formula | SG | atoms | k-mesh | DFT verdict | DFT Z2 | gap dir/ind (eV) | route | SK screen | "
             "judge (p_topo) | wall s | CPU s |", "|" + "---|" * 13]
    for r in rows:
        verdict = r.get("verdict") or f"not verified: {r.get('error')}"
        if r.get("verdict") == "metal" and r.get("k_mesh") is None:
            verdict += f" (odd electron count {r.get('n_valence')}, no SCF)"
        elif r.get("reason") and r.get("verdict") in ("inconclusive", "metal"):
            verdict += f" ({r['reason']})"
        elif r.get("note"):
            verdict += f" ({r['note'].split(':')[0]})"
        gap = "" if r.get("gap_direct") is None else f"{r['gap_direct']:.2f} / {r['gap_indirect']:.2f}"
        p = "" if r.get("p_topological") is None else f" ({float(r['p_topological']):.2f})"
        mesh = "x".join(str(n) for n in r.get("k_mesh") or [])
        route = "" if not r.get("route") or r.get("verdict") is None else f"{r['route']} / {r.get('basis')}"
        lines.append(f"| {r['source']} | {r['formula']} | {r.get('space_group') or ''} | {r.get('n_atoms') or ''} | "
                     f"{mesh} | {verdict} | {_z2(r.get('z2'))} | {gap} | {route} | {r.get('sk_class') or ''} "
                     f"{_z2(r.get('sk_z2'))} | {r.get('judge_class') or ''}{p} | {r.get('seconds') or ''} | "
                     f"{r.get('cpu_seconds') or ''} |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> None:
    from topodiff.crystal.records import StructureRecord
    from topodiff.dft.batch import verify_records
    from topodiff.io_utils import atomic_write_json, atomic_write_text

    out = Path(args.out)
    (out / "verify").mkdir(parents=True, exist_ok=True)
    found = (collect_hits(Path(args.hits), args.symmetrize) if args.hits
             else collect([Path(d) for d in args.pipelines], args.symmetrize))
    cands, counts = select(found, args.max_atoms, args.limit)
    cheap_judges(cands, out / "cheap")
    opts = {"basis": "lcao", "k_density": args.kdensity, "soc": True, "cross_check": False, "escalate": True,
            "max_atoms": args.max_atoms}
    rows: list[dict[str, Any]] = []
    for c in cands:
        rec = StructureRecord(source=c["source"], structure=c["structure"])
        r = verify_records([rec], opts, timeout=args.timeout, out=out / "verify",
                           progress=lambda m: print(m, file=sys.stderr, flush=True))[0]
        r.setdefault("space_group", c["space_group"])
        r.setdefault("n_atoms", len(c["structure"]))
        r.update(sk_class=c.get("topo_class"), sk_z2=c.get("z2"), judge_class=c.get("catalogue_class"),
                 p_topological=c.get("p_topological"))
        r.pop("bands", None)
        rows.append(r)
        summary = {"counts": counts, "agreement": agreement(rows), "options": {**opts, "symmetrize": args.symmetrize,
                   "timeout": args.timeout}, "pipelines": args.pipelines}
        atomic_write_json(out / "rows.json", {"summary": summary, "rows": rows})
        atomic_write_text(out / "table.md", table(rows) + "\n\n" + json.dumps(summary["agreement"]) + "\n")
    print(json.dumps({"counts": counts, "agreement": agreement(rows)}))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pipelines", nargs="*", help="topodiff pipeline output directories")
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-atoms", type=int, default=4, help="largest symmetrised primitive cell verified")
    ap.add_argument("--symmetrize", type=float, default=0.1, help="symmetrisation tolerance (Å)")
    ap.add_argument("--kdensity", type=float, default=18.0)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per crystal")
    ap.add_argument("--limit", type=int, default=40, help="at most this many candidates")
    ap.add_argument("--hits", default=None, help="a discovery hits.json instead of pipeline directories")
    ap.add_argument("--render", action="store_true", help="only rewrite OUT/table.md from OUT/rows.json (no DFT)")
    args = ap.parse_args(argv)
    if args.render:
        render(Path(args.out))
    else:
        run(args)


def render(out: Path) -> None:
    """``OUT/table.md`` from ``OUT/rows.json``: the table, then the agreement counts."""
    from topodiff.io_utils import atomic_write_text

    rows = json.loads((out / "rows.json").read_text())["rows"]
    atomic_write_text(out / "table.md", table(rows) + "\n\n" + json.dumps(agreement(rows)) + "\n")


if __name__ == "__main__":
    main()

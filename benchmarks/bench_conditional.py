"""Conditional generation with the default checkpoint: `generate` (fixed seed) then `screen`, per target.

Rows (issue #9): unconditional; ``chemical_system=Bi-Se``; ``topo_class=strong_ti``; ``band_gap`` targets;
``space_group`` targets; and de novo metrics of the unconditional samples against the held-out mp_40
part written by the data recipe. Every row reports structural validity and uniqueness beside its
target metric. Writes ``OUT/conditional.json`` and prints a Markdown table.

    python benchmarks/bench_conditional.py --num 64 --out benchmarks/out/conditional
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SYMMETRIZE = 0.1  # Å: the strong-TI rows are also screened with `topodiff screen --symmetrize 0.1`
SYMMETRIZED_ROWS = ("unconditional", "strong_ti")


def structures_of(gen_dir: Path) -> list:
    from pymatgen.core import Structure

    from topodiff.crystal.io import quiet

    with quiet():
        return [Structure.from_file(p) for p in sorted((gen_dir / "cif").glob("*.cif"))]


def run_row(name: str, conditions: dict, out: Path, *, num: int, seed: int, checkpoint: str | None,
            guidance: float | None, workers: int, guide: dict | None = None, prescreen: int = 1) -> dict:
    """Generate + screen one row; returns its raw results (screen rows included)."""
    from topodiff.evaluation.metrics import structure_valid, uniqueness
    from topodiff.evaluation.screen import screen_path
    from topodiff.generative.generate import generate_to_dir

    gen_dir = out / name
    t0 = time.time()
    meta = generate_to_dir(gen_dir, num=num, checkpoint=checkpoint, conditions=conditions, guidance=guidance,
                           seed=seed, guide_options=guide, prescreen=prescreen)
    t_gen = time.time() - t0
    t0 = time.time()
    rows = screen_path(gen_dir, workers=workers)
    t_screen = time.time() - t0
    rows_sym = screen_path(gen_dir, workers=workers, symmetrize=SYMMETRIZE) if name in SYMMETRIZED_ROWS else None
    structs = structures_of(gen_dir)
    valid = np.array([structure_valid(s) for s in structs])
    from topodiff.crystal.io import space_group

    sgs = [space_group(s, symprec=0.1)[0] for s in structs]
    print(f"  {name}: generate {t_gen:.0f} s, screen {t_screen:.0f} s", file=sys.stderr, flush=True)
    return {"name": name, "conditions": conditions, "guidance": meta["guidance"], "num": len(structs),
            "structural_validity": float(valid.mean()), "uniqueness": uniqueness(structs),
            "formulas": [s.composition.reduced_formula for s in structs],
            "elements": [sorted({e.symbol for e in s.composition.elements}) for s in structs],
            "space_groups": sgs, "screen": rows, "screen_symmetrized": rows_sym, "generate_s": t_gen,
            "screen_s": t_screen,
            "guard_failures": meta.get("below_min_distance")}


def gap_error(row: dict, target: float) -> float:
    gaps = [r["gap"] for r in row["screen"] if r.get("topo_class") is not None and r.get("gap") is not None]
    return float(np.mean(np.abs(np.asarray(gaps) - target))) if gaps else float("nan")


def class_fraction(row: dict, cls: str, key: str = "screen") -> float:
    return float(np.mean([r.get("topo_class") == cls for r in row[key]]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=None, help="default: the shipped default checkpoint")
    ap.add_argument("--num", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--guidance", type=float, default=None, help="default: the checkpoint's")
    ap.add_argument("--gaps", default="0.1,0.3,0.6")
    ap.add_argument("--space-groups", default="166,225")
    ap.add_argument("--system", default="Bi-Se")
    ap.add_argument("--heldout", default=str(ROOT / "data" / "default" / "heldout_mp_40.csv"))
    ap.add_argument("--train", default=str(ROOT / "data" / "default" / "train.csv"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--prescreen", type=int, default=2,
                    help="also run the band-gap rows with `generate --prescreen K` (0: skip those rows)")
    ap.add_argument("--rows", default="all", help="comma list of row groups: system,strong_ti,gap,gap_prescreen,sg")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "conditional"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = dict(num=args.num, seed=args.seed, checkpoint=args.checkpoint, guidance=args.guidance,
                  workers=args.workers)
    groups = set(args.rows.split(",")) if args.rows != "all" else {"system", "strong_ti", "gap", "gap_prescreen", "sg"}
    rows = {"unconditional": run_row("unconditional", {}, out, **common)}
    if "system" in groups:
        rows["chemical_system"] = run_row("chemical_system", {"chemical_system": args.system}, out, **common)
    if "strong_ti" in groups:
        rows["strong_ti"] = run_row("strong_ti", {"topo_class": "strong_ti"}, out, **common)
    for g in args.gaps.split(",") if "gap" in groups else []:
        rows[f"band_gap={g}"] = run_row(f"band_gap_{g}", {"band_gap": g}, out, **common)
    for g in args.gaps.split(",") if "gap_prescreen" in groups and args.prescreen > 1 else []:
        rows[f"band_gap={g} --prescreen {args.prescreen}"] = run_row(
            f"band_gap_{g}_prescreen{args.prescreen}", {"band_gap": g}, out, prescreen=args.prescreen, **common)
    for sg in args.space_groups.split(",") if "sg" in groups else []:
        rows[f"space_group={sg}"] = run_row(f"space_group_{sg}", {"space_group": sg}, out, **common)
    unc = rows["unconditional"]
    table = []
    want = set(args.system.split("-"))
    r = rows.get("chemical_system")
    if r:
        exact = float(np.mean([set(e) == want for e in r["elements"]]))
        table.append((f"chemical_system={args.system}", f"{100 * exact:.1f} % exactly {{{', '.join(sorted(want))}}}",
                      f"{100 * float(np.mean([set(e) == want for e in unc['elements']])):.1f} %", r))
    r = rows.get("strong_ti", unc)
    f_c, f_u = class_fraction(r, "strong_ti"), class_fraction(unc, "strong_ti")
    ratio = f"{f_c / f_u:.1f}×" if f_u > 0 else "∞ (unconditional 0)"
    s_c, s_u = class_fraction(r, "strong_ti", "screen_symmetrized"), class_fraction(unc, "strong_ti", "screen_symmetrized")
    undecided = sum(x.get("topo_class") is None for x in r["screen"])
    if "strong_ti" in rows:
        table.append(("topo_class=strong_ti", f"{100 * f_c:.1f} % screened strong TI ({ratio}; {undecided} undecided); "
                      f"with --symmetrize {SYMMETRIZE}: {100 * s_c:.1f} % vs {100 * s_u:.1f} %",
                      f"{100 * f_u:.1f} %", r))
    for key in [k for k in rows if k.startswith("band_gap=")]:
        g = key.split("=")[1].split()[0]
        r = rows[key]
        e_c, e_u = gap_error(r, float(g)), gap_error(unc, float(g))
        table.append((key, f"mean |gap − {g}| = {e_c:.3f} eV ({e_c / e_u:.2f} of uncond.)", f"{e_u:.3f} eV", r))
    for sg in [k.split("=")[1] for k in rows if k.startswith("space_group=")]:
        r = rows[f"space_group={sg}"]
        f_c = float(np.mean([s == int(sg) for s in r["space_groups"]]))
        f_u = float(np.mean([s == int(sg) for s in unc["space_groups"]]))
        ratio = f"{f_c / f_u:.1f}×" if f_u > 0 else "∞ (unconditional 0)"
        table.append((f"space_group={sg}", f"{100 * f_c:.1f} % in group {sg} ({ratio})", f"{100 * f_u:.1f} %", r))
    hits = [{"formula": s["formula"], "space_group": s["space_group"], "space_group_0.1": sg01, "gap": s["gap"],
             "z2": s["z2"], "source": s["source"]}
            for s, sg01 in zip(rows["strong_ti"]["screen"], rows["strong_ti"]["space_groups"])
            if s.get("topo_class") == "strong_ti"] if "strong_ti" in rows else []
    denovo = {}
    if Path(args.heldout).is_file():
        from topodiff.evaluation.evaluate import load_reference
        from topodiff.evaluation.metrics import novelty, wdist_density, wdist_num_elems

        held = load_reference([args.heldout])
        gen = structures_of(out / "unconditional")
        train = load_reference([args.train]) if Path(args.train).is_file() else []
        denovo = {"reference": args.heldout, "n_reference": len(held), "n_generated": len(gen),
                  "structural_validity": unc["structural_validity"], "uniqueness": unc["uniqueness"],
                  "novelty_vs_train": novelty(gen, train) if train else None,
                  "novelty_vs_heldout": novelty(gen, held),
                  "wdist_density": wdist_density(gen, held), "wdist_num_elems": wdist_num_elems(gen, held)}
    result = {"checkpoint": args.checkpoint or "default", "num": args.num, "seed": args.seed,
              "rows": [{"condition": c, "result": res, "unconditional": u, "validity": r["structural_validity"],
                        "uniqueness": r["uniqueness"], "guidance": r["guidance"]} for c, res, u, r in table],
              "strong_ti_hits": hits, "denovo_heldout_mp40": denovo, "raw": rows}
    (out / "conditional.json").write_text(json.dumps(result, indent=1, default=str))
    print("| condition | result | unconditional | validity | uniqueness |")
    print("|---|---|---|---|---|")
    for c, res, u, r in table:
        print(f"| `{c}` | {res} | {u} | {100 * r['structural_validity']:.1f} % | {100 * r['uniqueness']:.1f} % |")
    print("\nstrong-TI hits:")
    for h in hits:
        print(f"  {h['formula']:12s} SG {h['space_group']} (symprec 0.1: {h['space_group_0.1']})  gap {h['gap']:.3f} eV"
              f"  z2 {h['z2']}")
    print("\nde novo vs held-out mp_40:", json.dumps(denovo))


if __name__ == "__main__":
    main()

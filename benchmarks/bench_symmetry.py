"""Relaxed generated crystals screened as relaxed vs as their symmetrised standard cell (issue #18).

For each crystal of a ``generate`` output: CHGNet relaxation (``relax_structure``, fmax 0.1 eV/Å),
then the Slater-Koster screen of (a) the relaxed cell as CHGNet leaves it and (b) the symmetrised
standard primitive cell that ``evaluate --relax`` now keeps (``RelaxResult.kept``). Records the
space group at 1e-3 Å and at the project tolerance (0.1 Å, 5°), the Z2 route (parity / WCC), WCC
failures and the class. Prints one JSON object; rows go to ``--out``.

Usage: ``python benchmarks/bench_symmetry.py GENERATED_DIR --out runs/bench_symmetry.json [--limit N]``
(the JSON is rewritten after every crystal, so an interrupted run leaves its partial counts).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("generated", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_symmetry.json")
    ap.add_argument("--limit", type=int, default=None, help="only the first N crystals")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from topodiff.crystal.io import read_structures
    from topodiff.crystal.symmetry import analyze
    from topodiff.evaluation.relax import relax_structure
    from topodiff.errors import TopodiffInputError
    from topodiff.evaluation.screen import screen_structure

    rows: list[dict] = []
    t0 = time.time()
    records = [r for r in read_structures(args.generated) if r.structure is not None][:args.limit]
    summary = _summary(rows, 0.0)
    for i, rec in enumerate(records):
        r = relax_structure(rec.structure)
        row = {"source": rec.source, "relax_error": r.error}
        if r.structure is not None:
            tight, loose = analyze(r.structure, symprec=1e-3), analyze(r.structure)
            row.update(sg_tight=tight.number if tight else None, sg=loose.number if loose else None)
            for key, s in (("raw", r.structure), ("sym", r.kept)):
                try:
                    res = screen_structure(s)
                except TopodiffInputError as exc:     # e.g. overlapping atoms
                    res = {"error": f"input: {exc}", "time_s": 0.0}
                row[key] = {k: res.get(k) for k in ("space_group", "topo_class", "method", "z2", "error", "time_s")}
        rows.append(row)
        print(f"{i + 1}/{len(records)} {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
        summary = _summary(rows, time.time() - t0)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))   # partial results too
    print(json.dumps(summary))
    return 0


def _summary(rows: list[dict], wall: float) -> dict:
    ok = [r for r in rows if "raw" in r]

    def count(key: str, field: str) -> dict:
        return dict(Counter(str(r[key][field]) for r in ok))

    summary = {
        "crystals": len(rows), "relaxed": len(ok),
        "lower_symmetry_at_1e-3": sum(1 for r in ok if (r["sg_tight"] or 1) < (r["sg"] or 1)),
        "p1_at_1e-3_but_not_at_0.1": sum(1 for r in ok if r["sg_tight"] == 1 and (r["sg"] or 1) > 1),
        "method_raw": count("raw", "method"), "method_sym": count("sym", "method"),
        "wcc_failed_raw": sum(1 for r in ok if (r["raw"]["error"] or "").startswith("WCC Z2 failed")),
        "wcc_failed_sym": sum(1 for r in ok if (r["sym"]["error"] or "").startswith("WCC Z2 failed")),
        "input_errors_raw": sum(1 for r in ok if (r["raw"]["error"] or "").startswith("input:")),
        "input_errors_sym": sum(1 for r in ok if (r["sym"]["error"] or "").startswith("input:")),
        "errors_raw": sum(1 for r in ok if r["raw"]["error"]), "errors_sym": sum(1 for r in ok if r["sym"]["error"]),
        "class_raw": count("raw", "topo_class"), "class_sym": count("sym", "topo_class"),
        "class_changed": sum(1 for r in ok if r["raw"]["topo_class"] != r["sym"]["topo_class"]),
        "screen_s_raw": round(sum(r["raw"]["time_s"] for r in ok), 1),
        "screen_s_sym": round(sum(r["sym"]["time_s"] for r in ok), 1),
        "wall_s": round(wall, 1)}
    return summary


if __name__ == "__main__":
    sys.exit(main())

"""DFT (GPAW PBE + SOC) vs Slater-Koster screen vs learned judge, with timings per crystal size.

Usage::

    .venv/bin/python benchmarks/bench_dft.py [--inputs DIR] [--out runs/bench_dft] [--timeout 1800]

Without ``--inputs`` the textbook crystals are built here (Bi2Se3, Bi2Te3, PbTe, SnTe, Si, GaAs,
experimental lattice constants). Results are resumable (``OUT/verify`` is a ``verify --dft`` output
directory); the table is printed as Markdown and written to ``OUT/table.md`` with ``OUT/rows.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

ROOT = Path(__file__).resolve().parents[1]


def textbook(directory: Path) -> Path:
    """Write the six textbook crystals as CIFs into ``directory``."""
    from ase.build import bulk
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    from topodiff.crystal.io import read_structure, write_cif

    directory.mkdir(parents=True, exist_ok=True)
    crystals = {
        "Bi2Se3": read_structure(ROOT / "tests/data/crystals/Bi2Se3.cif"),
        "Bi2Te3": Structure.from_spacegroup("R-3m", Lattice.hexagonal(4.386, 30.497), ["Bi", "Te", "Te"],
                                            [[0, 0, 0.4001], [0, 0, 0], [0, 0, 0.2095]]),
        "PbTe": AseAtomsAdaptor.get_structure(bulk("PbTe", "rocksalt", 6.462)),
        "SnTe": AseAtomsAdaptor.get_structure(bulk("SnTe", "rocksalt", 6.327)),
        "Si": AseAtomsAdaptor.get_structure(bulk("Si", "diamond", 5.431)),
        "GaAs": AseAtomsAdaptor.get_structure(bulk("GaAs", "zincblende", 5.653)),
    }
    for i, (name, s) in enumerate(crystals.items()):
        write_cif(s, directory / f"{i:02d}_{name}.cif")
    return directory


def _z2(z: list | None) -> str:
    return "" if z is None else f"({z[0]};{''.join(str(x) for x in z[1:])})"


def table(rows: list[dict]) -> str:
    head = ("| crystal | atoms | k-mesh | DFT gap dir/ind (eV) | DFT Z2 | route | basis | DFT verdict | "
            "SK (screen) | judge | wall s | CPU s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        gap = "" if r.get("gap_direct") is None else f"{r['gap_direct']:.2f} / {r['gap_indirect']:.2f}"
        verdict = r.get("verdict") or f"error: {r.get('error', '')[:60]}"
        if r.get("reason") and r.get("verdict") == "inconclusive":
            verdict += f" ({r['reason'][:50]})"
        sk = r.get("sk_class") or ""
        if r.get("sk_z2") is not None:
            sk += f" {_z2(r['sk_z2'])}"
        mesh = "x".join(str(n) for n in r.get("k_mesh") or [])
        lines.append(f"| {r.get('formula')} | {r.get('n_atoms', '')} | {mesh} | {gap} | {_z2(r.get('z2'))} | "
                     f"{r.get('route') or ''} | {r.get('basis') or ''} | {verdict} | {sk} | "
                     f"{r.get('judge_class') or ''} | {r.get('seconds', '')} | {r.get('cpu_seconds', '')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "runs/bench_dft")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--max-atoms", type=int, default=12)
    ap.add_argument("--no-cross-check", action="store_true")
    args = ap.parse_args(argv)

    from topodiff.crystal.io import read_structures
    from topodiff.dft.batch import verify_path
    from topodiff.evaluation.screen import screen_path

    inputs = args.inputs or textbook(args.out / "inputs")
    opts = {"basis": "lcao", "k_density": 18.0, "soc": True, "cross_check": not args.no_cross_check,
            "max_atoms": args.max_atoms, "escalate": True}
    t0 = time.perf_counter()
    rows = verify_path(inputs, opts, timeout=args.timeout, out=args.out / "verify",
                       progress=lambda m: print(m, file=sys.stderr, flush=True))
    sk = {r["source"]: r for r in screen_path(inputs, workers=1)}
    try:
        from topodiff.judge import judge_structures

        judged = judge_structures([rec.structure for rec in read_structures(inputs)])
    except Exception as exc:  # the judge is optional here
        print(f"judge unavailable: {exc}", file=sys.stderr)
        judged = [{}] * len(rows)
    for r, j in zip(rows, judged):
        s = sk.get(r["source"], {})
        r.update(sk_class=s.get("topo_class"), sk_z2=s.get("z2"), judge_class=j.get("catalogue_class"),
                 judge_p=j.get("p_topological"))
    text = table(rows)
    print(text)
    (args.out / "table.md").write_text(text + "\n")
    (args.out / "rows.json").write_text(json.dumps(rows, indent=1, default=str))
    print(f"total {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

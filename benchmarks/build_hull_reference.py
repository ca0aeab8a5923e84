"""Rebuild ``src/topodiff/data/chgnet_hull_reference.json``: CHGNet energies of a reference set.

Why this subset: relaxing thousands of crystals is too slow on a laptop CPU, so

* elemental crystals (ASE reference states, ``ase.build.bulk``; dimers in a 15 Å box for diatomic
  elements) are *relaxed* with CHGNet — they are the hull's corners, so they must be minima of the
  same potential the generated crystals are relaxed with;
* the real crystals in ``../shared/data`` (``mp_40/test.csv``: 708 Materials Project structures
  across many chemical systems; ``perov_5/val.csv``: 3787 perovskites, the chemistry of the Perov-5
  checkpoint) are *single points* at their DFT-relaxed geometry (batched, ~10 ms each). CHGNet was
  trained on MPtrj, so these geometries sit near its minima; ``--check N`` relaxes N of them and
  prints the mean energy lowering, the size of the error this shortcut makes (see docs/evaluation.md).

Usage: ``python benchmarks/build_hull_reference.py [--data ../shared/data] [--check 20]``
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DIATOMIC = {"H": 0.74, "N": 1.10, "O": 1.21, "F": 1.42, "Cl": 1.99, "Br": 2.28, "I": 2.67}  # Å, bond lengths
SKIP = {"He", "Ne", "Ar", "Kr", "Xe", "Rn", "Po", "At", "Fr", "Ra", "Pm", "Tc"}


# Elements whose ground state ase.build.bulk cannot build: prototypes (space group, lattice in Å,
# Wyckoff sites) from the standard crystallographic tables; CHGNet relaxes them afterwards.
#   Se, Te: trigonal chains P3_121 (152), 3a (x, 0, 1/3) — Wyckoff, Crystal Structures vol. 1;
#   S: modelled with the Se chain structure (α-S8 has 128 atoms/cell; fibrous S is helical too);
#   P: black phosphorus Cmce (64), 8f (0, y, z); Ga: α-Ga Cmce (64), 8f (0, y, z);
#   Mn: α-Mn (58 atoms) replaced by fcc Mn (a ≈ 3.6 Å) — its CHGNet energy is a little higher.
PROTOTYPES = {
    "Se": (152, (4.366, 4.366, 4.954, 90, 90, 120), [[0.2254, 0.0, 1 / 3]]),
    "Te": (152, (4.457, 4.457, 5.929, 90, 90, 120), [[0.2636, 0.0, 1 / 3]]),
    "S": (152, (4.0, 4.0, 4.6, 90, 90, 120), [[0.22, 0.0, 1 / 3]]),
    "P": (64, (3.314, 10.478, 4.376, 90, 90, 90), [[0.0, 0.1017, 0.0806]]),
    "Ga": (64, (4.520, 7.663, 4.526, 90, 90, 90), [[0.0, 0.1549, 0.0810]]),
}


def prototype_structure(sym: str):
    from pymatgen.core import Lattice, Structure

    sg, (a, b, c, al, be, ga), sites = PROTOTYPES[sym]
    return Structure.from_spacegroup(sg, Lattice.from_parameters(a, b, c, al, be, ga), [sym] * len(sites), sites)


def elemental_structures() -> list[tuple[str, object]]:
    from ase import Atoms
    from ase.build import bulk
    from ase.data import chemical_symbols
    from pymatgen.io.ase import AseAtomsAdaptor

    out = []
    for z in range(1, 95):
        sym = chemical_symbols[z]
        if sym in SKIP:
            continue
        atoms = None
        if sym in PROTOTYPES:
            out.append((sym, prototype_structure(sym).get_primitive_structure()))
            continue
        if sym == "Mn":
            atoms = bulk("Mn", "fcc", a=3.6)
        elif sym in DIATOMIC:
            atoms = Atoms(sym + "2", positions=[[0, 0, 0], [0, 0, DIATOMIC[sym]]], cell=[15, 15, 15], pbc=True)
        else:
            try:
                atoms = bulk(sym)
            except Exception:
                continue
        out.append((sym, AseAtomsAdaptor.get_structure(atoms)))
    return out


def read_csv(path: Path) -> list[tuple[str, object]]:
    from pymatgen.core import Structure

    rows = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            try:
                rows.append((r.get("material_id") or r.get(""), Structure.from_str(r["cif"], fmt="cif")))
            except Exception:
                pass
    return rows


def main() -> int:
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(ROOT / "src" / "topodiff" / "data" / "chgnet_hull_reference.json"))
    ap.add_argument("--elements-only", action="store_true",
                    help="recompute only the elemental entries of an existing table, keep the rest")
    ap.add_argument("--check", type=int, default=20, help="relax this many mp_40 crystals to measure the shortcut's error")
    args = ap.parse_args()
    from topodiff.evaluation.relax import relax_structure, single_point_energies
    from topodiff.io_utils import atomic_write_text

    t0 = time.time()
    entries: list[tuple[str, float, str]] = []
    elem = elemental_structures()
    for sym, s in elem:
        r = relax_structure(s, fmax=0.05, steps=300, relax_cell=sym not in DIATOMIC)
        if r.structure is None:
            print(f"  {sym}: {r.error}", file=sys.stderr)
            continue
        e = single_point_energies([r.structure])[0]
        if np.isfinite(e):
            entries.append((r.structure.composition.formula.replace(" ", ""), round(float(e), 5), f"ase-bulk:{sym}"))
    print(f"elements: {len(entries)} in {time.time() - t0:.0f} s", file=sys.stderr)

    if args.elements_only:
        old = json.loads(Path(args.out).read_text())
        entries += [tuple(e) for e in old["entries"] if not str(e[2]).startswith("ase-bulk:")]
        old["entries"] = entries
        atomic_write_text(args.out, json.dumps(old, separators=(",", ":")))
        print(f"wrote {len(entries)} entries to {args.out} in {time.time() - t0:.0f} s", file=sys.stderr)
        return 0
    data = Path(args.data)
    sources = [("mp_40", data / "mp_40" / "test.csv"), ("perov_5", data / "perov_5" / "val.csv")]
    check_msg = None
    for tag, path in sources:
        if not path.exists():
            print(f"  missing {path}: skipped", file=sys.stderr)
            continue
        t1 = time.time()
        rows = read_csv(path)
        e = single_point_energies([s for _, s in rows], batch_size=64)
        for (mid, s), ei in zip(rows, e):
            if np.isfinite(ei):
                entries.append((s.composition.formula.replace(" ", ""), round(float(ei), 5), f"{tag}:{mid}"))
        print(f"{tag}: {len(rows)} single points in {time.time() - t1:.0f} s", file=sys.stderr)
        if tag == "mp_40" and args.check:
            rng = np.random.default_rng(0)
            pick = rng.choice(len(rows), size=min(args.check, len(rows)), replace=False)
            small = [i for i in pick if len(rows[i][1]) <= 20]
            shifts = []
            for i in small:
                r = relax_structure(rows[i][1], fmax=0.05, steps=300)
                if r.structure is not None:
                    shifts.append(single_point_energies([r.structure])[0] - e[i])
            shifts = np.array(shifts)
            check_msg = {"n": int(len(shifts)), "mean_ev_per_atom": float(shifts.mean()),
                         "min_ev_per_atom": float(shifts.min())}
            print(f"  relaxation lowers mp_40 single points by {check_msg}", file=sys.stderr)

    doc = {"format": "topodiff-hull-reference/1",
           "potential": "CHGNet (chgnet 0.4.2 default weights), energies per atom in eV",
           "built_with": "benchmarks/build_hull_reference.py",
           "relaxation_shift_check": check_msg,
           "entries": entries}
    atomic_write_text(args.out, json.dumps(doc, separators=(",", ":")))
    print(f"wrote {len(entries)} entries to {args.out} in {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

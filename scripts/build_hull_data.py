"""Rebuild the DFT hull data shipped in ``src/topodiff/data/`` from ``../shared/data/hull/``.

Writes
* ``mp_formation_energies.csv.gz`` — ``material_id, composition, e_form_per_atom`` (eV/atom,
  MP2020-corrected, as Materials Project serves them) of the 46,918 entries of
  ``hull/mp_formation_energies.csv.gz`` (LeMaterial/lemat-genbench, Apache-2.0; data: Materials
  Project, CC-BY-4.0);
* ``mp_elemental_references.json`` — energy per atom (eV/atom, uncorrected GGA/GGA+U total energy,
  the zero of the formation energies) and entry id of MP's elemental reference entries
  (2023-02-07, via janosh/matbench-discovery, MIT).

Usage: ``python scripts/build_hull_data.py [--data ../shared/data] [--out src/topodiff/data]``
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build(data: Path, out: Path) -> dict[str, int]:
    import pandas as pd

    from topodiff.evaluation.hull import ELEMENTS_FORMAT
    from topodiff.io_utils import atomic_write, atomic_write_json

    df = pd.read_csv(data / "hull" / "mp_formation_energies.csv.gz")
    table = df[["material_id", "comp", "formation_energy_per_atom"]].rename(
        columns={"comp": "composition", "formation_energy_per_atom": "e_form_per_atom"})
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(table.to_csv(index=False, float_format="%.6f").encode())
    atomic_write(out / "mp_formation_energies.csv.gz", lambda fh: fh.write(buf.getvalue()), mode="wb")
    raw = json.load(gzip.open(data / "hull" / "mp_elemental_references.json.gz"))
    elements = {}
    for symbol, entry in sorted(raw.items()):
        natoms = sum(entry["composition"].values())
        elements[symbol] = {"energy_per_atom": round((entry["energy"] + entry.get("correction", 0.0)) / natoms, 8),
                            "entry_id": entry.get("entry_id")}
    atomic_write_json(out / "mp_elemental_references.json",
                      {"format": ELEMENTS_FORMAT, "date": "2023-02-07", "elements": elements})
    return {"entries": len(table), "elements": len(elements)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(ROOT / "src" / "topodiff" / "data"))
    args = ap.parse_args()
    if not (Path(args.data) / "hull").is_dir():
        print(f"error: {args.data}/hull not found", file=sys.stderr)
        return 2
    print(json.dumps(build(Path(args.data), Path(args.out))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What ``evaluate`` writes: ``metrics.json``, ``structures.csv`` (one row per crystal),
``relaxed.extxyz``, and the ``"structures"`` rows of ``evaluate --json`` (CONTRACTS "Judging keys")."""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Sequence

from pymatgen.core import Structure

CSV_COLUMNS = ("index", "source", "formula", "num_atoms", "num_elements", "elements", "space_group",
               "space_group_symbol", "space_group_unrelaxed",
               "density", "volume", "min_distance", "structure_valid", "composition_valid", "valid",
               "unique", "class_label", "novel", "formula_novel", "structure_novel", "known_match",
               "novelty_note", "energy_initial", "energy_final", "energy_source", "e_form", "e_above_hull",
               "hull_num_references", "hull_note", "rmsd_to_relaxed", "displacement_rmsd", "relax_steps",
               "relax_converged", "gap", "direct_gap", "z2", "z2_basis", "z2_conventional", "topo_class",
               "catalogue_class", "p_topological", "judge_note", "read_error", "relax_error", "screen_error")

#: Keys of each ``"structures"`` row of ``evaluate --json`` (the contract's keys first).
JSON_ROW_KEYS = ("source", "formula", "e_form", "e_above_hull", "hull_note", "novel", "topo_class",
                 "catalogue_class", "p_topological", "index", "space_group", "valid", "unique", "formula_novel",
                 "structure_novel", "known_match", "novelty_note", "hull_num_references", "energy_source",
                 "space_group_symbol", "space_group_unrelaxed", "gap", "direct_gap", "z2", "z2_basis",
                 "z2_conventional", "judge_note", "read_error", "relax_error", "screen_error")


def json_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One JSON row per input crystal, in input order (missing values are null)."""
    return [{k: r.get(k) for k in JSON_ROW_KEYS} for r in rows]


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return json.dumps(v)
    return v


def write_outputs(out_dir: str | os.PathLike, summary: dict[str, Any], rows: list[dict[str, Any]],
                  relaxed: Sequence[Structure | None]) -> dict[str, str]:
    """Write ``metrics.json``, ``structures.csv`` and ``relaxed.extxyz`` (when any) atomically."""
    from topodiff.io_utils import atomic_write_json, atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in CSV_COLUMNS])
    paths = {"metrics": str(out / "metrics.json"),
             "structures_csv": str(atomic_write_text(out / "structures.csv", buf.getvalue()))}
    keep = [(i, s) for i, s in enumerate(relaxed) if s is not None]
    if keep:
        from topodiff.crystal.io import write_structures

        info = [{"index": i, "source": rows[i]["source"], "space_group": rows[i].get("space_group"),
                 **({"energy_per_atom": rows[i]["energy_final"]} if rows[i].get("energy_final") is not None else {})}
                for i, _ in keep]
        paths["relaxed"] = str(write_structures([s for _, s in keep], out / "relaxed.extxyz", info=info))
    summary["outputs"] = paths
    atomic_write_json(out / "metrics.json", summary)
    return paths

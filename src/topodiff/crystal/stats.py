"""Summary statistics of a crystal dataset (counts, element and space-group histograms) and a figure."""
from __future__ import annotations

import io
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from topodiff.crystal.dataset import CrystalArrays
from topodiff.crystal.symmetry import SYMPREC, cell_space_group
from topodiff.io_utils import atomic_write

#: Text labels with at most this many distinct values get a histogram in the stats.
MAX_CATEGORIES = 20


def space_groups(arrays: CrystalArrays, symprec: float = SYMPREC) -> np.ndarray:
    """``[n]`` int space-group numbers (:func:`topodiff.crystal.symmetry.cell_space_group`; 1 where
    spglib finds none)."""
    out = np.ones(len(arrays), dtype=np.int64)
    frac, species, lat = np.asarray(arrays.frac), np.asarray(arrays.species), np.asarray(arrays.lattices)
    for i in range(len(arrays)):  # spglib takes one cell at a time
        sl = arrays.atoms_of(i)
        sg = cell_space_group(lat[i], frac[sl], species[sl], symprec=symprec)
        out[i] = 1 if sg is None else sg
    return out


def _summary(x: np.ndarray) -> dict[str, float | int | None]:
    x = np.asarray(x, dtype=np.float64)
    ok = x[np.isfinite(x)]
    if ok.size == 0:
        return {"count": 0, "mean": None, "std": None, "min": None, "max": None}
    return {"count": int(ok.size), "mean": float(ok.mean()), "std": float(ok.std()),
            "min": float(ok.min()), "max": float(ok.max())}


def densities(arrays: CrystalArrays) -> np.ndarray:
    """``[n]`` mass densities in g/cm³ (atomic masses from pymatgen)."""
    from pymatgen.core.periodic_table import Element

    zmax = int(np.max(arrays.species, initial=1))
    masses = np.array([0.0] + [float(Element.from_Z(z).atomic_mass) for z in range(1, zmax + 1)])
    mass = np.bincount(arrays.batch_index, weights=masses[np.asarray(arrays.species)], minlength=len(arrays))
    volume = np.abs(np.linalg.det(np.asarray(arrays.lattices)))
    return mass / volume * 1.66053906660  # amu/Å³ → g/cm³


def dataset_stats(arrays: CrystalArrays, *, symprec: float = SYMPREC, manifest: dict | None = None) -> dict[str, Any]:
    """Counts and histograms of a dataset (JSON-ready).

    Keys: ``num_structures``, ``num_atoms_total``, ``atoms_per_structure`` (summary + histogram),
    ``elements`` (symbol → number of atoms), ``elements_structures`` (symbol → crystals containing it),
    ``num_elements`` (histogram), ``space_groups`` (number → crystals), ``crystal_systems``,
    ``density`` (g/cm³ summary), ``properties`` (per-column summary), ``labels`` (histograms of
    categorical text columns) and, from a cache manifest, ``skipped``.
    """
    from pymatgen.core.periodic_table import Element

    n = len(arrays)
    species = np.asarray(arrays.species)
    num_atoms = np.asarray(arrays.num_atoms)
    z_atoms = np.bincount(species, minlength=1)
    # crystals containing each element: unique (crystal, Z) pairs
    pairs = np.unique(np.stack([arrays.batch_index, species], axis=1), axis=0) if n else np.zeros((0, 2), int)
    z_structs = np.bincount(pairs[:, 1], minlength=z_atoms.size) if n else np.zeros(1, int)
    n_el = np.bincount(pairs[:, 0], minlength=n) if n else np.zeros(0, int)
    order = np.argsort(-z_atoms, kind="stable")
    elements = {Element.from_Z(int(z)).symbol: int(z_atoms[z]) for z in order if z > 0 and z_atoms[z] > 0}
    order_s = np.argsort(-z_structs, kind="stable")
    elements_structures = {Element.from_Z(int(z)).symbol: int(z_structs[z]) for z in order_s
                           if z > 0 and z_structs[z] > 0}
    sg = space_groups(arrays, symprec=symprec) if n else np.zeros(0, int)
    sg_counts = Counter(int(s) for s in sg)
    systems = Counter(_crystal_system(int(s)) for s in sg)
    labels = {}
    for key, col in arrays.labels.items():
        values = Counter("" if v is None else str(v) for v in np.asarray(col, dtype=object).tolist())
        if len(values) <= MAX_CATEGORIES:
            labels[key] = dict(values.most_common())
    out: dict[str, Any] = {
        "num_structures": n,
        "num_atoms_total": int(species.size),
        "atoms_per_structure": {**_summary(num_atoms), "histogram": {int(k): int(v) for k, v in
                                                                     sorted(Counter(num_atoms.tolist()).items())}},
        "num_elements": {int(k): int(v) for k, v in sorted(Counter(n_el.tolist()).items())},
        "elements": elements,
        "elements_structures": elements_structures,
        "space_groups": {int(k): int(v) for k, v in sorted(sg_counts.items())},
        "num_space_groups": len(sg_counts),
        "crystal_systems": dict(systems.most_common()),
        "density": _summary(densities(arrays)) if n else _summary(np.zeros(0)),
        "properties": {k: _summary(np.asarray(v)) for k, v in arrays.properties.items()},
        "labels": labels,
        "symprec": symprec,
    }
    if manifest is not None:
        out["skipped"] = int(manifest.get("skipped", 0))
        out["source"] = manifest.get("source")
    return out


def _crystal_system(number: int) -> str:
    for hi, name in ((2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"), (142, "tetragonal"),
                     (167, "trigonal"), (194, "hexagonal"), (230, "cubic")):
        if number <= hi:
            return name
    return "unknown"


def plot_stats(stats: dict[str, Any], path: str | os.PathLike, *, top_elements: int = 40) -> Path:
    """PNG with the element histogram (top ``top_elements`` by atom count) and the space-group
    histogram; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 7), constrained_layout=True)
    els = sorted(stats["elements_structures"].items(), key=lambda kv: -kv[1])[:top_elements]
    ax1.bar(range(len(els)), [v for _, v in els], color="#3b75af")
    ax1.set_xticks(range(len(els)), [k for k, _ in els], rotation=90, fontsize=8)
    ax1.set_ylabel("structures containing")
    ax1.set_title(f"elements ({stats['num_structures']} structures)")
    sg = stats["space_groups"]
    ax2.bar([int(k) for k in sg], list(sg.values()), width=1.0, color="#c44e52")
    ax2.set_xlim(0.5, 230.5)
    ax2.set_xlabel("space group number")
    ax2.set_ylabel("structures")
    ax2.set_title(f"space groups ({stats['num_space_groups']} distinct, symprec {stats['symprec']})")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return atomic_write(path, lambda fh: fh.write(buf.getvalue()), mode="wb")

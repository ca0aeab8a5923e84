"""Training-set recipes: real crystals + random crystals + substituted topological prototypes, labelled.

A recipe is a small YAML file (see ``configs/data/default.yaml``) read by
``topodiff dataset recipe RECIPE --out DIR``. The command

1. takes rows of real CDVAE-style CSVs (``real:`` entries; optional ``take`` count, and a seeded
   ``holdout`` fraction written to ``DIR/heldout_<name>.csv`` and never trained on),
2. makes ``synth.num`` random crystals and ``prototypes.num`` prototype substitutions
   (:func:`topodiff.crystal.synth.synthesize`),
3. keeps cells with at most ``max_atoms`` atoms, merges everything into ``DIR/unlabelled.csv``
   (columns ``material_id``, ``source``, ``cif``),
4. labels every row with the Slater-Koster screen (:func:`topodiff.crystal.labelling.label_dataset`:
   resumable after a kill) into ``DIR/labelled.csv`` (``topo_class``, ``gap`` in eV, ``z2``) and adds
   the spglib space group (symprec 0.1),
5. splits the usable rows (label found) into ``DIR/train.csv`` and ``DIR/val.csv`` and writes the
   label distribution of every part to ``DIR/labels.json`` and ``DIR/labels.png``.

Every step is seeded, so the same recipe gives the same files. ``DIR`` is owned by one run
(:func:`topodiff.io_utils.claim_output_dir`) with the fingerprint of the recipe (every key but
``workers``), the contents of its real data files and the topodiff version: rerunning the same
recipe resumes (an interrupted labelling continues); a changed recipe or changed data is refused with
what differs, and ``--overwrite`` starts afresh — old crystals are never reused for a new recipe.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from topodiff.errors import TopodiffInputError
from topodiff.io_utils import atomic_write, atomic_write_json, claim_output_dir, fingerprint

RECIPE_KEYS = {"seed", "max_atoms", "real", "synth", "prototypes", "val_fraction", "workers"}
GAP_BINS = (0.0, 1e-6, 0.1, 0.3, 0.6, 1.0, 2.0, 4.0, np.inf)


def load_recipe(path: str | Path) -> dict[str, Any]:
    """Read and validate a recipe YAML."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise TopodiffInputError(f"recipe not found: {path}")
    try:
        recipe = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise TopodiffInputError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(recipe, dict):
        raise TopodiffInputError(f"{path}: a recipe is a mapping")
    unknown = sorted(set(recipe) - RECIPE_KEYS)
    if unknown:
        raise TopodiffInputError(f"{path}: unknown recipe key(s) {unknown}; known: {sorted(RECIPE_KEYS)}")
    for entry in recipe.get("real", []) or []:
        src = Path(entry.get("path", ""))
        if not src.is_absolute():
            src = (path.parent / src).resolve() if not src.exists() else src
        if not src.is_file():
            raise TopodiffInputError(f"{path}: real data file not found: {entry.get('path')}")
        entry["path"] = str(src)
    _check_numbers(recipe, path)
    return recipe


def _check_numbers(recipe: dict[str, Any], path: Path) -> None:
    """Every number of a recipe finite and in range (one error naming the key)."""
    from topodiff.commands._common import MAX_STRUCTURES, check_finite, check_int_range, check_seed

    def where(key: str) -> str:
        return f"{path}: {key}"

    check_seed(recipe.get("seed", 0), where("seed"))
    check_int_range(where("max_atoms"), recipe.get("max_atoms", 16), 1, 200)
    check_int_range(where("workers"), recipe.get("workers", 2), 1, 256)
    check_finite(where("val_fraction"), recipe.get("val_fraction", 0.05), lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    for kind in ("synth", "prototypes"):
        spec = recipe.get(kind) or {}
        if not isinstance(spec, dict):
            raise TopodiffInputError(f"{path}: {kind} must be a mapping")
        check_int_range(where(f"{kind}.num"), spec.get("num", 0), 0, MAX_STRUCTURES)
        if "max_atoms" in spec:
            check_int_range(where(f"{kind}.max_atoms"), spec["max_atoms"], 1, 200)
    for entry in recipe.get("real", []) or []:
        check_finite(where("holdout"), entry.get("holdout", 0.0), lo=0.0, hi=1.0, hi_open=True)
        for key in ("take", "num_atoms_max"):
            if key in entry:
                check_int_range(where(key), entry[key], 0 if key == "take" else 1)


def recipe_fingerprint(recipe: dict[str, Any]) -> str:
    """Fingerprint of what a recipe's output depends on: its keys except ``workers`` (real-data paths
    replaced by their files' contents) and the topodiff version."""
    options = {k: v for k, v in recipe.items() if k != "workers"}
    options["real"] = [{k: v for k, v in e.items() if k != "path"} for e in recipe.get("real", []) or []]
    return fingerprint(sources=[e["path"] for e in recipe.get("real", []) or []],
                       options={"job": "dataset-recipe", "recipe": options})


def _num_atoms(cif: Any) -> float:
    """Atoms in a CIF text; ``inf`` when it cannot be read (the row is then left out)."""
    from pymatgen.core import Structure

    from topodiff.crystal.io import quiet

    try:
        with quiet():
            return float(len(Structure.from_str(str(cif), fmt="cif")))
    except Exception:  # noqa: BLE001 - pymatgen raises many types on a broken CIF
        return float("inf")


def label_distribution(topo_class: list[Any], gap: np.ndarray) -> dict[str, Any]:
    """``{"n", "topo_class": {class: fraction}, "gap_histogram": {bin: count}}`` (gap in eV)."""
    from collections import Counter

    n = len(topo_class)
    counts = Counter("unlabelled" if (c is None or (isinstance(c, float) and np.isnan(c))) else str(c)
                     for c in topo_class)
    gap = np.asarray(gap, dtype=np.float64)
    hist, _ = np.histogram(gap[np.isfinite(gap)], bins=np.asarray(GAP_BINS))
    names = ["0 (metal/semimetal)"] + [f"{a:g}-{b:g}" for a, b in zip(GAP_BINS[1:-1], GAP_BINS[2:])]
    names[-1] = f">{GAP_BINS[-2]:g}"
    return {"n": n, "topo_class_counts": dict(sorted(counts.items())),
            "topo_class": {k: round(v / max(n, 1), 4) for k, v in sorted(counts.items())},
            "gap_histogram_eV": dict(zip(names, hist.tolist()))}


def _plot(dists: dict[str, dict[str, Any]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from topodiff.io_utils import atomic_write

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    parts = list(dists)
    classes = sorted({c for d in dists.values() for c in d["topo_class"]})
    x = np.arange(len(classes))
    w = 0.8 / max(len(parts), 1)
    for i, p in enumerate(parts):
        axes[0].bar(x + i * w, [dists[p]["topo_class"].get(c, 0.0) for c in classes], w, label=p)
        bins = list(dists[p]["gap_histogram_eV"])
        axes[1].bar(np.arange(len(bins)) + i * w, list(dists[p]["gap_histogram_eV"].values()), w, label=p)
    axes[0].set_xticks(x + 0.4 - w / 2, classes, rotation=20)
    axes[0].set_ylabel("fraction")
    axes[0].set_title("topo_class (Slater-Koster screen)")
    axes[1].set_xticks(np.arange(len(bins)) + 0.4 - w / 2, bins, rotation=30, fontsize=7)
    axes[1].set_ylabel("crystals")
    axes[1].set_title("screened gap (eV)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    atomic_write(png, lambda fh: fig.savefig(fh, format="png", dpi=110), mode="wb")
    plt.close(fig)


def build_from_recipe(recipe_path: str | Path, out_dir: str | Path, *, workers: int | None = None,
                      overwrite: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run a recipe into ``out_dir``; returns the label report (also ``out_dir/labels.json``).

    ``out_dir`` resumes a run of the same recipe and data; another run there is refused unless
    ``overwrite`` (which clears it; see the module docstring)."""
    import pandas as pd
    from pymatgen.core import Structure

    from topodiff.crystal.io import cif_text, quiet, space_group
    from topodiff.crystal.labelling import label_dataset
    from topodiff.crystal.splits import split_indices
    from topodiff.crystal.synth import synthesize

    recipe = load_recipe(recipe_path)
    out = claim_output_dir(out_dir, job="dataset-recipe", fingerprint=recipe_fingerprint(recipe),
                           overwrite=overwrite, resume=True)
    seed = int(recipe.get("seed", 0))
    max_atoms = int(recipe.get("max_atoms", 16))
    workers = int(workers or recipe.get("workers", 2))
    unlabelled = out / "unlabelled.csv"
    if not unlabelled.exists():
        ids, sources, cifs = [], [], []
        for k, entry in enumerate(recipe.get("real", []) or []):
            name = str(entry.get("name", Path(entry["path"]).parent.name))
            df = pd.read_csv(entry["path"])
            if "cif" not in df.columns:
                raise TopodiffInputError(f"{entry['path']}: no 'cif' column")
            order = np.random.default_rng([seed, k]).permutation(len(df))
            n_hold = int(round(float(entry.get("holdout", 0.0)) * len(df)))
            if n_hold:
                held = df.iloc[np.sort(order[:n_hold])]
                atomic_write(out / f"heldout_{name}.csv", lambda fh, held=held: held.to_csv(fh, index=False))
                log(f"{name}: {n_hold} rows held out -> {out / f'heldout_{name}.csv'}")
            rest = order[n_hold:]
            if "num_atoms_max" in entry or max_atoms:
                cap = int(entry.get("num_atoms_max", max_atoms))
                natoms = np.array([_num_atoms(df["cif"].iloc[i]) for i in rest])
                if np.isinf(natoms).any():
                    log(f"{name}: {int(np.isinf(natoms).sum())} unreadable CIF rows left out")
                rest = rest[natoms <= cap]
            take = int(entry.get("take", len(rest)))
            rest = np.sort(rest[:take])
            ids += [f"{name}-{df['material_id'].iloc[i] if 'material_id' in df.columns else i}" for i in rest]
            sources += [name] * len(rest)
            cifs += [df["cif"].iloc[i] for i in rest]
            log(f"{name}: {len(rest)} rows (≤ {max_atoms} atoms)")
        for kind, frac in (("synth", 0.0), ("prototypes", 1.0)):
            spec = recipe.get(kind) or {}
            num = int(spec.get("num", 0))
            if num <= 0:
                continue
            structs, info = synthesize(num, elements=spec.get("elements"), seed=seed + (1 if frac else 0),
                                       max_atoms=int(spec.get("max_atoms", max_atoms)), prototype_fraction=frac,
                                       prototypes=spec.get("names"), num_workers=workers, progress=True,
                                       return_info=True)
            keep = [i for i, s in enumerate(structs) if len(s) <= max_atoms]
            ids += [f"{kind}-{seed}-{i}" for i in keep]
            sources += [f"{kind}:{info[i]['prototype']}" if frac else kind for i in keep]
            cifs += [cif_text(structs[i]) for i in keep]
            log(f"{kind}: {len(keep)} crystals")
        table = pd.DataFrame({"material_id": ids, "source": sources, "cif": cifs})
        atomic_write(unlabelled, lambda fh: table.to_csv(fh, index=False))
    labelled = out / "labelled.csv"
    result = label_dataset(unlabelled, labelled, workers=workers, log=log)
    if not result.get("complete", True):
        raise TopodiffInputError("labelling did not complete; run the command again to resume")
    df = pd.read_csv(labelled)
    if "space_group_number" not in df.columns:
        with quiet():
            df["space_group_number"] = [space_group(Structure.from_str(c, fmt="cif"))[0] for c in df["cif"]]
    usable = df[df["topo_class"].notna()].reset_index(drop=True)
    if len(usable) == 0:
        raise TopodiffInputError("no crystal of the recipe could be labelled")
    parts = split_indices(len(usable), seed=seed, fractions=(1 - float(recipe.get("val_fraction", 0.05)),
                                                                 float(recipe.get("val_fraction", 0.05))))
    for name in ("train", "val"):
        part = usable.iloc[parts[name]]
        atomic_write(out / f"{name}.csv", lambda fh, part=part: part.to_csv(fh, index=False))
    dists = {"all": label_distribution(list(usable["topo_class"]), usable["gap"].to_numpy())}
    for src in sorted(usable["source"].map(lambda s: str(s).split(":")[0]).unique()):
        sub = usable[usable["source"].map(lambda s: str(s).split(":")[0]) == src]
        dists[src] = label_distribution(list(sub["topo_class"]), sub["gap"].to_numpy())
    for src in sorted(s for s in usable["source"].unique() if ":" in str(s)):
        sub = usable[usable["source"] == src]
        dists[src] = label_distribution(list(sub["topo_class"]), sub["gap"].to_numpy())
    for name in ("train", "val"):
        sub = usable.iloc[parts[name]]
        dists[name] = label_distribution(list(sub["topo_class"]), sub["gap"].to_numpy())
    report = {"recipe": str(recipe_path), "rows": int(len(df)), "usable": int(len(usable)),
              "unlabelled_errors": int(len(df) - len(usable)), "distributions": dists}
    atomic_write_json(out / "labels.json", report)
    _plot({k: v for k, v in dists.items() if k in ("all", "train", "val") or ":" not in k}, out / "labels.png")
    log(json.dumps(dists["all"]))
    return report

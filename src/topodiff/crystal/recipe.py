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

RECIPE_KEYS = {"seed", "max_atoms", "real", "synth", "prototypes", "val_fraction", "workers", "labels"}
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
    from topodiff.crystal.recipe_labels import check_label_spec

    if "labels" in recipe:
        recipe["labels"] = check_label_spec(recipe["labels"], path)
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
    sources = [e["path"] for e in recipe.get("real", []) or []]
    catalogue = (recipe.get("labels") or {}).get("catalogue")
    if catalogue:
        options["labels"] = {**recipe["labels"], "catalogue": "contents"}
        sources += sorted(str(p) for p in Path(catalogue).iterdir() if p.is_file())
    return fingerprint(sources=sources,
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


def _real_rows(entry: dict[str, Any], k: int, seed: int, max_atoms: int, out: Path,
               log: Callable[[str], None]) -> Any:
    """Rows of one ``real:`` entry: seeded holdout written aside, cells above the atom cap left out.

    Columns ``material_id`` (``NAME-ID``), ``source``, ``cif``, ``mp_id`` (the file's id), and the
    file's ``band_gap`` (eV) and space group where it has them (NaN otherwise)."""
    import pandas as pd

    name = str(entry.get("name", Path(entry["path"]).parent.name))
    df = pd.read_csv(entry["path"], dtype={"material_id": str})
    if "cif" not in df.columns:
        raise TopodiffInputError(f"{entry['path']}: no 'cif' column")
    order = np.random.default_rng([seed, k]).permutation(len(df))
    n_hold = int(round(float(entry.get("holdout", 0.0)) * len(df)))
    if n_hold:
        held = df.iloc[np.sort(order[:n_hold])]
        atomic_write(out / f"heldout_{name}.csv", lambda fh: held.to_csv(fh, index=False))
        log(f"{name}: {n_hold} rows held out -> {out / f'heldout_{name}.csv'}")
    rest = order[n_hold:]
    cap = int(entry.get("num_atoms_max", max_atoms))
    natoms = np.array([_num_atoms(df["cif"].iloc[i]) for i in rest])
    if np.isinf(natoms).any():
        log(f"{name}: {int(np.isinf(natoms).sum())} unreadable CIF rows left out")
    rest = np.sort(rest[natoms <= cap][:int(entry.get("take", len(rest)))])
    part = df.iloc[rest]
    ids = part["material_id"].astype(str) if "material_id" in part.columns else pd.Series(rest.astype(str))
    sg_col = next((c for c in ("spacegroup.number", "space_group_number") if c in part.columns), None)
    log(f"{name}: {len(part)} rows (≤ {cap} atoms)")
    return pd.DataFrame({"material_id": [f"{name}-{m}" for m in ids], "source": name, "cif": part["cif"].to_numpy(),
                         "mp_id": ids.to_numpy(),
                         "band_gap": part["band_gap"].to_numpy() if "band_gap" in part.columns else np.nan,
                         "space_group_number": part[sg_col].to_numpy() if sg_col else np.nan})


def _synthetic_rows(recipe: dict[str, Any], seed: int, max_atoms: int, workers: int,
                    log: Callable[[str], None]) -> Any:
    """Random (``synth``) and prototype-substitution (``prototypes``) crystals of a recipe."""
    import pandas as pd

    from topodiff.crystal.io import cif_text
    from topodiff.crystal.synth import synthesize

    ids, sources, cifs = [], [], []
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
    return pd.DataFrame({"material_id": ids, "source": sources, "cif": cifs, "mp_id": "",
                         "band_gap": np.nan, "space_group_number": np.nan})


def _screened(df: Any, spec: dict[str, Any], out: Path, workers: int, log: Callable[[str], None]) -> Any:
    """``df`` with the Slater-Koster screen's ``topo_class``, ``gap`` (eV), ``z2`` and ``label_error``
    for the rows whose source kind is in ``labels.screen`` (every row when absent); resumable."""
    import pandas as pd

    from topodiff.crystal.labelling import LABEL_COLUMNS, label_dataset

    kinds = df["source"].map(lambda s: str(s).split(":")[0])
    chosen = kinds.isin(spec["screen"]) if "screen" in spec else pd.Series(True, index=df.index)
    df = df.assign(screened=chosen.to_numpy())
    if not chosen.any():
        return df.assign(**{c: np.nan for c in LABEL_COLUMNS})
    to_screen = out / "to_screen.csv"
    if not to_screen.exists():
        part = df.loc[chosen, ["material_id", "source", "cif"]]
        atomic_write(to_screen, lambda fh: part.to_csv(fh, index=False))
    result = label_dataset(to_screen, out / "screened.csv", workers=workers, log=log)
    if not result.get("complete", True):
        raise TopodiffInputError("labelling did not complete; run the command again to resume")
    labels = pd.read_csv(out / "screened.csv", dtype={"material_id": str})[["material_id", *LABEL_COLUMNS]]
    return df.merge(labels, on="material_id", how="left")


def _add_space_groups(df: Any, structures: list[Any]) -> None:
    """Fill missing ``space_group_number`` with spglib's (symprec 0.1 Å)."""
    from topodiff.crystal.io import quiet, space_group

    sg = np.array(df["space_group_number"], dtype=np.float64)
    with quiet():
        for i in np.flatnonzero(~np.isfinite(sg)):
            if structures[i] is not None:
                sg[i] = space_group(structures[i])[0]
    df["space_group_number"] = sg


def _structures(cifs: Any) -> list[Any]:
    from pymatgen.core import Structure

    from topodiff.crystal.io import quiet

    out = []
    with quiet():
        for c in cifs:
            try:
                out.append(Structure.from_str(str(c), fmt="cif"))
            except Exception:  # noqa: BLE001 - a broken CIF is a row without a structure
                out.append(None)
    return out


def _labelled(recipe: dict[str, Any], out: Path, workers: int, log: Callable[[str], None]) -> Any:
    """Build (or resume) ``labelled.csv``: every crystal of the recipe with its labels."""
    import pandas as pd

    from topodiff.crystal.recipe_labels import add_catalogue_labels

    seed, max_atoms = int(recipe.get("seed", 0)), int(recipe.get("max_atoms", 16))
    spec = recipe.get("labels") or {}
    labelled = out / "labelled.csv"
    if labelled.exists():
        return pd.read_csv(labelled, dtype={"material_id": str, "mp_id": str})
    unlabelled = out / "unlabelled.csv"
    if not unlabelled.exists():
        parts = [_real_rows(e, k, seed, max_atoms, out, log) for k, e in enumerate(recipe.get("real", []) or [])]
        table = pd.concat(parts + [_synthetic_rows(recipe, seed, max_atoms, workers, log)], ignore_index=True)
        atomic_write(unlabelled, lambda fh: table.to_csv(fh, index=False))
    df = _screened(pd.read_csv(unlabelled, dtype={"material_id": str, "mp_id": str}), spec, out, workers, log)
    structures = _structures(df["cif"])
    _add_space_groups(df, structures)
    if spec.get("catalogue") or spec.get("judge"):
        log(json.dumps(add_catalogue_labels(df, structures, spec, log)))
    atomic_write(labelled, lambda fh: df.to_csv(fh, index=False))
    return df


def _class_counts(df: Any) -> dict[str, Any]:
    """``catalogue_class`` counts per label source (empty without catalogue labels)."""
    if "catalogue_class" not in df.columns:
        return {}
    src = df["catalogue_source"].fillna("")
    return {s or "none": df.loc[src == s, "catalogue_class"].fillna("none").value_counts().to_dict()
            for s in sorted(src.unique())}


def build_from_recipe(recipe_path: str | Path, out_dir: str | Path, *, workers: int | None = None,
                      overwrite: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run a recipe into ``out_dir``; returns the label report (also ``out_dir/labels.json``).

    ``out_dir`` resumes a run of the same recipe and data; another run there is refused unless
    ``overwrite`` (which clears it; see the module docstring)."""
    from topodiff.crystal.splits import split_indices

    recipe = load_recipe(recipe_path)
    out = claim_output_dir(out_dir, job="dataset-recipe", fingerprint=recipe_fingerprint(recipe),
                           overwrite=overwrite, resume=True)
    seed = int(recipe.get("seed", 0))
    df = _labelled(recipe, out, int(workers or recipe.get("workers", 2)), log)
    usable = df[~df["screened"].astype(bool) | df["topo_class"].notna()].reset_index(drop=True)
    if len(usable) == 0:
        raise TopodiffInputError("no crystal of the recipe could be labelled")
    val_fraction = float(recipe.get("val_fraction", 0.05))
    parts = split_indices(len(usable), seed=seed, fractions=(1 - val_fraction, val_fraction))
    for name in ("train", "val"):
        part = usable.iloc[parts[name]].drop(columns=["screened"])
        atomic_write(out / f"{name}.csv", lambda fh, part=part: part.to_csv(fh, index=False))
    kind = usable["source"].map(lambda s: str(s).split(":")[0])
    subsets = {"all": usable, "train": usable.iloc[parts["train"]], "val": usable.iloc[parts["val"]]}
    subsets.update({k: usable[kind == k] for k in sorted(kind.unique())})
    subsets.update({s: usable[usable["source"] == s] for s in sorted(usable["source"].unique()) if ":" in str(s)})
    dists = {name: {**label_distribution(list(sub["topo_class"]), sub["gap"].to_numpy()),
                    "catalogue_class": _class_counts(sub)} for name, sub in subsets.items()}
    report = {"recipe": str(recipe_path), "rows": int(len(df)), "usable": int(len(usable)),
              "unlabelled_errors": int(len(df) - len(usable)), "distributions": dists}
    atomic_write_json(out / "labels.json", report)
    _plot({k: v for k, v in dists.items() if k in ("all", "train", "val") or ":" not in k}, out / "labels.png")
    log(json.dumps(dists["all"]))
    return report

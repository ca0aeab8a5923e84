"""``topodiff dataset build|stats|synth``: crystal dataset cache, statistics, synthetic crystals.

Thin wrappers: parse options, call :mod:`topodiff.crystal`, print. Other modules add sub-commands
to :data:`dataset_app` (e.g. ``label``).
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path
from typing import List, Optional

import typer

from topodiff.commands._common import (check_count, check_finite, check_int_range, check_seed, check_workers,
                                       print_json)
from topodiff.crystal.symmetry import SYMPREC
from topodiff.errors import TopodiffInputError

dataset_app = typer.Typer(help="Crystal datasets: build the flat-array cache, statistics, synthetic crystals.",
                          no_args_is_help=True)


MAX_SYMPREC = 5.0       # Å: spglib tolerances beyond this merge distinct atoms (NaN segfaulted spglib)
MAX_SYNTH_ATOMS = 200   # atoms in a pyxtal conventional cell
MAX_DENSITY = 50.0      # g/cm³ (osmium: 22.6)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


def _split_list(values: Optional[List[str]]) -> Optional[list[str]]:
    if not values:
        return None
    out = [v.strip() for item in values for v in item.replace(" ", ",").split(",") if v.strip()]
    return out or None


@dataset_app.command("build")
def build(source: Path = typer.Argument(..., help="CIF/POSCAR/extxyz/CDVAE-CSV file, a directory of them, "
                                                  "or a `generate` output directory."),
          out: Optional[Path] = typer.Option(None, "--out", help="Cache directory (default: in the user cache, "
                                                                 "$TOPODIFF_CACHE or ~/.cache/topodiff, named by "
                                                                 "the source's content hash)."),
          standardize: bool = typer.Option(False, "--standardize", help="Store Niggli-reduced primitive cells."),
          force: bool = typer.Option(False, "--force", help="Rebuild even if the cache is current."),
          workers: Optional[int] = typer.Option(None, "--workers", help="Parser processes (default: automatic)."),
          json_out: bool = typer.Option(False, "--json", help="Print the manifest as one JSON object.")) -> None:
    """Build (or refresh) the flat-array cache of SOURCE; rebuilds only when SOURCE changed."""
    from topodiff.crystal.dataset import cache_manifest, load_dataset

    workers = check_workers(workers)
    t0 = time.perf_counter()
    before = cache_manifest(source, cache_dir=out, standardize=standardize) if source.exists() else None
    data = load_dataset(source, cache_dir=out, standardize=standardize, num_workers=workers, rebuild=force)
    manifest = cache_manifest(source, cache_dir=out, standardize=standardize) or {}
    rebuilt = before is None or before.get("built_at") != manifest.get("built_at") or force
    info = {k: v for k, v in manifest.items() if k != "properties"}
    info.update({"cache_dir": str(Path(data.frac.filename).parent) if hasattr(data.frac, "filename") else None,
                 "properties": list(manifest.get("properties", {})), "rebuilt": bool(rebuilt),
                 "seconds": round(time.perf_counter() - t0, 3)})
    if json_out:
        print_json(info)
        return
    state = "built" if rebuilt else "up to date"
    print(f"{info['cache_dir']}: {state}, {info.get('num_structures')} structures, "
          f"{info.get('num_atoms_total')} atoms, {info.get('skipped', 0)} skipped")
    for ex in info.get("skipped_examples", [])[:5]:
        _log(f"  skipped {ex['source']}: {ex['error']}")


@dataset_app.command("stats")
def stats(source: Path = typer.Argument(..., help="Anything `dataset build` accepts, or a built cache."),
          png: Optional[Path] = typer.Option(None, "--png", help="Write element and space-group histograms here."),
          symprec: float = typer.Option(SYMPREC, "--symprec", help="spglib symmetry tolerance (Å); "
                                        "default the project's (topodiff.crystal.symmetry)."),
          no_cache: bool = typer.Option(False, "--no-cache", help="Read SOURCE directly; write no cache."),
          json_out: bool = typer.Option(False, "--json", help="Print the statistics as one JSON object.")) -> None:
    """Counts, element histogram and space-group histogram of a dataset."""
    from topodiff.crystal.dataset import build_arrays, cache_manifest, load_dataset
    from topodiff.crystal.stats import dataset_stats, plot_stats

    symprec = check_finite("--symprec", symprec, lo=0.0, hi=MAX_SYMPREC, lo_open=True)
    if no_cache:
        if not source.exists():
            raise TopodiffInputError(f"no such file or directory: {source}")
        arrays, skipped = build_arrays(source)
        manifest = {"skipped": len(skipped), "source": str(source)}
        if len(arrays) == 0:
            raise TopodiffInputError(f"{source}: no usable structures")
    else:
        arrays = load_dataset(source)
        manifest = cache_manifest(source)
    result = dataset_stats(arrays, symprec=symprec, manifest=manifest)
    if png is not None:
        plot_stats(result, png)
        result["png"] = str(png)
    if json_out:
        print_json(result)
        return
    print(f"{result['num_structures']} structures, {result['num_atoms_total']} atoms "
          f"({result['atoms_per_structure']['min']:.0f}-{result['atoms_per_structure']['max']:.0f} per cell), "
          f"{len(result['elements'])} elements, {result['num_space_groups']} space groups, "
          f"{result.get('skipped', 0)} skipped")
    top = ", ".join(f"{k} {v}" for k, v in list(result["elements_structures"].items())[:12])
    print(f"elements (structures containing): {top}")
    sg = sorted(result["space_groups"].items(), key=lambda kv: -kv[1])[:10]
    print("space groups: " + ", ".join(f"{k}: {v}" for k, v in sg))
    if png is not None:
        print(f"figure: {png}")


@dataset_app.command("synth")
def synth(num: int = typer.Option(..., "--num", help="Number of crystals."),
          out: Path = typer.Option(..., "--out", help="Output file: .csv (CDVAE layout, `cif` column) or .extxyz."),
          elements: Optional[List[str]] = typer.Option(None, "--elements",
                                                       help="Chemical space, e.g. Bi,Se,Te (default: topological "
                                                            "elements mixed with common partners)."),
          seed: int = typer.Option(0, "--seed", help="Random seed (crystal i depends only on seed and i)."),
          max_atoms: int = typer.Option(20, "--max-atoms", help="Most atoms in the conventional cell."),
          min_distance: float = typer.Option(1.0, "--min-distance", help="Smallest interatomic distance (Å)."),
          density_min: float = typer.Option(0.5, "--density-min", help="Lowest density (g/cm³)."),
          density_max: float = typer.Option(25.0, "--density-max", help="Highest density (g/cm³)."),
          charge_balance: bool = typer.Option(False, "--charge-balance", help="Require SMACT charge balance."),
          space_groups: Optional[List[str]] = typer.Option(None, "--space-groups",
                                                           help="Allowed space-group numbers, e.g. 166,225."),
          conventional: bool = typer.Option(False, "--conventional", help="Keep pyxtal's conventional cells "
                                                                          "(default: Niggli primitive)."),
          prototype_fraction: float = typer.Option(0.0, "--prototype-fraction",
                                                   help="Share of crystals made by substitution into known "
                                                        "topological prototypes (0-1)."),
          prototypes: Optional[List[str]] = typer.Option(None, "--prototypes",
                                                         help="Restrict to these prototypes: tetradymite, "
                                                              "rocksalt, zincblende, na3bi, half_heusler, a7."),
          workers: int = typer.Option(1, "--workers", help="Processes (results do not depend on it)."),
          json_out: bool = typer.Option(False, "--json", help="Print a summary as one JSON object.")) -> None:
    """Random crystals from pyxtal with Materials Project space-group/Wyckoff statistics (optionally
    mixed with substituted topological prototypes), filtered for quality."""
    from topodiff.crystal.io import space_group, write_csv, write_structures
    from topodiff.crystal.synth import synthesize

    suffix = out.suffix.lower()
    if suffix not in (".csv", ".extxyz", ".xyz"):
        raise TopodiffInputError(f"--out must end in .csv or .extxyz, got {out.name!r}")
    num = check_count("--num", num)
    seed = check_seed(seed)
    workers = check_workers(workers)
    max_atoms = check_int_range("--max-atoms", max_atoms, 1, MAX_SYNTH_ATOMS, why="pyxtal cells beyond this "
                                "take minutes each")
    min_distance = check_finite("--min-distance", min_distance, lo=0.0, hi=5.0)
    density_min = check_finite("--density-min", density_min, lo=0.0, hi=MAX_DENSITY)
    density_max = check_finite("--density-max", density_max, lo=0.0, hi=MAX_DENSITY)
    prototype_fraction = check_finite("--prototype-fraction", prototype_fraction, lo=0.0, hi=1.0)
    sgs = None
    if space_groups:
        try:
            sgs = [int(s) for s in _split_list(space_groups) or []]
        except ValueError:
            raise TopodiffInputError(f"--space-groups expects integers, got {space_groups}") from None
    t0 = time.perf_counter()
    structures, info = synthesize(num, elements=_split_list(elements), seed=seed, max_atoms=max_atoms,
                                  min_distance=min_distance, density_range=(density_min, density_max),
                                  charge_balance=charge_balance, space_groups=sgs, standardize=not conventional,
                                  num_workers=workers, progress=True, return_info=True,
                                  prototype_fraction=prototype_fraction, prototypes=_split_list(prototypes))
    seconds = time.perf_counter() - t0
    groups = [space_group(s) for s in structures]
    ids = [f"synth-{seed}-{i}" for i in range(num)]
    columns = {"material_id": ids, "space_group_number": [g[0] for g in groups],
               "space_group_symbol": [g[1] for g in groups], "num_atoms": [len(s) for s in structures],
               "density": [float(s.density) for s in structures],
               "wyckoff": [i["wyckoff"] for i in info], "prototype": [i["prototype"] for i in info]}
    if suffix == ".csv":
        write_csv(structures, out, columns)
    else:
        frames = [{"material_id": ids[i], "formula": structures[i].composition.reduced_formula,
                   "space_group_number": groups[i][0], "wyckoff": info[i]["wyckoff"],
                   "prototype": info[i]["prototype"]} for i in range(num)]
        write_structures(structures, out, info=frames)
    summary = {"out": str(out), "num": num, "seed": seed, "seconds": round(seconds, 3),
               "crystals_per_second": round(num / seconds, 3) if seconds > 0 else None,
               "num_space_groups": len({g[0] for g in groups}),
               "atoms_per_structure_mean": float(sum(len(s) for s in structures) / num),
               "prototypes": dict(Counter(i["prototype"] for i in info).most_common())}
    if json_out:
        print_json(summary)
    else:
        print(f"wrote {num} crystals to {out} in {seconds:.1f} s "
              f"({summary['num_space_groups']} space groups, {summary['atoms_per_structure_mean']:.1f} atoms/cell)")


@dataset_app.command("recipe")
def recipe(path: Path = typer.Argument(..., help="Recipe YAML (e.g. configs/data/default.yaml)."),
           out: Path = typer.Option(..., "--out", help="Output directory (train.csv, val.csv, labels.json, ...)."),
           workers: Optional[int] = typer.Option(None, "--workers", help="Processes (default: the recipe's)."),
           overwrite: bool = typer.Option(False, "--overwrite", help="Clear OUT when it holds another run (another "
                                                                     "recipe or data) and start afresh.")) -> None:
    """Build a labelled training set from a recipe: real + random + prototype crystals. Rerunning the
    same recipe resumes; a changed recipe or changed data is refused (see --overwrite)."""
    from topodiff.crystal.recipe import build_from_recipe

    report = build_from_recipe(path, out, workers=check_workers(workers), overwrite=overwrite, log=_log)
    print(f"{report['usable']} labelled crystals in {out} ({report['unlabelled_errors']} could not be labelled); "
          f"classes: {report['distributions']['all']['topo_class']}")


def register(app: typer.Typer) -> None:
    """Add ``topodiff dataset ...`` to the main app."""
    app.add_typer(dataset_app, name="dataset")

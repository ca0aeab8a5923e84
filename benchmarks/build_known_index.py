"""Build ``src/topodiff/data/known_crystals.npz``, the index of known crystals used for novelty.

Recipe: every structure of the crystal sets in ``../shared/data`` — ``mp_20/{train,test}``,
``mpts_52/{val,test}``, ``mp_40/test``, ``perov_5/{val,test}``, ``carbon_24/{val,test}`` (one row per
Materials Project id; perov_5 / carbon_24 rows by file row id) — as (reduced formula, space group at
0.1 Å, scale-free RDF fingerprint of ``topodiff.evaluation.known``), 63 elemental crystals in ASE's
reference states (``ase.build.bulk``: fcc / bcc / hcp / diamond / sc), plus the reduced formulas of
the 46,918 DFT hull entries (``hull/mp_formation_energies.csv.gz``) that have no structure here, the
formulas whose hull entries are not all here (``incomplete``), and the (reduced formula, space group)
pairs of the DFT topology catalogues (``topology/materiae.csv.gz``, ``topology/topogivity.csv.gz``).
A set is fingerprinted once and cached under ``runs/known_index/`` (resumable).

``--check N`` measures the fingerprint rule against pymatgen's StructureMatcher (ltol 0.2,
stol 0.3, angle_tol 5) on N random same-formula pairs of known crystals and N perturbed copies
(rattle 0.05 Å, random 3 % strain) of random known crystals, and prints the confusion matrix.

Usage::

    nice -n 5 python benchmarks/build_known_index.py            # build (≈ 20 min on one core)
    python benchmarks/build_known_index.py --check 300 --seed 0   # measure vs StructureMatcher
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
CACHE = ROOT / "runs" / "known_index"
SETS = ("mp_20/train.csv.gz", "mp_20/test.csv.gz", "mpts_52/val.csv.gz", "mpts_52/test.csv.gz",
        "mp_40/test.csv", "perov_5/val.csv", "perov_5/test.csv", "carbon_24/val.csv", "carbon_24/test.csv")


def _ids(name: str, df) -> list[str]:
    if name.startswith(("mp_", "mpts_")):
        return [str(x) for x in df["material_id"]]
    return [f"{name.split('/')[0]}:{x}" for x in df["material_id"]]


def p1_structure(cif: str):
    """Fast reader of the P1 CIFs pymatgen writes (all sites listed, occupancy 1); falls back to
    pymatgen's CIF parser for anything else. Checked against pymatgen in :func:`fingerprint_set`."""
    from pymatgen.core import Lattice, Structure

    lines = [ln.strip() for ln in cif.splitlines()]
    if "_symmetry_space_group_name_H-M   'P 1'" not in lines:
        return Structure.from_str(cif, fmt="cif")
    cell = {ln.split()[0]: float(ln.split()[1]) for ln in lines if ln.startswith(("_cell_length_", "_cell_angle_"))}
    start = max(i for i, ln in enumerate(lines) if ln == "loop_")
    keys = [ln for ln in lines[start + 1:] if ln.startswith("_atom_site_")]
    col = {k: i for i, k in enumerate(keys)}
    sites = [ln.split() for ln in lines[start + 1 + len(keys):] if ln]
    if any(float(t[col["_atom_site_occupancy"]]) != 1.0 for t in sites):
        return Structure.from_str(cif, fmt="cif")
    lat = Lattice.from_parameters(*(cell[f"_cell_length_{x}"] for x in "abc"),
                                  *(cell[f"_cell_angle_{x}"] for x in ("alpha", "beta", "gamma")))
    coords = [[float(t[col[f"_atom_site_fract_{x}"]]) for x in "xyz"] for t in sites]
    return Structure(lat, [t[col["_atom_site_type_symbol"]] for t in sites], coords)


def fingerprint_set(name: str) -> dict[str, np.ndarray]:
    """(ids, formulas, space groups, fingerprints) of one structure file, cached as npz."""
    import pandas as pd
    from pymatgen.core import Structure

    from topodiff.evaluation.known import space_group, structure_fingerprint

    cache = CACHE / (name.replace("/", "_").split(".")[0] + ".npz")
    if cache.exists():
        with np.load(cache) as z:
            return {k: z[k] for k in z.files}
    df = pd.read_csv(DATA / name)
    ids, forms, sgs, fps = [], [], [], []
    t0 = time.time()
    for cif in df["cif"].iloc[:20]:                       # the fast reader agrees with pymatgen's
        a, b = p1_structure(cif), Structure.from_str(cif, fmt="cif")
        assert np.allclose(structure_fingerprint(a), structure_fingerprint(b), atol=1e-4), name
    for mid, cif in zip(_ids(name, df), df["cif"]):
        try:
            s = p1_structure(cif)
            fp = structure_fingerprint(s)
        except Exception as exc:
            print(f"{name} {mid}: skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
            continue
        ids.append(mid)
        forms.append(s.composition.reduced_formula)
        sgs.append(space_group(s))
        fps.append(fp)
    out = {"ids": np.array(ids, dtype=str), "formulas": np.array(forms, dtype=str),
           "space_groups": np.array(sgs, dtype=np.int16), "fingerprints": np.array(fps)}
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **out)
    print(f"{name}: {len(ids)} crystals in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    return out


def elemental_crystals() -> dict[str, np.ndarray]:
    """Elemental crystals in their ASE reference states (fcc, bcc, hcp, diamond, simple cubic:
    ``ase.build.bulk`` with ``ase.data.reference_states``), e.g. diamond Si — the structure sets
    above hold few elemental ground states."""
    from ase.build import bulk
    from ase.data import chemical_symbols, reference_states
    from pymatgen.io.ase import AseAtomsAdaptor

    from topodiff.evaluation.known import space_group, structure_fingerprint

    ids, forms, sgs, fps = [], [], [], []
    for z, ref in enumerate(reference_states):
        if not ref or ref.get("symmetry") not in ("fcc", "bcc", "hcp", "diamond", "sc"):
            continue
        try:
            s = AseAtomsAdaptor.get_structure(bulk(chemical_symbols[z]))
        except Exception:
            continue
        ids.append(f"ase:{chemical_symbols[z]}-{ref['symmetry']}")
        forms.append(s.composition.reduced_formula)
        sgs.append(space_group(s))
        fps.append(structure_fingerprint(s))
    return {"ids": np.array(ids, dtype=str), "formulas": np.array(forms, dtype=str),
            "space_groups": np.array(sgs, dtype=np.int16), "fingerprints": np.array(fps)}


def catalogue_pairs() -> dict[str, str]:
    """(reduced formula, space group) -> a catalogue row id, from Materiae and Tang et al."""
    import pandas as pd
    from pymatgen.core import Composition

    pairs: dict[str, str] = {}
    materiae = pd.read_csv(DATA / "topology" / "materiae.csv.gz", usecols=["material_id", "formula", "spacegroup"])
    tang = pd.read_csv(DATA / "topology" / "topogivity.csv.gz")
    rows = [(f, sg, f"materiae:{mid}") for mid, f, sg in materiae[["material_id", "formula", "spacegroup"]].itertuples(index=False)]
    rows += [(f, sg, f"tang:{f}@{sg}") for sg, f in tang[["spacegroup", "reduced_formula"]].itertuples(index=False)]
    for formula, sg, row_id in rows:
        try:
            key = f"{Composition(str(formula)).reduced_formula}#{int(sg)}"
        except (ValueError, KeyError):
            continue
        pairs.setdefault(key, row_id)
    return pairs


def build(out_path: Path) -> dict[str, object]:
    import pandas as pd
    from pymatgen.core import Composition

    from topodiff.evaluation.known import KnownIndex

    seen: dict[str, int] = {}
    ids, forms, sgs, fps = [], [], [], []
    sources: dict[str, int] = {}
    for name in (*SETS, "ase reference states (elements)"):
        part = fingerprint_set(name) if name in SETS else elemental_crystals()
        kept = 0
        for i, mid in enumerate(part["ids"].tolist()):
            if mid in seen:              # the same MP id in two sets: keep the first
                continue
            seen[mid] = len(ids)
            ids.append(mid)
            forms.append(part["formulas"][i])
            sgs.append(part["space_groups"][i])
            fps.append(part["fingerprints"][i])
            kept += 1
        sources[name] = kept
    hull = pd.read_csv(DATA / "hull" / "mp_formation_energies.csv.gz")
    hull["formula"] = [Composition(c).reduced_formula for c in hull["comp"]]
    hull_formulas = sorted(set(hull["formula"]))
    sources["hull/mp_formation_energies.csv.gz (formulas)"] = len(hull_formulas)
    incomplete = sorted(set(hull.loc[~hull["material_id"].isin(seen), "formula"]))
    pairs = catalogue_pairs()
    sources["topology catalogues (formula + space group)"] = len(pairs)
    index = KnownIndex(forms, np.array(sgs), np.array(fps), ids, hull_formulas, sources, pairs, incomplete)
    index.save(out_path)
    return {"crystals": len(index), "formulas": index.num_formulas,
            "composition_only_formulas": len(index.composition_only), "incomplete_formulas": len(incomplete),
            "catalogue_pairs": len(pairs), "sources": sources,
            "bytes": out_path.stat().st_size}


def _perturbed(s, rng):
    from pymatgen.core import Lattice, Structure

    strain = np.eye(3) + rng.uniform(-0.03, 0.03, size=(3, 3))
    lat = Lattice(s.lattice.matrix @ strain)
    cart = lat.get_cartesian_coords(s.frac_coords) + rng.normal(scale=0.05, size=(len(s), 3))
    return Structure(lat, s.species, cart, coords_are_cartesian=True)


def check(n: int, seed: int) -> dict[str, object]:
    """Fingerprint rule vs StructureMatcher on same-formula pairs and perturbed copies."""
    import pandas as pd
    from pymatgen.core import Structure

    from topodiff.evaluation.known import MATCH_TOL, SG_MATCH_TOL, space_group, structure_fingerprint
    from topodiff.evaluation.metrics import generation_matcher

    rng = np.random.default_rng(seed)
    frames = [pd.read_csv(DATA / name)[["cif"]] for name in SETS]
    df = pd.concat(frames, ignore_index=True)
    structs: dict[int, Structure] = {}

    def get(i: int) -> Structure:
        if i not in structs:
            structs[i] = Structure.from_str(df["cif"].iloc[i], fmt="cif")
        return structs[i]

    parts = {name: fingerprint_set(name) for name in SETS}
    formulas = np.concatenate([parts[name]["formulas"] for name in SETS])
    by_formula: dict[str, list[int]] = {}
    for i, f in enumerate(formulas):
        by_formula.setdefault(str(f), []).append(i)
    multi = [v for v in by_formula.values() if len(v) > 1]
    matcher = generation_matcher()
    rows = []
    for kind in ("pair", "perturbed"):
        for _ in range(n):
            if kind == "pair":
                group = multi[rng.integers(len(multi))]
                i, j = rng.choice(group, size=2, replace=False)
                a, b = get(int(i)), get(int(j))
            else:
                a = get(int(rng.integers(len(df))))
                b = _perturbed(a, rng)
            d = float(np.abs(structure_fingerprint(a) - structure_fingerprint(b)).mean())
            sg_a = space_group(a)
            rows.append((kind, bool(matcher.fit(a, b)), d, sg_a != 0 and sg_a == space_group(b)))
    out: dict[str, object] = {"n_per_kind": n, "seed": seed, "match_tol": MATCH_TOL, "sg_match_tol": SG_MATCH_TOL}
    sm = np.array([r[1] for r in rows])
    dist = np.array([r[2] for r in rows])
    same_sg = np.array([r[3] for r in rows])
    rules = {f"tol_{t}": dist < t for t in (0.02, 0.03, 0.05, 0.08, 0.12)}
    rules["rule_used"] = (dist < MATCH_TOL) | (same_sg & (dist < SG_MATCH_TOL))
    for name, fp in rules.items():
        out[name] = {"both_match": int((sm & fp).sum()), "sm_only": int((sm & ~fp).sum()),
                             "fp_only": int((~sm & fp).sum()), "neither": int((~sm & ~fp).sum()),
                             "agreement": round(float((sm == fp).mean()), 4)}
    out["structurematcher_matches"] = int(sm.sum())
    return out


def main() -> int:
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "src" / "topodiff" / "data" / "known_crystals.npz"))
    ap.add_argument("--check", type=int, default=0, help="measure vs StructureMatcher on N pairs per kind")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not DATA.exists():
        print(f"error: {DATA} not found (the build needs ../shared/data)", file=sys.stderr)
        return 2
    result = check(args.check, args.seed) if args.check else build(Path(args.out))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

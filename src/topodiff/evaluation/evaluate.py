"""Evaluate a set of (generated) crystals: validity, uniqueness, novelty, coverage, distribution
distances, optional CHGNet relaxation + energy above hull, and the topology screen.

Entry points: :func:`load_entries` (read a path, keeping crystals that fail the reader's overlap
check so that they count as structurally invalid), :func:`evaluate_entries` (the metrics) and
:func:`evaluate_path` (read → evaluate → write ``metrics.json``, ``structures.csv`` and, with
relaxation, ``relaxed.extxyz`` into an output directory).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from pymatgen.core import Structure

from topodiff.errors import TopodiffInputError
from topodiff.evaluation import metrics as M

#: Largest reference sample whose CrystalNN fingerprints are computed for COV (≈0.2 s per 5-atom
#: crystal on one core); COV-R is then an unbiased estimate, COV-P a lower bound.
MAX_COV_REFERENCE = 300

RECOVERABLE = ("overlapping atoms", "degenerate cell")


@dataclass
class Entry:
    """One input crystal: ``structure`` is None only when it could not be parsed at all."""

    source: str
    structure: Structure | None
    error: str | None = None
    labels: dict[str, Any] = field(default_factory=dict)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _raw_structure(source: str) -> Structure | None:
    """Re-read an entry the reader rejected for overlapping atoms (it still is a crystal)."""
    from pymatgen.io.ase import AseAtomsAdaptor

    path, _, frame = source.partition("#")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            low = path.lower()
            if low.endswith((".extxyz", ".xyz")):
                import ase.io

                atoms = ase.io.read(path, index=int(frame or 0), format="extxyz")
                return AseAtomsAdaptor.get_structure(atoms)
            if low.endswith(".cif") and not frame:
                return Structure.from_file(path)
        except Exception:
            return None
    return None


def load_entries(path: str | os.PathLike) -> list[Entry]:
    """Read all crystals in ``path`` (``topodiff.crystal.io.read_structures`` formats).

    Unparseable entries keep ``structure=None`` and their error; overlapping-atom crystals are
    re-read raw so that validity metrics see them.
    """
    from topodiff.crystal.io import read_structures

    out = []
    for rec in read_structures(path):
        s = rec.structure
        if s is None and rec.error and rec.error.startswith(RECOVERABLE):
            s = _raw_structure(rec.source)
        labels = {**getattr(rec, "labels", {}), **getattr(rec, "properties", {})}
        out.append(Entry(rec.source, s, rec.error, labels))
    return out


def load_reference(paths: Sequence[str | os.PathLike]) -> list[Structure]:
    """Readable structures of one or more reference files (CDVAE CSV, extxyz, CIF directory)."""
    from topodiff.crystal.io import read_structures

    ref: list[Structure] = []
    for p in paths:
        recs = read_structures(p)
        ref.extend(r.structure for r in recs if r.structure is not None)
    if not ref:
        raise TopodiffInputError(f"reference {', '.join(map(str, paths))}: no readable structures")
    return ref


def guess_dataset(paths: Sequence[str | os.PathLike]) -> str:
    """COV cutoff family from the reference file names (perov / carbon / otherwise MP-20)."""
    text = " ".join(str(p).lower() for p in paths)
    if "perov" in text:
        return "perovskite"
    if "carbon" in text:
        return "carbon"
    return "mp20"


def _cache_dir() -> Path:
    base = os.environ.get("TOPODIFF_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "topodiff")
    return Path(base) / "fingerprints"


def _struct_fps(structures: Sequence[Structure]) -> np.ndarray:
    from topodiff.evaluation.fingerprints import STRUCT_FP_DIM, structure_fingerprint

    out = np.full((len(structures), STRUCT_FP_DIM), np.nan)
    for i, s in enumerate(structures):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[i] = structure_fingerprint(s)
        except Exception:  # CDVAE counts a crystal whose fingerprint fails as invalid
            pass
    return out


def reference_fingerprints(reference: Sequence[Structure], *, max_n: int = MAX_COV_REFERENCE,
                           seed: int = 0, cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Structure ``[m, 61]`` and composition ``[m, 114]`` fingerprints of (a random sample of at
    most ``max_n``) reference crystals, cached on disk by content hash."""
    from topodiff.evaluation.fingerprints import composition_fingerprints

    idx = np.arange(len(reference))
    if len(idx) > max_n:
        idx = np.sort(np.random.default_rng(seed).choice(len(idx), size=max_n, replace=False))
    sample = [reference[i] for i in idx]
    h = hashlib.sha256()
    for s in sample:
        h.update(s.to(fmt="poscar").encode())
    path = _cache_dir() / f"{h.hexdigest()[:24]}.npz"
    if cache and path.exists():
        with np.load(path) as z:
            return z["struct"], z["comp"]
    _log(f"fingerprinting {len(sample)} reference crystals (cached afterwards in {path.parent})")
    sfp = _struct_fps(sample)
    cfp = composition_fingerprints([s.composition for s in sample])
    ok = np.all(np.isfinite(sfp), axis=1)
    sfp, cfp = sfp[ok], cfp[ok]
    if cache:
        try:
            from topodiff.io_utils import atomic_write

            buf = io.BytesIO()
            np.savez(buf, struct=sfp, comp=cfp)
            atomic_write(path, lambda fh: fh.write(buf.getvalue()), mode="wb")
        except OSError:
            pass
    return sfp, cfp


def _screen_rows(structures: Sequence[Structure | None], progress: bool,
                 valid: Sequence[bool] | None = None) -> list[dict[str, Any]] | None:
    """Topology screen per structure (``topodiff.evaluation.screen``); None if unavailable.

    Structurally invalid crystals (``valid[i]`` False: overlapping atoms) are not screened: a
    tight-binding model of overlapping atoms means nothing and can be very slow to diagonalise.
    """
    try:
        from topodiff.evaluation.screen import screen_structure
    except ImportError:
        _log("topology screen unavailable (topodiff.evaluation.screen missing): topo_class left empty")
        return None
    from tqdm import tqdm

    rows = []
    for s in tqdm(structures, desc="screen (SK-TB)", unit="crystal", file=sys.stderr, disable=not progress):
        if s is None:
            rows.append({"topo_class": None, "screen_error": "no structure"})
            continue
        if valid is not None and not valid[len(rows)]:
            rows.append({"topo_class": None, "screen_error": "structurally invalid: not screened"})
            continue
        try:
            r = dict(screen_structure(s))
            rows.append({"gap": r.get("gap"), "z2": r.get("z2"), "topo_class": r.get("topo_class"),
                         "screen_error": r.get("error")})
        except Exception as exc:  # one crystal's screen failure must not stop the run
            rows.append({"topo_class": None, "screen_error": f"{type(exc).__name__}: {exc}"})
    return rows


def _stats(x: Sequence[float | None]) -> dict[str, float | int] | None:
    a = np.array([v for v in x if v is not None and np.isfinite(v)], dtype=float)
    if a.size == 0:
        return None
    return {"mean": float(a.mean()), "median": float(np.median(a)), "min": float(a.min()),
            "max": float(a.max()), "count": int(a.size)}


def _space_group(s: Structure) -> int | None:
    try:
        from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

        return int(SpacegroupAnalyzer(s, symprec=0.1).get_space_group_number())
    except Exception:
        return None


def evaluate_entries(entries: Sequence[Entry], *, reference: Sequence[Structure] | None = None,
                     dataset: str = "mp20", relax: bool = False, screen: bool = True,
                     relax_fmax: float = 0.1, relax_steps: int = 300, max_cov_reference: int = MAX_COV_REFERENCE,
                     hull_threshold: float = 0.1, progress: bool = True,
                     relax_fn: Callable[..., list] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]], list]:
    """Compute the metrics of a list of crystals.

    Returns
    -------
    summary : dict with CONTRACTS §3 keys (``num_structures``, ``structural_validity``,
        ``compositional_validity``, ``uniqueness``, ``novelty``, ``rmsd_to_relaxed``,
        ``topo_class_counts``) plus coverage, Wasserstein distances, energies and S.U.N. counts.
    rows : one dict per crystal (the CSV rows).
    relaxed : relaxed structures (None where not relaxed), in order.
    """
    t0 = time.time()
    n = len(entries)
    if n == 0:
        raise TopodiffInputError("no structures to evaluate")
    structs = [e.structure for e in entries]
    have = np.array([s is not None for s in structs])
    rows: list[dict[str, Any]] = []
    for i, e in enumerate(entries):
        s = e.structure
        row: dict[str, Any] = {"index": i, "source": e.source, "read_error": e.error}
        if s is not None:
            d = M.min_distance(s, cutoff=3.0)
            row.update(formula=s.composition.reduced_formula, num_atoms=len(s),
                       elements=" ".join(sorted(el.symbol for el in s.composition.elements)),
                       num_elements=len(s.composition.elements), density=float(s.density),
                       volume=float(s.volume), min_distance=None if not np.isfinite(d) else d,
                       space_group=_space_group(s), structure_valid=M.structure_valid(s),
                       composition_valid=M.composition_valid(s.composition))
        else:
            row.update(structure_valid=False, composition_valid=False)
        row["valid"] = bool(row["structure_valid"] and row["composition_valid"])
        rows.append(row)
    sv = np.array([r["structure_valid"] for r in rows])
    cv = np.array([r["composition_valid"] for r in rows])
    readable = [s for s in structs if s is not None]
    ridx = np.flatnonzero(have)
    labels = M.unique_labels(readable) if readable else np.array([], dtype=int)
    first = np.zeros(n, dtype=bool)
    for k, i in enumerate(ridx):
        rows[i]["class_label"] = int(ridx[labels[k]])
        first[i] = labels[k] == k
        rows[i]["unique"] = bool(first[i])
    summary: dict[str, Any] = {
        "num_structures": n, "num_readable": int(have.sum()),
        "structural_validity": float(sv.mean()), "compositional_validity": float(cv.mean()),
        "validity": float((sv & cv).mean()),
        "uniqueness": float(len(np.unique(labels)) / n) if readable else 0.0,
    }
    novel = None
    if reference is not None:
        nm = M.novel_mask(readable, reference) if readable else np.array([], dtype=bool)
        novel = np.zeros(n, dtype=bool)
        novel[ridx] = nm
        for i in ridx:
            rows[i]["novel"] = bool(novel[i])
        summary["novelty"] = float(novel.sum() / n)
        valid_structs = [structs[i] for i in range(n) if rows[i]["valid"]]
        summary["num_reference"] = len(reference)
        sub = reference if len(reference) <= 2000 else [reference[i] for i in np.random.default_rng(0).choice(len(reference), 2000, replace=False)]
        summary["reference_distributions"] = {"density": [round(float(x), 4) for x in M.densities(sub)],
                                              "num_elements": [int(x) for x in M.num_elements(sub)]}
        if valid_structs:
            summary["wdist_density"] = M.wdist_density(valid_structs, reference)
            summary["wdist_num_elems"] = M.wdist_num_elems(valid_structs, reference)
            from topodiff.evaluation.fingerprints import composition_fingerprints

            gs = _struct_fps(valid_structs)
            gc = composition_fingerprints([s.composition for s in valid_structs])
            ok = np.all(np.isfinite(gs), axis=1)
            rs, rc = reference_fingerprints(reference, max_n=max_cov_reference)
            cut = M.COV_CUTOFFS[dataset]
            from topodiff.evaluation.fingerprints import composition_scaler

            rec, prec = M.coverage(gs[ok], gc[ok], rs, rc, struct_cutoff=cut["struct"],
                                   comp_cutoff=cut["comp"], num_generated=n, scaler=composition_scaler())
            summary.update(cov_recall=rec, cov_precision=prec,
                           cov_settings={"dataset": dataset, **cut, "num_reference_fingerprints": int(len(rs))})
        else:
            summary.update(wdist_density=None, wdist_num_elems=None, cov_recall=0.0, cov_precision=0.0)

    relaxed: list[Structure | None] = [None] * n
    if relax:
        from topodiff.evaluation.hull import evaluate_energies, sun_counts
        from topodiff.evaluation.relax import relax_structures

        results = (relax_fn or relax_structures)(structs, fmax=relax_fmax, steps=relax_steps, progress=progress)
        for i, r in enumerate(results):
            rows[i].update(r.as_row())
            relaxed[i] = r.structure
        ok = [i for i in range(n) if relaxed[i] is not None and rows[i].get("energy_final") is not None]
        eh = np.full(n, np.nan)
        for i, res in zip(ok, evaluate_energies([relaxed[i].composition for i in ok],
                                                [rows[i]["energy_final"] for i in ok])):
            rows[i].update(res.as_row())
            eh[i] = np.nan if res.e_above_hull is None else res.e_above_hull
        for i in range(n):
            rows[i]["e_above_hull"] = None if np.isnan(eh[i]) else float(eh[i])
        rmsd = [rows[i].get("rmsd_to_relaxed") for i in range(n)]
        rm = _stats(rmsd)
        summary["rmsd_to_relaxed"] = rm["mean"] if rm else None
        summary["rmsd_to_relaxed_stats"] = rm
        n_relaxed = sum(1 for i in range(n) if relaxed[i] is not None)
        summary["rmsd_match_fraction"] = float((rm["count"] if rm else 0) / n_relaxed) if n_relaxed else None
        summary["displacement_rmsd"] = _stats([rows[i].get("displacement_rmsd") for i in range(n)])
        summary["relax_converged_fraction"] = float(np.mean([bool(rows[i].get("relax_converged")) for i in range(n)]))
        summary["relax_failed"] = int(sum(1 for i in range(n) if rows[i].get("relax_error")))
        summary["energy_per_atom"] = _stats([rows[i].get("energy_final") for i in range(n)])
        summary["e_above_hull"] = _stats(list(eh))
        if summary["e_above_hull"] is not None:
            fin = eh[np.isfinite(eh)]
            summary["e_above_hull"]["fraction_below_threshold"] = float((fin < hull_threshold).mean())
        summary["sun"] = sun_counts(eh, first, novel if novel is not None else np.ones(n, dtype=bool),
                                    threshold=hull_threshold)

    use_relaxed = relax and any(r is not None for r in relaxed)
    to_screen = [relaxed[i] if use_relaxed and relaxed[i] is not None else structs[i] for i in range(n)]
    scr = _screen_rows(to_screen, progress, valid=list(sv)) if screen else None
    counts: dict[str, int] = {}
    if scr is not None:
        for i, r in enumerate(scr):
            rows[i].update(r)
            key = r.get("topo_class") or "unscreened"
            counts[key] = counts.get(key, 0) + 1
    summary["topo_class_counts"] = counts
    summary["wall_time_s"] = round(time.time() - t0, 2)
    return summary, rows, relaxed


CSV_COLUMNS = ("index", "source", "formula", "num_atoms", "num_elements", "elements", "space_group",
               "density", "volume", "min_distance", "structure_valid", "composition_valid", "valid",
               "unique", "class_label", "novel", "energy_initial", "energy_final", "e_above_hull",
               "rmsd_to_relaxed", "displacement_rmsd", "relax_steps", "relax_converged", "gap", "z2",
               "topo_class", "read_error", "relax_error", "screen_error")


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
    paths = {"metrics": str(atomic_write_json(out / "metrics.json", summary)),
             "structures_csv": str(atomic_write_text(out / "structures.csv", buf.getvalue()))}
    keep = [(i, s) for i, s in enumerate(relaxed) if s is not None]
    if keep:
        from topodiff.crystal.io import write_structures

        info = [{"index": i, "source": rows[i]["source"],
                 **({"energy_per_atom": rows[i]["energy_final"]} if rows[i].get("energy_final") is not None else {})}
                for i, _ in keep]
        paths["relaxed"] = str(write_structures([s for _, s in keep], out / "relaxed.extxyz", info=info))
    return paths


def csp_output_metadata(path: str | os.PathLike) -> dict[str, Any] | None:
    """``metadata.json`` of a ``topodiff csp`` output directory (it has ``num_compositions``), else None."""
    meta_path = Path(path) / "metadata.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and "num_compositions" in meta else None


def csp_metrics(entries: Sequence[Entry], reference: Sequence[Structure], rows: list[dict[str, Any]] | None = None
                ) -> dict[str, Any]:
    """DiffCSP match rate and RMSE of ``topodiff csp`` output against the structures it was asked for.

    Frame ``info["index"]`` (the input row) pairs each prediction with ``reference[index]``, so the
    reference must be the CSP input file itself. With ``K`` samples per composition a composition is
    matched when any sample matches, and its RMSE is the smallest among them (DiffCSP's multi-sample
    metric). Writes ``csp_rms`` into ``rows`` (None: no match).
    """
    index = [e.labels.get("index") for e in entries]
    if any(i is None for i in index):
        raise TopodiffInputError("CSP metrics need the frames of a `topodiff csp` output (info 'index' missing)")
    index = np.asarray(index, dtype=int)
    if index.min() < 0 or index.max() >= len(reference):
        raise TopodiffInputError(f"CSP output refers to input row {index.max()}, but the reference has "
                                 f"{len(reference)} structures: pass the CSP input file as --reference")
    for e, i in zip(entries, index):
        if e.structure is not None and e.structure.composition != reference[i].composition:
            raise TopodiffInputError(f"{e.source} has composition {e.structure.composition.formula} but reference row "
                                     f"{i} is {reference[i].composition.formula}: pass the CSP input file as --reference")
    matcher = M.csp_matcher()
    best = np.full(len(reference), np.inf)
    for k, (e, i) in enumerate(zip(entries, index)):
        d = M.csp_rms(e.structure, reference[i], matcher)
        if rows is not None:
            rows[k]["csp_rms"] = d
        if d is not None:
            best[i] = min(best[i], d)
    asked = np.unique(index)
    matched = np.isfinite(best[asked])
    return {"csp_num_compositions": int(len(asked)),
            "csp_samples_per_composition": float(len(entries) / len(asked)),
            "csp_match_rate": float(matched.mean()),
            "csp_rmse": float(best[asked][matched].mean()) if matched.any() else None}


def evaluate_path(path: str | os.PathLike, *, reference: Sequence[str | os.PathLike] | None = None,
                  relax: bool = False, out_dir: str | os.PathLike | None = None, screen: bool = True,
                  dataset: str | None = None, progress: bool = True, **kwargs: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read ``path``, evaluate it (see :func:`evaluate_entries`) and write results to ``out_dir``.

    ``out_dir`` defaults to ``path`` when it is a directory, else ``<path stem>_eval`` beside it.
    """
    p = Path(path)
    ds = dataset or (guess_dataset(reference) if reference else "mp20")
    if ds not in M.COV_CUTOFFS:
        raise TopodiffInputError(f"unknown dataset {ds!r} (expected one of {', '.join(M.COV_CUTOFFS)})")
    entries = load_entries(p)
    if not entries:
        raise TopodiffInputError(f"{p}: no structures found")
    ref = load_reference(reference) if reference else None
    summary, rows, relaxed = evaluate_entries(entries, reference=ref, dataset=ds, relax=relax, screen=screen,
                                              progress=progress, **kwargs)
    if ref is not None and p.is_dir() and csp_output_metadata(p) is not None:
        summary.update(csp_metrics(entries, ref, rows))
    summary["input"] = str(p)
    if reference:
        summary["reference"] = [str(r) for r in reference]
    od = Path(out_dir) if out_dir else (p if p.is_dir() else p.with_name(p.stem + "_eval"))
    summary["outputs"] = write_outputs(od, summary, rows, relaxed)
    return summary, rows

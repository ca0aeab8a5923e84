"""Metrics against a user's reference set (``--reference``): StructureMatcher novelty, Wasserstein
distances of density and number of elements, and CDVAE coverage (COV-R / COV-P)."""
from __future__ import annotations

import hashlib
import io
import sys
import warnings
from typing import Any, Sequence

import numpy as np
from pymatgen.core import Structure

from topodiff.cache import cache_dir, writable
from topodiff.evaluation import metrics as M

#: Largest reference sample whose CrystalNN fingerprints are computed for COV (≈0.2 s per 5-atom
#: crystal on one core); COV-R is then an unbiased estimate, COV-P a lower bound.
MAX_COV_REFERENCE = 300


def struct_fps(structures: Sequence[Structure]) -> np.ndarray:
    """CrystalNN structure fingerprints ``[n, 61]`` (NaN rows where the fingerprint fails)."""
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
    path = cache_dir("fingerprints") / f"{h.hexdigest()[:24]}.npz"
    if cache and path.exists():
        with np.load(path) as z:
            return z["struct"], z["comp"]
    print(f"fingerprinting {len(sample)} reference crystals (cached afterwards in {path.parent})",
          file=sys.stderr, flush=True)
    sfp = struct_fps(sample)
    cfp = composition_fingerprints([s.composition for s in sample])
    ok = np.all(np.isfinite(sfp), axis=1)
    sfp, cfp = sfp[ok], cfp[ok]
    if cache and writable(path.parent):
        try:
            from topodiff.io_utils import atomic_write

            buf = io.BytesIO()
            np.savez(buf, struct=sfp, comp=cfp)
            atomic_write(path, lambda fh: fh.write(buf.getvalue()), mode="wb")
        except OSError:
            pass
    return sfp, cfp


def reference_metrics(structs: Sequence[Structure | None], valid: Sequence[bool], reference: Sequence[Structure], *,
                      dataset: str, max_cov_reference: int = MAX_COV_REFERENCE) -> tuple[dict[str, Any], np.ndarray]:
    """Metrics of the crystals against ``reference``; also ``[n]`` bool "not in the reference"
    (StructureMatcher, same formula first; unreadable crystals False)."""
    from topodiff.evaluation.fingerprints import composition_fingerprints, composition_scaler

    n = len(structs)
    ridx = [i for i, s in enumerate(structs) if s is not None]
    not_in_ref = np.zeros(n, dtype=bool)
    if ridx:
        not_in_ref[ridx] = M.novel_mask([structs[i] for i in ridx], reference)
    rng = np.random.default_rng(0)
    sub = reference if len(reference) <= 2000 else [reference[i] for i in rng.choice(len(reference), 2000, replace=False)]
    out: dict[str, Any] = {
        "novelty_vs_reference": float(not_in_ref.sum() / n), "num_reference": len(reference),
        "reference_distributions": {"density": [round(float(x), 4) for x in M.densities(sub)],
                                    "num_elements": [int(x) for x in M.num_elements(sub)]}}
    valid_structs = [s for s, v in zip(structs, valid) if v and s is not None]
    if not valid_structs:
        out.update(wdist_density=None, wdist_num_elems=None, cov_recall=0.0, cov_precision=0.0)
        return out, not_in_ref
    out["wdist_density"] = M.wdist_density(valid_structs, reference)
    out["wdist_num_elems"] = M.wdist_num_elems(valid_structs, reference)
    gs = struct_fps(valid_structs)
    gc = composition_fingerprints([s.composition for s in valid_structs])
    ok = np.all(np.isfinite(gs), axis=1)
    rs, rc = reference_fingerprints(reference, max_n=max_cov_reference)
    cut = M.COV_CUTOFFS[dataset]
    rec, prec = M.coverage(gs[ok], gc[ok], rs, rc, struct_cutoff=cut["struct"], comp_cutoff=cut["comp"],
                           num_generated=n, scaler=composition_scaler())
    out.update(cov_recall=rec, cov_precision=prec,
               cov_settings={"dataset": dataset, **cut, "num_reference_fingerprints": int(len(rs))})
    return out, not_in_ref

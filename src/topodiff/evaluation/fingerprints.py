"""Structure and composition fingerprints for the coverage metrics (COV-R / COV-P).

Both follow CDVAE (Xie et al., ICLR 2022, ``scripts/compute_metrics.py``), which uses matminer:

* **Structure fingerprint** — matminer's ``CrystalNNFingerprint.from_preset("ops")`` averaged over
  sites. For every coordination number CN = 1..24 the site gets the CrystalNN weight ``wt`` of that
  CN, and, for CN ≤ 12, ``wt × q`` for each target-motif order parameter q (pymatgen's
  ``LocalStructOrderParams`` with the parameters in ``pymatgen.analysis.local_env.CN_OPT_PARAMS``).
  That is 24 weights + 37 motif features = 61 numbers, the same layout as matminer. It is computed
  here directly with pymatgen so that matminer (which would downgrade pandas) is not needed.
* **Composition fingerprint** — matminer's Magpie ``ElementProperty`` preset takes six statistics
  (min, max, range, mean, mean absolute deviation, mode) of 22 element properties. Here the 19 of
  them that pymatgen's element data provide are used (the DFT ground-state band gap, magnetic
  moment and space group of the elements are not in pymatgen), giving 19 × 6 = 114 numbers;
  ground-state volume per atom is replaced by the molar volume of the element. Distances between
  these fingerprints are therefore close to, not identical with, CDVAE's: the COV cutoffs keep
  their meaning only approximately (documented in ``docs/evaluation.md``).
"""
from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
from pymatgen.core import Composition, Element, Structure

# Target motifs per coordination number, as matminer's ``cn_target_motif_op`` (ops preset).
CN_TARGET_MOTIFS: dict[int, tuple[str, ...]] = {
    1: ("sgl_bd",),
    2: ("L-shaped", "water-like", "bent 120 degrees", "bent 150 degrees", "linear"),
    3: ("trigonal planar", "trigonal non-coplanar", "T-shaped"),
    4: ("square co-planar", "tetrahedral", "rectangular see-saw-like", "see-saw-like", "trigonal pyramidal"),
    5: ("pentagonal planar", "square pyramidal", "trigonal bipyramidal"),
    6: ("hexagonal planar", "octahedral", "pentagonal pyramidal"),
    7: ("hexagonal pyramidal", "pentagonal bipyramidal"),
    8: ("body-centered cubic", "hexagonal bipyramidal"),
    9: ("q2", "q4", "q6"),
    10: ("q2", "q4", "q6"),
    11: ("q2", "q4", "q6"),
    12: ("cuboctahedral", "q2", "q4", "q6"),
}
MAX_CN = 24
STRUCT_FP_DIM = MAX_CN + sum(len(v) for v in CN_TARGET_MOTIFS.values())  # 61

ELEMENT_PROPERTIES = (
    "Number", "MendeleevNumber", "AtomicWeight", "MeltingT", "Column", "Row", "AtomicRadius",
    "Electronegativity", "NsValence", "NpValence", "NdValence", "NfValence", "NValence",
    "NsUnfilled", "NpUnfilled", "NdUnfilled", "NfUnfilled", "NUnfilled", "MolarVolume",
)
STATS = ("minimum", "maximum", "range", "mean", "avg_dev", "mode")
COMP_FP_DIM = len(ELEMENT_PROPERTIES) * len(STATS)
MAX_Z = 103


@lru_cache(maxsize=1)
def _order_params() -> dict[int, list]:
    """One ``LocalStructOrderParams`` object per (CN, motif), built once."""
    from pymatgen.analysis.local_env import CN_OPT_PARAMS, LocalStructOrderParams

    ops: dict[int, list] = {}
    for cn, motifs in CN_TARGET_MOTIFS.items():
        ops[cn] = []
        for motif in motifs:
            op_type, params = motif, None
            spec = CN_OPT_PARAMS.get(cn, {}).get(motif)
            if spec:
                op_type = spec[0]
                params = spec[1] if len(spec) > 1 else None
            ops[cn].append(LocalStructOrderParams([op_type], parameters=[params]))
    return ops


@lru_cache(maxsize=1)
def _crystal_nn():
    from pymatgen.analysis.local_env import CrystalNN

    return CrystalNN()


def structure_feature_labels() -> list[str]:
    """Names of the 61 structure-fingerprint entries (matminer's ``"<op> CN_<n>"`` labels)."""
    out = []
    for cn in range(1, MAX_CN + 1):
        out.append(f"wt CN_{cn}")
        out.extend(f"{m} CN_{cn}" for m in CN_TARGET_MOTIFS.get(cn, ()))
    return out


def site_fingerprint(structure: Structure, index: int) -> np.ndarray:
    """CrystalNN order-parameter fingerprint of one site, shape ``[61]`` (see module docstring)."""
    nn = _crystal_nn().get_nn_data(structure, index)
    ops = _order_params()
    out: list[float] = []
    for cn in range(1, MAX_CN + 1):
        wt = float(nn.cn_weights.get(cn, 0.0))
        out.append(wt)
        for op in ops.get(cn, []):
            if wt == 0.0:
                out.append(0.0)
                continue
            neigh = [d["site"] for d in nn.cn_nninfo[cn]]
            val = op.get_order_parameters([structure[index], *neigh], 0,
                                          indices_neighs=list(range(1, len(neigh) + 1)))[0]
            out.append(wt * float(val or 0.0))
    return np.asarray(out, dtype=np.float64)


def structure_fingerprint(structure: Structure) -> np.ndarray:
    """Site-averaged CrystalNN fingerprint of a crystal, shape ``[61]`` (CDVAE's ``struct_fp``)."""
    return np.mean([site_fingerprint(structure, i) for i in range(len(structure))], axis=0)


def _valence_counts(el: Element) -> tuple[float, float, float, float]:
    """Valence s, p, d, f electron counts as Magpie counts them (outer shell + open d/f shells)."""
    conf = el.full_electronic_structure
    max_n = max(n for n, _, _ in conf)
    counts = {"s": 0.0, "p": 0.0, "d": 0.0, "f": 0.0}
    full = {"s": 2, "p": 6, "d": 10, "f": 14}
    for n, orb, occ in conf:
        if n == max_n or (orb in "df" and occ < full[orb]):
            counts[orb] += occ
    return counts["s"], counts["p"], counts["d"], counts["f"]


@lru_cache(maxsize=1)
def element_table() -> np.ndarray:
    """Element property table ``[MAX_Z + 1, 19]`` (row = Z; row 0 unused), missing values filled
    with the column mean over elements."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # pymatgen warns for every missing datum
        return _build_element_table()


def _build_element_table() -> np.ndarray:
    table = np.full((MAX_Z + 1, len(ELEMENT_PROPERTIES)), np.nan)
    full = {"s": 2, "p": 6, "d": 10, "f": 14}
    for z in range(1, MAX_Z + 1):
        el = Element.from_Z(z)

        def get(fn):
            try:
                v = fn()
                return np.nan if v is None else float(v)
            except Exception:  # pymatgen raises or warns for missing data
                return np.nan

        ns, np_, nd, nf = _valence_counts(el)
        unfilled = [(full["s"] - ns) if ns else 0.0, (full["p"] - np_) if np_ else 0.0,
                    (full["d"] - nd) if nd else 0.0, (full["f"] - nf) if nf else 0.0]
        table[z] = [
            z, get(lambda: el.mendeleev_no), get(lambda: el.atomic_mass), get(lambda: el.melting_point),
            get(lambda: el.group), get(lambda: el.row), get(lambda: el.atomic_radius),
            get(lambda: el.X), ns, np_, nd, nf, ns + np_ + nd + nf, *unfilled, sum(unfilled),
            get(lambda: el.molar_volume),
        ]
    col_mean = np.nanmean(table[1:], axis=0)
    rows, cols = np.nonzero(np.isnan(table))
    table[rows, cols] = col_mean[cols]
    table[0] = 0.0
    return table


def composition_fingerprints(compositions: list[Composition]) -> np.ndarray:
    """Magpie-style composition fingerprints, shape ``[n, 114]``, vectorised over compositions.

    Statistics use atomic fractions ``f_e``: min/max/range over present elements, mean
    ``Σ f_e x_e``, avg_dev ``Σ f_e |x_e − mean|``, mode = value of the most abundant element
    (ties → smallest value), as matminer's ``PropertyStats``.
    """
    n = len(compositions)
    frac = np.zeros((n, MAX_Z + 1))
    for i, comp in enumerate(compositions):
        for el, amt in comp.element_composition.items():
            if el.Z <= MAX_Z:
                frac[i, el.Z] += amt
    frac /= np.clip(frac.sum(axis=1, keepdims=True), 1e-12, None)
    table = element_table()                                  # [Z, P]
    present = frac > 0                                       # [n, Z]
    vals = np.broadcast_to(table[None], (n, *table.shape))   # [n, Z, P]
    mask = present[..., None]
    vmin = np.where(mask, vals, np.inf).min(axis=1)
    vmax = np.where(mask, vals, -np.inf).max(axis=1)
    mean = frac @ table                                      # [n, P]
    avg_dev = np.einsum("nz,nzp->np", frac, np.abs(vals - mean[:, None, :]))
    top = frac.max(axis=1, keepdims=True)
    is_top = (frac >= top - 1e-12) & present
    mode = np.where(is_top[..., None], vals, np.inf).min(axis=1)
    stats = np.stack([vmin, vmax, vmax - vmin, mean, avg_dev, mode], axis=-1)  # [n, P, 6]
    out = stats.reshape(n, -1)
    out[~np.isfinite(out)] = 0.0
    return out


@lru_cache(maxsize=1)
def composition_scaler() -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation ``[114]`` of composition fingerprints over Materials Project
    crystals (the 708 mp_40 test compositions; stored in ``data/composition_scaler.json``).

    CDVAE standardises composition fingerprints with fixed MP-20 training statistics for every data
    set (its ``CompScalerMeans/Stds``); this is the same idea with the MP data available here.
    """
    import json
    from pathlib import Path

    doc = json.loads((Path(__file__).resolve().parent.parent / "data" / "composition_scaler.json").read_text())
    return np.asarray(doc["mean"], dtype=float), np.asarray(doc["std"], dtype=float)

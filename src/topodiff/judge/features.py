"""Descriptors of a crystal for the learned topology judge (composition + symmetry + packing).

One row of ``FEATURE_NAMES`` per crystal, float64, NaN where undefined:

* composition statistics (fraction-weighted mean, deviation, min, max) of per-element properties:
  atomic number Z, group, period, Pauling electronegativity, atomic radius (Å), Mendeleev number,
  valence electrons (s, p, d, f and total, Magpie's convention: electrons outside the noble-gas
  core, filled d shells included);
* valence-electron fractions s/p/d/f (He et al., npj Comput. Mater. 2025: the p fraction matters);
* electron counting: total electrons per primitive cell and per formula unit, their parity and
  value mod 4 (an odd count per primitive cell cannot make a time-reversal insulator);
* symmetry (:func:`topodiff.crystal.symmetry.analyze`: 0.1 Å, 5°, as Materials Project): space-group
  number, point-group order,
  inversion present, crystal system;
* packing: volume per atom (Å³), packing fraction (Σ 4/3 π r³ / V with atomic radii), the shortest
  bond over the sum of radii; heaviest element and mean Z² (spin-orbit strength grows with Z);
* element fractions for the ``ELEMENT_COLUMNS`` elements (the information topogivity uses).

All per-element data come from pymatgen, tabulated once per process (:func:`element_table`).
"""
from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from topodiff.crystal.symmetry import analyze

MAX_Z = 103
PROPS = ("Z", "group", "row", "X", "radius", "mendeleev", "nval", "ns", "np", "nd", "nf")
STATS = ("mean", "dev", "min", "max")
#: Elements whose fraction is a feature: H to Pu (every element of the training pools).
ELEMENT_COLUMNS = tuple(range(1, 95))
_NOBLE = (0, 2, 10, 18, 36, 54, 86)
_EXTRA = ("frac_s", "frac_p", "frac_d", "frac_f", "n_elements", "n_atoms_prim", "nelec_prim", "nelec_prim_mod2",
          "nelec_prim_mod4", "nelec_fu", "nelec_fu_mod2", "spg", "pg_order", "inversion", "crystal_system",
          "vol_per_atom", "packing", "min_bond_ratio", "max_Z", "mean_Z2", "X_range")


@lru_cache(maxsize=1)
def element_symbols() -> tuple[str, ...]:
    from pymatgen.core.periodic_table import Element

    return ("",) + tuple(Element.from_Z(z).symbol for z in range(1, MAX_Z + 1))


def feature_names() -> tuple[str, ...]:
    """Names of the feature columns, in order."""
    sym = element_symbols()
    return (tuple(f"{s}_{p}" for p in PROPS for s in STATS) + _EXTRA
            + tuple(f"x_{sym[z]}" for z in ELEMENT_COLUMNS))


def _valence(el: Any) -> tuple[float, float, float, float]:
    """(s, p, d, f) electrons outside the largest noble-gas core below Z (Magpie's convention)."""
    core = max(n for n in _NOBLE if n < el.Z) if el.Z > 2 else 0
    counts = {"s": 0.0, "p": 0.0, "d": 0.0, "f": 0.0}
    seen = 0
    for _, l, occ in el.full_electronic_structure:
        if seen >= core:
            counts[l] += occ
        seen += occ
    return counts["s"], counts["p"], counts["d"], counts["f"]


@lru_cache(maxsize=1)
def element_table() -> np.ndarray:
    """``[MAX_Z + 1, len(PROPS)]`` per-element properties (row 0 unused); missing values NaN."""
    from pymatgen.core.periodic_table import Element

    table = np.full((MAX_Z + 1, len(PROPS)), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for z in range(1, MAX_Z + 1):
            el = Element.from_Z(z)
            s, p, d, f = _valence(el)
            x = el.X if el.X and not math.isnan(el.X) else np.nan
            radius = el.atomic_radius or el.atomic_radius_calculated or np.nan
            table[z] = (z, el.group, el.row, x, float(radius), el.mendeleev_no or np.nan, s + p + d + f, s, p, d, f)
    return table


def _symmetry(structure: Any) -> tuple[float, float, float, float, float]:
    """(space group, point-group order, inversion 0/1, crystal system 0-6, lattice points per cell)."""
    data = analyze(structure)
    if data is None:
        return 1.0, 1.0, 0.0, 0.0, 1.0
    rots = data.rotations
    identity = np.all(rots == np.eye(3, dtype=int), axis=(1, 2))
    n_lattice = int(identity.sum())
    inversion = float(np.any(np.all(rots == -np.eye(3, dtype=int), axis=(1, 2))))
    spg = int(data.number)
    system = np.searchsorted([2, 15, 74, 142, 167, 194, 230], spg)
    return float(spg), float(len(rots) // max(n_lattice, 1)), inversion, float(system), float(max(n_lattice, 1))


def _min_bond_ratio(structure: Any, radii: np.ndarray) -> float:
    """Shortest interatomic distance divided by the sum of the two atomic radii."""
    centers, points, _, dist = structure.get_neighbor_list(4.0, exclude_self=True)
    if len(dist) == 0:
        return np.nan
    return float(np.min(dist / (radii[centers] + radii[points])))


def structure_features(structure: Any) -> np.ndarray:
    """Feature vector ``[len(feature_names())]`` of one pymatgen ``Structure`` (float64)."""
    table = element_table()
    z_sites = np.array([site.specie.Z for site in structure])
    zs, counts = np.unique(z_sites, return_counts=True)
    frac = counts / counts.sum()
    props = table[zs]  # [n_el, n_prop]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (e.g. X of a noble gas)
        mean = np.nansum(frac[:, None] * props, axis=0)
        dev = np.nansum(frac[:, None] * np.abs(props - mean), axis=0)
        stats = np.stack([mean, dev, np.nanmin(props, axis=0), np.nanmax(props, axis=0)], axis=1).ravel()
    nval = mean[PROPS.index("nval")]
    spd = [mean[PROPS.index(k)] / nval if nval > 0 else np.nan for k in ("ns", "np", "nd", "nf")]
    spg, pg_order, inversion, system, n_lattice = _symmetry(structure)
    n_prim = len(structure) / n_lattice
    nelec_prim = float(z_sites.sum()) / n_lattice  # core shells are even: parity = valence parity
    gcd = np.gcd.reduce(counts)
    nelec_fu = float((zs * counts).sum() / gcd)
    radii = table[z_sites, PROPS.index("radius")]
    radii = np.where(np.isnan(radii), 1.5, radii)
    volume = float(structure.volume)
    packing = float(np.sum(4.0 / 3.0 * np.pi * radii ** 3) / volume)
    xs = props[:, PROPS.index("X")]
    extra = [*spd, len(zs), n_prim, nelec_prim, nelec_prim % 2, nelec_prim % 4, nelec_fu, nelec_fu % 2, spg,
             pg_order, inversion, system, volume / len(structure), packing, _min_bond_ratio(structure, radii),
             float(zs.max()), float(np.sum(frac * zs.astype(float) ** 2)),
             float(np.nanmax(xs) - np.nanmin(xs)) if np.any(~np.isnan(xs)) else np.nan]
    elem = np.zeros(len(ELEMENT_COLUMNS))
    index = {z: i for i, z in enumerate(ELEMENT_COLUMNS)}
    for z, f in zip(zs, frac):
        if int(z) in index:
            elem[index[int(z)]] = f
    return np.concatenate([stats, np.asarray(extra, dtype=float), elem])


def featurize(structures: Sequence[Any]) -> np.ndarray:
    """``[n, n_features]`` features of several structures."""
    if not structures:
        return np.zeros((0, len(feature_names())))
    return np.stack([structure_features(s) for s in structures])

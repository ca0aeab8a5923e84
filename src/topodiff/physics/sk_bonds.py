"""Bonds of a crystal and their Slater-Koster two-centre integrals and blocks (used by
:func:`topodiff.physics.slater_koster.structure_to_tb`; conventions in that module's docstring).

Integrals are in eV, lengths in Å; a bond runs from atom ``i`` in the home cell to atom ``j`` in the
cell shifted by the integer lattice vector ``S``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from topodiff.physics.sk_params import HBAR2_OVER_M, CompoundFit, ShellFit, covalent_radius

R_ON, R_OFF = 1.25, 1.55  # default taper window in units of the sum of covalent radii


@dataclass
class Bonds:
    i: np.ndarray  # [n_b] atom index of the first atom
    j: np.ndarray  # [n_b] atom index of the second atom
    S: np.ndarray  # [n_b, 3] integer cell shift of the second atom
    D: np.ndarray  # [n_b, 3] Cartesian bond vector (Å)
    d: np.ndarray  # [n_b] bond length (Å)


def neighbours(cart: np.ndarray, cell: np.ndarray, cutoff: float) -> Bonds:
    """Half neighbour list under periodic boundary conditions (vesin), each pair once."""
    from vesin import NeighborList

    nl = NeighborList(cutoff=float(cutoff), full_list=False)
    i, j, S, D, d = nl.compute(points=cart, box=cell, periodic=True, quantities="ijSDd")
    return Bonds(np.asarray(i, np.int64), np.asarray(j, np.int64), np.asarray(S, np.int64),
                  np.asarray(D, float), np.asarray(d, float))


def taper(d: np.ndarray, r_on: np.ndarray, r_off: np.ndarray) -> np.ndarray:
    """Smooth cutoff: 1 below ``r_on``, ``½(1 + cos π x)`` in between, 0 beyond ``r_off``."""
    x = np.clip((d - r_on) / np.maximum(r_off - r_on, 1e-9), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * x))


_V_KEYS = ("ss_sigma", "sp_sigma", "ps_sigma", "pp_sigma", "pp_pi",
           "s*s_sigma", "ss*_sigma", "s*s*_sigma", "s*p_sigma", "ps*_sigma")
_SWAP = {"sp_sigma": "ps_sigma", "ps_sigma": "sp_sigma", "s*s_sigma": "ss*_sigma", "ss*_sigma": "s*s_sigma",
         "s*p_sigma": "ps*_sigma", "ps*_sigma": "s*p_sigma"}


def bond_integrals(species: list[str], bonds: Bonds, fit: CompoundFit | None, eta: dict[str, float],
                    cutoff: float | None, pair_scale: dict[str, float] | None = None,
                    pair_eta: dict[str, dict[str, float]] | None = None) -> dict[str, np.ndarray]:
    """``{key: [n_b]}`` two-centre integrals (eV) of every bond, taper included."""
    sp = np.array(species)
    A, B = sp[bonds.i], sp[bonds.j]
    n = len(bonds.d)
    V = {k: np.zeros(n) for k in _V_KEYS}
    radius = np.array([covalent_radius(s) for s in species])
    rsum = radius[bonds.i] + radius[bonds.j]
    r_on, r_off = R_ON * rsum, R_OFF * rsum
    if cutoff is not None:
        r_on, r_off = np.full(n, 0.85 * cutoff), np.full(n, float(cutoff))
    harrison = np.ones(n, dtype=bool)
    if fit is not None:
        for (a, b), pp in fit.pairs.items():
            for first, second, swap in ((a, b, False), (b, a, True)):
                mask = (A == first) & (B == second)
                if swap and a == b:
                    continue
                if not mask.any():
                    continue
                scale = (pp.d0 / bonds.d[mask]) ** pp.power
                for key, value in pp.V.items():
                    V[_SWAP.get(key, key) if swap else key][mask] = value * scale
                harrison[mask] = False
                if fit.cutoff is not None and cutoff is None:
                    r_on[mask], r_off[mask] = 0.95 * fit.cutoff, fit.cutoff
    inv_d2 = HBAR2_OVER_M / bonds.d ** 2
    etas = {key: np.full(n, eta[key]) for key in ("ss_sigma", "sp_sigma", "pp_sigma", "pp_pi")}
    etas["ps_sigma"] = etas["sp_sigma"].copy()
    for pair, values in (pair_eta or {}).items():
        a, _, b = pair.partition("-")
        for first, second, swap in ((a, b, False), (b, a, True)):
            mask = (A == first) & (B == second)
            for key, value in values.items():
                etas[_SWAP.get(key, key) if swap else key][mask] = value
                if key == "sp_sigma" and a == b:
                    etas["ps_sigma"][mask] = value
    for key, e in etas.items():
        V[key][harrison] = (e * inv_d2)[harrison]
    f = taper(bonds.d, r_on, r_off)
    for pair, factor in (pair_scale or {}).items():
        a, _, b = pair.partition("-")
        f = np.where(((A == a) & (B == b)) | ((A == b) & (B == a)), f * float(factor), f)
    return {k: v * f for k, v in V.items()}


def site_labels(species: list[str], bonds: Bonds, fit: ShellFit) -> list[str] | None:
    """Per-atom labels of a shell-resolved fit (None when a site matches none of its labels)."""
    n = len(species)
    sp = np.array(species)
    i = np.concatenate([bonds.i, bonds.j])
    j = np.concatenate([bonds.j, bonds.i])
    d = np.concatenate([bonds.d, bonds.d])
    labels = []
    for a in range(n):
        rule = fit.site_labels.get(species[a])
        if rule is None:
            labels.append(species[a])
            continue
        mask = (i == a) & (sp[j] == fit.counter)
        if not mask.any():
            return None
        count = int(np.sum(d[mask] <= 1.2 * d[mask].min()))
        if count not in rule:
            return None
        labels.append(rule[count])
    if fit.label_ratio:
        counts = np.array([labels.count(k) for k in fit.label_ratio], float)
        ratio = np.array(list(fit.label_ratio.values()), float)
        if len(labels) != counts.sum() or not np.allclose(counts / counts.sum(), ratio / ratio.sum()):
            return None
    return labels


def shell_integrals(labels: list[str], bonds: Bonds, fit: ShellFit) -> dict[str, np.ndarray]:
    """``{key: [n_b]}`` integrals of a shell-resolved fit: shell = rank of the bond's length among the
    distinct (0.02 Å clusters) distances of its label pair; unlisted shells get 0."""
    n = len(bonds.d)
    V = {k: np.zeros(n) for k in _V_KEYS}
    lab = np.array(labels)
    A, B = lab[bonds.i], lab[bonds.j]
    pair = np.array(["|".join(sorted((a, b))) for a, b in zip(A, B)])
    for key in np.unique(pair):
        idx = np.nonzero(pair == key)[0]
        order = idx[np.argsort(bonds.d[idx])]
        rank = np.cumsum(np.concatenate([[1], np.diff(bonds.d[order]) > 0.02]))
        for b, r in zip(order, rank):
            a_, b_ = A[b], B[b]
            if (a_, b_, int(r)) in fit.shells:
                for k, v in fit.shells[(a_, b_, int(r))].items():
                    V[k][b] = v
            elif (b_, a_, int(r)) in fit.shells:
                for k, v in fit.shells[(b_, a_, int(r))].items():
                    V[_SWAP.get(k, k)][b] = v
    return V


def sk_blocks(l: np.ndarray, V: dict[str, np.ndarray], n_o: int) -> np.ndarray:
    """``[n_b, n_o, n_o]`` Slater-Koster blocks (orbitals of atom i × orbitals of atom j) of bonds with
    direction cosines ``l [n_b, 3]``; ``n_o`` = 4 (s, p) or 5 (s, p, s*)."""
    n = l.shape[0]
    h = np.zeros((n, n_o, n_o))
    h[:, 0, 0] = V["ss_sigma"]
    h[:, 0, 1:4] = l * V["sp_sigma"][:, None]
    h[:, 1:4, 0] = -l * V["ps_sigma"][:, None]
    ll = l[:, :, None] * l[:, None, :]
    h[:, 1:4, 1:4] = ll * (V["pp_sigma"] - V["pp_pi"])[:, None, None] + np.eye(3) * V["pp_pi"][:, None, None]
    if n_o == 5:
        h[:, 4, 4] = V["s*s*_sigma"]
        h[:, 4, 0] = V["s*s_sigma"]
        h[:, 0, 4] = V["ss*_sigma"]
        h[:, 4, 1:4] = l * V["s*p_sigma"][:, None]
        h[:, 1:4, 4] = -l * V["ps*_sigma"][:, None]
    return h

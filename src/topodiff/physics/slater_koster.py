"""Structure → spinful Slater-Koster tight-binding model (a fast, approximate topology screen).

Every atom carries an ``s, px, py, pz`` (``sp3``) or ``s, px, py, pz, s*`` (``sp3s*``) basis
with two spin states. Two-centre integrals follow Slater & Koster, Phys. Rev. 94, 1498 (1954),
Table I, with direction cosines ``l = d/|d|`` of the bond from atom i to atom j:

    E_ss = V_ssσ,  E_s,pβ = l_β V_spσ,  E_pα,s = −l_α V_{s_j p_i σ},
    E_pα,pβ = l_α l_β (V_ppσ − V_ppπ) + δ_αβ V_ppπ          (s* behaves as a second s).

Default integrals are Harrison's universal ``V = η ħ²/(m d²)``; a published compound fit
(:mod:`topodiff.physics.sk_params`) replaces them when the crystal's element set matches it and is
scaled as ``(d0/d)²``. A shell-resolved fit (Bi2Se3: per-site Se1/Se2 onsite and SOC, integrals
per neighbour shell, no distance scaling and no taper) takes precedence when the element set and
the site pattern match; ``params={"fit": "none"}`` forces Harrison's integrals. Every integral
(outside a shell fit) is multiplied by a cosine taper that takes it smoothly to
zero between ``r_on`` and ``r_off``. Onsite energies are atomic term values; on-site spin-orbit
coupling ``ζ L·S`` acts on the p shell in the ``(px, py, pz) ⊗ (↑, ↓)`` basis. The filling is the
number of valence s + p electrons plus the d/f electrons that cations give to anions in the ionic
picture (Ti⁴⁺ in TiO2 gives its two 3d electrons to the O 2p bands); the d and f electrons that
stay on the atom are localised and outside the basis.

What it is: a physically grounded, vectorised screen that separates metals from insulators and
finds the band inversions of strongly spin-orbit-coupled sp materials where the parameters are
good. What it is not: a quantitative band structure; gaps are qualitative and calls for
transition-metal and f-electron compounds are unreliable.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from topodiff.errors import TopodiffInputError
from topodiff.physics.model import TBModel
from topodiff.physics.sk_params import (HARRISON_ETA, HBAR2_OVER_M, CompoundFit, ShellFit, covalent_radius,
                                        find_fit, find_shell_fit, ionic_transfer, soc_zeta, term_values,
                                        valence_sp_electrons)

BASES: dict[str, tuple[str, ...]] = {"sp3": ("s", "px", "py", "pz"), "sp3s*": ("s", "px", "py", "pz", "s*")}
MIN_DISTANCE = 0.5  # Å, closer atoms are "overlapping" (CDVAE structural-validity threshold)
R_ON, R_OFF = 1.25, 1.55  # default taper window in units of the sum of covalent radii


def orbital_layout(basis: str) -> tuple[str, ...]:
    """Orbital names of one atom in ``basis`` (their order in the model)."""
    if basis not in BASES:
        raise TopodiffInputError(f"unknown basis {basis!r} (use one of {sorted(BASES)})")
    return BASES[basis]


def orbital_parity(basis: str) -> np.ndarray:
    """``[n_orb_per_atom]`` inversion parity of each orbital: s, s* → +1, p → −1."""
    return np.array([1 if name.startswith("s") else -1 for name in orbital_layout(basis)], dtype=np.int64)


@dataclass
class _Bonds:
    i: np.ndarray  # [n_b] atom index of the first atom
    j: np.ndarray  # [n_b] atom index of the second atom
    S: np.ndarray  # [n_b, 3] integer cell shift of the second atom
    D: np.ndarray  # [n_b, 3] Cartesian bond vector (Å)
    d: np.ndarray  # [n_b] bond length (Å)


def _validate(structure: Any) -> list[str]:
    """Species symbols of ``structure``; bad input raises :class:`TopodiffInputError`."""
    if structure is None or len(structure) == 0:
        raise TopodiffInputError("structure has no atoms")
    if not structure.is_ordered:
        raise TopodiffInputError("structure has partial occupancies (disordered sites); order it first")
    species = []
    for site in structure:
        symbol = getattr(site.specie, "symbol", str(site.specie))
        symbol = "".join(c for c in symbol if c.isalpha())
        valence_sp_electrons(symbol)  # raises for unknown elements
        species.append(symbol)
    vol = float(structure.volume)
    if not np.isfinite(vol) or vol / len(structure) < 1.0:
        raise TopodiffInputError(f"cell volume {vol:.3g} Å^3 is too small for {len(structure)} atoms")
    return species


def _neighbours(cart: np.ndarray, cell: np.ndarray, cutoff: float) -> _Bonds:
    """Half neighbour list under periodic boundary conditions (vesin), each pair once."""
    from vesin import NeighborList

    nl = NeighborList(cutoff=float(cutoff), full_list=False)
    i, j, S, D, d = nl.compute(points=cart, box=cell, periodic=True, quantities="ijSDd")
    return _Bonds(np.asarray(i, np.int64), np.asarray(j, np.int64), np.asarray(S, np.int64),
                  np.asarray(D, float), np.asarray(d, float))


def _taper(d: np.ndarray, r_on: np.ndarray, r_off: np.ndarray) -> np.ndarray:
    """Smooth cutoff: 1 below ``r_on``, ``½(1 + cos π x)`` in between, 0 beyond ``r_off``."""
    x = np.clip((d - r_on) / np.maximum(r_off - r_on, 1e-9), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * x))


_V_KEYS = ("ss_sigma", "sp_sigma", "ps_sigma", "pp_sigma", "pp_pi",
           "s*s_sigma", "ss*_sigma", "s*s*_sigma", "s*p_sigma", "ps*_sigma")
_SWAP = {"sp_sigma": "ps_sigma", "ps_sigma": "sp_sigma", "s*s_sigma": "ss*_sigma", "ss*_sigma": "s*s_sigma",
         "s*p_sigma": "ps*_sigma", "ps*_sigma": "s*p_sigma"}


def _bond_integrals(species: list[str], bonds: _Bonds, fit: CompoundFit | None, eta: dict[str, float],
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
    f = _taper(bonds.d, r_on, r_off)
    for pair, factor in (pair_scale or {}).items():
        a, _, b = pair.partition("-")
        f = np.where(((A == a) & (B == b)) | ((A == b) & (B == a)), f * float(factor), f)
    return {k: v * f for k, v in V.items()}


def _site_labels(species: list[str], bonds: _Bonds, fit: ShellFit) -> list[str] | None:
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


def _shell_integrals(labels: list[str], bonds: _Bonds, fit: ShellFit) -> dict[str, np.ndarray]:
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


def _sk_blocks(l: np.ndarray, V: dict[str, np.ndarray], basis: str) -> np.ndarray:
    """``[n_b, n_o, n_o]`` Slater-Koster blocks (orbitals of atom i × orbitals of atom j)."""
    n = l.shape[0]
    n_o = len(orbital_layout(basis))
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


def soc_blocks(zeta: float) -> np.ndarray:
    """``[3, 3, 2, 2]`` on-site ``ζ L·S`` between p orbitals (x, y, z) in the (↑, ↓) basis.

    ``(L_k)_ab = −i ε_kab`` in the real p basis and ``S = σ/2``; eigenvalues +ζ/2 (j = 3/2, ×4)
    and −ζ (j = 1/2, ×2).
    """
    sigma = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=np.complex128)
    eps = np.zeros((3, 3, 3))
    eps[0, 1, 2] = eps[1, 2, 0] = eps[2, 0, 1] = 1.0
    eps[0, 2, 1] = eps[2, 1, 0] = eps[1, 0, 2] = -1.0
    # H[a, b] = (ζ/2) Σ_k (−i ε_kab) σ_k
    return 0.5 * zeta * np.einsum("kab,kst->abst", -1j * eps, sigma)


def sp_filling(species: list[str], *, ionic: bool = True) -> int:
    """Electrons in the sp bands: valence s + p electrons of every atom, plus (``ionic``) the d/f
    electrons the ionic picture moves to the anions (:func:`~topodiff.physics.sk_params.ionic_transfer`,
    e.g. two per Ti in TiO2, whose O 2p bands are full)."""
    filling = int(sum(valence_sp_electrons(s) for s in species))
    if not ionic:
        return filling
    symbols, counts = np.unique(np.asarray(species), return_counts=True)
    unit = int(np.gcd.reduce(counts))
    extra = ionic_transfer(tuple((str(s), int(c) // unit) for s, c in zip(symbols, counts)))
    return filling + unit * sum(extra.values())


def structure_to_tb(structure: Any, *, basis: str = "sp3", soc: bool = True, cutoff: float | None = None,
                    params: dict[str, Any] | None = None) -> TBModel:
    """Spinful Slater-Koster tight-binding model of a periodic crystal.

    Parameters
    ----------
    structure : pymatgen ``Structure`` (ordered, 3D periodic; lattice in Å).
    basis : ``"sp3"`` (4 orbitals per atom) or ``"sp3s*"`` (5; needs a compound fit with s*
        integrals, e.g. Vogl's Si/Ge).
    soc : include on-site p-shell spin-orbit coupling ``ζ L·S``.
    cutoff : neighbour cutoff (Å) for every pair; default: taper between 1.25 and 1.55 × the sum of
        covalent radii (a compound fit uses its own cutoff).
    params : optional overrides: ``fit`` (``"auto"`` default, ``"none"`` forces Harrison),
        ``eta`` (dict of Harrison η), ``onsite`` ({element: {"s", "p", "s*"}} in eV),
        ``soc`` ({element: ζ} in eV), ``soc_scale`` (multiplies every ζ), ``pair_scale``
        ({"A-B": factor} multiplies the integrals of that element pair), ``filling`` (``"ionic"``
        default, see :func:`sp_filling`; ``"sp"`` counts valence s + p electrons only).

    Returns
    -------
    TBModel, 3D, spinful, ``n_atoms × n_orb_per_atom`` orbitals at the atoms' fractional positions
    (wrapped to [0, 1)), basis order ``atom-major, then orbital (s, px, py, pz[, s*]), then spin``;
    ``filling`` = electrons in the sp bands (:func:`sp_filling`). ``model.params`` records ``n_atoms``.
    """
    params = dict(params or {})
    layout = orbital_layout(basis)
    n_o = len(layout)
    species = _validate(structure)
    n_at = len(species)
    elements = set(species)
    fit = find_fit(elements) if params.get("fit", "auto") == "auto" else None
    shell_fit = (find_shell_fit(elements) if params.get("fit", "auto") == "auto" and basis == "sp3"
                 and cutoff is None else None)
    if basis == "sp3s*" and (fit is None or any("s*" not in fit.onsite[e] for e in elements)):
        raise TopodiffInputError("basis 'sp3s*' needs published s* parameters for every element pair "
                                 f"({'-'.join(sorted(elements))} has none); use basis='sp3'")
    eta = {**HARRISON_ETA, **params.get("eta", {})}

    frac = np.mod(np.asarray(structure.frac_coords, float), 1.0)
    frac[np.isclose(frac, 1.0, atol=1e-12)] = 0.0
    cell = np.asarray(structure.lattice.matrix, float)
    cart = frac @ cell
    radius = np.array([covalent_radius(s) for s in species])
    r_max = cutoff if cutoff is not None else R_OFF * 2.0 * radius.max()
    if fit is not None and fit.cutoff is not None and cutoff is None:
        r_max = max(r_max, fit.cutoff)
    if shell_fit is not None:
        r_max = max(r_max, shell_fit.max_distance)
    if cutoff is not None and not (0 < cutoff < 20):
        raise TopodiffInputError(f"cutoff must be between 0 and 20 Å, got {cutoff}")
    bonds = _neighbours(cart, cell, r_max)
    if len(bonds.d) and bonds.d.min() < MIN_DISTANCE:
        k = int(np.argmin(bonds.d))
        raise TopodiffInputError(f"overlapping atoms: sites {bonds.i[k]} and {bonds.j[k]} are "
                                 f"{bonds.d[k]:.3f} Å apart (< {MIN_DISTANCE} Å)")
    labels = _site_labels(species, bonds, shell_fit) if shell_fit is not None else None
    if labels is None:
        shell_fit = None

    # ---------------------------------------------------------------- onsite energies and SOC
    onsite_over = params.get("onsite", {})
    eps = np.zeros((n_at, n_o))
    for a, s in enumerate(species):
        es, ep = term_values(s)
        table = dict(s=es, p=ep)
        if fit is not None:
            table.update(fit.onsite.get(s, {}))
        if shell_fit is not None:
            table.update(shell_fit.onsite.get(labels[a], {}))
        table.update(onsite_over.get(s, {}))
        eps[a, 0], eps[a, 1:4] = table["s"], table["p"]
        if n_o == 5:
            eps[a, 4] = table["s*"]
    onsite = eps.reshape(-1)[:, None, None] * np.eye(2)[None]

    hop_i: list[np.ndarray] = []
    hop_j: list[np.ndarray] = []
    hop_R: list[np.ndarray] = []
    hop_t: list[np.ndarray] = []
    if soc:
        zeta_over = params.get("soc", {})
        scale = float(params.get("soc_scale", 1.0))
        zeta = np.array([scale * float(zeta_over.get(s, fit.soc.get(s, soc_zeta(s)) if fit else soc_zeta(s)))
                         for s in species])
        if shell_fit is not None:
            zeta = np.array([scale * float(zeta_over.get(s, shell_fit.soc.get(lab, soc_zeta(s))))
                             for s, lab in zip(species, labels)])
        L = soc_blocks(1.0)  # [3, 3, 2, 2]
        pairs = [(0, 1), (0, 2), (1, 2)]
        atoms = np.nonzero(zeta != 0)[0]
        for a_, b_ in pairs:
            hop_i.append(atoms * n_o + 1 + a_)
            hop_j.append(atoms * n_o + 1 + b_)
            hop_R.append(np.zeros((len(atoms), 3), np.int64))
            hop_t.append(zeta[atoms, None, None] * L[a_, b_][None])

    # ---------------------------------------------------------------- inter-atomic hoppings
    if len(bonds.d):
        if shell_fit is not None:
            V = _shell_integrals(labels, bonds, shell_fit)
            sp_arr = np.array(species)
            for pair, factor in (params.get("pair_scale") or {}).items():
                a, _, b = pair.partition("-")
                A_, B_ = sp_arr[bonds.i], sp_arr[bonds.j]
                m = ((A_ == a) & (B_ == b)) | ((A_ == b) & (B_ == a))
                V = {k: np.where(m, v * float(factor), v) for k, v in V.items()}
        else:
            V = _bond_integrals(species, bonds, fit, eta, cutoff, params.get("pair_scale"), params.get("pair_eta"))
        l = bonds.D / bonds.d[:, None]
        blocks = _sk_blocks(l, V, basis)  # [n_b, n_o, n_o]
        keep = np.abs(blocks) > 1e-10
        b_idx, al, be = np.nonzero(keep)
        hop_i.append(bonds.i[b_idx] * n_o + al)
        hop_j.append(bonds.j[b_idx] * n_o + be)
        hop_R.append(bonds.S[b_idx])
        hop_t.append(blocks[keep][:, None, None] * np.eye(2)[None])

    filling = sp_filling(species, ionic=params.get("filling", "ionic") == "ionic")
    n_states = 2 * n_at * n_o
    if filling <= 0 or filling >= n_states:
        raise TopodiffInputError(f"{filling} s/p valence electrons in {n_states} states: the sp basis "
                                 "cannot screen this crystal (no empty or no occupied sp bands)")
    return TBModel(
        lattice=cell,
        orbitals=np.repeat(frac, n_o, axis=0),
        onsite=onsite,
        hop_i=np.concatenate(hop_i) if hop_i else np.zeros(0, np.int64),
        hop_j=np.concatenate(hop_j) if hop_j else np.zeros(0, np.int64),
        hop_R=np.concatenate(hop_R) if hop_R else np.zeros((0, 3), np.int64),
        hop_t=np.concatenate(hop_t) if hop_t else np.zeros((0, 2, 2)),
        spinful=True,
        filling=filling,
        name=f"sk-{basis}:{structure.composition.reduced_formula}",
        params={"n_atoms": float(n_at), "n_orb_per_atom": float(n_o),
                "shell_fit": 1.0 if shell_fit is not None else 0.0},
    )

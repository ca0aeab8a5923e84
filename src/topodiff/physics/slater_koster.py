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
from topodiff.physics.sk_bonds import (R_OFF, Bonds, bond_integrals, neighbours, shell_integrals, site_labels,
                                       sk_blocks)
from topodiff.physics.sk_params import (HARRISON_ETA, CompoundFit, ShellFit, covalent_radius, find_fit,
                                        find_shell_fit, ionic_transfer, soc_zeta, term_values,
                                        valence_sp_electrons)

BASES: dict[str, tuple[str, ...]] = {"sp3": ("s", "px", "py", "pz"), "sp3s*": ("s", "px", "py", "pz", "s*")}
MIN_DISTANCE = 0.5  # Å, closer atoms are "overlapping" (CDVAE structural-validity threshold)


def orbital_layout(basis: str) -> tuple[str, ...]:
    """Orbital names of one atom in ``basis`` (their order in the model)."""
    if basis not in BASES:
        raise TopodiffInputError(f"unknown basis {basis!r} (use one of {sorted(BASES)})")
    return BASES[basis]


def orbital_parity(basis: str) -> np.ndarray:
    """``[n_orb_per_atom]`` inversion parity of each orbital: s, s* → +1, p → −1."""
    return np.array([1 if name.startswith("s") else -1 for name in orbital_layout(basis)], dtype=np.int64)


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
    n_o = len(orbital_layout(basis))
    species = _validate(structure)
    fit, shell_fit = _published_fits(set(species), basis, cutoff, params)
    if cutoff is not None and not (0 < cutoff < 20):
        raise TopodiffInputError(f"cutoff must be between 0 and 20 Å, got {cutoff}")
    frac = np.mod(np.asarray(structure.frac_coords, float), 1.0)
    frac[np.isclose(frac, 1.0, atol=1e-12)] = 0.0
    cell = np.asarray(structure.lattice.matrix, float)
    bonds = _bonds_in_reach(frac @ cell, cell, species, cutoff, fit, shell_fit)
    labels = site_labels(species, bonds, shell_fit) if shell_fit is not None else None
    if labels is None:
        shell_fit = None
    sites = _Sites(species, labels, fit, shell_fit)
    terms = [_soc_hoppings(sites, n_o, params)] if soc else []
    if len(bonds.d):
        terms.append(_bond_hoppings(sites, bonds, n_o, cutoff, params))
    filling = sp_filling(species, ionic=params.get("filling", "ionic") == "ionic")
    n_states = 2 * len(species) * n_o
    if filling <= 0 or filling >= n_states:
        raise TopodiffInputError(f"{filling} s/p valence electrons in {n_states} states: the sp basis "
                                 "cannot screen this crystal (no empty or no occupied sp bands)")
    hop_i, hop_j, hop_R, hop_t = (np.concatenate(parts) for parts in zip(*terms)) if terms else (
        np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3), np.int64), np.zeros((0, 2, 2)))
    return TBModel(
        lattice=cell, orbitals=np.repeat(frac, n_o, axis=0),
        onsite=_onsite_energies(sites, n_o, params.get("onsite", {})).reshape(-1)[:, None, None] * np.eye(2)[None],
        hop_i=hop_i, hop_j=hop_j, hop_R=hop_R, hop_t=hop_t, spinful=True, filling=filling,
        name=f"sk-{basis}:{structure.composition.reduced_formula}",
        params={"n_atoms": float(len(species)), "n_orb_per_atom": float(n_o),
                "shell_fit": 1.0 if shell_fit is not None else 0.0},
    )


@dataclass
class _Sites:
    """The atoms of a crystal with the parameter sources that apply to them."""

    species: list[str]          # element symbol per atom
    labels: list[str] | None    # per-atom labels of the shell-resolved fit (None: no shell fit)
    fit: CompoundFit | None     # published compound fit for this element set
    shell_fit: ShellFit | None  # shell-resolved fit (takes precedence over ``fit``)


def _published_fits(elements: set[str], basis: str, cutoff: float | None,
                    params: dict[str, Any]) -> tuple[CompoundFit | None, ShellFit | None]:
    """The compound fit and the shell-resolved fit that match ``elements`` (``fit="none"``: neither);
    a shell fit needs the sp3 basis and the default cutoff."""
    auto = params.get("fit", "auto") == "auto"
    fit = find_fit(elements) if auto else None
    shell_fit = find_shell_fit(elements) if auto and basis == "sp3" and cutoff is None else None
    if basis == "sp3s*" and (fit is None or any("s*" not in fit.onsite[e] for e in elements)):
        raise TopodiffInputError("basis 'sp3s*' needs published s* parameters for every element pair "
                                 f"({'-'.join(sorted(elements))} has none); use basis='sp3'")
    return fit, shell_fit


def _bonds_in_reach(cart: np.ndarray, cell: np.ndarray, species: list[str], cutoff: float | None,
                    fit: CompoundFit | None, shell_fit: ShellFit | None) -> Bonds:
    """Every bond (Å) that any integral can reach: ``cutoff``, else the widest default taper and the
    fits' own ranges. Atoms closer than ``MIN_DISTANCE`` raise :class:`TopodiffInputError`."""
    r_max = cutoff if cutoff is not None else R_OFF * 2.0 * max(covalent_radius(s) for s in species)
    if fit is not None and fit.cutoff is not None and cutoff is None:
        r_max = max(r_max, fit.cutoff)
    if shell_fit is not None:
        r_max = max(r_max, shell_fit.max_distance)
    bonds = neighbours(cart, cell, r_max)
    if len(bonds.d) and bonds.d.min() < MIN_DISTANCE:
        k = int(np.argmin(bonds.d))
        raise TopodiffInputError(f"overlapping atoms: sites {bonds.i[k]} and {bonds.j[k]} are "
                                 f"{bonds.d[k]:.3f} Å apart (< {MIN_DISTANCE} Å)")
    return bonds


def _onsite_energies(sites: _Sites, n_o: int, overrides: dict[str, dict[str, float]]) -> np.ndarray:
    """``[n_atoms, n_o]`` onsite energies (eV): term values, then the compound fit, the shell fit
    (per site label) and the user's ``overrides`` ({element: {"s", "p", "s*"}}), later ones winning."""
    eps = np.zeros((len(sites.species), n_o))
    for a, s in enumerate(sites.species):
        es, ep = term_values(s)
        table = dict(s=es, p=ep)
        if sites.fit is not None:
            table.update(sites.fit.onsite.get(s, {}))
        if sites.shell_fit is not None:
            table.update(sites.shell_fit.onsite.get(sites.labels[a], {}))
        table.update(overrides.get(s, {}))
        eps[a, 0], eps[a, 1:4] = table["s"], table["p"]
        if n_o == 5:
            eps[a, 4] = table["s*"]
    return eps


def _soc_hoppings(sites: _Sites, n_o: int, params: dict[str, Any]) -> tuple[np.ndarray, ...]:
    """On-site ``ζ L·S`` between the p orbitals of every atom with ζ ≠ 0, as ``(i, j, R, t [n, 2, 2])``
    hopping terms (pairs x-y, x-z, y-z; the model adds the conjugates). ζ (eV): the user's ``soc``,
    else the shell fit's (per label) or the compound fit's, else the atomic value; times ``soc_scale``."""
    over, scale = params.get("soc", {}), float(params.get("soc_scale", 1.0))
    if sites.shell_fit is not None:
        zeta = [over.get(s, sites.shell_fit.soc.get(lab, soc_zeta(s))) for s, lab in zip(sites.species, sites.labels)]
    else:
        fit_soc = sites.fit.soc if sites.fit is not None else {}
        zeta = [over.get(s, fit_soc.get(s, soc_zeta(s))) for s in sites.species]
    zeta = scale * np.array([float(z) for z in zeta])
    L = soc_blocks(1.0)  # [3, 3, 2, 2]
    atoms = np.nonzero(zeta != 0)[0]
    pairs = [(0, 1), (0, 2), (1, 2)]
    return (np.concatenate([atoms * n_o + 1 + a for a, _ in pairs]),
            np.concatenate([atoms * n_o + 1 + b for _, b in pairs]),
            np.zeros((len(atoms) * len(pairs), 3), np.int64),
            np.concatenate([zeta[atoms, None, None] * L[a, b][None] for a, b in pairs]))


def _bond_hoppings(sites: _Sites, bonds: Bonds, n_o: int, cutoff: float | None,
                   params: dict[str, Any]) -> tuple[np.ndarray, ...]:
    """Spin-diagonal Slater-Koster hoppings of every bond as ``(i, j, R, t [n, 2, 2])`` (eV), the
    shell fit's integrals (times ``pair_scale``) where it applies, else :func:`bond_integrals`."""
    if sites.shell_fit is not None:
        V = shell_integrals(sites.labels, bonds, sites.shell_fit)
        sp = np.array(sites.species)
        A, B = sp[bonds.i], sp[bonds.j]
        for pair, factor in (params.get("pair_scale") or {}).items():
            a, _, b = pair.partition("-")
            m = ((A == a) & (B == b)) | ((A == b) & (B == a))
            V = {k: np.where(m, v * float(factor), v) for k, v in V.items()}
    else:
        eta = {**HARRISON_ETA, **params.get("eta", {})}
        V = bond_integrals(sites.species, bonds, sites.fit, eta, cutoff, params.get("pair_scale"),
                           params.get("pair_eta"))
    blocks = sk_blocks(bonds.D / bonds.d[:, None], V, n_o)  # [n_b, n_o, n_o]
    keep = np.abs(blocks) > 1e-10
    b_idx, al, be = np.nonzero(keep)
    return (bonds.i[b_idx] * n_o + al, bonds.j[b_idx] * n_o + be, bonds.S[b_idx],
            blocks[keep][:, None, None] * np.eye(2)[None])

"""Parameter tables of the Slater-Koster structure → tight-binding builder (every value cited).

Energies in eV, lengths in Å. Three layers, most specific first:

0. **Shell-resolved fits** (:data:`SHELL_FITS`): a published table with per-site onsite energies
   and spin-orbit constants and one set of integrals per neighbour shell (Bi2Se3, Kobayashi 2011);
   used when the element set and the site pattern match (sp3 basis, no explicit cutoff).
1. **Compound fits** (:data:`COMPOUND_FITS`): two-centre integrals, onsite energies and spin-orbit
   constants fitted to one compound family; used when a crystal's element set equals the fit's.
2. **Harrison's universal two-centre integrals** (:data:`HARRISON_ETA`):
   ``V_llm(d) = η_llm ħ²/(m d²)`` with ``ħ²/m = 7.62 eV Å²``.
3. **Atomic tables** for every element: valence s/p term values (:func:`term_values`, NIST LDA
   atomic eigenvalues as shipped by pymatgen), the p-shell spin-orbit constant ζ
   (:data:`SOC_ZETA`), the s+p valence electron count (:func:`valence_sp_electrons`, d and f
   electrons counted as localised) and covalent radii for the default neighbour cutoff.

These are a *screening* parametrisation: qualitatively right for sp-bonded semiconductors and
the tetradymite family with their compound fits, approximate everywhere else.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import lru_cache

from topodiff.errors import TopodiffInputError

HBAR2_OVER_M = 7.62  # eV Å², Harrison, Electronic Structure and the Properties of Solids (1980), Eq. (2-13)

# Harrison's universal η for sp two-centre integrals: W. A. Harrison, Phys. Rev. B 24, 5835 (1981),
# "New tight-binding parameters for covalent solids obtained using Louie peripheral states",
# Table I (also the Solid State Table of the 1989 Dover edition of Harrison's book).
HARRISON_ETA: dict[str, float] = {"ss_sigma": -1.32, "sp_sigma": 1.42, "pp_sigma": 2.22, "pp_pi": -0.63}

# One-electron p-shell spin-orbit constants ζ_np (eV), H_so = ζ L·S, j=3/2 − j=1/2 splitting 3ζ/2.
# Derived from atomic fine structure (NIST Atomic Spectra Database ground/lowest terms):
# np¹ and np⁵ ²P terms give ζ = (2/3) Δ(²P_3/2 − ²P_1/2) directly (B, Al, Ga, In, Tl; F, Cl, Br, I);
# np² / np⁴ ³P terms give ζ ≈ Δ(³P_2 − ³P_1) in LS coupling (C, Si, O, S, Se); group-12 ns np ³P
# give ζ = (2/3) Δ(³P_2 − ³P_0) (Zn, Cd, Hg). Group 15 (⁴S ground term, no splitting) and the heavy
# atoms in jj coupling are interpolated along each row and rounded; Bi uses λ = 1.5 eV of
# Y. Liu and R. E. Allen, Phys. Rev. B 52, 1566 (1995). Elements not listed (s-block, open
# d-shells) get 0: their valence p level is empty and far from the gap. Accuracy ±30 %.
SOC_ZETA: dict[str, float] = {
    "B": 0.0013, "C": 0.0036, "N": 0.0065, "O": 0.0196, "F": 0.0334,
    "Al": 0.0093, "Si": 0.0181, "P": 0.030, "S": 0.0491, "Cl": 0.0729,
    "Zn": 0.048, "Ga": 0.068, "Ge": 0.12, "As": 0.19, "Se": 0.247, "Br": 0.305,
    "Cd": 0.142, "In": 0.183, "Sn": 0.27, "Sb": 0.40, "Te": 0.50, "I": 0.628,
    "Hg": 0.529, "Tl": 0.644, "Pb": 0.91, "Bi": 1.5, "Po": 1.8, "At": 2.1,
}

# Rule for elements whose neutral ground state has no valence p electron (s-block, d-block,
# group 12): the empty np level is placed at ε_p = P_OVER_S · ε_s. The ratio 0.4 matches the
# LDA eigenvalue ratio of the first p-filled neighbour (Ga 4p/4s = 0.31, In 0.33, Tl 0.30 in the
# NIST LDA table) and the spectroscopic np/ns binding ratio of the alkalis (≈0.6), rounded between.
P_OVER_S = 0.4
# ε_s for d-block atoms with an empty valence s shell in the atomic ground state (Pd 4d¹⁰):
# the 5s eigenvalue of the neighbouring Rh/Ag in the NIST LDA table (≈ −0.15 Ha), rounded.
EMPTY_S_FALLBACK = -4.1
HARTREE_EV = 27.211386245988


@dataclass(frozen=True)
class PairParams:
    """Two-centre integrals of one element pair (A, B) at the reference distance ``d0``.

    Keys of ``V``: ``ss_sigma``, ``sp_sigma`` (s on A, p on B), ``ps_sigma`` (p on A, s on B, given
    as V_{s_B p_A σ}), ``pp_sigma``, ``pp_pi``, and optionally ``s*s_sigma``, ``ss*_sigma``,
    ``s*s*_sigma``, ``s*p_sigma``, ``ps*_sigma``. ``V(d) = V(d0) (d0/d)^power``.
    """

    d0: float
    V: dict[str, float]
    power: float = 2.0


@dataclass(frozen=True)
class CompoundFit:
    """A published tight-binding parametrisation of one compound family."""

    name: str
    source: str
    elements: frozenset[str]
    onsite: dict[str, dict[str, float]]  # element -> {"s", "p", optional "s*"}
    pairs: dict[tuple[str, str], PairParams]
    soc: dict[str, float] = field(default_factory=dict)
    cutoff: float | None = None  # Å, hard neighbour cutoff of the fit (taper starts 5 % below)


def _vogl(a: str, es: float, ep: float, ess: float, vss: float, vxx: float, vxy: float,
          vsp: float, vssp: float, d0: float) -> CompoundFit:
    """Convert Vogl's diamond-lattice combinations to two-centre integrals.

    P. Vogl, H. P. Hjalmarson, J. D. Dow, J. Phys. Chem. Solids 44, 365 (1983), Eq. (3):
    V(s,s) = 4 V_ssσ, V(x,x) = (4/3)(V_ppσ + 2 V_ppπ), V(x,y) = (4/3)(V_ppσ − V_ppπ),
    V(sa,pc) = (4/√3) V_spσ, V(s*a,pc) = (4/√3) V_s*pσ.
    """
    pp_sigma_minus_pi = 0.75 * vxy
    pp_sigma_plus_2pi = 0.75 * vxx
    pp_pi = (pp_sigma_plus_2pi - pp_sigma_minus_pi) / 3.0
    s3 = 3 ** 0.5 / 4.0
    V = {"ss_sigma": vss / 4.0, "sp_sigma": vsp * s3, "ps_sigma": vsp * s3,
         "pp_sigma": pp_sigma_minus_pi + pp_pi, "pp_pi": pp_pi,
         "s*p_sigma": vssp * s3, "ps*_sigma": vssp * s3}
    return CompoundFit(name=f"{a} (Vogl sp3s*)",
                       source="P. Vogl, H. P. Hjalmarson, J. D. Dow, J. Phys. Chem. Solids 44, 365 (1983), Table 1",
                       elements=frozenset({a}), onsite={a: {"s": es, "p": ep, "s*": ess}},
                       pairs={(a, a): PairParams(d0=d0, V=V)}, cutoff=1.2 * d0)


# Vogl et al. (1983) Table 1, diamond-structure elements (eV); d0 = nearest-neighbour distance
# √3 a/4 with a(Si) = 5.431 Å, a(Ge) = 5.658 Å.
COMPOUND_FITS: list[CompoundFit] = [
    _vogl("Si", -4.2000, 1.7150, 6.6850, -8.3000, 1.7150, 4.5750, 5.7292, 5.3749, 2.3517),
    _vogl("Ge", -5.8800, 1.6100, 6.3900, -6.7800, 1.6100, 4.9000, 5.4649, 5.2191, 2.4500),
]


def find_fit(elements: set[str]) -> CompoundFit | None:
    """The compound fit whose element set equals ``elements`` (None when there is none)."""
    key = frozenset(elements)
    for fit in COMPOUND_FITS:
        if fit.elements == key:
            return fit
    return None


@lru_cache(maxsize=None)
def _element(symbol: str):  # noqa: ANN202 - pymatgen Element
    from pymatgen.core.periodic_table import Element

    try:
        return Element(symbol)
    except (ValueError, KeyError):
        raise TopodiffInputError(f"unknown element {symbol!r}") from None


def _valence_shells(symbol: str) -> tuple[int, int, int]:
    """(n of the valence s shell, s electrons, p electrons in the same n) of the neutral atom."""
    el = _element(symbol)
    shells = el.full_electronic_structure
    n_s = max((n for n, l, _ in shells if l == "s"), default=1)
    n_p = max((n for n, l, _ in shells if l == "p"), default=0)
    occ = {(n, l): c for n, l, c in shells}
    s_el = occ.get((n_s, "s"), 0)
    p_el = occ.get((n_s, "p"), 0) if n_p == n_s else 0
    # Pd-like d10 s0 atoms: the outermost s shell is a filled core shell below the d shell.
    if any(l == "d" and n == n_s for n, l, _ in shells):
        return n_s + 1, 0, 0
    return n_s, s_el, p_el


@lru_cache(maxsize=None)
def valence_sp_electrons(symbol: str) -> int:
    """Number of valence s + p electrons of the neutral atom (d and f electrons are localised).

    Examples: Si 4, Ga 3 (3d¹⁰ localised), Bi 5, Hg 2, Fe 2, Pd 0, La 2.
    """
    _, s_el, p_el = _valence_shells(symbol)
    return int(s_el + p_el)


@lru_cache(maxsize=None)
def open_shell(symbol: str) -> bool:
    """True when the neutral atom has a partly filled d (1-9) or f (1-13) shell (outside the sp basis)."""
    shells = _element(symbol).full_electronic_structure
    return any((l == "d" and 0 < c < 10) or (l == "f" and 0 < c < 14) for _, l, c in shells)


@lru_cache(maxsize=None)
def term_values(symbol: str) -> tuple[float, float]:
    """Valence (ε_s, ε_p) in eV from the NIST LDA atomic eigenvalues.

    S. Kotochigova, Z. H. Levine, E. L. Shirley, M. D. Stiles, C. W. Clark, "Atomic reference data
    for electronic structure calculations", NIST Standard Reference Database 141 (LDA, neutral
    atoms), as tabulated in pymatgen's ``Element.atomic_orbitals`` (Hartree). An empty p level is
    placed at ``P_OVER_S · ε_s`` (see :data:`P_OVER_S`).
    """
    el = _element(symbol)
    with warnings.catch_warnings():  # pymatgen warns where NIST has no data (e.g. Pu); the fallbacks below apply
        warnings.simplefilter("ignore", UserWarning)
        orbitals = el.atomic_orbitals or {}
    n_s, _, _ = _valence_shells(symbol)
    es = orbitals.get(f"{n_s}s")
    es = EMPTY_S_FALLBACK if es is None else es * HARTREE_EV
    ep = orbitals.get(f"{n_s}p")
    ep = P_OVER_S * es if ep is None else ep * HARTREE_EV
    return float(es), float(ep)


def soc_zeta(symbol: str) -> float:
    """p-shell spin-orbit constant ζ (eV) of :data:`SOC_ZETA` (0 where not tabulated)."""
    _element(symbol)
    return float(SOC_ZETA.get(symbol, 0.0))


@lru_cache(maxsize=None)
def covalent_radius(symbol: str) -> float:
    """Covalent radius (Å): B. Cordero et al., Dalton Trans. 2008, 2832 (as tabulated in ASE)."""
    from ase.data import atomic_numbers, covalent_radii

    z = atomic_numbers.get(symbol)
    if z is None:
        raise TopodiffInputError(f"unknown element {symbol!r}")
    return float(covalent_radii[z])


# ------------------------------------------------------------------------------------------------
# Shell-resolved compound fits (per-site onsite/SOC, one set of integrals per neighbour shell)
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShellFit:
    """A published fit whose integrals are given per *neighbour shell*, not as a power law.

    Sites are labelled from their coordination (``site_labels``: element → {number of first
    neighbours of element ``counter`` within ``1.2 ×`` the shortest counter distance: label});
    an element absent from ``site_labels`` is labelled by its symbol. A bond between labels
    (A, B) belongs to shell ``rank`` when its length is the rank-th distinct (gaps > 0.02 Å)
    A–B distance in the crystal, so the paper's shells are found whatever the cell's exact
    lattice constants. The fit applies only when the site labels occur in ``label_ratio``
    proportions (the structure the fit was made for); otherwise the builder falls back.
    ``shells[(A, B, rank)]`` holds the integrals of that shell at its own
    distance (no rescaling); ``sp_sigma`` has s on A and p on B, ``ps_sigma`` p on A and s on B
    in the builder's convention (given as V_{s_B p_A σ}). Bonds of a shell not listed get 0.
    """

    name: str
    source: str
    elements: frozenset[str]
    counter: str
    site_labels: dict[str, dict[int, str]]
    onsite: dict[str, dict[str, float]]  # label -> {"s", "p"}
    soc: dict[str, float]  # label -> ζ (H = ζ L·S)
    shells: dict[tuple[str, str, int], dict[str, float]]
    max_distance: float  # Å, neighbour-list radius (beyond the last shell of the fit)
    label_ratio: dict[str, int] = field(default_factory=dict)  # required site-label proportions


def _shell(ss: float, sp: float, ps_tab: float, pps: float, ppp: float) -> dict[str, float]:
    """Integrals of one shell from the table's (ssσ, s_A p_B σ, p_A s_B σ, ppσ, ppπ).

    The table's p_A s_B integral is the matrix element ⟨p_A|H|s_B⟩ along the bond (so it equals
    −V_{sp} for two like atoms); the builder wants V_{s_B p_A σ}, hence the sign change.
    """
    return {"ss_sigma": ss, "sp_sigma": sp, "ps_sigma": -ps_tab, "pp_sigma": pps, "pp_pi": ppp}


# Bi2Se3, sp3 + on-site SOC, three neighbour shells; Se1 = outer Se of the quintuple layer (3 Bi
# neighbours), Se2 = central Se (6 Bi neighbours). Parameters attributed to K. Kobayashi,
# "Electron transmission through atomic steps of Bi2Se3 and Bi2Te3 surfaces",
# Phys. Rev. B 84, 205424 (2011), Table I (fit to first-principles bands; also used by
# A. Pertsova and C. M. Canali, New J. Phys. 16, 063022 (2014)). The paper itself could not be
# read here: the numbers are the ones transcribed identically in two independent public
# implementations (github.com/rpday/chinook, Bi2Se3.py; a MATLAB Bi2Se3 bulk/slab code found by
# content in the GitHub index). They disagree in two entries: Bi–Se1 ssσ (−0.6770 vs −0.6670)
# and Bi–Se2 ppπ (−0.5320 vs −0.5220); chinook's values are used (the difference is 0.01 eV).
# Shells as the paper defines them (distances in its structure): 1st = Bi–Se1 (2.9 Å), Bi–Se2
# (3.0 Å) and the inter-layer Se1–Se1 (3.35 Å); 2nd = in-plane Bi–Bi, Se1–Se1, Se2–Se2 (a);
# 3rd = Se1–Se2 (4.3 Å), Bi–Bi across Se2 (4.45 Å), Bi–Se1 (4.7 Å).
# SOC: the tabulated λ (Bi 2.066, Se1 0.3197, Se2 0.3632 eV) enter as ζ = 2λ/3 in H = ζ L·S,
# as in the chinook implementation (ζ_Bi = 1.377 eV, close to the atomic 6p value 1.5 eV).
BI2SE3_KOBAYASHI = ShellFit(
    name="Bi2Se3 (Kobayashi 2011, sp3+SOC, 3 shells)",
    source="K. Kobayashi, Phys. Rev. B 84, 205424 (2011), Table I (as transcribed in rpday/chinook Bi2Se3.py)",
    elements=frozenset({"Bi", "Se"}),
    counter="Bi",
    site_labels={"Se": {3: "Se1", 6: "Se2"}},
    onsite={"Bi": {"s": -10.7629, "p": 0.2607}, "Se1": {"s": -10.9210, "p": -1.5097},
            "Se2": {"s": -13.1410, "p": -1.1893}},
    soc={"Bi": 2.066 * 2 / 3, "Se1": 0.3197 * 2 / 3, "Se2": 0.3632 * 2 / 3},
    shells={
        # first shell
        ("Bi", "Se1", 1): _shell(-0.6770, 2.0774, -0.4792, 2.0595, -0.4432),
        ("Bi", "Se2", 1): _shell(-0.2410, -0.2012, -0.0193, 2.0325, -0.5320),
        ("Se1", "Se1", 1): _shell(-0.3326, -0.0150, 0.0150, 0.9449, -0.1050),
        # second shell (in-plane, distance a)
        ("Bi", "Bi", 1): _shell(0.2212, -0.3067, 0.3067, 0.3203, -0.0510),
        ("Se1", "Se1", 2): _shell(-0.0640, 0.2833, -0.2833, 0.3047, -0.0035),
        ("Se2", "Se2", 1): _shell(-0.0878, -0.2660, 0.2660, -0.1486, -0.0590),
        # third shell
        ("Se1", "Se2", 1): _shell(0.0229, -0.0318, -0.0778, -0.0852, 0.0120),
        ("Bi", "Bi", 2): _shell(-0.0567, -0.2147, 0.2147, 0.1227, -0.0108),
        ("Bi", "Se1", 2): _shell(0.0333, -0.0047, 0.2503, -0.1101, 0.1015),
    },
    max_distance=5.2,
    label_ratio={"Bi": 2, "Se1": 2, "Se2": 1},  # only the tetradymite structure, not other Bi-Se phases
)

SHELL_FITS: list[ShellFit] = [BI2SE3_KOBAYASHI]


def find_shell_fit(elements: set[str]) -> ShellFit | None:
    """The shell-resolved fit whose element set equals ``elements`` (None when there is none)."""
    key = frozenset(elements)
    for fit in SHELL_FITS:
        if fit.elements == key:
            return fit
    return None


# ------------------------------------------------------------------------------------------------
# Ionic electron count: d/f electrons that a cation gives to its anions
# ------------------------------------------------------------------------------------------------
def _localised_electrons(symbol: str) -> int:
    """Electrons of the neutral atom's outer d and f shells, outside the sp basis (Ti 2, Fe 6, Cu 10, Ce 2)."""
    el = _element(symbol)
    n_s, _, _ = _valence_shells(symbol)
    return int(sum(c for n, l, c in el.full_electronic_structure
                   if (l == "d" and n == n_s - 1) or (l == "f" and n == n_s - 2)))


@lru_cache(maxsize=4096)
def ionic_transfer(composition: tuple[tuple[str, int], ...]) -> dict[str, int]:
    """d/f electrons per formula unit that the ionic picture moves into the sp bands.

    A cation of oxidation state q whose neutral atom has only ``n_sp < q`` valence s + p electrons
    gives ``q − n_sp`` electrons from its d or f shell to the anions (Ti⁴⁺: 4s² and 3d²; La³⁺: 6s²
    and 5d¹). The sp basis has no d/f orbitals, so without this the anion p bands of TiO2 stay
    partly empty and the screen calls a wide-gap insulator a metal. Oxidation states: the most
    probable guess of pymatgen's ``Composition.oxi_state_guesses`` (bond-valence statistics of the
    ICSD); none (an intermetallic) → no transfer. A mixed-valence element counts by its total
    charge per formula unit (Fe3O4: 8 − 3·2 = 2 electrons). Never more than the atom's own
    localised d/f electrons.

    Parameters
    ----------
    composition : ((symbol, atoms per formula unit), ...), e.g. ``(("O", 2), ("Ti", 1))``.

    Returns
    -------
    {symbol: electrons per formula unit} for the elements that give any.
    """
    import warnings

    from pymatgen.core import Composition

    comp = Composition(dict(composition))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        guesses = comp.oxi_state_guesses(max_sites=-50) if len(comp) > 1 else ()
    if not guesses:
        return {}
    out = {}
    for symbol, count in composition:
        q_total = guesses[0].get(symbol, 0.0) * count
        extra = q_total - valence_sp_electrons(symbol) * count
        if extra > 0.5 and abs(extra - round(extra)) < 1e-6:
            out[symbol] = int(min(round(extra), _localised_electrons(symbol) * count))
    return {k: v for k, v in out.items() if v > 0}

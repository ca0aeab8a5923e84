"""Built-in model builders: each fills a :class:`~topodiff.physics.model_tables._Table` from parameter
arrays (documented parameters, units and references in each docstring; registered in
:mod:`topodiff.physics.library`). Energies in eV, lengths in Å, angles in radians.
"""
from __future__ import annotations

import math

import numpy as np

from topodiff.physics.model_tables import S0, SX, SY, SZ, _kron_grid, _pauli2, _Table

SQ3 = math.sqrt(3.0)

HONEYCOMB = np.array([[1.0, 0.0], [0.5, SQ3 / 2]])
HONEY_ORB = np.array([[1 / 3, 1 / 3], [2 / 3, 2 / 3]])
# nearest-neighbour A -> B offsets and the A -> A next-nearest offsets with ν = -1 (see Kane-Mele)
HONEY_NN = [(0, 0), (-1, 0), (0, -1)]
HONEY_NNN = [(1, 0), (-1, 1), (0, -1)]


def _ssh(p: dict[str, np.ndarray], grid: tuple[int, ...]) -> _Table:
    """Su-Schrieffer-Heeger chain (Su, Schrieffer & Heeger, PRL 42, 1698 (1979)).

    ``H = Σ_n v c†_{A,n} c_{B,n} + w c†_{B,n} c_{A,n+1} + h.c.`` on a 1D lattice of constant 1 Å
    with A at τ = -1/4 and B at τ = +1/4 (the intracell v-bond is centred on the origin, so the
    Zak phase is 0 for |v| > |w| and π for |w| > |v|). Chiral; winding 1 for |w| > |v|.
    Parameters: ``v`` intracell, ``w`` intercell hopping (eV).
    """
    tab = _Table([[1.0]], [[-0.25], [0.25]], False, grid)
    tab.hop(0, 1, (0,), p["v"])
    tab.hop(1, 0, (1,), p["w"])
    return tab


def _rice_mele(p: dict[str, np.ndarray], grid: tuple[int, ...]) -> _Table:
    """Rice-Mele chain (Rice & Mele, PRL 49, 1455 (1982)): SSH plus staggered onsite ``±delta``.

    ``H = H_SSH(v, w) + delta (n_A - n_B)``; same geometry as ``ssh``. Not chiral for delta ≠ 0.
    Parameters: ``v``, ``w`` hoppings, ``delta`` staggered potential (eV).
    """
    tab = _ssh(p, grid)
    tab.onsite(0, p["delta"])
    tab.onsite(1, -p["delta"])
    return tab


def _qwz(p: dict[str, np.ndarray], grid: tuple[int, ...]) -> _Table:
    """Qi-Wu-Zhang model (Qi, Wu & Zhang, PRB 74, 085308 (2006)) exactly as CONTRACTS §2.

    ``H = sin kx σx + sin ky σy + (u + cos kx + cos ky) σz`` on a square lattice (a = 1 Å), both
    orbitals at the origin. Lower band: C = +1 for -2 < u < 0, -1 for 0 < u < 2, 0 for |u| > 2.
    Parameters: ``u`` mass (eV).
    """
    tab = _Table(np.eye(2), [[0, 0], [0, 0]], False, grid)
    one = np.ones(grid)
    tab.const(_pauli2(grid, (p["u"], SZ)))
    tab.fourier("sin", 0, _pauli2(grid, (one, SX)))
    tab.fourier("sin", 1, _pauli2(grid, (one, SY)))
    tab.fourier("cos", 0, _pauli2(grid, (one, SZ)))
    tab.fourier("cos", 1, _pauli2(grid, (one, SZ)))
    return tab


def _haldane(p: dict[str, np.ndarray], grid: tuple[int, ...]) -> _Table:
    """Haldane model (Haldane, PRL 61, 2015 (1988)) on the honeycomb lattice (lattice constant 1 Å).

    ``H = t1 Σ_<ij> c†_i c_j + t2 Σ_<<ij>> e^{i ν_ij φ} c†_i c_j + M Σ_i ξ_i c†_i c_i`` with ξ = +1 on
    A (τ = (1/3, 1/3)) and -1 on B (τ = (2/3, 2/3)); ν_ij = +1 for A→A along a1, a2-a1, -a2 and
    for B→B along the opposite vectors (PythTB's haldane example orientation). Chern insulator
    for ``|M| < 3√3 |t2 sin φ|``, trivial outside. Parameters: ``t1``, ``t2``, ``M`` (eV), ``phi`` (rad).
    """
    tab = _Table(HONEYCOMB, HONEY_ORB, False, grid)
    tab.onsite(0, p["M"])
    tab.onsite(1, -p["M"])
    for R in HONEY_NN:
        tab.hop(0, 1, R, p["t1"])
    up = p["t2"] * np.exp(1j * p["phi"])
    for R in HONEY_NNN:
        tab.hop(0, 0, R, up)
        tab.hop(1, 1, R, np.conj(up))
    return tab


def _kane_mele(p: dict[str, np.ndarray], grid: tuple[int, ...]) -> _Table:
    """Kane-Mele model (Kane & Mele, PRL 95, 146802 (2005)) on the honeycomb lattice (a = 1 Å).

    ``H = t Σ_<ij> c†_i c_j + i λ_SO Σ_<<ij>> ν_ij c†_i s_z c_j + i λ_R Σ_<ij> c†_i (s × d̂_ij)_z c_j
    + λ_v Σ_i ξ_i c†_i c_i``, ν_ij = sign(d1 × d2)_z over the two bonds from i to j, d̂_ij the unit
    bond vector from i to j, ξ = ±1 on A/B. Spinful, basis (A↑, A↓, B↑, B↓). At λ_R = 0 it is a
    quantum spin Hall insulator (Z2 = 1) for λ_v < 3√3 λ_SO and trivial for λ_v > 3√3 λ_SO.
    Parameters (eV): ``t``, ``lambda_so``, ``lambda_r``, ``lambda_v``. Defaults are the paper's
    QSH point (λ_SO = 0.06 t, λ_R = 0.05 t, λ_v = 0.1 t).
    """
    tab = _Table(HONEYCOMB, HONEY_ORB, True, grid)
    tab.onsite(0, p["lambda_v"])
    tab.onsite(1, -p["lambda_v"])
    for R in HONEY_NN:
        tab.hop(0, 1, R, p["t"])
        d = (np.array(R) + HONEY_ORB[1] - HONEY_ORB[0]) @ HONEYCOMB
        d = d / np.linalg.norm(d)
        tab.hop(0, 1, R, 1j * p["lambda_r"], spin=d[1] * SX - d[0] * SY)
    # A→A along (1,0): the path A→B(0,0)→A(1,0) turns clockwise, ν = -1; B→B opposite.
    for R in HONEY_NNN:
        tab.hop(0, 0, R, -1j * p["lambda_so"], spin=SZ)
        tab.hop(1, 1, R, 1j * p["lambda_so"], spin=SZ)
    return tab


def _graphene(p: dict[str, np.ndarray], grid: tuple[int, ...]) -> _Table:
    """Graphene pz nearest-neighbour model (Castro Neto et al., RMP 81, 109 (2009)).

    ``H = t Σ_<ij> c†_i c_j``, honeycomb lattice of constant ``a`` (Å) with vectors a(1, 0),
    a(1/2, √3/2), carbons at (1/3, 1/3) and (2/3, 2/3). Semimetal: Dirac cones at K, K'.
    Parameters: ``t`` hopping (eV, default -2.7), ``a`` lattice constant (Å, default 2.46).
    """
    a = float(np.asarray(p["a"]).reshape(-1)[0])
    tab = _Table(HONEYCOMB * a, HONEY_ORB, False, grid)
    for R in HONEY_NN:
        tab.hop(0, 1, R, p["t"])
    return tab


def _bhz(p: dict[str, np.ndarray], grid: tuple[int, ...]) -> _Table:
    """Bernevig-Hughes-Zhang HgTe quantum well (Science 314, 1757 (2006)), square-lattice regularised.

    ``H = diag(h(k), h*(-k))`` in the basis (E1↑, H1↑, E1↓, H1↓) (stored spinful: (E↑, E↓, H↑, H↓)),
    ``h = ε(k) + d·σ``, ``d1 = A sin(kx a)/a``, ``d2 = A sin(ky a)/a``,
    ``d3 = M - B k̃²``, ``ε = C - D k̃²``, ``k̃² = (2/a²)(2 - cos kx a - cos ky a)``.
    Sign convention (as BHZ and König et al. for HgTe): B < 0; the well is inverted (quantum spin
    Hall, Z2 = 1) for M/B > 0 (M < 0 with B < 0, while |M| < 8|B|/a²) and trivial for M/B < 0.
    Units: A eV·Å, B and D eV·Å², C and M eV, ``a`` Å. Defaults are dimensionless-scale
    (A = 1, B = -1, M = -1, a = 1); HgTe 7 nm well: A = 3.645, B = -68.6, D = -51.1, M = -0.010.
    """
    a = p["a"]
    tab = _Table(np.eye(2) * float(np.asarray(a).reshape(-1)[0]), [[0, 0], [0, 0]], True, grid)
    # TBModel order (E↑, E↓, H↑, H↓) = kron(orbital τ, spin s):
    #   H = ε + d1 τx s_z + d2 τy + d3 τz  (spin-down block h*(-k): -d1 σx + d2 σy + d3 σz)
    tx, ty, tz = SX, SY, SZ
    k2 = 2.0 / a ** 2  # k̃² = k2 (2 - cos kx a - cos ky a)
    tab.const(_kron_grid(grid, (p["C"] - 2 * k2 * p["D"], S0, S0), (p["M"] - 2 * k2 * p["B"], tz, S0)))
    tab.fourier("sin", 0, _kron_grid(grid, (p["A"] / a, tx, SZ)))
    tab.fourier("sin", 1, _kron_grid(grid, (p["A"] / a, ty, S0)))
    for d in (0, 1):
        tab.fourier("cos", d, _kron_grid(grid, (k2 * p["D"], S0, S0), (k2 * p["B"], tz, S0)))
    return tab


FCC = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])
DIAMOND_NN = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / 4.0  # A -> B, a = 1


def _fkm(p: dict[str, np.ndarray], grid: tuple[int, ...]) -> _Table:
    """Fu-Kane-Mele diamond-lattice topological insulator (Fu, Kane & Mele, PRL 98, 106803 (2007)).

    ``H = Σ_<ij> t_ij c†_i c_j + (8 i λ_SO / a²) Σ_<<ij>> c†_i s·(d1_ij × d2_ij) c_j`` on the fcc
    lattice (a = 1 Å, primitive vectors (0,½,½), (½,0,½), (½,½,0)), A at 0 and B at (¼,¼,¼);
    d1, d2 are the two bond vectors traversed from i to j. The [111] bond (A→B in the same cell)
    has ``t + dt1``, the other three ``t``. Paper: dt1 > 0 gives the strong TI (1;111), dt1 < 0 the
    weak TI (0;111). Spinful, basis (A↑, A↓, B↑, B↓). Parameters (eV): ``t``, ``lambda_so``, ``dt1``.
    """
    tab = _Table(FCC, [[0, 0, 0], [0.25, 0.25, 0.25]], True, grid)
    inv = np.linalg.inv(FCC)
    for m, R in enumerate([(0, 0, 0), (-1, 0, 0), (0, -1, 0), (0, 0, -1)]):
        tab.hop(0, 1, R, p["t"] + (p["dt1"] if m == 0 else 0.0 * p["dt1"]))
    pref = 8j * p["lambda_so"]
    for sub, sgn in ((0, 1.0), (1, -1.0)):
        for m in range(4):
            for n in range(4):
                if m == n:
                    continue
                D = sgn * (DIAMOND_NN[m] - DIAMOND_NN[n])
                R = tuple(int(x) for x in np.rint(D @ inv))
                if not R > tuple(-x for x in R):
                    continue  # the opposite hop is the Hermitian conjugate
                cross = np.cross(sgn * DIAMOND_NN[m], -sgn * DIAMOND_NN[n])
                tab.hop(sub, sub, R, pref, spin=cross[0] * SX + cross[1] * SY + cross[2] * SZ)
    return tab


def _weyl(p: dict[str, np.ndarray], grid: tuple[int, ...]) -> _Table:
    """Two-band Weyl semimetal with two nodes on a cubic lattice (a = 1 Å).

    ``H = t [sin ky σx + sin kz σy + (cos kx - cos k0 + m (2 - cos ky - cos kz)) σz]``; nodes at
    ``k = (±k0, 0, 0)`` with chirality ∓1 (CONTRACTS §2 sign), gapped elsewhere for m ≥ 1.
    Parameters: ``t`` (eV), ``k0`` (rad, 0 < k0 < π), ``m`` (dimensionless).
    """
    tab = _Table(np.eye(3), [[0, 0, 0], [0, 0, 0]], False, grid)
    t = p["t"]
    tab.const(_pauli2(grid, (t * (2 * p["m"] - np.cos(p["k0"])), SZ)))
    tab.fourier("cos", 0, _pauli2(grid, (t, SZ)))
    tab.fourier("sin", 1, _pauli2(grid, (t, SX)))
    tab.fourier("sin", 2, _pauli2(grid, (t, SY)))
    tab.fourier("cos", 1, _pauli2(grid, (-t * p["m"], SZ)))
    tab.fourier("cos", 2, _pauli2(grid, (-t * p["m"], SZ)))
    return tab


def _bi2se3(p: dict[str, np.ndarray], grid: tuple[int, ...]) -> _Table:
    """Zhang et al. four-band Bi2Se3 model (Nat. Phys. 5, 438 (2009), Eq. 2) on a tetragonal lattice.

    ``H = ε(k) + [[M, A1 kz, 0, A2 k-], [A1 kz, -M, A2 k-, 0], [0, A2 k+, M, -A1 kz],
    [A2 k+, 0, -A1 kz, -M]]`` in the basis (P1z+↑, P2z-↑, P1z+↓, P2z-↓) (stored spinful as
    (P1↑, P1↓, P2↑, P2↓)), ``ε = C + D1 kz² + D2 k⊥²``, ``M = M0 - B1 kz² - B2 k⊥²``, regularised on
    a simple tetragonal lattice (in-plane ``a``, out-of-plane ``c``): ``ki → sin(ki a)/a``,
    ``ki² → 2(1 - cos ki a)/a²``. Defaults are the paper's ab-initio fit for Bi2Se3: M0 = 0.28 eV,
    A1 = 2.2 eV·Å, A2 = 4.1 eV·Å, B1 = 10 eV·Å², B2 = 56.6 eV·Å², C = -0.0068 eV,
    D1 = 1.3 eV·Å², D2 = 19.6 eV·Å²; a = 4.14 Å, c = 9.55 Å (one quintuple layer). Band inversion
    only at Γ → strong TI (1;000). Inversion: P = diag(+1, -1) on (P1+, P2-).
    """
    a, c = p["a"], p["c"]
    lat = np.diag([float(np.asarray(a).reshape(-1)[0])] * 2 + [float(np.asarray(c).reshape(-1)[0])])
    tab = _Table(lat, [[0, 0, 0], [0, 0, 0]], True, grid)
    tz, tx = np.diag([1.0, -1.0]), np.array([[0.0, 1.0], [1.0, 0.0]])
    # Zhang basis (orb ⊗ spin) already is kron(orbital, spin) after reordering:
    #   A1 kz τx σz ; A2 (kx τx σx + ky τx σy) ; M τz ; ε 1
    # check: H[0,1] (P1↑,P2↑) = A1 kz = τx σz [↑↑]; H[0,3] (P1↑,P2↓) = A2 k- = A2 τx (kx σx + ky σy)[↑↓]
    sz_, sx_, sy_ = SZ, SX, SY
    k2z, k2x = 2.0 / c ** 2, 2.0 / a ** 2
    eps0 = p["C"] + k2z * p["D1"] + 2 * k2x * p["D2"]
    m0 = p["M0"] - k2z * p["B1"] - 2 * k2x * p["B2"]
    tab.const(_kron_grid(grid, (eps0, np.eye(2), S0), (m0, tz, S0)))
    tab.fourier("sin", 2, _kron_grid(grid, (p["A1"] / c, tx, sz_)))
    tab.fourier("cos", 2, _kron_grid(grid, (-k2z * p["D1"], np.eye(2), S0), (k2z * p["B1"], tz, S0)))
    for d, s in ((0, sx_), (1, sy_)):
        tab.fourier("sin", d, _kron_grid(grid, (p["A2"] / a, tx, s)))
        tab.fourier("cos", d, _kron_grid(grid, (-k2x * p["D2"], np.eye(2), S0), (k2x * p["B2"], tz, S0)))
    return tab

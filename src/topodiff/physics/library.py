"""Built-in tight-binding models with documented parameters.

Every model is written once as a *table builder*: a function of parameter arrays (any common
broadcast shape ``grid``) that fills the convention-I hopping table ``T_R [*grid, nb, nb]`` for a
fixed set of offsets ``R``. The same builder gives

* :func:`build_model` — one :class:`~topodiff.physics.model.TBModel` at scalar parameters;
* :func:`build_tables` — a whole parameter grid ``T [*grid, n_R, nb, nb]`` at once (phase
  diagrams), with a structure (``Rs``) that never depends on the parameter values.

Energies in eV, lengths in Å, angles in radians. Bloch convention of the models: CONTRACTS §1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from topodiff.errors import TopodiffInputError
from topodiff.physics.model import TBModel

SQ3 = math.sqrt(3.0)
S0 = np.eye(2, dtype=np.complex128)
SX = np.array([[0, 1], [1, 0]], dtype=np.complex128)
SY = np.array([[0, -1j], [1j, 0]], dtype=np.complex128)
SZ = np.array([[1, 0], [0, -1]], dtype=np.complex128)

__all__ = ["list_models", "build_model", "build_tables", "model_parameters", "model_info",
           "inversion_matrix", "ModelSpec"]


# ---------------------------------------------------------------------------------------------
# table accumulator
class _Table:
    """Convention-I hopping table ``{R: T_R [*grid, nb, nb]}`` over canonical ``R`` (``T_{-R} = T_R†``)."""

    def __init__(self, lattice: np.ndarray, orbitals: np.ndarray, spinful: bool, grid: tuple[int, ...]) -> None:
        self.lattice = np.atleast_2d(np.asarray(lattice, dtype=float))
        self.orbitals = np.asarray(orbitals, dtype=float).reshape(-1, self.lattice.shape[0])
        self.spinful = spinful
        self.ns = 2 if spinful else 1
        self.nb = self.orbitals.shape[0] * self.ns
        self.grid = grid
        self.terms: dict[tuple[int, ...], np.ndarray] = {}

    @property
    def dim(self) -> int:
        return self.lattice.shape[0]

    def _slot(self, R: tuple[int, ...]) -> np.ndarray:
        if R not in self.terms:
            self.terms[R] = np.zeros((*self.grid, self.nb, self.nb), dtype=np.complex128)
        return self.terms[R]

    def add_block(self, R: tuple[int, ...] | list[int], M: np.ndarray) -> None:
        """Add ``M [*grid, nb, nb]`` to ``T_R`` (for ``R = 0`` M must be Hermitian)."""
        R = tuple(int(x) for x in R)
        M = np.broadcast_to(np.asarray(M, dtype=np.complex128), (*self.grid, self.nb, self.nb))
        if not any(R):
            self._slot(R)[...] += M
        elif R > tuple(-x for x in R):
            self._slot(R)[...] += M
        else:
            self._slot(tuple(-x for x in R))[...] += np.conj(np.swapaxes(M, -1, -2))

    def hop(self, i: int, j: int, R: tuple[int, ...] | list[int], t: np.ndarray | complex,
            spin: np.ndarray | None = None) -> None:
        """Add the term ``t c†_i c_{j,R}`` (+ h.c.); ``t [*grid]`` times an optional 2x2 ``spin`` block."""
        t = np.asarray(t, dtype=np.complex128)
        block = t[..., None, None] * (S0 if spin is None and self.spinful else
                                      (np.ones((1, 1)) if spin is None else spin))
        ns = self.ns
        M = np.zeros((*self.grid, self.nb, self.nb), dtype=np.complex128)
        M[..., i * ns:(i + 1) * ns, j * ns:(j + 1) * ns] = block
        if not any(R) and i != j:
            M = M + np.conj(np.swapaxes(M, -1, -2))
        self.add_block(R, M)

    def onsite(self, i: int, e: np.ndarray | float, spin: np.ndarray | None = None) -> None:
        """Add an onsite energy ``e [*grid]`` (times an optional Hermitian 2x2 ``spin`` block)."""
        self.hop(i, i, (0,) * self.dim, e, spin)

    def fourier(self, kind: str, d: int, M: np.ndarray) -> None:
        """Add ``f(2πκ_d) M`` with ``f`` = ``"cos"`` or ``"sin"``, M ``[*grid, nb, nb]`` Hermitian."""
        R = [0] * self.dim
        R[d] = 1
        M = np.asarray(M, dtype=np.complex128)
        self.add_block(R, M / 2 if kind == "cos" else M / 2j)

    def const(self, M: np.ndarray) -> None:
        """Add a k-independent Hermitian matrix ``M [*grid, nb, nb]``."""
        self.add_block((0,) * self.dim, M)

    # -------------------------------------------------------------- outputs
    def dense(self) -> tuple[np.ndarray, np.ndarray]:
        """``Rs [n_R, dim]`` (sorted as ``TBModel.table``) and ``T [*grid, n_R, nb, nb]`` incl. ``-R``."""
        dim = self.dim
        zero = (0,) * dim
        keys = sorted(self.terms)
        canon = [R for R in keys if R != zero]
        all_R = np.array([zero] + canon + [tuple(-x for x in R) for R in canon], dtype=np.int64).reshape(-1, dim)
        Rs, inverse = np.unique(all_R, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        T = np.zeros((*self.grid, len(Rs), self.nb, self.nb), dtype=np.complex128)
        if zero in self.terms:
            T[..., inverse[0], :, :] = self.terms[zero]
        for n, R in enumerate(canon):
            T[..., inverse[1 + n], :, :] = self.terms[R]
            T[..., inverse[1 + len(canon) + n], :, :] = np.conj(np.swapaxes(self.terms[R], -1, -2))
        return Rs, T

    def to_model(self, mask: dict[tuple[int, ...], np.ndarray], name: str, params: dict[str, float]) -> TBModel:
        """A :class:`TBModel` keeping every block that is non-zero here or in ``mask`` (structural zeros dropped)."""
        ns, n_orb, dim = self.ns, self.orbitals.shape[0], self.dim
        zero = (0,) * dim
        onsite = np.zeros((n_orb, ns, ns), dtype=np.complex128)
        hi, hj, hR, ht = [], [], [], []
        for R in sorted(self.terms):
            B = self.terms[R].reshape(n_orb, ns, n_orb, ns).transpose(0, 2, 1, 3)  # [i, j, ns, ns]
            keep = np.any(np.abs(B) > 0, axis=(2, 3)) | mask.get(R, np.zeros((n_orb, n_orb), bool))
            for i in range(n_orb):
                for j in range(n_orb):
                    if R == zero:
                        if i == j:
                            onsite[i] = B[i, i]
                            continue
                        if i > j:
                            continue
                    if keep[i, j]:
                        hi.append(i); hj.append(j); hR.append(R); ht.append(B[i, j])
        return TBModel(self.lattice, self.orbitals, onsite, np.array(hi, np.int64), np.array(hj, np.int64),
                       np.array(hR, np.int64).reshape(-1, dim),
                       np.array(ht).reshape(-1, ns, ns) if ht else np.zeros((0, ns, ns)),
                       spinful=self.spinful, name=name, params=dict(params))

    def block_mask(self) -> dict[tuple[int, ...], np.ndarray]:
        ns, n_orb = self.ns, self.orbitals.shape[0]
        out = {}
        for R, T in self.terms.items():
            B = T.reshape(*self.grid, n_orb, ns, n_orb, ns)
            out[R] = np.any(np.abs(B) > 0, axis=tuple(range(len(self.grid))) + (-3, -1))
        return out


# ---------------------------------------------------------------------------------------------
# model registry
@dataclass(frozen=True)
class ModelSpec:
    """A built-in model: builder, parameters ``{name: (default, description)}`` and documentation."""

    name: str
    builder: Callable[[dict[str, np.ndarray], tuple[int, ...]], _Table]
    params: dict[str, tuple[float, str]]
    summary: str
    positive: tuple[str, ...] = ()
    inversion: Callable[[], np.ndarray] | None = None
    aliases: tuple[str, ...] = field(default=())

    @property
    def doc(self) -> str:
        return (self.builder.__doc__ or "").strip()


_MODELS: dict[str, ModelSpec] = {}


def _register(spec: ModelSpec) -> None:
    _MODELS[spec.name] = spec
    for a in spec.aliases:
        _MODELS[a] = spec


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


def _pauli2(grid: tuple[int, ...], *coef_mat: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    out = np.zeros((*grid, 2, 2), dtype=np.complex128)
    for c, m in coef_mat:
        out = out + np.asarray(c, dtype=np.complex128)[..., None, None] * m
    return out


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


def _kron_grid(grid: tuple[int, ...], *terms: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """``Σ c [*grid] · kron(orbital, spin)`` as ``[*grid, nb, nb]``."""
    out = 0
    for c, orb, spin in terms:
        out = out + np.asarray(c, dtype=np.complex128)[..., None, None] * np.kron(orb, spin)
    return np.broadcast_to(out, (*grid, *np.kron(terms[0][1], terms[0][2]).shape))


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


_SPIN_INV = lambda orb: np.kron(np.asarray(orb, dtype=np.complex128), S0)  # noqa: E731

_register(ModelSpec("ssh", _ssh, {"v": (0.5, "intracell hopping (eV)"), "w": (1.0, "intercell hopping (eV)")},
                    "Su-Schrieffer-Heeger chain (1D, chiral)"))
_register(ModelSpec("rice_mele", _rice_mele, {"v": (0.5, "intracell hopping (eV)"),
                                              "w": (1.0, "intercell hopping (eV)"),
                                              "delta": (0.2, "staggered onsite ±delta (eV)")},
                    "Rice-Mele chain (1D)", aliases=("rice-mele",)))
_register(ModelSpec("qwz", _qwz, {"u": (-1.0, "mass term (eV)")}, "Qi-Wu-Zhang Chern insulator (2D)"))
_register(ModelSpec("haldane", _haldane, {"t1": (1.0, "nearest-neighbour hopping (eV)"),
                                          "t2": (0.15, "next-nearest-neighbour hopping (eV)"),
                                          "phi": (math.pi / 2, "flux phase of t2 (rad)"),
                                          "M": (0.2, "sublattice mass ±M (eV)")},
                    "Haldane Chern insulator (2D honeycomb)"))
_register(ModelSpec("kane_mele", _kane_mele, {"t": (1.0, "nearest-neighbour hopping (eV)"),
                                              "lambda_so": (0.06, "intrinsic spin-orbit (eV)"),
                                              "lambda_r": (0.05, "Rashba spin-orbit (eV)"),
                                              "lambda_v": (0.1, "staggered sublattice potential (eV)")},
                    "Kane-Mele quantum spin Hall model (2D honeycomb, spinful)",
                    inversion=lambda: _SPIN_INV(SX), aliases=("kane-mele",)))
_register(ModelSpec("bhz", _bhz, {"A": (1.0, "linear coupling (eV Å)"), "B": (-1.0, "k² mass (eV Å²)"),
                                  "C": (0.0, "energy offset (eV)"), "D": (0.0, "k² particle-hole term (eV Å²)"),
                                  "M": (-1.0, "Dirac mass (eV); M/B > 0 is inverted"),
                                  "a": (1.0, "lattice constant of the regularisation (Å)")},
                    "Bernevig-Hughes-Zhang HgTe quantum well (2D square lattice, spinful)",
                    positive=("a",), inversion=lambda: _SPIN_INV(np.diag([1.0, -1.0]))))
_register(ModelSpec("fu_kane_mele", _fkm, {"t": (1.0, "nearest-neighbour hopping (eV)"),
                                           "lambda_so": (0.125, "spin-orbit (eV)"),
                                           "dt1": (0.4, "extra hopping on the [111] bond (eV)")},
                    "Fu-Kane-Mele diamond-lattice 3D topological insulator (spinful)",
                    inversion=lambda: _SPIN_INV(SX), aliases=("fkm", "fu-kane-mele")))
_register(ModelSpec("weyl", _weyl, {"t": (1.0, "energy scale (eV)"), "k0": (math.pi / 2, "node position kx = ±k0 (rad)"),
                                    "m": (1.0, "gap parameter away from the nodes")},
                    "two-band Weyl semimetal with two nodes (3D cubic)"))
_register(ModelSpec("graphene", _graphene, {"t": (-2.7, "nearest-neighbour pz hopping (eV)"),
                                            "a": (2.46, "lattice constant (Å)")},
                    "graphene pz nearest-neighbour model (2D honeycomb)", positive=("a",)))
_register(ModelSpec("bi2se3", _bi2se3, {"M0": (0.28, "mass at Γ (eV)"), "A1": (2.2, "out-of-plane velocity (eV Å)"),
                                        "A2": (4.1, "in-plane velocity (eV Å)"), "B1": (10.0, "kz² mass (eV Å²)"),
                                        "B2": (56.6, "k⊥² mass (eV Å²)"), "C": (-0.0068, "offset (eV)"),
                                        "D1": (1.3, "kz² particle-hole (eV Å²)"), "D2": (19.6, "k⊥² particle-hole (eV Å²)"),
                                        "a": (4.14, "in-plane lattice constant (Å)"),
                                        "c": (9.55, "out-of-plane lattice constant (Å)")},
                    "Zhang et al. 2009 four-band Bi2Se3 model (3D, strong TI)", positive=("a", "c"),
                    inversion=lambda: _SPIN_INV(np.diag([1.0, -1.0]))))


# ---------------------------------------------------------------------------------------------
# public API
def list_models() -> list[str]:
    """Names of the built-in models (canonical names, sorted)."""
    return sorted({s.name for s in _MODELS.values()})


def _spec(name: str) -> ModelSpec:
    key = str(name).strip().lower()
    if key not in _MODELS:
        raise TopodiffInputError(f"unknown model {name!r}; built-in models: {', '.join(list_models())}")
    return _MODELS[key]


def model_parameters(name: str) -> dict[str, float]:
    """Default parameter values of a built-in model ``{name: value}`` (units in :func:`model_info`)."""
    return {k: v[0] for k, v in _spec(name).params.items()}


def model_info(name: str) -> dict[str, object]:
    """Name, one-line summary, parameters ``{name: {"default", "description"}}`` and the docstring."""
    s = _spec(name)
    return {"name": s.name, "summary": s.summary, "doc": s.doc,
            "params": {k: {"default": v[0], "description": v[1]} for k, v in s.params.items()}}


def _resolve(spec: ModelSpec, params: dict[str, object]) -> dict[str, np.ndarray]:
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        raise TopodiffInputError(f"model {spec.name!r} has no parameter {unknown[0]!r}; "
                                 f"valid: {', '.join(spec.params)}")
    out: dict[str, np.ndarray] = {}
    for k, (default, _) in spec.params.items():
        raw = params.get(k, default)
        try:
            val = np.asarray(raw, dtype=float)
        except (TypeError, ValueError):
            raise TopodiffInputError(f"parameter {k!r} of {spec.name!r} must be a number, got {raw!r}") from None
        if not np.all(np.isfinite(val)):
            raise TopodiffInputError(f"parameter {k!r} of {spec.name!r} must be finite")
        if k in spec.positive and np.any(val <= 0):
            raise TopodiffInputError(f"parameter {k!r} of {spec.name!r} must be positive")
        out[k] = val
    if spec.name == "weyl" and np.any((out["k0"] <= 0) | (out["k0"] >= math.pi)):
        raise TopodiffInputError("parameter 'k0' of 'weyl' must lie in (0, π)")
    return out


def _probe(spec: ModelSpec) -> dict[str, np.ndarray]:
    """Generic parameter values (no accidental zeros) used to fix the table structure."""
    return {k: np.asarray(v[0] + 0.1234567 * (1.0 + abs(v[0]))) for k, v in spec.params.items()}


def build_model(name: str, **params: float) -> TBModel:
    """Build a built-in model.

    Parameters
    ----------
    name : one of :func:`list_models` (case-insensitive; ``-`` and ``_`` aliases accepted).
    **params : parameter values overriding the defaults (:func:`model_parameters`).

    Raises
    ------
    TopodiffInputError : unknown model, unknown parameter, non-finite or invalid value.
    """
    spec = _spec(name)
    values = _resolve(spec, params)
    if any(v.ndim for v in values.values()):
        raise TopodiffInputError("build_model takes scalar parameters; use build_tables for a grid")
    shape_dep = {k: values[k] for k in ("a", "c") if k in values}  # lattice constants are not probed
    tab = spec.builder(values, ())
    mask = spec.builder({**_probe(spec), **shape_dep}, ()).block_mask()
    model = tab.to_model(mask, spec.name, {k: float(v) for k, v in values.items()})
    return model


def build_tables(name: str, params: dict[str, np.ndarray | float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hopping tables of a built-in model on a whole parameter grid, vectorised.

    Parameters
    ----------
    name : built-in model name.
    params : ``{name: array}``; arrays broadcast to a common ``grid`` shape; missing ones take defaults.
        Lattice constants (``a``, ``c``) must be scalars.

    Returns
    -------
    Rs : ``[n_R, dim]`` integer offsets (independent of the parameter values).
    T : ``[*grid, n_R, nb, nb]`` complex128 tables with ``H^I(κ) = Σ_R T_R e^{2πiκ·R}``.
    positions : ``[nb, dim]`` reduced state positions (pass to ``bloch_hamiltonian`` for convention II).
    """
    spec = _spec(name)
    values = _resolve(spec, dict(params))
    for k in ("a", "c"):
        if k in values and values[k].ndim:
            raise TopodiffInputError(f"lattice constant {k!r} must be a scalar in build_tables")
    grid = np.broadcast_shapes(*(v.shape for v in values.values()))
    values = {k: np.broadcast_to(v, grid) for k, v in values.items()}
    tab = spec.builder(values, tuple(grid))
    Rs, T = tab.dense()
    positions = np.repeat(tab.orbitals, tab.ns, axis=0)
    return Rs, T, positions


def inversion_matrix(name: str) -> np.ndarray | None:
    """Inversion operator ``[nb, nb]`` acting on Bloch states of a built-in model, or None.

    It satisfies ``H(-κ) = P H(κ) P†`` in Bloch convention II (Kane-Mele, BHZ, Bi2Se3) or I
    (Fu-Kane-Mele, inversion centre at the bond midpoint); :func:`topodiff.physics.z2.z2_parity`
    detects which.
    """
    spec = _spec(name)
    return None if spec.inversion is None else spec.inversion()

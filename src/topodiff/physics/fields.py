"""External fields as onsite terms: electric field, staggered potentials, Zeeman field.

* Electric field: the onsite potential ``V_i = −e E·r_i`` (the design's convention; E in V/Å,
  r in Å, e = 1 so V in eV), measured from the mean orbital position. A uniform field is not
  periodic, so it acts across the open direction of a ribbon/slab (:mod:`topodiff.physics.finite`)
  or along directions perpendicular to the lattice when Cartesian positions are given (layers).
* Staggered potential: ``+v`` on one sublattice/layer and ``−v`` on the other (Kane-Mele's λ_v ξ_i,
  or the perpendicular field on a buckled honeycomb sheet, λ_v = e E_z ℓ).
* Zeeman field: ``(g μ_B / 2) B·σ`` on every orbital of a spinful model (σ Pauli matrices,
  µ_B = 5.7883818060e-5 eV/T, g = 2 by default); ``unit="eV"`` takes the Zeeman energy vector
  ``b`` directly and adds ``b·σ``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence, Union

import numpy as np

from topodiff.errors import TopodiffInputError
from topodiff.physics.finite import FiniteGeometry
from topodiff.physics.model import TBModel

MU_B_EV_PER_T = 5.7883818060e-5  # CODATA 2018 Bohr magneton in eV/T
PAULI = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=np.complex128)

FIELD_NAMES = ("staggered", "zeeman_x", "zeeman_y", "zeeman_z", "electric")


def onsite_potential(model: TBModel, potential: np.ndarray) -> TBModel:
    """Add a real onsite potential ``[n_orb]`` (eV) to every orbital (both spins)."""
    potential = np.asarray(potential, dtype=float).reshape(-1)
    if potential.shape[0] != model.n_orb:
        raise TopodiffInputError(f"potential needs {model.n_orb} values (one per orbital), got {potential.shape[0]}")
    return model.with_onsite(potential)


def electric_field(target: FiniteGeometry | TBModel, field: float | Sequence[float], *,
                   positions: np.ndarray | None = None) -> FiniteGeometry | TBModel:
    """Uniform electric field as the onsite potential ``V_i = −E·(r_i − r̄)`` (eV for E in V/Å).

    Parameters
    ----------
    target : a ribbon/slab (``field`` a number: along its ``normal``; or a Cartesian vector), or a
        bulk model with Cartesian ``positions`` ``[n_orb, n_cart]`` (then ``field`` must be
        perpendicular to every lattice vector, e.g. E_z on a layered 2D model).
    """
    if isinstance(target, FiniteGeometry):
        r = target.cartesian
        E = np.asarray(field, dtype=float)
        E = E * target.normal if E.ndim == 0 else E.reshape(-1)
        if E.shape[0] != r.shape[1]:
            raise TopodiffInputError(f"field needs {r.shape[1]} Cartesian components, got {E.shape[0]}")
        V = -(r - r.mean(axis=0)) @ E
        return target.replace_model(target.model.with_onsite(V))
    if positions is None:
        raise TopodiffInputError("a uniform electric field is not periodic: cut a ribbon/slab "
                                 "(topodiff.physics.finite) or give Cartesian orbital positions")
    r = np.asarray(positions, dtype=float)
    E = np.asarray(field, dtype=float).reshape(-1)
    if r.shape != (target.n_orb, E.shape[0]):
        raise TopodiffInputError(f"positions must be [n_orb={target.n_orb}, {E.shape[0]}] for a "
                                 f"{E.shape[0]}-component field, got {list(r.shape)}")
    lat = np.zeros((target.dim, E.shape[0]))
    n = min(E.shape[0], target.lattice.shape[1])
    lat[:, :n] = target.lattice[:, :n]
    if np.any(np.abs(lat @ E) > 1e-12 * max(1.0, float(np.abs(E).max()))):
        raise TopodiffInputError("the electric field has a component along a periodic lattice direction")
    return target.with_onsite(-(r - r.mean(axis=0)) @ E)


def sublattice_pattern(model: TBModel) -> np.ndarray:
    """Default staggering ``ξ [n_orb]``: +1, −1, +1, … by orbital index (A/B for two-site cells)."""
    if model.n_orb % 2:
        raise TopodiffInputError(f"no default sublattice pattern for {model.n_orb} orbitals; pass pattern=")
    return np.where(np.arange(model.n_orb) % 2 == 0, 1.0, -1.0)


def staggered_potential(model: TBModel, value: float, pattern: Sequence[float] | None = None) -> TBModel:
    """Add ``value · ξ_i`` (eV) to orbital i, ξ = :func:`sublattice_pattern` unless given."""
    xi = sublattice_pattern(model) if pattern is None else np.asarray(pattern, dtype=float).reshape(-1)
    if xi.shape[0] != model.n_orb:
        raise TopodiffInputError(f"pattern needs {model.n_orb} entries, got {xi.shape[0]}")
    return model.with_onsite(float(value) * xi)


def zeeman(model: TBModel, field: Sequence[float], *, g: float = 2.0, unit: str = "T") -> TBModel:
    """Zeeman term ``(g µ_B/2) B·σ`` on every orbital (spinless models are made spinful first).

    Parameters
    ----------
    field : ``[3]`` magnetic field (Tesla) for ``unit="T"``, or Zeeman energies ``b`` (eV) for
        ``unit="eV"`` (then ``b·σ`` is added and ``g`` is ignored).
    """
    B = np.asarray(field, dtype=float).reshape(-1)
    if B.shape != (3,) or not np.all(np.isfinite(B)):
        raise TopodiffInputError("Zeeman field must be three finite numbers (Bx, By, Bz)")
    if unit == "T":
        b = 0.5 * g * MU_B_EV_PER_T * B
    elif unit == "eV":
        b = B
    else:
        raise TopodiffInputError(f"unknown Zeeman unit {unit!r} (use 'T' or 'eV')")
    spinful = model.to_spinful()
    block = np.einsum("a,aij->ij", b, PAULI)
    return spinful.with_onsite(np.broadcast_to(block, (spinful.n_orb, 2, 2)))


def apply_field(model: TBModel, name: str, value: float) -> TBModel:
    """Apply a named field of strength ``value`` (see :data:`FIELD_NAMES`).

    ``staggered`` (eV, ±value on alternating orbitals), ``zeeman_x|y|z`` (Zeeman energy in eV along
    that axis), ``electric`` (V/Å along z for a bulk model is not periodic: use a ribbon/slab API).
    """
    if name == "staggered":
        return staggered_potential(model, value)
    if name in ("zeeman_x", "zeeman_y", "zeeman_z"):
        b = np.zeros(3)
        b["xyz".index(name[-1])] = value
        return zeeman(model, b, unit="eV")
    if name == "electric":
        raise TopodiffInputError("field 'electric' acts on ribbons/slabs (topodiff.physics.fields.electric_field); "
                                 "for a bulk 2D sheet use 'staggered'")
    raise TopodiffInputError(f"unknown field {name!r}; fields: {', '.join(FIELD_NAMES[:-1])} "
                             "or a parameter of the built-in model")


# ---------------------------------------------------------------------------------------------
# field sweeps: critical field of a topological transition
Source = Union[Callable[[float], TBModel], tuple[str, dict[str, float]], TBModel, str]


@dataclass
class SweepResult:
    """A field sweep: ``values [n]``, ``invariants`` (None where undetermined, e.g. gap closing on the
    grid), smallest direct ``gaps [n]`` (eV) and the ``transitions`` located by bisection."""

    field: str
    invariant: str
    values: np.ndarray
    invariants: list[Any]
    gaps: np.ndarray
    transitions: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        def js(v: Any) -> Any:
            return list(v) if isinstance(v, tuple) else v

        return {"field": self.field, "invariant": self.invariant, "values": self.values.tolist(),
                "invariants": [js(v) for v in self.invariants], "gaps": self.gaps.tolist(),
                "transitions": [{**t, "from": js(t["from"]), "to": js(t["to"])} for t in self.transitions]}


def model_builder(source: Source, field: str) -> Callable[[float], TBModel]:
    """``value -> TBModel`` for a sweep of ``field``.

    ``source`` is a callable (used as is), a built-in model name or ``(name, params)`` (``field`` may
    be one of its parameters, e.g. ``lambda_v``, or a named field of :func:`apply_field`), or a
    :class:`TBModel` (named fields only).
    """
    if callable(source) and not isinstance(source, TBModel):
        return source
    if isinstance(source, TBModel):
        apply_field(source, field, 0.0)  # validates the field name early
        return lambda v: apply_field(source, field, v)
    from topodiff.physics.library import build_model, model_parameters

    name, params = (source, {}) if isinstance(source, str) else source
    params = dict(params)
    if field in model_parameters(name):
        return lambda v: build_model(name, **{**params, field: float(v)})
    base = build_model(name, **params)
    apply_field(base, field, 0.0)
    return lambda v: apply_field(base, field, v)


def invariant_function(invariant: str, nk: int = 48) -> Callable[[TBModel], Any]:
    """``model -> invariant`` for ``"chern"`` (FHS, ``nk × nk``) or ``"z2"`` (WCC flow, 2D int or 3D tuple).

    Raises :class:`topodiff.errors.ConvergenceError` where the value cannot be trusted.
    """
    if invariant == "chern":
        from topodiff.physics.berry import chern_number

        return lambda m: int(chern_number(m, nk=nk))
    if invariant == "z2":
        from topodiff.physics.z2 import z2_invariant

        return lambda m: (lambda r: tuple(int(x) for x in r) if isinstance(r, (tuple, list)) else int(r))(
            z2_invariant(m))
    raise TopodiffInputError(f"unknown invariant {invariant!r} (use 'chern' or 'z2')")


def _golden_min(f: Callable[[float], float], lo: float, hi: float, xtol: float,
                max_iter: int = 80) -> tuple[float, float]:
    """Golden-section minimum of a unimodal ``f`` on ``[lo, hi]`` → ``(x, f(x))``."""
    r = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    c, d = b - r * (b - a), a + r * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(max_iter):
        if b - a <= xtol:
            break
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - r * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + r * (b - a)
            fd = f(d)
    x = float(0.5 * (a + b))
    return x, float(f(x))


def field_sweep(source: Source, field: str, values: Sequence[float], invariant: str = "z2", *,
                nk: int = 48, gap_nk: int = 60, xtol: float | None = None, rtol: float = 1e-6,
                max_iter: int = 200) -> SweepResult:
    """Scan ``field`` over ``values``, then bisect every interval where the invariant changes.

    Parameters
    ----------
    source : see :func:`model_builder`.
    values : increasing field values (units of the field: eV for ``staggered``/``zeeman_*``).
    invariant : ``"z2"`` or ``"chern"`` (see :func:`invariant_function`).
    xtol, rtol : bisection stops when the bracket is narrower than ``xtol`` (field units; default
        1e-9) or than ``rtol`` × the larger bracket end in magnitude — a resolution relative to the
        critical field itself, so a wide range (``0 … 1e12``) still locates a transition at 0.29.

    Returns
    -------
    :class:`SweepResult`; each transition holds ``critical`` (bracket midpoint), ``bracket``,
    ``from``/``to`` invariants and the direct ``gap`` at ``critical`` (→ 0 at a gap closing).
    """
    from topodiff.errors import ConvergenceError
    from topodiff.physics.bands import band_gaps

    vals = np.asarray(values, dtype=float).reshape(-1)
    if vals.size < 2 or not np.all(np.isfinite(vals)) or np.any(np.diff(vals) <= 0):
        raise TopodiffInputError("field values must be at least 2 finite, increasing numbers")
    build = model_builder(source, field)
    inv_fn = invariant_function(invariant, nk)

    def evaluate(v: float) -> Any:
        try:
            return inv_fn(build(v))
        except ConvergenceError:
            return None

    invs = [evaluate(float(v)) for v in vals]
    gaps = np.array([band_gaps(build(float(v)), nk=gap_nk).direct for v in vals])
    xtol = 1e-9 if xtol is None else float(xtol)

    def narrow(lo: float, hi: float) -> bool:
        return hi - lo <= max(xtol, rtol * max(abs(lo), abs(hi)))

    transitions = []
    for a in range(len(vals) - 1):
        ia, ib = invs[a], invs[a + 1]
        if ia is None or ib is None or ia == ib:
            continue
        lo, hi = float(vals[a]), float(vals[a + 1])
        for _ in range(max_iter):
            if narrow(lo, hi):
                break
            mid = 0.5 * (lo + hi)
            im = evaluate(mid)
            if im == ia:
                lo = mid
            elif im == ib:
                hi = mid
            else:  # undetermined (gap closes on the grid) or a third phase: resolution reached
                break
        method = "bisection"
        if not narrow(lo, hi):  # the invariant is undetermined near the closing: minimise the gap instead
            tol = max(xtol, rtol * max(abs(lo), abs(hi)))
            crit, gap_c = _golden_min(lambda v: band_gaps(build(v), nk=gap_nk).direct, lo, hi, tol)
            method = "bisection+gap-minimum"
        else:
            crit = 0.5 * (lo + hi)
            gap_c = float(band_gaps(build(crit), nk=gap_nk).direct)
        transitions.append({"critical": crit, "bracket": [lo, hi], "from": ia, "to": ib, "gap": gap_c,
                            "method": method})
    return SweepResult(field, invariant, vals, invs, gaps, transitions)

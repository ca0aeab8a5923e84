"""Built-in tight-binding models with documented parameters.

Every model is written once as a *table builder*: a function of parameter arrays (any common
broadcast shape ``grid``) that fills the convention-I hopping table ``T_R [*grid, nb, nb]`` for a
fixed set of offsets ``R``. The same builder gives

* :func:`build_model` — one :class:`~topodiff.physics.model.TBModel` at scalar parameters;
* :func:`build_tables` — a whole parameter grid ``T [*grid, n_R, nb, nb]`` at once (phase
  diagrams), with a structure (``Rs``) that never depends on the parameter values.

The table accumulator lives in :mod:`topodiff.physics.model_tables`, the builders (with their
physics docstrings) in :mod:`topodiff.physics.builtin_models`; this module is the registry and API.
Energies in eV, lengths in Å, angles in radians. Bloch convention of the models: CONTRACTS §1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from topodiff.errors import TopodiffInputError
from topodiff.physics.builtin_models import (_bhz, _bi2se3, _fkm, _graphene, _haldane, _kane_mele, _qwz, _rice_mele,
                                             _ssh, _weyl)
from topodiff.physics.model import TBModel
from topodiff.physics.model_tables import S0, SX, _Table

__all__ = ["list_models", "build_model", "build_tables", "model_parameters", "model_info",
           "inversion_matrix", "ModelSpec"]


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

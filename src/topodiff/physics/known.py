"""Known materials: expected vs computed topology (``topodiff validate-known``).

Each check builds a built-in model with published parameters, computes one quantity with the
engine and compares it with the literature value:

* graphene (Castro Neto et al., RMP 81, 109 (2009)): gapless Dirac point at K; with intrinsic
  spin-orbit coupling (Kane & Mele, PRL 95, 226801 (2005)) a quantum spin Hall insulator, Z2 = 1.
* Bi2Se3 (Zhang et al., Nat. Phys. 5, 438 (2009), four-band model with their fitted parameters):
  strong topological insulator (1;000) — from the WCC flow and, as a cross-check, from Fu-Kane
  parities at the TRIM.
* HgTe quantum well (Bernevig, Hughes & Zhang, Science 314, 1757 (2006); parameters of the 7 nm
  well as used by König et al., J. Phys. Soc. Jpn. 77, 031007 (2008) and Zhou et al., PRL 101,
  246807 (2008): A = 364.5 meV nm, B = −686 meV nm², D = −512 meV nm², M = −10 meV):
  Z2 = 1 for M = −10 meV (inverted), 0 for M = +10 meV (normal, thinner well). The square
  lattice regularisation uses a = 20 Å, fine on the scale √(|M/B|) ≈ 0.012 Å⁻¹ of the inversion.
* Weyl semimetal (two-band model with nodes at (±k0, 0, 0)): two nodes of chirality +1 and −1.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from topodiff.physics.library import build_model, inversion_matrix

HGTE_7NM = {"A": 3.645, "B": -68.6, "D": -51.2, "C": 0.0, "a": 20.0}  # eV Å, eV Å², eV Å², eV, Å


@dataclass
class Check:
    """One comparison: ``material``, ``model`` (name + parameters), ``quantity``, expected value."""

    material: str
    model: str
    quantity: str
    expected: Any
    compute: Callable[[], Any]
    reference: str = ""


@dataclass
class CheckResult:
    material: str
    model: str
    quantity: str
    expected: Any
    computed: Any
    match: bool
    seconds: float
    reference: str
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        def js(v: Any) -> Any:
            if isinstance(v, (tuple, list)):
                return [js(x) for x in v]
            if isinstance(v, (np.integer, np.floating)):
                return v.item()
            return v

        return {"material": self.material, "model": self.model, "quantity": self.quantity,
                "expected": js(self.expected), "computed": js(self.computed), "match": self.match,
                "seconds": round(self.seconds, 3), "reference": self.reference, "error": self.error}


def _dirac_gap_at_K() -> str:
    g = build_model("graphene")
    K = np.array([1 / 3, 2 / 3])
    e = torch.linalg.eigvalsh(g.hamiltonian(K)).numpy()
    # gapless at K, gapped a little away from it (a cone, not a band overlap)
    e2 = torch.linalg.eigvalsh(g.hamiltonian(K + np.array([0.02, 0.0]))).numpy()
    return "gapless" if abs(e[1] - e[0]) < 1e-9 and e2[1] - e2[0] > 1e-3 else f"gap {e[1] - e[0]:.3g} eV"


def _z2(name: str, **params: float) -> Callable[[], Any]:
    def run() -> Any:
        from topodiff.physics.z2 import z2_invariant

        z = z2_invariant(build_model(name, **params))
        return tuple(int(x) for x in z) if isinstance(z, (tuple, list)) else int(z)

    return run


def _z2_parity(name: str, **params: float) -> Callable[[], Any]:
    def run() -> Any:
        from topodiff.physics.z2 import z2_parity

        z = z2_parity(build_model(name, **params), inversion_matrix(name))
        return tuple(int(x) for x in z) if isinstance(z, (tuple, list)) else int(z)

    return run


def _weyl_chiralities() -> list[int]:
    from topodiff.physics.weyl import find_weyl_nodes

    nodes = find_weyl_nodes(build_model("weyl"))
    return sorted(int(n.chirality) for n in nodes)


def known_checks() -> list[Check]:
    """The validation suite (see module docstring)."""
    return [
        Check("graphene", "graphene", "Dirac point at K", "gapless", _dirac_gap_at_K, "Castro Neto 2009"),
        Check("graphene + SOC", "kane_mele(lambda_r=0, lambda_v=0)", "Z2", 1,
              _z2("kane_mele", lambda_r=0.0, lambda_v=0.0), "Kane & Mele 2005"),
        Check("Bi2Se3", "bi2se3 (Zhang 2009 fit)", "Z2 (WCC)", (1, 0, 0, 0), _z2("bi2se3"), "Zhang et al. 2009"),
        Check("Bi2Se3", "bi2se3 (Zhang 2009 fit)", "Z2 (parity)", (1, 0, 0, 0), _z2_parity("bi2se3"),
              "Fu & Kane 2007"),
        Check("HgTe QW, inverted", "bhz(HgTe 7 nm, M=-0.010)", "Z2", 1, _z2("bhz", M=-0.010, **HGTE_7NM),
              "Bernevig, Hughes & Zhang 2006"),
        Check("HgTe QW, normal", "bhz(HgTe, M=+0.010)", "Z2", 0, _z2("bhz", M=0.010, **HGTE_7NM),
              "Bernevig, Hughes & Zhang 2006"),
        Check("Weyl semimetal", "weyl", "node chiralities", [-1, 1], _weyl_chiralities, "two-node minimal model"),
    ]


def run_checks(checks: list[Check] | None = None) -> list[CheckResult]:
    """Run every check; an exception becomes a failed row with its message (the run goes on)."""
    out = []
    for c in checks if checks is not None else known_checks():
        t0 = time.perf_counter()
        err = None
        try:
            got = c.compute()
        except Exception as exc:  # noqa: BLE001 - report, do not stop the suite
            got, err = None, f"{type(exc).__name__}: {exc}"
        ok = err is None and _same(got, c.expected)
        out.append(CheckResult(c.material, c.model, c.quantity, c.expected, got, ok, time.perf_counter() - t0,
                               c.reference, err))
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b

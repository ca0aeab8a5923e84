"""The verdict rules of `verify --dft` (pure function; no GPAW needed)."""
from __future__ import annotations

from topodiff.dft.topology import verdict


def test_verdict_rules():
    assert verdict([1, 0, 0, 0], 0.3, 28)[0] == "strong_ti"
    assert verdict([0, 1, 0, 0], 0.3, 28)[0] == "weak_ti"
    assert verdict([0, 0, 0, 0], 0.3, 28)[0] == "trivial_insulator"
    v, why = verdict([0, 0, 0, 0], 0.3, 27)
    assert v == "metal" and "odd number" in why
    v, why = verdict(None, 0.005, 28)
    assert v == "metal" and "direct gap" in why
    v, why = verdict([1, 0, 0, 0], 0.1, 28)  # below the LCAO/PW trust gap: no guess
    assert v == "inconclusive" and "--basis pw" in why
    assert verdict([1, 0, 0, 0], 0.1, 28, trust_gap=0.0)[0] == "strong_ti"  # the plane-wave check's own call
    assert verdict([1, 0, 0, 0], 0.3, 28, routes_agree=False)[0] == "inconclusive"
    assert verdict(None, 0.3, 28)[0] == "inconclusive"

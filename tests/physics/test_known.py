"""Known materials: the validation suite itself, and that it can fail."""
from __future__ import annotations

from topodiff.physics.known import Check, known_checks, run_checks


def test_all_known_materials_match() -> None:
    results = run_checks()
    names = {r.material for r in results}
    assert {"graphene", "graphene + SOC", "Bi2Se3", "HgTe QW, inverted", "HgTe QW, normal", "Weyl semimetal"} <= names
    bad = [r.to_dict() for r in results if not r.match]
    assert not bad, bad
    bi = [r for r in results if r.material == "Bi2Se3"]
    assert all(tuple(r.computed) == (1, 0, 0, 0) for r in bi)


def test_a_wrong_expectation_fails_and_errors_are_reported() -> None:
    km = next(c for c in known_checks() if c.material == "graphene + SOC")
    wrong = Check(km.material, km.model, km.quantity, 0, km.compute)

    def boom() -> int:
        raise RuntimeError("no")

    broken = Check("x", "x", "Z2", 1, boom)
    res = run_checks([wrong, broken])
    assert res[0].computed == 1 and not res[0].match
    assert not res[1].match and "RuntimeError" in res[1].error
    assert res[1].to_dict()["computed"] is None

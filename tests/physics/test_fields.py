"""Electric, staggered and Zeeman fields."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from topodiff.errors import TopodiffInputError
from topodiff.physics.fields import (MU_B_EV_PER_T, apply_field, electric_field, field_sweep,
                                     staggered_potential, zeeman)
from topodiff.physics.finite import ribbon
from topodiff.physics.library import build_model


def _eig(model, k):
    return torch.linalg.eigvalsh(model.hamiltonian(k)).numpy()


def test_staggered_equals_kane_mele_lambda_v() -> None:
    k = np.random.default_rng(0).random((20, 2))
    base = build_model("kane_mele", lambda_v=0.0)
    np.testing.assert_allclose(_eig(staggered_potential(base, 0.23), k),
                               _eig(build_model("kane_mele", lambda_v=0.23), k), atol=1e-12)
    np.testing.assert_allclose(_eig(apply_field(base, "staggered", 0.23), k),
                               _eig(build_model("kane_mele", lambda_v=0.23), k), atol=1e-12)


def test_zeeman_splitting() -> None:
    g = build_model("graphene")
    k = np.random.default_rng(1).random((10, 2))
    e0 = _eig(g, k)
    ez = _eig(zeeman(g, [0.0, 0.0, 0.05], unit="eV"), k)
    np.testing.assert_allclose(np.sort(ez, axis=1), np.sort(np.concatenate([e0 - 0.05, e0 + 0.05], 1), axis=1),
                               atol=1e-12)
    # 10 T, g = 2: splitting g µ_B B = 1.158 meV, independent of the field direction
    ex = _eig(zeeman(g, [10.0, 0.0, 0.0]), k)
    np.testing.assert_allclose(ex[:, 1] - ex[:, 0], 2 * MU_B_EV_PER_T * 10.0, rtol=1e-9)
    with pytest.raises(TopodiffInputError):
        zeeman(g, [1.0, 2.0])


def test_electric_field_across_ribbon() -> None:
    geom = ribbon(build_model("haldane"), 8)
    E = 0.05  # V/Å along the ribbon normal
    out = electric_field(geom, E)
    dV = np.real(out.model.onsite[:, 0, 0] - geom.model.onsite[:, 0, 0])
    across = geom.cartesian @ geom.normal
    np.testing.assert_allclose(dV, -E * (across - across.mean()), atol=1e-12)
    assert abs(dV.sum()) < 1e-10
    # the field lowers the energy of the edge it points to
    assert dV[np.argmax(across)] < dV[np.argmin(across)]


def test_electric_field_bulk_rules() -> None:
    m = build_model("haldane")
    with pytest.raises(TopodiffInputError, match="not periodic"):
        electric_field(m, 0.1)
    with pytest.raises(TopodiffInputError, match="periodic lattice direction"):
        electric_field(m, [0.1, 0.0, 0.0], positions=np.zeros((2, 3)))
    # a field along z on a layered 2D model: ± E d/2 on layers at z = ±d/2
    pos = np.array([[0.0, 0.0, 1.0], [0.5, 0.3, -1.0]])
    out = electric_field(m, [0.0, 0.0, 0.2], positions=pos)
    np.testing.assert_allclose(np.real(out.onsite[:, 0, 0] - m.onsite[:, 0, 0]), [-0.2, 0.2], atol=1e-12)


def test_unknown_field() -> None:
    with pytest.raises(TopodiffInputError, match="unknown field"):
        apply_field(build_model("haldane"), "magnetic", 1.0)


def test_kane_mele_critical_staggered_field() -> None:
    """λ_v,c = 3√3 λ_SO at λ_R = 0 (Kane & Mele, PRL 95, 226801 (2005)), to 1e-3 relative."""
    lam_so = 0.06
    res = field_sweep(("kane_mele", {"lambda_r": 0.0, "lambda_v": 0.0, "lambda_so": lam_so}), "staggered",
                      np.linspace(0.0, 0.6, 7), "z2")
    assert res.invariants[0] == 1 and res.invariants[-1] == 0
    assert len(res.transitions) == 1
    crit = res.transitions[0]["critical"]
    assert crit == pytest.approx(3 * np.sqrt(3) * lam_so, rel=1e-3)
    assert res.transitions[0]["gap"] < 1e-3
    # the same through the model's own parameter
    res2 = field_sweep(("kane_mele", {"lambda_r": 0.0, "lambda_so": lam_so}), "lambda_v",
                       np.linspace(0.0, 0.6, 7), "z2")
    assert res2.transitions[0]["critical"] == pytest.approx(crit, rel=1e-6)


def test_rashba_moves_the_transition() -> None:
    crits = []
    for lam_r in (0.0, 0.1):
        res = field_sweep(("kane_mele", {"lambda_r": lam_r, "lambda_v": 0.0}), "staggered",
                          np.linspace(0.0, 0.6, 7), "z2")
        assert len(res.transitions) == 1
        crits.append(res.transitions[0]["critical"])
    assert abs(crits[1] - crits[0]) > 0.01  # Rashba lowers λ_v,c (0.312 → 0.240 eV here)


def test_haldane_critical_mass_with_chern() -> None:
    res = field_sweep(build_model("haldane", M=0.0), "staggered", np.linspace(0.0, 1.2, 7), "chern", nk=24)
    assert res.transitions[0]["critical"] == pytest.approx(3 * np.sqrt(3) * 0.15, rel=1e-3)
    assert abs(res.transitions[0]["from"]) == 1 and res.transitions[0]["to"] == 0


def test_sweep_bad_input() -> None:
    with pytest.raises(TopodiffInputError, match="increasing"):
        field_sweep(("kane_mele", {}), "staggered", [0.3, 0.1], "z2")
    with pytest.raises(TopodiffInputError, match="unknown invariant"):
        field_sweep(("kane_mele", {}), "staggered", [0.1, 0.3], "berry")
    with pytest.raises(TopodiffInputError, match="unknown field"):
        field_sweep(("kane_mele", {}), "gravity", [0.1, 0.3], "z2")

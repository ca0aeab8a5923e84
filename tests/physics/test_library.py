"""Built-in models: Hamiltonians equal their published formulas; tables are vectorised and stable."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from topodiff.errors import ModelError, TopodiffInputError
from topodiff.physics import TBModel, load_model
from topodiff.physics.library import build_model, build_tables, list_models, model_info, model_parameters
from topodiff.physics.model import bloch_hamiltonian

SX = np.array([[0, 1], [1, 0]], complex)
SY = np.array([[0, -1j], [1j, 0]])
SZ = np.diag([1.0 + 0j, -1.0])
S0 = np.eye(2, dtype=complex)
RNG = np.random.default_rng(7)


def H_of(model: TBModel, k: np.ndarray, convention: int = 1) -> np.ndarray:
    return model.hamiltonian(k, convention=convention).numpy()


def test_catalogue_and_parameters() -> None:
    names = list_models()
    for n in ("ssh", "rice_mele", "qwz", "haldane", "kane_mele", "bhz", "fu_kane_mele", "weyl", "graphene", "bi2se3"):
        assert n in names
    for n in names:
        info = model_info(n)
        assert info["doc"] and set(info["params"]) == set(model_parameters(n))
        m = build_model(n)
        H = m.hamiltonian(RNG.random((16, m.dim)))
        assert torch.allclose(H, H.mH)
        assert m.params == {k: pytest.approx(v) for k, v in model_parameters(n).items()}


@pytest.mark.parametrize("name", list_models())
def test_tables_match_model_and_are_vectorised(name: str) -> None:
    m = build_model(name)
    Rs, T, pos = build_tables(name, {})
    Rs2, T2 = m.table
    np.testing.assert_array_equal(Rs, Rs2)
    np.testing.assert_allclose(T, T2, atol=1e-14)
    np.testing.assert_allclose(pos, m.state_positions)
    # a 2x3 grid of two parameters equals models built one by one; structure does not depend on values
    keys = [k for k in model_parameters(name) if k not in ("a", "c", "k0")][:2]
    defaults = model_parameters(name)
    grid = {keys[0]: defaults[keys[0]] + np.array([[0.0], [0.3]])}
    if len(keys) > 1:
        grid[keys[1]] = defaults[keys[1]] * np.array([0.0, 1.0, -0.7])  # includes a zero value
    Rg, Tg, _ = build_tables(name, grid)
    np.testing.assert_array_equal(Rg, Rs)
    k = RNG.random((5, m.dim))
    for idx in np.ndindex(Tg.shape[:-3]):
        p = {key: float(np.broadcast_to(v, Tg.shape[:-3])[idx]) for key, v in grid.items()}
        mi = build_model(name, **p)
        Hg = bloch_hamiltonian(k, torch.as_tensor(Rg), torch.as_tensor(Tg[idx]), torch.as_tensor(pos))
        assert torch.allclose(Hg, mi.hamiltonian(k), atol=1e-12)


def test_qwz_is_the_contract_formula() -> None:
    u = -0.7
    k = RNG.random((20, 2))
    kx, ky = 2 * np.pi * k[:, 0], 2 * np.pi * k[:, 1]
    ref = (np.sin(kx)[:, None, None] * SX + np.sin(ky)[:, None, None] * SY
           + (u + np.cos(kx) + np.cos(ky))[:, None, None] * SZ)
    np.testing.assert_allclose(H_of(build_model("qwz", u=u), k, 2), ref, atol=1e-13)


def test_bhz_formula_and_time_reversal_blocks() -> None:
    p = dict(A=1.3, B=-0.8, C=0.1, D=-0.3, M=-0.5, a=1.7)
    m = build_model("bhz", **p)
    k = RNG.random((15, 2))
    kx, ky = 2 * np.pi * k[:, 0], 2 * np.pi * k[:, 1]
    a = p["a"]
    k2 = 2 / a**2 * (2 - np.cos(kx) - np.cos(ky))
    d1, d2 = p["A"] * np.sin(kx) / a, p["A"] * np.sin(ky) / a
    d3, eps = p["M"] - p["B"] * k2, p["C"] - p["D"] * k2
    up = eps[:, None, None] * S0 + d1[:, None, None] * SX + d2[:, None, None] * SY + d3[:, None, None] * SZ
    dn = eps[:, None, None] * S0 - d1[:, None, None] * SX + d2[:, None, None] * SY + d3[:, None, None] * SZ
    H = H_of(m, k)
    # stored order (E↑, E↓, H↑, H↓): spin-up block is rows/cols (0, 2), spin-down (1, 3)
    np.testing.assert_allclose(H[:, [0, 2]][:, :, [0, 2]], up, atol=1e-13)
    np.testing.assert_allclose(H[:, [1, 3]][:, :, [1, 3]], dn, atol=1e-13)
    np.testing.assert_allclose(H[:, [0, 2]][:, :, [1, 3]], 0, atol=1e-13)
    # h_dn(k) = h_up(-k)^*
    np.testing.assert_allclose(dn, H_of(m, -k)[:, [0, 2]][:, :, [0, 2]].conj(), atol=1e-13)


def test_bi2se3_is_zhang_eq2_near_gamma() -> None:
    p = model_parameters("bi2se3")
    m = build_model("bi2se3")
    q = np.array([[0.004, -0.003, 0.002]])  # small reduced k: the lattice form reduces to k·p
    a, c = p["a"], p["c"]
    kx, ky, kz = 2 * np.pi * q[0, 0] / a, 2 * np.pi * q[0, 1] / a, 2 * np.pi * q[0, 2] / c
    kp, km, kk = kx + 1j * ky, kx - 1j * ky, kx**2 + ky**2
    M = p["M0"] - p["B1"] * kz**2 - p["B2"] * kk
    eps = p["C"] + p["D1"] * kz**2 + p["D2"] * kk
    A1, A2 = p["A1"], p["A2"]
    Hz = np.array([[M, A1 * kz, 0, A2 * km], [A1 * kz, -M, A2 * km, 0],
                   [0, A2 * kp, M, -A1 * kz], [A2 * kp, 0, -A1 * kz, -M]]) + eps * np.eye(4)
    perm = [0, 2, 1, 3]  # (P1↑, P2↑, P1↓, P2↓) -> (P1↑, P1↓, P2↑, P2↓)
    Hz = Hz[np.ix_(perm, perm)]
    np.testing.assert_allclose(H_of(m, q)[0], Hz, atol=2e-4 * np.abs(Hz).max())
    e = np.linalg.eigvalsh(H_of(m, np.zeros((1, 3)))[0])
    assert e[2] - e[1] == pytest.approx(2 * p["M0"], rel=1e-12)  # bulk gap 2 M0 at Γ


def test_weyl_formula() -> None:
    t, k0, mm = 1.2, 1.1, 1.5
    k = RNG.random((10, 3))
    kx, ky, kz = (2 * np.pi * k).T
    d = [t * np.sin(ky), t * np.sin(kz), t * (np.cos(kx) - np.cos(k0) + mm * (2 - np.cos(ky) - np.cos(kz)))]
    ref = sum(di[:, None, None] * s for di, s in zip(d, (SX, SY, SZ)))
    np.testing.assert_allclose(H_of(build_model("weyl", t=t, k0=k0, m=mm), k), ref, atol=1e-13)


def test_graphene_dirac_points_and_bandwidth() -> None:
    m = build_model("graphene")
    e = np.linalg.eigvalsh(H_of(m, np.array([[1 / 3, 2 / 3], [2 / 3, 1 / 3], [0.0, 0.0]]), 2))
    np.testing.assert_allclose(e[:2], 0.0, atol=1e-12)
    np.testing.assert_allclose(e[2], [-8.1, 8.1], atol=1e-12)  # ±3|t| at Γ
    nn = (m.orbitals[1] - m.orbitals[0]) @ m.lattice
    assert np.linalg.norm(nn) == pytest.approx(2.46 / math.sqrt(3))  # C-C bond 1.42 Å


def test_haldane_gap_closes_on_the_chern_boundary() -> None:
    t2, phi = 0.15, 0.9
    Mc = 3 * math.sqrt(3) * t2 * math.sin(phi)
    K = np.array([[1 / 3, 2 / 3], [2 / 3, 1 / 3]])
    gaps = [np.diff(np.linalg.eigvalsh(H_of(build_model("haldane", t2=t2, phi=phi, M=M), K)), axis=-1).min()
            for M in (Mc, 0.9 * Mc)]
    assert gaps[0] < 1e-12 and gaps[1] > 0.05


def test_kane_mele_without_rashba_is_two_haldane_copies() -> None:
    lso, lv = 0.07, 0.15
    km = build_model("kane_mele", lambda_so=lso, lambda_r=0.0, lambda_v=lv)
    k = RNG.random((12, 2))
    e = np.linalg.eigvalsh(H_of(km, k))
    copies = [np.linalg.eigvalsh(H_of(build_model("haldane", t1=1.0, t2=lso, phi=s * math.pi / 2, M=lv), k))
              for s in (1, -1)]
    np.testing.assert_allclose(e, np.sort(np.concatenate(copies, axis=-1), axis=-1), atol=1e-12)


def test_fkm_is_a_semimetal_at_x_without_dimerisation() -> None:
    X = np.array([[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    e0 = np.linalg.eigvalsh(H_of(build_model("fu_kane_mele", dt1=0.0), X))
    e1 = np.linalg.eigvalsh(H_of(build_model("fu_kane_mele", dt1=0.3), X))
    np.testing.assert_allclose(e0, 0.0, atol=1e-12)
    assert (e1[:, 2] - e1[:, 1]).min() > 0.5


@pytest.mark.parametrize("bad, match", [
    (lambda: build_model("nope"), "unknown model 'nope'.*haldane"),
    (lambda: build_model("qwz", v=1.0), "no parameter 'v'; valid: u"),
    (lambda: build_model("qwz", u=float("nan")), "finite"),
    (lambda: build_model("graphene", a=-1.0), "positive"),
    (lambda: build_model("weyl", k0=4.0), "k0"),
    (lambda: build_model("qwz", u="x"), "number"),
    (lambda: build_tables("bhz", {"a": np.array([1.0, 2.0])}), "scalar"),
])
def test_bad_input_is_a_clear_error(bad, match) -> None:
    with pytest.raises(TopodiffInputError, match=match):
        bad()


def test_load_model_sources(tmp_path) -> None:
    m = build_model("haldane", M=0.3)
    assert load_model(m) is m
    path = tmp_path / "h.json"
    path.write_text(json.dumps(m.to_dict()))
    m2 = load_model(path, filling=1)
    Rs, T = m.table
    Rs2, T2 = m2.table
    np.testing.assert_array_equal(Rs, Rs2)
    np.testing.assert_allclose(T, T2)
    assert m2.params == {} and m2.filling == 1
    assert load_model("kane-mele", params={"lambda_v": 0.4}).params["lambda_v"] == 0.4
    (tmp_path / "bad.json").write_text('{"format": "topodiff-tb/1", "lattice": [[1,0],[0,1]]')
    with pytest.raises(TopodiffInputError, match="invalid JSON"):
        load_model(tmp_path / "bad.json")
    with pytest.raises(TopodiffInputError, match="not found"):
        load_model(tmp_path / "missing.json")
    with pytest.raises(TopodiffInputError, match="only to built-in"):
        load_model(path, params={"M": 1.0})
    with pytest.raises(TopodiffInputError, match="filling"):
        load_model("qwz", filling=2)
    doc = m.to_dict()
    doc["hoppings"][0]["i"] = 5
    (tmp_path / "idx.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="out of range"):
        load_model(tmp_path / "idx.json")

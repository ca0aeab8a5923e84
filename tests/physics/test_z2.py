"""Z2 from WCC flow (2D, 3D) and the Fu-Kane parity cross-check on published phase diagrams."""
from __future__ import annotations

import math

import numpy as np
import pytest

from topodiff.errors import TopodiffInputError
from topodiff.physics import TBModel, z2_invariant
from topodiff.physics.library import build_model, inversion_matrix
from topodiff.physics.z2 import has_time_reversal, kramers_paired, z2_from_flow, z2_parity, z2_result


def test_z2_from_synthetic_flows() -> None:
    k = np.linspace(0, 0.5, 11)[:, None]
    assert z2_from_flow(np.hstack([0.2 + 0 * k, 0.6 + 0 * k])) == 0  # static: trivial
    # one Kramers pair that splits at κ=0 and re-pairs with the neighbour at κ=1/2: switching
    a = 0.25 + k[:, 0]
    b = 0.25 - k[:, 0]
    assert z2_from_flow(np.stack([a, np.remainder(b, 1.0)], axis=1)) == 1
    # a pair that splits and rejoins itself: trivial
    c = 0.3 + 0.2 * np.sin(2 * np.pi * k[:, 0])
    assert z2_from_flow(np.stack([c, 0.3 - (c - 0.3)], axis=1)) == 0
    with pytest.raises(TopodiffInputError):
        z2_from_flow(np.zeros(4))
    # Z2Pack's test_not_kramers_pairs: non-degenerate centres at a TRIM line are refused on request
    unpaired = np.hstack([0.1 + 0 * k, 0.6 + 0 * k])
    with pytest.raises(TopodiffInputError, match="Kramers"):
        z2_from_flow(unpaired, check_kramers=True)
    assert kramers_paired(np.array([0.99995, 0.00003, 0.4, 0.4]))
    assert not kramers_paired(np.array([0.1, 0.3]))


LSO = 0.06
LV_C = 3 * math.sqrt(3) * LSO  # Kane & Mele: transition at λ_v = 3√3 λ_SO for λ_R = 0


@pytest.mark.parametrize("lv, expected", [(0.0, 1), (0.8 * LV_C, 1), (0.97 * LV_C, 1), (1.03 * LV_C, 0),
                                          (1.5 * LV_C, 0)])
def test_kane_mele_staggered_transition(lv: float, expected: int) -> None:
    assert z2_invariant(build_model("kane_mele", lambda_so=LSO, lambda_r=0.0, lambda_v=lv)) == expected


def test_kane_mele_paper_points_with_rashba() -> None:
    # Kane & Mele Fig. 1: λ_SO = .06t, λ_R = .05t; λ_v = .1t QSH, λ_v = .4t insulator
    assert z2_invariant(build_model("kane_mele", lambda_v=0.1)) == 1
    assert z2_invariant(build_model("kane_mele", lambda_v=0.4)) == 0


@pytest.mark.parametrize("M, expected", [(-1.0, 1), (-0.2, 1), (0.2, 0), (1.0, 0), (-5.0, 1), (-9.0, 0)])
def test_bhz_inverted_well(M: float, expected: int) -> None:
    # B = -1, a = 1: inverted for M/B > 0 while |M| < 8|B|/a²
    m = build_model("bhz", M=M)
    assert z2_invariant(m) == expected
    assert z2_parity(m, inversion_matrix("bhz")) == expected


def test_hgte_parameters() -> None:
    # König et al. (2008), 7.0 nm well (inverted) vs the same well with M > 0 (normal)
    hgte = dict(A=3.645, B=-68.6, D=-51.1, a=20.0)
    assert z2_invariant(build_model("bhz", M=-0.01, **hgte)) == 1
    assert z2_invariant(build_model("bhz", M=0.01, **hgte)) == 0


def test_fu_kane_mele_strong_and_weak() -> None:
    # Fu, Kane & Mele PRL 98, 106803: δt1 > 0 on the [111] bond -> STI (1;111), δt1 < 0 -> WTI (0;111)
    strong, weak = build_model("fu_kane_mele", dt1=0.4), build_model("fu_kane_mele", dt1=-0.4)
    assert z2_invariant(strong) == (1, 1, 1, 1)
    assert z2_invariant(weak) == (0, 1, 1, 1)
    P = inversion_matrix("fu_kane_mele")
    assert z2_parity(strong, P) == (1, 1, 1, 1)
    assert z2_parity(weak, P) == (0, 1, 1, 1)


def test_bi2se3_strong_ti() -> None:
    m = build_model("bi2se3")
    assert z2_invariant(m) == (1, 0, 0, 0)
    assert z2_parity(m, inversion_matrix("bi2se3")) == (1, 0, 0, 0)
    assert z2_invariant(build_model("bi2se3", M0=-0.28)) == (0, 0, 0, 0)


def test_parity_kane_mele_with_inversion() -> None:
    m = build_model("kane_mele", lambda_r=0.0, lambda_v=0.0)
    assert z2_parity(m, inversion_matrix("kane_mele")) == 1 == z2_invariant(m)
    with pytest.raises(TopodiffInputError, match="not a symmetry"):
        z2_parity(build_model("kane_mele"), inversion_matrix("kane_mele"))  # λ_v, λ_R break inversion


def _spinless_copy(m: TBModel) -> TBModel:
    """A spinful model rewritten as a spinless one with two orbitals per site (same basis order)."""
    ns = 2
    orb = np.repeat(m.orbitals, ns, axis=0)
    onsite = np.zeros(len(orb))
    hi, hj, hR, ht = [], [], [], []
    for o in range(m.n_orb):
        onsite[2 * o:2 * o + 2] = np.diag(m.onsite[o]).real
        if abs(m.onsite[o][0, 1]) > 0:
            hi.append(2 * o); hj.append(2 * o + 1); hR.append([0] * m.dim); ht.append(m.onsite[o][0, 1])
    for i, j, R, t in zip(m.hop_i, m.hop_j, m.hop_R, m.hop_t):
        for a in range(ns):
            for b in range(ns):
                hi.append(ns * i + a); hj.append(ns * j + b); hR.append(list(R)); ht.append(t[a, b])
    return TBModel(m.lattice, orb, onsite, hi, hj, np.array(hR), np.array(ht), spinful=False, filling=m.filling)


def test_spinless_doubled_orbitals_equal_spinful() -> None:
    for name, kw in (("kane_mele", {}), ("kane_mele", {"lambda_v": 0.4}), ("fu_kane_mele", {})):
        m = build_model(name, **kw)
        s = _spinless_copy(m)
        k = np.random.default_rng(0).random((10, m.dim))
        np.testing.assert_allclose(s.hamiltonian(k).numpy(), m.hamiltonian(k).numpy(), atol=1e-12)
        assert z2_invariant(s) == z2_invariant(m)
        assert has_time_reversal(s) and has_time_reversal(m)
    # to_spinful doubles a spinless model: two degenerate copies -> trivial Z2, doubled Chern
    h = build_model("haldane").to_spinful()
    assert z2_invariant(h, raise_on_failure=False) == 0
    assert not has_time_reversal(h)


def test_errors_and_diagnostics() -> None:
    with pytest.raises(TopodiffInputError, match="even"):
        z2_invariant(build_model("kane_mele"), filling=1)
    with pytest.raises(TopodiffInputError):
        z2_invariant(build_model("ssh").to_spinful())
    res = z2_result(build_model("kane_mele"))
    assert res.converged and res.warning is None and res.energy_gap > 0.1
    assert kramers_paired(res.flows["plane"].wcc[0]) and kramers_paired(res.flows["plane"].wcc[-1])
    flow = res.flows["plane"]
    assert flow.wcc.shape[1] == 2 and np.all((flow.wcc >= 0) & (flow.wcc < 1))
    assert flow.k[0] == 0.0 and flow.k[-1] == 0.5 and np.all(np.diff(flow.k) > 0)

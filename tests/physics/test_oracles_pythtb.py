"""PythTB 1.8.0 as an oracle: the same models built in PythTB give the same bands, Chern numbers,
Zak phases and hybrid WCCs (test-only dependency; skipped when absent)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from topodiff.physics import TBModel, berry_phase, chern_number
from topodiff.physics.library import build_model
from topodiff.physics.wilson import wilson_wcc
from topodiff.physics.z2 import z2_from_flow, z2_invariant

pythtb = pytest.importorskip("pythtb", reason="PythTB (test-only oracle) is not installed")


def to_pythtb(m: TBModel):
    """The same model in PythTB: lattice, orbital positions, onsite blocks and hoppings (h.c. implied)."""
    lat = m.lattice
    tb = pythtb.tb_model(m.dim, lat.shape[1], lat.tolist(), m.orbitals.tolist(), nspin=m.n_spin)
    tb.set_onsite([o if m.spinful else o[0, 0].real for o in m.onsite])
    for i, j, R, t in zip(m.hop_i, m.hop_j, m.hop_R, m.hop_t):
        amp = t if m.spinful else complex(t[0, 0])
        if i == j and not R.any():
            continue  # onsite terms already set (none in the built-ins)
        tb.set_hop(amp, int(i), int(j), [int(x) for x in R], mode="add", allow_conjugate_pair=True)
    return tb


def pythtb_chern(m: TBModel, n: int) -> float:
    w = pythtb.wf_array(to_pythtb(m), [n, n])
    w.solve_on_grid([0.0, 0.0])
    return float(w.berry_flux(list(range(m.occupied)))) / (2 * math.pi)


@pytest.mark.parametrize("name", ["haldane", "kane_mele", "qwz", "ssh", "bhz", "fu_kane_mele", "bi2se3", "graphene"])
def test_same_bands(name: str) -> None:
    m = build_model(name)
    k = np.random.default_rng(1).random((7, m.dim))
    e_ref = np.asarray(to_pythtb(m).solve_all(k.tolist())).reshape(m.num_bands, -1).T
    e = np.linalg.eigvalsh(m.hamiltonian(k).numpy())
    np.testing.assert_allclose(e, e_ref, atol=1e-10)


# (t2, φ, M / (3√3 t2 |sin φ|), PythTB grid): points across the Haldane phase diagram; the ones within a
# few % of the boundary M = 3√3 t2 sin φ need a fine PythTB grid (tens of seconds each) and are marked slow
SLOW = pytest.mark.slow
HALDANE_POINTS = [(0.15, math.pi / 2, 0.0, 40), (0.15, math.pi / 2, 0.5, 40), (0.15, math.pi / 2, 2.0, 40),
                  (0.2, 2.5, -0.8, 40), (0.1, -0.6, 1.3, 40)] + \
                 [pytest.param(*p, marks=SLOW) for p in [(0.15, math.pi / 2, r, 200) for r in (0.95, 0.99, 1.01, 1.05)]
                  + [(0.1, -0.6, r, 200) for r in (0.98, 1.02)] + [(0.2, 2.5, r, 200) for r in (-0.97, -1.03)]]


@pytest.mark.parametrize("t2, phi, ratio, n_ref", HALDANE_POINTS)
def test_haldane_chern_vs_pythtb(t2: float, phi: float, ratio: float, n_ref: int) -> None:
    M = ratio * 3 * math.sqrt(3) * t2 * abs(math.sin(phi))  # boundary M = 3√3 t2 sin φ
    m = build_model("haldane", t2=t2, phi=phi, M=M)
    c = chern_number(m, nk=24)
    ref = pythtb_chern(m, n_ref)
    assert c == round(ref) and abs(ref - round(ref)) < 1e-6
    assert c == (0 if abs(ratio) > 1 else -int(np.sign(math.sin(phi))))


@pytest.mark.parametrize("u", [-2.5, -1.0, 1.0, 2.5])
def test_qwz_chern_vs_pythtb(u: float) -> None:
    m = build_model("qwz", u=u)
    assert chern_number(m, nk=20) == round(pythtb_chern(m, 24))


@pytest.mark.parametrize("v, w", [(0.5, 1.0), (1.0, 0.5), (0.3, -0.8)])
def test_zak_phase_vs_pythtb(v: float, w: float) -> None:
    for m in (build_model("ssh", v=v, w=w), build_model("rice_mele", v=v, w=w, delta=0.37)):
        wf = pythtb.wf_array(to_pythtb(m), [101])
        wf.solve_on_grid([0.0])
        ref = float(wf.berry_phase([0], 0)) % (2 * math.pi)
        got = berry_phase(m, nk=100)
        assert min(abs(got - ref), 2 * math.pi - abs(got - ref)) < 1e-9


@pytest.mark.parametrize("lv", [0.1, 0.4])
def test_kane_mele_wcc_and_z2_vs_pythtb(lv: float) -> None:
    m = build_model("kane_mele", lambda_v=lv)
    n1, n2 = 21, 32
    wf = pythtb.wf_array(to_pythtb(m), [n1, n2])
    wf.solve_on_grid([0.0, 0.0])
    ref = np.remainder(np.asarray(wf.berry_phase([0, 1], dir=1, contin=False, berry_evals=True)) / (2 * math.pi), 1.0)
    k1 = np.arange(n1 - 1) / (n1 - 1)
    ours, _ = wilson_wcc(m, k1, loop_axis=1, flow_axis=0, n_loop=n2 - 1)
    ref = np.sort(ref[: n1 - 1], axis=-1)
    d = np.abs(ours.numpy() - ref)
    assert np.minimum(d, 1 - d).max() < 1e-8
    half = ref[: (n1 - 1) // 2 + 1]
    assert z2_from_flow(half) == z2_invariant(m) == (1 if lv < 3 * math.sqrt(3) * 0.06 else 0)

"""FHS Chern numbers and Berry curvature: published phase diagrams, conventions, failure modes."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers import assert_integer
from topodiff.errors import ConvergenceError, TopodiffInputError
from topodiff.physics.berry import (berry_curvature, chern_from_hamiltonians, chern_number, chern_result,
                                    plaquette_flux)
from topodiff.physics.library import build_model, build_tables
from topodiff.physics.model import bloch_hamiltonian, k_grid
from topodiff.physics.wilson import chern_from_flow, wcc_flow


@pytest.mark.parametrize("u, expected", [(-3.0, 0), (-2.05, 0), (-1.95, 1), (-1.0, 1), (-0.05, 1),
                                         (0.05, -1), (1.0, -1), (1.95, -1), (2.05, 0), (3.0, 0)])
def test_qwz_phase_diagram(u: float, expected: int) -> None:
    # CONTRACTS §2: lower band C = +1 for -2 < u < 0
    assert chern_number(build_model("qwz", u=u), nk=24) == expected


def test_batched_chern_over_a_parameter_grid() -> None:
    u = np.linspace(-2.9, 2.9, 12)
    Rs, T, pos = build_tables("qwz", {"u": u})
    n = 32
    H = bloch_hamiltonian(k_grid([n, n]), torch.as_tensor(Rs), torch.as_tensor(T), torch.as_tensor(pos))
    raw = chern_from_hamiltonians(H, 1, pos).numpy()
    expected = np.where(np.abs(u) > 2, 0, np.where(u < 0, 1, -1))
    np.testing.assert_allclose(raw, expected, atol=1e-9)


@pytest.mark.parametrize("M_over_Mc, phi", [(0.0, math.pi / 2), (0.9, math.pi / 2), (0.97, 0.7), (1.03, 0.7),
                                             (-0.97, -0.7), (1.5, math.pi / 2), (0.97, -2.0)])
def test_haldane_phase_boundary(M_over_Mc: float, phi: float) -> None:
    t2 = 0.15
    Mc = 3 * math.sqrt(3) * t2 * abs(math.sin(phi))
    c = chern_number(build_model("haldane", t2=t2, phi=phi, M=M_over_Mc * Mc), nk=32)
    if abs(M_over_Mc) > 1:
        assert c == 0
    else:
        assert c == -int(np.sign(math.sin(phi)))  # orientation of ν_ij in library._haldane; checked vs PythTB


def test_refinement_kicks_in_near_the_boundary() -> None:
    t2, phi = 0.15, math.pi / 2
    Mc = 3 * math.sqrt(3) * t2
    res = chern_result(build_model("haldane", t2=t2, phi=phi, M=0.98 * Mc), nk=8)
    assert res.warning is None and res.chern == -1 and res.nk > 8 and res.max_flux <= 1.0
    coarse = chern_result(build_model("haldane", t2=t2, phi=phi, M=0.98 * Mc), nk=8, refine=False)
    assert coarse.warning is not None and "not resolved" in coarse.warning


def test_conventions_and_flux_integer() -> None:
    m = build_model("kane_mele", lambda_v=0.0, lambda_r=0.0)
    spin_up_like = build_model("haldane", t1=1.0, t2=0.06, phi=-math.pi / 2, M=0.1)
    for conv in (1, 2):
        assert chern_result(spin_up_like, 40, convention=conv).chern == 1
        assert chern_result(m, 40, convention=conv).chern == 0  # time reversal: total C = 0


def test_spin_doubling_doubles_chern() -> None:
    for name, kw in (("haldane", {"M": 0.1}), ("qwz", {"u": 1.3})):
        m = build_model(name, **kw)
        assert chern_number(m.to_spinful(), 24) == 2 * chern_number(m, 24)


def test_gap_closing_raises() -> None:
    with pytest.raises(ConvergenceError, match="gap"):
        chern_number(build_model("qwz", u=0.0), nk=20)  # Dirac points at (0, π), (π, 0) lie on the grid
    res = chern_result(build_model("qwz", u=0.0), nk=20)
    assert res.warning and res.gap < 1e-12
    assert chern_number(build_model("qwz", u=0.0), nk=20, raise_on_small_gap=False) in (-1, 0, 1)


def test_bad_arguments() -> None:
    with pytest.raises(TopodiffInputError):
        chern_number(build_model("ssh"))
    with pytest.raises(TopodiffInputError):
        chern_number(build_model("qwz"), nk=1)
    with pytest.raises(TopodiffInputError):
        chern_number(build_model("qwz"), filling=2)


def test_berry_curvature_integrates_to_chern() -> None:
    m = build_model("haldane", M=0.3)
    for conv in (1, 2):
        k, om = berry_curvature(m, 48, convention=conv)
        assert k.shape == (48, 48, 2) and om.shape == (48, 48)
        assert assert_integer(om.mean() / (2 * math.pi)) == -1
    _, om_c = berry_curvature(m, 48, cartesian=True)
    area = abs(np.linalg.det(m.lattice))
    dk = (2 * math.pi) ** 2 / area / 48**2
    assert om_c.sum() * dk / (2 * math.pi) == pytest.approx(-1.0, abs=1e-9)
    # curvature peaks at K/K' where the Haldane gap is smallest
    i, j = np.unravel_index(np.abs(om).argmax(), om.shape)
    assert min(np.abs(k[i, j] - [1 / 3, 2 / 3]).max(), np.abs(k[i, j] - [2 / 3, 1 / 3]).max()) < 0.05


def test_chern_from_wcc_flow_agrees_with_fhs() -> None:
    for name, kw in (("qwz", {"u": -1.2}), ("qwz", {"u": 1.2}), ("haldane", {"M": 0.1})):
        m = build_model(name, **kw)
        flow = wcc_flow(m, num_lines=41)
        assert assert_integer(chern_from_flow(flow), tol=1e-6) == chern_number(m, 32)


def test_plane_chern_in_3d_and_flux_shape() -> None:
    m = build_model("weyl")  # nodes at κ1 = 1/4 (χ = -1) and 3/4 (χ = +1)
    c0 = chern_number(m, 24, plane=(0, 0.0))
    c5 = chern_number(m, 24, plane=(0, 0.5))
    assert c5 - c0 == -1  # flux out of the slab 0 < κ1 < 1/2 = 2π χ(node at 1/4)
    V = torch.linalg.eigh(build_model("qwz").hamiltonian(k_grid([6, 8])))[1][..., :1]
    assert plaquette_flux(V).shape == (6, 8)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))])
def test_device_argument(device: str) -> None:
    m = build_model("kane_mele", lambda_r=0.0)
    ref = build_model("haldane", t2=0.06, phi=-math.pi / 2, M=0.1)
    assert chern_result(ref, 32, device=device).chern == 1
    flow = wcc_flow(m, 2, k_range=(0.0, 0.5), device=device)
    assert flow.wcc.shape[1] == 2 and isinstance(flow.wcc, np.ndarray)


def test_dirac_semimetal_is_reported_not_rounded() -> None:
    res = chern_result(build_model("graphene"), 32)  # Dirac cones at K, K': π flux in one plaquette
    assert res.warning is not None and "touch" in res.warning and res.max_flux > 3.0
    with pytest.raises(ConvergenceError):
        chern_number(build_model("graphene"), 32)

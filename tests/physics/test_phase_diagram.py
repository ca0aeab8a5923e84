"""Vectorised Chern phase diagrams: fast paths agree with the general FHS code and the analytic boundary."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from topodiff.errors import TopodiffInputError
from topodiff.physics.berry import chern_from_states, chern_number
from topodiff.physics.library import build_model, build_tables
from topodiff.physics.model import bloch_hamiltonian, k_grid
from topodiff.physics.phase_diagram import (UNDETERMINED, Axis, chern_one_band, chern_phase_diagram,
                                            haldane_boundary, lower_band_2x2)


def test_closed_form_2x2_matches_eigh() -> None:
    rng = np.random.default_rng(0)
    A = rng.normal(size=(500, 2, 2)) + 1j * rng.normal(size=(500, 2, 2))
    H = torch.as_tensor(A + A.conj().transpose(0, 2, 1))
    H[:5, 1, 0] = H[:5, 0, 1] = 0  # d along ±z: the branch switch
    gap, v = lower_band_2x2(H)
    e, V = torch.linalg.eigh(H)
    np.testing.assert_allclose(gap.numpy(), (e[:, 1] - e[:, 0]).numpy(), atol=1e-12)
    # same state up to a phase: |<v|V0>| = 1
    np.testing.assert_allclose((v.conj() * V[..., 0]).sum(-1).abs().numpy(), 1.0, atol=1e-10)


def test_fast_chern_equals_general_fhs() -> None:
    Rs, T, _ = build_tables("haldane", {"M": np.array([0.0, 0.3, 1.0]), "phi": np.array([1.0, -0.7, 1.0])})
    H = bloch_hamiltonian(k_grid([16, 16]), torch.as_tensor(Rs), torch.as_tensor(T))
    _, V = torch.linalg.eigh(H)
    _, v = lower_band_2x2(H)
    np.testing.assert_allclose(chern_one_band(v).numpy(), chern_from_states(V[..., :1]).numpy(), atol=1e-9)


def test_haldane_diagram_agrees_with_analytic_boundary() -> None:
    t2 = 0.15
    pd = chern_phase_diagram("haldane", Axis("phi", -math.pi, math.pi, 41), Axis("M", -1.0, 1.0, 41),
                             nk=24, params={"t2": t2})
    PHI, M = np.meshgrid(pd.x.values, pd.y.values, indexing="ij")
    margin = np.abs(np.abs(M) - np.abs(haldane_boundary(PHI, t2)))
    far = margin > 0.1
    inside = np.abs(M) < np.abs(haldane_boundary(PHI, t2))
    assert np.all(pd.determined[far])
    assert np.all(np.abs(pd.chern[far & inside]) == 1)
    assert np.all(pd.chern[far & ~inside] == 0)
    # the sign follows sin φ and agrees with the single-model Chern number
    ref = chern_number(build_model("haldane", M=0.0, phi=math.pi / 2, t2=t2), nk=24)
    assert np.all(pd.chern[far & inside & (PHI > 0)] == ref)
    assert np.all(pd.chern[far & inside & (PHI < 0)] == -ref)


def test_four_band_model_general_path() -> None:
    pd = chern_phase_diagram("bhz", Axis("M", -3.0, 3.0, 4), Axis("C", -0.1, 0.1, 2), nk=12)
    assert np.all(pd.chern[pd.determined] == 0)  # time-reversal invariant: C = 0
    assert pd.filling == 2


@pytest.mark.parametrize("kwargs, match", [
    (dict(nk=0), "nk"),
    (dict(model="nope"), "unknown model"),
    (dict(x=("bogus", 0.0, 1.0, 3)), "no parameter"),
    (dict(model="fu_kane_mele", x=("t", 0.5, 1.0, 2), y=("dt1", 0.0, 0.4, 2)), "2D model"),
])
def test_bad_input(kwargs: dict, match: str) -> None:
    model = kwargs.pop("model", "haldane")
    x = Axis(*kwargs.pop("x", ("M", -1.0, 1.0, 3)))
    y = Axis(*kwargs.pop("y", ("phi", 0.0, 1.0, 3)))
    with pytest.raises(TopodiffInputError, match=match):
        chern_phase_diagram(model, x, y, **kwargs)


@pytest.mark.parametrize("filling, said", [(2.5, "got 2.5"), (float("nan"), "got nan"), (0, "got 0"), (2, "got 2")])
def test_filling_is_checked_not_truncated(filling, said: str) -> None:
    """Haldane has 2 bands: only filling 1 exists. 2.5 used to be truncated to 2 before the check (the
    error said "got 2") and NaN raised a bare ValueError."""
    with pytest.raises(TopodiffInputError, match=f"filling.*{said}$"):
        chern_phase_diagram("haldane", Axis("M", -1.0, 1.0, 3), Axis("phi", 0.0, 1.0, 3), nk=8, filling=filling)

def test_axis_validation() -> None:
    with pytest.raises(TopodiffInputError, match="below"):
        Axis("M", 1.0, 1.0, 5)
    with pytest.raises(TopodiffInputError, match="at least 2"):
        Axis("M", 0.0, 1.0, 1)
    assert UNDETERMINED < -100

"""Every invariant is a gauge-invariant function of the occupied states (random U(1) and U(N) rotations)."""
from __future__ import annotations

import numpy as np
import torch

from helpers import assert_gauge_invariant, rotate_gauge
from topodiff.physics.berry import chern_from_states, plaquette_flux
from topodiff.physics.library import build_model, inversion_matrix
from topodiff.physics.model import k_grid
from topodiff.physics.oned import berry_phase_from_states
from topodiff.physics.spectra import boundary_phase
from topodiff.physics.wilson import wcc_from_states
from topodiff.physics.z2 import parities_from_states, trim_points


def _states(model, shape, occ, convention=2):
    e, v = torch.linalg.eigh(model.hamiltonian(k_grid(shape), convention=convention))
    return v[..., :occ]


def test_chern_and_flux_gauge_invariant() -> None:
    for name, occ in (("haldane", 1), ("kane_mele", 2), ("bhz", 2)):
        m = build_model(name)
        for conv in (1, 2):
            V = _states(m, (12, 10), occ, conv)
            pos = m.state_positions if conv == 2 else None
            assert_gauge_invariant(lambda W: plaquette_flux(W, pos), V)
            assert_gauge_invariant(lambda W: chern_from_states(W, pos), V)


def test_wcc_and_zak_gauge_invariant() -> None:
    m = build_model("kane_mele")
    V = _states(m, (5, 24), 2)  # loops along axis 1
    ph = boundary_phase(m.state_positions, 1)
    assert_gauge_invariant(lambda W: wcc_from_states(W, ph), V)
    s = build_model("rice_mele")
    Vs = _states(s, (64,), 1)
    assert_gauge_invariant(lambda W: berry_phase_from_states(W, boundary_phase(s.state_positions, 0)), Vs)


def test_parities_gauge_invariant() -> None:
    m = build_model("fu_kane_mele")
    e, v = torch.linalg.eigh(m.hamiltonian(trim_points(3), convention=1))
    V = v[..., :2]
    P = torch.as_tensor(inversion_matrix("fu_kane_mele"))
    assert_gauge_invariant(lambda W: parities_from_states(W, P), V)


def test_rotation_really_changes_states() -> None:
    V = _states(build_model("kane_mele"), (4, 4), 2)
    W = rotate_gauge(V, seed=3)
    assert not torch.allclose(V, W)
    assert torch.allclose(V @ V.mH, W @ W.mH, atol=1e-12)  # same projector
    np.testing.assert_allclose(np.linalg.norm(W.numpy(), axis=-2), 1.0)

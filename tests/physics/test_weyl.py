"""Weyl nodes: positions, chirality (flux and det convention), Nielsen-Ninomiya."""
from __future__ import annotations

import math

import numpy as np
import pytest

from topodiff.errors import TopodiffInputError
from topodiff.physics import TBModel, find_weyl_nodes  # noqa: F401
from topodiff.physics.library import build_model
from topodiff.physics.weyl import weyl_chirality


def _det_chirality(m: TBModel, k: np.ndarray, h: float = 1e-6) -> int:
    """sign det(∂d_i/∂k_j) of a two-band model at k (CONTRACTS §2 equivalent definition)."""
    def d(kk: np.ndarray) -> np.ndarray:
        H = m.hamiltonian(kk[None], convention=1).numpy()[0]
        return np.array([H[0, 1].real, -H[0, 1].imag, (H[0, 0] - H[1, 1]).real / 2])
    J = np.stack([(d(k + h * e) - d(k - h * e)) / (2 * h) for e in np.eye(3)], axis=1)
    return int(np.sign(np.linalg.det(J)))


@pytest.mark.parametrize("k0", [math.pi / 2, 1.0])
def test_two_node_weyl_model(k0: float) -> None:
    m = build_model("weyl", k0=k0)
    nodes = find_weyl_nodes(m)
    assert len(nodes) == 2
    x = k0 / (2 * math.pi)
    got = sorted((float(n.k_reduced[0]), n.chirality) for n in nodes)
    assert got[0][0] == pytest.approx(x, abs=1e-6) and got[1][0] == pytest.approx(1 - x, abs=1e-6)
    assert [c for _, c in got] == [-1, 1]  # documented in library._weyl
    for n in nodes:
        np.testing.assert_allclose(n.k_reduced[1:], 0.0, atol=1e-6)
        assert n.gap < 1e-5 and n.chirality == _det_chirality(m, n.k_reduced)
        assert abs(n.flux - n.chirality) < 1e-6
    assert sum(n.chirality for n in nodes) == 0


def test_mirrored_model_flips_chirality() -> None:
    m = build_model("weyl")
    # H'(k) = H(kx, ky, -kz): a mirror keeps the node at κ = (1/4, 0, 0) and reverses det(∂d/∂k)
    flipped = m.replace(hop_R=m.hop_R * np.array([1, 1, -1]))
    a = weyl_chirality(m, np.array([0.25, 0, 0]))[0]
    b = weyl_chirality(flipped, np.array([0.25, 0, 0]))[0]
    assert a == -b == _det_chirality(m, np.array([0.25, 0, 0]))


def test_gapped_and_bad_models() -> None:
    assert find_weyl_nodes(build_model("fu_kane_mele"), nk=8) == []
    with pytest.raises(TopodiffInputError):
        find_weyl_nodes(build_model("qwz"))
    with pytest.raises(TopodiffInputError):
        find_weyl_nodes(build_model("weyl"), nk=2)

"""Weyl nodes: positions, chirality (flux and det convention), Nielsen-Ninomiya."""
from __future__ import annotations

import math

import numpy as np
import pytest

from topodiff.errors import TopodiffInputError
from topodiff.physics import TBModel, find_weyl_nodes  # noqa: F401
from topodiff.physics.library import build_model
from topodiff.physics.weyl import weyl_chirality, weyl_search
from topodiff.physics.weyl_search import kspace_symmetries


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


def close_pair_model(xa: float = 0.20, xb: float = 0.23, s: float = 5.0, m: float = 1.0) -> TBModel:
    """Two-band model with four Weyl nodes at κ = (±xa, 0, 0), (±xb, 0, 0): the pairs at xa and xb are
    ``xb − xa`` apart (0.03: closer than the default 1/20 grid) and not symmetry images of each other.

    ``H = sin ky σx + sin kz σy + [s (cos kx − cos ka)(cos kx − cos kb) + m (2 − cos ky − cos kz)] σz``.
    """
    ca, cb = math.cos(2 * math.pi * xa), math.cos(2 * math.pi * xb)
    hops = []
    for o, sg in ((0, 1), (1, -1)):
        hops += [(o, o, (2, 0, 0), sg * s / 4), (o, o, (1, 0, 0), -sg * s * (ca + cb) / 2),
                 (o, o, (0, 1, 0), -sg * m / 2), (o, o, (0, 0, 1), -sg * m / 2)]
    hops += [(0, 1, (0, 1, 0), -0.5j), (1, 0, (0, 1, 0), -0.5j), (0, 1, (0, 0, 1), -0.5), (1, 0, (0, 0, 1), 0.5)]
    e0 = s * (0.5 + ca * cb) + 2 * m
    return TBModel(np.eye(3), np.zeros((2, 3)), [e0, -e0], [h[0] for h in hops], [h[1] for h in hops],
                   [h[2] for h in hops], [h[3] for h in hops])


@pytest.mark.parametrize("use_symmetry", [True, False])
def test_nodes_closer_than_the_grid_are_all_found(use_symmetry: bool) -> None:
    m = close_pair_model()
    res = weyl_search(m, nk=20, use_symmetry=use_symmetry)
    got = sorted(float(n.k_reduced[0]) for n in res.nodes)
    np.testing.assert_allclose(got, [0.20, 0.23, 0.77, 0.80], atol=1e-8)
    for n in res.nodes:
        np.testing.assert_allclose(n.k_reduced[1:], 0.0, atol=1e-8)
        assert n.chirality == _det_chirality(m, n.k_reduced) and abs(n.flux - n.chirality) < 1e-3
    assert res.net_chirality == 0 and res.degeneracies == [] and not res.warnings


def test_symmetry_images_complete_a_partial_set() -> None:
    """Seeds from one half of the zone only: the κ → −κ images are found by the symmetry completion."""
    from topodiff.physics.weyl import _search

    m = close_pair_model()
    ops = kspace_symmetries(m)
    assert any(np.allclose(G, -np.eye(3)) for G in ops)
    alone = _search(m, 1, 20, 1e-5, 1, [])[0]  # one coarse candidate: a single seed region
    k, g, _, _ = _search(m, 1, 20, 1e-5, 1, ops)
    assert len(alone) < 4 and len(k) == 4 and np.all(g < 1e-8)


def nodal_line_model() -> TBModel:
    """``H = (2 − cos kx − cos ky − cos kz + 0.5 ... ) σz + sin kz σx``: a PT-symmetric nodal ring
    ``cos kx + cos ky = 1.5, kz = 0`` (d_y ≡ 0, so the degeneracy is a line, not points)."""
    hops = [(0, 0, (1, 0, 0), -0.5), (1, 1, (1, 0, 0), 0.5), (0, 0, (0, 1, 0), -0.5), (1, 1, (0, 1, 0), 0.5),
            (0, 0, (0, 0, 1), -0.5), (1, 1, (0, 0, 1), 0.5), (0, 1, (0, 0, 1), -0.5j), (1, 0, (0, 0, 1), -0.5j)]
    e0 = 2.5
    return TBModel(np.eye(3), np.zeros((2, 3)), [e0, -e0], [h[0] for h in hops], [h[1] for h in hops],
                   [h[2] for h in hops], [h[3] for h in hops])


def test_nodal_line_is_not_a_list_of_weyl_nodes() -> None:
    m = nodal_line_model()
    res = weyl_search(m, nk=12)
    assert res.nodes == [] and res.net_chirality == 0
    assert res.degeneracies and {d.kind for d in res.degeneracies} == {"nodal_line"}
    for d in res.degeneracies:  # on the ring: cos kx + cos ky = 1.5, kz = 0
        kx, ky, kz = 2 * np.pi * d.k_reduced
        assert abs(np.cos(kx) + np.cos(ky) - 1.5) < 1e-6 and abs(np.sin(kz)) < 1e-6


def test_search_result_json_keeps_contract_keys() -> None:
    j = weyl_search(build_model("weyl")).to_dict()
    assert {"nodes", "net_chirality", "degeneracies", "search"} <= set(j) and j["net_chirality"] == 0
    assert all({"k_reduced", "chirality", "gap"} <= set(n) for n in j["nodes"])
    assert all(0 < n["velocity_ratio"] <= 1 for n in j["nodes"])


def test_plane_minima_catch_a_valley_whose_3d_minimum_is_off_the_plane() -> None:
    """A valley along z, deepest at z = 3 (a 3D minimum), passing the mirror plane z = 0 where the
    nodes sit: in that plane the point (2, 2, 0) is a minimum, though not a 3D one."""
    from topodiff.physics.weyl_search import local_minima, slice_minima

    i, j, k = np.meshgrid(*[np.arange(10)] * 3, indexing="ij")
    dz = np.minimum(np.abs(k - 3), 10 - np.abs(k - 3))
    gap = 0.1 * ((i - 2) ** 2 + (j - 2) ** 2) + 0.5 - 0.1 * np.maximum(0, 3 - dz)
    assert local_minima(gap, periodic=True)[2, 2, 3] and not local_minima(gap, periodic=True)[2, 2, 0]
    assert slice_minima(gap)[2, 2, 0] and not slice_minima(gap)[5, 5, 0]

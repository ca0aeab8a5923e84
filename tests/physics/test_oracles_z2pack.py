"""Z2Pack 2.2.1 as an oracle: the same Hamiltonians give the same Z2 (2D) and (ν0; ν1ν2ν3) (3D)."""
from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from topodiff.physics import TBModel, z2_invariant
from topodiff.physics.library import build_model

z2pack = pytest.importorskip("z2pack", reason="Z2Pack (test-only oracle) is not installed")
logging.getLogger("z2pack").setLevel(logging.WARNING)


def z2pack_system(m: TBModel):
    """Z2Pack ``hm.System`` of a model: H in Bloch convention I (all orbitals at the origin)."""
    def ham(k):
        return m.hamiltonian(np.asarray(k, dtype=float)[: m.dim], convention=1).numpy()
    return z2pack.hm.System(ham, dim=m.dim, bands=m.occupied, convention=2)


def z2pack_plane(system, surface) -> int:
    res = z2pack.surface.run(system=system, surface=surface, save_file=None)
    return int(z2pack.invariant.z2(res))


def z2pack_3d(m: TBModel) -> tuple[int, int, int, int]:
    sys_ = z2pack_system(m)
    planes = {}
    for ax in range(3):
        for val in (0.0, 0.5):
            def surf(t1, t2, ax=ax, val=val):
                k = [0.0, 0.0, 0.0]
                others = [a for a in range(3) if a != ax]
                k[ax], k[others[0]], k[others[1]] = val, t1 / 2, t2
                return k
            planes[(ax, val)] = z2pack_plane(sys_, surf)
    nu0 = (planes[(0, 0.0)] + planes[(0, 0.5)]) % 2
    return (nu0, planes[(0, 0.5)], planes[(1, 0.5)], planes[(2, 0.5)])


LV_C = 3 * math.sqrt(3) * 0.06  # Kane-Mele transition at λ_v = 3√3 λ_SO (λ_R = 0)


@pytest.mark.parametrize("name, params, expected", [
    ("kane_mele", {"lambda_v": 0.1}, 1), ("kane_mele", {"lambda_v": 0.4}, 0),
    ("kane_mele", {"lambda_r": 0.0, "lambda_v": 0.9 * LV_C}, 1), ("kane_mele", {"lambda_r": 0.0, "lambda_v": 1.1 * LV_C}, 0),
    ("kane_mele", {"lambda_r": 0.0, "lambda_v": 0.97 * LV_C}, 1), ("kane_mele", {"lambda_r": 0.0, "lambda_v": 1.03 * LV_C}, 0),
    ("bhz", {"M": -1.0}, 1), ("bhz", {"M": 1.0}, 0)])
def test_2d_z2_vs_z2pack(name: str, params: dict, expected: int, caplog) -> None:
    m = build_model(name, **params)
    with caplog.at_level(logging.WARNING, logger="z2pack"):
        ref = z2pack_plane(z2pack_system(m), lambda t1, t2: [t1 / 2, t2])
    assert z2_invariant(m) == expected
    if "min_neighbour_dist" in caplog.text:
        # Z2Pack gave up refining (tiny gap near the transition; its known weak spot): no comparison
        assert abs(params.get("lambda_v", 0) / LV_C - 1) < 0.15, "Z2Pack failed to converge far from a transition"
    else:
        assert ref == expected


@pytest.mark.parametrize("name, params, expected", [("fu_kane_mele", {"dt1": 0.4}, (1, 1, 1, 1)),
                                                    ("fu_kane_mele", {"dt1": -0.4}, (0, 1, 1, 1)),
                                                    ("bi2se3", {}, (1, 0, 0, 0))])
def test_3d_z2_vs_z2pack(name: str, params: dict, expected: tuple) -> None:
    m = build_model(name, **params)
    assert z2_invariant(m) == z2pack_3d(m) == expected

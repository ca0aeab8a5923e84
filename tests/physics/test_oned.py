"""Zak phase and chiral winding of SSH / Rice-Mele chains."""
from __future__ import annotations

import math

import numpy as np
import pytest

from topodiff.errors import ConvergenceError, TopodiffInputError
from topodiff.physics import TBModel, berry_phase, winding
from topodiff.physics.library import build_model
from topodiff.physics.oned import chiral_partition


@pytest.mark.parametrize("v, w, zak, wind", [(0.5, 1.0, math.pi, 1), (1.0, 0.5, 0.0, 0), (0.2, -1.0, math.pi, 1),
                                             (-1.0, 0.3, 0.0, 0)])
def test_ssh(v: float, w: float, zak: float, wind: int) -> None:
    m = build_model("ssh", v=v, w=w)
    assert berry_phase(m) == pytest.approx(zak, abs=1e-9)
    assert winding(m) == wind


def test_winding_orientation() -> None:
    # the intercell bond written A -> B along +x makes H_BA = v + w e^{-ik}: clockwise, winding -1
    m = TBModel([[1.0]], [[0.0], [0.5]], [0.0, 0.0], [0, 0], [1, 1], [[0], [1]], [0.3, 1.0])
    assert winding(m) == -1
    assert chiral_partition(m) is not None


def test_rice_mele_not_chiral_and_wannier_centre() -> None:
    m = build_model("rice_mele", delta=0.3)
    assert winding(m) is None and chiral_partition(m) is None
    phi = berry_phase(m)
    assert 0 <= phi < 2 * math.pi
    # huge staggering: the electron sits on B (onsite -δ) at τ = +1/4 -> Zak phase 2π/4
    assert berry_phase(build_model("rice_mele", delta=200.0)) == pytest.approx(math.pi / 2, abs=1e-2)
    assert berry_phase(build_model("rice_mele", delta=-200.0)) == pytest.approx(3 * math.pi / 2, abs=1e-2)


def test_zak_phase_follows_orbital_positions() -> None:
    m = build_model("ssh", v=1.0, w=0.4)
    shifted = m.replace(orbitals=m.orbitals + 0.1)
    assert berry_phase(shifted) == pytest.approx(berry_phase(m) + 2 * math.pi * 0.1, abs=1e-9)


def test_rice_mele_thouless_pump() -> None:
    # one cycle around (v - w, δ) = 0 pumps one charge: the Zak phase winds once by 2π
    th = np.linspace(0, 2 * math.pi, 41)
    phis = np.array([berry_phase(build_model("rice_mele", v=1 + 0.5 * math.cos(t), w=1.0, delta=0.5 * math.sin(t)))
                     for t in th])
    d = np.diff(phis)
    d = (d + math.pi) % (2 * math.pi) - math.pi
    assert abs(abs(d.sum()) - 2 * math.pi) < 1e-6


def test_gap_closing_and_bad_input() -> None:
    with pytest.raises(ConvergenceError):
        winding(build_model("ssh", v=1.0, w=1.0), nk=100)
    with pytest.raises(ConvergenceError):
        berry_phase(build_model("ssh", v=1.0, w=1.0), nk=100)
    with pytest.raises(TopodiffInputError):
        berry_phase(build_model("qwz"))
    with pytest.raises(TopodiffInputError):
        winding(build_model("ssh"), nk=1)

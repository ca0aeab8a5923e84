"""The fixed-density LCAO pass reuses the SCF's real-space grid (regression: symmetrised ZrTiPd2, Imm2).

GPAW enlarged the point-group-inconsistent grid (20,16,16) of that cell to (20,20,20) in the SCF; the
pass without point group re-derived (20,16,16) from ``h`` and copying the density failed with
``could not broadcast input array from shape (1,20,20,20) into shape (1,20,16,16)``.
"""
from __future__ import annotations

import numpy as np
import pytest

from topodiff.dft.lcao import nscf_parameters

#: runs/s8/dft/ZrTiPd2.cif after ``--symmetrize 0.1`` and centring (primitive Imm2 cell, Å).
ZRTIPD2_CELL = [[-1.9428867878, 2.0226977838, 4.41080512],
                [1.9428867878, -2.0226977838, 4.41080512],
                [1.9428867878, 2.0226977838, -4.41080512]]
ZRTIPD2_FRAC = [[0.28210458, 0.78210458, 0.5], [0.53306705, 0.53306705, 0.0],
                [0.03145275, 0.03145275, 0.0], [0.78310389, 0.28310389, 0.5]]


def test_nscf_parameters_pin_the_scf_grid():
    params = {"mode": "lcao", "h": 0.2, "kpts": {"size": (4, 4, 4), "gamma": True}, "xc": "PBE"}
    out = nscf_parameters(params, np.array([20, 20, 20]), (6, 6, 4))
    assert "h" not in out and out["gpts"] == (20, 20, 20)
    assert out["kpts"] == {"size": (6, 6, 4), "gamma": True}
    assert out["symmetry"] == {"point_group": False, "time_reversal": True}
    assert params["h"] == 0.2 and "gpts" not in params  # the SCF's parameters are left alone
    assert out["xc"] == "PBE"


def test_fixed_density_pass_on_a_grid_enlarged_by_symmetry():
    """No SCF: the atomic-guess density of the symmetrised ZrTiPd2 cell is copied to the pass (a few s)."""
    pytest.importorskip("gpaw", reason="GPAW not installed (pip install 'topodiff[dft]' with CC=g++)")
    from ase import Atoms

    from topodiff.dft.lcao import _calculator, _fixed_density

    atoms = Atoms("ZrTiPd2", cell=ZRTIPD2_CELL, scaled_positions=ZRTIPD2_FRAC, pbc=True)
    mesh = (2, 2, 2)
    calc = _calculator("lcao", mesh, 0.2)
    atoms.calc = calc
    with pytest.warns(UserWarning, match="inconsistent with symmetries"):
        calc.initialize(atoms)
    calc.set_positions(atoms)  # density from atomic densities
    assert tuple(calc.density.gd.N_c) == (20, 20, 20)
    nscf = _fixed_density(calc, atoms, mesh)
    assert tuple(nscf.density.gd.N_c) == (20, 20, 20)
    assert np.allclose(nscf.density.nt_sG, calc.density.nt_sG, rtol=1e-6, atol=1e-8)  # set_positions renormalises
    assert nscf.wfs.kd.nibzkpts > calc.wfs.kd.nibzkpts  # the pass really drops the point group

"""Ribbons and slabs: construction, bulk limit, helical and chiral edge states."""
from __future__ import annotations

import math

import numpy as np
import importlib

import pytest
import torch

from topodiff.errors import TopodiffInputError
from topodiff.physics.bands import band_gaps
from topodiff.physics.finite import cut, edge_crossings, edge_spectrum, ribbon, slab
from topodiff.physics.library import build_model


def _midgap_energies(model, nk: int = 60) -> np.ndarray:
    g = band_gaps(model, nk=nk)
    assert g.indirect > 0.05, "bulk must be insulating for an edge-state test"
    # avoid the band centre: symmetric ribbons have left and right edge states crossing there exactly
    return g.vbm + g.indirect * np.array([0.3, 0.45, 0.7])


def test_ribbon_structure_and_bulk_limit() -> None:
    bulk = build_model("haldane")
    geom = ribbon(bulk, 6)
    assert geom.model.dim == 1 and geom.model.n_orb == 12
    np.testing.assert_allclose(geom.model.lattice, bulk.lattice[:1])
    np.testing.assert_allclose(geom.normal, [0.0, 1.0], atol=1e-12)
    # every hopping of the ribbon is a bulk hopping: no hopping leaves the ribbon, Hermitian H(k)
    H = geom.model.hamiltonian(np.linspace(0, 1, 7)[:, None])
    assert torch.allclose(H, H.conj().transpose(-1, -2))
    # a one-cell-wide ribbon made periodic again (sum over k_perp) reproduces the bulk band centre:
    # trace of H is basis-independent, so Tr H_ribbon(k) = n_cells · Tr H_bulk onsite part
    assert float(torch.diagonal(H, dim1=-2, dim2=-1).sum(-1).real.abs().max()) < 1e-9


def test_slab_of_3d_model() -> None:
    geom = slab(build_model("fu_kane_mele"), 4)
    assert geom.model.dim == 2 and geom.model.num_bands == 16
    assert geom.model.spinful
    with pytest.raises(TopodiffInputError):
        ribbon(build_model("fu_kane_mele"), 4)
    with pytest.raises(TopodiffInputError):
        cut(build_model("haldane"), 0)


@pytest.mark.parametrize("lambda_v, z2", [(0.1, 1), (0.5, 0)])
def test_kane_mele_zigzag_helical_edges(lambda_v: float, z2: int) -> None:
    bulk = build_model("kane_mele", lambda_v=lambda_v, lambda_r=0.05)
    geom = ribbon(bulk, 24)  # cut along a2: zigzag edges
    spec = edge_spectrum(geom, nk=241)
    for energy in _midgap_energies(bulk):
        cr = edge_crossings(spec, energy)
        assert np.all(cr["side"] != 0), "a state inside the bulk gap must sit on an edge"
        for side in (-1, 1):
            on = cr["side"] == side
            pairs = int(on.sum()) // 2
            assert int(on.sum()) % 2 == 0  # Kramers partners travel in opposite directions
            assert int(cr["velocity_sign"][on].sum()) == 0
            assert pairs % 2 == z2
        # QSH: exactly one Kramers pair per edge; trivial: no state crosses the bulk gap at all
        assert len(cr["k"]) == (4 if z2 else 0)


@pytest.mark.parametrize("M, chern", [(0.2, 1), (1.2, 0)])
def test_haldane_chiral_edge_count(M: float, chern: int) -> None:
    bulk = build_model("haldane", M=M, t2=0.15, phi=math.pi / 2)
    spec = edge_spectrum(ribbon(bulk, 30), nk=301)
    for energy in _midgap_energies(bulk):
        cr = edge_crossings(spec, energy)
        assert np.all(cr["side"] != 0)
        left = cr["side"] == -1
        right = cr["side"] == 1
        net_left = int(cr["velocity_sign"][left].sum())
        assert abs(net_left) == chern
        assert int(cr["velocity_sign"][right].sum()) == -net_left  # opposite edges, opposite chirality
        if chern:
            assert int(left.sum()) == chern  # exactly |C| chiral modes per edge


def test_haldane_edge_chirality_matches_chern_sign() -> None:
    berry = importlib.import_module("topodiff.physics.berry")
    for phi in (math.pi / 2, -math.pi / 2):
        bulk = build_model("haldane", M=0.2, phi=phi)
        C = int(berry.chern_number(bulk, nk=48))
        spec = edge_spectrum(ribbon(bulk, 30), nk=201)
        cr = edge_crossings(spec, _midgap_energies(bulk)[1])
        net = int(cr["velocity_sign"][cr["side"] == -1].sum())
        assert abs(net) == abs(C) == 1
        # the sign relation is fixed by geometry; flipping φ flips both
        if phi > 0:
            ref = (net, C)
        else:
            assert (net, C) == (-ref[0], -ref[1])


def _pythtb_model(m):
    pythtb = pytest.importorskip("pythtb", reason="PythTB (test-only oracle) is not installed")
    tb = pythtb.tb_model(m.dim, m.lattice.shape[1], m.lattice.tolist(), m.orbitals.tolist(), nspin=m.n_spin)
    tb.set_onsite([o if m.spinful else o[0, 0].real for o in m.onsite])
    for i, j, R, t in zip(m.hop_i, m.hop_j, m.hop_R, m.hop_t):
        tb.set_hop(t if m.spinful else complex(t[0, 0]), int(i), int(j), [int(x) for x in R], mode="add",
                   allow_conjugate_pair=True)
    return tb


@pytest.mark.parametrize("name, finite", [("haldane", 1), ("haldane", 0), ("kane_mele", 1)])
def test_ribbon_matches_pythtb_cut_piece(name: str, finite: int) -> None:
    """PythTB's ``cut_piece`` (open edges) is the oracle for the ribbon spectrum."""
    bulk = build_model(name)
    ref = _pythtb_model(bulk).cut_piece(6, finite, glue_edgs=False)
    geom = ribbon(bulk, 6, finite=finite)
    k = np.linspace(0.0, 1.0, 9)
    e_ref = np.asarray(ref.solve_all(k[:, None].tolist())).reshape(geom.model.num_bands, -1).T
    e = torch.linalg.eigvalsh(geom.model.hamiltonian(k[:, None])).numpy()
    np.testing.assert_allclose(e, e_ref, atol=1e-10)


@pytest.mark.parametrize("M0, dirac", [(0.28, True), (-0.28, False)])
def test_bi2se3_slab_surface_dirac_cone(M0: float, dirac: bool) -> None:
    """Strong TI (M0 > 0, Zhang 2009 fit): a gapless, linear surface Dirac cone at Γ̄; trivial: gapped."""
    geom = slab(build_model("bi2se3", M0=M0), 20)
    k = np.array([[0.0, 0.0], [0.005, 0.0], [0.01, 0.0]])
    e = torch.linalg.eigvalsh(geom.model.hamiltonian(k)).numpy()
    occ = geom.model.occupied
    gap = e[:, occ] - e[:, occ - 1]
    if dirac:
        assert gap[0] < 1e-6
        assert gap[2] / gap[1] == pytest.approx(2.0, rel=0.05)  # linear dispersion
        edge = edge_spectrum(geom, nk=4).edge  # the states at the Fermi level live on the surfaces
        at_gamma = edge[0, occ - 2:occ + 2]
        assert np.all(at_gamma > 0.5)
    else:
        assert gap.min() > 0.3

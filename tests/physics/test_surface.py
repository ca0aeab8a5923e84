"""Sancho-Rubio surface Green's function: analytic chain, finite-slab oracle, QSH edges, Bi2Se3 Dirac cone."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_usage_error, run_cli, run_cli_json
import torch

from topodiff.errors import TopodiffInputError
from topodiff.physics import TBModel
from topodiff.physics.finite import cut
from topodiff.physics.io import load_model
from topodiff.physics.library import build_model
from topodiff.physics.surface import (parse_miller, rebase, surface_basis, surface_grid, surface_spectrum)

W90 = Path(__file__).resolve().parents[1] / "data" / "w90" / "graphene_hr.dat"


def square(t: float = 1.0) -> TBModel:
    return TBModel(np.eye(2), [[0.0, 0.0]], [0.0], [0, 0], [0, 0], [[1, 0], [0, 1]], [t, t])


def test_semi_infinite_chain_matches_the_analytic_surface_green_function() -> None:
    """Each k1 of a square lattice cut along a2 is a chain (onsite 2t cos k1, hopping t):
    G_s = (z − √(z−2t)√(z+2t)) / (2t²), z = E + iη − 2t cos k1."""
    t, eta = 0.8, 1e-3
    k = np.linspace(-0.5, 0.5, 7)[:, None]
    E = np.linspace(-4, 4, 41)
    sp = surface_spectrum(square(t), "0,1", k, E, eta=eta)
    z = E[:, None] + 1j * eta - 2 * t * np.cos(2 * np.pi * k[:, 0])[None]
    G = (z - np.sqrt(z - 2 * t) * np.sqrt(z + 2 * t)) / (2 * t * t)
    np.testing.assert_allclose(sp.surface, -G.imag / np.pi, atol=1e-6)
    np.testing.assert_allclose(sp.opposite, sp.surface, atol=1e-6)  # one-orbital chain: both ends alike
    bulk = 1 / np.sqrt(z - 2 * t) / np.sqrt(z + 2 * t)
    np.testing.assert_allclose(sp.bulk, -bulk.imag / np.pi, atol=1e-5)


def test_matches_the_end_cells_of_a_thick_finite_slab() -> None:
    """With broadening η the end-cell Green's function of a slab much thicker than v/η is the
    semi-infinite one: same spectrum, both terminations."""
    m, edge, eta = build_model("kane_mele"), "zigzag", 0.1
    k = np.array([[0.1], [0.37], [0.5]])
    E = np.array([-0.9, -0.2, 0.03, 0.4])
    sp = surface_spectrum(m, edge, k, E, eta=eta)
    geom = cut(rebase(m, surface_basis(m, edge)), 150, finite=1)
    e, v = torch.linalg.eigh(geom.model.hamiltonian(k, convention=1))
    nb = m.num_bands
    for end, ref in ((slice(0, nb), sp.surface), (slice(-nb, None), sp.opposite)):
        w = (v[:, end, :].abs() ** 2).sum(1).numpy()  # [n_k, n_states] weight in the end cell
        G = (w[None] / (E[:, None, None] + 1j * eta - e.numpy()[None])).sum(-1)
        np.testing.assert_allclose(ref, -G.imag / np.pi, rtol=2e-3, atol=1e-4)


@pytest.mark.parametrize("edge", ["zigzag", "armchair"])
def test_kane_mele_qsh_edge_weight_far_above_trivial(edge: str) -> None:
    k = surface_grid(2, 256)
    qsh = surface_spectrum(build_model("kane_mele", lambda_r=0.0), edge, k, [0.0], eta=0.01)
    triv = surface_spectrum(build_model("kane_mele", lambda_r=0.0, lambda_v=0.5), edge, k, [0.0], eta=0.01)
    assert qsh.surface.mean() > 10 * triv.surface.mean()
    assert qsh.surface.mean() > 10 * qsh.bulk.mean()


def test_bi2se3_surface_dirac_cone() -> None:
    """Zhang model (001) surface: Dirac point at C + D1 M0/B1 and slope A2 √(1 − D1²/B1²) with the
    C2 = D2 − D1 B2/B1 curvature (Liu et al., PRB 82, 045122 (2010))."""
    m = build_model("bi2se3")
    E = np.linspace(-0.1, 0.15, 251)
    at_gamma = surface_spectrum(m, "0,0,1", np.zeros((1, 2)), E, eta=0.002)
    e_dirac = E[np.argmax(at_gamma.surface[:, 0])]
    assert e_dirac == pytest.approx(-0.0068 + 1.3 * 0.28 / 10, abs=2e-3)
    assert at_gamma.surface[:, 0].max() > 100 * at_gamma.bulk[:, 0].max()
    kk = np.linspace(0, 0.04, 401)
    cone = surface_spectrum(m, "001", np.stack([kk, 0 * kk], 1), [e_dirac + 0.1], eta=0.002)
    k_peak = kk[np.argmax(cone.surface[0])] * 2 * math.pi / 4.14
    A, C2 = 4.1 * math.sqrt(1 - 0.13 ** 2), 19.6 - 1.3 * 56.6 / 10
    assert k_peak == pytest.approx((-A + math.sqrt(A * A + 0.4 * C2)) / (2 * C2), rel=0.03)


def test_spectral_sum_rule_on_a_wannier90_file() -> None:
    """∫ A_s(k, E) dE = states of the principal layer (minus the Lorentzian tails beyond the window)."""
    m = load_model(W90, filling=1)
    eta, E = 0.05, np.linspace(-40, 40, 16001)
    sp = surface_spectrum(m, "zigzag", np.array([[0.0], [0.21]]), E, eta=eta)
    expect = sp.layers * m.num_bands * (1 - 2 * eta / (np.pi * 40))
    np.testing.assert_allclose(np.trapezoid(sp.surface, E, axis=0), expect, rtol=2e-3)


def test_surface_basis_is_unimodular_and_parses_miller() -> None:
    honey = build_model("haldane")
    zz, ac = surface_basis(honey, "zigzag"), surface_basis(honey, "armchair")
    assert zz[0].tolist() == [1, 0] and abs(np.dot(ac[0] @ honey.lattice, honey.lattice[0])) < 1e-12
    fkm = build_model("fkm")
    for text in ("111", "1,-1,0", "(001)", "2 1 0"):
        M = surface_basis(fkm, text)
        assert round(abs(np.linalg.det(M))) == 1 and np.all(M[:2] @ parse_miller(text, 3) == 0)
    for model, bad in ((fkm, "zigzag3"), (fkm, "0,0,0"), (honey, "123"), (fkm, "abc"), (fkm, "1,1,1,1"), (fkm, "zigzag")):
        with pytest.raises(TopodiffInputError):
            surface_basis(model, bad)



def test_cli_surface_json_and_plots(capsys, tmp_path) -> None:
    png, cec = tmp_path / "a.png", tmp_path / "c.png"
    doc = run_cli_json(capsys, "surface", "bi2se3", "--edge", "0,0,1", "--nk", "24", "--num", "30", "--ne", "30",
                       "--kpath=-0.05,0;0,0;0.05,0", "--energy", "0.1", "--out", str(png), "--contour", str(cec),
                       "--json")
    assert doc["spectral_weight"] > doc["bulk_weight"] > 0 and doc["principal_layer_cells"] == 1
    assert png.read_bytes()[:8] == cec.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv", [["surface", "qwz", "--edge", "diagonal"], ["surface", "bi2se3", "--edge", "zigzag"],
                                  ["surface", "qwz", "--edge", "0,1", "--eta", "0"],
                                  ["surface", "qwz", "--edge", "0,1", "--kpath", "0.1"], ["surface", "ssh", "--edge", "0,1"]])
def test_cli_surface_bad_input(capsys, argv) -> None:
    assert_usage_error(*run_cli(capsys, *argv))

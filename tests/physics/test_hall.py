"""Anomalous Hall conductivity (Kubo / Berry curvature): analytic and FHS oracles, CLI contract."""
from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import assert_usage_error, run_cli, run_cli_json

from topodiff.physics import TBModel
from topodiff.physics.berry import chern_result
from topodiff.physics.hall import E2_H_SIEMENS, hall_conductivity
from topodiff.physics.library import build_model

MC = 3 * math.sqrt(3) * 0.15  # Haldane critical mass at t2 = 0.15, φ = π/2


@pytest.mark.parametrize("phi, M", [(math.pi / 2, 0.2), (-math.pi / 2, 0.2), (1.0, 0.1), (math.pi / 2, 0.9)])
def test_haldane_in_gap_equals_chern_number(phi: float, M: float) -> None:
    m = build_model("haldane", phi=phi, M=M)
    c = chern_result(m, 64)
    assert c.warning is None
    sigma = hall_conductivity(m, _midgap(m), nk=96).sigma_xy()[0]
    assert sigma == pytest.approx(c.chern, abs=1e-5)
    assert abs(c.chern) == (1 if M < 3 * math.sqrt(3) * 0.15 * abs(math.sin(phi)) else 0)


def _midgap(m: TBModel) -> float:
    from topodiff.physics.bands import band_gaps

    g = band_gaps(m)
    assert g.indirect > 0
    return 0.5 * (g.vbm + g.cbm)


def test_haldane_odd_in_phi_everywhere_and_fractional_in_a_band() -> None:
    fermi = np.array([-2.0, -1.2, -0.9, 0.0, 0.7, 1.5])
    plus = hall_conductivity(build_model("haldane", phi=0.8), fermi, nk=64, levels=0).sigma_xy()
    minus = hall_conductivity(build_model("haldane", phi=-0.8), fermi, nk=64, levels=0).sigma_xy()
    np.testing.assert_allclose(plus, -minus, atol=1e-12)  # time reversal maps the uniform grid onto itself
    refined = [hall_conductivity(build_model("haldane", phi=p), fermi, nk=64).sigma_xy() for p in (0.8, -0.8)]
    np.testing.assert_allclose(refined[0], -refined[1], atol=1e-4)
    np.testing.assert_allclose(refined[0], plus, atol=1e-2)  # refinement moves in-band values by < 1 %
    inside = plus[1]  # E_F = -1.2 eV lies inside the lower band
    assert 0.05 < abs(inside) < 0.95 and abs(inside - round(inside)) > 0.05
    assert abs(plus[0]) < abs(plus[3]) and plus[3] == pytest.approx(round(plus[3]), abs=1e-6)


@pytest.mark.parametrize("u", [-1.5, -0.5, 0.5, 1.7, 2.5])
def test_qwz_kubo_integral_matches_fhs(u: float) -> None:
    m = build_model("qwz", u=u)
    c = chern_result(m, 48)
    assert hall_conductivity(m, 0.0, nk=64).sigma_xy()[0] == pytest.approx(c.raw, abs=1e-6)


def test_temperature_smears_only_near_the_bands() -> None:
    m = build_model("qwz", u=-1.0)
    cold = hall_conductivity(m, [0.0, 0.9], nk=64).sigma_xy()
    warm = hall_conductivity(m, [0.0, 0.9], nk=64, temperature=50.0).sigma_xy()
    hot = hall_conductivity(m, [0.0, 0.9], nk=64, temperature=3000.0).sigma_xy()
    assert warm[0] == pytest.approx(cold[0], abs=1e-9)  # 50 K: k_B T = 4 meV ≪ 1 eV from the bands
    assert abs(hot[1] - cold[1]) > 1e-3  # 0.26 eV smearing pulls weight across the gap edge
    assert 0.0 < hot[0] < 1.0


def test_refinement_resolves_a_small_gap() -> None:
    m = build_model("haldane", M=MC - 0.02)  # gap 0.04 eV at K: a sharp curvature peak
    res = hall_conductivity(m, 0.0, nk=48)
    assert res.resolved and res.nk > 48
    assert abs(res.sigma_xy()[0] + 1) < 2e-3
    assert abs(res.sigma_xy()[0] + 1) < abs(res.coarse[0, 0] + 1)


def test_weyl_semimetal_hall_from_node_separation() -> None:
    """Weyl nodes at kx = ±k0 (a = 1 Å): the kx-slices with |kx| > k0 have |C| = 1, so
    |σ_yz| = (e²/h)(2π − 2k0)/(2π) per Å; the other components vanish."""
    for k0 in (math.pi / 2, math.pi / 3):
        m = build_model("weyl", k0=k0)
        assert abs(chern_result(m, 24, plane=(0, 0.5)).chern) == 1 and chern_result(m, 24, plane=(0, 0.0)).chern == 0
        res = hall_conductivity(m, 0.0, nk=24, max_nk=24)
        s = res.tensor_s_per_cm()[0]
        expect = (1 - k0 / math.pi) * E2_H_SIEMENS * 1e8
        assert abs(s[1, 2]) == pytest.approx(expect, rel=2e-2)
        assert abs(s[0, 1]) < 1e-6 * expect and abs(s[0, 2]) < 1e-6 * expect
        np.testing.assert_allclose(s, -s.T, atol=1e-9)


def test_stack_of_chern_layers_gives_c_per_layer() -> None:
    q = build_model("qwz", u=-1.0)
    c = 3.0
    stack = TBModel(np.diag([1.0, 1.0, c]), np.zeros((2, 3)), q.onsite, q.hop_i, q.hop_j,
                    np.concatenate([q.hop_R, np.zeros((len(q.hop_R), 1), int)], 1), q.hop_t)
    res = hall_conductivity(stack, 0.0, nk=32)
    assert res.layer == pytest.approx(c)
    assert res.sigma_xy()[0] == pytest.approx(1.0, abs=1e-6)
    assert res.tensor_s_per_cm()[0][0, 1] == pytest.approx(E2_H_SIEMENS * 1e8 / c, rel=1e-6)



def test_cli_hall_json_scan_and_plot(capsys, tmp_path) -> None:
    png = tmp_path / "s.png"
    doc = run_cli_json(capsys, "hall", "haldane", "--nk", "48", "--scan", "-3", "3", "13", "--out", str(png), "--json")
    assert doc["sigma_xy"] == pytest.approx(-1.0, abs=1e-6) and doc["in_gap"] is True
    assert len(doc["scan"]["sigma_xy"]) == 13 and abs(doc["scan"]["sigma_xy"][0]) < 0.01
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = run_cli_json(capsys, "hall", "weyl", "--nk", "12", "--json")
    assert np.asarray(doc["sigma"]).shape == (3, 3) and doc["layer_thickness"] == pytest.approx(1.0)


def test_cli_hall_3d_without_layer_thickness_gives_null_sheet_values(capsys, tmp_path) -> None:
    """a1, a2 out of the xy plane: no layer thickness, so σ_xy per layer (refined and unrefined) is null, not NaN."""
    import json

    fcc = build_model("weyl").replace(lattice=2.0 * (np.ones((3, 3)) - np.eye(3)))
    path = tmp_path / "fcc.json"
    path.write_text(json.dumps(fcc.to_dict()))
    doc = run_cli_json(capsys, "hall", str(path), "--nk", "8", "--json")
    assert doc["layer_thickness"] is None and doc["sigma_xy"] is None and doc["sigma_xy_unrefined"] is None
    assert np.all(np.isfinite(doc["sigma"])) and "sigma_xy_note" in doc


@pytest.mark.parametrize("argv", [["hall", "qwz", "--nk", "1"], ["hall", "qwz", "--temperature", "-5"],
                                  ["hall", "qwz", "--fermi", "nan"], ["hall", "ssh"],
                                  ["hall", "qwz", "--scan", "1", "0", "5"]])
def test_cli_hall_bad_input(capsys, argv) -> None:
    assert_usage_error(*run_cli(capsys, *argv))

"""Bott index and local Chern marker: Chern-number oracles, disorder, supercell spectrum, CLI."""
from __future__ import annotations


import numpy as np
import pytest
from helpers import assert_usage_error, run_cli, run_cli_json
import torch

from topodiff.physics.berry import chern_number
from topodiff.physics.bott import real_space_invariants, supercell_hamiltonian
from topodiff.physics.library import build_model
from topodiff.physics.model import k_grid


@pytest.mark.parametrize("name, params", [("qwz", {"u": -1.0}), ("qwz", {"u": 1.2}), ("qwz", {"u": 2.6}),
                                          ("haldane", {}), ("haldane", {"phi": -1.5707963}),
                                          ("haldane", {"M": 0.9})])
def test_clean_bott_and_marker_equal_chern(name: str, params: dict) -> None:
    m = build_model(name, **params)
    c = chern_number(m, 48)
    res = real_space_invariants(m, 10)
    assert res.bott[0] == c and abs(res.bott_raw[0] - c) < 1e-8
    assert res.marker_bulk[0] == pytest.approx(c, abs=0.06)


@pytest.mark.parametrize("name, params, W", [("qwz", {"u": -1.0}, 1.5), ("haldane", {}, 1.0)])
def test_weak_disorder_keeps_the_invariant(name: str, params: dict, W: float) -> None:
    m = build_model(name, **params)
    c = chern_number(m, 48)
    res = real_space_invariants(m, 10, W, seeds=[0, 1, 2])
    assert np.all(res.bott == c) and np.all(np.abs(res.bott_raw - c) < 1e-6)
    assert np.all(np.abs(res.marker_bulk - c) < 0.15)


def test_strong_disorder_destroys_it_and_trivial_stays_zero() -> None:
    res = real_space_invariants(build_model("qwz", u=-1.0), 10, 16.0, seeds=[0, 1, 2, 3])
    assert np.mean(np.abs(res.bott)) < 0.5  # Anderson insulator
    triv = real_space_invariants(build_model("qwz", u=3.0), 10, 1.0, seeds=[0, 1])
    assert np.all(triv.bott == 0) and np.all(np.abs(triv.marker_bulk) < 0.05)


def test_periodic_supercell_has_the_bulk_spectrum_on_the_folded_grid() -> None:
    """An L×L torus of a clean model holds exactly the bulk bands at the L×L k-grid."""
    for name in ("haldane", "kane_mele"):
        m = build_model(name)
        L = 4
        e_super = torch.linalg.eigvalsh(supercell_hamiltonian(m, L)).numpy()
        e_bulk = torch.linalg.eigvalsh(m.hamiltonian(k_grid((L, L)), convention=1)).numpy().ravel()
        np.testing.assert_allclose(e_super, np.sort(e_bulk), atol=1e-10)
    open_e = torch.linalg.eigvalsh(supercell_hamiltonian(build_model("qwz"), 6, periodic=False)).numpy()
    assert np.min(np.abs(open_e)) < 0.5  # the open flake has in-gap edge states (bulk gap is 2 eV)


def test_disorder_realisation_is_reproducible() -> None:
    m = build_model("qwz", u=-1.0)
    a = real_space_invariants(m, 6, 3.0, seeds=[7], marker=False)
    b = real_space_invariants(m, 6, 3.0, seeds=[7], marker=False)
    c = real_space_invariants(m, 6, 3.0, seeds=[8], marker=False)
    assert a.bott_raw[0] == b.bott_raw[0] and a.gap[0] == b.gap[0] and a.gap[0] != c.gap[0]



def test_cli_bott_json_map_and_sweep(capsys, tmp_path) -> None:
    png = tmp_path / "m.png"
    doc = run_cli_json(capsys, "bott", "qwz", "--size", "8", "--disorder", "0.5", "--seed", "3",
                       "--out", str(png), "--json")
    assert doc["bott"] == 1 and isinstance(doc["bott"], int) and doc["local_chern_marker_bulk"] == pytest.approx(1, abs=0.1)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sw = run_cli_json(capsys, "bott", "qwz", "--size", "6", "--sweep", "20", "3", "--seeds", "2", "--json")["sweep"]
    assert sw["W"] == [0.0, 10.0, 20.0] and sw["bott_mean"][0] == 1.0


@pytest.mark.parametrize("argv", [["bott", "qwz", "--size", "0"], ["bott", "qwz", "--size", "-3"],
                                  ["bott", "qwz", "--size", "4", "--disorder", "-1"],
                                  ["bott", "bi2se3", "--size", "4"], ["bott", "qwz", "--size", "500"],
                                  ["bott", "qwz", "--size", "4", "--sweep", "1", "0"]])
def test_cli_bott_bad_input(capsys, argv) -> None:
    assert_usage_error(*run_cli(capsys, *argv))


def test_topological_anderson_insulator_in_trivial_qwz() -> None:
    """QWZ at u = 2.2 is trivial; disorder renormalises u below 2 (δu ∝ −W²) and the Bott index
    becomes that of 0 < u < 2 (−1) at intermediate W, before strong disorder localises everything."""
    m = build_model("qwz", u=2.2)
    assert chern_number(m, 48) == 0
    mid = real_space_invariants(m, 10, 4.5, seeds=[0, 1, 2, 3], marker=False)
    assert np.mean(mid.bott) <= -0.5
    assert np.all(real_space_invariants(m, 10, 0.5, seeds=[0, 1], marker=False).bott == 0)

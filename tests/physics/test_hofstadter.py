"""Hofstadter model: gap Chern numbers from magnetic Bloch bands obey the TKNN Diophantine equation."""
from __future__ import annotations


import numpy as np
import pytest
from helpers import assert_usage_error, run_cli, run_cli_json

from topodiff.physics.berry import chern_result
from topodiff.physics.hofstadter import butterfly, hofstadter_gaps, hofstadter_model, peierls_supercell
from topodiff.physics.library import build_model
from topodiff.physics.model import k_grid


def diophantine_t(r: int, p: int, q: int) -> int:
    """The t of r = q s + p t with |t| <= q/2 (brute force; unique for odd q)."""
    sols = [t for t in range(-q, q + 1) if abs(t) <= q / 2 and (r - p * t) % q == 0]
    assert len(sols) == 1, sols
    return sols[0]


@pytest.mark.parametrize("p, q", [(1, 3), (2, 5), (3, 7), (1, 5), (4, 9)])
def test_gap_chern_numbers_obey_tknn(p: int, q: int) -> None:
    gaps = hofstadter_gaps(p, q)
    assert [g.bands_below for g in gaps] == list(range(1, q))  # odd q: every gap is open
    for g in gaps:
        s = (g.bands_below - p * g.chern) / g.q
        assert s == int(s) and abs(g.chern) <= q / 2
        assert g.chern == diophantine_t(g.bands_below, p, q)
        assert abs(g.chern_raw - g.chern) < 1e-8 and g.gap > 0.01


def test_chern_numbers_agree_with_the_general_fhs_code_and_flip_with_the_field() -> None:
    p, q = 2, 5
    m = hofstadter_model(p, q)
    for g in hofstadter_gaps(p, q):
        assert chern_result(m, 24, filling=g.bands_below).chern == g.chern
    mirrored = {g.bands_below: g.chern for g in hofstadter_gaps(q - p, q)}
    assert all(mirrored[g.bands_below] == -g.chern for g in hofstadter_gaps(p, q))


def test_spectrum_limits() -> None:
    """φ = 0: the square-lattice band 2t(cos kx + cos ky); φ = 1/2: a closed central gap (Dirac points)."""
    m = hofstadter_model(0, 1, t=0.7)
    k = k_grid((8, 8))
    e = m.hamiltonian(k, convention=1)[..., 0, 0].real.numpy()
    np.testing.assert_allclose(e, 1.4 * (np.cos(2 * np.pi * k[..., 0]) + np.cos(2 * np.pi * k[..., 1])), atol=1e-12)
    assert hofstadter_gaps(1, 2) == []
    four = hofstadter_gaps(1, 4)
    assert [g.bands_below for g in four] == [1, 3]  # q = 4: the central gap closes
    assert [g.chern for g in four] == [diophantine_t(1, 1, 4), -diophantine_t(1, 1, 4)]


def test_butterfly_data() -> None:
    data = butterfly(5, nk=6)
    assert data["flux"][0] == 0.0 and data["flux"][-1] == 1.0 and len(data["flux"]) == len(set(data["flux"]))
    i = data["flux"].index(2 / 5)
    assert [g["chern"] for g in data["gaps"][i]] == [g.chern for g in hofstadter_gaps(2, 5)]
    assert all(-4.0 - 1e-9 <= lo <= hi <= 4.0 + 1e-9 for bands in data["bands"] for lo, hi in bands)



def test_cli_hofstadter_json_and_butterfly(capsys, tmp_path) -> None:
    png = tmp_path / "b.png"
    doc = run_cli_json(capsys, "hofstadter", "--p", "1", "--q", "3", "--butterfly", "--qmax", "5",
                       "--out", str(png), "--json")
    assert [(g["filling"], g["chern"]) for g in doc["gaps"]] == [("1/3", 1), ("2/3", -1)]
    assert doc["gaps"][0]["filling_fraction"] == pytest.approx(1 / 3)
    assert doc["gaps"][0]["gap"] == pytest.approx(doc["gaps"][1]["gap"]) and doc["gaps"][0]["gap"] > 1.0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv", [["hofstadter", "--p", "1", "--q", "0"], ["hofstadter", "--p", "1", "--q", "-3"],
                                  ["hofstadter", "--p", "2", "--q", "4"], ["hofstadter", "--p", "3", "--q", "9"],
                                  ["hofstadter", "--p", "1", "--q", "3", "--t", "nan"],
                                  ["hofstadter", "--p", "1", "--q", "3", "--butterfly"]])
def test_cli_hofstadter_bad_input(capsys, argv) -> None:
    assert_usage_error(*run_cli(capsys, *argv))


def test_generic_peierls_substitution() -> None:
    """The generic construction reproduces the square-lattice model exactly, and graphene (orbitals
    off the cell corners) shows the half-integer quantum Hall sequence σ = ±1, ±3 around E = 0."""
    import torch

    square = hofstadter_model(0, 1)
    k = k_grid((5, 5))
    for p, q in ((1, 3), (2, 5)):
        e1 = torch.linalg.eigvalsh(peierls_supercell(square, p, q).hamiltonian(k, convention=1))
        e2 = torch.linalg.eigvalsh(hofstadter_model(p, q).hamiltonian(k, convention=1))
        assert float((e1 - e2).abs().max()) < 1e-12
    gaps = {g.bands_below: g.chern for g in hofstadter_gaps(1, 31, model=build_model("graphene", t=-1.0, a=1.0))}
    assert [gaps[r] for r in (28, 30, 32, 34)] == [-3, -1, 1, 3]  # 62 bands; the n = 0 level holds 2

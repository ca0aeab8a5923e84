"""What real Wannier90 / WannierTools inputs need: file type by content, tolerant weights, a ``.win``
without a cell, an explicit filling, a relative time-reversal check, gaps from every energy computed
and Z2 for tiny gaps (issue: physics engine on real DFT Hamiltonians)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from topodiff.cli import main
from topodiff.errors import TopodiffInputError
from topodiff.physics.bands import band_gaps, special_points
from topodiff.physics.io import load_model
from topodiff.physics.library import build_model
from topodiff.physics.model import TBModel, k_grid
from topodiff.physics.summary import invariant_summary
from topodiff.physics.z2 import time_reversal_check
from topodiff.physics.z2_routes import find_inversion_matrix, spin_chern_z2, spin_up_states, z2_with_routes

DATA = Path(__file__).resolve().parents[1] / "data" / "w90"


def _spectrum(model: TBModel, k: np.ndarray) -> np.ndarray:
    return torch.linalg.eigvalsh(model.hamiltonian(k, convention=1)).numpy()


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_file_type_by_content_not_name(tmp_path: Path, capsys) -> None:
    """WannierTools' Cu example is called ``wannier90_hr.dat_nsymm48``: read as a _hr.dat, not JSON."""
    odd = tmp_path / "wannier90_hr.dat_nsymm48"
    shutil.copy(DATA / "graphene_hr.dat", odd)
    model = load_model(str(odd), filling=1)
    ref = load_model(str(DATA / "graphene_hr.dat"), filling=1)
    k = np.random.default_rng(0).random((10, 2))
    np.testing.assert_allclose(_spectrum(model, k), _spectrum(ref, k), atol=1e-10)
    code = main(["bands", str(odd), "--filling", "1", "--num", "20", "--json"])  # the command reads it too
    assert code == 0
    as_json = tmp_path / "model_hr.dat"  # a JSON document with a misleading name is still JSON
    as_json.write_text(json.dumps(build_model("qwz").to_dict()))
    assert load_model(str(as_json)).num_bands == 2


def test_weight_lines_with_extra_numbers_are_read_as_wannier90_does(tmp_path: Path) -> None:
    lines = (DATA / "graphene_hr.dat").read_text().splitlines()
    nrpts = int(lines[2])
    last = 3 + (nrpts - 1) // 15
    lines[last] = lines[last] + "    1    1    1"  # more numbers than nrpts: Fortran ignores the rest
    (tmp_path / "x_hr.dat").write_text("\n".join(lines) + "\n")
    got, ref = load_model(str(tmp_path / "x_hr.dat"), filling=1), load_model(str(DATA / "graphene_hr.dat"), filling=1)
    k = np.random.default_rng(1).random((10, 2))
    np.testing.assert_allclose(_spectrum(got, k), _spectrum(ref, k), atol=1e-10)


def test_win_without_unit_cell_is_not_fatal(tmp_path: Path) -> None:
    """WannierTools' Bi2Se3 ``wannier90.win`` holds projections only: identity cell plus a note."""
    shutil.copy(DATA / "graphene_hr.dat", tmp_path / "wannier90_hr.dat")
    (tmp_path / "wannier90.win").write_text("num_wann = 2\nbegin projections\nC: pz\nend projections\n")
    model = load_model(str(tmp_path / "wannier90_hr.dat"), filling=1)
    np.testing.assert_allclose(model.lattice, np.eye(3)[:2])
    assert any("identity cell" in n and "unit_cell_cart" in n for n in model.notes)
    with_cell = load_model(str(DATA / "graphene_hr.dat"), filling=1)
    assert not any("identity" in n for n in with_cell.notes)


def test_missing_filling_is_an_error_not_half_filling(tmp_path: Path, capsys) -> None:
    shutil.copy(DATA / "graphene_hr.dat", tmp_path / "g_hr.dat")
    model = load_model(str(tmp_path / "g_hr.dat"))
    with pytest.raises(TopodiffInputError, match="--filling"):
        _ = model.occupied
    for cmd in ("invariants", "bands"):
        code, out, err = _cli(capsys, cmd, str(tmp_path / "g_hr.dat"), "--json")
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2 and out == "" and len(lines) == 1
        assert lines[0].startswith("error:") and "--filling" in lines[0] and "Traceback" not in err
    (tmp_path / "wt.in").write_text("&SYSTEM\nNumOccupied = 1        ! NumOccupied\nSOC = 0\n/\n")
    model = load_model(str(tmp_path / "g_hr.dat"))
    assert model.occupied == 1 and any("NumOccupied in wt.in" in n for n in model.notes)


def test_time_reversal_tolerance_is_relative_to_the_hopping_scale() -> None:
    km = build_model("kane_mele", lambda_r=0.0)
    noisy = km.replace(hop_t=km.hop_t * (1 + 1e-3j))  # meV-scale breaking, as real Wannier files have
    chk = time_reversal_check(noisy)
    assert chk.holds and 0 < chk.breaking < 0.01 and chk.relative == pytest.approx(chk.breaking / chk.scale)
    assert time_reversal_check(km).breaking < 1e-12
    hal = time_reversal_check(build_model("haldane"))
    assert not hal.holds and hal.relative > 0.5  # a Chern insulator breaks it at the scale of t2
    summary = invariant_summary(noisy, nk=24)
    assert summary["z2"] == 1 and "warning" not in summary and summary["time_reversal"]["holds"]


def graphene_3d(tz: float = 3e-4) -> TBModel:
    """Graphene layers 10 Å apart with a 0.3 meV interlayer hopping (a 3D model, like a DFT file)."""
    a = 2.46
    lat = np.array([[a, 0, 0], [a / 2, a * np.sqrt(3) / 2, 0], [0, 0, 10.0]])
    hops = [(0, 1, (0, 0, 0), -2.7), (0, 1, (-1, 0, 0), -2.7), (0, 1, (0, -1, 0), -2.7),
            (0, 0, (0, 0, 1), tz), (1, 1, (0, 0, 1), tz)]
    return TBModel(lat, [[1 / 3, 1 / 3, 0.5], [2 / 3, 2 / 3, 0.5]], [0.0, 0.0], [h[0] for h in hops],
                   [h[1] for h in hops], [h[2] for h in hops], [h[3] for h in hops])


def test_graphene_gap_found_at_K_on_the_path() -> None:
    m = graphene_3d()
    grid = _spectrum(m, k_grid([20, 20, 20]).reshape(-1, 3))
    assert (grid[:, 1] - grid[:, 0]).min() > 0.1  # a 20³ grid alone misses the Dirac point
    gaps = band_gaps(m, nk=20)
    assert gaps.direct < 1e-9 and gaps.kind == "none"
    assert gaps.direct_at in ("K", "H") and np.isclose(np.sort(np.remainder(gaps.k_direct[:2], 1))[0], 1 / 3)
    assert len(special_points(2)) == 36 and gaps.num_k > 20 ** 3


def test_fermi_level_in_a_band_gives_no_z2() -> None:
    m = build_model("bhz", D=-1.5)  # direct gap 1.6 eV everywhere, but the bands overlap by 4 eV
    out = invariant_summary(m, nk=24)
    assert out["z2"] is None and "inside a band" in out["warning"]
    assert invariant_summary(build_model("bhz"), nk=24)["z2"] == 1


@pytest.mark.parametrize("M, expected, routes", [(-0.00015, 1, {"parity"}), (0.00015, 0, {"wcc", "parity"})])
def test_tiny_gap_bhz_falls_back_on_parity(M: float, expected: int, routes: set[str]) -> None:
    """HgTe well 0.15 meV from the transition: the inverted side's WCC flow cannot be resolved, parity can."""
    m = build_model("bhz", A=3.645, B=-68.6, D=-51.1, M=M)
    res = z2_with_routes(m, 2)
    assert res.converged and res.route in routes and res.z2 == expected
    P = find_inversion_matrix(m)
    assert P is not None and np.allclose(P @ P.T, np.eye(4))


def test_spin_chern_route_agrees() -> None:
    m = build_model("bhz", A=3.645, B=-68.6, D=-51.1, M=-0.00015)
    up = spin_up_states(m)
    assert up is not None and up.sum() == 2
    z2, c_up = spin_chern_z2(m, 2, up)
    assert z2 == 1 and abs(c_up) == 1
    assert spin_up_states(build_model("kane_mele")) is None  # Rashba mixes spins


def test_lattice_from_wanniertools_input(tmp_path: Path) -> None:
    shutil.copy(DATA / "graphene_hr.dat", tmp_path / "wannier90_hr.dat")
    (tmp_path / "wt.in").write_text("&SYSTEM\nNumOccupied = 1\n/\n\nLATTICE\nAngstrom\n2.46 0 0\n1.23 2.130422 0\n"
                                    "0 0 20\n\nATOM_POSITIONS\n")
    model = load_model(str(tmp_path / "wannier90_hr.dat"))
    np.testing.assert_allclose(np.linalg.norm(model.lattice, axis=1), [2.46, 2.46], atol=1e-5)
    assert model.occupied == 1 and any("LATTICE card of wt.in" in n for n in model.notes)


def test_lattice_option_for_a_file_without_cell(tmp_path: Path, capsys) -> None:
    shutil.copy(DATA / "graphene_hr.dat", tmp_path / "g_hr.dat")
    base = ["bands", str(tmp_path / "g_hr.dat"), "--filling", "1", "--num", "30", "--json"]
    code, out, _ = _cli(capsys, *base)
    assert code == 0 and "K" not in json.loads(out)["labels"]  # identity cell: a square path
    code, out, _ = _cli(capsys, *base, "--lattice", "2.46,0,0, 1.23,2.130422,0, 0,0,20")
    doc = json.loads(out)
    assert code == 0 and "K" in doc["labels"] and any("--lattice" in n for n in doc["notes"])
    code, out, err = _cli(capsys, *base, "--lattice", "1 2 3")
    assert code == 2 and err.strip().startswith("error:") and "nine numbers" in err
    code, out, err = _cli(capsys, "bands", str(DATA / "graphene_hr.dat"), "--filling", "1", "--lattice",
                          str(DATA / "graphene.win"), "--json")
    assert code == 2 and "own lattice" in err


def test_a_garbled_file_named_hr_dat_is_told_what_either_format_needs(tmp_path: Path) -> None:
    from topodiff.errors import TopodiffInputError

    bad = tmp_path / "garbled_hr.dat"
    bad.write_text("garbage\n")
    with pytest.raises(TopodiffInputError, match="invalid JSON.*nor is it a Wannier90 _hr.dat"):
        load_model(str(bad))

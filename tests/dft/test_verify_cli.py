"""`topodiff verify --dft`: refusals exit 2 with one `error:` line (no DFT is run for them)."""
from __future__ import annotations

import sys

import pytest
from ase.build import bulk

from topodiff.cli import main


def _write(tmp_path, atoms, name):
    import ase.io

    path = tmp_path / name
    ase.io.write(path, atoms)
    return path


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


def test_without_gpaw_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "gpaw", None)  # import gpaw -> ImportError
    path = _write(tmp_path, bulk("Si", "diamond", 5.431), "Si.cif")
    assert main(["verify", "--dft", str(path), "--json"]) == 2
    line = _one_error(capsys)
    assert "GPAW" in line and "CC=g++" in line and "topodiff[dft]" in line


@pytest.mark.parametrize("atoms,needle", [
    (bulk("Fe", "bcc", 2.87), "magnetic element(s) Fe"),
    (bulk("Ce", "fcc", 5.16), "f-electron element(s) Ce"),
])
def test_refuses_magnetic_and_f_electron_crystals(tmp_path, capsys, atoms, needle):
    pytest.importorskip("gpaw", reason="GPAW not installed")
    path = _write(tmp_path, atoms, "x.cif")
    assert main(["verify", "--dft", str(path), "--json"]) == 2
    assert needle in _one_error(capsys)


def test_refuses_cells_above_the_budget(tmp_path, capsys):
    pytest.importorskip("gpaw", reason="GPAW not installed")
    path = _write(tmp_path, bulk("Si", "diamond", 5.431, cubic=True), "Si8.cif")  # primitive cell: 2 atoms
    assert main(["verify", "--dft", str(path), "--max-atoms", "1", "--json"]) == 2
    assert "2 atoms per primitive cell exceeds the DFT budget of 1 atoms" in _one_error(capsys)


def test_needs_the_dft_flag_and_a_valid_basis(tmp_path, capsys):
    path = _write(tmp_path, bulk("Si", "diamond", 5.431), "Si.cif")
    assert main(["verify", str(path)]) == 2
    assert "--dft" in _one_error(capsys)
    assert main(["verify", "--dft", str(path), "--basis", "gaussian"]) == 2
    assert "--basis must be lcao or pw" in _one_error(capsys)


def test_symmetrize_verifies_the_symmetrised_primitive_cell(tmp_path, capsys):
    """A conventional Si cell shaken by 0.02 Å: P1 with 8 atoms as given, the 2-atom diamond cell at 0.1 Å
    (the budget refusal states which cell was counted; no DFT runs)."""
    pytest.importorskip("gpaw", reason="GPAW not installed")
    atoms = bulk("Si", "diamond", 5.431, cubic=True)
    atoms.positions += __import__("numpy").random.default_rng(0).uniform(-0.02, 0.02, atoms.positions.shape)
    path = _write(tmp_path, atoms, "Si8.cif")
    assert main(["verify", "--dft", str(path), "--max-atoms", "1", "--json"]) == 2
    assert "8 atoms per primitive cell" in _one_error(capsys)
    assert main(["verify", "--dft", str(path), "--max-atoms", "1", "--symmetrize", "0.1", "--json"]) == 2
    assert "2 atoms per primitive cell" in _one_error(capsys)
    assert main(["verify", "--dft", str(path), "--symmetrize", "-1"]) == 2
    assert "--symmetrize must be a tolerance" in _one_error(capsys)


def test_odd_electron_count_is_a_metal_without_scf(tmp_path, capsys):
    """Al (3 valence electrons per cell): Kramers pairs at the TRIM make it a metal; no SCF is run."""
    pytest.importorskip("gpaw", reason="GPAW not installed")
    import json

    path = _write(tmp_path, bulk("Al", "fcc", 4.05), "Al.cif")
    assert main(["verify", "--dft", str(path), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["structures"][0]
    assert row["verdict"] == "metal" and row["z2"] is None and row.get("k_mesh") is None
    assert "odd number of valence electrons (3)" in row["reason"] and "no SCF" in row["reason"]

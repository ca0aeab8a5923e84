"""Topology screen: classes of known crystals, supercells, bad input rows, shards, pool, CLI."""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import importlib

import pytest
import torch

from topodiff.errors import TopodiffInputError
from topodiff.evaluation.screen import TOPO_CLASSES, half_mesh, parse_shard, screen_path, screen_structure

from helpers import load_sk_crystal  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "sk"


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


load = load_sk_crystal


@pytest.mark.parametrize("name,cls", [("Si", "trivial_insulator"), ("Ge", "trivial_insulator"),
                                      ("graphene", "metal"), ("Bi2Se3", "strong_ti"), ("Bi2Te3", "strong_ti"),
                                      ("SnTe", "trivial_insulator")])
def test_known_crystals(name: str, cls: str) -> None:
    row = screen_structure(load(name))
    assert row["topo_class"] == cls
    assert row["topo_class"] in TOPO_CLASSES
    if cls == "trivial_insulator" and name != "SnTe":
        assert row["gap"] > 0.3 and row["z2"] == [0, 0, 0, 0] and row["method"] == "parity"
    if cls == "strong_ti":
        assert row["z2"] == [1, 0, 0, 0] and row["direct_gap"] > 0.01


@pytest.mark.parametrize("name", ["Bi2Se3", "Bi2Te3"])
def test_strict_metal_rule_sees_band_overlap(name: str) -> None:
    """Harrison's defaults overlap the inverted bands in energy (gap = 0): strict rule → metal."""
    row = screen_structure(load(name), metal_rule="indirect", params={"fit": "none"})
    assert row["topo_class"] == "metal" and row["gap"] == 0.0 and row["z2"] == [1, 0, 0, 0]
    with pytest.raises(TopodiffInputError, match="metal_rule"):
        screen_structure(load(name), metal_rule="bogus")


def test_bi2se3_published_parameters_give_gapped_strong_ti() -> None:
    """The published three-shell sp3+SOC table (default for Bi-Se) opens a real (indirect) gap:
    strong TI (1;000) under both metal rules, unlike Harrison's integrals (semimetal)."""
    s = load("Bi2Se3")
    for rule in ("auto", "indirect"):
        row = screen_structure(s, metal_rule=rule)
        assert row["topo_class"] == "strong_ti" and row["z2"] == [1, 0, 0, 0] and row["method"] == "parity"
        assert row["gap"] > 0.3 and row["direct_gap"] > 0.3
    assert screen_structure(s, metal_rule="indirect", params={"fit": "none"})["topo_class"] == "metal"


def test_primitive_and_supercell_agree() -> None:
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    si = load("Si")
    conv = SpacegroupAnalyzer(si).get_conventional_standard_structure()
    a, b = screen_structure(si), screen_structure(conv)
    assert len(conv) == 8 and a["topo_class"] == b["topo_class"] == "trivial_insulator"
    p, h = screen_structure(load("Bi2Se3")), screen_structure(load("Bi2Se3_hex"))
    assert len(load("Bi2Se3_hex")) == 15
    assert p["topo_class"] == h["topo_class"] == "strong_ti" and p["z2"][0] == h["z2"][0] == 1
    sc = screen_structure(si * (2, 1, 1))  # a non-cubic supercell: strong index and class survive
    assert sc["topo_class"] == "trivial_insulator" and sc["z2"][0] == 0


def test_no_inversion_uses_wcc() -> None:
    importlib.import_module("topodiff.physics.z2")
    row = screen_structure(load("CdTe"))
    assert row["method"] == "wcc" and row["topo_class"] == "trivial_insulator" and row["gap"] > 1.0


def test_half_mesh_covers_mesh_up_to_time_reversal() -> None:
    mesh = (4, 6, 3)
    k = half_mesh(mesh)
    full = {tuple(np.round(x * mesh).astype(int) % mesh) for x in k}
    full |= {tuple(np.round(-x * np.array(mesh)).astype(int) % mesh) for x in k}
    assert len(full) == 4 * 6 * 3 and len(k) < 4 * 6 * 3


def _bad_dir(tmp_path: Path) -> tuple[Path, list[str]]:
    """A directory of good and bad structure files; returns (dir, sorted file names)."""
    d = tmp_path / "mixed"
    d.mkdir()
    shutil.copy(DATA / "Si.cif", d / "a_Si.cif")
    (d / "b_empty.cif").write_text("")
    (d / "c_garbage.cif").write_text("data_x\n_cell_length_a 1\nthis is not a cif\n")
    si = (DATA / "Si.cif").read_text()
    (d / "d_overlap.cif").write_text(si.replace("0.75000000  0.75000000  0.75000000", "0.00100000  0.00000000  0.00000000"))
    (d / "e_unknown.cif").write_text(si.replace("  Si  Si0", "  Qq  Qq0").replace("  Si  Si1", "  Qq  Qq1"))
    (d / "f_partial.cif").write_text(si.replace("Si1  1  0.75000000  0.75000000  0.75000000  1",
                                                "Si1  1  0.75000000  0.75000000  0.75000000  0.5"))
    shutil.copy(DATA / "Ge.cif", d / "g_Ge.cif")
    return d, sorted(p.name for p in d.iterdir())


def test_bad_inputs_give_error_rows_and_the_batch_goes_on(tmp_path: Path) -> None:
    d, names = _bad_dir(tmp_path)
    rows = screen_path(d, workers=1)
    assert [Path(r["source"]).name for r in rows] == names  # one row per input, input order
    by = {Path(r["source"]).name: r for r in rows}
    assert by["a_Si.cif"]["topo_class"] == by["g_Ge.cif"]["topo_class"] == "trivial_insulator"
    for bad in names[1:-1]:
        assert by[bad]["topo_class"] is None and by[bad]["error"], bad
    assert "overlap" in by["d_overlap.cif"]["error"].lower() or "0.5" in by["d_overlap.cif"]["error"]


def test_shards_partition_and_pool_matches_serial(tmp_path: Path) -> None:
    d = tmp_path / "set"
    d.mkdir()
    for name in ("Si", "Ge", "SnTe", "graphene"):
        shutil.copy(DATA / f"{name}.cif", d / f"{name}.cif")
    serial = screen_path(d, workers=1)
    pooled = screen_path(d, workers=2)
    key = lambda r: (r["source"], r["topo_class"], r["z2"], round(r["gap"], 6))  # noqa: E731
    assert [key(r) for r in serial] == [key(r) for r in pooled]
    s0, s1 = screen_path(d, workers=1, shard="0/2"), screen_path(d, workers=1, shard="1/2")
    assert sorted(r["index"] for r in s0 + s1) == list(range(4))
    assert {r["index"] for r in s0}.isdisjoint({r["index"] for r in s1})
    for bad in ("2/2", "x", "1/0"):
        with pytest.raises(TopodiffInputError):
            parse_shard(bad)


def test_cli_json_contract(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from topodiff.cli import main

    d, names = _bad_dir(tmp_path)
    assert main(["screen", str(d), "--json", "--workers", "1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = doc["structures"]
    assert len(rows) == len(names)
    for r in rows:
        assert {"source", "formula", "space_group", "gap", "z2", "topo_class"} <= set(r)
        assert (r["topo_class"] is None) == ("error" in r)
    assert main(["screen", str(tmp_path / "missing.cif")]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["screen", str(d), "--shard", "5/2"]) == 2


def test_auto_metal_rule_follows_open_shells() -> None:
    """auto = direct for sp-valent crystals (Bi2Se3), indirect when d/f shells are open (LaSb)."""
    from pymatgen.core import Lattice, Structure

    bi = load("Bi2Se3")
    auto, direct = screen_structure(bi), screen_structure(bi, metal_rule="direct")
    assert not auto["open_shell"] and auto["topo_class"] == direct["topo_class"] == "strong_ti"
    lasb = Structure(Lattice([[0, 3.24, 3.24], [3.24, 0, 3.24], [3.24, 3.24, 0]]), ["La", "Sb"],
                     [[0, 0, 0], [0.5, 0.5, 0.5]])
    auto, strict = screen_structure(lasb), screen_structure(lasb, metal_rule="indirect")
    assert auto["open_shell"] and auto["topo_class"] == strict["topo_class"]


def test_symmetrize_restores_inversion_of_a_slightly_distorted_crystal() -> None:
    from topodiff.crystal.symmetry import symmetrized

    s = load_sk_crystal("Bi2Se3")
    noisy = s.copy()
    rng = np.random.default_rng(0)
    for i in range(len(noisy)):
        noisy.translate_sites([i], rng.normal(0, 0.01, 3), frac_coords=False)
    fixed, changed = symmetrized(noisy, 0.1)
    assert changed and len(fixed) == len(s)
    plain = screen_structure(noisy)
    row = screen_structure(noisy, symmetrize=0.1)
    assert plain["method"] != "parity"  # the distortion breaks inversion of the model (PARITY_SYMPREC)
    # one analysis (0.1 Å): the row says R-3m either way, and names the basis of the weak indices
    assert (plain["space_group"], plain["space_group_symbol"], plain["z2_basis"]) == (166, "R-3m", "input_cell")
    assert row["symmetrized"] and row["method"] == "parity" and row["space_group"] == 166
    assert row["z2_basis"] == "standard_primitive" and row["n_atoms"] == 5
    assert row["z2_conventional"] == plain["z2_conventional"] == [1, 0, 0, 0]
    assert row["topo_class"] == screen_structure(s)["topo_class"]
    with pytest.raises(TopodiffInputError):
        symmetrized(s, 0.0)


# --- issue #17: dead workers, resource guards, nothing processed -----------------------------------

def _screen_cli(*argv: str, env: dict | None = None):
    import os
    import subprocess
    import sys

    full = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "topodiff.cli", "screen", *argv], env=full, capture_output=True,
                          text=True, timeout=300)


def test_killed_worker_costs_one_row_not_the_screen(tmp_path: Path) -> None:
    """A worker killed with SIGKILL while screening one crystal (test hook): that crystal gets an
    error row, the pool is rebuilt and every other crystal is screened; exit 0."""
    d = tmp_path / "set"
    d.mkdir()
    names = ["a_Si", "b_Ge", "c_SnTe", "d_graphene", "e_Si"]
    for name in names:
        shutil.copy(DATA / f"{name.split('_')[1]}.cif", d / f"{name}.cif")
    res = _screen_cli(str(d), "--json", "--workers", "2", env={"TOPODIFF_TEST_KILL_WORKER": "c_SnTe"})
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)["structures"]
    assert [Path(r["source"]).stem for r in rows] == names
    assert rows[2]["topo_class"] is None and "worker process died" in rows[2]["error"]
    serial = screen_path(d, workers=1)
    for i in (0, 1, 3, 4):
        assert rows[i]["topo_class"] == serial[i]["topo_class"] and rows[i]["gap"] == pytest.approx(serial[i]["gap"])
    assert "pool rebuilt" in res.stderr


def test_oversized_crystal_gets_an_error_row_with_the_limit() -> None:
    from topodiff.evaluation.guards import CrystalLimits, screen_memory_bytes

    si = load("Si")
    big = si * (5, 5, 5)  # 250 atoms: 2000 states
    assert screen_memory_bytes(len(big), 4) / 2**30 > 1.0
    rows = screen_path(DATA / "Si.cif", workers=1, limits=CrystalLimits(max_atoms=1))
    assert rows[0]["topo_class"] is None and "2 atoms > limit 1" in rows[0]["error"]
    from topodiff.evaluation.screen import _screen_task

    _, row = _screen_task((0, "big", big, None, {"limits": CrystalLimits(max_memory_gb=1.0)}))
    assert row["topo_class"] is None and "GiB > limit 1 GiB" in row["error"] and "--max-memory" in row["error"]


@pytest.mark.parametrize("args, message", [
    (["--gap-tol", "nan"], "--gap-tol must be a finite number"),
    (["--gap-tol", "-1"], "--gap-tol must lie in"),
    (["--symmetrize", "inf"], "--symmetrize must be a finite number"),
    (["--workers", "64"], "--workers must be 1.."),
    (["--max-atoms", "0"], "--max-atoms must be"),
    (["--basis", "sp3x"], "unknown basis"),
    (["--metal-rule", "loose"], "--metal-rule"),
])
def test_bad_numbers_exit_2_before_screening(tmp_path: Path, capsys: pytest.CaptureFixture, args, message) -> None:
    from topodiff.cli import main

    assert main(["screen", str(DATA / "Si.cif"), "--json", *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize("command, verb", [("screen", "screened"), ("predict", "predicted")])
def test_nothing_processed_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture, command: str, verb: str) -> None:
    """CONTRACTS §3: a batch where no crystal could be processed exits 2 with one error line."""
    from topodiff.cli import main

    bad = tmp_path / "bad.cif"
    bad.write_text("data_x\n_cell_length_a 1\nthis is not a cif\n")
    assert main([command, str(bad), "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"error: no input crystal could be {verb}") and err.count("\n") == 1
    d = tmp_path / "mixed"
    d.mkdir()
    shutil.copy(bad, d / "a_bad.cif")
    shutil.copy(DATA / "Si.cif", d / "b_Si.cif")
    assert main([command, str(d), "--json"]) == 0  # one good crystal: the batch succeeds
    rows = json.loads(capsys.readouterr().out)["structures"]
    assert len(rows) == 2 and "error" in rows[0] and "error" not in rows[1]


def test_row_text_states_both_gaps_and_the_z2_basis() -> None:
    from topodiff.evaluation.screen import gap_text, z2_text

    row = screen_structure(load("Bi2Se3"))
    assert 0 < row["gap"] <= row["direct_gap"]          # indirect ≤ direct on the same mesh
    assert gap_text(row) == f"indirect {row['gap']:.3f} / direct {row['direct_gap']:.3f} eV"
    assert z2_text(row) == "(1;000) conv."
    assert z2_text({"z2": [0, 0, 0, 1], "z2_basis": "input_cell", "z2_conventional": None}) == "(0;001) input cell"
    assert gap_text({"gap": None, "direct_gap": 0.2}) == "indirect ? / direct 0.200 eV" and z2_text({}) == ""

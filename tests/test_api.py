"""The Python API (``topodiff.*``): inputs from pymatgen / ASE / PythTB, CLI-identical keys, threads."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import topodiff
from topodiff.errors import TopodiffInputError

REPO = Path(__file__).resolve().parents[1]
CRYSTALS = REPO / "tests" / "data" / "crystals"
LIB_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TOPODIFF_NUM_THREADS")


def run_python(code: str, **env_vars: str) -> str:
    """Run ``code`` in a fresh interpreter without the thread variables (plus ``env_vars``); its stdout."""
    env = {k: v for k, v in os.environ.items() if k not in LIB_VARS}
    env.update(env_vars)
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout.strip().splitlines()[-1]


def cli_json(args: list[str], capsys) -> dict:
    from topodiff.cli import main

    capsys.readouterr()
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)


def silicon():
    from pymatgen.core import Lattice, Structure

    return Structure(Lattice([[0, 2.715, 2.715], [2.715, 0, 2.715], [2.715, 2.715, 0]]), ["Si", "Si"],
                     [[0, 0, 0], [0.25, 0.25, 0.25]])


# --------------------------------------------------------------------------------------------- namespace
def test_import_is_lazy_and_names_resolve():
    out = run_python("import sys, topodiff; print(int('torch' in sys.modules or 'numpy' in sys.modules))")
    assert out == "0"
    for name in ("generate", "screen", "evaluate", "load_model", "chern_number", "z2_invariant", "invariants",
                 "TBBuilder", "to_pythtb", "set_threads", "ScreenResult"):
        assert name in dir(topodiff) and callable(getattr(topodiff, name))
    with pytest.raises(AttributeError):
        topodiff.no_such_function


# --------------------------------------------------------------------------------------------- screen
def test_screen_takes_structure_atoms_and_paths_with_cli_keys(capsys):
    from ase.build import bulk

    nacl = CRYSTALS / "POSCAR_NaCl"
    rows = topodiff.screen([silicon(), bulk("Si", "diamond", a=5.43), nacl])
    assert [r.source for r in rows] == ["input[0]", "input[1]", str(nacl)]
    assert rows[0].formula == "Si" and rows[0].space_group == 227 and rows[0].topo_class == "trivial_insulator"
    assert rows[0].gap == pytest.approx(rows[1].gap, abs=1e-6) and rows[0].gap > 0.5
    cli = cli_json(["screen", str(nacl), "--json"], capsys)["structures"][0]
    api = rows[2].to_dict()
    assert list(api) == list(cli)  # same keys, same order
    for key in cli:
        if key != "time_s":
            assert api[key] == cli[key], key
    assert rows[2]["topo_class"] == cli["topo_class"]


def test_screen_rows_carry_errors_and_bad_inputs_raise():
    bad = topodiff.screen(CRYSTALS / "bad_overlap.cif")
    assert bad[0].topo_class is None and bad[0].error
    with pytest.raises(TopodiffInputError):
        topodiff.screen([42])
    with pytest.raises(TopodiffInputError):
        topodiff.screen(CRYSTALS / "missing.cif")


# --------------------------------------------------------------------------------------------- models
def test_load_model_accepts_every_source():
    from ase.build import bulk

    pythtb = pytest.importorskip("pythtb")
    def ssh(v, w):  # intra-cell v, inter-cell w: winding ±1 when |w| > |v|
        tb = pythtb.tb_model(1, 1, [[1.0]], [[0.0], [0.5]])
        tb.set_hop(v, 0, 1, [0])
        tb.set_hop(w, 1, 0, [1])
        return tb

    chain = topodiff.load_model(ssh(0.4, 1.0))
    assert chain.dim == 1 and chain.num_bands == 2
    assert topodiff.invariants(ssh(0.4, 1.0))["winding"] in (1, -1)
    assert topodiff.invariants(ssh(1.0, 0.4))["winding"] == 0
    si_structure = topodiff.load_model(silicon())
    si_atoms = topodiff.load_model(bulk("Si", "diamond", a=5.43))
    nacl_file = topodiff.load_model(CRYSTALS / "POSCAR_NaCl")
    assert si_structure.occupied == si_atoms.occupied == 8  # 2 Si x 4 valence electrons
    assert nacl_file.dim == 3 and nacl_file.num_bands > 0
    assert topodiff.load_model(si_structure) is si_structure
    assert topodiff.load_model("haldane", params={"t2": 0.1}).params["t2"] == 0.1
    with pytest.raises(TopodiffInputError):
        topodiff.load_model(3.5)
    with pytest.raises(TopodiffInputError):
        topodiff.load_model(ssh(0.4, 1.0), params={"t": 1.0})


def test_invariants_match_the_cli_json(capsys):
    api = topodiff.invariants("kane_mele", nk=24)
    cli = cli_json(["invariants", "kane_mele", "--nk", "24", "--json"], capsys)
    assert api == cli and api["z2"] == 1
    assert topodiff.chern_number("haldane", nk=32) == cli_json(["invariants", "haldane", "--json"], capsys)["chern"]


def test_invariants_of_a_crystal_file_and_pythtb_chern():
    pythtb = pytest.importorskip("pythtb")
    tb = pythtb.tb_model(2, 2, [[1.0, 0.0], [0.5, np.sqrt(3) / 2]], [[1 / 3, 1 / 3], [2 / 3, 2 / 3]])
    tb.set_onsite([0.1, -0.1])
    for R in ([0, 0], [-1, 0], [0, -1]):
        tb.set_hop(-1.0, 0, 1, R)
    for R in ([1, 0], [-1, 1], [0, -1]):
        tb.set_hop(0.2j, 0, 0, R)
        tb.set_hop(-0.2j, 1, 1, R)
    assert abs(topodiff.chern_number(tb, nk=32)) == 1
    gaps = topodiff.band_gaps(silicon(), nk=6)
    assert gaps["direct_gap"] > 0.5 and gaps["filling"] == 8


# --------------------------------------------------------------------------------------------- generate / evaluate
def test_generate_returns_structures_and_evaluate_takes_them(tmp_path, capsys):
    from pymatgen.core import Structure

    out = topodiff.generate(num=2, seed=1, steps=20, out_dir=tmp_path / "gen")
    assert len(out) == 2 and all(isinstance(s, Structure) for s in out)
    assert out.metadata["num_structures"] == 2 and (tmp_path / "gen" / "structures.extxyz").is_file()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not a topodiff run")
    with pytest.raises(TopodiffInputError, match="foreign"):  # output directories are owned as by the CLI
        topodiff.generate(num=1, steps=2, out_dir=foreign)
    ev = topodiff.evaluate(list(out) + [silicon()], screen=False, progress=False)
    assert ev["num_structures"] == 3 and 0 <= ev["structural_validity"] <= 1
    assert len(ev.structures) == 3 and ev.structures[2]["formula"] == "Si"
    from topodiff.evaluation.outputs import JSON_ROW_KEYS

    assert list(ev.to_dict()["structures"][0]) == list(JSON_ROW_KEYS)  # the --json row keys
    assert len(ev.rows) == 3 and "structure_valid" in ev.rows[0]
    extxyz = tmp_path / "gen" / "structures.extxyz"
    cli = cli_json(["evaluate", str(extxyz), "--no-screen", "--json", "--out", str(tmp_path / "cli")], capsys)
    api = topodiff.evaluate(extxyz, screen=False, progress=False, out_dir=tmp_path / "api").to_dict()
    assert set(api) == set(cli) and api["structures"] == cli["structures"]
    assert api["structural_validity"] == cli["structural_validity"]
    assert "outputs" not in ev.summary  # temporary directory: nothing left to point at


# --------------------------------------------------------------------------------------------- threads
def test_api_applies_one_thread_by_default_and_respects_overrides():
    probe = ("import torch; torch.set_num_threads(2); import numpy, topodiff.threads as t; t.ensure_threads(); "
             "from threadpoolctl import threadpool_info; "
             "print(torch.get_num_threads(), max(p['num_threads'] for p in threadpool_info()))")
    assert run_python(probe) == "1 1"
    assert run_python(probe, TOPODIFF_NUM_THREADS="2") == "2 2"
    assert run_python(probe, OMP_NUM_THREADS="2") == "2 2"  # the user's own setting wins
    hook = "import torch; torch.set_num_threads(2); import topodiff.physics; print(torch.get_num_threads())"
    assert run_python(hook) == "1"  # importing the physics engine applies the default


def test_set_threads_overrides_in_process_and_off_leaves_libraries_alone(monkeypatch):
    import torch

    from topodiff import threads

    before = torch.get_num_threads()
    monkeypatch.setitem(threads._state, "applied", False)
    monkeypatch.setenv("TOPODIFF_NUM_THREADS", "off")
    torch.set_num_threads(2)
    threads.ensure_threads()
    assert torch.get_num_threads() == 2 and threads._state["applied"]
    try:
        topodiff.set_threads(1)
        assert threads.current_threads()["torch"] == 1
        assert all(n == 1 for n in threads.current_threads().values())
    finally:
        torch.set_num_threads(before)


def test_cli_env_defaults_follow_the_same_rule(monkeypatch):
    from topodiff import threads

    for var in LIB_VARS:
        monkeypatch.delenv(var, raising=False)
    threads.set_env_defaults()
    assert all(os.environ[v] == "1" for v in threads.LIBRARY_ENV)
    monkeypatch.setenv("TOPODIFF_NUM_THREADS", "3")
    threads.set_env_defaults()
    assert all(os.environ[v] == "3" for v in threads.LIBRARY_ENV)
    monkeypatch.setenv("TOPODIFF_NUM_THREADS", "many")
    with pytest.raises(TopodiffInputError):
        threads.requested_threads()
    with pytest.raises(TopodiffInputError):
        topodiff.set_threads(0)


# --------------------------------------------------------------------------------------------- the notebook doc
def test_python_api_doc_runs_as_written(monkeypatch):
    """docs/python-api.md's ```python blocks, executed in order in one namespace from the repo root
    (its own asserts check the printed results; generate/evaluate write only to temporary dirs)."""
    import re

    text = (REPO / "docs" / "python-api.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    assert len(blocks) >= 5
    monkeypatch.chdir(REPO)
    namespace: dict = {}
    for n, block in enumerate(blocks):
        exec(compile(block, f"docs/python-api.md[block {n}]", "exec"), namespace)  # noqa: S102 - our own doc
    assert namespace["rows"][2].z2 == [1, 0, 0, 0]

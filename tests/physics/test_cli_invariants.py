"""``topodiff invariants | weyl | models`` through the CLI entry point (CONTRACTS §3)."""
from __future__ import annotations

import json

import pytest

from topodiff.cli import main
from topodiff.physics import TBModel
from topodiff.physics.library import build_model


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv: str) -> dict:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1, "--json must print exactly one JSON object"
    return json.loads(lines[0])


def test_invariants_2d_keys_and_values(capsys) -> None:
    j = run_json(capsys, "invariants", "qwz", "--nk", "24")
    assert {"dim", "filling", "num_bands", "gap", "chern", "z2"} <= set(j)
    assert (j["dim"], j["filling"], j["num_bands"], j["chern"], j["z2"]) == (2, 1, 2, 1, None)
    assert j["gap"] == pytest.approx(2.0)
    j = run_json(capsys, "invariants", "kane_mele", "--param", "lambda_v=0.4")
    assert (j["chern"], j["z2"], j["filling"]) == (0, 0, 2) and "warning" not in j
    j = run_json(capsys, "invariants", "qwz", "--param", "u=1.0")
    assert j["chern"] == -1


def test_invariants_1d_and_3d(capsys) -> None:
    j = run_json(capsys, "invariants", "ssh")
    assert j["dim"] == 1 and j["winding"] == 1 and j["berry_phase"] == pytest.approx(3.141592653589793)
    assert run_json(capsys, "invariants", "rice_mele")["winding"] is None
    j = run_json(capsys, "invariants", "fu_kane_mele", "--nk", "12")
    assert j["z2"] == [1, 1, 1, 1] and set(j["chern_planes"].values()) == {0}


def test_invariants_from_file_and_warning_not_rounded(capsys, tmp_path) -> None:
    path = tmp_path / "h.json"
    path.write_text(json.dumps(build_model("haldane", M=0.1).to_dict()))
    assert run_json(capsys, "invariants", str(path), "--nk", "20")["chern"] == -1
    # Dirac points of QWZ at u = 0 sit on an even grid: no integer, a warning instead
    j = run_json(capsys, "invariants", "qwz", "--param", "u=0", "--nk", "20")
    assert j["chern"] is None and "warning" in j and j["gap"] < 1e-9


def test_weyl_command(capsys) -> None:
    j = run_json(capsys, "weyl", "weyl")
    assert j["net_chirality"] == 0 and sorted(n["chirality"] for n in j["nodes"]) == [-1, 1]
    assert all(len(n["k_reduced"]) == 3 and n["gap"] < 1e-5 for n in j["nodes"])


def test_models_list_and_show(capsys) -> None:
    code, out, _ = run(capsys, "models", "list")
    assert code == 0 and "haldane" in out and "kane_mele" in out
    doc = run_json(capsys, "models", "show", "haldane", "--param", "M=0.3")
    assert doc["format"] == "topodiff-tb/1"
    m = TBModel.from_dict(doc)
    assert m.onsite[0, 0, 0].real == pytest.approx(0.3)
    code, out, _ = run(capsys, "models", "show", "bhz")
    assert code == 0 and "Bernevig" in out


@pytest.mark.parametrize("argv, match", [
    (("invariants", "no_such_model"), "unknown model"),
    (("invariants", "qwz", "--nk", "0"), "--nk"),
    (("invariants", "qwz", "--param", "v=1"), "no parameter 'v'"),
    (("invariants", "qwz", "--param", "u"), "KEY=VALUE"),
    (("invariants", "qwz", "--filling", "5"), "filling"),
    (("invariants", "/nonexistent/model.json"), "not found"),
    (("weyl", "qwz"), "3D"),
    (("models", "show", "nope"), "unknown model"),
])
def test_bad_input_exits_2_with_one_error_line(capsys, argv, match) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0]
    assert "Traceback" not in err

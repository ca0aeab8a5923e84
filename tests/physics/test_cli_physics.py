"""CLI of the physics tools: bands, field-sweep, phase-diagram, validate-known, demo.

Commands are exercised in-process through a Typer app holding only these sub-commands (their
errors must be :class:`TopodiffInputError`, which ``topodiff.cli.main`` maps to exit code 2), and
through ``topodiff.cli.main`` itself for exit codes and JSON on stdout.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import typer

from topodiff.commands import bands, demo, field_sweep, phase_diagram, validate_known
from topodiff.errors import TopodiffInputError

DATA = Path(__file__).resolve().parents[1] / "data" / "w90"


def _app() -> typer.Typer:
    app = typer.Typer()
    for mod in (bands, field_sweep, phase_diagram, validate_known, demo):
        mod.register(app)
    return app


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run a command in-process: (exit code, stdout, stderr); TopodiffInputError → 2 as in cli.main."""
    code = 0
    try:
        _app()(args=argv, standalone_mode=False)
    except TopodiffInputError as exc:
        code = 2
        print(f"error: {exc}")
    except Exception as exc:  # typer/click Exit carries the code
        code = int(getattr(exc, "exit_code", 1))
    out, err = capsys.readouterr()
    return code, out, err


def test_bands_json_and_png(tmp_path: Path, capsys) -> None:
    png = tmp_path / "b.png"
    code, out, _ = run(["bands", "haldane", "--param", "M=0.3", "--out", str(png), "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["labels"] == ["Γ", "K", "M", "Γ"]
    assert doc["direct_gap"] == pytest.approx(2 * abs(0.3 - 3 * math.sqrt(3) * 0.15), abs=1e-9)
    assert png.stat().st_size > 5000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bands_of_wannier90_file_and_ribbon(tmp_path: Path, capsys) -> None:
    code, out, _ = run(["bands", str(DATA / "graphene_hr.dat"), "--filling", "1", "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["dim"] == 2 and doc["gap_type"] in ("direct", "indirect", "none")
    code, out, _ = run(["bands", "kane_mele", "--ribbon", "8", "--num", "50", "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and np.asarray(doc["energies"]).shape == (50, 32)


def test_ribbon_in_electric_field(capsys) -> None:
    code, out, _ = run(["bands", "haldane", "--ribbon", "6", "--num", "5", "--json"], capsys)
    e0 = np.asarray(json.loads(out)["energies"])
    code, out, _ = run(["bands", "haldane", "--ribbon", "6", "--num", "5", "--efield", "0.05", "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["efield"] == 0.05
    e1 = np.asarray(doc["energies"])
    assert np.abs(e1 - e0).max() > 1e-3  # the field changes the ribbon spectrum
    assert abs(e1.sum() - e0.sum()) < 1e-9  # V = −E·(r − r̄) is traceless
    code, _, _ = run(["bands", "haldane", "--efield", "0.05"], capsys)
    assert code == 2


def test_field_sweep_cli(capsys) -> None:
    code, out, _ = run(["field-sweep", "kane_mele", "--field", "staggered", "--range", "0", "0.6", "--num", "7",
                        "--param", "lambda_r=0", "--param", "lambda_v=0", "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["invariant"] == "z2"
    assert doc["critical"] == pytest.approx(3 * math.sqrt(3) * 0.06, rel=1e-3)


def test_phase_diagram_cli(tmp_path: Path, capsys) -> None:
    png = tmp_path / "pd.png"
    code, out, _ = run(["phase-diagram", "haldane", "--x", "phi", "-3.1416", "3.1416", "21", "--y", "M", "-1", "1",
                        "21", "--nk", "12", "--out", str(png), "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert np.asarray(doc["chern"], dtype=object).shape == (21, 21)
    assert set(doc["counts"]) >= {"-1", "0", "1"}
    assert png.exists()


@pytest.mark.parametrize("argv", [
    ["phase-diagram", "haldane", "--x", "phi", "1", "0", "5", "--y", "M", "-1", "1", "5"],
    ["phase-diagram", "haldane", "--x", "phi", "0", "1", "5", "--y", "M", "-1", "1", "5", "--nk", "0"],
    ["phase-diagram", "nosuchmodel", "--x", "phi", "0", "1", "5", "--y", "M", "-1", "1", "5"],
    ["field-sweep", "kane_mele", "--field", "gravity", "--range", "0", "1"],
    ["field-sweep", "kane_mele", "--field", "staggered", "--range", "1", "0"],
    ["bands", "nosuchmodel"],
    ["bands", "haldane", "--nk", "0"],
])
def test_bad_input_is_a_user_error(argv: list[str], capsys) -> None:
    code, out, _ = run(argv, capsys)
    assert code == 2, out


def test_validate_known_cli(capsys) -> None:
    code, out, err = run(["validate-known", "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["all_match"] and doc["num_failed"] == 0
    assert "Bi2Se3" in err  # the table goes to stderr with --json


def test_main_exit_codes(capsys) -> None:
    from topodiff.cli import main

    assert main(["bands", "haldane", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_bands"] == 2
    assert main(["phase-diagram", "haldane", "--x", "phi", "1", "0", "5", "--y", "M", "-1", "1", "5"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert main(["field-sweep", "haldane", "--field", "nope", "--range", "0", "1"]) == 2


def test_demo_writes_everything(tmp_path: Path, capsys) -> None:
    code, out, _ = run(["demo", "--out", str(tmp_path), "--grid", "31", "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    for path in doc["files"].values():
        assert Path(path).exists()
    assert doc["validate_known"]["all_match"]
    assert doc["kane_mele_critical_field"]["relative_error"] < 1e-3

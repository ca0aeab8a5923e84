"""What the CLI promises (issue #17, part A): no code from checkpoint files, output directories owned by
one run, exit codes 0/1/2/130 with one ``error:`` line, and numbers checked before any computing."""
from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from generative.conftest import TINY
from generative.helpers import make_batch
from topodiff.cli import main
from topodiff.errors import TopodiffInputError
from topodiff.io_utils import RUN_MARKER, claim_output_dir, fingerprint
from training.helpers import REPO, TINY_CONFIG, cli_env, topodiff_cmd, write_crystal_csv


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _expect_input_error(argv: list[str], capsys, match: str = "") -> str:
    code, _, err = _run(argv, capsys)
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2, err[-2000:]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    assert match in lines[0], lines[0]
    return lines[0]


# --------------------------------------------------------------------------------------------
# checkpoints: nothing is unpickled beyond tensors and plain data

class _WritesAFile:
    """Unpickling this runs ``open(marker, 'w').write('pwned')``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _crafted(path: Path, marker: Path, layout: str = "generator") -> Path:
    if layout == "generator":
        obj = {"format": "topodiff-generator/1", "config": _WritesAFile(marker), "state_dict": {}, "recipe": {}}
    elif layout == "predictor":
        obj = {"format": "topodiff-predictor/1", "config": _WritesAFile(marker), "state_dict": {}}
    else:  # a Lightning training checkpoint
        obj = {"global_step": 99, "state_dict": {}, "hyper_parameters": {"config": _WritesAFile(marker)}}
    torch.save(obj, path)
    return path


def test_crafted_checkpoint_would_run_code_if_unpickled(tmp_path):
    """The test file is a real threat: an unrestricted torch.load runs it."""
    marker = tmp_path / "pwned"
    torch.load(_crafted(tmp_path / "evil.ckpt", marker), weights_only=False)
    assert marker.read_text() == "pwned"


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / "pwned"
    return _crafted(tmp_path / "evil.ckpt", marker), marker


@pytest.fixture
def crystal_csv(tmp_path):
    return write_crystal_csv(tmp_path / "crystals.csv", 12)


def test_generate_csp_finetune_refuse_a_crafted_checkpoint(evil, tmp_path, capsys):
    ckpt, marker = evil
    comps = tmp_path / "comps.txt"
    comps.write_text("SrTiO3\n")
    for argv in (["generate", "--checkpoint", ckpt, "--out", tmp_path / "g", "--num", "1"],
                 ["csp", comps, "--checkpoint", ckpt, "--out", tmp_path / "c"],
                 ["finetune", "--checkpoint", ckpt, "--data", comps, "--property", "band_gap",
                  "--out", tmp_path / "ft.ckpt"]):
        line = _expect_input_error(argv, capsys, "refusing to load")
        assert "never unpickles code" in line
        assert not marker.exists()


def test_a_file_that_is_no_checkpoint_is_named_as_such(tmp_path, capsys):
    """A CSV (or any non-zip file) passed as a checkpoint: one plain error line, not a parser's
    internal exception ('IndexError: pop from empty list' before)."""
    fake = tmp_path / "crystals.csv"
    fake.write_text("a,b\n1,2\n")
    line = _expect_input_error(["generate", "--checkpoint", fake, "--out", tmp_path / "g", "--num", "1"], capsys,
                               "not a checkpoint file")
    assert "Error:" not in line


def test_predictor_and_lightning_loader_refuse_a_crafted_file(tmp_path):
    from topodiff.generative.predictor import load_predictor
    from topodiff.training.callbacks import AtomicCheckpointIO
    from topodiff.training.checkpoint_files import UnsafeCheckpointError

    marker = tmp_path / "pwned"
    with pytest.raises(TopodiffInputError, match="refusing to load"):
        load_predictor(_crafted(tmp_path / "evil.predictor.ckpt", marker, "predictor"))
    with pytest.raises(UnsafeCheckpointError):  # what trainer.fit(ckpt_path=...) reads through
        AtomicCheckpointIO().load_checkpoint(_crafted(tmp_path / "evil.ckpt", marker, "lightning"), weights_only=False)
    assert not marker.exists()


def test_train_init_from_and_resume_refuse_a_crafted_checkpoint(evil, crystal_csv, tmp_path, capsys):
    from topodiff.training.config import load_config
    from topodiff.training.run_dir import claim_run_dir

    ckpt, marker = evil
    base = ["train", "--config", TINY_CONFIG, f"data.train={crystal_csv}", "trainer.max_steps=2"]
    _expect_input_error(base + [f"output_dir={tmp_path / 'a'}", f"init_from={ckpt}"], capsys, "refusing to load")
    # a step=N.ckpt dropped into the run's own directory, then --resume
    out = tmp_path / "b"
    overrides = [f"data.train={crystal_csv}", "trainer.max_steps=2", f"output_dir={out}"]
    claim_run_dir(load_config(TINY_CONFIG, overrides), resume=False)
    _crafted(out / "step=000099.ckpt", marker, "lightning")
    _expect_input_error(base + [f"output_dir={out}", "--resume"], capsys, "refusing to load")
    assert not marker.exists()


def test_shipped_checkpoints_load_without_unpickling_code():
    from topodiff.generative.checkpoint import CHECKPOINT_DIR
    from topodiff.training.checkpoint_files import safe_load

    files = sorted(CHECKPOINT_DIR.glob("*.ckpt"))
    assert len(files) >= 3
    for path in files:
        assert isinstance(safe_load(path)["state_dict"], dict), path


# --------------------------------------------------------------------------------------------
# output directories owned by one run

def test_resume_of_a_run_whose_marker_predates_an_exempt_setting(tmp_path):
    """A run claimed while ``model.steps`` still defined it resumes once that key is exempt; any other
    difference is still refused."""
    src = tmp_path / "train.csv"
    src.write_text("a")
    old = fingerprint(sources=[src], options={"model": {"hidden": 8, "steps": 100}})
    out = claim_output_dir(tmp_path / "run", job="train", fingerprint=old)
    (out / "last.ckpt").write_text("weights")
    new = fingerprint(sources=[src], options={"model": {"hidden": 8}})  # steps no longer in the fingerprint
    with pytest.raises(TopodiffInputError, match="model.steps: 100 -> None"):
        claim_output_dir(out, job="train", fingerprint=new, resume=True)
    other = fingerprint(sources=[src], options={"model": {"hidden": 16}})
    with pytest.raises(TopodiffInputError, match="model.hidden: 8 -> 16"):
        claim_output_dir(out, job="train", fingerprint=other, resume=True, exempt=["model.steps"])
    assert claim_output_dir(out, job="train", fingerprint=new, resume=True, exempt=["model.steps"]) == out
    assert json.loads((out / RUN_MARKER).read_text())["fingerprint"] == new
    assert (out / "last.ckpt").read_text() == "weights"


def test_claim_output_dir_rules(tmp_path):
    src = tmp_path / "input.txt"
    src.write_text("a")
    fp5 = fingerprint(sources=[src], options={"num": 5})
    fp2 = fingerprint(sources=[src], options={"num": 2})
    assert fp5 != fp2 and fp5 == fingerprint(sources=[src], options={"num": 5})
    out = claim_output_dir(tmp_path / "out", job="generate", fingerprint=fp5)
    assert json.loads((out / RUN_MARKER).read_text())["fingerprint"] == fp5
    (out / "result.txt").write_text("old")
    with pytest.raises(TopodiffInputError, match="--overwrite"):
        claim_output_dir(out, job="generate", fingerprint=fp2)
    with pytest.raises(TopodiffInputError, match="num: 5 -> 2"):  # resume says what differs
        claim_output_dir(out, job="generate", fingerprint=fp2, resume=True)
    with pytest.raises(TopodiffInputError, match="`generate` run"):
        claim_output_dir(out, job="csp", fingerprint=fp5, resume=True)
    assert claim_output_dir(out, job="generate", fingerprint=fp5, resume=True) == out  # same run continues
    assert (out / "result.txt").exists()
    src.write_text("b")  # the input changed
    with pytest.raises(TopodiffInputError, match="input contents changed"):
        claim_output_dir(out, job="generate", fingerprint=fingerprint(sources=[src], options={"num": 5}), resume=True)
    claim_output_dir(out, job="generate", fingerprint=fp2, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [RUN_MARKER]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(TopodiffInputError, match="not written by a topodiff run"):
        claim_output_dir(foreign, job="generate", fingerprint=fp5)
    with pytest.raises(TopodiffInputError, match="not a directory"):
        claim_output_dir(src / "sub", job="generate", fingerprint=fp5)
    with pytest.raises(TopodiffInputError, match="would delete the input"):
        claim_output_dir(tmp_path, job="generate", fingerprint=fp5, overwrite=True)


@pytest.fixture
def tiny_ckpt(tmp_path):
    from topodiff.generative.checkpoint import save_generator
    from topodiff.generative.config import ModelConfig
    from topodiff.generative.model import CrystalDiffusion

    torch.manual_seed(0)
    model = CrystalDiffusion(ModelConfig(**TINY))
    b = make_batch((5, 5, 5))
    b.species = torch.tensor([38, 22, 8, 8, 8, 56, 22, 8, 8, 8, 20, 40, 8, 8, 8])
    model.fit_statistics(b.num_atoms.numpy(), b.lattice.numpy(), b.species.numpy())
    model.cfg.min_distance = 0.0
    return save_generator(model, {}, tmp_path / "tiny.ckpt")


def test_generate_5_then_2_never_mixes_runs(tiny_ckpt, tmp_path, capsys):
    out = tmp_path / "gen"
    common = ["generate", "--checkpoint", tiny_ckpt, "--out", out, "--steps", "2"]
    assert _run(common + ["--num", "5"], capsys)[0] == 0
    assert len(list((out / "cif").glob("*.cif"))) == 5
    _expect_input_error(common + ["--num", "2"], capsys, "--overwrite")
    assert len(list((out / "cif").glob("*.cif"))) == 5  # refused before writing
    assert _run(common + ["--num", "2", "--overwrite"], capsys)[0] == 0
    assert len(list((out / "cif").glob("*.cif"))) == 2
    assert json.loads((out / "metadata.json").read_text())["num_structures"] == 2


def test_train_refuses_another_runs_directory_and_resumes_only_its_own(crystal_csv, tmp_path, capsys):
    from topodiff.training.config import load_config
    from topodiff.training.run_dir import claim_run_dir

    out = tmp_path / "run"
    overrides = [f"data.train={crystal_csv}", "trainer.max_steps=4", f"output_dir={out}"]
    claim_run_dir(load_config(TINY_CONFIG, overrides), resume=False)  # an earlier run owns `out`
    (out / "step=000002.ckpt").write_bytes(b"its checkpoint")
    base = ["train", "--config", TINY_CONFIG, *overrides]
    _expect_input_error(base, capsys, "--overwrite")                      # a fresh run into it: refused
    _expect_input_error(base + ["optim.lr=0.01", "--resume"], capsys, "optim.lr")  # another run's settings
    other = write_crystal_csv(tmp_path / "other.csv", 12, seed=1)
    _expect_input_error(["train", "--config", TINY_CONFIG, f"data.train={other}", "trainer.max_steps=4",
                         f"output_dir={out}", "--resume"], capsys, "input contents changed")
    assert (out / "step=000002.ckpt").read_bytes() == b"its checkpoint"


def test_output_under_a_file_is_refused_before_computing(tmp_path, capsys):
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    _expect_input_error(["generate", "--out", afile / "sub", "--num", "1"], capsys, "not a directory")
    _expect_input_error(["demo", "--out", afile, "--grid", "3"], capsys, "not a directory")
    _expect_input_error(["pipeline", "--out", tmp_path / "p", "--reference", tmp_path / "missing.csv"], capsys,
                        "missing.csv")
    assert not (tmp_path / "p").exists()  # --reference is checked before anything is generated
    _expect_input_error(["pipeline", "--out", tmp_path / "q", "--sampler", "predictor_noise_scale=hot"], capsys,
                        "predictor_noise_scale must be a finite non-negative float")
    assert not (tmp_path / "q").exists()  # so is --sampler
    _expect_input_error(["pipeline", "--out", tmp_path / "r", "--prescreen", "0"], capsys, "--prescreen")
    _expect_input_error(["pipeline", "--out", tmp_path / "r", "--num", "60000", "--prescreen", "2"], capsys,
                        "--num × --prescreen")
    assert not (tmp_path / "r").exists()  # and --prescreen


# --------------------------------------------------------------------------------------------
# numbers checked at the CLI boundary

@pytest.mark.parametrize("argv, match", [
    (["generate", "--out", "{tmp}/g", "--condition", "band_gap=nan"], "finite"),
    (["generate", "--out", "{tmp}/g", "--guidance", "inf"], "finite"),
    (["generate", "--out", "{tmp}/g", "--num", "1000000000"], "cap 100,000"),
    (["generate", "--out", "{tmp}/g", "--seed", "-1"], "0..4294967295"),
    (["generate", "--out", "{tmp}/g", "--seed", "1e23"], "--seed"),
    (["csp", "{tmp}/big.txt", "--out", "{tmp}/c"], "at most 200"),
    (["csp", "{tmp}/big.txt", "--out", "{tmp}/c", "--samples", "1000000000"], "cap 100,000"),
    (["invariants", "haldane", "--nk", "1"], "at least 4"),
    (["invariants", "bi2se3", "--nk", "1000000"], "at most 128"),
    (["invariants", "haldane", "--param", "M=nan"], "finite"),
    (["phase-diagram", "haldane", "--x", "phi", "-3", "3", "5", "--y", "M", "-1", "1", "5", "--nk", "2"],
     "at least 4"),
    (["field-sweep", "kane_mele", "--field", "lambda_v", "--range", "0", "inf"], "finite"),
    (["train", "model.hidden=0"], "model.hidden"),
    (["train", "model.heads=7"], "divisor"),
    (["train", "optim.lr=inf"], "optim.lr"),
    (["train", "--config", "{tmp}/garbage.yaml"], "not UTF-8"),
    (["slurm", "--gpus-per-node", "2", "model.heads=7"], "divisor"),
    (["finetune", "--data", "{tmp}/big.txt", "--property", "band_gap", "--out", "{tmp}/f.ckpt", "--lr", "nan"],
     "finite"),
])
def test_bad_numbers_exit_2_before_computing(argv, match, tmp_path, capsys):
    (tmp_path / "big.txt").write_text("Fe5000\n")
    (tmp_path / "garbage.yaml").write_bytes(bytes(range(256)) * 4)
    _expect_input_error([a.replace("{tmp}", str(tmp_path)) for a in argv], capsys, match)
    assert not (tmp_path / "g").exists() and not (tmp_path / "c").exists()


@pytest.mark.parametrize("extra, match", [
    (["--templates", "{tmp}/nowhere.npz"], "template library not found"),
    (["--templates", "{tmp}/garbage.npz"], "not a template library"),
    (["--templates", "mp20", "--template-start", "0"], "--template-start"),
    (["--templates", "mp20", "--template-start", "nan"], "--template-start"),
])
def test_csp_refuses_bad_templates_before_writing(extra, match, tmp_path, capsys):
    (tmp_path / "f.txt").write_text("NaCl\n")
    (tmp_path / "garbage.npz").write_bytes(bytes(range(256)) * 4)
    argv = ["csp", tmp_path / "f.txt", "--checkpoint", "mp20-csp", "--out", tmp_path / "c"]
    _expect_input_error(argv + [a.replace("{tmp}", str(tmp_path)) for a in extra], capsys, match)
    assert not (tmp_path / "c").exists()
    if "--template-start" not in extra:   # generate --templates takes the same libraries
        _expect_input_error(["generate", "--out", tmp_path / "g", "--num", "2"] +
                            [a.replace("{tmp}", str(tmp_path)) for a in extra], capsys, match)
        assert not (tmp_path / "g").exists()


def test_haldane_at_the_smallest_allowed_grid_is_right(capsys):
    code, out, _ = _run(["invariants", "haldane", "--nk", "4", "--json"], capsys)
    assert code == 0 and json.loads(out)["chern"] == -1


def test_field_sweep_over_a_huge_range_finds_the_kane_mele_transition(capsys):
    code, out, _ = _run(["field-sweep", "kane_mele", "--field", "lambda_v", "--range", "0", "1e12",
                         "--param", "lambda_r=0", "--json"], capsys)
    crit = json.loads(out)["critical"]
    assert code == 0 and crit == pytest.approx(3 * 3 ** 0.5 * 0.06, rel=1e-3)  # 3√3 λ_SO at λ_R = 0


# --------------------------------------------------------------------------------------------
# exit codes

def test_validate_known_failure_exits_1_with_one_error_line(monkeypatch, capsys):
    import topodiff.physics.known as known

    real = known.run_checks

    def one_wrong():
        rows = real()
        rows[0].match = False
        return rows

    monkeypatch.setattr(known, "run_checks", one_wrong)
    code, _, err = _run(["validate-known", "--json"], capsys)
    assert code == 1 and sum(ln.startswith("error:") for ln in err.splitlines()) == 1
    assert "1 of" in err and "checks failed" in err


def test_exit_code_mapping(capsys):
    from topodiff.cli import _exit_code

    assert [_exit_code(v) for v in (None, 0, 1, 2, 7, "x")] == [0, 0, 1, 2, 1, 0]
    capsys.readouterr()
    assert _exit_code(130) == 130 and capsys.readouterr().err.strip() == "error: interrupted"


def test_lightning_interrupt_becomes_keyboard_interrupt():
    """Lightning catches Ctrl-C itself and calls sys.exit(1); training turns that back into exit 130."""
    from topodiff.training.run import _fit

    class Trainer:
        interrupted = True

        def fit(self, *args, **kwargs):
            raise SystemExit(1)

    with pytest.raises(KeyboardInterrupt):
        _fit(Trainer(), None, None, None)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _interrupt(args: list[str], ready, timeout: float = 240) -> subprocess.CompletedProcess:
    """Start ``topodiff ARGS``, wait until ``ready()``, send SIGINT, collect the outcome."""
    proc = subprocess.Popen([*topodiff_cmd(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env(), cwd=REPO,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None and not ready():
            time.sleep(0.1)
        assert proc.poll() is None, "finished before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def test_ctrl_c_exits_130_with_one_error_line(tmp_path):
    t0 = time.monotonic()
    res = _interrupt(["phase-diagram", "haldane", "--x", "phi", "-3", "3", "1001", "--y", "M", "-1", "1", "1001",
                      "--nk", "64"], ready=lambda: time.monotonic() - t0 > 6)
    assert res.returncode == 130, res.stderr[-2000:]
    assert res.stderr.strip().splitlines()[-1] == "error: interrupted" and "Traceback" not in res.stderr


@pytest.mark.slow
def test_ctrl_c_during_training_exits_130(crystal_csv, tmp_path):
    out = tmp_path / "run"
    res = _interrupt(["train", "--config", str(TINY_CONFIG), f"data.train={crystal_csv}", f"output_dir={out}",
                      "trainer.max_steps=100000", "trainer.checkpoint_every=2", "data.batch_size=4"],
                     ready=lambda: any(out.glob("step=*.ckpt")))
    assert res.returncode == 130, res.stderr[-2000:]
    assert res.stderr.strip().splitlines()[-1] == "error: interrupted"


def test_write_errors_name_the_users_file_not_a_temporary(tmp_path, monkeypatch):
    import os

    from topodiff.io_utils import atomic_write_text

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", src)

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError) as info:
        atomic_write_text(tmp_path / "metrics.json", "{}")
    assert info.value.filename == str(tmp_path / "metrics.json") and list(tmp_path.iterdir()) == []


def test_csp_refuses_unreadable_rows_so_index_stays_the_input_row(tmp_path, capsys):
    import csv

    rows = list(csv.reader(open(write_crystal_csv(tmp_path / "in.csv", 4), newline="")))
    rows[2][2] = "not a cif"
    with open(tmp_path / "bad.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    _expect_input_error(["csp", tmp_path / "bad.csv", "--out", tmp_path / "c"], capsys, "could not be read")
    assert not (tmp_path / "c").exists()


def test_a_condition_the_checkpoint_cannot_take_fails_before_the_output_is_claimed(tmp_path, capsys):
    """generate and pipeline check condition values against the checkpoint first: no empty --out is left."""
    for cmd in ("generate", "pipeline"):
        out = tmp_path / cmd
        _expect_input_error([cmd, "--num", "2", "--condition", "catalogue_class=foo", "--out", out], capsys,
                            "catalogue_class must be one of")
        assert not out.exists()


@pytest.mark.parametrize("argv, match", [
    (["weyl", "weyl", "--nk", "100000"], "--nk must be at most 128"),        # was a 640 GB allocation (exit 1)
    (["bands", "haldane", "--nk", "100000"], "--nk must be at most 1024"),    # was out of memory (exit 1)
    (["bands", "haldane", "--num", "100000000"], "--num must be 2..100000"),  # was a hang
    (["bands", "haldane", "--ribbon", "100000"], "above the 33,554,432 that fit in memory"),
])
def test_band_and_weyl_grids_are_capped_before_any_work(argv, match, capsys):
    _expect_input_error(argv, capsys, match)


def test_csp_with_an_element_the_checkpoint_never_saw_leaves_no_output(tmp_path, capsys):
    comps = tmp_path / "comps.txt"
    comps.write_text("NaCl\n")
    out = tmp_path / "csp"
    _expect_input_error(["csp", comps, "--out", out, "--checkpoint", "perov5-csp"], capsys, "never saw Cl (Z = 17)")
    assert not out.exists()


def test_band_gap_grids_are_capped_by_the_energies_they_hold_not_by_eigenvectors():
    """bands keeps only nk^dim × num_bands energies: an 88-band 3D model (WTe2) may use --nk 20, which the
    eigenvector budget of the invariants (nk^dim × num_bands²) would refuse as not fitting in memory."""
    from topodiff.commands._common import check_nk

    assert check_nk(20, 3, num_bands=88, eigenvectors=False, lo=1, why_lo="") == 20
    with pytest.raises(TopodiffInputError, match="at most 16"):
        check_nk(20, 3, num_bands=88)
    with pytest.raises(TopodiffInputError, match="at most 72"):
        check_nk(100, 3, num_bands=88, eigenvectors=False, lo=1, why_lo="")

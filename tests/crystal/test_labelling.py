"""Resumable dataset labelling: kill half-way (SIGKILL), restart, every row labelled exactly once."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from topodiff.crystal.labelling import append_progress, label_dataset, progress_path, read_progress
from topodiff.errors import TopodiffInputError

DATA = Path(__file__).resolve().parents[1] / "data" / "sk"
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def _structure(name: str):
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure.from_file(DATA / f"{name}.cif")


def write_csv(path: Path, n: int = 40) -> Path:
    """``n`` small crystals (strained Si/Ge/SnTe/CdTe/graphene copies) plus two unreadable rows."""
    rng = np.random.default_rng(0)
    bases = [_structure(x) for x in ("Si", "Ge", "SnTe", "CdTe", "graphene")]
    cifs, ids = [], []
    for i in range(n - 2):
        s = bases[i % len(bases)].copy()
        s.scale_lattice(s.volume * float(rng.uniform(0.97, 1.03)))
        cifs.append(s.to(fmt="cif"))
        ids.append(f"syn-{i}")
    cifs.insert(7, "not a cif at all")
    ids.insert(7, "bad-0")
    cifs.insert(23, "")
    ids.insert(23, "bad-1")
    pd.DataFrame({"material_id": ids, "band_gap": np.arange(n, dtype=float), "cif": cifs}).to_csv(path)
    return path


def _count_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_kill_and_resume_labels_every_row_once(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "crystals.csv")
    out = tmp_path / "labelled.csv"
    prog = progress_path(out)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "topodiff.cli", "dataset", "label", str(src), "--out", str(out),
           "--workers", "1", "--chunk", "2"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    while _count_lines(prog) < 12 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the process group started above (CLI + any workers)
    proc.wait()
    done_before = len(read_progress(prog))
    assert 0 < done_before < 40, "the kill should land half-way"
    assert not out.exists()

    res = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["complete"] and summary["rows"] == 40
    assert summary["resumed"] == done_before and summary["screened_now"] == 40 - done_before
    assert "resuming" in res.stderr

    df = pd.read_csv(out, dtype={"material_id": str})
    assert len(df) == 40 and df["material_id"].is_unique  # every row exactly once, source order
    assert df["band_gap"].tolist() == list(range(40))
    ids = [json.loads(line)["id"] for line in prog.read_text().splitlines() if line.strip()]
    assert sorted(ids) == list(range(40))  # nothing screened twice
    bad = df["material_id"].str.startswith("bad")
    assert df.loc[bad, "topo_class"].isna().all() and df.loc[bad, "label_error"].notna().all()
    assert df.loc[~bad, "topo_class"].isin(["trivial_insulator", "metal", "strong_ti", "weak_ti"]).all()
    # labels agree with a direct screen of the same rows (spot check, one per prototype)
    from topodiff.crystal.io import read_structures
    from topodiff.evaluation.screen import screen_structure

    records = read_structures(src)
    for i in (0, 1, 2, 3, 4):
        row = screen_structure(records[i].structure)
        assert df["topo_class"][i] == row["topo_class"]
        assert df["gap"][i] == pytest.approx(row["gap"], abs=1e-6)


def test_truncated_progress_line_is_recomputed(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "c.csv", n=12)
    out = tmp_path / "o.csv"
    first = label_dataset(src, out, workers=1, chunk=3, limit=5, log=lambda m: None)
    assert not first["complete"] and first["screened_now"] == 5 and not out.exists()
    prog = progress_path(out)
    with open(prog, "ab") as fh:  # a kill in the middle of a write leaves half a line
        fh.write(b'{"id": 5, "source": "x", "topo_c')
    assert sorted(r["id"] for r in read_progress(prog).values()) == [0, 1, 2, 3, 4]
    second = label_dataset(src, out, workers=1, chunk=3, log=lambda m: None)
    assert second["complete"] and second["resumed"] == 5 and second["screened_now"] == 7
    assert len(pd.read_csv(out)) == 12
    append_progress(prog, [])  # no-op


def test_progress_of_another_source_is_refused(tmp_path: Path) -> None:
    a = write_csv(tmp_path / "a.csv", n=6)
    out = tmp_path / "o.csv"
    label_dataset(a, out, workers=1, limit=2, log=lambda m: None)
    d = tmp_path / "dir"
    d.mkdir()
    (d / "x.cif").write_text((DATA / "Si.cif").read_text())
    with pytest.raises(TopodiffInputError, match="input contents changed"):
        label_dataset(d, out, workers=1, log=lambda m: None)
    with pytest.raises(TopodiffInputError, match=".csv"):
        label_dataset(a, tmp_path / "o.txt", workers=1)


def test_directory_source_writes_cif_column(tmp_path: Path) -> None:
    d = tmp_path / "dir"
    d.mkdir()
    for name in ("Si", "graphene"):
        (d / f"{name}.cif").write_text((DATA / f"{name}.cif").read_text())
    out = tmp_path / "o.csv"
    label_dataset(d, out, workers=1, log=lambda m: None)
    df = pd.read_csv(out)
    assert df["topo_class"].tolist() == ["trivial_insulator", "metal"]
    assert df["cif"].str.contains("_cell_length_a").all() and df["z2"].iloc[0] == "0;0;0;0"


@pytest.mark.slow
def test_label_1000_perovskites_resumable(tmp_path: Path) -> None:
    """Full-size version: 1000 Perov-5 test crystals, killed once, resumed, all rows once."""
    csv = SHARED / "perov_5" / "test.csv"
    if not csv.exists():
        pytest.skip(f"real data not found at {csv} (the shared data folder is not part of the repository)")
    src = tmp_path / "perov1000.csv"
    pd.read_csv(csv).iloc[:1000].to_csv(src, index=False)
    out = tmp_path / "labelled.csv"
    cmd = [sys.executable, "-m", "topodiff.cli", "dataset", "label", str(src), "--out", str(out), "--chunk", "25"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while _count_lines(progress_path(out)) < 300 and proc.poll() is None:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert subprocess.run(cmd, capture_output=True, timeout=3600).returncode == 0
    df = pd.read_csv(out)
    assert len(df) == 1000
    ids = [json.loads(x)["id"] for x in progress_path(out).read_text().splitlines() if x.strip().endswith("}")]
    assert sorted(set(ids)) == list(range(1000))


# --- one run, one fingerprint (issue #17) ----------------------------------------------------------

def _label_cli(*argv: str) -> tuple[int, str, str]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "topodiff.cli", "dataset", "label", *argv], env=env,
                         capture_output=True, text=True, timeout=300)
    return res.returncode, res.stdout, res.stderr


def _direct_labels(src: Path, **opts) -> list:
    from topodiff.crystal.io import read_structures
    from topodiff.evaluation.screen import records_to_tasks, screen_tasks

    return [row.get("topo_class") for _, row in screen_tasks(records_to_tasks(read_structures(src), opts), workers=1)]


def test_rerun_with_other_options_is_refused_then_overwrite_gives_the_new_labels(tmp_path: Path) -> None:
    """Issue #17: a rerun with other options kept the old labels (exit 0). Now it is refused, naming
    the option; --overwrite recomputes every row with the new options."""
    src = write_csv(tmp_path / "c.csv", n=10)
    out = tmp_path / "o.csv"
    quiet = dict(workers=1, log=lambda m: None)
    label_dataset(src, out, screen_opts={"gap_tol": 0.01}, **quiet)
    first = pd.read_csv(out)["topo_class"].tolist()
    strict = {"gap_tol": 5.0}  # almost everything becomes a metal
    with pytest.raises(TopodiffInputError, match="gap_tol"):
        label_dataset(src, out, screen_opts=strict, **quiet)
    assert pd.read_csv(out)["topo_class"].tolist() == first  # the refused run changed nothing
    res = label_dataset(src, out, screen_opts=strict, overwrite=True, **quiet)
    assert res["complete"] and res["resumed"] == 0 and res["screened_now"] == 10
    labels = pd.read_csv(out)["topo_class"].tolist()
    expect = _direct_labels(src, gap_tol=5.0)
    assert [x if isinstance(x, str) else None for x in labels] == expect
    assert labels != first  # the options really matter for these crystals


def test_changed_source_is_refused_and_error_rows_do_not_survive(tmp_path: Path) -> None:
    """A typo run (every row refused by a limit) followed by the corrected run: refused until
    --overwrite, after which no stale error row remains; an edited source is refused too."""
    from topodiff.evaluation.guards import CrystalLimits

    src = write_csv(tmp_path / "c.csv", n=8)
    out = tmp_path / "o.csv"
    quiet = dict(workers=1, log=lambda m: None)
    typo = label_dataset(src, out, screen_opts={"limits": CrystalLimits(max_atoms=1)}, **quiet)
    assert typo["counts"] == {"error": 8}
    with pytest.raises(TopodiffInputError, match="max_atoms"):
        label_dataset(src, out, **quiet)
    label_dataset(src, out, overwrite=True, **quiet)
    df = pd.read_csv(out)
    assert df["label_error"].notna().sum() == 2  # only the two unreadable rows
    assert not df["label_error"].fillna("").str.contains("too large").any()
    # the source changes (one crystal replaced): refused, then --overwrite relabels that row
    df_src = pd.read_csv(src)
    df_src.loc[0, "cif"] = _structure("graphene").to(fmt="cif")
    df_src.to_csv(src, index=False)
    with pytest.raises(TopodiffInputError, match="input contents changed"):
        label_dataset(src, out, **quiet)
    res = label_dataset(src, out, overwrite=True, **quiet)
    assert res["complete"] and pd.read_csv(out)["topo_class"][0] == "metal"  # graphene, not Si's label


def test_symlinked_outputs_and_foreign_files_are_refused(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "c.csv", n=6)
    quiet = dict(workers=1, log=lambda m: None)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "o.csv"
    label_dataset(src, out, limit=2, **quiet)
    prog = progress_path(out)
    prog.unlink()
    prog.symlink_to(victim)  # the progress file replaced by a link to someone else's file
    with pytest.raises(TopodiffInputError, match="symlink"):
        label_dataset(src, out, **quiet)
    assert victim.read_text() == "precious\n"
    with pytest.raises(TopodiffInputError, match="symlink"):  # appending itself never follows a link
        append_progress(prog, [{"key": "x"}])
    assert victim.read_text() == "precious\n"
    link = tmp_path / "link.csv"
    link.symlink_to(victim)
    with pytest.raises(TopodiffInputError, match="symlink"):
        label_dataset(src, link, **quiet)
    foreign = tmp_path / "mine.csv"
    foreign.write_text("a,b\n1,2\n")
    with pytest.raises(TopodiffInputError, match="not written by `dataset label`"):
        label_dataset(src, foreign, **quiet)
    assert foreign.read_text() == "a,b\n1,2\n"
    assert label_dataset(src, foreign, overwrite=True, **quiet)["complete"]


def test_killed_worker_gets_an_error_row_and_the_labelling_goes_on(tmp_path: Path) -> None:
    """A worker killed (SIGKILL, as by the OOM killer) while labelling row 5: that row gets an error,
    every other row its label, exit 0; the rows done before are kept."""
    src = write_csv(tmp_path / "c.csv", n=12)
    out = tmp_path / "o.csv"
    env_kill = {"TOPODIFF_TEST_KILL_WORKER": "c.csv#5"}
    os.environ.update(env_kill)
    try:
        code, stdout, err = _label_cli(str(src), "--out", str(out), "--workers", "2", "--chunk", "2", "--json")
    finally:
        os.environ.pop("TOPODIFF_TEST_KILL_WORKER")
    assert code == 0, err
    assert "worker process died" in err
    df = pd.read_csv(out, dtype={"material_id": str})
    assert len(df) == 12
    killed = df["label_error"].fillna("").str.contains("worker process died")
    assert killed.tolist() == [i == 5 for i in range(12)]
    ok = df["topo_class"].notna()
    assert ok.sum() == 9  # 12 rows - 2 unreadable - the killed one
    expect = _direct_labels(src)
    assert all(df["topo_class"][i] == expect[i] for i in range(12) if ok[i])


def test_label_exits_2_when_no_row_could_be_labelled(tmp_path: Path) -> None:
    """A batch where every crystal fails is bad input (exit 2, one error line), as for screen."""
    src = tmp_path / "bad.csv"
    pd.DataFrame({"material_id": ["a", "b"], "cif": [_structure("Si").to(fmt="cif"), "not a cif"]}).to_csv(src)
    proc = subprocess.run([sys.executable, "-m", "topodiff.cli", "dataset", "label", str(src), "--out",
                           str(tmp_path / "o.csv"), "--max-atoms", "1", "--workers", "1"],
                          capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(lines) == 1 and "no input crystal could be labelled" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_unreadable_source_leaves_no_run_state(tmp_path: Path) -> None:
    src = tmp_path / "bad.csv"
    src.write_text("a,b\n1,2\n")
    out = tmp_path / "labels.csv"
    with pytest.raises(TopodiffInputError, match="no 'cif' column"):
        label_dataset(src, out)
    assert not list(tmp_path.glob("labels.csv*"))

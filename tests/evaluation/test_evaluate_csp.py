"""`topodiff evaluate` on `topodiff csp` output: DiffCSP match rate and RMSE against the CSP input."""
import json
from pathlib import Path

import ase.io
import pytest
from pymatgen.io.ase import AseAtomsAdaptor

from topodiff.cli import main
from topodiff.crystal.dataset import load_dataset
from topodiff.errors import TopodiffInputError
from topodiff.evaluation.evaluate import evaluate_path

HELDOUT = Path(__file__).resolve().parents[1] / "data" / "crystals" / "perov5_heldout60.csv"


def _first_rows(tmp_path, n: int) -> Path:
    import csv

    csv.field_size_limit(10**8)
    rows = list(csv.reader(HELDOUT.open()))
    path = tmp_path / f"first{n}.csv"
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows[: n + 1])
    return path


def _fake_csp_dir(tmp_path, structures, samples_of) -> Path:
    """A directory laid out as `topodiff csp` writes it, holding the given predictions."""
    out = tmp_path / "csp"
    out.mkdir()
    frames = []
    for index, sample, s in samples_of(structures):
        atoms = AseAtomsAdaptor.get_atoms(s)
        atoms.info.update(index=index, sample=sample)
        frames.append(atoms)
    ase.io.write(out / "structures.extxyz", frames, format="extxyz")
    (out / "metadata.json").write_text(json.dumps({"num_compositions": len(structures), "samples": 2}))
    return out


def test_a_prediction_with_another_composition_is_an_input_error(tmp_path):
    ref_csv = _first_rows(tmp_path, 4)
    ds = load_dataset(ref_csv)
    refs = [ds.structure(i) for i in range(len(ds))]

    def samples(structs):
        for i, s in enumerate(structs):
            yield i, 0, s.copy()
            yield i, 1, s.copy() if i != 2 else s.copy().replace_species({s[0].specie: "Xe"})

    with pytest.raises(TopodiffInputError, match="composition"):
        evaluate_path(_fake_csp_dir(tmp_path, refs, samples), reference=[ref_csv], screen=False, progress=False)


def test_multi_sample_match_takes_the_best_sample(tmp_path):
    ref_csv = _first_rows(tmp_path, 6)
    ds = load_dataset(ref_csv)
    refs = [ds.structure(i) for i in range(len(ds))]

    def samples(structs):
        for i, s in enumerate(structs):
            moved = s.copy()
            moved.translate_sites([0], [0.05, 0.0, 0.0])
            yield i, 0, moved
            yield i, 1, s.copy()

    summary, rows = evaluate_path(_fake_csp_dir(tmp_path, refs, samples), reference=[ref_csv], screen=False,
                                  progress=False)
    assert summary["csp_num_compositions"] == 6 and summary["csp_samples_per_composition"] == 2
    assert summary["csp_match_rate"] == 1.0 and summary["csp_rmse"] == pytest.approx(0.0, abs=1e-6)
    assert all(r["csp_rms"] is not None for r in rows)
    assert max(r["csp_rms"] for r in rows[::2]) > 0.005                  # the moved samples are not exact


def test_csp_then_evaluate_end_to_end(tmp_path, capsys):
    ref_csv = _first_rows(tmp_path, 8)
    assert main(["csp", str(ref_csv), "--out", str(tmp_path / "out"), "--steps", "30", "--samples", "1"]) in (0, None)
    assert main(["evaluate", str(tmp_path / "out"), "--reference", str(ref_csv), "--no-screen", "--json"]) in (0, None)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["csp_num_compositions"] == 8 and summary["csp_samples_per_composition"] == 1
    assert 0.0 <= summary["csp_match_rate"] <= 1.0
    # a reference that is not the CSP input is an input error (exit 2), not a silent wrong number
    assert main(["evaluate", str(tmp_path / "out"), "--reference", str(_first_rows(tmp_path, 3)), "--no-screen"]) == 2
    assert "error:" in capsys.readouterr().err

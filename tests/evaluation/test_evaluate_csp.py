"""`topodiff evaluate` on `topodiff csp` output: DiffCSP match rate and RMSE against the CSP input."""
import json
from pathlib import Path

import ase.io
import pytest
from pymatgen.core import Structure
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


def _references(tmp_path, n: int):
    path = _first_rows(tmp_path, n)
    ds = load_dataset(path)
    return path, [ds.structure(i) for i in range(len(ds))]


def _fake_csp_dir(tmp_path, frames) -> Path:
    """A directory laid out as `topodiff csp` writes it; ``frames``: ``(index, sample, Structure)``."""
    out = tmp_path / "csp"
    out.mkdir()
    atoms = []
    for index, sample, s in frames:
        a = AseAtomsAdaptor.get_atoms(s)
        a.info.update(index=index, sample=sample)
        atoms.append(a)
    ase.io.write(out / "structures.extxyz", atoms, format="extxyz")
    (out / "metadata.json").write_text(json.dumps({"num_compositions": 1 + max(f[0] for f in frames)}))
    return out


def _moved(s, dx: float):
    out = s.copy()
    out.translate_sites([0], [dx, 0.0, 0.0])
    return out


def test_a_prediction_with_another_composition_is_an_input_error(tmp_path):
    ref_csv, refs = _references(tmp_path, 4)
    frames = [(i, 0, s.copy()) for i, s in enumerate(refs)]
    frames.append((2, 1, refs[2].copy().replace_species({refs[2][0].specie: "Xe"})))
    with pytest.raises(TopodiffInputError, match="composition"):
        evaluate_path(_fake_csp_dir(tmp_path, frames), reference=[ref_csv], screen=False, progress=False)


def test_multi_sample_match_takes_the_best_sample(tmp_path):
    ref_csv, refs = _references(tmp_path, 6)
    frames = [f for i, s in enumerate(refs) for f in ((i, 0, _moved(s, 0.05)), (i, 1, s.copy()))]
    summary, rows = evaluate_path(_fake_csp_dir(tmp_path, frames), reference=[ref_csv], screen=False, progress=False)
    assert summary["csp_num_compositions"] == 6 and summary["csp_samples_per_composition"] == 2
    assert summary["csp_match_rate"] == 1.0 and summary["csp_rmse"] == pytest.approx(0.0, abs=1e-6)
    assert all(r["csp_rms"] is not None for r in rows)
    assert max(r["csp_rms"] for r in rows[::2]) > 0.005                  # the moved samples are not exact


def test_relaxed_match_rate_scores_what_relaxation_returns(tmp_path):
    """`evaluate --relax` on CSP output scores the relaxed crystals too; a failed relaxation keeps its
    prediction. The stand-in relaxer returns the reference for rows 0-2 and fails on the others."""
    from topodiff.evaluation.relax import RelaxResult

    ref_csv, refs = _references(tmp_path, 6)
    wrong = [Structure(s.lattice, s.species, [[k / len(s), 0.0, 0.0] for k in range(len(s))])
             for s in refs]  # every atom on one line: no match
    frames = [(i, 0, s) for i, s in enumerate(wrong[:4])] + [(4, 0, refs[4].copy()), (5, 0, refs[5].copy())]

    def relax(structs, **_):
        return [RelaxResult(structure=refs[i].copy()) if i < 3 else RelaxResult(structure=None, error="failed")
                for i in range(len(structs))]

    summary, _ = evaluate_path(_fake_csp_dir(tmp_path, frames), reference=[ref_csv], relax=True, relax_fn=relax,
                               screen=False, judge=False, progress=False)
    before, after = summary["csp_match_rate"], summary["csp_relaxed_match_rate"]
    assert after == pytest.approx(before + 3 / 6) and summary["csp_relaxed_rmse"] == pytest.approx(0.0, abs=1e-6)
    assert before == pytest.approx(2 / 6)      # the two exact rows


def test_csp_then_evaluate_end_to_end(tmp_path, capsys):
    ref_csv = _first_rows(tmp_path, 8)
    assert main(["csp", str(ref_csv), "--out", str(tmp_path / "out"), "--steps", "30", "--samples", "1"]) in (0, None)
    table = capsys.readouterr().out        # the summary a person reads: one row per prediction, with its symmetry
    assert "first 8 of 8" in table and table.count("/atom") == 1
    ds = load_dataset(ref_csv)
    formulas = {ds.structure(i).composition.reduced_formula for i in range(len(ds))}
    assert all(f in table for f in formulas)
    assert main(["evaluate", str(tmp_path / "out"), "--reference", str(ref_csv), "--no-screen", "--json"]) in (0, None)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["csp_num_compositions"] == 8 and summary["csp_samples_per_composition"] == 1
    # without --checkpoint, csp uses the Materials Project CSP model (perov5-csp only knows perovskites)
    assert Path(json.loads((tmp_path / "out" / "metadata.json").read_text())["checkpoint"]).name == "mp20-csp.ckpt"
    assert 0.0 <= summary["csp_match_rate"] <= 1.0
    # a reference that is not the CSP input is an input error (exit 2), not a silent wrong number
    assert main(["evaluate", str(tmp_path / "out"), "--reference", str(_first_rows(tmp_path, 3)), "--no-screen"]) == 2
    assert "error:" in capsys.readouterr().err

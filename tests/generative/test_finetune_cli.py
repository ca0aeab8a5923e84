"""``topodiff finetune`` end to end on a tiny synthetic dataset, and its input errors (exit 2)."""
import dataclasses

import numpy as np
import pytest
import torch

from generative.helpers import make_batch
from topodiff.cli import main
from topodiff.generative.checkpoint import load_generator, save_generator
from topodiff.generative.model import CrystalDiffusion


def _write_csv(path, gaps) -> None:
    """Cubic ABO3 perovskites (cif column) with a ``band_gap`` column (eV; NaN = unlabelled)."""
    from pymatgen.core import Lattice, Structure

    rows = ["cif,band_gap"]
    pairs = [("Sr", "Ti"), ("Ba", "Ti"), ("Ca", "Zr"), ("Sr", "Zr"), ("Ba", "Sn"), ("Ca", "Ti")]
    for i, gap in enumerate(gaps):
        a, b = pairs[i % len(pairs)]
        s = Structure(Lattice.cubic(3.9 + 0.05 * i), [a, b, "O", "O", "O"],
                      [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
        cif = s.to(fmt="cif").replace('"', "'")
        rows.append(f'"{cif}",{"" if np.isnan(gap) else gap}')
    path.write_text("\n".join(rows) + "\n")


@pytest.fixture
def base_ckpt(tiny_model, tmp_path):
    b = make_batch((5, 5, 5))
    b.species = torch.tensor([38, 22, 8, 8, 8, 56, 22, 8, 8, 8, 20, 40, 8, 8, 8])
    tiny_model.fit_statistics(b.num_atoms.numpy(), b.lattice.numpy(), b.species.numpy())
    tiny_model.cfg.min_distance = 0.0  # untrained weights: do not spend the test re-sampling
    return save_generator(tiny_model, {}, tmp_path / "base.ckpt")


@pytest.fixture
def data_csv(tmp_path):
    path = tmp_path / "data.csv"
    _write_csv(path, [0.0, 1.8, float("nan"), 3.1, float("nan"), 0.0])
    return path


def test_finetune_then_generate(base_ckpt, data_csv, tmp_path, capsys):
    out = tmp_path / "ft.ckpt"
    assert main(["finetune", "--checkpoint", str(base_ckpt), "--data", str(data_csv), "--property", "band_gap",
                 "--out", str(out), "--steps", "3", "--batch-size", "4", "--seed", "1"]) == 0
    model, config = load_generator(out)
    assert model.cfg.conditions == ["band_gap"] and model.cfg.adapter_conditions == ["band_gap"]
    recipe = torch.load(out, weights_only=False)["recipe"]
    assert recipe["properties"] == ["band_gap"] and recipe["steps"] == 3 and recipe["labelled_rows"] == {"band_gap": 4}
    assert recipe["command"].startswith("topodiff finetune") and config["finetune"]["data"] == str(data_csv)
    base, _ = load_generator(base_ckpt)
    base_state = base.state_dict()
    for k, v in model.state_dict().items():      # adapters only: the base weights are untouched
        if not k.startswith("adapters.") and k in dict(base.named_parameters()):
            assert torch.equal(v, base_state[k]), k
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(out), "--condition", "band_gap=1.0", "--num", "2", "--steps", "3",
                 "--out", str(tmp_path / "gen")]) == 0
    assert (tmp_path / "gen" / "structures.extxyz").is_file()
    # the default guidance of the fine-tuned checkpoint makes the new condition matter
    assert main(["generate", "--checkpoint", str(out), "--condition", "band_gap=3.0", "--num", "2", "--steps", "3",
                 "--out", str(tmp_path / "gen3")]) == 0
    assert (tmp_path / "gen" / "structures.extxyz").read_text() != (tmp_path / "gen3" / "structures.extxyz").read_text()


def test_finetune_train_base_moves_base_weights(base_ckpt, data_csv, tmp_path):
    out = tmp_path / "ft_all.ckpt"
    assert main(["finetune", "--checkpoint", str(base_ckpt), "--data", str(data_csv), "--property", "band_gap",
                 "--out", str(out), "--steps", "2", "--batch-size", "3", "--train-base"]) == 0
    model, _ = load_generator(out)
    base, _ = load_generator(base_ckpt)
    assert not torch.equal(model.time_embedding.mlp[0].weight, base.time_embedding.mlp[0].weight)


def _expect_input_error(argv, capsys) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    return err[0]


def test_finetune_input_errors(base_ckpt, data_csv, tiny_cfg, tmp_path, capsys):
    common = ["finetune", "--checkpoint", str(base_ckpt), "--out", str(tmp_path / "x.ckpt")]
    assert "unknown property" in _expect_input_error(common + ["--data", str(data_csv), "--property", "gapp"], capsys)
    assert "not found" in _expect_input_error(common + ["--data", str(tmp_path / "none.csv"), "--property", "band_gap"], capsys)
    assert "steps" in _expect_input_error(common + ["--data", str(data_csv), "--property", "band_gap", "--steps", "0"], capsys)
    # no labelled rows: an all-NaN column, and a property with no column at all
    empty = tmp_path / "empty.csv"
    _write_csv(empty, [float("nan")] * 3)
    assert "no labelled rows" in _expect_input_error(common + ["--data", str(empty), "--property", "band_gap"], capsys)
    assert "no labelled rows" in _expect_input_error(common + ["--data", str(data_csv), "--property", "space_group"], capsys)
    # the base model already has the property
    cond = CrystalDiffusion(dataclasses.replace(tiny_cfg, conditions=["band_gap"]))
    has = save_generator(cond, {}, tmp_path / "has.ckpt")
    assert "already conditioned" in _expect_input_error(
        ["finetune", "--checkpoint", str(has), "--data", str(data_csv), "--property", "band_gap",
         "--out", str(tmp_path / "y.ckpt")], capsys)
    assert not (tmp_path / "x.ckpt").exists() and not (tmp_path / "y.ckpt").exists()


def test_finetune_is_reproducible_and_leaves_no_run_directory(base_ckpt, data_csv, tmp_path, capsys):
    """Same seed → bit-identical weights (the Lightning loop reseeds each step); the temporary run
    directory beside --out is removed; --json keeps stdout to one object."""
    import json

    states = []
    for name in ("a.ckpt", "b.ckpt"):
        argv = ["finetune", "--checkpoint", str(base_ckpt), "--data", str(data_csv), "--property", "band_gap",
                "--out", str(tmp_path / name), "--steps", "4", "--batch-size", "3", "--seed", "5", "--json"]
        assert main(argv) == 0
        out = capsys.readouterr().out.strip().splitlines()
        assert len(out) == 1 and json.loads(out[0])["steps"] == 4
        states.append(load_generator(tmp_path / name)[0].state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    base = load_generator(base_ckpt)[0].state_dict()
    assert any(not torch.equal(states[0][k], base[k]) for k in base)       # the adapters (or null branch) moved
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

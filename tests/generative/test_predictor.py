"""PropertyPredictor: symmetries, training on a tiny labelled set, save/load, metrics and the CLI."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from generative.helpers import make_batch, random_rotation, within_crystal_permutation
from topodiff.cli import main
from topodiff.errors import TopodiffInputError
from topodiff.generative.batch import CrystalBatch
from topodiff.generative.predictor import (PredictorConfig, PropertyPredictor, classification_metrics,
                                           class_weights, load_predictor, predict_batch, predictor_loss,
                                           save_predictor)

TINY_PREDICTOR = dict(hidden=32, layers=2, heads=2, pair_dim=16, num_freqs=4, num_rbf=8, use_descriptors=False)


@pytest.fixture
def predictor() -> PropertyPredictor:
    torch.manual_seed(0)
    return PropertyPredictor(PredictorConfig(**TINY_PREDICTOR)).eval()


def _outputs(model: PropertyPredictor, frac, lattice, species, num_atoms) -> torch.Tensor:
    t = torch.full((num_atoms.shape[0],), 0.3)
    out = model(frac, lattice, species, num_atoms, t)
    return torch.cat([out["logits"], out["gap"][:, None]], -1)


def test_invariant_to_rotation_translation_permutation(predictor):
    b = make_batch()
    ref = _outputs(predictor, b.frac, b.lattice, b.species, b.num_atoms)
    rot = random_rotation(3, torch.Generator().manual_seed(1))
    torch.testing.assert_close(_outputs(predictor, b.frac, b.lattice @ rot.transpose(1, 2), b.species, b.num_atoms),
                               ref, atol=1e-4, rtol=1e-4)
    shift = torch.rand(3, 3, generator=torch.Generator().manual_seed(2))
    moved = torch.remainder(b.frac + shift[b.batch_index], 1.0)
    torch.testing.assert_close(_outputs(predictor, moved, b.lattice, b.species, b.num_atoms), ref, atol=1e-4, rtol=1e-4)
    perm = within_crystal_permutation(b.num_atoms, torch.Generator().manual_seed(3))
    torch.testing.assert_close(_outputs(predictor, b.frac[perm], b.lattice, b.species[perm], b.num_atoms), ref,
                               atol=1e-4, rtol=1e-4)


def labelled_batch(n: int = 16, seed: int = 0) -> CrystalBatch:
    """Synthetic crystals whose label is a function of the species (class = Z mod 4, gap = class / 2 eV),
    with a few NaN labels per task."""
    g = torch.Generator().manual_seed(seed)
    num_atoms = torch.randint(2, 5, (n,), generator=g)
    b = make_batch(tuple(num_atoms.tolist()), seed)
    z = torch.randint(0, 4, (n,), generator=g)
    b.species = (10 + z)[b.batch_index]
    tc, gap = z.float(), z.float() / 2
    tc[0], gap[1] = float("nan"), float("nan")
    b.conditions = {"topo_class": tc, "band_gap": gap}
    return b


def test_training_lowers_loss(predictor):
    batch = labelled_batch()
    predictor.train()
    opt = torch.optim.Adam(predictor.parameters(), lr=3e-3)
    w = class_weights(np.bincount(batch.conditions["topo_class"][1:].long().numpy(), minlength=4))
    losses = []
    for _ in range(40):
        out = predictor_loss(predictor, batch, w, torch.Generator().manual_seed(0))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert all(np.isfinite(losses)) and losses[-1] < 0.5 * losses[0]


def test_save_load_roundtrip_and_bad_files(predictor, tmp_path):
    b = make_batch()
    path = save_predictor(predictor, tmp_path / "p.predictor.ckpt", {"note": "x"})
    loaded = load_predictor(path)
    p0, g0 = predict_batch(predictor, b)
    p1, g1 = predict_batch(loaded, b)
    torch.testing.assert_close(p1, p0)
    torch.testing.assert_close(g1, g0)
    assert loaded.recipe == {"note": "x"} and loaded.cfg == predictor.cfg
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(TopodiffInputError, match="cannot read predictor"):
        load_predictor(tmp_path / "bad.ckpt")
    with pytest.raises(TopodiffInputError, match="predictor not found"):
        load_predictor(tmp_path / "missing.ckpt")


def test_classification_metrics_and_weights():
    m = classification_metrics(np.array([0, 0, 0, 1, 3]), np.array([0, 0, 1, 1, 0]))
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["recall"] == {"trivial_insulator": pytest.approx(2 / 3), "strong_ti": 1.0, "weak_ti": None, "metal": 0.0}
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert m["confusion_matrix"][0] == [2, 1, 0, 0] and np.sum(m["confusion_matrix"]) == 5
    w = class_weights(np.array([90.0, 10.0, 0.0, 0.0]), max_weight=100)
    assert w.tolist() == pytest.approx([100 / 180, 100 / 20, 0.0, 0.0])


def test_predict_cli(predictor, tmp_path, capsys):
    import json

    from ase import Atoms
    from ase.io import write

    ckpt = save_predictor(predictor, tmp_path / "p.predictor.ckpt")
    write(tmp_path / "s.extxyz", [Atoms("NaCl", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]], cell=4.0 * np.eye(3),
                                        pbc=True)], format="extxyz")
    assert main(["predict", str(tmp_path / "s.extxyz"), "--predictor", str(ckpt), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["structures"][0]
    assert row["formula"] == "NaCl" and sum(row["probabilities"].values()) == pytest.approx(1.0) and row["gap"] >= 0


@pytest.mark.parametrize("argv", [
    ["predict", "/nonexistent/dir"],
    ["predict", "{path}", "--predictor", "no-such-predictor"],
    ["predictor", "train", "--train", "/nonexistent.csv", "--val", "/nonexistent.csv", "--out", "{tmp}/p.ckpt"],
    ["predictor", "train", "--train", "x.csv", "--val", "x.csv", "--out", "{tmp}/p.ckpt", "--steps", "0"],
])
def test_cli_bad_input_exits_2(argv, tmp_path, capsys):
    (tmp_path / "a.cif").write_text("data_x\n")
    argv = [a.format(path=tmp_path, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


def test_train_cli_end_to_end(tmp_path, capsys):
    """`predictor train` on a tiny labelled CSV writes a loadable checkpoint and reports metrics with baselines."""
    import json

    import pandas as pd
    from pymatgen.core import Lattice, Structure

    rows = []
    for i in range(12):
        a, (el, cls, gap) = 4.0 + 0.05 * i, [("Na", "metal", 0.0), ("Mg", "trivial_insulator", 1.5)][i % 2]
        s = Structure(Lattice.cubic(a), [el, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        rows.append({"material_id": f"x-{i}", "cif": s.to(fmt="cif"), "topo_class": cls, "gap": gap})
    pd.DataFrame(rows[:8]).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame(rows[8:]).to_csv(tmp_path / "val.csv", index=False)
    out = tmp_path / "p.predictor.ckpt"
    assert main(["predictor", "train", "--train", str(tmp_path / "train.csv"), "--val", str(tmp_path / "val.csv"),
                 "--out", str(out), "--steps", "3", "--batch-size", "4", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["topo_class"]["n"] == 4 and metrics["baseline"]["accuracy"] == pytest.approx(0.5)
    assert metrics["gap_mae_eV"] >= 0 and load_predictor(out).recipe["metrics"]["steps"] == 3

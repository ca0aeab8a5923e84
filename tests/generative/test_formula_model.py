"""The formula model: token layout, the exact rules its masks enforce, learning a conditional
distribution from a CSV, safe files, and its use by ``generate`` (``--formulas``)."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from pymatgen.core import Element, Lattice, Structure

from helpers import run_cli
from topodiff.errors import TopodiffInputError
from topodiff.generative.checkpoint import save_generator
from topodiff.generative.formula_model import (END, FormulaConfig, FormulaModel, electronegativity_rank,
                                               encode_formulas, load_formula_model, save_formula_model)
from topodiff.generative import formula_system
from topodiff.generative.formula_sampling import sample_formulas
from topodiff.generative.formula_system import candidate_counts, num_candidates
from topodiff.generative.formula_training import train_formula_model
from topodiff.generative.formula_source import choose_formula_model
from topodiff.generative.generate import generate_to_dir

TINY = {"hidden": 32, "layers": 1, "dropout": 0.0, "max_atoms": 12}


def _model(**overrides) -> FormulaModel:
    torch.manual_seed(0)
    model = FormulaModel(FormulaConfig(**{**TINY, "conditions": ["catalogue_class"], **overrides}))
    model.rank.copy_(electronegativity_rank(model.cfg.max_z))
    return model.eval()


def _z(symbols: str) -> list[int]:
    return [Element(s).Z for s in symbols.split()]


def test_rank_is_a_permutation_with_cations_first():
    rank = electronegativity_rank(100)
    assert sorted(rank[1:].tolist()) == list(range(1, 101))
    cs, ba, cu, o, f = (int(rank[Element(s).Z]) for s in ("Cs", "Ba", "Cu", "O", "F"))
    assert cs < ba < cu < o < f


def test_encoding_of_ba2cu4o7():
    cfg = FormulaConfig(**{**TINY, "max_atoms": 13})
    tokens = encode_formulas([np.array(_z("O Cu Ba O O Cu O Cu O Ba O Cu O"))], cfg, electronegativity_rank(100))
    ba, cu, o = _z("Ba Cu O")
    assert tokens[0].tolist() == [cfg.size_token(13), cfg.element_token(ba), cfg.count_token(2),
                                  cfg.element_token(cu), cfg.count_token(4), cfg.element_token(o), cfg.count_token(7),
                                  END]
    with pytest.raises(TopodiffInputError, match="outside the formula model's range"):
        encode_formulas([np.ones(14, dtype=int)], cfg, electronegativity_rank(100))


@pytest.mark.parametrize("seed", [0, 1])
def test_untrained_draws_are_well_formed(seed):
    """Whatever the network says, every formula has N atoms, distinct elements in the model's order."""
    model = _model()
    n = torch.tensor([1, 2, 3, 5, 8, 12] * 20)
    cells = sample_formulas(model, n, generator=torch.Generator().manual_seed(seed), temperature=3.0)
    rank = model.rank.numpy()
    for zs, size in zip(cells, n.tolist()):
        assert len(zs) == size
        runs = [z for i, z in enumerate(zs) if i == 0 or zs[i - 1] != z]
        assert len(runs) == len(set(runs)) and list(rank[runs]) == sorted(rank[runs])


def test_masks_make_element_sets_and_counts_exact():
    model = _model()
    gen = torch.Generator().manual_seed(0)
    system = torch.zeros(101, dtype=torch.bool)
    system[_z("Bi Se Te")] = True
    cells = sample_formulas(model, torch.tensor([3, 5, 9, 12] * 10), system=system, generator=gen)
    assert all(set(zs.tolist()) == set(_z("Bi Se Te")) for zs in cells)
    cells = sample_formulas(model, torch.tensor([4, 7, 12] * 10), num_elements=torch.tensor([4, 2, 5] * 10),
                            generator=gen)
    assert [len(set(zs.tolist())) for zs in cells] == [4, 2, 5] * 10
    usable = torch.zeros(101, dtype=torch.bool)
    usable[_z("Na Cl Bi Se O")] = True
    cells = sample_formulas(model, torch.tensor([1, 4, 12] * 20), elements=usable, temperature=3.0, generator=gen)
    assert set(np.concatenate(cells).tolist()) <= set(_z("Na Cl Bi Se O"))
    cells = sample_formulas(model, torch.tensor([5] * 20), elements=usable, num_elements=torch.tensor([5] * 20),
                            generator=gen)
    assert all(sorted(set(zs.tolist())) == sorted(_z("Na Cl Bi Se O")) for zs in cells)
    with pytest.raises(TopodiffInputError, match="between 1 and N"):
        sample_formulas(model, torch.tensor([2]), num_elements=torch.tensor([3]))
    with pytest.raises(TopodiffInputError, match="never saw"):
        sample_formulas(model, torch.tensor([3]), system=system, elements=usable)


def test_candidate_counts_enumerate_every_composition_once():
    counts = candidate_counts(3, 1, 20)
    assert counts.shape == (math.comb(20, 3), 3) and num_candidates(3, 20) == counts.shape[0]
    assert counts.min() >= 1 and counts.sum(1).max() == 20 and len({tuple(r) for r in counts.tolist()}) == len(counts)
    assert sorted(map(tuple, candidate_counts(2, 4, 4).tolist())) == [(1, 3), (2, 2), (3, 1)]


@torch.no_grad()
def test_sequence_log_probs_agree_with_token_by_token_stepping():
    """Teacher forcing over a batch gives the same log-probability as feeding one token at a time."""
    model = _model()
    z = np.array(_z("Bi Se"))
    counts = np.array([[2, 3], [1, 1], [4, 6]])
    tokens = formula_system._tokens(model, z, counts)
    context, null = model.context({"catalogue_class": torch.tensor([1.0])}, 1), model.context(None, 1)
    fast = formula_system.sequence_log_probs(model, tokens, context, null, 2.0, 1.5)
    for row, want in zip(tokens, fast):
        total, hc, hu = 0.0, None, None
        for t in range(len(row) - 1):
            lc, hc = model(row[None, t:t + 1], context, hc)
            lu, hu = model(row[None, t:t + 1], null, hu)
            logits = (lu + 2.0 * (lc - lu))[0, 0].double() / 1.5
            total += float(torch.log_softmax(logits, -1)[row[t + 1]])
        assert abs(total - float(want)) < 1e-6


def _csv(path, rows) -> str:
    records = []
    for i, (formula, species, cls) in enumerate(rows):
        frac = (np.arange(len(species))[:, None] / len(species) + np.random.default_rng(i).random(3) * 0.05) % 1
        s = Structure(Lattice.cubic(6.0 + i % 3), species, frac)
        records.append({"material_id": f"x-{i}", "cif": s.to(fmt="cif"), "catalogue_class": cls,
                        "band_gap": 1.0, "space_group_number": 1})
    pd.DataFrame(records).to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Trained on NaCl (trivial), KBr (ti) and Bi2Se3 (ti), 30 rows each."""
    tmp = tmp_path_factory.mktemp("formula")
    rows = [("NaCl", ["Na", "Cl"], "trivial"), ("KBr", ["K", "Br"], "ti"),
            ("Bi2Se3", ["Bi", "Bi", "Se", "Se", "Se"], "ti")] * 30
    train = _csv(tmp / "train.csv", rows)
    model, metrics = train_formula_model(train, train, tmp / "m.formula.ckpt", steps=300, batch_size=32,
                                         eval_every=50, patience=100, config=FormulaConfig(
                                             **TINY, conditions=["catalogue_class"]), progress=False)
    return model, metrics, tmp


def test_training_learns_the_conditional_formula(trained):
    model, metrics, _ = trained
    gen = torch.Generator().manual_seed(0)
    na, k = _z("Na K")
    for cls, want in ((0.0, na), (1.0, k)):   # catalogue classes: trivial = 0, ti = 1
        cells = sample_formulas(model, torch.full((50,), 2), {"catalogue_class": torch.full((50,), cls)},
                                generator=gen)
        assert np.mean([want in zs for zs in cells]) >= 0.9
    cells = sample_formulas(model, torch.full((50,), 5), generator=gen)
    assert np.mean([sorted(zs.tolist()) == sorted(_z("Bi Bi Se Se Se")) for zs in cells]) >= 0.9
    assert metrics["val_nll_per_formula"] < metrics["val_nll_unconditional"]
    assert model.size_counts[2] == 60 and model.size_counts[5] == 30


def test_a_chemical_system_draws_its_size_and_counts_from_the_posterior(trained, monkeypatch):
    """Under chemical_system=Bi-Se the posterior gives Bi2Se3 (N = 5, the only Bi-Se cell trained on);
    drawing N from the histogram first (2 or 5 atoms) and masking gives BiSe about two times in three."""
    model = trained[0]
    system = torch.zeros(101, dtype=torch.bool)
    system[_z("Bi Se")] = True
    bi2se3 = sorted(_z("Bi Bi Se Se Se"))

    def share() -> float:
        cells = sample_formulas(model, torch.zeros(90, dtype=torch.long), system=system,
                                generator=torch.Generator().manual_seed(1))
        assert all(set(zs.tolist()) == set(_z("Bi Se")) for zs in cells)
        return float(np.mean([sorted(zs.tolist()) == bi2se3 for zs in cells]))

    assert share() >= 0.9
    monkeypatch.setattr("topodiff.generative.formula_sampling.MAX_SEQUENCES", 0)   # force the masked draw
    assert 0.1 <= share() <= 0.6
    monkeypatch.undo()
    cells = sample_formulas(model, torch.full((20,), 10), system=system, generator=torch.Generator().manual_seed(2))
    assert all(len(zs) == 10 and set(zs.tolist()) == set(_z("Bi Se")) for zs in cells)
    with pytest.raises(TopodiffInputError, match="1-12"):
        sample_formulas(model, torch.full((2,), 13), system=system)


def test_file_round_trip_and_bad_files(trained, tmp_path):
    model, _, tmp = trained
    loaded = load_formula_model(tmp / "m.formula.ckpt")
    assert loaded.recipe["metrics"]["best_step"] >= 50 and torch.equal(loaded.rank, model.rank)
    n = torch.full((20,), 5)
    a = sample_formulas(model, n, generator=torch.Generator().manual_seed(3))
    b = sample_formulas(loaded, n, generator=torch.Generator().manual_seed(3))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    other = tmp_path / "other.ckpt"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(TopodiffInputError, match="not a topodiff formula model"):
        load_formula_model(other)
    with pytest.raises(TopodiffInputError, match="formula model not found"):
        load_formula_model(tmp_path / "missing.formula.ckpt")


def test_generate_uses_the_companion_formula_model(trained, tiny_cfg, tmp_path):
    """``auto`` takes ``X.formula.ckpt`` beside ``X.ckpt``: every crystal then has a formula the model
    draws (here only NaCl, KBr, Bi2Se3), and ``network`` or templates leave the choice to the network."""
    from ase.io import read

    from generative.helpers import conditioned_model

    model, _, tmp = trained
    gen_model = conditioned_model(tiny_cfg, min_distance=0.0)
    ckpt = save_generator(gen_model, {}, tmp_path / "g.ckpt")
    save_formula_model(model, tmp_path / "g.formula.ckpt")
    meta = generate_to_dir(tmp_path / "out", num=6, checkpoint=str(ckpt), steps=2, seed=0,
                           conditions={"catalogue_class": "ti"})
    assert meta["formulas"] == str(tmp_path / "g.formula.ckpt")
    formulas = {a.get_chemical_formula() for a in read(tmp_path / "out" / "structures.extxyz", index=":")}
    assert formulas <= {"ClNa", "BrK", "Bi2Se3"}
    assert choose_formula_model("network", str(ckpt), {}, None, 5) is None
    assert choose_formula_model("auto", str(ckpt), {}, "a library", 5) is None
    assert choose_formula_model("auto", str(ckpt), {"topo_class": 1.0}, None, 5) is None
    assert choose_formula_model("auto", str(ckpt), {}, None, 13) is None
    with pytest.raises(TopodiffInputError, match="not trained with topo_class"):
        choose_formula_model(str(tmp_path / "g.formula.ckpt"), str(ckpt), {"topo_class": 1.0}, None, 5)
    with pytest.raises(TopodiffInputError, match="exceed its 12"):
        choose_formula_model(str(tmp_path / "g.formula.ckpt"), str(ckpt), {}, None, 13)


def test_formula_cli(trained, tmp_path, capsys):
    _, _, tmp = trained
    out = tmp_path / "f.txt"
    code, _, _ = run_cli(capsys, "formula", "sample", "--model", str(tmp / "m.formula.ckpt"), "--num", "5",
                         "--condition", "num_atoms=5", "--out", str(out))
    assert code == 0 and out.read_text().split() == ["Bi2Se3"] * 5
    code, _, err = run_cli(capsys, "formula", "sample", "--model", str(tmp / "m.formula.ckpt"), "--out", str(out),
                           "--condition", "band_gap=1")
    assert code == 2 and err.strip().splitlines() == [
        "error: this checkpoint was not trained with condition 'band_gap' (it knows: catalogue_class)"]
    code, out_text, _ = run_cli(capsys, "formula", "train", "--train", str(tmp / "train.csv"), "--val",
                                str(tmp / "train.csv"), "--out", str(tmp_path / "t.formula.ckpt"), "--steps", "3",
                                "--conditions", "catalogue_class", "--json")
    assert code == 0 and json.loads(out_text)["steps_run"] == 3


def test_shipped_formula_model_beside_default():
    """The shipped ``default.formula.ckpt``: a companion of ``default``, not listed as a generator, and
    its formulas are mostly charge-balanced (measured 83-89 % on 500; bar well below that)."""
    from pymatgen.core import Composition

    from topodiff.evaluation.metrics import composition_valid
    from topodiff.generative.checkpoint import list_checkpoints, resolve_checkpoint

    assert "default.formula" not in {c["name"] for c in list_checkpoints()}
    with pytest.raises(TopodiffInputError, match="checkpoint not found"):
        resolve_checkpoint("default.formula")
    model = load_formula_model("default")
    assert model.recipe["metrics"]["val_nll_per_formula"] < model.recipe["metrics"]["val_nll_unconditional"]
    gen = torch.Generator().manual_seed(0)
    sizes = torch.multinomial(model.size_counts.float(), 200, replacement=True, generator=gen)
    cells = sample_formulas(model, sizes, generator=gen)
    valid = [composition_valid(Composition({Element.from_Z(int(z)): int((zs == z).sum()) for z in set(zs.tolist())}))
             for zs in cells]
    assert np.mean(valid) >= 0.75


def test_generate_refuses_a_bad_formulas_choice_before_writing(tmp_path, capsys):
    code, _, err = run_cli(capsys, "generate", "--out", str(tmp_path / "g"), "--num", "2", "--formulas", "bogus")
    assert code == 2 and err.strip().splitlines() == [
        "error: formula model not found: bogus (not a file; shipped: default)"]
    assert not (tmp_path / "g").exists()


def test_formulas_on_matching_templates(trained, tiny_cfg, tmp_path):
    """An explicit formula model with templates: each formula goes on the library crystal with its atom
    counts (NaCl → the rocksalt LiF cell, with its own elements), refined from the template; a formula
    without one (Bi2Se3) is drawn from noise. Elements the generator never saw (K, Br) are not drawn."""
    from ase.io import read

    from generative.helpers import conditioned_model
    from topodiff.generative.templates import TemplateLibrary

    model, _, tmp = trained
    save_formula_model(model, tmp_path / "f.formula.ckpt")
    ckpt = save_generator(conditioned_model(tiny_cfg, min_distance=0.0), {}, tmp_path / "g.ckpt")
    rocksalt = Structure(Lattice([[0, 2.8, 2.8], [2.8, 0, 2.8], [2.8, 2.8, 0]]), ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    lib = TemplateLibrary.from_structures([("LiF", rocksalt)])
    for n, template, formula in ((2, "LiF", "ClNa"), (5, "none", "Bi2Se3")):
        meta = generate_to_dir(tmp_path / f"out{n}", num=4, checkpoint=str(ckpt), steps=3, seed=0,
                               conditions={"num_atoms": n}, formulas=str(tmp_path / "f.formula.ckpt"), templates=lib)
        frames = read(tmp_path / f"out{n}" / "structures.extxyz", index=":")
        assert {(a.info["template"], a.get_chemical_formula()) for a in frames} == {(template, formula)}
        assert meta["num_templated"] == (4 if n == 2 else 0)
    for a in read(tmp_path / "out2" / "structures.extxyz", index=":"):   # refined from t0 = 0.3: still rocksalt
        d = a.get_scaled_positions()[1] - a.get_scaled_positions()[0]
        assert np.allclose(np.abs(d - np.round(d)), 0.5, atol=0.15)

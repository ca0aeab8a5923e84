"""Property conditioning: null condition, classifier-free guidance, exact chemical systems, validation."""
import numpy as np
import pytest
import torch

from generative.helpers import conditioned_model, make_batch
from topodiff.cli import main
from topodiff.errors import TopodiffInputError
from topodiff.generative.checkpoint import load_generator, save_generator
from topodiff.generative.embeddings import TOPO_CLASSES, ConditionEmbedding
from topodiff.generative.conditions import parse_conditions
from topodiff.generative.generate import element_sets_match, generate_to_dir

CONDS = ["topo_class", "catalogue_class", "band_gap", "chemical_system", "space_group", "num_atoms"]


def _same(a, b, atol=0.0):
    torch.testing.assert_close(a.frac, b.frac, rtol=0, atol=atol)
    torch.testing.assert_close(a.lattice, b.lattice, rtol=0, atol=atol)
    assert torch.equal(a.species, b.species)


def test_null_condition_and_guidance_zero_equal_unconditional(tiny_cfg):
    model = conditioned_model(tiny_cfg)
    n = torch.tensor([5, 4, 3])
    run = lambda **kw: model.sample(n, steps=3, generator=torch.Generator().manual_seed(3), **kw)  # noqa: E731
    uncond = run()
    null = {"topo_class": torch.full((3,), float("nan")), "band_gap": torch.full((3,), float("nan"))}
    _same(run(conditions=null), uncond)
    _same(run(conditions=null, guidance=2.0), uncond, atol=1e-5)  # two branches in one batch: rounding only
    real = {"topo_class": torch.full((3,), 1.0), "band_gap": torch.full((3,), 0.3)}
    _same(run(conditions=real, guidance=0.0), uncond)
    # and the condition does change the crystals when guided
    cond = run(conditions=real, guidance=2.0)
    assert not torch.allclose(cond.frac, uncond.frac)


def test_guidance_mixes_branches_in_one_batch(tiny_cfg):
    model = conditioned_model(tiny_cfg)
    b = make_batch((5, 4))
    t = torch.full((2,), 0.5)
    cond = {"topo_class": torch.tensor([1.0, 1.0])}
    args = (b.frac, model.lattice_diffusion.to_latent(b.lattice, model.lattice_scale(b.num_atoms)),
            b.species, b.num_atoms, t, torch.zeros(2))
    c1 = model.guided_denoise(*args, cond, 1.0)
    c0 = model.guided_denoise(*args, cond, 0.0)
    c3 = model.guided_denoise(*args, cond, 3.0)
    torch.testing.assert_close(c3[0], c0[0] + 3.0 * (c1[0] - c0[0]), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(c3[1], c0[1] + 3.0 * (c1[1] - c0[1]), atol=1e-4, rtol=1e-4)


def test_per_condition_dropout_uses_each_null():
    emb = ConditionEmbedding(["topo_class", "band_gap"], 8)
    for p in emb.null.values():
        torch.nn.init.normal_(p)
    cond = {"topo_class": torch.tensor([1.0, 2.0]), "band_gap": torch.tensor([0.5, 0.5])}
    only_gap = emb({"band_gap": cond["band_gap"]}, 2)
    dropped = emb(cond, 2, {"topo_class": torch.tensor([True, True]), "band_gap": torch.tensor([False, False])})
    torch.testing.assert_close(dropped, only_gap)


@pytest.mark.parametrize("reveal", ["random", "confident"])
def test_species_mask_gives_exact_chemical_system(tiny_cfg, reveal):
    model = conditioned_model(tiny_cfg, species_reveal=reveal)
    n = torch.tensor([5, 5, 4, 3])
    mask = torch.zeros(4, tiny_cfg.max_z + 1, dtype=torch.bool)
    mask[:, [83, 34]] = True
    out = model.sample(n, steps=3, species_mask=mask, generator=torch.Generator().manual_seed(0))
    assert set(out.species.tolist()) <= {83, 34} and bool((out.species > 0).all())
    with pytest.raises(TopodiffInputError, match="never seen"):
        bad = torch.zeros_like(mask)
        bad[:, 79] = True
        model.sample(n, steps=1, species_mask=bad)


def test_generate_chemical_system_exact_sets(tiny_cfg, tmp_path):
    model = conditioned_model(tiny_cfg, min_distance=0.0)
    ckpt = save_generator(model, {}, tmp_path / "c.ckpt")
    meta = generate_to_dir(tmp_path / "g", num=6, checkpoint=str(ckpt), steps=3,
                           conditions={"chemical_system": "Bi-Se", "topo_class": "strong_ti"})
    assert meta["guidance"] == model.cfg.default_guidance
    from ase.io import read

    frames = read(tmp_path / "g" / "structures.extxyz", index=":")
    exact = [set(f.get_chemical_symbols()) == {"Bi", "Se"} for f in frames]
    # crystals that still miss an element after the retries are counted, never silently kept
    assert sum(not e for e in exact) == meta["below_min_distance"]
    assert sum(exact) >= 5


def test_element_sets_match():
    from topodiff.generative.batch import CrystalBatch

    b = CrystalBatch(torch.zeros(5, 3), torch.eye(3).expand(2, 3, 3) * 4, torch.tensor([83, 34, 34, 83, 83]),
                     torch.tensor([3, 2]))
    system = torch.zeros(101)
    system[[83, 34]] = 1
    assert element_sets_match(b, system).tolist() == [True, False]


@pytest.mark.parametrize("raw, message", [
    ({"topo_class": "axion"}, "topo_class must be one of"),
    ({"space_group": "0"}, "1-230"),
    ({"space_group": "231"}, "1-230"),
    ({"space_group": "12.5"}, "1-230"),
    ({"chemical_system": "Bi-Xx"}, "element symbols"),
    ({"chemical_system": "Bi-"}, "element symbols"),
    ({"band_gap": "-0.1"}, "≥ 0"),
    ({"band_gap": "wide"}, "expects a number"),
    ({"colour": "red"}, "unknown condition"),
    ({"topo_class": "weak_ti"}, "too few"),
    ({"catalogue_class": "ti"}, "too few"),
    ({"catalogue_class": "strong_ti"}, "one of trivial, ti, tci, semimetal"),
])
def test_condition_values_are_validated(raw, message):
    with pytest.raises(TopodiffInputError, match=message):
        parse_conditions(raw, CONDS, {"topo_class": np.array([10.0, 10.0, 0.0, 10.0]),
                                      "catalogue_class": np.array([10.0, 0.0, 10.0, 10.0])})


def test_untrained_condition_is_rejected_but_sampler_conditions_are_not():
    with pytest.raises(TopodiffInputError, match="not trained with"):
        parse_conditions({"band_gap": "0.3"}, [])
    out = parse_conditions({"chemical_system": "Bi-Se", "num_atoms": "5"}, [])
    assert out["num_atoms"] == 5 and sum(out["chemical_system"]) == 2


@pytest.mark.parametrize("cond", ["topo_class=axion", "space_group=300", "chemical_system=Qq-Se", "band_gap=-1",
                                  "spin=up", "topo_class"])
def test_cli_bad_conditions_exit_2(tiny_cfg, tmp_path, capsys, cond):
    model = conditioned_model(tiny_cfg, min_distance=0.0)
    ckpt = save_generator(model, {}, tmp_path / "c.ckpt")
    code = main(["generate", "--checkpoint", str(ckpt), "--out", str(tmp_path / "o"), "--num", "2",
                 "--condition", cond])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "Traceback" not in err[0]


def test_dataset_conditions_include_chemical_system_and_topo_class(tmp_path):
    from pymatgen.core import Lattice, Structure

    from topodiff.crystal.dataset import load_dataset
    from topodiff.crystal.io import write_csv
    from topodiff.generative.data import CrystalTorchDataset, batch_from_dataset

    s1 = Structure(Lattice.cubic(4.0), ["Bi", "Se"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    s2 = Structure(Lattice.cubic(5.0), ["Na", "Cl", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0]])
    path = write_csv([s1, s2], tmp_path / "l.csv", {"topo_class": ["strong_ti", "metal"], "gap": [0.2, 0.0]})
    ds = CrystalTorchDataset(load_dataset(path))
    batch = batch_from_dataset(ds, np.array([1, 0]))
    chem = batch.conditions["chemical_system"]
    assert chem.shape == (2, 101)
    assert torch.nonzero(chem[0]).flatten().tolist() == [11, 17]
    assert torch.nonzero(chem[1]).flatten().tolist() == [34, 83]
    assert batch.conditions["topo_class"].tolist() == [TOPO_CLASSES.index("metal"), TOPO_CLASSES.index("strong_ti")]
    assert batch.conditions["band_gap"].tolist() == pytest.approx([0.0, 0.2])


def test_class_counts_survive_save_and_old_checkpoints_load(tiny_cfg, tmp_path):
    model = conditioned_model(tiny_cfg)
    ckpt = save_generator(model, {}, tmp_path / "c.ckpt")
    loaded, _ = load_generator(str(ckpt))
    assert loaded.topo_class_counts.tolist() == [10.0, 10.0, 0.0, 10.0]
    old = torch.load(ckpt, weights_only=False)
    del old["state_dict"]["topo_class_counts"]
    torch.save(old, tmp_path / "old.ckpt")
    loaded, _ = load_generator(str(tmp_path / "old.ckpt"))
    assert float(loaded.topo_class_counts.sum()) == 0.0


def test_prescreen_keeps_the_best_scored_crystals_in_order(tiny_cfg, tmp_path):
    from ase.io import read

    from topodiff.generative.prescreen import prescreen_scores
    from topodiff.generative.predictor import PredictorConfig, PropertyPredictor, save_predictor

    model = conditioned_model(tiny_cfg, min_distance=0.0)
    ckpt = save_generator(model, {}, tmp_path / "c.ckpt")
    torch.manual_seed(1)
    pred = save_predictor(PropertyPredictor(PredictorConfig(hidden=16, layers=1, heads=2, pair_dim=8,
                                                            use_descriptors=False)).eval(),
                          tmp_path / "p.predictor.ckpt")
    cond = {"band_gap": "0.6"}
    # the same seed and total count give the same 6 crystals; prescreen keeps the best 3 of them
    generate_to_dir(tmp_path / "all", num=6, checkpoint=str(ckpt), steps=2, conditions=cond)
    meta = generate_to_dir(tmp_path / "best", num=3, checkpoint=str(ckpt), steps=2, conditions=cond,
                           prescreen=2, predictor=str(pred))
    assert meta["prescreen"] == 2 and meta["num_structures"] == 3
    every = read(tmp_path / "all" / "structures.extxyz", index=":")
    best = read(tmp_path / "best" / "structures.extxyz", index=":")
    frames = [(a.get_scaled_positions(), np.asarray(a.cell), a.numbers) for a in every]
    scores = prescreen_scores(frames, {"band_gap": 0.6}, str(pred))
    keep = np.sort(np.argsort(-scores, kind="stable")[:3])
    for i, a in zip(keep, best):
        np.testing.assert_allclose(a.get_scaled_positions(), every[i].get_scaled_positions(), atol=1e-5)
    with pytest.raises(TopodiffInputError, match="prescreen"):
        generate_to_dir(tmp_path / "x", num=2, checkpoint=str(ckpt), steps=1, prescreen=2, predictor=str(pred))


"""Checkpoint loading (shipped and Lightning layouts), export and listing."""
import pytest
import torch

from generative.helpers import make_batch
from topodiff.errors import TopodiffInputError
from topodiff.generative.checkpoint import export_generator, list_checkpoints, load_generator, save_generator


def _trained_stats(model):
    b = make_batch((5, 4))
    model.fit_statistics(b.num_atoms.numpy(), b.lattice.numpy(), b.species.numpy())
    return model


def test_roundtrip_shipped_format(tiny_model, tmp_path):
    _trained_stats(tiny_model)
    path = save_generator(tiny_model, {"note": "x"}, tmp_path / "m.ckpt", {"description": "tiny"})
    model, config = load_generator(path)
    assert config["note"] == "x" and config["model"]["hidden"] == tiny_model.cfg.hidden
    for k, v in tiny_model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v)


def test_lightning_layout_prefers_ema(tiny_model, tmp_path):
    _trained_stats(tiny_model)
    state = tiny_model.state_dict()
    ema = {k: (v + 1.0 if v.is_floating_point() else v) for k, v in state.items()}
    ckpt = {"state_dict": {"model." + k: v for k, v in state.items()}, "ema_state_dict": ema,
            "global_step": 3, "hyper_parameters": {"config": {"model": tiny_model.cfg.to_dict(), "output_dir": "x"}}}
    torch.save(ckpt, tmp_path / "step3.ckpt")
    model, config = load_generator(tmp_path / "step3.ckpt")
    k = "denoiser.species_head.weight"
    torch.testing.assert_close(model.state_dict()[k], ema[k])
    del ckpt["ema_state_dict"]
    torch.save(ckpt, tmp_path / "noema.ckpt")
    model, _ = load_generator(tmp_path / "noema.ckpt")
    torch.testing.assert_close(model.state_dict()[k], state[k])
    out = export_generator(tmp_path / "step3.ckpt", tmp_path / "ship" / "small.ckpt", {"description": "exported"})
    assert out.exists() and (tmp_path / "ship" / "small.json").exists()
    small, _ = load_generator(out)
    torch.testing.assert_close(small.state_dict()[k], ema[k])


def test_bad_checkpoints_are_input_errors(tmp_path, tiny_model):
    with pytest.raises(TopodiffInputError, match="not found"):
        load_generator(tmp_path / "missing.ckpt")
    with pytest.raises(TopodiffInputError):
        load_generator("no-such-shipped-name")
    (tmp_path / "junk.ckpt").write_bytes(b"\x00garbage")
    with pytest.raises(TopodiffInputError):
        load_generator(tmp_path / "junk.ckpt")
    torch.save({"hello": 1}, tmp_path / "other.ckpt")
    with pytest.raises(TopodiffInputError):
        load_generator(tmp_path / "other.ckpt")
    cfg = tiny_model.cfg.to_dict()
    cfg["hidden"] = 48  # weights do not fit this config
    torch.save({"format": "topodiff-generator/1", "config": {"model": cfg}, "state_dict": tiny_model.state_dict()},
               tmp_path / "mismatch.ckpt")
    with pytest.raises(TopodiffInputError, match="does not fit"):
        load_generator(tmp_path / "mismatch.ckpt")


def test_list_checkpoints_rows():
    rows = {row["name"]: row for row in list_checkpoints()}
    for row in rows.values():
        assert set(row) == {"name", "path", "size_bytes", "recipe", "formula_model"} and row["size_bytes"] > 0
    assert rows["default"]["formula_model"].endswith("default.formula.ckpt") and rows["perov5"]["formula_model"] is None


@pytest.mark.parametrize("name", ["perov5", "perov5-csp"])
def test_shipped_checkpoint_samples_perovskites(name):
    """The shipped weights load by name, are small, and produce 5-atom cells of sensible volume."""
    from topodiff.generative.checkpoint import CHECKPOINT_DIR

    assert (CHECKPOINT_DIR / f"{name}.ckpt").exists(), f"shipped checkpoint {name} is missing from the package"
    assert (CHECKPOINT_DIR / f"{name}.ckpt").stat().st_size < 8e6
    model, config = load_generator(name)
    n = model.sample_num_atoms(6, torch.Generator().manual_seed(0))
    assert bool((n == 5).all())  # Perov-5: every training cell has 5 atoms
    out = model.sample(n, species=torch.tensor([38, 22, 8, 8, 8] * 6), steps=20, generator=torch.Generator().manual_seed(0))
    vol = torch.linalg.det(out.lattice).abs() / 5
    assert bool(torch.isfinite(out.frac).all()) and bool(((vol > 5) & (vol < 40)).all())


def test_update_sampler_defaults_in_place(tiny_model, tmp_path):
    import json

    from topodiff.generative.checkpoint import main, update_sampler_defaults

    _trained_stats(tiny_model)
    path = export_generator(save_generator(tiny_model, {"model": {}}, tmp_path / "src.ckpt"), tmp_path / "m.ckpt",
                            {"description": "tiny"})
    update_sampler_defaults(path, {"corrector_noise_scale": 0.5, "sample_steps": 7}, "chosen on validation")
    main([str(path), "--set", "predictor_noise_scale=0.7", "--set", "step_lr=1e-5", "--note", "second"])
    model, config = load_generator(path)
    assert model.cfg.corrector_noise_scale == 0.5 and model.cfg.predictor_noise_scale == 0.7
    assert model.cfg.sample_steps == 7 and config["model"]["sample_steps"] == 7 and model.cfg.step_lr == 1e-5
    for k, v in tiny_model.state_dict().items():      # weights untouched
        torch.testing.assert_close(model.state_dict()[k], v)
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["sampler_update"] == "chosen on validation; second" and side["description"] == "tiny"
    assert side["config"]["model"]["predictor_noise_scale"] == 0.7
    with pytest.raises(TopodiffInputError, match="not sampler"):
        update_sampler_defaults(path, {"hidden": 3}, "x")
    with pytest.raises(TopodiffInputError, match="non-negative float"):
        update_sampler_defaults(path, {"step_lr": "fast"}, "x")
    with pytest.raises(TopodiffInputError, match="non-negative float"):
        update_sampler_defaults(path, {"corrector_noise_scale": -1.0}, "x")
    with pytest.raises(SystemExit):
        main([str(path), "--set", "step_lr=1e-5"])          # no --note

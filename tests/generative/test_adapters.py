"""Zero-init condition adapters: exact identity at initialisation, null embedding, training, round trip."""
import dataclasses

import pytest
import torch

from generative.helpers import make_batch
from topodiff.errors import TopodiffInputError
from topodiff.generative.adapters import adapter_parameters, add_adapters
from topodiff.generative.checkpoint import load_generator, save_generator
from topodiff.generative.config import ModelConfig
from topodiff.generative.model import CrystalDiffusion

NAN = float("nan")


def _inputs(seed: int = 0, num_atoms=(5, 3, 4)):
    """Random noisy state of a small batch: ``(frac, y_t, species, num_atoms, t, t_species)``."""
    b = make_batch(num_atoms, seed)
    g = torch.Generator().manual_seed(seed + 1)
    t = torch.rand(len(num_atoms), generator=g)
    species = b.species.clone()
    species[::3] = 0                                   # some masked species
    return b.frac, torch.randn(len(num_atoms), 3, 3, generator=g), species, b.num_atoms, t, t * 0.5


def _fit(model: CrystalDiffusion) -> None:
    b = make_batch((5, 3, 4))
    model.fit_statistics(b.num_atoms.numpy(), b.lattice.numpy(), b.species.numpy())


def _equal(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def _train(model: CrystalDiffusion, names: list[str], steps: int = 5, lr: float = 0.05) -> None:
    """A few adapter-only steps on labelled batches (one NaN label per batch)."""
    opt = torch.optim.Adam(adapter_parameters(model, names), lr=lr)
    model.train()
    for step in range(steps):
        b = make_batch((5, 3, 4), seed=step)
        b.conditions = {"band_gap": torch.tensor([0.0, 2.5, NAN]), "topo_class": torch.tensor([0.0, 3.0, 1.0])}
        loss = model.loss(b, torch.Generator().manual_seed(step))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


@pytest.fixture
def base(tiny_cfg) -> CrystalDiffusion:
    """A tiny base model conditioned on topo_class, with non-trivial (random) weights everywhere."""
    torch.manual_seed(0)
    model = CrystalDiffusion(dataclasses.replace(tiny_cfg, conditions=["topo_class"]))
    with torch.no_grad():  # the zero-init layers of a fresh model would hide differences
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    _fit(model)
    return model.eval()


@pytest.mark.parametrize("conditions", [
    None,
    {"band_gap": torch.tensor([0.0, 1.5, NAN])},
    {"band_gap": torch.tensor([3.0, 0.2, 1.0]), "topo_class": torch.tensor([0.0, 1.0, 3.0])},
])
@pytest.mark.parametrize("drop", [None, torch.tensor([False, True, False])])
def test_adapters_start_as_exact_identity(base, conditions, drop):
    model = add_adapters(base, ["band_gap"]).eval()
    assert model.cfg.conditions == ["topo_class", "band_gap"] and model.cfg.adapter_conditions == ["band_gap"]
    x = _inputs()
    base_cond = {k: v for k, v in (conditions or {}).items() if k != "band_gap"}
    with torch.no_grad():
        ref = base.denoise(*x, base_cond, drop)
        out = model.denoise(*x, conditions, drop)
        assert _equal(out, ref)  # bit-identical coord score, lattice latent and species logits
        # classifier-free guidance path of the sampler: both branches still equal the base's null branch
        guided = model.guided_denoise(*x, {"band_gap": torch.ones(3)}, guidance=2.0)
        assert _equal(guided, base.guided_denoise(*x, {"topo_class": torch.full((3,), NAN)}, guidance=2.0))


def test_old_checkpoints_load_without_adapters(base, tmp_path):
    path = save_generator(base, {}, tmp_path / "old.ckpt")
    obj = torch.load(path, weights_only=False)
    obj["config"]["model"].pop("adapter_conditions")   # a checkpoint written before adapters existed
    torch.save(obj, path)
    loaded, _ = load_generator(path)
    assert loaded.adapters is None and loaded.cfg.adapter_conditions == []
    assert not any(k.startswith("adapters.") for k in loaded.state_dict())
    x = _inputs(3)
    cond = {"topo_class": torch.tensor([1.0, NAN, 2.0])}
    with torch.no_grad():
        assert _equal(loaded.denoise(*x, cond), base.denoise(*x, cond))


def test_training_moves_only_adapters_and_conditioning_matters(base):
    model = add_adapters(base, ["band_gap"])
    frozen = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("adapters.")}
    _train(model, ["band_gap"])
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in frozen.items() if "counts" not in k and k != "stats_seen"
               and k != "volume_per_atom" and k != "species_allowed")
    x = _inputs(5)
    gap = lambda v: {"band_gap": torch.full((3,), v)}  # noqa: E731
    with torch.no_grad():
        ref = base.denoise(*x)
        lo, hi = model.denoise(*x, gap(0.0)), model.denoise(*x, gap(2.5))
        assert not torch.allclose(lo[0], hi[0]) and not torch.allclose(lo[1], hi[1])  # the label now matters
        assert not torch.allclose(lo[0], ref[0])
        # what holds for the null branch: it is the base model plus a value-independent offset (trained on
        # NaN and dropped rows), identical for a NaN label, a missing key and drop=True
        null_nan = model.denoise(*x, gap(NAN))
        assert _equal(null_nan, model.denoise(*x))
        assert _equal(null_nan, model.denoise(*x, gap(2.5), torch.ones(3, dtype=torch.bool)))
        assert _equal(null_nan, model.denoise(*x, gap(0.0), {"band_gap": torch.ones(3, dtype=torch.bool)}))


def test_nan_label_uses_null_embedding(base):
    model = add_adapters(base, ["band_gap"])
    _train(model, ["band_gap"])
    x = _inputs(7)
    with torch.no_grad():
        mixed = model.denoise(*x, {"band_gap": torch.tensor([1.0, NAN, 2.0])})
        null = model.denoise(*x, {"band_gap": torch.full((3,), NAN)})
        lab = model.denoise(*x, {"band_gap": torch.tensor([1.0, 0.0, 2.0])})
    n0 = 5  # atoms of crystal 0; crystal 1 has atoms 5..7
    torch.testing.assert_close(mixed[1][1], null[1][1], rtol=0, atol=1e-6)       # NaN row = null row
    torch.testing.assert_close(mixed[0][n0:n0 + 3], null[0][n0:n0 + 3], rtol=0, atol=1e-6)
    torch.testing.assert_close(mixed[1][0], lab[1][0], rtol=0, atol=1e-6)       # labelled rows unaffected
    assert not torch.allclose(mixed[1][0], null[1][0])


def test_save_load_roundtrip_and_second_adapter(base, tmp_path):
    model = add_adapters(base, ["band_gap"])
    _train(model, ["band_gap"])
    path = save_generator(model, {"note": 1}, tmp_path / "ft.ckpt")
    loaded, config = load_generator(path)
    assert loaded.cfg.conditions == ["topo_class", "band_gap"] and loaded.cfg.adapter_conditions == ["band_gap"]
    x = _inputs(2)
    cond = {"band_gap": torch.tensor([0.5, NAN, 2.0]), "topo_class": torch.tensor([0.0, 1.0, NAN])}
    with torch.no_grad():
        ref = model.eval().denoise(*x, cond)
        assert _equal(loaded.denoise(*x, cond), ref)
        # adapters on top of a fine-tuned model start as the identity too
        twice = add_adapters(loaded, ["space_group"]).eval()
        assert _equal(twice.denoise(*x, {**cond, "space_group": torch.tensor([221.0, 1.0, NAN])}), ref)


def test_bad_adapter_requests(base):
    with pytest.raises(TopodiffInputError):
        add_adapters(base, ["topo_class"])          # the base already has it
    with pytest.raises(TopodiffInputError):
        add_adapters(base, ["bandgap"])
    with pytest.raises(TopodiffInputError):
        add_adapters(base, [])
    with pytest.raises(TopodiffInputError):
        ModelConfig.from_dict({"conditions": [], "adapter_conditions": ["band_gap"]})

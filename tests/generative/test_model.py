"""Training objective, statistics and sampler of CrystalDiffusion."""
import pytest
import torch

from generative.helpers import make_batch
from topodiff.errors import TopodiffInputError
from topodiff.generative.model import CrystalDiffusion


def test_loss_components_finite(tiny_model, batch):
    out = tiny_model.loss(batch, torch.Generator().manual_seed(0))
    assert set(out) == {"loss", "loss_coord", "loss_lattice", "loss_species"}
    assert all(torch.isfinite(v) for v in out.values())
    out["loss"].backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in tiny_model.parameters())


def test_train_on_one_batch(tiny_model, batch):
    """Overfitting one fixed batch (fixed noise) drives the loss down."""
    opt = torch.optim.Adam(tiny_model.parameters(), lr=3e-3)
    first = None
    for step in range(60):
        out = tiny_model.loss(batch, torch.Generator().manual_seed(0))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = first if first is not None else float(out["loss"].detach())
    assert float(out["loss"].detach()) < 0.5 * first


def test_statistics_from_training_batches(tiny_model):
    b = make_batch((5, 5, 3))
    tiny_model.train()
    tiny_model.loss(b)
    assert tiny_model.num_atoms_counts[5].item() == 2 and tiny_model.num_atoms_counts[3].item() == 1
    vpa = (torch.linalg.det(b.lattice).abs() / b.num_atoms).mean().item()
    assert tiny_model.volume_per_atom.item() == pytest.approx(vpa, rel=1e-5)
    assert set(torch.nonzero(tiny_model.species_allowed).flatten().tolist()) == set(b.species.tolist())
    n = tiny_model.sample_num_atoms(2000, torch.Generator().manual_seed(0))
    assert set(n.tolist()) <= {3, 5} and (n == 5).float().mean().item() == pytest.approx(2 / 3, abs=0.05)


def test_sample_de_novo_and_csp(tiny_model):
    b = make_batch((5, 4))
    tiny_model.fit_statistics(b.num_atoms.numpy(), b.lattice.numpy(), b.species.numpy())
    out = tiny_model.sample(torch.tensor([5, 4, 3]), steps=4, generator=torch.Generator().manual_seed(0))
    assert out.frac.shape == (12, 3) and out.lattice.shape == (3, 3, 3)
    assert bool(((out.frac >= 0) & (out.frac < 1)).all())
    assert bool(tiny_model.species_allowed[out.species].all())      # only species seen in training
    species = b.species
    csp, traj = tiny_model.sample(b.num_atoms, species=species, steps=3, return_trajectory=True)
    assert torch.equal(csp.species, species) and len(traj) == 4
    with pytest.raises(TopodiffInputError):
        tiny_model.sample(torch.tensor([2]), species=torch.tensor([1, 2, 3]))
    with pytest.raises(TopodiffInputError):
        tiny_model.sample(torch.tensor([2]), conditions={"band_gap": torch.tensor([1.0])})


def test_sample_resample_structure_and_temperature(tiny_model):
    """De novo with a second (CSP-branch) structure pass keeps the composition of the joint pass."""
    b = make_batch((5, 4))
    tiny_model.fit_statistics(b.num_atoms.numpy(), b.lattice.numpy(), b.species.numpy())
    tiny_model.cfg.species_temperature = 1.1
    tiny_model.cfg.resample_structure = True
    tiny_model.cfg.lattice_eta = 0.0  # deterministic (DDIM) lattice steps
    out, traj = tiny_model.sample(torch.tensor([5, 4]), steps=3, generator=torch.Generator().manual_seed(0),
                                  return_trajectory=True)
    assert len(traj) == 7 and torch.equal(traj[2].species, out.species)  # 3 joint steps, then 3 CSP steps + final
    assert bool(tiny_model.species_allowed[out.species].all())
    assert bool(((out.frac >= 0) & (out.frac < 1)).all()) and bool(torch.isfinite(out.lattice).all())
    tiny_model.cfg.species_temperature = 0.0
    with pytest.raises(TopodiffInputError):
        tiny_model.sample(torch.tensor([5]), steps=2)


def test_sampling_is_seeded(tiny_model):
    b = make_batch((5, 4))
    tiny_model.fit_statistics(b.num_atoms.numpy(), b.lattice.numpy(), b.species.numpy())
    a = tiny_model.sample(torch.tensor([5, 4]), steps=3, generator=torch.Generator().manual_seed(7))
    c = tiny_model.sample(torch.tensor([5, 4]), steps=3, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(a.frac, c.frac)
    torch.testing.assert_close(a.lattice, c.lattice)


def test_conditioning_with_guidance(tiny_cfg):
    tiny_cfg.conditions = ["band_gap", "topo_class"]
    model = CrystalDiffusion(tiny_cfg)
    b = make_batch((5, 4))
    b.conditions = {"band_gap": torch.tensor([0.5, float("nan")]), "topo_class": torch.tensor([1.0, 3.0])}
    assert torch.isfinite(model.loss(b)["loss"])
    model.fit_statistics(b.num_atoms.numpy(), b.lattice.numpy(), b.species.numpy())
    out = model.sample(torch.tensor([5, 4]), conditions={"band_gap": torch.tensor([0.5, 0.5])}, guidance=1.0, steps=2)
    assert out.frac.shape == (9, 3)


def test_canonical_orientation_keeps_metric_and_handedness():
    from generative.helpers import random_rotation
    from topodiff.generative.sampler import canonical_orientation

    lat = torch.tensor([[4.0, 0.1, 0.0], [0.3, 3.8, 0.2], [0.1, -0.2, 4.2]]).expand(4, 3, 3).clone()
    lat[3] = lat[3] * torch.tensor([[1.0], [1.0], [-1.0]])          # a left-handed cell
    rot = random_rotation(4, torch.Generator().manual_seed(0))
    out = canonical_orientation(lat @ rot.transpose(1, 2))
    torch.testing.assert_close(out @ out.transpose(1, 2), lat @ lat.transpose(1, 2), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(torch.linalg.det(out), torch.linalg.det(lat), atol=1e-3, rtol=1e-5)
    assert torch.allclose(out.triu(1), torch.zeros(()), atol=1e-6)     # a ∥ x, b in the xy plane

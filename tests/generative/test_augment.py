"""Lattice-basis relabelling augmentation: same crystal, another setting, one lattice orientation."""
import numpy as np
import torch
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from generative.helpers import make_batch
from topodiff.generative.augment import proper_signed_permutations, random_basis_change
from topodiff.generative.batch import CrystalBatch
from topodiff.generative.config import ModelConfig
from topodiff.generative.model import CrystalDiffusion


def test_the_24_proper_signed_permutations():
    p = proper_signed_permutations()
    assert p.shape == (24, 3, 3)
    assert torch.allclose(torch.linalg.det(p), torch.ones(24, dtype=p.dtype))
    assert torch.allclose(p @ p.transpose(1, 2), torch.eye(3, dtype=p.dtype).expand(24, 3, 3))
    assert len({tuple(m.flatten().tolist()) for m in p}) == 24


def _structures(batch: CrystalBatch) -> list[Structure]:
    return [Structure(Lattice(np.asarray(lat, float)), [int(z) for z in sp], np.asarray(f, float))
            for f, lat, sp in batch.split()]


def test_relabelled_cells_describe_the_same_crystals():
    g = torch.Generator().manual_seed(0)
    lat = torch.tensor([[[4.0, 0.2, 0.1], [0.3, 5.0, 0.0], [0.1, 0.4, 6.0]],
                        [[3.0, 0.0, 0.0], [0.0, 3.5, 0.0], [0.5, 0.0, 4.0]]], dtype=torch.float64)
    frac = torch.rand(5, 3, generator=g, dtype=torch.float64)
    batch = CrystalBatch(frac, lat, torch.tensor([3, 8, 8, 26, 14]), torch.tensor([3, 2]),
                         {"band_gap": torch.tensor([0.1, 0.2])})
    matcher = StructureMatcher(primitive_cell=False, scale=False, attempt_supercell=False)
    seen = set()
    for seed in range(6):
        out = random_basis_change(batch, torch.Generator().manual_seed(seed))
        assert torch.equal(out.species, batch.species) and torch.equal(out.num_atoms, batch.num_atoms)
        assert torch.equal(out.conditions["band_gap"], batch.conditions["band_gap"])
        assert bool(((out.frac >= 0) & (out.frac < 1)).all())
        # one lattice orientation: a ∥ x, b in the xy plane (lower triangular rows)
        assert torch.allclose(torch.triu(out.lattice, 1), torch.zeros_like(out.lattice), atol=1e-12)
        for s0, s1 in zip(_structures(batch), _structures(out)):
            assert np.isclose(s0.volume, s1.volume)
            rms = matcher.get_rms_dist(s0, s1)
            assert rms is not None and rms[0] < 1e-8
        seen.add(tuple(np.round(out.lattice[0].diagonal().numpy(), 6)))
    assert len(seen) > 1  # the labelling of the axes really changes


def test_training_loss_uses_the_augmentation():
    batch = make_batch((4, 3))
    cfg = dict(hidden=16, layers=1, heads=2, pair_dim=8, num_freqs=2, num_rbf=4, max_z=60)
    plain = CrystalDiffusion(ModelConfig(**cfg))
    aug = CrystalDiffusion(ModelConfig(**cfg, augment_basis=True))
    aug.load_state_dict(plain.state_dict())
    plain.train(), aug.train()
    a = plain.loss(batch, torch.Generator().manual_seed(0))["loss"]
    b = aug.loss(batch, torch.Generator().manual_seed(0))["loss"]
    assert torch.isfinite(b) and not torch.isclose(a, b)
    plain.eval(), aug.eval()  # evaluation (validation loss) sees the data as stored
    a = plain.loss(batch, torch.Generator().manual_seed(0))["loss"]
    b = aug.loss(batch, torch.Generator().manual_seed(0))["loss"]
    assert torch.isclose(a, b)

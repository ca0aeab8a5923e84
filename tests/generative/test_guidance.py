"""Sampling guides: repulsion physics (finite differences, pushes atoms apart), classifier guidance, build_guide."""
from __future__ import annotations

import pytest
import torch

from generative.helpers import make_batch
from topodiff.errors import TopodiffInputError
from topodiff.generative.batch import CrystalBatch
from topodiff.generative.generate import min_distances
from topodiff.generative.guidance import PredictorGuide, RepulsionGuide, build_guide, repulsion_energy
from topodiff.generative.predictor import PredictorConfig, PropertyPredictor, save_predictor

TINY_PREDICTOR = dict(hidden=32, layers=2, heads=2, pair_dim=16, num_freqs=4, num_rbf=8, use_descriptors=False)


def close_pair(gap: float = 0.05) -> CrystalBatch:
    """Two atoms ``gap`` (fractional, along a) apart in a 4 Å cube, plus a well-separated 2-atom crystal."""
    frac = torch.tensor([[0.2, 0.3, 0.3], [0.2 + gap, 0.3, 0.3], [0.0, 0.0, 0.0], [0.5, 0.5, 0.5]], dtype=torch.float64)
    lattice = torch.stack([4.0 * torch.eye(3), 4.0 * torch.eye(3)]).double()
    return CrystalBatch(frac, lattice, torch.tensor([8, 8, 11, 17]), torch.tensor([2, 2]))


def test_repulsion_energy_gradient_matches_finite_differences():
    b = make_batch((4, 3), seed=3)
    frac, lat = b.frac.double().requires_grad_(True), (0.6 * b.lattice).double().requires_grad_(True)
    e = repulsion_energy(frac, lat, b.num_atoms, 2.0)
    assert float(e.sum().detach()) > 0
    # central differences against autograd for every coordinate and lattice entry
    assert torch.autograd.gradcheck(lambda f, L: repulsion_energy(f, L, b.num_atoms, 2.0).sum(), (frac, lat),
                                    eps=1e-6, atol=1e-7, rtol=1e-5)


def test_repulsion_pushes_close_atoms_apart_and_ignores_separated_ones():
    b = close_pair(0.05)                                  # 0.2 Å apart
    guide = RepulsionGuide(min_distance=1.0, strength=0.2)
    sigma = torch.full((4,), 0.02, dtype=torch.float64)
    d0 = min_distances(b)
    frac = b.frac.clone()
    for _ in range(5):
        d_score, d_lat = guide(frac, b.lattice, b.species, b.num_atoms, torch.zeros(2), sigma)
        frac = torch.remainder(frac + sigma[:, None] ** 2 * d_score, 1.0)   # a step of size σ² · score
    assert d_lat is None
    d1 = min_distances(b.replace(frac=frac))
    assert float(d1[0]) > float(d0[0]) + 0.3              # pushed apart
    torch.testing.assert_close(frac[2:], b.frac[2:])     # the well-separated crystal does not move
    assert float(d_score[2:].abs().max()) == 0.0
    # inactive early in sampling (σ above sigma_on)
    assert guide(b.frac, b.lattice, b.species, b.num_atoms, torch.ones(2), torch.full((4,), 0.4)) == (None, None)


def test_predictor_guide_raises_target_class_probability():
    torch.manual_seed(0)
    model = PropertyPredictor(PredictorConfig(**TINY_PREDICTOR)).eval()
    b = make_batch((4, 3), seed=1)
    t = torch.full((2,), 0.2)
    guide = PredictorGuide(model, {"topo_class": "strong_ti"}, scale=1.0, lattice_step=0.0)

    def prob(frac):
        with torch.no_grad():
            return torch.softmax(model(frac, b.lattice, b.species, b.num_atoms, t)["logits"], -1)[:, 1]

    frac = b.frac.clone()
    p0 = prob(frac)
    for _ in range(10):
        d_score, d_lat = guide(frac, b.lattice, b.species, b.num_atoms, t, torch.full((7,), 0.1))
        frac = torch.remainder(frac + 0.01 * d_score, 1.0)
    assert d_lat is None and bool((prob(frac) > p0).all())
    # masked atoms: guided with the mask token (p_species_masked > 0) — the result stays finite
    masked = b.species.clone()
    masked[:2] = 0
    d_score, _ = guide(frac, b.lattice, masked, b.num_atoms, t, torch.full((7,), 0.1))
    assert bool(torch.isfinite(d_score).all())


def test_build_guide_off_errors_and_sampling(tiny_model, tmp_path):
    assert build_guide(tiny_model, {}, {}) is None
    with pytest.raises(TopodiffInputError):
        build_guide(tiny_model, {}, {}, repulsion=-1.0)
    with pytest.raises(TopodiffInputError, match="needs a predictor"):
        build_guide(tiny_model, {}, {"topo_class": 1.0}, predictor_scale=1.0)
    with pytest.raises(TopodiffInputError, match="predictor not found"):
        build_guide(tiny_model, {}, {"topo_class": 1.0}, predictor=str(tmp_path / "none.ckpt"), predictor_scale=1.0)
    ckpt = save_predictor(PropertyPredictor(PredictorConfig(**TINY_PREDICTOR)), tmp_path / "p.predictor.ckpt")
    with pytest.raises(TopodiffInputError, match="target"):
        build_guide(tiny_model, {}, {}, predictor=str(ckpt), predictor_scale=1.0)
    guide = build_guide(tiny_model, {}, {"topo_class": 1.0, "band_gap": 0.3}, repulsion=0.1,
                        predictor=str(ckpt), predictor_scale=0.5)
    b = make_batch((4, 3))
    tiny_model.fit_statistics(b.num_atoms.numpy(), b.lattice.numpy(), b.species.numpy())
    out = tiny_model.sample(torch.tensor([4, 3]), steps=3, generator=torch.Generator().manual_seed(0), guide=guide)
    assert out.frac.shape == (7, 3) and bool(torch.isfinite(out.lattice).all())
    csp = tiny_model.sample(b.num_atoms, species=b.species, steps=3, guide=guide)
    assert bool(torch.isfinite(csp.frac).all())


def test_repulsion_energy_sees_all_images_of_a_skewed_cell():
    """A 3 Å cubic crystal in the basis (a, 5a + b, c): the energy equals a brute-force sum over images
    |n| ≤ 8 (the old {−1,0,1}³ window of this cell missed the close pairs and gave 0)."""
    import numpy as np

    skew = np.array([[3.0, 0, 0], [15.0, 3.0, 0], [0, 0, 3.0]])
    frac = np.mod(np.array([[0.0, 0.0, 0.0], [1.2, 1.3, 1.4]]) @ np.linalg.inv(skew), 1.0)
    g = np.arange(-8, 9)
    shifts = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    d_min, oracle = 2.5, 0.0
    for a in range(2):
        for c in range(2):
            r = np.linalg.norm((frac[c] - frac[a] + shifts) @ skew, axis=1)
            r = r[np.any(shifts != 0, 1)] if a == c else r
            oracle += 0.5 * float((np.clip(d_min - r, 0, None) ** 2).sum())
    assert oracle > 0.01
    e = repulsion_energy(torch.tensor(frac), torch.tensor(skew)[None], torch.tensor([2]), d_min)
    assert float(e[0]) == pytest.approx(oracle, rel=1e-10)

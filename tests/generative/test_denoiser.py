"""Symmetries of the periodic transformer denoiser (rotation, translation, permutation)."""
import torch

from generative.helpers import assert_permutation_equivariant, assert_rotation_invariant, assert_translation_invariant
from topodiff.generative.denoiser import PairGeometry


def _fn(model):
    model.eval()
    torch.manual_seed(0)
    ctx = torch.randn(3, model.cfg.hidden)

    def fn(frac, lattice, species, num_atoms):
        with torch.no_grad():
            return model.denoiser(frac, lattice, species, num_atoms, ctx[: num_atoms.shape[0]])
    return fn


def test_rotation_invariance(tiny_model, batch):
    assert_rotation_invariant(_fn(tiny_model), batch.frac, batch.lattice, batch.species, batch.num_atoms)


def test_translation_invariance(tiny_model, batch):
    assert_translation_invariant(_fn(tiny_model), batch.frac, batch.lattice, batch.species, batch.num_atoms)


def test_permutation_equivariance(tiny_model, batch):
    assert_permutation_equivariant(_fn(tiny_model), batch.frac, batch.lattice, batch.species, batch.num_atoms)


def test_crystals_do_not_interact(tiny_model, batch):
    """Changing one crystal leaves the outputs of the others unchanged (attention stays within a crystal)."""
    fn = _fn(tiny_model)
    c0, l0, s0 = fn(batch.frac, batch.lattice, batch.species, batch.num_atoms)
    frac = batch.frac.clone()
    frac[:5] = torch.rand(5, 3)
    c1, l1, s1 = fn(frac, batch.lattice, batch.species, batch.num_atoms)
    torch.testing.assert_close(c1[5:], c0[5:])
    torch.testing.assert_close(l1[1:], l0[1:])
    assert not torch.allclose(c1[:5], c0[:5])


def test_pair_geometry_counts_periodic_neighbours():
    """Simple cubic a = 3 Å, one atom: the radial basis sees the 6 nearest images at 3 Å."""
    geo = PairGeometry(num_freqs=2, num_rbf=61, cutoff=6.0, image_range=1)
    feats = geo(torch.zeros(1, 1, 3), 3.0 * torch.eye(3)[None])
    rbf = feats[0, 0, 0, 12:]
    peak = int(torch.argmax(rbf))
    assert abs(geo.centers[peak].item() - 3.0) < 0.11
    env = 0.5 * (torch.cos(torch.tensor(torch.pi * 3.0 / 6.0)) + 1)
    assert rbf[peak].item() == torch.tensor(6.0 * env.item()).item() or abs(rbf[peak].item() - 6 * env.item()) < 0.05


def test_species_copy_path_weights_the_revealed_composition(tiny_cfg, batch):
    """``species_copy``: zero-initialised (the network is unchanged until trained); its two gates add
    ``a`` to every element revealed in the atom's crystal and ``b`` × that element's atom fraction,
    never counting masked atoms or other crystals."""
    from dataclasses import replace

    from topodiff.generative.model import CrystalDiffusion

    torch.manual_seed(0)
    plain = CrystalDiffusion(tiny_cfg)
    copy = CrystalDiffusion(replace(tiny_cfg, species_copy=True))
    missing, unexpected = copy.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ["denoiser.species_copy.bias", "denoiser.species_copy.weight"] and not unexpected
    species = batch.species.clone()
    species[[1, 6]] = 0                                            # masked atoms
    ctx = torch.randn(3, tiny_cfg.hidden)
    with torch.no_grad():
        before = plain.denoiser(batch.frac, batch.lattice, species, batch.num_atoms, ctx)[2]
        torch.testing.assert_close(copy.denoiser(batch.frac, batch.lattice, species, batch.num_atoms, ctx)[2], before)
        copy.denoiser.species_copy.bias.copy_(torch.tensor([1.0, 2.0]))
        after = copy.denoiser(batch.frac, batch.lattice, species, batch.num_atoms, ctx)[2]
    owner = torch.repeat_interleave(torch.arange(3), batch.num_atoms)
    expected = torch.zeros_like(before)
    for c in range(3):
        atoms = (owner == c) & (species > 0)
        z, k = torch.unique(species[atoms], return_counts=True)
        expected[owner == c, z[:, None]] = 1.0 + 2.0 * (k.float() / int(batch.num_atoms[c]))[:, None]
    torch.testing.assert_close(after - before, expected)


def test_pair_messages_start_silent_then_keep_the_symmetries(tiny_cfg, batch):
    """``pair_messages``: a model with them, loaded from weights without them, computes the same outputs
    (zero-initialised, so ``init_from`` may add them, model.ZERO_INIT_EXTENSIONS); once trained away from
    zero they change the outputs and the denoiser stays rotation / translation / permutation symmetric."""
    from dataclasses import replace

    from topodiff.generative.model import ZERO_INIT_EXTENSIONS, CrystalDiffusion, load_weights

    torch.manual_seed(0)
    plain = CrystalDiffusion(tiny_cfg).eval()
    grown = CrystalDiffusion(replace(tiny_cfg, pair_messages=True)).eval()
    load_weights(grown, plain.state_dict(), may_lack=ZERO_INIT_EXTENSIONS)
    before = _fn(plain)(batch.frac, batch.lattice, batch.species, batch.num_atoms)
    same = _fn(grown)(batch.frac, batch.lattice, batch.species, batch.num_atoms)
    for a, b in zip(before, same):
        torch.testing.assert_close(a, b)
    with torch.no_grad():
        for block in grown.denoiser.blocks:
            torch.nn.init.normal_(block.message.out.weight, std=0.3)
    moved = _fn(grown)(batch.frac, batch.lattice, batch.species, batch.num_atoms)
    assert not torch.allclose(moved[0], before[0], atol=1e-4)
    args = (batch.frac, batch.lattice, batch.species, batch.num_atoms)
    assert_rotation_invariant(_fn(grown), *args)
    assert_translation_invariant(_fn(grown), *args)
    assert_permutation_equivariant(_fn(grown), *args)

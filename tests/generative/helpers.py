"""Reusable assertions for the generator's symmetries (rotation, translation, permutation)."""
from __future__ import annotations

from typing import Callable

import torch

from topodiff.generative.batch import CrystalBatch

Outputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (per-atom coord [N,3], lattice [B,3,3], logits [N,K])
Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], Outputs]  # (frac, lattice, species, num_atoms)


def random_rotation(b: int, generator: torch.Generator | None = None, dtype=torch.float32) -> torch.Tensor:
    """``[b, 3, 3]`` proper rotations (QR of Gaussian matrices, det fixed to +1)."""
    q, r = torch.linalg.qr(torch.randn(b, 3, 3, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]
    q = torch.where(torch.linalg.det(q)[:, None, None] < 0, -q, q)
    return q.to(dtype)


def assert_rotation_invariant(fn: Denoiser, frac, lattice, species, num_atoms, *, atol: float = 1e-4) -> None:
    """Rotating every lattice (rows → rows Rᵀ) leaves per-atom outputs unchanged and rotates the
    lattice output the same way (equivariance of ``S L``)."""
    rot = random_rotation(lattice.shape[0], torch.Generator().manual_seed(1), lattice.dtype)
    c0, l0, s0 = fn(frac, lattice, species, num_atoms)
    c1, l1, s1 = fn(frac, lattice @ rot.transpose(1, 2), species, num_atoms)
    torch.testing.assert_close(c1, c0, atol=atol, rtol=1e-4)
    torch.testing.assert_close(s1, s0, atol=atol, rtol=1e-4)
    torch.testing.assert_close(l1, l0 @ rot.transpose(1, 2), atol=atol, rtol=1e-4)


def assert_translation_invariant(fn: Denoiser, frac, lattice, species, num_atoms, *, atol: float = 1e-4) -> None:
    """A common shift of all atoms of a crystal (different per crystal, wrapped) changes no output."""
    b = lattice.shape[0]
    shift = torch.rand(b, 3, generator=torch.Generator().manual_seed(2), dtype=frac.dtype)
    bi = torch.repeat_interleave(torch.arange(b), num_atoms)
    c0, l0, s0 = fn(frac, lattice, species, num_atoms)
    c1, l1, s1 = fn(torch.remainder(frac + shift[bi], 1.0), lattice, species, num_atoms)
    torch.testing.assert_close(c1, c0, atol=atol, rtol=1e-4)
    torch.testing.assert_close(l1, l0, atol=atol, rtol=1e-4)
    torch.testing.assert_close(s1, s0, atol=atol, rtol=1e-4)


def within_crystal_permutation(num_atoms: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``[N]`` permutation that shuffles atoms inside each crystal (vectorised: sort by crystal, then a random key)."""
    bi = torch.repeat_interleave(torch.arange(num_atoms.shape[0]), num_atoms)
    key = bi.double() + torch.rand(bi.shape[0], generator=generator, dtype=torch.float64) * 0.5
    return torch.argsort(key)


def assert_permutation_equivariant(fn: Denoiser, frac, lattice, species, num_atoms, *, atol: float = 1e-4) -> None:
    """Permuting atoms within crystals permutes per-atom outputs and leaves the lattice output unchanged."""
    perm = within_crystal_permutation(num_atoms, torch.Generator().manual_seed(3))
    c0, l0, s0 = fn(frac, lattice, species, num_atoms)
    c1, l1, s1 = fn(frac[perm], lattice, species[perm], num_atoms)
    torch.testing.assert_close(c1, c0[perm], atol=atol, rtol=1e-4)
    torch.testing.assert_close(s1, s0[perm], atol=atol, rtol=1e-4)
    torch.testing.assert_close(l1, l0, atol=atol, rtol=1e-4)


def make_batch(num_atoms=(5, 3, 4), seed: int = 0) -> CrystalBatch:
    """Random crystals with near-cubic lattices (~4 Å) and random species."""
    g = torch.Generator().manual_seed(seed)
    n = torch.tensor(num_atoms)
    total = int(n.sum())
    lattice = 4.0 * torch.eye(3).expand(len(num_atoms), 3, 3) + 0.4 * torch.randn(len(num_atoms), 3, 3, generator=g)
    return CrystalBatch(torch.rand(total, 3, generator=g), lattice, torch.randint(1, 60, (total,), generator=g), n)


def conditioned_model(tiny_cfg, **overrides):
    """A tiny model with every condition, random null embeddings and fitted statistics (eval mode)."""
    from topodiff.generative.model import CrystalDiffusion

    tiny_cfg.conditions = ["topo_class", "catalogue_class", "band_gap", "chemical_system", "space_group", "num_atoms"]
    tiny_cfg.p_drop_condition = 0.5
    for k, v in overrides.items():
        setattr(tiny_cfg, k, v)
    torch.manual_seed(0)
    model = CrystalDiffusion(tiny_cfg)
    # make the condition embeddings matter (their encoders start random, nulls at zero)
    for p in model.condition_embedding.null.values():
        torch.nn.init.normal_(p, std=0.5)
    b = make_batch((5, 5, 4))
    b.species = torch.tensor([83, 34, 34, 83, 34, 38, 22, 8, 8, 8, 11, 17, 8, 8])
    model.fit_statistics(b.num_atoms.numpy(), b.lattice.numpy(), b.species.numpy())
    model.topo_class_counts.copy_(torch.tensor([10.0, 10.0, 0.0, 10.0]))
    model.eval()
    return model

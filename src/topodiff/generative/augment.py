"""Training-time augmentation by a change of lattice basis (the same crystal, written differently).

A crystal with lattice rows ``L`` and fractional coordinates ``f`` (Cartesian ``x = f L``) is also
described by ``L' = P L`` and ``f' = f P⁻¹ mod 1`` for any unimodular integer ``P``. The denoiser sees
the metric ``L Lᵀ`` and per-axis Fourier features of fractional differences, so it is invariant to
rotations and translations but not to a relabelling of the lattice vectors. Training on randomly
relabelled cells teaches that invariance (the lattice-permutation symmetry that EquiCSP,
Lin et al., ICML 2024, builds into its network), which matters for near-cubic cells such as Perov-5,
where all 24 axis relabellings are equally valid settings.

Only the 24 signed permutations with ``det P = +1`` are drawn: they keep the handedness of the cell.
The relabelled lattice is then rotated to the standard frame (:func:`canonical_orientation`), so the
lattice target keeps one orientation (the lattice loss is not rotation invariant; without this a cubic
cell ``aI`` would become 24 rotated targets ``aP`` whose average is zero) and only the fractional
coordinates see the relabelling.
"""
from __future__ import annotations

import itertools

import torch

from topodiff.generative.batch import CrystalBatch
from topodiff.generative.sampler import canonical_orientation


def proper_signed_permutations() -> torch.Tensor:
    """The 24 signed permutation matrices with determinant +1, ``[24, 3, 3]`` (float64)."""
    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            m = torch.zeros(3, 3, dtype=torch.float64)
            m[torch.arange(3), torch.tensor(perm)] = torch.tensor(signs, dtype=torch.float64)
            if torch.linalg.det(m) > 0:
                mats.append(m)
    return torch.stack(mats)


_PROPER = proper_signed_permutations()


def random_basis_change(batch: CrystalBatch, generator: torch.Generator | None = None) -> CrystalBatch:
    """The same crystals with an independently drawn proper signed permutation of each lattice basis.

    ``lattice' = R P lattice`` and ``frac' = frac Pᵀ mod 1`` (``P⁻¹ = Pᵀ``; ``R`` the rotation to the
    standard frame), so the crystal, its species and properties are unchanged (up to the rotation ``R``).
    Vectorised over crystals and atoms.
    """
    dev = batch.frac.device
    pick = torch.randint(0, _PROPER.shape[0], (batch.num_crystals,), generator=generator, device=dev)
    p = _PROPER.to(device=dev)[pick]
    lattice = canonical_orientation(p.to(batch.lattice.dtype) @ batch.lattice)
    p_atom = p[batch.batch_index].to(batch.frac.dtype)
    frac = torch.remainder(torch.einsum("nk,njk->nj", batch.frac, p_atom), 1.0)
    return CrystalBatch(frac, lattice, batch.species, batch.num_atoms, dict(batch.conditions))

"""Variable-size crystals concatenated into one batch (PyG-style index vector).

Conventions: fractional coordinates in [0, 1) (on the torus), lattice rows are lattice vectors in Å,
species are atomic numbers (0 = masked / absorbing state in the species diffusion).
Coordinates and lattices are always float32 or better, whatever the network precision.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch


@dataclass
class CrystalBatch:
    """A batch of ``B`` crystals with ``N`` atoms in all.

    Attributes
    ----------
    frac : ``[N, 3]`` fractional coordinates in [0, 1).
    lattice : ``[B, 3, 3]`` lattice vectors as rows (Å).
    species : ``[N]`` atomic numbers (long).
    num_atoms : ``[B]`` atoms per crystal (long).
    conditions : property name → ``[B]`` (or ``[B, d]``) tensor, NaN where missing.
    """

    frac: torch.Tensor
    lattice: torch.Tensor
    species: torch.Tensor
    num_atoms: torch.Tensor
    conditions: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def num_crystals(self) -> int:
        return int(self.num_atoms.shape[0])

    @property
    def batch_index(self) -> torch.Tensor:
        """``[N]`` crystal index of every atom."""
        return torch.repeat_interleave(torch.arange(self.num_crystals, device=self.num_atoms.device), self.num_atoms)

    @property
    def offsets(self) -> torch.Tensor:
        """``[B]`` index of each crystal's first atom."""
        return torch.cumsum(self.num_atoms, 0) - self.num_atoms

    def to(self, device: torch.device | str) -> "CrystalBatch":
        return CrystalBatch(self.frac.to(device), self.lattice.to(device), self.species.to(device),
                            self.num_atoms.to(device), {k: v.to(device) for k, v in self.conditions.items()})

    def replace(self, **changes) -> "CrystalBatch":
        return replace(self, **changes)

    @classmethod
    def from_arrays(cls, frac: np.ndarray, lattice: np.ndarray, species: np.ndarray, num_atoms: np.ndarray,
                    conditions: dict[str, np.ndarray] | None = None, dtype: torch.dtype = torch.float32) -> "CrystalBatch":
        """Build from numpy arrays (``frac`` wrapped into [0, 1))."""
        return cls(torch.as_tensor(np.mod(frac, 1.0), dtype=dtype), torch.as_tensor(lattice, dtype=dtype),
                   torch.as_tensor(species, dtype=torch.long), torch.as_tensor(num_atoms, dtype=torch.long),
                   {k: torch.as_tensor(v, dtype=dtype) for k, v in (conditions or {}).items()})

    def split(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per crystal ``(frac [n,3], lattice [3,3], species [n])`` as numpy arrays."""
        out = []
        f, L, z = self.frac.detach().cpu().numpy(), self.lattice.detach().cpu().numpy(), self.species.cpu().numpy()
        start = 0
        for b, n in enumerate(self.num_atoms.tolist()):
            out.append((f[start:start + n], L[b], z[start:start + n]))
            start += n
        return out

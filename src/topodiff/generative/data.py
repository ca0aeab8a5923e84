"""Torch dataset over :class:`topodiff.crystal.dataset.CrystalArrays` and the batch collate function.

Conditions come from the property columns (float, NaN = missing) plus ``num_atoms`` and, for each
categorical label column (``topo_class``, ``catalogue_class``), the index of its class in
:data:`~topodiff.generative.embeddings.CATEGORY_NAMES`.
The model uses only the conditions it was configured with and ignores the rest.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from torch.utils.data import Dataset

from topodiff.generative.batch import CrystalBatch
from topodiff.generative.embeddings import CATEGORY_NAMES, CONDITION_KINDS

#: property columns that feed a condition; for ``band_gap`` a dataset labelled by ``dataset label``
#: should carry the screened gap as ``gap`` and no DFT gap column (the first alias present wins)
CSV_ALIASES = {"band_gap": ("band_gap", "ind_gap", "dir_gap", "gap"), "space_group": ("space_group", "space_group_number")}


class CrystalTorchDataset(Dataset):
    """Item ``i`` = ``(frac [n,3], lattice [3,3], species [n], conditions {name: float})``."""

    def __init__(self, arrays: Any) -> None:
        self.arrays = arrays
        self.frac = np.asarray(arrays.frac, dtype=np.float32)
        self.species = np.asarray(arrays.species, dtype=np.int64)
        self.lattices = np.asarray(arrays.lattices, dtype=np.float32)
        self.num_atoms = np.asarray(arrays.num_atoms, dtype=np.int64)
        self.offsets = np.asarray(arrays.offsets, dtype=np.int64)
        props = {k: np.asarray(v, dtype=np.float64) for k, v in (getattr(arrays, "properties", None) or {}).items()}
        for name, aliases in CSV_ALIASES.items():
            for a in aliases:
                if name not in props and a in props:
                    props[name] = props[a]
        labels = getattr(arrays, "labels", None) or {}
        for name, classes in CATEGORY_NAMES.items():
            if name in labels:
                lut = {c: float(i) for i, c in enumerate(classes)}
                props[name] = np.array([lut.get(v, np.nan) if isinstance(v, str) else np.nan for v in labels[name]])
        props["num_atoms"] = self.num_atoms.astype(np.float64)
        # chemical system: multi-hot over atomic numbers [B, max_z + 1]
        chem = np.zeros((len(self.num_atoms), CONDITION_KINDS["chemical_system"][1]), dtype=np.float32)
        owner = np.repeat(np.arange(len(self.num_atoms)), self.num_atoms)
        n = self.num_atoms
        z = self.species[np.repeat(self.offsets - np.cumsum(n) + n, n) + np.arange(int(n.sum()))]
        chem[owner, np.clip(z, 0, chem.shape[1] - 1)] = 1.0
        props["chemical_system"] = chem
        self.conditions = props

    def __len__(self) -> int:
        return int(self.num_atoms.shape[0])

    def __getitem__(self, i: int):
        o, n = int(self.offsets[i]), int(self.num_atoms[i])
        return (self.frac[o:o + n], self.lattices[i], self.species[o:o + n],
                {k: (float(v[i]) if v.ndim == 1 else v[i]) for k, v in self.conditions.items()})

    def statistics(self) -> dict[str, np.ndarray]:
        """Arrays for :meth:`CrystalDiffusion.fit_statistics`: ``num_atoms``, ``lattices``, ``species``."""
        return {"num_atoms": self.num_atoms, "lattices": self.lattices, "species": self.species}


def collate(items: list) -> CrystalBatch:
    """Concatenate dataset items into a :class:`CrystalBatch` (float32, fractional coords wrapped)."""
    frac = np.concatenate([it[0] for it in items], 0)
    lattice = np.stack([it[1] for it in items], 0)
    species = np.concatenate([it[2] for it in items], 0)
    num_atoms = np.array([len(it[2]) for it in items], dtype=np.int64)
    keys = set.intersection(*(set(it[3]) for it in items)) if items else set()
    conditions = {k: np.stack([np.asarray(it[3][k], dtype=np.float32) for it in items]) for k in sorted(keys)}
    return CrystalBatch.from_arrays(frac, lattice, species, num_atoms, conditions)


def batch_from_dataset(ds: CrystalTorchDataset, index: np.ndarray) -> CrystalBatch:
    """Vectorised collate of rows ``index`` (no per-item Python work beyond the gather)."""
    index = np.asarray(index, dtype=np.int64)
    n = ds.num_atoms[index]
    starts = ds.offsets[index]
    atom_idx = np.repeat(starts - np.cumsum(n) + n, n) + np.arange(int(n.sum()))
    conditions = {k: v[index].astype(np.float32) for k, v in ds.conditions.items()}
    return CrystalBatch.from_arrays(ds.frac[atom_idx], ds.lattices[index], ds.species[atom_idx], n, conditions)

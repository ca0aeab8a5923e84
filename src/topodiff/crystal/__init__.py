"""Crystal data: structure I/O, flat-array dataset cache, splits, synthetic crystals, quality filters."""
from topodiff.crystal.dataset import CrystalArrays, load_dataset
from topodiff.crystal.io import (StructureRecord, read_structure, read_structures, space_group, standardize,
                                 write_cif, write_poscar, write_structures)
from topodiff.crystal.splits import split_indices

__all__ = ["CrystalArrays", "StructureRecord", "load_dataset", "read_structure", "read_structures",
           "space_group", "split_indices", "standardize", "write_cif", "write_poscar", "write_structures"]

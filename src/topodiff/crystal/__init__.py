"""Crystal data: structure I/O, flat-array dataset cache, splits, synthetic crystals, quality filters."""
from topodiff.crystal.dataset import CrystalArrays, load_dataset
from topodiff.crystal.filters import StructureFilter, charge_balanced
from topodiff.crystal.io import (StructureRecord, read_structure, read_structures, space_group, standardize,
                                 write_cif, write_poscar, write_structures)
from topodiff.crystal.splits import split_indices
from topodiff.crystal.synth import synthesize

__all__ = ["CrystalArrays", "StructureFilter", "StructureRecord", "charge_balanced", "load_dataset",
           "read_structure", "read_structures", "space_group", "split_indices", "standardize", "synthesize",
           "write_cif", "write_poscar", "write_structures"]

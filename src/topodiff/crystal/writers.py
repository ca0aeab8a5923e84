"""Writers: extended XYZ, CIF, POSCAR and CDVAE-style CSV, all atomic."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from topodiff.crystal.records import quiet
from topodiff.errors import TopodiffInputError
from topodiff.io_utils import atomic_write, atomic_write_text


def structure_to_atoms(structure: Any, info: dict | None = None) -> Any:
    """A periodic ``ase.Atoms`` with the structure's lattice, species and positions."""
    from ase import Atoms

    atoms = Atoms(numbers=[site.specie.Z for site in structure], cell=structure.lattice.matrix,
                  scaled_positions=structure.frac_coords, pbc=True)
    if info:
        atoms.info.update({k: (v.item() if isinstance(v, np.generic) else v) for k, v in info.items()})
    return atoms


def write_structures(structures: Sequence[Any], path: str | os.PathLike,
                     info: Sequence[dict] | None = None) -> Path:
    """Write structures to one extended-XYZ file (atomically), ``info[i]`` kept as frame ``i``'s info."""
    import ase.io

    if info is not None and len(info) != len(structures):
        raise TopodiffInputError(f"info has {len(info)} entries for {len(structures)} structures")
    frames = [structure_to_atoms(s, info[i] if info is not None else None) for i, s in enumerate(structures)]

    def write(fh: Any) -> None:
        if frames:
            ase.io.write(fh, frames, format="extxyz")

    return atomic_write(path, write)


def cif_text(structure: Any, *, symprec: float | None = None) -> str:
    """CIF text of a structure (P1 unless ``symprec`` asks for symmetrised output)."""
    from pymatgen.io.cif import CifWriter

    with quiet():
        return str(CifWriter(structure, symprec=symprec))


def write_cif(structure: Any, path: str | os.PathLike, *, symprec: float | None = None) -> Path:
    """Write one structure as CIF (atomically)."""
    return atomic_write_text(path, cif_text(structure, symprec=symprec))


def write_poscar(structure: Any, path: str | os.PathLike, *, comment: str | None = None) -> Path:
    """Write one structure as a VASP POSCAR (atomically, fractional coordinates)."""
    from pymatgen.io.vasp import Poscar

    return atomic_write_text(path, Poscar(structure, comment=comment).get_str())


def write_csv(structures: Sequence[Any], path: str | os.PathLike,
              columns: dict[str, Sequence[Any]] | None = None) -> Path:
    """Write a CDVAE-style CSV (atomically): a ``material_id`` column (``columns`` may give it), the
    P1 CIF text in ``cif``, ``formula``, and any extra ``columns`` (one value per structure)."""
    import pandas as pd

    n = len(structures)
    data: dict[str, Any] = {"material_id": [str(i) for i in range(n)]}
    for key, values in (columns or {}).items():
        values = list(values)
        if len(values) != n:
            raise TopodiffInputError(f"column {key!r} has {len(values)} values for {n} structures")
        data[key] = values
    data["cif"] = [cif_text(s) for s in structures]
    data.setdefault("formula", [s.composition.reduced_formula for s in structures])
    df = pd.DataFrame(data)
    return atomic_write_text(path, df.to_csv(index=False))

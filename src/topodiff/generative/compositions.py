"""Compositions to predict structures for (``topodiff csp`` input): formulas or a CDVAE-style CSV."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from topodiff.errors import TopodiffInputError

MAX_ATOMS = 200  # atoms per crystal (num_atoms condition, CSP composition): the denoiser is O(N²)


def read_compositions(path: str | Path) -> list[np.ndarray]:
    """Compositions from a text file of formulas (one per line, ``#`` comments) or a CDVAE-style CSV
    (``cif`` column): each as atomic numbers of one cell, ``[n]``."""
    path = Path(path)
    if not path.is_file():
        raise TopodiffInputError(f"input not found: {path}")
    from topodiff.crystal.io import is_csv

    if is_csv(path):
        from topodiff.crystal.dataset import build_arrays

        arrays, skipped = build_arrays(path)  # every row must parse: `index` is the input row
        if skipped:
            raise TopodiffInputError(f"{path}: {len(skipped)} row(s) could not be read (first: {skipped[0].source}: "
                                     f"{skipped[0].error}); fix or remove them so that index matches the input row")
        species = np.asarray(arrays.species)
        out = [species[arrays.atoms_of(i)].copy() for i in range(len(arrays))]
        big = [i for i, z in enumerate(out) if len(z) > MAX_ATOMS]
        if big:
            raise TopodiffInputError(f"{path}: row {big[0]} has {len(out[big[0]])} atoms per cell; at most {MAX_ATOMS}")
        return out
    from pymatgen.core import Composition, Element

    out = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            counts = Composition(text).get_el_amt_dict()
            zs = {k: Element(k).Z for k in counts}
        except Exception:
            raise TopodiffInputError(f"{path}:{lineno}: not a chemical formula: {text!r}") from None
        if any(abs(v - round(v)) > 1e-6 or v < 1 for v in counts.values()):
            raise TopodiffInputError(f"{path}:{lineno}: formula needs integer atom counts: {text!r}")
        if sum(counts.values()) > MAX_ATOMS:
            raise TopodiffInputError(f"{path}:{lineno}: {text!r} has {sum(counts.values()):g} atoms per cell; at "
                                     f"most {MAX_ATOMS} (the denoiser's cost grows as atoms²)")
        out.append(np.concatenate([np.full(int(round(v)), zs[k]) for k, v in counts.items()]))
    if not out:
        raise TopodiffInputError(f"no compositions in {path}")
    return out

"""Structure templates: known crystals whose space group and Wyckoff orbits a new crystal may take.

CSP (:meth:`TemplateLibrary.match`): a composition's candidates are the library's crystals with the
same number of atoms in the cell and the same multiset of per-element counts (the anonymous formula
of that cell, e.g. ``A2B2C4``). Each candidate's elements are assigned to the composition's (equal
counts only) by the assignment of least total Pettifor-Mendeleev distance ``Σ |M(target) −
M(template)|`` (Pettifor's chemical scale, on which neighbours share structure types; pymatgen's
``Element.mendeleev_no``). The template of least distance wins, ties to the earlier library row, and
its cell is scaled by :func:`volume_ratio`. Choosing a known prototype by chemical similarity and then
refining it is what CSPML (Kusaba et al. 2022) and DiffCSP++ (Jiao et al. 2024) do; the sampler keeps
the chosen space group and Wyckoff orbits (:mod:`topodiff.generative.symmetry_projection`) and the
network places the atoms and sizes the cell. De novo (:meth:`TemplateLibrary.draw`): library rows
drawn at random give structure types whose sites the network fills with new elements.

The library is an ``.npz`` of flat arrays (``lattices [M,3,3]`` Å, ``frac [N,3]``, ``species [N]``,
``num_atoms [M]``, ``ids [M]``), read with ``allow_pickle=False``, built from a training file by
:func:`build_library` (``python -m topodiff.generative.templates TRAIN.csv OUT.npz [--where COL=VAL]``).
"""
from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from topodiff.errors import TopodiffInputError
from topodiff.generative.checkpoint import resolve_shipped_file
from topodiff.generative.symmetry_projection import SymmetryTemplate, template_from_structure

TEMPLATE_START = 0.3  # t₀ the network refines a template from (chosen on data/mp20/val.csv; docs/mp20-benchmark.md)


def resolve_templates(path_or_name: str | Path) -> Path:
    """A template library file, or the name of a shipped one (``mp20``: ``checkpoints/mp20.templates.npz``)."""
    return resolve_shipped_file(path_or_name, ".templates.npz", "template library")


@lru_cache(maxsize=2)
def _element_table(name: str) -> np.ndarray:
    """An element property by atomic number (index 0 unused; NaN where pymatgen has none):
    ``mendeleev_no`` (Pettifor) or ``atomic_radius`` (Å)."""
    import warnings

    from pymatgen.core import Element

    out = np.full(119, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # pymatgen warns for elements without the property
        for z in range(1, 119):
            try:
                out[z] = float(getattr(Element.from_Z(z), name) or np.nan)
            except (TypeError, ValueError, AttributeError):
                pass
    return out


def volume_ratio(target: np.ndarray, template: np.ndarray) -> float:
    """``Σ r³(target) / Σ r³(template)`` over the atoms of two equal-size cells (pymatgen atomic radii;
    1 where a radius is unknown): how much the template's cell swells for the new elements."""
    r = _element_table("atomic_radius")
    a, b = r[np.asarray(target)] ** 3, r[np.asarray(template)] ** 3
    ratio = float(np.sum(a) / np.sum(b))
    return ratio if np.isfinite(ratio) and ratio > 0 else 1.0


def _signature(species: np.ndarray) -> tuple[int, tuple[int, ...]]:
    """``(atoms in the cell, sorted per-element counts)``: the key templates are matched on."""
    return int(len(species)), tuple(sorted(Counter(species.tolist()).values()))


def element_assignment(target: np.ndarray, template: np.ndarray) -> tuple[dict[int, int], float] | None:
    """Map the template's elements onto the target's (equal atom counts only) at least Mendeleev distance.

    Returns ``({template Z: target Z}, total distance)`` or None when the counts do not correspond."""
    from scipy.optimize import linear_sum_assignment

    t_counts, p_counts = Counter(target.tolist()), Counter(template.tolist())
    if sorted(t_counts.values()) != sorted(p_counts.values()):
        return None
    t_el, p_el = sorted(t_counts), sorted(p_counts)
    m = _element_table("mendeleev_no")
    cost = np.abs(m[np.array(p_el)][:, None] - m[np.array(t_el)][None, :])
    cost = np.where(np.isnan(cost), 200.0, cost)
    cost = np.where(np.array([[p_counts[p] == t_counts[t] for t in t_el] for p in p_el]), cost, 1e9)
    rows, cols = linear_sum_assignment(cost)
    return {p_el[r]: t_el[c] for r, c in zip(rows, cols)}, float(cost[rows, cols].sum())


class TemplateLibrary:
    """Known crystals indexed by their cell's anonymous formula."""

    def __init__(self, lattices: np.ndarray, frac: np.ndarray, species: np.ndarray, num_atoms: np.ndarray,
                 ids: list[str]) -> None:
        self.lattices = np.asarray(lattices, dtype=np.float64)
        self.frac = np.asarray(frac, dtype=np.float64)
        self.species = np.asarray(species, dtype=np.int64)
        self.num_atoms = np.asarray(num_atoms, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.num_atoms)[:-1]]).astype(np.int64)
        self.ids = list(ids)
        if not (len(self.lattices) == len(self.num_atoms) == len(self.ids)) or int(self.num_atoms.sum()) != len(self.frac):
            raise TopodiffInputError("template library arrays do not agree in size")
        self._by_signature: dict[tuple, list[int]] = defaultdict(list)
        for i in range(len(self.ids)):
            self._by_signature[_signature(self._species(i))].append(i)

    def __len__(self) -> int:
        return len(self.ids)

    def _species(self, i: int) -> np.ndarray:
        return self.species[self.offsets[i]:self.offsets[i] + self.num_atoms[i]]

    @classmethod
    def from_structures(cls, named: list[tuple[str, Any]]) -> "TemplateLibrary":
        """A library of ``[(id, pymatgen Structure)]`` (ordered crystals)."""
        if not named:
            raise TopodiffInputError("no crystals for a template library")
        structs = [s for _, s in named]
        return cls(np.stack([s.lattice.matrix for s in structs]), np.concatenate([s.frac_coords for s in structs]),
                   np.concatenate([s.atomic_numbers for s in structs]), np.array([len(s) for s in structs]),
                   [str(i) for i, _ in named])

    @classmethod
    def load(cls, path: str | Path) -> "TemplateLibrary":
        """Read a library ``.npz`` (no pickles)."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                return cls(data["lattices"], data["frac"], data["species"], data["num_atoms"],
                           [str(s) for s in data["ids"]])
        except (OSError, KeyError, ValueError) as exc:
            raise TopodiffInputError(f"{path}: not a template library ({exc})") from None

    def save(self, path: str | Path) -> None:
        from topodiff.io_utils import atomic_write

        atomic_write(Path(path), lambda fh: np.savez_compressed(fh, lattices=self.lattices.astype(np.float32), frac=self.frac.astype(np.float32),
                            species=self.species.astype(np.int16), num_atoms=self.num_atoms.astype(np.int16),
                            ids=np.array(self.ids, dtype=str)), mode="wb")

    def template(self, i: int, *, symprec: float = 0.01) -> SymmetryTemplate:
        """Row ``i`` as a symmetry template (its own elements)."""
        sl = slice(self.offsets[i], self.offsets[i] + self.num_atoms[i])
        return template_from_structure(self.lattices[i], self.frac[sl], self.species[sl], symprec=symprec,
                                       source=self.ids[i])

    def draw(self, num: int, generator, *, num_atoms: int | None = None, min_atoms: int = 1,
             max_atoms: int | None = None) -> list[SymmetryTemplate]:
        """``num`` templates drawn uniformly (with replacement, ``torch.Generator``) from the rows with
        ``num_atoms`` atoms (or ``min_atoms..max_atoms``): structure types for de novo sampling."""
        import torch

        sizes = self.num_atoms
        ok = (sizes == num_atoms) if num_atoms is not None else (sizes >= min_atoms) & (sizes <= (max_atoms or sizes.max()))
        rows = np.flatnonzero(ok)
        if rows.size == 0:
            raise TopodiffInputError(f"no template with {num_atoms if num_atoms is not None else f'≥ {min_atoms}'} "
                                     "atoms in the library")
        picks = torch.randint(len(rows), (int(num),), generator=generator).numpy()
        cache: dict[int, SymmetryTemplate] = {}
        for r in set(rows[picks].tolist()):
            cache[r] = self.template(r)
        return [cache[r] for r in rows[picks].tolist()]

    def match(self, species: np.ndarray, *, symprec: float = 0.01) -> SymmetryTemplate | None:
        """The closest template for the composition ``species [n]`` (atomic numbers of one cell), with
        the composition's elements put on its sites (``species`` of the result), or None."""
        species = np.asarray(species, dtype=np.int64)
        best, best_cost = None, np.inf
        for i in self._by_signature.get(_signature(species), []):
            found = element_assignment(species, self._species(i))
            if found is not None and found[1] < best_cost:
                best, best_cost, mapping = i, found[1], found[0]
        if best is None:
            return None
        tpl = self.template(best, symprec=symprec)
        return with_species(tpl, np.array([mapping[z] for z in tpl.species.tolist()], dtype=np.int64))


def with_species(template: SymmetryTemplate, species: np.ndarray) -> SymmetryTemplate:
    """The template with new elements on its sites, its cell scaled by :func:`volume_ratio`."""
    from dataclasses import replace

    species = np.asarray(species, dtype=np.int64)
    if species.shape != template.species.shape:
        raise TopodiffInputError(f"{len(species)} species for a template of {template.num_atoms} sites")
    return replace(template, species=species,
                   lattice=template.lattice * volume_ratio(species, template.species) ** (1 / 3))


def build_library(source: str | Path, out: str | Path, where: dict[str, str] | None = None) -> int:
    """Write the template library of a crystal file (CSV with ``cif``, extxyz, ...); returns its size.
    ``where``: keep only the CSV rows whose columns equal these values (e.g. ``catalogue_class=ti``)."""
    from topodiff.crystal.dataset import build_arrays

    arrays, _ = build_arrays(source)
    ids = list(arrays.ids) or [f"row{i}" for i in range(len(arrays))]
    keep = np.arange(len(arrays)) if not where else _rows_where(source, ids, where)
    sl = [arrays.atoms_of(int(i)) for i in keep]
    lib = TemplateLibrary(np.asarray(arrays.lattices)[keep],
                          np.concatenate([np.asarray(arrays.frac)[s] for s in sl]) if sl else np.zeros((0, 3)),
                          np.concatenate([np.asarray(arrays.species)[s] for s in sl]) if sl else np.zeros(0),
                          np.asarray(arrays.num_atoms)[keep], [ids[int(i)] for i in keep])
    if len(lib) == 0:
        raise TopodiffInputError(f"{source}: no rows with {where}")
    lib.save(out)
    return len(lib)


def _rows_where(source: str | Path, ids: list[str], where: dict[str, str]) -> np.ndarray:
    """Indices of ``ids`` whose CSV row has every ``column == value`` of ``where`` (as text)."""
    import pandas as pd

    table = pd.read_csv(source, usecols=["material_id", *where], dtype=str)
    ok = np.ones(len(table), dtype=bool)
    for column, value in where.items():
        ok &= (table[column] == value).to_numpy()
    wanted = set(table["material_id"][ok])
    return np.array([i for i, name in enumerate(ids) if name in wanted], dtype=np.int64)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="build a template library (CSP and --templates) from a crystal file")
    ap.add_argument("source")
    ap.add_argument("out")
    ap.add_argument("--where", action="append", default=[], metavar="COLUMN=VALUE",
                    help="keep only CSV rows with this column value (repeatable; all must hold)")
    args = ap.parse_args(argv)
    where = dict(w.split("=", 1) for w in args.where)
    print(f"wrote {build_library(args.source, args.out, where)} templates to {args.out}")


if __name__ == "__main__":
    main()

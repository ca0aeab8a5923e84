"""The index of known crystals used for novelty (shipped: ``data/known_crystals.npz``).

Every known crystal is stored as (reduced formula, space group, a structure fingerprint, id).
The fingerprint is a scale-free radial distribution function ``g(x)``: pair distances in units of
the mean interatomic spacing ``r0 = (V/N)^(1/3)`` (so the number density is 1), Gaussian-smeared
(``SIGMA``) and sampled at ``NUM_BINS`` points of ``x ∈ [R_MIN, R_MAX)``, per atom and divided by
``4πx²`` (→ 1 for an ideal gas), once plain and once with each pair weighted by ``Z_i Z_j / <Z>²``
(so that swapping two species between sites changes it); invariant to rotation, translation, cell choice (supercells),
atom order and isotropic scaling. Two crystals are "the same" when
they have the same reduced formula and their fingerprints differ by less than ``MATCH_TOL``
(mean absolute difference per point), or by less than ``SG_MATCH_TOL`` with the same space group
(a layered crystal whose c/a differs by a few per cent, e.g. PBE vs experiment, shifts its
long-range peaks); ``benchmarks/build_known_index.py --check`` measures this rule against
pymatgen's StructureMatcher (ltol 0.2, stol 0.3, angle_tol 5).

Formulas known only as DFT hull entries or catalogue rows (compositions without structures) are
held apart: a crystal with such a formula is not formula-novel, and its structure novelty is unknown
— it is then *not* counted as novel (no claim the data cannot support). Two more facts keep a known
crystal from being called new when its structure is missing from the index:

* ``known_pairs`` — (reduced formula, space group) of every material in the DFT topology catalogues
  (Materiae, Tang et al.); a crystal with such a pair is known (``match`` names the catalogue row).
* ``incomplete`` — formulas with Materials Project hull entries whose structures the index lacks
  (e.g. the ground state of Sb2Te3, mp-1201): a crystal of such a formula that matches none of the
  stored structures may still be one of the missing ones, so its structure novelty is unknown.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
from pymatgen.core import Structure

from topodiff.errors import TopodiffInputError

INDEX_PATH = Path(__file__).resolve().parent.parent / "data" / "known_crystals.npz"
FORMAT = "topodiff-known-crystals/2"
NUM_BINS = 24
R_MIN, R_MAX, SIGMA = 0.5, 2.9, 0.1      # in units of r0 = (V/N)^(1/3)
MATCH_TOL = 0.08                         # mean |Δg| over the bins
SG_MATCH_TOL = 0.15                      # looser, when the space groups agree too


def structure_fingerprint(structure: Structure) -> np.ndarray:
    """Scale-free radial distributions ``[2 * NUM_BINS]`` (plain, Z-weighted; float64, see the module)."""
    r0 = (structure.volume / len(structure)) ** (1.0 / 3.0)
    centres = R_MIN + (np.arange(NUM_BINS) + 0.5) * (R_MAX - R_MIN) / NUM_BINS
    i, j, _, d = structure.get_neighbor_list((R_MAX + 3 * SIGMA) * r0)
    x = np.asarray(d, dtype=float) / r0
    z = np.array([sp.Z for sp in structure.species], dtype=float)
    zz = z[i] * z[j] / z.mean() ** 2                      # species channel: tells A-X from B-X pairs
    g = np.exp(-0.5 * ((x[:, None] - centres[None, :]) / SIGMA) ** 2) / (SIGMA * np.sqrt(2 * np.pi))
    norm = len(structure) * 4.0 * np.pi * centres ** 2
    return np.concatenate([g.sum(axis=0) / norm, (zz @ g) / norm])


def space_group(structure: Structure) -> int:
    """International space-group number (:func:`topodiff.crystal.symmetry.analyze`); 0 when spglib fails."""
    from topodiff.crystal.symmetry import analyze

    res = analyze(structure)
    return 0 if res is None else res.number


@dataclass
class Novelty:
    """Novelty of one crystal: ``structure_novel`` None = unknown (see the module docstring)."""

    formula_novel: bool
    structure_novel: bool | None
    match: str | None = None
    note: str | None = None

    @property
    def novel(self) -> bool:
        """Novel = no known crystal matches; unknown counts as not novel."""
        return self.structure_novel is True


class KnownIndex:
    """Known crystals grouped by reduced formula (see the module docstring)."""

    def __init__(self, formulas: Sequence[str], space_groups: np.ndarray, fingerprints: np.ndarray,
                 ids: Sequence[str], composition_only: Sequence[str] = (), sources: dict[str, int] | None = None,
                 known_pairs: dict[str, str] | None = None, incomplete: Sequence[str] = ()) -> None:
        self.fingerprints = np.asarray(fingerprints, dtype=np.float64)
        self.space_groups = np.asarray(space_groups, dtype=int)
        self.ids = list(ids)
        self.groups: dict[str, list[int]] = {}
        for i, f in enumerate(formulas):
            self.groups.setdefault(str(f), []).append(i)
        self.known_pairs = dict(known_pairs or {})      # "formula#sg" -> id of a catalogue row
        pair_formulas = {key.rsplit("#", 1)[0] for key in self.known_pairs}
        self.composition_only = (set(composition_only) | pair_formulas) - set(self.groups)
        self.incomplete = set(incomplete)
        self.sources = dict(sources or {})

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_formulas(self) -> int:
        return len(self.groups) + len(self.composition_only)

    def formula_known(self, reduced_formula: str) -> bool:
        """Is any crystal of this reduced formula known (stored structure, MP DFT entry or catalogue row)?"""
        return reduced_formula in self.groups or reduced_formula in self.composition_only

    def query(self, structure: Structure, fingerprint: np.ndarray | None = None) -> Novelty:
        """Is ``structure`` known? A stored structure of its formula within the fingerprint rule, or a
        catalogue row with its (formula, space group); unknown where the stored structures are incomplete."""
        formula = structure.composition.reduced_formula
        idx = self.groups.get(formula)
        if not self.formula_known(formula):
            return Novelty(True, True)
        sg = space_group(structure)
        if idx is not None:
            fp = structure_fingerprint(structure) if fingerprint is None else fingerprint
            diff = np.abs(self.fingerprints[idx] - fp[None, :]).mean(axis=1)
            near = [k for k in np.flatnonzero(diff < SG_MATCH_TOL)
                    if diff[k] < MATCH_TOL or (sg and self.space_groups[idx[k]] == sg)]
            if near:
                return Novelty(False, False, match=self.ids[idx[min(near, key=lambda j: diff[j])]])
        catalogue = self.known_pairs.get(f"{formula}#{sg}") if sg else None
        if catalogue:
            return Novelty(False, False, match=catalogue, note="same formula and space group as a catalogue entry")
        if idx is None:
            return Novelty(False, None, note="formula known (MP DFT entry or catalogue row) but no structure of it "
                                             "in the index: structure novelty unknown")
        if formula in self.incomplete:
            return Novelty(False, None, note=f"formula known ({len(idx)} structures in the index, more MP entries "
                                             "without structures): structure novelty unknown")
        return Novelty(False, True, note=f"formula known ({len(idx)} structures), this structure not")

    def save(self, path: str | Path) -> Path:
        """Write the index as a compressed npz of plain arrays (no pickles)."""
        import io

        from topodiff.io_utils import atomic_write

        order = sorted(range(len(self.ids)), key=lambda i: self.ids[i])
        formulas = np.empty(len(self.ids), dtype=object)
        for f, idx in self.groups.items():
            formulas[idx] = f
        buf = io.BytesIO()
        np.savez_compressed(buf, format=np.array(FORMAT), formulas=np.array([formulas[i] for i in order], dtype=str),
                            space_groups=self.space_groups[order].astype(np.int16),
                            fingerprints=self.fingerprints[order].astype(np.float16),
                            ids=np.array([self.ids[i] for i in order], dtype=str),
                            composition_only=np.array(sorted(self.composition_only), dtype=str),
                            source_names=np.array(list(self.sources), dtype=str),
                            source_counts=np.array(list(self.sources.values()), dtype=np.int64),
                            pair_keys=np.array(sorted(self.known_pairs), dtype=str),
                            pair_ids=np.array([self.known_pairs[k] for k in sorted(self.known_pairs)], dtype=str),
                            incomplete=np.array(sorted(self.incomplete), dtype=str))
        return atomic_write(Path(path), lambda fh: fh.write(buf.getvalue()), mode="wb")


@lru_cache(maxsize=2)
def load_index(path: str | None = None) -> KnownIndex:
    """The shipped index (or another file written by :meth:`KnownIndex.save`)."""
    p = Path(path) if path else INDEX_PATH
    try:
        with np.load(p, allow_pickle=False) as z:
            if str(z["format"]) != FORMAT:
                raise TopodiffInputError(f"{p}: not a {FORMAT} file")
            return KnownIndex(z["formulas"].tolist(), z["space_groups"], z["fingerprints"], z["ids"].tolist(),
                              z["composition_only"].tolist(),
                              dict(zip(z["source_names"].tolist(), z["source_counts"].tolist())),
                              dict(zip(z["pair_keys"].tolist(), z["pair_ids"].tolist())), z["incomplete"].tolist())
    except (OSError, KeyError, ValueError) as exc:
        raise TopodiffInputError(f"known-crystal index unreadable: {p} ({exc}); rebuild it with "
                                 "benchmarks/build_known_index.py") from None

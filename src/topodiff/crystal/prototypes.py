"""Known topological prototypes and isovalent substitution into them.

Random crystals in the topological chemical space are mostly metals (DESIGN: ~90 % of 200 random
pyxtal crystals). A conditional generator needs examples of every class, so training sets are
enriched with crystals made by substituting chemically similar elements into the parents of the
main topological families. Parent structures are experimental, each cited in :data:`PROTOTYPES`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from topodiff.crystal.io import quiet as _quiet
from topodiff.errors import TopodiffInputError


@dataclass(frozen=True)
class Prototype:
    """A parent crystal whose sites may be substituted by chemically similar elements.

    ``sites``: (parent element, fractional coordinates of the Wyckoff representative, allowed
    substitutes). ``lattice``: pymatgen ``Lattice`` constructor name and its arguments (Å).
    """

    name: str
    spg: int
    lattice: tuple[str, tuple[float, ...]]
    sites: tuple[tuple[str, tuple[float, float, float], tuple[str, ...]], ...]
    reference: str


#: Parents of the main topological families (experimental structures of the parent compound).
PROTOTYPES: dict[str, Prototype] = {p.name: p for p in (
    Prototype("tetradymite", 166, ("hexagonal", (4.143, 28.636)),
              (("Bi", (0.0, 0.0, 0.4008), ("Bi", "Sb")), ("Se", (0.0, 0.0, 0.0), ("Se", "Te", "S")),
               ("Se", (0.0, 0.0, 0.2117), ("Se", "Te", "S"))),
              "Bi2Se3, R-3m: Nakajima, J. Phys. Chem. Solids 24, 479 (1963)"),
    Prototype("rocksalt", 225, ("cubic", (6.327,)),
              (("Sn", (0.0, 0.0, 0.0), ("Sn", "Pb", "Ge")), ("Te", (0.5, 0.5, 0.5), ("Te", "Se", "S"))),
              "SnTe, Fm-3m, a = 6.327 Å: Hsieh et al., Nat. Commun. 3, 982 (2012)"),
    Prototype("zincblende", 216, ("cubic", (6.46,)),
              (("Hg", (0.0, 0.0, 0.0), ("Hg", "Cd", "Zn")), ("Te", (0.25, 0.25, 0.25), ("Te", "Se", "S"))),
              "HgTe, F-43m, a = 6.46 Å: Bernevig, Hughes, Zhang, Science 314, 1757 (2006)"),
    Prototype("na3bi", 194, ("hexagonal", (5.448, 9.655)),
              (("Na", (0.0, 0.0, 0.25), ("Na", "K", "Rb")), ("Na", (1 / 3, 2 / 3, 0.583), ("Na", "K", "Rb")),
               ("Bi", (1 / 3, 2 / 3, 0.25), ("Bi", "Sb"))),
              "Na3Bi, P6_3/mmc: Wang et al., Phys. Rev. B 85, 195320 (2012)"),
    Prototype("half_heusler", 216, ("cubic", (6.65,)),
              (("Bi", (0.0, 0.0, 0.0), ("Bi", "Sb")), ("Pt", (0.25, 0.25, 0.25), ("Pt", "Pd", "Au")),
               ("Y", (0.5, 0.5, 0.5), ("Y", "Lu", "La", "Sc"))),
              "YPtBi, F-43m, a = 6.65 Å: Chadov et al., Nat. Mater. 9, 541 (2010)"),
    Prototype("a7", 166, ("hexagonal", (4.546, 11.862)),
              (("Bi", (0.0, 0.0, 0.2341), ("Bi", "Sb", "As")),),
              "Bi (A7), R-3m: Cucka & Barrett, Acta Cryst. 15, 865 (1962)"),
)}


@lru_cache(maxsize=None)
def _parent_sites(name: str) -> tuple[tuple[str, ...], np.ndarray]:
    """(parent element of each atom, fractional coordinates ``[n, 3]``) of a prototype's
    conventional cell (pymatgen's space-group expansion is slow: done once per process)."""
    from pymatgen.core import Lattice, Structure

    proto = PROTOTYPES[name]
    lattice = getattr(Lattice, proto.lattice[0])(*proto.lattice[1])
    with _quiet():
        parent = Structure.from_spacegroup(proto.spg, lattice, [p for p, _, _ in proto.sites],
                                           [list(c) for _, c, _ in proto.sites])
    return tuple(site.specie.symbol for site in parent), np.array(parent.frac_coords)


def _atomic_radius(symbol: str) -> float:
    from pymatgen.core.periodic_table import Element

    r = Element(symbol).atomic_radius
    return float(r) if r is not None else 1.5


def substitute_prototype(proto: Prototype, rng: np.random.Generator, *, strain: float = 0.02,
                         standardize: bool = True) -> tuple[Any, dict]:
    """One substituted crystal: each site's element drawn from its substitutes (sites sharing a parent
    element keep sharing it), the cell scaled by the mean ratio of atomic radii and each lattice
    parameter of the prototype then strained by up to ``strain`` (relative), which keeps the space
    group."""
    from pymatgen.core import Lattice, Structure

    from topodiff.crystal.io import standardize as std

    choice: dict[str, str] = {}
    for parent, _, subs in proto.sites:
        if parent not in choice:
            choice[parent] = str(rng.choice(subs))
    params = np.asarray(proto.lattice[1], dtype=np.float64)
    ratio = np.mean([_atomic_radius(choice[p]) / _atomic_radius(p) for p, _, _ in proto.sites])
    params = params * ratio * (1.0 + rng.uniform(-strain, strain, size=params.shape))
    lattice = getattr(Lattice, proto.lattice[0])(*params)
    parents, frac = _parent_sites(proto.name)
    s = Structure(lattice, [choice[p] for p in parents], frac)
    if standardize:
        s = std(s)
    return s, {"prototype": proto.name, "substitution": ",".join(f"{k}->{v}" for k, v in choice.items())}


def check_prototypes(names: Sequence[str] | None) -> list[str]:
    names = list(names) if names else list(PROTOTYPES)
    bad = [n for n in names if n not in PROTOTYPES]
    if bad:
        raise TopodiffInputError(f"unknown prototype(s) {', '.join(bad)}; known: {', '.join(PROTOTYPES)}")
    return names

"""Build tight-binding models PythTB-style, and move them to and from PythTB, TBmodels and crystals.

* :class:`TBBuilder` — ``set_onsite`` / ``set_hop`` with PythTB's meaning and modes, producing a
  :class:`~topodiff.physics.model.TBModel`.
* :func:`from_pythtb` / :func:`to_pythtb` — PythTB ``tb_model`` objects (1.8 and 2.x keep the same
  private fields ``_lat, _orb, _per, _nspin, _site_energies, _hoppings``).
* :func:`from_tbmodels` / :func:`to_tbmodels` — TBmodels ``Model`` objects, read duck-typed from
  their ``hop`` / ``pos`` / ``uc`` / ``occ`` attributes (TBmodels 1.4 pins numpy < 2, so it is not
  installed beside topodiff; :func:`tbmodels_arguments` gives the keyword arguments of
  ``tbmodels.Model`` for users who have it elsewhere).
* :func:`crystal_model` — the Slater-Koster model of a crystal (pymatgen ``Structure``, ASE
  ``Atoms`` or a structure file), the same model ``topodiff screen`` builds.

Conventions: a hopping ``(i, j, R, t)`` is ``t c†_{i,0} c_{j,R}`` with the Hermitian conjugate
implied — PythTB's ``set_hop(t, i, j, R)`` and TBmodels' ``hop[R][i, j]`` mean the same term.
Energies in eV, lengths in Å (as the source model gives them: no unit conversion is applied).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from topodiff.crystal.symmetry import SYMPREC
from topodiff.errors import TopodiffInputError
from topodiff.physics.model import TBModel

__all__ = ["TBBuilder", "from_pythtb", "to_pythtb", "from_tbmodels", "to_tbmodels", "tbmodels_arguments",
           "crystal_model", "crystal_path", "is_crystal_file", "is_crystal_object", "is_pythtb_model", "is_tbmodels_model", "as_structure"]

_PAULI = np.array([np.eye(2), [[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=np.complex128)


def _block(value: Any, spinful: bool, what: str) -> np.ndarray:
    """A ``[ns, ns]`` block from a number, a 2x2 matrix, or (spinful) PythTB's ``[s0, sx, sy, sz]``."""
    arr = np.asarray(value, dtype=np.complex128)
    ns = 2 if spinful else 1
    if arr.shape == ():
        block = complex(arr) * np.eye(ns)
    elif spinful and arr.shape == (4,):
        block = np.tensordot(arr, _PAULI, axes=1)
    elif spinful and arr.shape == (2, 2):
        block = arr
    else:
        raise TopodiffInputError(f"{what}: expected a number" + (", [s0, sx, sy, sz] or a 2x2 matrix" if spinful
                                                                 else "") + f", got shape {arr.shape}")
    if not np.all(np.isfinite(block)):
        raise TopodiffInputError(f"{what}: non-finite number")
    return block.astype(np.complex128)


class TBBuilder:
    """Assemble a :class:`TBModel` term by term, as with PythTB's ``tb_model``.

    Parameters
    ----------
    lattice : ``[dim, n_cart]`` lattice vectors as rows (Å), ``dim`` = 1, 2 or 3 periodic directions.
    orbitals : ``[n_orb, dim]`` orbital positions in reduced coordinates.
    spinful : two spin states per orbital, ordered ``(orb0,up), (orb0,dn), ...`` (PythTB's ``nspin=2``).
    name : model name kept in the result.

    Example
    -------
    >>> b = TBBuilder([[1.0]], [[0.0], [0.5]])
    >>> b.set_onsite([0.5, -0.5]); b.set_hop(1.0, 0, 1, [0]); b.set_hop(0.6, 1, 0, [1])
    >>> model = b.build()          # a Rice-Mele chain, energies in eV
    """

    def __init__(self, lattice: Any, orbitals: Any, *, spinful: bool = False, name: str = "model") -> None:
        self.lattice = np.atleast_2d(np.asarray(lattice, dtype=float))
        self.dim = self.lattice.shape[0]
        self.orbitals = np.asarray(orbitals, dtype=float).reshape(-1, self.dim)
        self.spinful = bool(spinful)
        self.name = name
        ns = 2 if spinful else 1
        self._onsite = np.zeros((len(self.orbitals), ns, ns), dtype=np.complex128)
        self._onsite_set = np.zeros(len(self.orbitals), dtype=bool)
        self._hops: dict[tuple[int, int, tuple[int, ...]], np.ndarray] = {}

    def _orbital(self, i: Any) -> int:
        if isinstance(i, bool) or int(i) != i or not 0 <= int(i) < len(self.orbitals):
            raise TopodiffInputError(f"orbital index {i!r} out of range 0..{len(self.orbitals) - 1}")
        return int(i)

    def set_onsite(self, value: Any, i: int | None = None, mode: str = "set") -> "TBBuilder":
        """Onsite energy (eV) of orbital ``i``, or of every orbital when ``i`` is None (``value`` a list).

        ``mode``: ``"set"`` (once per orbital), ``"reset"`` (overwrite) or ``"add"``.
        """
        if i is None:
            values = list(value)
            if len(values) != len(self.orbitals):
                raise TopodiffInputError(f"set_onsite: {len(values)} values for {len(self.orbitals)} orbitals")
            for o, v in enumerate(values):
                self.set_onsite(v, o, mode)
            return self
        o = self._orbital(i)
        block = _block(value, self.spinful, f"onsite[{o}]")
        if not np.allclose(block, block.conj().T, atol=1e-12):
            raise TopodiffInputError(f"onsite[{o}] must be Hermitian (a real energy)")
        if mode == "set" and self._onsite_set[o]:
            raise TopodiffInputError(f"onsite energy of orbital {o} already set (use mode='reset' or 'add')")
        if mode not in ("set", "reset", "add"):
            raise TopodiffInputError(f"mode must be 'set', 'reset' or 'add', got {mode!r}")
        self._onsite[o] = self._onsite[o] + block if mode == "add" else block
        self._onsite_set[o] = True
        return self

    def set_hop(self, t: Any, i: int, j: int, R: Sequence[int] | int | None = None, mode: str = "set",
                allow_conjugate_pair: bool = False) -> "TBBuilder":
        """Hopping ``t c†_{i,0} c_{j,R}`` (eV; the Hermitian conjugate is implied).

        ``R``: integer cell offset (``dim`` integers; an int for 1D). ``mode`` as in :meth:`set_onsite`.
        Specifying both ``(i, j, R)`` and ``(j, i, -R)`` is refused unless ``allow_conjugate_pair``
        (it would count the bond twice), as in PythTB.
        """
        i, j = self._orbital(i), self._orbital(j)
        R_arr = np.zeros(self.dim, dtype=np.int64) if R is None else np.atleast_1d(np.asarray(R))
        if R_arr.shape != (self.dim,) or not np.all(np.equal(np.mod(R_arr, 1), 0)):
            raise TopodiffInputError(f"R must be {self.dim} integers, got {R!r}")
        key = (i, j, tuple(int(x) for x in R_arr))
        if i == j and not any(key[2]):
            raise TopodiffInputError("a hopping with i = j and R = 0 is an onsite term: use set_onsite")
        if not allow_conjugate_pair and (j, i, tuple(-x for x in key[2])) in self._hops and (j, i) != (i, j):
            raise TopodiffInputError(f"the conjugate of hopping {key} is already set (its h.c. is implied)")
        block = _block(t, self.spinful, f"hopping {key}")
        if mode not in ("set", "reset", "add"):
            raise TopodiffInputError(f"mode must be 'set', 'reset' or 'add', got {mode!r}")
        if mode == "set" and key in self._hops:
            raise TopodiffInputError(f"hopping {key} already set (use mode='reset' or 'add')")
        self._hops[key] = self._hops.get(key, 0) + block if mode == "add" else block
        return self

    def build(self, filling: int | None = None) -> TBModel:
        """The model (validated); ``filling`` = occupied bands (default: half of the states)."""
        ns = 2 if self.spinful else 1
        keys = list(self._hops)
        return TBModel(self.lattice, self.orbitals, self._onsite.copy(),
                       np.array([k[0] for k in keys], dtype=np.int64), np.array([k[1] for k in keys], dtype=np.int64),
                       np.array([k[2] for k in keys], dtype=np.int64).reshape(-1, self.dim),
                       np.array([self._hops[k] for k in keys]).reshape(-1, ns, ns), spinful=self.spinful,
                       filling=filling, name=self.name)


# --------------------------------------------------------------------------------------------- PythTB
def is_pythtb_model(obj: Any) -> bool:
    """True for a PythTB ``tb_model`` (or an object with its fields)."""
    return all(hasattr(obj, a) for a in ("_lat", "_orb", "_per", "_nspin", "_site_energies", "_hoppings"))


def from_pythtb(tb: Any, *, filling: int | None = None, name: str = "pythtb") -> TBModel:
    """A :class:`TBModel` from a PythTB ``tb_model`` (periodic directions ``tb._per`` only).

    Positions along non-periodic directions (slabs, flakes with ``dim_k < dim_r``) are dropped: they
    do not enter bulk bands or invariants. PythTB has no filling: pass ``filling`` (default half).
    """
    per = [int(p) for p in tb._per]
    if not per:
        raise TopodiffInputError("PythTB model has no periodic direction (dim_k = 0): not supported")
    spinful = int(tb._nspin) == 2
    ns = 2 if spinful else 1
    onsite = np.asarray(tb._site_energies, dtype=np.complex128).reshape(-1, ns, ns) if spinful else \
        np.asarray(tb._site_energies, dtype=np.complex128)[:, None, None]
    hops = list(tb._hoppings)
    hop_t = np.array([np.asarray(h[0], dtype=np.complex128).reshape(ns, ns) for h in hops]).reshape(-1, ns, ns)
    hop_R = np.array([np.asarray(h[3], dtype=float)[per] for h in hops]).reshape(-1, len(per))
    if not np.allclose(hop_R, np.round(hop_R)):
        raise TopodiffInputError("PythTB hopping vectors R must be integers")
    return TBModel(np.asarray(tb._lat, dtype=float)[per], np.asarray(tb._orb, dtype=float)[:, per], onsite,
                   np.array([int(h[1]) for h in hops], dtype=np.int64), np.array([int(h[2]) for h in hops], dtype=np.int64),
                   np.round(hop_R).astype(np.int64), hop_t, spinful=spinful, filling=filling, name=name)


def square_cell(lattice: np.ndarray) -> np.ndarray:
    """A right-handed ``[dim, dim]`` cell with the same lengths and angles as ``lattice [dim, n_cart]``.

    Reduced coordinates (and so bands and invariants) are unchanged; only the Cartesian frame is
    rotated (and mirrored for a left-handed input), as PythTB and TBmodels need square cells.
    """
    lat = np.asarray(lattice, dtype=float)
    cell = lat if lat.shape[0] == lat.shape[1] else np.linalg.qr(lat.T)[1].T
    if np.linalg.det(cell) < 0:
        cell = cell * np.r_[np.ones(cell.shape[1] - 1), -1.0]
    return cell


def _local_onsite(model: TBModel) -> np.ndarray:
    """Onsite blocks with the ``i = j, R = 0`` hoppings folded in (they add as ``t``, not ``t + t†``)."""
    onsite = model.onsite.copy()
    local = (model.hop_i == model.hop_j) & np.all(model.hop_R == 0, axis=1)
    np.add.at(onsite, model.hop_i[local], model.hop_t[local])
    return onsite


def to_pythtb(model: TBModel) -> Any:
    """A PythTB ``tb_model`` with the same bands (``dim_k = dim_r = model.dim``; see :func:`square_cell`)."""
    from pythtb import tb_model

    spinful = model.spinful
    tb = tb_model(model.dim, model.dim, square_cell(model.lattice), model.orbitals, nspin=model.n_spin)
    onsite = _local_onsite(model)
    tb.set_onsite([b if spinful else float(b[0, 0].real) for b in onsite])
    local = (model.hop_i == model.hop_j) & np.all(model.hop_R == 0, axis=1)
    for i, j, R, t in zip(model.hop_i[~local], model.hop_j[~local], model.hop_R[~local], model.hop_t[~local]):
        tb.set_hop(t if spinful else complex(t[0, 0]), int(i), int(j), [int(x) for x in R], mode="add",
                   allow_conjugate_pair=True)
    return tb


# --------------------------------------------------------------------------------------------- TBmodels
def is_tbmodels_model(obj: Any) -> bool:
    """True for a TBmodels ``Model`` (duck-typed: ``hop`` mapping, ``pos``, ``size``, ``dim``)."""
    return all(hasattr(obj, a) for a in ("hop", "pos", "size", "dim")) and hasattr(obj.hop, "items")


def _dense(mat: Any) -> np.ndarray:
    return np.asarray(mat.toarray() if hasattr(mat, "toarray") else mat, dtype=np.complex128)


def from_tbmodels(m: Any, *, filling: int | None = None, name: str = "tbmodels") -> TBModel:
    """A spinless :class:`TBModel` (one orbital per TBmodels state) from a TBmodels ``Model``.

    TBmodels stores ``H(k) = Σ_R hop[R] e^{2πi k·R} + h.c.`` over half of the R vectors, with the
    R = 0 matrix halved; each non-zero ``hop[R][i, j]`` becomes the hopping ``(i, j, R)``.
    ``filling`` defaults to the model's ``occ``.
    """
    size, dim = int(m.size), int(m.dim)
    uc = np.eye(dim) if getattr(m, "uc", None) is None else np.asarray(m.uc, dtype=float)
    onsite = np.zeros(size)
    hi, hj, hR, ht = [], [], [], []
    for R, mat in m.hop.items():
        M = _dense(mat)
        R = tuple(int(x) for x in R)
        if not any(R):
            onsite += 2.0 * np.real(np.diag(M))
            M = M - np.diag(np.diag(M))
        i, j = np.nonzero(M)
        hi.append(i); hj.append(j); hR.append(np.tile(R, (len(i), 1))); ht.append(M[i, j])
    occ = filling if filling is not None else getattr(m, "occ", None)
    cat = (lambda xs, shape: np.concatenate(xs) if xs else np.zeros(shape))
    return TBModel(uc, np.asarray(m.pos, dtype=float), onsite, cat(hi, 0).astype(np.int64), cat(hj, 0).astype(np.int64),
                   cat(hR, (0, dim)).astype(np.int64), cat(ht, 0), spinful=False,
                   filling=None if occ is None else int(occ), name=name)


def tbmodels_arguments(model: TBModel) -> dict[str, Any]:
    """Keyword arguments of ``tbmodels.Model`` for the same Hamiltonian (``contains_cc=True`` form:
    the full ``T_R`` for every R; states in topodiff's order, positions repeated per spin)."""
    Rs, T = model.table
    return {"hop": {tuple(int(x) for x in R): T[n] for n, R in enumerate(Rs)}, "pos": model.state_positions,
            "uc": square_cell(model.lattice), "occ": model.occupied, "dim": model.dim, "size": model.num_bands,
            "contains_cc": True}


def to_tbmodels(model: TBModel) -> Any:
    """A TBmodels ``Model`` (needs ``tbmodels`` importable; see :func:`tbmodels_arguments` otherwise)."""
    try:
        import tbmodels
    except ImportError:
        raise TopodiffInputError("tbmodels is not installed (TBmodels 1.4 needs numpy < 2); use "
                                 "topodiff.physics.interop.tbmodels_arguments(model) with tbmodels.Model") from None
    return tbmodels.Model(**tbmodels_arguments(model))


# --------------------------------------------------------------------------------------------- crystals
def crystal_model(source: Any, *, basis: str = "sp3", soc: bool = True, symmetrize: float | None = None) -> TBModel:
    """The Slater-Koster model of a crystal, as ``topodiff screen`` builds it (same options).

    ``source``: a pymatgen ``Structure``, an ASE ``Atoms`` or a single-structure file (CIF, POSCAR,
    extxyz frame file). The filling is the valence-electron count of the basis.
    """
    from topodiff.crystal.symmetry import symmetrized
    from topodiff.physics.slater_koster import structure_to_tb

    structure = as_structure(source)
    if symmetrize is not None:
        structure, _ = symmetrized(structure, float(symmetrize))
    return structure_to_tb(structure, basis=basis, soc=soc)


def crystal_path(source: Any, *, symprec: float = SYMPREC) -> Any:
    """The high-symmetry k-path of a crystal's model from seekpath *with its atoms* (its space group at
    ``symprec`` Å — by default the project tolerance of :mod:`topodiff.crystal.symmetry`, so the path
    is that of the space group the screen, ``evaluate`` and the report show), in the reduced basis of
    the crystal's cell; None when ``source`` is not a crystal (Structure, Atoms, file).
    """
    from topodiff.physics.bands import high_symmetry_path

    if not (isinstance(source, (str, os.PathLike)) and is_crystal_file(source)) and not is_crystal_object(source):
        return None
    s = as_structure(source)
    return high_symmetry_path(np.asarray(s.lattice.matrix), atoms=(np.asarray(s.frac_coords), np.asarray(s.atomic_numbers)),
                              symprec=symprec)


def is_crystal_object(obj: Any) -> bool:
    """True for a pymatgen ``Structure`` or an ASE ``Atoms``."""
    from pymatgen.core import Structure

    return isinstance(obj, Structure) or (type(obj).__name__ == "Atoms" and hasattr(obj, "get_cell"))


def is_crystal_file(path: str | os.PathLike) -> bool:
    """True for an existing crystal-structure file: by name (``.cif``, ``.vasp``, ``.poscar``,
    ``.extxyz``/``.xyz``, ``POSCAR*``/``CONTCAR*``) or by content (a CIF's ``data_`` block)."""
    from topodiff.crystal.io import CIF_SUFFIXES, EXTXYZ_SUFFIXES, POSCAR_NAMES, POSCAR_SUFFIXES

    p = Path(path)
    if not p.is_file():
        return False
    if p.name.lower().endswith(CIF_SUFFIXES + POSCAR_SUFFIXES + EXTXYZ_SUFFIXES) or p.name.startswith(POSCAR_NAMES):
        return True
    with open(p, "rb") as fh:
        head = fh.read(4096).decode("utf-8", errors="replace")
    return head.lstrip().startswith("data_") or "_cell_length_a" in head


def as_structure(obj: Any) -> Any:
    """A pymatgen ``Structure`` from a ``Structure``, an ASE ``Atoms`` or a path to one structure."""
    from pymatgen.core import Structure

    if isinstance(obj, Structure):
        return obj
    if type(obj).__name__ == "Atoms" and hasattr(obj, "get_cell"):
        if not all(obj.pbc):
            raise TopodiffInputError("ASE Atoms must be periodic in all three directions (pbc=True)")
        from pymatgen.io.ase import AseAtomsAdaptor

        return AseAtomsAdaptor.get_structure(obj)
    if isinstance(obj, (str, os.PathLike)):
        from topodiff.crystal.io import read_structure

        return read_structure(obj)
    raise TopodiffInputError(f"expected a pymatgen Structure, an ASE Atoms or a structure file, got {type(obj).__name__}")

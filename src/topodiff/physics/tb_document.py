"""The ``topodiff-tb/1`` JSON document's pieces: parsing with a :class:`~topodiff.errors.ModelError`
that names the bad entry, and the compact form written back (used by
:meth:`topodiff.physics.model.TBModel.from_dict` / ``to_dict``; the format is in docs/formats.md).

Blocks are ``[ns, ns]`` complex (ns = 2 for spinful models, else 1); energies in the document's
``energy_unit``, lengths in its ``length_unit`` until :func:`unit_scales` converts them to eV and Å.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from topodiff.errors import ModelError


def spin_block(value: Any, spinful: bool, what: str) -> np.ndarray:
    """Parse a JSON amplitude into a ``[ns, ns]`` complex block (ns = 2 if spinful else 1).

    Accepted: a real number, ``[re, im]``, or for spinful models a 2x2 matrix of such entries.
    A scalar on a spinful model means scalar × identity.
    """
    ns = 2 if spinful else 1
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ModelError(f"{what}: not a number, [re, im] pair or 2x2 matrix: {value!r}") from None
    if arr.shape == ():
        block = complex(arr) * np.eye(ns)
    elif arr.shape == (2,):
        block = complex(arr[0], arr[1]) * np.eye(ns)
    elif spinful and arr.shape == (2, 2, 2):
        block = arr[..., 0] + 1j * arr[..., 1]
    elif spinful and arr.shape == (2, 2):
        block = arr.astype(complex)
    else:
        raise ModelError(f"{what}: expected a number, [re, im]" + (" or a 2x2 matrix" if spinful else "")
                         + f", got shape {arr.shape}")
    if not np.all(np.isfinite(block)):
        raise ModelError(f"{what}: non-finite number")
    return block.astype(np.complex128)


def block_to_json(block: np.ndarray, spinful: bool) -> Any:
    """Inverse of :func:`spin_block` (compact form when possible)."""
    def num(z: complex) -> Any:
        return float(z.real) if z.imag == 0 else [float(z.real), float(z.imag)]

    ns = block.shape[0]
    if np.allclose(block, block[0, 0] * np.eye(ns), atol=0.0):
        return num(complex(block[0, 0]))
    return [[[float(block[a, b].real), float(block[a, b].imag)] for b in range(ns)] for a in range(ns)]


def parse_geometry(doc: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``lattice [dim, ≥dim]`` (Cartesian rows, in the document's length unit) and ``orbitals
    [n_orb, dim]`` (reduced positions) of a ``topodiff-tb/1`` document."""
    try:
        lattice = np.asarray(doc["lattice"], dtype=float)
        orbitals = np.asarray(doc["orbitals"], dtype=float)
    except (TypeError, ValueError):
        raise ModelError("'lattice' and 'orbitals' must be lists of number lists") from None
    if lattice.ndim != 2 or not 1 <= lattice.shape[0] <= 3 or lattice.shape[1] < lattice.shape[0]:
        raise ModelError(f"'lattice' must be 1-3 rows of Cartesian vectors, got shape {lattice.shape}")
    dim = lattice.shape[0]
    if orbitals.ndim != 2 or orbitals.shape[1] != dim or orbitals.shape[0] == 0:
        raise ModelError(f"'orbitals' must have shape [n_orb, {dim}], got {orbitals.shape}")
    return lattice, orbitals


def parse_onsite(onsite_raw: Any, n_orb: int, spinful: bool) -> np.ndarray:
    """``[n_orb, ns, ns]`` Hermitian onsite blocks (document energy unit)."""
    if not isinstance(onsite_raw, list) or len(onsite_raw) != n_orb:
        raise ModelError(f"'onsite' must list {n_orb} entries (one per orbital)")
    onsite = np.stack([spin_block(v, spinful, f"onsite[{o}]") for o, v in enumerate(onsite_raw)])
    if not np.allclose(onsite, np.conj(np.swapaxes(onsite, 1, 2)), atol=1e-10):
        bad = int(np.argmax(np.abs(onsite - np.conj(np.swapaxes(onsite, 1, 2))).reshape(n_orb, -1).max(1)))
        raise ModelError(f"onsite[{bad}] is not Hermitian (non-real onsite energy)")
    return onsite


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def parse_hoppings(hops: Any, n_orb: int, dim: int, spinful: bool) -> tuple[np.ndarray, ...]:
    """``(i, j, R [n, dim], t [n, ns, ns])`` of the document's hopping list (document energy unit)."""
    if not isinstance(hops, list):
        raise ModelError("'hoppings' must be a list")
    ns = 2 if spinful else 1
    hi, hj, hR, ht = [], [], [], []
    for n, h in enumerate(hops):
        if not isinstance(h, dict) or not {"i", "j", "R", "t"} <= set(h):
            raise ModelError(f"hoppings[{n}] must be an object with keys i, j, R, t")
        i, j, R = h["i"], h["j"], h["R"]
        if not (_is_int(i) and _is_int(j)):
            raise ModelError(f"hoppings[{n}]: i and j must be integers")
        if not (0 <= i < n_orb and 0 <= j < n_orb):
            raise ModelError(f"hoppings[{n}]: orbital index out of range 0..{n_orb - 1} (i={i}, j={j})")
        if not isinstance(R, list) or len(R) != dim or not all(_is_int(x) for x in R):
            raise ModelError(f"hoppings[{n}]: R must be a list of {dim} integers")
        t = spin_block(h["t"], spinful, f"hoppings[{n}].t")
        if i == j and not any(R) and not np.allclose(t, t.conj().T, atol=1e-10):
            raise ModelError(f"hoppings[{n}]: i = j, R = 0 with a non-Hermitian (non-real) onsite term")
        hi.append(i); hj.append(j); hR.append(R); ht.append(t)
    return (np.array(hi, dtype=np.int64), np.array(hj, dtype=np.int64), np.array(hR, dtype=np.int64).reshape(-1, dim),
            np.array(ht) if ht else np.zeros((0, ns, ns)))


_ENERGY_UNITS = {"eV": 1.0, "meV": 1e-3, "Ry": 13.605693122994, "Ha": 27.211386245988}


def unit_scales(doc: dict[str, Any]) -> tuple[float, float]:
    """Factors from the document's ``length_unit`` to Å and from its ``energy_unit`` to eV."""
    unit = doc.get("length_unit", "angstrom")
    if unit not in ("angstrom", "Å", "A", "bohr"):
        raise ModelError(f"unknown length_unit {unit!r}")
    eunit = doc.get("energy_unit", "eV")
    if eunit not in _ENERGY_UNITS:
        raise ModelError(f"unknown energy_unit {eunit!r} (use one of {sorted(_ENERGY_UNITS)})")
    return (0.529177210903 if unit == "bohr" else 1.0), _ENERGY_UNITS[eunit]

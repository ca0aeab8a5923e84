"""Files that sit beside a Wannier90 ``_hr.dat``: ``seedname.win`` (lattice, ``num_elec``),
``seedname_centres.xyz`` (Wannier centres) and WannierTools' ``wt.in`` (``LATTICE`` card,
``NumOccupied``). Lengths in Å (``bohr`` converted with CODATA 2018)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from topodiff.errors import ModelError

BOHR_ANGSTROM = 0.529177210903  # CODATA 2018

__all__ = ["BOHR_ANGSTROM", "read_win_lattice", "read_wt_lattice", "read_filling", "read_centres", "read_lattice"]


def _win_lines(path: Path) -> list[str]:
    """Lines of a ``.win`` file with comments (``!``, ``#``) removed, lower-cased and stripped."""
    return [re.split(r"[!#]", ln, maxsplit=1)[0].strip() for ln in path.read_text(errors="replace").splitlines()]


def read_win_lattice(path: str | Path) -> np.ndarray | None:
    """Lattice vectors ``[3, 3]`` (rows, Å) from the ``unit_cell_cart`` block of a ``.win`` file.

    Returns None when the file has no such block (WannierTools' examples ship ``.win`` files
    holding only projections); a block that is present but malformed is an error.
    """
    path = Path(path)
    lines = _win_lines(path)
    start = end = None
    for n, line in enumerate(lines):
        words = line.lower().replace(":", " ").split()
        if words[:2] == ["begin", "unit_cell_cart"]:
            start = n + 1
        elif words[:2] == ["end", "unit_cell_cart"] and start is not None:
            end = n
            break
    if start is None:
        return None
    if end is None:
        raise ModelError(f"{path}: 'begin unit_cell_cart' without 'end unit_cell_cart'")
    rows = [(start + 1 + i, r) for i, r in enumerate(lines[start:end]) if r]
    scale = 1.0
    if rows and rows[0][1].lower() in ("bohr", "ang", "angstrom"):
        scale = BOHR_ANGSTROM if rows[0][1].lower() == "bohr" else 1.0
        rows = rows[1:]
    if len(rows) != 3:
        raise ModelError(f"{path}: unit_cell_cart must hold 3 lattice vectors, found {len(rows)}")
    out = []
    for lineno, r in rows:
        try:
            vec = [float(x) for x in r.split()]
        except ValueError:
            raise ModelError(f"{path}:{lineno}: lattice vector is not three numbers: {r!r}") from None
        if len(vec) != 3:
            raise ModelError(f"{path}:{lineno}: lattice vector needs 3 numbers, got {len(vec)}")
        out.append(vec)
    return np.asarray(out) * scale


def read_wt_lattice(path: Path) -> np.ndarray | None:
    """Lattice rows ``[3, 3]`` (Å) from the ``LATTICE`` card of a WannierTools ``wt.in`` (first line
    ``Angstrom`` or ``Bohr``, then three vectors), or None when the card is absent."""
    lines = [ln for ln in _win_lines(path) if ln]
    for n, line in enumerate(lines):
        if line.upper() == "LATTICE" and n + 4 < len(lines):
            unit = lines[n + 1].lower()
            scale = BOHR_ANGSTROM if unit.startswith("bohr") else 1.0
            try:
                rows = np.array([[float(x) for x in lines[n + 2 + i].split()[:3]] for i in range(3)])
            except ValueError:
                raise ModelError(f"{path}: LATTICE card must hold three vectors of three numbers") from None
            if rows.shape != (3, 3):
                raise ModelError(f"{path}: LATTICE card must hold three vectors of three numbers")
            return rows * scale
    return None


def read_filling(directory: Path, win: Path | None) -> tuple[int | None, str | None]:
    """Occupied bands stated beside a ``_hr.dat``, and where: ``num_elec`` in ``seedname.win`` (a
    keyword some workflows add; Wannier90 itself does not need it) or ``NumOccupied`` in
    WannierTools' ``wt.in``. ``(None, None)`` when neither states it."""
    sources = [(win, "num_elec")] if win is not None and win.exists() else []
    sources.append((directory / "wt.in", "NumOccupied"))
    for path, name in sources:
        key = name.lower()
        if not path.is_file():
            continue
        for line in _win_lines(path):
            words = line.lower().replace("=", " ").replace(":", " ").split()
            if len(words) >= 2 and words[0] == key:
                try:
                    return int(float(words[1].rstrip(","))), f"{name} in {path.name}"
                except ValueError:
                    raise ModelError(f"{path}: {key} must be a number, got {words[1]!r}") from None
    return None, None


def read_centres(path: str | Path, num_wann: int) -> np.ndarray:
    """Wannier centres ``[num_wann, 3]`` (Cartesian Å) from ``seedname_centres.xyz``.

    The file is an xyz file whose first ``num_wann`` atoms are ``X x y z`` (Wannier90's
    ``write_xyz = true``); the atoms that follow are ignored.
    """
    path = Path(path)
    lines = path.read_text(errors="replace").splitlines()
    out = []
    for n, line in enumerate(lines[2:2 + num_wann], start=3):
        words = line.split()
        try:
            out.append([float(x) for x in words[1:4]])
        except ValueError:
            raise ModelError(f"{path}:{n}: expected 'X x y z', got {line.strip()!r}") from None
        if len(words) < 4:
            raise ModelError(f"{path}:{n}: expected 'X x y z', got {line.strip()!r}")
    if len(out) != num_wann:
        raise ModelError(f"{path}: {len(out)} Wannier centres for num_wann = {num_wann}")
    return np.asarray(out)


def read_lattice(spec: str) -> np.ndarray:
    """Lattice rows ``[3, 3]`` (Å) from ``--lattice``: a ``.win`` (``unit_cell_cart``), a WannierTools
    ``wt.in`` (``LATTICE``), a POSCAR (scale line, three vectors), or nine numbers ``a1 a2 a3``."""
    path = Path(spec)
    if path.is_file():
        for reader in (read_win_lattice, read_wt_lattice, _poscar_lattice):
            lat = reader(path)
            if lat is not None:
                return lat
        raise ModelError(f"{path}: no lattice found (unit_cell_cart block, LATTICE card or POSCAR cell)")
    try:
        nums = [float(x) for x in re.split(r"[,;\s]+", spec.strip()) if x]
    except ValueError:
        raise ModelError(f"--lattice {spec!r}: not a file and not nine numbers") from None
    if len(nums) != 9:
        raise ModelError(f"--lattice needs nine numbers (three vectors in Å), got {len(nums)}")
    return np.asarray(nums).reshape(3, 3)


def _poscar_lattice(path: Path) -> np.ndarray | None:
    """The cell of a POSCAR/CONTCAR (line 2: scale, lines 3-5: vectors), or None if it is not one."""
    lines = path.read_text(errors="replace").splitlines()
    try:
        scale = float(lines[1].split()[0])
        rows = np.array([[float(x) for x in lines[i].split()[:3]] for i in (2, 3, 4)])
    except (IndexError, ValueError):
        return None
    return rows * scale if rows.shape == (3, 3) and scale > 0 else None

"""Read Wannier90 tight-binding Hamiltonians (``seedname_hr.dat``) into a :class:`TBModel`.

File layout, exactly as Wannier90 writes it (``hamiltonian_write_hr`` in Wannier90's
``hamiltonian.F90``; user guide §8 "seedname_hr.dat")::

    header line (date)
    num_wann
    nrpts
    degeneracy weights, 15 per line (nrpts integers; read with any count per line, extra numbers
    after the nrpts-th ignored, as Wannier90's own list-directed read does)
    R1 R2 R3 m n Re Im        (nrpts × num_wann² rows; m, n are 1-based)

Row ``(R, m, n)`` is ``H_mn(R) = ⟨m, 0|H|n, R⟩`` in eV, and Wannier90's Bloch sum is
``H_mn(k) = Σ_R H_mn(R) e^{ik·R} / deg(R)``. Each amplitude is therefore divided by the degeneracy
of its R-point and becomes the hopping ``t c†_{m-1,0} c_{n-1,R}``. The file lists both ``(R, m, n)``
and ``(−R, n, m)``; :class:`TBModel` implies the Hermitian conjugate, so only one of each pair is
kept (``R`` lexicographically positive, or ``R = 0`` with ``m < n``) after checking that the two
agree (``H(−R) = H(R)†``), and ``R = 0, m = n`` rows become onsite energies.

The lattice comes from ``seedname.win`` (``unit_cell_cart`` block, first line ``bohr`` or ``ang``
optional; else the ``LATTICE`` card of a WannierTools ``wt.in`` beside the file) and the orbital positions from ``seedname_centres.xyz`` (Cartesian Å) when those files sit
beside the ``_hr.dat``; otherwise the cell is the identity (a ``notes`` entry says so) and all
orbitals sit at the origin. The file type is recognised by content (:func:`looks_like_hr`), so names
such as ``wannier90_hr.dat_nsymm48`` work. The filling is not in the file: it comes from the caller,
``num_elec`` in the ``.win`` or ``NumOccupied`` in a WannierTools ``wt.in``; else it is unknown.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from topodiff.errors import ModelError
from topodiff.physics.model import TBModel, filling_problem
from topodiff.physics.wannier90_files import (BOHR_ANGSTROM, read_centres, read_filling, read_win_lattice,  # noqa: F401
                                              read_wt_lattice)
_HERM_ATOL = 2e-5  # Wannier90 prints F12.6: 5e-7 rounding per entry, before dividing by deg


def _seed_path(path: Path, suffix: str) -> Path:
    """``seed_hr.dat`` → ``seed<suffix>`` in the same directory (other names: their stem + suffix)."""
    name = path.name
    seed = name[: name.index("_hr.dat")] if "_hr.dat" in name else path.stem
    return path.with_name(seed + suffix)


def _first_bad_row(lines: list[str], first_line: int) -> int:
    """1-based line number of the first hopping row that is not 7 numbers (slow path, errors only)."""
    for n, line in enumerate(lines):
        words = line.split()
        try:
            [float(w) for w in words]
        except ValueError:
            return first_line + n
        if len(words) != 7:
            return first_line + n
    return first_line + len(lines)


def _fast_rows(path: Path, skip: int, n_rows: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Hopping rows via pandas' C parser straight from the file (no text copies in memory):
    ``(ints [n, 5] int64, values [n, 2] float64)``, or None when the rows do not parse cleanly into
    exactly ``n_rows`` rows (then the slow path names the bad line)."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas comes with pymatgen
        return None
    dtypes = {c: (np.int64 if c < 5 else np.float64) for c in range(7)}
    try:
        df = pd.read_csv(path, sep=r"\s+", header=None, names=list(range(7)), dtype=dtypes, skiprows=skip,
                         engine="c", comment=None, encoding_errors="replace")
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    if len(df) != n_rows:
        return None
    vals = df[[5, 6]].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(vals)):
        return None
    return df[[0, 1, 2, 3, 4]].to_numpy(dtype=np.int64), vals


def _numpy_rows(path: Path, skip: int, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Hopping rows via ``np.fromstring``; raises :class:`ModelError` naming the first bad line."""
    first_row_line = skip + 1
    with open(path, errors="replace") as fh:
        body = "".join(fh.readlines()[skip:])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            flat = np.fromstring(body, dtype=float, sep=" ")  # noqa: NPY201 - text mode, fast C parser
            ok = True
        except (DeprecationWarning, ValueError):
            flat, ok = np.zeros(0), False
    if not ok or flat.size != 7 * n_rows or not np.all(np.isfinite(flat)):
        lines = body.splitlines()
        end = len(lines)
        while end and not lines[end - 1].strip():
            end -= 1
        bad = _first_bad_row(lines[:end], first_row_line)
        if ok and bad >= first_row_line + end and np.all(np.isfinite(flat)):
            raise ModelError(f"{path}: expected {n_rows} hopping rows (nrpts × num_wann²), found {flat.size / 7:g}")
        if bad >= first_row_line + end:
            bad = first_row_line + int(np.argmax(~np.isfinite(flat)) // 7) if flat.size else first_row_line
        raise ModelError(f"{path}:{bad}: hopping row must be 'R1 R2 R3 m n Re Im'")
    rows = flat.reshape(n_rows, 7)
    ints_f = rows[:, :5]
    if np.any(ints_f != np.round(ints_f)):
        bad = int(np.argmax(np.any(ints_f != np.round(ints_f), axis=1)))
        raise ModelError(f"{path}:{first_row_line + bad}: R and orbital indices must be integers")
    return ints_f.astype(np.int64), rows[:, 5:]


def _parse_int(text: str, what: str, lineno: int, path: Path) -> int:
    try:
        value = int(text.split()[0])
    except (ValueError, IndexError):
        raise ModelError(f"{path}:{lineno}: expected {what} (an integer), got {text.strip()!r}") from None
    if value <= 0:
        raise ModelError(f"{path}:{lineno}: {what} must be positive, got {value}")
    return value


def looks_like_hr(path: Path) -> bool:
    """Whether a file's content starts like a ``_hr.dat`` (a header line, then two lines that each
    begin with a positive integer) — file type by content, whatever the file is called."""
    try:
        with open(path, errors="replace") as fh:
            head = [fh.readline() for _ in range(3)]
    except OSError:
        return False
    if head[0].lstrip().startswith(("{", "[")):
        return False
    return all(len(h.split()) >= 1 and h.split()[0].isdigit() and int(h.split()[0]) > 0 for h in head[1:])


def _read_header(path: Path) -> tuple[int, int, np.ndarray, int]:
    """``(num_wann, nrpts, deg [nrpts], skip)``; ``skip`` = lines before the first hopping row.

    The weights are read as Wannier90 reads them (Fortran list-directed: as many lines as it takes
    to hold ``nrpts`` integers, any count per line); numbers after the ``nrpts``-th on the last
    weight line are ignored, as Wannier90 ignores them.
    """
    with open(path, errors="replace") as fh:
        head = [fh.readline() for _ in range(3)]
        if not head[2]:
            raise ModelError(f"{path}: too short for a Wannier90 _hr.dat file (needs header, num_wann, nrpts)")
        num_wann = _parse_int(head[1], "num_wann", 2, path)
        nrpts = _parse_int(head[2], "nrpts", 3, path)
        deg: list[int] = []
        lineno = 3
        while len(deg) < nrpts:
            line = fh.readline()
            if not line:
                raise ModelError(f"{path}: file ends inside the {nrpts} degeneracy weights")
            lineno += 1
            try:
                deg.extend(int(w) for w in line.split())
            except ValueError:
                raise ModelError(f"{path}:{lineno}: degeneracy weights must be integers (expected {nrpts} "
                                 f"of them), got {line.strip()[:60]!r}") from None
    weights = np.asarray(deg[:nrpts], dtype=np.int64)
    if np.any(weights <= 0):
        raise ModelError(f"{path}: degeneracy weights must be positive")
    return num_wann, nrpts, weights, lineno


def _hr_blocks(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(Rpts [nrpts, 3], H [nrpts, nw, nw])`` of a ``_hr.dat``, each block divided by its degeneracy."""
    num_wann, nrpts, deg, skip = _read_header(path)
    first_row_line = skip + 1
    n_rows = nrpts * num_wann * num_wann
    parsed = _fast_rows(path, skip, n_rows)
    ints, vals = parsed if parsed is not None else _numpy_rows(path, skip, n_rows)
    R = ints[:, :3]
    m = ints[:, 3] - 1
    n = ints[:, 4] - 1
    out = (m < 0) | (m >= num_wann) | (n < 0) | (n >= num_wann)
    if np.any(out):
        bad = int(np.argmax(out))
        raise ModelError(f"{path}:{first_row_line + bad}: orbital index out of range 1..{num_wann}")
    # Wannier90 writes one block of num_wann² rows per R-point, in the order of the weights.
    blocks = R.reshape(nrpts, num_wann * num_wann, 3)
    mixed = np.any(blocks != blocks[:, :1], axis=(1, 2))
    if np.any(mixed):
        b = int(np.argmax(mixed))
        row = int(np.argmax(np.any(blocks[b] != blocks[b, :1], axis=1)))
        raise ModelError(f"{path}:{first_row_line + b * num_wann ** 2 + row}: R changes inside the block of "
                         f"R-point {b + 1} (each R-point needs num_wann² consecutive rows)")
    Rpts = blocks[:, 0]
    uniq, counts = np.unique(Rpts, axis=0, return_counts=True)
    if np.any(counts > 1):
        raise ModelError(f"{path}: R-point {uniq[counts > 1][0].tolist()} is listed more than once")
    H = np.zeros((nrpts, num_wann, num_wann), dtype=np.complex128)
    block_of_row = np.repeat(np.arange(nrpts), num_wann * num_wann)
    H[block_of_row, m, n] = vals[:, 0] + 1j * vals[:, 1]
    seen = np.bincount((block_of_row * num_wann + m) * num_wann + n, minlength=n_rows).reshape(nrpts, -1)
    if np.any(seen != 1):
        b = int(np.argmax(np.any(seen != 1, axis=1)))
        raise ModelError(f"{path}: R-point {Rpts[b].tolist()} does not list every (m, n) pair exactly once")
    H /= deg[:, None, None]
    return Rpts, H


def _hermitian_hoppings(path: Path, Rpts: np.ndarray, H: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Check ``H(−R) = H(R)†`` and keep one of each pair: ``(onsite, i, j, R, t)``."""
    nrpts, num_wann = H.shape[0], H.shape[1]
    key = {tuple(r): idx for idx, r in enumerate(Rpts.tolist())}
    partner = np.array([key.get(tuple(-x for x in r), -1) for r in Rpts.tolist()], dtype=np.int64)
    scale = max(1.0, float(np.abs(H).max()))
    lonely = partner < 0
    if np.any(lonely & (np.abs(H).max(axis=(1, 2)) > _HERM_ATOL * scale)):
        b = int(np.argmax(lonely & (np.abs(H).max(axis=(1, 2)) > _HERM_ATOL * scale)))
        raise ModelError(f"{path}: not Hermitian: R = {Rpts[b].tolist()} has hoppings but -R is missing")
    has = ~lonely
    diff = np.abs(H[has] - np.conj(np.swapaxes(H[partner[has]], 1, 2)))
    if diff.size and diff.max() > _HERM_ATOL * scale:
        b, i, j = np.unravel_index(int(np.argmax(diff)), diff.shape)
        r = Rpts[has][b].tolist()
        raise ModelError(f"{path}: not Hermitian: H_{i + 1},{j + 1}(R={r}) != conj(H_{j + 1},{i + 1}(-R)) "
                         f"(difference {diff.max():.3g} eV)")
    Hs = H.copy()
    Hs[has] = 0.5 * (H[has] + np.conj(np.swapaxes(H[partner[has]], 1, 2)))
    nz = Rpts != 0
    first_nz = np.argmax(nz, axis=1)
    positive = np.any(nz, axis=1) & (Rpts[np.arange(nrpts), first_nz] > 0)
    zero = ~np.any(nz, axis=1)
    onsite = np.zeros(num_wann)
    keep_mask = np.zeros((nrpts, num_wann, num_wann), dtype=bool)
    keep_mask[positive] = True
    if np.any(zero):
        z = int(np.argmax(zero))
        onsite = np.real(np.diagonal(Hs[z])).copy()
        keep_mask[z] = np.triu(np.ones((num_wann, num_wann), dtype=bool), k=1)
    keep_mask &= Hs != 0
    b_idx, i_idx, j_idx = np.nonzero(keep_mask)
    return onsite, i_idx, j_idx, Rpts[b_idx], Hs[b_idx, i_idx, j_idx]


def _geometry(path: Path, num_wann: int, win: str | Path | None, centres: str | Path | None
              ) -> tuple[np.ndarray, np.ndarray, list[str], Path]:
    """Lattice ``[3, 3]`` (Å), reduced centres ``[num_wann, 3]``, notes on what was assumed, .win path."""
    win_path = Path(win) if win is not None else _seed_path(path, ".win")
    if win is None and not win_path.exists() and (path.parent / "wannier90.win").exists():
        win_path = path.parent / "wannier90.win"  # WannierTools' examples: any name beside wannier90.win
    centres_path = Path(centres) if centres is not None else _seed_path(path, "_centres.xyz")
    if win is not None and not win_path.exists():
        raise ModelError(f"{win_path}: .win file not found")
    if centres is not None and not centres_path.exists():
        raise ModelError(f"{centres_path}: centres file not found")
    notes: list[str] = []
    lattice3 = read_win_lattice(win_path) if win_path.exists() else None
    wt_in = path.parent / "wt.in"
    if lattice3 is None and win is None and wt_in.is_file():
        lattice3 = read_wt_lattice(wt_in)
        if lattice3 is not None:
            notes.append("lattice from the LATTICE card of wt.in (WannierTools input beside the file)")
    if lattice3 is None:
        why = f"{win_path.name} has no unit_cell_cart block" if win_path.exists() else "no .win beside the file"
        notes.append(f"lattice: identity cell ({why}); integer invariants do not depend on it, Cartesian "
                     "quantities (k-path lengths, sphere radii) are in reduced units")
        lattice3 = np.eye(3)
    if abs(np.linalg.det(lattice3)) < 1e-10:
        raise ModelError(f"{win_path}: lattice vectors are linearly dependent")
    if centres_path.exists():
        reduced3 = read_centres(centres_path, num_wann) @ np.linalg.inv(lattice3)  # r = τ · A
    else:
        reduced3 = np.zeros((num_wann, 3))
    return lattice3, reduced3, notes, win_path


def read_hr(path: str | Path, *, win: str | Path | None = None, centres: str | Path | None = None,
            filling: int | None = None) -> TBModel:
    """Read a Wannier90 ``seedname_hr.dat`` into a :class:`TBModel` (energies eV, lengths Å).

    Parameters
    ----------
    path : the ``_hr.dat`` file (any name: the type is read from the content).
    win : ``seedname.win`` for the lattice; default: the one beside ``path`` (or ``wannier90.win``).
    centres : ``seedname_centres.xyz`` for orbital positions; default: the one beside ``path``.
    filling : occupied bands (``NumOccupied``); default: ``num_elec`` in the ``.win`` or
        ``NumOccupied`` in a WannierTools ``wt.in`` beside the file, else unknown
        (``filling_required``: :attr:`TBModel.occupied` then asks for it, no half-filling guess).

    Returns
    -------
    A spinless-basis model with ``num_wann`` orbitals (spin, if any, is part of the Wannier basis).
    Its dimension is the number of directions along which some non-zero hopping has ``R ≠ 0``;
    ``notes`` say what was assumed (identity cell, where the filling came from).

    Raises
    ------
    ModelError
        Malformed file (with the line number), inconsistent degeneracies, or non-Hermitian data.
    """
    path = Path(path)
    Rpts, H = _hr_blocks(path)
    num_wann = H.shape[1]
    onsite, i_idx, j_idx, hop_R, hop_t = _hermitian_hoppings(path, Rpts, H)
    del H
    # Dimension: directions along which some non-zero hopping has R != 0.
    periodic = np.flatnonzero(np.any(hop_R != 0, axis=0)) if len(hop_R) else np.zeros(0, dtype=np.int64)
    if periodic.size == 0:
        raise ModelError(f"{path}: no hopping between different cells: not a periodic model")
    lattice3, reduced3, notes, win_path = _geometry(path, num_wann, win, centres)
    if filling is None:
        filling, source = read_filling(path.parent, win_path)
        if filling is not None:
            notes.append(f"filling {filling} from {source}")
    problem = None if filling is None else filling_problem(filling, num_wann)
    if problem:
        raise ModelError(f"{path}: {problem}")
    return TBModel(lattice=lattice3[periodic], orbitals=reduced3[:, periodic], onsite=onsite,
                   hop_i=i_idx, hop_j=j_idx, hop_R=hop_R[:, periodic], hop_t=hop_t, spinful=False,
                   filling=filling, name=_seed_path(path, "").name or "wannier90",
                   filling_required=filling is None, notes=tuple(notes))


def write_hr(path: str | Path, Rs: np.ndarray, H: np.ndarray, deg: np.ndarray | None = None,
             header: str = "written by topodiff") -> Path:
    """Write ``H_mn(R)`` (``[nrpts, nw, nw]``, already multiplied by ``deg``) in Wannier90 layout.

    Mainly for tests and round trips; rows are ``R1 R2 R3 m n Re Im`` with ``m`` fastest.
    """
    from topodiff.io_utils import atomic_write_text

    Rs = np.asarray(Rs, dtype=np.int64).reshape(-1, 3)
    H = np.asarray(H, dtype=np.complex128)
    nr, nw = H.shape[0], H.shape[1]
    deg = np.ones(nr, dtype=np.int64) if deg is None else np.asarray(deg, dtype=np.int64)
    deg_lines = [" ".join(f"{d:5d}" for d in deg[i:i + 15]) for i in range(0, nr, 15)]
    # column-major like Wannier90: for each R, n outer, m inner
    m_col = np.tile(np.tile(np.arange(1, nw + 1), nw), nr)
    n_col = np.tile(np.repeat(np.arange(1, nw + 1), nw), nr)
    R_col = np.repeat(Rs, nw * nw, axis=0)
    vals = H[np.repeat(np.arange(nr), nw * nw), m_col - 1, n_col - 1]
    fmt = "%5d%5d%5d%5d%5d%12.6f%12.6f"
    body = "\n".join(fmt % row for row in zip(R_col[:, 0], R_col[:, 1], R_col[:, 2], m_col, n_col,
                                              vals.real, vals.imag))
    text = "\n".join([header, f"{nw:12d}", f"{nr:12d}", *deg_lines, body]) + "\n"
    return atomic_write_text(path, text)

"""Band structures along high-symmetry paths, band gaps on a grid, and the density of states.

k-points are reduced coordinates κ (``k = 2π Σ κ_i b_i / 2π``, i.e. ``k·a_i = 2π κ_i``); energies eV.
Path distances ``x`` are Cartesian lengths in Å⁻¹ (reciprocal vectors ``b_i·a_j = 2π δ_ij``).

High-symmetry paths:

* 1D: Γ (0) → X (1/2) → Γ (1), so ribbon edge crossings at κ = 1/2 sit in the middle.
* 2D: detected from the lattice metric — hexagonal (|a1| = |a2|, 60°/120°): Γ-K-M-Γ; square:
  Γ-X-M-Γ; rectangular: Γ-X-S-Y-Γ; oblique: Γ-X-M-Γ-Y.
* 3D: the standard path of seekpath (Hinuma et al., Comp. Mat. Sci. 128, 140 (2017)) for the space
  group of the crystal when its atoms are given (else of the Bravais lattice of the model's cell, one
  atom at the origin), found at the project tolerances (:mod:`topodiff.crystal.symmetry`: 0.1 Å, 5°)
  and mapped back to the model's own reciprocal basis (seekpath works in its standardised primitive
  cell); :attr:`KPath.space_group` records the group seekpath used.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
import torch

from topodiff.crystal.symmetry import ANGLE_TOLERANCE, SYMPREC
from topodiff.errors import TopodiffInputError
from topodiff.physics.model import TBModel, k_grid
from topodiff.physics.spectra import resolve_filling

Node = tuple[str, np.ndarray]


@dataclass
class KPath:
    """A path through the Brillouin zone: continuous pieces, each a list of ``(label, κ)`` nodes."""

    pieces: list[list[Node]]
    space_group: int | None = None  # the space group the path was chosen for (3D seekpath paths)

    @property
    def dim(self) -> int:
        return int(np.asarray(self.pieces[0][0][1]).shape[0])


class BandStructure(NamedTuple):
    """``x [n_k]`` (Å⁻¹ along the path), ``energies [n_k, nb]`` (eV), tick positions and labels."""

    x: np.ndarray
    energies: np.ndarray
    ticks: np.ndarray
    labels: list[str]


@dataclass
class GapInfo:
    """Band gaps at a filling (eV) from every energy computed (grid, path, special points).

    ``direct`` = min_k [E_f(k) − E_{f−1}(k)] at ``k_direct``; ``indirect`` = CBM − VBM with the band
    edges at ``k_vbm`` / ``k_cbm``; ``*_at`` name where each was found (a high-symmetry label, or
    ``"grid"`` / ``"path"`` / ``"special"``). ``kind``: ``"direct"`` (the fundamental gap is the direct
    gap, e.g. VBM and CBM at one k or at symmetry-equivalent k), ``"indirect"``, or ``"none"`` (bands
    overlap: metal or semimetal, ``indirect <= 0``).
    """

    direct: float
    indirect: float
    k_direct: np.ndarray
    vbm: float
    cbm: float
    filling: int
    k_vbm: np.ndarray | None = None
    k_cbm: np.ndarray | None = None
    direct_at: str = "grid"
    vbm_at: str = "grid"
    cbm_at: str = "grid"
    num_k: int = 0

    @property
    def kind(self) -> str:
        if self.indirect <= 0:
            return "none"
        return "direct" if self.direct - self.indirect <= 1e-6 * max(1.0, abs(self.indirect)) else "indirect"

    def to_dict(self) -> dict[str, object]:
        def k(x: np.ndarray | None) -> list[float] | None:
            return None if x is None else [float(v) for v in x]

        return {"direct_gap": self.direct, "indirect_gap": self.indirect, "k_direct": k(self.k_direct),
                "vbm": self.vbm, "cbm": self.cbm, "filling": self.filling, "gap_type": self.kind,
                "k_vbm": k(self.k_vbm), "k_cbm": k(self.k_cbm), "direct_gap_at": self.direct_at,
                "vbm_at": self.vbm_at, "cbm_at": self.cbm_at, "gap_kpoints": self.num_k}


def reciprocal_lattice(lattice: np.ndarray) -> np.ndarray:
    """Reciprocal vectors ``[dim, n_cart]`` (rows, Å⁻¹) with ``b_i·a_j = 2π δ_ij`` (any dim ≤ n_cart)."""
    lattice = np.atleast_2d(np.asarray(lattice, dtype=float))
    return 2.0 * np.pi * np.linalg.pinv(lattice).T


def _kappa(*xs: float) -> np.ndarray:
    return np.asarray(xs, dtype=float)


def _path_2d(lattice: np.ndarray) -> KPath:
    a1, a2 = lattice[0], lattice[1]
    l1, l2 = np.linalg.norm(a1), np.linalg.norm(a2)
    cos = float(a1 @ a2 / (l1 * l2))
    same = abs(l1 - l2) < 1e-6 * max(l1, l2)
    G, X, Y, M = _kappa(0, 0), _kappa(0.5, 0), _kappa(0, 0.5), _kappa(0.5, 0.5)
    if same and abs(abs(cos) - 0.5) < 1e-6:
        B = reciprocal_lattice(lattice)
        shifts = np.array([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)], dtype=float)
        cands = [_kappa(1 / 3, 1 / 3), _kappa(2 / 3, 1 / 3), _kappa(1 / 3, 2 / 3), _kappa(2 / 3, 2 / 3)]
        # K is a Brillouin-zone corner: the candidate whose shortest image is longest
        images = [c[None] + shifts for c in cands]
        norms = np.array([np.min(np.linalg.norm(im @ B, axis=1)) for im in images])
        best = images[int(np.flatnonzero(norms > norms.max() * (1 - 1e-9))[0])]
        K = best[int(np.argmin(np.linalg.norm(best @ B, axis=1)))]  # the image inside the first zone
        return KPath([[("Γ", G), ("K", K), ("M", X), ("Γ", G)]])
    if abs(cos) < 1e-6:
        if same:
            return KPath([[("Γ", G), ("X", X), ("M", M), ("Γ", G)]])
        return KPath([[("Γ", G), ("X", X), ("S", M), ("Y", Y), ("Γ", G)]])
    return KPath([[("Γ", G), ("X", X), ("M", M), ("Γ", G), ("Y", Y)]])


def _supercell_of(A: np.ndarray, res: dict, atol: float) -> np.ndarray | None:
    """Integer ``N`` with ``A = N P R`` (P: seekpath's primitive cell, R its rotation), or None."""
    P = np.asarray(res["primitive_lattice"], dtype=float)
    rot = np.asarray(res.get("rotation_matrix", np.eye(3)), dtype=float)
    for Rm in (rot, rot.T, np.eye(3)):
        inv = A @ np.linalg.inv(P @ Rm)
        if np.allclose(inv, np.round(inv), atol=atol) and abs(np.linalg.det(np.round(inv))) >= 1:
            return np.round(inv)  # rounding removes the strain of a cell idealised at symprec
    return None


_GREEK = {"GAMMA": "Γ", "SIGMA": "Σ", "DELTA": "Δ", "LAMBDA": "Λ"}
_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def point_label(seekpath_label: str) -> str:
    """A seekpath point name as printed in the literature: ``GAMMA`` → Γ, ``SIGMA_0`` → Σ₀, ``X_1`` → X₁."""
    name, _, index = seekpath_label.partition("_")
    name = _GREEK.get(name, name)
    if not index:
        return name
    return name + (index.translate(_SUBSCRIPTS) if index.isdigit() else f"_{index}")


def _path_3d(lattice: np.ndarray, atoms: tuple[np.ndarray, np.ndarray] | None = None,
             symprec: float = SYMPREC) -> KPath:
    """seekpath's path for the crystal (or the bare lattice) mapped onto the model's cell.

    Tried in order: the atoms at ``symprec``, the bare lattice at ``symprec``, the bare lattice at
    1e-5 Å (always maps: a cell nearly symmetric at ``symprec`` but not exactly so is idealised by
    seekpath into a cell that is not an integer supercell of the model's).
    """
    import seekpath

    A = np.asarray(lattice, dtype=float)[:, :3]
    if A.shape != (3, 3):
        raise TopodiffInputError("a 3D model needs three 3-component lattice vectors for a k-path")
    bare = (A, [[0.0, 0.0, 0.0]], [1])
    tries = [(bare, symprec), (bare, 1e-5)]
    if atoms is not None:
        tries.insert(0, ((A, np.mod(atoms[0], 1.0), list(atoms[1])), symprec))
    for cell, prec in tries:
        res = seekpath.get_path(cell, with_time_reversal=True, symprec=prec, angle_tolerance=ANGLE_TOLERANCE)
        N = _supercell_of(A, res, atol=0.1)
        if N is not None:
            break
    else:
        raise TopodiffInputError("could not map seekpath's k-path onto the model's lattice")  # pragma: no cover
    to_model = N.T  # κ_model = κ_seekpath @ N^T

    def conv(label: str) -> Node:
        return point_label(label), np.asarray(res["point_coords"][label], dtype=float) @ to_model

    pieces: list[list[Node]] = []
    for start, end in res["path"]:
        if pieces and pieces[-1][-1][0] == point_label(start):
            pieces[-1].append(conv(end))
        else:
            pieces.append([conv(start), conv(end)])
    return KPath(pieces, space_group=int(res["spacegroup_number"]))


def high_symmetry_path(model_or_lattice: TBModel | np.ndarray, *, atoms: tuple[np.ndarray, np.ndarray] | None = None,
                       symprec: float = SYMPREC) -> KPath:
    """Standard high-symmetry path for a model (or a ``[dim, n_cart]`` lattice); see module docstring.

    ``atoms = (frac [n, 3], atomic numbers [n])`` of a crystal in the model's cell (3D): seekpath then
    uses the crystal's space group at ``symprec`` (Å; default the project's, as every space group
    topodiff shows), not only its lattice, so the path matches the space group shown.
    """
    lattice = model_or_lattice.lattice if isinstance(model_or_lattice, TBModel) else np.atleast_2d(
        np.asarray(model_or_lattice, dtype=float))
    dim = lattice.shape[0]
    if dim == 1:
        return KPath([[("Γ", _kappa(0)), ("X", _kappa(0.5)), ("Γ", _kappa(1.0))]])
    if dim == 2:
        return _path_2d(lattice)
    if dim == 3:
        return _path_3d(lattice, atoms, symprec)
    raise TopodiffInputError(f"no k-path for dimension {dim}")


def sample_path(path: KPath, lattice: np.ndarray, n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Points along ``path``: ``(k [m, dim], x [m] Å⁻¹, ticks [n_ticks], labels)``.

    About ``n`` points in total, spread in proportion to the Cartesian length of each segment; every
    node is included. Where two pieces meet (a jump in the path) the tick label is ``"A|B"``.
    """
    if n < 2:
        raise TopodiffInputError(f"a band path needs at least 2 points, got {n}")
    B = reciprocal_lattice(lattice)
    segs = [(a, b) for piece in path.pieces for a, b in zip(piece[:-1], piece[1:])]
    lengths = np.array([np.linalg.norm((b[1] - a[1]) @ B) for a, b in segs])
    total = lengths.sum() if lengths.sum() > 0 else 1.0
    ks, xs, ticks, labels = [], [], [0.0], [path.pieces[0][0][0]]
    x0 = 0.0
    seg_idx = 0
    for p, piece in enumerate(path.pieces):
        if p > 0:
            labels[-1] = f"{labels[-1]}|{piece[0][0]}"
        for s, (a, b) in enumerate(zip(piece[:-1], piece[1:])):
            m = max(2, int(round(n * lengths[seg_idx] / total)) + 1)
            t = np.linspace(0.0, 1.0, m)
            if s > 0:
                t = t[1:]  # the start node is the previous segment's end
            ks.append(a[1][None] + t[:, None] * (b[1] - a[1])[None])
            xs.append(x0 + t * lengths[seg_idx])
            x0 += lengths[seg_idx]
            ticks.append(x0)
            labels.append(b[0])
            seg_idx += 1
    return np.concatenate(ks), np.concatenate(xs), np.asarray(ticks), labels


def _eigvalsh(model: TBModel, k: np.ndarray, chunk: int = 20000) -> np.ndarray:
    """Sorted eigenvalues ``[n_k, nb]`` (eV) at reduced k ``[n_k, dim]``, chunked for memory."""
    out = [torch.linalg.eigvalsh(model.hamiltonian(k[s:s + chunk])).numpy() for s in range(0, len(k), chunk)]
    return np.concatenate(out) if out else np.zeros((0, model.num_bands))


def band_structure(model: TBModel, path: KPath | Sequence[Node] | None = None, n: int = 300) -> BandStructure:
    """Bands along a path (default :func:`high_symmetry_path`) with about ``n`` k-points.

    ``path`` may be a :class:`KPath` or one continuous list of ``(label, κ)`` nodes.
    """
    if path is None:
        path = high_symmetry_path(model)
    elif not isinstance(path, KPath):
        path = KPath([[(str(lab), np.asarray(kap, dtype=float).reshape(-1)) for lab, kap in path]])
    if path.dim != model.dim:
        raise TopodiffInputError(f"k-path is {path.dim}D but the model is {model.dim}D")
    k, x, ticks, labels = sample_path(path, model.lattice, n)
    return BandStructure(x, _eigvalsh(model, k), ticks, labels)


def _default_nk(dim: int) -> int:
    return {1: 400, 2: 60, 3: 20}[dim]


SPECIAL_FRACTIONS = (0.0, 0.25, 1 / 3, 0.5, 2 / 3, 0.75)


def special_points(dim: int) -> np.ndarray:
    """``[6**dim, dim]`` reduced points with components in {0, 1/4, 1/3, 1/2, 2/3, 3/4}: every TRIM and
    the corners of hexagonal, cubic and other common zones (K of graphene is (1/3, 1/3) or (1/3, 2/3)
    depending on the cell), whatever cell the model uses."""
    return np.stack(np.meshgrid(*[np.asarray(SPECIAL_FRACTIONS)] * dim, indexing="ij"), -1).reshape(-1, dim)


def _label(k: np.ndarray, path: KPath, source: str) -> str:
    """High-symmetry label of ``k`` if it is (modulo a reciprocal vector) a path node, else ``source``."""
    for piece in path.pieces:
        for lab, node in piece:
            d = np.remainder(k - node + 0.5, 1.0) - 0.5
            if np.abs(d).max() < 1e-9:
                return lab
    return source


def band_gaps(model: TBModel, filling: int | None = None, nk: int | None = None, *, path_points: int = 300
              ) -> GapInfo:
    """Direct and indirect gaps between bands ``filling−1`` and ``filling`` from every energy computed:
    a uniform ``nk^dim`` grid, the high-symmetry path (``path_points`` points) and the special points
    (:func:`special_points`), so a Dirac point at K is not missed by a grid that does not hold K.

    A negative indirect gap means the bands overlap in energy (a semimetal/metal at this filling).
    """
    f = resolve_filling(model, filling)
    nk = _default_nk(model.dim) if nk is None else int(nk)
    if nk <= 0:
        raise TopodiffInputError(f"nk must be positive, got {nk}")
    path = high_symmetry_path(model)
    k_path = sample_path(path, model.lattice, max(2, path_points))[0]
    parts = {"grid": k_grid([nk] * model.dim).reshape(-1, model.dim), "path": k_path,
             "special": special_points(model.dim)}
    k = np.concatenate(list(parts.values()))
    source = np.repeat(list(parts), [len(v) for v in parts.values()])
    e = _eigvalsh(model, k)
    d = e[:, f] - e[:, f - 1]
    i, iv, ic = int(np.argmin(d)), int(np.argmax(e[:, f - 1])), int(np.argmin(e[:, f]))
    return GapInfo(float(d[i]), float(e[ic, f] - e[iv, f - 1]), k[i], float(e[iv, f - 1]), float(e[ic, f]), f,
                   k_vbm=k[iv], k_cbm=k[ic], direct_at=_label(k[i], path, str(source[i])),
                   vbm_at=_label(k[iv], path, str(source[iv])), cbm_at=_label(k[ic], path, str(source[ic])),
                   num_k=len(k))


def density_of_states(energies: np.ndarray, *, sigma: float = 0.05, grid: np.ndarray | None = None,
                      n: int = 500, chunk: int = 200_000) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-broadened density of states per eV per cell.

    Parameters
    ----------
    energies : ``[n_k, nb]`` eigenvalues on a uniform k-grid (eV).
    sigma : Gaussian width (eV).
    grid : energies at which to evaluate (default ``n`` points spanning the bands ± 4σ).

    Returns
    -------
    ``(E [n_E], dos [n_E])`` with ``∫ dos dE = nb`` (all states, one cell).
    """
    energies = np.asarray(energies, dtype=float)
    if energies.ndim != 2:
        raise TopodiffInputError("energies must have shape [n_k, nb]")
    if sigma <= 0:
        raise TopodiffInputError(f"sigma must be positive, got {sigma}")
    n_k = energies.shape[0]
    flat = energies.reshape(-1)
    if grid is None:
        grid = np.linspace(flat.min() - 4 * sigma, flat.max() + 4 * sigma, n)
    grid = np.asarray(grid, dtype=float)
    dos = np.zeros_like(grid)
    norm = 1.0 / (n_k * sigma * np.sqrt(2 * np.pi))
    step = max(1, chunk // max(1, grid.size))
    for s in range(0, flat.size, step):
        z = (grid[:, None] - flat[None, s:s + step]) / sigma
        dos += np.exp(-0.5 * z * z).sum(axis=1)
    return grid, dos * norm


def model_dos(model: TBModel, nk: int | None = None, *, sigma: float = 0.05,
              n: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Density of states of ``model`` on a uniform ``nk^dim`` grid (see :func:`density_of_states`)."""
    nk = _default_nk(model.dim) if nk is None else int(nk)
    if nk <= 0:
        raise TopodiffInputError(f"nk must be positive, got {nk}")
    k = k_grid([nk] * model.dim).reshape(-1, model.dim)
    return density_of_states(_eigvalsh(model, k), sigma=sigma, n=n)

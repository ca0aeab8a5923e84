"""The tight-binding model core: a hopping table and its batched Bloch Hamiltonian.

Conventions (CONTRACTS §1):

* ``lattice`` rows are real-space lattice vectors in Cartesian coordinates (Å); the number of rows
  is the model's dimension ``dim``.
* ``orbitals`` are orbital positions τ in reduced coordinates, shape ``[n_orb, dim]``.
* Spinful models have two states per orbital, ordered ``(orb0,up), (orb0,dn), (orb1,up), ...``.
* A hopping ``(i, j, R, t)`` is the term ``t c†_{i,0} c_{j,R}``; its Hermitian conjugate is implied.
* Bloch convention II (default): ``H_ij(k) = Σ_R t_ij(R) exp(2πi κ·(R + τ_j − τ_i))``;
  convention I drops τ (``H(κ+G) = H(κ)`` exactly, convenient for closed Wilson loops).

Energies are in eV. All physics is float64 / complex128 in torch, so it runs batched on CPU or GPU
and is differentiable with respect to the hopping table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Sequence

import numpy as np
import torch

from topodiff.errors import ModelError, TopodiffInputError
from topodiff.physics.tb_document import (block_to_json, parse_geometry, parse_hoppings, parse_onsite,
                                          unit_scales)

FORMAT = "topodiff-tb/1"
REAL = torch.float64
COMPLEX = torch.complex128


def filling_problem(filling: Any, num_bands: int) -> str | None:
    """Why ``filling`` is not a count of occupied bands of a model with ``num_bands`` bands (an integer
    in ``1..num_bands-1``), or None when it is. The one wording of this check for every caller."""
    whole = isinstance(filling, (int, np.integer)) or isinstance(filling, float) and filling.is_integer()
    if isinstance(filling, bool) or not whole:
        return f"filling must be an integer number of occupied bands, got {filling!r}"
    if num_bands < 2:
        return (f"the model has {num_bands} band: there is no gap to fill (a filling, gap or invariant needs "
                "at least 2 bands)")
    if not 0 < int(filling) < num_bands:
        allowed = "1" if num_bands == 2 else f"between 1 and {num_bands - 1}"
        return f"filling must be {allowed} (the model has {num_bands} bands), got {filling}"
    return None


def checked_filling(filling: Any, num_bands: int) -> int:
    """``filling`` as an int, or a :class:`TopodiffInputError` saying :func:`filling_problem`."""
    problem = filling_problem(filling, num_bands)
    if problem:
        raise TopodiffInputError(problem)
    return int(filling)


@dataclass
class TBModel:
    """A tight-binding model: lattice, orbital positions, onsite energies and a hopping table.

    Parameters
    ----------
    lattice : ``[dim, n_cart]`` lattice vectors (rows, Å).
    orbitals : ``[n_orb, dim]`` reduced orbital positions.
    onsite : ``[n_orb, ns, ns]`` complex onsite blocks (ns = 2 if spinful else 1), Hermitian.
    hop_i, hop_j : ``[n_hop]`` orbital indices; hop_R ``[n_hop, dim]`` integer cell offsets;
    hop_t : ``[n_hop, ns, ns]`` complex amplitudes of ``t c†_i c_{j,R}`` (h.c. implied).
    filling : occupied bands counted from the bottom (default: half of the states).
    filling_required : the source (a Wannier90 file) does not say how many bands are occupied, so
        half filling is no default: :attr:`occupied` raises until a ``filling`` is given.
    notes : what the reader assumed (e.g. an identity cell), shown to users beside results.
    """

    lattice: np.ndarray
    orbitals: np.ndarray
    onsite: np.ndarray
    hop_i: np.ndarray
    hop_j: np.ndarray
    hop_R: np.ndarray
    hop_t: np.ndarray
    spinful: bool = False
    filling: int | None = None
    name: str = "model"
    params: dict[str, float] = field(default_factory=dict)
    filling_required: bool = False
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.lattice = np.atleast_2d(np.asarray(self.lattice, dtype=float))
        dim = self.lattice.shape[0]
        self.orbitals = np.asarray(self.orbitals, dtype=float).reshape(-1, dim)
        ns = 2 if self.spinful else 1
        n_orb = self.orbitals.shape[0]
        self.onsite = np.asarray(self.onsite, dtype=np.complex128).reshape(n_orb, ns, ns)
        self.hop_i = np.asarray(self.hop_i, dtype=np.int64).reshape(-1)
        self.hop_j = np.asarray(self.hop_j, dtype=np.int64).reshape(-1)
        self.hop_R = np.asarray(self.hop_R, dtype=np.int64).reshape(-1, dim)
        self.hop_t = np.asarray(self.hop_t, dtype=np.complex128).reshape(-1, ns, ns)
        self.validate()

    # ------------------------------------------------------------------ basic shape facts
    @property
    def dim(self) -> int:
        """Number of periodic directions (rows of ``lattice``)."""
        return int(self.lattice.shape[0])

    @property
    def n_orb(self) -> int:
        return int(self.orbitals.shape[0])

    @property
    def n_spin(self) -> int:
        return 2 if self.spinful else 1

    @property
    def num_bands(self) -> int:
        """Number of basis states (= bands): ``n_orb × n_spin``."""
        return self.n_orb * self.n_spin

    @property
    def occupied(self) -> int:
        """Number of occupied bands (``filling``, default half filling unless ``filling_required``)."""
        if self.filling is not None:
            return int(self.filling)
        if self.filling_required:
            raise ModelError(f"model {self.name!r}: the number of occupied bands is unknown (a Wannier90 file "
                             "does not hold it); pass --filling N (NumOccupied), or put num_elec in seedname.win")
        return self.num_bands // 2

    @property
    def state_positions(self) -> np.ndarray:
        """``[num_bands, dim]`` reduced position of every basis state (spin copies share τ)."""
        return np.repeat(self.orbitals, self.n_spin, axis=0)

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise :class:`ModelError` on wrong shapes, bad indices, non-finite or non-Hermitian data."""
        n = self.n_orb
        if n == 0:
            raise ModelError("model has no orbitals")
        if self.dim not in (1, 2, 3):
            raise ModelError(f"lattice must have 1, 2 or 3 vectors, got {self.dim}")
        for name, arr in (("lattice", self.lattice), ("orbitals", self.orbitals), ("onsite", self.onsite),
                          ("hoppings", self.hop_t)):
            if not np.all(np.isfinite(arr)):
                raise ModelError(f"{name}: non-finite number")
        if self.lattice.shape[1] < self.dim:
            raise ModelError(f"lattice vectors need at least {self.dim} Cartesian components")
        gram = self.lattice @ self.lattice.T
        if abs(np.linalg.det(gram)) < 1e-12:
            raise ModelError("lattice vectors are linearly dependent")
        if not np.allclose(self.onsite, np.conj(np.swapaxes(self.onsite, 1, 2)), atol=1e-10):
            raise ModelError("onsite term is not Hermitian (complex onsite energy)")
        for name, idx in (("i", self.hop_i), ("j", self.hop_j)):
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                bad = int(idx[(idx < 0) | (idx >= n)][0])
                raise ModelError(f"hopping orbital index {name}={bad} out of range 0..{n - 1}")
        if not (self.hop_i.shape[0] == self.hop_j.shape[0] == self.hop_R.shape[0] == self.hop_t.shape[0]):
            raise ModelError("hopping arrays have different lengths")
        local = (self.hop_i == self.hop_j) & np.all(self.hop_R == 0, axis=1)
        if np.any(local):
            t = self.hop_t[local]
            if not np.allclose(t, np.conj(np.swapaxes(t, 1, 2)), atol=1e-10):
                raise ModelError("hopping with i = j and R = 0 is a non-Hermitian onsite term")
        problem = None if self.filling is None else filling_problem(self.filling, self.num_bands)
        if problem:
            raise ModelError(problem)

    # ------------------------------------------------------------------ the hopping table
    @cached_property
    def table(self) -> tuple[np.ndarray, np.ndarray]:
        """Dense hopping table ``(R [n_R, dim] int, T [n_R, nb, nb] complex)`` with h.c. included.

        ``H^I(κ) = Σ_R T_R exp(2πi κ·R)``; ``T_{-R} = T_R†`` holds by construction, so H is Hermitian.
        An i = j, R = 0 hopping is an onsite contribution and is added once.
        """
        ns, nb, dim = self.n_spin, self.num_bands, self.dim
        local = (self.hop_i == self.hop_j) & np.all(self.hop_R == 0, axis=1)
        all_R = np.concatenate([np.zeros((1, dim), np.int64), self.hop_R, -self.hop_R], axis=0)
        Rs, inverse = np.unique(all_R, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        T = np.zeros((len(Rs), nb, nb), dtype=np.complex128)
        r0 = inverse[0]
        for o in range(self.n_orb):
            T[r0, o * ns:(o + 1) * ns, o * ns:(o + 1) * ns] += self.onsite[o]
        nh = len(self.hop_i)
        fwd, bwd = inverse[1:1 + nh], inverse[1 + nh:]
        a = np.arange(ns)
        # rows/cols of every spin component, vectorised over hoppings
        rows = (self.hop_i[:, None, None] * ns + a[None, :, None]).repeat(ns, axis=2)
        cols = (self.hop_j[:, None, None] * ns + a[None, None, :]).repeat(ns, axis=1)
        keep = ~local
        np.add.at(T, (fwd[keep, None, None].repeat(ns, 1).repeat(ns, 2), rows[keep], cols[keep]), self.hop_t[keep])
        tdag = np.conj(np.swapaxes(self.hop_t, 1, 2))
        np.add.at(T, (bwd[keep, None, None].repeat(ns, 1).repeat(ns, 2), cols[keep].swapaxes(1, 2),
                      rows[keep].swapaxes(1, 2)), tdag[keep])
        if np.any(local):
            np.add.at(T, (np.full((local.sum(), ns, ns), r0), rows[local], cols[local]), self.hop_t[local])
        return Rs, T

    def hamiltonian(self, k: np.ndarray | torch.Tensor, *, convention: int = 2,
                    device: torch.device | str | None = None) -> torch.Tensor:
        """Bloch Hamiltonians at reduced k-points.

        Parameters
        ----------
        k : ``[..., dim]`` reduced coordinates κ (k = 2π κ·b in Cartesian terms).
        convention : 2 includes orbital positions (CONTRACTS §1), 1 omits them (periodic in κ).

        Returns
        -------
        ``[..., nb, nb]`` complex128 torch tensor.
        """
        Rs, T = self.table
        return bloch_hamiltonian(k, torch.as_tensor(Rs, device=device), torch.as_tensor(T, device=device),
                                 torch.as_tensor(self.state_positions, device=device) if convention == 2 else None)

    # ------------------------------------------------------------------ editing (fields, spin)
    def with_onsite(self, delta: np.ndarray, name: str | None = None) -> "TBModel":
        """A copy with ``delta`` ([n_orb] real, or [n_orb, ns, ns] Hermitian) added to the onsite blocks."""
        delta = np.asarray(delta, dtype=np.complex128)
        if delta.ndim == 1:
            delta = delta[:, None, None] * np.eye(self.n_spin)[None]
        return self.replace(onsite=self.onsite + delta, name=name or self.name)

    def replace(self, **changes: Any) -> "TBModel":
        """A copy with some fields replaced (validated again)."""
        kw = dict(lattice=self.lattice, orbitals=self.orbitals, onsite=self.onsite, hop_i=self.hop_i,
                  hop_j=self.hop_j, hop_R=self.hop_R, hop_t=self.hop_t, spinful=self.spinful,
                  filling=self.filling, name=self.name, params=dict(self.params),
                  filling_required=self.filling_required, notes=self.notes)
        kw.update(changes)
        return TBModel(**kw)

    def to_spinful(self) -> "TBModel":
        """The same spinless model with spin-degenerate states (amplitudes × identity)."""
        if self.spinful:
            return self
        eye = np.eye(2)
        return TBModel(self.lattice, self.orbitals, self.onsite[:, 0, 0, None, None] * eye, self.hop_i, self.hop_j,
                       self.hop_R, self.hop_t[:, 0, 0, None, None] * eye, spinful=True,
                       filling=None if self.filling is None else 2 * self.filling, name=self.name,
                       params=dict(self.params), filling_required=self.filling_required, notes=self.notes)

    # ------------------------------------------------------------------ topodiff-tb/1 I/O
    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "TBModel":
        """Build from a parsed ``topodiff-tb/1`` document; raises :class:`ModelError` naming the problem."""
        if not isinstance(doc, dict):
            raise ModelError("model document must be a JSON object")
        if doc.get("format") != FORMAT:
            raise ModelError(f"'format' must be {FORMAT!r}, got {doc.get('format')!r}")
        for key in ("lattice", "orbitals", "onsite", "hoppings"):
            if key not in doc:
                raise ModelError(f"missing key {key!r}")
        spinful = doc.get("spinful", False)
        if not isinstance(spinful, bool):
            raise ModelError("'spinful' must be true or false")
        lattice, orbitals = parse_geometry(doc)
        dim, n_orb = lattice.shape[0], orbitals.shape[0]
        onsite = parse_onsite(doc["onsite"], n_orb, spinful)
        hi, hj, hR, ht = parse_hoppings(doc["hoppings"], n_orb, dim, spinful)
        filling = doc.get("filling")
        if filling is not None and (not isinstance(filling, int) or isinstance(filling, bool)):
            raise ModelError("'filling' must be an integer number of occupied bands")
        length, energy = unit_scales(doc)
        return cls(lattice * length, orbitals, onsite * energy, hi, hj, hR, ht * energy, spinful=spinful,
                   filling=filling, name=str(doc.get("name", "model")))

    def to_dict(self) -> dict[str, Any]:
        """Export as a ``topodiff-tb/1`` document (energies in eV, lengths in Å)."""
        doc: dict[str, Any] = {
            "format": FORMAT,
            "name": self.name,
            "lattice": self.lattice.tolist(),
            "orbitals": self.orbitals.tolist(),
            "spinful": self.spinful,
            "onsite": [block_to_json(b, self.spinful) for b in self.onsite],
            "hoppings": [{"i": int(i), "j": int(j), "R": [int(x) for x in R], "t": block_to_json(t, self.spinful)}
                         for i, j, R, t in zip(self.hop_i, self.hop_j, self.hop_R, self.hop_t)],
        }
        if self.filling is not None:
            doc["filling"] = int(self.filling)
        if self.params:
            doc["params"] = {k: float(v) for k, v in self.params.items()}
        return doc


def bloch_hamiltonian(k: np.ndarray | torch.Tensor, Rs: torch.Tensor, T: torch.Tensor,
                      positions: torch.Tensor | None = None) -> torch.Tensor:
    """``H(κ) = Σ_R T_R e^{2πi κ·R}`` (× position phases) for any batch of k and of tables.

    Parameters
    ----------
    k : ``[..., dim]`` reduced k-points.
    Rs : ``[n_R, dim]`` integer offsets.
    T : ``[*batch, n_R, nb, nb]`` hopping tables (a leading batch of models is allowed, e.g. a
        phase-diagram parameter grid); result is ``[*batch, *k_shape, nb, nb]``.
    positions : ``[nb, dim]`` reduced state positions for convention II, or None for convention I.
    """
    T = torch.as_tensor(T)
    device = T.device
    k = torch.as_tensor(k, dtype=REAL, device=device)
    k_shape = k.shape[:-1]
    kf = k.reshape(-1, k.shape[-1])
    phase = torch.exp(2j * math.pi * (kf @ Rs.to(device=device, dtype=REAL).T).to(COMPLEX))  # [nk, n_R]
    batch = T.shape[:-3]
    n_R, nb = T.shape[-3], T.shape[-1]
    H = torch.matmul(phase, T.reshape(*batch, n_R, nb * nb).to(COMPLEX))  # [*batch, nk, nb*nb]
    H = H.reshape(*batch, kf.shape[0], nb, nb)
    if positions is not None:
        d = torch.exp(2j * math.pi * (kf @ positions.to(device=device, dtype=REAL).T).to(COMPLEX))  # [nk, nb]
        H = H * d.conj()[:, :, None] * d[:, None, :]
    return H.reshape(*batch, *k_shape, nb, nb)


def k_grid(shape: Sequence[int], *, endpoint: bool = False) -> np.ndarray:
    """Uniform reduced k-grid ``[*shape, len(shape)]`` on [0, 1) (or [0, 1] with ``endpoint``)."""
    axes = [np.linspace(0.0, 1.0, n + 1 if endpoint else n, endpoint=endpoint) for n in shape]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)

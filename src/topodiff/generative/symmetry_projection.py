"""Space-group projection of sampled crystals: keep coordinates and lattice on a template's symmetry.

A :class:`SymmetryTemplate` holds the symmetry operations ``(R_k, τ_k)`` of a known crystal in the
fractional basis of its own cell (``x ↦ R_k x + τ_k``) and the atom permutation each one induces
(``R_k x_i + τ_k ≡ x_{π_k(i)}`` mod 1). Sampling in that cell, the projector maps any configuration
onto the symmetric subspace:

* coordinates: each atom's estimate of its orbit representative, ``R_c⁻¹ (x_i − τ_c)`` (``c`` the
  operation taking the representative to atom i), is averaged over the orbit, projected onto the
  representative's site-symmetry subspace through the template's own position, and mapped back to
  every member (exact for any input, so special positions stay special);
* lattice metric ``G = L Lᵀ ← (1/|G|) Σ_k R_kᵀ G R_k`` (rows of ``L`` are the lattice vectors, Å), with
  the new ``L = chol(G') Q`` keeping the Cartesian orientation ``Q = chol(G)⁻¹ L`` of the old one.

This is the constraint DiffCSP++ (Jiao et al. 2024) imposes by diffusing only the free Wyckoff
parameters; here it is imposed by projecting after every sampler step, so any trained model can use it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from topodiff.errors import TopodiffInputError


@dataclass(frozen=True)
class SymmetryTemplate:
    """Symmetry of one known crystal in its own cell (fractional basis).

    ``rotations [K,3,3]`` int, ``translations [K,3]``, ``permutation [K,n]`` (op k sends atom i to
    atom ``permutation[k, i]``), ``lattice [3,3]`` Å (rows), ``frac [n,3]``, ``species [n]`` (the
    template's own atomic numbers), ``space_group`` (ITA number), ``source`` (an identifier)."""

    lattice: np.ndarray
    frac: np.ndarray
    species: np.ndarray
    rotations: np.ndarray
    translations: np.ndarray
    permutation: np.ndarray
    space_group: int
    source: str = ""

    @property
    def num_atoms(self) -> int:
        return int(len(self.species))


def template_from_structure(lattice: np.ndarray, frac: np.ndarray, species: np.ndarray, *,
                            symprec: float = 0.01, source: str = "") -> SymmetryTemplate:
    """The symmetry template of a crystal (spglib at ``symprec`` Å); operations in its own cell."""
    import spglib

    lattice = np.asarray(lattice, dtype=np.float64)
    frac = np.remainder(np.asarray(frac, dtype=np.float64), 1.0)
    species = np.asarray(species, dtype=np.int64)
    cell = (lattice, frac, species)
    dataset = spglib.get_symmetry_dataset(cell, symprec=symprec)   # operations in the input cell's basis
    if dataset is None:
        raise TopodiffInputError(f"spglib found no symmetry for template {source or '(unnamed)'}")
    rotations = np.asarray(dataset.rotations, dtype=np.int64)
    translations = np.asarray(dataset.translations, dtype=np.float64)
    images = np.einsum("kab,nb->kna", rotations, frac) + translations[:, None, :]        # [K,n,3]
    diff = images[:, :, None, :] - frac[None, None, :, :]                                # [K,n,n,3]
    diff -= np.round(diff)
    dist = np.linalg.norm(diff @ lattice, axis=-1)                                       # Å
    dist[:, species[:, None] != species[None, :]] = np.inf
    permutation = dist.argmin(-1)
    ok = np.take_along_axis(dist, permutation[..., None], -1)[..., 0] <= 2 * symprec + 1e-6
    if not ok.all() or any(len(set(p)) != len(p) for p in permutation):
        raise TopodiffInputError(f"symmetry operations of template {source or '(unnamed)'} do not permute its atoms")
    return SymmetryTemplate(lattice, _group_average(frac, rotations, translations, permutation), species,
                            rotations, translations, permutation, int(dataset.number), source)


def _group_average(frac: np.ndarray, rotations: np.ndarray, translations: np.ndarray,
                   permutation: np.ndarray) -> np.ndarray:
    """Symmetrise nearly symmetric coordinates exactly: ``x_i ← mean_k R_k⁻¹(x_{π_k(i)} − τ_k)`` at the
    periodic image nearest ``x_i`` (affine, hence exact, once every term is within half a cell)."""
    inv = np.linalg.inv(rotations.astype(np.float64))
    terms = np.einsum("kab,knb->kna", inv, frac[permutation] - translations[:, None, :])
    terms -= np.round(terms - frac[None])
    return np.remainder(terms.mean(0), 1.0)


class SymmetryProjector:
    """Batched projection onto per-crystal templates (None: that crystal is left unconstrained).

    Atoms are in batch order, ``num_atoms [B]``; a template's atom count must equal its crystal's, and
    atom i of a crystal is atom i of its template."""

    def __init__(self, templates: list[SymmetryTemplate | None], num_atoms: torch.Tensor,
                 device: torch.device | str | None = None) -> None:
        counts = [int(n) for n in num_atoms]
        if len(templates) != len(counts):
            raise TopodiffInputError(f"{len(templates)} templates for {len(counts)} crystals")
        for tpl, n in zip(templates, counts):
            if tpl is not None and tpl.num_atoms != n:
                raise TopodiffInputError(f"template {tpl.source} has {tpl.num_atoms} atoms, its crystal {n}")
        parts = [_orbit_arrays(tpl, n) for tpl, n in zip(templates, counts)]
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        t = lambda a, dtype=torch.float64: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
        self.rep = t(np.concatenate([p["rep"] + off for p, off in zip(parts, offsets)]), torch.long)
        self.species_rep = t(np.concatenate([p["species_rep"] + off for p, off in zip(parts, offsets)]), torch.long)
        self.rot = t(np.concatenate([p["rot"] for p in parts]))
        self.rot_inv = t(np.concatenate([p["rot_inv"] for p in parts]))
        self.trans = t(np.concatenate([p["trans"] for p in parts]))
        self.anchor = t(np.concatenate([p["anchor"] for p in parts]))
        self.site_proj = t(np.concatenate([p["site_proj"] for p in parts]))
        k_max = max(len(p["lat_rot"]) for p in parts)
        self.lat_rot = t(np.stack([np.concatenate([p["lat_rot"], np.zeros((k_max - len(p["lat_rot"]), 3, 3))])
                                   for p in parts]))
        self.lat_weight = t(np.stack([np.r_[np.full(len(p["lat_rot"]), 1 / len(p["lat_rot"])),
                                            np.zeros(k_max - len(p["lat_rot"]))] for p in parts]))
        self.active = any(tpl is not None for tpl in templates)

    def coords(self, frac: torch.Tensor) -> torch.Tensor:
        """Project fractional coordinates ``[N,3]`` onto the templates' symmetric subspace (in [0,1)).

        Each atom gives an estimate of its orbit representative, ``R_c⁻¹ (x_i − τ_c)``, as a shift from
        the template's representative; the orbit's shifts are averaged (as periodic images near the
        representative's own), projected onto the site-symmetry subspace, and mapped back to every
        member. Exact: the result is invariant under every operation of the template."""
        if not self.active:
            return frac
        x = frac.double()
        shift = torch.einsum("nab,nb->na", self.rot_inv, x - self.trans) - self.anchor
        shift = shift - torch.round(shift)
        shift = shift - torch.round(shift - shift[self.rep])
        total = torch.zeros_like(shift).index_add_(0, self.rep, shift)
        count = torch.zeros(len(x), dtype=x.dtype, device=x.device).index_add_(0, self.rep, torch.ones_like(x[:, 0]))
        mean = (total / count.clamp_min(1)[:, None])[self.rep]
        rep_pos = self.anchor + torch.einsum("nab,nb->na", self.site_proj, mean)
        out = torch.einsum("nab,nb->na", self.rot, rep_pos) + self.trans
        return torch.remainder(out, 1.0).to(frac.dtype)

    def species(self, species: torch.Tensor, mask_token: int) -> torch.Tensor:
        """Atoms that share an element in the template share one here: once any atom of such a class is
        revealed, the whole class takes its species (the lowest-index revealed atom's). The structure
        type keeps its pattern of sites (``A2B2C4`` stays ``A2B2C4``, or merges classes); the elements
        are new."""
        if not self.active:
            return species
        cls = self.species_rep.to(species.device)
        index = torch.arange(len(species), device=species.device)
        first = torch.full_like(index, len(species)).scatter_reduce(
            0, cls, torch.where(species != mask_token, index, len(species)), reduce="amin")
        padded = torch.cat([species, species.new_tensor([mask_token])])
        return padded[first[cls]]

    def species_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Species logits ``[N, Z]`` averaged over each element class (every member draws from the same)."""
        if not self.active:
            return logits
        cls = self.species_rep.to(logits.device)
        total = torch.zeros_like(logits).index_add_(0, cls, logits)
        count = torch.zeros(len(logits), dtype=logits.dtype, device=logits.device).index_add_(
            0, cls, torch.ones(len(logits), dtype=logits.dtype, device=logits.device))
        return (total / count.clamp_min(1)[:, None])[cls]

    def lattice(self, lattice: torch.Tensor) -> torch.Tensor:
        """Project lattices ``[B,3,3]`` (rows, Å) onto the templates' metric constraints, orientation kept."""
        if not self.active:
            return lattice
        lat = lattice.double()
        metric = lat @ lat.transpose(1, 2)
        sym = torch.einsum("bk,bkia,bij,bkjc->bac", self.lat_weight, self.lat_rot, metric, self.lat_rot)
        chol_old, info_old = torch.linalg.cholesky_ex(metric)
        chol_new, info_new = torch.linalg.cholesky_ex(sym)
        ok = ((info_old == 0) & (info_new == 0))[:, None, None]
        eye = torch.eye(3, dtype=lat.dtype, device=lat.device)
        frame = torch.linalg.solve_triangular(torch.where(ok, chol_old, eye), lat, upper=False)
        return torch.where(ok, chol_new @ frame, lat).to(lattice.dtype)


def _orbit_arrays(tpl: SymmetryTemplate | None, n: int) -> dict[str, np.ndarray]:
    """Per atom: orbit representative ``rep``, first atom of the same template element ``species_rep``,
    the coset operation ``(rot, trans)`` taking the
    representative to it (and ``rot_inv``), the representative's template position ``anchor`` and its
    site-symmetry projector ``site_proj`` (mean rotation of its stabiliser); ``lat_rot`` all rotations.
    Without a template every atom is its own orbit with a free position (identity everywhere)."""
    eye = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
    if tpl is None:
        return {"rep": np.arange(n), "species_rep": np.arange(n), "rot": eye, "rot_inv": eye, "trans": np.zeros((n, 3)),
                "anchor": np.zeros((n, 3)), "site_proj": eye, "lat_rot": np.eye(3)[None]}
    rot = tpl.rotations.astype(np.float64)
    perm = tpl.permutation
    rep = perm.min(0)                                    # orbit of i = {π_k(i)}; its lowest index
    coset = np.array([int(np.flatnonzero(perm[:, rep[i]] == i)[0]) for i in range(n)])
    site_proj = np.stack([rot[perm[:, rep[i]] == rep[i]].mean(0) for i in range(n)])
    first = {z: i for i, z in reversed(list(enumerate(tpl.species.tolist())))}
    species_rep = np.array([first[z] for z in tpl.species.tolist()])
    return {"rep": rep, "species_rep": species_rep, "rot": rot[coset], "rot_inv": np.linalg.inv(rot[coset]), "trans": tpl.translations[coset],
            "anchor": tpl.frac[rep], "site_proj": site_proj, "lat_rot": rot}

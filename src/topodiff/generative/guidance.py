"""Sampling guides (:class:`topodiff.generative.sampler.SamplingGuide`): physics and classifier guidance.

* :class:`RepulsionGuide` — a soft distance floor. Energy ``E = ½ Σ_{i≠j} Σ_n relu(d_min − |(Δf_ij + n) L|)²``
  (Å², all periodic images ``n`` closer than ``d_min``, from vesin's neighbour list); it adds ``−(k/σ²) ∇_f E`` to the
  coordinate score while ``σ(t) ≤ sigma_on``. The ancestral step moves ``f`` by ``(σ_t² − σ_s²) · score``,
  so the guide is gradient descent on ``E`` with a step ``k · Δσ²/σ²``, the same fraction at every noise
  level (≈ ``k · 2 ln(σ_max/σ_min)/steps``).
* :class:`PredictorGuide` — classifier guidance (Dhariwal & Nichol 2021) with the noise-aware
  :class:`~topodiff.generative.predictor.PropertyPredictor`: the score gets ``s ∇_f J`` and the
  predicted clean lattice a step ``s η ∇_L J`` (Å, clipped), with
  ``J = log p(topo_class = c | x_t) − w (gap(x_t) − gap*)² / (1 eV²)``.

:func:`build_guide` assembles them from ``generate``'s options.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from topodiff.errors import TopodiffInputError
from topodiff.generative.embeddings import TOPO_CLASSES
from topodiff.generative.neighbours import pair_distances, periodic_pairs

Step = tuple[torch.Tensor | None, torch.Tensor | None]


def repulsion_energy(frac: torch.Tensor, lattice: torch.Tensor, num_atoms: torch.Tensor, min_distance: float
                     ) -> torch.Tensor:
    """``[B]`` soft-floor energy ``½ Σ_{i≠j} Σ_n relu(d_min − d_ij,n)²`` (Å²) of a batch, differentiable in
    ``frac [N,3]`` and ``lattice [B,3,3]`` (Å, rows = vectors); all periodic images closer than ``d_min``
    (:func:`~topodiff.generative.neighbours.periodic_pairs`, right for skewed cells too)."""
    i, j, shift = periodic_pairs(frac, lattice, num_atoms, min_distance)
    r = pair_distances(frac, lattice, num_atoms, i, j, shift)
    crystal = torch.repeat_interleave(torch.arange(num_atoms.shape[0], device=frac.device), num_atoms)[i]
    per_pair = 0.5 * torch.relu(min_distance - r) ** 2
    return torch.zeros(num_atoms.shape[0], dtype=per_pair.dtype, device=frac.device).index_add(0, crystal, per_pair)


class RepulsionGuide:
    """Soft minimum-distance guide: ``d_score = −(strength/σ²) ∇_f E`` while ``σ ≤ sigma_on``.

    Parameters
    ----------
    min_distance : Å, the floor below which atom pairs repel.
    strength : dimensionless step factor ``k`` (0 = off).
    sigma_on : the guide acts only at coordinate noise ``σ ≤ sigma_on`` (late in sampling; fractional units).
    lattice_step : Å⁻¹; ``d_lattice = −lattice_step ∇_L E`` (0: the lattice is left alone).
    """

    def __init__(self, min_distance: float = 1.0, strength: float = 0.1, *, sigma_on: float = 0.1,
                 lattice_step: float = 0.0) -> None:
        if not (min_distance > 0 and strength >= 0 and sigma_on > 0 and lattice_step >= 0):
            raise TopodiffInputError("repulsion guide: need min_distance > 0, strength ≥ 0, sigma_on > 0, "
                                     "lattice_step ≥ 0")
        self.min_distance, self.strength = float(min_distance), float(strength)
        self.sigma_on, self.lattice_step = float(sigma_on), float(lattice_step)

    def __call__(self, frac: torch.Tensor, lattice: torch.Tensor, species: torch.Tensor, num_atoms: torch.Tensor,
                 t: torch.Tensor, sigma: torch.Tensor) -> Step:
        active = sigma <= self.sigma_on                               # [N]
        if self.strength == 0 or not bool(active.any()):
            return None, None
        f = frac.detach().clone().requires_grad_(True)
        lat = lattice.detach().clone().requires_grad_(self.lattice_step > 0)
        energy = repulsion_energy(f, lat, num_atoms, self.min_distance).sum()
        if not energy.requires_grad:
            return None, None
        grads = torch.autograd.grad(energy, [f, lat] if self.lattice_step > 0 else [f], allow_unused=True)
        d_score = -self.strength * grads[0] / (sigma ** 2)[:, None] * active[:, None]
        d_lat = None
        if self.lattice_step > 0:
            bi = torch.repeat_interleave(torch.arange(num_atoms.shape[0], device=num_atoms.device), num_atoms)
            on = torch.zeros(num_atoms.shape[0], dtype=torch.bool, device=frac.device).index_fill_(0, bi[active], True)
            d_lat = -self.lattice_step * grads[1] * on[:, None, None]
        return d_score, d_lat


class PredictorGuide:
    """Classifier guidance with a :class:`~topodiff.generative.predictor.PropertyPredictor`.

    Parameters
    ----------
    predictor : a trained predictor (its corruption settings should match the generator's).
    target : ``{"topo_class": index or name, "band_gap": eV}`` (either or both).
    scale : guidance strength ``s`` (0 = off).
    gap_weight : ``w`` of the gap term, per eV².
    lattice_step : ``η`` in Å²; ``d_lattice = s η ∇_L J``, clipped to ``max_lattice_step`` Å (Frobenius) per crystal.

    Crystals that still have masked species (0) are guided with the mask token when the predictor was
    trained with masked species (``p_species_masked > 0``), else left unguided until fully revealed.
    """

    def __init__(self, predictor, target: dict[str, Any], scale: float = 1.0, *, gap_weight: float = 1.0,
                 lattice_step: float = 0.1, max_lattice_step: float = 0.1) -> None:
        if not scale >= 0 or not gap_weight >= 0 or not lattice_step >= 0 or not max_lattice_step >= 0:
            raise TopodiffInputError("predictor guide: scale, gap_weight and lattice steps must be ≥ 0")
        self.predictor = predictor.eval()
        for p in self.predictor.parameters():
            p.requires_grad_(False)
        self.topo_class = self.band_gap = None
        tc = (target or {}).get("topo_class")
        if tc is not None and not (isinstance(tc, float) and math.isnan(tc)):
            idx = TOPO_CLASSES.index(tc) if isinstance(tc, str) and tc in TOPO_CLASSES else tc
            try:
                idx = int(idx)
            except (TypeError, ValueError):
                idx = -1
            if not 0 <= idx < len(TOPO_CLASSES):
                raise TopodiffInputError(f"topo_class target must be one of {', '.join(TOPO_CLASSES)}, got {tc!r}")
            self.topo_class = idx
        gap = (target or {}).get("band_gap")
        if gap is not None and not (isinstance(gap, float) and math.isnan(gap)):
            if not float(gap) >= 0:
                raise TopodiffInputError(f"band_gap target must be ≥ 0 eV, got {gap}")
            self.band_gap = float(gap)
        if self.topo_class is None and self.band_gap is None:
            raise TopodiffInputError("predictor guidance needs a topo_class and/or band_gap target")
        self.scale, self.gap_weight = float(scale), float(gap_weight)
        self.lattice_step, self.max_lattice_step = float(lattice_step), float(max_lattice_step)

    def objective(self, frac: torch.Tensor, lattice: torch.Tensor, species: torch.Tensor, num_atoms: torch.Tensor,
                  t: torch.Tensor) -> torch.Tensor:
        """``[B]`` guidance objective ``J`` (log-probability of the target class minus the gap penalty)."""
        bi = torch.repeat_interleave(torch.arange(num_atoms.shape[0], device=num_atoms.device), num_atoms)
        masked = torch.zeros_like(t, dtype=torch.bool).index_fill_(0, bi[species == 0], True)
        out = self.predictor(frac, lattice, species, num_atoms, t, torch.where(masked, t, torch.zeros_like(t)))
        j = torch.zeros_like(t)
        if self.topo_class is not None:
            j = j + torch.log_softmax(out["logits"], -1)[:, self.topo_class]
        if self.band_gap is not None:
            j = j - self.gap_weight * (out["gap"] - self.band_gap) ** 2
        if float(self.predictor.cfg.p_species_masked) <= 0:
            j = j * ~masked
        return j

    def __call__(self, frac: torch.Tensor, lattice: torch.Tensor, species: torch.Tensor, num_atoms: torch.Tensor,
                 t: torch.Tensor, sigma: torch.Tensor) -> Step:
        if self.scale == 0:
            return None, None
        dev = next(self.predictor.parameters()).device
        f = frac.detach().to(dev, torch.float32).requires_grad_(True)
        lat = lattice.detach().to(dev, torch.float32).requires_grad_(True)
        j = self.objective(f, lat, species.to(dev), num_atoms.to(dev), t.to(dev).float()).sum()
        if not j.requires_grad:
            return None, None
        g_f, g_l = torch.autograd.grad(j, [f, lat], allow_unused=True)
        d_score = None if g_f is None else (self.scale * g_f).to(frac)
        d_lat = None
        if g_l is not None and self.lattice_step > 0:
            step = self.scale * self.lattice_step * g_l
            norm = step.flatten(1).norm(dim=1).clamp_min(1e-12)
            step = step * (self.max_lattice_step / norm).clamp(max=1.0)[:, None, None]
            d_lat = step.to(lattice)
        return d_score, d_lat


class CombinedGuide:
    """Sum of several guides (None terms skipped)."""

    def __init__(self, guides: list) -> None:
        self.guides = list(guides)

    def __call__(self, frac, lattice, species, num_atoms, t, sigma) -> Step:
        score = lat = None
        for guide in self.guides:
            ds, dl = guide(frac, lattice, species, num_atoms, t, sigma)
            if ds is not None:
                score = ds if score is None else score + ds
            if dl is not None:
                lat = dl if lat is None else lat + dl
        return score, lat


def build_guide(model, config: dict[str, Any] | None, cond: dict[str, Any] | None, *, repulsion: float = 0.0,
                predictor: str | None = None, predictor_scale: float = 0.0,
                repulsion_distance: float | None = None, target: dict[str, Any] | None = None):
    """Guide for ``generate`` from its options, or None when all are off.

    Parameters
    ----------
    model : the generator (its ``cfg.min_distance`` and device are used).
    config : the generator's full config dict (unused; kept for the call signature).
    cond : parsed conditions (``topo_class`` as a float index, ``band_gap`` in eV) — the predictor targets.
    repulsion : strength of :class:`RepulsionGuide` (0 = off).
    predictor : a predictor file or shipped name; used when ``predictor_scale > 0``.
    predictor_scale : strength of :class:`PredictorGuide` (0 = off).
    repulsion_distance : Å floor of the repulsion (default ``max(1 Å, cfg.min_distance)``).
    target : explicit predictor targets overriding ``cond`` (for generators not trained with those conditions).
    """
    if not repulsion >= 0:
        raise TopodiffInputError(f"repulsion strength must be ≥ 0, got {repulsion}")
    if not predictor_scale >= 0:
        raise TopodiffInputError(f"predictor scale must be ≥ 0, got {predictor_scale}")
    if predictor_scale > 0 and not predictor:
        raise TopodiffInputError("predictor guidance (scale > 0) needs a predictor (file or shipped name)")
    guides: list = []
    if repulsion > 0:
        floor = repulsion_distance if repulsion_distance is not None else max(1.0, float(model.cfg.min_distance))
        if not floor > 0:
            raise TopodiffInputError(f"repulsion distance must be > 0 Å, got {floor}")
        guides.append(RepulsionGuide(floor, repulsion))
    if predictor_scale > 0:
        from topodiff.generative.predictor import load_predictor

        goal = {k: v for k, v in (cond or {}).items() if k in ("topo_class", "band_gap")}
        goal.update(target or {})
        if not goal:
            raise TopodiffInputError("predictor guidance needs a topo_class or band_gap target")
        device = model.volume_per_atom.device if hasattr(model, "volume_per_atom") else "cpu"
        guides.append(PredictorGuide(load_predictor(predictor, device=device), goal, predictor_scale))
    if not guides:
        return None
    return guides[0] if len(guides) == 1 else CombinedGuide(guides)

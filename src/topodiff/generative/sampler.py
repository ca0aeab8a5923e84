"""Predictor-corrector sampler (reverse diffusion + Langevin corrector), batched over crystals.

Time runs ``t = 1 → 0`` on ``steps`` uniform intervals. Per interval ``t → s``: optional Langevin
corrector steps on the coordinates at ``σ(t)`` (DiffCSP), then one predictor step that moves the
coordinates with the ancestral VE step, the lattice latent with the DDPM posterior
``q(y_s | y_t, ŷ_0)`` and reveals masked species (absorbing D3PM). A final noise-free step removes
the residual ``σ_min`` noise (Tweedie).

De novo options (``ModelConfig``): ``species_temperature`` divides the species logits before each
reveal draw; ``resample_structure`` keeps only the composition of the joint pass and re-samples the
lattice and coordinates for it with the CSP branch of the same network (species time 0; with
templates, from each template's structure carrying the new elements, noised to ``TEMPLATE_START``).
In the joint pass the lattice is committed while most species are still masked, so lattice and
composition can disagree (a density error); the second pass sees the final species from ``t = 1``.
``species_corrector_sweeps`` re-draws, after the joint pass, each crystal's least self-consistent atom
that many times (:mod:`topodiff.generative.species_corrector`; not with templates or a fixed element count,
whose rules it does not know). ``num_elements`` fixes the number of distinct elements of each crystal during the reveal
(:mod:`topodiff.generative.element_count`). ``templates`` keeps each crystal on a known crystal's
space group and Wyckoff orbits: coordinates and lattice are projected onto its symmetric subspace
at the prior and after every corrector and predictor step; de novo, the atoms that share an element in
the template draw from their averaged logits and take one species per class
(:mod:`topodiff.generative.symmetry_projection`).
``lattice_eta`` scales the lattice step noise (1: DDPM posterior, 0: deterministic DDIM step).
``predictor_noise_scale`` / ``corrector_noise_scale`` multiply the coordinate noise of the predictor and
the Langevin corrector steps (1: exact; < 1 samples at a lower temperature, toward the modes: CSP
wants the most likely structure of a composition, not the spread of its polymorphs).

Conditioning: ``conditions`` feed the property embeddings (classifier-free guidance with
``guidance``); ``species_mask [B, max_z+1]`` restricts the species each crystal may reveal (exact
chemical-system conditioning: logits outside the mask are −∞ at every reveal); ``guide`` is an
optional physics/classifier guidance callable (:class:`SamplingGuide`) whose terms are added to the
coordinate score and to the predicted clean lattice latent at every predictor and corrector step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from topodiff.errors import TopodiffInputError
from topodiff.generative.batch import CrystalBatch
from topodiff.generative.config import SAMPLER_SETTINGS
from topodiff.generative.corruption.d3pm import MASK
from topodiff.generative.species_corrector import gibbs_sweeps
from topodiff.generative.symmetry_projection import SymmetryProjector
from topodiff.generative.templates import TEMPLATE_START, with_species
from topodiff.progress import progress


def canonical_orientation(lattice: torch.Tensor) -> torch.Tensor:
    """Rotate lattices ``[B,3,3]`` (rows = vectors) to the standard frame (a ∥ x, b in the xy plane).

    ``L' = chol(L Lᵀ)`` keeps the metric, so fractional coordinates are unchanged; the sign of
    ``L'[2,2]`` follows ``det L`` (a proper rotation, handedness kept). Degenerate cells stay as they are.
    """
    lat = lattice.double()
    chol, info = torch.linalg.cholesky_ex(lat @ lat.transpose(1, 2))
    sign = torch.sign(torch.linalg.det(lat))
    chol[:, 2, 2] = chol[:, 2, 2] * torch.where(sign == 0, torch.ones_like(sign), sign)
    ok = (info == 0)[:, None, None]
    return torch.where(ok, chol, lat).to(lattice.dtype)


def sampler_settings(cfg) -> dict:
    """The sampler defaults of a model config (recorded in ``generate``/``csp`` metadata)."""
    return {k: getattr(cfg, k) for k in SAMPLER_SETTINGS if hasattr(cfg, k)}


class SamplingGuide(Protocol):
    """Guidance term evaluated during sampling (gradients enabled inside; the sampler itself is no-grad).

    Called as ``guide(frac [N,3], lattice [B,3,3] (Å, rows = vectors), species [N] (0 = still masked),
    num_atoms [B], t [B], sigma [N])`` and returns ``(d_score [N,3] or None, d_lattice [B,3,3] or None)``:
    ``d_score`` is added to the coordinate score ∇_f log p (fractional units, like ``cd.score``),
    ``d_lattice`` is a step in Å added to the predicted clean lattice before it is mapped back to the
    latent (so it moves the lattice toward the guide's target as ``t → 0``).
    """

    def __call__(self, frac: torch.Tensor, lattice: torch.Tensor, species: torch.Tensor, num_atoms: torch.Tensor,
                 t: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]: ...


def _element_counts(num_atoms: torch.Tensor, num_elements: torch.Tensor | None) -> torch.Tensor | None:
    """The ``[B]`` element counts a de novo pass enforces (None: left to the network); checked ``1 ≤ k ≤ N``."""
    if num_elements is None:
        return None
    num_elements = torch.as_tensor(num_elements, dtype=torch.long, device=num_atoms.device)
    if num_elements.shape != num_atoms.shape or bool((num_elements < 1).any() | (num_elements > num_atoms).any()):
        raise TopodiffInputError("num_elements must give each crystal 1 to num_atoms elements")
    return num_elements


def _templates_with_species(templates: list, species: torch.Tensor, num_atoms: torch.Tensor) -> list | None:
    """The de novo pass's elements on its templates (for the structure re-sample); None if any is missing."""
    if any(t is None for t in templates):
        return None
    parts = torch.split(species.cpu(), num_atoms.cpu().tolist())
    return [with_species(t, z.numpy()) for t, z in zip(templates, parts)]


def _initial_state(model, templates: list | None, num_atoms: torch.Tensor, scale: torch.Tensor, steps: int,
                   start_time: float, csp: bool, generator: torch.Generator | None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(frac [N,3], lattice latent [B,3,3], times [S+1] from t₀ to 0)``: the prior at ``t₀ = 1``, else
    the templates' structures noised to ``t₀`` (every crystal needs a template; CSP only)."""
    dev = num_atoms.device
    cd, ld = model.coord_diffusion, model.lattice_diffusion
    if not 0 < start_time <= 1:
        raise TopodiffInputError(f"start_time must be in (0, 1], got {start_time}")
    if start_time == 1:
        n, b = int(num_atoms.sum()), int(num_atoms.shape[0])
        return (cd.prior_sample(n, generator, device=dev), ld.prior_sample(b, generator, device=dev),
                torch.linspace(1.0, 0.0, steps + 1, device=dev))
    if not csp or templates is None or any(t is None for t in templates):
        raise TopodiffInputError("starting below t = 1 needs a template for every crystal (CSP)")
    frac0 = torch.as_tensor(np.concatenate([t.frac for t in templates]), dtype=torch.float32, device=dev)
    lat0 = torch.as_tensor(np.stack([t.lattice for t in templates]), dtype=torch.float32, device=dev)
    t0 = torch.full((len(templates),), start_time, device=dev)
    frac, _ = cd.q_sample(frac0, torch.repeat_interleave(t0, num_atoms), generator)
    y, _ = ld.q_sample(ld.to_latent(lat0, scale), t0, generator)
    return frac, y, torch.linspace(start_time, 0.0, max(1, round(steps * start_time)) + 1, device=dev)


@dataclass
class _Request:
    """A checked sampling request: crystal index ``batch [N]`` of each atom, CSP ``species [N]`` or None
    (de novo), ``atom_mask [N, max_z+1]`` (chemical system) and ``num_elements [B]`` (de novo only)."""

    num_atoms: torch.Tensor
    batch: torch.Tensor
    species: torch.Tensor | None
    conditions: dict[str, torch.Tensor]
    atom_mask: torch.Tensor | None
    num_elements: torch.Tensor | None
    steps: int

    @property
    def csp(self) -> bool:
        return self.species is not None


def _checked_request(model, num_atoms, species, conditions, steps, species_mask, num_elements) -> _Request:
    """Validate ``pc_sample``'s inputs against the model (:class:`TopodiffInputError` on bad input)."""
    cfg = model.cfg
    dev = model.volume_per_atom.device
    num_atoms = torch.as_tensor(num_atoms, dtype=torch.long, device=dev)
    if num_atoms.dim() != 1 or num_atoms.numel() == 0 or bool((num_atoms < 1).any()):
        raise TopodiffInputError("num_atoms must be a non-empty 1D tensor of positive counts")
    steps = int(steps or cfg.sample_steps)
    if steps < 1:
        raise TopodiffInputError(f"steps must be ≥ 1, got {steps}")
    unknown = sorted(set(conditions or {}) - set(cfg.conditions))
    if unknown:
        raise TopodiffInputError(f"this checkpoint was not trained with condition(s) {unknown}; "
                                 f"it knows: {list(cfg.conditions) or 'none'}")
    b, n = int(num_atoms.shape[0]), int(num_atoms.sum())
    batch = torch.repeat_interleave(torch.arange(b, device=dev), num_atoms)
    if species is not None:
        species = torch.as_tensor(species, dtype=torch.long, device=dev)
        if species.shape != (n,):
            raise TopodiffInputError(f"species must have one entry per atom ({n}), got shape {tuple(species.shape)}")
        check_known_species(model, species)
    conditions = {k: torch.as_tensor(v, dtype=torch.float32, device=dev) for k, v in (conditions or {}).items()}
    atom_mask = None
    if species_mask is not None and species is None:
        species_mask = torch.as_tensor(species_mask, dtype=torch.bool, device=dev)
        if species_mask.shape != (b, cfg.max_z + 1):
            raise TopodiffInputError(f"species_mask must have shape ({b}, {cfg.max_z + 1})")
        species_mask = species_mask & model.species_allowed
        if bool((~species_mask.any(-1)).any()):
            raise TopodiffInputError("the requested elements were never seen by this checkpoint")
        atom_mask = species_mask[batch]
    num_elements = None if species is not None else _element_counts(num_atoms, num_elements)
    return _Request(num_atoms, batch, species, conditions, atom_mask, num_elements, steps)


@dataclass
class _Settings:
    """The sampler settings of a model config (see ``ModelConfig``), checked."""

    temperature: float
    reveal_order: str
    reveal_noise: float
    lattice_eta: float
    predictor_noise: float
    corrector_noise: float

    @classmethod
    def of(cls, cfg) -> "_Settings":
        settings = cls(float(cfg.species_temperature), str(cfg.species_reveal), float(cfg.species_reveal_noise),
                       float(cfg.lattice_eta), float(cfg.predictor_noise_scale), float(cfg.corrector_noise_scale))
        if not (settings.predictor_noise >= 0 and settings.corrector_noise >= 0):
            raise TopodiffInputError("predictor_noise_scale and corrector_noise_scale must be ≥ 0")
        if not settings.temperature > 0:
            raise TopodiffInputError(f"species_temperature must be > 0, got {settings.temperature}")
        return settings


class _Network:
    """The denoiser as one sampling pass calls it: classifier-free guidance, the chemical-system mask,
    the optional physics guide and the symmetry templates' projection."""

    def __init__(self, model, request: _Request, guidance: float, guide: SamplingGuide | None,
                 symmetry: SymmetryProjector | None) -> None:
        self.model, self.request, self.guidance, self.guide, self.symmetry = model, request, guidance, guide, symmetry
        self.scale = model.lattice_scale(request.num_atoms)

    def symmetric(self, frac: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Project coordinates and the lattice latent onto the templates (identity without them)."""
        if self.symmetry is None:
            return frac, y
        ld = self.model.lattice_diffusion
        return self.symmetry.coords(frac), ld.to_latent(self.symmetry.lattice(ld.from_latent(y, self.scale)), self.scale)

    def __call__(self, frac, y, species_t, t, t_species=None):
        """``(coord score, ŷ0, species logits)`` at time ``t`` (species time ``t``; 0 for CSP; or ``t_species``)."""
        req = self.request
        tb = torch.full((req.num_atoms.shape[0],), float(t), device=frac.device)
        if t_species is None:
            t_species = torch.zeros_like(tb) if req.csp else tb
        coord, y0_hat, logits = self.model.guided_denoise(frac, y, species_t, req.num_atoms, tb, t_species,
                                                          req.conditions, self.guidance)
        if req.atom_mask is not None:
            logits = logits.masked_fill(~req.atom_mask, float("-inf"))
        return coord, y0_hat, logits

    def guided(self, frac, y, y0_hat, species_t, t, score):
        """Apply the guide to the coordinate score and the predicted clean lattice latent."""
        if self.guide is None:
            return score, y0_hat
        ld, num_atoms = self.model.lattice_diffusion, self.request.num_atoms
        tb = torch.full((num_atoms.shape[0],), float(t), device=frac.device)
        sigma = self.model.coord_diffusion.sigma(t).expand(frac.shape[0])
        with torch.enable_grad():
            d_score, d_lat = self.guide(frac, ld.from_latent(y, self.scale), species_t, num_atoms, tb, sigma)
        if d_score is not None:
            score = score + d_score.detach()
        if d_lat is not None and y0_hat is not None:
            y0_hat = ld.to_latent(ld.from_latent(y0_hat, self.scale) + d_lat.detach(), self.scale)
        return score, y0_hat


def check_known_species(model, species: torch.Tensor) -> None:
    """Raise :class:`TopodiffInputError` naming the elements of ``species`` (atomic numbers) that the
    checkpoint never saw in training (it cannot place them)."""
    known = set(torch.nonzero(model.species_allowed).flatten().cpu().tolist())
    unknown = set(torch.as_tensor(species).flatten().cpu().tolist()) - known
    if unknown:
        raise TopodiffInputError(f"this checkpoint never saw {_element_list(unknown)}; it knows {len(known)} elements "
                                 "(`topodiff checkpoints` lists the shipped ones; mp20-csp and default learned "
                                 "Materials Project compositions)")


def _element_list(numbers: set[int]) -> str:
    """``"Cl, Br (Z = 17, 35)"`` for a set of atomic numbers (invalid ones by number only)."""
    from pymatgen.core import Element

    zs = sorted(numbers)
    names = [Element.from_Z(z).symbol if 1 <= z <= 118 else f"Z={z}" for z in zs]
    return f"{', '.join(names)} (Z = {', '.join(map(str, zs))})"


def _reverse_steps(model, net: _Network, frac, y, species_t, ts, settings: _Settings, generator, traj: list | None):
    """The predictor-corrector steps ``ts[0] → ts[-1]``; returns ``(frac, y, species_t)``."""
    cfg, req, symmetry = model.cfg, net.request, net.symmetry
    cd, ld, sd = model.coord_diffusion, model.lattice_diffusion, model.species_diffusion
    b, n = int(req.num_atoms.shape[0]), int(frac.shape[0])
    for i in progress(range(len(ts) - 1), desc=f"sample {b} crystals", unit="step", leave=False):
        t, s = ts[i], ts[i + 1]
        sig_t, sig_s = cd.sigma(t).expand(n), cd.sigma(s).expand(n)
        for _ in range(cfg.corrector_steps if cfg.step_lr > 0 else 0):
            coord, _, _ = net(frac, y, species_t, t)
            score, _ = net.guided(frac, y, None, species_t, t, cd.score(coord, sig_t))
            frac = cd.corrector_step(frac, score, sig_t, cfg.step_lr, generator, noise_scale=settings.corrector_noise)
            frac, y = net.symmetric(frac, y)
        coord, y0_hat, logits = net(frac, y, species_t, t)
        score, y0_hat = net.guided(frac, y, y0_hat, species_t, t, cd.score(coord, sig_t))
        frac = cd.predictor_step(frac, score, sig_t, sig_s, generator, noise_scale=settings.predictor_noise)
        y = ld.posterior_step(y, y0_hat, t.expand(b), s.expand(b), generator, eta=settings.lattice_eta)
        frac, y = net.symmetric(frac, y)
        if not req.csp:
            if symmetry is not None:
                logits = symmetry.species_logits(logits)
            species_t = sd.reverse_step(species_t, logits / settings.temperature, t.expand(n), s.expand(n), generator,
                                        batch=req.batch, order=settings.reveal_order,
                                        reveal_noise=settings.reveal_noise, num_elements=req.num_elements)
            if symmetry is not None:
                species_t = symmetry.species(species_t, MASK)
        if traj is not None:
            traj.append(CrystalBatch(frac.clone(), ld.from_latent(y, net.scale), species_t.clone(), req.num_atoms.clone()))
    return frac, y, species_t


@torch.no_grad()
def pc_sample(model, num_atoms: torch.Tensor, *, species: torch.Tensor | None = None,
              conditions: dict[str, torch.Tensor] | None = None, guidance: float = 1.0, steps: int | None = None,
              generator: torch.Generator | None = None, return_trajectory: bool = False,
              species_mask: torch.Tensor | None = None, guide: SamplingGuide | None = None,
              num_elements: torch.Tensor | None = None, templates: list | None = None, start_time: float = 1.0):
    """Sample ``B = len(num_atoms)`` crystals.

    Parameters
    ----------
    num_atoms : ``[B]`` atoms per crystal.
    species : ``[N]`` atomic numbers (CSP) or None (de novo: species are generated).
    conditions : property → ``[B]`` tensors (only keys the model was trained with).
    guidance : classifier-free guidance γ (0 unconditional, 1 conditional, > 1 amplified).
    steps : predictor steps (default ``cfg.sample_steps``).
    species_mask : ``[B, max_z+1]`` bool, species each crystal may contain (de novo only).
    guide : optional :class:`SamplingGuide`.
    num_elements : ``[B]`` exact number of distinct elements per crystal, enforced during the reveal
        (de novo only; ``1 ≤ k ≤ N``; :mod:`topodiff.generative.element_count`). None: the network's.
    templates : ``[B]`` :class:`~topodiff.generative.symmetry_projection.SymmetryTemplate` or None per
        crystal (atom i of a crystal sits on atom i of its template; None: unconstrained).
    start_time : ``t₀ ≤ 1``; below 1 (CSP with a template for every crystal) the sampler starts from the
        templates' own structures noised to ``t₀`` (SDEdit, Meng et al. 2022) and runs the last
        ``round(steps · t₀)`` steps, so the network refines the template instead of drawing from noise.

    Returns
    -------
    CrystalBatch, or ``(CrystalBatch, list[CrystalBatch])`` with ``return_trajectory``.
    """
    cfg = model.cfg
    req = _checked_request(model, num_atoms, species, conditions, steps, species_mask, num_elements)
    num_atoms, n = req.num_atoms, int(req.num_atoms.sum())
    symmetry = SymmetryProjector(templates, num_atoms, device=num_atoms.device) if templates is not None else None
    net = _Network(model, req, guidance, guide, symmetry)
    frac, y, ts = _initial_state(model, templates, num_atoms, net.scale, req.steps, float(start_time), req.csp,
                                 generator)
    frac, y = net.symmetric(frac, y)
    settings = _Settings.of(cfg)
    traj: list | None = [] if return_trajectory else None
    species_t = req.species if req.csp else torch.full((n,), MASK, dtype=torch.long, device=num_atoms.device)
    frac, y, species_t = _reverse_steps(model, net, frac, y, species_t, ts, settings, generator, traj)
    # final noise-free (Tweedie) step at σ_min
    cd, ld = model.coord_diffusion, model.lattice_diffusion
    coord, _, _ = net(frac, y, species_t, ts[-1])
    sig0 = cd.sigma(ts[-1]).expand(n)
    frac, y = net.symmetric(torch.remainder(frac + (sig0 ** 2)[:, None] * cd.score(coord, sig0), 1.0), y)
    sweeps = int(cfg.species_corrector_sweeps)
    if not req.csp and sweeps and symmetry is None and req.num_elements is None:
        def logits_of(species_now: torch.Tensor, t_species: torch.Tensor) -> torch.Tensor:
            return net(frac, y, species_now, ts[-1], t_species)[2]
        species_t = gibbs_sweeps(species_t, num_atoms, logits_of, sweeps, temperature=settings.temperature,
                                 generator=generator)
    out = CrystalBatch(frac, canonical_orientation(ld.from_latent(y, net.scale)), species_t, num_atoms)
    if not req.csp and cfg.resample_structure and cfg.p_csp > 0:
        placed = None if templates is None else _templates_with_species(templates, species_t, num_atoms)
        res = pc_sample(model, num_atoms, species=species_t, conditions=conditions, guidance=guidance, steps=steps,
                        generator=generator, return_trajectory=return_trajectory, guide=guide, templates=placed,
                        start_time=1.0 if placed is None else TEMPLATE_START)
        if return_trajectory:
            return res[0], traj + res[1]
        return res
    if return_trajectory:
        traj.append(out)
        return out, traj
    return out

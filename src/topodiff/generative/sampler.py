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
    b = int(num_atoms.shape[0])
    n = int(num_atoms.sum())
    bi = torch.repeat_interleave(torch.arange(b, device=dev), num_atoms)
    csp = species is not None
    if csp:
        species = torch.as_tensor(species, dtype=torch.long, device=dev)
        if species.shape != (n,):
            raise TopodiffInputError(f"species must have one entry per atom ({n}), got shape {tuple(species.shape)}")
        if bool((~model.species_allowed[species.clamp(0, cfg.max_z)]).any()) or bool((species > cfg.max_z).any()):
            bad = sorted(set(species.tolist()) - set(torch.nonzero(model.species_allowed).flatten().tolist()))
            raise TopodiffInputError(f"this checkpoint never saw element(s) with Z = {bad}")
        species_t = species
    else:
        species_t = torch.full((n,), MASK, dtype=torch.long, device=dev)
    conditions = {k: torch.as_tensor(v, dtype=torch.float32, device=dev) for k, v in (conditions or {}).items()}
    atom_mask = None
    if species_mask is not None and not csp:
        species_mask = torch.as_tensor(species_mask, dtype=torch.bool, device=dev)
        if species_mask.shape != (b, cfg.max_z + 1):
            raise TopodiffInputError(f"species_mask must have shape ({b}, {cfg.max_z + 1})")
        species_mask = species_mask & model.species_allowed
        if bool((~species_mask.any(-1)).any()):
            raise TopodiffInputError("the requested elements were never seen by this checkpoint")
        atom_mask = species_mask[bi]
    num_elements = None if csp else _element_counts(num_atoms, num_elements)
    cd, ld, sd = model.coord_diffusion, model.lattice_diffusion, model.species_diffusion
    scale = model.lattice_scale(num_atoms)
    symmetry = SymmetryProjector(templates, num_atoms, device=dev) if templates is not None else None

    def symmetric(frac, y):
        """Project coordinates and the lattice latent onto the templates (identity without them)."""
        if symmetry is None:
            return frac, y
        return symmetry.coords(frac), ld.to_latent(symmetry.lattice(ld.from_latent(y, scale)), scale)

    frac, y, ts = _initial_state(model, templates, num_atoms, scale, steps, float(start_time), csp, generator)
    frac, y = symmetric(frac, y)
    traj = []
    temperature = float(getattr(cfg, "species_temperature", 1.0))
    reveal_order = str(getattr(cfg, "species_reveal", "random"))
    reveal_noise = float(getattr(cfg, "species_reveal_noise", 1.0))
    lattice_eta = float(getattr(cfg, "lattice_eta", 1.0))
    predictor_noise = float(getattr(cfg, "predictor_noise_scale", 1.0))
    corrector_noise = float(getattr(cfg, "corrector_noise_scale", 1.0))
    if not (predictor_noise >= 0 and corrector_noise >= 0):
        raise TopodiffInputError("predictor_noise_scale and corrector_noise_scale must be ≥ 0")
    if not temperature > 0:
        raise TopodiffInputError(f"species_temperature must be > 0, got {temperature}")

    def net(frac, y, species_t, t):
        tb = torch.full((b,), float(t), device=dev)
        t_sp = torch.zeros_like(tb) if csp else tb
        coord, y0_hat, logits = model.guided_denoise(frac, y, species_t, num_atoms, tb, t_sp, conditions, guidance)
        if atom_mask is not None:
            logits = logits.masked_fill(~atom_mask, float("-inf"))
        return coord, y0_hat, logits

    def guided(frac, y, y0_hat, species_t, t, score):
        """Apply the guide to the coordinate score and the predicted clean lattice latent."""
        if guide is None:
            return score, y0_hat
        tb = torch.full((b,), float(t), device=dev)
        with torch.enable_grad():
            d_score, d_lat = guide(frac, ld.from_latent(y, scale), species_t, num_atoms, tb, cd.sigma(t).expand(n))
        if d_score is not None:
            score = score + d_score.detach()
        if d_lat is not None and y0_hat is not None:
            y0_hat = ld.to_latent(ld.from_latent(y0_hat, scale) + d_lat.detach(), scale)
        return score, y0_hat

    for i in progress(range(len(ts) - 1), desc=f"sample {b} crystals", unit="step", leave=False):
        t, s = ts[i], ts[i + 1]
        sig_t = cd.sigma(t).expand(n)
        sig_s = cd.sigma(s).expand(n)
        for _ in range(cfg.corrector_steps if cfg.step_lr > 0 else 0):
            coord, _, _ = net(frac, y, species_t, t)
            score, _ = guided(frac, y, None, species_t, t, cd.score(coord, sig_t))
            frac = cd.corrector_step(frac, score, sig_t, cfg.step_lr, generator, noise_scale=corrector_noise)
            frac, y = symmetric(frac, y)
        coord, y0_hat, logits = net(frac, y, species_t, t)
        score, y0_hat = guided(frac, y, y0_hat, species_t, t, cd.score(coord, sig_t))
        frac = cd.predictor_step(frac, score, sig_t, sig_s, generator, noise_scale=predictor_noise)
        y = ld.posterior_step(y, y0_hat, t.expand(b), s.expand(b), generator, eta=lattice_eta)
        frac, y = symmetric(frac, y)
        if not csp:
            if symmetry is not None:
                logits = symmetry.species_logits(logits)
            species_t = sd.reverse_step(species_t, logits / temperature, t.expand(n), s.expand(n), generator,
                                        batch=bi, order=reveal_order, reveal_noise=reveal_noise,
                                        num_elements=num_elements)
            if symmetry is not None:
                species_t = symmetry.species(species_t, MASK)
        if return_trajectory:
            traj.append(CrystalBatch(frac.clone(), ld.from_latent(y, scale), species_t.clone(), num_atoms.clone()))
    # final noise-free (Tweedie) step at σ_min
    coord, _, _ = net(frac, y, species_t, ts[-1])
    sig0 = cd.sigma(ts[-1]).expand(n)
    frac, y = symmetric(torch.remainder(frac + (sig0 ** 2)[:, None] * cd.score(coord, sig0), 1.0), y)
    sweeps = int(getattr(cfg, "species_corrector_sweeps", 0))
    if not csp and sweeps and symmetry is None and num_elements is None:
        def logits_of(species, t_species):
            t0 = torch.full((b,), float(ts[-1]), device=dev)
            lg = model.guided_denoise(frac, y, species, num_atoms, t0, t_species, conditions, guidance)[2]
            return lg if atom_mask is None else lg.masked_fill(~atom_mask, float("-inf"))
        species_t = gibbs_sweeps(species_t, num_atoms, logits_of, sweeps, temperature=temperature, generator=generator)
    out = CrystalBatch(frac, canonical_orientation(ld.from_latent(y, scale)), species_t, num_atoms)
    if not csp and getattr(cfg, "resample_structure", False) and cfg.p_csp > 0:
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

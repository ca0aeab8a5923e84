"""The crystal diffusion model: corruption processes + periodic transformer denoiser.

One network serves de novo generation and crystal structure prediction (CSP): in training a
fraction ``p_csp`` of crystals keep clean species (species time 0), the rest mask species with the
same time as coordinates and lattice. At sampling, passing ``species`` runs CSP.
"""
from __future__ import annotations

from fnmatch import fnmatch
from typing import Any

import numpy as np
import torch
from torch import nn

from topodiff.errors import TopodiffInputError
from topodiff.generative.adapters import ConditionAdapters
from topodiff.generative.augment import random_basis_change
from topodiff.generative.batch import CrystalBatch
from topodiff.generative.config import ModelConfig
from topodiff.generative.corruption import LatticeVP, MaskedD3PM, WrappedNormalVE
from topodiff.generative.denoiser import PeriodicTransformer
from topodiff.generative.element_count import distinct_elements, element_count_table
from topodiff.generative.embeddings import CATEGORY_NAMES, ConditionEmbedding, TimeEmbedding

#: buffers a checkpoint may lack (added after the first shipped checkpoints); they keep their defaults
OPTIONAL_BUFFERS = ("topo_class_counts", "catalogue_class_counts", "num_elements_counts")
#: zero-initialised modules a model may add to a checkpoint it starts from (``init_from``), as fnmatch
#: patterns of parameter names: without them the network computes exactly what the checkpoint did
ZERO_INIT_EXTENSIONS = ("denoiser.species_copy.*", "denoiser.blocks.*.message.*")


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], *, may_lack: tuple[str, ...] = ()) -> None:
    """``model.load_state_dict(state)`` that lets ``state`` lack :data:`OPTIONAL_BUFFERS` and the keys
    matching a ``may_lack`` fnmatch pattern (e.g. :data:`ZERO_INIT_EXTENSIONS`); RuntimeError otherwise."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k not in OPTIONAL_BUFFERS and not any(fnmatch(k, p) for p in may_lack)]
    if missing or unexpected:
        raise RuntimeError(f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")


def segment_mean(x: torch.Tensor, batch_index: torch.Tensor, b: int) -> torch.Tensor:
    """Per-crystal mean of per-atom rows ``x [N, d]`` → ``[B, d]``."""
    s = x.new_zeros((b,) + tuple(x.shape[1:])).index_add_(0, batch_index, x)
    n = torch.bincount(batch_index, minlength=b).clamp_min(1).to(x.dtype)
    return s / n.view(-1, *([1] * (x.dim() - 1)))


def draw_atom_counts(histogram: torch.Tensor, n: int, generator: torch.Generator | None = None,
                     min_atoms: int = 1, max_atoms: int | None = None) -> torch.Tensor:
    """``[n]`` atom counts drawn from a training histogram (index = atoms per cell), in
    ``[min_atoms, max_atoms]`` (None: no upper limit)."""
    counts = histogram.detach().cpu().clone()
    counts[:max(int(min_atoms), 0)] = 0
    if max_atoms is not None:
        counts[int(max_atoms) + 1:] = 0
    if float(counts.sum()) <= 0:
        raise TopodiffInputError("this model has no num_atoms distribution (at that size); pass num_atoms explicitly")
    return torch.multinomial(counts, n, replacement=True, generator=generator)


class CrystalDiffusion(nn.Module):
    """Joint diffusion over lattice (VP), fractional coordinates (wrapped-normal VE) and species (masked D3PM)."""

    def __init__(self, cfg: ModelConfig | dict[str, Any] | None = None) -> None:
        super().__init__()
        if cfg is None:
            cfg = ModelConfig()
        elif isinstance(cfg, dict):
            cfg = ModelConfig.from_dict(cfg)
        elif not isinstance(cfg, ModelConfig):  # e.g. an OmegaConf node
            cfg = ModelConfig.from_dict(dict(cfg))
        self.cfg = cfg
        self.lattice_diffusion = LatticeVP(cfg.lattice_schedule, cfg.lattice_prior_std)
        self.coord_diffusion = WrappedNormalVE(cfg.coord_sigma_min, cfg.coord_sigma_max)
        self.species_diffusion = MaskedD3PM(cfg.species_schedule)
        self.time_embedding = TimeEmbedding(cfg.hidden)
        # conditions added by fine-tuning go through zero-init adapters, the others through the base embedding
        adapted = list(cfg.adapter_conditions)
        self.condition_embedding = ConditionEmbedding([c for c in cfg.conditions if c not in adapted], cfg.hidden)
        self.adapters = ConditionAdapters(adapted, cfg.hidden) if adapted else None
        self.denoiser = PeriodicTransformer(cfg)
        # statistics of the training data (saved with the weights)
        self.register_buffer("num_atoms_counts", torch.zeros(cfg.max_atoms + 1))
        # [N, k]: training crystals with N atoms and k distinct elements (element_count: data)
        self.register_buffer("num_elements_counts", torch.zeros(cfg.max_atoms + 1, cfg.max_atoms + 1))
        self.register_buffer("volume_per_atom", torch.tensor(15.0))
        allowed = torch.ones(cfg.max_z + 1, dtype=torch.bool)
        allowed[0] = False
        self.register_buffer("species_allowed", allowed)
        self.register_buffer("stats_seen", torch.tensor(0.0))  # crystals behind the statistics above
        # crystals per topo_class label seen in training (NaN labels not counted); checkpoints older than
        # this buffer load without it (see OPTIONAL_BUFFERS)
        for name, classes in CATEGORY_NAMES.items():  # topo_class_counts, catalogue_class_counts
            self.register_buffer(f"{name}_counts", torch.zeros(len(classes)))

    # ------------------------------------------------------------------ data statistics
    def set_num_atoms_distribution(self, counts: torch.Tensor | np.ndarray | list) -> None:
        """Histogram ``counts[n]`` of crystals with ``n`` atoms in the training data."""
        c = torch.as_tensor(np.asarray(counts, dtype=np.float64), dtype=torch.float32).flatten()
        if c.numel() > self.cfg.max_atoms + 1 and bool((c[self.cfg.max_atoms + 1:] > 0).any()):
            raise TopodiffInputError(f"training crystals exceed max_atoms={self.cfg.max_atoms}")
        buf = torch.zeros_like(self.num_atoms_counts)
        m = min(c.numel(), buf.numel())
        buf[:m] = c[:m]
        self.num_atoms_counts.copy_(buf)

    def fit_statistics(self, num_atoms: np.ndarray, lattices: np.ndarray, species: np.ndarray) -> None:
        """Set the atom-count histogram, mean volume per atom (Å³) and allowed species from training arrays."""
        num_atoms = np.asarray(num_atoms)
        self.set_num_atoms_distribution(np.bincount(num_atoms, minlength=self.cfg.max_atoms + 1))
        vol = np.abs(np.linalg.det(np.asarray(lattices, dtype=np.float64)))
        self.volume_per_atom.fill_(float(np.mean(vol / num_atoms)))
        allowed = torch.zeros_like(self.species_allowed)
        z = torch.as_tensor(np.unique(np.asarray(species)), dtype=torch.long)
        if int(z.max()) > self.cfg.max_z or int(z.min()) < 1:
            raise TopodiffInputError(f"species must be atomic numbers 1..{self.cfg.max_z}")
        allowed[z] = True
        self.species_allowed.copy_(allowed)
        table = element_count_table(num_atoms, species, self.cfg.max_atoms)
        self.num_elements_counts.copy_(torch.as_tensor(table, dtype=torch.float32))
        self.stats_seen.fill_(float(len(num_atoms)))

    @torch.no_grad()
    def update_statistics(self, batch: CrystalBatch) -> None:
        """Fold a training batch into the statistics (so any training loop fills them; the first
        batch replaces the defaults, later ones refine a running mean)."""
        n = batch.num_atoms
        if int(n.max()) > self.cfg.max_atoms:
            raise TopodiffInputError(f"a training crystal has {int(n.max())} atoms > max_atoms={self.cfg.max_atoms}")
        first = float(self.stats_seen) == 0.0
        if first:
            self.species_allowed.zero_()
        self.num_atoms_counts.add_(torch.bincount(n, minlength=self.cfg.max_atoms + 1).to(self.num_atoms_counts))
        vpa = (torch.linalg.det(batch.lattice.double()).abs() / n.double()).sum()
        seen = float(self.stats_seen)
        self.volume_per_atom.fill_((float(self.volume_per_atom) * seen + float(vpa)) / (seen + n.numel()))
        self.species_allowed[batch.species.clamp(1, self.cfg.max_z)] = True
        kinds = distinct_elements(batch.species, batch.batch_index, int(n.numel()), self.cfg.max_z + 1).sum(-1)
        self.num_elements_counts.index_put_((n, kinds), torch.ones_like(n, dtype=self.num_elements_counts.dtype),
                                            accumulate=True)
        for name, classes in CATEGORY_NAMES.items():
            label = batch.conditions.get(name)
            if label is not None:
                label = label[~torch.isnan(label)].long().clamp(0, len(classes) - 1)
                counts = getattr(self, f"{name}_counts")
                counts.add_(torch.bincount(label, minlength=len(classes)).to(counts))
        self.stats_seen.add_(float(n.numel()))

    def sample_num_atoms(self, n: int, generator: torch.Generator | None = None, min_atoms: int = 1) -> torch.Tensor:
        """``[n]`` atom counts drawn from the training distribution (restricted to ``≥ min_atoms``)."""
        return draw_atom_counts(self.num_atoms_counts, n, generator, min_atoms).to(self.num_atoms_counts.device)

    # ------------------------------------------------------------------ network
    def lattice_scale(self, num_atoms: torch.Tensor) -> torch.Tensor:
        return LatticeVP.scale(num_atoms, self.volume_per_atom)

    def denoise(self, frac_t: torch.Tensor, y_t: torch.Tensor, species_t: torch.Tensor, num_atoms: torch.Tensor,
                t: torch.Tensor, t_species: torch.Tensor, conditions: dict[str, torch.Tensor] | None = None,
                drop: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One network evaluation.

        Returns ``(coord [N,3] normalised score, ŷ0 [B,3,3] lattice latent, logits [N, max_z+1])``.
        """
        b = num_atoms.shape[0]
        s = self.lattice_scale(num_atoms)
        lat_t = self.lattice_diffusion.from_latent(y_t, s)
        ctx = self.time_embedding(t, t_species) + self.condition_embedding(conditions, b, drop, device=y_t.device)
        if self.adapters is not None:
            ctx = ctx + self.adapters(conditions, b, drop, device=y_t.device)
        coord, update, logits = self.denoiser(frac_t, lat_t, species_t, num_atoms, ctx)
        y0_hat = self.lattice_diffusion.to_latent(lat_t + update, s)
        logits = logits.masked_fill(~self.species_allowed, float("-inf"))
        return coord, y0_hat, logits

    def guided_denoise(self, frac_t, y_t, species_t, num_atoms, t, t_species, conditions=None, guidance: float = 1.0):
        """Classifier-free guidance (MatterGen's convention): ``out_u + γ (out_c − out_u)`` with
        ``γ = guidance`` — 0 is unconditional (every condition at its null embedding), 1 purely
        conditional, > 1 amplifies the condition. Species logits are combined as log-probabilities.
        Both branches run in one doubled batch when they are both needed."""
        b = num_atoms.shape[0]
        if not conditions or guidance == 0.0:
            drop = torch.ones(b, dtype=torch.bool, device=y_t.device)
            return self.denoise(frac_t, y_t, species_t, num_atoms, t, t_species, None, drop)
        if guidance == 1.0:
            return self.denoise(frac_t, y_t, species_t, num_atoms, t, t_species, conditions)
        cat = lambda x: torch.cat([x, x], 0)  # noqa: E731
        drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(y_t.device)
        cond2 = {k: cat(v) for k, v in conditions.items()}
        c, y0, lg = self.denoise(cat(frac_t), cat(y_t), cat(species_t), cat(num_atoms), cat(t), cat(t_species), cond2, drop)
        n = frac_t.shape[0]
        lp = torch.log_softmax(lg, -1).nan_to_num(neginf=-1e9)
        mix = lambda a, u: u + guidance * (a - u)  # noqa: E731
        logits = mix(lp[:n], lp[n:]).masked_fill(~self.species_allowed, float("-inf"))
        return mix(c[:n], c[n:]), mix(y0[:b], y0[b:]), logits

    # ------------------------------------------------------------------ training objective
    def loss(self, batch: CrystalBatch, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Denoising loss of one batch: ``{"loss", "loss_coord", "loss_lattice", "loss_species"}``."""
        cfg = self.cfg
        if self.training:
            self.update_statistics(batch)
            if cfg.augment_basis:
                batch = random_basis_change(batch, generator)
        dev = batch.frac.device
        b = batch.num_crystals
        bi = batch.batch_index
        t = torch.rand(b, generator=generator, device=dev) * (1 - 1e-3) + 1e-3
        csp = torch.rand(b, generator=generator, device=dev) < cfg.p_csp
        t_species = torch.where(csp, torch.zeros_like(t), t)
        frac_t, target = self.coord_diffusion.q_sample(batch.frac, t[bi], generator)
        s = self.lattice_scale(batch.num_atoms)
        y0 = self.lattice_diffusion.to_latent(batch.lattice, s)
        y_t, _ = self.lattice_diffusion.q_sample(y0, t, generator)
        species_t, masked = self.species_diffusion.q_sample(batch.species, t_species[bi], generator)
        drop_all = torch.rand(b, generator=generator, device=dev) < cfg.p_uncond
        drop: torch.Tensor | dict[str, torch.Tensor] = drop_all
        if cfg.p_drop_condition > 0 and cfg.conditions:
            drop = {name: drop_all | (torch.rand(b, generator=generator, device=dev) < cfg.p_drop_condition)
                    for name in cfg.conditions}
        coord, y0_hat, logits = self.denoise(frac_t, y_t, species_t, batch.num_atoms, t, t_species,
                                             batch.conditions, drop)
        # translations are a symmetry: compare the per-crystal mean-free parts of the scores
        diff = coord - target
        diff = diff - segment_mean(diff, bi, b)[bi]
        loss_coord = (diff ** 2).mean()
        w = self.lattice_diffusion.snr(t).clamp(0.25, cfg.lattice_snr_clip)
        loss_lattice = (w * ((y0_hat - y0) ** 2).mean((1, 2))).mean()
        loss_species = self.species_diffusion.loss(logits, batch.species, masked)
        total = cfg.w_coord * loss_coord + cfg.w_lattice * loss_lattice + cfg.w_species * loss_species
        return {"loss": total, "loss_coord": loss_coord.detach(), "loss_lattice": loss_lattice.detach(),
                "loss_species": loss_species.detach()}

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, num_atoms: torch.Tensor, *, species: torch.Tensor | None = None,
               conditions: dict[str, torch.Tensor] | None = None, guidance: float = 1.0, steps: int | None = None,
               generator: torch.Generator | None = None, return_trajectory: bool = False,
               species_mask: torch.Tensor | None = None, guide=None, num_elements: torch.Tensor | None = None,
               templates: list | None = None, start_time: float = 1.0):
        """Generate crystals; see :func:`topodiff.generative.sampler.pc_sample`."""
        from topodiff.generative.sampler import pc_sample

        return pc_sample(self, num_atoms, species=species, conditions=conditions, guidance=guidance, steps=steps,
                         generator=generator, return_trajectory=return_trajectory, species_mask=species_mask,
                         guide=guide, num_elements=num_elements, templates=templates,
                         start_time=start_time)

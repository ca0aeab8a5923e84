"""Hyper-parameters of the crystal diffusion model (nested into the training config as ``model``).

Only plain types (int, float, str, bool, list[str]) so that OmegaConf can type-check overrides.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from topodiff.errors import TopodiffInputError


#: ModelConfig keys that only steer sampling: a shipped checkpoint may change them (weights untouched)
#: and a training run may change them between launches.
SAMPLER_SETTINGS = ("sample_steps", "corrector_steps", "step_lr", "predictor_noise_scale", "corrector_noise_scale",
                    "lattice_eta", "species_temperature", "species_reveal", "species_reveal_noise",
                    "resample_structure", "element_count", "species_corrector_sweeps")
#: ``species_reveal`` values (see :mod:`topodiff.generative.corruption.d3pm`)
REVEAL_ORDERS = ("random", "confident")
#: ``element_count`` values (see :mod:`topodiff.generative.element_count`)
ELEMENT_COUNT_MODES = ("network", "data")
#: network settings added after runs and checkpoints existed; a run or checkpoint without one used this
#: value (so resuming it, or fingerprinting it, treats the missing key as this value)
ADDED_MODEL_SETTINGS = {"species_copy": False, "pair_messages": False}


@dataclass
class ModelConfig:
    """All hyper-parameters of :class:`topodiff.generative.model.CrystalDiffusion`.

    Lengths in Å, volumes in Å³. ``t`` is diffusion time in [0, 1] (0 = data, 1 = prior).
    """

    # --- denoiser (periodic transformer) ---
    hidden: int = 96             # node width
    layers: int = 4              # transformer blocks
    heads: int = 4               # attention heads
    ffn_mult: int = 2            # feed-forward width = ffn_mult · hidden
    pair_dim: int = 32           # width of the pair-geometry embedding
    num_freqs: int = 8           # Fourier features sin/cos(2π k Δf), k = 1..num_freqs
    num_rbf: int = 10            # Gaussian radial basis over periodic images
    rbf_cutoff: float = 7.0      # Å, smooth cutoff of the radial basis
    image_range: int = 1         # images n ∈ {-r..r}³ in the pair sums
    max_z: int = 100             # largest atomic number the species head can produce
    use_descriptors: bool = True  # add physical element descriptors (row, group, χ, radii) to species embeddings
    species_copy: bool = False    # species logits get learned per-atom weights on the elements already revealed in
    #                                the crystal (present or not, and their atom fraction): a copy path for stoichiometry
    pair_messages: bool = False   # attention values get a nonlinear message of (atom i, atom j, pair geometry)
    #                                in every block (denoiser.PairMessage; zero-initialised, so init_from may add it)
    dropout: float = 0.0

    # --- corruption ---
    coord_sigma_min: float = 0.005   # wrapped-normal σ at t = 0 (fractional units)
    coord_sigma_max: float = 0.5     # wrapped-normal σ at t = 1 (≈ uniform on the torus)
    lattice_schedule: str = "cosine"  # ᾱ(t) of the lattice VP diffusion: cosine | linear
    lattice_prior_std: float = 0.3   # std of the isotropic prior around the volume-scaled cube, in units of (n·v)^(1/3)
    species_schedule: str = "linear"  # absorbing-state mask probability m(t): linear | cosine
    p_csp: float = 0.5               # training fraction with clean species (CSP branch of the same network)
    augment_basis: bool = False      # training: relabel each cell's lattice vectors by a random proper signed
    #                                   permutation (same crystal, another setting; generative/augment.py)

    # --- loss ---
    w_coord: float = 1.0
    w_lattice: float = 1.0
    w_species: float = 1.0
    lattice_snr_clip: float = 5.0    # min-SNR weighting of the lattice x0 loss

    # --- sampler ---
    sample_steps: int = 100          # predictor steps
    corrector_steps: int = 1         # Langevin corrector steps per predictor step
    step_lr: float = 3e-5            # Langevin step = step_lr · (σ_t / σ_min)² (tuned on Perov-5)
    predictor_noise_scale: float = 1.0  # multiplies the noise of each coordinate predictor step (1: exact)
    corrector_noise_scale: float = 1.0  # multiplies the Langevin noise: the corrector targets p^(1/scale²)
    #                                   (< 1 = lower temperature, sharper samples; set per checkpoint)
    min_distance: float = 0.5        # Å, used by generate's minimum-distance guard
    lattice_eta: float = 1.0         # lattice reverse step: 1 = DDPM posterior, 0 = deterministic DDIM
    species_temperature: float = 1.0  # de novo: softmax temperature of the species draws at each reveal
    species_reveal: str = "random"   # de novo: which masked atoms a reverse step reveals: random (D3PM) |
    #                                   confident (those whose drawn species is most probable, MaskGIT-style)
    species_reveal_noise: float = 1.0  # confident: Gumbel noise on the log-probabilities, × t (large → random)
    resample_structure: bool = False  # de novo: after the joint pass, re-sample lattice + coordinates for the
    #                                   generated composition with the CSP branch (needs p_csp > 0; 2× the cost)
    element_count: str = "network"   # de novo: distinct elements per crystal as the network draws them (network)
    #                                   or drawn from the training data's p(k | num_atoms) and enforced (data)
    species_corrector_sweeps: int = 0  # de novo: Gibbs sweeps re-drawing each crystal's least self-consistent
    #                                   atom after the joint pass (generative/species_corrector.py); not run with
    #                                   templates or a fixed element count, whose rules the sweeps do not know

    # --- conditioning (classifier-free guidance) ---
    conditions: list[str] = field(default_factory=list)  # e.g. ["band_gap", "topo_class"]
    adapter_conditions: list[str] = field(default_factory=list)  # the subset of `conditions` embedded by
    #                                   zero-init adapters added by `topodiff finetune` (see generative/adapters.py)
    p_uncond: float = 0.15           # training probability of dropping all conditions to the null embedding
    p_drop_condition: float = 0.0    # training probability of dropping each condition on its own (so any
    #                                   subset of the conditions can be asked for at sampling time)
    default_guidance: float = 1.0    # classifier-free guidance γ used by `generate` when conditions are given
    #                                   and --guidance is not
    max_atoms: int = 64              # largest atom count in the num_atoms distribution buffer

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check(self) -> "ModelConfig":
        """Raise :class:`TopodiffInputError` naming ``model.KEY`` for a value outside its range."""
        def bad(key: str, rule: str) -> TopodiffInputError:
            return TopodiffInputError(f"config key 'model.{key}' must be {rule}, got {getattr(self, key)!r}")

        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise bad(f.name, "a finite number")
        for key, (lo, hi) in _INT_RANGES.items():
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise bad(key, f"an integer in {lo}..{hi}")
        if self.hidden % self.heads:
            raise bad("heads", f"a divisor of model.hidden={self.hidden}")
        for key, (lo, hi, lo_open, hi_open) in _FLOAT_RANGES.items():
            value = float(getattr(self, key))
            if value < lo or value > hi or (lo_open and value == lo) or (hi_open and value == hi):
                raise bad(key, f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}")
        if self.coord_sigma_min >= self.coord_sigma_max:
            raise bad("coord_sigma_min", f"below model.coord_sigma_max={self.coord_sigma_max}")
        for key, allowed in (("lattice_schedule", ("cosine", "linear")), ("species_schedule", ("linear", "cosine")),
                             ("species_reveal", REVEAL_ORDERS), ("element_count", ELEMENT_COUNT_MODES)):
            if getattr(self, key) not in allowed:
                raise bad(key, "one of " + ", ".join(allowed))
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "ModelConfig":
        """Build from a (possibly partial) dict; unknown keys are an input error."""
        data = dict(data or {})
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise TopodiffInputError(f"unknown model config key(s): {', '.join(unknown)}")
        for key in ("conditions", "adapter_conditions"):
            if key in data and data[key] is not None:
                data[key] = [str(c) for c in data[key]]
        extra = sorted(set(data.get("adapter_conditions") or []) - set(data.get("conditions") or []))
        if extra:
            raise TopodiffInputError(f"adapter_conditions {extra} must also be listed in conditions")
        try:
            return cls(**data).check()
        except TypeError as exc:
            raise TopodiffInputError(f"bad model config: {exc}") from None


# Allowed ranges (the caps keep a typo such as hidden=1e6 from exhausting memory before it is noticed).
_INT_RANGES = {"hidden": (1, 4096), "layers": (1, 128), "heads": (1, 256), "ffn_mult": (1, 64),
               "pair_dim": (1, 4096), "num_freqs": (1, 256), "num_rbf": (1, 1024), "image_range": (0, 4),
               "max_z": (1, 118), "sample_steps": (1, 100_000), "corrector_steps": (0, 1000), "max_atoms": (1, 1024),
               "species_corrector_sweeps": (0, 1000)}
_INF = math.inf
# key: (lo, hi, lo_open, hi_open)
_FLOAT_RANGES = {"rbf_cutoff": (0.0, 100.0, True, False), "dropout": (0.0, 1.0, False, True),
                 "coord_sigma_min": (0.0, 10.0, True, False), "coord_sigma_max": (0.0, 10.0, True, False),
                 "lattice_prior_std": (0.0, 10.0, True, False), "p_csp": (0.0, 1.0, False, False),
                 "w_coord": (0.0, _INF, False, True), "w_lattice": (0.0, _INF, False, True),
                 "w_species": (0.0, _INF, False, True), "lattice_snr_clip": (0.0, _INF, True, True),
                 "step_lr": (0.0, _INF, False, True), "predictor_noise_scale": (0.0, _INF, False, True),
                 "corrector_noise_scale": (0.0, _INF, False, True), "min_distance": (0.0, 10.0, False, False),
                 "lattice_eta": (0.0, 1.0, False, False), "species_temperature": (0.0, _INF, True, True),
                 "species_reveal_noise": (0.0, _INF, False, True),
                 "p_uncond": (0.0, 1.0, False, False), "p_drop_condition": (0.0, 1.0, False, False),
                 "default_guidance": (-_INF, _INF, True, True)}

"""Embeddings of the denoiser: species (learned + physical descriptors), diffusion time, conditions.

Conditions slot in as property embeddings added to the time embedding; a missing (NaN) or dropped
condition uses a learned null embedding, which is what classifier-free guidance needs.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import nn

from topodiff.errors import TopodiffInputError

TOPO_CLASSES = ("trivial_insulator", "strong_ti", "weak_ti", "metal")
#: DFT catalogue classes (Materiae / TQC / Tang et al., or the learned judge): see topodiff.crystal.catalogue
CATALOGUE_CLASSES = ("trivial", "ti", "tci", "semimetal")
#: categorical conditions given by name: label column -> class names (the index is what is embedded)
CATEGORY_NAMES: dict[str, tuple[str, ...]] = {"topo_class": TOPO_CLASSES, "catalogue_class": CATALOGUE_CLASSES}
# kind, size: "scalar" (one float), "categorical" (integer in [0, size)), "multihot" (vector of size)
CONDITION_KINDS: dict[str, tuple[str, int]] = {
    "band_gap": ("scalar", 1),
    "num_atoms": ("scalar", 1),
    "topo_class": ("categorical", len(TOPO_CLASSES)),
    "catalogue_class": ("categorical", len(CATALOGUE_CLASSES)),
    "space_group": ("categorical", 231),
    "chemical_system": ("multihot", 101),
}
DESCRIPTOR_NAMES = ("Z", "row", "group", "X", "atomic_radius", "ionic_radius", "mendeleev_no",
                    "max_oxidation", "min_oxidation", "block_s", "block_p", "block_d", "block_f")


def element_descriptors(max_z: int = 100) -> torch.Tensor:
    """``[max_z+1, 13]`` standardised physical descriptors from pymatgen (row 0, the mask, is 0).

    Columns: ``DESCRIPTOR_NAMES`` — Z, period, group, Pauling electronegativity, atomic radius (Å),
    average ionic radius (Å), Mendeleev number, max/min common oxidation state, block one-hot.
    Missing values are replaced by the column mean before standardisation.
    """
    from pymatgen.core import Element

    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for z in range(1, max_z + 1):
            e = Element.from_Z(z)

            def f(v):
                try:
                    v = float(v)
                except (TypeError, ValueError):
                    return math.nan
                return v if math.isfinite(v) and v != 0 else (v if v == 0 else math.nan)

            ox = e.common_oxidation_states or (0,)
            block = e.block
            rows.append([z, e.row, e.group, f(e.X), f(e.atomic_radius), f(e.average_ionic_radius),
                         f(e.mendeleev_no), max(ox), min(ox), block == "s", block == "p", block == "d", block == "f"])
    a = np.asarray(rows, dtype=np.float64)
    col_mean = np.nanmean(a, axis=0)
    a = np.where(np.isnan(a), col_mean, a)
    a = (a - a.mean(0)) / (a.std(0) + 1e-8)
    return torch.as_tensor(np.vstack([np.zeros((1, a.shape[1])), a]), dtype=torch.float32)


class SpeciesEmbedding(nn.Module):
    """Atomic number (0 = mask) → ``[hidden]``: learned table + linear map of physical descriptors."""

    def __init__(self, hidden: int, max_z: int = 100, use_descriptors: bool = True) -> None:
        super().__init__()
        self.table = nn.Embedding(max_z + 1, hidden)
        nn.init.normal_(self.table.weight, std=0.1 if use_descriptors else 1.0)
        self.use_descriptors = use_descriptors
        self.register_buffer("descriptors", element_descriptors(max_z) if use_descriptors else torch.zeros(max_z + 1, 13))
        self.proj = nn.Sequential(nn.Linear(13, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, species: torch.Tensor) -> torch.Tensor:
        h = self.table(species)
        if self.use_descriptors:
            known = (species > 0).unsqueeze(-1).to(h.dtype)
            h = h + known * self.proj(self.descriptors[species])
        return h


def sinusoidal(x: torch.Tensor, dim: int, max_period: float = 1000.0) -> torch.Tensor:
    """Sinusoidal features ``[..., dim]`` of ``x`` in [0, 1] (scaled by 1000 as DDPM time steps)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=x.device) / half)
    arg = (x.float() * 1000.0)[..., None] * freqs
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)


class TimeEmbedding(nn.Module):
    """``(t [B], t_species [B])`` → ``[B, hidden]``."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.mlp = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: torch.Tensor, t_species: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([sinusoidal(t, self.hidden), sinusoidal(t_species, self.hidden)], dim=-1))


def check_condition_names(names: list[str]) -> None:
    """Raise :class:`TopodiffInputError` for condition names outside :data:`CONDITION_KINDS`."""
    unknown = [n for n in names if n not in CONDITION_KINDS]
    if unknown:
        raise TopodiffInputError(f"unknown condition(s) {unknown}; known: {', '.join(CONDITION_KINDS)}")


class ConditionEmbedding(nn.Module):
    """Sum of per-property embeddings; NaN (missing) or dropped rows use the learned null embedding.

    ``forward(conditions, batch_size, drop)`` with ``conditions[name]`` of shape ``[B]`` (scalar,
    categorical as float index) or ``[B, size]`` (multi-hot), ``drop [B]`` bool.
    """

    def __init__(self, names: list[str], hidden: int) -> None:
        super().__init__()
        check_condition_names(names)
        self.names = list(names)
        self.encoders = nn.ModuleDict()
        self.null = nn.ParameterDict()
        for name in self.names:
            kind, size = CONDITION_KINDS[name]
            if kind == "scalar":
                self.encoders[name] = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
            elif kind == "categorical":
                self.encoders[name] = nn.Embedding(size, hidden)
            else:
                self.encoders[name] = nn.Sequential(nn.Linear(size, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
            self.null[name] = nn.Parameter(torch.zeros(hidden))
        self.hidden = hidden

    def forward(self, conditions: dict[str, torch.Tensor] | None, batch_size: int,
                drop: torch.Tensor | dict[str, torch.Tensor] | None = None, device=None) -> torch.Tensor:
        """``drop``: ``[B]`` bool (all conditions of those rows → null) or ``{name: [B] bool}`` per condition."""
        out = torch.zeros(batch_size, self.hidden, device=device)
        conditions = conditions or {}
        for name in self.names:
            kind, size = CONDITION_KINDS[name]
            null = self.null[name].expand(batch_size, -1)
            value = conditions.get(name)
            if value is None:
                out = out + null
                continue
            value = value.to(out.device)
            missing = torch.isnan(value) if value.dim() == 1 else torch.isnan(value).any(-1)
            clean = torch.nan_to_num(value, nan=0.0)
            if kind == "scalar":
                emb = self.encoders[name](sinusoidal(clean / 10.0, self.hidden))
            elif kind == "categorical":
                emb = self.encoders[name](clean.long().clamp(0, size - 1))
            else:
                emb = self.encoders[name](clean.float())
            row_drop = drop.get(name) if isinstance(drop, dict) else drop
            if row_drop is not None:
                missing = missing | row_drop.to(missing.device)
            out = out + torch.where(missing[:, None], null, emb)
        return out

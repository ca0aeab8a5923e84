"""Zero-initialised condition adapters: teach a trained generator a new property (fine-tuning).

Each new condition gets its own :class:`PropertyAdapter`: a property embedding (the encoders of
:class:`~topodiff.generative.embeddings.ConditionEmbedding`, with a learned null embedding for
missing (NaN) or dropped labels), a small MLP and a **zero-initialised** output ``Linear``. The sum of
the adapters' outputs is added to the denoiser context ``ctx [B, hidden]`` (time + base conditions),
which modulates every transformer block through its adaLN layer and the lattice head. At
initialisation the adapters output exactly ``0``, so the adapted model reproduces the base model's
outputs bit for bit, conditioned or not (the zero-init "control" trick of ControlNet / MatterGen).

The adapter conditions are recorded in ``ModelConfig.adapter_conditions`` (and also listed in
``ModelConfig.conditions``, so the sampler and ``generate --condition`` accept them);
:func:`~topodiff.generative.checkpoint.load_generator` rebuilds them from the config.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch
from torch import nn

from topodiff.errors import TopodiffInputError
from topodiff.generative.embeddings import CONDITION_KINDS, ConditionEmbedding, check_condition_names

if TYPE_CHECKING:
    from topodiff.generative.model import CrystalDiffusion


class PropertyAdapter(nn.Module):
    """One condition → ``[B, hidden]`` context offset; exactly zero at initialisation."""

    def __init__(self, name: str, hidden: int) -> None:
        super().__init__()
        self.name = name
        self.embedding = ConditionEmbedding([name], hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU())
        self.out = nn.Linear(hidden, hidden)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, conditions: dict[str, torch.Tensor] | None, batch_size: int,
                drop: torch.Tensor | dict[str, torch.Tensor] | None = None, device=None) -> torch.Tensor:
        """``conditions[name]`` as for :class:`ConditionEmbedding`; NaN or dropped rows use the null embedding."""
        return self.out(self.mlp(self.embedding(conditions, batch_size, drop, device=device)))


class ConditionAdapters(nn.Module):
    """Sum of one :class:`PropertyAdapter` per adapter condition: ``[B, hidden]`` added to ``ctx``."""

    def __init__(self, names: list[str], hidden: int) -> None:
        super().__init__()
        check_condition_names(names)
        self.names = list(names)
        self.hidden = hidden
        self.adapters = nn.ModuleDict({n: PropertyAdapter(n, hidden) for n in self.names})

    def forward(self, conditions: dict[str, torch.Tensor] | None, batch_size: int,
                drop: torch.Tensor | dict[str, torch.Tensor] | None = None, device=None) -> torch.Tensor:
        out = torch.zeros(batch_size, self.hidden, device=device)
        for adapter in self.adapters.values():
            out = out + adapter(conditions, batch_size, drop, device=device)
        return out


def add_adapters(model: "CrystalDiffusion", names: list[str]) -> "CrystalDiffusion":
    """A copy of ``model`` that also accepts the conditions ``names`` through new zero-init adapters.

    The copy keeps every weight and statistics buffer of ``model`` (its own conditions included) and
    gives exactly the same outputs until the adapters are trained. ``names`` must be known kinds
    (:data:`CONDITION_KINDS`) that ``model`` does not have yet.
    """
    from topodiff.generative.model import CrystalDiffusion

    names = [str(n) for n in names]
    if not names:
        raise TopodiffInputError("give at least one property to add")
    if len(set(names)) != len(names):
        raise TopodiffInputError(f"property given twice: {names}")
    unknown = [n for n in names if n not in CONDITION_KINDS]
    if unknown:
        raise TopodiffInputError(f"unknown property {unknown[0]!r}; known: {', '.join(CONDITION_KINDS)}")
    present = [n for n in names if n in model.cfg.conditions]
    if present:
        raise TopodiffInputError(f"the base model is already conditioned on {', '.join(present)}")
    cfg = dataclasses.replace(model.cfg, conditions=list(model.cfg.conditions) + names,
                              adapter_conditions=list(model.cfg.adapter_conditions) + names)
    new = CrystalDiffusion(cfg).to(next(model.parameters()).device)
    missing, unexpected = new.load_state_dict(model.state_dict(), strict=False)
    new_keys = {f"adapters.adapters.{n}." for n in names}
    bad = [k for k in missing if not any(k.startswith(p) for p in new_keys)]
    if bad or unexpected:  # pragma: no cover - a programming error, not user input
        raise RuntimeError(f"adapter copy mismatch: missing {bad[:3]}, unexpected {unexpected[:3]}")
    new.train(model.training)
    return new


def adapter_parameters(model: "CrystalDiffusion", names: list[str]) -> list[nn.Parameter]:
    """Parameters of the adapters of ``names`` (the ones fine-tuning trains by default)."""
    if model.adapters is None:
        return []
    return [p for n in names for p in model.adapters.adapters[n].parameters()]

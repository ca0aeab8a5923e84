"""A formula model: ``p(cell formula | N, conditions)``, drawn before the diffusion model places the atoms.

The cell formula is a token sequence: the atom count ``N``, then ``(element, count)`` pairs with the
elements in a fixed order (ascending Pauling electronegativity, ties and unknowns by atomic number:
cations first), then an end token. Ba2Cu4O7 with ``N = 13`` reads ``[N13, Ba, 2, Cu, 4, O, 7, END]``.
A GRU reads the tokens; the conditions (``catalogue_class``, ``band_gap``, ``space_group``, each
dropped with probability ``p_uncond`` in training, for classifier-free guidance) add one embedding
(:class:`~topodiff.generative.embeddings.ConditionEmbedding`) to every input token.

Sampling keeps every sequence well formed with masks, so these hold exactly: the counts sum to ``N``,
each element appears once and in the fixed order, a ``chemical_system`` is the exact element set (its
elements are then taken in order and only their counts drawn) and ``num_elements`` the exact number
of elements. Why the diffusion model's own species reveal is not enough is measured in
``docs/generator.md`` ("What limits the compositions").
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from topodiff.errors import TopodiffInputError
from topodiff.generative.embeddings import ConditionEmbedding, check_condition_names

FORMAT = "topodiff-formula/1"
SUFFIX = ".formula.ckpt"
PAD, END = 0, 1


@dataclass
class FormulaConfig:
    """Size of the formula model and what it is conditioned on."""

    hidden: int = 256
    layers: int = 2
    dropout: float = 0.3
    max_z: int = 100          # largest atomic number
    max_atoms: int = 20       # largest cell (atoms) it was trained for
    conditions: list[str] = field(default_factory=lambda: ["catalogue_class", "band_gap", "space_group"])
    p_uncond: float = 0.2     # per-condition drop probability in training

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "FormulaConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data or {}) - known)
        if unknown:
            raise TopodiffInputError(f"unknown formula-model settings: {', '.join(unknown)}")
        cfg = cls(**(data or {}))
        check_condition_names(cfg.conditions)
        return cfg

    @property
    def vocab(self) -> int:
        """PAD, END, elements ``1..max_z``, counts ``1..max_atoms``, atom counts ``1..max_atoms``."""
        return 2 + self.max_z + 2 * self.max_atoms

    def element_token(self, z: torch.Tensor | int):
        return z + 1

    def count_token(self, c: torch.Tensor | int):
        return c + self.max_z + 1

    def size_token(self, n: torch.Tensor | int):
        return n + self.max_z + 1 + self.max_atoms


def electronegativity_rank(max_z: int) -> torch.Tensor:
    """``[max_z+1]`` position of each element in the formula order (index 0 unused): ascending
    Pauling electronegativity, elements without one (He, Ne, Ar) first, ties by atomic number."""
    import warnings

    from pymatgen.core import Element

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # pymatgen warns for elements without a Pauling value
        chi = [0.0] + [float(Element.from_Z(z).X) for z in range(1, max_z + 1)]
    key = [(c if np.isfinite(c) else 0.0, z) for z, c in enumerate(chi)]
    order = sorted(range(1, max_z + 1), key=lambda z: key[z])
    rank = torch.zeros(max_z + 1, dtype=torch.long)
    rank[torch.tensor(order)] = torch.arange(1, max_z + 1)
    return rank


class FormulaModel(nn.Module):
    """GRU over formula tokens with a condition embedding added to every input (module docstring)."""

    def __init__(self, cfg: FormulaConfig | dict[str, Any] | None = None) -> None:
        super().__init__()
        self.cfg = cfg if isinstance(cfg, FormulaConfig) else FormulaConfig.from_dict(cfg)
        h = self.cfg.hidden
        self.embed = nn.Embedding(self.cfg.vocab, h, padding_idx=PAD)
        self.condition = ConditionEmbedding(list(self.cfg.conditions), h)
        self.rnn = nn.GRU(h, h, self.cfg.layers, batch_first=True,
                          dropout=self.cfg.dropout if self.cfg.layers > 1 else 0.0)
        self.head = nn.Linear(h, self.cfg.vocab)
        # set by training, stored with the weights: formula order, training histograms
        self.register_buffer("rank", torch.arange(self.cfg.max_z + 1))
        self.register_buffer("size_counts", torch.zeros(self.cfg.max_atoms + 1, dtype=torch.float64))
        self.register_buffer("element_counts", torch.zeros(self.cfg.max_z + 1, dtype=torch.float64))
        self.recipe: dict[str, Any] = {}

    def forward(self, tokens: torch.Tensor, context: torch.Tensor,
                hx: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``tokens [B, L]``, ``context [B, hidden]`` (:meth:`context`) → ``(logits [B, L, vocab], hx)``."""
        out, hx = self.rnn(self.embed(tokens) + context[:, None, :], hx)
        return self.head(out), hx

    def context(self, conditions: dict[str, torch.Tensor] | None, batch_size: int,
                drop: torch.Tensor | dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``[B, hidden]`` embedding of the conditions (missing, NaN or dropped ones: learned nulls)."""
        return self.condition(conditions, batch_size, drop, device=self.head.weight.device)


# ---------------------------------------------------------------------------------------------- encoding
def encode_formulas(species: list[np.ndarray], cfg: FormulaConfig, rank: torch.Tensor) -> torch.Tensor:
    """``[B, L]`` token sequences (PAD-filled) of cells given as atomic numbers, one array per cell."""
    rank_np = rank.cpu().numpy()
    seqs = []
    for zs in species:
        zs = np.asarray(zs, dtype=np.int64)
        if zs.size == 0 or zs.size > cfg.max_atoms or zs.min() < 1 or zs.max() > cfg.max_z:
            raise TopodiffInputError(f"a cell of {zs.size} atoms (elements {sorted(set(zs.tolist()))}) is outside "
                                     f"the formula model's range (1-{cfg.max_atoms} atoms, Z 1-{cfg.max_z})")
        elements, counts = np.unique(zs, return_counts=True)
        order = np.argsort(rank_np[elements], kind="stable")
        seq = [cfg.size_token(int(zs.size))]
        for z, c in zip(elements[order], counts[order]):
            seq += [cfg.element_token(int(z)), cfg.count_token(int(c))]
        seqs.append(seq + [END])
    out = torch.full((len(seqs), max(map(len, seqs))), PAD, dtype=torch.long)
    for i, seq in enumerate(seqs):
        out[i, :len(seq)] = torch.tensor(seq)
    return out


def formula_loss(model: FormulaModel, tokens: torch.Tensor, conditions: dict[str, torch.Tensor],
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Mean next-token cross entropy (nats per token) with each condition dropped with ``p_uncond``."""
    b = tokens.shape[0]
    drop = {k: torch.rand(b, generator=generator) < model.cfg.p_uncond for k in model.cfg.conditions}
    logits, _ = model(tokens[:, :-1], model.context(conditions, b, drop))
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1),
                                       ignore_index=PAD)


@torch.no_grad()
def formula_nll(model: FormulaModel, tokens: torch.Tensor, conditions: dict[str, torch.Tensor] | None,
                chunk: int = 1024) -> float:
    """Mean negative log-likelihood per formula (nats; conditions as given, none dropped)."""
    total = 0.0
    for s in range(0, tokens.shape[0], chunk):
        part = tokens[s:s + chunk]
        cond = None if conditions is None else {k: v[s:s + chunk] for k, v in conditions.items()}
        logits, _ = model(part[:, :-1], model.context(cond, part.shape[0]))
        total += float(nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), part[:, 1:].reshape(-1),
                                                   ignore_index=PAD, reduction="sum"))
    return total / max(tokens.shape[0], 1)


# ---------------------------------------------------------------------------------------------- save / load
def save_formula_model(model: FormulaModel, path: str | os.PathLike, recipe: dict[str, Any] | None = None) -> Path:
    """Write weights + config + recipe atomically (tensors and plain data only); returns the path."""
    from topodiff.training.checkpoint_files import atomic_torch_save

    obj = {"format": FORMAT, "config": model.cfg.to_dict(), "recipe": recipe or {},
           "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
    return atomic_torch_save(obj, path)


def resolve_formula_model(path_or_name: str | os.PathLike) -> Path:
    """A file path or a shipped name (``CHECKPOINT_DIR/<name>.formula.ckpt``)."""
    from topodiff.generative.checkpoint import resolve_shipped_file

    return resolve_shipped_file(str(path_or_name), SUFFIX, "formula model")


def formula_model_path(choice: str | None, checkpoint: str | os.PathLike | None) -> Path | None:
    """The formula-model file ``--formulas choice`` names: ``auto`` / None → ``<checkpoint stem>.formula.ckpt``
    beside the checkpoint if it exists, ``network`` → None, else a file or shipped name (resolved)."""
    choice = "auto" if choice is None else str(choice)
    if choice == "network":
        return None
    if choice != "auto":
        return resolve_formula_model(choice)
    path = None if not checkpoint else Path(checkpoint).with_name(Path(checkpoint).stem + SUFFIX)
    return path if path is not None and path.is_file() else None


def load_formula_model(path_or_name: str | os.PathLike) -> FormulaModel:
    """Load a formula model (eval mode) without unpickling code; bad files raise TopodiffInputError."""
    from topodiff.generative.checkpoint import load_model_file

    return load_model_file(resolve_formula_model(path_or_name), FORMAT, "formula model",
                           lambda config: FormulaModel(FormulaConfig.from_dict(config)))

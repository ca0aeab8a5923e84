"""Cell formulas of an exact element set (``chemical_system``), drawn from the formula model's posterior.

Under a chemical system the elements and their order are fixed; what is left to draw is the atom
count ``N`` and the count of each element. Drawing ``N`` first and then masking the elements (the
ancestral draw of :mod:`~topodiff.generative.formula_sampling`) picks ``N`` blind to the elements:
Bi-Se at ``N = 7`` can only be Bi2Se5, Bi3Se4, ... Here every ``(N, counts)`` the size range allows is
enumerated (``C(N_max, k)`` of them for ``k`` elements; up to :data:`MAX_SEQUENCES`) and scored by the network, and the draw follows

    p(N, counts | elements, conditions) ∝ p(N) · p(e1, c1, ..., ek, ck, END | N, conditions)

exactly, with ``p(N)`` the model's training histogram and the conditions steered by classifier-free
guidance as in the ancestral draw. With two elements and 20 atoms that is 190 sequences.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from topodiff.errors import TopodiffInputError
from topodiff.generative.formula_model import END, PAD, FormulaModel

#: most (N, counts) sequences scored for one element set: C(20, 5) = 15,504 (5 elements, 20 atoms; ~7 CPU s)
#: fit; larger sets fall back to the masked ancestral draw (C(20, 9) = 167,960 took 75 CPU s)
MAX_SEQUENCES = 20_000


def num_candidates(num_elements: int, largest: int) -> int:
    """How many ``(N, counts)`` with every count ≥ 1 and ``N ≤ largest`` a ``num_elements`` system has."""
    return math.comb(int(largest), int(num_elements)) if num_elements >= 1 else 0


def candidate_counts(num_elements: int, lo: int, hi: int) -> np.ndarray:
    """``[S, k]`` every count vector (each ≥ 1) of ``k`` elements whose sum lies in ``[lo, hi]``."""
    k = int(num_elements)
    rows = []
    for n in range(max(int(lo), k), int(hi) + 1):   # stars and bars: k−1 cut points among n−1 gaps
        for cuts in itertools.combinations(range(1, n), k - 1):
            edges = (0, *cuts, n)
            rows.append([edges[i + 1] - edges[i] for i in range(k)])
    return np.asarray(rows, dtype=np.int64).reshape(-1, k)


def _tokens(model: FormulaModel, elements: np.ndarray, counts: np.ndarray) -> torch.Tensor:
    """``[S, L]`` token sequences of the element order ``elements`` with each row of ``counts``."""
    cfg = model.cfg
    c = torch.as_tensor(counts)
    s, k = c.shape
    body = torch.stack([torch.as_tensor(cfg.element_token(elements)).expand(s, k), cfg.count_token(c)],
                       dim=-1).reshape(s, 2 * k)
    return torch.cat([cfg.size_token(c.sum(-1))[:, None], body, torch.full((s, 1), END, dtype=torch.long)], dim=-1)


@torch.no_grad()
def sequence_log_probs(model: FormulaModel, tokens: torch.Tensor, context: torch.Tensor, null: torch.Tensor | None,
                       guidance: float, temperature: float, chunk: int = 4096) -> torch.Tensor:
    """``[S]`` log-probability (float64) of each sequence after its first token, at ``temperature``, with
    guidance γ where ``null`` (the unconditional context, ``[1, hidden]``) is given: ``u + γ (c − u)``."""
    out = []
    for start in range(0, tokens.shape[0], chunk):
        part = tokens[start:start + chunk]
        b = part.shape[0]
        logits = model(part[:, :-1], context.expand(b, -1))[0].double()
        if null is not None:
            uncond = model(part[:, :-1], null.expand(b, -1))[0].double()
            logits = uncond + float(guidance) * (logits - uncond)
        logp = torch.log_softmax(logits / float(temperature), -1).gather(-1, part[:, 1:, None])[..., 0]
        out.append(torch.where(part[:, 1:] == PAD, 0.0, logp).sum(-1))
    return torch.cat(out)


def sample_system_formulas(model: FormulaModel, num_atoms: torch.Tensor, system: torch.Tensor,
                           conditions: dict[str, torch.Tensor] | None, *, guidance: float, temperature: float,
                           size_range: tuple[int, int], generator: torch.Generator | None) -> list[np.ndarray]:
    """One formula of exactly the elements of ``system [max_z+1]`` per entry of ``num_atoms [B]`` (0: free
    in ``size_range``), drawn from the posterior of the module docstring. Rows sharing their conditions
    and atom count are scored once."""
    cfg = model.cfg
    elements = np.flatnonzero(system.cpu().numpy())
    elements = elements[np.argsort(model.rank.cpu().numpy()[elements], kind="stable")]
    counts = candidate_counts(len(elements), *size_range)
    if counts.shape[0] == 0:
        raise TopodiffInputError(f"no cell of {size_range[0]}-{size_range[1]} atoms holds {len(elements)} elements")
    tokens = _tokens(model, elements, counts)
    sizes = torch.as_tensor(counts.sum(-1))
    prior = torch.log(model.size_counts.detach().cpu().double()[sizes])   # p(N) up to a constant
    given = {k: v for k, v in (conditions or {}).items() if k in cfg.conditions}
    keys = _row_keys(given, num_atoms)
    out: list[np.ndarray | None] = [None] * len(keys)
    for key in dict.fromkeys(keys):
        rows = [i for i, k in enumerate(keys) if k == key]
        row = {name: v[rows[0]:rows[0] + 1] for name, v in given.items()}
        context = model.context(row, 1)
        null = model.context(None, 1) if given and guidance != 1.0 else None
        logp = sequence_log_probs(model, tokens, context, null, guidance, temperature)
        n = int(num_atoms[rows[0]])   # a given N needs no prior over N
        logp = torch.where(sizes == n, logp, -torch.inf) if n > 0 else logp + prior
        if not bool(torch.isfinite(logp).any()):
            raise TopodiffInputError(f"no cell size in {size_range[0]}-{size_range[1]} atoms is possible "
                                     f"for {len(elements)} elements with this formula model")
        picks = torch.multinomial(torch.softmax(logp, 0), len(rows), replacement=True, generator=generator)
        for i, p in zip(rows, picks.tolist()):
            out[i] = np.repeat(elements, counts[p])
    return out


def _row_keys(given: dict[str, torch.Tensor], num_atoms: torch.Tensor) -> list[tuple]:
    """A hashable key per row: its atom count and condition values (NaN, a missing value, as one sentinel)."""
    columns = [num_atoms.reshape(-1, 1).double()] + [v.reshape(v.shape[0], -1).double() for v in given.values()]
    table = torch.cat(columns, dim=1).numpy()
    return [tuple(np.where(np.isnan(r), -1e300, r).tolist()) for r in table]

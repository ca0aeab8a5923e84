"""Drawing cell formulas from a :class:`~topodiff.generative.formula_model.FormulaModel`, all crystals at once.

A free atom count ``N`` comes from the model's training histogram; under a ``chemical_system`` the
draw is exact instead: ``N`` and the counts from the network's posterior given the elements
(:mod:`~topodiff.generative.formula_system`). Otherwise each draw alternates an element step and a
count step. Masks keep every formula well formed
(elements in the model's order, each once; counts summing to ``N``) and make ``chemical_system``
(exact element set) and ``num_elements`` (exact number of elements) hold exactly; within the allowed
tokens the draw follows the network's probabilities (at ``temperature``), with classifier-free
``guidance`` γ on the conditions: ``logits = u + γ (c − u)`` (0 unconditional, 1 conditional).
"""
from __future__ import annotations

import numpy as np
import torch

from topodiff.errors import TopodiffInputError
from topodiff.generative.formula_model import END, FormulaModel
from topodiff.generative.formula_system import MAX_SEQUENCES, num_candidates, sample_system_formulas


class _Draw:
    """The network as one batched draw calls it: GRU state, guidance, masked sampling."""

    def __init__(self, model: FormulaModel, conditions: dict[str, torch.Tensor] | None, batch: int,
                 guidance: float, temperature: float, generator: torch.Generator | None) -> None:
        self.model, self.batch, self.temperature, self.generator = model, batch, temperature, generator
        given = {k: v for k, v in (conditions or {}).items() if k in model.cfg.conditions}
        self.guided = bool(given) and guidance != 1.0
        context = model.context(given, batch)
        self.context = torch.cat([context, model.context(None, batch)]) if self.guided else context
        self.guidance, self.hx = float(guidance), None

    def logits(self, token: torch.Tensor) -> torch.Tensor:
        """``[B, vocab]`` next-token logits after feeding ``token [B]`` (guided when conditions are)."""
        tokens = torch.cat([token, token]) if self.guided else token
        out, self.hx = self.model(tokens[:, None], self.context, self.hx)
        out = out[:, 0].double()
        if self.guided:
            cond, uncond = out[:self.batch], out[self.batch:]
            out = uncond + self.guidance * (cond - uncond)
        return out

    def sample(self, logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``[B]`` tokens drawn from ``softmax(logits / T)`` restricted to ``allowed [B, vocab]``."""
        masked = (logits / self.temperature).masked_fill(~allowed, float("-inf"))
        return torch.multinomial(torch.softmax(masked, -1), 1, generator=self.generator).squeeze(-1)


@torch.no_grad()
def sample_formulas(model: FormulaModel, num_atoms: torch.Tensor, conditions: dict[str, torch.Tensor] | None = None,
                    *, guidance: float = 1.0, system: torch.Tensor | None = None,
                    num_elements: torch.Tensor | None = None, temperature: float = 1.0,
                    elements: torch.Tensor | None = None, size_range: tuple[int, int] | None = None,
                    generator: torch.Generator | None = None) -> list[np.ndarray]:
    """One cell formula per entry of ``num_atoms [B]``, each as atomic numbers ``[N]`` (elements in the
    model's order). ``num_atoms``: atoms per cell, 0 where it is free: drawn from the training histogram
    (with ``system``: from the posterior given the elements), within ``size_range`` (inclusive; default 1
    to the model's largest) and never below the number of elements asked for. ``conditions``: name →
    ``[B]`` or ``[B, k]`` values (those the model was not trained on are ignored); ``system [max_z+1]``
    bool: the exact element set; ``num_elements [B]``: exact counts; ``elements`` bool mask over Z (any
    length; Z beyond it unusable): the elements a formula may use at all (e.g. those the generator knows)."""
    cfg, b = model.cfg, int(num_atoms.shape[0])
    target = _element_targets(b, system, num_elements, cfg.max_z)
    usable = _usable_elements(elements, cfg.max_z)
    if system is not None and bool((system.bool() & ~usable).any()):
        raise TopodiffInputError("the chemical system has elements this generator never saw")
    lo, hi = size_range or (1, cfg.max_atoms)
    _check_sizes(num_atoms.long(), lo, hi, cfg.max_atoms)
    if system is not None and num_candidates(int(system.sum()), hi) <= MAX_SEQUENCES:
        return sample_system_formulas(model, num_atoms.long().cpu(), system.bool(), conditions, guidance=guidance,
                                      temperature=temperature, size_range=(int(lo), int(hi)), generator=generator)
    draw = _Draw(model, conditions, b, guidance, temperature, generator)
    n = _atom_counts(draw, num_atoms.long().cpu(), target, (lo, hi))
    if bool((target > n).any()):
        raise TopodiffInputError("each formula needs between 1 and N elements (N: its atom count)")
    rank = model.rank.cpu().masked_fill(~usable, -1)       # unusable elements never come "after" another
    later = (usable[None, :] & (rank[None, :] > rank[:, None])).sum(-1)   # [max_z+1] usable ones after each
    last = torch.zeros(b, dtype=torch.long)        # rank of the last element (0: none yet)
    used = torch.zeros(b, dtype=torch.long)
    left, done = n.clone(), torch.zeros(b, dtype=torch.bool)
    token, picks = cfg.size_token(n), []
    for _ in range(cfg.max_atoms + 1):
        logits = draw.logits(token)
        allowed = _element_mask(rank, later, last, used, left, target, system, cfg.vocab, cfg.max_z)
        choice = draw.sample(logits, allowed)        # finished formulas may only take END
        done = choice == END
        if bool(done.all()):
            break
        z = (choice - 1).clamp(0, cfg.max_z)
        last = torch.where(done, last, rank[z])
        used = used + (~done).long()
        logits = draw.logits(torch.where(done, torch.full_like(token, END), choice))
        lo = torch.where(target >= 0, torch.where(used == target, left, 1), torch.where(later[z] == 0, left, 1))
        hi = torch.where(target >= 0, left - (target - used), left)
        c = torch.arange(1, cfg.max_atoms + 1)
        ok = (c[None] >= lo[:, None]) & (c[None] <= hi[:, None]) | (done[:, None] & (c[None] == 1))
        allowed = torch.zeros(b, cfg.vocab, dtype=torch.bool)
        allowed[:, cfg.count_token(1):cfg.count_token(cfg.max_atoms) + 1] = ok
        count = draw.sample(logits, allowed) - cfg.count_token(0)
        picks.append((z, count, ~done))
        left = left - torch.where(done, 0, count)
        token = torch.where(done, torch.full_like(token, END), cfg.count_token(count))
    return [np.repeat(np.array([int(z[i]) for z, _, a in picks if a[i]], dtype=np.int64),
                      [int(c[i]) for _, c, a in picks if a[i]]) for i in range(b)]


def _usable_elements(elements: torch.Tensor | None, max_z: int) -> torch.Tensor:
    """``[max_z+1]`` bool: the elements a formula may use (``elements`` fitted to the model's Z range)."""
    usable = torch.ones(max_z + 1, dtype=torch.bool)
    if elements is not None:
        k = min(len(usable), len(elements))
        usable[:k] = elements[:k].bool().cpu()
        usable[k:] = False
    usable[0] = False
    return usable


def _element_targets(batch: int, system: torch.Tensor | None, num_elements: torch.Tensor | None,
                     max_z: int) -> torch.Tensor:
    """``[B]`` exact number of elements per formula (−1: free)."""
    if system is not None:
        if system.shape[-1] != max_z + 1 or bool(system[0]):
            raise TopodiffInputError(f"chemical system must be a mask over Z 1-{max_z}")
        target = torch.full((batch,), int(system.sum()), dtype=torch.long)
    elif num_elements is not None:
        target = num_elements.long().cpu().clone()
    else:
        return torch.full((batch,), -1, dtype=torch.long)
    if bool((target < 1).any()):
        raise TopodiffInputError("each formula needs between 1 and N elements (N: its atom count)")
    return target


def _check_sizes(n: torch.Tensor, lo: int, hi: int, largest: int) -> None:
    """Atom counts (0: free) and the size range must lie within the model's 1-``largest`` atoms."""
    if int(n.min()) < 0 or int(n.max()) > largest or int(hi) > largest or int(lo) < 1 or lo > hi:
        raise TopodiffInputError(f"atom counts must lie in 1-{largest} for this formula model")


def _atom_counts(draw: _Draw, n: torch.Tensor, target: torch.Tensor, size_range: tuple[int, int]) -> torch.Tensor:
    """``[B]`` atoms per cell: ``n`` where > 0, else drawn from the model's training histogram in
    ``size_range`` and ≥ ``target`` (the number of elements asked for)."""
    from topodiff.generative.model import draw_atom_counts

    lo, hi = size_range
    lo = int(torch.clamp(target, min=int(lo)).max())
    if lo > int(hi):
        raise TopodiffInputError(f"more elements asked for than the largest cell ({int(hi)} atoms) holds")
    free = n == 0
    if bool(free.any()):
        n = n.clone()
        n[free] = draw_atom_counts(draw.model.size_counts, int(free.sum()), draw.generator, lo, int(hi))
    return n


def _element_mask(rank: torch.Tensor, later: torch.Tensor, last: torch.Tensor, used: torch.Tensor,
                  left: torch.Tensor, target: torch.Tensor, system: torch.Tensor | None, vocab: int, max_z: int
                  ) -> torch.Tensor:
    """``[B, vocab]`` tokens allowed at an element step: the next element, or END once none is needed."""
    more = torch.where(target >= 0, used < target, left > 0)
    after = rank[None, 1:] > last[:, None]                     # [B, max_z] in order (unusable: rank −1)
    room = later[None, 1:] >= torch.where(target >= 0, target - used - 1, 0)[:, None]
    elements = after & room & more[:, None]
    if system is not None:   # the next element of the system, in order
        pending = torch.where(system[None, 1:].bool() & after, rank[None, 1:], max_z + 1)
        first = pending.argmin(-1)
        elements = elements & (torch.arange(max_z)[None] == first[:, None])
    allowed = torch.zeros(last.shape[0], vocab, dtype=torch.bool)
    allowed[:, 2:max_z + 2] = elements
    allowed[:, END] = ~more
    return allowed

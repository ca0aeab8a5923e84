"""Training a :class:`~topodiff.generative.formula_model.FormulaModel` on a crystal CSV, early-stopped on a
held-out CSV: ``topodiff formula train``. The weights kept are those of the lowest held-out
negative log-likelihood (nats per formula, conditions given), checked every ``eval_every`` steps.
"""
from __future__ import annotations

import copy
import os
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from topodiff.errors import TopodiffInputError
from topodiff.generative.formula_model import (FormulaConfig, FormulaModel, electronegativity_rank,
                                               encode_formulas, formula_loss, formula_nll, save_formula_model)


def formula_data(csv: str | os.PathLike, cfg: FormulaConfig, rank: torch.Tensor
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor], list[np.ndarray]]:
    """``(tokens [B, L], conditions {name: [B]} (NaN: missing), cells as atomic numbers)`` of a CSV."""
    from topodiff.crystal.dataset import load_dataset
    from topodiff.generative.data import CrystalTorchDataset

    ds = CrystalTorchDataset(load_dataset(csv))
    big = int(ds.num_atoms.max()) if len(ds) else 0
    if big > cfg.max_atoms:
        raise TopodiffInputError(f"{csv} holds cells of up to {big} atoms; the formula model takes at most "
                                 f"{cfg.max_atoms} (--max-atoms)")
    cells = [ds.species[o:o + n] for o, n in zip(ds.offsets.tolist(), ds.num_atoms.tolist())]
    conditions = {}
    for name in cfg.conditions:
        values = ds.conditions.get(name)
        if values is None or not np.isfinite(values).any():
            raise TopodiffInputError(f"{csv} has no {name} values to condition on; leave it out of --conditions")
        conditions[name] = torch.tensor(np.array(values, dtype=np.float32))
    return encode_formulas(cells, cfg, rank), conditions, cells


def _subset(conditions: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v[index] for k, v in conditions.items()}


def train_formula_model(train_csv: str | os.PathLike, val_csv: str | os.PathLike, out: str | os.PathLike | None,
                        *, steps: int = 4000, batch_size: int = 128, lr: float = 2e-3, seed: int = 0,
                        eval_every: int = 100, patience: int = 8, config: FormulaConfig | dict | None = None,
                        progress: bool = True, recipe: dict[str, Any] | None = None
                        ) -> tuple[FormulaModel, dict[str, Any]]:
    """Train up to ``steps`` optimiser steps, stop after ``patience`` evaluations without a lower held-out
    NLL, keep the best weights; write ``out`` (if given) with the metrics in its recipe."""
    if min(int(steps), int(batch_size), int(eval_every), int(patience)) < 1:
        raise TopodiffInputError("steps, batch size, eval_every and patience must be ≥ 1")
    torch.manual_seed(int(seed))
    gen = torch.Generator().manual_seed(int(seed))
    model = FormulaModel(config)
    cfg = model.cfg
    model.rank.copy_(electronegativity_rank(cfg.max_z))
    tokens, conditions, cells = formula_data(train_csv, cfg, model.rank)
    val_tokens, val_conditions, _ = formula_data(val_csv, cfg, model.rank)
    sizes = torch.tensor([len(c) for c in cells])
    model.size_counts.copy_(torch.bincount(sizes, minlength=cfg.max_atoms + 1).double())
    model.element_counts.copy_(torch.bincount(torch.as_tensor(np.concatenate(cells)),
                                              minlength=cfg.max_z + 1).double())
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    from topodiff.progress import progress as progress_bar

    best = (float("inf"), 0, copy.deepcopy(model.state_dict()))
    history, since, t0 = [], 0, time.time()
    bar = progress_bar(range(1, int(steps) + 1), desc="formula model", enabled=None if progress else False)
    for step in bar:
        model.train()
        index = torch.randint(tokens.shape[0], (int(batch_size),), generator=gen)
        loss = formula_loss(model, tokens[index], _subset(conditions, index), gen)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % int(eval_every) and step != int(steps):
            continue
        model.eval()
        nll = formula_nll(model, val_tokens, val_conditions)
        history.append((step, round(nll, 4)))
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}", val_nll=f"{nll:.3f}")
        best, since = ((nll, step, copy.deepcopy(model.state_dict())), 0) if nll < best[0] else (best, since + 1)
        if since >= int(patience):
            break
    model.load_state_dict(best[2])
    model.eval()
    metrics = {"best_step": best[1], "steps_run": history[-1][0], "val_nll_per_formula": round(best[0], 4),
               "val_nll_unconditional": round(formula_nll(model, val_tokens, None), 4),
               "train_nll_per_formula": round(formula_nll(model, tokens, conditions), 4),
               "val_history": history, "train_rows": int(tokens.shape[0]), "val_rows": int(val_tokens.shape[0]),
               "batch_size": int(batch_size), "lr": lr, "seed": int(seed), "eval_every": int(eval_every),
               "patience": int(patience), "train_wall_s": round(time.time() - t0, 1)}
    if out is not None:
        save_formula_model(model, out, {**(recipe or {}), "train_csv": str(train_csv), "val_csv": str(val_csv),
                                        "metrics": metrics})
    model.recipe = {**(recipe or {}), "metrics": metrics}
    return model, metrics

"""One exponential moving average of a module's weights, for every training path.

The update is torch's own (:func:`torch.optim.swa_utils.get_ema_multi_avg_fn`, one fused
``_foreach_lerp_`` over all averaged tensors) with a warm-up of the decay:
``ema ← d·ema + (1−d)·θ``, ``d = min(decay, (1+n)/(10+n))`` after ``n`` optimiser steps, so a short
run is not dominated by its initial weights. Trainable floating-point parameters are averaged;
buffers (data statistics) and frozen parameters are copied.
"""
from __future__ import annotations

import torch
from torch.optim.swa_utils import get_ema_multi_avg_fn


def ema_decay_at(decay: float, steps_done: int) -> float:
    """The decay used after ``steps_done`` optimiser steps: ``min(decay, (1+n)/(10+n))``."""
    return min(float(decay), (1.0 + steps_done) / (10.0 + steps_done))


class WeightEMA:
    """EMA copy of ``model.state_dict()`` (same keys, no prefix).

    Parameters
    ----------
    model : the trained module; the tensors averaged are its parameters that require grad now.
    decay : the long-run decay (``0`` keeps the live weights).
    initial : a saved EMA state (same keys) to continue from, e.g. on resume; default: the live weights.
    """

    def __init__(self, model: torch.nn.Module, decay: float, initial: dict[str, torch.Tensor] | None = None) -> None:
        self.decay = float(decay)
        self.model = model
        state = model.state_dict()
        source = initial if initial is not None else state
        self.state = {k: source[k].detach().to(device=v.device, dtype=v.dtype).clone() for k, v in state.items()}
        params = {id(p) for p in model.parameters() if p.requires_grad}
        live = model.state_dict(keep_vars=True)
        avg = {k for k, v in live.items() if id(v) in params and v.is_floating_point()}
        # tensor lists for one foreach call per step (parameters keep their storage)
        self._avg = ([self.state[k] for k in live if k in avg], [live[k].detach() for k in live if k in avg])
        self._copy_keys = [k for k in live if k not in avg]  # re-read each step: buffers may be reassigned

    @torch.no_grad()
    def update(self, steps_done: int) -> None:
        """Average after optimiser step number ``steps_done`` (1 for the first step)."""
        ema_avg, live_avg = self._avg
        if ema_avg:
            get_ema_multi_avg_fn(ema_decay_at(self.decay, steps_done))(ema_avg, live_avg, None)
        if self._copy_keys:
            current = dict(self.model.named_buffers())
            current.update(self.model.named_parameters())
            for k in self._copy_keys:
                if k in current:
                    self.state[k].copy_(current[k].detach())

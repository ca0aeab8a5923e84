"""Formula-only baseline: topogivity (N. Ma et al., Nano Lett. 23, 772 (2023)).

One learned number τ_E per element; a material's topogivity is ``g = Σ_E f_E τ_E`` with ``f_E``
the element's atomic fraction, and ``g > 0`` predicts non-trivial. Ma et al. fit τ with a
regularised linear classifier; here an L2-regularised logistic loss (no bias term, as in their
``g``), minimised with L-BFGS. Elements absent from the training set keep τ = 0.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def fit_topogivity(fractions: np.ndarray, topological: Sequence[bool], *, l2: float = 1e-3) -> np.ndarray:
    """τ per element column of ``fractions`` ``[n, n_el]`` from labels (True = non-trivial).

    Minimises ``mean(log(1 + exp(-s g))) + l2 |τ|²`` with ``s = ±1``; classes are weighted to
    equal total weight (balanced accuracy is the target).
    """
    from scipy.optimize import minimize

    f = np.asarray(fractions, float)
    s = np.where(np.asarray(topological, bool), 1.0, -1.0)
    w = np.where(s > 0, 0.5 / max((s > 0).sum(), 1), 0.5 / max((s < 0).sum(), 1))

    def loss(tau: np.ndarray) -> tuple[float, np.ndarray]:
        m = s * (f @ tau)
        value = np.sum(w * np.logaddexp(0.0, -m)) + l2 * tau @ tau
        grad = f.T @ (w * -s * (1.0 / (1.0 + np.exp(m)))) + 2 * l2 * tau
        return float(value), grad

    res = minimize(loss, np.zeros(f.shape[1]), jac=True, method="L-BFGS-B")
    return res.x


def topogivity(fractions: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """``g = Σ_E f_E τ_E`` per row; ``g > 0`` means non-trivial."""
    return np.asarray(fractions, float) @ np.asarray(tau, float)

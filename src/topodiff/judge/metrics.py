"""Scores of topology verdicts against catalogue labels: balanced accuracy, per-class F1, reliability."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def balanced_accuracy(y_true: Sequence[bool], y_pred: Sequence[bool]) -> float:
    """Mean of the recalls of the two classes (non-trivial = True). NaN when a class is absent."""
    t, p = np.asarray(y_true, bool), np.asarray(y_pred, bool)
    if t.all() or (~t).all():
        return float("nan")
    return float(0.5 * (np.mean(p[t]) + np.mean(~p[~t])))


def f1_scores(y_true: Sequence[str], y_pred: Sequence[str | None], classes: Sequence[str]) -> dict[str, float]:
    """F1 per class (one-vs-rest); a prediction of None counts as wrong. NaN when a class has no
    true and no predicted member."""
    t = np.asarray(y_true, dtype=object)
    p = np.asarray(y_pred, dtype=object)
    out = {}
    for c in classes:
        tp = np.sum((t == c) & (p == c))
        denom = np.sum(t == c) + np.sum(p == c)
        out[c] = float(2 * tp / denom) if denom else float("nan")
    return out


def reliability(p: Sequence[float], y: Sequence[bool], n_bins: int = 10) -> dict[str, list[float]]:
    """Reliability table: per equal-width bin of predicted probability, mean prediction, observed
    frequency and count (bins without members omitted). Also the expected calibration error."""
    p, y = np.asarray(p, float), np.asarray(y, float)
    edges = np.linspace(0, 1, n_bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    rows: dict[str, list[float]] = {"mean_predicted": [], "observed": [], "count": []}
    for b in range(n_bins):
        m = idx == b
        if m.any():
            rows["mean_predicted"].append(float(p[m].mean()))
            rows["observed"].append(float(y[m].mean()))
            rows["count"].append(float(m.sum()))
    n = np.asarray(rows["count"])
    gap = np.abs(np.asarray(rows["mean_predicted"]) - np.asarray(rows["observed"]))
    rows["ece"] = [float((n * gap).sum() / n.sum())] if n.size else [float("nan")]
    return rows

"""The shipped topology judge: a LightGBM classifier (text model file) + isotonic calibration (JSON).

Files, beside this module: ``judge.lgbm.txt`` (LightGBM's own text format, no pickling) and
``judge.json`` (the recipe: data, split, features, hyper-parameters, command, scores; the classes;
the calibration map; the elements seen in training). :func:`load_judge` reads them once per process.

Probabilities: the classifier gives raw class probabilities ``q`` over ``CLASSES``. The
probability of a non-trivial crystal ``p_topological`` is the isotonic calibration of ``1 − q_trivial``
(fitted on out-of-fold predictions of the training split); the class probabilities are
``P(trivial) = 1 − p_topological`` and, for the non-trivial classes, ``q_c`` rescaled to sum to
``p_topological``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from topodiff.errors import TopodiffInputError

JUDGE_DIR = Path(__file__).resolve().parent
MODEL_FILE = "judge.lgbm.txt"
RECIPE_FILE = "judge.json"


@dataclass
class JudgeModel:
    """A loaded judge: booster, class names, feature names, calibration and known elements."""

    booster: Any
    classes: tuple[str, ...]
    features: tuple[str, ...]
    calibration_x: np.ndarray
    calibration_y: np.ndarray
    known_elements: frozenset[str]
    recipe: dict[str, Any]

    def raw_proba(self, X: np.ndarray) -> np.ndarray:
        """``[n, n_classes]`` uncalibrated class probabilities."""
        if len(X) == 0:
            return np.zeros((0, len(self.classes)))
        return np.asarray(self.booster.predict(np.asarray(X, float)), float).reshape(len(X), -1)

    def calibrate(self, p_raw: np.ndarray) -> np.ndarray:
        """Isotonic map of raw P(non-trivial) to calibrated P(non-trivial)."""
        return np.interp(np.asarray(p_raw, float), self.calibration_x, self.calibration_y)

    def proba(self, X: np.ndarray) -> np.ndarray:
        """``[n, n_classes]`` calibrated class probabilities (see the module docstring)."""
        q = self.raw_proba(X)
        t = self.classes.index("trivial")
        p_top = self.calibrate(1.0 - q[:, t])
        rest = np.delete(q, t, axis=1)
        rest_sum = rest.sum(axis=1, keepdims=True)
        rest = np.where(rest_sum > 0, rest / np.where(rest_sum > 0, rest_sum, 1.0), 1.0 / rest.shape[1])
        out = np.empty_like(q)
        out[:, t] = 1.0 - p_top
        out[:, [i for i in range(len(self.classes)) if i != t]] = rest * p_top[:, None]
        return out


def write_judge(directory: str | os.PathLike, model_text: str, recipe: dict[str, Any]) -> None:
    """Write ``judge.lgbm.txt`` and ``judge.json`` into ``directory`` (atomically)."""
    from topodiff.io_utils import atomic_write_json, atomic_write_text

    d = Path(directory)
    atomic_write_text(d / MODEL_FILE, model_text)
    atomic_write_json(d / RECIPE_FILE, recipe)


@lru_cache(maxsize=4)
def load_judge(directory: str | None = None) -> JudgeModel:
    """Load the judge from ``directory`` (default: the one shipped in the package)."""
    import lightgbm

    d = Path(directory) if directory else JUDGE_DIR
    model_path, recipe_path = d / MODEL_FILE, d / RECIPE_FILE
    if not model_path.is_file() or not recipe_path.is_file():
        raise TopodiffInputError(f"no topology judge in {d} (expected {MODEL_FILE} and {RECIPE_FILE})")
    recipe = json.loads(recipe_path.read_text())
    from topodiff.judge.features import feature_names

    if tuple(recipe.get("features", ())) != feature_names():
        raise TopodiffInputError(f"{recipe_path}: the judge was trained on other features than this version "
                                 "computes; retrain it (scripts/train_judge.py)")
    booster = lightgbm.Booster(model_str=model_path.read_text())
    cal = recipe["calibration"]
    return JudgeModel(booster=booster, classes=tuple(recipe["classes"]), features=tuple(recipe["features"]),
                      calibration_x=np.asarray(cal["x"], float), calibration_y=np.asarray(cal["y"], float),
                      known_elements=frozenset(recipe["known_elements"]), recipe=recipe)

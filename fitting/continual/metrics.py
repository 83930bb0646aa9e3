"""Continual-learning metrics of an accuracy matrix ``R[i, j]``: accuracy on task ``j`` after training task ``i``.

* average accuracy: ``mean_j R[T-1, j]`` (the SI paper's "average accuracy" after the last task);
* backward transfer (Lopez-Paz & Ranzato 2017, GEM, eq. 2): ``BWT = mean_{j < T-1} (R[T-1, j] - R[j, j])``;
* forgetting (Chaudhry et al. 2018, RWalk, eq. 7-8): ``mean_{j < T-1} (max_{l < T-1} R[l, j] - R[T-1, j])``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neuromodels.errors import ConfigError

__all__ = ["average_accuracy", "backward_transfer", "forgetting", "summarise"]


def _matrix(accuracy: Any) -> np.ndarray:
    r = np.asarray(getattr(accuracy, "values", accuracy), dtype=np.float64)
    if r.ndim != 2 or r.shape[0] != r.shape[1] or r.shape[0] < 1:
        raise ConfigError(f"an accuracy matrix must be square (tasks x tasks), got shape {r.shape}")
    return r


def average_accuracy(accuracy: Any) -> float:
    """Mean accuracy over all tasks after training the last."""
    r = _matrix(accuracy)
    return float(r[-1].mean())


def backward_transfer(accuracy: Any) -> float:
    """Mean change of old tasks' accuracy from just after learning them to the end (negative: forgetting);
    NaN for a single task."""
    r = _matrix(accuracy)
    t = len(r)
    return float(np.mean(r[-1, : t - 1] - np.diag(r)[: t - 1])) if t > 1 else float("nan")


def forgetting(accuracy: Any) -> float:
    """Mean drop of old tasks from their best accuracy before the last task to the end; NaN for one task."""
    r = _matrix(accuracy)
    t = len(r)
    if t < 2:
        return float("nan")
    best = r[: t - 1, : t - 1].max(axis=0)
    return float(np.mean(best - r[-1, : t - 1]))


def summarise(accuracy: Any) -> dict[str, float]:
    return {
        "average_accuracy": average_accuracy(accuracy),
        "backward_transfer": backward_transfer(accuracy),
        "forgetting": forgetting(accuracy),
    }

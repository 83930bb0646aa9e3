"""Figures of continual-learning runs (results of :func:`neuromodels.fitting.continual.train_sequence`).

* :func:`plot_accuracy_matrix`: ``R[i, j]`` as a heat map (rows: after training task i; columns: task j);
* :func:`plot_task_accuracies`: each task's accuracy across the sequence, one panel per task, one line per
  method (the style of the SI paper's figures 3-4);
* :func:`plot_importance`: a histogram of SI's per-parameter importance ``Omega`` for each layer.

Functions return matplotlib figures; they never switch the backend (the caller saves them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["plot_accuracy_matrix", "plot_importance", "plot_task_accuracies"]


def plot_accuracy_matrix(accuracy: Any, *, title: str | None = None) -> Any:
    """Heat map of an accuracy matrix (``xr.DataArray`` with ``trained``/``evaluated`` or a square array)."""
    from neuromodels._figures import new_figure

    values = np.asarray(getattr(accuracy, "values", accuracy), dtype=float)
    names = (
        list(accuracy.coords["evaluated"].values)
        if hasattr(accuracy, "coords")
        else [str(i) for i in range(len(values))]
    )
    fig, ax = new_figure(figsize=(1.0 + 0.7 * len(values), 0.8 + 0.6 * len(values)))
    image = ax.imshow(values, vmin=0, vmax=1, cmap="viridis")
    for i in range(len(values)):
        for j in range(len(values)):
            ax.text(
                j,
                i,
                f"{100 * values[i, j]:.0f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if values[i, j] < 0.6 else "black",
            )
    ax.set_xticks(range(len(names)), names, rotation=45, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("evaluated on task")
    ax.set_ylabel("after training task")
    ax.set_title(title or "accuracy R[i, j] (%)", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046)
    return fig


def plot_task_accuracies(results: Mapping[str, Any], *, title: str | None = None) -> Any:
    """One panel per task: its test accuracy after each training stage, from the stage it was learned on.

    ``results``: ``{label: accuracy matrix}`` or ``{label: [accuracy matrix per seed]}`` (mean +- s.d.).
    """
    from neuromodels._figures import new_figure

    stacks = {}
    for label, value in results.items():
        mats = value if isinstance(value, (list, tuple)) else [value]
        stacks[label] = np.stack([np.asarray(getattr(m, "values", m), dtype=float) for m in mats])
    n = next(iter(stacks.values())).shape[-1]
    cols = min(n, 5)
    rows = -(-n // cols)
    fig, axes = new_figure(rows, cols, figsize=(1.9 * cols + 1, 2.2 * rows + 0.3), sharey=True, squeeze=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    for j, ax in enumerate(list(axes.flat)[:n]):
        for label, stack in stacks.items():
            stages = np.arange(j, n)
            mean, sd = stack[:, j:, j].mean(0), stack[:, j:, j].std(0)
            ax.errorbar(stages + 1, mean, yerr=sd if len(stack) > 1 else None, marker="o", ms=3, label=label)
        ax.set_title(f"task {j + 1}", fontsize=8)
        ax.set_xticks(range(1, n + 1))
        ax.set_xlabel("after task", fontsize=7)
    for row in axes:
        row[0].set_ylabel("accuracy")
    list(axes.flat)[n - 1].legend(fontsize=6, loc="lower left")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_importance(importance: Mapping[str, Any], *, bins: int = 50, columns: int = 4) -> Any:
    """Histogram of ``Omega`` per layer (the parameters ``<layer>.weight``, ``<layer>.bias``... pooled),
    log-spaced over the positive values; the count of zeros and negatives is written in each panel."""
    from neuromodels._figures import new_figure

    layers: dict[str, list[np.ndarray]] = {}
    for name, value in importance.items():
        array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        layers.setdefault(name.rsplit(".", 1)[0] if "." in name else name, []).append(
            np.asarray(array, dtype=float).ravel()
        )
    n = len(layers)
    cols = min(columns, n)
    rows = -(-n // cols)
    fig, axes = new_figure(rows, cols, figsize=(2.6 * cols + 0.4, 2.2 * rows), squeeze=False)
    for ax, (layer, parts) in zip(axes.flat, layers.items()):
        values = np.concatenate(parts)
        positive = values[values > 0]
        if len(positive) > 1 and positive.max() > positive.min():
            edges = np.logspace(np.log10(positive.min()), np.log10(positive.max()), bins)
            ax.hist(positive, bins=edges, color="tab:blue")
            ax.set_xscale("log")
        ax.set_title(f"{layer} ({len(values)} parameters)", fontsize=7)
        ax.text(0.02, 0.95, f"Omega <= 0: {int((values <= 0).sum())}", transform=ax.transAxes, fontsize=6, va="top")
        ax.set_xlabel("Omega", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    for row in axes:
        row[0].set_ylabel("parameters", fontsize=7)
    fig.tight_layout()
    return fig

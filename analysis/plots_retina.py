"""Figures for fitted retina models: learned filters, predicted vs recorded test traces, CC vs ceiling.

Each function takes results (tensors, DataArrays, the metrics Dataset of
:func:`neuromodels.analysis.retina_metrics.retina_test_metrics`) and returns a matplotlib ``Figure`` built
without pyplot (:func:`neuromodels._figures.new_figure`: no backend is selected or switched);
:func:`save_figure` writes it atomically as PNG. matplotlib is imported inside the functions, so importing this
module is cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from neuromodels._figures import new_figure, save_figure

__all__ = ["peak_spatial_filters", "plot_filters", "plot_test_traces", "plot_cc_vs_ceiling", "save_figure"]


def peak_spatial_filters(filters: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spatial slice at the peak time lag of spatiotemporal filters ``(n, history, y, x)``.

    Returns ``(spatial (n, y, x), temporal (n, history), peak_lag_index (n,))``: for each filter, the frame
    with the largest energy ``sum(w**2)`` over space, and the time course through its strongest pixel.
    Index ``history - 1`` is the current frame.
    """
    w = np.asarray(filters.detach().cpu() if hasattr(filters, "detach") else filters, dtype=np.float64)
    if w.ndim != 4:
        raise ValueError(f"filters must be (n, history, y, x), got shape {w.shape}")
    energy = (w**2).sum(axis=(2, 3))
    peak = energy.argmax(axis=1)
    spatial = w[np.arange(len(w)), peak]
    flat = np.abs(spatial.reshape(len(w), -1)).argmax(axis=1)
    ys, xs = np.unravel_index(flat, spatial.shape[1:])
    temporal = w[np.arange(len(w)), :, ys, xs]
    return spatial, temporal, peak


def plot_filters(
    filters: Any, *, title: str = "learned filters", labels: Sequence[str] | None = None, frame_rate_hz: float = 100.0
) -> Any:
    """Spatial filters at their peak lag (top row) and time courses through their peak pixel (bottom).

    ``filters``: ``(n, history, y, x)``, e.g. ``RetinaCNN.first_layer_filters`` or ``LNModel.filters``.
    Each spatial map has its own colour scale, symmetric around 0 (red positive, blue negative), and a colour bar
    giving the weight at its ends.
    """
    spatial, temporal, peak = peak_spatial_filters(filters)
    n, history = temporal.shape
    cols = min(n, 8)
    rows = int(np.ceil(n / cols))
    fig, axes = new_figure(2 * rows, cols, figsize=(1.7 * cols, 3.4 * rows), squeeze=False)
    lags_ms = (np.arange(history) - (history - 1)) * 1000.0 / frame_rate_hz
    for i in range(rows * cols):
        r, c = divmod(i, cols)
        ax_s, ax_t = axes[2 * r, c], axes[2 * r + 1, c]
        if i >= n:
            ax_s.axis("off")
            ax_t.axis("off")
            continue
        limit = float(np.abs(spatial[i]).max()) or 1.0
        image = ax_s.imshow(spatial[i], cmap="RdBu_r", vmin=-limit, vmax=limit)
        bar = fig.colorbar(image, ax=ax_s, fraction=0.046, pad=0.04, ticks=[-limit, 0.0, limit], format="%.2g")
        bar.ax.tick_params(labelsize=5, length=2)
        ax_s.set_xticks([])
        ax_s.set_yticks([])
        name = labels[i] if labels is not None else f"{i}"
        ax_s.set_title(f"{name}\n{lags_ms[peak[i]]:.0f} ms", fontsize=7)
        ax_t.plot(lags_ms, temporal[i], color="k", lw=1)
        ax_t.axhline(0, color="0.7", lw=0.5)
        ax_t.tick_params(labelsize=6)
        if c == 0:
            ax_t.set_xlabel("lag (ms)", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_test_traces(
    predictions: Mapping[str, xr.DataArray],
    trial_mean: xr.DataArray,
    *,
    cells: Sequence[str] | None = None,
    max_cells: int = 4,
    frame_rate_hz: float = 100.0,
) -> Any:
    """Recorded trial-averaged test response (gray) and each model's prediction, for a few cells.

    ``predictions``: model name -> ``(time, cell)``; ``trial_mean``: ``(time, cell)`` on the same bins.
    Rates are shown in spikes/s (counts per bin x frame rate).
    """
    cells = list(cells) if cells is not None else [str(c) for c in trial_mean["cell"].values[:max_cells]]
    fig, axes = new_figure(len(cells), 1, figsize=(8, 1.6 * len(cells)), sharex=True, squeeze=False)
    time = np.asarray(trial_mean["time"].values, dtype=np.float64)
    time = time - time[0]
    for ax, cell in zip(axes[:, 0], cells):
        ax.plot(
            time, trial_mean.sel(cell=cell).values * frame_rate_hz, color="0.6", lw=1.2, label="recorded (trial mean)"
        )
        for name, pred in predictions.items():
            ax.plot(
                time, pred.sel(cell=cell, time=trial_mean["time"].values).values * frame_rate_hz, lw=0.9, label=name
            )
        ax.set_ylabel(f"{cell}\nspikes/s", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0, 0].legend(fontsize=6, loc="upper right", ncol=len(predictions) + 1)
    axes[-1, 0].set_xlabel("time in test movie (s)", fontsize=7)
    fig.tight_layout()
    return fig


def plot_cc_vs_ceiling(metrics: Mapping[str, xr.Dataset]) -> Any:
    """Per-cell test CC of each model against the cell's noise ceiling ``cc_max`` (diagonal = at ceiling).

    The axes are fitted to the data with a margin (ceilings typically span a few hundredths, e.g. 0.92-0.96, and
    would sit in one column on a 0-1 axis); the dashed diagonal CC = CC_max marks a model at the ceiling.
    """
    fig, ax = new_figure(figsize=(3.6, 3.6))
    markers = "osD^v<>"
    ceilings, ccs = [], []
    for k, (name, m) in enumerate(metrics.items()):
        ceilings.append(np.asarray(m["cc_max"].values, dtype=np.float64).ravel())
        ccs.append(np.asarray(m["cc"].values, dtype=np.float64).ravel())
        ax.scatter(
            ceilings[-1],
            ccs[-1],
            s=18,
            marker=markers[k % len(markers)],
            label=f"{name} (median {float(np.nanmedian(m['cc'].values)):.2f})",
        )
    x_lo, x_hi = _padded_range(np.concatenate(ceilings) if ceilings else np.array([]))
    # the y range holds every CC and the diagonal over the x range
    y_lo, y_hi = _padded_range(np.concatenate([*ccs, [x_lo, x_hi]]))
    ax.plot([x_lo, x_hi], [x_lo, x_hi], color="0.5", lw=0.8, ls="--", label="CC = CC_max (at ceiling)")
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    ax.set_xlabel("noise ceiling CC_max", fontsize=8)
    ax.set_ylabel("test CC (vs trial mean)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def _padded_range(values: np.ndarray, *, fraction: float = 0.1, minimum: float = 0.01) -> tuple[float, float]:
    """``(min - pad, max + pad)`` of the finite ``values`` with ``pad = max(fraction * span, minimum)``;
    ``(0, 1)`` when none is finite."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    pad = max(fraction * (hi - lo), minimum)
    return lo - pad, hi + pad

"""Figures for spiking results (matplotlib figures built without pyplot: :func:`neuromodels._figures.new_figure`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from neuromodels._figures import new_figure, save_figure
from neuromodels.errors import ConfigError

__all__ = ["plot_raster", "plot_rate_histogram", "plot_loss_curves", "save_figure"]


def plot_raster(
    spikes: np.ndarray,
    dt: float,
    *,
    layer: np.ndarray | None = None,
    title: str = "",
    ax: Any = None,
    color: str = "k",
    start: float | None = None,
    window: float | None = None,
) -> Any:
    """Dot raster of a ``(time, neuron)`` 0/1 array; layers separated by lines when ``layer`` is given.

    Step ``k`` is drawn at ``k * dt`` seconds (the run's own clock). ``start`` and ``window`` (seconds) choose
    the time shown, ``[start, start + window)``: ``start`` alone shows from there to the end, ``window`` alone
    the last ``window`` seconds (``plot_raster(spikes, dt, window=0.2)``: the last 200 ms), neither the whole run.
    """
    spikes = np.asarray(spikes)
    duration = spikes.shape[0] * dt
    if window is not None and not (math.isfinite(window) and window > 0):
        raise ConfigError(f"plot_raster: window must be a positive number of seconds, got {window!r}")
    if start is None:
        start = 0.0 if window is None else max(duration - window, 0.0)
    if not (math.isfinite(start) and (start == 0 or 0 < start < duration)):
        raise ConfigError(f"plot_raster: start must be in [0, {duration:g}) s (the run's length), got {start!r}")
    stop = duration if window is None else min(start + window, duration)
    # steps whose time k * dt lies in [start, stop), in index arithmetic (no float comparisons of times)
    first = math.ceil(round(start / dt, 9))
    last = math.ceil(round(stop / dt, 9))
    if ax is None:
        fig, ax = new_figure(figsize=(7, 4))
    steps, neurons = np.nonzero(spikes[first:last])
    ax.scatter((steps + first) * dt, neurons, s=1.5, c=color, marker="|", linewidths=0.6)
    if layer is not None:
        for boundary in np.flatnonzero(np.diff(np.asarray(layer))):
            ax.axhline(boundary + 0.5, color="tab:red", lw=0.6)
    ax.set_xlim(start, start + window if window is not None else duration)
    ax.set_ylim(-0.5, spikes.shape[1] - 0.5)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("neuron")
    if title:
        ax.set_title(title)
    return ax.figure


def plot_rate_histogram(rates: np.ndarray, *, title: str = "") -> Any:
    fig, ax = new_figure(figsize=(5, 3.5))
    ax.hist(np.asarray(rates), bins=30, color="tab:blue", edgecolor="white")
    ax.set_xlabel("firing rate (Hz)")
    ax.set_ylabel("neurons")
    if title:
        ax.set_title(title)
    return fig


def plot_loss_curves(
    curves: dict[str, list[float]], *, ylabel: str = "van Rossum loss", title: str = "", logy: bool = True
) -> Any:
    fig, ax = new_figure(figsize=(5.5, 3.8))
    for label, values in curves.items():
        ax.plot(np.arange(1, len(values) + 1), values, label=label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("trial")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(frameon=False)
    return fig

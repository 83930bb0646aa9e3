"""Figures for spiking results (matplotlib figures built without pyplot: :func:`neuromodels._figures.new_figure`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from neuromodels._figures import new_figure, save_figure
from neuromodels.errors import ConfigError

__all__ = ["shown_steps", "plot_raster", "plot_rate_histogram", "plot_loss_curves", "save_figure"]


def shown_steps(
    n_steps: int, dt: float, start: float | None, window: float | None, *, t0: float = 0.0, who: str = "plot_raster"
) -> tuple[int, int, float, float]:
    """The steps a raster figure shows: ``(first, last, lo, hi)``, steps ``first <= k < last`` (step ``k`` at time
    ``t0 + k dt``, the run's own clock) whose times lie in ``[lo, hi)``, with ``lo = start`` and ``hi = start +
    window`` (the x-limits of the figure). ``start`` alone shows from there to the end, ``window`` alone the last
    ``window`` seconds, neither the whole run. A ``start`` outside the run or a ``window`` that is not a positive
    number of seconds is a :class:`~neuromodels.errors.ConfigError` (``who`` names the function)."""
    duration = n_steps * dt
    if window is not None and not (
        isinstance(window, (int, float, np.floating, np.integer)) and math.isfinite(window) and window > 0
    ):
        raise ConfigError(
            f"{who}: window is a duration in seconds (> 0), got {window!r}; give the first time shown as start="
        )
    if start is None:
        lo = t0 if window is None else max(t0 + duration - window, t0)
    else:
        lo = float(start)
        if not (math.isfinite(lo) and (lo == t0 or t0 < lo < t0 + duration)):
            raise ConfigError(f"{who}: start must be in [{t0:g}, {t0 + duration:g}) s (the run's clock), got {start!r}")
    hi = t0 + duration if window is None else lo + window
    # steps whose time t0 + k dt lies in [lo, min(hi, end)), in index arithmetic (no float comparisons of times)
    first = math.ceil(round((lo - t0) / dt, 9))
    last = min(math.ceil(round((hi - t0) / dt, 9)), n_steps)
    return first, last, lo, hi


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
    the time shown, ``[start, start + window)`` (:func:`shown_steps`): ``start`` alone shows from there to the
    end, ``window`` alone the last ``window`` seconds (``plot_raster(spikes, dt, window=0.2)``: the last 200 ms),
    neither the whole run.
    """
    spikes = np.asarray(spikes)
    first, last, lo, hi = shown_steps(spikes.shape[0], dt, start, window)
    if ax is None:
        fig, ax = new_figure(figsize=(7, 4))
    steps, neurons = np.nonzero(spikes[first:last])
    ax.scatter((steps + first) * dt, neurons, s=1.5, c=color, marker="|", linewidths=0.6)
    if layer is not None:
        for boundary in np.flatnonzero(np.diff(np.asarray(layer))):
            ax.axhline(boundary + 0.5, color="tab:red", lw=0.6)
    ax.set_xlim(lo, hi)
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

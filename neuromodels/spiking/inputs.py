"""Input spike rasters: Poisson and frozen Poisson trains, batched over trials.

Rasters are 0/1 arrays ``(trial, time, input)`` (``uint8``): entry ``[k, n, i] = 1`` is a spike of input ``i`` at time
``n dt`` in trial ``k``; at most one spike per step, so a Poisson process of rate ``r`` is discretised as independent
Bernoulli draws with ``p = r dt`` per step (Brian2's ``PoissonGroup`` rule, ``rand() < rates*dt``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from neuromodels.errors import ConfigError

__all__ = ["poisson_spikes", "frozen_poisson", "raster_to_dataarray"]


def _check(rate: Any, duration: float, dt: float, n_inputs: int) -> tuple[np.ndarray, int]:
    if not (isinstance(dt, (int, float)) and dt > 0):
        raise ConfigError(f"dt must be a positive number of seconds, got {dt!r}")
    if not (isinstance(duration, (int, float)) and duration > 0):
        raise ConfigError(f"duration must be a positive number of seconds, got {duration!r}")
    if int(n_inputs) < 1:
        raise ConfigError(f"n_inputs must be >= 1, got {n_inputs}")
    rates = np.broadcast_to(np.asarray(rate, dtype=np.float64), (int(n_inputs),))
    if (rates < 0).any() or (rates * dt > 1).any() or not np.isfinite(rates).all():
        raise ConfigError(f"rate must be in [0, 1/dt] = [0, {1 / dt:g}] Hz, got {rate!r}")
    return rates, int(round(duration / dt))


def poisson_spikes(
    n_inputs: int,
    rate: float | Any,
    duration: float,
    dt: float = 1e-3,
    *,
    trials: int = 1,
    seed: int | Sequence[int] = 0,
) -> np.ndarray:
    """Independent Poisson trains ``(trials, time, n_inputs)`` (uint8); ``rate`` in Hz, scalar or per input."""
    rates, n_steps = _check(rate, duration, dt, n_inputs)
    if int(trials) < 1:
        raise ConfigError(f"trials must be >= 1, got {trials}")
    rng = np.random.default_rng(seed)
    out = np.empty((int(trials), n_steps, int(n_inputs)), dtype=np.uint8)
    chunk = max(1, 2**20 // int(n_inputs))  # draws in blocks of ~8 MB: the same stream as one big draw
    for trial in range(int(trials)):
        for start in range(0, n_steps, chunk):
            stop = min(start + chunk, n_steps)
            np.less(rng.random((stop - start, int(n_inputs))), rates * dt, out=out[trial, start:stop])
    return out


def frozen_poisson(
    n_inputs: int, rate: float | Any, duration: float, dt: float = 1e-3, *, trials: int = 1, seed: int = 0
) -> np.ndarray:
    """One Poisson realisation repeated in every trial ``(trials, time, n_inputs)``: the paper's frozen input."""
    one = poisson_spikes(n_inputs, rate, duration, dt, trials=1, seed=seed)
    return np.repeat(one, int(trials), axis=0)


def raster_to_dataarray(raster: np.ndarray, dt: float) -> Any:
    """A raster as ``xr.DataArray`` with dims ``([trial,] time, input)`` and ``time`` in seconds."""
    import xarray as xr

    raster = np.asarray(raster)
    dims = ("time", "input") if raster.ndim == 2 else ("trial", "time", "input")
    return xr.DataArray(raster, dims=dims, coords={"time": np.arange(raster.shape[-2]) * dt}, name="input_spikes")

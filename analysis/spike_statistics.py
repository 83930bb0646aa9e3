"""Population statistics of spike rasters: rates, ISI irregularity, count variability, synchrony, rate spectra.

Every function takes a raster in the framework's layout, an ``xr.Dataset`` with ``spikes(time, neuron)`` (0/1, as
``neuromodels.spiking`` writes it) or that ``DataArray`` itself, with ``time`` in seconds on a uniform grid of step
``attrs['dt']`` (read from the time coordinate when absent) and an optional ``population`` coordinate on ``neuron``
(string labels; one population ``"all"`` when absent). Results are ``xr.Dataset``/``DataArray`` objects with
per-neuron and per-population values and ``attrs`` naming the method and its parameters. To drop an initial
transient, select the time window first: ``statistic(ds.sel(time=slice(0.2, None)))``.

Definitions (``T`` the raster's duration, ``dt`` its step):

* rate: spike count / ``T`` (Hz), per neuron; the population value is the mean over its neurons.
* ISI CV: standard deviation over mean of a neuron's inter-spike intervals (``ddof=0``), for neurons with at least
  ``min_spikes`` spikes; the population value is the mean over those neurons.
* Fano factor: variance (``ddof=1``) over mean of the spike counts in consecutive windows of length ``window``;
  the population value is the mean over neurons that spiked.
* synchrony ``chi`` (Golomb & Rinzel 1993, Golomb 2007 *Scholarpedia* 2:1347; used for spiking networks by
  Brunel & Hakim 1999): with ``x_i(t)`` the spike counts of neuron ``i`` in bins of ``bin_size`` and ``X(t)`` their
  population mean, ``chi^2 = Var_t[X] / mean_i Var_t[x_i]``. We report ``chi`` (not ``chi^2``): 1 for identical
  spike trains, ``~1/sqrt(N)`` for ``N`` independent ones.
* population rate: spike count of the population in bins of ``bin_size``, divided by neurons x ``bin_size`` (Hz);
  its power spectral density by Welch's method (:func:`scipy.signal.welch`, mean removed, Hann window), in Hz^2/Hz.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from neuromodels.errors import ConfigError, DataFormatError

__all__ = [
    "firing_rates",
    "isi_cv",
    "fano_factor",
    "synchrony",
    "population_rate",
    "rate_spectrum",
    "spectral_peak",
    "population_statistics",
    "plot_population_activity",
]


# ---- the raster at the door -------------------------------------------------------------------------------------


def _raster(data: Any) -> xr.DataArray:
    """``spikes(time, neuron)`` with a ``population`` coordinate and ``attrs['dt']``, validated."""
    if isinstance(data, xr.Dataset):
        if "spikes" not in data:
            raise DataFormatError(
                field="spikes",
                expected="a 'spikes(time, neuron)' variable",
                found=f"variables {sorted(map(str, data.data_vars))}",
            )
        spikes = data["spikes"]
        attrs = {**data.attrs, **spikes.attrs}
    elif isinstance(data, xr.DataArray):
        spikes, attrs = data, dict(data.attrs)
    else:
        raise DataFormatError(field="spikes", expected="an xarray Dataset or DataArray", found=type(data).__name__)
    if set(spikes.dims) != {"time", "neuron"}:
        raise DataFormatError(
            field="spikes", expected="dims (time, neuron) (select one trial first)", found=f"dims {spikes.dims}"
        )
    spikes = spikes.transpose("time", "neuron")
    values = np.asarray(spikes.values)
    if values.dtype.kind in "biu":
        valid = values.size == 0 or (values.min() >= 0 and values.max() <= 1)
    else:
        valid = bool(((values == 0) | (values == 1)).all())
    if not valid:
        raise DataFormatError(field="spikes", expected="0/1 per step and neuron", found="other values")
    dt = _step(spikes, attrs)
    if "population" in spikes.coords:
        population = np.asarray(spikes["population"].values).astype(str)
    else:
        population = np.full(spikes.sizes["neuron"], "all")
    out = xr.DataArray(
        values,
        dims=("time", "neuron"),
        coords={
            "time": spikes["time"].values if "time" in spikes.coords else np.arange(len(values)) * dt,
            "neuron": spikes["neuron"].values if "neuron" in spikes.coords else np.arange(values.shape[1]),
            "population": ("neuron", population),
        },
        attrs={"dt": dt},
    )
    return out


def _step(spikes: xr.DataArray, attrs: Mapping[str, Any]) -> float:
    if "dt" in attrs:
        dt = float(attrs["dt"])
    elif "time" in spikes.coords and spikes.sizes["time"] >= 2:
        steps = np.diff(np.asarray(spikes["time"].values, dtype=np.float64))
        dt = float(steps[0])
        if not np.allclose(steps, dt, rtol=1e-6, atol=0):
            raise DataFormatError(
                field="time",
                expected="a uniform time grid (or attrs['dt'])",
                found=f"steps from {steps.min()} to {steps.max()} s",
            )
    else:
        raise DataFormatError(field="dt", expected="attrs['dt'] or a time coordinate with >= 2 steps", found="neither")
    if not dt > 0:
        raise DataFormatError(field="dt", expected="a time step > 0 (seconds)", found=dt)
    return dt


def _populations(raster: xr.DataArray) -> list[str]:
    """Population labels in order of first appearance."""
    labels = np.asarray(raster["population"].values)
    _, first = np.unique(labels, return_index=True)
    return [str(labels[i]) for i in sorted(first)]


def _steps_of(duration: float, dt: float, name: str) -> int:
    """``duration`` as a whole number of steps ``dt``; refused otherwise (binning must not drop or split steps)."""
    steps = round(duration / dt)
    if not duration > 0 or steps < 1 or abs(steps * dt - duration) > 1e-6 * dt:
        raise ConfigError(f"{name} must be a positive multiple of the raster's step dt = {dt} s, got {duration!r}")
    return int(steps)


def _binned(raster: xr.DataArray, bin_size: float, name: str = "bin_size") -> np.ndarray:
    """Spike counts ``(bins, neuron)`` in consecutive bins of ``bin_size`` (a trailing partial bin is dropped)."""
    steps = _steps_of(bin_size, raster.attrs["dt"], name)
    n_bins = raster.sizes["time"] // steps
    if n_bins < 2:
        raise ConfigError(
            f"{name} = {bin_size} s leaves fewer than 2 bins in a raster of "
            f"{raster.sizes['time'] * raster.attrs['dt']:.6g} s"
        )
    values = np.asarray(raster.values[: n_bins * steps], dtype=np.float64)
    return values.reshape(n_bins, steps, -1).sum(axis=1)


def _per_population(raster: xr.DataArray, per_neuron: np.ndarray) -> xr.DataArray:
    """Mean of ``per_neuron`` over each population's neurons, NaN entries (not defined) left out."""
    labels = np.asarray(raster["population"].values)
    names = _populations(raster)
    means = []
    for name in names:
        values = per_neuron[labels == name]
        values = values[np.isfinite(values)]
        means.append(values.mean() if values.size else np.nan)
    return xr.DataArray(np.array(means, dtype=np.float64), dims="population", coords={"population": names})


def _neuron_coords(raster: xr.DataArray) -> dict[str, Any]:
    return {"neuron": raster["neuron"].values, "population": ("neuron", raster["population"].values)}


# ---- statistics -------------------------------------------------------------------------------------------------


def firing_rates(data: Any) -> xr.Dataset:
    """``rate(neuron)`` and ``population_rate(population)`` in Hz: spike counts over the raster's duration."""
    raster = _raster(data)
    duration = raster.sizes["time"] * raster.attrs["dt"]
    rate = np.asarray(raster.values, dtype=np.float64).sum(axis=0) / duration
    return xr.Dataset(
        {
            "rate": xr.DataArray(rate, dims="neuron", coords=_neuron_coords(raster)),
            "population_rate": _per_population(raster, rate),
        },
        attrs={"method": "spike count / duration", "duration": duration, "units": "Hz"},
    )


def isi_cv(data: Any, *, min_spikes: int = 5) -> xr.Dataset:
    """Coefficient of variation of inter-spike intervals: ``cv(neuron)`` (NaN below ``min_spikes`` spikes),
    ``population_cv(population)`` (mean over neurons with enough spikes) and ``neurons_used(population)``."""
    if int(min_spikes) != min_spikes or min_spikes < 3:
        raise ConfigError(f"min_spikes must be an integer >= 3 (two intervals), got {min_spikes!r}")
    raster = _raster(data)
    dt = raster.attrs["dt"]
    steps, neuron = np.nonzero(np.asarray(raster.values))
    order = np.argsort(neuron, kind="stable")  # spike steps grouped by neuron, ascending within each
    steps, neuron = steps[order], neuron[order]
    bounds = np.searchsorted(neuron, np.arange(raster.sizes["neuron"] + 1))
    cv = np.full(raster.sizes["neuron"], np.nan)
    for j in np.flatnonzero(np.diff(bounds) >= min_spikes):
        intervals = np.diff(steps[bounds[j] : bounds[j + 1]]) * dt
        cv[j] = intervals.std() / intervals.mean()
    labels = np.asarray(raster["population"].values)
    used = [int(np.isfinite(cv[labels == name]).sum()) for name in _populations(raster)]
    population_cv = _per_population(raster, cv)
    return xr.Dataset(
        {
            "cv": xr.DataArray(cv, dims="neuron", coords=_neuron_coords(raster)),
            "population_cv": population_cv,
            "neurons_used": xr.DataArray(used, dims="population", coords=population_cv.coords),
        },
        attrs={"method": "ISI std / mean (ddof=0)", "min_spikes": int(min_spikes)},
    )


def fano_factor(data: Any, *, window: float) -> xr.Dataset:
    """Fano factor of spike counts in consecutive windows of ``window`` seconds (a multiple of ``dt``):
    ``fano(neuron)`` (NaN for silent neurons) and ``population_fano(population)``.

    This is the Fano factor *along one spike train*: the count variance over the time windows of one run (of
    a simulated or recorded raster), a measure of irregularity over time. The Fano factor *across repeats of
    one stimulus* (trial-to-trial variability, one value per stimulus and neuroid) is
    :func:`neuromodels.analysis.spike_timing.repeat_statistics` ``["fano_factor"]``."""
    raster = _raster(data)
    counts = _binned(raster, window, "window")
    mean = counts.mean(axis=0)
    variance = counts.var(axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        fano = np.where(mean > 0, variance / mean, np.nan)
    return xr.Dataset(
        {
            "fano": xr.DataArray(fano, dims="neuron", coords=_neuron_coords(raster)),
            "population_fano": _per_population(raster, fano),
        },
        attrs={"method": "count variance (ddof=1) / count mean", "window": float(window), "windows": counts.shape[0]},
    )


def synchrony(data: Any, *, bin_size: float = 1e-3) -> xr.DataArray:
    """Synchrony ``chi(population)`` (not squared) of the spike counts in bins of ``bin_size`` seconds:
    ``chi^2 = Var_t[mean_i x_i] / mean_i Var_t[x_i]`` (Golomb 2007). 1 for identical trains, ~1/sqrt(N) for
    independent ones; NaN for a silent population."""
    raster = _raster(data)
    counts = _binned(raster, bin_size)
    labels = np.asarray(raster["population"].values)
    chi = []
    for name in _populations(raster):
        x = counts[:, labels == name]
        single = x.var(axis=0).mean()
        chi.append(np.sqrt(x.mean(axis=1).var() / single) if single > 0 else np.nan)
    return xr.DataArray(
        np.array(chi),
        dims="population",
        coords={"population": _populations(raster)},
        name="chi",
        attrs={
            "method": "chi = sqrt(Var[population mean] / mean single-neuron Var) (Golomb 2007)",
            "bin_size": float(bin_size),
        },
    )


def population_rate(data: Any, *, bin_size: float = 1e-3) -> xr.DataArray:
    """``rate(population, time)`` in Hz: population spike count per bin of ``bin_size`` / (neurons x bin_size);
    ``time`` is each bin's start."""
    raster = _raster(data)
    counts = _binned(raster, bin_size)
    labels = np.asarray(raster["population"].values)
    names = _populations(raster)
    rates = np.stack([counts[:, labels == name].sum(axis=1) / ((labels == name).sum() * bin_size) for name in names])
    steps = _steps_of(bin_size, raster.attrs["dt"], "bin_size")
    start = np.asarray(raster["time"].values, dtype=np.float64)[: counts.shape[0] * steps : steps]
    return xr.DataArray(
        rates,
        dims=("population", "time"),
        coords={"population": names, "time": start},
        name="population_rate",
        attrs={"units": "Hz", "bin_size": float(bin_size)},
    )


def rate_spectrum(data: Any, *, bin_size: float = 1e-3, segment: float = 0.25) -> xr.DataArray:
    """Power spectral density ``psd(population, frequency)`` (Hz^2/Hz, frequency in Hz) of the population rate in
    bins of ``bin_size``, by Welch's method with Hann segments of ``segment`` seconds overlapping by half (mean
    removed). The frequency resolution is ``1/segment``; the highest frequency ``1/(2 bin_size)``."""
    from scipy.signal import welch

    rate = population_rate(data, bin_size=bin_size)
    nperseg = min(_steps_of(segment, bin_size, "segment"), rate.sizes["time"])
    frequency, psd = welch(rate.values, fs=1.0 / bin_size, nperseg=nperseg, detrend="constant", axis=-1)
    return xr.DataArray(
        psd,
        dims=("population", "frequency"),
        coords={"population": rate["population"].values, "frequency": frequency},
        name="psd",
        attrs={
            "method": "scipy.signal.welch (hann, 50% overlap, mean removed) of the population rate",
            "units": "Hz^2/Hz",
            "bin_size": float(bin_size),
            "segment": nperseg * bin_size,
        },
    )


def spectral_peak(psd: xr.DataArray, *, min_frequency: float = 5.0) -> xr.DataArray:
    """Frequency (Hz) of the largest power at or above ``min_frequency``, per population, from
    :func:`rate_spectrum` (``min_frequency`` leaves out the slow drift and the mean)."""
    band = psd.sel(frequency=slice(float(min_frequency), None))
    if band.sizes["frequency"] == 0:
        raise ConfigError(f"min_frequency = {min_frequency} Hz is above the spectrum's highest frequency")
    peak = band["frequency"].values[np.asarray(band.argmax("frequency").values)]
    return xr.DataArray(
        peak,
        dims="population",
        coords={"population": psd["population"].values},
        name="peak_frequency",
        attrs={"units": "Hz", "min_frequency": float(min_frequency)},
    )


def population_statistics(
    data: Any,
    *,
    bin_size: float = 1e-3,
    fano_window: float = 0.05,
    min_spikes: int = 5,
    segment: float = 0.25,
    min_frequency: float = 5.0,
) -> xr.Dataset:
    """All of the above per population: ``rate`` (Hz), ``cv``, ``fano``, ``chi``, ``peak_frequency`` (Hz) and the
    relative power at the peak, ``peak_power`` (the PSD at the peak over the mean PSD above ``min_frequency``)."""
    psd = rate_spectrum(data, bin_size=bin_size, segment=segment)
    peak = spectral_peak(psd, min_frequency=min_frequency)
    band = psd.sel(frequency=slice(float(min_frequency), None))
    peak_power = band.sel(frequency=peak).drop_vars("frequency") / band.mean("frequency")
    return xr.Dataset(
        {
            "rate": firing_rates(data)["population_rate"],
            "cv": isi_cv(data, min_spikes=min_spikes)["population_cv"],
            "fano": fano_factor(data, window=fano_window)["population_fano"],
            "chi": synchrony(data, bin_size=bin_size),
            "peak_frequency": peak,
            "peak_power": peak_power,
        },
        attrs={
            "bin_size": float(bin_size),
            "fano_window": float(fano_window),
            "min_spikes": int(min_spikes),
            "segment": float(segment),
            "min_frequency": float(min_frequency),
            "method": "rates, ISI CV, Fano factor, synchrony chi, Welch spectrum of the population rate "
            "(neuromodels.analysis.spike_statistics)",
        },
    )


# ---- figures ----------------------------------------------------------------------------------------------------


def plot_population_activity(
    rasters: Any,
    *,
    bin_size: float = 1e-3,
    neurons: int | Mapping[str, int] = 50,
    start: float | None = None,
    window: float | None = None,
    title: str = "",
) -> Any:
    """Raster of the first ``neurons`` neurons of each population (an int, or ``{population: count}``, colour per
    population) above the global activity (the rate of all neurons together, Hz) in bins of ``bin_size``, one
    column per raster: ``rasters`` is one raster or a mapping
    ``{panel title: raster}``. ``start`` and ``window`` (seconds) choose the time shown, ``[start, start +
    window)`` on the raster's own clock, the steps :func:`neuromodels.spiking.plots.shown_steps` picks, as
    :func:`~neuromodels.spiking.plots.plot_raster` does: ``window`` alone shows the last ``window`` seconds,
    ``start`` alone from there to the end. Returns a ``matplotlib.figure.Figure`` made without pyplot (save it with
    :func:`neuromodels._figures.save_figure` or ``fig.savefig``)."""
    from neuromodels._figures import new_figure
    from neuromodels.spiking.plots import shown_steps

    panels = dict(rasters) if isinstance(rasters, Mapping) else {"": rasters}
    fig, axes = new_figure(
        2,
        len(panels),
        figsize=(3.2 * len(panels) + 0.8, 4.6),
        layout="constrained",
        squeeze=False,
        sharex="col",
        height_ratios=[3, 1.3],
    )
    colors = ["tab:blue", "tab:red", "tab:green", "tab:purple"]
    for column, (name, data) in enumerate(panels.items()):
        raster = _raster(data)
        t0 = float(raster["time"].values[0]) if raster.sizes["time"] else 0.0
        first, last, lo, hi = shown_steps(
            raster.sizes["time"], raster.attrs["dt"], start, window, t0=t0, who="plot_population_activity"
        )
        raster = raster.isel(time=slice(first, last))
        top, bottom = axes[0, column], axes[1, column]
        bottom.set_xlim(lo, hi)
        row = 0
        everyone = raster.assign_coords(population=("neuron", np.full(raster.sizes["neuron"], "all")))
        rate = population_rate(everyone, bin_size=bin_size).isel(population=0)
        bottom.plot(rate["time"].values, rate.values, lw=0.6, c="k")
        for k, population in enumerate(_populations(raster)):
            count = neurons.get(population, 0) if isinstance(neurons, Mapping) else int(neurons)
            shown = raster.isel(neuron=np.flatnonzero(raster["population"].values == population)[:count])
            steps, index = np.nonzero(np.asarray(shown.values))
            color = colors[k % len(colors)]
            top.scatter(
                shown["time"].values[steps], index + row, s=2, c=color, marker="|", linewidths=0.5, label=population
            )
            row += shown.sizes["neuron"]
        top.set_ylim(-0.5, row - 0.5)
        top.set_yticks([])
        top.set_title(name, fontsize=9)
        bottom.set_xlabel("time (s)")
        if column == 0:
            top.set_ylabel("neuron")
            bottom.set_ylabel("rate (Hz)")
    if title:
        fig.suptitle(title)
    return fig

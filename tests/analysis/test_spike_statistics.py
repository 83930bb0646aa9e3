"""Population statistics of spike rasters against closed forms of lattice (Bernoulli) processes.

A raster of independent Bernoulli trials with probability ``p`` per step ``dt`` is the discrete-time Poisson
process: its intervals are geometric (mean ``1/p``, variance ``(1-p)/p^2``, so ``CV = sqrt(1-p)`` exactly) and its
counts in ``w`` steps binomial (``Fano = 1-p`` exactly). Sampling errors used in the bounds (delta method):
the ISI CV of ``n`` exponential intervals has variance ``1/n`` and a bias of order ``1/n``; the Fano factor of
``K`` Poisson counts has variance ``2/(K-1)`` (``Var[s^2]/mu^2 = 2/(K-1) + 1/(mu K)``, ``Var[m] mu^2/mu^2`` and
the covariance ``-2/(mu K)`` cancel the ``1/(mu K)`` terms); ``chi^2`` of ``N`` independent trains estimated from
``K`` bins has relative standard deviation ``sqrt(2/K)``, so ``chi sqrt(N)`` has ``sqrt(1/(2K))``.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from neuromodels.analysis.spike_statistics import (
    fano_factor,
    firing_rates,
    isi_cv,
    plot_population_activity,
    population_rate,
    population_statistics,
    rate_spectrum,
    spectral_peak,
    synchrony,
)
from neuromodels.errors import ConfigError, DataFormatError

DT = 1e-3


def _dataset(spikes: np.ndarray, population: list[str] | None = None, dt: float = DT) -> xr.Dataset:
    coords = {"time": np.arange(spikes.shape[0]) * dt, "neuron": np.arange(spikes.shape[1])}
    if population is not None:
        coords["population"] = ("neuron", np.asarray(population))
    return xr.Dataset(
        {"spikes": (("time", "neuron"), spikes.astype(np.uint8))}, coords=coords, attrs={"dt": dt, "seed": 0}
    )


def _bernoulli(p: float | np.ndarray, steps: int, neurons: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = np.asarray(p, dtype=np.float64).reshape(-1, 1) if np.ndim(p) else p
    return (rng.random((steps, neurons)) < p).astype(np.uint8)


def _regular(period: int, steps: int, neurons: int, seed: int = 0) -> np.ndarray:
    phases = np.random.default_rng(seed).integers(0, period, neurons)
    spikes = np.zeros((steps, neurons), np.uint8)
    for j, phase in enumerate(phases):
        spikes[phase::period, j] = 1
    return spikes


def test_rates_per_neuron_and_population_are_counts_over_duration():
    spikes = np.zeros((1000, 4), np.uint8)
    spikes[::100, 0] = 1  # 10 spikes in 1 s
    spikes[::10, 1] = 1  # 100
    spikes[::50, 2] = 1  # 20
    result = firing_rates(_dataset(spikes, ["E", "E", "I", "I"]))
    np.testing.assert_allclose(result["rate"].values, [10.0, 100.0, 20.0, 0.0])
    np.testing.assert_allclose(result["population_rate"].sel(population="E"), 55.0)
    np.testing.assert_allclose(result["population_rate"].sel(population="I"), 10.0)
    assert list(result["population"].values) == ["E", "I"]
    assert result.attrs["units"] == "Hz"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_poisson_cv_and_fano_match_the_lattice_closed_form(seed):
    p, steps, neurons = 0.02, 20_000, 200  # 20 Hz at dt = 1 ms, 20 s, ~400 intervals per neuron
    data = _dataset(_bernoulli(p, steps, neurons, seed))
    cv = isi_cv(data, min_spikes=5)
    n_intervals = p * steps - 1
    bound = 4 / np.sqrt(n_intervals * neurons) + 2 / n_intervals
    assert abs(float(cv["population_cv"].item()) - np.sqrt(1 - p)) < bound
    assert int(cv["neurons_used"].item()) == neurons

    window_steps = 100
    fano = fano_factor(data, window=window_steps * DT)
    windows = steps // window_steps
    assert fano.attrs["windows"] == windows
    assert abs(float(fano["population_fano"].item()) - (1 - p)) < 4 * np.sqrt(2 / ((windows - 1) * neurons))


def test_regular_trains_have_zero_cv_and_vanishing_fano():
    period = 25  # 40 Hz at dt = 1 ms
    data = _dataset(_regular(period, 10_000, 30))
    np.testing.assert_allclose(isi_cv(data)["cv"].values, 0.0, atol=1e-12)
    # a window that holds whole periods sees the same count every time
    assert float(fano_factor(data, window=4 * period * DT)["population_fano"].item()) == 0.0
    # otherwise counts take two neighbouring values: variance <= K/(4(K-1)), so Fano <= K/(4(K-1) mu) -> 0
    for window_steps in (37, 370, 3700):
        fano = fano_factor(data, window=window_steps * DT)
        windows, mean_count = fano.attrs["windows"], window_steps / period
        assert float(fano["fano"].max()) <= windows / (4 * (windows - 1) * mean_count) + 1e-12


def test_cv_needs_min_spikes_and_leaves_silent_neurons_out():
    spikes = _regular(10, 1000, 3)
    spikes[:, 2] = 0
    spikes[[5, 50], 2] = 1  # two spikes: one interval only
    result = isi_cv(_dataset(spikes), min_spikes=3)
    assert np.isnan(result["cv"].values[2])
    assert int(result["neurons_used"].item()) == 2
    with pytest.raises(ConfigError, match="min_spikes"):
        isi_cv(_dataset(spikes), min_spikes=1)


def test_synchrony_is_one_for_identical_trains_and_one_over_sqrt_n_for_independent_ones():
    one = _bernoulli(0.02, 5000, 1)
    identical = _dataset(np.repeat(one, 40, axis=1))
    np.testing.assert_allclose(synchrony(identical).item(), 1.0, rtol=1e-12)

    n, bins = 100, 20_000
    chi = synchrony(_dataset(_bernoulli(0.02, bins, n, seed=3)), bin_size=DT).item()
    assert abs(chi * np.sqrt(n) - 1) < 4 * np.sqrt(1 / (2 * bins))


def test_synchrony_per_population():
    one = _bernoulli(0.05, 4000, 1, seed=4)
    spikes = np.concatenate([np.repeat(one, 20, axis=1), _bernoulli(0.05, 4000, 20, seed=5)], axis=1)
    chi = synchrony(_dataset(spikes, ["sync"] * 20 + ["async"] * 20), bin_size=2 * DT)
    np.testing.assert_allclose(chi.sel(population="sync"), 1.0, rtol=1e-12)
    assert chi.sel(population="async") < 0.4
    assert chi.attrs["bin_size"] == 2 * DT


def test_population_rate_counts_spikes_per_bin():
    spikes = np.zeros((100, 2), np.uint8)
    spikes[[0, 3, 12], 0] = 1
    spikes[[4], 1] = 1
    rate = population_rate(_dataset(spikes), bin_size=10 * DT)
    assert rate.sizes == {"population": 1, "time": 10}
    # bin 0 holds 3 spikes of 2 neurons in 10 ms: 150 Hz; bin 1 holds 1: 50 Hz
    np.testing.assert_allclose(rate.values[0, :3], [150.0, 50.0, 0.0])
    np.testing.assert_allclose(rate["time"].values[:3], [0.0, 0.01, 0.02])


def test_spectrum_of_a_periodic_rate_peaks_at_its_frequency_and_integrates_to_the_variance():
    dt, frequency, steps, n = 1e-3, 40.0, 8000, 400
    t = np.arange(steps) * dt
    p = 0.02 * (1 + 0.8 * np.sin(2 * np.pi * frequency * t))  # 20 Hz mean, 40 Hz modulation
    data = _dataset(_bernoulli(p, steps, n, seed=6), dt=dt)
    psd = rate_spectrum(data, bin_size=dt, segment=0.25)
    assert spectral_peak(psd).item() == pytest.approx(frequency, abs=1 / 0.25)
    # Welch's density integrates to the variance of the population rate (Parseval), within the window's leakage
    rate = population_rate(data, bin_size=dt)
    df = float(psd["frequency"][1] - psd["frequency"][0])
    assert float(psd.sum()) * df == pytest.approx(float(rate.var()), rel=0.05)


def test_population_statistics_gathers_every_measure():
    stats = population_statistics(_dataset(_bernoulli(0.02, 4000, 50, seed=7), ["E"] * 40 + ["I"] * 10))
    assert set(stats.data_vars) == {"rate", "cv", "fano", "chi", "peak_frequency", "peak_power"}
    assert list(stats["population"].values) == ["E", "I"]
    assert stats["rate"].sel(population="E") == pytest.approx(20.0, rel=0.1)
    assert stats.attrs["fano_window"] == 0.05


def test_dt_from_the_time_coordinate_and_a_bare_dataarray():
    spikes = _regular(10, 1000, 2)
    array = xr.DataArray(spikes, dims=("time", "neuron"), coords={"time": np.arange(1000) * 5e-4})
    np.testing.assert_allclose(firing_rates(array)["rate"].values, 200.0)


def test_bad_rasters_and_bins_are_refused_with_the_field_named():
    with pytest.raises(DataFormatError, match="spikes"):
        firing_rates(xr.Dataset({"voltage": (("time", "neuron"), np.zeros((3, 2)))}))
    with pytest.raises(DataFormatError, match="select one trial"):
        firing_rates(xr.DataArray(np.zeros((2, 3, 2)), dims=("trial", "time", "neuron"), attrs={"dt": DT}))
    with pytest.raises(DataFormatError, match="uniform"):
        firing_rates(xr.DataArray(np.zeros((3, 2)), dims=("time", "neuron"), coords={"time": [0.0, 0.1, 0.3]}))
    with pytest.raises(DataFormatError, match="0/1"):
        firing_rates(xr.DataArray(np.full((3, 2), 0.5), dims=("time", "neuron"), attrs={"dt": DT}))
    with pytest.raises(DataFormatError, match="0/1"):
        firing_rates(xr.DataArray(np.full((3, 2), 2, np.uint8), dims=("time", "neuron"), attrs={"dt": DT}))
    data = _dataset(_regular(10, 100, 2))
    with pytest.raises(ConfigError, match="multiple of the raster's step"):
        fano_factor(data, window=2.5e-3)
    with pytest.raises(ConfigError, match="fewer than 2 bins"):
        synchrony(data, bin_size=0.1)


def test_activity_figure_has_a_raster_and_a_rate_row_per_panel(tmp_path):
    from matplotlib.figure import Figure

    from neuromodels._figures import save_figure

    data = _dataset(_bernoulli(0.02, 2000, 60, seed=8), ["E"] * 48 + ["I"] * 12)
    fig = plot_population_activity({"A": data, "B": data}, neurons=20, start=0.5, window=1.0, title="test")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 4
    raster_axis = fig.axes[0]
    assert raster_axis.get_ylim() == (-0.5, 31.5)  # 20 E + 12 I neurons shown
    path = save_figure(fig, tmp_path / "activity.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_activity_figure_time_window_means_what_plot_raster_means():
    data = _dataset(_bernoulli(0.02, 2000, 10, seed=9), ["E"] * 10)  # 2,000 steps of 1 ms: t = 0 ... 1.999 s
    last = plot_population_activity(data, neurons=10, window=0.5).axes[1].get_lines()[0].get_xdata()
    assert last.min() >= 1.499 - 1e-9 and last.max() <= 1.999 + 1e-9  # window alone: the last 0.5 s
    middle = plot_population_activity(data, neurons=10, start=0.5, window=0.25).axes[1].get_lines()[0].get_xdata()
    assert middle.min() >= 0.5 - 1e-9 and middle.max() <= 0.75 + 1e-9
    with pytest.raises(ConfigError, match="duration in seconds"):
        plot_population_activity(data, window=(0.5, 1.5))


def test_activity_figure_shows_the_steps_plot_raster_shows():
    # one rule for both figures (neuromodels.spiking.plots.shown_steps): [start, start + window) on the run's clock
    import xarray as xr

    from neuromodels.spiking.plots import plot_raster

    spikes = np.zeros((1000, 2), dtype=np.uint8)  # 1 s at 1 ms; neuron 0 fires at 0.1, 0.799, 0.8, 0.95 s
    spikes[[100, 799, 800, 950], 0] = 1
    spikes[999, 1] = 1
    data = xr.DataArray(spikes, dims=("time", "neuron"), coords={"time": np.arange(1000) * 1e-3}, attrs={"dt": 1e-3})
    for kwargs in ({"window": 0.2}, {"start": 0.8}, {"start": 0.1, "window": 0.7}):
        raster = np.asarray(plot_raster(spikes, 1e-3, **kwargs).axes[0].collections[0].get_offsets())
        activity = plot_population_activity(data, neurons=2, **kwargs)
        drawn = np.asarray(activity.axes[0].collections[0].get_offsets())
        np.testing.assert_allclose(drawn, raster)  # the same spikes, at the same times
        assert activity.axes[1].get_xlim() == pytest.approx(plot_raster(spikes, 1e-3, **kwargs).axes[0].get_xlim())
    # a run whose clock starts at 2 s: start is on that clock
    later = data.assign_coords(time=data["time"] + 2.0)
    drawn = np.asarray(plot_population_activity(later, neurons=2, start=2.8).axes[0].collections[0].get_offsets())
    np.testing.assert_allclose(drawn[:, 0], [2.8, 2.95, 2.999])
    for bad, match in (({"start": 3.0}, "start"), ({"start": 0.5}, "start"), ({"window": 0.0}, "window")):
        with pytest.raises(ConfigError, match=match):
            plot_population_activity(later, **bad)

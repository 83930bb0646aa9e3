"""Per-cell test metrics of retina models against repeated trials."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from neuromodels.analysis.retina_metrics import pearson_columns, repeated_trials, retina_test_metrics
from neuromodels.datasets.recording import recording_from_counts
from neuromodels.errors import DataFormatError


def _recording(rates: np.ndarray, repeats: int, seed: int = 0) -> xr.Dataset:
    """Train bins (no trials) then test bins with Poisson trials of known ``rates (time, cell)``."""
    rng = np.random.default_rng(seed)
    n_test, n_cells = rates.shape
    n_train = 50
    trials = np.full((repeats, n_train + n_test, n_cells), np.nan, np.float32)
    trials[:, n_train:] = rng.poisson(rates[None].repeat(repeats, 0))
    counts = np.concatenate([rng.poisson(1.0, (n_train, n_cells)), trials[0, n_train:]]).astype(np.int64)
    rec = recording_from_counts(
        counts,
        np.arange(n_train + n_test) * 0.01,
        0.01,
        [f"c{i}" for i in range(n_cells)],
        source="synthetic",
        stimulus=np.zeros((n_train + n_test, 2, 2), np.float32),
    )
    kinds = ["checkerboard"] * n_train + ["checkerboard"] * (n_test // 2) + ["natural"] * (n_test - n_test // 2)
    return rec.assign(trials=(("repeat", "time", "cell"), trials)).assign_coords(
        split=("time", np.array(["train"] * n_train + ["test"] * n_test, dtype=object)),
        stimulus_kind=("time", np.array(kinds, dtype=object)),
    )


def _prediction(values: np.ndarray, rec: xr.Dataset) -> xr.DataArray:
    test = rec.isel(time=np.flatnonzero(rec["split"].values == "test"))
    return xr.DataArray(
        values, dims=("time", "cell"), coords={"time": test["time"].values, "cell": test["cell"].values}
    )


def test_the_true_rate_scores_at_the_ceiling():
    rng = np.random.default_rng(1)
    rates = rng.gamma(2.0, 1.0, (2000, 3))
    rec = _recording(rates, repeats=20)
    metrics = retina_test_metrics(_prediction(rates, rec), rec)
    assert metrics.sizes == {"cell": 3} and metrics.attrs["n_repeats"] == 20 and metrics.attrs["n_test_bins"] == 2000
    np.testing.assert_allclose(metrics["cc_norm"].values, 1.0, atol=0.05)
    np.testing.assert_allclose(metrics["feve"].values, 1.0, atol=0.05)
    np.testing.assert_allclose(metrics["cc"].values, metrics["cc_max"].values, atol=0.03)
    # a prediction that is half signal, half noise scores clearly lower on every measure
    noisy = rates + rng.normal(0, rates.std(), rates.shape)
    worse = retina_test_metrics(_prediction(noisy, rec), rec)
    assert (worse["cc_norm"] < 0.85).all() and (worse["feve"] < metrics["feve"] - 0.2).all()


def test_stimulus_kind_selects_test_bins_and_errors_name_the_problem():
    rates = np.random.default_rng(2).gamma(2.0, 1.0, (400, 2))
    rec = _recording(rates, repeats=5)
    assert repeated_trials(rec, stimulus_kind="natural").sizes["time"] == 200
    metrics = retina_test_metrics(_prediction(rates, rec), rec, stimulus_kind="natural")
    assert metrics.attrs["stimulus_kind"] == "natural" and metrics.attrs["n_test_bins"] == 200
    with pytest.raises(DataFormatError, match="stimulus_kind"):
        repeated_trials(rec, stimulus_kind="gratings")
    with pytest.raises(DataFormatError, match="trials"):
        repeated_trials(rec.drop_vars("trials"))
    short = _prediction(rates, rec).isel(time=slice(0, 100))
    with pytest.raises(DataFormatError, match="every test bin"):
        retina_test_metrics(short, rec)
    with_nan = _prediction(np.where(np.arange(400)[:, None] == 3, np.nan, rates), rec)
    with pytest.raises(DataFormatError, match="NaN"):
        retina_test_metrics(with_nan, rec)


def test_pearson_columns_matches_numpy_and_flags_constant_columns():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(50, 2)), rng.normal(size=(50, 2))
    np.testing.assert_allclose(pearson_columns(a, b), [np.corrcoef(a[:, i], b[:, i])[0, 1] for i in range(2)])
    a[:, 1] = 4.0
    assert np.isnan(pearson_columns(a, b)[1])

"""RetinaEstimator: one-call fit / predict / score on recordings in the data model."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
import xarray as xr

from neuromodels.analysis.retina_metrics import retina_test_metrics
from neuromodels.datasets.recording import recording_from_counts
from neuromodels.errors import ConfigError, DataFormatError
from neuromodels.fitting.estimator import RetinaEstimator


def _ln_recording(seed: int = 0, n_train: int = 3000, n_test: int = 300, repeats: int = 8) -> xr.Dataset:
    """Three LN cells on an 8x8 white-noise movie, with repeated test trials."""
    rng = np.random.default_rng(seed)
    size, history = 8, 6
    lags = np.arange(history)[::-1]
    temporal = np.exp(-lags / 1.5) * np.cos(lags / 1.2)
    yy, xx = np.mgrid[:size, :size]
    filters = []
    for cy, cx, sign in ((2, 2, 1), (5, 4, -1), (3, 6, 1)):
        spatial = sign * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 2.0)
        filters.append((temporal[:, None, None] * spatial[None]).ravel())
    filters = np.stack(filters) / np.linalg.norm(filters[0])

    def rates(movie):
        padded = np.concatenate([np.zeros((history - 1, size, size), np.float32), movie])
        windows = np.lib.stride_tricks.sliding_window_view(padded, history, axis=0)  # (T, y, x, history)
        windows = np.moveaxis(windows, -1, 1).reshape(len(movie), -1)
        return np.log1p(np.exp(1.5 * windows @ filters.T - 1.0))

    train_movie = rng.standard_normal((n_train, size, size)).astype(np.float32)
    test_movie = rng.standard_normal((n_test, size, size)).astype(np.float32)
    counts_train = rng.poisson(rates(train_movie))
    trials = rng.poisson(rates(test_movie)[None].repeat(repeats, 0)).astype(np.float32)
    n = n_train + n_test
    rec = recording_from_counts(
        np.concatenate([counts_train, trials[0]]).astype(np.int64),
        np.arange(n) * 0.01,
        0.01,
        ["a", "b", "c"],
        source="synthetic-ln",
        stimulus=np.concatenate([train_movie, test_movie]),
    )
    all_trials = np.full((repeats, n, 3), np.nan, np.float32)
    all_trials[:, n_train:] = trials
    return rec.assign(trials=(("repeat", "time", "cell"), all_trials)).assign_coords(
        split=("time", np.array(["train"] * n_train + ["test"] * n_test, dtype=object))
    )


@pytest.fixture(scope="module")
def ln_recording() -> xr.Dataset:
    return _ln_recording()


@pytest.fixture(scope="module")
def fitted_ln(ln_recording) -> RetinaEstimator:
    return RetinaEstimator("ln", history=6, epochs=6, lr=1e-2, batch_size=128, l2_weight=1e-4).fit(ln_recording)


def test_estimator_params_follow_scikit_learn():
    est = RetinaEstimator("cnn", epochs=3, channels=(4, 4))
    params = est.get_params()
    assert params["model"] == "cnn" and params["epochs"] == 3 and params["channels"] == (4, 4)
    est.set_params(lr=0.01, kernel_sizes=(5, 3))
    assert est.lr == 0.01 and est.model_params["kernel_sizes"] == (5, 3)
    assert not hasattr(est, "model_")
    with pytest.raises(ConfigError, match="not fitted"):
        est.predict(np.zeros((50, 8, 8), np.float32))
    assert "channels=(4, 4)" in repr(est)


def test_ln_estimator_fits_scores_and_round_trips(fitted_ln, ln_recording, tmp_path):
    est = fitted_ln
    assert est.cells_ == ["a", "b", "c"] and est.frame_shape_ == (8, 8)
    assert len(est.history_) >= 1
    cc = est.score(ln_recording, retina_test_metrics)
    assert cc.dims == ("cell",) and list(cc["cell"].values) == ["a", "b", "c"]
    assert float(cc.min()) > 0.65  # an LN model on LN data (8 repeats: ceiling ~0.91)
    metrics = est.evaluate(ln_recording, retina_test_metrics)
    assert set(metrics.data_vars) == {"cc", "cc_max", "cc_norm", "fev", "feve"}
    assert (metrics["cc"] <= metrics["cc_max"] + 0.05).all()
    assert float(metrics["cc_norm"].min()) > 0.75

    test = ln_recording.isel(time=np.flatnonzero(ln_recording["split"].values == "test"))
    prediction = est.predict(test)
    assert prediction.dims == ("time", "cell") and prediction.sizes == {"time": 300, "cell": 3}
    assert np.isfinite(prediction.values).all() and (prediction.values > 0).all()
    np.testing.assert_array_equal(prediction["time"].values, test["time"].values)
    from_array = est.predict(test["stimulus"].values)  # a bare (time, y, x) array works too
    np.testing.assert_allclose(from_array.values, prediction.values)

    est.save(tmp_path / "ln.pt")
    loaded = RetinaEstimator.load(tmp_path / "ln.pt")
    np.testing.assert_array_equal(loaded.predict(test).values, prediction.values)  # exact: same weights, same code
    assert loaded.get_params()["l2_weight"] == 1e-4
    with pytest.raises(DataFormatError, match="8x8"):
        est.predict(np.zeros((20, 5, 5), np.float32))


def test_cnn_and_glm_estimators_run_and_predict_every_test_bin(ln_recording):
    small = ln_recording.isel(time=slice(1500, None))
    cnn = RetinaEstimator("cnn", history=6, epochs=2, channels=(3, 3), kernel_sizes=(3, 3), batch_size=128, seed=1).fit(
        small
    )
    assert cnn.model_.first_layer_filters.shape == (3, 6, 3, 3)
    assert cnn.score(small, retina_test_metrics).sizes == {"cell": 3}
    glm = RetinaEstimator("glm", history=6, epochs=2, spike_history=4, lr=1e-2, batch_size=128, n_simulations=3).fit(
        small
    )
    test = small.isel(time=np.flatnonzero(small["split"].values == "test"))
    simulated = glm.predict(test)
    conditional = glm.predict(test, response=test["response"])
    assert simulated.shape == conditional.shape == (300, 3)
    assert np.isfinite(simulated.values).all() and not np.allclose(simulated.values, conditional.values)
    with pytest.raises(ConfigError, match="GLM"):
        cnn.predict(test, response=test["response"])


def test_recurrent_cnn_estimator_trains_on_sequences(ln_recording):
    small = ln_recording.isel(time=slice(2000, None))
    est = RetinaEstimator(
        "cnn",
        history=6,
        epochs=1,
        channels=(2, 2),
        kernel_sizes=(3, 3),
        recurrent=True,
        sequence_length=10,
        batch_size=16,
    ).fit(small)
    prediction = est.predict(small.isel(time=np.flatnonzero(small["split"].values == "test")))
    assert prediction.shape == (300, 3) and np.isfinite(prediction.values).all()


def test_estimator_rejects_bad_input(ln_recording):
    with pytest.raises(ConfigError, match="model must be"):
        RetinaEstimator("lstm").fit(ln_recording)
    with pytest.raises(DataFormatError, match="stimulus"):
        RetinaEstimator("ln").fit(ln_recording.drop_vars("stimulus"))
    with pytest.raises(DataFormatError):
        RetinaEstimator("ln").fit(ln_recording["response"])


def test_estimator_score_on_a_small_virtual_retina():
    """A 24x24 virtual retina (1 ON, 1 OFF, 1 ON-OFF cell, 60 s of checkerboard): scores per cell, CNN above LN."""
    from neuromodels.datasets import sample

    rec = sample(
        "retina",
        size_px=24,
        rf_margin_px=8.0,
        n_on=1,
        n_off=1,
        n_on_off=1,
        train_checkerboard_frames=6000,
        train_natural_frames=0,
        test_checkerboard_frames=300,
        test_natural_frames=0,
        n_repeats=8,
        target_rate_min_hz=30.0,
        target_rate_max_hz=40.0,
    )
    cnn = RetinaEstimator("cnn", history=20, epochs=3, channels=(4, 4), kernel_sizes=(9, 5)).fit(rec)
    ln = RetinaEstimator("ln", history=20, epochs=4).fit(rec)
    cc_cnn, cc_ln = cnn.score(rec, retina_test_metrics), ln.score(rec, retina_test_metrics)
    assert list(cc_cnn["cell"].values) == list(rec["cell"].values)
    assert cc_cnn.attrs["median"] == pytest.approx(float(np.median(cc_cnn.values)))
    assert (cc_cnn.values > cc_ln.values).all()  # the subunit circuit defeats the LN model (sample docs)
    assert float(cc_cnn.mean()) > 0.35
    metrics = cnn.evaluate(rec, retina_test_metrics)
    assert np.all(metrics["cc_max"].values > 0.6) and np.all(metrics["cc"].values < metrics["cc_max"].values)


def test_fit_shows_progress_by_default_on_a_terminal_and_not_in_a_log(ln_recording, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream, shown in ((Terminal(), True), (io.StringIO(), False)):
        monkeypatch.setattr(sys, "stderr", stream)
        RetinaEstimator("ln", history=6, epochs=1, batch_size=512).fit(ln_recording)
        assert ("epochs: 100%" in stream.getvalue()) is shown

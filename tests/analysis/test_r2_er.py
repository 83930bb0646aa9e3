"""Noise-corrected R^2 (r2_ER, Pospisil & Bair 2021) and cross-validated ridge predictions."""

import numpy as np
import pytest
import xarray as xr
from sklearn.model_selection import KFold

from neuromodels import analysis
from neuromodels.errors import ConfigError, DataFormatError


def _noisy_repeats(rng, n_neurons=400, n_images=300, n_repeats=8, noise_sd=2.0):
    """Signal (image, neuron) with variance 1 and repeats (repeat, image, neuron) with noise variance 4."""
    signal = rng.normal(size=(n_images, n_neurons))
    responses = signal[None] + noise_sd * rng.normal(size=(n_repeats, n_images, n_neurons))
    return signal, responses


def _raw_r2(prediction, responses):
    means = responses.mean(axis=0)
    return np.array([np.corrcoef(p, m)[0, 1] ** 2 for p, m in zip(prediction.T, means.T)])


def _cowley_r2_er(responses, prediction):
    """compute_r2_ER of cowleygroup/V4_compact_models, transcribed: responses (neuron, image, repeat) NaN-padded,
    prediction (neuron, image); n from the first neuron."""
    n = np.median(np.sum(np.isfinite(responses[0]), axis=1))
    m = responses.shape[1]
    sig2 = np.nanmean(np.nanvar(responses, axis=2, ddof=1), axis=1)
    y = np.nanmean(responses, axis=2)
    y = y - y.mean(axis=1, keepdims=True)
    x = prediction - prediction.mean(axis=1, keepdims=True)
    xy2 = np.sum(x * y, axis=1) ** 2
    x2 = np.sum(x**2, axis=1)
    y2 = np.sum(y**2, axis=1)
    return (xy2 - sig2 / n * x2) / (x2 * y2 - sig2 / n * (m - 1) * x2)


def test_r2_er_is_one_for_the_expected_response_where_raw_r2_is_not():
    rng = np.random.default_rng(0)
    signal, responses = _noisy_repeats(rng)
    r2 = analysis.r2_er(signal, responses).values
    # noise variance of a repeat mean 4 / 8 = 0.5 against signal variance 1: raw r^2 ~ 1 / 1.5
    assert np.median(_raw_r2(signal, responses)) == pytest.approx(2 / 3, abs=0.03)
    assert np.mean(r2) == pytest.approx(1.0, abs=0.02)
    # a prediction that shares half the expected response's variance: r2_ER ~ 0.5, raw r^2 ~ 1/3
    prediction = signal + rng.normal(size=signal.shape)
    assert np.mean(analysis.r2_er(prediction, responses).values) == pytest.approx(0.5, abs=0.02)
    assert np.mean(_raw_r2(prediction, responses)) == pytest.approx(1 / 3, abs=0.02)


def test_r2_er_equals_the_authors_formula_with_nan_padded_repeats():
    rng = np.random.default_rng(1)
    signal, responses = _noisy_repeats(rng, n_neurons=20, n_images=50, n_repeats=10)
    keep = rng.integers(6, 11, size=50)  # 6-10 repeats per image, shared by all neurons (as Cowley et al.'s data)
    responses[np.arange(10)[:, None] >= keep[None, :]] = np.nan
    prediction = signal + rng.normal(size=signal.shape)
    ours = analysis.r2_er(prediction, responses).values
    theirs = _cowley_r2_er(np.transpose(responses, (2, 1, 0)), prediction.T)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)
    # padding with empty repeat slots changes nothing
    padded = np.concatenate([responses, np.full((3,) + responses.shape[1:], np.nan)])
    np.testing.assert_allclose(analysis.r2_er(prediction, padded).values, ours, rtol=1e-12)


def test_r2_er_on_an_assembly_matches_the_array_path():
    rng = np.random.default_rng(2)
    signal, responses = _noisy_repeats(rng, n_neurons=5, n_images=30, n_repeats=4)
    ids = [f"im{i:02d}" for i in range(30)]
    neural = xr.DataArray(
        responses.reshape(-1, 5),
        dims=("presentation", "neuroid"),
        coords={
            "stimulus_id": ("presentation", np.tile(ids, 4)),
            "repetition": ("presentation", np.repeat(range(4), 30)),
        },
    )
    prediction = xr.DataArray(signal, dims=("presentation", "neuroid"), coords={"stimulus_id": ("presentation", ids)})
    np.testing.assert_allclose(analysis.r2_er(prediction, neural).values, analysis.r2_er(signal, responses).values)


def test_r2_er_refuses_a_stimulus_without_a_repeat():
    rng = np.random.default_rng(3)
    signal, responses = _noisy_repeats(rng, n_neurons=3, n_images=10, n_repeats=3)
    responses[:, 4] = np.nan
    with pytest.raises(DataFormatError, match="responses"):
        analysis.r2_er(signal, responses)


def test_ridge_cross_validated_equals_fold_by_fold_ridge():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(60, 8))
    y = x @ rng.normal(size=(8, 3)) + 0.5 * rng.normal(size=(60, 3))
    folds = list(KFold(5, shuffle=True, random_state=0).split(x))
    prediction = analysis.ridge_cross_validated(x, y, folds)
    for train, test in folds:  # exact: the same call on the same rows
        np.testing.assert_array_equal(prediction[test], analysis.ridge_gcv(x[train], y[train], x[test]).prediction)
    # rows no fold holds out stay NaN; a row held out twice is refused
    partial = analysis.ridge_cross_validated(x, y, folds[:2])
    assert np.isnan(partial).any(axis=1).sum() == 60 - sum(len(t) for _, t in folds[:2])
    with pytest.raises(ConfigError, match="more than once"):
        analysis.ridge_cross_validated(x, y, [folds[0], folds[0]])

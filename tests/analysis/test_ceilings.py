"""Noise ceilings: analytic reliabilities, hand-computed examples, Brain-Score's procedure, real V4 data."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import xarray as xr
from sklearn.model_selection import ShuffleSplit

from neuromodels.analysis.ceilings import (
    cc_max,
    cc_norm,
    ceiling_split_half,
    fev,
    feve,
    noise_ceiling,
    oracle_correlation,
    repetition_cube,
    signal_power,
)
from neuromodels.datasets.recording import assembly
from neuromodels.errors import ConfigError, DataFormatError

COWLEY = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "data"
    / "cowley2023-v4"
    / "responses_raw_responses_210325.npy"
)


def _trials_to_assembly(trials: np.ndarray, drop_nan: bool = False, time_bins: int | None = None) -> xr.DataArray:
    """(repeat, stimulus, neuroid[, time_bin]) -> assembly, optionally without the all-NaN presentations."""
    n_reps, n_stimuli = trials.shape[:2]
    values = trials.reshape((n_reps * n_stimuli,) + trials.shape[2:])
    stimulus = np.tile([f"stim{i:04d}" for i in range(n_stimuli)], n_reps)
    repetition = np.repeat(np.arange(n_reps), n_stimuli)
    if drop_nan:
        keep = ~np.isnan(values.reshape(values.shape[0], -1)).all(axis=1)
        values, stimulus, repetition = values[keep], stimulus[keep], repetition[keep]
    kwargs = {}
    if time_bins:
        kwargs = {
            "time_bin_start_ms": 10.0 * np.arange(time_bins),
            "time_bin_end_ms": 10.0 * np.arange(1, time_bins + 1),
        }
    return assembly(
        values,
        stimulus_id=stimulus,
        neuroid_id=[f"n{i}" for i in range(trials.shape[2])],
        repetition=repetition,
        **kwargs,
    )


def _synthetic(n_stimuli=480, n_neuroids=60, n_reps=10, noise_sd=1.5, seed=0):
    """Unit-variance signal per neuroid (ddof=0) plus Gaussian noise of SD ``noise_sd`` on every trial."""
    rng = np.random.default_rng(seed)
    signal = rng.standard_normal((n_stimuli, 8)) @ rng.standard_normal((8, n_neuroids))
    signal = (signal - signal.mean(axis=0)) / signal.std(axis=0)
    noise_sd = np.broadcast_to(noise_sd, (n_neuroids,))
    trials = signal[None] + noise_sd * rng.standard_normal((n_reps, n_stimuli, n_neuroids))
    return signal, trials


def _brain_score_split_half(neural: xr.DataArray, n_splits: int = 10) -> tuple[np.ndarray, float, float]:
    """Brain-Score's InternalConsistency written out: halves of the repetition values, groupby means, pearsonr."""
    repetitions = np.unique(neural["repetition"].values)
    per_split = []
    for first, second in ShuffleSplit(n_splits, train_size=0.5, random_state=1).split(np.zeros(len(repetitions))):
        halves = [
            neural.isel(presentation=np.isin(neural["repetition"].values, repetitions[chosen]))
            .groupby("stimulus_id")
            .mean("presentation")
            for chosen in (first, second)
        ]
        r = np.array(
            [
                scipy.stats.pearsonr(halves[0].values[:, i], halves[1].values[:, i])[0]
                for i in range(neural.sizes["neuroid"])
            ]
        )
        per_split.append(2 * r / (1 + r))
    per_split = np.array(per_split)
    medians = np.median(per_split, axis=1)
    return per_split, medians.mean(), medians.std() / np.sqrt(n_splits)


def test_split_half_equals_analytic_spearman_brown_reliability():
    n_stimuli, n_neuroids, n_reps, noise_sd = 480, 60, 10, 1.5
    _, trials = _synthetic(n_stimuli, n_neuroids, n_reps, noise_sd)
    result = ceiling_split_half(_trials_to_assembly(trials))
    # Signal variance v = 1, noise s^2 per trial, R repeats: a half-mean (R/2 repeats) correlates with the other
    # half at r = v / (v + 2 s^2 / R); Spearman-Brown 2r / (1 + r) = v / (v + s^2 / R) is the reliability of the
    # full mean.
    r_half = 1.0 / (1.0 + 2 * noise_sd**2 / n_reps)
    analytic = 2 * r_half / (1 + r_half)
    assert analytic == pytest.approx(1.0 / (1.0 + noise_sd**2 / n_reps))
    # Sampling error: SD of Pearson r over S stimuli ~ (1 - r^2) / sqrt(S), times the Spearman-Brown slope
    # 2 / (1 + r)^2; the median over N neuroids has SE ~ 1.25 SD / sqrt(N). Allow 4 SE (measured deviations over
    # 4 seeds: <= 0.0015 against a tolerance of ~0.011).
    sd_neuroid = (1 - r_half**2) / np.sqrt(n_stimuli) * 2 / (1 + r_half) ** 2
    tolerance = 4 * 1.2533 * sd_neuroid / np.sqrt(n_neuroids)
    assert float(result["ceiling"]) == pytest.approx(analytic, abs=tolerance)
    assert float(result["half_correlation"].median()) == pytest.approx(r_half, abs=tolerance)
    assert result["ceiling_per_split"].dims == ("split", "neuroid")
    assert result.sizes["split"] == 10
    assert 0 < float(result["error"]) < tolerance


def test_split_half_tracks_per_neuroid_noise_levels():
    noise = np.linspace(0.5, 4.0, 40)
    _, trials = _synthetic(n_neuroids=40, noise_sd=noise, seed=1)
    per_neuroid = ceiling_split_half(_trials_to_assembly(trials))["ceiling_per_neuroid"].values
    analytic = 1.0 / (1.0 + noise**2 / 10)
    # per neuroid: 4 x the single-split sampling SD (1 - r^2) / sqrt(S) x 2 / (1 + r)^2 (the mean over splits is
    # at most that noisy)
    r_half = 1.0 / (1.0 + 2 * noise**2 / 10)
    tolerance = 4 * (1 - r_half**2) / np.sqrt(480) * 2 / (1 + r_half) ** 2
    assert np.all(np.abs(per_neuroid - analytic) < tolerance)
    assert np.corrcoef(per_neuroid, analytic)[0, 1] > 0.98


def test_split_half_equals_brain_score_procedure():
    _, trials = _synthetic(n_stimuli=120, n_neuroids=15, n_reps=7, seed=2)
    neural = _trials_to_assembly(trials)
    per_split, center, error = _brain_score_split_half(neural)
    ours = ceiling_split_half(neural)
    np.testing.assert_allclose(ours["ceiling_per_split"].values, per_split, rtol=0, atol=1e-12)
    assert float(ours["ceiling"]) == pytest.approx(center, abs=1e-12)
    assert float(ours["error"]) == pytest.approx(error, abs=1e-12)
    # 7 repetitions: ShuffleSplit(train_size=0.5) puts floor(3.5) = 3 in the first half and 4 in the second
    first, second = next(ShuffleSplit(10, train_size=0.5, random_state=1).split(np.zeros(7)))
    assert (len(first), len(second)) == (3, 4)


def test_split_half_per_time_bin_equals_each_bin_alone():
    rng = np.random.default_rng(4)
    trials = rng.standard_normal((6, 80, 5, 3)) + rng.standard_normal((1, 80, 5, 3))
    neural = _trials_to_assembly(trials, time_bins=3)
    ours = ceiling_split_half(neural)
    assert ours["ceiling"].dims == ("time_bin",)
    assert "time_bin_start" in ours["ceiling"].coords
    for t in range(3):
        alone = ceiling_split_half(neural.isel(time_bin=t))
        np.testing.assert_allclose(
            ours["ceiling_per_neuroid"].isel(time_bin=t).values, alone["ceiling_per_neuroid"].values, atol=1e-14
        )
        assert float(ours["ceiling"][t]) == pytest.approx(float(alone["ceiling"]), abs=1e-14)


def test_zero_noise_gives_perfect_ceilings():
    rng = np.random.default_rng(5)
    signal = rng.standard_normal((50, 4))
    trials = np.repeat(signal[None], 5, axis=0)
    np.testing.assert_allclose(cc_max(trials).values, 1.0, atol=1e-12)
    np.testing.assert_allclose(fev(trials).values, 1.0, atol=1e-12)
    np.testing.assert_allclose(oracle_correlation(trials).values, 1.0, atol=1e-12)
    np.testing.assert_allclose(oracle_correlation(trials, "conservative").values, 1.0, atol=1e-12)
    np.testing.assert_allclose(ceiling_split_half(trials)["ceiling_per_neuroid"].values, 1.0, atol=1e-12)
    np.testing.assert_allclose(cc_norm(signal, trials).values, 1.0, atol=1e-12)
    np.testing.assert_allclose(feve(signal, trials).values, 1.0, atol=1e-12)


# One neuron, two stimuli, two repeats: stimulus A -> 1, 3; stimulus B -> 5, 7.
HAND = np.array([[[1.0], [5.0]], [[3.0], [7.0]]])  # (repeat, stimulus, neuroid)


def test_oracle_correlations_by_hand():
    # jackknife: trials 1, 3, 5, 7 against the other repeat 3, 1, 7, 5 -> deviations (-3, -1, 1, 3) and
    # (-1, -3, 3, 1): r = (3 + 3 + 3 + 3) / 20 = 0.6
    assert float(oracle_correlation(HAND)[0]) == pytest.approx(0.6, abs=1e-12)
    # conservative: noise variance mean(var(1, 3), var(5, 7)) = 1, variance of the means var(2, 6) = 4 (ddof 0):
    # 4 / sqrt(4 * 5) = sqrt(0.8)
    assert float(oracle_correlation(HAND, "conservative")[0]) == pytest.approx(np.sqrt(0.8), abs=1e-12)


def test_fev_feve_by_hand():
    # total variance of 1, 3, 5, 7 (ddof 1) = 20 / 3; noise = mean(2, 2) = 2 -> FEV = 1 - 2 / (20 / 3) = 0.7
    assert float(fev(HAND)[0]) == pytest.approx(0.7, abs=1e-12)
    # prediction = the stimulus means (2, 6): MSE over trials = 1 -> FEVE = 1 - (1 - 2) / (20/3 - 2) = 1 + 3/14
    assert float(feve(np.array([[2.0], [6.0]]), HAND)[0]) == pytest.approx(1 + 3 / 14, abs=1e-12)
    # a constant prediction of the grand mean 4: MSE = (9 + 1 + 1 + 9) / 4 = 5 -> 1 - 3 / (14/3) = 5/14
    assert float(feve(np.array([[4.0], [4.0]]), HAND)[0]) == pytest.approx(5 / 14, abs=1e-12)


def test_signal_power_and_cc_max_by_hand():
    # Sahani & Linden with N = 2 trials r_1 = (1, 5), r_2 = (3, 7) over stimuli (ddof 0):
    # Var(r_1 + r_2) = Var(4, 12) = 16, Var(r_1) + Var(r_2) = 4 + 4 -> SP = (16 - 8) / 2 = 4
    assert float(signal_power(HAND)[0]) == pytest.approx(4.0, abs=1e-12)
    # Var(mean response) = Var(2, 6) = 4 -> CC_max = sqrt(4 / 4) = 1 (the stimulus difference dwarfs the noise
    # once the trial offsets, which S&L treat as noise-free, are taken out)
    assert float(cc_max(HAND)[0]) == pytest.approx(1.0, abs=1e-12)
    three = np.array([[[1.0], [5.0], [2.0]], [[3.0], [6.0], [2.0]]])
    # trials (1, 5, 2) and (3, 6, 2): Var(sum = 4, 11, 4) = 98/9, Var(r_1) = 26/9, Var(r_2) = 26/9
    sp = (98 / 9 - 52 / 9) / 2
    var_mean = np.var([2.0, 5.5, 2.0])
    assert float(signal_power(three)[0]) == pytest.approx(sp, abs=1e-12)
    assert float(cc_max(three)[0]) == pytest.approx(np.sqrt(sp / var_mean), abs=1e-12)


def test_cc_norm_is_cc_abs_over_cc_max_and_near_one_for_the_true_signal():
    signal, trials = _synthetic(n_stimuli=400, n_neuroids=30, n_reps=8, noise_sd=1.0, seed=6)
    rng = np.random.default_rng(7)
    prediction = signal + 0.5 * rng.standard_normal(signal.shape)
    mean = trials.mean(axis=0)
    cc_abs = np.array([np.corrcoef(prediction[:, i], mean[:, i])[0, 1] for i in range(30)])
    np.testing.assert_allclose(cc_norm(prediction, trials).values, cc_abs / cc_max(trials).values, rtol=1e-10)
    # The noise-free signal: CC_norm = 1 up to sampling error (SD ~ 1/sqrt(400) per neuroid)
    assert float(np.median(cc_norm(signal, trials).values)) == pytest.approx(1.0, abs=0.02)
    # CC_max^2 and the split-half ceiling both estimate the reliability of the 8-repeat mean
    reliability = 1.0 / (1.0 + 1.0 / 8)
    assert float(np.median(cc_max(trials).values ** 2)) == pytest.approx(reliability, abs=0.02)


def test_unequal_repeats_nan_padding_equals_dropped_presentations():
    rng = np.random.default_rng(8)
    trials = rng.standard_normal((6, 40, 3)) + 2 * rng.standard_normal((1, 40, 3))
    counts = rng.integers(3, 7, size=40)
    for s, c in enumerate(counts):
        trials[c:, s] = np.nan
    dropped = _trials_to_assembly(trials, drop_nan=True)
    assert dropped.sizes["presentation"] == counts.sum()
    cube = repetition_cube(dropped)
    np.testing.assert_array_equal(np.isnan(cube.values), np.isnan(trials))  # exact: masks
    for function in (cc_max, fev, oracle_correlation, signal_power):
        np.testing.assert_allclose(function(dropped).values, function(trials).values, rtol=1e-12)
    np.testing.assert_allclose(
        ceiling_split_half(dropped)["ceiling_per_split"].values,
        ceiling_split_half(trials)["ceiling_per_split"].values,
        rtol=1e-12,
    )
    # Unequal counts use the ANOVA signal power: Var_1(means) - pooled within variance x mean(1/N_s)
    means = np.nanmean(trials, axis=0)
    within = np.nansum(np.nanvar(trials, axis=0, ddof=1) * (counts[:, None] - 1), axis=0) / (counts - 1).sum()
    expected = np.var(means, axis=0, ddof=1) - within * np.mean(1.0 / counts)
    np.testing.assert_allclose(signal_power(trials).values, expected, rtol=1e-12)
    # FEV as neuralpredictors: per-image variances (ddof 1), pooled total variance (ddof 1)
    total = np.nanvar(trials.reshape(-1, 3), axis=0, ddof=1)
    noise = np.nanmean(np.nanvar(trials, axis=0, ddof=1), axis=0)
    np.testing.assert_allclose(fev(trials).values, 1 - noise / total, rtol=1e-12)


def test_jackknife_oracle_equals_reference_loop_with_unequal_repeats():
    rng = np.random.default_rng(9)
    per_stimulus = [rng.standard_normal((n, 2)) + rng.standard_normal(2) for n in rng.integers(2, 6, size=30)]
    padded = np.full((5, 30, 2), np.nan)
    for s, block in enumerate(per_stimulus):
        padded[: len(block), s] = block
    trials = np.vstack(per_stimulus)
    oracles = np.vstack([(block.sum(axis=0) - block) / (len(block) - 1) for block in per_stimulus])
    expected = [np.corrcoef(trials[:, i], oracles[:, i])[0, 1] for i in range(2)]
    np.testing.assert_allclose(oracle_correlation(padded).values, expected, rtol=1e-12)


def test_constant_neuroid_gives_nan_with_warning():
    rng = np.random.default_rng(10)
    trials = rng.standard_normal((4, 30, 3)) + rng.standard_normal((1, 30, 3))
    trials[:, :, 1] = 2.0
    neural = _trials_to_assembly(trials)
    for method in ("split_half", "cc_max", "fev", "oracle"):
        with pytest.warns(RuntimeWarning, match="NaN"):
            result = noise_ceiling(neural, method)
        per = result["ceiling_per_neuroid"].values
        assert np.isnan(per[1]) and np.all(np.isfinite(per[[0, 2]]))
        assert np.isfinite(float(result["ceiling"]))


def test_degenerate_inputs_raise_clear_errors():
    single = _trials_to_assembly(np.random.default_rng(0).standard_normal((1, 20, 3)))
    with pytest.raises(DataFormatError, match="repeated presentations"):
        ceiling_split_half(single)
    with pytest.raises(ConfigError, match="unknown noise-ceiling method"):
        noise_ceiling(HAND, "bogus")
    with pytest.raises(ConfigError, match="jackknife"):
        oracle_correlation(HAND, "bogus")
    with pytest.raises(ConfigError, match="no options"):
        noise_ceiling(HAND, "fev", n_splits=3)
    with pytest.raises(DataFormatError, match="shape"):
        cc_norm(np.zeros((3, 1)), HAND)
    neural = _trials_to_assembly(np.random.default_rng(1).standard_normal((3, 10, 2)))
    prediction = neural.isel(presentation=slice(0, 8))  # 8 of the 10 stimuli, repetition 0
    with pytest.raises(DataFormatError, match="2 missing"):
        cc_norm(prediction.drop_vars("repetition"), neural)


@pytest.fixture(scope="module")
def cowley_v4() -> xr.DataArray:
    if not COWLEY.is_file():
        pytest.skip(f"Cowley et al. 2023 V4 data not found at {COWLEY} (team checkouts and CI only)")
    raw = np.load(COWLEY)  # (neuron, image, repeat slot), NaN in unused slots (readme.txt)
    trials = np.transpose(raw, (2, 1, 0))
    neural = _trials_to_assembly(trials, drop_nan=True)
    neural.attrs["source"] = str(COWLEY)
    return neural


def test_cowley_v4_assembly_drops_empty_repeat_slots(cowley_v4):
    raw = np.load(COWLEY)
    assert raw.shape == (50, 640, 10)
    repeats = np.isfinite(raw[0]).sum(axis=1)
    assert cowley_v4.sizes == {"presentation": int(repeats.sum()), "neuroid": 50}
    assert not np.isnan(cowley_v4.values).any()
    assert repeats.min() == 6 and repeats.max() == 10


def test_cowley_v4_every_ceiling_method(cowley_v4):
    split_half = noise_ceiling(cowley_v4, "split_half")
    cc = noise_ceiling(cowley_v4, "cc_max")
    explainable = noise_ceiling(cowley_v4, "fev")
    jackknife = noise_ceiling(cowley_v4, "oracle")
    conservative = noise_ceiling(cowley_v4, "oracle", oracle_method="conservative")
    results = {
        "split_half": split_half,
        "cc_max": cc,
        "fev": explainable,
        "oracle_jackknife": jackknife,
        "oracle_conservative": conservative,
    }
    for name, result in results.items():
        per = result["ceiling_per_neuroid"].values
        assert per.shape == (50,) and np.all(np.isfinite(per)), name
        assert np.all((per > 0) & (per <= 1)), name
    # Measured (session 210325, 50 neurons, 6-10 repeats): split-half 0.759 +- 0.003, CC_max 0.875,
    # FEV 0.302, jackknife oracle 0.474, conservative oracle 0.629 (medians over neurons).
    assert float(split_half["ceiling"]) == pytest.approx(0.759, abs=0.01)
    assert float(cc["ceiling"]) == pytest.approx(0.875, abs=0.01)
    assert float(explainable["ceiling"]) == pytest.approx(0.302, abs=0.01)
    assert float(jackknife["ceiling"]) == pytest.approx(0.474, abs=0.01)
    assert float(conservative["ceiling"]) == pytest.approx(0.629, abs=0.01)
    # Consistency between conventions: CC_max^2 and the split-half ceiling both estimate the reliability of the
    # repeat mean; the jackknife oracle underestimates and the conservative one overestimates the oracle.
    assert float(np.median(cc["ceiling_per_neuroid"] ** 2)) == pytest.approx(float(split_half["ceiling"]), abs=0.03)
    assert np.all(conservative["ceiling_per_neuroid"].values >= jackknife["ceiling_per_neuroid"].values)
    assert split_half.attrs["ceiling_kind"] == "reliability" and cc.attrs["ceiling_kind"] == "correlation"


def test_cowley_v4_split_half_equals_brain_score_procedure(cowley_v4):
    subset = cowley_v4.isel(neuroid=slice(0, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = ceiling_split_half(subset)
    # With 6-10 repeats every stimulus keeps at least one repetition in both halves of these splits, so the
    # straightforward procedure (which needs that) applies.
    per_split, center, _ = _brain_score_split_half(subset)
    np.testing.assert_allclose(ours["ceiling_per_split"].values, per_split, atol=1e-12)
    assert float(ours["ceiling"]) == pytest.approx(center, abs=1e-12)

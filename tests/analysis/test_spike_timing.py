"""First-spike latency, repeat statistics (jitter, Fano factor) and stimulus decoding: closed-form cases."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from neuromodels import analysis
from neuromodels.analysis.spike_timing import decode_stimulus, first_spike_latency, repeat_statistics
from neuromodels.datasets import spike_trials_to_assembly
from neuromodels.errors import DataFormatError


def test_public_names_are_the_module_functions():
    assert analysis.first_spike_latency is first_spike_latency
    assert analysis.repeat_statistics is repeat_statistics
    assert analysis.decode_stimulus is decode_stimulus


def binned(trials, *, bin_size=0.001, window=(0.0, 0.05)) -> xr.DataArray:
    return spike_trials_to_assembly(trials, window=window, bin_size=bin_size, source="synthetic.mat")


def test_first_spike_latency_is_the_start_of_the_first_bin_with_a_spike():
    trials = [  # [stimulus][cell][trial] spike times in s
        [[np.array([0.0053, 0.02]), np.array([])], [np.array([0.0129]), np.array([0.0])]],
        [[np.array([0.049]), np.array([0.001, 0.0011])], [np.array([]), np.array([0.0305])]],
    ]
    latency = first_spike_latency(binned(trials))
    assert latency.dims == ("presentation", "neuroid") and latency.attrs["units"] == "ms"
    assert latency.attrs["bin_width_ms"] == pytest.approx(1.0) and latency.attrs["window_end_ms"] == pytest.approx(50.0)
    # presentations are (stimulus, trial); neuroids are cells
    expected = [[5.0, 12.0], [np.nan, 0.0], [49.0, np.nan], [1.0, 30.0]]
    np.testing.assert_array_equal(latency.values, expected)
    assert latency["stimulus_id"].values.tolist() == ["0", "0", "1", "1"]
    assert latency["repetition"].values.tolist() == [0, 1, 0, 1]
    coarse = first_spike_latency(binned(trials, bin_size=0.01))  # resolution is the bin width
    np.testing.assert_array_equal(coarse.values, [[0.0, 10.0], [np.nan, 0.0], [40.0, np.nan], [0.0, 30.0]])


def test_first_spike_latency_refuses_unbinned_or_negative_counts():
    trials = [[[np.array([0.01])], [np.array([0.02])]]]
    counts = spike_trials_to_assembly(trials, window=(0.0, 0.05), source="counts.mat")  # no time bins
    with pytest.raises(DataFormatError, match=r"counts\.mat.*time_bin"):
        first_spike_latency(counts)
    negative = binned(trials).copy()
    negative[0, 0, 3] = -1
    with pytest.raises(DataFormatError, match="non-negative"):
        first_spike_latency(negative)


def test_repeat_statistics_mean_variance_jitter_and_fano_factor():
    # (repeat, stimulus, neuroid): stimulus 0 counts 1, 3 (mean 2, var 2, Fano 1); stimulus 1: 0, 0, 0 (Fano NaN)
    cube = np.array(
        [
            [[1.0, 10.0], [0.0, 4.0]],
            [[3.0, 14.0], [0.0, 4.0]],
            [[np.nan, 12.0], [0.0, 4.0]],  # neuroid 0 of stimulus 0 missing in repeat 2
        ]
    )
    stats = repeat_statistics(cube)
    assert stats["mean"].dims == ("stimulus_id", "neuroid")
    np.testing.assert_allclose(stats["mean"].values, [[2.0, 12.0], [0.0, 4.0]])
    np.testing.assert_allclose(stats["variance"].values, [[2.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(stats["std"].values, [[np.sqrt(2.0), 2.0], [0.0, 0.0]])
    np.testing.assert_array_equal(stats["n_repeats"].values, [[2, 3], [3, 3]])
    np.testing.assert_allclose(stats["fano_factor"].values, [[1.0, 4.0 / 12.0], [np.nan, 0.0]])


def test_fano_factor_of_poisson_counts_is_one():
    rng = np.random.default_rng(0)
    counts = rng.poisson(5.0, size=(2000, 3, 2)).astype(float)
    fano = repeat_statistics(counts)["fano_factor"].values
    np.testing.assert_allclose(fano, 1.0, atol=0.1)  # sd of the estimate ~ sqrt(2 / 2000) = 0.03


def test_decoding_separable_responses_is_perfect_and_carries_log2_stimuli_bits():
    rng = np.random.default_rng(1)
    n_reps, n_stim = 6, 8
    cube = np.arange(n_stim)[None, :, None] * 10.0 + rng.normal(0.0, 1.0, (n_reps, n_stim, 2))
    result = decode_stimulus(cube, n_shuffles=5)
    assert result["accuracy"].item() == 1.0
    assert result["information_bits"].item() == pytest.approx(np.log2(n_stim))
    np.testing.assert_array_equal(result["confusion"].values, n_reps * np.eye(n_stim))
    assert result.attrs["chance"] == 1.0 / n_stim
    assert result["information_shuffled_bits"].item() < 0.6 * np.log2(n_stim)


def test_decoding_constant_responses_is_at_chance_with_zero_information():
    cube = np.full((5, 4, 3), 2.0)
    result = decode_stimulus(cube, n_shuffles=0)
    assert result["accuracy"].item() == pytest.approx(0.25)  # every tie split four ways
    assert result["information_bits"].item() == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(result["confusion"].values, np.full((4, 4), 5 / 4))


def test_per_neuroid_decoding_separates_an_informative_from_a_silent_cell():
    n_reps, n_stim = 4, 5
    informative = np.broadcast_to(np.arange(n_stim, dtype=float), (n_reps, n_stim))
    cube = np.stack([informative, np.zeros((n_reps, n_stim))], axis=-1)
    result = decode_stimulus(cube, per_neuroid=True, n_shuffles=0)
    np.testing.assert_allclose(result["accuracy"].values, [1.0, 1.0 / n_stim])
    np.testing.assert_allclose(result["information_bits"].values, [np.log2(n_stim), 0.0], atol=1e-12)
    assert result["confusion"].dims == ("neuroid", "stimulus_id", "decoded_id")


def test_missing_repetitions_are_neither_decoded_nor_averaged():
    cube = np.arange(3, dtype=float)[None, :, None].repeat(4, axis=0)
    cube[1, 2, 0] = np.nan
    result = decode_stimulus(cube, n_shuffles=0)
    assert result["confusion"].values.sum() == 11  # 12 trials, one missing
    assert result["accuracy"].item() == 1.0


def test_population_decoding_reads_time_bins_as_features():
    # the count is the same for both stimuli; only the spike time differs
    early, late = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    cube = np.stack([np.stack([early, late])] * 3)[:, :, None, :]  # (repeat, stimulus, neuroid, time_bin)
    assert decode_stimulus(cube, n_shuffles=0)["accuracy"].item() == 1.0
    assert decode_stimulus(cube.sum(-1), n_shuffles=0)["accuracy"].item() == 0.5
    with pytest.raises(DataFormatError, match="per neuroid"):
        decode_stimulus(cube, per_neuroid=True)


def test_shuffled_information_is_deterministic_for_a_seed():
    rng = np.random.default_rng(2)
    cube = rng.poisson(3.0, (10, 6, 4)).astype(float)
    a = decode_stimulus(cube, n_shuffles=3, seed=7)
    b = decode_stimulus(cube, n_shuffles=3, seed=7)
    assert a["information_shuffled_bits"].item() == b["information_shuffled_bits"].item()

"""The one binning module: left-closed bins in seconds, errors for unsorted/outside spikes."""

from __future__ import annotations

# Exact equality in this file compares integer spike counts: the same on every CPU.
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuromodels.datasets.binning import bin_spike_times, bin_spike_train, n_bins
from neuromodels.errors import DataFormatError


def test_left_closed_bins_and_exact_edges():
    # 0.3 s is the left edge of bin 3 with 0.1 s bins although 0.3 / 0.1 == 2.9999999999999996 in floating point.
    counts, edges, dropped = bin_spike_times([[0.0, 0.1, 0.3, 0.35, 0.399999]], 0.1)
    assert counts[:, 0].tolist() == [1, 1, 0, 3]
    np.testing.assert_allclose(edges, [0.0, 0.1, 0.2, 0.3])
    assert dropped.tolist() == [0]


def test_default_window_ends_after_last_spike():
    counts, edges, _ = bin_spike_times([[0.05], [0.2]], 0.1)
    assert counts.shape == (3, 2)  # last spike at 0.2 s opens bin [0.2, 0.3)
    assert counts[:, 1].tolist() == [0, 0, 1]


def test_unsorted_times_name_the_field():
    with pytest.raises(DataFormatError, match=r"rec\.nwb: field 'unit_7'.*sorted"):
        bin_spike_times([[0.1, 0.3], [0.5, 0.2]], 0.1, file="rec.nwb", names=["unit_3", "unit_7"])


def test_negative_times_are_an_error_unless_window_given():
    with pytest.raises(DataFormatError, match="outside"):
        bin_spike_times([[-0.05, 0.1]], 0.1)
    counts, edges, dropped = bin_spike_times([[-0.05, 0.1]], 0.1, t_start=-0.1, t_stop=0.2)
    assert counts[:, 0].tolist() == [1, 0, 1] and edges[0] == pytest.approx(-0.1)
    assert dropped.tolist() == [0]


def test_explicit_window_clips_and_reports_dropped_spikes():
    counts, _, dropped = bin_spike_times([[0.05, 0.15, 0.25, 0.31]], 0.1, t_start=0.1, t_stop=0.3)
    assert counts[:, 0].tolist() == [1, 1]
    assert dropped.tolist() == [2]
    with pytest.raises(DataFormatError, match="outside"):
        bin_spike_times([[0.05, 0.15]], 0.1, t_start=0.1, t_stop=0.3, outside="error")


@pytest.mark.parametrize("bad", [0.0, -0.01, float("nan")])
def test_bad_bin_size(bad):
    with pytest.raises(DataFormatError, match="bin_size"):
        n_bins(0.0, 1.0, bad)


def test_nan_spike_time_is_an_error():
    with pytest.raises(DataFormatError, match="finite"):
        bin_spike_train([0.1, float("nan")], 0.1, 0.0, 1.0)


@settings(max_examples=300, deadline=None)
@given(
    times_us=st.lists(st.integers(min_value=0, max_value=10_000_000), max_size=200),
    bin_ms=st.integers(min_value=1, max_value=500),
    start_ms=st.integers(min_value=0, max_value=2000),
    length_ms=st.integers(min_value=1, max_value=9000),
)
def test_every_spike_lands_in_the_bin_that_contains_it(times_us, bin_ms, start_ms, length_ms):
    # Spike times on a microsecond grid, so that an exact integer computation is the independent peer,
    # including spikes exactly on bin edges (where naive float division puts them one bin too early).
    times_us = np.sort(np.asarray(times_us, dtype=np.int64))
    bin_size, t_start = bin_ms / 1000, start_ms / 1000
    t_stop = t_start + length_ms / 1000
    counts, edges, dropped = bin_spike_times([times_us / 1e6], bin_size, t_start=t_start, t_stop=t_stop)
    start_us, stop_us, bin_us = start_ms * 1000, (start_ms + length_ms) * 1000, bin_ms * 1000
    inside = times_us[(times_us >= start_us) & (times_us < stop_us)]
    n_expected_bins = -(-length_ms // bin_ms)
    assert counts.shape == (n_expected_bins, 1) and len(edges) == n_expected_bins
    expected = np.bincount((inside - start_us) // bin_us, minlength=n_expected_bins)
    np.testing.assert_array_equal(counts[:, 0], expected)
    assert dropped[0] == times_us.size - inside.size

"""The time axis of :func:`neuromodels.spiking.plots.plot_raster`, with and without a start and a window."""

from __future__ import annotations

import matplotlib.pyplot as plt  # the Agg backend: tests/conftest.py
import numpy as np
import pytest

from neuromodels.errors import ConfigError
from neuromodels.spiking.plots import plot_raster

DT = 1e-3


def _spikes() -> np.ndarray:
    """1 s at 1 ms: neuron 0 fires at steps 100, 799, 800, 950; neuron 1 at step 999 (the last)."""
    spikes = np.zeros((1000, 2))
    spikes[[100, 799, 800, 950], 0] = 1
    spikes[999, 1] = 1
    return spikes


def _drawn(fig) -> np.ndarray:
    return np.asarray(fig.axes[0].collections[0].get_offsets())


def test_the_whole_run_by_default():
    fig = plot_raster(_spikes(), DT)
    np.testing.assert_allclose(_drawn(fig), [[0.1, 0], [0.799, 0], [0.8, 0], [0.95, 0], [0.999, 1]])
    assert fig.axes[0].get_xlim() == pytest.approx((0.0, 1.0))
    plt.close(fig)


@pytest.mark.parametrize("kwargs", [{"window": 0.2}, {"start": 0.8}, {"start": 0.8, "window": 0.2}])
def test_the_last_200_ms_keep_the_runs_clock(kwargs):
    fig = plot_raster(_spikes(), DT, **kwargs)
    np.testing.assert_allclose(_drawn(fig), [[0.8, 0], [0.95, 0], [0.999, 1]])  # step 799 (0.799 s) left out
    assert fig.axes[0].get_xlim() == pytest.approx((0.8, 1.0))
    plt.close(fig)


def test_a_window_inside_the_run():
    fig = plot_raster(_spikes(), DT, start=0.1, window=0.7)  # [0.1, 0.8): steps 100 .. 799
    np.testing.assert_allclose(_drawn(fig), [[0.1, 0], [0.799, 0]])
    assert fig.axes[0].get_xlim() == pytest.approx((0.1, 0.8))
    plt.close(fig)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start": 1.0}, "start"),
        ({"start": -0.1}, "start"),
        ({"window": 0.0}, "window"),
        ({"window": np.nan}, "window"),
    ],
)
def test_a_start_or_window_outside_the_run_is_a_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        plot_raster(_spikes(), DT, **kwargs)

"""F1/F2 amplitudes and the nonlinearity index against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from neuromodels.analysis.harmonics import harmonic_amplitudes, nonlinearity_index
from neuromodels.errors import ConfigError


def test_a_cosine_of_amplitude_a_has_f1_a_and_no_f2():
    n = np.arange(100)
    response = 3.0 + 2.5 * np.cos(2 * np.pi * n / 100 + 0.7)
    f1, f2 = harmonic_amplitudes(response)
    assert f1 == pytest.approx(2.5, rel=1e-12)
    assert f2 == pytest.approx(0.0, abs=1e-12)


def test_full_wave_rectified_sine_is_frequency_doubled_with_the_fourier_series_amplitude():
    # |sin t| = 2/pi - (4/pi) sum_k cos(2 k t) / (4 k^2 - 1): no F1, F2 = 4 / (3 pi), F4 = 4 / (15 pi)
    t = 2 * np.pi * np.arange(4096) / 4096
    f1, f2, f4 = harmonic_amplitudes(np.abs(np.sin(t)), harmonics=(1, 2, 4))
    assert f1 == pytest.approx(0.0, abs=1e-12)
    assert f2 == pytest.approx(4 / (3 * np.pi), rel=1e-5)
    assert f4 == pytest.approx(4 / (15 * np.pi), rel=1e-5)
    # half-wave rectified: F1 = 1/2, F2 = 2 / (3 pi)
    f1, f2 = harmonic_amplitudes(np.clip(np.sin(t), 0, None))
    assert f1 == pytest.approx(0.5, rel=1e-6) and f2 == pytest.approx(2 / (3 * np.pi), rel=1e-5)


def test_xarray_in_xarray_out_with_a_harmonic_dimension():
    t = 2 * np.pi * np.arange(64) / 64
    data = xr.DataArray(np.stack([np.cos(t), 2 * np.cos(2 * t)]), dims=("neuroid", "time_bin"))
    out = harmonic_amplitudes(data)
    assert out.dims == ("neuroid", "harmonic") and out["harmonic"].values.tolist() == [1, 2]
    np.testing.assert_allclose(out.values, [[1, 0], [0, 2]], atol=1e-12)


def test_nonlinearity_index_is_max_f2_over_max_f1_and_nan_without_f1():
    f1 = np.array([[1.0, 4.0, 2.0], [0.0, 0.0, 0.0]])
    f2 = np.array([[3.0, 0.5, 1.0], [1.0, 2.0, 0.0]])
    index = nonlinearity_index(f1, f2)
    assert index[0] == pytest.approx(0.75) and np.isnan(index[1])
    da = nonlinearity_index(
        xr.DataArray(f1, dims=("neuroid", "grating")), xr.DataArray(f2, dims=("neuroid", "grating"))
    )
    assert da.dims == ("neuroid",) and float(da[0]) == pytest.approx(0.75)


def test_harmonics_beyond_nyquist_or_zero_are_refused():
    with pytest.raises(ConfigError, match="harmonics"):
        harmonic_amplitudes(np.zeros(4), harmonics=(2,))
    with pytest.raises(ConfigError, match="harmonics"):
        harmonic_amplitudes(np.zeros(8), harmonics=(0,))

"""Sample-quality measures: closed forms and scipy peers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from neuromodels.analysis.sample_quality import (
    energy_distance,
    gaussian_baseline,
    mmd,
    nearest_neighbour_distances,
    parzen_log_likelihood,
    select_parzen_bandwidth,
)
from neuromodels.errors import ConfigError


def test_mmd_closed_form_for_single_points():
    # one point each: k(x,x) + k(y,y) - 2 k(x,y) summed over the kernels
    d = 1.3
    value = mmd([[0.0, 0.0]], [[d, 0.0]], bandwidths=[0.5, 2.0], biased=True)
    expected = sum(2 - 2 * np.exp(-d * d / (2 * h * h)) for h in (0.5, 2.0))
    assert value == pytest.approx(expected, rel=1e-12)


def test_unbiased_mmd_equals_a_direct_double_loop():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 2)), rng.normal(1.0, size=(5, 2))

    def k(a, b):
        return np.exp(-np.sum((a - b) ** 2) / (2 * 0.8**2))

    xx = sum(k(a, b) for i, a in enumerate(x) for j, b in enumerate(x) if i != j) / (7 * 6)
    yy = sum(k(a, b) for i, a in enumerate(y) for j, b in enumerate(y) if i != j) / (5 * 4)
    xy = sum(k(a, b) for a in x for b in y) / 35
    assert mmd(x, y, bandwidths=[0.8]) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)
    assert mmd(x, x[::-1], bandwidths=[0.8], biased=True) == pytest.approx(0.0, abs=1e-12)


def test_energy_distance_matches_scipy_in_one_dimension():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=40), rng.normal(0.5, 2.0, size=30)
    # scipy's energy_distance is the square root of 2E|X-Y| - E|X-X'| - E|Y-Y'| (V-statistic)
    assert np.sqrt(energy_distance(x[:, None], y[:, None])) == pytest.approx(stats.energy_distance(x, y), rel=1e-9)


def test_parzen_with_one_centre_is_a_gaussian_density_and_bandwidth_selection():
    rng = np.random.default_rng(2)
    data = rng.normal(size=(9, 3))
    centre = np.array([[0.2, -0.1, 0.4]])
    ours = parzen_log_likelihood(centre, data, 0.7)
    np.testing.assert_allclose(ours, stats.norm.logpdf(data, centre, 0.7).sum(1), rtol=1e-12)
    samples = rng.normal(size=(400, 1))
    valid = rng.normal(size=(400, 1))
    chosen = select_parzen_bandwidth(samples, valid, grid=[0.01, 0.3, 3.0])
    assert chosen == 0.3
    with pytest.raises(ConfigError, match="bandwidth"):
        parzen_log_likelihood(samples, valid, 0.0)


def test_nearest_neighbour_distances():
    train = np.array([[0.0, 0.0], [3.0, 4.0]])
    np.testing.assert_allclose(
        nearest_neighbour_distances([[0.0, 1.0], [3.0, 4.0], [6.0, 8.0]], train), [1.0, 0.0, 5.0]
    )


def test_gaussian_baseline_equals_scipy_multivariate_normal():
    rng = np.random.default_rng(3)
    data = rng.normal(size=(500, 3)) @ np.array([[1.0, 0.3, 0.0], [0.0, 1.0, 0.5], [0.0, 0.0, 0.7]])
    model = gaussian_baseline(data)
    peer = stats.multivariate_normal(data.mean(0), np.cov(data, rowvar=False, bias=True) + 1e-6 * np.eye(3))
    np.testing.assert_allclose(model.log_prob(data[:20]), peer.logpdf(data[:20]), rtol=1e-10)
    assert model.n_parameters == 3 + 6

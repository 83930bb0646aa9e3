"""Quality of generated samples: distances between point sets, Parzen likelihoods, copies of the training set.

Pure NumPy functions of ``(n, dim)`` arrays (samples, data), used to compare Variational Walkback with its
baselines (:mod:`neuromodels.fitting.walkback`, :mod:`neuromodels.diffusion`):

* :func:`mmd`: squared maximum mean discrepancy with a Gaussian kernel (Gretton et al. 2012, JMLR, Eq. 3: the
  unbiased U-statistic; ``biased=True`` gives the V-statistic, Eq. 5), summed over a few bandwidths.
* :func:`energy_distance`: ``2 E|X-Y| - E|X-X'| - E|Y-Y'|`` (Szekely & Rizzo 2013), V-statistic.
* :func:`parzen_log_likelihood` with :func:`select_parzen_bandwidth`: the Gaussian Parzen-window estimate of
  Breuleux et al. (2011) used by the GAN and Walkback papers, bandwidth chosen on validation data.
* :func:`nearest_neighbour_distances`: each sample's Euclidean distance to its nearest training point.
* :func:`gaussian_baseline`: the Gaussian fitted to the data (full covariance), its log-likelihood and samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neuromodels.errors import ConfigError

__all__ = [
    "squared_distances",
    "mmd",
    "median_bandwidth",
    "energy_distance",
    "parzen_log_likelihood",
    "select_parzen_bandwidth",
    "nearest_neighbour_distances",
    "gaussian_baseline",
    "GaussianBaseline",
]


def _points(x: object, name: str) -> np.ndarray:
    array = np.asarray(x, dtype=np.float64)
    if array.ndim != 2 or len(array) < 1:
        raise ConfigError(f"{name} must be a non-empty (n, dim) array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ConfigError(f"{name} contains NaN or inf")
    return array


def squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``|x_i - y_j|^2`` ``(n, m)``, clipped at 0 against rounding."""
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return np.maximum(d, 0.0)


def median_bandwidth(x: np.ndarray, y: np.ndarray) -> float:
    """The median pairwise distance of the pooled points (the usual MMD bandwidth heuristic)."""
    pooled = np.concatenate([_points(x, "x"), _points(y, "y")])
    d = np.sqrt(squared_distances(pooled, pooled))
    return float(np.median(d[np.triu_indices(len(pooled), 1)]))


def mmd(x: object, y: object, *, bandwidths: Sequence[float] | None = None, biased: bool = False) -> float:
    """Squared MMD between the point sets ``x`` and ``y`` with ``k = sum_h exp(-|a - b|^2 / (2 h^2))``.

    ``bandwidths``: the kernel widths ``h``; ``None`` uses the median heuristic times (0.25, 0.5, 1, 2).
    """
    x, y = _points(x, "x"), _points(y, "y")
    if bandwidths is None:
        median = median_bandwidth(x, y)
        bandwidths = [median * f for f in (0.25, 0.5, 1.0, 2.0)]
    widths = np.asarray(bandwidths, dtype=np.float64)
    if widths.ndim != 1 or len(widths) == 0 or not (widths > 0).all():
        raise ConfigError(f"bandwidths must be positive numbers, got {bandwidths!r}")

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d = squared_distances(a, b)
        return sum(np.exp(-d / (2 * h * h)) for h in widths)

    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    n, m = len(x), len(y)
    if biased:
        return float(kxx.mean() + kyy.mean() - 2 * kxy.mean())
    if n < 2 or m < 2:
        raise ConfigError("the unbiased MMD needs at least 2 points in each set")
    xx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    yy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(xx + yy - 2 * kxy.mean())


def energy_distance(x: object, y: object) -> float:
    """``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` over all pairs (V-statistic), Euclidean norms; >= 0."""
    x, y = _points(x, "x"), _points(y, "y")
    between = np.sqrt(squared_distances(x, y)).mean()
    within_x = np.sqrt(squared_distances(x, x)).mean()
    within_y = np.sqrt(squared_distances(y, y)).mean()
    return float(2 * between - within_x - within_y)


def parzen_log_likelihood(samples: object, data: object, bandwidth: float, *, chunk: int = 256) -> np.ndarray:
    """Per-point ``log (1/n) sum_i N(data_j; samples_i, bandwidth^2 I)`` ``(m,)`` in nats."""
    samples, data = _points(samples, "samples"), _points(data, "data")
    if not bandwidth > 0:
        raise ConfigError(f"bandwidth must be > 0, got {bandwidth!r}")
    dim = samples.shape[1]
    out = np.empty(len(data))
    const = -np.log(len(samples)) - 0.5 * dim * np.log(2 * np.pi * bandwidth**2)
    for start in range(0, len(data), chunk):
        d = -squared_distances(data[start : start + chunk], samples) / (2 * bandwidth**2)
        top = d.max(1, keepdims=True)
        out[start : start + chunk] = const + top[:, 0] + np.log(np.exp(d - top).sum(1))
    return out


def select_parzen_bandwidth(samples: object, valid: object, grid: Sequence[float] | None = None) -> float:
    """The bandwidth in ``grid`` (default ``logspace(-2, 0, 21)``) maximising the mean validation Parzen
    log-likelihood."""
    grid = np.logspace(-2, 0, 21) if grid is None else np.asarray(grid, dtype=np.float64)
    scores = [parzen_log_likelihood(samples, valid, float(h)).mean() for h in grid]
    return float(grid[int(np.argmax(scores))])


def nearest_neighbour_distances(samples: object, train: object, *, chunk: int = 512) -> np.ndarray:
    """Euclidean distance of each sample to its nearest training point ``(n,)``."""
    samples, train = _points(samples, "samples"), _points(train, "train")
    out = np.empty(len(samples))
    for start in range(0, len(samples), chunk):
        out[start : start + chunk] = np.sqrt(squared_distances(samples[start : start + chunk], train).min(1))
    return out


class GaussianBaseline:
    """A full-covariance Gaussian fitted to data (maximum likelihood): ``log_prob`` and ``sample``."""

    def __init__(self, data: object, *, ridge: float = 1e-6) -> None:
        data = _points(data, "data")
        self.mean_ = data.mean(0)
        cov = np.atleast_2d(np.cov(data, rowvar=False, bias=True)) + ridge * np.eye(data.shape[1])
        self.cov_ = cov
        self._chol = np.linalg.cholesky(cov)

    @property
    def n_parameters(self) -> int:
        d = len(self.mean_)
        return d + d * (d + 1) // 2

    def log_prob(self, x: object) -> np.ndarray:
        x = _points(x, "x")
        z = np.linalg.solve(self._chol, (x - self.mean_).T)
        log_det = 2 * np.log(np.diag(self._chol)).sum()
        return -0.5 * ((z * z).sum(0) + log_det + len(self.mean_) * np.log(2 * np.pi))

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return self.mean_ + rng.normal(size=(n, len(self.mean_))) @ self._chol.T


def gaussian_baseline(data: object) -> GaussianBaseline:
    """:class:`GaussianBaseline` fitted to ``data``."""
    return GaussianBaseline(data)

"""Random wide torch networks follow the mean-field length and correlation maps within sampling error.

Tolerances come from the sampling theory, not from the implementation: for Gaussian pre-activations the mean of
h_i^2 over N units has standard deviation q sqrt(2/N) and a sample correlation over N pairs has standard deviation
(1 - c^2)/sqrt(N). Fluctuations injected at one layer pass to the next with the slope of the map (at most
max(chi_c, exp(-1/xi_q)) near the fixed point), so they accumulate with variance inflated by 1/(1 - s^2). The test
allows 5 such standard errors of the mean over the independently drawn networks (or 5 measured standard errors,
whichever is larger, since the measured spread also includes finite-width effects on the inputs of each layer).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neuromodels import fixed_points as fp
from neuromodels.analysis.theory import meanfield as mf
from neuromodels.analysis.theory.empirical import gradient_norms, measure_propagation, propagate
from neuromodels.errors import ConfigError
from neuromodels.init import random_mlp

WIDTH, DEPTH, NETWORKS = 1000, 8, 4


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize(
    ("sigma_w2", "weights", "rho", "width"),
    [(1.5, "gaussian", 1.0, WIDTH), (2.5, "orthogonal", 1.0, 600), (2.0, "gaussian", 0.8, WIDTH)],
)
def test_measured_length_and_correlation_follow_the_maps(sigma_w2, weights, rho, width):
    sigma_b2 = 0.05
    ds = measure_propagation(
        sigma_w2,
        sigma_b2,
        "tanh",
        depth=DEPTH,
        width=width,
        q0=1.0,
        c0=0.5,
        n_networks=NETWORKS,
        weights=weights,
        rho=rho,
        seed=11,
    )
    scales = mf.depth_scales(sigma_w2, sigma_b2, "tanh", rho=rho)
    s = min(0.95, max(scales["chi_c"], math.exp(-1 / scales["xi_q"])))
    inflation = 1 / math.sqrt(1 - s**2)
    q_th, c_th = ds["q_theory"].values, ds["c_theory"].values
    q_sd = np.maximum(q_th * math.sqrt(2 / width) * inflation, ds["q_std"].values)
    c_sd = np.maximum((1 - c_th**2) / math.sqrt(width) * inflation, ds["c_std"].values)
    q_err = np.abs(ds["q_mean"].values - q_th) / (q_sd / math.sqrt(NETWORKS))
    c_err = np.abs(ds["c_mean"].values - c_th) / (c_sd / math.sqrt(NETWORKS))
    assert q_err.max() < 5, q_err
    assert c_err.max() < 5, c_err
    # the theory is not trivially satisfied: the lengths moved from q^1 towards q* by many standard errors
    moved = abs(q_th[0] - q_th[-1]) / (q_sd[-1] / math.sqrt(NETWORKS))
    assert moved > 10
    # gradients: log(|delta_1|^2 / |delta_L|^2) = sum of log chi_1 per layer, error ~ sqrt(2 L / N) per network
    log_ratio = math.log(ds["grad_mean"].values[0] / ds["grad_mean"].values[-1])
    expected = math.log(ds["grad_theory"].values[0] / ds["grad_theory"].values[-1])
    assert abs(log_ratio - expected) < 5 * math.sqrt(2 * DEPTH / width) / math.sqrt(NETWORKS)


def test_dropout_network_correlation_stays_below_one():
    ds = measure_propagation(
        1.76095, 0.05, "tanh", depth=DEPTH, width=500, c0=0.99, n_networks=2, rho=0.9, seed=0, gradients=False
    )
    # without dropout c = 0.99 would stay near 1 at criticality; dropout pulls it to c* < 1
    c_star = fp.c_star(1.76095, 0.05, "tanh", rho=0.9)
    assert c_star < 0.9
    assert ds["c_mean"].values[-1] < 0.95
    assert ds["c_theory"].values[-1] == pytest.approx(ds["c_mean"].values[-1], abs=0.05)


def test_propagate_and_gradient_norms_shapes():
    model = random_mlp(50, 4, 1.5, 0.1, "relu", weights="gaussian", input_dim=20, seed=0, dtype=torch.float32)
    x = torch.randn(3, 20, generator=torch.Generator().manual_seed(0))
    pre = propagate(model, x)
    assert [tuple(h.shape) for h in pre] == [(3, 50)] * 4
    norms = gradient_norms(model, x)
    assert norms.shape == (4,) and np.all(norms > 0)
    # seeded: the same seed gives the same network
    again = random_mlp(50, 4, 1.5, 0.1, "relu", weights="gaussian", input_dim=20, seed=0, dtype=torch.float32)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))  # exact: same seeded code


def test_bad_arguments():
    with pytest.raises(ConfigError, match="width"):
        random_mlp(0, 3, 1.0, 0.0)
    with pytest.raises(ConfigError, match="rho"):
        random_mlp(10, 3, 1.0, 0.0, rho=0.0)
    with pytest.raises(ConfigError, match="n_networks"):
        measure_propagation(1.0, 0.0, n_networks=0)

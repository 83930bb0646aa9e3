"""Initialisers: orthogonality, variances, delta-orthogonal kernels, critical parameters preserving q*."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neuromodels.errors import ConfigError
from neuromodels.init import (
    bias_,
    critical_init_,
    critical_parameters,
    delta_orthogonal_,
    gaussian_,
    init_network_,
    orthogonal_,
    random_mlp,
    random_orthogonal,
)


def test_orthogonal_square_has_all_singular_values_sigma_w():
    w = torch.empty(300, 300, dtype=torch.float64)
    orthogonal_(w, sigma_w2=1.7, seed=0)
    s = torch.linalg.svdvals(w)
    np.testing.assert_allclose(s.numpy(), math.sqrt(1.7), rtol=1e-12)
    np.testing.assert_allclose((w.T @ w).numpy(), 1.7 * np.eye(300), atol=1e-12)
    # entry variance sigma_w2 / fan_in, exactly (sum of squares of an orthogonal matrix is N)
    assert float((w**2).mean()) == pytest.approx(1.7 / 300, rel=1e-12)


@pytest.mark.parametrize(("rows", "cols"), [(200, 100), (100, 200)])
def test_orthogonal_rectangular_keeps_fan_in_variance(rows, cols):
    w = torch.empty(rows, cols, dtype=torch.float64)
    orthogonal_(w, sigma_w2=2.0, seed=1)
    assert float((w**2).mean()) == pytest.approx(2.0 / cols, rel=1e-12)
    gram = (w.T @ w) if rows >= cols else (w @ w.T)
    scale = 2.0 * max(1.0, rows / cols)
    np.testing.assert_allclose(gram.numpy(), scale * np.eye(min(rows, cols)), atol=1e-12)


def test_random_orthogonal_is_haar_first_moments():
    # Haar: E[Q_11] = 0 and E[Q_11^2] = 1/N; the un-corrected QR has a sign bias (E[Q_11] != 0)
    g = torch.Generator().manual_seed(3)
    first = np.array([float(random_orthogonal(8, 8, g)[0, 0]) for _ in range(3000)])
    assert abs(first.mean()) < 4 * math.sqrt(1 / 8 / 3000)
    assert (first**2).mean() == pytest.approx(1 / 8, rel=0.1)


def test_gaussian_variance_sigma_w2_over_fan_in():
    w = torch.empty(400, 50, 3, 3, dtype=torch.float64)
    gaussian_(w, sigma_w2=1.5, seed=0)
    fan_in = 50 * 9
    n = w.numel()
    # the sample variance of n Gaussians has relative std sqrt(2/n)
    assert float(w.var()) == pytest.approx(1.5 / fan_in, rel=5 * math.sqrt(2 / n))
    assert abs(float(w.mean())) < 5 * math.sqrt(1.5 / fan_in / n)


def test_delta_orthogonal_central_tap_orthogonal_rest_zero():
    w = torch.empty(16, 16, 3, 5, dtype=torch.float64)
    delta_orthogonal_(w, sigma_w2=2.0, seed=0)
    centre = w[:, :, 1, 2]
    np.testing.assert_allclose((centre.T @ centre).numpy(), 2.0 * np.eye(16), atol=1e-12)
    mask = torch.ones_like(w, dtype=torch.bool)
    mask[:, :, 1, 2] = False
    assert torch.count_nonzero(w[mask]) == 0
    # a circularly padded conv with this kernel is an orthogonal map times sigma_w: norms scale by sqrt(2)
    conv = torch.nn.Conv2d(16, 16, (3, 5), padding=(1, 2), padding_mode="circular", bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(w)
    x = torch.randn(4, 16, 9, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(conv(x).norm().item(), math.sqrt(2.0) * x.norm().item(), rtol=1e-12)


def test_bias_variance_and_zero():
    b = torch.empty(20000, dtype=torch.float64)
    bias_(b, 0.05, seed=0)
    assert float(b.var()) == pytest.approx(0.05, rel=5 * math.sqrt(2 / 20000))
    bias_(b, 0.0, seed=0)
    assert torch.count_nonzero(b) == 0


def test_init_network_is_seeded_and_covers_linear_and_conv():
    def make():
        return torch.nn.Sequential(
            torch.nn.Conv1d(3, 8, 3), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(8 * 6, 10)
        )

    a, b = make(), make()
    init_network_(a, 1.5, 0.1, seed=7)
    init_network_(b, 1.5, 0.1, seed=7)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)  # exact: the same seeded draws by the same code
    assert torch.count_nonzero(a[0].weight[:, :, 0]) == 0  # delta-orthogonal conv
    with pytest.raises(ConfigError, match="weights"):
        init_network_(a, 1.0, weights="uniform")
    with pytest.raises(ConfigError, match="sigma_w2"):
        init_network_(a, -1.0)


def test_critical_parameters_match_meanfield_line():
    sw, sb = critical_parameters(0.570047881640765, "tanh")
    assert sw == pytest.approx(1.76095, abs=1e-5) and sb == pytest.approx(0.05, abs=1e-6)
    assert critical_parameters(0.5, "relu") == (2.0, 0.0)


@pytest.mark.parametrize("weights", ["orthogonal", "gaussian"])
def test_q_star_preserved_through_depth_at_critical_point(weights):
    torch.manual_seed(0)
    q_target, width, depth = 0.05, 400, 20
    layers = []
    for _ in range(depth):
        layers += [torch.nn.Linear(width, width), torch.nn.Tanh()]
    model = torch.nn.Sequential(*layers).double()
    sw, sb = critical_init_(model, q_star=q_target, phi="tanh", weights=weights, seed=1)
    # input at the fixed point: first-layer pre-activation length sigma_w2 |x|^2/N + sigma_b2 = q*
    x0 = (q_target - sb) / sw
    x = torch.randn(4, width, dtype=torch.float64, generator=torch.Generator().manual_seed(20260))  # not the init seed
    x = x / x.norm(dim=1, keepdim=True) * math.sqrt(x0 * width)
    lengths = []
    h = x
    with torch.no_grad():
        for module in model:
            h = module(h)
            if isinstance(module, torch.nn.Linear):
                lengths.append(float((h**2).mean()))
    lengths = np.array(lengths)
    # per-layer sampling std of the mean of h^2 over N units x 4 inputs is q sqrt(2 / (4 N)); at the critical
    # point the length map is contracting (xi_q finite), so the deviations do not accumulate much
    tol = 5 * q_target * math.sqrt(2 / (4 * width)) * 3
    assert np.max(np.abs(lengths - q_target)) < tol, (lengths, tol)
    # off the critical line (sigma_w2 doubled) the length moves away from q_target by far more than tol
    init_network_(model, 2 * sw, sb, weights=weights, seed=1)
    with torch.no_grad():
        h = model(x)
    assert abs(float((h**2).mean()) - q_target) > 0.2 > 5 * tol


# ---------------------------------------------------------------------------------------------------------------
# random_mlp: the one builder of random networks for the theory (orthogonal by default, Gaussian when asked)


def test_random_mlp_default_weights_are_scaled_orthogonal():
    model = random_mlp(200, 3, 1.7, 0.3, "tanh", seed=0)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3 and all(m.weight.dtype == torch.float64 for m in linears)
    for layer in linears:
        w = layer.weight.detach()
        # W W^T = sigma_w2 I exactly: every singular value is sigma_w
        np.testing.assert_allclose((w @ w.T).numpy(), 1.7 * np.eye(200), atol=1e-12)
    biases = torch.cat([m.bias.detach() for m in linears])
    assert float(biases.var()) == pytest.approx(0.3, rel=5 * math.sqrt(2 / biases.numel()))
    assert not model.training  # no dropout: eval mode


def test_random_mlp_gaussian_weights_have_variance_sigma_w2_over_fan_in():
    model = random_mlp(300, 2, 1.5, 0.0, "relu", weights="gaussian", input_dim=120, seed=1)
    first, second = (m.weight.detach() for m in model if isinstance(m, torch.nn.Linear))
    for w, fan_in in ((first, 120), (second, 300)):
        n = w.numel()
        assert float(w.var()) == pytest.approx(1.5 / fan_in, rel=5 * math.sqrt(2 / n))
    # Gaussian, not orthogonal: the Gram matrix of a square Gaussian layer is far from sigma_w2 I
    gram = (second @ second.T).numpy()
    assert np.abs(gram - 1.5 * np.eye(300)).max() > 0.1
    assert all(float(m.bias.detach().abs().max()) == 0.0 for m in model if isinstance(m, torch.nn.Linear))


def test_random_mlp_is_init_network_on_the_same_seed():
    """The builder draws every layer through init_network_: the same seed gives bit-identical parameters."""
    model = random_mlp(40, 3, 1.2, 0.1, "tanh", weights="orthogonal", seed=7)
    copy = torch.nn.Sequential(*[torch.nn.Linear(40, 40, dtype=torch.float64) for _ in range(3)])
    init_network_(copy, 1.2, 0.1, weights="orthogonal", seed=7)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), copy.parameters()))  # exact: same operations


@pytest.mark.parametrize("weights", ["orthogonal", "gaussian"])
def test_random_mlp_readout_is_drawn_after_the_hidden_layers(weights):
    """With ``readout`` the hidden layers are those of the same call without it (the read-out is drawn last from
    the same generator), and the read-out has the sigma_w2 / fan_in scale of the rest."""
    hidden = random_mlp(300, 2, 1.5, 0.2, "tanh", weights=weights, input_dim=50, seed=3)
    full = random_mlp(300, 2, 1.5, 0.2, "tanh", weights=weights, input_dim=50, readout=200, seed=3)
    assert len(full) == len(hidden) + 1 and full[-1].weight.shape == (200, 300)
    assert all(torch.equal(a, b) for a, b in zip(hidden.parameters(), full.parameters()))  # exact: same draws
    assert full(torch.zeros(4, 50, dtype=torch.float64)).shape == (4, 200)
    # rows of a (200, 300) read-out: squared norm sigma_w2 * 300 / 300 each (orthogonal: exactly)
    row_norms = full[-1].weight.detach().square().sum(1)
    assert float(row_norms.mean()) == pytest.approx(1.5, rel=0.05)
    with pytest.raises(ConfigError, match="readout"):
        random_mlp(5, 2, 1.0, readout=0)


def test_random_mlp_dropout_and_bad_arguments():
    model = random_mlp(10, 2, 1.0, 0.0, "tanh", rho=0.8, seed=0)
    assert model.training and sum(isinstance(m, torch.nn.Dropout) for m in model) == 2
    with pytest.raises(ConfigError, match="width"):
        random_mlp(0, 2, 1.0)
    with pytest.raises(ConfigError, match="weights"):
        random_mlp(5, 2, 1.0, weights="uniform")

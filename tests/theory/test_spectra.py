"""Jacobian spectra: empirical (torch) against closed forms and the free-probability density.

Reference values are computed here independently of the implementation: Fuss-Catalan moments from
binomials, the Fuss-Catalan edge (L+1)^(L+1)/L^L, ReLU's D^2 ~ Bernoulli(1/2) moments, and exact singular values
of products of orthogonal matrices.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from neuromodels.analysis.theory import freeprob, spectra  # noqa: E402
from neuromodels.errors import ConfigError  # noqa: E402


def test_linear_orthogonal_network_has_all_singular_values_one():
    model = spectra.random_mlp(60, 12, sigma_w2=1.0, sigma_b2=0.3, phi="linear", weights="orthogonal", seed=3)
    x = torch.randn(3, 60, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sv = spectra.jacobian_singular_values(model, x)
    assert sv.shape == (3, 60)
    np.testing.assert_allclose(sv, 1.0, atol=1e-12)


def test_closed_product_equals_autograd_jacobian():
    model = spectra.random_mlp(7, 4, sigma_w2=1.7, sigma_b2=0.1, phi="tanh", weights="gaussian", seed=1)
    x = torch.randn(5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
    closed = spectra.mlp_jacobian(model, x)
    auto = spectra.network_jacobian(model, x)
    np.testing.assert_allclose(closed.numpy(), auto.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(spectra.jacobian_singular_values(model, x, "product"),
                               spectra.jacobian_singular_values(model, x, "autograd"), rtol=1e-10, atol=1e-14)


def _fuss_catalan(depth: int, k: int) -> float:
    return math.comb((depth + 1) * k, k) / (depth * k + 1)


@pytest.mark.parametrize("depth", [1, 3, 8])
def test_free_probability_linear_gaussian_is_fuss_catalan(depth):
    edge = freeprob.jacobian_spectral_edge("linear", depth, 1.0, 1.0, "gaussian")
    assert edge == pytest.approx((depth + 1) ** (depth + 1) / depth**depth, rel=1e-9)
    # density of log(lambda) on a grid that is fine near the square-root edge
    top = math.log(edge)
    s = np.concatenate([np.linspace(top - 15 * (depth + 1), top - 4, 1500, endpoint=False),
                        np.linspace(top - 4, top - 0.05, 2000, endpoint=False),
                        top + np.log1p(-np.geomspace(0.05, 1e-9, 1000))])
    log_density = freeprob.jjt_log_density(s, "linear", depth, 1.0, 1.0, "gaussian")
    x = np.exp(s)
    for k in (1, 2, 3):
        moment = np.trapezoid(log_density * x**k, s)
        assert moment == pytest.approx(_fuss_catalan(depth, k), rel=2e-3), k
    assert np.trapezoid(log_density, s) == pytest.approx(1.0, abs=2e-3 if depth < 8 else 3e-2)


def test_empirical_linear_gaussian_moments_are_fuss_catalan():
    depth = 3
    eig = spectra.empirical_jjt_eigenvalues("linear", depth, 300, 1.0, 0.0, 1.0, "gaussian", draws=4,
                                            progress=False)
    for k, tol in ((1, 0.02), (2, 0.04), (3, 0.08)):
        assert np.mean(eig**k) == pytest.approx(_fuss_catalan(depth, k), rel=tol), k
    assert eig.max() < 1.05 * (depth + 1) ** (depth + 1) / depth**depth


def test_closed_form_moments_agree_with_density():
    q, depth = 0.25, 8
    sw2 = freeprob.critical_sigma_w2("tanh", q)
    spec = spectra.jacobian_spectrum("tanh", depth, q_star=q, weights="orthogonal", points=1500)
    s, ld = spec["log_eigenvalue"].values, spec["log_density"].values
    x = np.exp(s)
    mean = np.trapezoid(ld * x, s)
    var = np.trapezoid(ld * x * x, s) - mean**2
    m = freeprob.jacobian_moments("tanh", depth, sw2, q, "orthogonal")
    assert m["mean"] == pytest.approx(1.0, abs=1e-9)  # critical
    assert mean == pytest.approx(m["mean"], rel=2e-3)
    assert var == pytest.approx(m["variance"], rel=1e-2)
    # an independent quadrature of mu_2/mu_1^2 for tanh at q*=0.25 (scipy quad)
    from scipy.integrate import quad

    def expect(f):
        return quad(lambda u: f(u) * math.exp(-u * u / 2) / math.sqrt(2 * math.pi), -12, 12, limit=200)[0]

    mu1 = expect(lambda u: math.cosh(math.sqrt(q) * u) ** -4)
    mu2 = expect(lambda u: math.cosh(math.sqrt(q) * u) ** -8)
    assert m["variance"] == pytest.approx(depth * (mu2 / mu1**2 - 1), rel=1e-8)
    assert sw2 == pytest.approx(1 / mu1, rel=1e-10)


@pytest.mark.parametrize("weights", ["orthogonal", "gaussian"])
def test_density_matches_empirical_spectrum_ks(weights):
    """Depth 16, width 400, tanh at criticality with q* = 1/64 (sigma_w2 = 1.03056, sigma_b2 = 4.65e-6)."""
    q = 1 / 64
    spec = spectra.jacobian_spectrum("tanh", 16, q_star=q, weights=weights, points=600)
    a = spec.attrs
    assert a["sigma_w2"] == pytest.approx(1.030558, rel=1e-5)
    eig = spectra.empirical_jjt_eigenvalues("tanh", 16, 400, a["sigma_w2"], a["sigma_b2"], q, weights, draws=4,
                                            inputs_per_draw=4, seed=0, progress=False)
    assert len(eig) == 16 * 400
    assert spectra.ks_distance(eig, spec) < 0.02


@pytest.mark.parametrize("weights,slope", [("orthogonal", 1.0), ("gaussian", 2.0)])
def test_relu_variance_grows_linearly_with_depth(weights, slope):
    """ReLU at criticality (sigma_w2 = 2): D^2 ~ Bernoulli(1/2), so mu_2/mu_1^2 = 2 and var = L (1 + [Gaussian]).

    Each Jacobian's eigenvalues are divided by their own mean before taking the variance: at width 300 the
    overall scale of J J^T fluctuates from network to network by O(sqrt(L/N)) (the fraction of active ReLUs
    per layer is Binomial(N, 1/2)/N), a finite-width effect absent from the N -> infinity theory; pooling the raw
    eigenvalues inflates the variance by ~10-25% at these depths.
    """
    depths = np.array([2, 4, 8])
    measured = []
    for depth in depths:
        ratios = []
        for draw in range(6):
            eig = spectra.empirical_jjt_eigenvalues("relu", int(depth), 300, 2.0, 0.0, 1.0, weights, draws=1,
                                                    seed=100 * int(depth) + draw, progress=False)
            ratios.append(eig.var() / eig.mean() ** 2)
        measured.append(np.mean(ratios))
        theory = freeprob.jacobian_moments("relu", int(depth), 2.0, 1.0, weights)
        assert theory["mean"] == pytest.approx(1.0)
        assert theory["variance"] == pytest.approx(slope * depth)
    measured = np.array(measured)
    assert np.polyfit(depths, measured, 1)[0] == pytest.approx(slope, rel=0.1)
    np.testing.assert_allclose(measured / depths, slope, rtol=0.1)


def test_universal_limit_is_approached_as_depth_grows():
    """Orthogonal networks at criticality with q* scaled so that L (mu_2/mu_1^2 - 1) = 1 (Pennington et al. 2018):
    tanh tends to the smooth class S = exp(-t), hard-tanh to the Bernoulli class S = exp(-t/(1+t))."""
    s = np.linspace(-4, 2, 400)
    limit = freeprob.universal_log_density(s, 1.0, "smooth")
    assert np.trapezoid(limit, s) == pytest.approx(1.0, abs=5e-3)
    distances = []
    for depth in (32, 256, 4096, 65536):
        q = freeprob.universal_variance_q_star("tanh", depth, 1.0)
        sw2 = freeprob.critical_sigma_w2("tanh", q)
        finite = freeprob.jjt_log_density(s, "tanh", depth, sw2, q, "orthogonal")
        distances.append(np.trapezoid(np.abs(finite - limit), s))
    # the first neglected term of L log S_{D^2} is O(L q*^3) = O(q*) = O(L^{-1/2}): convergence is slow
    assert distances[0] > distances[1] > distances[2] > distances[3]
    assert distances[2] < 0.05 and distances[3] < 0.015
    # hard-tanh (Bernoulli D^2, P(D^2=1) = p -> 1, sigma_w2 = 1/p) approaches the other class, and faster (O(1/L))
    bernoulli = freeprob.universal_log_density(s, 1.0, "bernoulli")
    assert np.trapezoid(np.abs(bernoulli - limit), s) > 0.5
    gaps = []
    for depth in (16, 256):
        q = freeprob.universal_variance_q_star("hard_tanh", depth, 1.0)
        sw2 = freeprob.critical_sigma_w2("hard_tanh", q)
        assert sw2 == pytest.approx(1 / math.erf(1 / math.sqrt(2 * q)), rel=1e-12)
        finite = freeprob.jjt_log_density(s, "hard_tanh", depth, sw2, q, "orthogonal")
        gaps.append(np.trapezoid(np.abs(finite - bernoulli), s))
    assert gaps[0] > 0.05 and gaps[1] < 0.02


def test_relu_orthogonal_depth_two_is_the_arcsine_law():
    """J J^T = 4 P2 (O P1 O^T) P2 with free projections of trace 1/2: an atom 1/2 at 0 and the arcsine density
    1 / (2 pi sqrt(x (4 - x))) on (0, 4)."""
    x = np.linspace(0.01, 3.99, 25)
    density = freeprob.jjt_density(x, "relu", 2, 2.0, 1.0, "orthogonal")
    np.testing.assert_allclose(density, 1 / (2 * np.pi * np.sqrt(x * (4 - x))), rtol=1e-6)
    spec = spectra.jacobian_spectrum("relu", 2, sigma_w2=2.0, sigma_b2=0.0, q_star=1.0, points=400)
    assert spec.attrs["edge"] == pytest.approx(4.0, rel=1e-9)
    assert spec.attrs["mass_below_grid"] == pytest.approx(0.5, abs=0.01)  # the atom at 0
    eig = spectra.empirical_jjt_eigenvalues("relu", 2, 400, 2.0, 0.0, 1.0, "orthogonal", draws=2, progress=False)
    assert spectra.ks_distance(eig, spec) < 0.03


def test_conventions_agree_with_mean_field_nonlinearities():
    """erf(x): critical sigma_w2 -> pi/4 as q* -> 0 (phi'(0) = 2/sqrt(pi)); hard-tanh: P(|h| < 1) = erf(1/sqrt(2 q))."""
    assert freeprob.critical_sigma_w2("erf", 1e-9) == pytest.approx(math.pi / 4, rel=1e-6)
    law = freeprob.d2_distribution("hard_tanh", 0.5)
    assert law.moment(1) == pytest.approx(math.erf(1.0), rel=1e-12)
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)
    for name in ("tanh", "erf", "relu", "hard_tanh", "sigmoid", "linear"):
        nl = freeprob.get_nonlinearity(name)
        np.testing.assert_allclose(spectra.torch_activation(name)(x).numpy(), nl.phi(x.numpy()), rtol=1e-12, atol=1e-15)
    # a custom torch callable works in the empirical path
    model = spectra.random_mlp(5, 2, 1.0, 0.0, phi=torch.sin, seed=0)
    assert spectra.jacobian_singular_values(model, torch.zeros(1, 5, dtype=torch.float64)).shape == (1, 5)


def test_bad_parameters_raise_config_error():
    with pytest.raises(ConfigError, match="weights"):
        freeprob.jjt_density(np.array([1.0]), "tanh", 4, 1.0, 0.1, "uniform")
    with pytest.raises(ConfigError, match="unknown nonlinearity"):
        spectra.jacobian_spectrum("swishy", 4, q_star=0.1)
    with pytest.raises(ConfigError, match="not reachable"):
        spectra.resolve_parameters("tanh", sigma_w2=4.0, q_star=0.1)
    with pytest.raises(ConfigError, match="depth"):
        freeprob.jacobian_moments("tanh", 0, 1.0, 0.1)


def _namespace(out, **kw):
    base = dict(phi="tanh", depth=8, sigma_w2=None, sigma_b2=None, q_star=0.1, weights="orthogonal", width=64,
                points=200, out=str(out), json=True, draws=1, seed=0)
    base.update(kw)
    return argparse.Namespace(**base)


def test_spectrum_command_writes_report(tmp_path, capsys):
    import xarray as xr

    assert spectra.spectrum_command(_namespace(tmp_path)) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["parameters"]["q_star"] == pytest.approx(0.1)
    assert printed["theory"]["mean"] == pytest.approx(1.0)
    assert 0 <= printed["empirical"]["ks_distance"] < 0.2
    for name in ("spectrum.nc", "spectrum.png", "report.json"):
        assert (tmp_path / name).is_file()
    ds = xr.open_dataset(tmp_path / "spectrum.nc")
    assert ds.attrs["depth"] == 8 and "parameters_json" in ds.attrs
    ds.close()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["parameters"]["weights"] == "orthogonal"

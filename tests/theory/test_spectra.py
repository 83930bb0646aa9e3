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
from neuromodels.commands.theory import spectrum_command  # noqa: E402
from neuromodels.errors import ConfigError  # noqa: E402
from neuromodels.init import random_mlp  # noqa: E402
from neuromodels.nonlinearities import get_nonlinearity, torch_activation  # noqa: E402


def test_linear_orthogonal_network_has_all_singular_values_one():
    model = random_mlp(60, 12, sigma_w2=1.0, sigma_b2=0.3, phi="linear", weights="orthogonal", seed=3)
    x = torch.randn(3, 60, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sv = spectra.jacobian_singular_values(model, x)
    assert sv.shape == (3, 60)
    np.testing.assert_allclose(sv, 1.0, atol=1e-12)


def test_closed_product_equals_autograd_jacobian():
    model = random_mlp(7, 4, sigma_w2=1.7, sigma_b2=0.1, phi="tanh", weights="gaussian", seed=1)
    x = torch.randn(5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
    closed = spectra.mlp_jacobian(model, x)
    auto = spectra.network_jacobian(model, x)
    np.testing.assert_allclose(closed.numpy(), auto.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        spectra.jacobian_singular_values(model, x, "product"),
        spectra.jacobian_singular_values(model, x, "autograd"),
        rtol=1e-10,
        atol=1e-14,
    )


def _fuss_catalan(depth: int, k: int) -> float:
    return math.comb((depth + 1) * k, k) / (depth * k + 1)


@pytest.mark.parametrize("depth", [1, 3, 8])
def test_free_probability_linear_gaussian_is_fuss_catalan(depth):
    edge = freeprob.jacobian_spectral_edge("linear", depth, 1.0, 1.0, "gaussian")
    assert edge == pytest.approx((depth + 1) ** (depth + 1) / depth**depth, rel=1e-9)
    # density of log(lambda) on a grid that is fine near the square-root edge
    top = math.log(edge)
    s = np.concatenate(
        [
            np.linspace(top - 15 * (depth + 1), top - 4, 1500, endpoint=False),
            np.linspace(top - 4, top - 0.05, 2000, endpoint=False),
            top + np.log1p(-np.geomspace(0.05, 1e-9, 1000)),
        ]
    )
    log_density = freeprob.jjt_log_density(s, "linear", depth, 1.0, 1.0, "gaussian")
    x = np.exp(s)
    for k in (1, 2, 3):
        moment = np.trapezoid(log_density * x**k, s)
        assert moment == pytest.approx(_fuss_catalan(depth, k), rel=2e-3), k
    assert np.trapezoid(log_density, s) == pytest.approx(1.0, abs=2e-3 if depth < 8 else 3e-2)


def test_empirical_linear_gaussian_moments_are_fuss_catalan():
    depth = 3
    eig = spectra.empirical_jjt_eigenvalues("linear", depth, 300, 1.0, 0.0, 1.0, "gaussian", draws=4, progress=False)
    for k, tol in ((1, 0.02), (2, 0.04), (3, 0.08)):
        assert np.mean(eig**k) == pytest.approx(_fuss_catalan(depth, k), rel=tol), k
    assert eig.max() < 1.05 * (depth + 1) ** (depth + 1) / depth**depth


def test_closed_form_moments_agree_with_density():
    q, depth = 0.25, 8
    sw2 = freeprob.sigma_w2_for_q_star("tanh", q)
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
    eig = spectra.empirical_jjt_eigenvalues(
        "tanh", 16, 400, a["sigma_w2"], a["sigma_b2"], q, weights, draws=4, inputs_per_draw=4, seed=0, progress=False
    )
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
            eig = spectra.empirical_jjt_eigenvalues(
                "relu", int(depth), 300, 2.0, 0.0, 1.0, weights, draws=1, seed=100 * int(depth) + draw, progress=False
            )
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
        sw2 = freeprob.sigma_w2_for_q_star("tanh", q)
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
        sw2 = freeprob.sigma_w2_for_q_star("hard_tanh", q)
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
    assert spectra.spectrum_atoms(spec) == [{"eigenvalue": 0.0, "mass": 0.5}]  # the kernel of the first ReLU layer
    assert spec.attrs["continuous_mass"] == 0.5
    assert spec["cdf"].values[0] == pytest.approx(0.5, abs=0.01)
    assert spec.attrs["mass_below_grid"] < 0.01
    eig = spectra.empirical_jjt_eigenvalues("relu", 2, 400, 2.0, 0.0, 1.0, "orthogonal", draws=2, progress=False)
    assert spectra.ks_distance(eig, spec) < 0.03


def test_conventions_agree_with_mean_field_nonlinearities():
    """erf(x): critical sigma_w2 -> pi/4 as q* -> 0 (phi'(0) = 2/sqrt(pi)); hard-tanh: P(|h| < 1) = erf(1/sqrt(2 q))."""
    assert freeprob.sigma_w2_for_q_star("erf", 1e-9) == pytest.approx(math.pi / 4, rel=1e-6)
    law = freeprob.d2_distribution("hard_tanh", 0.5)
    assert law.moment(1) == pytest.approx(math.erf(1.0), rel=1e-12)
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)
    for name in ("tanh", "erf", "relu", "hard_tanh", "sigmoid", "linear"):
        nl = get_nonlinearity(name)
        np.testing.assert_allclose(torch_activation(name)(x).numpy(), nl.phi(x.numpy()), rtol=1e-12, atol=1e-15)
    # a custom torch callable works in the empirical path
    model = random_mlp(5, 2, 1.0, 0.0, phi=torch.sin, seed=0)
    assert spectra.jacobian_singular_values(model, torch.zeros(1, 5, dtype=torch.float64)).shape == (1, 5)


@pytest.mark.parametrize("q", [0.25, 1.0, 1 / 64])
def test_resolved_bias_variance_puts_hard_tanh_at_its_fixed_point(q):
    """sigma_b2 = q* - sigma_w2 E[clip(h, -1, 1)^2], the expectation by scipy's adaptive quadrature split at the
    kinks (a 201-node Gauss-Hermite rule over the kinks gave 0.00850 at q* = 1/4 instead of 0.00890)."""
    from scipy import integrate, stats

    resolved = spectra.resolve_parameters("hard_tanh", q_star=q)
    density = stats.norm(scale=np.sqrt(q)).pdf
    inner = integrate.quad(lambda h: h * h * density(h), -1.0, 1.0, epsabs=1e-14)[0]
    second = inner + 2.0 * stats.norm.sf(1.0 / np.sqrt(q))
    assert resolved["sigma_b2"] == pytest.approx(q - resolved["sigma_w2"] * second, rel=1e-9, abs=1e-15)


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
    base = dict(
        phi="tanh",
        depth=8,
        sigma_w2=None,
        sigma_b2=None,
        q_star=0.1,
        weights="orthogonal",
        width=64,
        points=200,
        out=str(out),
        json=True,
        draws=1,
        seed=0,
    )
    base.update(kw)
    return argparse.Namespace(**base)


def test_spectrum_command_writes_report(tmp_path, capsys):
    import xarray as xr

    assert spectrum_command(_namespace(tmp_path)) == 0
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


# ---------------------------------------------------------------------------------------------------------------
# atoms (issue 12): hard-tanh's D^2 is Bernoulli(p) on {0, 1}, p = P(|h| < 1) = erf(1 / sqrt(2 q*)); with
# orthogonal weights J J^T is sigma_w2^L times a product of L free projections of trace p. References below are
# computed here from p alone: the atom at 0 is 1 - p (a product of projections in general position has the
# smallest of their ranks), the atom at sigma_w2^L is 1 - L (1 - p) (L subspaces of codimension 1 - p meet in
# codimension L (1 - p)), and the continuous part carries the rest, (L - 1)(1 - p).


def _hard_tanh_p(q):
    return math.erf(1 / math.sqrt(2 * q))


@pytest.mark.parametrize("q,depth", [(0.25, 8), (0.25, 16), (1 / 64, 16), (0.25, 40)])
def test_hard_tanh_orthogonal_atoms_closed_form(q, depth):
    p = _hard_tanh_p(q)
    sw2 = freeprob.sigma_w2_for_q_star("hard_tanh", q)
    atoms = freeprob.jjt_atoms("hard_tanh", depth, sw2, q)
    assert atoms.zero == pytest.approx(1 - p, rel=1e-12)
    top = 1 - depth * math.erfc(1 / math.sqrt(2 * q))
    if top > 0:  # L (1 - p) < 1
        assert atoms.top[0] == pytest.approx(sw2**depth, rel=1e-13)
        assert atoms.top[1] == pytest.approx(top, rel=1e-12)
    else:
        assert atoms.top is None
    assert atoms.continuous_mass == pytest.approx(1 - (1 - p) - max(top, 0), rel=1e-9, abs=1e-15)
    # the continuous part's right edge: max of z(w) = p w (1 - (1-p) w)^(L-1) / (p sigma_w2)^L at w = 1/(L(1-p)),
    # on the gap branch w > 1 when there is a top atom
    edge = sw2**depth * p ** (depth - 1) * depth * (1 - p) * (depth / (depth - 1)) ** (depth - 1)
    if atoms.continuous_mass > freeprob.NEGLIGIBLE_MASS:
        continuous_edge = freeprob.jacobian_spectral_edge("hard_tanh", depth, sw2, q, continuous=True)
        assert continuous_edge == pytest.approx(edge, rel=1e-9)
    whole = freeprob.jacobian_spectral_edge("hard_tanh", depth, sw2, q)
    assert whole == pytest.approx(sw2**depth if top > 0 else edge, rel=1e-9)


def test_atoms_of_other_laws():
    """Identity + orthogonal: one atom at sigma_w2^L; depth 1: J J^T = sigma_w2 D^2 itself; Gaussian weights
    (Marchenko-Pastur, atomless): only the atom at 0 survives; smooth nonlinearities: none."""
    linear = freeprob.jjt_atoms("linear", 8, 1.1, 1.0)
    assert linear.locations.tolist() == [pytest.approx(1.1**8, rel=1e-14)] and linear.masses.tolist() == [1.0]
    assert linear.continuous_mass == 0.0
    assert math.isnan(freeprob.jacobian_spectral_edge("linear", 8, 1.1, 1.0, continuous=True))
    relu = freeprob.jjt_atoms("relu", 1, 2.0, 1.0)
    assert relu.locations.tolist() == [0.0, 2.0] and relu.masses.tolist() == [0.5, 0.5]
    p = _hard_tanh_p(0.25)
    gaussian = freeprob.jjt_atoms("hard_tanh", 8, 1 / p, 0.25, "gaussian")
    assert gaussian.locations.tolist() == [0.0] and gaussian.masses[0] == pytest.approx(1 - p, rel=1e-12)
    assert len(freeprob.jjt_atoms("tanh", 8, 1.0, 0.25).locations) == 0
    assert len(freeprob.jjt_atoms("linear", 3, 1.0, 1.0, "gaussian").locations) == 0


def test_hard_tanh_depth_two_is_the_free_product_of_two_projections():
    """L = 2: P Q P for free projections of trace p has, besides the atoms 1 - p at 0 and 2p - 1 at 1, the density
    sqrt((l+ - x)(x - l-)) / (2 pi x (1 - x)) on [l-, l+] = [0, 4p(1-p)] (the quadratic that S = ((1+t)/(p+t))^2
    gives for t); the ReLU arcsine law above is its p = 1/2 case."""
    q = 0.25
    p = _hard_tanh_p(q)
    sw2 = 1 / p
    upper = 4 * p * (1 - p)
    x = np.linspace(0.01, 0.99, 25) * upper
    reference = np.sqrt((upper - x) * x) / (2 * np.pi * x * (1 - x))
    density = freeprob.jjt_density(x * sw2**2, "hard_tanh", 2, sw2, q) * sw2**2
    np.testing.assert_allclose(density, reference, rtol=1e-6)
    atoms = freeprob.jjt_atoms("hard_tanh", 2, sw2, q)
    assert atoms.masses.tolist() == [pytest.approx(1 - p), pytest.approx(2 * p - 1)]
    # nothing in the gap between the continuous edge and the atom at sigma_w2^2, spike included
    gap = np.array([1.01 * upper, 0.5 * (upper + 1), 1 - 1e-10, 1 + 1e-10]) * sw2**2
    assert np.all(freeprob.jjt_density(gap, "hard_tanh", 2, sw2, q) == 0)


def test_hard_tanh_spectrum_carries_the_atoms_in_cdf_and_moments():
    """Depth 16, q* = 1/4: atoms 0.0455 at 0 and 0.272 at 2.107. The CDF jumps by the top atom above the grid
    (the continuous part ends at 2.008), its bottom value is the atom at 0 plus unresolved continuous mass, and
    the moments of atoms + density equal the closed forms."""
    q, depth = 0.25, 16
    p = _hard_tanh_p(q)
    spec = spectra.jacobian_spectrum("hard_tanh", depth, q_star=q, points=1000)
    a = spec.attrs
    atoms = spectra.spectrum_atoms(spec)
    assert [x["eigenvalue"] for x in atoms] == [0.0, pytest.approx((1 / p) ** depth, rel=1e-12)]
    assert atoms[1]["mass"] == pytest.approx(1 - depth * (1 - p), rel=1e-12)
    assert a["edge"] == pytest.approx(2.10662, rel=1e-5)
    assert a["continuous_edge"] == pytest.approx(2.00812, rel=1e-5) and a["continuous_edge"] < a["edge"]
    cdf = spec["cdf"].values
    assert cdf[-1] == pytest.approx(1 - atoms[1]["mass"], abs=1e-3)
    assert cdf[0] == pytest.approx(1 - p, abs=2e-3)
    assert a["mass_below_grid"] < 2e-3
    assert np.trapezoid(spec["log_density"].values, spec["log_eigenvalue"].values) == pytest.approx(
        a["continuous_mass"], abs=2e-3
    )
    mean = spectra.spectrum_moment(spec, 1)
    assert mean == pytest.approx(a["mean"], rel=2e-3)
    assert spectra.spectrum_moment(spec, 2) - mean**2 == pytest.approx(a["variance"], rel=1e-2)


def test_ks_distance_treats_atoms_as_jumps():
    """Linear orthogonal: the law is one atom at 1. Samples all at 1 (within float64 rounding) are at distance 0;
    half of them moved to 0.5 are at distance 1/2 (F jumps from 0 to 1 at 1)."""
    spec = spectra.jacobian_spectrum("linear", 8, sigma_w2=1.0, sigma_b2=0.0, q_star=1.0, points=50)
    assert spectra.spectrum_atoms(spec) == [{"eigenvalue": 1.0, "mass": 1.0}]
    assert np.all(spec["log_density"].values == 0)
    ones = 1.0 + 1e-14 * np.linspace(-1, 1, 100)
    assert spectra.ks_distance(ones, spec) == 0.0
    assert spectra.ks_distance(np.r_[ones[:50], np.full(50, 0.5)], spec) == pytest.approx(0.5, abs=1e-12)
    assert spectra.ks_distance(np.full(10, 1.0 + 1e-6), spec) == 1.0  # not at the atom: above the whole law


def test_linear_orthogonal_spectrum_matches_sampled_jacobians():
    spec = spectra.jacobian_spectrum("linear", 12, sigma_w2=1.0, sigma_b2=0.0, q_star=1.0, points=100)
    eig = spectra.empirical_jjt_eigenvalues("linear", 12, 60, 1.0, 0.3, 1.0, "orthogonal", draws=2, progress=False)
    assert spectra.ks_distance(eig, spec) < 0.03
    assert spectra.spectrum_moment(spec, 1) == 1.0 and spec.attrs["variance"] == 0.0


@pytest.mark.parametrize("q,depth,draws,inputs", [(0.25, 8, 12, 2), (1 / 64, 16, 2, 1)])
def test_hard_tanh_spectrum_matches_sampled_jacobians_ks(q, depth, draws, inputs):
    """Width 400. The atom at 0 of a finite network is the largest of the L layers' saturated counts over N
    (rank of a product of projections = the smallest rank), which exceeds 1 - p by ~0.015 at N = 400, L = 8; the
    top atom is unbiased but fluctuates by ~0.04 per input, hence 24 inputs. At q* = 1/64 every unit is linear
    (1 - p = 1e-15): all squared singular values sit at sigma_w2^L. Depth 16 at q* = 1/4: slow reproduction."""
    spec = spectra.jacobian_spectrum("hard_tanh", depth, q_star=q, points=600)
    a = spec.attrs
    eig = spectra.empirical_jjt_eigenvalues(
        "hard_tanh",
        depth,
        400,
        a["sigma_w2"],
        a["sigma_b2"],
        q,
        "orthogonal",
        draws=draws,
        inputs_per_draw=inputs,
        seed=0,
        progress=False,
    )
    assert spectra.ks_distance(eig, spec) < 0.03
    fractions = [np.mean(spectra.atom_membership(eig, spec) == i) for i in range(len(spectra.spectrum_atoms(spec)))]
    assert fractions[-1] == pytest.approx(spectra.spectrum_atoms(spec)[-1]["mass"], abs=0.03)


def test_universal_bernoulli_limit_has_its_atom():
    """Variance v < 1: the Bernoulli class has an atom 1 - v at e^v and a continuous part ending at e v; with the
    atom, the mean is 1 and the variance v (S(0) = 1 and S'(0) = -v)."""
    v = 0.5
    top = math.log(math.e * v)
    s = np.concatenate(
        [np.linspace(-30, top - 0.3, 4000), top + np.log1p(-np.geomspace(1 - math.exp(-0.3), 1e-10, 2000))]
    )
    log_density = freeprob.universal_log_density(s, v, "bernoulli")
    x = np.exp(s)
    mean = np.trapezoid(log_density * x, s) + (1 - v) * math.exp(v)
    second = np.trapezoid(log_density * x * x, s) + (1 - v) * math.exp(2 * v)
    assert mean == pytest.approx(1.0, abs=1e-4)
    assert second - mean**2 == pytest.approx(v, abs=1e-4)
    gap = np.log(np.array([1.01 * math.e * v, math.exp(v) * (1 - 1e-10), math.exp(v)]))
    assert np.all(freeprob.universal_log_density(gap, v, "bernoulli") == 0)


def test_spectrum_command_reports_atoms(tmp_path, capsys):
    args = _namespace(tmp_path, phi="hard_tanh", q_star=0.25, depth=8, width=100, json=False)
    assert spectrum_command(args) == 0
    printed = capsys.readouterr().out
    assert "atom at 0: mass 0.0455003" in printed and "atom at 1.45142: mass 0.635998" in printed
    report = json.loads((tmp_path / "report.json").read_text())
    theory = report["theory"]
    p = _hard_tanh_p(0.25)
    assert [x["mass"] for x in theory["atoms"]] == [pytest.approx(1 - p), pytest.approx(1 - 8 * (1 - p))]
    assert theory["continuous_mass"] == pytest.approx(7 * (1 - p), rel=1e-9)
    assert theory["mean_from_spectrum"] == pytest.approx(theory["mean"], rel=5e-3)
    assert len(report["empirical"]["atom_fractions"]) == 2

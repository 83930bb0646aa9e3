"""Mean-field theory of signal propagation against published values, closed forms and scipy quadrature.

Published values (Schoenholz et al. 2017, arXiv:1611.01232; the issue lists them, computed independently):
tanh, sigma_b2 = 0.05: critical sigma_w2 = 1.76095 (q* = 0.570); sigma_b2 = 0.1: 1.98607; 0.2: 2.28515;
sigma_b2 = 0.05, sigma_w2 = 1.5: q* = 0.418, chi_1 = 0.939, xi_c = 15.8; sigma_w2 = 2.5: c* = 0.447, xi_c = 11.8.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize

from neuromodels import fixed_points as fp
from neuromodels import nonlinearities as nonlin
from neuromodels.analysis.theory import meanfield as mf
from neuromodels.errors import ConfigError


def _quad_gauss(f, q):
    """E_z[f(sqrt(q) z)] by scipy quad (the reference, independent of our rules)."""
    s = math.sqrt(q)
    value, _ = integrate.quad(
        lambda z: f(s * z) * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi),
        -np.inf,
        np.inf,
        epsabs=1e-13,
        epsrel=1e-13,
        limit=400,
    )
    return value


def _dblquad_gauss(f, q, c):
    s = math.sqrt(q)
    r = math.sqrt(1 - c * c)

    def integrand(z2, z1):
        return f(s * z1, s * (c * z1 + r * z2)) * math.exp(-0.5 * (z1 * z1 + z2 * z2)) / (2 * math.pi)

    value, _ = integrate.dblquad(integrand, -10, 10, -10, 10, epsabs=1e-11, epsrel=1e-11)
    return value


# ------------------------------------------------------------------------------------------ published values
@pytest.mark.parametrize(("sigma_b2", "expected"), [(0.05, 1.76095), (0.1, 1.98607), (0.2, 2.28515)])
def test_tanh_critical_line_matches_published_values(sigma_b2, expected):
    assert fp.critical_sigma_w2(sigma_b2, "tanh") == pytest.approx(expected, abs=1e-5)
    # vectorised call gives the same values
    line = fp.critical_sigma_w2(np.array([0.05, 0.1, 0.2]), "tanh")
    np.testing.assert_allclose(line, [1.76095, 1.98607, 2.28515], atol=1e-5)


def test_tanh_critical_q_star_and_chi1_is_one_there():
    sw = fp.critical_sigma_w2(0.05, "tanh")
    assert fp.q_star(sw, 0.05, "tanh") == pytest.approx(0.570, abs=5e-4)
    assert mf.chi1(sw, 0.05, "tanh") == pytest.approx(1.0, abs=1e-10)


def test_tanh_ordered_point_published_values():
    scales = mf.depth_scales(1.5, 0.05, "tanh")
    assert scales["q_star"] == pytest.approx(0.418, abs=5e-4)
    assert scales["chi_1"] == pytest.approx(0.939, abs=5e-4)
    assert scales["c_star"] == 1.0
    assert scales["xi_c"] == pytest.approx(15.8, abs=0.05)
    assert scales["xi_grad"] == pytest.approx(scales["xi_c"])  # at c* = 1, chi_c = chi_1


def test_tanh_chaotic_point_published_values():
    scales = mf.depth_scales(2.5, 0.05, "tanh")
    assert scales["c_star"] == pytest.approx(0.447, abs=5e-4)
    assert scales["xi_c"] == pytest.approx(11.8, abs=0.05)
    assert scales["chi_1"] > 1 and scales["xi_grad"] < 0


# ----------------------------------------------------------------------------------------------- closed forms
def test_erf_critical_point_is_pi_over_4():
    assert fp.critical_sigma_w2(0.0, "erf") == pytest.approx(math.pi / 4, rel=1e-9)
    # from the closed forms directly: chi_1 at q* = 0 is sigma_w2 * 4/pi
    assert mf.chi1(math.pi / 4, 0.0, "erf", q=0.0) == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("sigma_w2", [0.5, 1.3, 2.0, 3.7])
def test_relu_chi1_is_half_sigma_w2(sigma_w2):
    assert mf.chi1(sigma_w2, 0.0, "relu", q=1.0) == pytest.approx(sigma_w2 / 2, rel=1e-14)
    assert fp.critical_sigma_w2(0.1, "relu") == pytest.approx(2.0)
    # q* of ReLU below criticality: q = sigma_w2/2 q + sigma_b2 -> sigma_b2 / (1 - sigma_w2 / 2)
    if sigma_w2 < 2:
        assert fp.q_star(sigma_w2, 0.1, "relu") == pytest.approx(0.1 / (1 - sigma_w2 / 2), rel=1e-10)
    else:
        assert fp.q_star(sigma_w2, 0.1, "relu") == np.inf


@pytest.mark.parametrize("name", ["erf", "relu", "hard_tanh", "linear"])
@pytest.mark.parametrize("q", [0.05, 0.7, 3.0])
def test_closed_forms_match_scipy_quad(name, q):
    nl = nonlin.get_nonlinearity(name)
    np.testing.assert_allclose(nl.mean_phi_sq(q), _quad_gauss(lambda u: float(nl.phi(np.array(u))) ** 2, q), atol=1e-10)
    if name != "hard_tanh":  # phi' jumps at +-1: compare with the exact erf below instead
        np.testing.assert_allclose(
            nl.mean_dphi_sq(q), _quad_gauss(lambda u: float(nl.dphi(np.array(u))) ** 2, q), atol=1e-8
        )
    if name == "hard_tanh":
        assert nl.mean_dphi_sq(q) == pytest.approx(math.erf(1 / math.sqrt(2 * q)), rel=1e-12)
    if name == "erf":
        for c in (0.0, 0.93):
            ref = _dblquad_gauss(lambda a, b: math.erf(a) * math.erf(b), q, c)
            assert nl.cov_phi(q, c) == pytest.approx(ref, abs=1e-8)
    if name == "relu":
        # reference by 1-D quad over z1 of the inner Gaussian expectation E[relu(m + s z2)] = m Phi(m/s) + s pdf(m/s)
        def cdf(x):
            return 0.5 * (1 + math.erf(x / math.sqrt(2)))

        def pdf(x):
            return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)

        for c in (0.0, 0.4, 0.93):
            r = math.sqrt(q * (1 - c * c))
            inner = lambda u, c=c, r=r: u * (c * u * cdf(c * u / r) + r * pdf(c * u / r)) if u > 0 else 0.0  # noqa: E731
            ref = _quad_gauss(inner, q)
            assert nl.cov_phi(q, c) == pytest.approx(ref, abs=1e-10)


def test_erf_derivative_moment_closed_forms():
    nl = nonlin.get_nonlinearity("erf")
    for q in (0.1, 1.0, 4.0):
        ref = _quad_gauss(lambda u: (2 / math.sqrt(math.pi)) ** 2 * math.exp(-2 * u * u), q)
        assert nl.mean_dphi_sq(q) == pytest.approx(ref, rel=1e-10)
        ref = _quad_gauss(lambda u: math.erf(u) * (-2 * u) * 2 / math.sqrt(math.pi) * math.exp(-u * u), q)
        assert nl.mean_phi_ddphi(q) == pytest.approx(ref, rel=1e-10)
        ref = _dblquad_gauss(lambda a, b: 4 / math.pi * math.exp(-a * a - b * b), q, 0.6)
        assert nl.cov_dphi(q, 0.6) == pytest.approx(ref, rel=1e-8)


# ------------------------------------------------------------------------------------------------- quadrature
@pytest.mark.parametrize("q", [0.01, 0.5, 1.0, 2.5])
def test_gauss_hermite_and_midpoint_match_scipy_quad(q):
    for f in (lambda u: np.tanh(u) ** 2, lambda u: (1 - np.tanh(u) ** 2) ** 2, lambda u: np.cos(u) * u**2):
        ref = _quad_gauss(lambda u, f=f: float(f(np.array(u))), q)
        assert nonlin.gaussian_expectation(f, q) == pytest.approx(ref, abs=1e-10)
        if q <= 1:  # Gauss-Hermite converges slowly for tanh at larger q (poles near the real axis)
            assert nonlin.gaussian_expectation(f, q, n=200, rule="gauss-hermite") == pytest.approx(ref, abs=1e-8)


def test_gaussian_expectation_is_vectorised_and_exact_for_polynomials():
    q = np.array([[0.3, 1.0], [2.0, 5.0]])
    np.testing.assert_allclose(nonlin.gaussian_expectation(lambda u: u**4, q), 3 * q**2, rtol=1e-12)
    np.testing.assert_allclose(
        nonlin.gaussian_expectation(lambda u: u**4, q, n=3, rule="gauss-hermite"), 3 * q**2, rtol=1e-12
    )


def test_2d_expectation_matches_dblquad_and_moments():
    q, c = 1.3, 0.55
    f = lambda a, b: np.tanh(a) * np.tanh(b)  # noqa: E731
    ref = _dblquad_gauss(lambda a, b: math.tanh(a) * math.tanh(b), q, c)
    assert nonlin.gaussian_expectation_2d(f, q, c) == pytest.approx(ref, abs=1e-9)
    # E[u1 u2] = q c, different variances too
    assert nonlin.gaussian_expectation_2d(lambda a, b: a * b, 2.0, 0.3, q2=0.5) == pytest.approx(0.3, rel=1e-12)


def test_correlation_fixed_point_series_quadrature_and_scipy_agree():
    sw, sb = 3.0, 0.1
    by_series = fp.c_star(sw, sb, "tanh", method="series")
    by_quadrature = fp.c_star(sw, sb, "tanh", method="quadrature")
    assert by_series == pytest.approx(by_quadrature, abs=1e-10)
    q = fp.q_star(sw, sb, "tanh")

    def residual(c):
        return (sw * _dblquad_gauss(lambda a, b: math.tanh(a) * math.tanh(b), q, c) + sb) / q - c

    assert by_series == pytest.approx(optimize.brentq(residual, 0.05, 0.95, xtol=1e-12), abs=1e-7)


def test_q_star_is_fixed_point_found_by_iterating_the_map():
    sw = np.array([0.8, 1.5, 2.5, 4.0])
    sb = np.array([0.0, 0.05, 0.2, 0.3])
    qs = fp.q_star(sw, sb, "tanh")
    np.testing.assert_allclose(mf.length_map(qs, sw, sb, "tanh"), qs, atol=1e-12)
    iterated = mf.iterate_length_map(np.full(4, 3.0), sw, sb, 400, "tanh")[-1]
    np.testing.assert_allclose(iterated, qs, atol=1e-9)
    assert qs[0] == 0.0  # sigma_w2 < 1, sigma_b2 = 0: the signal dies


def test_correlation_map_iterates_to_c_star():
    for sw in (1.5, 2.5, 4.0):
        cs = fp.c_star(sw, 0.05, "tanh")
        c = mf.iterate_correlation_map(0.2, sw, 0.05, 300, "tanh")[-1]
        assert c == pytest.approx(cs, abs=1e-6)


def test_critical_point_parametrisation_by_q_star():
    for q in (0.01, 0.1, 1.0):
        sw, sb = fp.critical_point(q, "tanh")
        assert fp.q_star(sw, sb, "tanh") == pytest.approx(q, rel=1e-8)
        assert mf.chi1(sw, sb, "tanh") == pytest.approx(1.0, abs=1e-10)
        assert fp.critical_sigma_w2(sb, "tanh") == pytest.approx(sw, rel=1e-8)
    # small q*: close to sigma_w2 = 1, sigma_b2 = 0 (Pennington et al. 2017, fig. 1)
    sw, sb = fp.critical_point(1e-4, "tanh")
    assert sw == pytest.approx(1.0, abs=1e-3) and sb < 1e-6


def test_xi_q_formula_eq8():
    sw, sb = 1.5, 0.05
    q = fp.q_star(sw, sb)
    e_ddphi_phi = _quad_gauss(lambda u: -2 * math.tanh(u) ** 2 * (1 - math.tanh(u) ** 2), q)
    expected = -1 / math.log(mf.chi1(sw, sb) + sw * e_ddphi_phi)
    assert mf.depth_scales(sw, sb)["xi_q"] == pytest.approx(expected, rel=1e-9)


def test_xi_c_diverges_at_criticality_and_peaks_there():
    sb = 0.05
    crit = fp.critical_sigma_w2(sb)
    xi = mf.depth_scales(np.array([crit - 0.3, crit - 0.01, crit + 0.01, crit + 0.3]), sb)["xi_c"]
    assert xi[1] > 100 and xi[2] > 100 and xi[0] < 25 and xi[3] < 25


# -------------------------------------------------------------------------------------------------- dropout
def test_dropout_destroys_criticality():
    # Schoenholz et al. sec. 5: with dropout c* < 1 everywhere, so xi_c stays finite
    sw = np.linspace(1.0, 4.0, 31)
    scales = mf.depth_scales(sw, 0.05, "tanh", rho=0.95)
    assert np.all(scales["c_star"] < 1.0)
    assert np.all(np.isfinite(scales["xi_c"])) and np.max(scales["xi_c"]) < 60
    no_dropout = mf.depth_scales(sw, 0.05, "tanh")
    assert np.max(no_dropout["xi_c"]) > 5 * np.max(scales["xi_c"])
    # length map with dropout: sigma_w2 / rho E[phi^2] + sigma_b2
    q = 0.7
    expected = 2.0 / 0.8 * _quad_gauss(lambda u: math.tanh(u) ** 2, q) + 0.1
    assert mf.length_map(q, 2.0, 0.1, "tanh", rho=0.8) == pytest.approx(expected, rel=1e-10)


# ------------------------------------------------------------------------------------------- nonlinearities
def test_custom_callables_match_builtin_tanh():
    import torch

    numpy_only = nonlin.get_nonlinearity(lambda x: np.tanh(x))  # finite differences
    torch_fn = nonlin.get_nonlinearity(torch.tanh)  # autograd
    builtin = nonlin.get_nonlinearity("tanh")
    x = np.linspace(-3, 3, 13)
    for nl, tol in ((numpy_only, 1e-7), (torch_fn, 1e-12)):
        np.testing.assert_allclose(nl.dphi(x), builtin.dphi(x), atol=tol)
        np.testing.assert_allclose(nl.ddphi(x), builtin.ddphi(x), atol=tol * 10)
        assert fp.critical_sigma_w2(0.05, nl) == pytest.approx(1.76095, abs=1e-5)
        assert fp.c_star(2.5, 0.05, nl) == pytest.approx(0.447, abs=5e-4)


def test_duck_typed_nonlinearity_objects():
    class Custom:
        name = "my_tanh"
        phi = staticmethod(np.tanh)
        dphi = staticmethod(lambda x: 1 - np.tanh(x) ** 2)

    assert fp.critical_sigma_w2(0.05, Custom()) == pytest.approx(1.76095, abs=1e-5)
    Custom.name = "erf"  # a built-in name selects the built-in (with its closed forms)
    assert nonlin.get_nonlinearity(Custom()).closed_forms


def test_sigmoid_values_against_quad():
    from scipy.special import expit

    q = fp.q_star(3.0, 0.1, "sigmoid")
    ref = 3.0 * _quad_gauss(lambda u: float(expit(u)) ** 2, q) + 0.1
    assert q == pytest.approx(ref, rel=1e-10)


def test_bad_parameters_raise_config_error():
    with pytest.raises(ConfigError, match="nonlinearity"):
        nonlin.get_nonlinearity("swishy")
    with pytest.raises(ConfigError, match="sigma_w2"):
        fp.q_star(-1.0, 0.1)
    with pytest.raises(ConfigError, match="sigma_b2"):
        mf.chi1(1.0, -0.1)
    with pytest.raises(ConfigError, match="rho"):
        mf.depth_scales(1.0, 0.1, rho=1.5)
    with pytest.raises(ConfigError, match="method"):
        fp.c_star(1.0, 0.1, method="magic")
    with pytest.raises(ConfigError, match="q_star"):
        fp.critical_point(-1.0, "tanh")
    with pytest.raises(ConfigError, match="sigma_b2 < 0"):  # phi(x) = x + 1: E[phi^2]/E[phi'^2] = q + 1 > q
        fp.critical_point(0.5, lambda x: x + 1.0)


def test_phase_diagram_dataset():
    ds = mf.phase_diagram(np.linspace(1.0, 3.0, 9), np.linspace(0.0, 0.2, 5), "tanh")
    assert ds["xi_c"].dims == ("sigma_w2", "sigma_b2")
    assert ds.attrs["phi"] == "tanh"
    np.testing.assert_allclose(ds["critical_sigma_w2"].sel(sigma_b2=0.05).item(), 1.76095, atol=1e-5)
    point = mf.depth_scales(2.5, 0.05)
    assert ds["c_star"].sel(sigma_w2=2.5, sigma_b2=0.05).item() == pytest.approx(point["c_star"], abs=1e-12)
    assert set(np.unique(ds["phase"].values)) <= {-1.0, 0.0, 1.0}


# ---------------------------------------------------------------- unbounded length and the degenerate q* = 0
@pytest.mark.parametrize(("phi", "slope"), [("relu", 0.5), ("linear", 1.0)])
@pytest.mark.parametrize("sigma_w2", [2.0, 2.5, 3.7])
def test_chi1_is_finite_where_the_length_diverges(phi, slope, sigma_w2):
    # q* = inf past the critical line, but gradients still scale by sigma_w2 E[phi'^2] per layer, which for a
    # positively homogeneous phi does not depend on q (was NaN in depth_scales and the phase diagram)
    scales = mf.depth_scales(sigma_w2, 0.1, phi)
    assert scales["q_star"] == np.inf
    assert scales["chi_1"] == pytest.approx(slope * sigma_w2, rel=1e-14)
    chi = slope * sigma_w2
    assert scales["xi_grad"] == (np.inf if chi == 1.0 else pytest.approx(-1.0 / math.log(chi), rel=1e-14))
    ds = mf.phase_diagram(np.array([1.5, sigma_w2]), np.array([0.1]), phi)
    assert ds["chi_1"].values[1, 0] == pytest.approx(slope * sigma_w2, rel=1e-14)


def test_chi1_of_a_custom_unbounded_phi_at_infinite_length_is_its_limit():
    # softplus: phi'(+inf) = 1, phi'(-inf) = 0, so E[phi'(sqrt(q) z)^2] -> 1/2 as q -> inf
    import torch

    scales = mf.depth_scales(4.0, 0.1, lambda x: torch.nn.functional.softplus(x))
    assert scales["q_star"] == np.inf and scales["chi_1"] == pytest.approx(2.0, rel=1e-12)


@pytest.mark.parametrize("n_sigma_w2", [9, 200, 301])
def test_critical_point_at_zero_bias_has_infinite_depth_scales_on_any_grid(n_sigma_w2):
    # (sigma_w2, sigma_b2) = (1, 0) for tanh: q* = 0 and chi_1 = chi_c = phi'(0)^2 = 1 exactly, so xi_c = inf.
    # A quadrature whose weights sum to 1 - 2^-52 made chi_c = 1 - 2^-52 and xi_c = 4.5e15 on the CLI's grids.
    ds = mf.phase_diagram(np.linspace(1.0, 4.0, n_sigma_w2), np.linspace(0.0, 0.3, 200), "tanh")
    assert ds["q_star"].values[0, 0] == 0.0
    assert ds["chi_1"].values[0, 0] == 1.0 and ds["chi_c"].values[0, 0] == 1.0
    assert ds["xi_c"].values[0, 0] == np.inf and ds["xi_grad"].values[0, 0] == np.inf
    assert np.all(nonlin.gaussian_expectation(lambda u: np.ones_like(u), np.zeros(3), n=n_sigma_w2 + 40) == 1.0)

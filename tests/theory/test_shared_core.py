"""The theory's shared core (neuromodels.nonlinearities, neuromodels.fixed_points): one implementation that the
mean-field and free-probability paths, the initialisers and the saturation penalty all use."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from neuromodels import fixed_points, nonlinearities


def test_meanfield_and_spectra_paths_give_the_identical_q_star():
    from neuromodels.analysis.theory import empirical, meanfield, spectra

    for phi, sw, sb in (("tanh", 1.5, 0.05), ("erf", 2.0, 0.1), ("hard_tanh", 1.3, 0.02), ("sigmoid", 4.0, 0.0)):
        expected = fixed_points.q_star(sw, sb, phi)
        # the same function: equal to the last bit, whichever path asks
        assert spectra.resolve_parameters(phi, sw, sb)["q_star"] == expected
        assert meanfield.depth_scales(sw, sb, phi)["q_star"] == expected
    # and one table of nonlinearities behind every module
    assert spectra.get_nonlinearity is nonlinearities.get_nonlinearity
    assert meanfield.get_nonlinearity is nonlinearities.get_nonlinearity
    assert empirical.measure_propagation.__module__ == "neuromodels.analysis.theory.empirical"


def test_q_star_matches_the_length_map_fixed_point_by_iteration():
    # iterate q -> sigma_w2 E[tanh(sqrt(q) z)^2] + sigma_b2 with scipy quadrature, independently of our rules
    from scipy import integrate

    def length_map(q):
        def integrand(z):
            return math.tanh(math.sqrt(q) * z) ** 2 * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)

        return 1.5 * integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-14)[0] + 0.05

    q = 1.0
    for _ in range(200):
        q = length_map(q)
    assert fixed_points.q_star(1.5, 0.05, "tanh") == pytest.approx(q, rel=1e-10)


def test_critical_point_puts_chi_1_at_one():
    sw, sb = fixed_points.critical_point(0.3, "tanh")
    nl = nonlinearities.get_nonlinearity("tanh")
    assert sw * float(nl.mean_dphi_sq(0.3)) == pytest.approx(1.0, rel=1e-14)
    assert fixed_points.q_star(sw, sb, "tanh") == pytest.approx(0.3, rel=1e-10)
    # the line by sigma_b2 passes through the same point
    assert fixed_points.critical_sigma_w2(sb, "tanh") == pytest.approx(sw, rel=1e-9)


def test_initialisers_use_the_core_without_the_analysis_package():
    code = (
        "import sys; from neuromodels.init import critical_parameters; print(critical_parameters(0.01, 'tanh')); "
        "assert not any(m.startswith('neuromodels.analysis') for m in sys.modules), 'analysis imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "1.0197" in result.stdout  # docs/theory.md: sigma_w2 = 1.0197 at q* = 0.01


def test_torch_modules_match_the_numpy_nonlinearities_and_saturated_sets():
    torch = pytest.importorskip("torch")
    from neuromodels.fitting.saturation import SATURATING

    x = torch.linspace(-3, 3, 13, dtype=torch.float64)
    for name in nonlinearities.NONLINEARITIES:
        module = nonlinearities.torch_activation(name)
        assert type(module) in nonlinearities.elementwise_module_types()
        np.testing.assert_allclose(
            module(x).numpy(), nonlinearities.get_nonlinearity(name).phi(x.numpy()), rtol=1e-12, atol=1e-15
        )
    # the saturation penalty's flat sets are the shared table's: relu flat on z <= 0, hard-tanh beyond |z| >= 1
    for name, saturating in SATURATING.items():
        assert saturating.intervals == nonlinearities.SATURATED_INTERVALS[name]
    assert nonlinearities.SATURATED_INTERVALS["relu"] == ((-math.inf, 0.0),)

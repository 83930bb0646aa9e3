"""Theory of deep networks: mean-field signal propagation, criticality, Jacobian spectra, expressivity.

>>> from neuromodels.analysis.theory import depth_scales, critical_point
>>> sigma_w2, sigma_b2 = critical_point(q_star_target=0.1, phi="tanh")   # a point on the order-to-chaos line
>>> depth_scales(1.5, 0.05, phi="tanh")["xi_c"]                           # correlation depth scale, ~15.8 layers

One design, in layers:

* :mod:`neuromodels.nonlinearities` (models layer): the nonlinearities (``phi``, ``phi'``, Gaussian moments,
  closed forms, saturated sets, torch modules) and the quadrature of Gaussian expectations;
* :mod:`neuromodels.fixed_points` (models layer): the fixed points ``q*``, ``c*`` and the critical line
  (:func:`critical_point` by ``q*``, :func:`critical_sigma_w2` by ``sigma_b2``);
* :mod:`neuromodels.init`: initialisers and the one :func:`random_mlp` (explicit ``weights``, Haar-orthogonal by
  :func:`neuromodels.init.random_orthogonal`);
* here: :mod:`.meanfield` (maps, chi_1, chi_c, depth scales, phase diagrams), :mod:`.empirical` (the same
  quantities measured on random torch networks), :mod:`.freeprob` (Jacobian spectra by free probability),
  :mod:`.spectra` (exact Jacobians of random networks, the spectrum as xarray, KS distances), :mod:`.expressivity`
  (trajectory length), :mod:`.trainability` (MNIST experiments) and :mod:`.plots` (figures).

Every name of ``_LAZY`` loads its module on first access, so importing this package stays light; the submodules
import as usual (``from neuromodels.analysis.theory import spectra``). The command line (``neuromodels theory
...``) is :mod:`neuromodels.commands.theory`.
"""

from __future__ import annotations

from neuromodels._lazy import lazy_attributes

# name -> module that defines it (absolute, or relative to this package); imported on first access
_LAZY = {
    **dict.fromkeys(
        [
            "Nonlinearity",
            "get_nonlinearity",
            "NONLINEARITIES",
            "gaussian_expectation",
            "gaussian_expectation_2d",
            "torch_activation",
        ],
        "neuromodels.nonlinearities",
    ),
    **dict.fromkeys(["q_star", "c_star", "critical_point", "critical_sigma_w2"], "neuromodels.fixed_points"),
    "random_mlp": "neuromodels.init",
    **dict.fromkeys(
        [
            "length_map",
            "correlation_map",
            "chi1",
            "chi_c",
            "length_map_slope",
            "depth_scales",
            "phase_diagram",
            "iterate_length_map",
            "iterate_correlation_map",
        ],
        "meanfield",
    ),
    **dict.fromkeys(["propagate", "measure_propagation", "gradient_norms"], "empirical"),
    **dict.fromkeys(["plot_phase_diagram", "plot_depth_scales", "plot_propagation", "plot_trainability"], "plots"),
    **dict.fromkeys(
        [
            "jacobian_spectrum",
            "empirical_jjt_eigenvalues",
            "jacobian_singular_values",
            "ks_distance",
            "spectrum_atoms",
            "plot_spectrum",
            "resolve_parameters",
        ],
        "spectra",
    ),
    **dict.fromkeys(
        [
            "jjt_density",
            "jjt_atoms",
            "jacobian_moments",
            "jacobian_spectral_edge",
            "universal_log_density",
            "sigma_w2_for_q_star",
        ],
        "freeprob",
    ),
    **dict.fromkeys(["trajectory_statistics", "plot_trajectory"], "expressivity"),
}

__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)

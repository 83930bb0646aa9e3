"""Theory of deep networks: mean-field signal propagation, criticality, Jacobian spectra, expressivity.

>>> from neuromodels.analysis.theory import depth_scales, critical_point
>>> sigma_w2, sigma_b2 = critical_point(q_star_target=0.1, phi="tanh")   # a point on the order-to-chaos line
>>> depth_scales(1.5, 0.05, phi="tanh")["xi_c"]                           # correlation depth scale, ~15.8 layers

Modules: :mod:`.meanfield` (length/correlation maps, fixed points, chi_1, depth scales, phase diagrams),
:mod:`.empirical` (the same quantities measured on random torch networks), :mod:`.plots` (figures), and, where
present, :mod:`.spectra` (Jacobian singular-value spectra by free probability) and :mod:`.expressivity`
(trajectory length). Names load on first access, so importing this package stays light.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

_LAZY = {
    **dict.fromkeys(["Nonlinearity", "get_nonlinearity", "NONLINEARITIES", "gaussian_expectation",
                     "gaussian_expectation_2d", "length_map", "correlation_map", "q_star", "c_star", "chi1", "chi_c",
                     "length_map_slope", "depth_scales", "critical_sigma_w2", "critical_point", "phase_diagram",
                     "iterate_length_map", "iterate_correlation_map"], "meanfield"),
    **dict.fromkeys(["random_mlp", "propagate", "measure_propagation", "gradient_norms"], "empirical"),
    **dict.fromkeys(["plot_phase_diagram", "plot_depth_scales", "plot_propagation", "plot_trainability",
                     "save_figure"], "plots"),
    **dict.fromkeys(["jacobian_spectrum", "empirical_jjt_eigenvalues", "jacobian_singular_values", "ks_distance",
                     "spectrum_atoms", "plot_spectrum"], "spectra"),
    **dict.fromkeys(["jjt_density", "jjt_atoms", "jacobian_moments", "jacobian_spectral_edge",
                     "universal_log_density"], "freeprob"),
    **dict.fromkeys(["trajectory_statistics", "plot_trajectory"], "expressivity"),
}
# Submodules of another author, exposed by name only when their files exist.
_OPTIONAL_MODULES = ("spectra", "expressivity")

__all__ = list(_LAZY)


def _module_exists(name: str) -> bool:
    return importlib.util.find_spec(f"{__name__}.{name}") is not None


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    if name in _OPTIONAL_MODULES and _module_exists(name):
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {m for m in _OPTIONAL_MODULES if _module_exists(m)})

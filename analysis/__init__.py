"""Analysis: neural predictivity, noise ceilings, retina metrics, theory of deep networks, plots.

>>> from neuromodels.analysis import predictivity, noise_ceiling, extract_features
>>> ceiling = noise_ceiling(neural)                           # Brain-Score split-half by default
>>> score = predictivity(features, neural, ceiling=ceiling)   # PLS, 10 splits, Brain-Score settings

Names load on first access, so ``import neuromodels.analysis`` stays light.
"""

from __future__ import annotations

from neuromodels._lazy import lazy_attributes

# Imported eagerly (it needs only numpy/pandas/xarray): the function shares its module's name, and a lazy entry
# would be shadowed by the submodule as soon as anything imports neuromodels.analysis.predictivity.
from neuromodels.analysis.predictivity import average_repetitions, ceiled_value, predictivity

# name -> module (relative to this package) that defines it; imported on first access.
_LAZY = {
    **dict.fromkeys(
        [
            "noise_ceiling",
            "ceiling_split_half",
            "spearman_brown",
            "signal_power",
            "cc_max",
            "cc_norm",
            "fev",
            "feve",
            "r2_er",
            "oracle_correlation",
            "repetition_cube",
            "split_regions",
        ],
        "ceilings",
    ),
    **dict.fromkeys(["PLSRegression", "ridge_gcv", "ridge_cross_validated", "ridge_path"], "regression"),
    **dict.fromkeys(["extract_features", "fit_pca", "LayerPCA"], "features"),
    **dict.fromkeys(["score_many", "score_features"], "scale"),
    **dict.fromkeys(["retina_test_metrics", "compare_models", "cross_ensemble", "repeated_trials"], "retina_metrics"),
    **dict.fromkeys(
        [
            "mmd",
            "energy_distance",
            "parzen_log_likelihood",
            "select_parzen_bandwidth",
            "nearest_neighbour_distances",
            "gaussian_baseline",
        ],
        "sample_quality",
    ),
    "evaluate_walkback": "walkback_report",
    **dict.fromkeys(["first_spike_latency", "repeat_statistics", "decode_stimulus"], "spike_timing"),
    **dict.fromkeys(["harmonic_amplitudes", "nonlinearity_index"], "harmonics"),
    **dict.fromkeys(
        [
            "firing_rates",
            "isi_cv",
            "fano_factor",
            "synchrony",
            "population_rate",
            "rate_spectrum",
            "spectral_peak",
            "population_statistics",
            "plot_population_activity",
        ],
        "spike_statistics",
    ),
    **dict.fromkeys(
        [
            "BrunelParameters",
            "siegert_rate",
            "siegert_cv",
            "brunel_rate",
            "brunel_rates",
            "brunel_state",
            "brunel_circuit",
        ],
        "brunel",
    ),
}

__all__ = ["predictivity", "average_repetitions", "ceiled_value", *_LAZY]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)

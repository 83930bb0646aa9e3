"""Adversarial robustness: attacks, gradient-masking diagnostics and the analyses of saturating networks.

>>> from neuromodels.analysis.robustness import pgd, robustness_curve, masking_diagnostics
>>> x_adv = pgd(model, x, y, eps=0.1, steps=40, loss="margin")              # any classifier, inputs in [0, 1]
>>> curve = robustness_curve(model, x, y, attacks=["fgsm", "pgd", "spsa"], eps=[0.05, 0.1, 0.3])
>>> masking_diagnostics(model, x, y, curve).gradient_masking_suspected     # True: do not trust the curve

Modules: :mod:`.attacks` (FGSM, BIM, PGD L-inf/L2, least-likely, L-BFGS, SPSA), :mod:`.evaluate` (accuracy
against epsilon, the masking diagnostics), :mod:`.analyses` (saturation, weight kurtosis, the linear-model
argument, input-sensitivity spectrum). The saturation penalty itself is in
:mod:`neuromodels.fitting.saturation`. Names load on first access.
"""

from __future__ import annotations

from neuromodels._lazy import lazy_attributes

_LAZY = {
    **dict.fromkeys(
        [
            "fgsm",
            "bim",
            "pgd",
            "least_likely",
            "lbfgs",
            "spsa",
            "ATTACKS",
            "attack_names",
            "check_classifier_inputs",
            "objective",
            "input_gradient",
        ],
        "attacks",
    ),
    **dict.fromkeys(
        [
            "robustness_curve",
            "RobustnessCurve",
            "masking_diagnostics",
            "MaskingReport",
            "gradient_statistics",
            "accuracy",
        ],
        "evaluate",
    ),
    **dict.fromkeys(
        ["saturation_fraction", "weight_kurtosis", "linear_margin_scaling", "sensitivity_spectrum"], "analyses"
    ),
}

__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)

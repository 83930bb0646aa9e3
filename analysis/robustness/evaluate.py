"""Accuracy against the attack budget, and an honest check for gradient masking.

:func:`robustness_curve` runs attacks at several budgets and returns the accuracy table (an input counts as
robust at ``eps`` when it is classified correctly both clean and after the attack). :func:`masking_diagnostics`
applies the sanity checks of Athalye, Carlini & Wagner (2018, "Obfuscated gradients give a false sense of
security", sec. 3.1) to such a table and to the input gradients themselves:

1. accuracy must not rise with epsilon (more budget can only help the attacker);
2. at an unbounded budget (the whole box) a working white-box attack drives accuracy to about 0;
3. iterative attacks must do at least as well as single-step ones (BIM/PGD vs FGSM);
4. a gradient-free attack (SPSA) must not beat the white-box attacks;
5. the input gradients of the attack objective must be non-zero, normal (not subnormal) and finite.

When check 2 fails, the report also says for what fraction of the surviving inputs PGD ended where the logits
are flat (the logit margin's input gradient exactly zero: a dead region such as every unit of a layer off, as
opposed to a saturated softmax, whose logits still move).

Each failed check adds a reason; ``gradient_masking_suspected`` is True when there is any.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import xarray as xr

from neuromodels.analysis.robustness.attacks import (
    ATTACKS,
    BOX,
    _check_box,
    _check_eps,
    _EvalMode,
    _model_dtype,
    _working_model,
    attack_names,
    check_classifier_inputs,
    input_gradient,
    lbfgs,
)
from neuromodels.errors import ConfigError
from neuromodels.fitting.classification import accuracy  # re-exported: the one accuracy, ``accuracy(model, (x, y))``

__all__ = [
    "robustness_curve",
    "RobustnessCurve",
    "masking_diagnostics",
    "MaskingReport",
    "gradient_statistics",
    "accuracy",
]

GRADIENT_ATTACKS = ("bim", "pgd", "ll")


def accuracy_mask(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Boolean ``(n,)``: is each input classified as its label (eval mode, the model's dtype)."""
    dtype = _model_dtype(model, x.dtype)
    with _EvalMode(model), torch.no_grad():
        predictions = torch.cat(
            [model(x[i : i + batch_size].to(dtype)).argmax(1) for i in range(0, len(x), batch_size)]
        )
    return predictions == y


@dataclass
class RobustnessCurve:
    """Accuracy against budget for each attack.

    ``accuracy``: ``xr.DataArray(attack, eps)``, the fraction of inputs correct clean and after the attack
    (L-inf eps; for ``lbfgs``, an input counts as broken at ``eps`` when L-BFGS found a target perturbation
    whose L-inf norm is <= eps). ``clean_accuracy``; ``examples``: ``{attack: adversarial inputs at the
    largest eps}`` (or L-BFGS's); ``lbfgs_l2``: L2 norms of L-BFGS's perturbations (NaN where it failed).
    """

    accuracy: xr.DataArray
    clean_accuracy: float
    examples: dict[str, torch.Tensor] = field(default_factory=dict)
    lbfgs_l2: np.ndarray | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {
            "clean_accuracy": self.clean_accuracy,
            "eps": self.accuracy["eps"].values.tolist(),
            "accuracy": {str(a): self.accuracy.sel(attack=a).values.tolist() for a in self.accuracy["attack"].values},
            "settings": self.settings,
        }
        if self.lbfgs_l2 is not None:
            found = self.lbfgs_l2[np.isfinite(self.lbfgs_l2)]
            out["lbfgs"] = {
                "success_rate": float(np.isfinite(self.lbfgs_l2).mean()),
                "median_l2": float(np.median(found)) if len(found) else None,
            }
        return out


def robustness_curve(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attacks: str | Sequence[str] = ("fgsm", "bim", "pgd"),
    eps: Sequence[float] = (0.1, 0.2, 0.3),
    *,
    loss: str = "ce",
    dtype: torch.dtype | None = None,
    steps: int = 20,
    seed: int = 0,
    spsa_samples: int = 64,
    spsa_steps: int = 20,
    lbfgs_search_steps: int = 6,
    box: tuple[float, float] = BOX,
    batch_size: int = 500,
    progress: bool | None = None,
) -> RobustnessCurve:
    """Run each attack at each budget; return the :class:`RobustnessCurve`.

    ``loss`` (``"ce"`` or ``"margin"``) and ``dtype`` apply to every attack (SPSA estimates the gradient of the
    same objective). ``steps``: iterations of
    BIM, PGD and least-likely (step ``2.5 eps / steps``); PGD starts at a random point drawn with ``seed``.
    """
    from tqdm.auto import tqdm

    names = attack_names(attacks)
    eps_values = [_check_eps(e) for e in eps]
    if not eps_values:
        raise ConfigError("eps needs at least one value")
    x, y = check_classifier_inputs(model, x, y, box)
    _check_box(box)
    clean = accuracy_mask(model, x, y)
    table = np.zeros((len(names), len(eps_values)))
    examples: dict[str, torch.Tensor] = {}
    lbfgs_l2 = None
    common = {"box": box, "dtype": dtype}
    bar = tqdm(
        total=len(names) * len(eps_values),
        disable=progress is False if progress is not None else None,
        desc="attacks",
        unit="run",
    )
    for a, name in enumerate(names):
        if name == "lbfgs":
            adversarial, success = lbfgs(model, x, y, loss=loss, search_steps=lbfgs_search_steps, **common)
            delta = (adversarial.double() - x.double()).flatten(1)
            linf = torch.where(success, delta.abs().amax(1), torch.full((len(x),), math.inf, dtype=torch.float64))
            lbfgs_l2 = torch.where(
                success, delta.norm(dim=1), torch.full((len(x),), math.nan, dtype=torch.float64)
            ).numpy()
            for e, value in enumerate(eps_values):
                table[a, e] = float((clean & ~(linf <= value)).double().mean())
                bar.update()
            examples[name] = adversarial
            continue
        for e, value in enumerate(eps_values):
            options: dict[str, Any] = {"loss": loss, "batch_size": batch_size, **common}
            if name in GRADIENT_ATTACKS:
                options["steps"] = steps
            if name == "pgd":
                options["seed"] = seed
            if name == "spsa":
                options.update(steps=spsa_steps, samples=spsa_samples, seed=seed)
            adversarial = ATTACKS[name](model, x, y, value, **options)
            table[a, e] = float((clean & accuracy_mask(model, adversarial, y)).double().mean())
            if e == len(eps_values) - 1:
                examples[name] = adversarial
            bar.update()
    bar.close()
    settings = {
        "loss": loss,
        "dtype": str(dtype or x.dtype),
        "steps": steps,
        "seed": seed,
        "box": list(box),
        "spsa_samples": spsa_samples,
        "spsa_steps": spsa_steps,
        "n": len(x),
    }
    curve = xr.DataArray(
        table,
        dims=("attack", "eps"),
        coords={"attack": names, "eps": eps_values},
        name="accuracy",
        attrs={"method": "robustness_curve", **{k: str(v) for k, v in settings.items()}},
    )
    return RobustnessCurve(curve, float(clean.double().mean()), examples, lbfgs_l2, settings)


def gradient_statistics(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: str = "ce",
    dtype: torch.dtype | None = None,
    box: tuple[float, float] = BOX,
    batch_size: int = 500,
) -> dict[str, float]:
    """Fractions of inputs whose objective gradient (with respect to the input) is all zero, contains
    subnormal (underflowed) entries, or is not finite; and the fraction of zero entries overall."""
    x, y = check_classifier_inputs(model, x, y, box)
    working = _working_model(model, dtype)
    work_dtype = _model_dtype(working, x.dtype)
    tiny = torch.finfo(work_dtype).tiny
    zero_inputs = subnormal_inputs = nonfinite_inputs = zero_entries = 0
    with _EvalMode(working):
        for i in range(0, len(x), batch_size):
            grad = input_gradient(working, x[i : i + batch_size].to(work_dtype), y[i : i + batch_size], loss).flatten(1)
            finite = torch.isfinite(grad)
            nonfinite_inputs += int((~finite.all(1)).sum())
            zero = grad == 0
            zero_inputs += int(zero.all(1).sum())
            zero_entries += int(zero.sum())
            subnormal_inputs += int(((grad.abs() < tiny) & ~zero).any(1).sum())
    n = len(x)
    return {
        "zero_gradient_fraction": zero_inputs / n,
        "subnormal_gradient_fraction": subnormal_inputs / n,
        "nonfinite_gradient_fraction": nonfinite_inputs / n,
        "zero_entry_fraction": zero_entries / (n * x[0].numel()),
    }


@dataclass
class MaskingReport:
    """The verdict of :func:`masking_diagnostics`: ``gradient_masking_suspected``, its ``reasons`` (one
    sentence each) and the numbers behind every check (``checks``)."""

    gradient_masking_suspected: bool
    reasons: list[str]
    checks: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "gradient_masking_suspected": self.gradient_masking_suspected,
            "reasons": list(self.reasons),
            "checks": self.checks,
        }


def masking_diagnostics(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    curve: RobustnessCurve | None = None,
    *,
    loss: str = "ce",
    dtype: torch.dtype | None = None,
    tolerance: float = 0.02,
    unbounded_accuracy: float = 0.05,
    steps: int = 20,
    box: tuple[float, float] = BOX,
    zero_gradient_limit: float = 0.05,
) -> MaskingReport:
    """The five checks of the module docstring on ``model`` (with the attacks' ``loss`` and ``dtype``).

    ``curve``: a :class:`RobustnessCurve` of the same model and attack settings (checks 1, 3 and 4 use it;
    without one they are skipped). Check 2 runs PGD from the clean inputs with ``eps`` = the box width.
    ``tolerance``: accuracy differences up to this are noise; ``unbounded_accuracy``: the most accuracy a
    working attack may leave at the unbounded budget; ``zero_gradient_limit``: the most inputs with an all-zero,
    underflowed or non-finite gradient before that alone raises suspicion.
    """
    from neuromodels.analysis.robustness.attacks import pgd

    x, y = check_classifier_inputs(model, x, y, box)
    low, high = _check_box(box)
    reasons: list[str] = []
    checks: dict[str, Any] = {}
    if curve is not None:
        table = curve.accuracy
        rising = {}
        for name in table["attack"].values:
            values = table.sel(attack=name).values
            jumps = np.diff(values)
            if len(jumps) and jumps.max() > tolerance:
                rising[str(name)] = float(jumps.max())
        checks["accuracy_rises_with_eps"] = rising
        if rising:
            reasons.append(
                f"accuracy rises with epsilon for {', '.join(rising)} (by up to "
                f"{max(rising.values()):.3f}): a stronger budget cannot help the model"
            )
        attacks = [str(a) for a in table["attack"].values]
        if "fgsm" in attacks:
            iterative = [a for a in ("bim", "pgd") if a in attacks]
            worse = {a: float((table.sel(attack=a) - table.sel(attack="fgsm")).max()) for a in iterative}
            worse = {a: v for a, v in worse.items() if v > tolerance}
            checks["iterative_worse_than_single_step"] = worse
            if worse:
                reasons.append(
                    f"iterative attack(s) {', '.join(worse)} leave more accuracy than single-step FGSM "
                    f"(by up to {max(worse.values()):.3f})"
                )
        white = [a for a in ("fgsm", "bim", "pgd", "ll") if a in attacks]
        if "spsa" in attacks and white:
            best_white = table.sel(attack=white).min("attack")
            gap = float((best_white - table.sel(attack="spsa")).max())
            checks["gradient_free_advantage"] = gap
            if gap > tolerance:
                reasons.append(f"gradient-free SPSA beats every white-box attack (accuracy lower by {gap:.3f})")
    unbounded = high - low
    clean = accuracy_mask(model, x, y)
    # from the clean input (no random start: a random point of the whole box is a noise image, which a model
    # may misclassify whatever its gradients)
    adversarial = pgd(model, x, y, unbounded, steps=steps, loss=loss, dtype=dtype, box=box, random_start=False)
    survivors = clean & accuracy_mask(model, adversarial, y)
    remaining = float(survivors.double().mean())
    checks["unbounded_pgd_accuracy"] = remaining
    # where the survivors' PGD ended: an exactly zero input gradient of the logit margin means the logits
    # themselves are flat there (a dead region, e.g. every unit of a layer off), not a saturated softmax
    flat = (
        gradient_statistics(model, adversarial[survivors], y[survivors], loss="margin", dtype=dtype, box=box)[
            "zero_gradient_fraction"
        ]
        if bool(survivors.any())
        else 0.0
    )
    checks["unbounded_pgd_flat_logits_fraction"] = flat
    if remaining > unbounded_accuracy:
        reasons.append(
            f"PGD with an unbounded budget (eps = {unbounded:g}, the whole box) leaves accuracy "
            f"{remaining:.3f} > {unbounded_accuracy}: the attack's gradient does not lead anywhere"
            + (
                f"; for {flat:.0%} of the surviving inputs it stalled where the logits are flat (exactly zero "
                "input gradient of the logit margin: a dead region of the network, e.g. every unit of a layer "
                "off), where a gradient attack has no direction to follow, so their robustness is not established"
                if flat > 0.5
                else ""
            )
        )
    stats = (
        gradient_statistics(model, x[clean], y[clean], loss=loss, dtype=dtype, box=box)
        if bool(clean.any())
        else {
            "zero_gradient_fraction": 0.0,
            "subnormal_gradient_fraction": 0.0,
            "nonfinite_gradient_fraction": 0.0,
            "zero_entry_fraction": 0.0,
        }
    )
    checks["gradients"] = stats
    bad = stats["zero_gradient_fraction"] + stats["subnormal_gradient_fraction"] + stats["nonfinite_gradient_fraction"]
    if bad > zero_gradient_limit:
        reasons.append(
            f"input gradients vanish or break on correctly classified inputs: all zero for "
            f"{stats['zero_gradient_fraction']:.3f}, underflowed (subnormal) for "
            f"{stats['subnormal_gradient_fraction']:.3f}, non-finite for "
            f"{stats['nonfinite_gradient_fraction']:.3f} of them"
        )
    checks["settings"] = {
        "loss": loss,
        "dtype": str(dtype or x.dtype),
        "tolerance": tolerance,
        "unbounded_accuracy": unbounded_accuracy,
        "zero_gradient_limit": zero_gradient_limit,
    }
    return MaskingReport(bool(reasons), reasons, checks)

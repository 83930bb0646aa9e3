"""The saturating-network reproduction on MNIST (reduced scale), both sides of the argument.

:func:`train_saturating_classifier` trains an MLP or CNN through
:func:`neuromodels.fitting.classification.train_classifier`, with the saturation penalty of
:mod:`neuromodels.fitting.saturation` when ``saturation > 0``. :func:`evaluate_model` measures everything the
``robustness`` command reports. :func:`reproduce_saturating_networks` is the reproduction run by the slow test
and plotted in ``docs/robustness.md``: on ``../shared/data/mnist-t10k`` (the MNIST *test* file: 8,000 images
to train, 2,000 to test; a reduced scale, stated as such), baseline and saturating networks are attacked

1. as in Nayebi & Ganguli (2017): FGSM / BIM / least-likely with cross-entropy gradients in float32;
2. as in Brendel & Bethge (2017): the same attacks on the logit margin, in float64, and a gradient-free attack.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuromodels._figures import new_figure, save_figure
from neuromodels.errors import ConfigError

__all__ = [
    "load_mnist_split",
    "train_saturating_classifier",
    "evaluate_model",
    "reproduce_saturating_networks",
    "plot_robustness_curves",
    "plot_examples",
    "linear_kurtosis_demo",
    "hard_softmax_demo",
]


def load_mnist_split(
    n_train: int = 8000, n_test: int = 2000, path: str | os.PathLike[str] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_test, y_test)`` from the MNIST IDX file: images ``(n, 1, 28, 28)`` in [0, 1]; the
    first ``n_train`` images train, the next ``n_test`` test."""
    from neuromodels.datasets.images import load_mnist

    images = load_mnist(path, limit=n_train + n_test)
    if len(images) < n_train + n_test:
        raise ConfigError(f"the MNIST file has {len(images)} images, fewer than n_train + n_test = {n_train + n_test}")
    x = torch.from_numpy(np.asarray(images.values, dtype=np.float32) / 255.0)[:, None]
    y = torch.from_numpy(np.asarray(images["label"].values, dtype=np.int64))
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def train_saturating_classifier(
    kind: str,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    saturation: float = 0.0,
    nonlinearity: str = "relu",
    epochs: int = 12,
    warmup_epochs: int | None = None,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
) -> tuple[torch.nn.Module, Any]:
    """Build ``kind`` (``mlp``/``cnn``, :func:`~neuromodels.classifiers.make_classifier`) and train it on ``(x, y)``
    with :func:`neuromodels.fitting.classification.train_classifier` (cross-entropy), the last 1/8 of the data held
    out for validation, all epochs run and the last weights kept, and ``lambda = saturation`` ramped in over
    ``warmup_epochs`` (default ``epochs // 3``; ``saturation = 0``: the baseline). Returns ``(model in eval mode,
    history)``."""
    from neuromodels.classifiers import make_classifier
    from neuromodels.fitting.classification import train_classifier
    from neuromodels.fitting.saturation import SaturationPenalty

    torch.manual_seed(seed)
    model = make_classifier(kind, nonlinearity)
    regularisers = []
    if saturation > 0:
        regularisers.append(
            SaturationPenalty(
                model, saturation, nonlinearity, warmup_epochs=epochs // 3 if warmup_epochs is None else warmup_epochs
            )
        )
    n_valid = max(len(x) // 8, 1)
    history = train_classifier(
        model,
        (x[:-n_valid], y[:-n_valid]),
        (x[-n_valid:], y[-n_valid:]),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        restore_best=False,
        regularisers=regularisers,
        seed=seed,
        progress=progress,
        checkpoint_dir=checkpoint_dir,
    )
    for reg in regularisers:
        reg.remove()
    return model.eval(), history


ATTACK_SETUPS = {
    # name: (loss, dtype) -- the paper's naive float32 cross-entropy, then Brendel & Bethge's stabilised versions
    "ce-float32": ("ce", None),
    "margin-float32": ("margin", None),
    "ce-float64": ("ce", torch.float64),
}


def evaluate_model(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    attacks: Sequence[str] = ("fgsm", "bim", "pgd", "ll", "spsa"),
    eps: Sequence[float] = (0.05, 0.1, 0.2, 0.3),
    setups: Sequence[str] = tuple(ATTACK_SETUPS),
    nonlinearity: str = "relu",
    steps: int = 20,
    spsa_samples: int = 64,
    spsa_steps: int = 20,
    seed: int = 0,
    n_spectrum: int = 20,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Accuracy-vs-eps curves under each attack setup, the masking verdict of each, saturation per layer,
    weight kurtosis and the input-sensitivity spectrum; JSON-ready except ``curves`` (RobustnessCurve objects)."""
    from neuromodels.analysis.robustness.analyses import saturation_fraction, sensitivity_spectrum, weight_kurtosis
    from neuromodels.analysis.robustness.evaluate import masking_diagnostics, robustness_curve

    curves, verdicts = {}, {}
    for setup in setups:
        if setup not in ATTACK_SETUPS:
            raise ConfigError(f"unknown attack setup {setup!r}; choose from {list(ATTACK_SETUPS)}")
        loss, dtype = ATTACK_SETUPS[setup]
        # gradient-free SPSA and L-BFGS once each (neither depends on how the other attacks take gradients)
        names = [
            a
            for a in attacks
            if not (a == "lbfgs" and setup != "ce-float32") and not (a == "spsa" and setup != "margin-float32")
        ]
        curves[setup] = robustness_curve(
            model,
            x,
            y,
            names,
            eps,
            loss=loss,
            dtype=dtype,
            steps=steps,
            seed=seed,
            spsa_samples=spsa_samples,
            spsa_steps=spsa_steps,
            progress=progress,
        )
        verdicts[setup] = masking_diagnostics(model, x, y, curves[setup], loss=loss, dtype=dtype, steps=steps)
    spectrum = sensitivity_spectrum(model, x[:n_spectrum])
    return {
        "curves": curves,
        "masking": {setup: report.as_dict() for setup, report in verdicts.items()},
        "saturation": {str(k): float(v) for k, v in zip(*_pairs(saturation_fraction(model, x, nonlinearity)))},
        "kurtosis": {str(k): float(v) for k, v in zip(*_pairs(weight_kurtosis(model)))},
        "spectrum": spectrum.values.tolist(),
        "participation_ratio": spectrum.attrs["participation_ratio"],
    }


def _pairs(array) -> tuple[list[Any], list[float]]:
    return list(array[array.dims[0]].values), list(array.values)


# ------------------------------------------------------------------------------------------------ figures
def plot_robustness_curves(curves: dict[str, Any], title: str = ""):
    """One panel per attack setup: accuracy against eps, one line per attack; returns the figure."""
    fig, axes = new_figure(1, len(curves), figsize=(4.2 * len(curves), 3.4), sharey=True, squeeze=False)
    for ax, (setup, curve) in zip(axes[0], curves.items()):
        table = curve.accuracy
        eps = [0.0, *table["eps"].values.tolist()]
        for attack in table["attack"].values:
            ax.plot(eps, [curve.clean_accuracy, *table.sel(attack=attack).values.tolist()], marker="o", label=attack)
        ax.set_title(setup)
        ax.set_xlabel("epsilon (L-inf)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("accuracy")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_examples(x: torch.Tensor, examples: dict[str, torch.Tensor], n: int = 6):
    """Clean images (top row) and each attack's adversarial images (one row per attack)."""
    rows = [("clean", x), *examples.items()]
    fig, axes = new_figure(len(rows), n, figsize=(1.3 * n, 1.35 * len(rows)), squeeze=False)
    for r, (name, images) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            ax.imshow(images[c].reshape(images[c].shape[-2:]).cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(name, fontsize=8)
    fig.tight_layout()
    return fig


# -------------------------------------------------------------------------------------- the linear argument
def linear_kurtosis_demo(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    *,
    l1_strengths: Sequence[float] = (0.0, 1e-4, 1e-3),
    epochs: int = 10,
    seed: int = 0,
    progress: bool | None = None,
) -> list[dict[str, float]]:
    """Linear softmax classifiers trained with increasing L1 weight penalties (heavier-tailed, more kurtotic
    weights): per model, test accuracy, weight excess kurtosis, median ``||w||_1/||w||_2`` of the deciding class
    pair, the closed-form median minimal L2 and L-inf perturbations (:func:`linear_margin_scaling`)."""
    import torch.nn.functional as F

    from neuromodels.analysis.robustness.analyses import linear_margin_scaling
    from neuromodels.fitting import fit

    rows = []
    for strength in l1_strengths:
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(x_train[0].numel(), 10))
        regs = [_L1Penalty(strength)] if strength > 0 else []
        fit(
            model,
            (x_train, y_train),
            loss=F.cross_entropy,
            epochs=epochs,
            batch_size=64,
            lr=1e-3,
            patience=None,
            regularisers=regs,
            seed=seed,
            progress=progress,
        )
        layer = model[1]
        scaling = linear_margin_scaling(layer.weight.detach(), layer.bias.detach(), x_test.flatten(1), y_test)
        rows.append(
            {
                "l1": float(strength),
                "accuracy": scaling.attrs["n_correct"] / scaling.attrs["n"],
                "weight_excess_kurtosis": scaling.attrs["weight_excess_kurtosis"],
                "median_norm_ratio": scaling.attrs["median_norm_ratio"],
                "sqrt_d": scaling.attrs["sqrt_d"],
                "median_l2_distance": scaling.attrs["median_l2_distance"],
                "median_linf_distance": scaling.attrs["median_linf_distance"],
            }
        )
    return rows


class _L1Penalty:
    """``strength * sum |w|`` over weight matrices (a Regulariser for fit)."""

    def __init__(self, strength: float) -> None:
        self.strength = float(strength)

    def penalty(self, model: torch.nn.Module) -> torch.Tensor:
        return self.strength * sum(p.abs().sum() for name, p in model.named_parameters() if name.endswith("weight"))


# --------------------------------------------------------------------------------------------- reproduction
def reproduce_saturating_networks(
    out_dir: str | os.PathLike[str] | None = None,
    *,
    kinds: Sequence[str] = ("mlp", "cnn"),
    strengths: Sequence[float] = (0.0, 0.01),
    n_train: int = 8000,
    n_test: int = 2000,
    n_attack: int = 200,
    eps: Sequence[float] = (0.05, 0.1, 0.2, 0.3),
    epochs: int = 8,
    steps: int = 10,
    seed: int = 0,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Train baseline (``lambda = 0``) and saturating networks of each kind, evaluate them (first ``n_attack``
    test images for the attacks, all ``n_test`` for clean accuracy), run the linear-model demonstration, and
    (with ``out_dir``) write ``robustness_<kind>_lambda<lambda>.png``, ``robustness_linear_kurtosis.png`` and
    ``robustness_sensitivity.png``.
    Returns the numbers (JSON-ready)."""
    from neuromodels.analysis.robustness.evaluate import accuracy

    x_train, y_train, x_test, y_test = load_mnist_split(n_train, n_test)
    x_attack, y_attack = x_test[:n_attack], y_test[:n_attack]
    results: dict[str, Any] = {
        "scale": f"reduced: {n_train} train / {n_test} test images of MNIST t10k, attacks on {n_attack}",
        "models": {},
    }
    spectra = {}
    for kind in kinds:
        for strength in strengths:
            model, history = train_saturating_classifier(
                kind, x_train, y_train, saturation=strength, epochs=epochs, seed=seed, progress=progress
            )
            report = evaluate_model(model, x_attack, y_attack, eps=eps, steps=steps, seed=seed, progress=progress)
            curves = report.pop("curves")
            key = f"{kind}-lambda{strength:g}"
            report["clean_accuracy"] = accuracy(model, x_test, y_test)
            report["accuracy"] = {setup: curve.as_dict() for setup, curve in curves.items()}
            report["epochs"] = len(history)
            results["models"][key] = report
            spectra[key] = report["spectrum"]
            if kind == "mlp" and strength == max(strengths):
                results["hard_softmax"] = hard_softmax_demo(
                    model, x_attack, y_attack, eps=eps, steps=steps, seed=seed, progress=progress
                )
            if out_dir is not None:
                save_figure(
                    plot_robustness_curves(curves, f"{kind}, lambda = {strength:g}"),
                    Path(out_dir) / f"robustness_{kind}_lambda{strength:g}.png",
                )
    results["linear"] = linear_kurtosis_demo(x_train, y_train, x_test, y_test, seed=seed, progress=progress)
    if out_dir is not None:
        save_figure(_plot_spectra(spectra), Path(out_dir) / "robustness_sensitivity.png")
        save_figure(_plot_linear(results["linear"]), Path(out_dir) / "robustness_linear_kurtosis.png")
    return results


def hard_softmax_demo(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    scale: float = 1e4,
    eps: Sequence[float] = (0.05, 0.1, 0.2, 0.3),
    steps: int = 10,
    seed: int = 0,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Brendel & Bethge's mechanism made on purpose: ``model`` with its logits times ``scale``
    (:class:`~neuromodels.classifiers.ScaledLogits`, same predictions, hard float32 softmax), attacked with
    float32 cross-entropy and with the logit margin; accuracy tables and masking verdicts of both."""
    from neuromodels.analysis.robustness.evaluate import masking_diagnostics, robustness_curve
    from neuromodels.classifiers import ScaledLogits

    masked = ScaledLogits(model, scale).eval()
    out: dict[str, Any] = {"scale": scale}
    for setup in ("ce-float32", "margin-float32"):
        loss, dtype = ATTACK_SETUPS[setup]
        curve = robustness_curve(
            masked, x, y, ["fgsm", "bim", "pgd"], eps, loss=loss, dtype=dtype, steps=steps, seed=seed, progress=progress
        )
        out[setup] = {
            **curve.as_dict(),
            "masking": masking_diagnostics(masked, x, y, curve, loss=loss, steps=steps).as_dict(),
        }
    return out


def _plot_spectra(spectra: dict[str, list[float]]):
    fig, ax = new_figure(figsize=(4.8, 3.4))
    for key, values in spectra.items():
        ax.semilogy(np.arange(1, len(values) + 1), np.maximum(values, 1e-12), marker="o", label=key)
    ax.set_xlabel("rank")
    ax.set_ylabel("eigenvalue of J^T J (mean over images)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _plot_linear(rows: list[dict[str, float]]):
    fig, axes = new_figure(1, 2, figsize=(8, 3.2))
    kurt = [r["weight_excess_kurtosis"] for r in rows]
    axes[0].plot(kurt, [r["median_norm_ratio"] for r in rows], marker="o")
    axes[0].set_xlabel("weight excess kurtosis")
    axes[0].set_ylabel("median ||w||_1 / ||w||_2")
    axes[1].plot(kurt, [r["median_linf_distance"] for r in rows], marker="o", label="L-inf")
    axes[1].plot(kurt, [r["median_l2_distance"] / r["sqrt_d"] for r in rows], marker="s", label="L2 / sqrt(d)")
    axes[1].set_xlabel("weight excess kurtosis")
    axes[1].set_ylabel("median minimal perturbation")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig

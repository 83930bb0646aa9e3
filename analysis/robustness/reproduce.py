"""The saturating-network reproduction on MNIST (reduced scale), both sides of the argument.

:func:`train_saturating_classifier` trains an MLP or CNN through
:func:`neuromodels.fitting.classification.train_classifier`, with the saturation penalty of
:mod:`neuromodels.fitting.saturation` when ``saturation > 0``. :func:`evaluate_model` measures everything the
``robustness`` command reports. :func:`reproduce_saturating_networks` is the reproduction run by the slow test
and plotted in ``docs/robustness.md``: on ``../shared/data/mnist-t10k`` (the MNIST *test* file: 8,000 images
to train, 2,000 to test; a reduced scale, stated as such), baseline and saturating networks are attacked

1. as in Nayebi & Ganguli (2017): FGSM / BIM / least-likely with cross-entropy gradients in float32;
2. as in Brendel & Bethge (2017): the same attacks on the logit margin, in float64, and a gradient-free attack;
3. with Szegedy et al.'s L-BFGS, minimal perturbations in float32 and float64 (:func:`lbfgs_table`).

:func:`residue_analysis` describes the inputs that no attack moves (on the saturating MLP: a dead region of the
box, every first-layer unit off, that the attacks throw every input into).
"""

from __future__ import annotations

import math
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
    "lbfgs_table",
    "lbfgs_accuracy",
    "residue_analysis",
    "interpolation_bound",
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
    n_lbfgs: int = 50,
    nonlinearity: str = "relu",
    seed: int = 0,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Train baseline (``lambda = 0``) and saturating networks of each kind, evaluate them (first ``n_attack``
    test images for the attacks, all ``n_test`` for clean accuracy), run L-BFGS on the first ``n_lbfgs`` test
    images of every model (:func:`lbfgs_table`, float32 and float64; 0 skips it), describe the inputs that survive
    an unbounded PGD (:func:`residue_analysis`), run the linear-model demonstration, and
    (with ``out_dir``) write ``robustness_<kind>_lambda<lambda>.png``, ``robustness_linear_kurtosis.png`` and
    ``robustness_sensitivity.png``. ``nonlinearity``: the hidden units' (``relu``, ``sigmoid``, ``tanh``,
    ``hard_tanh``), penalised with its own ``psi_c``; other than ``relu``, it is appended to the model keys
    (``mlp-lambda0.01-sigmoid``) and to every figure name (``robustness_sensitivity-sigmoid.png``), so runs with
    different nonlinearities can share ``out_dir``.
    Returns the numbers (JSON-ready)."""
    from neuromodels.analysis.robustness.evaluate import accuracy

    x_train, y_train, x_test, y_test = load_mnist_split(n_train, n_test)
    x_attack, y_attack = x_test[:n_attack], y_test[:n_attack]
    results: dict[str, Any] = {
        "scale": f"reduced: {n_train} train / {n_test} test images of MNIST t10k, attacks on {n_attack}",
        "models": {},
    }
    spectra = {}
    trained: dict[str, torch.nn.Module] = {}
    suffix = "" if nonlinearity == "relu" else f"-{nonlinearity}"
    for kind in kinds:
        for strength in strengths:
            model, history = train_saturating_classifier(
                kind,
                x_train,
                y_train,
                saturation=strength,
                nonlinearity=nonlinearity,
                epochs=epochs,
                seed=seed,
                progress=progress,
            )
            report = evaluate_model(
                model,
                x_attack,
                y_attack,
                eps=eps,
                steps=steps,
                nonlinearity=nonlinearity,
                seed=seed,
                progress=progress,
            )
            curves = report.pop("curves")
            key = f"{kind}-lambda{strength:g}{suffix}"
            report["clean_accuracy"] = accuracy(model, (x_test, y_test))
            report["accuracy"] = {setup: curve.as_dict() for setup, curve in curves.items()}
            report["epochs"] = len(history)
            report["residue"] = residue_analysis(
                model, x_attack, y_attack, nonlinearity=nonlinearity, steps=steps, seed=seed
            )
            results["models"][key] = report
            trained[key] = model
            spectra[key] = report["spectrum"]
            if kind == "mlp" and strength == max(strengths):
                results["hard_softmax"] = hard_softmax_demo(
                    model, x_attack, y_attack, eps=eps, steps=steps, seed=seed, progress=progress
                )
            if out_dir is not None:
                save_figure(
                    plot_robustness_curves(curves, f"{kind}, lambda = {strength:g}{suffix}"),
                    Path(out_dir) / f"robustness_{kind}_lambda{strength:g}{suffix}.png",
                )
    if n_lbfgs > 0:
        results["lbfgs"] = lbfgs_table(trained, x_test[:n_lbfgs], y_test[:n_lbfgs], progress=progress)
    results["linear"] = linear_kurtosis_demo(x_train, y_train, x_test, y_test, seed=seed, progress=progress)
    if out_dir is not None:
        # one name per nonlinearity, so that a tanh run beside the ReLU one overwrites none of its figures
        save_figure(_plot_spectra(spectra), Path(out_dir) / f"robustness_sensitivity{suffix}.png")
        save_figure(_plot_linear(results["linear"]), Path(out_dir) / f"robustness_linear_kurtosis{suffix}.png")
    return results


LBFGS_RADII = (0.5, 1.0, 1.5, 2.0, 3.0)  # L2 radii of lbfgs_table's accuracy_at_l2


def lbfgs_table(
    models: dict[str, torch.nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    dtypes: Sequence[torch.dtype | None] = (None, torch.float64),
    loss: str = "ce",
    target: str = "runner_up",
    search_steps: int = 6,
    max_iter: int = 100,
    progress: bool | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Szegedy et al.'s L-BFGS attack (:func:`~neuromodels.analysis.robustness.attacks.lbfgs`) on already
    trained ``models`` (``{name: model}``), each in every dtype of ``dtypes`` (``None``: the model's own,
    float32; ``torch.float64``: a float64 copy), on the inputs of ``(x, y)`` that the model classifies
    correctly. Returns ``{name: {dtype: row}}``, each row with ``n`` (inputs attacked), ``success_rate``
    (target reached), the ``median_l2`` / ``mean_l2`` / ``median_linf`` of the successful perturbations (None
    when none succeeded), ``l2`` (each input's L2 norm, None where it failed) and ``accuracy_at_l2`` (accuracy
    on all of ``x`` at each radius of ``LBFGS_RADII``, :func:`lbfgs_accuracy`), JSON-ready."""
    from neuromodels.analysis.robustness.attacks import lbfgs
    from neuromodels.analysis.robustness.evaluate import accuracy_mask

    table: dict[str, dict[str, dict[str, Any]]] = {}
    for name, model in models.items():
        correct = accuracy_mask(model, x, y)
        xs, ys = x[correct], y[correct]
        table[name] = {}
        for dtype in dtypes:
            label = str(dtype or x.dtype).replace("torch.", "")
            if len(xs) == 0:
                table[name][label] = {
                    "n": 0,
                    "success_rate": None,
                    "median_l2": None,
                    "mean_l2": None,
                    "median_linf": None,
                    "l2": [],
                    "accuracy_at_l2": dict.fromkeys(map(str, LBFGS_RADII), 0.0),
                }
                continue
            adversarial, success = lbfgs(
                model,
                xs,
                ys,
                target=target,
                loss=loss,
                search_steps=search_steps,
                max_iter=max_iter,
                dtype=dtype,
                progress=progress,
            )
            delta = (adversarial.double() - xs.double()).flatten(1)
            l2, linf = delta.norm(dim=1)[success].numpy(), delta.abs().amax(1)[success].numpy()
            table[name][label] = {
                "n": len(xs),
                "success_rate": float(success.double().mean()),
                "median_l2": float(np.median(l2)) if len(l2) else None,
                "mean_l2": float(np.mean(l2)) if len(l2) else None,
                "median_linf": float(np.median(linf)) if len(linf) else None,
                "l2": [float(v) if ok else None for v, ok in zip(delta.norm(dim=1).numpy(), success.tolist())],
            }
            row = table[name][label]
            row["accuracy_at_l2"] = dict(zip(map(str, LBFGS_RADII), lbfgs_accuracy(row, LBFGS_RADII, len(x))))
    return table


def lbfgs_accuracy(row: dict[str, Any], radii: Sequence[float], n_images: int) -> list[float]:
    """Accuracy under L-BFGS at each L2 radius ``r``, from a row of :func:`lbfgs_table`: the fraction of the
    ``n_images`` inputs the table was given that are classified correctly and not turned into the target within
    ``||delta||_2 <= r`` (``row["n"]`` correct inputs, ``row["l2"]`` the norm of each one's perturbation, ``None``
    where the attack failed). L-BFGS looks for the smallest perturbation, not one within a budget, so this is
    its accuracy-vs-epsilon curve (in L2)."""
    if not 0 <= row["n"] <= n_images or len(row["l2"]) != row["n"]:
        raise ConfigError(f"row has {row['n']} attacked inputs and {len(row['l2'])} norms for {n_images} images")
    found = np.array([v for v in row["l2"] if v is not None], dtype=np.float64)
    return [float((row["n"] - np.count_nonzero(found <= r)) / n_images) for r in radii]


def interpolation_bound(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    partners: torch.Tensor,
    partner_labels: torch.Tensor,
    *,
    grid: int = 50,
) -> tuple[np.ndarray, np.ndarray]:
    """A gradient-free upper bound on each input's minimal perturbation: move ``x_i`` in a straight line towards
    every partner of another class, ``x_i + t (p - x_i)`` for ``t`` on a grid of ``grid`` steps in (0, 1], and
    keep, per line, the first point that changes the prediction away from ``y_i``. Returns ``(linf, l2)``, the
    smallest L-inf and the smallest L2 norm over the lines (``inf`` where no point on any line changes it). The points stay in the
    box and near real images, so a flat region elsewhere in the box cannot hide them."""
    from neuromodels.analysis.robustness.attacks import _EvalMode

    if grid < 1:
        raise ConfigError("interpolation_bound needs grid >= 1")
    linf, l2 = np.full(len(x), np.inf), np.full(len(x), np.inf)
    with _EvalMode(model), torch.no_grad():
        for i in range(len(x)):
            others = partners[partner_labels != y[i]]
            first = torch.full((len(others),), math.inf, dtype=torch.float64)  # first t that moves, per line
            for t in torch.arange(1, grid + 1, dtype=torch.float64) / grid:
                moved = model((x[i] + t * (others - x[i])).to(x.dtype)).argmax(1) != y[i]
                first = torch.where(moved & torch.isinf(first), t, first)
            hit = torch.isfinite(first)
            if bool(hit.any()):
                # along each line the norms grow with t: its first moving point is its smallest perturbation
                delta = (first[hit].view(-1, *[1] * (x.dim() - 1)) * (others[hit].double() - x[i].double())).flatten(1)
                candidates = (x[i].double() + delta.view(-1, *x.shape[1:])).to(x.dtype)
                delta = (candidates.double() - x[i].double()).flatten(1)
                linf[i] = float(delta.abs().amax(1).min())
                l2[i] = float(delta.norm(dim=1).min())
    return linf, l2


def residue_analysis(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    nonlinearity: str = "relu",
    steps: int = 10,
    radii: Sequence[float] = (1e-3, 1e-2, 0.1),
    samples: int = 20,
    n_random: int = 2000,
    n_others: int = 50,
    seed: int = 0,
) -> dict[str, Any]:
    """What the inputs that survive PGD with an unbounded budget (the masking diagnostic's check 2: eps = 1,
    ``steps`` sign steps of 0.25 from the clean input, cross-entropy) have in common, against the other
    correctly classified inputs ("others"): their labels; the fraction of saturated units per layer and of
    inputs with a layer *entirely* saturated (every ReLU off), at the clean inputs and where PGD ended; the
    fraction whose logits are flat where PGD ended (zero input gradient of the logit margin); how much the
    logits move under ``samples`` random sign perturbations of each L-inf radius in ``radii`` at the clean
    inputs; what the network does on ``n_random`` uniform random images of the box (fraction with a layer
    entirely saturated, most common prediction); and :func:`interpolation_bound` towards the correctly
    classified inputs of other classes (for the survivors and the first ``n_others`` others). JSON-ready."""
    from neuromodels.analysis.robustness.analyses import saturation_fraction
    from neuromodels.analysis.robustness.attacks import _EvalMode, pgd
    from neuromodels.analysis.robustness.evaluate import accuracy_mask, gradient_statistics

    clean = accuracy_mask(model, x, y)
    adversarial = pgd(model, x, y, 1.0, steps=steps, loss="ce", random_start=False)
    residue = clean & accuracy_mask(model, adversarial, y)
    others = clean & ~residue
    groups = {"residue": residue, "others": others}

    def layer_summary(inputs: torch.Tensor, mask: torch.Tensor) -> dict[str, Any]:
        if not bool(mask.any()):
            return {"saturated_fraction": {}, "layer_all_saturated_fraction": {}}
        table = saturation_fraction(model, inputs[mask], nonlinearity, per_input=True)
        return {
            "saturated_fraction": {str(k): float(v) for k, v in zip(table["layer"].values, table.mean("input").values)},
            "layer_all_saturated_fraction": {
                str(k): float(v) for k, v in zip(table["layer"].values, (table == 1).mean("input").values)
            },
        }

    generator = torch.Generator().manual_seed(seed)
    out: dict[str, Any] = {
        "n": len(x),
        "n_correct": int(clean.sum()),
        "n_residue": int(residue.sum()),
        "residue_labels": np.bincount(y[residue].numpy(), minlength=0).tolist(),
        "others_labels": np.bincount(y[others].numpy(), minlength=0).tolist(),
        "settings": {"eps": 1.0, "steps": steps, "loss": "ce", "radii": list(radii), "samples": samples, "seed": seed},
    }
    with _EvalMode(model), torch.no_grad():
        end_predictions = model(adversarial[residue]).argmax(1) if bool(residue.any()) else torch.zeros(0)
    out["residue_end_predictions"] = np.bincount(end_predictions.long().numpy(), minlength=0).tolist()
    for name, mask in groups.items():
        row: dict[str, Any] = {"clean": layer_summary(x, mask), "pgd_end": layer_summary(adversarial, mask)}
        row["pgd_end_flat_logits_fraction"] = (
            gradient_statistics(model, adversarial[mask], y[mask], loss="margin")["zero_gradient_fraction"]
            if bool(mask.any())
            else None
        )
        moves = {}
        with _EvalMode(model), torch.no_grad():
            base = model(x[mask])
            for radius in radii:
                changes, flipped = [], torch.zeros(int(mask.sum()), dtype=torch.bool)
                for _ in range(samples):
                    signs = torch.randint(0, 2, x[mask].shape, generator=generator).to(x.dtype) * 2 - 1
                    logits = model((x[mask] + radius * signs).clamp(0, 1))
                    changes.append((logits - base).abs().amax(1))
                    flipped |= logits.argmax(1) != y[mask]
                changes_all = torch.stack(changes)
                moves[f"{radius:g}"] = {
                    "median_max_logit_change": float(changes_all.median()) if changes_all.numel() else None,
                    "zero_change_fraction": float((changes_all == 0).double().mean()) if changes_all.numel() else None,
                    "flipped_fraction": float(flipped.double().mean()) if len(flipped) else None,
                }
        row["random_sign_perturbations"] = moves
        chosen = mask.nonzero().flatten()
        if name == "others":
            chosen = chosen[:n_others]
        linf, l2 = interpolation_bound(model, x[chosen], y[chosen], x[clean], y[clean])
        row["interpolation_linf"] = [float(v) for v in linf]
        row["interpolation_l2"] = [float(v) for v in l2]
        row["interpolation_median_linf"] = float(np.median(linf)) if len(linf) else None
        row["interpolation_median_l2"] = float(np.median(l2)) if len(l2) else None
        out[name] = row
    noise = torch.rand((n_random, *x.shape[1:]), generator=generator).to(x.dtype)
    table = saturation_fraction(model, noise, nonlinearity, per_input=True)
    with _EvalMode(model), torch.no_grad():
        counts = np.bincount(model(noise).argmax(1).numpy(), minlength=0)
    out["random_images"] = {
        "n": n_random,
        "layer_all_saturated_fraction": {
            str(k): float(v) for k, v in zip(table["layer"].values, (table == 1).mean("input").values)
        },
        "most_common_prediction": int(counts.argmax()),
        "most_common_prediction_fraction": float(counts.max() / n_random),
    }
    return out


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

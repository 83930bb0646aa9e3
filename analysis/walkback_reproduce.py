"""The Variational Walkback reproductions (CPU scale), run by the slow tests and plotted in docs/walkback.md.

* :func:`reproduce_spiral`: the 2-D spiral (the authors' ``experiment_spiral_online.sh`` trains on it), with our
  heating schedule (:data:`SPIRAL_SETTINGS`) and 30 epochs where the authors ran 4,000;
  the held-out bound per epoch, MMD / energy distance of cooled samples and of a chain 3x longer than training
  against held-out data, beside the Gaussian and diffusion baselines.
* :func:`reproduce_spiral_seeds`: the same training at other seeds, sample quality only (no baselines).
* :func:`reproduce_objective_ablation`: the same run with ``objective="paper"`` and ``"released"``.
* :func:`reproduce_digits`: scikit-learn's 8x8 digits; Parzen log-likelihood, nearest-neighbour distances and
  the cooling chain as an image grid (the paper's figure style, on MNIST there).
* :func:`reproduce_mnist`: the same on MNIST at reduced scale (5,000 images of ``../shared/data/mnist-t10k``).

Each returns a JSON-ready summary and, with ``out_dir``, writes its figures (``walkback_*.png``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = [
    "reproduce_spiral",
    "reproduce_spiral_seeds",
    "reproduce_objective_ablation",
    "reproduce_digits",
    "SPIRAL_SETTINGS",
    "SPIRAL_SAMPLING_SEEDS",
    "DIGITS_SETTINGS",
    "reproduce_mnist",
    "MNIST_SETTINGS",
]

# The spiral operator: alpha 0.5 and a fixed standard deviation sigma = 0.01 (the spiral's own noise; the
# authors' script, experiment_spiral_online.sh, has --sigma 0.009 multiplied by a learned softplus and used as a
# variance in its likelihood). The heating schedule is ours, chosen by the variants in docs/walkback.md: 10 steps
# at T = 1 (the "N1 steps" of Algorithm 1), then 25 steps with factor 1.2 (T_K = 1.2^25 = 95) where the
# script heats 30 steps with factor 1.1 (T_K = 15.9); batch 1,000 (the script: 5,000), Adam 5e-4 decayed by 0.9
# per epoch for 30 epochs (the script: 1e-4 for 4,000 epochs; our CPU budget). Per-step batch normalisation
# (the authors' train_mog_different_batchnorm.py, lines 141-146 and 157-161; their README: per-step parameters
# "improve the result considerably" and were needed on the mixture of Gaussians) brings the cooled samples within
# 2x of the held-out floor, at the price of a far lower held-out bound (docs/walkback.md). Sampling with an
# exponential moving average of the weights (decay 0.999 per update, about two epochs; our addition, in neither
# the paper nor the authors' code) makes that hold at training seeds 0, 1 and 2, where the last weights of the
# same run swing by 2x between epochs; the previous defaults (15 epochs, decay 0.8, no average) held at seed 0
# only (docs/walkback.md, per-seed table).
SPIRAL_SETTINGS: dict[str, Any] = {
    "model": {
        "hidden": (128, 128),
        "alpha": 0.5,
        "sigma": 0.01,
        "learn_sigma": False,
        "n_steps": 35,
        "steps_at_one": 10,
        "temperature_factor": 1.2,
        "per_step_norm": "batch",
    },
    "train": {"epochs": 30, "batch_size": 1000, "lr": 5e-4, "lr_decay": 0.9, "ema": 0.999},
    "n": 20_000,
}
# sampling seeds over which reproduce_spiral averages the MMD ratios (one seed's ratio varies by up to 2x)
SPIRAL_SAMPLING_SEEDS = tuple(range(10))
DIGITS_SETTINGS: dict[str, Any] = {
    "model": {
        "hidden": (512, 512),
        "alpha": 0.5,
        "sigma": 0.05,
        "learn_sigma": True,
        "n_steps": 10,
        "temperature_factor": 1.5,
    },
    "train": {"epochs": 40, "batch_size": 100, "lr": 1e-3, "lr_decay": 0.95},
}
# MNIST at CPU scale: the first 5,000 t10k images (4,000 training / 1,000 held-out), the MNIST script's heating
# factor 1.5 and batch 100 (experiment_online_mnist.sh), an MLP of 512-512 where the script has 1,200 units, the
# digits' learned sigma 0.05 and 10 heating steps, 10 epochs.
MNIST_SETTINGS: dict[str, Any] = {
    "model": dict(DIGITS_SETTINGS["model"]),
    "train": {"epochs": 10, "batch_size": 100, "lr": 1e-3, "lr_decay": 0.9},
    "n": 5000,
    "diffusion_box": (0.0, 1.0),  # pixels: the diffusion sampler clips its predicted images, as Ho et al.'s does
}


def _run(
    source: str,
    settings: dict[str, Any],
    *,
    seed: int,
    objective: str = "paper",
    diffusion_epochs: int | None = None,
    progress: bool | None = False,
) -> dict[str, Any]:
    import torch

    from neuromodels.analysis.walkback_report import evaluate_walkback
    from neuromodels.datasets.generative import load_points, split_points
    from neuromodels.fitting.walkback import train_walkback
    from neuromodels.walkback import TransitionOperator

    data = load_points(source, n=settings.get("n"), seed=seed)
    train, held_out = split_points(data, seed=seed)
    torch.manual_seed(seed)
    model = TransitionOperator(data.dim, image_shape=data.image_shape, **settings["model"])
    fit = train_walkback(model, train, held_out, objective=objective, seed=seed, progress=progress, **settings["train"])
    # the diffusion baseline gets as many gradient updates as the operator (one per heating step)
    epochs = diffusion_epochs
    if epochs is None:
        epochs = settings["train"]["epochs"] * settings["model"]["n_steps"]
    evaluation = evaluate_walkback(
        model,
        train,
        held_out,
        image_shape=data.image_shape,
        diffusion_epochs=epochs,
        diffusion_box=settings.get("diffusion_box"),
        batch_size=settings["train"]["batch_size"],
        seed=seed,
        progress=progress,
    )
    return {"data": data, "held_out": held_out, "fit": fit, "evaluation": evaluation}


def _ratios(comparison: dict[str, dict[str, float]], key: str) -> dict[str, float]:
    floor = comparison["reference"][key]
    return {name: row[key] / floor for name, row in comparison.items() if key in row and name != "reference"}


def _figures(run: dict[str, Any], out_dir: str | os.PathLike[str] | None, stem: str) -> list[str]:
    if out_dir is None:
        return []
    from neuromodels._figures import save_figure
    from neuromodels.analysis.walkback_report import plot_bound, plot_cooling_chain

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shape = run["data"].image_shape
    save_figure(plot_bound(run["fit"].history), out / f"{stem}_bound.png")
    save_figure(
        plot_cooling_chain(run["evaluation"].chain, shape, reference=None if shape else run["held_out"], panels=8),
        out / f"{stem}_cooling.png",
    )
    return [f"{stem}_bound.png", f"{stem}_cooling.png"]


def reproduce_spiral(
    out_dir: str | os.PathLike[str] | None = None, *, seed: int = 0, progress: bool | None = False
) -> dict[str, Any]:
    """Train on the spiral (:data:`SPIRAL_SETTINGS`) and score samples; ``mmd_ratio``: each method's MMD to
    held-out data divided by the MMD between the two held-out halves (1 is a perfect sampler)."""
    run = _run("spiral", SPIRAL_SETTINGS, seed=seed, progress=progress)
    comparison = run["evaluation"].summary["comparison"]
    return {
        "settings": SPIRAL_SETTINGS,
        "history": run["fit"].history.as_dict(),
        "held_out_bound": run["evaluation"].summary["held_out_bound"],
        "comparison": comparison,
        "mmd_ratio": _ratios(comparison, "mmd"),
        "energy_ratio": _ratios(comparison, "energy_distance"),
        "mmd_ratio_seeds": _seed_ratios(run["fit"].model, run["held_out"], SPIRAL_SAMPLING_SEEDS),
        "figures": _figures(run, out_dir, "walkback_spiral"),
    }


def _seed_ratios(model: Any, held_out: Any, seeds: tuple[int, ...]) -> dict[str, Any]:
    """MMD ratios of the cooled samples and of the 3x chains for each sampling seed, and their means: one
    seed's ratio is a noisy estimate (the floor itself is an MMD between two sets of 2,000 points)."""
    import numpy as np
    import torch

    from neuromodels.analysis.walkback_report import point_set_scores

    n = len(held_out) // 2
    per_seed: dict[str, list[float]] = {"walkback": [], "walkback_3x": []}
    for sampling_seed in seeds:
        chain = model.generate(n, extra_steps=2 * model.n_steps, generator=torch.Generator().manual_seed(sampling_seed))
        scores = point_set_scores(
            {"walkback": chain[model.n_steps].numpy(), "walkback_3x": chain[-1].numpy()}, held_out
        )
        for name in per_seed:
            per_seed[name].append(scores[name]["mmd"] / scores["reference"]["mmd"])
    return {"seeds": list(seeds), **per_seed, **{f"{k}_mean": float(np.mean(v)) for k, v in per_seed.items()}}


def reproduce_spiral_seeds(seeds: tuple[int, ...] = (1, 2), *, progress: bool | None = False) -> dict[str, Any]:
    """Train on the spiral with :data:`SPIRAL_SETTINGS` at each training seed (the seed draws the spiral, the
    split, the initial weights and the walk's noise) and return each seed's ``mmd_ratio_seeds`` (as
    :func:`reproduce_spiral`, without the baselines) and its last held-out bound."""
    runs = {}
    for seed in seeds:
        run = _run("spiral", SPIRAL_SETTINGS, seed=seed, diffusion_epochs=0, progress=progress)
        runs[str(seed)] = {
            "held_out_bound": run["evaluation"].summary["held_out_bound"],
            "mmd_ratio_seeds": _seed_ratios(run["fit"].model, run["held_out"], SPIRAL_SAMPLING_SEEDS),
        }
    return {"settings": SPIRAL_SETTINGS, "training_seeds": runs}


def reproduce_objective_ablation(
    out_dir: str | os.PathLike[str] | None = None, *, seed: int = 0, progress: bool | None = False
) -> dict[str, Any]:
    """The spiral run with the paper's objective and with the released code's; bound and sample quality."""
    rows, figures = {}, []
    for objective in ("paper", "released"):
        run = _run("spiral", SPIRAL_SETTINGS, seed=seed, objective=objective, diffusion_epochs=0, progress=progress)
        comparison = run["evaluation"].summary["comparison"]
        rows[objective] = {
            "held_out_bound": run["evaluation"].summary["held_out_bound"],
            "bound_per_epoch": run["fit"].history["valid_bound"],
            "mmd_ratio": _ratios(comparison, "mmd")["walkback"],
            "mmd_ratio_3x": _ratios(comparison, "mmd")["walkback_3x"],
        }
        figures += _figures(run, out_dir, f"walkback_ablation_{objective}")
    return {"settings": SPIRAL_SETTINGS, "objectives": rows, "figures": figures}


def _reproduce_images(
    source: str, settings: dict[str, Any], out_dir: str | os.PathLike[str] | None, seed: int, progress: bool | None
) -> dict[str, Any]:
    """Train on an image set; its bound history and the comparison table (Parzen, nearest-neighbour distances)."""
    run = _run(source, settings, seed=seed, progress=progress)
    return {
        "settings": settings,
        "history": run["fit"].history.as_dict(),
        "held_out_bound": run["evaluation"].summary["held_out_bound"],
        "comparison": run["evaluation"].summary["comparison"],
        "figures": _figures(run, out_dir, f"walkback_{source}"),
    }


def reproduce_digits(
    out_dir: str | os.PathLike[str] | None = None, *, seed: int = 0, progress: bool | None = False
) -> dict[str, Any]:
    """Train on the 8x8 digits (:data:`DIGITS_SETTINGS`); Parzen log-likelihoods and nearest-neighbour distances
    of the operator's and the baselines' samples."""
    return _reproduce_images("digits", DIGITS_SETTINGS, out_dir, seed, progress)


def reproduce_mnist(
    out_dir: str | os.PathLike[str] | None = None, *, seed: int = 0, progress: bool | None = False
) -> dict[str, Any]:
    """Train on 5,000 MNIST images (:data:`MNIST_SETTINGS`); Parzen log-likelihoods (nats per image) and
    nearest-neighbour distances of the operator's and the baselines' samples, as :func:`reproduce_digits`."""
    return _reproduce_images("mnist", MNIST_SETTINGS, out_dir, seed, progress)

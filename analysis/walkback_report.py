"""Evaluating a trained Variational Walkback operator against held-out data and the baselines, and its figures.

:func:`evaluate_walkback` draws cooled samples (``K`` steps from ``p_0``) and a chain three times longer than
training (``2 K`` extra steps at ``T = 1``: the paper's claim that samples stay on the data), and scores them
with the same numbers as a Gaussian fitted to the training data and a denoising-diffusion model trained on
the same data (:class:`~neuromodels.diffusion.DiffusionMLP`):

* vectors (2-D sets): MMD (V-statistic, Gaussian kernels at 0.25-2x the median distance of the held-out data,
  fixed for every comparison) and energy distance to the held-out data; ``reference`` is the same number
  between the two halves of the held-out data (the floor a perfect sampler reaches);
* images: a Parzen-window log-likelihood of the second half of the held-out data with the bandwidth chosen on
  the first half, and each sample's distance to its nearest training image (with the held-out images' own
  distance for comparison: samples much closer than held-out data are copies).

Plots (:func:`plot_bound`, :func:`plot_cooling_chain`) return figures; commands save them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuromodels.analysis.sample_quality import (
    energy_distance,
    gaussian_baseline,
    median_bandwidth,
    mmd,
    nearest_neighbour_distances,
    parzen_log_likelihood,
    select_parzen_bandwidth,
)

__all__ = ["WalkbackEvaluation", "evaluate_walkback", "point_set_scores", "plot_bound", "plot_cooling_chain"]


@dataclass
class WalkbackEvaluation:
    """``summary``: JSON-ready numbers (``held_out_bound``, ``comparison`` per method); ``chain``: the cooling
    chain's states ``[s_K, ..., s_0, extra ...]`` as arrays; ``samples``: per method, its samples."""

    summary: dict[str, Any]
    chain: list[np.ndarray]
    samples: dict[str, np.ndarray] = field(default_factory=dict)


def point_set_scores(samples: dict[str, np.ndarray], held_out: np.ndarray) -> dict[str, dict[str, float]]:
    """MMD and energy distance of each sample set to the first half of ``held_out``; ``"reference"``: the
    second half's (kernel widths fixed from ``held_out``)."""
    half = len(held_out) // 2
    first, second = held_out[:half], held_out[half : 2 * half]
    median = median_bandwidth(first[:1000], second[:1000])
    widths = [median * f for f in (0.25, 0.5, 1.0, 2.0)]
    rows = {"reference": second, **samples}
    return {
        name: {
            "mmd": mmd(points[:half], first, bandwidths=widths, biased=True),
            "energy_distance": energy_distance(points[:half], first),
        }
        for name, points in rows.items()
    }


def image_scores(
    samples: dict[str, np.ndarray], train: np.ndarray, held_out: np.ndarray
) -> dict[str, dict[str, float]]:
    """Parzen log-likelihood (nats per image) of held-out images and nearest-neighbour distances to ``train``."""
    half = len(held_out) // 2
    valid, test = held_out[:half], held_out[half:]
    out = {"held_out": {"nn_distance": float(nearest_neighbour_distances(test, train).mean())}}
    for name, points in samples.items():
        bandwidth = select_parzen_bandwidth(points, valid)
        out[name] = {
            "parzen_log_likelihood": float(parzen_log_likelihood(points, test, bandwidth).mean()),
            "parzen_bandwidth": bandwidth,
            "nn_distance": float(nearest_neighbour_distances(points, train).mean()),
        }
    return out


def evaluate_walkback(
    model: Any,
    train: np.ndarray,
    held_out: np.ndarray,
    *,
    image_shape: Any = None,
    n_samples: int | None = None,
    diffusion_epochs: int = 10,
    diffusion_box: tuple[float, float] | None = None,
    batch_size: int = 100,
    seed: int = 0,
    progress: bool | None = None,
) -> WalkbackEvaluation:
    """Sample from ``model`` and the baselines and score them against ``held_out`` (module docstring);
    ``diffusion_box``: the data's range, to which the diffusion sampler clips its predicted clean data
    (:meth:`~neuromodels.diffusion.DiffusionMLP.sample`)."""
    import torch

    from neuromodels.walkback import variational_bound

    n = n_samples or (2000 if image_shape is None else 1000)
    n = min(n, max(len(held_out) // 2, 2)) if image_shape is None else n
    generator = torch.Generator().manual_seed(seed + 1)
    held = torch.from_numpy(np.ascontiguousarray(held_out))
    bound = float(torch.cat([variational_bound(model, c, generator=generator) for c in torch.split(held, 500)]).mean())
    chain = model.generate(n, extra_steps=2 * model.n_steps, generator=generator)
    chain_np = [state.numpy() for state in chain]
    samples = {"walkback": chain_np[model.n_steps], "walkback_3x": chain_np[-1]}
    gauss = gaussian_baseline(train)
    samples["gaussian"] = gauss.sample(n, seed=seed).astype(np.float32)
    comparison_extra: dict[str, Any] = {
        "walkback": {"parameters": int(sum(p.numel() for p in model.parameters()))},
        "gaussian": {
            "parameters": gauss.n_parameters,
            "held_out_log_likelihood": float(gauss.log_prob(held_out).mean()),
        },
    }
    if diffusion_epochs > 0:
        from neuromodels.diffusion import DiffusionMLP
        from neuromodels.fitting.walkback import train_diffusion

        torch.manual_seed(seed)
        hidden = tuple(model.config()["hidden"]) or (64,)
        diffusion = DiffusionMLP(model.dim, hidden=hidden)
        history = train_diffusion(
            diffusion, train, epochs=diffusion_epochs, batch_size=batch_size, seed=seed, progress=progress
        )
        samples["diffusion"] = diffusion.sample(n, generator=generator, box=diffusion_box).numpy()
        comparison_extra["diffusion"] = {
            "parameters": int(sum(p.numel() for p in diffusion.parameters())),
            "epochs": diffusion_epochs,
            "clipped_to": None if diffusion_box is None else [float(v) for v in diffusion_box],
            "final_loss": history["train_loss"][-1],
        }
    scores = point_set_scores(samples, held_out) if image_shape is None else image_scores(samples, train, held_out)
    for name, extra in comparison_extra.items():
        scores.setdefault(name, {}).update(extra)
    summary = {
        "held_out_bound": bound,
        "comparison": scores,
        "n_samples": n,
        "chain_steps": {"cooling": model.n_steps, "extra_at_T1": 2 * model.n_steps},
    }
    return WalkbackEvaluation(summary=summary, chain=chain_np, samples=samples)


def plot_bound(history: Any) -> Any:
    """The variational bound per epoch (training and held-out), nats per example."""
    from neuromodels._figures import new_figure

    fig, ax = new_figure(figsize=(4.5, 3.2))
    for key in ("train_bound", "valid_bound"):
        values = history[key]
        if any(np.isfinite(values)):
            ax.plot(history["epoch"], values, marker="o", label=key.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.set_ylabel("variational bound (nats / example)")
    ax.legend()
    return fig


def plot_cooling_chain(
    chain: list[Any], image_shape: Any = None, *, reference: np.ndarray | None = None, panels: int = 6, per_row: int = 8
) -> Any:
    """States along the cooling chain: 2-D scatter panels, or rows of images (one row per chosen step)."""
    from neuromodels._figures import new_figure

    chain = [np.asarray(state) for state in chain]
    picks = sorted(set(np.linspace(0, len(chain) - 1, min(panels, len(chain))).round().astype(int)))
    if image_shape is None:
        fig, axes = new_figure(1, len(picks), figsize=(2.2 * len(picks), 2.4), squeeze=False)
        for ax, index in zip(axes[0], picks):
            if reference is not None:
                ax.scatter(reference[:, 0], reference[:, 1], s=1, c="0.8")
            ax.scatter(chain[index][:, 0], chain[index][:, 1], s=1, c="tab:blue")
            ax.set_title(f"step {index}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        return fig
    channels, height, width = image_shape
    per_row = max(1, min(per_row, len(chain[0])))
    fig, axes = new_figure(len(picks), per_row, figsize=(per_row * 0.8, len(picks) * 0.85), squeeze=False)
    for row, index in zip(axes, picks):
        for col, ax in enumerate(row):
            image = chain[index][col].reshape(channels, height, width)
            ax.imshow(
                np.clip(image[0] if channels == 1 else image.transpose(1, 2, 0), 0, 1), cmap="gray", vmin=0, vmax=1
            )
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(f"{index}", fontsize=7)
    return fig

"""Macaque V4 (Cowley et al. 2023): ceilings, and how far pixels, V1-like Gabor units, a random CNN and a ConvRNN go.

What it reproduces.
Utah-array recordings from macaque V4 published with Cowley, Stan, Pillow & Smith, "Compact deep neural network
models of visual cortex" (bioRxiv 2023.11.22.568315; Nature 2026), repository ``cowleygroup/V4_compact_models``
(GPL-3.0). Session 210325 (monkey PE): 50 neurons, the 640 images of Bashivan, Kar & DiCarlo (2019) at
112 x 112 RGB, 6 to 10 repeats each, spike counts in a 100 ms window; ``responses_raw`` is ``(neurons, images,
repeat slots)``, NaN where an image had fewer repeats. The script, with the package's public functions,

1. builds the assembly with :func:`neuromodels.datasets.assembly_from_arrays` (``dims=("neuroid", "stimulus",
   "repeat")``: NaN-padded repeat slots are dropped) and loads the images with
   :func:`neuromodels.datasets.load_image_folder` (``image0001`` .. ``image0640``; image ``i`` of the zip is
   column ``i`` of the responses, readme of the data);
2. computes two ceilings: Brain-Score's split-half reliability with the Spearman-Brown correction
   (:func:`neuromodels.analysis.ceiling_split_half`, 10 splits), and the noise-corrected R^2 that Cowley et al.
   score their models with, ``r2_ER`` of Pospisil & Bair (2021, PLoS Comput. Biol. 17:e1009212),
   :func:`neuromodels.analysis.r2_er` (the ceiling of that metric is 1 by construction: it estimates the r^2 between the
   prediction and the neuron's expected response);
3. scores, per layer (and per time step of the ConvRNN), four models a user can run on a laptop:
   ``pixels`` (RGB at 16 x 16), a V1-like Gabor bank (:func:`gabor_features`: simple and complex units), a
   random, untrained CNN (:func:`random_cnn`, seeded) and a ConvRNN trained on the 8 x 8 scikit-learn digits
   (:class:`neuromodels.convrnn.ConvRNN`, :func:`neuromodels.fitting.classification.train_classifier`; its
   per-step features by :func:`neuromodels.analysis.temporal_predictivity.temporal_features`). Each feature set
   is scored three ways: Brain-Score's procedure (:func:`neuromodels.analysis.predictivity`, PLS with 25
   components as Brain-Score runs it, 10 shuffle splits of 90 % / 10 %, ceiled ``r^2 / ceiling``), the same with
   GCV ridge, and Cowley et al.'s ``r2_ER`` of 8-fold cross-validated GCV-ridge predictions
   (:func:`neuromodels.analysis.ridge_cross_validated`).

Every feature set has at most 1,536 features (images downsampled, Gabor and CNN maps average-pooled to coarse
grids): when this example was written the package's ridge eigendecomposed the ``features x features`` Gram
matrix (``ridge_gcv`` now switches to the ``images x images`` one when features outnumber images, so full maps
would fit; the pooling is kept so that the numbers in docs stay those of this script), and Brain-Score's
alternative (PCA fitted on 1,000 separate ImageNet images) needs images this data set does not have.

Data and licence.
The data are in the GPL-3.0 repository ``cowleygroup/V4_compact_models``; the team uses them for tests and
benchmarks only and this script does not ship them. Point ``--data`` at a folder holding
``cowley2023-v4/responses_raw_responses_210325.npy`` and ``cowley2023-v4/images_images_210325.zip``; by default
the script looks in ``../shared/data`` beside the repository and stops with exit status 2 and a message when
they are absent.

Run:

    python examples/cowley_v4.py [--data DIR] [--out reports/examples/cowley_v4] [--figures DIR] [--quick]

Writes ``report.json`` and PNG figures to ``--out`` (``--figures DIR``: the PNGs there too; the docs use
``docs/figures/examples/cowley_v4``). About 90 s of CPU time on 2 cores and 1 GB of memory (``--quick``: 3
scoring splits instead of 10, the ConvRNN trained for 1 epoch instead of 3); every random choice (splits, CNN
weights, ConvRNN training) is seeded.
Public API only: ``neuromodels.datasets``, ``neuromodels.analysis``, ``neuromodels.convrnn``,
``neuromodels.fitting``, ``neuromodels.errors``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from sklearn.model_selection import KFold

from neuromodels import analysis, check_out_folder, write_report
from neuromodels import datasets as nd
from neuromodels.errors import ConfigError, DataFormatError

NAME = "cowley_v4"
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FOLDER = "cowley2023-v4"
SESSION = "210325"
RAW = f"responses_raw_responses_{SESSION}.npy"
IMAGES = f"images_images_{SESSION}.zip"
SEED = 0
N_FOLDS_R2ER = 8  # Cowley et al.'s cross-validation (classes/class_linear_mapping_ridgereg.py)


def find_files(data_dir: Path) -> dict[str, Path]:
    """``name -> path`` of the files the example reads; ``FileNotFoundError`` naming what is missing."""
    folder = data_dir / FOLDER
    missing = [name for name in (RAW, IMAGES) if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Cowley et al. 2023 V4 data not found: {folder} lacks {', '.join(missing)}. Copy session {SESSION} "
            "from github.com/cowleygroup/V4_compact_models (data_V4_responses/, GPL-3.0) into "
            "DIR/cowley2023-v4/ under these names and pass --data DIR."
        )
    return {"raw": folder / RAW, "images": folder / IMAGES}


# ---------------------------------------------------------------------------------------------------- data


def load_assembly(raw_path: Path, stimulus_ids: list[str]) -> xr.DataArray:
    """``responses_raw (neurons, images, repeat slots)`` -> assembly ``(presentation, neuroid)`` of spike counts.

    NaN-padded slots (an image shown fewer times) are dropped by the public constructor; ``repetition`` is the
    slot index.
    """
    raw = np.load(raw_path)
    if raw.ndim != 3:
        raise DataFormatError(
            file=str(raw_path), field="<array>", expected="(neurons, images, repeats)", found=f"shape {raw.shape}"
        )
    return nd.assembly_from_arrays(
        raw,
        stimulus_ids,
        dims=("neuroid", "stimulus", "repeat"),
        region="V4",
        animal="PE",
        source=str(raw_path),
        attrs={"session": SESSION, "units": "spike count in 100 ms"},
    )


def load_images(zip_path: Path, size: int, *, grayscale: bool = False) -> xr.DataArray:
    """The session's images at ``size x size`` as ``(stimulus, y, x[, channel])`` float32 in [0, 1]."""
    images = nd.load_image_folder(zip_path, size=size, grayscale=grayscale)
    images = images.rename({images.dims[0]: "stimulus"}).astype(np.float32) / 255.0
    return images


def repeats_cube(assembly: xr.DataArray) -> np.ndarray:
    """``(neuroid, stimulus, repeat)`` NaN-padded, stimuli in sorted ``stimulus_id`` order (as the scores)."""
    cube = analysis.repetition_cube(assembly)  # (repeat, stimulus, neuroid), stimuli sorted
    return np.transpose(np.asarray(cube.values, dtype=np.float64), (2, 1, 0))


# ------------------------------------------------------------------------------------- Cowley et al.'s R^2


def explainable_fraction(responses: np.ndarray) -> np.ndarray:
    """Per neuron, the fraction of the repeat means' variance across images that is not noise,
    ``1 - (s2 / n) / var(y)`` with ``s2``, ``n`` and ``y`` as in :func:`neuromodels.analysis.r2_er` (``var``
    with ``m - 1``).

    This is the correction term of ``r2_ER``'s denominator: the raw r^2 of a perfect model against the repeat
    means is this fraction on average, which ``r2_ER`` divides out.
    """
    responses = np.asarray(responses, dtype=np.float64)
    n_repeats = float(np.median(np.isfinite(responses[0]).sum(axis=1)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(responses, axis=2)
        noise_variance = np.nanmean(np.nanvar(responses, axis=2, ddof=1), axis=1)
    return 1.0 - noise_variance / n_repeats / mean.var(axis=1, ddof=1)


# ------------------------------------------------------------------------------------------- Gabor units


def gabor_bank(size: int, wavelengths: tuple[float, ...], n_orientations: int) -> np.ndarray:
    """Quadrature pairs of Gabor filters ``(scale, orientation, phase=2, size, size)``, zero mean, unit norm.

    ``g(x', y') = exp(-(x'^2 + y'^2) / (2 sigma^2)) cos(2 pi x' / wavelength + phase)``, phase 0 (even) and
    pi/2 (odd), ``x'`` along the orientation; ``sigma = 0.56 wavelength``, a spatial-frequency bandwidth of one
    octave, about the median of macaque V1 simple cells (De Valois, Albrecht & Thorell 1982; Jones & Palmer 1987
    for the Gabor form). Centred in a ``size x size`` frame for FFT convolution.
    """
    coords = np.arange(size) - size // 2
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    bank = np.zeros((len(wavelengths), n_orientations, 2, size, size))
    for s, wavelength in enumerate(wavelengths):
        sigma = 0.56 * wavelength
        envelope = np.exp(-(xx**2 + yy**2) / (2 * sigma**2))
        for o in range(n_orientations):
            theta = np.pi * o / n_orientations
            along = xx * np.cos(theta) + yy * np.sin(theta)
            for p, phase in enumerate((0.0, np.pi / 2)):
                g = envelope * np.cos(2 * np.pi * along / wavelength + phase)
                g -= envelope * (g.sum() / envelope.sum())  # zero mean: no response to uniform light
                bank[s, o, p] = g / np.linalg.norm(g)
    return bank


def _pool(maps: np.ndarray, grid: int) -> np.ndarray:
    """Average ``(..., y, x)`` over a ``grid x grid`` partition (y, x divisible by grid)."""
    *lead, h, w = maps.shape
    return maps.reshape(*lead, grid, h // grid, grid, w // grid).mean(axis=(-3, -1))


def gabor_responses(
    images: np.ndarray, *, wavelengths: tuple[float, ...] = (4.0, 8.0, 16.0), n_orientations: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Simple and complex unit maps of grayscale ``images (n, y, x)``.

    Simple units: the four half-wave rectified quadrature outputs ``[+even]+, [-even]+, [+odd]+, [-odd]+``
    (Movshon, Thompson & Tolhurst 1978; Heeger 1992 without normalisation); complex units: the energy
    ``sqrt(even^2 + odd^2)`` (Adelson & Bergen 1985), invariant to the phase of a grating. Returns
    ``simple (n, scale, orientation, 4, y, x)`` and ``complex (n, scale, orientation, y, x)``; convolution by
    FFT on images zero-padded to twice their size (no wrap-around), each image minus its mean.
    """
    n, h, w = images.shape
    pad = 2 * max(h, w)
    bank = gabor_bank(pad, wavelengths, n_orientations)
    kernels = np.fft.rfft2(np.fft.ifftshift(bank, axes=(-2, -1)))
    centred = images - images.mean(axis=(1, 2), keepdims=True)
    spectrum = np.fft.rfft2(centred, s=(pad, pad))
    out = np.fft.irfft2(spectrum[:, None, None, None] * kernels[None], s=(pad, pad))[..., :h, :w]
    even, odd = out[:, :, :, 0], out[:, :, :, 1]
    simple = np.stack([np.maximum(even, 0), np.maximum(-even, 0), np.maximum(odd, 0), np.maximum(-odd, 0)], axis=3)
    complex_ = np.sqrt(even**2 + odd**2)
    return simple, complex_


def gabor_features(
    images: xr.DataArray, *, simple_grid: int = 4, complex_grid: int = 8, batch_size: int = 32
) -> dict[str, xr.DataArray]:
    """V1-like features of grayscale ``images (stimulus, y, x)``: ``{"gabor.simple", "gabor.complex"}`` arrays
    ``(presentation, feature)``, unit maps average-pooled over a ``grid x grid`` partition (simple 3 x 8 x 4 x
    4 x 4 = 1,536 features, complex 3 x 8 x 8 x 8 = 1,536). Computed ``batch_size`` images at a time (the
    unpooled maps of 32 images at 64 x 64 take ~100 MB)."""
    pixels = images.values.astype(np.float64)
    simple_parts, complex_parts = [], []
    for start in range(0, len(pixels), batch_size):
        simple, complex_ = gabor_responses(pixels[start : start + batch_size])
        simple_parts.append(_pool(simple, simple_grid).reshape(len(simple), -1))
        complex_parts.append(_pool(complex_, complex_grid).reshape(len(complex_), -1))
    return {
        "gabor.simple": _feature_array(np.concatenate(simple_parts), images, "gabor.simple"),
        "gabor.complex": _feature_array(np.concatenate(complex_parts), images, "gabor.complex"),
    }


def _feature_array(values: np.ndarray, images: xr.DataArray, layer: str) -> xr.DataArray:
    return xr.DataArray(
        values.astype(np.float32),
        dims=("presentation", "feature"),
        coords={"stimulus_id": ("presentation", images["stimulus_id"].values), "layer": layer},
        name=layer,
    )


# ----------------------------------------------------------------------------------------------- models


def random_cnn(seed: int):
    """A random (untrained) CNN, PyTorch's default initialisation under ``torch.manual_seed(seed)``.

    Four blocks ``conv -> ReLU -> max-pool 2`` (3 -> 16 -> 32 -> 64 -> 128 channels, kernels 5, 3, 3, 3) on
    112 x 112 RGB; block ``k``'s output is read out average-pooled to a coarse grid by ``readout.k`` (8, 6, 4, 3
    cells a side: 1,024, 1,152, 1,024, 1,152 features).
    """
    import torch
    from torch import nn

    class RandomCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            channels, kernels, grids = (3, 16, 32, 64, 128), (5, 3, 3, 3), (8, 6, 4, 3)
            self.blocks = nn.ModuleList(
                nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2), nn.ReLU(), nn.MaxPool2d(2))
                for c_in, c_out, k in zip(channels[:-1], channels[1:], kernels)
            )
            self.readout = nn.ModuleList(nn.AdaptiveAvgPool2d(g) for g in grids)

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            taps = []
            for block, readout in zip(self.blocks, self.readout):
                x = block(x)
                taps.append(readout(x))
            return taps

    torch.manual_seed(seed)
    return RandomCNN()


def train_convrnn(*, epochs: int, seed: int) -> tuple[Any, float]:
    """The ConvRNN of docs/convrnn.md trained on the 8 x 8 digits; returns the model and its test accuracy."""
    import torch

    from neuromodels.convrnn import ConvRNN, LayerSpec
    from neuromodels.fitting.classification import accuracy, image_task, train_classifier

    torch.manual_seed(seed)
    data = image_task("digits", n_valid=300, n_test=300, seed=seed)
    model = ConvRNN([LayerSpec(8, 3, 2), LayerSpec(16, 3, 2)], cell="rgc", feedback=[(1, 0)], steps=6, image_steps=3)
    train_classifier(model, data["train"], data["valid"], epochs=epochs, lr=1e-2, seed=seed, progress=False)
    return model, float(accuracy(model, data["test"]))


def model_features(paths: dict[str, Path], *, convrnn_epochs: int, seed: int) -> tuple[dict[str, xr.DataArray], dict]:
    """Every feature set to score, ``name -> (presentation, feature)``, in plotting order; and model notes."""
    from neuromodels.analysis.temporal_predictivity import temporal_features

    features: dict[str, xr.DataArray] = {}
    rgb16 = load_images(paths["images"], 16)
    features["pixels"] = _feature_array(rgb16.values.reshape(rgb16.sizes["stimulus"], -1), rgb16, "pixels")
    features.update(gabor_features(load_images(paths["images"], 64, grayscale=True)))

    rgb = load_images(paths["images"], 112)
    rgb = (rgb - rgb.mean(("stimulus", "y", "x"))) / rgb.std(("stimulus", "y", "x"))
    cnn = random_cnn(seed)
    layers = [f"readout.{k}" for k in range(4)]
    for name, values in analysis.extract_features(cnn, rgb, layers=layers, progress=False).items():
        features[f"random_cnn.block{int(name[-1]) + 1}"] = values

    model, test_accuracy = train_convrnn(epochs=convrnn_epochs, seed=seed)
    gray = load_images(paths["images"], 24, grayscale=True)
    gray = (gray - gray.mean()) / gray.std()  # the digits were standardised the same way (mean gray = 0)
    per_step = temporal_features(model, gray.expand_dims(channel=1, axis=1), progress=False)
    for name, values in per_step.items():
        layer = int(name.split(".")[-1])
        for step in range(layer, values.sizes["time_step"]):  # layer l is exactly zero before step l
            features[f"convrnn.layer{layer + 1}.t{step}"] = values.isel(time_step=step, drop=True)
    notes = {
        "convrnn_digits_test_accuracy": test_accuracy,
        "convrnn_epochs": convrnn_epochs,
        "convrnn_input": "grayscale 24 x 24, standardised over the 640 images",
        "random_cnn_seed": seed,
    }
    return features, notes


# ---------------------------------------------------------------------------------------------- scoring


def _median_and_error(values: np.ndarray) -> tuple[float, float]:
    """Median over neurons and its standard error, sqrt(pi/2) std / sqrt(n) (normal approximation)."""
    finite = values[np.isfinite(values)]
    return float(np.median(finite)), float(np.sqrt(np.pi / 2) * finite.std(ddof=1) / np.sqrt(finite.size))


def score_feature_set(
    features: xr.DataArray, assembly: xr.DataArray, ceiling: xr.Dataset, cube: np.ndarray, *, n_splits: int
) -> dict[str, Any]:
    """Brain-Score PLS, ridge and Cowley's r2_ER for one feature set."""
    out: dict[str, Any] = {"n_features": int(features.sizes["feature"])}
    for regression in ("pls", "ridge"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # constant features of an early ConvRNN step
            result = analysis.predictivity(
                features, assembly, regression=regression, n_splits=n_splits, ceiling=ceiling, random_state=1
            )
        out[regression] = {
            "r": float(result["score"]),
            "r_error": float(result["error"]),
            "ceiled": float(result["ceiled_score"]),
            "ceiled_error": float(result["ceiled_error"]),
            "ceiled_per_neuroid": result["ceiled_per_neuroid"].values.tolist(),
        }
    ids = np.sort(np.unique(assembly["stimulus_id"].values))
    x = features.set_index(presentation="stimulus_id").sel(presentation=ids).values.astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        targets = np.nanmean(cube, axis=2).T  # (stimulus, neuroid)
    folds = KFold(N_FOLDS_R2ER, shuffle=True, random_state=SEED).split(x)
    prediction = analysis.ridge_cross_validated(x, targets, folds)
    per_neuron = analysis.r2_er(prediction, np.transpose(cube, (2, 1, 0))).values  # cube as (repeat, image, neuron)
    median, error = _median_and_error(per_neuron)
    out["r2_er"] = {"median": median, "error": error, "per_neuroid": per_neuron.tolist()}
    return out


def ceilings(assembly: xr.DataArray, cube: np.ndarray) -> dict[str, Any]:
    """Split-half (Brain-Score) ceiling, repeats per image, and the explainable fraction behind ``r2_ER``."""
    split_half = analysis.ceiling_split_half(assembly)
    repeats = np.isfinite(cube[0]).sum(axis=1)
    counts = dict(zip(*np.unique(repeats, return_counts=True)))
    explainable = explainable_fraction(cube)
    return {
        "dataset": split_half,
        "numbers": {
            "split_half": float(split_half["ceiling"]),
            "split_half_error": float(split_half["error"]),
            "split_half_per_neuroid": split_half["ceiling_per_neuroid"].values.tolist(),
            "repeats_per_image": {str(int(k)): int(v) for k, v in counts.items()},
            "median_repeats": float(np.median(repeats)),
            "explainable_fraction": float(np.median(explainable)),
            "explainable_fraction_per_neuroid": explainable.tolist(),
            "n_presentations": int(assembly.sizes["presentation"]),
        },
    }


def best_layers(scores: dict[str, dict]) -> dict[str, Any]:
    """Per model family and score, the layer (feature set) with the highest value; ``overall``: the best ridge."""
    families: dict[str, list[str]] = {}
    for name in scores:
        families.setdefault(name.split(".")[0], []).append(name)
    out: dict[str, Any] = {}
    for family, names in families.items():
        out[family] = {
            "pls": max(names, key=lambda n: scores[n]["pls"]["ceiled"]),
            "ridge": max(names, key=lambda n: scores[n]["ridge"]["ceiled"]),
            "r2_er": max(names, key=lambda n: scores[n]["r2_er"]["median"]),
        }
    out["overall"] = max(scores, key=lambda n: scores[n]["ridge"]["ceiled"])
    return out


# ---------------------------------------------------------------------------------------------- figures


def figures(numbers: dict) -> dict[str, Any]:
    """``file name -> matplotlib Figure`` (no pyplot)."""
    from matplotlib.figure import Figure

    out = {}
    scores = numbers["scores"]
    ceiling = numbers["ceilings"]

    fig = Figure(figsize=(9.0, 3.2), layout="constrained")
    axes = fig.subplots(1, 3)
    repeats = ceiling["repeats_per_image"]
    axes[0].bar([int(k) for k in repeats], list(repeats.values()), color="0.5")
    axes[0].set_xlabel("repeats per image")
    axes[0].set_ylabel("images")
    axes[0].set_title("NaN-padded slots dropped", fontsize=9)
    per = np.asarray(ceiling["split_half_per_neuroid"])
    axes[1].hist(per[np.isfinite(per)], bins=20, color="tab:blue")
    axes[1].axvline(ceiling["split_half"], color="k", lw=1)
    axes[1].set_xlabel("split-half reliability (Spearman-Brown)")
    axes[1].set_ylabel("neurons")
    axes[1].set_title(f"median {ceiling['split_half']:.3f}", fontsize=9)
    best = numbers["best_layer"]["overall"]
    r2 = np.asarray(scores[best]["r2_er"]["per_neuroid"])
    axes[2].plot(per, r2, "o", ms=4, color="tab:red")
    axes[2].axhline(1.0, color="0.6", ls="--", lw=0.8)
    axes[2].set_xlabel("split-half reliability")
    axes[2].set_ylabel(f"r2_ER, {best}")
    axes[2].set_title("per neuron: best feature set (ridge)", fontsize=9)
    out["cowley_v4_ceilings.png"] = fig

    static = [n for n in scores if not n.startswith("convrnn")]
    fig = Figure(figsize=(9.0, 3.6), layout="constrained")
    ax = fig.add_subplot()
    positions = np.arange(len(static))
    for offset, key, color, label in (
        (-0.2, "pls", "tab:blue", "Brain-Score PLS: r^2 / ceiling"),
        (0.0, "ridge", "tab:green", "ridge: r^2 / ceiling"),
    ):
        ax.bar(
            positions + offset,
            [scores[n][key]["ceiled"] for n in static],
            0.2,
            yerr=[scores[n][key]["ceiled_error"] for n in static],
            color=color,
            label=label,
        )
    ax.bar(
        positions + 0.2,
        [scores[n]["r2_er"]["median"] for n in static],
        0.2,
        yerr=[scores[n]["r2_er"]["error"] for n in static],
        color="tab:red",
        label="Cowley et al.: median r2_ER (ridge, 8 folds)",
    )
    ax.set_xticks(positions, static, rotation=20, fontsize=8)
    ax.set_ylabel("noise-corrected score")
    ax.set_title("V4 session 210325 (50 neurons, 640 images); error bars: splits (PLS, ridge), neurons (r2_ER)")
    ax.legend(fontsize=7, frameon=False)
    out["cowley_v4_layers.png"] = fig

    fig = Figure(figsize=(7.0, 3.4), layout="constrained")
    ax = fig.add_subplot()
    for layer, marker in (("layer1", "o"), ("layer2", "s")):
        names = [n for n in scores if n.startswith(f"convrnn.{layer}.")]
        steps = [int(n.rsplit(".t", 1)[1]) for n in names]
        for key, color in (("pls", "tab:blue"), ("ridge", "tab:green")):
            ax.errorbar(
                steps,
                [scores[n][key]["ceiled"] for n in names],
                yerr=[scores[n][key]["ceiled_error"] for n in names],
                marker=marker,
                color=color,
                label=f"{layer}, {key}",
                capsize=2,
            )
    ax.axvline(numbers["models"]["convrnn_image_steps"] - 0.5, color="0.6", ls="--", lw=0.8)
    ax.set_xlabel("ConvRNN time step (image shown for steps 0-2, then mean gray)")
    ax.set_ylabel("ceiled score (r^2 / ceiling)")
    ax.set_title("ConvRNN trained on 8 x 8 digits: V4 predictivity per layer and step", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    out["cowley_v4_convrnn_steps.png"] = fig
    return out


# ---------------------------------------------------------------------------------------------- run


def run(data_dir: Path, out_dir: Path, *, figures_dir: Path | None = None, quick: bool = False) -> dict:
    """Read the session, compute, write ``report.json`` and the figures; returns the key numbers."""
    paths = find_files(data_dir)
    ids = [str(s) for s in nd.load_image_folder(paths["images"], size=8, grayscale=True)["stimulus_id"].values]
    assembly = load_assembly(paths["raw"], ids)
    cube = repeats_cube(assembly)
    ceiling = ceilings(assembly, cube)
    n_splits = 3 if quick else 10
    features, notes = model_features(paths, convrnn_epochs=1 if quick else 3, seed=SEED)
    scores = {
        name: score_feature_set(values, assembly, ceiling["dataset"], cube, n_splits=n_splits)
        for name, values in features.items()
    }
    numbers: dict[str, Any] = {
        "source": str(data_dir / FOLDER),
        "session": SESSION,
        "quick": quick,
        "n_neurons": int(assembly.sizes["neuroid"]),
        "n_images": len(ids),
        "n_splits": n_splits,
        "ceilings": ceiling["numbers"],
        "models": {**notes, "convrnn_image_steps": 3},
        "scores": scores,
        "best_layer": best_layers(scores),
    }
    made = figures(numbers)
    # checked, staged and moved into place on success; files of yours in --out are never touched
    write_report(out_dir, NAME, numbers, made, also=figures_dir)
    return numbers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"folder holding {FOLDER}/")
    parser.add_argument("--out", type=Path, default=Path("reports/examples") / NAME)
    parser.add_argument("--figures", type=Path, default=None, help="also write the PNGs here")
    parser.add_argument("--quick", action="store_true", help="3 splits and 1 ConvRNN epoch (the slow test)")
    args = parser.parse_args(argv)
    try:
        check_out_folder(args.out)  # before any work: a file, a read-only or a foreign folder is refused
        numbers = run(args.data, args.out, figures_dir=args.figures, quick=args.quick)
    except (FileNotFoundError, DataFormatError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    c = numbers["ceilings"]
    print(
        f"{numbers['n_neurons']} neurons x {numbers['n_images']} images, {c['n_presentations']} presentations; "
        f"split-half ceiling {c['split_half']:.3f} +- {c['split_half_error']:.3f}"
    )
    for name, s in numbers["scores"].items():
        print(
            f"{name:24s} PLS {s['pls']['ceiled']:.3f} +- {s['pls']['ceiled_error']:.3f}  ridge "
            f"{s['ridge']['ceiled']:.3f} +- {s['ridge']['ceiled_error']:.3f}  r2_ER {s['r2_er']['median']:.3f} "
            f"+- {s['r2_er']['error']:.3f}"
        )
    print("best layers:", json.dumps(numbers["best_layer"]))
    print(f"report in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

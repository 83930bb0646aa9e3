"""Neural dynamics: per-time-step ConvRNN features, model steps mapped to time bins, per-bin predictivity.

Nayebi et al. 2018 (section 5, Fig. 6) fit the unrolled model's outputs at every time step to V4/IT responses
binned in 10 ms windows and compare the time course of the fits of ConvRNNs with feedforward networks.

* :func:`temporal_features`: every layer's output at every step as ``xr.DataArray(presentation, feature,
  time_step)`` (the framework's model-feature convention, docs/data-model.md), float32, features flattened in C
  order over ``(channel, y, x)``. ``layers.l`` before its input arrives (``t < l``) is exactly zero.
  This uses :meth:`ConvRNN.run` rather than forward hooks: :func:`neuromodels.analysis.features.extract_features`
  with ``time_steps`` needs a module that is called the same number of times in every forward pass, whereas a
  ConvRNN layer ``l`` is called ``steps - l`` times (it does not run before its input arrives).
* :func:`steps_to_time_bins`: step ``s`` covers ``[onset_ms + s * ms_per_step, onset_ms + (s + 1) * ms_per_step)``
  (10 ms per step as in the paper). Without ``bins`` every step becomes a ``time_bin``; with neural bins, each bin
  gets the mean of the steps whose centres lie inside it (the nearest step when none does).
* :func:`temporal_predictivity`: per layer and per time bin, :func:`neuromodels.analysis.predictivity.predictivity`
  of the aligned features against a time-resolved assembly ``(presentation, neuroid, time_bin)``.
* :func:`step_bin_scores`: the score of one layer's step ``s`` (used for every bin) against neural bin ``b``, a
  ``(time_step, time_bin)`` matrix: where a model's time course matches the neurons', its diagonal is highest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from neuromodels._figures import new_figure, save_figure
from neuromodels.analysis.predictivity import predictivity
from neuromodels.errors import ConfigError, DataFormatError

__all__ = [
    "temporal_features",
    "steps_to_time_bins",
    "temporal_predictivity",
    "step_bin_scores",
    "plot_time_courses",
    "synthetic_assembly",
]


def _stimulus_tensor(stimuli: Any, stimulus_ids: Sequence[Any] | None, in_channels: int):
    import torch

    if isinstance(stimuli, xr.DataArray):
        first = stimuli.dims[0]
        if "stimulus_id" not in stimuli.coords or stimuli["stimulus_id"].dims != (first,):
            raise DataFormatError(field="stimuli.stimulus_id", expected=f"a coordinate on {first!r}", found="none")
        ids = np.asarray(stimuli["stimulus_id"].values).astype(str)
        dims = [d for d in ("channel", "y", "x") if d in stimuli.dims]
        if dims[-2:] != ["y", "x"]:
            raise DataFormatError(
                field="stimuli.<dims>", expected="(stimulus, [channel,] y, x)", found=str(stimuli.dims)
            )
        values = np.asarray(stimuli.transpose(first, *dims).values, dtype=np.float32)
    else:
        values = np.asarray(stimuli, dtype=np.float32)
        if stimulus_ids is None:
            raise ConfigError("pass stimulus_ids with an array of stimuli (or an xr.DataArray with stimulus_id)")
        ids = np.asarray(stimulus_ids).astype(str)
        if len(ids) != len(values):
            raise ConfigError(f"{len(ids)} stimulus_ids for {len(values)} stimuli")
    if values.ndim == 3:
        values = values[:, None]
    if values.ndim != 4 or values.shape[1] != in_channels:
        raise DataFormatError(
            field="stimuli", expected=f"(stimulus, {in_channels}, y, x) images", found=str(values.shape)
        )
    if len(set(ids)) != len(ids):
        raise DataFormatError(field="stimulus_id", expected="unique ids", found="duplicates")
    return torch.as_tensor(values), ids


def temporal_features(
    model: Any,
    stimuli: Any,
    *,
    layers: Sequence[int] | None = None,
    steps: int | None = None,
    batch_size: int = 64,
    stimulus_ids: Sequence[Any] | None = None,
    progress: bool = True,
) -> dict[str, xr.DataArray]:
    """Outputs of ``layers`` (indices; default all) of a :class:`~neuromodels.convrnn.ConvRNN` at every step.

    ``stimuli``: ``xr.DataArray (stimulus, [channel,] y, x)`` with ``stimulus_id``, or an array/tensor with
    ``stimulus_ids``; already preprocessed as the model was trained (e.g. standardised). Returns
    ``{"layers.<l>": DataArray(presentation, feature, time_step)}``; ``time_step`` is ``0 .. steps-1``.
    """
    import torch
    from tqdm.auto import tqdm

    x, ids = _stimulus_tensor(stimuli, stimulus_ids, model.config["in_channels"])
    indices = list(range(model.depth)) if layers is None else [int(i) for i in layers]
    if any(not 0 <= i < model.depth for i in indices):
        raise ConfigError(f"layers {indices} out of range: the model has {model.depth} layers")
    chunks: dict[int, list[np.ndarray]] = {i: [] for i in indices}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in tqdm(
                range(0, len(x), batch_size), disable=None if progress else True, leave=False, desc="ConvRNN features"
            ):
                out = model.run(x[start : start + batch_size], steps=steps, logits=False)
                for i in indices:
                    layer = out.layers[i]  # (batch, steps, C, y, x)
                    chunks[i].append(
                        layer.permute(0, 2, 3, 4, 1).reshape(layer.shape[0], -1, layer.shape[1]).float().numpy()
                    )
                shapes = {i: tuple(out.layers[i].shape[2:]) for i in indices}
    finally:
        model.train(was_training)
    result = {}
    for i in indices:
        values = np.concatenate(chunks[i])
        name = f"layers.{i}"
        result[name] = xr.DataArray(
            values,
            dims=("presentation", "feature", "time_step"),
            coords={
                "stimulus_id": ("presentation", ids.astype(object)),
                "layer": name,
                "time_step": np.arange(values.shape[-1]),
            },
            attrs={
                "model": type(model).__name__,
                "feature_shape": list(shapes[i]),
                "time_step": "unrolled step of the ConvRNN (layer l is zero before step l)",
                "image_steps": model.image_steps,
            },
            name=name,
        )
    return result


def _bins_of(bins: Any) -> np.ndarray:
    if isinstance(bins, (xr.DataArray, xr.Dataset)):
        if "time_bin_start" not in bins.coords or "time_bin_end" not in bins.coords:
            raise DataFormatError(
                field="time_bin_start/time_bin_end", expected="coordinates on time_bin (ms)", found="missing"
            )
        return np.stack(
            [np.asarray(bins["time_bin_start"].values, float), np.asarray(bins["time_bin_end"].values, float)], axis=1
        )
    edges = np.asarray(bins, dtype=float)
    if edges.ndim != 2 or edges.shape[1] != 2 or np.any(edges[:, 1] <= edges[:, 0]):
        raise ConfigError("bins must be (start_ms, end_ms) pairs with end > start, or an assembly with time bins")
    return edges


def steps_to_time_bins(
    features: xr.DataArray, *, ms_per_step: float = 10.0, onset_ms: float = 0.0, bins: Any = None
) -> xr.DataArray:
    """Re-index ``features (presentation, feature, time_step)`` on ``time_bin`` (ms coordinates).

    ``bins``: ``None`` (one bin per step), ``(start_ms, end_ms)`` pairs, or a neural assembly with
    ``time_bin_start`` / ``time_bin_end``. Each bin gets the mean of the steps whose centre
    ``onset_ms + (s + 0.5) * ms_per_step`` lies in ``[start, end)``, or the step nearest to the bin centre.
    """
    if "time_step" not in features.dims:
        raise DataFormatError(field="features.time_step", expected="a time_step dimension", found=str(features.dims))
    if ms_per_step <= 0:
        raise ConfigError(f"ms_per_step must be > 0, got {ms_per_step}")
    steps = np.asarray(features["time_step"].values, dtype=float)
    centres = onset_ms + (steps + 0.5) * ms_per_step
    if bins is None:
        out = features.rename(time_step="time_bin").drop_vars("time_bin", errors="ignore")
        return out.assign_coords(
            time_bin_start=("time_bin", onset_ms + steps * ms_per_step),
            time_bin_end=("time_bin", onset_ms + (steps + 1) * ms_per_step),
            time_step=("time_bin", steps.astype(int)),
        )
    edges = _bins_of(bins)
    pieces = []
    for start, end in edges:
        inside = np.flatnonzero((centres >= start) & (centres < end))
        if inside.size == 0:
            inside = np.array([int(np.argmin(np.abs(centres - (start + end) / 2)))])
        pieces.append(features.isel(time_step=inside).mean("time_step"))
    out = xr.concat(pieces, dim="time_bin")
    out = out.transpose("presentation", "feature", "time_bin")
    out.attrs.update(features.attrs)
    return out.assign_coords(time_bin_start=("time_bin", edges[:, 0]), time_bin_end=("time_bin", edges[:, 1]))


def temporal_predictivity(
    model: Any,
    stimuli: Any,
    neural: xr.DataArray,
    *,
    layers: Sequence[int] | None = None,
    ms_per_step: float = 10.0,
    onset_ms: float = 0.0,
    stimulus_ids: Sequence[Any] | None = None,
    progress: bool = False,
    **predictivity_options: Any,
) -> xr.Dataset:
    """Per-layer, per-time-bin predictivity of a ConvRNN for a time-resolved assembly.

    ``neural``: ``(presentation, neuroid, time_bin)`` with ``stimulus_id`` and ``time_bin_start/end`` (ms).
    Every layer's step outputs are mapped onto the neural bins (:func:`steps_to_time_bins`) and scored bin by
    bin with :func:`~neuromodels.analysis.predictivity.predictivity` (``predictivity_options`` go there).
    Returns ``xr.Dataset`` with ``score`` and ``error`` ``(layer, time_bin)``; attrs name the settings.
    """
    import warnings

    if "time_bin" not in neural.dims:
        raise DataFormatError(field="neural.time_bin", expected="a time-resolved assembly", found=str(neural.dims))
    features = temporal_features(model, stimuli, layers=layers, stimulus_ids=stimulus_ids, progress=progress)
    scores, errors = [], []
    for feats in features.values():
        aligned = steps_to_time_bins(feats, ms_per_step=ms_per_step, onset_ms=onset_ms, bins=neural)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # bins where a layer is still silent give NaN r
            result = predictivity(aligned.drop_vars(["time_bin_start", "time_bin_end"]), neural, **predictivity_options)
        scores.append(np.asarray(result["score"].values, dtype=float))
        errors.append(np.asarray(result["error"].values, dtype=float))
    coords = {
        "layer": list(features),
        "time_bin_start": ("time_bin", np.asarray(neural["time_bin_start"].values)),
        "time_bin_end": ("time_bin", np.asarray(neural["time_bin_end"].values)),
    }
    return xr.Dataset(
        {"score": (("layer", "time_bin"), np.array(scores)), "error": (("layer", "time_bin"), np.array(errors))},
        coords=coords,
        attrs={
            "method": "neuromodels.analysis.temporal_predictivity.temporal_predictivity",
            "ms_per_step": ms_per_step,
            "onset_ms": onset_ms,
            **{k: str(v) for k, v in predictivity_options.items()},
        },
    )


def step_bin_scores(features: xr.DataArray, neural: xr.DataArray, **predictivity_options: Any) -> xr.DataArray:
    """Score of step ``s`` of one layer's ``features (presentation, feature, time_step)`` for every neural bin:
    ``(time_step, time_bin)``; NaN for steps whose features are constant (a layer before its input arrives)."""
    import warnings

    rows = []
    for s in features["time_step"].values:
        step = features.sel(time_step=s).drop_vars("time_step")
        if float(step.std("presentation").max()) == 0.0:
            rows.append(np.full(neural.sizes["time_bin"], np.nan))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            rows.append(np.asarray(predictivity(step, neural, **predictivity_options)["score"].values, float))
    return xr.DataArray(
        np.array(rows),
        dims=("time_step", "time_bin"),
        coords={"time_step": features["time_step"].values},
        name="score",
        attrs={"layer": str(features.coords.get("layer", xr.DataArray("")).values)},
    )


def synthetic_assembly(
    model: Any,
    stimuli: Any,
    *,
    layer: int = 1,
    steps: Sequence[int] | None = None,
    n_neuroids: int = 12,
    noise: float = 0.05,
    repetitions: int = 2,
    ms_per_step: float = 10.0,
    onset_ms: float = 0.0,
    stimulus_ids: Sequence[Any] | None = None,
    seed: int = 0,
) -> xr.DataArray:
    """A time-resolved assembly ``(presentation, neuroid, time_bin)`` made from a known layer of a known model.

    Neuroid ``n`` in bin ``b`` is ``features(layer, steps[b]) @ w_n`` (random Gaussian read-out weights, the same
    for every bin), scaled to unit variance, plus Gaussian noise of s.d. ``noise`` per repetition. ``steps``
    defaults to every step from ``layer`` on (the layer is silent before). Time bins follow
    :func:`steps_to_time_bins`: bin ``b`` is ``[onset_ms + steps[b] * ms_per_step, ... + ms_per_step)``.
    For tests and examples of :func:`temporal_predictivity` (the generating layer and steps must win).
    """
    feats = temporal_features(model, stimuli, layers=[layer], stimulus_ids=stimulus_ids, progress=False)
    source = feats[f"layers.{layer}"]
    steps = list(range(layer, source.sizes["time_step"])) if steps is None else [int(s) for s in steps]
    rng = np.random.default_rng(seed)
    values = source.values.astype(np.float64)
    weights = rng.normal(size=(values.shape[1], n_neuroids)) / np.sqrt(values.shape[1])
    clean = np.stack([values[:, :, s] @ weights for s in steps], axis=-1)
    clean /= clean.std(axis=(0, 1), keepdims=True)
    ids = np.asarray(source["stimulus_id"].values)
    data = np.concatenate([clean + noise * rng.normal(size=clean.shape) for _ in range(repetitions)])
    return xr.DataArray(
        data.astype(np.float32),
        dims=("presentation", "neuroid", "time_bin"),
        coords={
            "stimulus_id": ("presentation", np.tile(ids, repetitions)),
            "repetition": ("presentation", np.repeat(np.arange(repetitions), len(ids))),
            "neuroid_id": ("neuroid", np.array([f"synthetic-{i}" for i in range(n_neuroids)], dtype=object)),
            "region": ("neuroid", np.array(["synthetic"] * n_neuroids, dtype=object)),
            "time_bin_start": ("time_bin", onset_ms + np.asarray(steps, float) * ms_per_step),
            "time_bin_end": ("time_bin", onset_ms + (np.asarray(steps, float) + 1) * ms_per_step),
        },
        attrs={"source": f"synthetic from layers.{layer} of {type(model).__name__}", "noise": noise, "steps": steps},
        name="synthetic",
    )


def plot_time_courses(results: dict[str, xr.Dataset], path: Any, *, title: str = "") -> str:
    """Plot ``score`` over time bins (best layer per bin) for several models' :func:`temporal_predictivity`
    results (``{label: Dataset}``) to the PNG ``path`` (atomic). Returns the path."""
    fig, ax = new_figure(figsize=(5, 3.2))
    for label, result in results.items():
        centres = (np.asarray(result["time_bin_start"].values) + np.asarray(result["time_bin_end"].values)) / 2
        best = result["score"].fillna(-np.inf).argmax("layer")
        score = result["score"].isel(layer=best)
        error = result["error"].isel(layer=best)
        ax.errorbar(centres, score.values, yerr=error.values, marker="o", ms=3, capsize=2, label=label)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("predictivity (median r, best layer)")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    return str(path)

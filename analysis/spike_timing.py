"""Spike timing of repeated flashed stimuli: first-spike latency, trial-to-trial reliability, stimulus decoding.

The questions of Gollisch & Meister (2008, Science 319:1108, "Rapid neural coding in the retina with relative
spike latencies") and Onken et al. (2016, PLoS Comput. Biol. 12:e1005189, "Using matrix and tensor factorizations
for the single-trial analysis of population spike trains"): after an image is flashed, how early does each cell
fire, how reproducible is that time across repeats of the same image, and does the time of the first spike tell
the images apart better than the number of spikes?

* :func:`first_spike_latency`: binned spike counts ``(presentation, neuroid, time_bin)`` -> latency (ms) of
  the first non-empty bin per presentation and neuroid, NaN when there is no spike in the window.
* :func:`repeat_statistics`: per stimulus and neuroid, the mean, variance, standard deviation (the *jitter*
  when the values are latencies), the number of repeats, and the Fano factor ``variance / mean`` (meaningful
  for spike counts) across repetitions of the same stimulus.
* :func:`decode_stimulus`: which stimulus was shown, from single trials: leave-one-repetition-out
  nearest-class-mean decoding (per neuroid or from the population), with the fraction correct and the
  information (bits) of the confusion matrix, plug-in and the label-shuffled bias.

Inputs are assemblies (``stimulus_id`` and ``repetition`` on ``presentation``) or plain arrays ``(repeat,
stimulus, neuroid)``, arranged by :func:`neuromodels.analysis.ceilings.repetition_cube` (NaN = a repetition that
did not happen). The per-trial Fano factor here works on ``repeat x stimulus x neuroid`` counts of flashed
stimuli; the Fano factor of long simulated rasters (counting windows along one train) is a different estimator.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import xarray as xr

from neuromodels.analysis.ceilings import repetition_cube
from neuromodels.errors import ConfigError, DataFormatError

__all__ = ["first_spike_latency", "repeat_statistics", "decode_stimulus"]

_TIE_TOLERANCE = 1e-12  # relative: distances equal up to rounding share the vote (see decode_stimulus)


def first_spike_latency(binned: xr.DataArray) -> xr.DataArray:
    """Latency (ms) of the first spike per presentation and neuroid, from binned spike counts.

    Parameters
    ----------
    binned : spike counts ``(presentation, neuroid, time_bin)`` with the data model's ``time_bin_start``
        coordinate (ms after stimulus onset), e.g. ``neuromodels.datasets.load(path, bin_size=0.001)``.

    Returns
    -------
    ``xr.DataArray (presentation, neuroid)`` float64: ``time_bin_start`` of the first bin holding a spike (so the
    resolution is the bin width: with 1 ms bins and spike times in whole milliseconds this is exact), NaN where
    the presentation has no spike in the window. Presentation and neuroid coordinates are kept; attrs name the
    method, ``units`` (ms), ``bin_width_ms`` and the window end (``window_end_ms``, the latency a caller may
    assign to a trial without a spike).

    Raises
    ------
    DataFormatError
        without a ``time_bin`` dimension and its ``time_bin_start`` coordinate, with unsorted bins, or with
        negative or non-finite counts (naming the source file).
    """
    source = binned.attrs.get("source") if isinstance(binned, xr.DataArray) else None
    if not isinstance(binned, xr.DataArray) or set(binned.dims) != {"presentation", "neuroid", "time_bin"}:
        found = binned.dims if isinstance(binned, xr.DataArray) else type(binned).__name__
        raise DataFormatError(
            "bin the spike trains first (load(..., bin_size=0.001))",
            file=source,
            field="<dims>",
            expected="('presentation', 'neuroid', 'time_bin')",
            found=str(found),
        )
    if "time_bin_start" not in binned.coords:
        raise DataFormatError(
            file=source, field="time_bin_start", expected="a coordinate on 'time_bin' (ms)", found="none"
        )
    counts = binned.transpose("presentation", "neuroid", "time_bin")
    starts = np.asarray(counts["time_bin_start"].values, dtype=np.float64)
    if starts.size == 0 or np.any(np.diff(starts) <= 0):
        raise DataFormatError(
            file=source, field="time_bin_start", expected="increasing bin starts", found=f"{starts[:5].tolist()}..."
        )
    values = np.asarray(counts.values)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise DataFormatError(file=source, field="<values>", expected="finite spike counts", found="NaN or inf")
    if values.dtype.kind not in "iub" and values.dtype.kind != "f" or (values < 0).any():
        raise DataFormatError(
            file=source,
            field="<values>",
            expected="non-negative spike counts",
            found=f"dtype {values.dtype}, minimum {values.min()}",
        )
    fired = values > 0
    first = fired.argmax(axis=-1)
    latency = np.where(fired.any(axis=-1), starts[first], np.nan)
    if "time_bin_end" in counts.coords:
        ends = np.asarray(counts["time_bin_end"].values, dtype=np.float64)
        widths, window_end = ends - starts, float(ends[-1])
    else:
        widths = np.diff(starts) if starts.size > 1 else np.array([np.nan])
        window_end = float(starts[-1] + widths[-1])
    coords = {name: coord for name, coord in counts.coords.items() if "time_bin" not in coord.dims}
    attrs: dict[str, Any] = {
        "method": "first_spike_latency",
        "description": "start of the first time bin with a spike (NaN: no spike in the window)",
        "reference": "Gollisch & Meister 2008, Science 319:1108",
        "units": "ms",
        "bin_width_ms": float(np.median(widths)),
        "window_end_ms": window_end,
    }
    if source is not None:
        attrs["source"] = str(source)
    return xr.DataArray(latency, dims=("presentation", "neuroid"), coords=coords, name="latency", attrs=attrs)


def repeat_statistics(values: xr.DataArray | np.ndarray) -> xr.Dataset:
    """Mean, variance, jitter (std), repeat count and Fano factor across repetitions, per stimulus and neuroid.

    ``values``: an assembly ``(presentation, neuroid)`` (spike counts, latencies, ...) or an array ``(repeat,
    stimulus, neuroid)``; NaN values are left out (a missing repetition, or a latency of a trial without a spike).

    Returns
    -------
    ``xr.Dataset`` with dims ``(stimulus_id, neuroid)``: ``mean``, ``variance`` (ddof=1), ``std`` (ddof=1),
    ``n_repeats`` (finite values), ``fano_factor`` (``variance / mean``; NaN where the mean is 0 or fewer than 2
    repeats). For latencies ``std`` is the jitter of Gollisch & Meister (2008); for spike counts ``fano_factor``
    is 1 for a Poisson process and below 1 for the more regular responses of retinal ganglion cells
    (Berry, Warland & Meister 1997, PNAS 94:5411).

    This ``fano_factor`` is the Fano factor *across repeats of one stimulus* (trial-to-trial variability). The
    Fano factor *along one spike train* (count variance over consecutive time windows of one run) is
    :func:`neuromodels.analysis.spike_statistics.fano_factor`.
    """
    cube = repetition_cube(values)
    flat = cube.flat()  # (repeat, stimulus, unit)
    finite = np.isfinite(flat)
    n = finite.sum(axis=0)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(flat, axis=0)
        variance = np.where(n >= 2, np.nanvar(flat, axis=0, ddof=1), np.nan)
        fano = np.where((n >= 2) & (mean > 0), variance / mean, np.nan)
    leading = {"stimulus_id": cube.stimulus_id}
    attrs = {
        "method": "repeat_statistics",
        "variance": "ddof=1 over finite repetitions",
        "fano_factor": "variance / mean (NaN where mean == 0 or n_repeats < 2)",
    }
    if cube.source is not None:
        attrs["source"] = cube.source
    return xr.Dataset(
        {
            "mean": cube.unflatten(mean, "mean", leading=leading),
            "variance": cube.unflatten(variance, "variance", leading=leading),
            "std": cube.unflatten(np.sqrt(variance), "std", leading=leading),
            "n_repeats": cube.unflatten(n, "n_repeats", leading=leading),
            "fano_factor": cube.unflatten(fano, "fano_factor", leading=leading),
        },
        attrs=attrs,
    )


def _nearest_mean_confusion(cube: np.ndarray, per_neuroid: bool) -> np.ndarray:
    """Leave-one-repetition-out confusion counts: ``(unit, stimulus, decoded)`` or ``(1, stimulus, decoded)``.

    Ties (equal distances to several class means, common for integer spike counts) split the trial's vote
    equally among the tied classes: the expected result of breaking the tie at random.
    """
    n_reps, n_stim, n_units = cube.shape
    confusion = np.zeros((n_units if per_neuroid else 1, n_stim, n_stim))
    for r in range(n_reps):
        test = cube[r]  # (stimulus, unit)
        train = np.delete(cube, r, axis=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            means = np.nanmean(train, axis=0)  # (class, unit); NaN: no training trial of that class
        diff = test[:, None, :] - means[None, :, :]  # (trial, class, unit)
        if per_neuroid:
            distance = np.abs(diff).transpose(2, 0, 1)  # (unit, trial, class)
            valid = np.isfinite(test).T  # (unit, trial)
        else:
            distance = np.sum(diff * diff, axis=-1)[None]  # (1, trial, class); NaN if any unit is missing
            valid = np.isfinite(test).all(axis=1)[None]
        distance = np.where(np.isfinite(distance), distance, np.inf)
        best = distance.min(axis=-1, keepdims=True)
        tied = distance <= best + _TIE_TOLERANCE * np.maximum(np.abs(best), 1.0)
        tied &= np.isfinite(best)
        votes = tied / np.maximum(tied.sum(axis=-1, keepdims=True), 1)
        confusion += np.where(valid[..., None], votes, 0.0)
    return confusion


def _confusion_information(confusion: np.ndarray) -> np.ndarray:
    """Mutual information (bits) between shown and decoded stimulus, plug-in, per leading index."""
    total = confusion.sum(axis=(-2, -1), keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        joint = confusion / total
        shown = joint.sum(axis=-1, keepdims=True)
        decoded = joint.sum(axis=-2, keepdims=True)
        terms = np.where(joint > 0, joint * np.log2(joint / (shown * decoded)), 0.0)
    return terms.sum(axis=(-2, -1))


def decode_stimulus(
    values: xr.DataArray | np.ndarray,
    *,
    per_neuroid: bool = False,
    n_shuffles: int = 10,
    seed: int = 0,
) -> xr.Dataset:
    """Which stimulus was shown, from single trials: leave-one-repetition-out nearest-class-mean decoding.

    For each repetition ``r``, every stimulus' trial ``r`` is assigned to the stimulus whose mean over the other
    repetitions is nearest (per neuroid: absolute difference; population: Euclidean distance after dividing each
    neuroid by its standard deviation over all trials, which uses no labels). The same decoder is applied to any
    response feature (spike counts, first-spike latencies), so the fraction correct compares the features.

    Parameters
    ----------
    values : an assembly ``(presentation, neuroid[, time_bin])`` or an array
        ``(repeat, stimulus, neuroid[, time_bin])``; with time bins the population decoder reads the whole binned
        spike train. NaN marks a repetition that did not happen: that trial is not decoded (population: when any
        neuroid is NaN) and is left out of the class means. Fill undefined features first (a trial without spikes has no first-spike
        latency: give it the window end, say).
    per_neuroid : decode from each neuroid alone (results per neuroid) instead of from the population.
    n_shuffles : the decoding is repeated this many times with the stimulus labels of all trials permuted
        (``seed``); the mean information of those runs estimates the plug-in bias of the information.

    Returns
    -------
    ``xr.Dataset`` with ``accuracy`` (fraction correct; per neuroid or scalar), ``information_bits`` (plug-in
    mutual information of the confusion matrix), ``information_shuffled_bits`` (its mean over label shuffles),
    ``confusion`` (``[neuroid,] stimulus_id, decoded_id``; trial counts, ties split) and attrs with ``chance``
    (1 / number of stimuli) and the method.
    """
    if not isinstance(n_shuffles, (int, np.integer)) or n_shuffles < 0:
        raise ConfigError(f"n_shuffles must be a non-negative integer, got {n_shuffles!r}")
    cube = repetition_cube(values)
    if per_neuroid and cube.values.ndim != 3:
        raise DataFormatError(
            file=cube.source,
            field="<dims>",
            expected="(presentation, neuroid) responses to decode per neuroid",
            found=f"{cube.values.ndim - 2} unit dimensions",
        )
    data = cube.flat()  # population: neuroid x time bin form one feature vector (the whole binned spike train)
    n_reps, n_stim, n_units = data.shape
    if n_stim < 2:
        raise DataFormatError(file=cube.source, field="stimulus_id", expected="at least 2 stimuli", found=n_stim)
    if not per_neuroid:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            scale = np.nanstd(data.reshape(-1, n_units), axis=0)
        keep = scale > 0  # a constant neuroid carries no information; dividing by 0 would poison every distance
        data = data[:, :, keep] / scale[keep]
    confusion = _nearest_mean_confusion(data, per_neuroid)
    information = _confusion_information(confusion)
    rng = np.random.default_rng(seed)
    shuffled = np.zeros_like(information)
    for _ in range(n_shuffles):
        order = rng.permutation(n_reps * n_stim)
        permuted = data.reshape(n_reps * n_stim, -1)[order].reshape(data.shape)
        shuffled += _confusion_information(_nearest_mean_confusion(permuted, per_neuroid))
    shuffled = shuffled / n_shuffles if n_shuffles else np.full_like(information, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.trace(confusion, axis1=-2, axis2=-1) / confusion.sum(axis=(-2, -1))

    attrs: dict[str, Any] = {
        "method": "decode_stimulus",
        "decoder": "leave-one-repetition-out nearest class mean"
        + (
            " per neuroid (absolute difference)"
            if per_neuroid
            else " (Euclidean, each neuroid divided by its std over all trials)"
        ),
        "ties": "split equally among tied classes",
        "chance": 1.0 / n_stim,
        "n_shuffles": int(n_shuffles),
        "seed": int(seed),
        "information": "plug-in mutual information of the confusion matrix (biased upwards; compare with "
        "information_shuffled_bits)",
    }
    if cube.source is not None:
        attrs["source"] = cube.source
    stim_ids = np.asarray(cube.stimulus_id)
    if per_neuroid:
        template = cube.template
        ds = xr.Dataset(
            {
                "accuracy": template.copy(data=accuracy).rename("accuracy"),
                "information_bits": template.copy(data=information).rename("information_bits"),
                "information_shuffled_bits": template.copy(data=shuffled).rename("information_shuffled_bits"),
                "confusion": xr.DataArray(
                    confusion,
                    dims=("neuroid", "stimulus_id", "decoded_id"),
                    coords={**template.coords, "stimulus_id": stim_ids, "decoded_id": stim_ids},
                ),
            },
            attrs=attrs,
        )
    else:
        ds = xr.Dataset(
            {
                "accuracy": float(accuracy[0]),
                "information_bits": float(information[0]),
                "information_shuffled_bits": float(shuffled[0]),
                "confusion": xr.DataArray(
                    confusion[0],
                    dims=("stimulus_id", "decoded_id"),
                    coords={"stimulus_id": stim_ids, "decoded_id": stim_ids},
                ),
            },
            attrs=attrs,
        )
    return ds

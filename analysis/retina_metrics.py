"""Per-cell test metrics of a retina model: CC, CC_norm, FEVE and the repeat-based noise ceilings.

The test split of a continuous recording holds ``trials(repeat, time, cell)``: the same test movie shown
``repeat`` times. Each time bin plays the role of a "stimulus" of the ceiling functions in
:mod:`neuromodels.analysis.ceilings`, which take plain arrays ``(repeat, stimulus, neuroid)`` and
predictions ``(stimulus, neuroid)``; this module is the thin adapter (select the test bins, drop bins no
repeat covers, order cells) plus the per-cell Pearson CC against the trial average.

Metrics per cell (all on the test split):

* ``cc``: Pearson r between the prediction and the trial-averaged response (the paper's measure).
* ``cc_max``: Schoppe et al. (2016) upper bound on ``cc`` set by the trial-to-trial noise and the number of
  repeats (signal power of Sahani & Linden 2003). This is *the* noise ceiling reported beside ``cc``.
* ``cc_norm``: ``cc / cc_max`` computed as in Schoppe et al. (unbiased signal power); 1 = at the ceiling.
* ``fev``: fraction of explainable variance of single trials (Cadena et al. 2019).
* ``feve``: fraction of that explainable variance the model explains (Cadena et al. 2019), single trials.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from neuromodels.errors import DataFormatError

__all__ = ["repeated_trials", "retina_test_metrics", "pearson_columns", "compare_models", "cross_ensemble"]


def pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r per column of two ``(sample, column)`` arrays; NaN where either column is constant."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    da, db = a - a.mean(0), b - b.mean(0)
    denominator = np.sqrt((da * da).sum(0) * (db * db).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (da * db).sum(0) / denominator, np.nan)


def repeated_trials(recording: xr.Dataset, *, stimulus_kind: str | None = None) -> xr.DataArray:
    """``trials(repeat, time, cell)`` on the bins of the test split that at least one repeat covers.

    Recordings without a ``split`` coordinate are taken whole. ``stimulus_kind``: keep only test bins whose
    ``stimulus_kind`` coordinate has this value (``sample:retina``: ``"checkerboard"`` or ``"natural"``).
    Raises :class:`DataFormatError` when there are no repeated trials (no ceiling can be computed) or fewer
    than 2 repeats.
    """
    source = recording.attrs.get("source")
    if "trials" not in recording:
        raise DataFormatError(
            file=source, field="trials", expected="repeated test trials trials(repeat, time, cell)", found="none"
        )
    trials = recording["trials"].transpose("repeat", "time", "cell")
    keep = np.ones(recording.sizes["time"], dtype=bool)
    if "split" in recording.coords:
        keep &= np.asarray(recording["split"].values) == "test"
    if stimulus_kind is not None:
        if "stimulus_kind" not in recording.coords:
            raise DataFormatError(
                file=source, field="stimulus_kind", expected="a stimulus_kind coordinate on time", found="none"
            )
        kinds = np.asarray(recording["stimulus_kind"].values).astype(str)
        if not (keep & (kinds == stimulus_kind)).any():
            raise DataFormatError(
                file=source,
                field="stimulus_kind",
                expected=f"test bins of kind {stimulus_kind!r}",
                found=sorted(set(kinds[keep].tolist())),
            )
        keep &= kinds == stimulus_kind
    trials = trials.isel(time=np.flatnonzero(keep))
    covered = np.isfinite(np.asarray(trials.values)).any(axis=(0, 2))
    trials = trials.isel(time=np.flatnonzero(covered))
    if trials.sizes["time"] == 0:
        raise DataFormatError(file=source, field="trials", expected="finite trials on the test split", found="all NaN")
    if trials.sizes["repeat"] < 2:
        raise DataFormatError(
            file=source, field="trials", expected="at least 2 repeats", found=f"{trials.sizes['repeat']}"
        )
    return trials


def retina_test_metrics(
    prediction: xr.DataArray, recording: xr.Dataset, *, stimulus_kind: str | None = None
) -> xr.Dataset:
    """Per-cell ``cc``, ``cc_max``, ``cc_norm``, ``fev``, ``feve`` of ``prediction`` on the recording's test trials.

    ``prediction``: ``(time, cell)`` predicted response in the units of the counts (expected spikes per
    bin), with the recording's ``time`` and ``cell`` coordinates; it must cover every test bin with trials
    (it is aligned by ``time`` and ``cell`` labels). ``stimulus_kind`` restricts the test bins (see
    :func:`repeated_trials`). Returns an ``xr.Dataset`` over ``cell`` with the recording's cell coordinates and
    attrs naming the methods and the number of test bins and repeats.
    """
    from neuromodels.analysis.ceilings import cc_max, cc_norm, fev, feve

    source = recording.attrs.get("source")
    trials = repeated_trials(recording, stimulus_kind=stimulus_kind)
    if not isinstance(prediction, xr.DataArray) or set(prediction.dims) != {"time", "cell"}:
        raise DataFormatError(
            field="prediction",
            expected="an xr.DataArray (time, cell)",
            found=getattr(prediction, "dims", type(prediction).__name__),
        )
    try:
        aligned = prediction.transpose("time", "cell").sel(time=trials["time"].values, cell=trials["cell"].values)
    except KeyError as err:
        raise DataFormatError(
            file=source,
            field="prediction",
            expected="a value for every test bin and cell",
            found=f"missing labels ({err})",
        ) from None
    pred = np.asarray(aligned.values, dtype=np.float64)
    if not np.isfinite(pred).all():
        raise DataFormatError(
            file=source,
            field="prediction",
            expected="finite predictions on every test bin",
            found=f"{int((~np.isfinite(pred)).sum())} NaN/inf values",
        )
    values = np.asarray(trials.values, dtype=np.float64)  # (repeat, time=stimulus, cell=neuroid)
    with np.errstate(invalid="ignore"):
        trial_mean = np.nanmean(values, axis=0)
    import warnings

    with warnings.catch_warnings():
        # the ceiling functions warn per NaN cell (e.g. a silent cell); the NaN in the result says it
        warnings.simplefilter("ignore", RuntimeWarning)
        result = {
            "cc": pearson_columns(pred, trial_mean),
            "cc_max": np.asarray(cc_max(values).values),
            "cc_norm": np.asarray(cc_norm(pred, values).values),
            "fev": np.asarray(fev(values).values),
            "feve": np.asarray(feve(pred, values).values),
        }
    cell_coords: dict[str, Any] = {
        name: ("cell", np.asarray(coord.values)) for name, coord in trials.coords.items() if coord.dims == ("cell",)
    }
    ds = xr.Dataset({name: ("cell", value) for name, value in result.items()}, coords=cell_coords)
    ds.attrs.update(
        {
            "n_test_bins": int(trials.sizes["time"]),
            "n_repeats": int(trials.sizes["repeat"]),
            "cc": "Pearson r of prediction and trial-averaged response over test bins",
            "cc_max": "Schoppe et al. 2016 (signal power: Sahani & Linden 2003); the noise ceiling of cc",
            "cc_norm": "Schoppe et al. 2016",
            "fev": "Cadena et al. 2019, single trials",
            "feve": "Cadena et al. 2019, single trials",
            "source": str(source),
            "stimulus_kind": "all" if stimulus_kind is None else stimulus_kind,
        }
    )
    return ds


def compare_models(
    recording: xr.Dataset,
    models: tuple[str, ...] = ("cnn", "ln"),
    *,
    stimulus_kind: str | None = None,
    **estimator_params: Any,
) -> tuple[xr.Dataset, dict[str, Any]]:
    """Fit each model kind with :class:`~neuromodels.fitting.RetinaEstimator` and score it on the test split.

    The paper's central comparison (McIntosh et al. 2016, Fig. 2): per-cell test CC of a CNN and an LN model
    against the cells' noise ceiling. ``estimator_params`` go to every estimator (``epochs=``, ``seed=``, ...);
    a key ``"<model>_params"`` (a dict) goes to that model only. Returns ``(metrics, estimators)``:
    ``metrics`` has dims ``(model, cell)`` and variables ``cc``, ``cc_max``, ``cc_norm``, ``fev``, ``feve``;
    ``estimators`` maps model kind to the fitted estimator.
    """
    from neuromodels.fitting.estimator import RetinaEstimator

    per_model = {kind: dict(estimator_params.pop(f"{kind}_params", {})) for kind in models}
    results, estimators = [], {}
    for kind in models:
        estimator = RetinaEstimator(kind, **estimator_params, **per_model[kind]).fit(recording)
        estimators[kind] = estimator
        results.append(estimator.evaluate(recording, retina_test_metrics, stimulus_kind=stimulus_kind))
    metrics = xr.concat(results, dim=xr.DataArray(list(models), dims="model", name="model"))
    metrics.attrs.update(results[0].attrs)
    metrics.attrs.pop("model", None)
    return metrics, estimators


def cross_ensemble(
    recording: xr.Dataset, model: str = "cnn", *, train_kind: str, test_kind: str, **estimator_params: Any
) -> xr.Dataset:
    """Train on one stimulus ensemble, test on another (McIntosh et al. 2016, generalisation across stimuli).

    Keeps the training bins whose ``stimulus_kind`` is ``train_kind`` (e.g. ``"checkerboard"``) and scores
    on the test bins of ``test_kind`` (e.g. ``"natural"``). The test movie is predicted whole, so the bins
    of ``test_kind`` keep the history the recording really had. Returns the per-cell metrics of
    :func:`retina_test_metrics`, with ``train_kind`` and ``test_kind`` in attrs.
    """
    from neuromodels.fitting.estimator import RetinaEstimator

    source = recording.attrs.get("source")
    if "stimulus_kind" not in recording.coords or "split" not in recording.coords:
        raise DataFormatError(
            file=source, field="stimulus_kind", expected="stimulus_kind and split coordinates on time", found="none"
        )
    kinds = np.asarray(recording["stimulus_kind"].values).astype(str)
    split = np.asarray(recording["split"].values).astype(str)
    keep = (split == "test") | ((split == "train") & (kinds == train_kind))
    if not ((split == "train") & (kinds == train_kind)).any():
        raise DataFormatError(
            file=source,
            field="stimulus_kind",
            expected=f"training bins of kind {train_kind!r}",
            found=sorted(set(kinds[split == "train"].tolist())),
        )
    subset = recording.isel(time=np.flatnonzero(keep))
    estimator = RetinaEstimator(model, **estimator_params).fit(subset)
    metrics = estimator.evaluate(recording, retina_test_metrics, stimulus_kind=test_kind)
    metrics.attrs.update({"train_kind": train_kind, "test_kind": test_kind})
    return metrics

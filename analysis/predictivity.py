"""Neural predictivity: cross-validated linear mapping from model features to neurons, scored by Pearson r.

:func:`predictivity` reproduces Brain-Score's ``CrossRegressedCorrelation`` (``pls`` metric) by default (equal
to Brain-Score 2.4.2's own output to ~1e-15 where both were run) and computes the same numbers much faster (all
splits' PLS fits in lockstep on small Gram matrices, vectorised correlations); ``pls="converged"`` replaces
scikit-learn's early-stopped NIPALS weights by their converged values; ridge with a GCV-selected penalty and
ordinary least squares are the alternatives. The procedure, every formula and what was checked against
Brain-Score's code and Brain-Score itself are in docs/predictivity.md.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from neuromodels.analysis.ceilings import ceiling_split_half, require_one_region
from neuromodels.analysis.regression import (
    RELATIVE_RIDGE_ALPHAS,
    least_squares_fit_predict,
    pls_cross_validated,
    ridge_gcv,
)
from neuromodels.errors import ConfigError, DataFormatError

__all__ = [
    "predictivity",
    "average_repetitions",
    "ceiled_value",
    "synthetic_scoring_data",
    "REGRESSIONS",
    "PLS_MODES",
    "CEILED_CONVENTIONS",
]

REGRESSIONS = ("pls", "ridge", "linear")
# "brainscore": scikit-learn's NIPALS as Brain-Score runs it (PLSRegression defaults: tol=1e-6, max_iter=500);
# "converged": the same PLS with the weights at convergence (dominant singular vectors). docs/predictivity.md 2.
PLS_MODES = {"brainscore": {"algorithm": "nipals", "tol": 1e-6, "max_iter": 500}, "converged": {"algorithm": "exact"}}
CEILED_CONVENTIONS = ("r2_over_ceiling", "r_over_ceiling_squared", "r_over_ceiling")

_REFERENCE = (
    "Brain-Score CrossRegressedCorrelation (brainscore_vision/metrics/regression_correlation/metric.py, "
    "metric_helpers/transformations.py CrossValidation/Split, metric_helpers/xarray_utils.py); "
    "Schrimpf et al. 2018 bioRxiv 407007; Yamins et al. 2014 PNAS 111:8619"
)


def _source(obj: Any) -> str | None:
    src = getattr(obj, "attrs", {}).get("source") if hasattr(obj, "attrs") else None
    return None if src is None else str(src)


def _sorted_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, uniques)`` with ``uniques`` in the order xarray/pandas sort these values (numbers numerically,
    strings lexicographically), as Brain-Score's ``groupby``/``sortby`` do; values of mixed types, which cannot be
    ordered, by their text."""
    try:
        return pd.factorize(values, sort=True)
    except TypeError:
        return pd.factorize(values.astype(str), sort=True)


def average_repetitions(neural: xr.DataArray) -> xr.DataArray:
    """Mean response per ``stimulus_id`` over its repetitions, NaN repetitions ignored (Brain-Score's
    ``average_repetition``): ``(stimulus, neuroid[, time_bin])`` sorted by ``stimulus_id`` as Brain-Score sorts
    it (integer ids numerically, text ids lexicographically).

    Presentation coordinates that are constant within every stimulus (e.g. ``object_name``) are kept; the
    ``presentation`` dimension of the result has one entry per stimulus.
    """
    source = _source(neural)
    if not isinstance(neural, xr.DataArray):
        raise DataFormatError(
            file=source, field="neural", expected="an xarray.DataArray assembly", found=type(neural).__name__
        )
    if (
        "presentation" not in neural.dims
        or "neuroid" not in neural.dims
        or set(neural.dims) - {"presentation", "neuroid", "time_bin"}
    ):
        raise DataFormatError(
            file=source, field="<dims>", expected="('presentation', 'neuroid'[, 'time_bin'])", found=str(neural.dims)
        )
    if "stimulus_id" not in neural.coords or neural["stimulus_id"].dims != ("presentation",):
        raise DataFormatError(file=source, field="stimulus_id", expected="a coordinate on 'presentation'", found="none")
    order = ["presentation", "neuroid"] + (["time_bin"] if "time_bin" in neural.dims else [])
    neural = neural.transpose(*order)
    codes, uniques = _sorted_codes(np.asarray(neural["stimulus_id"].values))
    values = np.asarray(neural.values, dtype=np.float64)
    if np.isinf(values).any():
        raise DataFormatError(file=source, field="<values>", expected="finite values or NaN", found="infinite values")
    flat = values.reshape(values.shape[0], -1)
    finite = np.isfinite(flat)
    # Group sums by sorting the presentations by stimulus (np.add.reduceat), not np.add.at (10x slower).
    by_stimulus = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(codes[by_stimulus]) != 0])
    sums = np.add.reduceat(np.where(finite, flat, 0.0)[by_stimulus], starts, axis=0)
    counts = np.add.reduceat(finite[by_stimulus].astype(np.float64), starts, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    means[counts == 0] = np.nan
    coords: dict[str, Any] = {"stimulus_id": ("presentation", np.asarray(uniques))}
    first = np.zeros(len(uniques), dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes))[::-1]
    for name, coord in neural.coords.items():
        if coord.dims == ("presentation",) and name not in ("stimulus_id", "repetition", "presentation"):
            raw = np.asarray(coord.values)
            picked = raw[first]
            if np.array_equal(pd.Series(raw).astype(str).to_numpy(), pd.Series(picked[codes]).astype(str).to_numpy()):
                coords[name] = ("presentation", picked)
        elif coord.dims and "presentation" not in coord.dims:
            coords[name] = coord
    averaged = xr.DataArray(
        means.reshape((len(uniques),) + values.shape[1:]),
        dims=order,
        coords=coords,
        attrs=dict(neural.attrs),
        name=neural.name,
    )
    return averaged


def synthetic_scoring_data(
    *,
    n_objects: int = 64,
    images_per_object: int = 40,
    n_neuroids: int = 168,
    n_repetitions: int = 10,
    n_features: int = 1000,
    n_latent: int = 40,
    noise_sd: float = 3.0,
    seed: int = 1,
) -> tuple[xr.DataArray, xr.DataArray]:
    """A MajajHong2015-IT-scale assembly and model features with a known structure: ``(neural, features)``.

    The defaults are the data of issue 12 and of ``benchmarks/bench_predictivity.py``: 2,560 images of 64 objects,
    168 neuroids, 10 repetitions, 1,000 features, 40 latent factors, noise sd 3, ``numpy.random.default_rng(1)``.
    With ``Z`` the latent factors of each image (half shared by the images of an object, unit variance),
    ``signal = Z W / sqrt(n_latent)`` (unit variance per neuroid), each trial ``signal + noise_sd * N(0, 1)``, and
    ``features = max(Z M / sqrt(n_latent) + N(0, 1), 0)``; ``W``, ``M`` standard normal. The split-half ceiling is
    then about ``1 / (1 + noise_sd**2 / n_repetitions)`` (0.53 with the defaults). Draws, in this order: object
    factors, image factors, ``W``, trial noise, ``M``, feature noise, the permutation that names the images
    ``img00000``... (so that sorting by ``stimulus_id`` reorders them).

    ``neural``: ``(presentation, neuroid)``, presentations repetition-major (all images of repetition 0, then 1,
    ...), coordinates ``stimulus_id``, ``repetition``, ``object_name`` (``obj00``...), ``neuroid_id``, ``region``
    (``IT``). ``features``: ``(presentation, feature)`` float64, one row per image, with ``stimulus_id``.
    """
    from neuromodels.datasets.recording import assembly

    rng = np.random.default_rng(seed)
    n_images = n_objects * images_per_object
    objects = np.repeat(np.arange(n_objects), images_per_object)
    latent = (
        rng.standard_normal((n_objects, n_latent))[objects] + rng.standard_normal((n_images, n_latent))
    ) / np.sqrt(2.0)
    signal = latent @ rng.standard_normal((n_latent, n_neuroids)) / np.sqrt(n_latent)
    trials = signal[None] + noise_sd * rng.standard_normal((n_repetitions, n_images, n_neuroids))
    features = np.maximum(
        latent @ rng.standard_normal((n_latent, n_features)) / np.sqrt(n_latent)
        + rng.standard_normal((n_images, n_features)),
        0.0,
    )
    ids = np.array([f"img{i:05d}" for i in rng.permutation(n_images)])
    names = np.array([f"obj{o:02d}" for o in objects])
    neural = assembly(
        trials.reshape(n_repetitions * n_images, n_neuroids),
        stimulus_id=np.tile(ids, n_repetitions),
        neuroid_id=[f"IT{i:03d}" for i in range(n_neuroids)],
        repetition=np.repeat(np.arange(n_repetitions), n_images),
        presentation_coords={"object_name": np.tile(names, n_repetitions)},
        neuroid_coords={"region": ["IT"] * n_neuroids},
    )
    feats = xr.DataArray(features, dims=("presentation", "feature"), coords={"stimulus_id": ("presentation", ids)})
    return neural, feats


def _features_matrix(features: xr.DataArray, stimulus_ids: np.ndarray, n_time_bins: int | None) -> np.ndarray:
    """Features aligned to ``stimulus_ids``: ``(stimulus, feature)`` or ``(time_bin, stimulus, feature)``."""
    source = _source(features)
    if not isinstance(features, xr.DataArray):
        raise DataFormatError(
            file=source,
            field="features",
            expected="an xarray.DataArray (presentation, feature)",
            found=type(features).__name__,
        )
    time_dims = [d for d in features.dims if d in ("time_bin", "time_step")]
    expected_dims = {"presentation", "feature", *time_dims}
    if (
        "presentation" not in features.dims
        or "feature" not in features.dims
        or set(features.dims) != expected_dims
        or len(time_dims) > 1
    ):
        raise DataFormatError(
            file=source,
            field="features.<dims>",
            expected="('presentation', 'feature'[, 'time_bin' or 'time_step'])",
            found=str(features.dims),
        )
    if "stimulus_id" not in features.coords or features["stimulus_id"].dims != ("presentation",):
        raise DataFormatError(
            file=source, field="features.stimulus_id", expected="a coordinate on 'presentation'", found="none"
        )
    ids = pd.Index(np.asarray(features["stimulus_id"].values).astype(str))
    if not ids.is_unique:
        raise DataFormatError(
            "features must hold one row per stimulus",
            file=source,
            field="features.stimulus_id",
            expected="unique stimulus ids",
            found=f"duplicates {ids[ids.duplicated()].unique()[:5].tolist()}",
        )
    position = ids.get_indexer(stimulus_ids)
    if (position < 0).any():
        missing = stimulus_ids[position < 0]
        raise DataFormatError(
            "every stimulus of the neural assembly needs model features (align on stimulus_id)",
            file=source,
            field="features.stimulus_id",
            expected=f"features for all {stimulus_ids.size} neural stimuli",
            found=f"{missing.size} missing, e.g. {missing[:5].tolist()}",
        )
    if time_dims:
        if n_time_bins is None:
            raise DataFormatError(
                file=source,
                field=f"features.{time_dims[0]}",
                expected="no time dimension for an assembly without time_bin (select one step)",
                found=f"{features.sizes[time_dims[0]]} {time_dims[0]}s",
            )
        if features.sizes[time_dims[0]] != n_time_bins:
            raise DataFormatError(
                file=source,
                field=f"features.{time_dims[0]}",
                expected=f"{n_time_bins} (one per neural time_bin)",
                found=f"{features.sizes[time_dims[0]]}",
            )
        values = np.asarray(features.transpose(time_dims[0], "presentation", "feature").values, dtype=np.float64)
        values = values[:, position]
    else:
        values = np.asarray(features.transpose("presentation", "feature").values, dtype=np.float64)[position]
    if not np.all(np.isfinite(values)):
        bad = int((~np.isfinite(values)).sum())
        raise DataFormatError(file=source, field="features", expected="finite values", found=f"{bad} NaN/inf values")
    if values.shape[-1] == 0:
        raise DataFormatError(file=source, field="features.feature", expected="at least one feature", found="0")
    return values


def _stratification_labels(
    averaged: xr.DataArray, features: xr.DataArray, stimulus_ids: np.ndarray, stratify_coord: str | None
) -> np.ndarray | None:
    """The class label of every stimulus, in its own dtype: ``StratifiedShuffleSplit`` visits the classes in sorted
    order, so integer labels 2, 10 and their text "2", "10" give different splits (Brain-Score passes the
    coordinate's values as they are)."""
    if not stratify_coord:
        return None
    if stratify_coord in averaged.coords and averaged[stratify_coord].dims == ("presentation",):
        labels = np.asarray(averaged[stratify_coord].values)
    elif stratify_coord in features.coords and features[stratify_coord].dims == ("presentation",):
        ids = pd.Index(np.asarray(features["stimulus_id"].values).astype(str))
        labels = np.asarray(features[stratify_coord].values)[ids.get_indexer(stimulus_ids)]
    else:
        return None
    try:
        np.unique(labels)
    except TypeError:  # values of mixed types cannot be ordered: by their text
        labels = labels.astype(str)
    return labels


def _splits(
    n_stimuli: int, labels: np.ndarray | None, n_splits: int, train_size: float, random_state: int | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

    if not isinstance(n_splits, (int, np.integer)) or n_splits < 1:
        raise ConfigError(f"n_splits must be a positive integer, got {n_splits!r}")
    if not (0.0 < float(train_size) < 1.0):
        raise ConfigError(f"train_size must be a fraction in (0, 1), got {train_size!r}")
    try:
        if labels is not None:
            counts = pd.Series(labels).value_counts()
            if counts.min() < 2:
                raise ConfigError(
                    f"stratified splits need at least 2 stimuli per class; {int((counts < 2).sum())} classes have 1 "
                    f"(e.g. {counts[counts < 2].index[:3].tolist()}); pass stratify_coord=None"
                )
            splitter = StratifiedShuffleSplit(
                n_splits=n_splits, train_size=train_size, test_size=None, random_state=random_state
            )
            return list(splitter.split(np.zeros(n_stimuli), labels))
        splitter = ShuffleSplit(n_splits=n_splits, train_size=train_size, test_size=None, random_state=random_state)
        return list(splitter.split(np.zeros(n_stimuli)))
    except ValueError as exc:  # scikit-learn's size checks
        raise ConfigError(f"cannot split {n_stimuli} stimuli with train_size={train_size}: {exc}") from exc


def _pearson_per_column(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Pearson r per column over rows; NaN for a constant column (as scipy.stats.pearsonr)."""
    dp = prediction - prediction.mean(axis=0)
    dt = target - target.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.einsum("ij,ij->j", dp, dt) / np.sqrt(np.einsum("ij,ij->j", dp, dp) * np.einsum("ij,ij->j", dt, dt))
    r[~np.isfinite(r)] = np.nan
    return np.clip(r, -1.0, 1.0)


def ceiled_value(score: Any, ceiling: Any, convention: str = "r2_over_ceiling") -> Any:
    """Apply a ceiling convention: ``r**2 / c`` (default), ``(r / c)**2`` or ``r / c``."""
    if convention == "r2_over_ceiling":
        return score**2 / ceiling
    if convention == "r_over_ceiling_squared":
        return (score / ceiling) ** 2
    if convention == "r_over_ceiling":
        return score / ceiling
    raise ConfigError(f"ceiled must be one of {', '.join(CEILED_CONVENTIONS)}; got {convention!r}")


def _ceiled_error(score: Any, error: Any, ceiling: Any, convention: str) -> Any:
    """First-order (delta-method) propagation of the score's error through the convention."""
    if convention == "r2_over_ceiling":
        return abs(2 * score / ceiling) * error
    if convention == "r_over_ceiling_squared":
        return abs(2 * score / ceiling**2) * error
    return error / abs(ceiling)


def _resolve_ceiling(
    ceiling: Any, neural: xr.DataArray, template: xr.DataArray
) -> tuple[xr.DataArray, xr.DataArray | None, str, dict[str, Any]]:
    """(aggregate ceiling, per-neuroid ceiling or None, description, ceiling attrs)."""
    if isinstance(ceiling, str):
        if ceiling != "split_half":
            raise ConfigError(
                f"ceiling must be None, a number, a DataArray, an xr.Dataset or 'split_half'; got {ceiling!r}"
            )
        ds = ceiling_split_half(neural)
        return ds["ceiling"], ds["ceiling_per_neuroid"], "split_half", dict(ds.attrs)
    if isinstance(ceiling, xr.Dataset):
        if "ceiling" not in ceiling:
            raise DataFormatError(
                field="ceiling",
                expected="a Dataset with a 'ceiling' variable (noise_ceiling)",
                found=sorted(ceiling.data_vars),
            )
        per = ceiling["ceiling_per_neuroid"] if "ceiling_per_neuroid" in ceiling else None
        if per is not None:
            per = _align_per_neuroid(per, template)
        return ceiling["ceiling"], per, str(ceiling.attrs.get("method", "given")), dict(ceiling.attrs)
    if isinstance(ceiling, xr.DataArray):
        if "neuroid" not in ceiling.dims:
            return ceiling, None, "given", {}
        per = _align_per_neuroid(ceiling, template)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            center = per.median(dim="neuroid", skipna=True)
        return center, per, "given per neuroid (aggregate: median over neuroids)", {}
    try:
        value = float(ceiling)
    except (TypeError, ValueError):
        raise ConfigError(
            f"ceiling must be None, a number, a DataArray, an xr.Dataset or 'split_half'; got {type(ceiling).__name__}"
        ) from None
    return xr.DataArray(value), None, "given", {}


def _align_per_neuroid(per: xr.DataArray, template: xr.DataArray) -> xr.DataArray:
    if "neuroid_id" in per.coords and "neuroid_id" in template.coords:
        ids = pd.Index(np.asarray(per["neuroid_id"].values).astype(str))
        wanted = np.asarray(template["neuroid_id"].values).astype(str)
        position = ids.get_indexer(wanted)
        if (position < 0).any():
            raise DataFormatError(
                field="ceiling.neuroid_id",
                expected="a ceiling for every neuroid",
                found=f"{int((position < 0).sum())} missing, e.g. {wanted[position < 0][:5].tolist()}",
            )
        per = per.isel(neuroid=position)
    elif per.sizes["neuroid"] != template.sizes["neuroid"]:
        raise DataFormatError(
            field="ceiling", expected=f"{template.sizes['neuroid']} neuroids", found=f"{per.sizes['neuroid']}"
        )
    values = np.asarray(per.transpose(*[d for d in template.dims if d in per.dims]).values, dtype=np.float64)
    if per.ndim < template.ndim:
        values = np.broadcast_to(values.reshape(values.shape + (1,) * (template.ndim - per.ndim)), template.shape)
    return template.copy(data=values)


def predictivity(
    features: xr.DataArray,
    neural: xr.DataArray,
    *,
    regression: str = "pls",
    n_components: int = 25,
    pls: str = "brainscore",
    alphas: Any = None,
    n_splits: int = 10,
    train_size: float = 0.9,
    stratify_coord: str | None = "object_name",
    random_state: int | None = 1,
    ceiling: Any = None,
    ceiled: str = "r2_over_ceiling",
    progress: bool = False,
) -> xr.Dataset:
    """Cross-validated neural predictivity of model ``features`` for the neuroids of ``neural``, which belong to
    one region (an assembly of several is refused: score each of :func:`~neuromodels.analysis.split_regions`).

    Procedure (Brain-Score's ``pls`` metric with the defaults):

    1. ``neural`` (presentation, neuroid[, time_bin]) is averaged over repetitions per ``stimulus_id`` (NaN
       repetitions ignored) and sorted by ``stimulus_id`` (integers numerically, text lexicographically, as
       Brain-Score's xarray sorts them); ``features`` (presentation, feature[, time_bin])
       must hold exactly one row for each of those stimuli (extra stimuli are ignored).
    2. ``n_splits`` random splits of the stimuli, ``train_size`` of them for fitting and the rest held out:
       ``StratifiedShuffleSplit`` on ``stratify_coord`` (taken from ``neural``, else ``features``) when that
       coordinate exists, else ``ShuffleSplit``; ``random_state`` seeds them (scikit-learn).
    3. Per split, the regression is fitted on the training stimuli (features and targets centred on their
       training means) and predicts the held-out ones: ``"pls"`` PLS2 with ``n_components`` components and
       no scaling, its weights by scikit-learn's NIPALS with its defaults (``pls="brainscore"``, equal to
       ``PLSRegression(25, scale=False)`` as Brain-Score runs it) or at convergence (``pls="converged"``,
       the dominant singular vectors; docs/predictivity.md section 2 says why the default is the first);
       ``"ridge"`` ridge with the penalty chosen by GCV on the training stimuli from ``alphas`` (default: 30
       values, 1e-5 .. 1e4 times the mean eigenvalue of the training Gram matrix), one penalty per split shared
       by all neuroids (per time bin); ``"linear"`` least squares.
    4. ``r``: Pearson r per neuroid between prediction and held-out response. ``score`` = mean over splits of
       the median over neuroids (NaN ignored); ``error`` = std over splits (ddof=0) / sqrt(n_splits).
    5. With a ``ceiling`` (a number, a per-neuroid DataArray, a ``noise_ceiling`` Dataset or
       ``"split_half"`` = :func:`~neuromodels.analysis.ceilings.ceiling_split_half` of ``neural``):
       ``ceiled_score`` = ``score**2 / ceiling`` (``ceiled="r2_over_ceiling"``, Brain-Score since 2026),
       ``(score / ceiling)**2`` (``"r_over_ceiling_squared"``, Brain-Score before) or ``score / ceiling``
       (``"r_over_ceiling"``), with the aggregate ceiling; ``ceiled_per_neuroid`` applies the same to
       ``r_per_neuroid`` when the ceiling is per neuroid.

    Time-resolved data: with a ``time_bin`` dimension every bin is fitted and scored on its own (same splits);
    2-D features serve every bin, features with a ``time_bin`` (or ``time_step``) dimension of the same length
    are paired with the bins by position.

    Returns
    -------
    xr.Dataset with ``r`` (split, neuroid[, time_bin]), ``r_per_neuroid`` (neuroid[, time_bin]), ``score`` and
    ``error`` (scalar or per time_bin), and with a ceiling ``ceiling``, ``ceiled_score``, ``ceiled_error``
    (delta-method propagation of ``error``; Brain-Score reports the raw error unchanged) and
    ``ceiled_per_neuroid`` where available; ridge adds ``alpha`` (split[, time_bin]). attrs name every setting.

    Raises
    ------
    DataFormatError
        features with duplicate or missing stimulus ids, NaN/inf features, a neuroid without any finite
        response to some stimulus, wrong dims.
    ConfigError
        unknown regression or convention, impossible splits.

    Warns
    -----
    RuntimeWarning
        neuroids whose held-out r is NaN (constant response or prediction; ignored by the median), fewer
        features than components (components capped), PLS stopping early.
    """
    _check_choices(regression, pls, ceiled)
    require_one_region(neural, "a predictivity score")
    averaged, stimulus_ids, targets = _averaged_targets(neural)
    has_time = "time_bin" in averaged.dims
    n_bins = averaged.sizes["time_bin"] if has_time else None
    x_all = _features_matrix(features, stimulus_ids, n_bins)
    labels = _stratification_labels(averaged, features, stimulus_ids, stratify_coord)
    splits = _splits(len(stimulus_ids), labels, n_splits, train_size, random_state)

    y_blocks = [targets[:, :, t] for t in range(n_bins)] if has_time else [targets]  # (S, N) per time bin
    r, chosen_alpha, used_components, notes = _held_out_correlations(
        x_all,
        y_blocks,
        splits,
        averaged.sizes["neuroid"],
        n_bins or 1,
        regression=regression,
        n_components=n_components,
        pls=pls,
        alphas=alphas,
        progress=progress,
    )
    _warn_notes_and_nan(notes, r, has_time)
    data_vars = _result_variables(averaged, r, chosen_alpha, regression)
    attrs = _result_attrs(
        regression=regression,
        pls=pls,
        n_components=n_components,
        alphas=alphas,
        n_splits=n_splits,
        train_size=train_size,
        random_state=random_state,
        stratify_coord=stratify_coord,
        labels=labels,
        splits=splits,
        n_stimuli=len(stimulus_ids),
        n_features=x_all.shape[-1],
        chosen_alpha=chosen_alpha,
        used_components=used_components,
    )
    if ceiling is not None:
        _add_ceiling(data_vars, attrs, ceiling, neural, ceiled)
    ds = xr.Dataset(data_vars, attrs=attrs)
    return ds


def _check_choices(regression: str, pls: str, ceiled: str) -> None:
    if regression not in REGRESSIONS:
        raise ConfigError(f"regression must be one of {', '.join(REGRESSIONS)}; got {regression!r}")
    if pls not in PLS_MODES:
        raise ConfigError(f"pls must be one of {', '.join(PLS_MODES)}; got {pls!r}")
    if ceiled not in CEILED_CONVENTIONS:
        raise ConfigError(f"ceiled must be one of {', '.join(CEILED_CONVENTIONS)}; got {ceiled!r}")


def _averaged_targets(neural: xr.DataArray) -> tuple[xr.DataArray, np.ndarray, np.ndarray]:
    """Step 1 of :func:`predictivity`: ``(averaged assembly, its stimulus ids as text, its values (S, N[, T]))``;
    a neuroid without any finite repetition for some stimulus is refused."""
    averaged = average_repetitions(neural)
    source = _source(neural)
    stimulus_ids = np.asarray(averaged["stimulus_id"].values).astype(str)
    targets = np.asarray(averaged.values, dtype=np.float64)  # (S, N[, T])
    if np.isnan(targets).any():
        where = np.argwhere(np.isnan(targets))[0]
        raise DataFormatError(
            "every neuroid needs a finite response to every stimulus after averaging repetitions",
            file=source,
            field="<values>",
            expected="finite repetition means",
            found=f"{int(np.isnan(targets).sum())} stimulus x neuroid cells with only NaN repetitions "
            f"(first: stimulus {stimulus_ids[where[0]]!r}, neuroid index {int(where[1])})",
        )
    return averaged, stimulus_ids, targets


def _held_out_correlations(
    x_all: np.ndarray,
    y_blocks: list[np.ndarray],
    splits: list[tuple[np.ndarray, np.ndarray]],
    n_neuroids: int,
    n_t: int,
    *,
    regression: str,
    n_components: int,
    pls: str,
    alphas: Any,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray, list[int], list[str]]:
    """Steps 3-4 of :func:`predictivity`: ``(r (split, neuroid, bin), ridge alpha (split, bin), PLS components
    used per feature group, PLS notes to warn about)``."""
    r = np.empty((len(splits), n_neuroids, n_t))
    chosen_alpha = np.full((len(splits), n_t), np.nan)
    notes: list[str] = []
    used_components: list[int] = []
    iterator: Any = splits
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(splits, desc=f"predictivity ({regression})", unit="split")
    # Centre features and targets on all stimuli once: the per-split fits re-centre on their training means
    # (predictions are unchanged), and ridge can then get each training Gram matrix and cross-product by
    # subtracting the held-out rows from the full ones instead of recomputing them.
    x_all = x_all - x_all.mean(axis=-2, keepdims=True)
    y_blocks = [y - y.mean(axis=0) for y in y_blocks]
    if x_all.ndim == 3:  # features per time bin: one group per bin
        groups = [([t], x_all[t]) for t in range(n_t)]
    else:  # one feature matrix for every bin
        groups = [(list(range(n_t)), x_all)]
    full_products: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(groups)
    # (only for the primal path: with more features than training stimuli ridge_gcv works on the stimuli x
    # stimuli matrix and would not use the features x features products, which can be gigabytes)
    fewest_train = min(len(train) for train, _ in splits) if len(splits) else 0
    if regression == "ridge":
        for g, (bins, x) in enumerate(groups):
            if x.shape[1] > fewest_train:
                continue
            stacked = np.concatenate([y_blocks[t] for t in bins], axis=1)
            full_products[g] = (x.T @ x, x.T @ stacked)
    pls_predictions: list[list[list[np.ndarray]]] = []
    if regression == "pls":
        # All splits (and time bins) in one lockstep fit: the features are read twice per component in total.
        for bins, x in groups:
            predictions_g, used, texts = pls_cross_validated(
                x, [y_blocks[t] for t in bins], splits, n_components, **PLS_MODES[pls]
            )
            pls_predictions.append(predictions_g)
            used_components.append(used)
            notes.extend(texts)
    for s, (train, test) in enumerate(iterator):
        for g, (bins, x) in enumerate(groups):
            if regression == "pls":
                predictions = pls_predictions[g][s]
            elif regression == "ridge":
                predictions, bin_alphas = _ridge_split(
                    x, [y_blocks[t] for t in bins], train, test, full_products[g], alphas, n_neuroids
                )
                for j, t in enumerate(bins):
                    chosen_alpha[s, t] = bin_alphas[j]
            else:
                stacked = np.concatenate([y_blocks[t][train] for t in bins], axis=1)
                predictions = np.split(least_squares_fit_predict(x[train], stacked, x[test]), len(bins), axis=1)
            for j, t in enumerate(bins):
                r[s, :, t] = _pearson_per_column(predictions[j], y_blocks[t][test])
    return r, chosen_alpha, used_components, notes


def _ridge_split(
    x: np.ndarray,
    ys: list[np.ndarray],
    train: np.ndarray,
    test: np.ndarray,
    full_products: tuple[np.ndarray, np.ndarray] | None,
    alphas: Any,
    n_neuroids: int,
) -> tuple[list[np.ndarray], list[float]]:
    """One split's GCV ridge of the (centred) targets ``ys`` (one per bin) on ``x``: held-out predictions per bin
    and the penalty chosen for each bin. The training Gram matrix and cross-product come from the full ones
    (``full_products``) minus the held-out rows; without them (more features than training stimuli: the dual
    path) ``ridge_gcv`` decomposes the training stimuli's own matrix."""
    x_train, x_test = x[train], x[test]
    stacked = np.concatenate([y[train] for y in ys], axis=1)
    stacked_test = np.concatenate([y[test] for y in ys], axis=1)
    n_train = len(train)
    # Sums over all stimuli are zero, so the training means are minus the held-out sums / n_train.
    x_mean = -x_test.sum(axis=0) / n_train
    y_mean = -stacked_test.sum(axis=0) / n_train
    gram = cross = None
    if full_products is not None:
        gram_all, cross_all = full_products
        gram = gram_all - x_test.T @ x_test - n_train * np.outer(x_mean, x_mean)
        cross = cross_all - x_test.T @ stacked_test - n_train * np.outer(x_mean, y_mean)
    group_labels = np.repeat(np.arange(len(ys)), n_neuroids)
    fit = ridge_gcv(
        x_train, stacked, x_test, alphas, target_groups=group_labels, _gram=gram, _cross=cross, _x_mean=x_mean
    )
    predictions = np.split(fit.prediction, len(ys), axis=1)
    return predictions, [fit.alpha[j * n_neuroids] for j in range(len(ys))]


def _warn_notes_and_nan(notes: list[str], r: np.ndarray, has_time: bool) -> None:
    """Warn (at :func:`predictivity`'s caller) of each PLS note once and of neuroids with NaN held-out r."""
    for text in dict.fromkeys(notes):
        warnings.warn(text, RuntimeWarning, stacklevel=3)
    n_nan = int(np.isnan(r).any(axis=0).sum())
    if n_nan:
        warnings.warn(
            f"{n_nan} neuroid(s){' x time bins' if has_time else ''} have NaN held-out correlations in some split "
            "(constant response or constant prediction on the held-out stimuli); they are ignored by the median "
            "over neuroids",
            RuntimeWarning,
            stacklevel=3,
        )


def _result_variables(
    averaged: xr.DataArray, r: np.ndarray, chosen_alpha: np.ndarray, regression: str
) -> dict[str, xr.DataArray]:
    """Step 4's aggregation as labelled arrays: ``r``, ``r_per_neuroid``, ``score``, ``error``, ``split_score``
    (and ridge's ``alpha``), with the neuroid (and time-bin) coordinates of ``averaged``."""
    has_time = "time_bin" in averaged.dims
    n_splits = r.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        split_scores = np.nanmedian(r, axis=1)  # (split, T)
        score = np.nanmean(split_scores, axis=0)
        error = np.nanstd(split_scores, axis=0, ddof=0) / np.sqrt(n_splits)
        r_per_neuroid = np.nanmean(r, axis=0)  # (N, T)

    template = averaged.isel(presentation=0, drop=True)
    template = template.drop_vars([c for c in template.coords if "presentation" in template[c].dims], errors="ignore")
    neuroid_coords = {k: v for k, v in template.coords.items()}
    split_index = np.arange(n_splits)

    def unit_array(values: np.ndarray, leading: tuple[str, ...] = ()) -> xr.DataArray:
        if not has_time:
            values = values[..., 0]
        dims = leading + (("neuroid", "time_bin") if has_time else ("neuroid",))
        coords = dict(neuroid_coords)
        if leading:
            coords["split"] = split_index
        return xr.DataArray(values, dims=dims, coords=coords)

    def bin_array(values: np.ndarray, leading: tuple[str, ...] = ()) -> xr.DataArray:
        coords: dict[str, Any] = {}
        if leading:
            coords["split"] = split_index
        if not has_time:
            return xr.DataArray(values[..., 0], dims=leading, coords=coords)
        coords.update({k: v for k, v in neuroid_coords.items() if set(v.dims) <= {"time_bin"}})
        return xr.DataArray(values, dims=leading + ("time_bin",), coords=coords)

    data_vars: dict[str, xr.DataArray] = {
        "r": unit_array(r, ("split",)),
        "r_per_neuroid": unit_array(r_per_neuroid),
        "score": bin_array(score),
        "error": bin_array(error),
        "split_score": bin_array(split_scores, ("split",)),
    }
    if regression == "ridge":
        data_vars["alpha"] = bin_array(chosen_alpha, ("split",))
    return data_vars


def _result_attrs(
    *,
    regression: str,
    pls: str,
    n_components: int,
    alphas: Any,
    n_splits: int,
    train_size: float,
    random_state: int | None,
    stratify_coord: str | None,
    labels: np.ndarray | None,
    splits: list[tuple[np.ndarray, np.ndarray]],
    n_stimuli: int,
    n_features: int,
    chosen_alpha: np.ndarray,
    used_components: list[int],
) -> dict[str, Any]:
    """The result's attrs: the procedure and every setting, then the regression's own."""
    strat_used = stratify_coord if labels is not None else "none"
    attrs: dict[str, Any] = {
        "metric": "cross-validated regression, per-neuroid Pearson r on held-out stimuli",
        "regression": regression,
        "splits": int(len(splits)),
        "train_size": float(train_size),
        "n_stimuli": int(n_stimuli),
        "n_train": int(len(splits[0][0])),
        "n_test": int(len(splits[0][1])),
        "n_features": int(n_features),
        "random_state": "none" if random_state is None else int(random_state),
        "split_method": "StratifiedShuffleSplit" if labels is not None else "ShuffleSplit",
        "stratification": strat_used,
        "split_over": "stimulus_id (repetitions averaged, sorted by stimulus_id)",
        "aggregation": "median over neuroids (NaN ignored) per split, mean over splits",
        "error_method": "std over splits (ddof=0) / sqrt(n_splits), as Brain-Score",
        "correlation": "Pearson r per neuroid (and time bin) over held-out stimuli",
        "reference": _REFERENCE,
        "brain_score_compatible": int(
            regression == "pls"
            and pls == "brainscore"
            and n_components == 25
            and n_splits == 10
            and float(train_size) == 0.9
            and random_state == 1
        ),
    }
    attrs.update(_regression_attrs(regression, pls, n_components, alphas, chosen_alpha, used_components))
    return attrs


def _regression_attrs(
    regression: str, pls: str, n_components: int, alphas: Any, chosen_alpha: np.ndarray, used_components: list[int]
) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if regression == "pls":
        attrs["n_components"] = int(n_components)
        attrs["n_components_used"] = int(min(used_components)) if used_components else 0
        attrs["pls_mode"] = pls
        attrs["pls"] = {
            "brainscore": "PLS2, regression deflation, scale=False, weights by scikit-learn's NIPALS power iteration "
            "(start: first non-zero target column; stop: squared weight change < tol=1e-06 or "
            "max_iter=500) = scikit-learn PLSRegression(n_components, scale=False) with its defaults, "
            "as Brain-Score runs it",
            "converged": "PLS2, regression deflation, scale=False, weights = dominant singular vectors of X_k^T Y_k "
            "(= scikit-learn PLSRegression(n_components, scale=False) run to convergence)",
        }[pls]
    if regression == "ridge":
        attrs["alpha_selection"] = (
            "generalised cross-validation (Golub, Heath & Wahba 1979) on the training "
            "stimuli; one alpha per split shared by all neuroids (per time bin)"
        )
        if alphas is None:
            attrs["alphas"] = "relative grid: np.logspace(-5, 4, 30) x tr(X_c^T X_c) / n_features per split"
            attrs["relative_alphas"] = RELATIVE_RIDGE_ALPHAS.copy()
        else:
            attrs["alphas"] = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
        attrs["alphas_chosen"] = chosen_alpha.ravel()
    if regression == "linear":
        attrs["linear"] = "ordinary least squares with intercept (scipy.linalg.lstsq; minimum norm if rank-deficient)"
    return attrs


def _add_ceiling(
    data_vars: dict[str, xr.DataArray], attrs: dict[str, Any], ceiling: Any, neural: xr.DataArray, ceiled: str
) -> None:
    """Step 5 of :func:`predictivity`: the ceiling and the ceiled score, error (and per-neuroid values)."""
    center, per_neuroid, ceiling_name, ceiling_attrs = _resolve_ceiling(ceiling, neural, data_vars["r_per_neuroid"])
    score_da = data_vars["score"]
    center = center.drop_vars([c for c in center.coords if c not in score_da.coords], errors="ignore")
    ceiled_score = ceiled_value(score_da, center, ceiled)
    data_vars["ceiling"] = center.rename("ceiling") if center.ndim else xr.DataArray(float(center))
    data_vars["ceiled_score"] = ceiled_score
    data_vars["ceiled_error"] = _ceiled_error(score_da, data_vars["error"], center, ceiled)
    if per_neuroid is not None:
        data_vars["ceiling_per_neuroid"] = per_neuroid
        with np.errstate(invalid="ignore", divide="ignore"):
            data_vars["ceiled_per_neuroid"] = ceiled_value(data_vars["r_per_neuroid"], per_neuroid, ceiled)
    kind = ceiling_attrs.get("ceiling_kind")
    if kind == "correlation" and ceiled == "r2_over_ceiling":
        warnings.warn(
            f"the {ceiling_name} ceiling is a correlation, not a reliability: r**2 / ceiling mixes the two; "
            "use ceiled='r_over_ceiling' (= CC_norm-like) or square the ceiling",
            RuntimeWarning,
            stacklevel=3,
        )
    attrs["ceiling"] = ceiling_name
    attrs["ceiled"] = ceiled
    attrs["ceiled_formula"] = {
        "r2_over_ceiling": "score**2 / ceiling",
        "r_over_ceiling_squared": "(score / ceiling)**2",
        "r_over_ceiling": "score / ceiling",
    }[ceiled]
    attrs["ceiled_error_method"] = "delta method from error (Brain-Score keeps the raw error)"

"""Noise ceilings: how well neurons predict themselves, from repeated presentations of the same stimuli.

Every function accepts

* an assembly (``xr.DataArray`` with dims ``(presentation, neuroid[, time_bin])``, coordinates ``stimulus_id``
  and ``repetition`` on presentation; missing repetitions may be absent or NaN), or
* a plain array ``(repeat, stimulus, neuroid[, ...])`` with NaN in unused repeat slots.

Both are turned into one dense cube ``(repeat, stimulus, neuroid, ...)`` with NaN where a repetition is missing;
stimuli are ordered by sorted ``stimulus_id`` and repeat slots by sorted ``repetition`` value. Results are
per neuroid (and per time bin), as ``xr.DataArray`` carrying the assembly's neuroid and time-bin coordinates,
with attrs naming the method and its reference.

Methods (formulas, references and the handling of unequal repeat counts are in docs/predictivity.md):

* :func:`ceiling_split_half`: Brain-Score's ``InternalConsistency`` (split-half Pearson r of the repetition
  means, Spearman-Brown corrected, median over neuroids, mean over 10 splits).
* :func:`cc_max`, :func:`cc_norm`, :func:`signal_power`: Schoppe et al. (2016) with the signal power of Sahani &
  Linden (2003).
* :func:`fev`, :func:`feve`: fraction of explainable variance (explained), Cadena et al. (2019).
* :func:`oracle_correlation`: jackknife (leave-one-repeat-out) and conservative oracle correlations
  (Sinz lab's ``neuralpredictors``; used in Cadena et al. 2019, Lurz et al. 2021).
* :func:`noise_ceiling` dispatches on ``method``.

Aggregates over neuroids (``ceiling``, ``error``; and the scores of :func:`~neuromodels.analysis.predictivity`)
are taken over one brain region at a time, as Brain-Score's benchmarks (one per region) and the ``ceiling`` and
``score`` commands do: an assembly whose ``region`` coordinate holds several regions is refused, and
:func:`split_regions` gives one assembly per region. Per-neuroid values do not depend on the grouping.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from neuromodels.errors import ConfigError, DataFormatError

__all__ = [
    "ceiling_split_half",
    "spearman_brown",
    "signal_power",
    "cc_max",
    "cc_norm",
    "fev",
    "feve",
    "r2_er",
    "oracle_correlation",
    "noise_ceiling",
    "repetition_cube",
    "split_regions",
    "CEILING_METHODS",
]

CEILING_METHODS = ("split_half", "cc_max", "fev", "oracle")

REFERENCES = {
    "split_half": "Brain-Score InternalConsistency (brainscore_vision/metrics/internal_consistency/ceiling.py); "
    "Schrimpf et al. 2018 bioRxiv 407007; Spearman 1910, Brown 1910",
    "cc_max": "Schoppe, Harper, Willmore, King & Schnupp 2016, Front. Comput. Neurosci. 10:10; "
    "signal power: Sahani & Linden 2003, NIPS 15",
    "fev": "Cadena et al. 2019, PLoS Comput. Biol. 15:e1006897",
    "r2_er": "Pospisil & Bair 2021, PLoS Comput. Biol. 17:e1009212 (deanpospisil/er_est r2_er_n2m); as used by "
    "Cowley et al. 2023 (cowleygroup/V4_compact_models, compute_r2_ER)",
    "oracle": "Sinz lab neuralpredictors (measures/np_functions.py: oracle_corr_jackknife, "
    "oracle_corr_conservative); Cadena et al. 2019; Lurz et al. 2021 ICLR",
}


@dataclass
class RepetitionCube:
    """Dense responses ``values (repeat, stimulus, *unit_shape)`` with NaN for missing repetitions.

    ``template`` is a DataArray of shape ``unit_shape`` (dims ``neuroid[, time_bin]``) carrying the coordinates
    that per-neuroid results get.
    """

    values: np.ndarray
    stimulus_id: np.ndarray
    repetition: np.ndarray
    template: xr.DataArray
    source: str | None

    @property
    def n_units(self) -> int:
        return int(np.prod(self.values.shape[2:], dtype=int))

    def flat(self) -> np.ndarray:
        """``(repeat, stimulus, unit)`` with neuroid and time bin flattened into one unit axis."""
        return self.values.reshape(self.values.shape[0], self.values.shape[1], self.n_units)

    def unflatten(
        self,
        values: np.ndarray,
        name: str,
        attrs: dict[str, Any] | None = None,
        leading: dict[str, np.ndarray] | None = None,
    ) -> xr.DataArray:
        """Wrap ``(*leading, unit)`` values as a DataArray with the template's coordinates."""
        leading = leading or {}
        shape = tuple(len(v) for v in leading.values()) + self.template.shape
        dims = tuple(leading) + self.template.dims
        out = xr.DataArray(
            np.asarray(values).reshape(shape),
            dims=dims,
            coords=self.template.coords,
            name=name,
            attrs=dict(attrs or {}),
        )
        for dim, coord in leading.items():
            out = out.assign_coords({dim: coord})
        return out


def _template_from_assembly(da: xr.DataArray) -> xr.DataArray:
    unit_dims = [d for d in da.dims if d != "presentation"]
    coords = {name: coord for name, coord in da.coords.items() if coord.dims and set(coord.dims) <= set(unit_dims)}
    return xr.DataArray(np.zeros([da.sizes[d] for d in unit_dims]), dims=unit_dims, coords=coords)


def repetition_cube(neural: xr.DataArray | np.ndarray) -> RepetitionCube:
    """Arrange repeated presentations as ``(repeat, stimulus, neuroid[, time_bin])`` with NaN for missing ones.

    Assemblies need ``stimulus_id`` and either a ``repetition`` coordinate (unique per stimulus) or repeated
    ``stimulus_id`` values (then repeats are numbered in order of appearance). Arrays are taken as
    ``(repeat, stimulus, neuroid, ...)`` as they are.
    """
    if isinstance(neural, xr.DataArray):
        source = neural.attrs.get("source")
        if "presentation" not in neural.dims or "neuroid" not in neural.dims:
            raise DataFormatError(
                file=source,
                field="<dims>",
                expected="('presentation', 'neuroid'[, 'time_bin'])",
                found=str(neural.dims),
            )
        extra = [d for d in neural.dims if d not in ("presentation", "neuroid", "time_bin")]
        if extra:
            raise DataFormatError(
                file=source,
                field="<dims>",
                expected="('presentation', 'neuroid'[, 'time_bin'])",
                found=str(neural.dims),
            )
        order = ["presentation", "neuroid"] + (["time_bin"] if "time_bin" in neural.dims else [])
        neural = neural.transpose(*order)
        if "stimulus_id" not in neural.coords:
            raise DataFormatError(
                file=source, field="stimulus_id", expected="a coordinate on 'presentation'", found="none"
            )
        stimulus = np.asarray(neural["stimulus_id"].values).astype(str)
        stim_codes, stim_ids = pd.factorize(stimulus, sort=True)
        if "repetition" in neural.coords:
            repetition = np.asarray(neural["repetition"].values)
        else:
            repetition = pd.Series(stim_codes).groupby(stim_codes).cumcount().to_numpy()
        rep_codes, rep_values = pd.factorize(repetition, sort=True)
        pairs = stim_codes.astype(np.int64) * max(len(rep_values), 1) + rep_codes
        if np.unique(pairs).size != pairs.size:
            dup = pd.Index(list(zip(stimulus, repetition)))
            raise DataFormatError(
                file=source,
                field="repetition",
                expected="unique (stimulus_id, repetition) pairs",
                found=f"duplicates {dup[dup.duplicated()].unique()[:5].tolist()}",
            )
        values = np.asarray(neural.values, dtype=np.float64)
        cube = np.full((len(rep_values), len(stim_ids)) + values.shape[1:], np.nan)
        cube[rep_codes, stim_codes] = values
        template = _template_from_assembly(neural)
        result = RepetitionCube(
            cube,
            np.asarray(stim_ids, dtype=object),
            np.asarray(rep_values),
            template,
            None if source is None else str(source),
        )
    else:
        cube = np.asarray(neural, dtype=np.float64)
        if cube.ndim < 3:
            raise DataFormatError(
                field="<array>", expected="(repeat, stimulus, neuroid[, ...])", found=f"shape {cube.shape}"
            )
        dims = ("neuroid",) + tuple(f"dim_{i}" for i in range(3, cube.ndim))
        if cube.ndim == 4:
            dims = ("neuroid", "time_bin")
        template = xr.DataArray(np.zeros(cube.shape[2:]), dims=dims)
        result = RepetitionCube(
            cube, np.arange(cube.shape[1]).astype(str).astype(object), np.arange(cube.shape[0]), template, None
        )
    if np.isinf(result.values).any():
        raise DataFormatError(
            file=result.source, field="<values>", expected="finite values or NaN", found="infinite values"
        )
    if not np.isfinite(result.values).any():
        raise DataFormatError(file=result.source, field="<values>", expected="some finite values", found="all NaN")
    counts = np.isfinite(result.values).sum(axis=0)
    if counts.max() < 2:
        raise DataFormatError(
            "a noise ceiling needs repeated presentations of the same stimuli",
            file=result.source,
            field="repetition",
            expected="at least 2 repetitions of some stimulus",
            found="1 repetition per stimulus",
        )
    return result


def split_regions(neural: xr.DataArray) -> dict[str, xr.DataArray]:
    """``region -> assembly``: one entry per value of the neuroid coordinate ``region``, in order of first
    appearance, each holding that region's neuroids (in their order). An assembly without a ``region``
    coordinate (or with one region) is one entry, named by its region or ``"all"``.

    The one rule of ceilings and scores: every aggregate over neuroids is taken within one region
    (docs/predictivity.md section 4); the ``ceiling`` and ``score`` commands split their input with this.
    """
    if not isinstance(neural, xr.DataArray) or "neuroid" not in neural.dims:
        raise DataFormatError(
            file=_source_of(neural),
            field="<dims>",
            expected="an assembly with a 'neuroid' dim",
            found=type(neural).__name__ if not isinstance(neural, xr.DataArray) else str(neural.dims),
        )
    if "region" not in neural.coords or neural["region"].dims != ("neuroid",):
        return {"all": neural}
    labels = np.asarray(neural["region"].values).astype(str)
    names = list(dict.fromkeys(labels.tolist()))
    if len(names) == 1:
        return {names[0]: neural}
    return {name: neural.isel(neuroid=np.flatnonzero(labels == name)) for name in names}


def _source_of(obj: Any) -> str | None:
    source = getattr(obj, "attrs", {}).get("source") if hasattr(obj, "attrs") else None
    return None if source is None else str(source)


def require_one_region(neural: Any, what: str) -> None:
    """Refuse an assembly whose ``region`` coordinate holds several regions: ``what`` (a ceiling, a score)
    aggregates over one region's neuroids (see :func:`split_regions`)."""
    if not isinstance(neural, xr.DataArray) or "region" not in neural.coords or neural["region"].dims != ("neuroid",):
        return
    labels = np.asarray(neural["region"].values).astype(str)
    names, counts = np.unique(labels, return_counts=True)
    if len(names) < 2:
        return
    found = ", ".join(f"{name} ({count} neuroids)" for name, count in zip(names, counts))
    raise DataFormatError(
        f"{what} aggregates over the neuroids of one region, as Brain-Score's benchmarks and the 'ceiling' and "
        f"'score' commands do; take one region at a time: {{region: ... for region, assembly in "
        f"split_regions(neural).items()}} (neuromodels.analysis.split_regions), or drop the 'region' coordinate "
        f"to pool them",
        file=_source_of(neural),
        field="region",
        expected="one region",
        found=f"{len(names)} regions: {found}",
    )


def _warn_nan(values: np.ndarray, what: str, why: str) -> None:
    n_nan = int(np.isnan(values).sum())
    if n_nan:
        warnings.warn(f"{what}: {n_nan} of {values.size} values are NaN ({why})", RuntimeWarning, stacklevel=3)


def _pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r per column of ``a`` and ``b`` (rows = stimuli), over rows where both are finite.

    NaN where fewer than 2 rows are valid or either column is constant (as ``scipy.stats.pearsonr``).
    """
    valid = np.isfinite(a) & np.isfinite(b)
    with np.errstate(invalid="ignore", divide="ignore"):
        if valid.all():
            da = a - a.mean(axis=0)
            db = b - b.mean(axis=0)
        else:
            n = valid.sum(axis=0)
            a0 = np.where(valid, a, 0.0)
            b0 = np.where(valid, b, 0.0)
            da = np.where(valid, a0 - a0.sum(axis=0) / n, 0.0)
            db = np.where(valid, b0 - b0.sum(axis=0) / n, 0.0)
        num = np.einsum("ij,ij->j", da, db)
        den = np.sqrt(np.einsum("ij,ij->j", da, da) * np.einsum("ij,ij->j", db, db))
        r = num / den
    r[~np.isfinite(r)] = np.nan
    return np.clip(r, -1.0, 1.0)


def spearman_brown(r: np.ndarray | float, n: float = 2.0) -> np.ndarray:
    """Spearman-Brown prophecy ``n r / (1 + (n - 1) r)``: reliability of the mean of ``n`` parallel measurements."""
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return n * r / (1.0 + (n - 1.0) * r)


def _nan_aggregate(values: np.ndarray, aggregate: str, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if aggregate == "median":
            return np.nanmedian(values, axis=axis)
        if aggregate == "mean":
            return np.nanmean(values, axis=axis)
    raise ConfigError(f"aggregate must be 'median' or 'mean', got {aggregate!r}")


def ceiling_split_half(
    neural: xr.DataArray | np.ndarray,
    *,
    n_splits: int = 10,
    random_state: int | None = 1,
    aggregate: str = "median",
) -> xr.Dataset:
    """Split-half internal consistency with Spearman-Brown correction: Brain-Score's ``InternalConsistency``.

    For each of ``n_splits`` splits, ``ShuffleSplit(n_splits, train_size=0.5, random_state)`` (scikit-learn)
    draws half of the sorted unique ``repetition`` values (``floor(R/2)`` of ``R``; the rest form the other
    half); each half is averaged over its repetitions per stimulus (NaN repetitions ignored), the Pearson r
    across stimuli between the two half-means is computed per neuroid (and time bin), and corrected to the
    full-length reliability ``2 r / (1 + r)``. The aggregate is, as Brain-Score's, the median over neuroids
    (NaN ignored) per split, then the mean over splits; ``error`` is the standard deviation over splits
    (ddof=0, xarray's default used by Brain-Score) divided by ``sqrt(n_splits)``.

    Unequal repeat counts: a stimulus missing from one half (all its repetitions fell in the other) is left out
    of that split's correlation for that neuroid (pairwise-complete); Brain-Score requires both halves to hold
    every stimulus.

    Returns
    -------
    xr.Dataset with ``ceiling_per_split`` (split, neuroid[, time_bin]) corrected consistencies,
    ``half_correlation`` (split, neuroid[, time_bin]) uncorrected r, ``ceiling_per_neuroid`` (mean over splits),
    ``ceiling`` (scalar or per time_bin) and ``error``; attrs name the method and settings.
    """
    from sklearn.model_selection import ShuffleSplit

    if not isinstance(n_splits, (int, np.integer)) or n_splits < 1:
        raise ConfigError(f"n_splits must be a positive integer, got {n_splits!r}")
    require_one_region(neural, "a noise ceiling")
    cube = repetition_cube(neural)
    n_reps = cube.values.shape[0]
    if n_reps < 2:
        raise DataFormatError(
            file=cube.source, field="repetition", expected="at least 2 repetition values", found=f"{n_reps}"
        )
    splitter = ShuffleSplit(n_splits=n_splits, train_size=0.5, test_size=None, random_state=random_state)
    flat = cube.flat()
    n_stimuli = flat.shape[1]
    # Each half-mean is a weighted sum over repetitions: a (2, R) selection matrix times the NaN-zeroed
    # responses (R, stimuli x units), divided by the matching counts of finite repetitions (NaN where a half has
    # none). One split at a time keeps the memory at two half-means.
    finite = np.isfinite(flat).reshape(n_reps, -1)
    complete = bool(finite.all())
    zeroed = flat.reshape(n_reps, -1) if complete else np.where(finite, flat.reshape(n_reps, -1), 0.0)
    finite_weights = None if complete else finite.astype(np.float64)
    half_r = np.empty((n_splits, cube.n_units))
    for i, (first, second) in enumerate(splitter.split(np.zeros(n_reps))):
        selection = np.zeros((2, n_reps))
        selection[0, first] = 1.0
        selection[1, second] = 1.0
        sums = selection @ zeroed
        counts = selection.sum(axis=1, keepdims=True) if finite_weights is None else selection @ finite_weights
        with np.errstate(invalid="ignore", divide="ignore"):
            halves = (sums / counts).reshape(2, n_stimuli, cube.n_units)
        half_r[i] = _pearson_columns(halves[0], halves[1])
    corrected = spearman_brown(half_r, 2.0)
    # neuroid is the first unit dim: aggregate over it only (per time bin)
    per_split_aggregate = _nan_aggregate(corrected.reshape((n_splits,) + cube.template.shape), aggregate, axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_neuroid = np.nanmean(corrected, axis=0)
        center = np.nanmean(per_split_aggregate, axis=0)
        error = np.nanstd(per_split_aggregate, axis=0, ddof=0) / np.sqrt(n_splits)
    _warn_nan(per_neuroid, "split-half ceiling", "constant responses or too few stimuli in both halves")
    attrs = {
        "method": "split_half",
        "description": "Spearman-Brown corrected split-half Pearson r of repetition means (Brain-Score "
        "InternalConsistency)",
        "reference": REFERENCES["split_half"],
        "n_splits": int(n_splits),
        "random_state": "none" if random_state is None else int(random_state),
        "split_coord": "repetition",
        "n_repetition_values": int(n_reps),
        "aggregate": f"{aggregate} over neuroids per split (NaN ignored), mean over splits",
        "error": "std over splits (ddof=0) / sqrt(n_splits)",
        "ceiling_kind": "reliability",
    }
    split = np.arange(n_splits)
    template_dims = cube.template.dims
    ds = xr.Dataset(
        {
            "ceiling_per_split": cube.unflatten(corrected, "ceiling_per_split", leading={"split": split}),
            "half_correlation": cube.unflatten(half_r, "half_correlation", leading={"split": split}),
            "ceiling_per_neuroid": cube.unflatten(per_neuroid, "ceiling_per_neuroid"),
            "ceiling": _aggregate_array(center, template_dims, cube, "ceiling"),
            "error": _aggregate_array(error, template_dims, cube, "error"),
        },
        attrs=attrs,
    )
    return ds


def _aggregate_array(
    values: np.ndarray, template_dims: tuple[Hashable, ...], cube: RepetitionCube, name: str
) -> xr.DataArray:
    """A value aggregated over neuroids: scalar, or per remaining template dim (time_bin)."""
    rest = [d for d in template_dims if d != "neuroid"]
    if not rest:
        return xr.DataArray(np.asarray(values).reshape(()), name=name)
    shape = tuple(cube.template.sizes[d] for d in rest)
    coords = {k: v for k, v in cube.template.coords.items() if set(v.dims) <= set(rest)}
    return xr.DataArray(np.asarray(values).reshape(shape), dims=rest, coords=coords, name=name)


# ---------------------------------------------------------------------------------------------- moments


@dataclass
class _Moments:
    """Per stimulus and unit: repeat count, mean, unbiased variance (NaN with < 2 repeats)."""

    count: np.ndarray  # (S, U)
    mean: np.ndarray  # (S, U), NaN where count == 0
    var1: np.ndarray  # (S, U), ddof=1
    var0: np.ndarray  # (S, U), ddof=0


def _moments(flat: np.ndarray) -> _Moments:
    finite = np.isfinite(flat)
    count = finite.sum(axis=0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.where(finite, flat, 0.0).sum(axis=0)
        mean = total / count
        sq = np.where(finite, (flat - mean) ** 2, 0.0).sum(axis=0)
        var1 = sq / (count - 1.0)
        var0 = sq / count
    mean[count == 0] = np.nan
    var1[count < 2] = np.nan
    var0[count < 1] = np.nan
    return _Moments(count, mean, var1, var0)


def signal_power(neural: xr.DataArray | np.ndarray) -> xr.DataArray:
    """Signal power per neuroid: the variance across stimuli of the noise-free response.

    All ``N`` repeat slots filled for every stimulus (Sahani & Linden 2003), with ``r_n`` the responses on repeat ``n``
    as a vector over stimuli and ``Var`` the variance over stimuli (ddof=0)::

        SP = (Var(sum_n r_n) - sum_n Var(r_n)) / (N (N - 1))

    Unequal counts ``N_s`` (or NaN repeats), one-way random-effects ANOVA: with the stimulus means ``m_s``, their
    variance ``Var_1(m)`` (ddof=1) and the pooled within-stimulus variance ``s_w^2`` (ddof ``N_s - 1`` each,
    stimuli with >= 2 repeats)::

        SP = Var_1(m) - s_w^2 * mean_s(1 / N_s)

    Both are unbiased for their signal variance (ddof 0 and 1 respectively). Stimuli without any repeat for a
    neuroid are left out for it.
    """
    cube = repetition_cube(neural)
    sp, _, mode = _signal_power(cube.flat())
    return cube.unflatten(
        sp, "signal_power", attrs={"method": "signal_power", "formula": mode, "reference": REFERENCES["cc_max"]}
    )


def _signal_power(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """``(signal power, variance over stimuli of the repeat mean (same ddof), formula used)`` per unit."""
    moments = _moments(flat)
    complete = np.isfinite(flat).all()
    if complete:
        n = flat.shape[0]
        sum_response = flat.sum(axis=0)  # (S, U)
        var_sum = sum_response.var(axis=0)
        sum_var = flat.var(axis=1).sum(axis=0)
        sp = (var_sum - sum_var) / (n * (n - 1))
        var_mean = moments.mean.var(axis=0)
        return sp, var_mean, "Sahani & Linden 2003: (Var(sum_n r_n) - sum_n Var(r_n)) / (N (N - 1)), ddof=0"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        var_mean = np.nanvar(moments.mean, axis=0, ddof=1)
        dof = np.where(moments.count >= 2, moments.count - 1.0, 0.0)
        within = np.nansum(np.where(moments.count >= 2, moments.var1 * dof, 0.0), axis=0) / dof.sum(axis=0)
        inverse_counts = np.where(moments.count > 0, 1.0 / np.maximum(moments.count, 1.0), np.nan)
        sp = var_mean - within * np.nanmean(inverse_counts, axis=0)
    return sp, var_mean, "one-way ANOVA (unequal repeats): Var_1(stimulus means) - s_w^2 mean_s(1/N_s)"


def cc_max(neural: xr.DataArray | np.ndarray) -> xr.DataArray:
    """CC_max per neuroid (Schoppe et al. 2016): the largest correlation any model can reach with the repeat mean.

    ``CC_max = sqrt(SP / Var(mean response))`` with the signal power ``SP`` of :func:`signal_power` (equal
    repeats: ``sqrt((N Var(y_bar) - mean_n Var(r_n)) / ((N - 1) Var(y_bar)))``). NaN, with a warning, where the
    signal power is not positive (no measurable signal) or the mean response is constant.
    """
    cube = repetition_cube(neural)
    sp, var_mean, mode = _signal_power(cube.flat())
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = sp / var_mean
    ratio = np.where((sp > 0) & (var_mean > 0), ratio, np.nan)
    value = np.sqrt(np.clip(ratio, 0.0, None))
    _warn_nan(value, "cc_max", "signal power <= 0 or constant mean response")
    return cube.unflatten(
        value,
        "cc_max",
        attrs={
            "method": "cc_max",
            "signal_power": mode,
            "reference": REFERENCES["cc_max"],
            "ceiling_kind": "correlation",
        },
    )


def _prediction_per_stimulus(
    prediction: xr.DataArray | np.ndarray, cube: RepetitionCube, neural_is_array: bool
) -> np.ndarray:
    """Model prediction as ``(stimulus, unit)`` in the cube's stimulus order."""
    if isinstance(prediction, xr.DataArray):
        if "presentation" not in prediction.dims or "stimulus_id" not in prediction.coords:
            raise DataFormatError(
                field="prediction",
                expected="dims (presentation, neuroid[, time_bin]) with a stimulus_id coordinate",
                found=str(prediction.dims),
            )
        if neural_is_array:
            raise DataFormatError(
                field="prediction",
                expected="a plain array (stimulus, neuroid[, ...]) when the neural data is a plain array",
                found="an xarray DataArray",
            )
        order = ["presentation"] + list(cube.template.dims)
        missing_dims = set(order) - set(prediction.dims)
        if missing_dims:
            raise DataFormatError(field="prediction", expected=f"dims {tuple(order)}", found=str(prediction.dims))
        prediction = prediction.transpose(*order)
        ids = pd.Index(np.asarray(prediction["stimulus_id"].values).astype(str))
        if not ids.is_unique:
            raise DataFormatError(
                field="prediction.stimulus_id",
                expected="one prediction per stimulus",
                found=f"duplicates {ids[ids.duplicated()].unique()[:5].tolist()}",
            )
        if "neuroid_id" in prediction.coords and "neuroid_id" in cube.template.coords:
            pred_neuroids = np.asarray(prediction["neuroid_id"].values).astype(str)
            neural_neuroids = np.asarray(cube.template["neuroid_id"].values).astype(str)
            if not np.array_equal(pred_neuroids, neural_neuroids):
                position = pd.Index(pred_neuroids).get_indexer(neural_neuroids)
                if (position < 0).any():
                    raise DataFormatError(
                        field="prediction.neuroid_id",
                        expected="the neural assembly's neuroids",
                        found=f"missing {neural_neuroids[position < 0][:5].tolist()}",
                    )
                prediction = prediction.isel(neuroid=position)
        position = ids.get_indexer(cube.stimulus_id.astype(str))
        if (position < 0).any():
            missing = cube.stimulus_id[position < 0]
            raise DataFormatError(
                field="prediction.stimulus_id",
                expected="a prediction for every stimulus",
                found=f"{missing.size} missing, e.g. {missing[:5].tolist()}",
            )
        values = np.asarray(prediction.values, dtype=np.float64)[position]
    else:
        values = np.asarray(prediction, dtype=np.float64)
        if values.shape != cube.values.shape[1:]:
            raise DataFormatError(
                field="prediction",
                expected=f"shape {cube.values.shape[1:]} (stimulus, neuroid...)",
                found=f"shape {values.shape}",
            )
    if not np.all(np.isfinite(values)):
        raise DataFormatError(field="prediction", expected="finite values", found="NaN or infinite values")
    return values.reshape(values.shape[0], -1)


def cc_norm(prediction: xr.DataArray | np.ndarray, neural: xr.DataArray | np.ndarray) -> xr.DataArray:
    """Normalised correlation coefficient (Schoppe et al. 2016): ``CC_abs / CC_max``.

    ``CC_norm = Cov(y_hat, y_bar) / sqrt(Var(y_hat) SP)`` with the repeat mean ``y_bar``, the signal power
    ``SP`` of :func:`signal_power` and covariance/variance over stimuli with the same ddof as ``SP`` (0 for
    equal repeat counts, 1 otherwise, so that the ratio does not depend on it).

    ``prediction``: an assembly-like DataArray (presentation, neuroid[, time_bin]) with one row per
    ``stimulus_id`` when ``neural`` is an assembly, else an array (stimulus, neuroid[, ...]) in the order of
    ``neural``'s stimulus axis.
    """
    cube = repetition_cube(neural)
    pred = _prediction_per_stimulus(prediction, cube, not isinstance(neural, xr.DataArray))
    flat = cube.flat()
    sp, _, mode = _signal_power(flat)
    ddof = 0 if np.isfinite(flat).all() else 1
    mean = _moments(flat).mean
    valid = np.isfinite(mean)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = valid.sum(axis=0)
        pm = np.where(valid, pred, 0.0).sum(axis=0) / n
        mm = np.where(valid, mean, 0.0).sum(axis=0) / n
        dp = np.where(valid, pred - pm, 0.0)
        dm = np.where(valid, mean - mm, 0.0)
        cov = np.einsum("ij,ij->j", dp, dm) / (n - ddof)
        var_pred = np.einsum("ij,ij->j", dp, dp) / (n - ddof)
        value = cov / np.sqrt(var_pred * sp)
    value = np.where((sp > 0) & (var_pred > 0), value, np.nan)
    _warn_nan(value, "cc_norm", "signal power <= 0 or constant prediction")
    return cube.unflatten(
        value, "cc_norm", attrs={"method": "cc_norm", "signal_power": mode, "reference": REFERENCES["cc_max"]}
    )


def _fev_parts(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, _Moments]:
    """Total variance over all trials (ddof=1) and noise variance (mean over stimuli of ddof=1 variances)."""
    moments = _moments(flat)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        trials = flat.reshape(-1, flat.shape[2])
        total = np.nanvar(trials, axis=0, ddof=1)
        noise = np.nanmean(moments.var1, axis=0)
    return total, noise, moments


def fev(neural: xr.DataArray | np.ndarray) -> xr.DataArray:
    """Fraction of explainable variance (Cadena et al. 2019): ``FEV = 1 - sigma_noise^2 / Var[y]``.

    ``Var[y]``: variance of all single-trial responses, pooled over stimuli and repeats (ddof=1);
    ``sigma_noise^2``: mean over stimuli of the variance over that stimulus' repeats (ddof=1). As the reference
    implementation (``neuralpredictors.measures.np_functions.fev``), stimuli count equally whatever their
    number of repeats; stimuli with a single (finite) repeat have no noise estimate and are left out of
    ``sigma_noise^2`` (their trials still count in ``Var[y]``).
    """
    cube = repetition_cube(neural)
    total, noise, _ = _fev_parts(cube.flat())
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(total > 0, 1.0 - noise / total, np.nan)
    _warn_nan(value, "fev", "constant responses")
    return cube.unflatten(
        value, "fev", attrs={"method": "fev", "reference": REFERENCES["fev"], "ceiling_kind": "variance fraction"}
    )


def feve(prediction: xr.DataArray | np.ndarray, neural: xr.DataArray | np.ndarray) -> xr.DataArray:
    """Fraction of explainable variance explained (Cadena et al. 2019).

    ``FEVE = 1 - (E[(y - y_hat)^2] - sigma_noise^2) / (Var[y] - sigma_noise^2)``, the mean squared error taken
    over all single trials (each trial compared with the model's prediction for its stimulus); ``Var[y]`` and
    ``sigma_noise^2`` as in :func:`fev`. NaN where ``Var[y] <= sigma_noise^2`` (no explainable variance).
    """
    cube = repetition_cube(neural)
    pred = _prediction_per_stimulus(prediction, cube, not isinstance(neural, xr.DataArray))
    flat = cube.flat()
    total, noise, _ = _fev_parts(flat)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mse = np.nanmean(((flat - pred[None]) ** 2).reshape(-1, flat.shape[2]), axis=0)
        explainable = total - noise
        value = np.where(explainable > 0, 1.0 - (mse - noise) / explainable, np.nan)
    _warn_nan(value, "feve", "no explainable variance")
    return cube.unflatten(value, "feve", attrs={"method": "feve", "reference": REFERENCES["fev"]})


def r2_er(prediction: xr.DataArray | np.ndarray, neural: xr.DataArray | np.ndarray) -> xr.DataArray:
    """Noise-corrected R^2 (``r2_ER``, Pospisil & Bair 2021), the ceiling-free score Cowley et al. 2023 report.

    With ``x`` the prediction and ``y`` the repeat mean, both centred over the ``m`` stimuli, ``n`` the median
    over stimuli of the number of finite repeats and ``s2`` the trial-to-trial variance (ddof=1 over repeats,
    averaged over the stimuli that have two or more)::

        r2_ER = ((x . y)^2 - s2 / n |x|^2) / (|x|^2 |y|^2 - s2 / n (m - 1) |x|^2)

    the squared correlation with the noise's expected share removed from numerator and denominator: an
    estimate of r^2 between the prediction and the noise-free response (about 1 for a perfect model, whatever the
    noise; not bounded to [0, 1] for small samples). Per neuroid, so ``n`` and ``s2`` are the neuroid's own
    (Cowley et al.'s ``compute_r2_ER`` in ``classes/class_linear_mapping_ridgereg.py`` takes ``n`` from the
    first neuron; identical when all neurons share their repeats, as in their data). Arguments as in
    :func:`cc_norm`; every stimulus needs at least one finite repeat.
    """
    cube = repetition_cube(neural)
    pred = _prediction_per_stimulus(prediction, cube, not isinstance(neural, xr.DataArray))
    flat = cube.flat()
    moments = _moments(flat)
    if not (moments.count > 0).all():
        raise DataFormatError(
            file=cube.source, field="responses", expected="a finite repeat of every stimulus", found="none for some"
        )
    n_repeats = np.median(moments.count, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        noise = np.nanmean(moments.var1, axis=0)
    x = pred - pred.mean(axis=0)
    y = moments.mean - moments.mean.mean(axis=0)
    ss_x = np.einsum("ij,ij->j", x, x)
    shrink = noise / n_repeats * ss_x
    numerator = np.einsum("ij,ij->j", x, y) ** 2 - shrink
    denominator = ss_x * np.einsum("ij,ij->j", y, y) - shrink * (flat.shape[1] - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(denominator != 0, numerator / denominator, np.nan)
    _warn_nan(value, "r2_er", "constant prediction, or no noise estimate (one repeat per stimulus)")
    return cube.unflatten(value, "r2_er", attrs={"method": "r2_er", "reference": REFERENCES["r2_er"]})


def oracle_correlation(neural: xr.DataArray | np.ndarray, method: str = "jackknife") -> xr.DataArray:
    """Oracle correlation per neuroid: how well the other repeats predict a single trial.

    ``method="jackknife"``: each single trial ``y_sn`` is paired with the mean of the *other* repeats of the same
    stimulus, ``(sum_m y_sm - y_sn) / (N_s - 1)``; the Pearson r over all (stimulus, repeat) pairs pooled is the
    oracle. It underestimates the true oracle (the leave-one-out mean is noisier than the full mean).

    ``method="conservative"``: ``sqrt(V_m / (V_m + V_n))`` with ``V_m`` the variance over stimuli of the stimulus
    means and ``V_n`` the mean over stimuli of the variance over repeats (both ddof=0), as
    ``neuralpredictors``' ``oracle_corr_conservative`` (written there as ``V_m / sqrt(V_m (V_m + V_n))``); it
    overestimates the true oracle.

    Unequal repeats: both methods use each stimulus' own repeats; stimuli with fewer than 2 finite repeats are
    left out (neuralpredictors sets their jackknife oracle to 0 instead).
    """
    if method not in ("jackknife", "conservative"):
        raise ConfigError(f"oracle method must be 'jackknife' or 'conservative', got {method!r}")
    cube = repetition_cube(neural)
    flat = cube.flat()
    moments = _moments(flat)
    usable = moments.count >= 2  # (S, U)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if method == "jackknife":
            finite = np.isfinite(flat) & usable[None]
            total = np.where(np.isfinite(flat), flat, 0.0).sum(axis=0)
            loo = (total[None] - flat) / (moments.count[None] - 1.0)
            trials = np.where(finite, flat, np.nan).reshape(-1, flat.shape[2])
            others = np.where(finite, loo, np.nan).reshape(-1, flat.shape[2])
            value = _pearson_columns(trials, others)
        else:
            means = np.where(usable, moments.mean, np.nan)
            v_mean = np.nanvar(means, axis=0, ddof=0)
            v_noise = np.nanmean(np.where(usable, moments.var0, np.nan), axis=0)
            value = np.where(v_mean + v_noise > 0, np.sqrt(v_mean / (v_mean + v_noise)), np.nan)
    _warn_nan(value, f"oracle correlation ({method})", "constant responses")
    return cube.unflatten(
        value,
        "oracle_correlation",
        attrs={"method": f"oracle_{method}", "reference": REFERENCES["oracle"], "ceiling_kind": "correlation"},
    )


def _median_summary(per_neuroid: xr.DataArray, method: str, attrs: dict[str, Any]) -> xr.Dataset:
    values = per_neuroid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        center = values.median(dim="neuroid", skipna=True)
        n_valid = values.notnull().sum(dim="neuroid")
        spread = values.std(dim="neuroid", ddof=1, skipna=True)
        error = np.sqrt(np.pi / 2.0) * spread / np.sqrt(n_valid.where(n_valid > 0))
    ds = xr.Dataset(
        {
            "ceiling_per_neuroid": values.rename("ceiling_per_neuroid"),
            "ceiling": center.rename("ceiling"),
            "error": error.rename("error"),
        }
    )
    ds.attrs.update(attrs)
    ds.attrs.update(
        {
            "method": method,
            "aggregate": "median over neuroids (NaN ignored)",
            "error": "standard error of the median over neuroids, sqrt(pi/2) std(ddof=1) / sqrt(n) (normal approximation)",
        }
    )
    return ds


def noise_ceiling(neural: xr.DataArray | np.ndarray, method: str = "split_half", **kwargs: Any) -> xr.Dataset:
    """Noise ceiling by ``method``: ``"split_half"`` (default, Brain-Score), ``"cc_max"``, ``"fev"``, ``"oracle"``.

    Always returns an ``xr.Dataset`` with ``ceiling_per_neuroid`` (neuroid[, time_bin]), ``ceiling`` (the
    aggregate over the neuroids, which must belong to one region: see :func:`split_regions`) and ``error``.
    ``split_half`` is :func:`ceiling_split_half` (keywords
    ``n_splits``, ``random_state``, ``aggregate``; error over splits); the others aggregate by the median
    over neuroids with the standard error of that median. ``oracle`` takes ``oracle_method="jackknife"`` or
    ``"conservative"``. ``attrs['ceiling_kind']`` says whether the ceiling is a reliability / variance fraction
    (split_half, fev: compare with r^2) or a correlation (cc_max, oracle: compare with r).
    """
    require_one_region(neural, "a noise ceiling")
    if method == "split_half":
        return ceiling_split_half(neural, **kwargs)
    if method == "cc_max":
        _no_kwargs(method, kwargs)
        per = cc_max(neural)
    elif method == "fev":
        _no_kwargs(method, kwargs)
        per = fev(neural)
    elif method == "oracle":
        oracle_method = kwargs.pop("oracle_method", "jackknife")
        _no_kwargs(method, kwargs)
        per = oracle_correlation(neural, method=oracle_method)
        per.attrs["oracle_method"] = oracle_method
    else:
        raise ConfigError(f"unknown noise-ceiling method {method!r}; choose one of {', '.join(CEILING_METHODS)}")
    return _median_summary(per, method, dict(per.attrs))


def _no_kwargs(method: str, kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise ConfigError(f"noise_ceiling(method={method!r}) takes no options; got {sorted(kwargs)}")

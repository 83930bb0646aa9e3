"""Checks of the data model (docs/data-model.md).

Two kinds of objects cross the door of the framework:

* **recordings** (``xr.Dataset``): ``response(time, cell)`` spike counts per bin (or rates, with
  ``attrs['units']``), optionally ``stimulus(time, y, x)`` float32 contrast, optionally
  ``trials(repeat, time, cell)`` repeated responses, coordinates ``time`` (s) and ``cell`` (str), optional
  ``split`` on ``time`` with values ``train``/``test``; attrs ``frame_rate_hz`` and ``source``.
* **assemblies** (``xr.DataArray``): dims ``(presentation, neuroid[, time_bin])``; coords ``stimulus_id``
  (and ``repetition``) on presentation, ``neuroid_id`` on neuroid, ``time_bin_start``/``time_bin_end`` (ms)
  on time_bin; plain coordinates, no MultiIndex.
* **model features** (``xr.DataArray``): dims ``(presentation, feature[, time_step])`` with a unique
  ``stimulus_id`` on presentation and the ``layer`` they come from (a scalar coordinate or an attr).

:func:`validate` raises :class:`~neuromodels.errors.DataFormatError` naming the file (``attrs['source']``),
the field, what was expected and what was found. Values are checked eagerly for small arrays; for
dask-backed (lazy) arrays only structure, dtypes and coordinates are checked, so that validation never
loads a multi-GB stimulus into memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from neuromodels.errors import DataFormatError

__all__ = ["validate", "validate_recording", "validate_assembly", "validate_features", "RECORDING_SPLITS"]

RECORDING_SPLITS = ("train", "test")
_ASSEMBLY_DIMS = ("presentation", "neuroid")


def _source(obj: xr.Dataset | xr.DataArray, file: Any | None) -> str | None:
    if file is not None:
        return str(file)
    src = obj.attrs.get("source")
    return None if src is None else str(src)


def _is_lazy(da: xr.DataArray) -> bool:
    return not isinstance(da.variable._data, np.ndarray) and hasattr(da.data, "dask")


# Units of non-negative quantities; any other declared unit (dF/F, z-score, mV) may take either sign.
NON_NEGATIVE_UNITS = frozenset({"count", "counts", "spikes", "hz", "spikes/s", "1/s", "rate"})


def _check_counts(da: xr.DataArray, field: str, file: str | None, *, allow_nan: bool, signed: bool = False) -> None:
    if not np.issubdtype(da.dtype, np.number) or np.issubdtype(da.dtype, np.complexfloating):
        raise DataFormatError(file=file, field=field, expected="a real numeric array", found=f"dtype {da.dtype}")
    if _is_lazy(da):
        return
    values = np.asarray(da.values)
    if values.size == 0:
        return
    if np.issubdtype(values.dtype, np.floating):
        nan = np.isnan(values)
        if nan.any() and not allow_nan:
            where = np.argwhere(nan)[0]
            index = {dim: int(i) for dim, i in zip(da.dims, where)}
            raise DataFormatError(
                file=file, field=field, expected="finite values", found=f"{int(nan.sum())} NaN (first at {index})"
            )
        if np.isinf(values).any():
            raise DataFormatError(file=file, field=field, expected="finite values", found="infinite values")
        finite = values[~nan]
    else:
        finite = values
    if finite.size and not signed and finite.min() < 0:
        where = np.argwhere(values < 0)[0]
        index = {dim: int(i) for dim, i in zip(da.dims, where)}
        raise DataFormatError(
            file=file,
            field=field,
            expected="non-negative spike counts or rates (set attrs['units'], e.g. 'dF/F', for signed signals)",
            found=f"negative value {finite.min()!r} (first at {index})",
        )


def _check_unique(values: np.ndarray, field: str, file: str | None) -> None:
    index = pd.Index(values)
    if not index.is_unique:
        dup = index[index.duplicated()].unique()[:5].tolist()
        raise DataFormatError(file=file, field=field, expected="unique values", found=f"duplicates {dup}")


def _check_no_multiindex(obj: xr.Dataset | xr.DataArray, file: str | None) -> None:
    for name, index in obj.indexes.items():
        if isinstance(index, pd.MultiIndex):
            raise DataFormatError(
                "use plain coordinates (obj.reset_index(...)) instead of a pandas MultiIndex",
                file=file,
                field=name,
                expected="a plain coordinate",
                found=f"MultiIndex of levels {list(index.names)}",
            )


def validate_recording(ds: xr.Dataset, *, file: Any | None = None) -> xr.Dataset:
    """Check a continuous recording (``xr.Dataset``) against the data model; return it unchanged."""
    src = _source(ds, file)
    if not isinstance(ds, xr.Dataset):
        raise DataFormatError(file=src, field="<object>", expected="xarray.Dataset", found=type(ds).__name__)
    _check_no_multiindex(ds, src)
    _check_response_and_cells(ds, src)
    _check_recording_time(ds, src)
    signed = _check_response_values(ds["response"], src)
    _check_stimulus_and_trials(ds, src, signed)
    rate = ds.attrs.get("frame_rate_hz")
    if rate is not None and not (np.isfinite(rate) and rate > 0):
        raise DataFormatError(file=src, field="attrs.frame_rate_hz", expected="a positive number", found=repr(rate))
    return ds


def _check_response_and_cells(ds: xr.Dataset, src: Any) -> None:
    """``response(time, cell)`` exists, with ``time`` and ``cell`` coordinates and unique string cell ids."""
    if "response" not in ds.data_vars:
        raise DataFormatError(
            file=src, field="response", expected="a data variable response(time, cell)", found=sorted(ds.data_vars)
        )
    response = ds["response"]
    if response.dims != ("time", "cell"):
        raise DataFormatError(
            file=src, field="response", expected="dims ('time', 'cell')", found=f"dims {response.dims}"
        )
    for coord in ("time", "cell"):
        if coord not in ds.coords:
            raise DataFormatError(file=src, field=coord, expected=f"a '{coord}' coordinate", found="none")
    if ds.sizes["cell"] == 0:
        raise DataFormatError(file=src, field="cell", expected="at least one cell", found="0 cells")
    if ds["cell"].dtype.kind not in "UO":
        raise DataFormatError(file=src, field="cell", expected="string cell ids", found=f"dtype {ds['cell'].dtype}")
    _check_unique(ds["cell"].values, "cell", src)


def _check_recording_time(ds: xr.Dataset, src: Any) -> None:
    """Finite numeric times, strictly increasing (within each split when there is a valid ``split``)."""
    time = np.asarray(ds["time"].values)
    if not np.issubdtype(time.dtype, np.floating) and not np.issubdtype(time.dtype, np.integer):
        raise DataFormatError(file=src, field="time", expected="numeric times in seconds", found=f"dtype {time.dtype}")
    if not np.all(np.isfinite(time)):
        raise DataFormatError(file=src, field="time", expected="finite times", found="NaN or infinite times")
    if "split" in ds.coords:
        split = ds["split"]
        if split.dims != ("time",):
            raise DataFormatError(
                file=src, field="split", expected="a coordinate on 'time'", found=f"dims {split.dims}"
            )
        labels = set(np.unique(split.values).tolist())
        if not labels <= set(RECORDING_SPLITS):
            raise DataFormatError(
                file=src, field="split", expected=f"values in {RECORDING_SPLITS}", found=sorted(map(str, labels))
            )
        groups = [time[np.asarray(split.values) == label] for label in RECORDING_SPLITS]
    else:
        groups = [time]
    for label, t in zip(RECORDING_SPLITS if "split" in ds.coords else ("",), groups):
        if t.size > 1 and not np.all(np.diff(t) > 0):
            bad = int(np.argmin(np.diff(t) > 0))
            where = f" within split '{label}'" if label else ""
            raise DataFormatError(
                file=src,
                field="time",
                expected=f"strictly increasing times{where}",
                found=f"time[{bad + 1}]={t[bad + 1]!r} after time[{bad}]={t[bad]!r}",
            )


def _check_response_values(response: xr.DataArray, src: Any) -> bool:
    """Counts (integers unless units say otherwise), non-negative unless the units are signed; ``signed``."""
    units = response.attrs.get("units", "count")
    signed = str(units).strip().lower() not in NON_NEGATIVE_UNITS
    _check_counts(response, "response", src, allow_nan=False, signed=signed)
    if units == "count" and not _is_lazy(response) and response.size:
        values = np.asarray(response.values)
        if np.issubdtype(values.dtype, np.floating) and not np.all(values == np.round(values)):
            raise DataFormatError(
                "set response.attrs['units'] (e.g. 'Hz') for rates",
                file=src,
                field="response",
                expected="integer spike counts",
                found="non-integer values without units",
            )
    return signed


def _check_stimulus_and_trials(ds: xr.Dataset, src: Any, signed: bool) -> None:
    """``stimulus(time, y, x)`` float32 and finite; ``trials(repeat, time, cell)`` counts (NaN allowed)."""
    if "stimulus" in ds.data_vars:
        stim = ds["stimulus"]
        if stim.dims != ("time", "y", "x"):
            raise DataFormatError(
                file=src, field="stimulus", expected="dims ('time', 'y', 'x')", found=f"dims {stim.dims}"
            )
        if stim.dtype != np.float32:
            raise DataFormatError(file=src, field="stimulus", expected="dtype float32", found=f"dtype {stim.dtype}")
        if not _is_lazy(stim) and stim.size and not np.all(np.isfinite(stim.values)):
            raise DataFormatError(file=src, field="stimulus", expected="finite values", found="NaN or infinite values")

    if "trials" in ds.data_vars:
        trials = ds["trials"]
        if trials.dims != ("repeat", "time", "cell"):
            raise DataFormatError(
                file=src, field="trials", expected="dims ('repeat', 'time', 'cell')", found=f"dims {trials.dims}"
            )
        # Trials exist for the repeated (test) stimulus only: other times hold NaN.
        _check_counts(trials, "trials", src, allow_nan=True, signed=signed)


def validate_assembly(da: xr.DataArray, *, file: Any | None = None) -> xr.DataArray:
    """Check a presentation x neuroid [x time_bin] assembly against the data model; return it unchanged."""
    src = _source(da, file)
    if not isinstance(da, xr.DataArray):
        raise DataFormatError(file=src, field="<object>", expected="xarray.DataArray", found=type(da).__name__)
    _check_no_multiindex(da, src)
    if da.dims[:2] != _ASSEMBLY_DIMS or len(da.dims) not in (2, 3) or (len(da.dims) == 3 and da.dims[2] != "time_bin"):
        raise DataFormatError(
            file=src, field="<dims>", expected="('presentation', 'neuroid'[, 'time_bin'])", found=str(da.dims)
        )
    if "stimulus_id" not in da.coords or da["stimulus_id"].dims != ("presentation",):
        raise DataFormatError(file=src, field="stimulus_id", expected="a coordinate on 'presentation'", found="none")
    if "neuroid_id" not in da.coords or da["neuroid_id"].dims != ("neuroid",):
        raise DataFormatError(file=src, field="neuroid_id", expected="a coordinate on 'neuroid'", found="none")
    _check_unique(da["neuroid_id"].values, "neuroid_id", src)
    if "repetition" in da.coords:
        if da["repetition"].dims != ("presentation",):
            raise DataFormatError(
                file=src, field="repetition", expected="a coordinate on 'presentation'", found=da["repetition"].dims
            )
        keys = pd.MultiIndex.from_arrays([da["stimulus_id"].values, da["repetition"].values])
        if not keys.is_unique:
            dup = keys[keys.duplicated()][:5].tolist()
            raise DataFormatError(
                file=src,
                field="stimulus_id",
                expected="unique (stimulus_id, repetition) pairs",
                found=f"duplicates {dup}",
            )
    else:
        _check_unique(da["stimulus_id"].values, "stimulus_id", src)
    if "time_bin" in da.dims:
        for coord in ("time_bin_start", "time_bin_end"):
            if coord not in da.coords or da[coord].dims != ("time_bin",):
                raise DataFormatError(file=src, field=coord, expected="a coordinate on 'time_bin' (ms)", found="none")
        start = np.asarray(da["time_bin_start"].values, dtype=float)
        end = np.asarray(da["time_bin_end"].values, dtype=float)
        if np.any(end <= start):
            raise DataFormatError(
                file=src, field="time_bin_end", expected="time_bin_end > time_bin_start", found="empty bins"
            )
        if start.size > 1 and not np.all(np.diff(start) > 0):
            raise DataFormatError(
                file=src, field="time_bin_start", expected="strictly increasing bins", found=start.tolist()[:10]
            )
    # Averaged or z-scored assemblies may hold signed values: only finiteness is required.
    if not np.issubdtype(da.dtype, np.number):
        raise DataFormatError(file=src, field="<values>", expected="numeric values", found=f"dtype {da.dtype}")
    if not _is_lazy(da) and da.size and np.issubdtype(da.dtype, np.floating) and np.isnan(da.values).all():
        raise DataFormatError(file=src, field="<values>", expected="some finite values", found="all NaN")
    return da


def check_lazy_values(obj: xr.Dataset | xr.DataArray, *, file: Any | None = None) -> None:
    """The value checks that :func:`validate` leaves to the reader for arrays still on disk (dask-backed): a
    lazily read ``stimulus`` and ``response`` must be finite. Streams each array once, chunk by chunk; call it
    before writing such an object elsewhere (``neuromodels data convert``), so no invalid file is written."""
    if not isinstance(obj, xr.Dataset):
        return
    src = _source(obj, file)
    for name in ("stimulus", "response"):
        if name not in obj.data_vars or not _is_lazy(obj[name]) or not obj[name].size:
            continue
        da = obj[name]
        if not np.issubdtype(da.dtype, np.floating):
            continue
        other = [d for d in da.dims if d != "time"]
        bad = np.asarray((~np.isfinite(da)).any(other).values) if other else np.asarray((~np.isfinite(da)).values)
        if bad.any():
            first = int(np.argmax(bad))
            split = f" of split '{obj['split'].values[first]}'" if "split" in obj.coords and "time" in da.dims else ""
            raise DataFormatError(
                file=src,
                field=name,
                expected="finite values",
                found=f"NaN or infinite values in {int(bad.sum())} time bin(s){split}, the first at time index {first}",
            )


def validate(obj: xr.Dataset | xr.DataArray, *, file: Any | None = None) -> xr.Dataset | xr.DataArray:
    """Check ``obj`` against the data model (docs/data-model.md) and return it unchanged.

    ``xr.Dataset`` objects are checked as recordings, ``xr.DataArray`` objects as assemblies. ``file``
    overrides ``obj.attrs['source']`` in error messages.

    Raises
    ------
    DataFormatError
        naming the file, the field, what was expected and what was found.
    """
    if isinstance(obj, xr.Dataset):
        return validate_recording(obj, file=file)
    if isinstance(obj, xr.DataArray):
        if obj.dims[:1] == ("presentation",) and "feature" in obj.dims:
            return validate_features(obj, file=file)
        return validate_assembly(obj, file=file)
    raise DataFormatError(
        file=file, field="<object>", expected="xarray.Dataset or xarray.DataArray", found=type(obj).__name__
    )


def validate_features(da: xr.DataArray, *, file: Any | None = None) -> xr.DataArray:
    """Check model features ``(presentation, feature[, time_step])`` against the data model; return them unchanged."""
    src = _source(da, file)
    if not isinstance(da, xr.DataArray):
        raise DataFormatError(file=src, field="<object>", expected="xarray.DataArray", found=type(da).__name__)
    _check_no_multiindex(da, src)
    if (
        da.dims[:2] != ("presentation", "feature")
        or len(da.dims) not in (2, 3)
        or (len(da.dims) == 3 and da.dims[2] != "time_step")
    ):
        raise DataFormatError(
            file=src, field="<dims>", expected="('presentation', 'feature'[, 'time_step'])", found=str(da.dims)
        )
    if "stimulus_id" not in da.coords or da["stimulus_id"].dims != ("presentation",):
        raise DataFormatError(file=src, field="stimulus_id", expected="a coordinate on 'presentation'", found="none")
    _check_unique(da["stimulus_id"].values, "stimulus_id", src)
    if "layer" not in da.coords and "layer" not in da.attrs:
        raise DataFormatError(
            file=src, field="layer", expected="the layer name (scalar coordinate or attr)", found="none"
        )
    if not (np.issubdtype(da.dtype, np.floating) or np.issubdtype(da.dtype, np.integer)):
        raise DataFormatError(file=src, field="<values>", expected="numeric features", found=str(da.dtype))
    return da

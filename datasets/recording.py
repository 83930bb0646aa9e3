"""Builders and accessors for the two data-model objects, shared by every adapter.

Public constructors, for arrays you already have in memory (validated on return):

* :func:`assembly_from_arrays`: responses ``(presentation, neuroid[, time_bin])`` with one stimulus id per
  presentation, or a NaN-padded repeats array ``(stimulus, repeat, neuroid[, time_bin])`` in any axis order
  -> an assembly ``xr.DataArray``.
* :func:`recording_from_arrays`: ``stimulus (time, y, x)`` + ``response (time, cell)`` at a frame rate -> a
  recording ``xr.Dataset``.

Builders the adapters share (not validated; adapters validate what they return):

* :func:`recording_from_counts` makes a continuous recording ``xr.Dataset`` from binned counts.
* :func:`assembly` makes a presentation x neuroid [x time_bin] ``xr.DataArray``.

and :func:`split` selects the ``train`` or ``test`` part of a recording.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from neuromodels.datasets._validate import validate_assembly, validate_recording
from neuromodels.errors import ConfigError, DataFormatError

__all__ = ["assembly_from_arrays", "recording_from_arrays", "recording_from_counts", "assembly", "split"]


def recording_from_counts(
    counts: np.ndarray,
    edges: np.ndarray,
    bin_size: float,
    cell_ids: Sequence[str],
    *,
    source: str | None,
    stimulus: np.ndarray | None = None,
    cell_coords: Mapping[str, Sequence[Any]] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """A recording with ``response(time, cell)`` counts; ``time`` is the left edge of each bin (s).

    ``source`` (the file, named in errors) goes to ``attrs['source']``; ``None`` leaves it out."""
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape != (len(edges), len(cell_ids)):
        raise DataFormatError(
            file=source, field="response", expected=f"shape ({len(edges)}, {len(cell_ids)})", found=f"{counts.shape}"
        )
    coords: dict[str, Any] = {
        "time": ("time", np.asarray(edges, dtype=np.float64), {"units": "s"}),
        "cell": ("cell", np.asarray([str(c) for c in cell_ids], dtype=object)),
    }
    for name, values in (cell_coords or {}).items():
        coords[name] = ("cell", np.asarray(values))
    data_vars: dict[str, Any] = {"response": (("time", "cell"), counts, {"units": "count"})}
    if stimulus is not None:
        data_vars["stimulus"] = (("time", "y", "x"), np.asarray(stimulus, dtype=np.float32))
    ds = xr.Dataset(data_vars, coords=coords)
    if source is not None:
        ds.attrs["source"] = str(source)
    ds.attrs.update({"bin_size_s": float(bin_size), "frame_rate_hz": 1.0 / float(bin_size)})
    ds.attrs.update(dict(attrs or {}))
    return ds


def assembly(
    values: np.ndarray,
    *,
    stimulus_id: Sequence[Any],
    neuroid_id: Sequence[Any],
    repetition: Sequence[int] | None = None,
    time_bin_start_ms: Sequence[float] | None = None,
    time_bin_end_ms: Sequence[float] | None = None,
    presentation_coords: Mapping[str, Sequence[Any]] | None = None,
    neuroid_coords: Mapping[str, Sequence[Any]] | None = None,
    attrs: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> xr.DataArray:
    """A presentation x neuroid [x time_bin] assembly with the data model's plain coordinates."""
    values = np.asarray(values)
    dims: tuple[str, ...] = ("presentation", "neuroid") + (("time_bin",) if values.ndim == 3 else ())
    coords: dict[str, Any] = {
        "stimulus_id": ("presentation", np.asarray([str(s) for s in stimulus_id], dtype=object)),
        "neuroid_id": ("neuroid", np.asarray([str(n) for n in neuroid_id], dtype=object)),
    }
    if repetition is not None:
        coords["repetition"] = ("presentation", np.asarray(repetition, dtype=np.int64))
    for key, vals in (presentation_coords or {}).items():
        coords[key] = ("presentation", np.asarray(vals))
    for key, vals in (neuroid_coords or {}).items():
        coords[key] = ("neuroid", np.asarray(vals))
    if values.ndim == 3:
        if time_bin_start_ms is None or time_bin_end_ms is None:
            raise DataFormatError(field="time_bin_start", expected="bin starts and ends (ms)", found="none")
        coords["time_bin_start"] = ("time_bin", np.asarray(time_bin_start_ms, dtype=np.float64))
        coords["time_bin_end"] = ("time_bin", np.asarray(time_bin_end_ms, dtype=np.float64))
    return xr.DataArray(values, dims=dims, coords=coords, attrs=dict(attrs or {}), name=name)


def split(recording: xr.Dataset, name: str) -> xr.Dataset:
    """The ``train`` or ``test`` part of a recording (by its ``split`` coordinate on ``time``).

    Repeated trials exist for the test stimulus only; ``split(rec, "train")`` drops ``trials``.
    """
    if name not in ("train", "test"):
        raise DataFormatError(field="split", expected="'train' or 'test'", found=repr(name))
    if "split" not in recording.coords:
        raise DataFormatError(
            file=recording.attrs.get("source"), field="split", expected="a 'split' coordinate on 'time'", found="none"
        )
    mask = np.asarray(recording["split"].values) == name
    part = recording.isel(time=np.flatnonzero(mask))
    if name == "train" and "trials" in part:
        part = part.drop_vars("trials")
    if "repeat" in part.dims and "trials" not in part:
        part = part.drop_dims("repeat")
    return part


# --------------------------------------------------------------------------------------------------------------
# Public constructors: arrays you already have -> validated data-model objects

PRESENTATION_LAYOUT = ("presentation", "neuroid", "time_bin")
"""Axis names of a presentation array for :func:`assembly_from_arrays` (``time_bin`` optional)."""

REPEATS_LAYOUT = ("stimulus", "repeat", "neuroid", "time_bin")
"""Axis names of a repeats array for :func:`assembly_from_arrays` (``time_bin`` optional)."""


def _layout(
    dims: Sequence[str] | None, shape: tuple[int, ...], has_time_bins: bool, source: str | None
) -> tuple[str, ...]:
    """The axis names of ``responses`` (checked), defaulting to ``(presentation, neuroid)`` for 2-d arrays."""
    if len(shape) not in (2, 3, 4):
        raise DataFormatError(
            file=source,
            field="<dims>",
            expected="a 2-, 3- or 4-d responses array",
            found=f"a {len(shape)}-d array of shape {shape}",
        )
    if dims is None:
        if len(shape) != 2:
            raise ConfigError(
                f"responses is {len(shape)}-d: pass dims= to name its axes, e.g. dims=('stimulus', 'repeat', "
                "'neuroid') for a NaN-padded repeats array or dims=('presentation', 'neuroid', 'time_bin')"
            )
        dims = ("presentation", "neuroid")
    names = tuple(str(d) for d in dims)
    unknown = [d for d in names if d not in PRESENTATION_LAYOUT + REPEATS_LAYOUT]
    if unknown:
        raise ConfigError(
            f"dims names the axes of responses with {PRESENTATION_LAYOUT} or {REPEATS_LAYOUT} "
            f"(time_bin optional), not {unknown[0]!r}"
        )
    if len(names) != len(shape):
        raise DataFormatError(
            file=source,
            field="<dims>",
            expected=f"a {len(names)}-d array (dims {names})",
            found=f"a {len(shape)}-d array of shape {shape}",
        )
    core = set(names) - {"time_bin"}
    if len(set(names)) != len(names) or core not in ({"presentation", "neuroid"}, {"stimulus", "repeat", "neuroid"}):
        raise ConfigError(
            f"dims must be either (presentation, neuroid) or (stimulus, repeat, neuroid), in any order, "
            f"plus an optional time_bin, not both nor a mix: got {names}"
        )
    if has_time_bins and "time_bin" not in names:
        raise ConfigError(f"time_bins given but responses have no 'time_bin' axis (dims {names})")
    return names


def _per_neuroid(values: Any, n: int, field: str, source: str | None) -> np.ndarray:
    """One string per neuroid: a single value for all, or one each."""
    if isinstance(values, str) or np.ndim(values) == 0:
        return np.full(n, str(values), dtype=object)
    array = np.asarray([str(v) for v in values], dtype=object)
    if array.shape != (n,):
        raise DataFormatError(
            file=source,
            field=field,
            expected=f"{n} values (one per neuroid) or a single value",
            found=f"{array.size} values",
        )
    return array


def _time_bins(time_bins: Any, n_bins: int, source: str | None) -> tuple[np.ndarray, np.ndarray]:
    if time_bins is None:
        raise DataFormatError(
            file=source,
            field="time_bin_start",
            expected="time_bins=[(start_ms, end_ms), ...] for the 'time_bin' axis",
            found="none",
        )
    try:
        bins = np.asarray(time_bins, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataFormatError(
            file=source,
            field="time_bin_start",
            expected="(start, end) pairs of numbers in ms",
            found=f"{type(exc).__name__}: {exc}",
        ) from exc
    if bins.shape != (n_bins, 2):
        raise DataFormatError(
            file=source,
            field="time_bin_start",
            expected=f"{n_bins} (start, end) pairs in ms, one per time bin",
            found=f"shape {bins.shape}",
        )
    return bins[:, 0], bins[:, 1]


def _presentations_from_repeats(
    values: np.ndarray, ids: list[str], source: str | None
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(stimulus, repeat, ...) -> (presentation, ...): slots that are NaN for every neuroid and time bin are dropped."""
    n_stimuli, n_slots = values.shape[:2]
    if len(ids) != n_stimuli:
        raise DataFormatError(
            file=source,
            field="stimulus_id",
            expected=f"{n_stimuli} stimulus ids (one per stimulus, the 'stimulus' axis)",
            found=f"{len(ids)} ids",
        )
    if np.issubdtype(values.dtype, np.floating):
        present = ~np.isnan(values.reshape(n_stimuli, n_slots, -1)).all(axis=2)
    else:
        present = np.ones((n_stimuli, n_slots), dtype=bool)
    if not present.any():
        raise DataFormatError(file=source, field="<values>", expected="some finite values", found="all NaN")
    stimulus_index, slot = np.nonzero(present)  # stimulus-major, then repeat slot
    return values[stimulus_index, slot], [ids[i] for i in stimulus_index], slot


def assembly_from_arrays(
    responses: Any,
    stimulus_ids: Sequence[Any],
    repetitions: Sequence[int] | None = None,
    *,
    dims: Sequence[str] | None = None,
    neuroid_ids: Sequence[Any] | None = None,
    region: str | Sequence[str] | None = None,
    animal: str | Sequence[str] | None = None,
    time_bins: Sequence[tuple[float, float]] | None = None,
    source: str | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.DataArray:
    """Your responses to presented stimuli -> a validated assembly ``(presentation, neuroid[, time_bin])``.

    Two layouts of ``responses`` (spike counts, rates, or any signed response), named by ``dims``:

    * **presentations**: ``dims=("presentation", "neuroid"[, "time_bin"])`` (the default for 2-d arrays) with
      one ``stimulus_ids`` entry per presentation; ``repetitions`` numbers the presentations of each stimulus
      (default: ``0, 1, 2, ...`` per stimulus in order of presentation). NaN values are kept.
    * **NaN-padded repeats**: ``dims`` a permutation of ``("stimulus", "repeat", "neuroid"[, "time_bin"])``,
      one ``stimulus_ids`` entry per stimulus. A repeat slot that is NaN for every neuroid (and time bin) is a
      repeat that did not happen and is dropped; ``repetition`` is the slot index. Presentations are ordered by
      stimulus, then slot. E.g. Cowley et al. 2023's V4 ``responses_raw`` ``(neurons, images, repeats)``:
      ``assembly_from_arrays(raw, image_ids, dims=("neuroid", "stimulus", "repeat"), region="V4")``.

    Arrays of 3 or more dimensions need ``dims`` (the layout cannot be guessed safely).

    Parameters
    ----------
    neuroid_ids : unique ids, default the neuroid's index (``"0"``, ``"1"``, ...).
    region, animal : one value for all neuroids or one per neuroid; left out when ``None``.
    time_bins : ``[(start_ms, end_ms), ...]`` relative to stimulus onset, one per ``time_bin`` (required with it).
    source : the file the arrays came from, named in errors and kept in ``attrs['source']``.
    attrs : further attributes (``identifier``, ``stimulus_set_identifier``, ...).

    Returns
    -------
    ``xr.DataArray`` with the data model's plain coordinates ``stimulus_id``, ``repetition`` (presentation),
    ``neuroid_id``, ``region``, ``animal`` (neuroid), ``time_bin_start``, ``time_bin_end`` (time_bin); values
    keep their dtype.

    Raises
    ------
    DataFormatError
        naming the field (``stimulus_id``, ``repetition``, ``neuroid_id``, ``region``, ``time_bin_start``,
        ``<values>``, ...) for ids or labels that do not fit the array, duplicates, or all-NaN values.
    ConfigError
        for a missing or inconsistent ``dims``, or ``repetitions`` with a repeats array.
    """
    values = np.asarray(responses)
    if values.dtype.kind not in "iuf":
        raise DataFormatError(
            file=source, field="<values>", expected="a real numeric array", found=f"dtype {values.dtype}"
        )
    names = _layout(dims, values.shape, time_bins is not None, source)
    repeats = "repeat" in names
    order = [d for d in (REPEATS_LAYOUT if repeats else PRESENTATION_LAYOUT) if d in names]
    values = np.transpose(values, [names.index(d) for d in order])
    ids = [str(s) for s in stimulus_ids]
    if repeats:
        if repetitions is not None:
            raise ConfigError("repetitions come from the 'repeat' axis of a repeats array; do not pass them")
        values, ids, repetition = _presentations_from_repeats(values, ids, source)
    else:
        n_presentations = values.shape[0]
        if len(ids) != n_presentations:
            raise DataFormatError(
                file=source,
                field="stimulus_id",
                expected=f"{n_presentations} stimulus ids (one per presentation)",
                found=f"{len(ids)} ids",
            )
        if repetitions is None:
            repetition = pd.Series(ids).groupby(ids, sort=False).cumcount().to_numpy()
        else:
            repetition = np.asarray(repetitions)
            if repetition.shape != (n_presentations,):
                raise DataFormatError(
                    file=source,
                    field="repetition",
                    expected=f"{n_presentations} repetitions (one per presentation)",
                    found=f"shape {repetition.shape}",
                )
            if repetition.dtype.kind not in "iu" and not (
                repetition.dtype.kind == "f" and np.all(repetition == np.round(repetition))
            ):
                raise DataFormatError(
                    file=source, field="repetition", expected="integers", found=f"dtype {repetition.dtype}"
                )
    n_neuroids = values.shape[1]
    neuroids = [str(n) for n in neuroid_ids] if neuroid_ids is not None else [str(i) for i in range(n_neuroids)]
    if len(neuroids) != n_neuroids:
        raise DataFormatError(
            file=source,
            field="neuroid_id",
            expected=f"{n_neuroids} neuroid ids (one per neuroid)",
            found=f"{len(neuroids)} ids",
        )
    per_neuroid = {
        field: _per_neuroid(value, n_neuroids, field, source)
        for field, value in (("region", region), ("animal", animal))
        if value is not None
    }
    start = end = None
    if "time_bin" in names:
        start, end = _time_bins(time_bins, values.shape[2], source)
    all_attrs = {} if source is None else {"source": str(source)}
    all_attrs.update(dict(attrs or {}))
    da = assembly(
        values,
        stimulus_id=ids,
        neuroid_id=neuroids,
        repetition=repetition,
        time_bin_start_ms=start,
        time_bin_end_ms=end,
        neuroid_coords=per_neuroid,
        attrs=all_attrs,
    )
    return validate_assembly(da, file=source)


def recording_from_arrays(
    stimulus: Any,
    response: Any,
    frame_rate_hz: float,
    *,
    cell_ids: Sequence[Any] | None = None,
    cell_types: Sequence[Any] | None = None,
    response_units: str = "count",
    trials: Any = None,
    split: Sequence[str] | None = None,
    t_start: float = 0.0,
    species: str | None = None,
    source: str | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Your stimulus movie and binned responses -> a validated recording ``xr.Dataset``.

    Parameters
    ----------
    stimulus : ``(time, y, x)`` frames (stored as float32), one per response bin; ``None`` for a spike-only
        recording. A dask array stays lazy. Movies with colour channels: pick or average the channels first.
    response : ``(time, cell)`` spike counts per bin (``response_units="count"``, integers), rates (``"Hz"``)
        or a signed signal (``"dF/F"``, ``"z-score"``, ...; only counts and rates must be non-negative).
    frame_rate_hz : frames (bins) per second; bin ``k`` starts at ``time = t_start + k / frame_rate_hz`` (s).
    cell_ids : unique ids, default the column index (``"0"``, ``"1"``, ...).
    cell_types : one per cell (a ``cell_type`` coordinate), where known.
    trials : ``(repeat, time, cell)`` responses to a repeated stimulus, NaN at times without repeats.
    split : one label per bin, ``"train"`` or ``"test"`` (a ``split`` coordinate on ``time``).
    species, source : kept in ``attrs`` (``source``, the file the arrays came from, is named in errors).
    attrs : further attributes.

    Returns
    -------
    ``xr.Dataset`` with ``stimulus(time, y, x)``, ``response(time, cell)`` (``attrs['units']``), optional
    ``trials``; coords ``time``, ``cell``, optional ``cell_type`` and ``split``; attrs ``frame_rate_hz``,
    ``bin_size_s``, ``source``, ``species``.

    Raises
    ------
    DataFormatError
        naming the field (``stimulus``, ``response``, ``cell``, ``cell_type``, ``split``, ``trials``,
        ``attrs.frame_rate_hz``) when it does not fit the response's shape or the data model.
    """
    response = np.asarray(response)
    if response.ndim != 2:
        raise DataFormatError(
            file=source, field="response", expected="a 2-d (time, cell) array", found=f"shape {response.shape}"
        )
    if isinstance(frame_rate_hz, bool) or not (
        isinstance(frame_rate_hz, (int, float, np.number)) and np.isfinite(frame_rate_hz) and frame_rate_hz > 0
    ):
        raise DataFormatError(
            file=source,
            field="attrs.frame_rate_hz",
            expected="a positive number of frames per second",
            found=repr(frame_rate_hz),
        )
    n_time, n_cells = response.shape
    ids = [str(c) for c in cell_ids] if cell_ids is not None else [str(i) for i in range(n_cells)]
    if len(ids) != n_cells:
        raise DataFormatError(
            file=source, field="cell", expected=f"{n_cells} cell ids (one per response column)", found=f"{len(ids)} ids"
        )
    cell_coords: dict[str, Any] = {}
    if cell_types is not None:
        types = np.asarray(cell_types)
        if types.shape != (n_cells,):
            raise DataFormatError(
                file=source,
                field="cell_type",
                expected=f"{n_cells} values (one per cell)",
                found=f"shape {types.shape}",
            )
        cell_coords["cell_type"] = types.astype(object) if types.dtype.kind in "US" else types
    time = float(t_start) + np.arange(n_time, dtype=np.float64) / float(frame_rate_hz)
    ds = recording_from_counts(
        response, time, 1.0 / float(frame_rate_hz), ids, source=source, cell_coords=cell_coords, attrs=attrs
    )
    ds.attrs["frame_rate_hz"] = float(frame_rate_hz)
    if species is not None:
        ds.attrs["species"] = str(species)
    ds["response"].attrs["units"] = str(response_units)
    if stimulus is not None:
        frames = stimulus if hasattr(stimulus, "dask") else np.asarray(stimulus)
        if frames.ndim != 3:
            raise DataFormatError(
                file=source, field="stimulus", expected="a 3-d (time, y, x) array", found=f"shape {tuple(frames.shape)}"
            )
        if frames.shape[0] != n_time:
            raise DataFormatError(
                file=source,
                field="stimulus",
                expected=f"{n_time} frames (as response)",
                found=f"{frames.shape[0]} frames",
            )
        ds["stimulus"] = (("time", "y", "x"), frames.astype(np.float32, copy=False))
    if trials is not None:
        repeated = np.asarray(trials)
        if repeated.ndim != 3 or repeated.shape[1:] != (n_time, n_cells):
            raise DataFormatError(
                file=source,
                field="trials",
                expected=f"shape (repeat, {n_time}, {n_cells})",
                found=f"shape {repeated.shape}",
            )
        ds["trials"] = (("repeat", "time", "cell"), repeated)
    if split is not None:
        labels = np.asarray([str(s) for s in split])
        if labels.shape != (n_time,):
            raise DataFormatError(
                file=source,
                field="split",
                expected=f"{n_time} labels ('train'/'test'), one per bin",
                found=f"{labels.size} labels",
            )
        ds = ds.assign_coords(split=("time", labels))
    return validate_recording(ds, file=source)

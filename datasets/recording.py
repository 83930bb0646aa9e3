"""Builders and accessors for the two data-model objects, shared by every adapter.

* :func:`recording_from_counts` makes a continuous recording ``xr.Dataset`` from binned counts.
* :func:`assembly` makes a presentation x neuroid [x time_bin] ``xr.DataArray``.
* :func:`split` selects the ``train`` or ``test`` part of a recording.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from neuromodels.errors import DataFormatError

__all__ = ["recording_from_counts", "assembly", "split"]


def recording_from_counts(
    counts: np.ndarray,
    edges: np.ndarray,
    bin_size: float,
    cell_ids: Sequence[str],
    *,
    source: str,
    stimulus: np.ndarray | None = None,
    cell_coords: Mapping[str, Sequence[Any]] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """A recording with ``response(time, cell)`` counts; ``time`` is the left edge of each bin (s)."""
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape != (len(edges), len(cell_ids)):
        raise DataFormatError(
            file=source, field="response", expected=f"shape ({len(edges)}, {len(cell_ids)})", found=f"{counts.shape}"
        )
    coords: dict[str, Any] = {"time": ("time", np.asarray(edges, dtype=np.float64), {"units": "s"}),
                              "cell": ("cell", np.asarray([str(c) for c in cell_ids], dtype=object))}
    for name, values in (cell_coords or {}).items():
        coords[name] = ("cell", np.asarray(values))
    data_vars: dict[str, Any] = {"response": (("time", "cell"), counts, {"units": "count"})}
    if stimulus is not None:
        data_vars["stimulus"] = (("time", "y", "x"), np.asarray(stimulus, dtype=np.float32))
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs.update({"source": str(source), "bin_size_s": float(bin_size), "frame_rate_hz": 1.0 / float(bin_size)})
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

"""Neurodata Without Borders 2 (NWB) files: the units table's spike times -> validated xarray.

:func:`open_nwb` reads an NWB file with pynwb, materialises the units table (spike times, ids, per-unit
metadata) and the trial table, closes the file, and bins the spikes with
:func:`neuromodels.datasets.binning.bin_spike_times` (seconds, left-closed bins) in one of two forms:

* ``by="time"``: a spike-only recording ``xr.Dataset`` with ``response(time, cell)`` counts over the whole
  session (no ``stimulus`` variable), ``cell`` = unit ids as strings;
* ``by="trial"``: a presentation x neuroid assembly of counts in each trial (``[start_time, stop_time)``,
  or ``window`` relative to ``start_time``), optionally x ``time_bin`` when ``bin_size`` is given.

The trial table is ``nwb.trials`` or, when a file has none, a stimulus-presentation ``TimeIntervals``
table in ``nwb.intervals`` (for instance ``encoding_table`` in DANDI 000207); ``epochs`` and
``invalid_times`` are never taken for trials.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from neuromodels.datasets._io import existing_file
from neuromodels.datasets._validate import validate
from neuromodels.datasets.binning import bin_spike_times, n_bins, require_time_bins
from neuromodels.datasets.recording import assembly, recording_from_counts
from neuromodels.errors import ConfigError, DataFormatError

__all__ = ["open_nwb", "DEFAULT_BIN_SIZE_S", "STIMULUS_COLUMNS"]

DEFAULT_BIN_SIZE_S = 0.01
"""Bin width (s) of ``by="time"`` recordings when ``bin_size`` is not given."""

STIMULUS_COLUMNS = (
    "stimulus_id",
    "stim_id",
    "image_id",
    "image_index",
    "image_name",
    "image",
    "stimulus",
    "stimulus_name",
    "stim_name",
    "stimulus_index",
    "stimulus_type",
    "condition",
    "condition_id",
    "frame",
    "frame_name",
    "clip_name",
    "movie_name",
)
"""Trial-table columns taken as ``stimulus_id`` (first match wins; case and underscores are ignored)."""

# Interval tables that describe the session, not stimulus presentations.
_NOT_PRESENTATIONS = ("epochs", "invalid_times")
# Unit-table columns that are spike data or per-spike arrays, not per-unit labels.
_UNIT_SKIP = {
    "spike_times",
    "obs_intervals",
    "waveform_mean",
    "waveform_sd",
    "waveforms",
    "electrodes",
    "electrode_group",
    "spike_amplitudes",
}
_REGION_COLUMNS = ("location", "brain_area", "brain_region", "region", "area")
# Coordinate names the opener sets itself; file columns of the same name are not copied.
_RESERVED = {
    "cell",
    "time",
    "neuroid",
    "neuroid_id",
    "presentation",
    "stimulus_id",
    "repetition",
    "time_bin",
    "time_bin_start",
    "time_bin_end",
    "region",
    "animal",
    "trial_id",
    "start_time",
    "stop_time",
    "electrode",
    "electrode_group",
    "segment",
    "split",
}


@dataclass
class _Session:
    """Everything :func:`open_nwb` needs, copied out of the file before it is closed."""

    unit_ids: list[str]
    spike_times: list[np.ndarray]  # one sorted float64 array (s) per unit
    unit_coords: dict[str, np.ndarray]
    attrs: dict[str, Any]
    subject_id: str | None
    interval_end_s: float | None  # last stop_time of any interval table (session extent)
    trial_table_name: str | None = None
    trials: pd.DataFrame | None = None  # id, start_time, stop_time and scalar columns
    other_tables: list[str] = field(default_factory=list)


def _text(values: Any) -> np.ndarray:
    """Decode HDF5 byte strings; return an object array of ``str``."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v.decode("utf-8", "replace") if isinstance(v, (bytes, np.bytes_)) else str(v)
    return out


def _scalar_column(values: Any, n: int) -> np.ndarray | None:
    """A 1-d column of ``n`` numbers/strings/bools as a numpy array, or ``None`` for anything else."""
    try:
        arr = np.asarray(values[:] if hasattr(values, "__getitem__") else values)
    except Exception:  # noqa: BLE001 - references, compound types: not a plain label column
        return None
    if arr.ndim != 1 or arr.shape[0] != n:
        return None
    if arr.dtype.kind in "SO":
        if not all(isinstance(v, (bytes, np.bytes_, str)) for v in arr):
            return None
        return _text(arr)
    if arr.dtype.kind in "biufU":
        return arr
    return None


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _read_units(nwb: Any, file: Path) -> tuple[list[str], list[np.ndarray], dict[str, np.ndarray]]:
    units = nwb.units
    if units is None:
        raise DataFormatError(
            "the file holds no sorted spikes",
            file=file,
            field="units",
            expected="a units table (nwb.units) with a spike_times column",
            found="no units table",
        )
    if "spike_times" not in units.colnames:
        raise DataFormatError(
            file=file,
            field="units/spike_times",
            expected="a spike_times column in the units table",
            found=f"columns {list(units.colnames)}",
        )
    try:
        ids = np.asarray(units.id.data[:])
        flat = np.asarray(units.spike_times.data[:], dtype=np.float64)
        index = units.spike_times_index
        ends = np.asarray(index.data[:], dtype=np.int64) if index is not None else np.arange(1, flat.size + 1)
    except DataFormatError:
        raise
    except Exception as exc:
        raise DataFormatError(
            file=file,
            field="units/spike_times",
            expected="readable spike times",
            found=f"{type(exc).__name__}: {exc}",
        ) from exc
    n = len(ids)
    if n == 0:
        raise DataFormatError(file=file, field="units", expected="at least one unit", found="an empty units table")
    if ends.size != n or (n and (ends[-1] != flat.size or np.any(np.diff(ends) < 0))):
        raise DataFormatError(
            file=file,
            field="units/spike_times_index",
            expected=f"{n} increasing end offsets ending at {flat.size}",
            found=f"{ends.size} offsets",
        )
    starts = np.concatenate([[0], ends[:-1]])
    unit_ids = [str(int(i)) if np.issubdtype(np.asarray(i).dtype, np.integer) else str(i) for i in ids]
    trains = []
    for uid, a, b in zip(unit_ids, starts, ends):
        t = flat[a:b]
        field_name = f"units/spike_times[id={uid}]"
        if t.size and not np.all(np.isfinite(t)):
            raise DataFormatError(file=file, field=field_name, expected="finite spike times (s)", found="NaN or inf")
        if t.size > 1 and np.any(np.diff(t) < 0):
            raise DataFormatError(
                "NWB spike times of a unit must be in increasing order",
                file=file,
                field=field_name,
                expected="sorted spike times",
                found="unsorted spike times",
            )
        trains.append(t)
    return unit_ids, trains, _unit_coords(nwb, units, n)


def _unit_coords(nwb: Any, units: Any, n: int) -> dict[str, np.ndarray]:
    """Per-unit labels: scalar unit columns, ``region``, ``electrode``, ``electrode_group``."""
    coords: dict[str, np.ndarray] = {}
    region: np.ndarray | None = None
    for name in units.colnames:
        if name in _UNIT_SKIP or name.endswith("_index"):
            continue
        column = units[name]
        if type(column).__name__ in ("VectorIndex", "DynamicTableRegion"):  # ragged or references
            continue
        values = _scalar_column(column.data, n)
        if values is None:
            continue
        if name.lower() in _REGION_COLUMNS and values.dtype == object and region is None:
            region = values
            continue
        if name not in _RESERVED:
            coords[name] = values

    # The first electrode of each unit gives its electrode id and, failing a unit column, its brain region.
    if "electrodes" in units.colnames:
        try:
            region_col = units.electrodes
            rows = np.asarray(region_col.data[:], dtype=np.int64)
            index = units.electrodes_index if "electrodes_index" in units.colnames else None
            if index is not None:
                ends = np.asarray(index.data[:], dtype=np.int64)
                starts = np.concatenate([[0], ends[:-1]])
                first = np.where(ends > starts, rows[np.minimum(starts, max(rows.size - 1, 0))], -1)
            else:
                first = rows
            table = region_col.table
            electrode_ids = np.asarray(table.id.data[:])
            if first.size == n and np.all(first >= 0):
                coords["electrode"] = electrode_ids[first]
                if region is None and "location" in table.colnames:
                    loc = _scalar_column(table["location"].data, len(electrode_ids))
                    if loc is not None:
                        region = loc[first]
                if "group_name" in table.colnames:
                    groups = _scalar_column(table["group_name"].data, len(electrode_ids))
                    if groups is not None:
                        coords["electrode_group"] = groups[first]
        except Exception:  # noqa: BLE001 - a broken electrode link loses labels, never spikes
            pass
    if "electrode_group" in units.colnames:
        try:
            groups = list(units.electrode_group.data[:])
            coords["electrode_group"] = _text([getattr(g, "name", g) for g in groups])
            if region is None:
                region = _text([getattr(g, "location", "") or "" for g in groups])
        except Exception:  # noqa: BLE001 - a broken electrode_group link loses labels, never spikes
            pass
    if region is not None and any(str(r).strip() for r in region):
        coords["region"] = region
    return coords


def _interval_frame(table: Any, name: str, file: Path) -> pd.DataFrame:
    """``id``, ``start_time``, ``stop_time`` and the scalar columns of a TimeIntervals table."""
    try:
        ids = np.asarray(table.id.data[:])
        start = np.asarray(table["start_time"].data[:], dtype=np.float64)
        stop = np.asarray(table["stop_time"].data[:], dtype=np.float64)
    except Exception as exc:
        raise DataFormatError(
            file=file,
            field=f"intervals/{name}",
            expected="start_time and stop_time columns",
            found=f"{type(exc).__name__}: {exc}",
        ) from exc
    n = len(ids)
    frame = pd.DataFrame({"id": ids, "start_time": start, "stop_time": stop})
    for col in table.colnames:
        if col in ("start_time", "stop_time") or col in frame:
            continue
        column = table[col]
        if type(column).__name__ in ("VectorIndex", "DynamicTableRegion", "TimeSeriesReferenceVectorData"):
            continue
        values = _scalar_column(column.data, n)
        if values is not None:
            frame[col] = values
    return frame


def _pick_trial_table(nwb: Any, table: str | None, file: Path) -> tuple[str | None, Any, list[str]]:
    """Name and object of the trial table, and the names of the other presentation-like tables."""
    intervals = dict(nwb.intervals or {})
    if nwb.trials is not None:
        intervals.setdefault("trials", nwb.trials)
    if table is not None:
        if table not in intervals:
            raise DataFormatError(
                file=file,
                field=f"intervals/{table}",
                expected="a TimeIntervals table of that name",
                found=f"tables {sorted(intervals)}",
            )
        return table, intervals[table], []
    candidates = [n for n in sorted(intervals) if n not in _NOT_PRESENTATIONS and len(intervals[n]) > 0]
    if not candidates:
        return None, None, []
    # nwb.trials is the standard place; then a table named like stimulus presentations; then the first by name.
    ranked = sorted(candidates, key=lambda n: (n != "trials", not re.search(r"stim|present", n.lower()), n))
    return ranked[0], intervals[ranked[0]], ranked[1:]


def _read_session(path: Path, *, want_trials: bool, table: str | None) -> _Session:
    import h5py
    import pynwb

    try:
        is_hdf5 = h5py.is_hdf5(path)
    except Exception:  # noqa: BLE001 - h5py raises several types for paths it cannot probe; all mean 'not HDF5'
        is_hdf5 = False
    if not is_hdf5:
        raise DataFormatError(file=path, field="<file>", expected="an NWB 2 file (HDF5)", found="not an HDF5 file")
    try:
        io = pynwb.NWBHDF5IO(os.fspath(path), mode="r", load_namespaces=True)
    except Exception as exc:
        raise DataFormatError(
            "the file may be truncated or damaged",
            file=path,
            field="<file>",
            expected="a readable NWB 2 (HDF5) file",
            found=f"{type(exc).__name__}: {exc}",
        ) from exc
    try:
        with warnings.catch_warnings():
            # pynwb warns about parts of the file this adapter never uses (a malformed stimulus series, fields
            # deprecated since the file was written); they are not the user's to fix here and must not turn
            # into errors under -W error.
            for category in (UserWarning, DeprecationWarning):
                warnings.filterwarnings("ignore", category=category, module=r"(pynwb|hdmf)(\.|$)")
            try:
                nwb = io.read()
            except Exception as exc:
                raise DataFormatError(
                    "the file may be truncated, damaged or not follow the NWB schema",
                    file=path,
                    field="<file>",
                    expected="an NWB 2 file pynwb can read",
                    found=f"{type(exc).__name__}: {exc}",
                ) from exc
            unit_ids, trains, unit_coords = _read_units(nwb, path)
            start_time = getattr(nwb, "session_start_time", None)
            attrs: dict[str, Any] = {
                "session_description": str(nwb.session_description or ""),
                "identifier": str(nwb.identifier or ""),
                "session_start_time": start_time.isoformat() if start_time is not None else "",
            }
            subject = getattr(nwb, "subject", None)
            subject_id = None
            if subject is not None:
                if getattr(subject, "species", None):
                    attrs["species"] = str(subject.species)
                if getattr(subject, "subject_id", None):
                    subject_id = str(subject.subject_id)
                    attrs["subject_id"] = subject_id
            ends = []
            all_tables = dict(nwb.intervals or {})
            if nwb.trials is not None:
                all_tables.setdefault("trials", nwb.trials)
            for tab in all_tables.values():
                try:
                    stops = np.asarray(tab["stop_time"].data[:], dtype=np.float64)
                except Exception:  # noqa: BLE001 - a malformed interval table only fails to extend the session end
                    continue
                stops = stops[np.isfinite(stops)]
                if stops.size:
                    ends.append(float(stops.max()))
            session = _Session(unit_ids, trains, unit_coords, attrs, subject_id, max(ends) if ends else None)
            if want_trials:
                name, tab, others = _pick_trial_table(nwb, table, path)
                if name is not None:
                    session.trial_table_name = name
                    session.trials = _interval_frame(tab, name, path)
                    session.other_tables = others
            return session
    finally:
        io.close()


def _stimulus_column(frame: pd.DataFrame, requested: str | None, table: str, file: Path) -> str | None:
    if requested is not None:
        if requested not in frame.columns or requested in ("id", "start_time", "stop_time"):
            raise DataFormatError(
                file=file,
                field=f"{table}/{requested}",
                expected="a scalar column of the trial table",
                found=f"columns {[c for c in frame.columns if c != 'id']}",
            )
        return requested
    by_norm = {_norm(c): c for c in frame.columns if c not in ("id", "start_time", "stop_time")}
    for candidate in STIMULUS_COLUMNS:
        if _norm(candidate) in by_norm:
            return by_norm[_norm(candidate)]
    return None


def _stimulus_labels(values: np.ndarray) -> list[str]:
    if values.dtype.kind == "f" and np.all(np.isfinite(values)) and np.all(values == np.round(values)):
        values = values.astype(np.int64)  # 3.0 and 3 name the same image
    return [str(v) for v in values]


def _trial_assembly(
    session: _Session,
    file: Path,
    *,
    bin_size: float | None,
    window: tuple[float, float] | None,
    stimulus_column: str | None,
    t_start: float | None,
    t_stop: float | None,
) -> xr.DataArray:
    table = session.trial_table_name or "trials"
    assert session.trials is not None
    frame = _selected_trials(session.trials, table, file, t_start, t_stop)
    column = _stimulus_column(frame, stimulus_column, table, file)
    if column is not None:
        stimulus_id = _stimulus_labels(np.asarray(frame[column].values))
    else:
        stimulus_id = _stimulus_labels(np.asarray(frame["id"].values))
    repetition = pd.Series(stimulus_id).groupby(stimulus_id, sort=False).cumcount().to_numpy()

    starts = frame["start_time"].to_numpy(dtype=np.float64)
    if window is not None:
        lo = starts + window[0]
        hi = starts + window[1]
    else:
        lo = starts
        hi = frame["stop_time"].to_numpy(dtype=np.float64)
    values, usable, in_some_trial = _count_trial_spikes(session, file, lo, hi, bin_size=bin_size, window=window)

    attrs: dict[str, Any] = {
        "source": str(file),
        **session.attrs,
        "trials_table": table,
        "stimulus_column": column or "",
        "stimulus_id_from": f"{table}/{column}" if column else f"{table}/id (no stimulus column found)",
        "spike_window": (
            f"[start_time{window[0]:+g} s, start_time{window[1]:+g} s) of each trial"
            if window is not None
            else "[start_time, stop_time) of each trial"
        ),
        "clipping": "spikes outside a trial's window are not counted in that trial",
        "n_spikes_outside_trials": np.asarray([int((~m).sum()) for m in in_some_trial], dtype=np.int64),
    }
    if session.other_tables:
        attrs["other_interval_tables"] = list(session.other_tables)
    if window is not None:
        attrs["window_s"] = [float(window[0]), float(window[1])]
    presentation_coords, neuroid_coords = _trial_coords(session, frame, starts)

    if bin_size is None:
        return assembly(
            values,
            stimulus_id=stimulus_id,
            neuroid_id=session.unit_ids,
            repetition=repetition,
            presentation_coords=presentation_coords,
            neuroid_coords=neuroid_coords,
            attrs=attrs,
            name="spike_count",
        )
    offset = window[0] if window is not None else 0.0
    edges_ms = (offset + bin_size * np.arange(values.shape[2] + 1)) * 1000.0
    data: np.ndarray = values
    if not usable.all():
        # Trials shorter than the longest one have no data in the later bins: NaN, never a false zero.
        data = values.astype(np.float64)
        data[np.broadcast_to(~usable[:, None, :], data.shape)] = np.nan
        attrs["padding"] = "bins after a trial's stop_time are NaN (trials differ in duration)"
    attrs["bin_size_s"] = float(bin_size)
    return assembly(
        data,
        stimulus_id=stimulus_id,
        neuroid_id=session.unit_ids,
        repetition=repetition,
        time_bin_start_ms=edges_ms[:-1],
        time_bin_end_ms=edges_ms[1:],
        presentation_coords=presentation_coords,
        neuroid_coords=neuroid_coords,
        attrs=attrs,
        name="spike_count",
    )


def _selected_trials(
    frame: pd.DataFrame, table: str, file: Path, t_start: float | None, t_stop: float | None
) -> pd.DataFrame:
    """The trials (checked: finite ``start_time <= stop_time``) that start in ``[t_start, t_stop)``."""
    bad = ~np.isfinite(frame["start_time"].values) | ~np.isfinite(frame["stop_time"].values)
    bad |= frame["stop_time"].values < frame["start_time"].values
    if bad.any():
        i = int(np.argmax(bad))
        raise DataFormatError(
            file=file,
            field=f"{table}/stop_time",
            expected="finite start_time <= stop_time",
            found=f"row {i}: start {frame['start_time'].iloc[i]!r}, stop {frame['stop_time'].iloc[i]!r}",
        )
    keep = np.ones(len(frame), dtype=bool)
    if t_start is not None:
        keep &= frame["start_time"].values >= t_start
    if t_stop is not None:
        keep &= frame["start_time"].values < t_stop
    frame = frame.loc[keep].reset_index(drop=True)
    if len(frame) == 0:
        raise DataFormatError(
            file=file,
            field=table,
            expected=f"trials starting in [{t_start}, {t_stop}) s",
            found="no trials",
        )
    return frame


def _count_trial_spikes(
    session: _Session,
    file: Path,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    bin_size: float | None,
    window: tuple[float, float] | None,
) -> tuple[np.ndarray, np.ndarray | None, list[np.ndarray]]:
    """Spike counts of every unit in every trial's ``[lo, hi)``: ``(trial, unit)`` without ``bin_size``, else
    ``(trial, unit, time_bin)`` with ``usable (trial, time_bin)`` (False after a shorter trial's end); and per
    unit which spikes fell in some trial."""
    n_trials, n_units = len(lo), len(session.unit_ids)
    names = [f"units/spike_times[id={u}]" for u in session.unit_ids]
    in_some_trial = [np.zeros(t.size, dtype=bool) for t in session.spike_times]
    usable = None
    if bin_size is None:
        values = np.zeros((n_trials, n_units), dtype=np.int64)
    else:
        span = (window[1] - window[0]) if window is not None else float(np.max(hi - lo))
        n_time = n_bins(0.0, span, bin_size) if span > 0 else 0
        values = np.zeros((n_trials, n_units, n_time), dtype=np.int64)
        usable = np.ones((n_trials, n_time), dtype=bool)
    for i in range(n_trials):
        # Only the spikes in [lo, hi) belong to the trial: the slice is exact, binning places them.
        bounds = [(np.searchsorted(t, lo[i], "left"), np.searchsorted(t, hi[i], "left")) for t in session.spike_times]
        pieces = [t[a:b] for t, (a, b) in zip(session.spike_times, bounds)]
        for mask, (a, b) in zip(in_some_trial, bounds):
            mask[a:b] = True
        duration = hi[i] - lo[i]
        if duration <= 0:
            if bin_size is not None:
                usable[i, :] = False
            continue
        if bin_size is None:
            counts, _, _ = bin_spike_times(
                pieces, duration, t_start=lo[i], t_stop=hi[i], outside="error", file=file, names=names
            )
            values[i] = counts.sum(axis=0)
        else:
            counts, _, _ = bin_spike_times(
                pieces, bin_size, t_start=lo[i], t_stop=hi[i], outside="error", file=file, names=names
            )
            k = min(counts.shape[0], n_time)
            values[i, :, :k] = counts[:k].T
            usable[i, k:] = False
    return values, usable, in_some_trial


def _trial_coords(session: _Session, frame: pd.DataFrame, starts: np.ndarray) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(presentation coords, neuroid coords)``: the trial table's columns; the units' labels and animal."""
    presentation_coords: dict[str, Any] = {
        "trial_id": frame["id"].to_numpy(),
        "start_time": starts,
        "stop_time": frame["stop_time"].to_numpy(dtype=np.float64),
    }
    for col in frame.columns:
        if col not in ("id", "start_time", "stop_time") and col not in _RESERVED:
            presentation_coords[col] = frame[col].to_numpy()
    neuroid_coords = dict(session.unit_coords)
    if session.subject_id is not None:
        neuroid_coords["animal"] = np.asarray([session.subject_id] * len(session.unit_ids), dtype=object)
    return presentation_coords, neuroid_coords


def _time_recording(
    session: _Session, file: Path, *, bin_size: float, t_start: float | None, t_stop: float | None
) -> xr.Dataset:
    trains = session.spike_times
    first = min((float(t[0]) for t in trains if t.size), default=0.0)
    last = max((float(t[-1]) for t in trains if t.size), default=0.0)
    explicit = t_start is not None or t_stop is not None
    if t_start is None:
        # Session time 0 anchors the grid; only spikes before it (rare, but legal in NWB) move it back.
        t_start = 0.0 if first >= 0 else bin_size * math.floor(first / bin_size)
    if t_stop is None:
        # The session lasts at least to its last spike (included: the grid ends one bin edge after it)
        # and to the end of its last trial/epoch.
        after_last = t_start + bin_size * (math.floor(round((last - t_start) / bin_size, 9)) + 1)
        t_stop = max(after_last, session.interval_end_s or -math.inf)
    if not t_stop > t_start:
        raise ConfigError(f"t_stop ({t_stop!r} s) must be after t_start ({t_start!r} s)")
    require_time_bins(n_bins(t_start, t_stop, bin_size, file=file), bin_size, last - first, file=file)
    names = [f"units/spike_times[id={u}]" for u in session.unit_ids]
    counts, edges, outside = bin_spike_times(
        trains,
        bin_size,
        t_start=t_start,
        t_stop=t_stop,
        outside="clip" if explicit else "error",
        file=file,
        names=names,
    )
    attrs = {
        **session.attrs,
        "t_start_s": float(t_start),
        "t_stop_s": float(t_stop),
        "n_spikes_outside": outside.astype(np.int64),
        "clipping": "spikes outside [t_start_s, t_stop_s) are dropped; n_spikes_outside counts them per cell",
    }
    return recording_from_counts(
        counts, edges, bin_size, session.unit_ids, source=str(file), cell_coords=session.unit_coords, attrs=attrs
    )


def open_nwb(
    path: str | os.PathLike[str],
    *,
    bin_size: float | None = None,
    by: Literal["auto", "time", "trial"] = "auto",
    window: Sequence[float] | None = None,
    stimulus_column: str | None = None,
    t_start: float | None = None,
    t_stop: float | None = None,
    table: str | None = None,
) -> xr.Dataset | xr.DataArray:
    """Read the units table of an NWB 2 file as a binned recording or a trial assembly.

    Parameters
    ----------
    path : an ``.nwb`` file (HDF5).
    bin_size : bin width in seconds. ``by="time"``: default 0.01 s. ``by="trial"``: ``None`` gives one count
        per trial; a number gives ``time_bin`` bins from the trial start (or ``window[0]``).
    by : ``"time"`` bins the whole session; ``"trial"`` counts per trial; ``"auto"`` (default) is
        ``"trial"`` when the file has a trial table (``nwb.trials`` or a presentation ``TimeIntervals``
        table in ``nwb.intervals``, ``epochs`` excluded) and ``"time"`` otherwise.
    window : ``(a, b)`` seconds relative to each trial's ``start_time``; spikes in ``[start+a, start+b)``
        are counted instead of ``[start_time, stop_time)``. Trial mode only.
    stimulus_column : trial-table column that names the stimulus; default: the first of
        :data:`STIMULUS_COLUMNS` present (case and underscores ignored), else the trial id.
    t_start, t_stop : seconds. ``by="time"``: the binning window (spikes outside are dropped and counted
        in ``attrs['n_spikes_outside']``); default from session time 0 (earlier if spikes precede it) to
        the later of the last spike and the last interval's ``stop_time``. ``by="trial"``: keep the trials
        whose ``start_time`` lies in ``[t_start, t_stop)``.
    table : name of the ``TimeIntervals`` table to use as trials (e.g. ``"recognition_table"``).

    Returns
    -------
    ``by="time"``: ``xr.Dataset`` with ``response(time, cell)`` int64 counts, ``cell`` = unit ids (str),
    per-unit coordinates (``region``, ``electrode``, ``electrode_group`` and scalar unit columns where
    present), attrs ``session_description``, ``identifier``, ``session_start_time`` (ISO 8601),
    ``t_start_s``, ``t_stop_s``, ``n_spikes_outside`` (per cell), ``bin_size_s``, ``source``.

    ``by="trial"``: ``xr.DataArray`` ``(presentation, neuroid[, time_bin])`` of counts (float with NaN
    only in bins after a shorter trial's end), coords ``stimulus_id``, ``repetition`` (0, 1, ... per
    stimulus in trial order), ``trial_id``, ``start_time``, ``stop_time`` and the scalar trial columns on
    presentation; ``neuroid_id`` and unit labels on neuroid; ``time_bin_start``/``time_bin_end`` in ms
    relative to ``start_time``. A spike before a trial's start or at/after its end is not in that trial;
    ``attrs['n_spikes_outside_trials']`` counts, per unit, the spikes that fall in no kept trial. Without
    ``window``, trials of unequal duration share the grid of the longest: a trial's last bin counts spikes
    up to its ``stop_time`` only, and its bins after ``stop_time`` are NaN (``attrs['padding']``).

    Raises
    ------
    DataFormatError
        not HDF5, truncated or unreadable (field ``<file>``), no units table (``units``), no spike times
        (``units/spike_times``), unsorted spike times, bad trial times, unknown ``table``/``stimulus_column``,
        ``by="trial"`` without a trial table (``trials``).
    """
    file = existing_file(path)
    if by not in ("auto", "time", "trial"):
        raise ConfigError(f"by must be 'auto', 'time' or 'trial', not {by!r}")
    if bin_size is not None and not (np.isfinite(bin_size) and bin_size > 0):
        raise ConfigError(f"bin_size must be a positive number of seconds, not {bin_size!r}")
    if window is not None:
        if len(window) != 2 or not all(np.isfinite(w) for w in window) or not window[1] > window[0]:
            raise ConfigError(f"window must be (a, b) seconds relative to trial start with a < b, not {window!r}")
        window = (float(window[0]), float(window[1]))
    session = _read_session(file, want_trials=by != "time", table=table)
    mode = by
    if by == "auto":
        mode = "trial" if session.trials is not None else "time"
    if mode == "trial":
        if session.trials is None:
            raise DataFormatError(
                file=file,
                field="trials",
                expected="a trial table (nwb.trials or a TimeIntervals in nwb.intervals)",
                found="none (use by='time')",
            )
        result: xr.Dataset | xr.DataArray = _trial_assembly(
            session,
            file,
            bin_size=bin_size,
            window=window,
            stimulus_column=stimulus_column,
            t_start=t_start,
            t_stop=t_stop,
        )
    else:
        if window is not None:
            raise ConfigError("window applies to trials; use t_start/t_stop with by='time'")
        result = _time_recording(session, file, bin_size=bin_size or DEFAULT_BIN_SIZE_S, t_start=t_start, t_stop=t_stop)
    result.attrs["source"] = str(path)
    return validate(result, file=path)

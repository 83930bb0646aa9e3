"""Any file python-neo reads (Spike2, Plexon, NeuroExplorer, Blackrock, ...) -> a spike-count recording.

:func:`open_neo` reads the file's spike trains with neo (lazily for readers that support it, so analog
signals are never loaded), identifies each unit across segments, converts spike times to seconds and bins
them with :func:`neuromodels.datasets.binning.bin_spike_times` (left-closed bins) into a recording
``xr.Dataset`` with ``response(time, cell)``. Analog signals are not read; event channels only when named in
``event_channels`` (Spike2 files often keep discriminated spikes as an event channel, as ``BURST.SMR`` of
neo's test files does).

Choices, and why:

* The recording spans the **segment's** ``t_start``..``t_stop`` (neo's extent of everything recorded in the
  segment), not just first to last spike, so silent stretches at either end stay in the data.
* neo spike trains hold spikes with ``t_start <= t <= t_stop``: a spike exactly at the segment's ``t_stop``
  is legal. When one exists and ``t_stop`` falls on a bin edge, the grid gets one more bin so that spike
  is counted (the binning module's bins are left-closed).
* Several segments (from one block or several) are concatenated along ``time`` with a ``segment``
  coordinate on ``time``; ``segment=k`` picks one. Segments keep their own times when they follow each
  other; a segment that starts before the previous one ended (e.g. trials that each restart at 0) is
  shifted to start where the previous grid ended, its shift is in ``attrs['segment_offsets_s']`` and its
  own times are in the ``segment_time`` coordinate.
* ``.nwb`` files go to :func:`neuromodels.datasets.formats.nwb.open_nwb`; pickle files (``.pkl``,
  ``.pickle``) are refused because unpickling a file runs code from it.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

from neuromodels.datasets._io import existing_file
from neuromodels.datasets._validate import validate
from neuromodels.datasets.binning import bin_spike_times, require_time_bins
from neuromodels.datasets.recording import recording_from_counts
from neuromodels.errors import ConfigError, DataFormatError

__all__ = ["sniff_neo", "open_neo", "DEFAULT_BIN_SIZE_S", "neo_extensions"]

DEFAULT_BIN_SIZE_S = 0.01
"""Bin width (s) when ``bin_size`` is not given."""

# .nwb has its own adapter; unpickling (neo's PickleIO) executes code stored in the file.
_REFUSED_IOS = frozenset({"NWBIO", "PickleIO"})
_REFUSED_EXTENSIONS = frozenset({"nwb", "pkl", "pickle"})
# neo's readers that claim .npy (OpenEphysBinaryIO, PhyIO) read a recording folder, never one .npy file: a .npy
# given to load() is a spike-time array (spike_trials) or arrays of the user's own, never neo's.
_NOT_FILES_OF_NEO = frozenset({"npy"})


def neo_extensions() -> frozenset[str]:
    """Lower-case file extensions (without the dot) that some installed neo reader claims."""
    from neo.io import io_by_extension

    return (
        frozenset(
            ext.lower()
            for ext, ios in io_by_extension.items()
            if ext and any(io.__name__ not in _REFUSED_IOS for io in ios)
        )
        - _REFUSED_EXTENSIONS
        - _NOT_FILES_OF_NEO
    )


def sniff_neo(path: str | os.PathLike[str]) -> bool:
    """``True`` when ``path`` is a file whose extension a neo reader claims; never raises.

    Only the extension is looked at (neo readers identify files by extension); whether the contents fit is
    decided by :func:`open_neo`, which raises a :class:`DataFormatError` naming the file when they do not.
    """
    try:
        p = Path(path)
        suffix = p.suffix[1:].lower()
        if not (suffix and p.is_file() and suffix in neo_extensions()):
            return False
        if suffix == "mat":
            # Most .mat files are not neo's: NeoMatlabIO reads only files holding a neo 'block' struct, and
            # anything else should get the plain "unsupported format" error rather than neo's failure.
            import scipy.io

            return any(name == "block" for name, _, _ in scipy.io.whosmat(str(p)))
        return True
    except Exception:  # noqa: BLE001 - a sniffer answers 'not mine' for anything it cannot read
        return False


@dataclass
class _Train:
    """One spike train of one segment, materialised: times in seconds, sorted as stored."""

    key: tuple[str, ...]
    name: str
    neo_id: str
    times: np.ndarray


@dataclass
class _SegmentData:
    t_start: float
    t_stop: float
    trains: list[_Train]
    event_names: list[str]


def _seconds(value: Any) -> float:
    """A neo time (quantities ``Quantity``) as a float number of seconds."""
    return float(value.rescale("s").magnitude) if hasattr(value, "rescale") else float(value)


def _candidate_ios(path: Path) -> list[type]:
    from neo.io import list_candidate_ios

    try:
        ios = list_candidate_ios(path)
    except Exception as exc:
        raise DataFormatError(
            file=path, field="<extension>", expected="a file type python-neo reads", found=str(exc)
        ) from exc
    refused_extension = path.suffix[1:].lower() in _REFUSED_EXTENSIONS
    ios = [] if refused_extension else [io for io in ios if io.__name__ not in _REFUSED_IOS]
    if not ios:
        raise DataFormatError(
            "pickle files are not read (unpickling runs code); .nwb files are read by open_nwb",
            file=path,
            field="<extension>",
            expected="a file type python-neo reads",
            found=repr(path.suffix),
        )
    return ios


def _read_blocks(io: Any) -> list[Any]:
    """All blocks of ``io``: lazy proxies where the reader supports them (no analog data is loaded)."""
    lazy = bool(getattr(io, "support_lazy", False))
    try:
        return list(io.read(lazy=lazy))
    except Exception as first_error:
        if not hasattr(io, "read_block"):
            raise
        # Some raw-io readers refuse their default signal grouping for a given file; spike trains do not
        # depend on it, so retry with every channel on its own.
        try:
            count = int(io.block_count()) if hasattr(io, "block_count") else 1
            return [io.read_block(block_index=b, lazy=lazy, signal_group_mode="split-all") for b in range(count)]
        except Exception:  # noqa: BLE001 - the retry's own failure is not the news; the first error is re-raised
            raise first_error from None


def _train_key(st: Any, position: int) -> tuple[str, ...]:
    ann = getattr(st, "annotations", {}) or {}
    parts = (str(st.name or ""), str(ann.get("id", "")), str(ann.get("channel_id", "")), str(ann.get("unit_id", "")))
    return parts if any(parts) else ("", "", "", f"#{position}")


def _materialise(blocks: Sequence[Any], event_channels: Sequence[str] = ()) -> list[_SegmentData]:
    """Spike trains of every segment, plus the event channels named in ``event_channels`` as spike trains."""
    segments: list[_SegmentData] = []
    for block in blocks:
        for seg in block.segments:
            trains: list[_Train] = []
            event_names = [str(ev.name or "") for ev in seg.events]
            for ev in seg.events:
                if str(ev.name or "") in event_channels:
                    loaded = ev.load() if hasattr(ev, "load") else ev
                    times = np.sort(np.array(loaded.times.rescale("s").magnitude, dtype=np.float64).ravel())
                    trains.append(_Train(("event", str(ev.name), "", "", "0"), str(ev.name), "", times))
            seen: dict[tuple[str, ...], int] = {}
            for position, st in enumerate(seg.spiketrains):
                key = _train_key(st, position)
                # Two trains with identical labels in one segment are distinct units: number them.
                seen[key] = seen.get(key, -1) + 1
                key = key + (str(seen[key]),)
                loaded = st.load(load_waveforms=False) if hasattr(st, "load") else st
                times = np.array(loaded.times.rescale("s").magnitude, dtype=np.float64, copy=True).ravel()
                ann = getattr(st, "annotations", {}) or {}
                trains.append(_Train(key, str(st.name or ""), str(ann.get("id", "")), times))
            t_start = seg.t_start
            t_stop = seg.t_stop
            if t_start is None or t_stop is None:  # a segment with no children of known extent
                if not seg.spiketrains:
                    continue
                t_start = min(st.t_start for st in seg.spiketrains)
                t_stop = max(st.t_stop for st in seg.spiketrains)
            segments.append(_SegmentData(_seconds(t_start), _seconds(t_stop), trains, event_names))
    return segments


def _check_plexon_complete(path: Path, segments: list[_SegmentData]) -> None:
    """A truncated .plx reads without error in neo, only shorter: compare with the file's own header.

    The global header declares the timestamp count per channel and unit (``TSCounts``) and the last
    timestamp of the recording; fewer spikes or an earlier end than declared means data are missing.
    Headers that leave these fields empty (zero) are not held against the file.
    """
    from neo.rawio.plexonrawio import GlobalHeader, read_as_dict

    with open(path, "rb") as fid:
        header = read_as_dict(fid, GlobalHeader)
    declared = int(np.sum(np.asarray(header["TSCounts"], dtype=np.int64)))
    loaded = sum(t.times.size for seg in segments for t in seg.trains)
    if declared > loaded:
        raise DataFormatError(
            "the file looks truncated",
            file=path,
            field="spiketrains",
            expected=f"{declared} spikes (declared in the Plexon header)",
            found=f"{loaded} spikes in the file",
        )
    rate = float(header["ADFrequency"])
    if rate > 0 and segments:
        declared_end = float(header["LastTimestamp"]) / rate
        end = max(seg.t_stop for seg in segments)
        if declared_end - end > 1.0 / rate:
            raise DataFormatError(
                "the file looks truncated",
                file=path,
                field="t_stop",
                expected=f"data until {declared_end:.6g} s (declared in the Plexon header)",
                found=f"data until {end:.6g} s",
            )


_COMPLETENESS_CHECKS = {"PlexonIO": _check_plexon_complete}


def _read_file(path: Path, event_channels: Sequence[str] = ()) -> tuple[str, list[_SegmentData]]:
    """Name of the neo IO class that read ``path`` and its segments' spike trains, materialised."""
    errors: list[str] = []
    unavailable: list[str] = []
    for io_class in _candidate_ios(path):
        io = None
        caught: list[warnings.WarningMessage] = []
        try:
            # Some raw-io readers (Plexon) draw tqdm bars on stderr while parsing, with no way to turn them
            # off through the IO class: keep them out of `neuromodels data inspect`, but pass warnings on.
            with contextlib.redirect_stderr(StringIO()), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                io = io_class(os.fspath(path))
                blocks = _read_blocks(io)
                segments = _materialise(blocks, event_channels)
            for w in caught:
                if not issubclass(w.category, DeprecationWarning):
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            check = _COMPLETENESS_CHECKS.get(io_class.__name__)
            if check is not None:
                check(path, segments)
            return io_class.__name__, segments
        except DataFormatError:
            raise
        except ImportError as exc:  # a reader whose optional back end is missing (CedIO needs sonpy)
            unavailable.append(f"{io_class.__name__} ({exc})"[:200])
        except Exception as exc:  # noqa: BLE001 - neo readers raise any type on corrupt or foreign content; collected into the DataFormatError below
            errors.append(f"{io_class.__name__}: {type(exc).__name__}: {exc}"[:300])
        finally:
            close = getattr(io, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # noqa: BLE001 - closing a reader that failed to open must not hide its error
                    pass
    found = "; ".join(errors) or "no reader could be used"
    if unavailable:
        found += "; not installed: " + ", ".join(unavailable)
    raise DataFormatError(
        "the file may be truncated, damaged or of another format",
        file=path,
        field="<file>",
        expected="a file python-neo can read",
        found=found,
    )


def _cell_ids(units: list[tuple[str, ...]], first_train: dict[tuple[str, ...], _Train]) -> list[str]:
    """Unique string ids: the unit names; with name and neo id where names repeat; numbered if still not."""
    names = [first_train[u].name or first_train[u].neo_id or f"unit{i}" for i, u in enumerate(units)]
    if len(set(names)) == len(names):
        return names
    labelled = [
        "_".join(p for p in (first_train[u].name, first_train[u].neo_id) if p) or f"unit{i}"
        for i, u in enumerate(units)
    ]
    if len(set(labelled)) == len(labelled):
        return labelled
    return [f"{label}#{i}" for i, label in enumerate(labelled)]


def open_neo(
    path: str | os.PathLike[str],
    *,
    bin_size: float | None = None,
    by: Literal["time"] = "time",
    segment: int | None = None,
    t_start: float | None = None,
    t_stop: float | None = None,
    event_channels: Sequence[str] | None = None,
) -> xr.Dataset:
    """Bin the spike trains of a file python-neo reads into a recording ``response(time, cell)``.

    Parameters
    ----------
    path : a file with an extension some neo reader claims (``.smr``, ``.plx``, ``.nex``, ``.ns5``, ...).
    bin_size : bin width in seconds (default 0.01 s).
    by : only ``"time"`` (continuous binning); neo files carry no standard trial table.
    segment : index of one segment (counting through all blocks); default: all segments concatenated.
    t_start, t_stop : seconds; restrict every segment to ``[t_start, t_stop)`` (spikes outside are dropped
        and counted in ``attrs['n_spikes_outside']``). Default: each segment's own ``t_start``..``t_stop``.
    event_channels : names of event channels to read as spike trains, one cell each (Spike2 files often store
        the output of a window discriminator as an event channel, e.g. ``["Spikes"]``); the error for a file
        without spike trains lists the event channels it has.

    Returns
    -------
    ``xr.Dataset`` with ``response(time, cell)`` int64 spike counts; ``time`` = left bin edges (s);
    ``cell`` = unit names (made unique with neo's ``id`` annotation where names repeat, e.g.
    ``Spikes_ch0#3``); coordinates ``segment`` (and ``segment_time`` when segments were shifted) on time,
    ``neo_name``, ``neo_id`` on cell; attrs ``t_start_s``, ``t_stop_s``, ``n_segments``,
    ``n_segments_in_file``, ``neo_io``, ``segment_offsets_s``, ``n_spikes_outside`` (per cell), ``source``.
    Units are matched across segments by name and the ``id``/``channel_id``/``unit_id`` annotations; a unit
    absent from a segment counts zero there and is listed in ``attrs['cells_absent_from_segments']``.

    Raises
    ------
    DataFormatError
        unreadable or corrupt file (field ``<file>``), no spike trains (field ``spiketrains``), unsorted
        or non-finite spike times (field = the unit's id), ``segment`` out of range (field ``segment``).
    """
    file = existing_file(path)
    bin_size = _checked_options(by, bin_size, event_channels)
    io_name, segments = _read_file(file, tuple(event_channels or ()))
    n_in_file = len(segments)
    _require_spike_trains(file, segments, event_channels)
    indices = _chosen_segments(file, n_in_file, segment)
    units, first_train = _units(file, segments, indices)
    cell_ids = _cell_ids(units, first_train)
    binned = _bin_segments(
        file,
        segments,
        indices,
        units,
        cell_ids,
        bin_size=bin_size,
        t_start=t_start,
        t_stop=t_stop,
        one_segment=segment is not None or len(indices) == 1,
    )

    counts = np.concatenate(binned.counts, axis=0)
    edges = np.concatenate(binned.edges)
    spans, used, offsets = binned.spans, binned.used, binned.offsets
    require_time_bins(len(edges), bin_size, spans[-1][1] - spans[0][0], file=path)
    attrs: dict[str, Any] = {
        "neo_io": io_name,
        "t_start_s": float(spans[0][0]),
        "t_stop_s": float(spans[-1][1]),
        "n_segments": len(used),
        "n_segments_in_file": n_in_file,
        "segments": np.asarray(used, dtype=np.int64),
        "segment_t_start_s": np.asarray([segments[k].t_start for k in used], dtype=np.float64),
        "segment_t_stop_s": np.asarray([segments[k].t_stop for k in used], dtype=np.float64),
        "segment_offsets_s": np.asarray(offsets, dtype=np.float64),
        "n_spikes_outside": binned.outside,
        "clipping": "spikes outside [t_start, t_stop) of their segment are dropped; n_spikes_outside counts them",
    }
    if binned.absent:
        attrs["cells_absent_from_segments"] = binned.absent
    ds = recording_from_counts(
        counts,
        edges,
        bin_size,
        cell_ids,
        source=str(path),
        attrs=attrs,
        cell_coords={
            "neo_name": np.asarray([first_train[u].name for u in units], dtype=object),
            "neo_id": np.asarray([first_train[u].neo_id for u in units], dtype=object),
        },
    )
    ds = ds.assign_coords(segment=("time", np.concatenate(binned.segment)))
    if any(offsets):
        ds = ds.assign_coords(segment_time=("time", np.concatenate(binned.own_time), {"units": "s"}))
    return validate(ds, file=path)


def _checked_options(by: str, bin_size: float | None, event_channels: Sequence[str] | None) -> float:
    """Check :func:`open_neo`'s options; the bin size (default ``DEFAULT_BIN_SIZE_S``)."""
    if by != "time":
        raise ConfigError(f"open_neo bins continuous time only (by='time'), not by={by!r}")
    bin_size = DEFAULT_BIN_SIZE_S if bin_size is None else bin_size
    if not (np.isfinite(bin_size) and bin_size > 0):
        raise ConfigError(f"bin_size must be a positive number of seconds, not {bin_size!r}")
    if event_channels is not None and (
        isinstance(event_channels, str) or not all(isinstance(name, str) for name in event_channels)
    ):
        raise ConfigError(f"event_channels must be a list of channel names, e.g. ['Spikes'], not {event_channels!r}")
    return bin_size


def _require_spike_trains(file: Path, segments: list[_SegmentData], event_channels: Sequence[str] | None) -> None:
    """Every requested event channel exists, and the file holds at least one spike train (the error lists the
    event channels that could be read as spike trains)."""
    n_trains = sum(len(s.trains) for s in segments)
    events = sorted({name for s in segments for name in s.event_names})
    missing = sorted(set(event_channels or ()) - set(events))
    if missing:
        raise DataFormatError(
            file=file, field="event_channels", expected=f"event channels among {events}", found=f"{missing}"
        )
    if n_trains == 0:
        hint = (
            (
                f"it has event channels {events}: read them as spike trains with event_channels={events!r} "
                f'(CLI: -o "event_channels={events!r}")'
            )
            if events
            else "it holds only signals"
        )
        raise DataFormatError(
            f"this reader found no sorted units in the file; {hint}",
            file=file,
            field="spiketrains",
            expected="at least one spike train",
            found=f"{len(segments)} segment(s) without spike trains",
        )


def _chosen_segments(file: Path, n_in_file: int, segment: int | None) -> list[int]:
    """Indices of the segments to bin: all, or the one ``segment`` (negative counts from the end)."""
    indices = list(range(n_in_file))
    if segment is not None:
        if not (isinstance(segment, (int, np.integer)) and -n_in_file <= segment < n_in_file):
            raise DataFormatError(
                file=file, field="segment", expected=f"an index in [0, {n_in_file})", found=repr(segment)
            )
        indices = [int(segment) % n_in_file]
    return indices


def _units(
    file: Path, segments: list[_SegmentData], indices: list[int]
) -> tuple[list[tuple[str, ...]], dict[tuple[str, ...], _Train]]:
    """The units of the chosen segments in order of first appearance, and the first train of each."""
    units: list[tuple[str, ...]] = []
    first_train: dict[tuple[str, ...], _Train] = {}
    for k in indices:
        for train in segments[k].trains:
            if train.key not in first_train:
                first_train[train.key] = train
                units.append(train.key)
    if not units:
        raise DataFormatError(
            file=file,
            field="spiketrains",
            expected="at least one spike train in the chosen segment",
            found=f"none in segment {indices[0]}",
        )
    return units, first_train


@dataclass
class _Binned:
    """The binned segments, one entry per segment used: counts, shifted and own left bin edges, segment index
    per bin, offset, span; with the spikes dropped outside ``[t_start, t_stop)`` per cell and absent cells."""

    counts: list[np.ndarray]
    edges: list[np.ndarray]
    own_time: list[np.ndarray]
    segment: list[np.ndarray]
    offsets: list[float]
    used: list[int]
    spans: list[tuple[float, float]]
    outside: np.ndarray
    absent: list[str]


def _bin_segments(
    file: Path,
    segments: list[_SegmentData],
    indices: list[int],
    units: list[tuple[str, ...]],
    cell_ids: list[str],
    *,
    bin_size: float,
    t_start: float | None,
    t_stop: float | None,
    one_segment: bool,
) -> _Binned:
    """Bin every chosen segment within ``[t_start, t_stop)``; a segment that starts before the previous one
    ended is shifted to follow it (its offset), so that time increases across segments."""
    column = {u: i for i, u in enumerate(units)}
    out = _Binned([], [], [], [], [], [], [], np.zeros(len(units), dtype=np.int64), [])
    previous_end = -math.inf
    for k in indices:
        seg = segments[k]
        lo = seg.t_start if t_start is None else max(seg.t_start, float(t_start))
        hi = seg.t_stop if t_stop is None else min(seg.t_stop, float(t_stop))
        if not hi > lo:
            if one_segment:
                raise ConfigError(
                    f"segment {k} spans [{seg.t_start:g}, {seg.t_stop:g}] s: nothing left in [t_start, t_stop)"
                )
            continue
        trains = [np.empty(0)] * len(units)
        present = set()
        for train in seg.trains:
            trains[column[train.key]] = train.times
            present.add(train.key)
        out.absent += [f"{cell_ids[column[u]]}@{k}" for u in units if u not in present]
        grid_stop = hi
        if t_stop is None and any(t.size and t[-1] >= hi for t in trains):
            # neo trains include t_stop itself: end the grid one bin edge after it so such a spike is counted.
            grid_stop = lo + bin_size * (math.floor(round((hi - lo) / bin_size, 9)) + 1)
        counts, edges, dropped = bin_spike_times(
            trains,
            bin_size,
            t_start=lo,
            t_stop=grid_stop,
            outside="clip",
            file=file,
            names=[f"spiketrains[{c}]" for c in cell_ids],
        )
        out.outside += dropped
        offset = 0.0
        if edges.size and edges[0] <= previous_end - bin_size * 1e-6:
            offset = previous_end - edges[0]
        out.offsets.append(offset)
        previous_end = float(edges[-1] + offset + bin_size) if edges.size else previous_end
        out.counts.append(counts)
        out.edges.append(edges + offset)
        out.own_time.append(edges)
        out.segment.append(np.full(edges.size, k, dtype=np.int64))
        out.used.append(k)
        out.spans.append((lo + offset, hi + offset))
    if not out.counts:
        raise ConfigError(f"no segment overlaps [t_start, t_stop) = [{t_start}, {t_stop}) s")
    return out

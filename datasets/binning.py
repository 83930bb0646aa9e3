"""Binning of spike times: the one place where spike times become counts.

Conventions (shared by every adapter: NWB, neo, MATLAB trials, spike-time matrices):

* spike times and ``bin_size`` are in **seconds**;
* bins are **left-closed**: bin ``k`` counts spikes with ``t_start + k*bin_size <= t < t_start + (k+1)*bin_size``;
* the number of bins is ``ceil((t_stop - t_start) / bin_size)``; the last bin may extend past ``t_stop`` but
  counts only spikes before ``t_stop``;
* spike times must be sorted (non-decreasing) and finite, else :class:`DataFormatError`;
* spikes outside ``[t_start, t_stop)`` are an error with ``outside="error"`` (the default when the window is
  derived from the data, where it cannot happen except for negative times) and are dropped with
  ``outside="clip"``; the number dropped per train is returned in ``attrs['n_spikes_outside']``, never silent.

Floating-point edges: a spike exactly on an edge (``0.3`` s with 0.1 s bins, where ``0.3/0.1`` is
``2.9999999999999996``) belongs to the bin that starts there. Positions are snapped to ``1e-9`` of a bin
before flooring, which only matters for spikes within a nanobin of an edge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from neuromodels._limits import check_allocation
from neuromodels.errors import ConfigError, DataFormatError

__all__ = ["bin_spike_times", "bin_spike_train", "n_bins", "bin_edges", "require_time_bins"]

_SNAP = 1e-9


def n_bins(t_start: float, t_stop: float, bin_size: float, *, file: Any = None) -> int:
    """Number of left-closed bins of width ``bin_size`` needed to cover ``[t_start, t_stop)``; a count whose
    array would not fit in memory is a ConfigError saying how much it needs (naming ``file`` if given)."""
    if not (np.isfinite(bin_size) and bin_size > 0):
        raise DataFormatError(field="bin_size", expected="a positive number of seconds", found=repr(bin_size))
    if not (np.isfinite(t_start) and np.isfinite(t_stop)) or t_stop < t_start:
        raise DataFormatError(field="t_stop", expected=f"a finite t_stop >= t_start={t_start!r}", found=repr(t_stop))
    count = math.ceil(round((t_stop - t_start) / bin_size, 9))
    # checked before anything is allocated: at least one int64 count per bin
    where = "" if file is None else f"{file}: "
    check_allocation(8.0 * count, f"{where}bin_size={bin_size!r} s over {t_stop - t_start:g} s ({count:,} bins)")
    return int(count)


def require_time_bins(n: int, bin_size: float, span: float, *, file: Any = None) -> None:
    """A continuous recording binned into ``n`` bins must have at least two: a ``bin_size`` as long as the whole
    recording (``span`` seconds) puts every spike into one bin, which no analysis can use."""
    if n < 2 and span > 0:
        raise ConfigError(
            f"{'' if file is None else f'{file}: '}bin_size={bin_size!r} s gives {n} time bin for a "
            f"recording of {span:g} s: every spike falls into one bin; choose a bin size well below the "
            "recording's length"
        )


def bin_edges(t_start: float, t_stop: float, bin_size: float) -> np.ndarray:
    """Left edges of the bins (seconds), ``t_start + k * bin_size``."""
    return t_start + bin_size * np.arange(n_bins(t_start, t_stop, bin_size))


def _as_times(train: Any, *, file: Any, field: str) -> np.ndarray:
    times = np.asarray(train, dtype=np.float64).ravel()
    if times.size and not np.all(np.isfinite(times)):
        raise DataFormatError(file=file, field=field, expected="finite spike times (s)", found="NaN or infinite times")
    if times.size > 1:
        d = np.diff(times)
        if np.any(d < 0):
            i = int(np.argmax(d < 0))
            raise DataFormatError(
                "sort the spike times or fix the file",
                file=file,
                field=field,
                expected="spike times sorted in increasing order",
                found=f"t[{i + 1}]={times[i + 1]!r} < t[{i}]={times[i]!r}",
            )
    return times


def bin_spike_train(
    times: Any,
    bin_size: float,
    t_start: float,
    t_stop: float,
    *,
    outside: Literal["error", "clip"] = "error",
    file: Any = None,
    field: str = "spike_times",
) -> tuple[np.ndarray, int]:
    """Counts of one spike train in left-closed bins; returns ``(counts int64, n_dropped)``."""
    t = _as_times(times, file=file, field=field)
    nb = n_bins(t_start, t_stop, bin_size)
    inside = (t >= t_start) & (t < t_stop)
    n_out = int(t.size - inside.sum())
    if n_out and outside == "error":
        bad = t[~inside][0]
        raise DataFormatError(
            "pass a wider window or outside='clip'",
            file=file,
            field=field,
            expected=f"spike times in [{t_start!r}, {t_stop!r}) s",
            found=f"{n_out} spike(s) outside, e.g. {bad!r}",
        )
    pos = (t[inside] - t_start) / bin_size
    idx = np.floor(pos + _SNAP * np.maximum(1.0, np.abs(pos))).astype(np.int64)
    np.clip(idx, 0, nb - 1, out=idx)  # snapping may push a spike just below t_stop one bin too far
    return np.bincount(idx, minlength=nb).astype(np.int64), n_out


def bin_spike_times(
    trains: Sequence[Any],
    bin_size: float,
    *,
    t_start: float | None = None,
    t_stop: float | None = None,
    outside: Literal["error", "clip"] | None = None,
    file: Any = None,
    names: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bin several spike trains on a common grid.

    Parameters
    ----------
    trains : sequence of 1-d arrays of spike times (s), each sorted.
    bin_size : bin width (s).
    t_start, t_stop : window (s). Defaults: ``0`` and the last spike (so the last spike lands in the last bin).
    outside : ``"error"`` or ``"clip"`` for spikes outside the window; default ``"error"`` when the window is
        derived from the data and ``"clip"`` when given explicitly.
    file, names : used in error messages (file and per-train field names).

    Returns
    -------
    counts : ``(n_bins, n_trains)`` int64
    edges : ``(n_bins,)`` left edges of the bins (s)
    n_outside : ``(n_trains,)`` spikes dropped per train (all zero with ``outside="error"``)
    """
    if outside is None:
        outside = "clip" if (t_start is not None or t_stop is not None) else "error"
    if outside not in ("error", "clip"):
        raise DataFormatError(field="outside", expected="'error' or 'clip'", found=repr(outside))

    def field_of(i: int) -> str:
        return names[i] if names is not None else f"spike_times[{i}]"

    # All trains are checked and binned as one concatenated array (one bincount over (bin, train) pairs):
    # datasets such as Onken et al. hold ~350k short trains, where a per-train loop costs ~50 us each.
    raw = [np.asarray(tr, dtype=np.float64).ravel() for tr in trains]
    n_trains = len(raw)
    lengths = np.fromiter((t.size for t in raw), dtype=np.int64, count=n_trains)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    times = np.concatenate(raw) if n_trains else np.zeros(0)
    owner = np.repeat(np.arange(n_trains), lengths)
    if not np.all(np.isfinite(times)):
        i = int(owner[np.argmin(np.isfinite(times))])
        _as_times(raw[i], file=file, field=field_of(i))  # raises with the train's own message
    if times.size > 1:
        decreasing = np.diff(times) < 0
        decreasing &= owner[1:] == owner[:-1]  # a new train may start earlier than the last one ended
        if decreasing.any():
            i = int(owner[1:][np.argmax(decreasing)])
            _as_times(raw[i], file=file, field=field_of(i))
    if t_start is None:
        t_start = 0.0
    if t_stop is None:
        ends = offsets[1:][lengths > 0] - 1
        last = float(times[ends].max()) if ends.size else t_start
        t_stop = (
            t_start + bin_size * (math.floor(round((last - t_start) / bin_size, 9)) + 1) if last >= t_start else t_start
        )
    nb = n_bins(t_start, t_stop, bin_size, file=file)
    where = "" if file is None else f"{file}: "
    check_allocation(
        8.0 * nb * max(n_trains, 1) * 2, f"{where}bin_size={bin_size!r} s ({nb:,} bins x {n_trains} trains)"
    )
    inside = (times >= t_start) & (times < t_stop)
    if outside == "error" and not inside.all():
        i = int(owner[np.argmin(inside)])
        bin_spike_train(raw[i], bin_size, t_start, t_stop, outside="error", file=file, field=field_of(i))
    dropped = np.bincount(owner[~inside], minlength=n_trains).astype(np.int64)
    pos = (times[inside] - t_start) / bin_size
    idx = np.floor(pos + _SNAP * np.maximum(1.0, np.abs(pos))).astype(np.int64)
    np.clip(idx, 0, nb - 1, out=idx)  # snapping may push a spike just below t_stop one bin too far
    flat = np.bincount(idx * n_trains + owner[inside], minlength=nb * n_trains)
    counts = flat.reshape(nb, n_trains).astype(np.int64, copy=False)
    return counts, bin_edges(t_start, t_stop, bin_size), dropped

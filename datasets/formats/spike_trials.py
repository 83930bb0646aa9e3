"""Spike times per stimulus, cell and trial (MATLAB cell arrays) and per-cell spike-time arrays (NumPy).

Every spike time becomes a count through :func:`neuromodels.datasets.binning.bin_spike_times` (seconds,
left-closed bins).

MATLAB cell arrays -> assembly
------------------------------
:func:`open_spike_trials` reads a cell array (MATLAB v5 files with :func:`scipy.io.loadmat`, v7.3/HDF5 files with
h5py) and returns a ``presentation x neuroid`` assembly of spike counts in a response window, or
``presentation x neuroid x time_bin`` with ``bin_size``. One presentation is one trial of one stimulus:
``stimulus_id`` = the stimulus' index (0-based, as a string), ``repetition`` = the trial index (0-based),
``neuroid_id`` = the cell's index (0-based, as a string). Layouts (``layout=``; detected when not given):

* ``"stimulus/cell-trial"``: an outer cell array of stimuli (any shape), each a ``(cells, trials)`` cell array of
  spike-time vectors. Stimuli are numbered in MATLAB's linear (column-major) order, so ``stimulus_id`` ``k``
  is ``Spikes{k+1}`` in MATLAB; for a 2-d grid of stimuli (both axes longer than 1) the presentation
  coordinates ``stimulus_row`` / ``stimulus_column`` give the position in the grid.
* ``"stimulus/trial-cell"``: the same with ``(trials, cells)`` inner arrays.
* ``"cell-trial"`` / ``"trial-cell"``: one stimulus (a movie, say): a ``(cells, trials)`` / ``(trials, cells)``
  cell array; a presentation is one repeat of the stimulus and ``stimulus_id`` is ``"0"``.

When ``layout`` is not given, nesting decides between the two families, and the scalars ``n_neurons`` /
``n_trials`` in the file (when present) decide the inner order; ``(cells, trials)`` is assumed otherwise.
Empty trials may be stored as ``0x0`` or ``0x1`` arrays; stimuli may have different numbers of trials. Errors
name one trial as ``Spikes[s][c][t]`` (0-based stimulus, cell and trial indices, whatever the stored order).

Window and times: ``time_unit`` is the unit of the stored times (``"s"``, ``"ms"``, ``"us"``); ``time_offset``
(in that unit) is subtracted before conversion to seconds. ``window`` ``(start, stop)`` in seconds relative to
stimulus onset selects the counted spikes (``[start, stop)``; spikes outside are dropped and counted in
``attrs['n_spikes_outside']``). Without ``window``, the response window recorded for known datasets is used, else
``[min(0, first spike), last spike]`` over the whole file (with ``bin_size``: up to the end of the last spike's bin).

Onken et al. 2016 (Gollisch lab, salamander retina, Dryad doi:10.5061/dryad.4ch10) is such a known dataset,
recognised by its variables (``Spikes``, ``n_neurons``, ``n_trials`` and optionally ``n_stimuli``, ``n_images``,
``n_shifts``) and integer spike times in milliseconds:

* ``NaturalImages1/2.mat``, ``Gratings.mat``: ``Spikes`` is ``(60, 1)``, each a ``(cells, 30 trials)`` cell array;
  ``Shifts1/2.mat``: ``Spikes`` is a ``(9, 9)`` grid (``n_images`` = ``n_shifts`` = 9; the files do not say
  which axis is the image and which the shift), each ``(cells, 19 trials)``. Response window 300 ms.
* ``Movie1Exp1.mat`` etc.: ``Spikes`` is ``(cells, 30 trials)`` of spike-time vectors; one presentation is one
  repeat of the 18 s movie. Response window 18 s; bin it with ``bin_size``.

Their times are whole milliseconds from 1 to 300 (18000 for movies): label 300 occurs as often as its
neighbours and 0 never does, so label ``k`` is the k-th millisecond of the window, ``[k-1, k)`` ms. The default
``time_offset`` for these files is therefore 1 ms: each spike sits at the start of its millisecond, the window
``[0, 300)`` ms holds every spike, and bins of whole milliseconds count each spike in the bin that holds its
millisecond.

NumPy spike-time arrays -> recording
------------------------------------
:func:`open_spike_time_matrix` reads a ``.npy`` object array with one array of spike times (seconds) per cell, or
a ``.npz`` with one array per cell (or an object array ``spike_times``/``spikes``), and bins it into a recording
``response(time, cell)``. Object arrays in ``.npy`` files are pickles: they are unpickled with only numpy's array
classes allowed, so a crafted file cannot run code. A sibling ``cell_classification.txt`` (lines
``<cluster id><TAB><cell type>``, ``#`` comments, one line per cell in the order of the array; the layout of the
Krüppel et al. 2024 marmoset data) names the cells by cluster id and gives a ``cell_type`` coordinate.
"""

from __future__ import annotations

import math
import os
import pickle
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

from neuromodels.datasets._io import existing_file
from neuromodels.datasets._validate import validate
from neuromodels.datasets.binning import bin_spike_times
from neuromodels.datasets.recording import assembly, recording_from_counts
from neuromodels.errors import ConfigError, DataFormatError

__all__ = [
    "sniff_spike_trials",
    "open_spike_trials",
    "spike_trials_to_assembly",
    "sniff_spike_time_matrix",
    "open_spike_time_matrix",
    "LAYOUTS",
    "TIME_UNITS",
    "DEFAULT_BIN_SIZE_S",
]

TIME_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6}
"""Stored time units and their number per second."""

LAYOUTS = ("stimulus/cell-trial", "stimulus/trial-cell", "cell-trial", "trial-cell")
"""Cell-array layouts :func:`open_spike_trials` reads (see the module docstring)."""

DEFAULT_BIN_SIZE_S = 0.01
"""Bin width (s) of :func:`open_spike_time_matrix` when ``bin_size`` is not given."""

_ONKEN_REQUIRED = {"Spikes", "n_neurons", "n_trials"}
_ONKEN_ALLOWED = _ONKEN_REQUIRED | {"n_stimuli", "n_images", "n_shifts"}
_ONKEN_WINDOW_MS = {True: 300, False: 18000}  # nested (flashed stimuli) / single stimulus (movies)
_META_SCALARS = ("n_neurons", "n_trials", "n_stimuli", "n_images", "n_shifts")
_CLASSIFICATION_FILE = "cell_classification.txt"
_MATLAB_NUMERIC = {"double", "single", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}


# --------------------------------------------------------------------------------------------------------------
# MATLAB reading


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(1024)
    # MATLAB v7.3 files are HDF5 with a 512-byte user block in front of the signature.
    return head[:8] == b"\x89HDF\r\n\x1a\n" or head[512:520] == b"\x89HDF\r\n\x1a\n"


def _h5_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return _h5_text(value.reshape(-1)[0]) if value.size else ""
    return str(value)


def _h5_matlab_value(f: Any, obj: Any, depth: int = 0) -> np.ndarray:
    """A MATLAB v7.3 dataset as loadmat would give it (MATLAB shape; cells as object arrays)."""
    import h5py

    if depth > 8:
        raise DataFormatError(
            file=f.filename, field=obj.name, expected="cell arrays nested at most 8 deep", found="deeper"
        )
    matlab_class = _h5_text(obj.attrs.get("MATLAB_class", b""))
    if obj.attrs.get("MATLAB_empty", 0):
        return np.zeros((0, 0))
    data = obj[()]
    if matlab_class == "cell" or (isinstance(data, np.ndarray) and data.dtype == h5py.ref_dtype):
        refs = np.asarray(data).T  # HDF5 keeps MATLAB's column-major array with its axes reversed
        out = np.empty(refs.shape, dtype=object)
        for index in np.ndindex(refs.shape):
            out[index] = _h5_matlab_value(f, f[refs[index]], depth + 1)
        return out
    if matlab_class not in _MATLAB_NUMERIC:  # char, struct, logical...: not spike times
        return np.asarray([f"<MATLAB {matlab_class or 'object'}>"])
    return np.asarray(data).T


def _read_mat(path: Path, keys: Sequence[str] | None) -> tuple[dict[str, Any], set[str]]:
    """Variables ``keys`` (all cell arrays when None) plus the metadata scalars, and every variable name."""
    if _is_hdf5(path):
        import h5py

        with h5py.File(path, "r") as f:
            names = {k for k in f.keys() if not k.startswith("#")}
            wanted = (
                keys
                if keys is not None
                else [
                    k
                    for k in names
                    if isinstance(f[k], h5py.Dataset) and _h5_text(f[k].attrs.get("MATLAB_class", b"")) == "cell"
                ]
            )
            values = {k: _h5_matlab_value(f, f[k]) for k in wanted if k in names and isinstance(f[k], h5py.Dataset)}
            for k in _META_SCALARS:
                if k in names and isinstance(f[k], h5py.Dataset) and f[k].size == 1:
                    values[k] = np.asarray(f[k][()])
        return values, names
    from scipy.io import loadmat, whosmat

    info = whosmat(str(path))
    names = {name for name, _, _ in info}
    wanted = list(keys) if keys is not None else [name for name, _, cls in info if cls == "cell"]
    meta = [k for k in _META_SCALARS if k in names]
    values = loadmat(str(path), variable_names=[k for k in (*wanted, *meta) if k in names]) if wanted or meta else {}
    return {k: v for k, v in values.items() if not k.startswith("__")}, names


def _is_time_vector(value: Any) -> bool:
    return (
        isinstance(value, np.ndarray)
        and value.dtype.kind in "iuf"
        and value.ndim <= 2
        and (value.size == 0 or value.ndim < 2 or min(value.shape) == 1)
    )


def _looks_like_spike_cells(value: Any, max_checked: int = 50) -> bool:
    """A cell array whose entries are spike-time vectors, or cell arrays of them (checks the first few)."""
    if not isinstance(value, np.ndarray) or value.dtype != object or value.size == 0:
        return False
    checked = 0
    for item in value.flat:
        if isinstance(item, np.ndarray) and item.dtype == object:
            if not all(_is_time_vector(leaf) for leaf in item.flat[:max_checked]) or item.size == 0:
                return False
        elif not _is_time_vector(item):
            return False
        checked += 1
        if checked >= 5:
            break
    return True


def _h5_looks_like_spike_cells(f: Any, obj: Any, depth: int = 0) -> bool:
    """The first few entries of a v7.3 cell array are spike-time vectors or cells of them (reads no more)."""
    import h5py

    if not isinstance(obj, h5py.Dataset) or obj.dtype != h5py.ref_dtype or obj.size == 0 or depth > 1:
        return False
    for ref in obj[()].reshape(-1)[:5]:
        item = f[ref]
        if not isinstance(item, h5py.Dataset):
            return False
        if _h5_text(item.attrs.get("MATLAB_class", b"")) == "cell":
            if not _h5_looks_like_spike_cells(f, item, depth + 1):
                return False
        elif _h5_text(item.attrs.get("MATLAB_class", b"")) not in _MATLAB_NUMERIC or not (
            item.attrs.get("MATLAB_empty", 0) or (item.ndim <= 2 and (item.ndim < 2 or min(item.shape) <= 1))
        ):
            return False
    return True


def sniff_spike_trials(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a MATLAB file (v5 or v7.3) holding a cell array of spike-time vectors. Never raises."""
    try:
        p = Path(path)
        if _is_hdf5(p):
            import h5py

            with h5py.File(p, "r") as f:
                return any(
                    isinstance(f[k], h5py.Dataset)
                    and _h5_text(f[k].attrs.get("MATLAB_class", b"")) == "cell"
                    and _h5_looks_like_spike_cells(f, f[k])
                    for k in f.keys()
                    if not k.startswith("#")
                )
        values, _ = _read_mat(p, None)
        return any(_looks_like_spike_cells(v) for v in values.values())
    except Exception:  # noqa: BLE001 - a sniffer answers 'not mine' for anything it cannot read
        return False


def _scalar(values: Mapping[str, Any], key: str) -> int | None:
    value = values.get(key)
    if value is None:
        return None
    array = np.asarray(value)
    if array.size != 1 or array.dtype.kind not in "iuf":
        return None
    return int(array.reshape(-1)[0])


def _inner_order(shape: tuple[int, ...], layout: str | None, meta: Mapping[str, Any]) -> bool:
    """True when inner arrays are (cells, trials)."""
    if layout is not None:
        return layout.endswith("cell-trial")
    n_neurons, n_trials = _scalar(meta, "n_neurons"), _scalar(meta, "n_trials")
    if n_neurons is not None and n_trials is not None and n_neurons != n_trials:
        if shape == (n_trials, n_neurons):
            return False
    return True


def _leaf_seconds(leaf: Any, divisor: float, offset: float, file: Path, field: str) -> np.ndarray:
    if not _is_time_vector(leaf):
        kind = f"dtype {leaf.dtype}, shape {leaf.shape}" if isinstance(leaf, np.ndarray) else type(leaf).__name__
        raise DataFormatError(file=file, field=field, expected="a numeric vector of spike times", found=kind)
    times = np.asarray(leaf, dtype=np.float64).reshape(-1)
    if offset:
        times = times - offset
    return times / divisor if divisor != 1.0 else times


def _known_window_ms(names: set[str], key: str, leaves: list[np.ndarray], nested: bool) -> int | None:
    """The response window (ms) of the Onken et al. 2016 files, recognised by variables and times; else None."""
    if key != "Spikes" or not (_ONKEN_REQUIRED <= names <= _ONKEN_ALLOWED):
        return None
    filled = [leaf for leaf in leaves if leaf.size]
    if not filled or any(leaf.dtype.kind not in "iu" for leaf in filled):
        return None
    low = min(int(leaf.min()) for leaf in filled)
    high = max(int(leaf.max()) for leaf in filled)
    window = _ONKEN_WINDOW_MS[nested]
    return window if low >= 1 and high <= window else None


def open_spike_trials(
    path: str | os.PathLike[str],
    *,
    key: str = "Spikes",
    time_unit: str = "ms",
    bin_size: float | None = None,
    window: tuple[float, float] | None = None,
    layout: str | None = None,
    time_offset: float | None = None,
) -> xr.DataArray:
    """A MATLAB cell array of spike times -> ``presentation x neuroid [x time_bin]`` assembly of spike counts.

    Parameters
    ----------
    path : ``.mat`` file (v5 or v7.3).
    key : the variable holding the cell array.
    time_unit : unit of the stored times: ``"s"``, ``"ms"`` or ``"us"``.
    bin_size : bin width (s); ``None`` counts spikes in the whole window (no ``time_bin`` dimension).
    window : ``(start, stop)`` seconds relative to stimulus onset; default: the dataset's response window when
        known (Onken et al. 2016: 300 ms, 18 s for the movies), else ``[min(0, first spike), last spike]``.
    layout : one of :data:`LAYOUTS`; detected when ``None``.
    time_offset : subtracted from the stored times (in ``time_unit``); default 1 ms for Onken et al. 2016
        (1-based millisecond labels), else 0.

    Returns
    -------
    ``xr.DataArray`` of int64 counts with ``stimulus_id``, ``repetition`` (trial), ``neuroid_id`` (cell index);
    ``time_bin_start``/``time_bin_end`` (ms) with ``bin_size``; attrs ``source``, ``spikes_key``, ``layout``,
    ``time_unit``, ``time_offset``, ``window_start_ms``, ``window_end_ms``, ``n_spikes_outside`` and
    ``bin_size_s`` (with ``bin_size``).
    """
    p = existing_file(path)
    if time_unit not in TIME_UNITS:
        raise ConfigError(f"time_unit must be one of {sorted(TIME_UNITS)}, not {time_unit!r}")
    if layout is not None and layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    values, names, spikes = _read_spike_cells(p, key)
    nested, stimuli, grid_shape = _stimulus_cells(spikes, p, key, layout)
    cells_first = _inner_order(stimuli[0].shape, layout, values)
    leaves = [leaf for inner in stimuli for leaf in inner.flat]

    known_ms = _known_window_ms(names, key, leaves, nested) if time_unit == "ms" else None
    if time_offset is None:
        time_offset = 1.0 if known_ms is not None else 0.0
    if window is None and known_ms is not None:
        window = (0.0, known_ms / 1000.0)
    divisor = TIME_UNITS[time_unit]

    trials: list[list[list[np.ndarray]]] = []
    for s, inner in enumerate(stimuli):
        grid = inner if cells_first else inner.T
        trials.append(
            [
                [
                    _leaf_seconds(grid[c, t], divisor, time_offset, p, f"{key}[{s}][{c}][{t}]")
                    for t in range(grid.shape[1])
                ]
                for c in range(grid.shape[0])
            ]
        )
    presentation_coords = _stimulus_grid_coords(trials, grid_shape) if nested else {}
    layout_name = ("stimulus/" if nested else "") + ("cell-trial" if cells_first else "trial-cell")
    attrs = {"spikes_key": key, "layout": layout_name, "time_unit": time_unit, "time_offset": float(time_offset)}
    if known_ms is not None:
        attrs["dataset"] = "Onken et al. 2016 (doi:10.5061/dryad.4ch10)"
    da = spike_trials_to_assembly(
        trials,
        bin_size=bin_size,
        window=window,
        source=str(p),
        field=key,
        presentation_coords=presentation_coords,
        attrs=attrs,
    )
    return validate(da, file=p)  # type: ignore[return-value]


def _read_spike_cells(p: Path, key: str) -> tuple[dict[str, Any], list[str], np.ndarray]:
    """``(variables read, every variable name, the non-empty cell array named key)`` of a ``.mat`` file."""
    try:
        values, names = _read_mat(p, [key])
    except DataFormatError:
        raise
    except Exception as err:  # scipy/h5py raise many types on truncated or foreign files
        raise DataFormatError(
            "cannot read the file as MATLAB v5 or v7.3",
            file=p,
            field="<file>",
            expected="a readable .mat file",
            found=f"{type(err).__name__}: {err}",
        ) from err
    if key not in values:
        candidates = sorted(k for k, v in values.items() if _looks_like_spike_cells(v)) or sorted(names)
        raise DataFormatError(
            f"pass key= one of {candidates}",
            file=p,
            field=key,
            expected="a cell array of spike times",
            found="no such variable",
        )
    spikes = values[key]
    if not isinstance(spikes, np.ndarray) or spikes.dtype != object or spikes.size == 0:
        found = (
            f"dtype {spikes.dtype}, shape {spikes.shape}" if isinstance(spikes, np.ndarray) else type(spikes).__name__
        )
        raise DataFormatError(file=p, field=key, expected="a non-empty cell array", found=found)
    return values, names, spikes


def _stimulus_cells(
    spikes: np.ndarray, p: Path, key: str, layout: str | None
) -> tuple[bool, list[np.ndarray], tuple[int, ...]]:
    """``(nested, one 2-d cell array per stimulus, the stimulus grid's shape)``: a cell array of cell arrays
    holds one per stimulus (in MATLAB's linear order), a plain one is a single stimulus."""
    nested = all(isinstance(item, np.ndarray) and item.dtype == object for item in spikes.flat)
    if layout is not None and layout.startswith("stimulus/") != nested:
        raise DataFormatError(
            file=p,
            field=key,
            expected=f"layout {layout!r}",
            found="a cell array of cell arrays" if nested else "a cell array of spike-time vectors",
        )
    if nested:
        stimuli = list(spikes.reshape(-1, order="F"))  # MATLAB's linear order: Spikes{k}
        grid_shape = spikes.shape
    else:
        stimuli = [spikes]
        grid_shape = (1,)
    for s, inner in enumerate(stimuli):
        if inner.ndim != 2:
            raise DataFormatError(
                file=p,
                field=f"{key}[{s}]" if nested else key,
                expected="a 2-d (cells, trials) cell array",
                found=f"shape {inner.shape}",
            )
    return nested, stimuli, grid_shape


def _stimulus_grid_coords(trials: list[list[list[np.ndarray]]], grid_shape: tuple[int, ...]) -> dict[str, list[int]]:
    """Per presentation, the stimulus's subscripts in a grid of stimuli with more than one non-trivial axis
    (``stimulus_row``/``stimulus_column`` for 2-d); none for a list of stimuli."""
    if sum(n > 1 for n in grid_shape) <= 1:
        return {}
    subscripts = np.unravel_index(np.arange(len(trials)), grid_shape, order="F")
    names_by_axis = (
        ["stimulus_row", "stimulus_column"]
        if len(grid_shape) == 2
        else [f"stimulus_index_{a}" for a in range(len(grid_shape))]
    )
    per_stimulus = {n: sub for n, sub in zip(names_by_axis, subscripts)}
    n_trials = [len(stim[0]) for stim in trials]
    return {n: np.repeat(sub, n_trials).tolist() for n, sub in per_stimulus.items()}


# --------------------------------------------------------------------------------------------------------------
# the shared in-memory entry


def _checked_trials(trials: Sequence[Sequence[Sequence[Any]]], source: str, field: str) -> list[list[list[np.ndarray]]]:
    """``trials[stimulus][cell][trial]`` as float64 arrays, checked: at least one stimulus and cell, the same
    cells for every stimulus, the same number of trials for every cell of a stimulus."""
    if len(trials) == 0:
        raise DataFormatError(file=source, field=field, expected="at least one stimulus", found="none")
    n_cells = len(trials[0])
    if n_cells == 0:
        raise DataFormatError(file=source, field=f"{field}[0]", expected="at least one cell", found="none")
    checked: list[list[list[np.ndarray]]] = []
    for s, stimulus in enumerate(trials):
        if len(stimulus) != n_cells:
            raise DataFormatError(
                file=source,
                field=f"{field}[{s}]",
                expected=f"{n_cells} cells like stimulus 0",
                found=f"{len(stimulus)} cells",
            )
        counts_per_cell = {len(cell) for cell in stimulus}
        if len(counts_per_cell) != 1:
            raise DataFormatError(
                file=source,
                field=f"{field}[{s}]",
                expected="the same number of trials for every cell",
                found=f"trial counts {sorted(counts_per_cell)}",
            )
        checked.append([[np.asarray(train, dtype=np.float64).reshape(-1) for train in cell] for cell in stimulus])
    return checked


def _counting_window(
    checked: list[list[list[np.ndarray]]],
    window: tuple[float, float] | None,
    bin_size: float | None,
    source: str,
    field: str,
) -> tuple[float, float, Literal["error", "clip"]]:
    """``(start, stop, outside)``: the given window (spikes outside clipped), else one derived from the spikes
    (none can fall outside it)."""
    if window is None:
        start, stop, any_spike = _derived_window(checked, bin_size)
        if not any_spike:
            raise DataFormatError(
                "pass window=(start, stop) in seconds",
                file=source,
                field=field,
                expected="at least one spike to derive the window from",
                found="no spikes",
            )
        return start, stop, "error"
    start, stop = float(window[0]), float(window[1])
    if not (math.isfinite(start) and math.isfinite(stop) and stop > start):
        raise ConfigError(f"window must be (start, stop) seconds with stop > start, not {window!r}")
    return start, stop, "clip"


def _derived_window(
    trials: Sequence[Sequence[Sequence[np.ndarray]]], bin_size: float | None
) -> tuple[float, float, bool]:
    first, last = math.inf, -math.inf
    for stimulus in trials:
        for cell in stimulus:
            for train in cell:
                if train.size:
                    first = min(first, float(np.min(train)))
                    last = max(last, float(np.max(train)))
    if not math.isfinite(last):
        return 0.0, 0.0, False
    start = min(0.0, first)
    if bin_size is None:
        return start, float(np.nextafter(last, math.inf)), True
    # as the binning module's default: the last spike opens the last bin
    return start, start + bin_size * (math.floor(round((last - start) / bin_size, 9)) + 1), True


def spike_trials_to_assembly(
    trials: Sequence[Sequence[Sequence[Any]]],
    *,
    bin_size: float | None = None,
    window: tuple[float, float] | None,
    stimulus_ids: Sequence[Any] | None = None,
    neuroid_ids: Sequence[Any] | None = None,
    source: str,
    field: str = "trials",
    presentation_coords: Mapping[str, Sequence[Any]] | None = None,
    neuroid_coords: Mapping[str, Sequence[Any]] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.DataArray:
    """Nested spike times ``trials[stimulus][cell][trial]`` (seconds) -> assembly of counts.

    Parameters
    ----------
    trials : for each stimulus, for each cell, for each trial, a sorted 1-d array of spike times (s) relative
        to stimulus onset. All stimuli have the same cells; within a stimulus every cell has the same number of
        trials (stimuli may differ).
    bin_size : bin width (s), or ``None`` for one count per trial over the window.
    window : ``(start, stop)`` in seconds; spikes outside are dropped and counted in ``attrs['n_spikes_outside']``.
        ``None``: ``[min(0, first spike), last spike]`` (with ``bin_size``: to the end of the last spike's bin).
    stimulus_ids, neuroid_ids : default: the stimulus / cell index as a string.
    source : file (or description) named in errors and stored in ``attrs['source']``.
    field : name of the data in error messages (``field[s][c][t]`` names one trial).
    presentation_coords, neuroid_coords, attrs : extra coordinates (one value per presentation / cell) and attrs.

    Returns
    -------
    ``xr.DataArray (presentation, neuroid[, time_bin])`` int64, presentations ordered by stimulus then trial, with
    ``stimulus_id``, ``repetition`` (trial index), ``neuroid_id``, and ``time_bin_start``/``time_bin_end`` (ms).

    Raises
    ------
    DataFormatError
        for unsorted or non-finite spike times (from the binning module, naming ``field[s][c][t]``), ragged trials,
        or no spikes at all without a window.
    """
    if bin_size is not None and not (np.isfinite(bin_size) and bin_size > 0):
        raise ConfigError(f"bin_size must be a positive number of seconds, not {bin_size!r}")
    checked = _checked_trials(trials, source, field)
    n_cells = len(checked[0])
    start, stop, outside = _counting_window(checked, window, bin_size, source, field)
    width = bin_size if bin_size is not None else stop - start

    # One call for every trial of every stimulus, ordered (stimulus, trial, cell) like the presentations.
    n_trials = [len(stimulus[0]) for stimulus in checked]
    trains = [stimulus[c][t] for stimulus in checked for t in range(len(stimulus[0])) for c in range(n_cells)]
    names = [
        f"{field}[{s}][{c}][{t}]"
        for s, stimulus in enumerate(checked)
        for t in range(len(stimulus[0]))
        for c in range(n_cells)
    ]
    if not trains:
        raise DataFormatError(file=source, field=field, expected="at least one trial", found="no trials")
    counts, edges, dropped = bin_spike_times(
        trains, width, t_start=start, t_stop=stop, outside=outside, file=source, names=names
    )
    n_outside = int(dropped.sum())
    values = counts.T.reshape(sum(n_trials), n_cells, counts.shape[0])
    if bin_size is None:
        values = values[:, :, 0]

    stim_ids = [str(s) for s in (stimulus_ids if stimulus_ids is not None else range(len(checked)))]
    if len(stim_ids) != len(checked):
        raise DataFormatError(file=source, field="stimulus_ids", expected=f"{len(checked)} ids", found=len(stim_ids))
    cell_ids = [str(c) for c in (neuroid_ids if neuroid_ids is not None else range(n_cells))]
    if len(cell_ids) != n_cells:
        raise DataFormatError(file=source, field="neuroid_ids", expected=f"{n_cells} ids", found=len(cell_ids))
    out_attrs: dict[str, Any] = {"source": str(source)}
    out_attrs.update(dict(attrs or {}))
    out_attrs.update({"window_start_ms": start * 1e3, "window_end_ms": stop * 1e3, "n_spikes_outside": n_outside})
    time_start = time_end = None
    if bin_size is not None:
        out_attrs["bin_size_s"] = float(bin_size)
        time_start = np.round(edges * 1e3, 9)
        time_end = np.round((edges + bin_size) * 1e3, 9)
    return assembly(
        values,
        stimulus_id=np.repeat(stim_ids, n_trials).tolist(),
        repetition=np.concatenate([np.arange(n) for n in n_trials]).tolist(),
        neuroid_id=cell_ids,
        time_bin_start_ms=time_start,
        time_bin_end_ms=time_end,
        presentation_coords=presentation_coords,
        neuroid_coords=neuroid_coords,
        attrs=out_attrs,
    )


# --------------------------------------------------------------------------------------------------------------
# NumPy spike-time arrays


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays only: any other class in the pickle is refused (a pickle can run code)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name} (only numpy arrays are read)")
        return super().find_class(module, name)


def _read_npy(fh: Any, field: str, file: Path, *, header_only: bool = False) -> tuple[np.dtype, tuple[int, ...], Any]:
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(fh)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = fmt.read_array_header_2_0(fh)
    else:  # pragma: no cover - numpy has no other versions
        raise DataFormatError(file=file, field=field, expected="a .npy file of format 1-3", found=str(version))
    if header_only:
        return dtype, shape, None
    if dtype.hasobject:
        array = _ArrayUnpickler(fh).load()
        if not isinstance(array, np.ndarray):
            raise DataFormatError(file=file, field=field, expected="a numpy array", found=type(array).__name__)
        return dtype, shape, array
    count = int(np.prod(shape))
    data = np.frombuffer(fh.read(count * dtype.itemsize), dtype=dtype, count=count)
    return dtype, shape, data.reshape(shape, order="F" if fortran else "C")


def _npz_members(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return [n for n in archive.namelist() if n.endswith(".npy")]


def _object_trains(array: np.ndarray, field: str, file: Path) -> list[np.ndarray]:
    flat = array.reshape(-1) if array.ndim == 1 or (array.ndim == 2 and 1 in array.shape) else None
    if flat is None:
        raise DataFormatError(
            file=file,
            field=field,
            expected="a 1-d object array, one spike-time array per cell",
            found=f"shape {array.shape}",
        )
    trains = []
    for i, item in enumerate(flat):
        values = np.asarray(item)
        if values.dtype.kind not in "iuf" or values.ndim > 1 and 1 not in values.shape:
            raise DataFormatError(
                file=file,
                field=f"{field}[{i}]",
                expected="a 1-d numeric array of spike times",
                found=f"dtype {values.dtype}, shape {values.shape}",
            )
        trains.append(values.astype(np.float64).reshape(-1))
    return trains


def _read_spike_time_matrix(path: Path) -> tuple[list[np.ndarray], list[str] | None, str]:
    """Spike trains, names (npz members) or None, and the field name used in errors."""
    try:
        if path.suffix.lower() == ".npz":
            members = _npz_members(path)
            with zipfile.ZipFile(path) as archive:
                arrays = {}
                for member in members:
                    with archive.open(member) as fh:
                        arrays[member[:-4]] = _read_npy(fh, member[:-4], path)[2]
            for key in ("spike_times", "spikes"):
                if key in arrays and arrays[key].dtype == object:
                    return _object_trains(arrays[key], key, path), None, key
            trains = []
            for name, array in arrays.items():
                if array.dtype.kind not in "iuf" or array.ndim != 1:
                    raise DataFormatError(
                        file=path,
                        field=name,
                        expected="1-d numeric spike times per member",
                        found=f"dtype {array.dtype}, shape {array.shape}",
                    )
                trains.append(array.astype(np.float64))
            return trains, list(arrays), "<member>"
        with open(path, "rb") as fh:
            dtype, _, array = _read_npy(fh, "spikes", path)
        if dtype != np.dtype(object):
            raise DataFormatError(
                file=path,
                field="<array>",
                expected="an object array of per-cell spike-time arrays",
                found=f"dtype {dtype}",
            )
        return _object_trains(array, "spikes", path), None, "spikes"
    except DataFormatError:
        raise
    except (
        OSError,
        ValueError,
        EOFError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
    ) as err:
        raise DataFormatError(
            "cannot read the spike-time array",
            file=path,
            field="<file>",
            expected="a .npy/.npz array of per-cell spike times",
            found=f"{type(err).__name__}: {err}",
        ) from err


def sniff_spike_time_matrix(path: str | os.PathLike[str]) -> bool:
    """True for ``.npy`` object arrays of numeric arrays, or ``.npz`` of sorted per-cell spike times. Never raises."""
    try:
        p = Path(path)
        if p.suffix.lower() == ".npy":
            with open(p, "rb") as fh:
                dtype, shape, _ = _read_npy(fh, "spikes", p, header_only=True)
            if dtype != np.dtype(object) or not (len(shape) == 1 or (len(shape) == 2 and 1 in shape)):
                return False
            trains, _, _ = _read_spike_time_matrix(p)
            return len(trains) > 0
        if p.suffix.lower() == ".npz":
            trains, names, _ = _read_spike_time_matrix(p)
            if names is None:
                return len(trains) > 0
            # numeric members: only claim files that look like spike times (sorted and finite)
            return len(trains) > 0 and all(
                np.all(np.isfinite(t)) and (t.size < 2 or np.all(np.diff(t) >= 0)) for t in trains
            )
        return False
    except Exception:  # noqa: BLE001 - a sniffer answers 'not mine' for anything it cannot read
        return False


def _read_classification(path: Path) -> tuple[list[str], list[str]]:
    ids, types = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split("\t", 1) if "\t" in text else text.split(None, 1)
        if len(parts) != 2:
            raise DataFormatError(
                file=path, field=f"line {number}", expected="'<cluster id><TAB><cell type>'", found=repr(line)
            )
        ids.append(parts[0].strip())
        types.append(parts[1].strip())
    return ids, types


def open_spike_time_matrix(
    path: str | os.PathLike[str],
    *,
    bin_size: float | None = DEFAULT_BIN_SIZE_S,
    t_start: float | None = None,
    t_stop: float | None = None,
    time_unit: str = "s",
    cell_ids: Sequence[str] | None = None,
    cell_types: Sequence[str] | Mapping[str, str] | None = None,
) -> xr.Dataset:
    """Per-cell spike-time arrays (``.npy`` object array or ``.npz``) -> recording ``response(time, cell)``.

    Parameters
    ----------
    path : ``.npy`` object array, one array of spike times per cell; or ``.npz`` with one array per cell (member
        names become cell ids) or an object array ``spike_times``/``spikes``.
    bin_size : bin width (s); ``None`` means :data:`DEFAULT_BIN_SIZE_S`.
    t_start, t_stop : window (s); default ``0`` and the end of the last spike's bin (binning module defaults).
        Spikes outside an explicit window are dropped and counted per cell in ``attrs['n_spikes_outside']``.
    time_unit : unit of the stored times (``"s"``, ``"ms"``, ``"us"``).
    cell_ids : names of the cells (default: cluster ids from ``cell_classification.txt``, npz member names, or
        the index).
    cell_types : one type per cell, or ``{cell_id: type}``; default: from a sibling ``cell_classification.txt``
        with one line per cell.

    Returns
    -------
    recording ``xr.Dataset`` with int64 counts, ``time`` (left bin edges, s), ``cell`` (str) and ``cell_type``
    when known; attrs ``source``, ``bin_size_s``, ``frame_rate_hz``, ``n_spikes_outside``.
    """
    p = existing_file(path)
    if time_unit not in TIME_UNITS:
        raise ConfigError(f"time_unit must be one of {sorted(TIME_UNITS)}, not {time_unit!r}")
    bin_size = DEFAULT_BIN_SIZE_S if bin_size is None else float(bin_size)
    if not (np.isfinite(bin_size) and bin_size > 0):
        raise ConfigError(f"bin_size must be a positive number of seconds, not {bin_size!r}")
    trains, member_names, field = _read_spike_time_matrix(p)
    if not trains:
        raise DataFormatError(file=p, field=field, expected="at least one cell", found="none")
    divisor = TIME_UNITS[time_unit]
    if divisor != 1.0:
        trains = [t / divisor for t in trains]
    n = len(trains)
    names = member_names or [f"{field}[{i}]" for i in range(n)]

    attrs: dict[str, Any] = {}
    ids = [str(c) for c in cell_ids] if cell_ids is not None else (member_names or [str(i) for i in range(n)])
    types: list[str] | None = None
    classification = p.parent / _CLASSIFICATION_FILE
    if cell_types is None and classification.is_file():
        cluster_ids, file_types = _read_classification(classification)
        if len(cluster_ids) == n:
            types = file_types
            if cell_ids is None and member_names is None:
                ids = cluster_ids
            attrs["cell_types_file"] = str(classification)
        else:
            warnings.warn(
                f"{classification}: {len(cluster_ids)} cells listed, {p} has {n}; cell types not read", stacklevel=2
            )
    elif isinstance(cell_types, Mapping):
        missing = [c for c in ids if c not in cell_types]
        if missing:
            raise ConfigError(f"cell_types has no entry for cells {missing[:5]}")
        types = [str(cell_types[c]) for c in ids]
    elif cell_types is not None:
        types = [str(t) for t in cell_types]
    if len(ids) != n:
        raise ConfigError(f"cell_ids has {len(ids)} names for {n} cells")
    if types is not None and len(types) != n:
        raise ConfigError(f"cell_types has {len(types)} entries for {n} cells")

    counts, edges, dropped = bin_spike_times(trains, bin_size, t_start=t_start, t_stop=t_stop, file=p, names=names)
    attrs["n_spikes_outside"] = dropped
    attrs["time_unit"] = time_unit
    rec = recording_from_counts(
        counts,
        edges,
        bin_size,
        ids,
        source=str(p),
        cell_coords={"cell_type": np.asarray(types, dtype=object)} if types is not None else None,
        attrs=attrs,
    )
    return validate(rec, file=p)  # type: ignore[return-value]

"""Retina recordings in the deep-retina HDF5 layout (Baccus lab; McIntosh et al. 2016, Maheswaranathan et al. 2023).

Layout (read from the published files, e.g. ``15-10-07/naturalscene.h5`` of doi:10.25740/rk663dm5577, and from
the loaders of ``baccuslab/deep-retina`` ``deepretina/experiments.py`` and of openretina
``data_io/maheswaranathan_2023/responses.py``)::

    /train/stimulus                 (T, H, W)       movie frames, raw pixel values as displayed
    /train/time                     (T,)            frame times, seconds
    /train/response/binned          (cells, T)      spike counts per frame
    /train/response/firing_rate_5ms (cells, T)      smoothed rates (Hz); also _10ms and _20ms
    /test/...                       same as train, for the repeated test movie
    /test/repeats/cell01            (repeats, T)    single-trial responses of one cell, cell01..cellNN
    /test/repeats/<response kind>   (repeats, cells, T)   alternative layout some files use instead
    /spikes/cell01                  (n_spikes,)     spike times (not read here)

:func:`open_retina_hdf5` returns the data-model recording: ``stimulus(time, y, x)`` float32,
``response(time, cell)``, ``trials(repeat, time, cell)`` for the test split (NaN on train times), the
``split`` coordinate on ``time`` (train frames first, then test frames), ``time`` as stored in the file.

Choices, and why:

* **The stimulus stays on disk.** It is a dask array over the HDF5 dataset, in chunks of whole frames along
  ``time`` (a multiple of the file's own chunking, about 8 MiB each: large enough that dask's per-task cost
  is small next to the read, small enough that a threaded compute on 16 cores stays far below 400 MB). The
  file is opened on the first read by a small picklable reader object held in the dask graph and stays open
  until ``ds.close()`` (registered with ``Dataset.set_close``) or until the dataset is garbage-collected; a
  reader that is unpickled in another process (dask.distributed) opens its own handle. ``lazy=False`` reads
  the movie into memory instead. h5py serialises reads, so dask's threads cannot read in parallel: for a
  pass over the movie, ``dask.config.set(scheduler="synchronous")`` used about 20% less CPU than the default
  threads and holds one chunk at a time (``benchmarks/bench_data.py``: a 2 GB file streams at the speed of a
  plain h5py loop, in about 200 MB).
* **Contrast units.** The files store raw display intensities (about 0..255; natural scenes have mean ~51,
  sd ~54). deep-retina's ``loadexpt`` z-scores each split by its own statistics; openretina z-scores both
  splits by the *train* statistics. ``stimulus_scale="zscore"`` (default) does the latter: ``(x - m) / s``
  with ``m``, ``s`` the mean and population sd (ddof=0) of every pixel of every train frame, so the test
  movie is in the same units as the training movie and carries no information about itself. The statistics
  are computed in one streaming pass over the train movie (float64, chunk by chunk, never the whole movie in
  memory), or taken from the attributes ``neuromodels_mean/std/n_frames`` that :func:`write_retina_hdf5`
  stores on ``train/stimulus`` when their frame count matches. They are kept in ``stimulus.attrs``.
  ``stimulus_scale=None`` returns the stored values (as float32).
* **One trailing response bin.** The published files hold one more response bin than stimulus frames in the
  test split (``test/stimulus`` 5996 frames, ``test/response/*`` and ``test/repeats/*`` 5997 bins); users of the
  data align bin ``k`` with frame ``k`` and ignore the last bin. Exactly one extra trailing bin is therefore
  dropped (counted in ``attrs['trailing_bins_dropped_<split>']``); any other length mismatch is an error.
* **Units.** ``response="binned"`` gives counts (``units='count'``, integer-valued, checked); ``firing_rate_*``
  gives rates (``units='Hz'``). ``trials`` come from ``test/repeats/<response>`` when the file has it (same
  units as ``response``), otherwise from ``test/repeats/cellNN``, whose units the files do not state:
  integer-valued repeats are labelled ``'count'``, others get the response's units.
* **Cells.** Ids are the file's ``cell_ids`` attribute (written by :func:`write_retina_hdf5`), else the names of
  the ``test/repeats`` or ``spikes`` members (``cell01``...), else ``cell01``... by row. File attributes
  ``species`` and ``cell_types`` (one per cell, a ``cell_type`` coordinate) are read when present.

Values the opener can check cheaply are checked eagerly (time, responses, repeats: small arrays), because
:func:`~neuromodels.datasets.validate` does not look at values of dask arrays: a NaN or negative count, a
non-monotonic time axis or a length mismatch raises :class:`~neuromodels.errors.DataFormatError` naming the
file and the HDF5 path (e.g. ``train/response/binned``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neuromodels.datasets._io import atomic_path, existing_file, open_hdf5
from neuromodels.datasets._validate import RECORDING_SPLITS, validate
from neuromodels.datasets.recording import recording_from_counts
from neuromodels.errors import ConfigError, DataFormatError

__all__ = [
    "sniff_retina_hdf5",
    "open_retina_hdf5",
    "write_retina_hdf5",
    "stream_frame_statistics",
    "STIMULUS_SCALES",
    "DEFAULT_CHUNK_FRAMES",
]

STIMULUS_SCALES = ("zscore", None)
"""Accepted values of ``stimulus_scale``."""

DEFAULT_CHUNK_FRAMES = 256
"""Frames per HDF5 chunk written by :func:`write_retina_hdf5` (256 frames of 50x50 float32 = 2.5 MiB)."""

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_TARGET_DASK_CHUNK_BYTES = 8 * 2**20
_STATS_ATTRS = ("neuromodels_mean", "neuromodels_std", "neuromodels_n_frames")


# --------------------------------------------------------------------------------------------- detection


def _has_hdf5_signature(path: Path) -> bool:
    """The HDF5 superblock signature at offset 0, 512, 1024, 2048, ... (HDF5 allows a user block)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        offset = 0
        while offset + len(_HDF5_SIGNATURE) <= size:
            fh.seek(offset)
            if fh.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


def sniff_retina_hdf5(path: str | os.PathLike[str]) -> bool:
    """True for an HDF5 file with a ``train`` or ``test`` group that holds ``stimulus``; never raises.

    A file with the HDF5 signature that HDF5 cannot open (truncated, corrupt) also answers True, so that
    :func:`neuromodels.datasets.load` reports *why* the ``.h5`` file is unreadable (from
    :func:`open_retina_hdf5`) instead of "unknown format".
    """
    try:
        import h5py

        p = Path(path)
        if not p.is_file() or not _has_hdf5_signature(p):
            return False
        try:
            f = h5py.File(p, "r")
        except Exception:  # noqa: BLE001 - an HDF5 signature that h5py cannot open is still ours: open_retina_hdf5 says why
            return True
        with f:
            for split in RECORDING_SPLITS:
                group = f.get(split)
                if isinstance(group, h5py.Group) and "stimulus" in group:
                    return True
        return False
    except Exception:  # noqa: BLE001 - a sniffer answers 'not mine' for anything it cannot read
        return False


# --------------------------------------------------------------------------------------------- lazy reading


class _SharedH5File:
    """One read-only HDF5 handle per process, opened on first use, shared by the readers of one dataset.

    Pickling drops the handle (h5py objects cannot be pickled); the copy opens its own on first use.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: Any = None
        self._datasets: dict[str, Any] = {}
        self._lock = threading.Lock()

    def dataset(self, name: str) -> Any:
        import h5py

        with self._lock:
            if self._file is None or not self._file.id.valid:
                self._file = h5py.File(self.path, "r")
                self._datasets = {}
            # Looking a dataset up by path costs about a millisecond: once per chunk adds up.
            if name not in self._datasets:
                self._datasets[name] = self._file[name]
            return self._datasets[name]

    def close(self) -> None:
        with self._lock:
            self._datasets = {}
            if self._file is not None:
                try:
                    self._file.close()
                finally:
                    self._file = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - a destructor must not raise
            pass


class _NpyFile:
    """Same interface as :class:`_SharedH5File` for ``.npy`` files: a read-only memory map, opened on first use."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._array: Any = None

    def dataset(self, name: str) -> Any:
        if self._array is None:
            self._array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        return self._array

    def close(self) -> None:
        self._array = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]


class _FrameReader:
    """Array-like ``(time, y, x)`` that dask slices; returns float32 ``(x - subtract) / divide``.

    ``source.dataset(name)`` is a ``(time, y, x)`` array, or with ``channel`` set a ``(channel, time, y, x)`` one
    (openretina's layout) of which one channel (an int) or the channel mean (``"mean"``) is read. Folding the
    channel choice and the contrast scaling into the read keeps the dask graph at one task per chunk.
    """

    def __init__(
        self,
        source: Any,
        name: str,
        shape: tuple[int, ...],
        subtract: float = 0.0,
        divide: float = 1.0,
        *,
        channel: int | str | None = None,
    ) -> None:
        self.source = source
        self.name = name
        self.shape = tuple(int(s) for s in shape)
        self.ndim = len(self.shape)
        self.dtype = np.dtype(np.float32)
        self.subtract = float(subtract)
        self.divide = float(divide)
        self.channel = channel

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        try:
            array = self.source.dataset(self.name)
            if self.channel is None:
                raw = array[key]
            elif self.channel == "mean":
                raw = np.asarray(array[(slice(None), *key)], dtype=np.float64).mean(axis=0)
            else:
                raw = array[(int(self.channel), *key)]
        except Exception as exc:  # a file changed or damaged after opening
            raise DataFormatError(
                file=self.source.path, field=self.name, expected="readable frames", found=f"{type(exc).__name__}: {exc}"
            ) from exc
        if type(raw) is np.ndarray:  # a fresh array from h5py or the channel mean: safe to scale in place
            frames = raw.astype(np.float32, copy=False)
        else:  # memory maps are read-only views of the file: copy
            frames = np.array(raw, dtype=np.float32)
        if self.subtract != 0.0 or self.divide != 1.0:
            frames -= np.float32(self.subtract)
            frames /= np.float32(self.divide)
        return frames


def _dask_chunk_frames(frame_bytes: int, file_chunk_frames: int | None, requested: int | None) -> int:
    """Frames per dask chunk: ``requested``, else a multiple of the file's chunk near 8 MiB."""
    if requested is not None:
        if int(requested) < 1:
            raise ConfigError(f"chunk_frames must be a positive number of frames, got {requested!r}")
        return int(requested)
    target = max(1, _TARGET_DASK_CHUNK_BYTES // max(frame_bytes, 1))
    if file_chunk_frames:
        return max(1, round(target / file_chunk_frames)) * file_chunk_frames
    return target


def stream_frame_statistics(blocks: Iterator[np.ndarray]) -> tuple[float, float, int]:
    """Mean, population sd (ddof=0) and frame count over blocks of frames ``(n, ...)``, in float64.

    Blocks are merged with Chan et al.'s pairwise update, so the result does not depend on how the movie was
    cut and never needs more than one block in memory.
    """
    count = 0
    mean = 0.0
    m2 = 0.0
    frames = 0
    for block in blocks:
        block = np.asarray(block, dtype=np.float64)
        n = block.size
        if n == 0:
            continue
        b_mean = float(block.mean())
        b_m2 = float(np.square(block - b_mean).sum())
        delta = b_mean - mean
        total = count + n
        mean += delta * n / total
        m2 += b_m2 + delta * delta * count * n / total
        count = total
        frames += block.shape[0]
    if count == 0:
        return float("nan"), float("nan"), 0
    return mean, float(np.sqrt(m2 / count)), frames


# --------------------------------------------------------------------------------------------- opening


def _text_list(values: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(np.asarray(values))]


def _cell_number(name: str) -> tuple[int, str]:
    digits = "".join(ch for ch in name if ch.isdigit())
    return (int(digits) if digits else 0, name)


def _read(f: Any, name: str, file: str) -> np.ndarray:
    try:
        return np.asarray(f[name][()])
    except Exception as exc:
        raise DataFormatError(
            file=file, field=name, expected="a readable HDF5 dataset", found=f"{type(exc).__name__}: {exc}"
        ) from exc


def _check_values(values: np.ndarray, field: str, file: str, *, counts: bool, allow_nan: bool = False) -> None:
    """Responses: finite (NaN only where allowed), non-negative, integer-valued for counts."""
    if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.complexfloating):
        raise DataFormatError(file=file, field=field, expected="a real numeric array", found=f"dtype {values.dtype}")
    if values.size == 0:
        return
    if np.issubdtype(values.dtype, np.floating):
        nan = np.isnan(values)
        if nan.any() and not allow_nan:
            first = tuple(int(i) for i in np.argwhere(nan)[0])
            raise DataFormatError(
                file=file, field=field, expected="finite values", found=f"{int(nan.sum())} NaN (first at index {first})"
            )
        if np.isinf(values).any():
            raise DataFormatError(file=file, field=field, expected="finite values", found="infinite values")
        finite = values[~nan]
    else:
        finite = values
    if finite.size and finite.min() < 0:
        first = tuple(int(i) for i in np.argwhere(values < 0)[0])
        raise DataFormatError(
            file=file,
            field=field,
            expected="non-negative spike counts or rates",
            found=f"negative value {finite.min()!r} (first at index {first})",
        )
    if counts and finite.size and not np.all(finite == np.round(finite)):
        raise DataFormatError(file=file, field=field, expected="integer spike counts", found="non-integer values")


def _check_time(time: np.ndarray, field: str, file: str, n_frames: int) -> np.ndarray:
    if time.ndim != 1 or time.shape[0] != n_frames:
        raise DataFormatError(
            file=file,
            field=field,
            expected=f"shape ({n_frames},) (one time per stimulus frame)",
            found=f"shape {time.shape}",
        )
    if not np.issubdtype(time.dtype, np.number):
        raise DataFormatError(file=file, field=field, expected="numeric times in seconds", found=f"dtype {time.dtype}")
    time = time.astype(np.float64)
    if not np.all(np.isfinite(time)):
        raise DataFormatError(file=file, field=field, expected="finite times", found="NaN or infinite times")
    steps = np.diff(time)
    if steps.size and not np.all(steps > 0):
        bad = int(np.argmin(steps > 0))
        raise DataFormatError(
            file=file,
            field=field,
            expected="strictly increasing times",
            found=f"time[{bad + 1}]={time[bad + 1]!r} after time[{bad}]={time[bad]!r}",
        )
    return time


def _trim_bins(values: np.ndarray, n_frames: int, field: str, file: str, what: str) -> tuple[np.ndarray, int]:
    """Cut the one trailing bin of the published test responses (time is the last axis)."""
    n = values.shape[-1]
    if n == n_frames:
        return values, 0
    if n == n_frames + 1:
        return values[..., :n_frames], 1
    raise DataFormatError(file=file, field=field, expected=f"{n_frames} time bins (as {what})", found=n)


def _response_kinds(f: Any, splits: Sequence[str]) -> list[str]:
    import h5py

    kinds: set[str] = set()
    for split in splits:
        group = f.get(f"{split}/response")
        if isinstance(group, h5py.Group):
            kinds |= {k for k, v in group.items() if isinstance(v, h5py.Dataset)}
    return sorted(kinds)


def _choose_response(f: Any, splits: Sequence[str], response: str | None, file: str) -> str:
    kinds = _response_kinds(f, splits)
    if response is not None:
        return response
    if "binned" in kinds:
        return "binned"
    if len(kinds) == 1:
        return kinds[0]
    raise DataFormatError(
        "pass response=... to choose one",
        file=file,
        field=f"{splits[0]}/response",
        expected="a 'binned' response or exactly one response kind",
        found=kinds or "none",
    )


def _response_units(kind: str, values: np.ndarray, stored: Any) -> str:
    if stored is not None:
        return _text_list(stored)[0]
    if kind == "binned":
        return "count"
    if kind.startswith("firing_rate"):
        return "Hz"
    integer = (
        values.size == 0
        or np.issubdtype(values.dtype, np.integer)
        or bool(np.all(np.isnan(values) | (values == np.round(values))))
    )
    return "count" if integer else "a.u."


def _read_repeats(
    f: Any, kind: str, n_cells: int, n_frames: int, file: str
) -> tuple[np.ndarray, list[str] | None, str, int] | None:
    """``(repeat, time, cell)`` test repeats, their cell names (cellNN layout), source field, trimmed bins."""
    import h5py

    group = f.get("test/repeats")
    if not isinstance(group, h5py.Group):
        return None
    if isinstance(group.get(kind), h5py.Dataset):
        field = f"test/repeats/{kind}"
        stacked = _read(f, field, file)
        if stacked.ndim != 3 or stacked.shape[1] != n_cells:
            raise DataFormatError(
                file=file, field=field, expected=f"shape (repeats, {n_cells}, time)", found=f"shape {stacked.shape}"
            )
        stacked, trimmed = _trim_bins(stacked, n_frames, field, file, "test/stimulus")
        _check_values(stacked, field, file, counts=kind == "binned", allow_nan=True)
        return np.transpose(stacked, (0, 2, 1)), None, field, trimmed
    names = sorted(
        (k for k, v in group.items() if isinstance(v, h5py.Dataset) and k.startswith("cell")), key=_cell_number
    )
    if not names:
        return None
    if len(names) != n_cells:
        raise DataFormatError(
            file=file,
            field="test/repeats",
            expected=f"{n_cells} cells (as test/response/{kind})",
            found=f"{len(names)} members {names[:5]}{'...' if len(names) > 5 else ''}",
        )
    per_cell = []
    trimmed = 0
    n_repeats = None
    for name in names:
        field = f"test/repeats/{name}"
        values = _read(f, field, file)
        if values.ndim == 1:
            values = values[None, :]
        if values.ndim != 2:
            raise DataFormatError(
                file=file, field=field, expected="shape (repeats, time)", found=f"shape {values.shape}"
            )
        values, trimmed = _trim_bins(values, n_frames, field, file, "test/stimulus")
        if n_repeats is None:
            n_repeats = values.shape[0]
        elif values.shape[0] != n_repeats:
            raise DataFormatError(
                file=file, field=field, expected=f"{n_repeats} repeats (as {names[0]})", found=values.shape[0]
            )
        _check_values(values, field, file, counts=False, allow_nan=True)
        per_cell.append(values)
    return np.stack(per_cell, axis=-1), names, "test/repeats/cellNN", trimmed


def open_retina_hdf5(
    path: str | os.PathLike[str],
    *,
    response: str | None = None,
    splits: Sequence[str] | None = None,
    lazy: bool = True,
    stimulus_scale: str | None = "zscore",
    chunk_frames: int | None = None,
) -> xr.Dataset:
    """Open a deep-retina layout HDF5 file as a validated recording ``xr.Dataset``.

    Parameters
    ----------
    path
        The ``.h5`` file.
    response
        Which ``<split>/response/<kind>``: ``"binned"`` (counts per frame), ``"firing_rate_5ms"``,
        ``"firing_rate_10ms"``, ``"firing_rate_20ms"`` (Hz). Default: ``binned`` when present, else the only kind.
    splits
        Subset of ``("train", "test")``; default: those the file has (at least one).
    lazy
        True: ``stimulus`` is a dask array over the file (chunks along time). False: read into memory.
    stimulus_scale
        ``"zscore"``: ``(x - mean) / sd`` with the train movie's statistics; ``None``: stored values.
    chunk_frames
        Frames per dask chunk (default: a multiple of the file's chunk near 8 MiB).

    Returns
    -------
    xr.Dataset
        ``stimulus(time, y, x)`` float32, ``response(time, cell)``, ``trials(repeat, time, cell)`` when the test
        split has repeats, coords ``time`` (s, as stored), ``cell``, ``split``; attrs ``frame_rate_hz`` (from the
        median frame step), ``source``, ``response_kind``, ``stimulus_scale``, ``species`` if stored.
    """
    import h5py

    requested = _requested_splits(splits, stimulus_scale)
    p = existing_file(path)
    file = str(p)
    f = open_hdf5(p)

    with f:
        present = [s for s in requested if isinstance(f.get(s), h5py.Group)]
        if splits is not None and len(present) != len(requested):
            missing = [s for s in requested if s not in present]
            raise DataFormatError(
                file=file, field=missing[0], expected=f"groups {list(requested)}", found=f"groups {sorted(f.keys())}"
            )
        if not present:
            raise DataFormatError(
                file=file, field="train", expected="a 'train' or 'test' group", found=f"groups {sorted(f.keys())}"
            )
        kind = _choose_response(f, present, response, file)
        parts, frame_shape, n_cells, attrs = _read_splits(f, present, kind, file)

        repeats = _read_repeats(f, kind, n_cells, parts["test"]["n_frames"], file) if "test" in parts else None
        if repeats is not None and repeats[3]:
            attrs["trailing_bins_dropped_test"] = repeats[3]
        cell_ids = _cell_ids(f, n_cells, repeats[1] if repeats is not None else None, file)
        cell_types = _cell_types(f, n_cells, file)
        if "species" in f.attrs:
            attrs["species"] = _text_list(f.attrs["species"])[0]

        scale: tuple[float, float] = (0.0, 1.0)
        if stimulus_scale == "zscore":
            scale = _zscore_statistics(f, parts, file, chunk_frames)
            attrs["stimulus_mean_stored_units"] = scale[0]
            attrs["stimulus_sd_stored_units"] = scale[1]

    unit = _one_unit(parts, present, kind, file)
    order, time, counts, split_labels, frame_step = _joined_splits(parts, file)

    handle = _SharedH5File(file)
    stimulus = _stimulus_array(handle, parts, order, frame_shape, scale, lazy, chunk_frames, file)

    attrs.update(
        {
            "response_kind": kind,
            "stimulus_scale": "none" if stimulus_scale is None else stimulus_scale,
            "stimulus_stored_dtype": parts[order[0]]["stored_dtype"],
        }
    )
    coords = {"cell_type": cell_types} if cell_types is not None else None
    ds = recording_from_counts(counts, time, frame_step, cell_ids, source=file, cell_coords=coords, attrs=attrs)
    ds["response"].attrs["units"] = unit
    ds = ds.assign_coords(split=("time", split_labels.astype(str)))
    ds["stimulus"] = (("time", "y", "x"), stimulus, _stimulus_attrs(stimulus_scale, scale))
    if repeats is not None:
        ds["trials"] = _trials_array(repeats, parts, order, unit)
    if lazy:
        ds.set_close(handle.close)
    else:
        handle.close()
    return validate(ds, file=file)  # type: ignore[return-value]


def _requested_splits(splits: Sequence[str] | None, stimulus_scale: str | None) -> tuple[str, ...]:
    """Check :func:`open_retina_hdf5`'s options; the splits to read (``RECORDING_SPLITS`` by default)."""
    if stimulus_scale not in STIMULUS_SCALES:
        raise ConfigError(f"stimulus_scale must be one of {STIMULUS_SCALES}, got {stimulus_scale!r}")
    requested = tuple(RECORDING_SPLITS) if splits is None else tuple(splits)
    unknown = [s for s in requested if s not in RECORDING_SPLITS]
    if unknown or not requested or len(set(requested)) != len(requested):
        raise ConfigError(f"splits must be distinct values among {RECORDING_SPLITS}, got {splits!r}")
    return requested


def _read_splits(
    f: Any, present: list[str], kind: str, file: str
) -> tuple[dict[str, dict[str, Any]], tuple[int, ...], int, dict[str, Any]]:
    """Every split's movie facts, frame times and responses (:func:`_read_split`), checked to agree in frame
    shape and cell count: ``(parts, frame shape, number of cells, attrs with the trailing bins dropped)``."""
    parts: dict[str, dict[str, Any]] = {}
    frame_shape: tuple[int, ...] | None = None
    n_cells: int | None = None
    attrs: dict[str, Any] = {}
    for split in present:
        parts[split], frame_shape, n_cells, trimmed = _read_split(
            f, split, kind, file, frame_shape=frame_shape, n_cells=n_cells, first=present[0]
        )
        if trimmed:
            attrs[f"trailing_bins_dropped_{split}"] = trimmed
    assert n_cells is not None and frame_shape is not None
    return parts, frame_shape, n_cells, attrs


def _read_split(
    f: Any, split: str, kind: str, file: str, *, frame_shape: tuple[int, ...] | None, n_cells: int | None, first: str
) -> tuple[dict[str, Any], tuple[int, ...], int, int]:
    """One split: ``(part, frame shape, number of cells, trailing bins dropped)``; the frame shape and cell count
    must equal those of the splits before it (``None`` for the first, ``first``)."""
    import h5py

    stim_field = f"{split}/stimulus"
    stim = f.get(stim_field)
    if not isinstance(stim, h5py.Dataset):
        raise DataFormatError(
            file=file,
            field=stim_field,
            expected="a (time, y, x) dataset",
            found="none" if stim is None else type(stim).__name__,
        )
    if stim.ndim != 3 or not np.issubdtype(stim.dtype, np.number):
        raise DataFormatError(
            file=file,
            field=stim_field,
            expected="a numeric (time, y, x) movie",
            found=f"shape {stim.shape}, dtype {stim.dtype}",
        )
    n_frames = int(stim.shape[0])
    if frame_shape is None:
        frame_shape = tuple(stim.shape[1:])
    elif tuple(stim.shape[1:]) != frame_shape:
        raise DataFormatError(
            file=file, field=stim_field, expected=f"frames of {frame_shape} pixels", found=f"{tuple(stim.shape[1:])}"
        )
    if "time" not in f[split]:
        raise DataFormatError(file=file, field=f"{split}/time", expected=f"({n_frames},) frame times (s)", found="none")
    time = _check_time(_read(f, f"{split}/time", file), f"{split}/time", file, n_frames)
    time_units = _text_list(f[f"{split}/time"].attrs.get("units", "s"))[0]
    if time_units in ("ms", "msec", "milliseconds"):
        time = time / 1000.0

    resp_field = f"{split}/response/{kind}"
    if not isinstance(f.get(resp_field), h5py.Dataset):
        raise DataFormatError(
            file=file,
            field=resp_field,
            expected=f"a (cells, {n_frames}) dataset",
            found=f"response kinds {_response_kinds(f, [split])}",
        )
    values = _read(f, resp_field, file)
    if values.ndim != 2:
        raise DataFormatError(
            file=file, field=resp_field, expected=f"shape (cells, {n_frames})", found=f"shape {values.shape}"
        )
    values, trimmed = _trim_bins(values, n_frames, resp_field, file, stim_field)
    if n_cells is None:
        n_cells = int(values.shape[0])
    elif values.shape[0] != n_cells:
        raise DataFormatError(
            file=file, field=resp_field, expected=f"{n_cells} cells (as {first}/response/{kind})", found=values.shape[0]
        )
    units = _response_units(kind, values, f[resp_field].attrs.get("units"))
    _check_values(values, resp_field, file, counts=units == "count")
    part = {
        "stimulus": stim_field,
        "n_frames": n_frames,
        "time": time,
        "response": values.T,
        "units": units,
        "file_chunk": stim.chunks[0] if stim.chunks else None,
        "stored_dtype": str(stim.dtype),
    }
    return part, frame_shape, n_cells, trimmed


def _cell_types(f: Any, n_cells: int, file: str) -> list[str] | None:
    """The file's ``cell_types`` attribute (one per cell), if any."""
    cell_types = f.attrs.get("cell_types")
    if cell_types is not None:
        cell_types = _text_list(cell_types)
        if len(cell_types) != n_cells:
            raise DataFormatError(
                file=file, field="attrs.cell_types", expected=f"{n_cells} values (one per cell)", found=len(cell_types)
            )
    return cell_types


def _one_unit(parts: dict[str, dict[str, Any]], present: list[str], kind: str, file: str) -> str:
    """The responses' unit, which every split must share."""
    units = {parts[s]["units"] for s in parts}
    if len(units) != 1:
        raise DataFormatError(
            file=file,
            field=f"test/response/{kind}",
            expected=f"units {parts[present[0]]['units']!r}",
            found=f"units {sorted(units)}",
        )
    return units.pop()


def _joined_splits(
    parts: dict[str, dict[str, Any]], file: str
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, float]:
    """The splits in ``RECORDING_SPLITS`` order joined along time: ``(order, time, counts (time, cell), split
    label per frame, frame step)``; the frame step from the median step of the train frame times."""
    order = [s for s in RECORDING_SPLITS if s in parts]
    time = np.concatenate([parts[s]["time"] for s in order])
    counts = np.concatenate([parts[s]["response"] for s in order], axis=0)
    split_labels = np.concatenate([np.full(parts[s]["n_frames"], s, dtype=object) for s in order])
    train_time = parts[order[0]]["time"] if parts[order[0]]["n_frames"] > 1 else parts[order[-1]]["time"]
    if train_time.size < 2:
        raise DataFormatError(
            file=file,
            field=f"{order[0]}/time",
            expected="at least 2 frames to know the frame rate",
            found=f"{train_time.size} frame(s)",
        )
    frame_step = 1.0 / _rounded_rate(float(np.median(np.diff(train_time))))
    return order, time, counts, split_labels, frame_step


def _rounded_rate(frame_step: float) -> float:
    """Frame rate from a frame step, to 9 significant digits.

    Steps of 0.01 s read back from floats give 100 Hz this way, not 99.99999999999991.
    """
    return float(f"{1.0 / frame_step:.9g}")


def _cell_ids(f: Any, n_cells: int, repeat_names: list[str] | None, file: str) -> list[str]:
    import h5py

    if "cell_ids" in f.attrs:
        ids = _text_list(f.attrs["cell_ids"])
        if len(ids) != n_cells:
            raise DataFormatError(
                file=file, field="attrs.cell_ids", expected=f"{n_cells} ids (one per cell)", found=len(ids)
            )
        return ids
    if repeat_names is not None:
        return list(repeat_names)
    spikes = f.get("spikes")
    if isinstance(spikes, h5py.Group):
        names = sorted((k for k in spikes.keys() if k.startswith("cell")), key=_cell_number)
        if len(names) == n_cells:
            return names
    return [f"cell{i + 1:02d}" for i in range(n_cells)]


def _zscore_statistics(
    f: Any, parts: dict[str, dict[str, Any]], file: str, chunk_frames: int | None
) -> tuple[float, float]:
    """Mean and sd of the train movie (else the test movie): cached attributes, or one streaming pass."""
    import h5py

    source = "train" if isinstance(f.get("train/stimulus"), h5py.Dataset) else next(iter(parts))
    stim = f[f"{source}/stimulus"]
    if stim.ndim != 3:
        raise DataFormatError(
            file=file, field=f"{source}/stimulus", expected="a (time, y, x) movie", found=f"shape {stim.shape}"
        )
    cached = [stim.attrs.get(name) for name in _STATS_ATTRS]
    if all(v is not None for v in cached) and int(cached[2]) == stim.shape[0]:
        mean, sd = float(cached[0]), float(cached[1])
    else:
        frame_bytes = int(np.prod(stim.shape[1:])) * 4
        step = _dask_chunk_frames(frame_bytes, stim.chunks[0] if stim.chunks else None, chunk_frames)

        def blocks() -> Iterator[np.ndarray]:
            for start in range(0, stim.shape[0], step):
                try:
                    yield stim[start : start + step]
                except Exception as exc:
                    raise DataFormatError(
                        file=file,
                        field=f"{source}/stimulus",
                        expected="readable frames",
                        found=f"{type(exc).__name__}: {exc}",
                    ) from exc

        mean, sd, _ = stream_frame_statistics(blocks())
    if not (np.isfinite(mean) and np.isfinite(sd)):
        raise DataFormatError(
            file=file, field=f"{source}/stimulus", expected="finite pixel values", found=f"mean {mean}, sd {sd}"
        )
    # A blank movie has sd 0: leave it centred rather than dividing by zero.
    return mean, (sd if sd > 0 else 1.0)


def _stimulus_attrs(stimulus_scale: str | None, scale: tuple[float, float]) -> dict[str, Any]:
    if stimulus_scale is None:
        return {"units": "stored pixel values", "scale": "none"}
    return {
        "units": "contrast (z-score)",
        "scale": "zscore: (x - mean) / sd of the train movie",
        "mean_stored_units": scale[0],
        "sd_stored_units": scale[1],
    }


def _stimulus_array(
    handle: _SharedH5File,
    parts: dict[str, dict[str, Any]],
    order: list[str],
    frame_shape: tuple[int, ...],
    scale: tuple[float, float],
    lazy: bool,
    chunk_frames: int | None,
    file: str,
) -> Any:
    readers = [_FrameReader(handle, parts[s]["stimulus"], (parts[s]["n_frames"], *frame_shape), *scale) for s in order]
    if not lazy:
        return np.concatenate([reader[:] for reader in readers], axis=0)

    import dask.array as da
    from dask.base import tokenize

    stat = os.stat(file)
    arrays = []
    for split, reader in zip(order, readers):
        frame_bytes = int(np.prod(frame_shape)) * 4
        step = _dask_chunk_frames(frame_bytes, parts[split]["file_chunk"], chunk_frames)
        token = tokenize(file, stat.st_mtime_ns, stat.st_size, reader.name, reader.shape, scale, step)
        arrays.append(
            da.from_array(
                reader,
                chunks=(step, *frame_shape),
                name=f"retina-hdf5-{split}-{token}",
                lock=False,
                asarray=False,
                fancy=False,
                meta=np.empty((0,) * len(reader.shape), dtype=np.float32),
            )
        )
    return arrays[0] if len(arrays) == 1 else da.concatenate(arrays, axis=0)


def _trials_array(
    repeats: tuple[np.ndarray, list[str] | None, str, int],
    parts: dict[str, dict[str, Any]],
    order: list[str],
    response_units: str,
) -> xr.DataArray:
    """``(repeat, time, cell)``: NaN over train frames (lazy, never materialised), the repeats over test frames."""
    import dask.array as da

    test_values, _, field, _ = repeats
    test_values = test_values.astype(np.float64)
    n_repeats, _, n_cells = test_values.shape
    pieces = []
    for split in order:
        if split == "test":
            pieces.append(da.from_array(test_values, chunks=test_values.shape))
        else:
            n = parts[split]["n_frames"]
            pieces.append(
                da.full((n_repeats, n, n_cells), np.nan, dtype=np.float64, chunks=(n_repeats, min(n, 65536), n_cells))
            )
    data = pieces[0] if len(pieces) == 1 else da.concatenate(pieces, axis=1)
    finite = test_values[np.isfinite(test_values)]
    integer = bool(np.all(finite == np.round(finite)))
    units = response_units if field != "test/repeats/cellNN" else ("count" if integer else response_units)
    return xr.DataArray(data, dims=("repeat", "time", "cell"), attrs={"units": units, "source_field": field})


# --------------------------------------------------------------------------------------------- writing


def _split_indices(recording: xr.Dataset) -> list[tuple[str, np.ndarray]]:
    n = recording.sizes["time"]
    if "split" not in recording.coords:
        return [("train", np.arange(n))]
    labels = np.asarray(recording["split"].values).astype(str)
    return [(s, np.flatnonzero(labels == s)) for s in RECORDING_SPLITS if np.any(labels == s)]


def _as_selector(index: np.ndarray) -> slice | np.ndarray:
    if index.size and np.all(np.diff(index) == 1):
        return slice(int(index[0]), int(index[-1]) + 1)
    return index


def _frame_blocks(stimulus: xr.DataArray, index: np.ndarray, chunk_frames: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, float32 frames)`` blocks of ``stimulus[index]`` to write, each a whole number of HDF5 chunks
    (but the last), about 8 MiB or one dask chunk each.

    A dask-backed stimulus is computed one dask chunk at a time, each chunk once: slicing it into the writer's
    blocks instead would recompute a chunk for every block that touches it.
    """
    frame_bytes = 4 * int(np.prod(stimulus.shape[1:]))
    target = chunk_frames * max(1, _TARGET_DASK_CHUNK_BYTES // max(chunk_frames * frame_bytes, 1))
    selector = _as_selector(index)
    data = stimulus.data
    if not (hasattr(data, "dask") and isinstance(selector, slice)):
        for start in range(0, index.size, target):
            rows = _as_selector(index[start : start + target])
            yield start, np.asarray(stimulus.isel(time=rows).values, dtype=np.float32)
        return
    part = data[selector]
    pending: list[np.ndarray] = []
    n_pending = 0
    written = 0
    for i in range(part.numblocks[0]):
        block = np.asarray(part.blocks[i].compute(), dtype=np.float32)
        pending.append(block)
        n_pending += block.shape[0]
        if n_pending >= target:
            buffer = np.concatenate(pending) if len(pending) > 1 else pending[0]
            cut = (n_pending // chunk_frames) * chunk_frames
            yield written, buffer[:cut]
            written += cut
            pending = [buffer[cut:]] if cut < n_pending else []
            n_pending -= cut
    if n_pending:
        yield written, np.concatenate(pending) if len(pending) > 1 else pending[0]


def _response_kind_for(recording: xr.Dataset, response_kind: str | None) -> str:
    if response_kind is not None:
        return response_kind
    units = recording["response"].attrs.get("units", "count")
    stored = recording.attrs.get("response_kind")
    if isinstance(stored, str) and stored:
        return stored
    if units == "count":
        return "binned"
    raise ConfigError(
        f"response units are {units!r}: pass response_kind= (e.g. 'firing_rate_10ms') to name "
        "the dataset under <split>/response/"
    )


def write_retina_hdf5(
    recording: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    response_kind: str | None = None,
    compression: str | None = None,
) -> Path:
    """Write a recording in the deep-retina layout; return the path. The file appears atomically (temp + rename).

    ``stimulus`` is written as float32 ``<split>/stimulus`` in HDF5 chunks of ``chunk_frames`` whole frames,
    streamed block by block (a dask-backed stimulus is never loaded whole); ``response`` as
    ``<split>/response/<response_kind>`` ``(cells, T)`` (default ``binned`` for counts, else
    ``attrs['response_kind']``); ``trials`` on test times as ``test/repeats/cell01..`` ``(repeats, T)``; ``time``
    as ``<split>/time`` (s). Recordings without a ``split`` coordinate are written as ``train``. File attributes:
    ``cell_ids``, ``species`` and ``cell_types`` (from a ``cell_type`` coordinate) when known, and on
    ``train/stimulus`` the statistics that ``stimulus_scale="zscore"`` needs (``neuromodels_mean/std/n_frames``).
    """
    import h5py

    validate(recording)
    if "stimulus" not in recording.data_vars:
        raise DataFormatError(
            file=recording.attrs.get("source"),
            field="stimulus",
            expected="a stimulus(time, y, x) variable (the layout stores the movie)",
            found="none",
        )
    if int(chunk_frames) < 1:
        raise ConfigError(f"chunk_frames must be a positive number of frames, got {chunk_frames!r}")
    kind = _response_kind_for(recording, response_kind)
    if "/" in kind or not kind:
        raise ConfigError(f"response_kind must be a plain dataset name, got {kind!r}")
    stimulus = recording["stimulus"]
    response = recording["response"]
    cells = [str(c) for c in recording["cell"].values]
    frame_shape = tuple(int(s) for s in stimulus.shape[1:])
    target = Path(path)
    with atomic_path(target, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["cell_ids"] = np.asarray(cells, dtype=h5py.string_dtype())
            f.attrs["writer"] = "neuromodels.datasets.write_retina_hdf5"
            if recording.attrs.get("species"):
                f.attrs["species"] = str(recording.attrs["species"])
            if "cell_type" in recording.coords:
                f.attrs["cell_types"] = np.asarray(
                    [str(v) for v in recording["cell_type"].values], dtype=h5py.string_dtype()
                )
            for split, index in _split_indices(recording):
                selector = _as_selector(index)
                n = int(index.size)
                group = f.create_group(split)
                dset = group.create_dataset(
                    "stimulus",
                    shape=(n, *frame_shape),
                    dtype=np.float32,
                    chunks=(min(int(chunk_frames), max(n, 1)), *frame_shape),
                    compression=compression,
                )
                mean, sd, frames = stream_frame_statistics(_written_blocks(stimulus, index, dset))
                if split == "train":
                    dset.attrs["neuromodels_mean"] = mean
                    dset.attrs["neuromodels_std"] = sd
                    dset.attrs["neuromodels_n_frames"] = frames
                time = group.create_dataset(
                    "time", data=np.asarray(recording["time"].values[selector], dtype=np.float64)
                )
                time.attrs["units"] = "s"
                values = np.asarray(response.isel(time=selector).values).T
                resp = group.create_dataset(f"response/{kind}", data=values)
                resp.attrs["units"] = str(response.attrs.get("units", "count"))
                if split == "test" and "trials" in recording.data_vars:
                    trials = np.asarray(recording["trials"].isel(time=selector).values)  # (repeat, time, cell)
                    for i in range(len(cells)):
                        group.create_dataset(f"repeats/cell{i + 1:02d}", data=trials[:, :, i])
    return target


def _written_blocks(stimulus: xr.DataArray, index: np.ndarray, dset: Any) -> Iterator[np.ndarray]:
    """Write the frames ``index`` of ``stimulus`` into ``dset`` block by block (one HDF5 chunk of frames at a
    time), yielding each block after it is written (for the streamed statistics)."""
    for start, block in _frame_blocks(stimulus, index, dset.chunks[0]):
        dset[start : start + block.shape[0]] = block
        yield block

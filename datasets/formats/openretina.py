"""openretina's generic dataset folder (``stimuli/*.npy`` + one HDF5 file per session) -> a recording.

Source of truth: openretina ``openretina/data_io/h5_dataset_reader.py`` (``load_stimuli``, ``load_responses``)
and ``openretina/cli/create_data.py`` (``openretina create-data``, which writes example folders)::

    folder/
        stimuli/<name>.npy        (channels, time, height, width)   a movie shared by all sessions
        <session>.hdf5 | .h5      one file per session (session name = file stem):
            responses_<name>      (neurons, time)                   responses to stimulus <name>
            stimulus_<name>       (channels, time, height, width)   optional session-specific movie,
                                                                    used instead of stimuli/<name>.npy
            session_info/<key>    per-neuron metadata, e.g. celltypes (neurons,)

openretina takes the stimuli a session has ``responses_`` for, sorts their names, and concatenates the names
not listed as test stimuli (``test_names`` in its configuration) along time into the training movie; the
test stimuli stay separate. The files store no frame rate, no neuron ids and no test list.

:func:`open_openretina` turns one session into a data-model recording: stimuli in that order (training names
sorted, then test names sorted) concatenated along ``time`` with a ``stimulus_name`` and a ``split``
coordinate on ``time``; ``stimulus(time, y, x)`` float32, lazy (dask over memory-mapped ``.npy`` files or the
session's HDF5 datasets); ``response(time, cell)`` read eagerly and checked.

Choices, and why:

* **Test stimuli.** ``test_stimuli=`` names them (openretina's ``test_names``); by default a file written by
  :func:`write_openretina` says which (attribute ``test_stimuli``), otherwise names containing ``"test"``
  (case-insensitive) are test stimuli.
* **Channels.** The data model's stimulus has no channel axis. ``channel=0`` (default) keeps the first channel
  (for single-channel movies, the movie); ``channel=k`` another one; ``channel="mean"`` averages channels.
  Averaging is not the default because channels are usually different spectral bands (UV and green in
  Hoefling et al. 2024), which a mean would mix.
* **Time.** ``time = k / frame_rate_hz`` for frame ``k`` of the concatenation (continuous across stimuli).
  The frame rate is the ``frame_rate_hz`` argument, else the session file's ``frame_rate_hz`` attribute
  (written by :func:`write_openretina`), else 30 Hz (the rate of openretina's own datasets' movies) with a
  warning; ``attrs['frame_rate_source']`` says which.
* **Units.** ``response_units=`` names them; else the session file's ``response_units`` attribute; else
  ``'count'`` when every value is an integer, otherwise ``'a.u.'``. Signed responses (z-scored calcium traces;
  openretina's own ``create-data`` example writes linear responses to Gaussian noise, negative about half the
  time) are read when their units are given and are a signed unit (``response_units="z-score"``, ``"dF/F"``,
  ...; docs/data-model.md); with no units given, or with a unit of counts or rates (``'count'``, ``'Hz'``), a
  negative value is a :class:`~neuromodels.errors.DataFormatError` saying to pass ``response_units``.
* **Sessions.** ``session=None`` opens the first session in sorted order; ``attrs['sessions']`` lists all.
* **Cells.** Ids from the session file's ``cell_ids`` attribute (written by :func:`write_openretina`), else
  ``cell000``... by row; ``session_info`` arrays with one value per neuron become coordinates on ``cell``
  (``celltypes``/``cell_types`` -> ``cell_type``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neuromodels.datasets._io import open_hdf5
from neuromodels.datasets._validate import NON_NEGATIVE_UNITS, validate
from neuromodels.datasets.recording import recording_from_counts
from neuromodels.errors import ConfigError, DataFormatError

__all__ = ["sniff_openretina", "open_openretina", "write_openretina", "DEFAULT_FRAME_RATE_HZ"]

DEFAULT_FRAME_RATE_HZ = 30.0
"""Frame rate assumed when neither the caller nor the session file gives one (openretina's movies are 30 Hz)."""

STIMULUS_FOLDER = "stimuli"
RESPONSES_PREFIX = "responses_"
SESSION_STIMULUS_PREFIX = "stimulus_"
SESSION_INFO = "session_info"
_SESSION_SUFFIXES = (".hdf5", ".h5")
_COORD_NAMES = {"celltypes": "cell_type", "cell_types": "cell_type", "celltype": "cell_type"}
_TARGET_CHUNK_BYTES = 8 * 2**20


def _session_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _SESSION_SUFFIXES)


def sniff_openretina(folder: str | os.PathLike[str]) -> bool:
    """True for a folder holding a ``*.hdf5``/``*.h5`` file with ``responses_*`` datasets; never raises."""
    try:
        import h5py

        p = Path(folder)
        if not p.is_dir():
            return False
        for session in _session_files(p):
            try:
                with h5py.File(session, "r") as f:
                    if any(k.startswith(RESPONSES_PREFIX) for k in f.keys()):
                        return True
            except Exception:  # noqa: BLE001 - a sniffer answers 'not mine' for a file it cannot read
                continue
        return False
    except Exception:  # noqa: BLE001 - a sniffer answers 'not mine' for anything it cannot read
        return False


def _text(value: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(np.asarray(value))]


def _pick_session(folder: Path, session: str | None) -> tuple[Path, list[str]]:
    files = _session_files(folder)
    names = [p.stem for p in files]
    if not files:
        raise DataFormatError(
            file=folder,
            field="<session>.hdf5",
            expected="one HDF5 file per session (openretina's generic layout)",
            found="none",
        )
    if session is None:
        return files[0], names
    for p in files:
        if session in (p.stem, p.name):
            return p, names
    raise DataFormatError(file=folder, field="session", expected=f"one of {names}", found=repr(session))


def _stimulus_source(folder: Path, session_file: Path, f: Any, name: str) -> tuple[Any, str, tuple[int, ...], str]:
    """(reader source, dataset name, shape, field for messages) of stimulus ``name`` for this session."""
    import h5py

    from neuromodels.datasets.formats.retina_hdf5 import _NpyFile, _SharedH5File

    key = SESSION_STIMULUS_PREFIX + name
    if isinstance(f.get(key), h5py.Dataset):
        return _SharedH5File(str(session_file)), key, tuple(f[key].shape), f"{session_file.name}:{key}"
    npy = folder / STIMULUS_FOLDER / f"{name}.npy"
    field = f"{STIMULUS_FOLDER}/{name}.npy"
    if not npy.is_file():
        raise DataFormatError(
            file=folder,
            field=field,
            expected=f"the stimulus of {session_file.name}:{RESPONSES_PREFIX}{name}",
            found="no such file (and no session-specific stimulus_ dataset)",
        )
    try:
        shape = tuple(np.load(npy, mmap_mode="r", allow_pickle=False).shape)
    except Exception as exc:
        raise DataFormatError(
            file=npy,
            field=field,
            expected="a NumPy .npy movie (channels, time, height, width)",
            found=f"{type(exc).__name__}: {exc}",
        ) from exc
    return _NpyFile(str(npy)), name, shape, field


def _check_responses(values: np.ndarray, field: str, file: Any, units: str | None) -> None:
    if (
        values.ndim != 2
        or not np.issubdtype(values.dtype, np.number)
        or np.issubdtype(values.dtype, np.complexfloating)
    ):
        raise DataFormatError(
            file=file,
            field=field,
            expected="a real (neurons, time) array",
            found=f"shape {values.shape}, dtype {values.dtype}",
        )
    if np.issubdtype(values.dtype, np.floating) and not np.all(np.isfinite(values)):
        bad = np.argwhere(~np.isfinite(values))[0]
        n_bad = int((~np.isfinite(values)).sum())
        raise DataFormatError(
            file=file,
            field=field,
            expected="finite values",
            found=f"{n_bad} NaN/inf (first at neuron {bad[0]}, frame {bad[1]})",
        )
    signed = units is not None and units.strip().lower() not in NON_NEGATIVE_UNITS
    if values.size and not signed and values.min() < 0:
        bad = np.argwhere(values < 0)[0]
        hint = (
            "pass response_units='z-score' (or 'dF/F', 'a.u.') for signed traces"
            if units is None
            else f"responses in {units!r} cannot be negative; pass response_units='z-score' (or 'dF/F', 'a.u.') "
            "for signed traces"
        )
        raise DataFormatError(
            hint,
            file=file,
            field=field,
            expected="non-negative responses (spike counts or rates)",
            found=f"negative value {values.min()!r} (first at neuron {bad[0]}, frame {bad[1]})",
        )


def open_openretina(
    folder: str | os.PathLike[str],
    *,
    session: str | None = None,
    stimulus_names: Sequence[str] | None = None,
    test_stimuli: Sequence[str] | None = None,
    channel: int | str = 0,
    frame_rate_hz: float | None = None,
    response_units: str | None = None,
    stimulus_scale: str | None = None,
) -> xr.Dataset:
    """Open one session of an openretina generic dataset folder as a validated recording.

    Parameters
    ----------
    folder
        The dataset folder (``stimuli/`` and ``<session>.hdf5`` files).
    session
        Session name (file stem, or file name); default the first in sorted order.
    stimulus_names
        Stimuli to take (default: every ``responses_<name>`` of the session).
    test_stimuli
        Names that form the test split (see the module notes for the default).
    channel
        Channel index of the ``(channels, time, h, w)`` movies, or ``"mean"``.
    frame_rate_hz
        Frames per second (default: file attribute, else 30 Hz with a warning).
    response_units
        Units of the responses (default: file attribute, else ``'count'`` or ``'a.u.'``); a signed unit
        (``'z-score'``, ``'dF/F'``, anything but counts and rates) admits negative responses.
    stimulus_scale
        ``None``: stored values; ``"zscore"``: ``(x - mean) / sd`` over every pixel of the training movies
        (computed in one streaming pass).

    Returns
    -------
    xr.Dataset
        ``stimulus(time, y, x)`` float32 (dask), ``response(time, cell)``, coords ``time`` (s), ``cell``,
        ``split``, ``stimulus_name``; attrs ``frame_rate_hz``, ``source`` (the folder), ``session``, ``sessions``.
    """
    _check_options(channel, stimulus_scale)
    root = Path(folder)
    if not root.is_dir():
        raise DataFormatError(
            file=root,
            field="<path>",
            expected="an openretina dataset folder",
            found="no such folder" if not root.exists() else "a file",
        )
    source = str(root)
    session_file, sessions = _pick_session(root, session)
    f = open_hdf5(session_file)

    with f:
        names = _stimulus_names(f, session_file, stimulus_names)
        if test_stimuli is not None:
            test_set = {str(n) for n in test_stimuli}
        elif "test_stimuli" in f.attrs:
            test_set = set(_text(f.attrs["test_stimuli"]))
        else:
            test_set = {n for n in names if "test" in n.lower()}
        ordered = [n for n in names if n not in test_set] + [n for n in names if n in test_set]
        frame_rate_hz, rate_source = _frame_rate(f, session_file, frame_rate_hz)
        if response_units is None and "response_units" in f.attrs:
            response_units = _text(f.attrs["response_units"])[0]
        readers, responses, frame_shape, n_channels = _read_stimuli_and_responses(
            root, session_file, f, ordered, channel, response_units
        )
        n_neurons = responses[0].shape[1]
        cell_ids = _cell_ids(f, session_file, n_neurons)
        cell_coords = _session_info(f, n_neurons)

    counts = np.concatenate(responses, axis=0)
    if response_units is None:
        integer = np.issubdtype(counts.dtype, np.integer) or bool(np.all(counts == np.round(counts)))
        response_units = "count" if integer else "a.u."
    stimulus, scale = _lazy_stimulus(readers, ordered, test_set, stimulus_scale, frame_shape)

    attrs = {
        "session": session_file.stem,
        "sessions": ", ".join(sessions),
        "frame_rate_source": rate_source,
        "stimulus_channels": int(n_channels or 1),
        "stimulus_channel": str(channel),
        "stimulus_scale": "none" if stimulus_scale is None else stimulus_scale,
        "test_stimuli": ", ".join(n for n in ordered if n in test_set),
    }
    lengths = [r.shape[0] for r in readers]
    time = np.arange(int(sum(lengths)), dtype=np.float64) / frame_rate_hz
    ds = recording_from_counts(
        counts, time, 1.0 / frame_rate_hz, cell_ids, source=source, cell_coords=cell_coords, attrs=attrs
    )
    ds.attrs["frame_rate_hz"] = float(frame_rate_hz)
    ds["response"].attrs["units"] = response_units
    labels = np.concatenate(
        [np.full(n, "test" if name in test_set else "train", dtype=object) for name, n in zip(ordered, lengths)]
    ).astype(str)
    stim_names = np.concatenate([np.full(n, name, dtype=object) for name, n in zip(ordered, lengths)]).astype(str)
    ds = ds.assign_coords(split=("time", labels), stimulus_name=("time", stim_names))
    stim_attrs = {"units": "stored values" if stimulus_scale is None else "contrast (z-score)"}
    if stimulus_scale == "zscore":
        stim_attrs.update(mean_stored_units=scale[0], sd_stored_units=scale[1])
    ds["stimulus"] = (("time", "y", "x"), stimulus, stim_attrs)
    handles = {id(r.source): r.source for r in readers}
    ds.set_close(lambda: [h.close() for h in handles.values()])
    return validate(ds, file=source)  # type: ignore[return-value]


def _check_options(channel: int | str, stimulus_scale: str | None) -> None:
    from neuromodels.datasets.formats.retina_hdf5 import STIMULUS_SCALES

    if stimulus_scale not in STIMULUS_SCALES:
        raise ConfigError(f"stimulus_scale must be one of {STIMULUS_SCALES}, got {stimulus_scale!r}")
    if not (
        channel == "mean" or (isinstance(channel, (int, np.integer)) and not isinstance(channel, bool) and channel >= 0)
    ):
        raise ConfigError(f"channel must be a channel index (int >= 0) or 'mean', got {channel!r}")


def _stimulus_names(f: Any, session_file: Path, stimulus_names: Sequence[str] | None) -> list[str]:
    """The stimuli to read: ``stimulus_names`` (checked against the session's responses), else all of them."""
    available = sorted(k[len(RESPONSES_PREFIX) :] for k in f.keys() if k.startswith(RESPONSES_PREFIX))
    if stimulus_names is None:
        if not available:
            raise DataFormatError(
                file=session_file,
                field=f"{RESPONSES_PREFIX}<name>",
                expected="responses to at least one stimulus",
                found=sorted(f.keys()),
            )
        return available
    names = [str(n) for n in stimulus_names]
    missing = [n for n in names if n not in available]
    if missing:
        raise DataFormatError(
            file=session_file,
            field=RESPONSES_PREFIX + missing[0],
            expected=f"responses to stimulus {missing[0]!r}",
            found=f"responses to {available}",
        )
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"stimulus_names must be distinct names, got {stimulus_names!r}")
    return names


def _frame_rate(f: Any, session_file: Path, frame_rate_hz: float | None) -> tuple[float, str]:
    """``(frame rate, where it came from)``: the argument, the file attribute, else 30 Hz with a warning."""
    rate_source = "argument"
    if frame_rate_hz is None:
        if "frame_rate_hz" in f.attrs:
            frame_rate_hz, rate_source = float(np.asarray(f.attrs["frame_rate_hz"])), "file attribute"
        else:
            frame_rate_hz, rate_source = DEFAULT_FRAME_RATE_HZ, "assumed (openretina files store none)"
            # stacklevel 3: the warning points at the caller of open_openretina
            warnings.warn(
                f"{session_file}: openretina files store no frame rate; assuming "
                f"{DEFAULT_FRAME_RATE_HZ:g} Hz (pass frame_rate_hz=...)",
                stacklevel=3,
            )
    if not (np.isfinite(frame_rate_hz) and frame_rate_hz > 0):
        raise ConfigError(f"frame_rate_hz must be a positive number, got {frame_rate_hz!r}")
    return frame_rate_hz, rate_source


def _read_stimuli_and_responses(
    root: Path,
    session_file: Path,
    f: Any,
    ordered: list[str],
    channel: int | str,
    response_units: str | None,
) -> tuple[list[Any], list[np.ndarray], tuple[int, ...], int]:
    """Per stimulus in ``ordered``: a lazy frame reader of its movie and its responses ``(time, neuron)``, read
    and checked (movies of one shape, responses as long as their movie, one neuron count); with the frame shape
    and the number of channels."""
    from neuromodels.datasets.formats.retina_hdf5 import _FrameReader

    readers: list[_FrameReader] = []
    responses: list[np.ndarray] = []
    frame_shape: tuple[int, ...] | None = None
    n_channels: int | None = None
    n_neurons: int | None = None
    for name in ordered:
        src, dataset, shape, stim_field = _stimulus_source(root, session_file, f, name)
        if len(shape) != 4:
            raise DataFormatError(
                file=root,
                field=stim_field,
                expected="a 4-d movie (channels, time, height, width)",
                found=f"shape {shape}",
            )
        if frame_shape is None:
            frame_shape, n_channels = shape[2:], shape[0]
        elif shape[2:] != frame_shape or shape[0] != n_channels:
            raise DataFormatError(
                file=root,
                field=stim_field,
                expected=f"{n_channels} channels of {frame_shape} pixels (as {ordered[0]})",
                found=f"shape {shape}",
            )
        if channel != "mean" and int(channel) >= shape[0]:
            raise ConfigError(f"channel={channel} but the movies have {shape[0]} channel(s)")
        resp_field = RESPONSES_PREFIX + name
        try:
            values = np.asarray(f[resp_field][()])
        except Exception as exc:
            raise DataFormatError(
                file=session_file,
                field=resp_field,
                expected="a readable (neurons, time) dataset",
                found=f"{type(exc).__name__}: {exc}",
            ) from exc
        _check_responses(values, resp_field, session_file, response_units)
        if values.shape[1] != shape[1]:
            raise DataFormatError(
                file=session_file,
                field=resp_field,
                expected=f"{shape[1]} time bins (as {stim_field})",
                found=values.shape[1],
            )
        if n_neurons is None:
            n_neurons = values.shape[0]
        elif values.shape[0] != n_neurons:
            raise DataFormatError(
                file=session_file,
                field=resp_field,
                expected=f"{n_neurons} neurons (as {RESPONSES_PREFIX}{ordered[0]})",
                found=values.shape[0],
            )
        readers.append(
            _FrameReader(
                src, dataset, (shape[1], *shape[2:]), channel=channel if shape[0] > 1 or channel == "mean" else 0
            )
        )
        responses.append(values.T)
    assert n_neurons is not None and frame_shape is not None and n_channels is not None
    return readers, responses, frame_shape, n_channels


def _cell_ids(f: Any, session_file: Path, n_neurons: int) -> list[str]:
    """The session file's ``cell_ids`` attribute, else ``cell000``... by row."""
    cell_ids = (
        _text(f.attrs["cell_ids"])
        if "cell_ids" in f.attrs
        else [f"cell{i:0{max(3, len(str(n_neurons - 1)))}d}" for i in range(n_neurons)]
    )
    if len(cell_ids) != n_neurons:
        raise DataFormatError(
            file=session_file, field="attrs.cell_ids", expected=f"{n_neurons} ids", found=len(cell_ids)
        )
    return cell_ids


def _lazy_stimulus(
    readers: list[Any], ordered: list[str], test_set: set[str], stimulus_scale: str | None, frame_shape: tuple[int, ...]
) -> tuple[Any, tuple[float, float]]:
    """The movies concatenated along time as one dask array (z-scored with the training movies' statistics for
    ``stimulus_scale="zscore"``); with ``(mean, sd)`` of that scaling (``(0, 1)`` without)."""
    import dask.array as da

    from neuromodels.datasets.formats.retina_hdf5 import stream_frame_statistics

    scale = (0.0, 1.0)
    if stimulus_scale == "zscore":
        train = [r for r, name in zip(readers, ordered) if name not in test_set] or readers
        mean, sd, _ = stream_frame_statistics(
            r[start : start + 256] for r in train for start in range(0, r.shape[0], 256)
        )
        scale = (mean, sd if sd > 0 else 1.0)
        for r in readers:
            r.subtract, r.divide = scale
    frame_bytes = int(np.prod(frame_shape)) * 4
    step = max(1, _TARGET_CHUNK_BYTES // frame_bytes)
    pieces = [
        da.from_array(
            r,
            chunks=(min(step, max(r.shape[0], 1)), *frame_shape),
            lock=False,
            asarray=False,
            fancy=False,
            meta=np.empty((0, 0, 0), dtype=np.float32),
        )
        for r in readers
    ]
    stimulus = pieces[0] if len(pieces) == 1 else da.concatenate(pieces, axis=0)
    return stimulus, scale


def _session_info(f: Any, n_neurons: int) -> dict[str, np.ndarray]:
    """``session_info`` arrays with one value per neuron, as cell coordinates."""
    import h5py

    info = f.get(SESSION_INFO)
    coords: dict[str, np.ndarray] = {}
    if not isinstance(info, h5py.Group):
        return coords
    for key, item in info.items():
        if not isinstance(item, h5py.Dataset) or item.ndim != 1 or item.shape[0] != n_neurons:
            continue
        values = np.asarray(item[()])
        if values.dtype.kind in "SO":
            values = np.asarray(_text(values), dtype=object)
        name = _COORD_NAMES.get(key, key)
        if name in ("cell", "time", "split", "stimulus_name"):
            name = f"session_info_{name}"
        coords[name] = values
    return coords


def _names_by_stimulus(recording: xr.Dataset) -> list[tuple[str, np.ndarray, str]]:
    """(stimulus name, time indices, split) per stimulus, in order of first appearance."""
    n = recording.sizes["time"]
    labels = np.asarray(recording["split"].values).astype(str) if "split" in recording.coords else np.full(n, "train")
    names = np.asarray(recording["stimulus_name"].values).astype(str) if "stimulus_name" in recording.coords else labels
    out = []
    for name in dict.fromkeys(names.tolist()):
        index = np.flatnonzero(names == name)
        splits = set(labels[index].tolist())
        if len(splits) != 1:
            raise DataFormatError(
                file=recording.attrs.get("source"),
                field="stimulus_name",
                expected=f"stimulus {name!r} in one split",
                found=f"in splits {sorted(splits)}",
            )
        if "/" in name or not name:
            raise DataFormatError(
                file=recording.attrs.get("source"),
                field="stimulus_name",
                expected="names usable as file names",
                found=repr(name),
            )
        out.append((name, index, splits.pop()))
    return out


def write_openretina(
    recording: xr.Dataset,
    folder: str | os.PathLike[str],
    *,
    session: str = "session_0",
    overwrite: bool = False,
) -> Path:
    """Write a recording as an openretina generic dataset folder (one session); return the folder.

    One stimulus per ``stimulus_name`` (or, without that coordinate, per split: ``train``, ``test``):
    ``stimuli/<name>.npy`` float32 ``(1, time, y, x)``, streamed to disk block by block; ``<session>.hdf5`` with
    ``responses_<name>`` ``(neurons, time)``, ``session_info/<coord>`` for every per-cell coordinate, and the
    attributes openretina ignores but :func:`open_openretina` reads back: ``frame_rate_hz``, ``response_units``,
    ``cell_ids``, ``test_stimuli``. ``trials`` are not written (the layout has no place for them; a warning
    says so). The folder is written beside the target and renamed into place; an existing non-empty
    ``folder`` is an error unless ``overwrite=True``.
    """
    import h5py

    from neuromodels.datasets.formats.retina_hdf5 import _frame_blocks

    validate(recording)
    source = recording.attrs.get("source")
    if "stimulus" not in recording.data_vars:
        raise DataFormatError(file=source, field="stimulus", expected="a stimulus(time, y, x) variable", found="none")
    if not session or "/" in session:
        raise ConfigError(f"session must be a plain file name, got {session!r}")
    target = Path(folder)
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not overwrite:
        raise ConfigError(f"{target} exists and is not an empty folder; pass overwrite=True to replace it")
    if "trials" in recording.data_vars:
        warnings.warn(
            "openretina's generic layout has no trial-resolved responses: 'trials' are not written", stacklevel=2
        )
    rate = recording.attrs.get("frame_rate_hz")
    if rate is None:
        time = np.asarray(recording["time"].values, dtype=float)
        rate = 1.0 / float(np.median(np.diff(time))) if time.size > 1 else DEFAULT_FRAME_RATE_HZ
    stimulus = recording["stimulus"]
    response = recording["response"]
    frame_shape = tuple(int(s) for s in stimulus.shape[1:])
    groups = _names_by_stimulus(recording)

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes the folder private; the result should not be
        (tmp / STIMULUS_FOLDER).mkdir()
        with h5py.File(tmp / f"{session}.hdf5", "w") as f:
            for name, index, _ in groups:
                movie = np.lib.format.open_memmap(
                    tmp / STIMULUS_FOLDER / f"{name}.npy",
                    mode="w+",
                    dtype=np.float32,
                    shape=(1, index.size, *frame_shape),
                )
                for start, block in _frame_blocks(stimulus, index, 1):
                    movie[0, start : start + block.shape[0]] = block
                movie.flush()
                del movie
                f.create_dataset(RESPONSES_PREFIX + name, data=np.asarray(response.isel(time=index).values).T)
            for coord, values in recording["cell"].coords.items():
                if coord == "cell" or values.dims != ("cell",):
                    continue
                array = np.asarray(values.values)
                if array.dtype.kind in "UO":
                    array = np.asarray([str(v) for v in array], dtype=h5py.string_dtype())
                key = "celltypes" if coord == "cell_type" else coord
                f.create_dataset(f"{SESSION_INFO}/{key}", data=array)
            f.attrs["frame_rate_hz"] = float(rate)
            f.attrs["response_units"] = str(response.attrs.get("units", "count"))
            f.attrs["cell_ids"] = np.asarray([str(c) for c in recording["cell"].values], dtype=h5py.string_dtype())
            f.attrs["test_stimuli"] = np.asarray([n for n, _, s in groups if s == "test"], dtype=h5py.string_dtype())
            f.attrs["writer"] = "neuromodels.datasets.write_openretina"
        if target.exists():
            backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, backup / target.name)
            os.replace(tmp, target)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target

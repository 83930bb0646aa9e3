"""Format detection and the generic :func:`load`.

Each supported format is a :class:`Format`: a name, the file extensions it claims, an optional ``sniff``
that looks inside the file (for extensions shared by several layouts, like ``.h5`` or ``.mat``), and the
``open`` function. Modules are imported only when their format is used, so that ``import
neuromodels.datasets`` stays light (no torch, pynwb, neo).

Before any format looks inside, a file whose extension promises a container (``.h5``/``.hdf5``, ``.npy``/``.npz``,
``.mat``) must have its signature ("not a readable HDF5 file" otherwise). ``NAME.EXT.gz`` is decompressed to a
private temporary file ``NAME.EXT``, read as that (into memory), and removed; errors and ``attrs['source']``
name the ``.gz`` file.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xarray as xr

from neuromodels.datasets._containers import check_container, gunzipped, npy_summary
from neuromodels.errors import ConfigError, DataFormatError, NeuromodelsError, UnknownFormatError, note_loaded

__all__ = ["Format", "FORMATS", "detect_format", "load"]

SAMPLE_PREFIX = "sample:"


@dataclass(frozen=True)
class Format:
    name: str
    description: str
    module: str  # module under neuromodels.datasets.formats
    opener: str  # function name in that module
    extensions: tuple[str, ...] = ()
    sniffer: str | None = None  # function name in that module: (Path) -> bool
    directory: bool = False  # the format is a folder, not a file
    options: dict[str, str] = field(default_factory=dict)

    def _function(self, name: str) -> Callable[..., Any]:
        mod = importlib.import_module(f"neuromodels.datasets.formats.{self.module}")
        return getattr(mod, name)

    def sniff(self, path: Path) -> bool:
        if self.sniffer is None:
            return True
        try:
            return bool(self._function(self.sniffer)(path))
        except DataFormatError:
            raise
        except Exception:  # noqa: BLE001 - a sniffer must never mask the real error of the real opener
            return False

    def open(self, path: Path, **options: Any) -> xr.Dataset | xr.DataArray:
        opener = self._function(self.opener)
        accepted = [
            p.name for p in inspect.signature(opener).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise ConfigError(
                f"{path}: the {self.name} reader ({self.opener}) has no option {', '.join(map(repr, unknown))}; "
                f"its options are: {', '.join(accepted) or 'none'}"
            )
        return opener(path, **options)


# Order matters only among formats that share an extension: the first whose sniff accepts wins.
FORMATS: tuple[Format, ...] = (
    Format(
        "retina-hdf5",
        "Retina HDF5, deep-retina layout (train/ and test/ groups)",
        "retina_hdf5",
        "open_retina_hdf5",
        (".h5", ".hdf5"),
        "sniff_retina_hdf5",
    ),
    Format(
        "openretina",
        "openretina generic format (stimuli/*.npy + session_*.hdf5)",
        "openretina",
        "open_openretina",
        (),
        "sniff_openretina",
        directory=True,
    ),
    Format("nwb", "Neurodata Without Borders 2 (units table, trials)", "nwb", "open_nwb", (".nwb",)),
    Format(
        "netcdf", "netCDF: Brain-Score/BrainIO assembly or neuromodels recording", "brainio", "open_netcdf", (".nc",)
    ),
    Format(
        "spike-trials-mat",
        "MATLAB cell array of spike times per stimulus/cell/trial",
        "spike_trials",
        "open_spike_trials",
        (".mat",),
        "sniff_spike_trials",
    ),
    Format(
        "spike-times-npy",
        "NumPy array of spike-time arrays, one per cell",
        "spike_trials",
        "open_spike_time_matrix",
        (".npy", ".npz"),
        "sniff_spike_time_matrix",
    ),
    Format(
        "neo",
        "any format python-neo reads (Spike2, Plexon, NeuroExplorer, Blackrock, NIX, ...)",
        "neo_io",
        "open_neo",
        (),
        "sniff_neo",
    ),
)


# Files that hold plain arrays rather than a recording: how to read them, for the error that points to the constructors.
_ARRAY_READERS = {".npy": "numpy.load", ".npz": "numpy.load", ".mat": "scipy.io.loadmat"}

GZIP_SUFFIX = ".gz"


def _rename_in_error(err: BaseException, inner: Path, original: Path) -> None:
    """Make ``err`` (raised while reading the decompressed copy ``inner``) name ``original`` instead."""
    err.args = tuple(a.replace(str(inner), str(original)) if isinstance(a, str) else a for a in err.args)
    if getattr(err, "file", None) == str(inner):
        err.file = str(original)  # type: ignore[attr-defined]


@contextlib.contextmanager
def _readable(path: Path) -> Iterator[Path]:
    """``path`` itself, or for ``NAME.EXT.gz`` a private decompressed copy ``NAME.EXT`` (removed on exit);
    errors raised inside name ``path``."""
    if path.suffix.lower() != GZIP_SUFFIX or not path.is_file():
        yield path
        return
    if not Path(path.stem).suffix:
        raise UnknownFormatError(
            file=path,
            field="<extension>",
            expected="a gzipped data file NAME.EXT.gz (.mat.gz, .npy.gz, .h5.gz, ...)",
            found=repr(path.name),
        )
    with gunzipped(path) as inner:
        try:
            yield inner
        except NeuromodelsError as err:
            _rename_in_error(err, inner, path)
            raise


def _in_memory(obj: xr.Dataset | xr.DataArray, inner: Path, original: Path) -> xr.Dataset | xr.DataArray:
    """``obj`` read from the temporary copy ``inner``: loaded, its files closed, its attrs naming ``original``."""
    obj.load()
    obj.close()
    for key, value in obj.attrs.items():
        if isinstance(value, str) and str(inner) in value:
            obj.attrs[key] = value.replace(str(inner), str(original))
    return obj


def detect_format(path: str | os.PathLike[str]) -> Format:
    """The :class:`Format` of ``path`` (of ``NAME.EXT`` for ``NAME.EXT.gz``); :class:`UnknownFormatError` naming
    the file when none fits, :class:`DataFormatError` "not a readable HDF5 file" (NumPy, MATLAB) for an empty or
    garbage file."""
    with _readable(Path(path)) as readable:
        return _detect(readable)


def _detect(p: Path) -> Format:
    if not p.exists():
        raise DataFormatError(file=p, field="<path>", expected="an existing file or folder", found="no such path")
    if p.is_dir():
        for fmt in FORMATS:
            if fmt.directory and fmt.sniff(p):
                return fmt
        raise UnknownFormatError(
            file=p,
            field="<path>",
            expected="a data file (or an openretina folder with stimuli/ and session_*.hdf5)",
            found="a directory",
        )
    check_container(p)
    suffix = p.suffix.lower()
    for fmt in FORMATS:
        if fmt.directory:
            continue
        if (suffix in fmt.extensions or not fmt.extensions) and fmt.sniff(p):
            return fmt
    folder_formats = [f for f in FORMATS if f.directory and f.sniff(p.parent)]
    if folder_formats:
        raise UnknownFormatError(
            f"this file is part of a {folder_formats[0].name} folder: pass the folder {p.parent} instead",
            file=p,
            field="<path>",
            expected=f"the {folder_formats[0].name} folder",
            found="one file of it",
        )
    claimed = [f for f in FORMATS if suffix and suffix in f.extensions]
    if claimed:
        layouts = "; or ".join(f.description for f in claimed)
        hint = None
        if suffix in _ARRAY_READERS:
            hint = (
                f"arrays of responses are not read as a recording by themselves: read them "
                f"({_ARRAY_READERS[suffix]}) and build one with neuromodels.datasets.assembly_from_arrays "
                "(presentations x neuroids) or recording_from_arrays (stimulus + response), docs/data-model.md"
            )
        found = (suffix == ".npy" and npy_summary(p)) or f"a {suffix} file in none of these layouts"
        raise UnknownFormatError(hint, file=p, field="<contents>", expected=layouts, found=found)
    known = sorted({e for f in FORMATS for e in f.extensions} | {"neo formats (.smr, .plx, .nex, ...)"})
    raise UnknownFormatError(
        file=p, field="<extension>", expected=f"a supported format: {', '.join(known)}", found=repr(suffix or p.name)
    )


def load(path: str | os.PathLike[str], **options: Any) -> xr.Dataset | xr.DataArray:
    """Load any supported recording as validated xarray.

    ``path`` is a file (format detected from its extension and contents), an openretina folder, or
    ``"sample:NAME"`` for the bundled sample data (:func:`neuromodels.datasets.sample`). ``options`` go to
    the format's ``open_*`` function (e.g. ``bin_size=0.01``). A gzipped file ``NAME.EXT.gz`` is read as
    ``NAME.EXT`` (decompressed to a private temporary file of at most
    :data:`~neuromodels.datasets._containers.GUNZIP_MAX_BYTES`, loaded into memory, then removed).

    Arrays of your own (a ``.npy`` of responses, say) are not a format: build the object with
    :func:`~neuromodels.datasets.assembly_from_arrays` or :func:`~neuromodels.datasets.recording_from_arrays`.
    """
    from neuromodels.datasets._validate import validate

    text = os.fspath(path)
    if isinstance(text, str) and text.startswith(SAMPLE_PREFIX):
        from neuromodels.datasets.samples import sample

        return sample(text[len(SAMPLE_PREFIX) :], **options)
    original = Path(path)
    with _readable(original) as readable:
        fmt = _detect(readable)
        obj = fmt.open(readable, **options)
        if readable != original:
            obj = _in_memory(obj, readable, original)
    obj.attrs.setdefault("format", fmt.name)
    obj = validate(obj, file=path)
    if obj.attrs.get("source") is not None:
        note_loaded(obj.attrs["source"], path)
    return obj

"""Format detection and the generic :func:`load`.

Each supported format is a :class:`Format`: a name, the file extensions it claims, an optional ``sniff``
that looks inside the file (for extensions shared by several layouts, like ``.h5`` or ``.mat``), and the
``open`` function. Modules are imported only when their format is used, so that ``import
neuromodels.datasets`` stays light (no torch, pynwb, neo).
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xarray as xr

from neuromodels.errors import ConfigError, DataFormatError, UnknownFormatError

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
        except Exception:  # a sniffer must never mask the real error of the real opener
            return False

    def open(self, path: Path, **options: Any) -> xr.Dataset | xr.DataArray:
        opener = self._function(self.opener)
        accepted = [
            p.name for p in inspect.signature(opener).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
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
    Format("retina-hdf5", "Retina HDF5, deep-retina layout (train/ and test/ groups)", "retina_hdf5",
           "open_retina_hdf5", (".h5", ".hdf5"), "sniff_retina_hdf5"),
    Format("openretina", "openretina generic format (stimuli/*.npy + session_*.hdf5)", "openretina",
           "open_openretina", (), "sniff_openretina", directory=True),
    Format("nwb", "Neurodata Without Borders 2 (units table, trials)", "nwb", "open_nwb", (".nwb",)),
    Format("netcdf", "netCDF: Brain-Score/BrainIO assembly or neuromodels recording", "brainio", "open_netcdf", (".nc",)),
    Format("spike-trials-mat", "MATLAB cell array of spike times per stimulus/cell/trial", "spike_trials",
           "open_spike_trials", (".mat",), "sniff_spike_trials"),
    Format("spike-times-npy", "NumPy array of spike-time arrays, one per cell", "spike_trials",
           "open_spike_time_matrix", (".npy", ".npz"), "sniff_spike_time_matrix"),
    Format("neo", "any format python-neo reads (Spike2, Plexon, NeuroExplorer, Blackrock, NIX, ...)", "neo_io",
           "open_neo", (), "sniff_neo"),
)


def detect_format(path: str | os.PathLike[str]) -> Format:
    """The :class:`Format` of ``path``; :class:`UnknownFormatError` naming the file when none fits."""
    p = Path(path)
    if not p.exists():
        raise DataFormatError(file=p, field="<path>", expected="an existing file or folder", found="no such path")
    if p.is_dir():
        for fmt in FORMATS:
            if fmt.directory and fmt.sniff(p):
                return fmt
        raise UnknownFormatError(
            file=p, field="<path>", expected="a data file (or an openretina folder with stimuli/ and session_*.hdf5)",
            found="a directory",
        )
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
            file=p, field="<path>", expected=f"the {folder_formats[0].name} folder", found="one file of it",
        )
    claimed = [f for f in FORMATS if suffix and suffix in f.extensions]
    if claimed:
        layouts = "; or ".join(f.description for f in claimed)
        raise UnknownFormatError(
            file=p, field="<contents>", expected=layouts,
            found=f"a {suffix} file in none of these layouts",
        )
    known = sorted({e for f in FORMATS for e in f.extensions} | {"neo formats (.smr, .plx, .nex, ...)"})
    raise UnknownFormatError(
        file=p, field="<extension>", expected=f"a supported format: {', '.join(known)}", found=repr(suffix or p.name)
    )


def load(path: str | os.PathLike[str], **options: Any) -> xr.Dataset | xr.DataArray:
    """Load any supported recording as validated xarray.

    ``path`` is a file (format detected from its extension and contents), an openretina folder, or
    ``"sample:NAME"`` for the bundled sample data (:func:`neuromodels.datasets.sample`). ``options`` go to
    the format's ``open_*`` function (e.g. ``bin_size=0.01``).
    """
    from neuromodels.datasets._validate import validate

    text = os.fspath(path)
    if isinstance(text, str) and text.startswith(SAMPLE_PREFIX):
        from neuromodels.datasets.samples import sample

        return sample(text[len(SAMPLE_PREFIX):], **options)
    fmt = detect_format(path)
    obj = fmt.open(Path(path), **options)
    obj.attrs.setdefault("format", fmt.name)
    return validate(obj, file=path)

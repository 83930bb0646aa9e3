"""File containers before formats: signature checks ("not a readable HDF5 file") and transparent gunzip.

:func:`neuromodels.datasets.load` calls :func:`check_container` before any format's sniffer looks inside a
file, so an empty or garbage ``.h5``/``.npy``/``.mat`` gets one plain error instead of every reader's failure,
and reads ``NAME.EXT.gz`` through :func:`gunzipped` as ``NAME.EXT``.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from neuromodels.errors import DataFormatError

__all__ = ["CONTAINERS", "check_container", "npy_summary", "gunzipped", "GUNZIP_MAX_BYTES"]

CONTAINERS = {".h5": "HDF5", ".hdf5": "HDF5", ".npy": "NumPy", ".npz": "NumPy", ".mat": "MATLAB"}
"""File extensions whose container :func:`check_container` checks before any format looks inside."""

GUNZIP_MAX_BYTES = 4 * 2**30
"""Largest decompressed size :func:`gunzipped` writes (4 GiB): a guard against gzip bombs and full disks."""


def _header_problem(path: Path, kind: str) -> str | None:
    """Why the header of a NumPy ``.npy`` or MATLAB file does not parse (``None`` when it does)."""
    try:
        if kind == "NumPy":
            npy_summary(path, strict=True)
        else:  # MATLAB v4, v5, or v7.3 (HDF5 with a MATLAB header)
            from scipy.io.matlab import matfile_version

            matfile_version(str(path))
    except Exception as exc:  # noqa: BLE001 - each reader raises its own type for a header that does not parse; the text becomes the report
        return f"{type(exc).__name__}: {exc}"
    return None


def _container_problem(path: Path, kind: str) -> str | None:
    """Why ``path`` is not a readable ``kind`` file (``None`` when its signature and header fit)."""
    if path.stat().st_size == 0:
        return "an empty file (0 bytes)"
    with open(path, "rb") as fh:
        head = fh.read(16)
    import h5py

    if kind == "HDF5":
        return None if h5py.is_hdf5(path) else f"no HDF5 signature (the file starts {head!r})"
    if kind == "MATLAB" and h5py.is_hdf5(path):  # v7.3: HDF5 behind a 512-byte header, read as HDF5 whatever it says
        return None
    if path.suffix.lower() == ".npz":
        return None if zipfile.is_zipfile(path) else f"not a zip archive of .npy files (the file starts {head!r})"
    problem = _header_problem(path, kind)
    return None if problem is None else f"{problem} (the file starts {head!r})"


def check_container(path: str | os.PathLike[str]) -> None:
    """A :class:`DataFormatError` "not a readable HDF5/NumPy/MATLAB file" naming ``path`` when its extension
    (:data:`CONTAINERS`) promises a container whose signature or header is not there (an empty or garbage file).
    """
    p = Path(path)
    kind = CONTAINERS.get(p.suffix.lower())
    if kind is None or not p.is_file():
        return
    problem = _container_problem(p, kind)
    if problem is not None:
        raise DataFormatError(
            f"not a readable {kind} file",
            file=p,
            field="<file>",
            expected=f"{'an' if kind == 'HDF5' else 'a'} {kind} file ({p.suffix})",
            found=problem,
        )


@contextlib.contextmanager
def gunzipped(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Decompress ``NAME.gz`` to ``NAME`` in a private temporary folder, yield that path, remove it on exit.

    At most :data:`GUNZIP_MAX_BYTES` are written; a larger, truncated or corrupt stream is a
    :class:`DataFormatError` (field ``<gzip>``) naming ``path``.
    """
    p = Path(path)
    limit = GUNZIP_MAX_BYTES
    with tempfile.TemporaryDirectory(prefix="neuromodels-gunzip-") as folder:  # mode 0700: private
        target = Path(folder) / p.name[: -len(".gz")]
        written = 0
        try:
            with gzip.open(p, "rb") as source, open(target, "wb") as sink:
                while chunk := source.read(2**20):
                    written += len(chunk)
                    if written > limit:
                        raise DataFormatError(
                            "decompress it yourself to read a larger file",
                            file=p,
                            field="<gzip>",
                            expected=f"at most {limit} bytes decompressed "
                            "(neuromodels.datasets._containers.GUNZIP_MAX_BYTES)",
                            found=f"more than {limit} bytes",
                        )
                    sink.write(chunk)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise DataFormatError(
                file=p, field="<gzip>", expected="a complete gzip stream", found=f"{type(exc).__name__}: {exc}"
            ) from exc
        yield target


def npy_summary(path: str | os.PathLike[str], *, strict: bool = False) -> str | None:
    """``"a float64 array of shape (50, 640)"`` from a ``.npy`` header (the data is not read).

    An unreadable header gives ``None``, or with ``strict`` the reader's exception.
    """
    import numpy as np

    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = reader(fh)
    except Exception:
        if strict:
            raise
        return None
    kind = "an object" if dtype.hasobject else f"a {dtype}"
    return f"{kind} array of shape {tuple(shape)}"

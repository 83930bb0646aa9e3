"""Small I/O helpers shared by the adapters: atomic writes and path checks."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from neuromodels.errors import DataFormatError

__all__ = ["atomic_path", "write_netcdf_atomic", "existing_file", "open_hdf5"]


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only if the block succeeds.

    Nothing half-written is ever left at ``target``: on error the temporary file is removed and any
    previous ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or ".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        tmp_path.unlink()  # writers such as netCDF4 want to create the file themselves
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        if tmp_path.is_dir():
            import shutil

            shutil.rmtree(tmp_path, ignore_errors=True)
        else:
            tmp_path.unlink(missing_ok=True)
        raise


def write_netcdf_atomic(obj, path: str | os.PathLike[str], **to_netcdf_kwargs) -> Path:
    """``obj.to_netcdf(path, **to_netcdf_kwargs)`` (an xarray Dataset or DataArray) through :func:`atomic_path`."""
    with atomic_path(path, suffix=".nc") as tmp:
        obj.to_netcdf(tmp, **to_netcdf_kwargs)
    return Path(path)


def existing_file(path: str | os.PathLike[str]) -> Path:
    """``Path(path)`` if it is a readable file, else a :class:`DataFormatError` naming it."""
    p = Path(path)
    if not p.exists():
        raise DataFormatError(file=p, field="<path>", expected="an existing file", found="no such file")
    if p.is_dir():
        raise DataFormatError(file=p, field="<path>", expected="a file", found="a directory")
    return p


def open_hdf5(path: str | os.PathLike[str]):  # -> h5py.File
    """Open an HDF5 file read-only; a file h5py cannot open is a :class:`DataFormatError` naming it."""
    import h5py

    try:
        return h5py.File(path, "r")
    except Exception as exc:  # h5py raises OSError for truncated files, others for foreign formats
        raise DataFormatError(file=path, field="<hdf5>", expected="a readable HDF5 file",
                              found=f"{type(exc).__name__}: {exc}") from exc

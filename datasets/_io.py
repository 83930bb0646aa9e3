"""Small I/O helpers shared by the adapters: atomic writes and path checks."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from neuromodels._cache import fd_path, open_own_folder
from neuromodels.errors import DataFormatError

__all__ = ["atomic_path", "write_netcdf_atomic", "existing_file", "open_hdf5"]


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a path for a writer to create; rename the file onto ``target`` only if the block succeeds.

    The path lies in a new folder beside ``target`` that only this user can enter (``mkdtemp``: created
    exclusively, mode 0700), so no other user can create, replace or symlink the name the writer opens, even in
    a shared folder (writers such as netCDF4 and HDF5 create the file by name themselves). Where the system has
    ``/proc/self/fd`` the path reaches that folder through a descriptor opened on it, so that renaming the
    folder (possible for others in a group-writable folder without the sticky bit) does not redirect the writer
    either. The file keeps the permissions the writer gave it (umask), as a plain write would.

    Nothing half-written is ever left at ``target``: on error the temporary folder is removed and any previous
    ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    name = target.name if suffix is None or target.name.endswith(suffix) else target.name + suffix
    private = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        posix = os.name == "posix"  # elsewhere (Windows) the folder is used by its path
        folder_fd = open_own_folder(private, exact_mode=0o700, follow_symlinks=False) if posix else None
        try:
            yield Path(fd_path(folder_fd, private)) / name
            os.replace(name if posix else private / name, target, src_dir_fd=folder_fd)
        finally:
            if folder_fd is not None:
                os.close(folder_fd)
    finally:
        shutil.rmtree(private, ignore_errors=True)


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


"""Small I/O helpers shared by the adapters: atomic writes and path checks."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from neuromodels._cache import fd_path, open_own_folder
from neuromodels.errors import DataFormatError

__all__ = [
    "atomic_path",
    "private_folder",
    "remove_stale_temp_folders",
    "write_netcdf_atomic",
    "existing_file",
    "open_hdf5",
]


TEMP_SUFFIX = ".tmp"
_RANDOM_PART = re.compile(r"[a-z0-9_]{8}")  # what mkdtemp puts between prefix and suffix


def _lock_held_elsewhere(fd: int) -> bool:
    """Whether another open file description holds an flock on ``fd`` (a live writer); False where flock is
    unknown (then nothing is treated as stale)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    return False


def remove_stale_temp_folders(parent: str | os.PathLike[str], name: str) -> list[Path]:
    """Remove the private temp folders that a killed writer of ``name`` left in ``parent``; return them.

    A folder is removed only when every sign says the package made it and no one uses it: its name is
    ``.NAME.XXXXXXXX.tmp`` (the pattern :func:`private_folder` gives to ``mkdtemp``), it is a real folder (not a
    symlink) owned by this user with mode 0700, and no process holds the lock its writer takes for as long as it
    writes (a killed process's lock is released by the kernel).
    """
    parent = Path(parent)
    prefix = f".{name}."
    removed = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        middle = entry.name[len(prefix) : -len(TEMP_SUFFIX)]
        if not (entry.name.startswith(prefix) and entry.name.endswith(TEMP_SUFFIX) and _RANDOM_PART.fullmatch(middle)):
            continue
        try:
            fd = open_own_folder(Path(entry.path), exact_mode=0o700, follow_symlinks=False)
        except OSError:
            continue
        try:
            if _lock_held_elsewhere(fd):
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def private_folder(parent: str | os.PathLike[str], name: str) -> Iterator[tuple[Path, int | None]]:
    """A new folder ``.NAME.XXXXXXXX.tmp`` in ``parent`` that only this user can enter (``mkdtemp``: created
    exclusively, mode 0700), yielded as ``(path, fd)``, and removed with its contents afterwards.

    The fd (POSIX only, else None) is open on the folder and holds an flock on it while the block runs, which
    marks it as in use: :func:`remove_stale_temp_folders` (called here first, for ``name``) removes only the
    folders whose writer was killed.
    """
    parent = Path(parent)
    remove_stale_temp_folders(parent, name)
    folder = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=TEMP_SUFFIX, dir=parent))
    try:
        fd = None
        if os.name == "posix":
            import fcntl

            fd = open_own_folder(folder, exact_mode=0o700, follow_symlinks=False)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            yield folder, fd
        finally:
            if fd is not None:
                os.close(fd)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a path for a writer to create; rename the file onto ``target`` only if the block succeeds.

    The path lies in a :func:`private_folder` beside ``target`` that only this user can enter, so no other user
    can create, replace or symlink the name the writer opens, even in a shared folder (writers such as netCDF4
    and HDF5 create the file by name themselves). Where the system has ``/proc/self/fd`` the path reaches that
    folder through a descriptor opened on it, so that renaming the folder (possible for others in a
    group-writable folder without the sticky bit) does not redirect the writer either. The file keeps the
    permissions the writer gave it (umask), as a plain write would.

    Nothing half-written is ever left at ``target``: on error the temporary folder is removed and any previous
    ``target`` is untouched; a temporary folder left by a killed writer is removed by the next write of the
    same ``target``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    name = target.name if suffix is None or target.name.endswith(suffix) else target.name + suffix
    with private_folder(target.parent, target.name) as (private, folder_fd):
        posix = folder_fd is not None  # elsewhere (Windows) the folder is used by its path
        yield Path(fd_path(folder_fd, private)) / name
        os.replace(name if posix else private / name, target, src_dir_fd=folder_fd)


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
        raise DataFormatError(
            file=path, field="<hdf5>", expected="a readable HDF5 file", found=f"{type(exc).__name__}: {exc}"
        ) from exc

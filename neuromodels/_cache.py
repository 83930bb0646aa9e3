"""Cache folders that only this user can write, and files trusted only when their recorded digest matches.

Used for what the package writes into the user's cache folder (compiled kernels, sample data) and for the
private folders of :func:`neuromodels.datasets._io.atomic_path`. A folder is trusted when it is owned by this
user and writable by no one else; files in it are then opened through a descriptor on the folder (``dir_fd``),
so that renaming or replacing the folder after the check changes nothing. Light on imports: the compiled
kernel's loader uses it without loading xarray.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from pathlib import Path

__all__ = [
    "UnsafeFolderError",
    "cache_root",
    "open_own_folder",
    "open_private_folder",
    "open_private_file",
    "fd_path",
    "write_private_file",
    "record_digest",
    "open_verified_file",
]


class UnsafeFolderError(OSError):
    """A cache folder or file that another user owns or could write: its contents are not trusted."""


def cache_root() -> Path:
    """``$NEUROMODELS_CACHE``, else the user cache folder (``platformdirs.user_cache_dir("neuromodels")``)."""
    override = os.environ.get("NEUROMODELS_CACHE")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("neuromodels"))


def open_own_folder(path: Path, *, exact_mode: int | None = None, follow_symlinks: bool = True) -> int:
    """An fd on the folder ``path``, once its owner and mode are checked; else :class:`UnsafeFolderError`.
    ``OSError`` where there are no POSIX owners and modes to check (Windows): the callers then cache nothing."""
    if os.name != "posix":
        raise OSError(f"{path}: folder ownership cannot be checked on this platform")
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | (0 if follow_symlinks else os.O_NOFOLLOW))
    st = os.fstat(fd)
    mode = stat.S_IMODE(st.st_mode)
    problem = None
    if st.st_uid != os.geteuid():
        problem = f"it is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
    elif exact_mode is not None and mode != exact_mode:
        problem = f"its mode is {mode:o}, expected {exact_mode:o}"
    elif mode & 0o022:
        problem = f"it is writable by group or others (mode {mode:o})"
    if problem is not None:
        os.close(fd)
        raise UnsafeFolderError(f"{path}: {problem}")
    return fd


def open_private_folder(path: str | os.PathLike[str]) -> int:
    """An fd on the folder ``path``, checked to be owned by this user and writable by no one else.

    A missing folder is created with mode 0700 (so is its parent, the cache root, when that is missing too).
    Open files relative to the fd (``dir_fd=``): renaming or replacing the folder afterwards then changes
    nothing. Raises :class:`UnsafeFolderError` (with the command that fixes it) for a folder owned by another
    user or writable by group or others, ``OSError`` when it cannot be created or opened.
    """
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.mkdir(mode=0o700, exist_ok=True)
    try:
        return open_own_folder(path)
    except UnsafeFolderError as exc:
        raise UnsafeFolderError(
            f"{exc}; its contents are not trusted (fix: `chmod go-w {path}` if it is yours, else remove it)"
        ) from None


def open_private_file(folder_fd: int, name: str) -> int:
    """An fd (read-only) on the file ``name`` in the folder ``folder_fd``, checked to be a regular file (not a
    symlink) owned by this user and writable by no one else; :class:`UnsafeFolderError` otherwise,
    ``FileNotFoundError`` when absent."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder_fd)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        os.close(fd)
        raise UnsafeFolderError(f"{name}: not a regular file owned by this user and writable only by it")
    return fd


def fd_path(fd: int | None, fallback: str | os.PathLike[str]) -> str:
    """A path that opens what the descriptor ``fd`` refers to (``/proc/self/fd/N``), or ``fallback`` where the
    system has no such paths or there is no descriptor (there, the file opened by path may differ from the one
    checked through ``fd``)."""
    proc = f"/proc/self/fd/{fd}"
    return proc if fd is not None and os.path.exists(proc) else os.fspath(fallback)


def write_private_file(folder_fd: int, name: str, data: bytes, *, mode: int = 0o600) -> None:
    """Write ``data`` to ``name`` in the folder ``folder_fd`` atomically (a new file of ``mode`` created
    exclusively under a temporary name, then renamed)."""
    tmp = f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=folder_fd)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=folder_fd)
        raise


def _sha256_of(fd: int) -> str:
    digest, offset = hashlib.sha256(), 0
    while block := os.pread(fd, 1 << 20, offset):
        digest.update(block)
        offset += len(block)
    return digest.hexdigest()


def record_digest(folder_fd: int, name: str) -> str:
    """Record the SHA-256 of the file ``name`` (checked as in :func:`open_private_file`) in ``name.sha256`` beside
    it, in ``sha256sum`` format; returns the digest."""
    fd = open_private_file(folder_fd, name)
    try:
        digest = _sha256_of(fd)
    finally:
        os.close(fd)
    write_private_file(folder_fd, f"{name}.sha256", f"{digest}  {name}\n".encode())
    return digest


def open_verified_file(folder_fd: int, name: str) -> int | None:
    """An fd on the file ``name`` whose SHA-256 equals the one recorded by :func:`record_digest`, or ``None``
    when the file or its record is absent, either is not this user's own, or the digests differ."""
    try:
        record_fd = open_private_file(folder_fd, f"{name}.sha256")
        try:
            recorded = os.pread(record_fd, 4096, 0).split(b" ", 1)[0].decode("ascii", "replace")
        finally:
            os.close(record_fd)
        fd = open_private_file(folder_fd, name)
    except OSError:
        return None
    try:
        if _sha256_of(fd) == recorded:
            return fd
    except OSError:
        pass
    os.close(fd)
    return None

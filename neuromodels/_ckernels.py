"""Build, cache and load a small C kernel with the system C compiler (shared by the compiled loops).

Used by the LIF loop of the NumPy engine (:mod:`neuromodels.spiking._compiled`, ``_lif_kernel.c``) and by Synaptic
Intelligence's per-step bookkeeping (:mod:`neuromodels.fitting.continual.si`, ``_si_kernel.c``). A kernel is
compiled on first use (well under a second) with ``-O3 -ffp-contract=off`` (no fused multiply-add, so each line of
C is the IEEE operation it reads as) into ``kernels/`` of the cache folder (``$NEUROMODELS_CACHE`` or the user
cache dir), under a name keyed by the source and the compile flags, with its SHA-256 recorded beside it, and
loaded with ctypes. Without a C compiler, or with ``NEUROMODELS_NO_COMPILE=1``, the callers run their plain
(NumPy or torch) code instead, with the same results.

Loading a library runs its code, so the cached file is trusted only as far as no one but this user could have
written it (the checks are in :mod:`neuromodels._cache`):

* the ``kernels`` folder is created with mode 0700; an existing one owned by another user or writable by group
  or others is refused with a warning (saying how to fix it), and the kernel is then compiled afresh into a
  private temporary folder (``mkdtemp``, 0700) for this process only;
* the library and its recorded digest are opened through a descriptor on that checked folder (no symlinks),
  must be regular files owned by this user and writable by no one else, and the library's SHA-256 must equal
  the recorded one; otherwise the library is compiled afresh and replaces the cached one;
* on Linux the library is then loaded through the very descriptor that was hashed (``/proc/self/fd/N``), so the
  file loaded is the file checked, and only this user (or root) could change its bytes in between; elsewhere it
  is loaded by its path in the checked folder right after the check.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["CFLAGS", "compile_library", "library_name", "load_library"]

CFLAGS = ("-O3", "-shared", "-fPIC", "-ffp-contract=off")  # no fused multiply-add: the IEEE operations as written

_LOADED_DESCRIPTORS: list[int] = []  # one per kernel loaded through /proc/self/fd (see _load_cached)


def library_name(source: Path, prefix: str, cflags: Sequence[str] = CFLAGS) -> str:
    """The cached library's file name, ``<prefix>_<key>.so``, keyed by the C source and the compile flags."""
    key = hashlib.sha256(Path(source).read_bytes() + "\0".join(cflags).encode()).hexdigest()[:16]
    return f"{prefix}_{key}.so"


def compile_library(source: Path, output: Path, cflags: Sequence[str] = CFLAGS) -> None:
    """Compile ``source`` into the shared library ``output`` (``$CC``, else ``cc`` or ``gcc``); ``OSError`` when
    there is no compiler, ``subprocess.SubprocessError`` when it fails."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise OSError("no C compiler")
    subprocess.run([compiler, *cflags, "-o", str(output), str(source)], check=True, capture_output=True, timeout=120)


def _open_cache(folder: Path) -> int | None:
    """A descriptor on the checked cache folder; ``None`` when it is unsafe (with a warning) or unusable."""
    from neuromodels._cache import UnsafeFolderError, open_private_folder

    try:
        return open_private_folder(folder)
    except UnsafeFolderError as exc:
        warnings.warn(
            f"not using the compiled-kernel cache: {exc}. The kernel is compiled afresh for this process "
            "(without a C compiler, the plain NumPy or torch code runs).",
            RuntimeWarning,
            stacklevel=5,
        )
    except OSError:  # a read-only or missing home: compile for this process only
        pass
    return None


def _load_cached(folder_fd: int, folder: Path, name: str) -> Any:
    """The cached library if it passes the checks (module docstring), else ``None``."""
    from neuromodels._cache import fd_path, open_verified_file

    fd = open_verified_file(folder_fd, name)
    if fd is None:
        return None
    try:
        # dlopen of /proc/self/fd/N maps the file this descriptor holds, the one just hashed.
        lib = ctypes.CDLL(fd_path(fd, folder / name))
    except BaseException:
        os.close(fd)
        raise
    # glibc hands back a library already loaded under the same path string: were N closed and reused for another
    # kernel, dlopen("/proc/self/fd/N") would return the first kernel (undefined symbols). Each loaded kernel keeps
    # its descriptor open for the life of the process, so no two kernels share a path.
    _LOADED_DESCRIPTORS.append(fd)
    return lib


def load_library(source: Path, prefix: str, cflags: Sequence[str] = CFLAGS) -> Any:
    """The ``ctypes.CDLL`` of ``source`` compiled with ``cflags``: from the checked cache, else compiled now (and
    cached when the cache folder is usable). Raises ``OSError`` / ``subprocess.SubprocessError`` when it cannot
    be built; callers then fall back to their plain code."""
    from neuromodels._cache import cache_root, record_digest, write_private_file

    name = library_name(source, prefix, cflags)
    folder = cache_root() / "kernels"
    folder_fd = _open_cache(folder)
    try:
        if folder_fd is not None and (lib := _load_cached(folder_fd, folder, name)) is not None:
            return lib
        with tempfile.TemporaryDirectory(prefix="neuromodels-kernel-") as private:  # mkdtemp: mode 0700
            built = Path(private) / name
            compile_library(source, built, cflags)
            if folder_fd is not None:
                with contextlib.suppress(OSError):  # an unwritable cache folder: load the private copy below
                    write_private_file(folder_fd, name, built.read_bytes(), mode=0o700)
                    record_digest(folder_fd, name)
                    if (lib := _load_cached(folder_fd, folder, name)) is not None:
                        return lib
            return ctypes.CDLL(str(built))
    finally:
        if folder_fd is not None:
            os.close(folder_fd)

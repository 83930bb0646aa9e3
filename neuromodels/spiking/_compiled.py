"""The compiled inner loop of the NumPy engine (``_lif_kernel.c``), built once with the system C compiler.

At batch 1 the NumPy loop spends ~8 us per time step in Python and NumPy call overhead, about twice what Brian2's
compiled (cpp_standalone) code needs for the whole step. The C file does the same arithmetic in the same order
(``-ffp-contract=off``), so rasters stay bit-identical; it is compiled on first use into the cache folder
(``$NEUROMODELS_CACHE`` or the user cache dir) under a name keyed by the source hash, and loaded with ctypes.
Without a C compiler, or with ``NEUROMODELS_NO_COMPILE=1``, :func:`lif_kernel` returns ``None`` and the
NumPy loop runs instead: same results, slower.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

_SOURCE = Path(__file__).with_name("_lif_kernel.c")


def _cache_root() -> Path:
    override = os.environ.get("NEUROMODELS_CACHE")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("neuromodels"))


def _build(target: Path) -> None:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise OSError("no C compiler")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-ffp-contract=off", "-o", tmp, str(_SOURCE)],
                       check=True, capture_output=True, timeout=120)
        os.replace(tmp, target)  # concurrent builders each rename a complete file
    finally:
        Path(tmp).unlink(missing_ok=True)


@functools.lru_cache(maxsize=1)
def lif_kernel() -> Any:
    """The loaded library (functions ``lif_layer_f64``, ``lif_layer_f32``), or ``None`` when unavailable."""
    if os.environ.get("NEUROMODELS_NO_COMPILE"):
        return None
    try:
        key = hashlib.sha256(_SOURCE.read_bytes()).hexdigest()[:16]
        library = _cache_root() / "kernels" / f"lif_{key}.so"
        if not library.is_file():
            _build(library)
        lib = ctypes.CDLL(str(library))
    except (OSError, subprocess.SubprocessError):
        return None
    i64, u8p, i64p = ctypes.c_int64, ctypes.POINTER(ctypes.c_uint8), ctypes.POINTER(ctypes.c_int64)
    for name, real in (("lif_layer_f64", ctypes.c_double), ("lif_layer_f32", ctypes.c_float)):
        ptr = ctypes.POINTER(real)
        getattr(lib, name).argtypes = [i64, i64, ptr, ptr, ptr, real, real, real, real, real, real, i64, i64p, u8p,
                                       ptr, ptr]
        getattr(lib, name).restype = None
    return lib


def run_layer(lib: Any, jumps: np.ndarray, v: np.ndarray, current: np.ndarray, coefficients: tuple[Any, ...],
              threshold: Any, reset: Any, ref_steps: int, since_spike: np.ndarray | None, spikes: np.ndarray,
              voltage: np.ndarray | None, membrane: np.ndarray | None) -> None:
    """Run one layer in place: arrays C-contiguous, ``jumps``/``spikes``/``voltage``/``membrane`` ``(time, batch,
    n)``, ``v``/``current``/``since_spike`` ``(batch, n)``; ``spikes`` uint8."""
    real = ctypes.c_double if v.dtype == np.float64 else ctypes.c_float
    function = lib.lif_layer_f64 if v.dtype == np.float64 else lib.lif_layer_f32
    ptr = ctypes.POINTER(real)

    def p(array: np.ndarray | None, kind: Any = ptr) -> Any:
        return None if array is None else array.ctypes.data_as(kind)

    a_vv, a_vi, a_ii, b_v = coefficients
    function(jumps.shape[0], v.size, p(jumps), p(v), p(current), a_vv, a_vi, a_ii, b_v, threshold, reset,
             int(ref_steps), p(since_spike, ctypes.POINTER(ctypes.c_int64)), p(spikes, ctypes.POINTER(ctypes.c_uint8)),
             p(voltage), p(membrane))

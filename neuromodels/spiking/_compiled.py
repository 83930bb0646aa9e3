"""The compiled inner loop of the NumPy engine (``_lif_kernel.c``), built once with the system C compiler.

At batch 1 the NumPy loop spends ~8 us per time step in Python and NumPy call overhead, about twice what Brian2's
compiled (cpp_standalone) code needs for the whole step. The C file does the same arithmetic in the same order
(``-ffp-contract=off``), so rasters stay bit-identical; it is compiled on first use (~0.2 s) and cached by the
shared builder ``neuromodels/_ckernels.py`` (``kernels/`` of the cache folder, a name keyed by the source and the
compile flags, its SHA-256 recorded and checked before loading; the module docstring there lists the checks), and
loaded with ctypes. Without a C compiler, or with ``NEUROMODELS_NO_COMPILE=1``, :func:`lif_kernel` returns
``None`` and the NumPy loop runs instead: same results, slower.
"""

from __future__ import annotations

import ctypes
import functools
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from neuromodels import _ckernels

_SOURCE = Path(__file__).with_name("_lif_kernel.c")
_CFLAGS = _ckernels.CFLAGS  # -O3, no fused multiply-add: bit-identical to NumPy


def library_name() -> str:
    """The cached library's file name, keyed by the C source and the compile flags."""
    return _ckernels.library_name(_SOURCE, "lif", _CFLAGS)


def _load_library() -> Any:
    return _ckernels.load_library(_SOURCE, "lif", _CFLAGS)


@functools.lru_cache(maxsize=1)
def lif_kernel() -> Any:
    """The loaded library (functions ``lif_layer_f64/f32``, ``lif_events_f64/f32``, ``lif_circuit_f64``), or
    ``None`` when unavailable."""
    if os.environ.get("NEUROMODELS_NO_COMPILE"):
        return None
    try:
        lib = _load_library()
    except (OSError, subprocess.SubprocessError):
        return None
    i64, u8p, i64p = ctypes.c_int64, ctypes.POINTER(ctypes.c_uint8), ctypes.POINTER(ctypes.c_int64)
    for name, real in (("lif_layer_f64", ctypes.c_double), ("lif_layer_f32", ctypes.c_float)):
        ptr = ctypes.POINTER(real)
        getattr(lib, name).argtypes = [
            i64,
            i64,
            ptr,
            ptr,
            ptr,
            real,
            real,
            real,
            real,
            real,
            real,
            i64,
            i64p,
            u8p,
            ptr,
            ptr,
        ]
        getattr(lib, name).restype = None
    for name, real in (("lif_events_f64", ctypes.c_double), ("lif_events_f32", ctypes.c_float)):
        ptr = ctypes.POINTER(real)
        getattr(lib, name).argtypes = [i64, i64, i64, i64p, i64p, i64, i64, i64, ptr, ptr, ptr, ptr]
        getattr(lib, name).argtypes += [real] * 6 + [i64, i64p, u8p, ptr, ptr, i64]
        getattr(lib, name).restype = None
    lib.spike_events_u8.argtypes = [i64, i64, u8p, i64, i64p, i64p]
    lib.spike_events_u8.restype = i64
    f64p = ctypes.POINTER(ctypes.c_double)
    lib.lif_circuit_f64.argtypes = [
        i64,
        i64,
        i64,
        f64p,
        f64p,
        f64p,
        f64p,
        f64p,
        f64p,
        i64p,
        f64p,
        f64p,
        i64p,
        i64,
        i64p,
        i64p,
        i64p,
        i64p,
        i64p,
        f64p,
        i64,
        f64p,
        f64p,
        i64p,
        i64p,
        i64p,
        u8p,
        u8p,
        f64p,
    ]
    lib.lif_circuit_f64.restype = None
    return lib


def run_layer(
    lib: Any,
    jumps: np.ndarray,
    v: np.ndarray,
    current: np.ndarray,
    coefficients: tuple[Any, ...],
    threshold: Any,
    reset: Any,
    ref_steps: int,
    since_spike: np.ndarray | None,
    spikes: np.ndarray,
    voltage: np.ndarray | None,
    membrane: np.ndarray | None,
) -> None:
    """Run one layer in place: arrays C-contiguous, ``jumps``/``spikes``/``voltage``/``membrane`` ``(time, batch,
    n)``, ``v``/``current``/``since_spike`` ``(batch, n)``; ``spikes`` uint8."""
    real = ctypes.c_double if v.dtype == np.float64 else ctypes.c_float
    function = lib.lif_layer_f64 if v.dtype == np.float64 else lib.lif_layer_f32
    ptr = ctypes.POINTER(real)

    def p(array: np.ndarray | None, kind: Any = ptr) -> Any:
        return None if array is None else array.ctypes.data_as(kind)

    a_vv, a_vi, a_ii, b_v = coefficients
    function(
        jumps.shape[0],
        v.size,
        p(jumps),
        p(v),
        p(current),
        a_vv,
        a_vi,
        a_ii,
        b_v,
        threshold,
        reset,
        int(ref_steps),
        p(since_spike, ctypes.POINTER(ctypes.c_int64)),
        p(spikes, ctypes.POINTER(ctypes.c_uint8)),
        p(voltage),
        p(membrane),
    )


def run_layer_events(
    lib: Any,
    events: Any,
    delay: int,
    weights: np.ndarray,
    v: np.ndarray,
    current: np.ndarray,
    coefficients: tuple[Any, ...],
    threshold: Any,
    reset: Any,
    ref_steps: int,
    since_spike: np.ndarray,
    spikes: np.ndarray,
    voltage: np.ndarray | None,
    membrane: np.ndarray | None,
    out_trial_major: bool = False,
) -> None:
    """:func:`run_layer` driven by input spike events (``lif_events_*``): ``events`` a
    :class:`neuromodels.spiking.network.SpikeEvents` (``ptr``, ``idx`` int64, ``row_step``, ``row_trial``), arriving
    ``delay`` steps later; ``weights`` ``(n_pre, n_post)`` C-contiguous of ``v``'s dtype; ``v``/``current``/
    ``since_spike`` ``(batch, n_post)``; ``spikes``/``voltage``/``membrane`` ``(time, batch, n_post)``, or
    ``(batch, time, n_post)`` with ``out_trial_major``."""
    real = ctypes.c_double if v.dtype == np.float64 else ctypes.c_float
    function = lib.lif_events_f64 if v.dtype == np.float64 else lib.lif_events_f32
    ptr, i64p = ctypes.POINTER(real), ctypes.POINTER(ctypes.c_int64)
    if weights.dtype != v.dtype or not weights.flags.c_contiguous or weights.shape[1] != v.shape[1]:
        raise ValueError("weights must be C-contiguous (n_pre, n_post) of the state's dtype")

    def p(array: np.ndarray | None, kind: Any = ptr) -> Any:
        return None if array is None else array.ctypes.data_as(kind)

    batch, n_post = v.shape
    jump = np.zeros(n_post, dtype=v.dtype)
    a_vv, a_vi, a_ii, b_v = coefficients
    function(
        spikes.shape[1] if out_trial_major else spikes.shape[0],
        batch,
        n_post,
        p(events.ptr, i64p),
        p(events.idx, i64p),
        events.row_step,
        events.row_trial,
        int(delay),
        p(weights),
        p(jump),
        p(v),
        p(current),
        a_vv,
        a_vi,
        a_ii,
        b_v,
        threshold,
        reset,
        int(ref_steps),
        p(since_spike, i64p),
        p(spikes, ctypes.POINTER(ctypes.c_uint8)),
        p(voltage),
        p(membrane),
        int(bool(out_trial_major)),
    )


def spike_events(lib: Any, raster: np.ndarray, capacity: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``(ptr, idx)``: the nonzero columns of each row of a C-contiguous one-byte raster ``(rows, cols)`` (CSR,
    ascending); ``None`` when it holds more than ``capacity`` ones."""
    n_rows, n_cols = raster.shape
    ptr = np.empty(n_rows + 1, dtype=np.int64)
    idx = np.empty(max(int(capacity), 0), dtype=np.int64)
    i64p = ctypes.POINTER(ctypes.c_int64)
    count = lib.spike_events_u8(
        n_rows,
        n_cols,
        raster.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)),
        idx.size,
        ptr.ctypes.data_as(i64p),
        idx.ctypes.data_as(i64p),
    )
    return None if count < 0 else (ptr, idx[:count].copy())  # (untouched pages of the large `idx` are never resident)


def run_circuit(
    lib: Any,
    neurons: dict[str, np.ndarray],
    v_init: np.ndarray,
    pathways: list[Any],
    ext_idx: np.ndarray,
    ext_ptr: np.ndarray,
    n_steps: int,
    record_voltages: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Run a circuit (:func:`neuromodels.spiking.circuit._run`'s loop) with ``lif_circuit_f64``: returns
    ``(spikes (time, n) uint8, voltage (time, n) float64 or None)``."""
    n = v_init.size
    n_sources = max(n, int(ext_idx.max()) + 1 if ext_idx.size else n)  # LIF neurons, then external sources
    if pathways:
        n_sources = pathways[0].indptr.size - 1  # all of them (the CSR tables span every source)
    f64, i64 = ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_int64)

    def p(array: np.ndarray | None, kind: Any = f64) -> Any:
        return None if array is None else array.ctypes.data_as(kind)

    coefficient = {
        k: np.ascontiguousarray(neurons[k], dtype=np.float64)
        for k in ("a_vv", "a_vi", "a_ii", "b_v", "threshold", "reset")
    }
    ref = np.ascontiguousarray(neurons["ref"], dtype=np.int64)
    v = np.array(v_init, dtype=np.float64)
    current = np.zeros(n)
    since_spike = np.full(n, 10**9, dtype=np.int64)
    delays = np.array([q.delay for q in pathways] or [0], dtype=np.int64)
    kinds = np.array([0 if q.kind == "delta" else 1 for q in pathways] or [0], dtype=np.int64)
    indptr = np.ascontiguousarray(
        np.concatenate([q.indptr for q in pathways]) if pathways else np.zeros(n_sources + 1), dtype=np.int64
    )
    sizes = [q.targets.size for q in pathways]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if pathways else np.zeros(1, np.int64)
    targets = np.ascontiguousarray(np.concatenate([q.targets for q in pathways] or [np.zeros(0)]), dtype=np.int64)
    weights = np.ascontiguousarray(np.concatenate([q.weights for q in pathways] or [np.zeros(0)]), dtype=np.float64)
    ring_len = int(delays.max()) + 1
    ring_delta, ring_exp = np.zeros((ring_len, n)), np.zeros((ring_len, n))
    sources = np.zeros(n_sources + 1, dtype=np.int64)
    not_refractory = np.zeros(n, dtype=np.uint8)
    spikes = np.zeros((n_steps, n), dtype=np.uint8)
    voltage = np.empty((n_steps, n)) if record_voltages else None
    lib.lif_circuit_f64(
        n_steps,
        n,
        n_sources,
        *(p(coefficient[k]) for k in ("a_vv", "a_vi", "a_ii", "b_v")),
        p(coefficient["threshold"]),
        p(coefficient["reset"]),
        p(ref, i64),
        p(v),
        p(current),
        p(since_spike, i64),
        len(pathways),
        p(delays, i64),
        p(kinds, i64),
        p(indptr, i64),
        p(offsets, i64),
        p(targets, i64),
        p(weights),
        ring_len,
        p(ring_delta),
        p(ring_exp),
        p(ext_ptr, i64),
        p(ext_idx, i64),
        p(sources, i64),
        p(not_refractory, ctypes.POINTER(ctypes.c_uint8)),
        p(spikes, ctypes.POINTER(ctypes.c_uint8)),
        p(voltage),
    )
    return spikes, voltage

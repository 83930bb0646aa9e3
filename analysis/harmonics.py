"""Harmonic analysis of responses to periodic stimuli: F1/F2 amplitudes and the nonlinearity index.

A contrast-reversing grating modulates a linear receptive field at the reversal frequency (the first harmonic,
F1) and a receptive field built from rectifying subunits also at twice that frequency (F2, "frequency
doubling"). Enroth-Cugell & Robson (1966, J Physiol 187:517) separated cat X and Y cells this way; Hochstein &
Shapley (1976, J Physiol 262:265, "Linear and nonlinear spatial subunits in Y cat retinal ganglion cells")
used the ratio of the second-harmonic to the first-harmonic amplitude, each at its maximum over the gratings'
spatial phases and frequencies, as a nonlinearity index (> 1 for Y cells, < 1 for X cells).

>>> amplitudes = harmonic_amplitudes(cycle_psth, harmonics=(1, 2))      # (..., bins) -> (..., 2)
>>> index = nonlinearity_index(amplitudes[..., 0], amplitudes[..., 1])  # max F2 / max F1 over conditions
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from neuromodels.errors import ConfigError

__all__ = ["harmonic_amplitudes", "nonlinearity_index"]


def harmonic_amplitudes(
    cycle_response: np.ndarray | xr.DataArray,
    harmonics: Sequence[int] = (1, 2),
    *,
    dim: str = "time_bin",
) -> np.ndarray | xr.DataArray:
    """Amplitude of each harmonic of a response sampled over exactly one stimulus cycle.

    For ``N`` equally spaced samples ``r_n`` covering one period, the amplitude of harmonic ``k`` (``k`` cycles per
    period) is ``A_k = (2 / N) |sum_n r_n exp(-2 pi i k n / N)|``: a response ``c + A cos(2 pi k n / N + phi)``
    gives exactly ``A`` for ``0 < k < N / 2`` (``A_0`` would be twice the mean, so ``k = 0`` is refused).

    ``cycle_response``: numpy array with the cycle on the last axis, or a DataArray with the cycle along ``dim``.
    Returns the amplitudes with the cycle axis replaced by one per harmonic (numpy: last axis; xarray: a
    ``harmonic`` dimension with the harmonic numbers as coordinate), in the response's units.
    """
    ks = [int(k) for k in harmonics]
    if isinstance(cycle_response, xr.DataArray):
        if dim not in cycle_response.dims:
            raise ConfigError(f"cycle_response has no dimension {dim!r} (dims {cycle_response.dims})")
        out = xr.apply_ufunc(
            harmonic_amplitudes,
            cycle_response,
            kwargs={"harmonics": ks},
            input_core_dims=[[dim]],
            output_core_dims=[["harmonic"]],
        )
        return out.assign_coords(harmonic=ks).assign_attrs(
            method="harmonic_amplitudes", reference="Hochstein & Shapley 1976", units=cycle_response.attrs.get("units")
        )
    values = np.asarray(cycle_response, dtype=np.float64)
    n = values.shape[-1] if values.ndim else 0
    if not ks or any(k < 1 or 2 * k >= n for k in ks):
        raise ConfigError(f"harmonics must be integers with 1 <= k < N/2 for N = {n} samples per cycle, got {ks}")
    spectrum = np.fft.rfft(values, axis=-1)
    return np.stack([2.0 / n * np.abs(spectrum[..., k]) for k in ks], axis=-1)


def nonlinearity_index(
    f1: np.ndarray | xr.DataArray,
    f2: np.ndarray | xr.DataArray,
    *,
    dim: str | Sequence[str] | None = None,
) -> np.ndarray | xr.DataArray:
    """Hochstein & Shapley's nonlinearity index: ``max F2 / max F1``, each maximised over the stimulus conditions.

    ``f1``, ``f2``: first- and second-harmonic amplitudes per condition (spatial phase and frequency). numpy:
    conditions on the last axis; xarray: over ``dim`` (default every dimension except ``neuroid``/``cell``).
    NaN where the largest F1 is zero.
    """
    if isinstance(f1, xr.DataArray):
        dims = dim if dim is not None else [d for d in f1.dims if d not in ("neuroid", "cell")]
        top1, top2 = f1.max(dims), f2.max(dims)
        return (top2 / top1.where(top1 > 0)).assign_attrs(
            method="nonlinearity_index (max F2 / max F1)", reference="Hochstein & Shapley 1976"
        )
    top1 = np.max(np.asarray(f1, dtype=np.float64), axis=-1)
    top2 = np.max(np.asarray(f2, dtype=np.float64), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(top1 > 0, top2 / np.where(top1 > 0, top1, 1.0), np.nan)

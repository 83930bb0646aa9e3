"""Bundled sample data with a documented ground truth: a virtual retina and a virtual ventral stream.

Nothing is shipped: each sample is generated deterministically from a seed (NumPy ``Generator`` streams
spawned from one ``SeedSequence``) in a few seconds and cached as netCDF under
``platformdirs.user_cache_dir("neuromodels")/samples/<name>-<key>.nc`` (``$NEUROMODELS_CACHE/samples/...``
when that environment variable is set). ``key`` hashes the sample's generator version, the package
version, the seed and every parameter, so changing any of them generates a new file. A cache file that
cannot be read, fails validation, or was written for another key is regenerated and atomically replaced.
The cache is trusted only as far as no one but this user could have written it: the ``samples`` folder is
created with mode 0700, and one owned by another user or writable by group or others is not used (a warning
says so; the sample is generated afresh and not cached); each file's SHA-256 is recorded beside it at write
time (``<name>-<key>.nc.sha256``) and checked before it is read, so a file that was not written by
:func:`sample` (or was changed since) is regenerated, whatever its ``sample_key``.

>>> from neuromodels.datasets import sample, sample_names
>>> sample_names()
['retina', 'ventral', 'ventral-features']
>>> rec = sample("retina")                 # xr.Dataset: stimulus, response, trials, rate_true
>>> asm = sample("ventral")                # xr.DataArray (presentation, neuroid) with analytic ceilings
>>> feats = sample("ventral-features")     # xr.DataArray (presentation, feature): signal = feats @ W + b

``load("sample:NAME", **params)`` is ``sample(NAME, **params)``. Every parameter of a sample can be
overridden by keyword (``sample("retina", n_repeats=20)``); the complete set used is stored JSON-encoded
in ``attrs['parameters']``. docs/sample-data.md gives the equations and the measured LN-vs-subunit gap.

Samples
-------
``retina``
    A recording (``xr.Dataset``) of 12 virtual ganglion cells (ON, OFF, ON-OFF) driven by rectified
    bipolar-like subunits, the circuit that defeats linear-nonlinear (LN) models (Gollisch & Meister
    2010; McIntosh et al. 2016). See :func:`retina`.
``ventral``
    A presentation x neuroid assembly (V4 and IT neuroids) whose responses are a linear readout of known
    image features plus Gaussian noise of known variance, so that its noise ceiling is known
    analytically. See :func:`ventral`.
``ventral-features``
    The (presentation, feature) image features from which ``ventral``'s signal is an exact linear map.
    See :func:`ventral_ground_truth`.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neuromodels.errors import ConfigError, DataFormatError, note_loaded

__all__ = [
    "sample",
    "sample_names",
    "sample_cache_path",
    "retina",
    "ventral",
    "ventral_ground_truth",
    "RETINA_DEFAULTS",
    "VENTRAL_DEFAULTS",
    "temporal_filter",
    "subunit_grid",
    "subunit_spatial_filters",
    "subunit_nonlinearity",
    "causal_filter",
]

SAMPLE_PREFIX = "sample:"

# Bump when a generator's output changes for the same seed and parameters: old cache files then stop matching.
_GENERATOR_VERSION = {"retina": 2, "ventral": 1, "ventral-features": 1}  # retina 2: model attr names the logistic

RETINA_DEFAULTS: dict[str, Any] = {
    # stimulus: 50 x 50 pixels at 100 frames/s, contrast units (0 = mean luminance)
    "size_px": 50,
    "train_checkerboard_frames": 5000,
    "train_natural_frames": 1000,
    "test_checkerboard_frames": 250,
    "test_natural_frames": 250,
    "n_repeats": 10,
    "checker_px": 2,
    "checker_contrast": 1.0,
    "natural_image_px": 512,
    "natural_rms_contrast": 0.35,
    "natural_spectral_slope": 1.0,
    "fixation_min_s": 0.2,
    "fixation_max_s": 0.6,
    "drift_sd_px": 0.35,
    # bipolar-like subunits: a square grid, difference-of-Gaussians spatial RF, biphasic temporal filter
    "subunit_spacing_px": 4.0,
    "subunit_center_sigma_px": 1.5,
    "subunit_surround_sigma_px": 4.0,
    "subunit_surround_weight": 0.2,
    "filter_frames": 40,
    "temporal_tau_fast_s": 0.016,
    "temporal_tau_slow_s": 0.032,
    "temporal_undershoot": 0.8,
    "subunit_threshold": 0.5,
    "subunit_exponent": 2.0,
    # ganglion cells
    "n_on": 4,
    "n_off": 4,
    "n_on_off": 4,
    "rf_sigma_px": 4.0,
    "rf_margin_px": 12.0,
    "on_off_weight_min": 0.6,
    "on_off_weight_max": 1.0,
    "output_max_rate_hz": 200.0,
    "output_gain": 1.5,
    "target_rate_min_hz": 8.0,
    "target_rate_max_hz": 25.0,
    # spike generation on a 1 ms grid
    "refractory_abs_ms": 2,
    "refractory_tau_ms": 4.0,
}

VENTRAL_DEFAULTS: dict[str, Any] = {
    "n_categories": 6,
    "n_objects_per_category": 5,
    "n_images_per_object": 10,
    "n_repetitions": 10,
    "n_v4": 24,
    "n_it": 40,
    "n_low_features": 20,
    "n_high_features": 20,
    "category_share": 0.4,
    "object_share": 0.3,
    "preferred_block_weight": 1.0,
    "other_block_weight": 0.3,
    "signal_sd_min": 2.0,
    "signal_sd_max": 6.0,
    "noise_sd_min": 3.0,
    "noise_sd_max": 12.0,
    "baseline_min": 5.0,
    "baseline_max": 30.0,
}

_CATEGORY_NAMES = ("animal", "boat", "car", "chair", "face", "fruit", "plane", "table", "tree", "house")

_RETINA_POSITIVE = (
    "size_px",
    "train_checkerboard_frames",
    "n_repeats",
    "checker_px",
    "checker_contrast",
    "natural_image_px",
    "natural_rms_contrast",
    "fixation_min_s",
    "fixation_max_s",
    "subunit_spacing_px",
    "subunit_center_sigma_px",
    "subunit_surround_sigma_px",
    "filter_frames",
    "temporal_tau_fast_s",
    "temporal_tau_slow_s",
    "subunit_exponent",
    "rf_sigma_px",
    "output_max_rate_hz",
    "output_gain",
    "target_rate_min_hz",
    "target_rate_max_hz",
    "refractory_tau_ms",
)
_RETINA_NON_NEGATIVE = (
    "train_natural_frames",
    "test_checkerboard_frames",
    "test_natural_frames",
    "n_on",
    "n_off",
    "n_on_off",
    "natural_spectral_slope",
    "drift_sd_px",
    "subunit_surround_weight",
    "temporal_undershoot",
    "subunit_threshold",
    "rf_margin_px",
    "on_off_weight_min",
    "on_off_weight_max",
    "refractory_abs_ms",
)

FRAME_RATE_HZ = 100.0  # fixed: the spike generator runs on a 1 ms grid, 10 steps per frame
SPIKE_STEP_S = 0.001


# ----------------------------------------------------------------------------------------------------------
# public entry points


@dataclass(frozen=True)
class _Spec:
    defaults: Mapping[str, Any]
    generate: Callable[..., xr.Dataset | xr.DataArray]
    kind: str  # "dataset" or "dataarray"


def _specs() -> dict[str, _Spec]:
    return {
        "retina": _Spec(RETINA_DEFAULTS, retina, "dataset"),
        "ventral": _Spec(VENTRAL_DEFAULTS, ventral, "dataarray"),
        "ventral-features": _Spec(VENTRAL_DEFAULTS, _ventral_features, "dataarray"),
    }


def sample_names() -> list[str]:
    """Names accepted by :func:`sample` (and by ``load("sample:NAME")``)."""
    return sorted(_specs())


def _spec(name: str) -> _Spec:
    specs = _specs()
    if name not in specs:
        raise DataFormatError(
            "no such sample",
            file=f"{SAMPLE_PREFIX}{name}",
            field="<name>",
            expected=f"one of {', '.join(sorted(specs))}",
            found=repr(name),
        )
    return specs[name]


def _resolve(
    name: str, defaults: Mapping[str, Any], params: Mapping[str, Any], seed: Any
) -> tuple[int, dict[str, Any]]:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"sample {name!r}: seed must be a non-negative integer, got {seed!r}")
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ConfigError(
            f"sample {name!r} has no parameter(s) {unknown}; its parameters are: {', '.join(sorted(defaults))}"
        )
    full = dict(defaults)
    for key, value in params.items():
        default = defaults[key]
        if isinstance(default, int) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ConfigError(f"sample {name!r}: parameter {key} must be an integer, got {value!r}")
            value = int(value)
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ConfigError(f"sample {name!r}: parameter {key} must be a number, got {value!r}")
            value = float(value)
            if not np.isfinite(value):
                raise ConfigError(f"sample {name!r}: parameter {key} must be finite, got {value!r}")
        full[key] = value
    return int(seed), full


def _cache_key(name: str, seed: int, params: Mapping[str, Any]) -> str:
    from neuromodels import __version__

    text = json.dumps(
        {
            "name": name,
            "generator_version": _GENERATOR_VERSION[name],
            "neuromodels": __version__,
            "seed": seed,
            "parameters": dict(sorted(params.items())),
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sample_cache_path(name: str, *, seed: int = 0, **params: Any) -> Path:
    """Where :func:`sample` caches ``name`` for this seed and these parameters (the file may not exist)."""
    spec = _spec(name)
    seed, full = _resolve(name, spec.defaults, params, seed)
    from neuromodels._cache import cache_root

    return cache_root() / "samples" / f"{name}-{_cache_key(name, seed, full)}.nc"


def sample(name: str, *, seed: int = 0, cache: bool = True, **params: Any) -> xr.Dataset | xr.DataArray:
    """Generate (or read from the cache) the sample ``name``; see the module docstring.

    Parameters
    ----------
    name
        One of :func:`sample_names`: ``"retina"``, ``"ventral"``, ``"ventral-features"``.
    seed
        Seed of the generator; the same seed and parameters give identical arrays.
    cache
        Read from / write to the netCDF cache. ``cache=False`` always generates afresh and writes nothing.
    **params
        Overrides of the sample's parameters (:data:`RETINA_DEFAULTS`, :data:`VENTRAL_DEFAULTS`).

    Raises
    ------
    DataFormatError
        for an unknown sample name (file ``sample:NAME``).
    ConfigError
        for an unknown parameter or a value of the wrong type.
    """
    spec = _spec(name)
    seed, full = _resolve(name, spec.defaults, params, seed)
    key = _cache_key(name, seed, full)
    # used as itself: errors naming sample:NAME are not taken for a converted file's recorded source
    note_loaded(f"sample:{name}", f"sample:{name}")
    if not cache:
        return spec.generate(seed=seed, **full)
    from neuromodels._cache import cache_root

    path = cache_root() / "samples" / f"{name}-{key}.nc"
    folder_fd = _open_cache_folder(path.parent)
    if folder_fd is None:
        return spec.generate(seed=seed, **full)
    try:
        cached = _read_cache(folder_fd, path, spec.kind, key)
        if cached is not None:
            return cached
        obj = spec.generate(seed=seed, **full)
        _write_cache(obj, folder_fd, path)
        return obj
    finally:
        os.close(folder_fd)


def _open_cache_folder(folder: Path) -> int | None:
    """A descriptor on the checked ``samples`` folder; ``None`` when it is unsafe (with a warning) or unusable."""
    from neuromodels._cache import UnsafeFolderError, open_private_folder

    try:
        return open_private_folder(folder)
    except UnsafeFolderError as exc:
        warnings.warn(
            f"not using the sample cache: {exc}. The sample is generated afresh and not cached.",
            RuntimeWarning,
            stacklevel=3,
        )
    except OSError:  # an unwritable cache folder must not stop the user from getting the data
        pass
    return None


def _read_cache(folder_fd: int, path: Path, kind: str, key: str) -> xr.Dataset | xr.DataArray | None:
    """The cached object, or ``None`` when the file is absent, not the one :func:`_write_cache` recorded,
    unreadable, invalid or for another key."""
    from neuromodels._cache import fd_path, open_verified_file

    fd = open_verified_file(folder_fd, path.name)
    if fd is None:
        return None
    try:
        opener = xr.open_dataset if kind == "dataset" else xr.open_dataarray
        with opener(fd_path(fd, path), decode_timedelta=False) as obj:  # the file whose digest was checked
            obj = obj.load()
        obj.encoding = {}
        if obj.attrs.get("sample_key") != key:
            return None
        if "feature" not in obj.dims:
            from neuromodels.datasets._validate import validate

            validate(obj)
        return obj
    except Exception:  # noqa: BLE001 - any damage (truncated HDF5, wrong layout, failed validation) means: regenerate
        return None
    finally:
        os.close(fd)


def _write_cache(obj: xr.Dataset | xr.DataArray, folder_fd: int, path: Path) -> None:
    from neuromodels._cache import fd_path, record_digest
    from neuromodels.datasets._io import write_netcdf_atomic

    if isinstance(obj, xr.Dataset):
        encoding = {name: {"zlib": True, "complevel": 1} for name in obj.data_vars}
    else:
        encoding = {obj.name: {"zlib": True, "complevel": 1}}
    try:
        write_netcdf_atomic(obj, Path(fd_path(folder_fd, path.parent)) / path.name, engine="netcdf4", encoding=encoding)
        record_digest(folder_fd, path.name)
    except OSError:
        # An unwritable cache folder must not stop the user from getting the data.
        return


def _attrs(name: str, seed: int, params: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    from neuromodels import __version__

    return {
        "source": f"{SAMPLE_PREFIX}{name}",
        "format": "sample",
        "sample_name": name,
        "seed": int(seed),
        "parameters": json.dumps(dict(sorted(params.items()))),
        "generator_version": int(_GENERATOR_VERSION[name]),
        "neuromodels_version": __version__,
        "sample_key": _cache_key(name, seed, params),
        **extra,
    }


def _require(
    name: str, params: Mapping[str, Any], *, positive: tuple[str, ...] = (), non_negative: tuple[str, ...] = ()
) -> None:
    for key in positive:
        if not params[key] > 0:
            raise ConfigError(f"sample {name!r}: parameter {key} must be > 0, got {params[key]!r}")
    for key in non_negative:
        if not params[key] >= 0:
            raise ConfigError(f"sample {name!r}: parameter {key} must be >= 0, got {params[key]!r}")


# ----------------------------------------------------------------------------------------------------------
# retina: stimuli


def _checkerboard(rng: np.random.Generator, n_frames: int, size: int, checker_px: int, contrast: float) -> np.ndarray:
    """Binary white noise: independent +-contrast checkers of ``checker_px`` pixels, new every frame."""
    n_checkers = -(-size // checker_px)
    signs = rng.integers(0, 2, size=(n_frames, n_checkers, n_checkers), dtype=np.int8) * 2 - 1
    frames = np.repeat(np.repeat(signs, checker_px, axis=1), checker_px, axis=2)[:, :size, :size]
    return (contrast * frames).astype(np.float32)


def _one_over_f_image(rng: np.random.Generator, size: int, slope: float, rms: float) -> np.ndarray:
    """A ``size`` x ``size`` image with amplitude spectrum ``1/f**slope``, random phases, given RMS contrast."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    freq = np.hypot(fy, fx)
    freq[0, 0] = 1.0
    amplitude = freq ** (-slope)
    amplitude[0, 0] = 0.0  # zero mean contrast
    phase = rng.uniform(0.0, 2.0 * np.pi, size=amplitude.shape)
    image = np.fft.irfft2(amplitude * np.exp(1j * phase), s=(size, size))
    image *= rms / image.std()
    return np.clip(image, -1.0, 1.0)


def _natural_movie(rng: np.random.Generator, n_frames: int, p: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """A window of a 1/f image moved by fixational drift and saccades; returns (frames, window positions)."""
    size, big = p["size_px"], p["natural_image_px"]
    image = _one_over_f_image(rng, big, p["natural_spectral_slope"], p["natural_rms_contrast"])
    room = big - size
    positions = np.empty((n_frames, 2), dtype=np.int64)
    pos = rng.uniform(0, room, size=2)
    fixation_left = 0
    for t in range(n_frames):
        if fixation_left <= 0:  # saccade: jump to a new place, start a new fixation
            pos = rng.uniform(0, room, size=2)
            fixation_left = int(round(rng.uniform(p["fixation_min_s"], p["fixation_max_s"]) * FRAME_RATE_HZ))
        else:  # fixational drift: a random walk, reflected at the image border
            pos = pos + rng.normal(0.0, p["drift_sd_px"], size=2)
            pos = np.abs(pos)
            pos = np.where(pos > room, 2 * room - pos, pos)
        fixation_left -= 1
        positions[t] = np.clip(np.round(pos), 0, room).astype(np.int64)
    frames = (
        np.stack([image[y : y + size, x : x + size] for y, x in positions]) if n_frames else np.zeros((0, size, size))
    )
    return frames.astype(np.float32), positions


# ----------------------------------------------------------------------------------------------------------
# retina: the circuit


def temporal_filter(p: Mapping[str, Any] = RETINA_DEFAULTS) -> np.ndarray:
    """The subunits' biphasic temporal filter ``f[k]``, ``k = 0 .. filter_frames-1`` frames into the past.

    ``f(t) = g(t; tau_fast) - undershoot * g(t; tau_slow)`` with the gamma-like lobe
    ``g(t; tau) = t**3 exp(-t/tau) / sum_k(t_k**3 exp(-t_k/tau))`` (unit area, peak at ``t = 3 tau``),
    ``t = k / frame_rate``; then scaled to unit L2 norm. ``undershoot < 1`` keeps a net positive area
    (``1 - undershoot`` of the first lobe's): a transient filter that still passes some of a sustained step.
    """
    t = np.arange(int(p["filter_frames"])) / FRAME_RATE_HZ

    def lobe(tau: float) -> np.ndarray:
        g = t**3 * np.exp(-t / tau)
        return g / g.sum()

    f = lobe(p["temporal_tau_fast_s"]) - p["temporal_undershoot"] * lobe(p["temporal_tau_slow_s"])
    return f / np.linalg.norm(f)


def subunit_grid(p: Mapping[str, Any] = RETINA_DEFAULTS) -> np.ndarray:
    """Subunit centres ``(n_subunits, 2)`` as (y, x) in pixels (pixel centres at 0 .. size-1), centred grid."""
    size, spacing = p["size_px"], p["subunit_spacing_px"]
    n = max(int(size // spacing), 1)
    offset = (size - 1 - spacing * (n - 1)) / 2.0
    axis = offset + spacing * np.arange(n)
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([yy.ravel(), xx.ravel()], axis=1)


def subunit_spatial_filters(p: Mapping[str, Any] = RETINA_DEFAULTS) -> np.ndarray:
    """Difference-of-Gaussians weights ``(n_subunits, size*size)`` over the stimulus pixels.

    ``K_j(r) = G(r - c_j; sigma_c) - surround_weight * G(r - c_j; sigma_s)``, each ``G`` normalised to unit
    integral, so that a uniform contrast ``c`` drives every subunit by ``(1 - surround_weight) c``.
    """
    size = p["size_px"]
    centres = subunit_grid(p)
    pix = np.arange(size, dtype=np.float64)
    d2 = (pix[None, :, None] - centres[:, 0, None, None]) ** 2 + (pix[None, None, :] - centres[:, 1, None, None]) ** 2

    def gauss(sigma: float) -> np.ndarray:
        return np.exp(-d2 / (2.0 * sigma**2)) / (2.0 * np.pi * sigma**2)

    k = gauss(p["subunit_center_sigma_px"]) - p["subunit_surround_weight"] * gauss(p["subunit_surround_sigma_px"])
    return k.reshape(len(centres), size * size)


def causal_filter(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``y[t] = sum_k kernel[k] x[t-k]`` along axis 0, with ``x = 0`` before ``t = 0`` (a gray screen).

    A direct sum over the few taps: as exact as ``scipy.signal.lfilter`` and without its import cost.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.zeros_like(x)
    for lag, weight in enumerate(kernel[: len(x)]):
        y[lag:] += weight * x[: len(x) - lag]
    return y


def _subunit_drive(stimulus: np.ndarray, spatial: np.ndarray, temporal: np.ndarray) -> np.ndarray:
    """Linear subunit drive ``u[t, j] = sum_k f[k] K_j . s[t-k]`` with a gray screen before frame 0."""
    flat = stimulus.reshape(len(stimulus), -1).astype(np.float64)
    return causal_filter(flat @ spatial.T, temporal)


def subunit_nonlinearity(u: np.ndarray, p: Mapping[str, Any] = RETINA_DEFAULTS) -> np.ndarray:
    """``N(u) = max(u - threshold, 0) ** exponent`` (thresholded power law; exponent 1 is a ReLU)."""
    return np.maximum(u - p["subunit_threshold"], 0.0) ** p["subunit_exponent"]


def _logistic(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _logistic_offsets(z: np.ndarray, target_hz: np.ndarray, max_rate_hz: float, gain: float) -> np.ndarray:
    """Per cell, the offset ``b`` with ``mean_t(max_rate * logistic(gain * (z[t] - b))) == target`` (bisection)."""
    lo = np.full(z.shape[1], z.min() - 50.0 / gain)
    hi = np.full(z.shape[1], z.max() + 50.0 / gain)
    for _ in range(80):  # the mean rate decreases monotonically in b
        mid = 0.5 * (lo + hi)
        too_high = (max_rate_hz * _logistic(gain * (z - mid))).mean(axis=0) > target_hz
        lo = np.where(too_high, mid, lo)
        hi = np.where(too_high, hi, mid)
    return 0.5 * (lo + hi)


def _recovery(p: Mapping[str, Any]) -> np.ndarray:
    """``h[s-1]`` for ``s = 1 .. M`` ms since the last spike: 0 while absolutely refractory, then recovering."""
    abs_ms, tau = int(p["refractory_abs_ms"]), float(p["refractory_tau_ms"])
    n_states = abs_ms + max(int(np.ceil(12 * tau)), 1) + 1
    s = np.arange(1, n_states + 1, dtype=np.float64)
    return np.where(s <= abs_ms, 0.0, 1.0 - np.exp(-(s - abs_ms) / tau))


def _spike_probability(rate_hz: np.ndarray, recovery: np.ndarray) -> np.ndarray:
    """Probability of a spike in one 1 ms step, ``(..., M)`` per state: ``1 - exp(-lambda dt h(s))``."""
    return -np.expm1(-rate_hz[..., None] * SPIKE_STEP_S * recovery)


def _simulate_spikes(rate_hz: np.ndarray, recovery: np.ndarray, rng: np.random.Generator, n_trials: int) -> np.ndarray:
    """Spike counts per frame ``(n_trials, n_frames, n_cells)`` of the refractory Bernoulli process.

    The state is the number of 1 ms steps since the last spike, capped at ``M = len(recovery)`` (every
    trajectory starts recovered, at ``M``). Steps per frame are summed exactly (integer arithmetic): the
    process lives on a 1 ms grid, there are no continuous spike times to bin.
    """
    n_frames, n_cells = rate_hz.shape
    steps = int(round(1.0 / (FRAME_RATE_HZ * SPIKE_STEP_S)))
    n_states = len(recovery)
    since = np.full((n_trials, n_cells), n_states - 1)  # index into recovery (state s -> s-1)
    counts = np.zeros((n_trials, n_frames, n_cells), dtype=np.int64)
    cell_index = np.arange(n_cells)[None, :]
    for frame in range(n_frames):
        prob = _spike_probability(rate_hz[frame], recovery)  # (cells, M)
        uniforms = rng.random((steps, n_trials, n_cells))
        total = counts[:, frame, :]
        for step in range(steps):
            spike = uniforms[step] < prob[cell_index, since]
            total += spike
            since = np.where(spike, 0, np.minimum(since + 1, n_states - 1))
    return counts


def _expected_rate(rate_hz: np.ndarray, recovery: np.ndarray) -> np.ndarray:
    """Exact expected firing rate (Hz) per frame of the refractory process, by propagating the law of the state.

    ``law[c, s-1]`` is the probability that cell ``c`` is ``s`` steps past its last spike; the recursion is
    the one :func:`_simulate_spikes` samples from, so the trial average converges to this rate.
    """
    n_frames, n_cells = rate_hz.shape
    steps = int(round(1.0 / (FRAME_RATE_HZ * SPIKE_STEP_S)))
    law = np.zeros((n_cells, len(recovery)))
    law[:, -1] = 1.0
    expected = np.zeros((n_frames, n_cells))
    for frame in range(n_frames):
        prob = _spike_probability(rate_hz[frame], recovery)
        survive = 1.0 - prob
        for _ in range(steps):
            fired = np.einsum("cs,cs->c", law, prob)
            capped = law[:, -1] * survive[:, -1]
            law[:, 1:] = law[:, :-1] * survive[:, :-1]
            law[:, -1] += capped
            law[:, 0] = fired
            expected[frame] += fired
    return expected * FRAME_RATE_HZ


def retina(*, seed: int = 0, **params: Any) -> xr.Dataset:
    r"""Generate the virtual-retina recording (uncached; :func:`sample` caches it).

    Ground truth (all parameters in :data:`RETINA_DEFAULTS`, stored in ``attrs['parameters']``):

    1. **Stimulus** ``s[t, y, x]`` (float32 contrast, 50 x 50 pixels, 100 frames/s). Each split holds a
       white-noise checkerboard (independent binary +-1 checkers of 2 x 2 pixels, new every frame) followed
       by a natural-like movie (a 50 x 50 window of a 512 x 512 image with ``1/f`` amplitude spectrum, RMS
       contrast 0.35, moved by fixational drift, a Gaussian random walk of 0.35 px/frame, and saccades to a
       uniformly random place every 0.2-0.6 s; a new image per split). Train: 5,000 checkerboard + 1,000 movie
       frames (60 s); test: 250 + 250 frames (5 s) shown ``n_repeats = 10`` times. The coordinate
       ``stimulus_kind`` on ``time`` says which. Each split starts from a gray screen (contrast 0 before its first frame), so a model that
       zero-pads the history of ``split(rec, name)`` sees exactly what the generator saw.
    2. **Bipolar-like subunits** on a 12 x 12 grid (4 px spacing), ON and OFF at every site. Linear drive
       ``u_j[t] = (1/sigma_u) sum_k f[k] sum_r K_j(r) s[t-k, r]`` with the difference-of-Gaussians ``K_j``
       (:func:`subunit_spatial_filters`: centre sigma 1.5 px, surround sigma 4 px, surround weight 0.2) and
       the biphasic ``f`` over 40 frames (:func:`temporal_filter`). ``sigma_u`` (``attrs['subunit_drive_scale']``)
       is the standard deviation of all subunits' raw drive on the training checkerboard. ON subunits
       output ``N(u_j)``, OFF subunits ``N(-u_j)``, ``N(u) = max(u - 0.5, 0)**2`` (:func:`subunit_nonlinearity`).
    3. **Ganglion cells** (4 ON, 4 OFF, 4 ON-OFF; RF centres uniform in [12, 37]^2 px) pool the subunits with
       Gaussian weights ``w_cj = exp(-|c_j - c|^2 / (2 * 4^2)) / sum_j(...)``:
       ``g_c = a_on sum_j w_cj N(u_j) + a_off sum_j w_cj N(-u_j)`` with ``(a_on, a_off) = (1, 0)`` (ON),
       ``(0, 1)`` (OFF), ``(1, U[0.6, 1])`` (ON-OFF); coords ``on_weight``, ``off_weight``.
    4. **Output nonlinearity**: ``lambda_c[t] = 200 Hz * logistic(1.5 * (z_c[t] - b_c))`` with
       ``z_c = (g_c - g_mean_c) / g_sd_c`` standardised on the training checkerboard and the offset ``b_c``
       set (bisection) so that the mean of ``lambda_c`` there equals a target drawn from U[8, 25] Hz (coords
       ``g_mean``, ``g_sd``, ``output_offset``, ``target_rate_hz``). The data variable ``rate_free(time, cell)``
       is ``lambda``, the intensity before refractoriness.
    5. **Spikes**: on a 1 ms grid (``lambda`` constant within a frame), a spike occurs with probability
       ``1 - exp(-lambda dt h(s))``, ``s`` = ms since the last spike, ``h(s) = 0`` for ``s <= 2`` (absolute
       refractory period) and ``1 - exp(-(s - 2)/4 ms)`` after (relative recovery); counts are summed in
       10 ms bins. ``rate_true(time, cell)`` is the exact expected firing rate (Hz) of this process, the
       limit of the trial average (computed by propagating the law of ``s``), i.e. the noise-free target.

    Returns an ``xr.Dataset`` in the recording data model: ``stimulus(time, y, x)``, ``response(time, cell)``
    (integer counts; on the test split, repeat 0), ``trials(repeat, time, cell)`` (all repeats on the test
    split, NaN on train), ``rate_true`` and ``rate_free`` (Hz), coords ``split``, ``stimulus_kind``,
    ``cell``, ``cell_type`` and the per-cell ground truth above.
    """
    seed, p = _resolve("retina", RETINA_DEFAULTS, params, seed)
    _require("retina", p, positive=_RETINA_POSITIVE, non_negative=_RETINA_NON_NEGATIVE)
    n_cells = p["n_on"] + p["n_off"] + p["n_on_off"]
    _check_retina_parameters(p, n_cells)
    rng_cells, rng_checker, rng_natural, rng_train, rng_test = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)
    )
    # 1. stimuli
    train_stim, test_stim = _retina_stimuli(p, rng_checker, rng_natural)
    # 2. subunits
    temporal = temporal_filter(p)
    u_train, u_test, drive_scale = _retina_subunit_drives(p, train_stim, test_stim, temporal)
    # 3.-4. ganglion cells and their output nonlinearity
    cells = _retina_cells(p, rng_cells, n_cells)
    lam_train, lam_test = _retina_intensities(p, cells, u_train, u_test)
    # 5. spikes
    recovery = _recovery(p)
    counts_train = _simulate_spikes(lam_train, recovery, rng_train, 1)[0]
    trials_test = _simulate_spikes(lam_test, recovery, rng_test, p["n_repeats"])
    rate_train = _expected_rate(lam_train, recovery)
    rate_test = _expected_rate(lam_test, recovery)

    n_train, n_test = len(train_stim), len(test_stim)
    dt = 1.0 / FRAME_RATE_HZ
    cell_ids = [f"cell{i:02d}" for i in range(n_cells)]
    trials = np.full((p["n_repeats"], n_train + n_test, n_cells), np.nan, dtype=np.float32)
    trials[:, n_train:, :] = trials_test
    variables = {
        "stimulus": (
            ("time", "y", "x"),
            np.concatenate([train_stim, test_stim]).astype(np.float32),
            {"units": "contrast"},
        ),
        "response": (
            ("time", "cell"),
            np.concatenate([counts_train, trials_test[0]]).astype(np.int64),
            {"units": "count"},
        ),
        "trials": (("repeat", "time", "cell"), trials, {"units": "count"}),
        "rate_true": (
            ("time", "cell"),
            np.concatenate([rate_train, rate_test]),
            {"units": "Hz", "description": "expected firing rate of the spiking process (noise-free)"},
        ),
        "rate_free": (
            ("time", "cell"),
            np.concatenate([lam_train, lam_test]),
            {"units": "Hz", "description": "stimulus-driven intensity before refractoriness"},
        ),
    }
    attrs = _retina_attrs(seed, p, cells, cell_ids, drive_scale, temporal)
    ds = xr.Dataset(variables, coords=_retina_coords(p, cells, cell_ids, n_train, n_test, dt), attrs=attrs)
    from neuromodels.datasets._validate import validate

    return validate(ds)


def _check_retina_parameters(p: dict[str, Any], n_cells: int) -> None:
    if n_cells == 0:
        raise ConfigError("sample 'retina': n_on + n_off + n_on_off must be at least 1")
    if p["test_checkerboard_frames"] + p["test_natural_frames"] == 0:
        raise ConfigError("sample 'retina': the test split needs at least one frame")
    if p["natural_image_px"] < p["size_px"]:
        raise ConfigError("sample 'retina': natural_image_px must be at least size_px")
    for lo, hi in (
        ("fixation_min_s", "fixation_max_s"),
        ("on_off_weight_min", "on_off_weight_max"),
        ("target_rate_min_hz", "target_rate_max_hz"),
    ):
        if p[hi] < p[lo]:
            raise ConfigError(f"sample 'retina': {hi} must be >= {lo}")
    if p["target_rate_max_hz"] >= p["output_max_rate_hz"]:
        raise ConfigError("sample 'retina': target_rate_max_hz must be below output_max_rate_hz")
    if p["rf_margin_px"] * 2 > p["size_px"] - 1:
        raise ConfigError("sample 'retina': rf_margin_px leaves no room for receptive-field centres")


def _retina_stimuli(
    p: dict[str, Any], rng_checker: np.random.Generator, rng_natural: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Step 1 of :func:`retina`: each split's movie, a checkerboard followed by a natural-like movie."""
    size = p["size_px"]
    train_parts = [
        _checkerboard(rng_checker, p["train_checkerboard_frames"], size, p["checker_px"], p["checker_contrast"])
    ]
    test_parts = [
        _checkerboard(rng_checker, p["test_checkerboard_frames"], size, p["checker_px"], p["checker_contrast"])
    ]
    movie_train, _ = _natural_movie(rng_natural, p["train_natural_frames"], p)
    movie_test, _ = _natural_movie(rng_natural, p["test_natural_frames"], p)
    return np.concatenate(train_parts + [movie_train]), np.concatenate(test_parts + [movie_test])


def _retina_subunit_drives(
    p: dict[str, Any], train_stim: np.ndarray, test_stim: np.ndarray, temporal: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """Step 2 of :func:`retina`: every subunit's linear drive on both splits, divided by ``sigma_u`` (the sd of
    the raw drive on the training checkerboard); with ``sigma_u``."""
    spatial = subunit_spatial_filters(p)
    u_train = _subunit_drive(train_stim, spatial, temporal)
    u_test = _subunit_drive(test_stim, spatial, temporal)
    checker = slice(0, p["train_checkerboard_frames"])
    drive_scale = float(u_train[checker].std())
    u_train /= drive_scale
    u_test /= drive_scale
    return u_train, u_test, drive_scale


def _retina_cells(p: dict[str, Any], rng_cells: np.random.Generator, n_cells: int) -> dict[str, Any]:
    """Step 3 of :func:`retina`, the cells' draws: types (shuffled), RF centres, ON/OFF weights, target mean
    rates, and the normalised Gaussian pooling weights ``pool (cell, subunit site)`` over the subunit ``grid``."""
    size = p["size_px"]
    types = ["ON"] * p["n_on"] + ["OFF"] * p["n_off"] + ["ON-OFF"] * p["n_on_off"]
    order = rng_cells.permutation(n_cells)
    types = [types[i] for i in order]
    lo, hi = p["rf_margin_px"], size - 1 - p["rf_margin_px"]
    centres = rng_cells.uniform(lo, hi, size=(n_cells, 2))
    on_off_mix = rng_cells.uniform(p["on_off_weight_min"], p["on_off_weight_max"], size=n_cells)
    target = rng_cells.uniform(p["target_rate_min_hz"], p["target_rate_max_hz"], size=n_cells)
    on_weight = np.array([1.0 if t in ("ON", "ON-OFF") else 0.0 for t in types])
    off_weight = np.array([1.0 if t == "OFF" else (m if t == "ON-OFF" else 0.0) for t, m in zip(types, on_off_mix)])
    grid = subunit_grid(p)
    d2 = ((grid[None, :, :] - centres[:, None, :]) ** 2).sum(-1)
    pool = np.exp(-d2 / (2.0 * p["rf_sigma_px"] ** 2))
    pool /= pool.sum(axis=1, keepdims=True)
    return {
        "types": types,
        "centres": centres,
        "target": target,
        "on_weight": on_weight,
        "off_weight": off_weight,
        "grid": grid,
        "pool": pool,
    }


def _retina_intensities(
    p: dict[str, Any], cells: dict[str, Any], u_train: np.ndarray, u_test: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Steps 3-4 of :func:`retina`: pooled subunit outputs ``g``, standardised on the training checkerboard,
    through the logistic output nonlinearity whose offsets meet the target rates: ``lambda`` (Hz) on both
    splits. Adds ``g_mean``, ``g_sd`` and ``output_offset`` to ``cells``."""
    pool, on_weight, off_weight = cells["pool"], cells["on_weight"], cells["off_weight"]

    def pooled(u: np.ndarray) -> np.ndarray:
        return (
            subunit_nonlinearity(u, p) @ (pool * on_weight[:, None]).T
            + subunit_nonlinearity(-u, p) @ (pool * off_weight[:, None]).T
        )

    checker = slice(0, p["train_checkerboard_frames"])
    g_train, g_test = pooled(u_train), pooled(u_test)
    g_mean = g_train[checker].mean(axis=0)
    g_sd = g_train[checker].std(axis=0)
    g_sd = np.where(g_sd > 0, g_sd, 1.0)

    z_train = (g_train - g_mean) / g_sd
    z_test = (g_test - g_mean) / g_sd
    output_offset = _logistic_offsets(z_train[checker], cells["target"], p["output_max_rate_hz"], p["output_gain"])
    lam_train = p["output_max_rate_hz"] * _logistic(p["output_gain"] * (z_train - output_offset))
    lam_test = p["output_max_rate_hz"] * _logistic(p["output_gain"] * (z_test - output_offset))
    cells.update(g_mean=g_mean, g_sd=g_sd, output_offset=output_offset)
    return lam_train, lam_test


def _retina_attrs(
    seed: int,
    p: dict[str, Any],
    cells: dict[str, Any],
    cell_ids: list[str],
    drive_scale: float,
    temporal: np.ndarray,
) -> dict[str, Any]:
    """The recording's attrs: the parameters and the ground truth that is not per cell or per frame."""
    grid = cells["grid"]
    return _attrs(
        "retina",
        seed,
        p,
        frame_rate_hz=FRAME_RATE_HZ,
        bin_size_s=1.0 / FRAME_RATE_HZ,
        species="virtual",
        cell_types=json.dumps(dict(zip(cell_ids, cells["types"]))),
        subunit_drive_scale=drive_scale,
        subunit_centres_y_px=grid[:, 0],
        subunit_centres_x_px=grid[:, 1],
        temporal_filter=temporal,
        response_on_test="repeat 0 of trials",
        model=(
            "stimulus -> ON/OFF bipolar-like subunits (DoG space x biphasic time, thresholded quadratic "
            "N(u)=max(u-theta,0)^2) -> Gaussian pooling by ganglion cells -> logistic output nonlinearity -> "
            "Bernoulli spikes on a 1 ms grid with absolute and relative refractoriness; see "
            "neuromodels.datasets.samples.retina and docs/sample-data.md"
        ),
    )


def _retina_coords(
    p: dict[str, Any], cells: dict[str, Any], cell_ids: list[str], n_train: int, n_test: int, dt: float
) -> dict[str, Any]:
    """The recording's coordinates: time, split and stimulus kind per frame; cell ids and the per-cell truth."""
    kinds = (
        ["checkerboard"] * p["train_checkerboard_frames"]
        + ["natural"] * p["train_natural_frames"]
        + ["checkerboard"] * p["test_checkerboard_frames"]
        + ["natural"] * p["test_natural_frames"]
    )
    time = np.arange(n_train + n_test) * dt
    centres = cells["centres"]
    return {
        "time": ("time", time, {"units": "s"}),
        "split": ("time", np.array(["train"] * n_train + ["test"] * n_test, dtype=object)),
        "stimulus_kind": ("time", np.array(kinds, dtype=object)),
        "cell": ("cell", np.array(cell_ids, dtype=object)),
        "cell_type": ("cell", np.array(cells["types"], dtype=object)),
        "rf_center_y_px": ("cell", centres[:, 0]),
        "rf_center_x_px": ("cell", centres[:, 1]),
        "on_weight": ("cell", cells["on_weight"]),
        "off_weight": ("cell", cells["off_weight"]),
        "g_mean": ("cell", cells["g_mean"]),
        "g_sd": ("cell", cells["g_sd"]),
        "output_offset": ("cell", cells["output_offset"]),
        "target_rate_hz": ("cell", cells["target"]),
        "repeat": ("repeat", np.arange(p["n_repeats"], dtype=np.int64)),
    }


# ----------------------------------------------------------------------------------------------------------
# ventral stream


def ventral_ground_truth(*, seed: int = 0, **params: Any) -> xr.Dataset:
    r"""The noise-free ground truth behind ``sample("ventral")``: features, readout weights and signal.

    Stimuli: ``n_categories`` (6) categories x ``n_objects_per_category`` (5) objects x
    ``n_images_per_object`` (10) images = 300 stimuli. Features ``F[s, :]`` (``n_low_features`` +
    ``n_high_features`` = 40 columns) are standard Gaussian with unit variance per column:

    * "low" features ``0 .. n_low-1``: independent per image (image-specific, V4-like);
    * "high" features: ``sqrt(c) A[category] + sqrt(o) B[object] + sqrt(1 - c - o) E[image]`` with
      ``c = category_share`` (0.4), ``o = object_share`` (0.3), ``A, B, E`` iid N(0, 1) (category structure).

    Readout: V4 neuroids weight the low block by ``preferred_block_weight`` (1) and the high block by
    ``other_block_weight`` (0.3), IT neuroids the reverse; ``W0[f, n] = N(0, 1) * block weight``. Signal
    ``signal[s, n] = F[s] . W[:, n] + offset[n]`` where ``W = W0 * a_n`` and ``offset`` are chosen so that,
    across the stimuli, the signal's mean is ``baseline_n`` (U[5, 30]) and its variance (``ddof=0``) is
    exactly ``v_n = sd_n**2`` with ``sd_n`` ~ U[2, 6]. Noise standard deviations ``sigma_n`` ~ U[3, 12].

    Returns an ``xr.Dataset`` with ``features(stimulus, feature)``, ``weights(feature, neuroid)``,
    ``offset(neuroid)``, ``signal(stimulus, neuroid)``, ``noise_sd(neuroid)`` and the stimulus coords
    ``stimulus_id``, ``object_name``, ``category``; neuroid coords ``neuroid_id``, ``region``, ``animal``.
    """
    seed, p = _resolve("ventral", VENTRAL_DEFAULTS, params, seed)
    _check_ventral_parameters(p)
    rng_features, rng_weights, rng_neuroids = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)[:3]
    )
    features, category_index, object_index = _ventral_feature_matrix(p, rng_features)
    n_v4, n_it = p["n_v4"], p["n_it"]
    regions = np.array(["V4"] * n_v4 + ["IT"] * n_it, dtype=object)
    weights, offset, noise_sd = _ventral_readout(p, features, rng_weights, rng_neuroids)
    signal = features @ weights + offset
    return xr.Dataset(
        {
            "features": (("stimulus", "feature"), features),
            "weights": (("feature", "neuroid"), weights),
            "offset": ("neuroid", offset),
            "signal": (("stimulus", "neuroid"), signal),
            "noise_sd": ("neuroid", noise_sd),
        },
        coords=_ventral_coords(p, category_index, object_index, regions),
        attrs={"seed": seed, "parameters": json.dumps(dict(sorted(p.items())))},
    )


def _check_ventral_parameters(p: dict[str, Any]) -> None:
    _require(
        "ventral",
        p,
        positive=(
            "n_categories",
            "n_objects_per_category",
            "n_images_per_object",
            "n_repetitions",
            "signal_sd_min",
            "noise_sd_min",
        ),
        non_negative=(
            "n_v4",
            "n_it",
            "n_low_features",
            "n_high_features",
            "category_share",
            "object_share",
            "preferred_block_weight",
            "other_block_weight",
            "baseline_min",
        ),
    )
    if p["n_repetitions"] < 2:
        raise ConfigError("sample 'ventral': n_repetitions must be at least 2 (a noise ceiling needs repeats)")
    if p["category_share"] + p["object_share"] > 1:
        raise ConfigError("sample 'ventral': category_share + object_share must be at most 1")
    if p["n_v4"] + p["n_it"] == 0 or p["n_low_features"] + p["n_high_features"] == 0:
        raise ConfigError("sample 'ventral': needs at least one neuroid and one feature")
    for lo, hi in (
        ("signal_sd_min", "signal_sd_max"),
        ("noise_sd_min", "noise_sd_max"),
        ("baseline_min", "baseline_max"),
    ):
        if p[hi] < p[lo]:
            raise ConfigError(f"sample 'ventral': {hi} must be >= {lo}")
    if p["n_categories"] > len(_CATEGORY_NAMES):
        raise ConfigError(f"sample 'ventral': at most {len(_CATEGORY_NAMES)} categories")


def _ventral_feature_matrix(
    p: dict[str, Any], rng_features: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The features ``F (stimulus, feature)`` of :func:`ventral_ground_truth` (low block, then high block), with
    each stimulus's category and object index."""
    n_cat, n_obj, n_img = p["n_categories"], p["n_objects_per_category"], p["n_images_per_object"]
    n_stim = n_cat * n_obj * n_img
    category_index = np.repeat(np.arange(n_cat), n_obj * n_img)
    object_index = np.repeat(np.arange(n_cat * n_obj), n_img)
    n_low, n_high = p["n_low_features"], p["n_high_features"]
    low = rng_features.standard_normal((n_stim, n_low))
    cat_part = rng_features.standard_normal((n_cat, n_high))[category_index]
    obj_part = rng_features.standard_normal((n_cat * n_obj, n_high))[object_index]
    img_part = rng_features.standard_normal((n_stim, n_high))
    c, o = p["category_share"], p["object_share"]
    high = np.sqrt(c) * cat_part + np.sqrt(o) * obj_part + np.sqrt(1.0 - c - o) * img_part
    return np.concatenate([low, high], axis=1), category_index, object_index


def _ventral_readout(
    p: dict[str, Any], features: np.ndarray, rng_weights: np.random.Generator, rng_neuroids: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(W (feature, neuroid), offset, noise sd)``: block-weighted Gaussian readouts scaled so that each
    neuroid's signal has the drawn sd and baseline across the stimuli; with the drawn noise sds."""
    n_low, n_high = p["n_low_features"], p["n_high_features"]
    n_v4, n_it = p["n_v4"], p["n_it"]
    n_neur = n_v4 + n_it
    block = np.empty((n_low + n_high, n_neur))
    block[:n_low, :n_v4] = p["preferred_block_weight"]
    block[n_low:, :n_v4] = p["other_block_weight"]
    block[:n_low, n_v4:] = p["other_block_weight"]
    block[n_low:, n_v4:] = p["preferred_block_weight"]
    raw_weights = rng_weights.standard_normal((n_low + n_high, n_neur)) * block
    signal_sd = rng_neuroids.uniform(p["signal_sd_min"], p["signal_sd_max"], size=n_neur)
    noise_sd = rng_neuroids.uniform(p["noise_sd_min"], p["noise_sd_max"], size=n_neur)
    baseline = rng_neuroids.uniform(p["baseline_min"], p["baseline_max"], size=n_neur)
    raw = features @ raw_weights
    raw_sd = raw.std(axis=0)
    if np.any(raw_sd == 0):
        raise ConfigError("sample 'ventral': a neuroid got zero signal variance (all its block weights are 0)")
    gain = signal_sd / raw_sd
    weights = raw_weights * gain
    offset = baseline - raw.mean(axis=0) * gain
    return weights, offset, noise_sd


def _ventral_coords(
    p: dict[str, Any], category_index: np.ndarray, object_index: np.ndarray, regions: np.ndarray
) -> dict[str, Any]:
    """Stimulus (id, category, object), feature (id) and neuroid (id, region, animal) coordinates."""
    n_obj, n_low, n_high = p["n_objects_per_category"], p["n_low_features"], p["n_high_features"]
    n_stim, n_neur = len(category_index), len(regions)
    category_names = np.array(_CATEGORY_NAMES[: p["n_categories"]], dtype=object)
    return {
        "stimulus_id": ("stimulus", np.array([f"img{i:04d}" for i in range(n_stim)], dtype=object)),
        "category": ("stimulus", category_names[category_index]),
        "object_name": (
            "stimulus",
            np.array([f"{category_names[k // n_obj]}{k % n_obj}" for k in object_index], dtype=object),
        ),
        "feature_id": (
            "feature",
            np.array(
                [f"{'low' if f < n_low else 'high'}{f if f < n_low else f - n_low:02d}" for f in range(n_low + n_high)],
                dtype=object,
            ),
        ),
        "neuroid_id": ("neuroid", np.array([f"{r.lower()}_{i:03d}" for i, r in enumerate(regions)], dtype=object)),
        "region": ("neuroid", regions),
        "animal": (
            "neuroid",
            np.array(["monkey_a" if i % 2 == 0 else "monkey_b" for i in range(n_neur)], dtype=object),
        ),
    }


def ventral(*, seed: int = 0, **params: Any) -> xr.DataArray:
    r"""Generate the virtual ventral-stream assembly (uncached; :func:`sample` caches it).

    ``response[s, n, r] = signal[s, n] + noise[s, n, r]``, ``noise ~ N(0, sigma_n^2)`` iid over stimuli,
    neuroids and repetitions, with ``signal`` from :func:`ventral_ground_truth` (a linear map of the
    ``sample("ventral-features")`` features). Dims ``(presentation, neuroid)``, presentations ordered
    repetition-major (all stimuli of repetition 0, then repetition 1, ...); 300 stimuli x 10 repetitions x
    64 neuroids (24 V4, 40 IT) by default. Values are rate-like (arbitrary units); Gaussian noise makes
    occasional negative values possible, which the assembly data model allows.

    Analytic noise ceiling, per neuroid (coords ``signal_variance`` ``v``, ``noise_variance`` ``sigma^2``,
    ``ceiling_split_half``): split the ``R`` repetitions into two halves of ``R/2`` and average each half.
    Half means are ``signal + e`` with ``Var(e) = sigma^2 / (R/2) = 2 sigma^2 / R``, independent between
    halves, so across stimuli ``Cov(half1, half2) = v`` and ``Var(half) = v + 2 sigma^2 / R``:

        r_half = v / (v + 2 sigma^2 / R)

    The Spearman-Brown prediction for the full ``R``-repetition mean is

        ceiling_split_half = 2 r_half / (1 + r_half) = v / (v + sigma^2 / R)

    (the reliability of the R-repetition mean). ``v`` is the signal's variance across the stimuli shown
    (``ddof=0``, exact by construction); the formula is the population value, which the empirical estimate
    matches up to ``O(1/n_stimuli)`` (the sample correlation's bias and the ``ddof`` of the noise variance).
    """
    seed, p = _resolve("ventral", VENTRAL_DEFAULTS, params, seed)
    truth = ventral_ground_truth(seed=seed, **p)
    rng_noise = np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[3])
    signal = truth["signal"].values
    noise_sd = truth["noise_sd"].values
    n_stim, n_neur = signal.shape
    n_rep = p["n_repetitions"]
    noise = rng_noise.standard_normal((n_rep, n_stim, n_neur)) * noise_sd
    values = (signal[None] + noise).reshape(n_rep * n_stim, n_neur)
    v = signal.var(axis=0)
    sigma2 = noise_sd**2
    r_half = v / (v + 2.0 * sigma2 / n_rep)
    ceiling = 2.0 * r_half / (1.0 + r_half)

    from neuromodels.datasets.recording import assembly

    tile = np.tile
    da = assembly(
        values,
        stimulus_id=tile(truth["stimulus_id"].values, n_rep),
        neuroid_id=truth["neuroid_id"].values,
        repetition=np.repeat(np.arange(n_rep), n_stim),
        presentation_coords={
            "object_name": tile(truth["object_name"].values, n_rep).astype(object),
            "category": tile(truth["category"].values, n_rep).astype(object),
        },
        neuroid_coords={
            "region": truth["region"].values.astype(object),
            "animal": truth["animal"].values.astype(object),
            "signal_mean": signal.mean(axis=0),
            "signal_variance": v,
            "noise_variance": sigma2,
            "ceiling_split_half": ceiling,
        },
        attrs=_attrs(
            "ventral",
            seed,
            p,
            identifier="neuromodels.sample.ventral",
            units="arbitrary (rate-like)",
            model="response = features @ W + offset + N(0, noise_variance) iid per presentation",
            ceiling_formula="r_half = v/(v + 2 sigma^2/R); ceiling_split_half = 2 r_half/(1 + r_half) = v/(v + sigma^2/R)",
        ),
        # not "response": netCDF readers take a variable of that name for a recording's response(time, cell)
        name="assembly",
    )
    from neuromodels.datasets._validate import validate

    return validate(da)


def _ventral_features(*, seed: int = 0, **params: Any) -> xr.DataArray:
    """``sample("ventral-features")``: features ``(presentation, feature)``, one presentation per stimulus."""
    seed, p = _resolve("ventral", VENTRAL_DEFAULTS, params, seed)
    truth = ventral_ground_truth(seed=seed, **p)
    da = xr.DataArray(
        truth["features"].values,
        dims=("presentation", "feature"),
        coords={
            "stimulus_id": ("presentation", truth["stimulus_id"].values),
            "object_name": ("presentation", truth["object_name"].values),
            "category": ("presentation", truth["category"].values),
            "feature": ("feature", truth["feature_id"].values),
        },
        name="features",
        attrs=_attrs(
            "ventral-features",
            seed,
            p,
            layer="ground_truth",
            model="sample('ventral') signal = features @ W + offset; W, offset from ventral_ground_truth(seed, **params)",
        ),
    )
    return da

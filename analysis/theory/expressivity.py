"""Expressivity of random networks: trajectory length, transitions and activation patterns (Raghu et al. 2017).

A circle in input space, ``x(theta) = sqrt(q N) (u0 cos theta + u1 sin theta)`` with ``u0, u1`` orthonormal in
``R^N`` (so every point has per-unit second moment ``q``), discretised at ``points`` equally spaced
``theta``, is pushed through a random MLP ``h^l = W^l z^{l-1} + b^l``, ``z^l = phi(h^l)`` (``W`` i.i.d.
``N(0, sigma_w2/N)`` as in Raghu et al., or scaled Haar orthogonal; ``b ~ N(0, sigma_b2)``). For each depth
``d`` we measure, on the closed polygon through the ``points`` images:

* ``length``: the arc length of ``z^d(theta)`` (post-activations, the ``z^(d)`` of Raghu et al. Theorem 1);
  ``length_preactivation`` that of ``h^d``. Depth 0 is the input circle (length ``2 pi sqrt(q N)`` in the limit
  of fine discretisation; we report the polygon's length).
* ``transitions``: the number of times a unit changes region between consecutive points, summed over the
  units of layer ``d`` (Raghu et al. sec. 3: sign changes for ReLU and the default ``"sign"`` regions; the
  three regions ``h < -1``, ``|h| <= 1``, ``h > 1`` for hard-tanh, ``regions="saturation"``).
* ``patterns``: the number of distinct activation patterns (the regions of every unit of layers 1..d) met
  along the trajectory, and ``pattern_changes``: how often the pattern changes between consecutive points.

Theory: Raghu et al., arXiv:1611.08083, Theorem 1: with ``k`` the width,
``E[l(z^d)] >= O((sigma_w sqrt(k) / sqrt(k + 1))^d) l(x)`` for ReLU and
``E[l(z^d)] >= O((sigma_w sqrt(k) / sqrt(sigma_w^2 + sigma_b^2 + k sqrt(sigma_w^2 + sigma_b^2)))^d) l(x)`` for
hard-tanh. The O() hides a constant the theorem does not give; **we implement the bound as**
``bound(d) = l(x) * a^d`` with the per-layer factor ``a`` above and the constant set to 1, and compare growth
*rates* (per-layer factors) with it. For tanh, erf and sigmoid (smooth saturating) we show the hard-tanh
form; for other nonlinearities no bound is returned (NaN). Beside it, the mean-field prediction: the
squared tangent norm of a curve grows by ``chi(q^l) = sigma_w2 E[phi'(h^l)^2]`` per layer (Poole et al.
2016; Raghu et al. sec. 2.2), so ``l(h^d) = l(x) sigma_w prod_{l<d} sqrt(chi(q^l))`` and
``l(z^d) = l(h^d) sqrt(E[phi'(h^d)^2])`` when the discretisation resolves the curve.

The random networks are :func:`neuromodels.init.random_mlp` (``weights`` passed explicitly, Gaussian by default
here as in Raghu et al.); the command ``neuromodels theory trajectory`` is in :mod:`neuromodels.commands.theory`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from neuromodels._figures import new_figure, save_figure
from neuromodels.errors import ConfigError
from neuromodels.nonlinearities import get_nonlinearity

from .freeprob import WEIGHT_KINDS

__all__ = [
    "circle_trajectory",
    "raghu_growth_factor",
    "mean_field_lengths",
    "count_transitions",
    "count_patterns",
    "trajectory_statistics",
    "growth_rate",
    "plot_trajectory",
]


def circle_trajectory(width: int, points: int, q: float = 1.0, seed: int = 0) -> np.ndarray:
    """``(points, width)`` samples of ``sqrt(q width) (u0 cos theta + u1 sin theta)``, ``theta = 2 pi i / points``."""
    if not (isinstance(width, (int, np.integer)) and width >= 2):
        raise ConfigError(f"width must be an integer >= 2, got {width!r}")
    if not (isinstance(points, (int, np.integer)) and points >= 8):
        raise ConfigError(f"points must be an integer >= 8, got {points!r}")
    if not (np.isfinite(q) and q > 0):
        raise ConfigError(f"q must be positive, got {q!r}")
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((width, 2)))
    theta = 2 * np.pi * np.arange(points) / points
    return math.sqrt(q * width) * (np.cos(theta)[:, None] * basis[:, 0] + np.sin(theta)[:, None] * basis[:, 1])


def raghu_growth_factor(phi: Any, sigma_w2: float, sigma_b2: float, width: int) -> float:
    """Per-layer factor ``a`` of Raghu et al. Theorem 1 (see module docstring); NaN where it does not apply."""
    name = get_nonlinearity(phi).name
    sigma_w = math.sqrt(sigma_w2)
    if name == "relu":
        return sigma_w * math.sqrt(width) / math.sqrt(width + 1)
    if name in ("hard_tanh", "tanh", "erf", "sigmoid"):
        total = sigma_w2 + sigma_b2
        return sigma_w * math.sqrt(width) / math.sqrt(total + width * math.sqrt(total))
    return float("nan")


def _polygon_length(curve: np.ndarray) -> float:
    """Length of the closed polygon through the rows of ``curve`` (last point joined to the first)."""
    steps = np.diff(curve, axis=0, append=curve[:1])
    return float(np.sqrt((steps * steps).sum(axis=1)).sum())


def _regions(h: np.ndarray, regions: str) -> np.ndarray:
    if regions == "sign":
        return (h > 0).astype(np.int8)
    if regions == "saturation":
        return ((h > 1).astype(np.int8) - (h < -1).astype(np.int8)).astype(np.int8)
    raise ConfigError(f"regions must be 'sign' or 'saturation', got {regions!r}")


def count_transitions(h: np.ndarray, regions: str = "sign") -> int:
    """Region changes between consecutive rows of ``h`` (``(points, units)``, closed loop), summed over units."""
    r = _regions(np.asarray(h), regions)
    return int((r != np.roll(r, -1, axis=0)).sum())


def count_patterns(pattern_ids: np.ndarray) -> tuple[int, int]:
    """``(distinct patterns, pattern changes along the closed loop)`` from per-point integer pattern ids."""
    ids = np.asarray(pattern_ids)
    return int(len(np.unique(ids))), int((ids != np.roll(ids, -1)).sum())


def _layer_pattern_ids(previous: np.ndarray, h: np.ndarray, regions: str) -> np.ndarray:
    """Combine per-point ids of layers < l with the layer-l regions into exact ids (no hashing collisions)."""
    r = _regions(h, regions)
    packed = np.packbits((r + 1).astype(np.uint8)[:, :, None] >> np.arange(2, dtype=np.uint8) & 1, axis=1)
    rows = np.ascontiguousarray(packed.reshape(len(h), -1))
    _, layer_ids = np.unique(rows, axis=0, return_inverse=True)
    pairs = np.stack([previous, layer_ids.ravel()], axis=1)
    _, combined = np.unique(pairs, axis=0, return_inverse=True)
    return combined.ravel()


def mean_field_lengths(
    phi: Any, depth: int, sigma_w2: float, sigma_b2: float, q: float, input_length: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mean-field lengths of ``(z^d, h^d)`` for ``d = 0..depth`` (index 0: the input for both)."""
    nonlinearity = get_nonlinearity(phi)
    # E[phi(h)^2] and E[phi'(h)^2] are the nonlinearity's Gaussian moments (closed forms for the piecewise-linear
    # ones, whose kinks a quadrature would resolve slowly; a geometrically convergent midpoint rule otherwise).
    post = [input_length]
    pre = [input_length]
    second_moment = q  # of the layer's input z^{l-1}
    tangent = input_length
    for _ in range(depth):
        q_l = sigma_w2 * second_moment + sigma_b2
        tangent = tangent * math.sqrt(sigma_w2)
        pre.append(tangent)
        tangent = tangent * math.sqrt(float(nonlinearity.mean_dphi_sq(q_l)))
        post.append(tangent)
        second_moment = float(nonlinearity.mean_phi_sq(q_l))
    return np.array(post), np.array(pre)


def _measure_layers(
    model: Any, x: np.ndarray, dtype: Any, regions: str, depth: int, progress: bool | None
) -> dict[str, list]:
    """Per depth ``0..depth``: lengths of ``z^d`` and ``h^d`` (and of ``z^d`` on every other point), transitions,
    distinct patterns and pattern changes, pushing the points ``x`` (``(points, width)``) through the ``Linear``
    (+ activation) pairs of ``model`` in ``dtype``. Depth 0 is the input curve."""
    import torch
    from tqdm.auto import tqdm

    input_length = _polygon_length(x)
    out: dict[str, list] = {
        "length": [input_length],
        "length_preactivation": [input_length],
        "length_half": [_polygon_length(x[::2])],
        "transitions": [0],
        "patterns": [1],
        "pattern_changes": [0],
    }
    ids = np.zeros(len(x), dtype=np.int64)
    z = torch.as_tensor(x, dtype=dtype)
    modules = list(model)
    with torch.no_grad():
        i = 0
        bar = tqdm(total=depth, desc="trajectory", disable=None if progress is None else not progress)
        while i < len(modules):
            h = modules[i](z)
            activation = (
                modules[i + 1] if i + 1 < len(modules) and not isinstance(modules[i + 1], torch.nn.Linear) else None
            )
            z = activation(h) if activation is not None else h
            i += 2 if activation is not None else 1
            h_np, z_np = h.numpy(), z.numpy()
            out["length_preactivation"].append(_polygon_length(h_np))
            out["length"].append(_polygon_length(z_np))
            out["length_half"].append(_polygon_length(z_np[::2]))
            out["transitions"].append(count_transitions(h_np, regions))
            ids = _layer_pattern_ids(ids, h_np, regions)
            distinct, changed = count_patterns(ids)
            out["patterns"].append(distinct)
            out["pattern_changes"].append(changed)
            bar.update()
        bar.close()
    return out


def trajectory_statistics(
    phi: Any = "hard_tanh",
    depth: int = 10,
    width: int = 100,
    sigma_w2: float = 4.0,
    sigma_b2: float = 0.0,
    points: int = 20_000,
    q: float = 1.0,
    weights: str = "gaussian",
    regions: str | None = None,
    seed: int = 0,
    model: Any = None,
    progress: bool | None = None,
) -> Any:
    """Length, transitions and activation patterns of a circle through a random network, per depth.

    Returns an ``xarray.Dataset`` over ``depth = 0..depth``: ``length``, ``length_preactivation``,
    ``mean_field_length``, ``bound`` (``l(x) a^d``, see module docstring), ``transitions``, ``patterns``,
    ``pattern_changes`` (0 at depth 0), and ``length_half`` (the length measured on every other point: a ratio
    ``length_half / length`` well below 1 says the discretisation does not resolve the curve at that depth).
    ``model``: optional torch ``Sequential`` of ``Linear`` + activation modules to use instead of a random one
    (its weights define the network; ``sigma_w2``/``sigma_b2`` then only enter the bound and mean field).
    ``regions``: ``"sign"`` or ``"saturation"`` (default: saturation for hard-tanh, sign otherwise).
    """
    import torch
    import xarray as xr

    from neuromodels.init import random_mlp

    nonlinearity = get_nonlinearity(phi)
    if regions is None:
        regions = "saturation" if nonlinearity.name == "hard_tanh" else "sign"
    if weights not in WEIGHT_KINDS:
        raise ConfigError(f"weights must be one of {WEIGHT_KINDS}, got {weights!r}")
    if model is None:
        model = random_mlp(width, depth, sigma_w2, sigma_b2, phi, weights=weights, seed=seed)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    depth = len(linears)
    width = linears[0].in_features
    x = circle_trajectory(width, points, q, seed=seed + 1)
    input_length = _polygon_length(x)
    measured = _measure_layers(model, x, linears[0].weight.dtype, regions, depth, progress)
    mean_post, mean_pre = mean_field_lengths(phi, depth, sigma_w2, sigma_b2, q, input_length)
    factor = raghu_growth_factor(phi, sigma_w2, sigma_b2, width)
    d = np.arange(depth + 1)
    return xr.Dataset(
        {
            "length": ("depth", np.array(measured["length"])),
            "length_preactivation": ("depth", np.array(measured["length_preactivation"])),
            "length_half": ("depth", np.array(measured["length_half"])),
            "mean_field_length": ("depth", mean_post),
            "mean_field_length_preactivation": ("depth", mean_pre),
            "bound": ("depth", input_length * factor**d),
            "transitions": ("depth", np.array(measured["transitions"])),
            "patterns": ("depth", np.array(measured["patterns"])),
            "pattern_changes": ("depth", np.array(measured["pattern_changes"])),
        },
        coords={"depth": d},
        attrs={
            "method": "Raghu et al. 2017 (arXiv:1611.08083) trajectory length, transitions, patterns",
            "phi": str(getattr(nonlinearity, "name", phi)),
            "width": int(width),
            "sigma_w2": float(sigma_w2),
            "sigma_b2": float(sigma_b2),
            "points": int(points),
            "q": float(q),
            "weights": weights,
            "regions": regions,
            "seed": int(seed),
            "raghu_factor": factor,
            "bound_form": "l(x) * a**d, a = sigma_w sqrt(k)/sqrt(sigma_w2 + sigma_b2 + k sqrt(sigma_w2 + sigma_b2)) "
            "(hard-tanh) or sigma_w sqrt(k)/sqrt(k+1) (ReLU), constant 1",
        },
    )


def growth_rate(lengths: np.ndarray, start: int = 1) -> float:
    """Per-layer growth factor: ``exp`` of the least-squares slope of ``log length`` against depth from ``start``."""
    lengths = np.asarray(lengths, float)
    d = np.arange(len(lengths))[start:]
    slope = np.polyfit(d, np.log(lengths[start:]), 1)[0]
    return float(math.exp(slope))


def plot_trajectory(stats: Any, path: str | Path | None = None) -> Any:
    """Length vs depth (log scale) with the mean-field prediction and Raghu's bound; transitions and patterns."""
    a = stats.attrs
    d = stats["depth"].values
    fig, (left, right) = new_figure(1, 2, figsize=(10, 4))
    left.semilogy(d, stats["length"], "o-", color="C0", label="measured length $l(z^d)$")
    left.semilogy(d, stats["mean_field_length"], "--", color="C2", label="mean field")
    if np.all(np.isfinite(stats["bound"].values)):
        left.semilogy(d, stats["bound"], ":", color="C3", label=f"Raghu bound $l(x)\\,a^d$, a={a['raghu_factor']:.3f}")
    left.set_xlabel("depth d")
    left.set_ylabel("trajectory length")
    left.legend(fontsize=8)
    left.set_title(
        f"{a['phi']}, k={a['width']}, $\\sigma_w^2$={a['sigma_w2']:g}, $\\sigma_b^2$={a['sigma_b2']:g}", fontsize=9
    )
    right.semilogy(d[1:], np.maximum(stats["transitions"].values[1:], 1), "o-", label="transitions (layer d)")
    right.semilogy(d[1:], stats["patterns"].values[1:], "s-", label="distinct patterns (layers 1..d)")
    right.set_xlabel("depth d")
    right.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig

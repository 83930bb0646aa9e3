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
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from neuromodels.errors import ConfigError

from . import freeprob
from .freeprob import WEIGHT_KINDS, get_nonlinearity
from neuromodels._figures import save_figure
from neuromodels._reports import jsonable, print_json, write_json

__all__ = [
    "circle_trajectory",
    "raghu_growth_factor",
    "mean_field_lengths",
    "count_transitions",
    "count_patterns",
    "trajectory_statistics",
    "growth_rate",
    "plot_trajectory",
    "trajectory_command",
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
    name = freeprob._canonical_name(get_nonlinearity(phi))
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


def mean_field_lengths(phi: Any, depth: int, sigma_w2: float, sigma_b2: float, q: float,
                       input_length: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean-field lengths of ``(z^d, h^d)`` for ``d = 0..depth`` (index 0: the input for both)."""
    nonlinearity = get_nonlinearity(phi)
    # E[phi(h)^2] by a fine midpoint rule (phi may have kinks: Gauss-Hermite would converge slowly), E[phi'(h)^2]
    # from the D^2 law, exact for the piecewise-linear nonlinearities whose phi' is a step.
    u = np.linspace(-12.0, 12.0, 24_001)
    u_weights = np.exp(-u * u / 2) / math.sqrt(2 * math.pi) * (u[1] - u[0])
    post = [input_length]
    pre = [input_length]
    second_moment = q  # of the layer's input z^{l-1}
    tangent = input_length
    for _ in range(depth):
        q_l = sigma_w2 * second_moment + sigma_b2
        tangent = tangent * math.sqrt(sigma_w2)
        pre.append(tangent)
        slope2 = freeprob.d2_distribution(nonlinearity, q_l, n_quad=201).moment(1) if q_l > 0 else float(
            np.asarray(nonlinearity.dphi(np.zeros(1)), float)[0] ** 2)
        tangent = tangent * math.sqrt(slope2)
        post.append(tangent)
        second_moment = float(u_weights @ np.asarray(nonlinearity.phi(math.sqrt(q_l) * u), float) ** 2)
    return np.array(post), np.array(pre)


def trajectory_statistics(phi: Any = "hard_tanh", depth: int = 10, width: int = 100, sigma_w2: float = 4.0,
                          sigma_b2: float = 0.0, points: int = 20_000, q: float = 1.0, weights: str = "gaussian",
                          regions: str | None = None, seed: int = 0, model: Any = None,
                          progress: bool | None = None) -> Any:
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
    from tqdm.auto import tqdm

    from .spectra import random_mlp

    nonlinearity = get_nonlinearity(phi)
    name = freeprob._canonical_name(nonlinearity)
    if regions is None:
        regions = "saturation" if name == "hard_tanh" else "sign"
    if weights not in WEIGHT_KINDS:
        raise ConfigError(f"weights must be one of {WEIGHT_KINDS}, got {weights!r}")
    if model is None:
        model = random_mlp(width, depth, sigma_w2, sigma_b2, phi, weights, seed=seed)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    depth = len(linears)
    width = linears[0].in_features
    x = circle_trajectory(width, points, q, seed=seed + 1)
    input_length = _polygon_length(x)
    lengths, pre_lengths, half, transitions, patterns, changes = [input_length], [input_length], [
        _polygon_length(x[::2])], [0], [1], [0]
    ids = np.zeros(points, dtype=np.int64)
    z = torch.as_tensor(x, dtype=linears[0].weight.dtype)
    modules = list(model)
    with torch.no_grad():
        i = 0
        bar = tqdm(total=depth, desc="trajectory", disable=None if progress is None else not progress)
        while i < len(modules):
            h = modules[i](z)
            activation = modules[i + 1] if i + 1 < len(modules) and not isinstance(modules[i + 1],
                                                                                   torch.nn.Linear) else None
            z = activation(h) if activation is not None else h
            i += 2 if activation is not None else 1
            h_np, z_np = h.numpy(), z.numpy()
            pre_lengths.append(_polygon_length(h_np))
            lengths.append(_polygon_length(z_np))
            half.append(_polygon_length(z_np[::2]))
            transitions.append(count_transitions(h_np, regions))
            ids = _layer_pattern_ids(ids, h_np, regions)
            distinct, changed = count_patterns(ids)
            patterns.append(distinct)
            changes.append(changed)
            bar.update()
        bar.close()
    mean_post, mean_pre = mean_field_lengths(phi, depth, sigma_w2, sigma_b2, q, input_length)
    factor = raghu_growth_factor(phi, sigma_w2, sigma_b2, width)
    d = np.arange(depth + 1)
    return xr.Dataset(
        {
            "length": ("depth", np.array(lengths)),
            "length_preactivation": ("depth", np.array(pre_lengths)),
            "length_half": ("depth", np.array(half)),
            "mean_field_length": ("depth", mean_post),
            "mean_field_length_preactivation": ("depth", mean_pre),
            "bound": ("depth", input_length * factor**d),
            "transitions": ("depth", np.array(transitions)),
            "patterns": ("depth", np.array(patterns)),
            "pattern_changes": ("depth", np.array(changes)),
        },
        coords={"depth": d},
        attrs={"method": "Raghu et al. 2017 (arXiv:1611.08083) trajectory length, transitions, patterns",
               "phi": str(getattr(nonlinearity, "name", phi)), "width": int(width), "sigma_w2": float(sigma_w2),
               "sigma_b2": float(sigma_b2), "points": int(points), "q": float(q), "weights": weights,
               "regions": regions, "seed": int(seed), "raghu_factor": factor,
               "bound_form": "l(x) * a**d, a = sigma_w sqrt(k)/sqrt(sigma_w2 + sigma_b2 + k sqrt(sigma_w2 + sigma_b2)) "
                             "(hard-tanh) or sigma_w sqrt(k)/sqrt(k+1) (ReLU), constant 1"},
    )


def growth_rate(lengths: np.ndarray, start: int = 1) -> float:
    """Per-layer growth factor: ``exp`` of the least-squares slope of ``log length`` against depth from ``start``."""
    lengths = np.asarray(lengths, float)
    d = np.arange(len(lengths))[start:]
    slope = np.polyfit(d, np.log(lengths[start:]), 1)[0]
    return float(math.exp(slope))


def plot_trajectory(stats: Any, path: str | Path | None = None) -> Any:
    """Length vs depth (log scale) with the mean-field prediction and Raghu's bound; transitions and patterns."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    a = stats.attrs
    d = stats["depth"].values
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.semilogy(d, stats["length"], "o-", color="C0", label="measured length $l(z^d)$")
    left.semilogy(d, stats["mean_field_length"], "--", color="C2", label="mean field")
    if np.all(np.isfinite(stats["bound"].values)):
        left.semilogy(d, stats["bound"], ":", color="C3", label=f"Raghu bound $l(x)\\,a^d$, a={a['raghu_factor']:.3f}")
    left.set_xlabel("depth d")
    left.set_ylabel("trajectory length")
    left.legend(fontsize=8)
    left.set_title(f"{a['phi']}, k={a['width']}, $\\sigma_w^2$={a['sigma_w2']:g}, $\\sigma_b^2$={a['sigma_b2']:g}",
                   fontsize=9)
    right.semilogy(d[1:], np.maximum(stats["transitions"].values[1:], 1), "o-", label="transitions (layer d)")
    right.semilogy(d[1:], stats["patterns"].values[1:], "s-", label="distinct patterns (layers 1..d)")
    right.set_xlabel("depth d")
    right.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def trajectory_command(args: Any) -> int:
    """``neuromodels theory trajectory``: trajectory length, transitions and patterns vs depth.

    Namespace fields: ``phi``, ``depth``, ``sigma_w2``, ``sigma_b2``, ``width``, ``points``, ``out``, ``json``;
    optional ``weights`` (default gaussian, as Raghu et al.), ``seed``, ``q`` (default 1).
    Writes ``trajectory.nc``, ``trajectory.png``, ``report.json`` under ``out``.
    """
    from neuromodels._outputs import ReportFolder, check_out_folder
    from neuromodels.datasets._io import write_netcdf_atomic

    sigma_w2 = 4.0 if getattr(args, "sigma_w2", None) is None else float(args.sigma_w2)
    sigma_b2 = 0.0 if getattr(args, "sigma_b2", None) is None else float(args.sigma_b2)
    width = 100 if getattr(args, "width", None) is None else int(args.width)
    points = 20_000 if getattr(args, "points", None) is None else int(args.points)
    if width < 2:  # trajectory_statistics' own bounds, named by their options
        raise ConfigError(f"--width must be >= 2, got {width}")
    if points < 8:
        raise ConfigError(f"--points must be >= 8, got {points}")
    if int(getattr(args, "seed", 0) or 0) < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    out = getattr(args, "out", None)
    out = check_out_folder(out) if out else None
    stats = trajectory_statistics(args.phi, int(args.depth), width, sigma_w2, sigma_b2, points,
                                  q=float(getattr(args, "q", None) or 1.0),
                                  weights=getattr(args, "weights", None) or "gaussian",
                                  seed=int(getattr(args, "seed", 0) or 0))
    a = stats.attrs
    measured = growth_rate(stats["length"].values)
    resolution = float(stats["length_half"].values[-1] / stats["length"].values[-1])
    report: dict[str, Any] = {
        "command": "theory trajectory",
        "parameters": {k: a[k] for k in ("phi", "width", "sigma_w2", "sigma_b2", "points", "q", "weights", "regions",
                                         "seed")} | {"depth": int(args.depth)},
        "bound": {"form": a["bound_form"], "factor": a["raghu_factor"]},
        "measured_growth_factor": measured,
        "resolution_ratio": resolution,
        "mean_field_growth_factor": growth_rate(stats["mean_field_length"].values),
        "per_depth": {name: stats[name].values.tolist() for name in
                      ("length", "mean_field_length", "bound", "transitions", "patterns", "pattern_changes",
                       "length_half")},
    }
    if out:
        stats.attrs["parameters_json"] = json.dumps(jsonable(report["parameters"]))
        report["files"] = {"netcdf": str(out / "trajectory.nc"), "figure": str(out / "trajectory.png"),
                           "report": str(out / "report.json")}
        with ReportFolder(out, "theory trajectory") as folder:
            write_netcdf_atomic(stats, folder.path("trajectory.nc"))
            plot_trajectory(stats, folder.path("trajectory.png"))
            write_json(folder.path("report.json"), report)
    if getattr(args, "json", False):
        print_json(report)
    else:
        print(f"{a['phi']} width {a['width']} sigma_w2={a['sigma_w2']:g} sigma_b2={a['sigma_b2']:g}, "
              f"{a['points']} points on the circle")
        print(f"  length growth per layer: measured {measured:.4f}, mean field "
              f"{report['mean_field_growth_factor']:.4f}, Raghu bound factor {a['raghu_factor']:.4f}")
        print("  depth  length        transitions  patterns")
        for d in stats["depth"].values:
            print(f"  {d:5d}  {stats['length'].values[d]:12.5g}  {stats['transitions'].values[d]:11d}  "
                  f"{stats['patterns'].values[d]:8d}")
        if resolution < 0.98:
            print(f"  note: the deepest curve is not resolved (length on every other point / length = "
                  f"{resolution:.3f}); raise --points for exact lengths at depth")
        if out:
            print(f"  wrote {out}/trajectory.nc, trajectory.png, report.json", file=sys.stdout)
    return 0

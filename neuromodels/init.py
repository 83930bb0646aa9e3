"""Weight initialisers for signal propagation: Gaussian, orthogonal, delta-orthogonal, and critical ones.

Conventions (mean field, Schoenholz et al. 2017, arXiv:1611.01232, sec. 2; Pennington et al. 2017,
arXiv:1711.04735, sec. 2): a layer ``h = W y + b`` has weight variance ``sigma_w2 / fan_in`` per entry and bias
variance ``sigma_b2``. ``sigma_w`` and ``sigma_b`` are the square roots. For convolutions ``fan_in`` is
``in_channels * prod(kernel_size)``.

* :func:`gaussian_` draws ``W_ij ~ N(0, sigma_w2 / fan_in)``.
* :func:`orthogonal_` draws a Haar-random (semi-)orthogonal matrix ``Q`` (QR of a Gaussian matrix with the signs
  of ``diag(R)`` fixed, Mezzadri 2007, "How to generate random matrices from the classical compact groups",
  sec. 5) and scales it so that entries still have variance ``sigma_w2 / fan_in``: for a square layer
  ``W = sigma_w Q`` and ``W^T W = sigma_w2 I`` (all singular values ``sigma_w``).
* :func:`delta_orthogonal_` for convolutions (Xiao et al. 2018, "Dynamical Isometry and a Mean Field Theory of
  CNNs", arXiv:1806.05393, Algorithm 2): every tap is zero except the central one, which is an orthogonal
  ``(out_channels, in_channels)`` matrix times ``sigma_w`` (the central tap carries the whole variance, so the
  per-entry variance over the kernel is *not* ``sigma_w2 / fan_in``; the layer's input-output map is norm
  preserving up to ``sigma_w``, which is what mean field needs). Even kernel sizes use tap ``k // 2``.
* :func:`critical_init_` puts a network on the order-to-chaos line: ``(sigma_w2, sigma_b2)`` with ``chi_1 = 1``
  and a chosen fixed point ``q*`` (small ``q*`` keeps tanh networks in their linear regime, which with
  orthogonal weights gives dynamical isometry, Pennington et al. 2017 sec. 4), from
  :func:`neuromodels.fixed_points.critical_point` (the one implementation of the mean-field fixed points).
* :func:`random_mlp` builds the random fully connected networks that the theory
  (:mod:`neuromodels.analysis.theory`) measures: one builder, on these initialisers and the one Haar generator
  :func:`random_orthogonal`, with explicit ``weights`` (orthogonal by default).

All functions modify tensors/modules in place under ``torch.no_grad()`` and take ``generator`` (a
``torch.Generator``) or ``seed`` for reproducibility.
"""

from __future__ import annotations

import math
from numbers import Integral
from typing import Any

from neuromodels.errors import ConfigError

__all__ = [
    "gaussian_",
    "orthogonal_",
    "delta_orthogonal_",
    "bias_",
    "init_network_",
    "critical_parameters",
    "critical_init_",
    "random_orthogonal",
    "random_mlp",
]


def _generator(generator: Any = None, seed: int | None = None) -> Any:
    import torch

    if generator is not None:
        return generator
    g = torch.Generator()
    # without a seed, draw one from torch's global generator (so torch.manual_seed still controls the result)
    g.manual_seed(int(seed) if seed is not None else int(torch.randint(0, 2**62, (1,))))
    return g


def _check_variance(name: str, value: float, allow_zero: bool) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {value!r}")
    return value


def _fan_in(weight: Any) -> int:
    if weight.dim() < 2:
        raise ConfigError(f"a weight needs at least 2 dimensions (out, in, *kernel), got shape {tuple(weight.shape)}")
    return int(weight.shape[1] * math.prod(weight.shape[2:]))


def random_orthogonal(rows: int, cols: int, generator: Any = None, dtype: Any = None) -> Any:
    """A Haar-random ``(rows, cols)`` matrix with orthonormal columns (``rows >= cols``) or rows (``rows < cols``).

    QR of a standard Gaussian matrix, with the sign of each column of ``Q`` set by ``sign(diag(R))`` so that the
    distribution is Haar (Mezzadri 2007, sec. 5).
    """
    import torch

    if rows < 1 or cols < 1:
        raise ConfigError(f"an orthogonal matrix needs positive sizes, got ({rows}, {cols})")
    tall = rows >= cols
    n, m = (rows, cols) if tall else (cols, rows)
    a = torch.randn(n, m, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1.0
    q = q * signs
    q = q if tall else q.T
    return q.to(dtype or torch.get_default_dtype())


def gaussian_(weight: Any, sigma_w2: float = 1.0, *, generator: Any = None, seed: int | None = None) -> Any:
    """``weight ~ N(0, sigma_w2 / fan_in)`` in place (Linear ``(out, in)`` or Conv ``(out, in, *kernel)``)."""
    import torch

    sigma_w2 = _check_variance("sigma_w2", sigma_w2, allow_zero=True)
    std = math.sqrt(sigma_w2 / _fan_in(weight))
    with torch.no_grad():
        values = torch.randn(weight.shape, generator=_generator(generator, seed), dtype=torch.float64) * std
        weight.copy_(values.to(weight.dtype))
    return weight


def orthogonal_(weight: Any, sigma_w2: float = 1.0, *, generator: Any = None, seed: int | None = None) -> Any:
    """Scaled (semi-)orthogonal ``weight`` of shape ``(out, in)`` in place, entry variance ``sigma_w2 / in``.

    ``W = sigma_w * sqrt(max(1, out / in)) * Q`` with ``Q`` Haar (semi-)orthogonal: for ``out == in`` all singular
    values equal ``sigma_w``; for ``out > in`` ``W^T W = sigma_w2 (out / in) I`` so that the mean squared
    pre-activation per unit is ``sigma_w2 |y|^2 / in`` exactly as for Gaussian weights. Conv weights: use
    :func:`delta_orthogonal_`.
    """
    import torch

    sigma_w2 = _check_variance("sigma_w2", sigma_w2, allow_zero=True)
    if weight.dim() != 2:
        raise ConfigError(
            f"orthogonal_ takes a (out, in) Linear weight, got shape {tuple(weight.shape)}; "
            "use delta_orthogonal_ for convolutions"
        )
    rows, cols = weight.shape
    q = random_orthogonal(rows, cols, _generator(generator, seed), dtype=torch.float64)
    with torch.no_grad():
        weight.copy_((q * math.sqrt(sigma_w2 * max(1.0, rows / cols))).to(weight.dtype))
    return weight


def delta_orthogonal_(weight: Any, sigma_w2: float = 1.0, *, generator: Any = None, seed: int | None = None) -> Any:
    """Delta-orthogonal convolution kernel in place (Xiao et al. 2018, Algorithm 2).

    ``weight`` has shape ``(out_channels, in_channels, *kernel)``; the central tap is
    ``sigma_w * sqrt(max(1, out / in)) * Q`` with ``Q`` Haar (semi-)orthogonal and every other tap is zero, so a
    convolution with circular padding is an orthogonal map times ``sigma_w`` when ``out == in``.
    """
    import torch

    sigma_w2 = _check_variance("sigma_w2", sigma_w2, allow_zero=True)
    if weight.dim() < 3:
        raise ConfigError(f"delta_orthogonal_ takes a conv weight (out, in, *kernel), got shape {tuple(weight.shape)}")
    rows, cols = int(weight.shape[0]), int(weight.shape[1])
    q = random_orthogonal(rows, cols, _generator(generator, seed), dtype=torch.float64)
    centre = tuple(k // 2 for k in weight.shape[2:])
    with torch.no_grad():
        weight.zero_()
        weight[(slice(None), slice(None), *centre)] = (q * math.sqrt(sigma_w2 * max(1.0, rows / cols))).to(weight.dtype)
    return weight


def bias_(bias: Any, sigma_b2: float = 0.0, *, generator: Any = None, seed: int | None = None) -> Any:
    """``bias ~ N(0, sigma_b2)`` in place (zeros for ``sigma_b2 = 0``)."""
    import torch

    sigma_b2 = _check_variance("sigma_b2", sigma_b2, allow_zero=True)
    with torch.no_grad():
        values = torch.randn(bias.shape, generator=_generator(generator, seed), dtype=torch.float64)
        bias.copy_((values * math.sqrt(sigma_b2)).to(bias.dtype))
    return bias


def init_network_(
    model: Any,
    sigma_w2: float,
    sigma_b2: float = 0.0,
    *,
    weights: str = "orthogonal",
    seed: int | None = 0,
    skip_last: bool = False,
) -> Any:
    """Initialise every ``nn.Linear`` and ``nn.Conv1d/2d/3d`` of ``model`` in place; returns ``model``.

    ``weights``: ``"orthogonal"`` (Linear: :func:`orthogonal_`; Conv: :func:`delta_orthogonal_`) or
    ``"gaussian"`` (:func:`gaussian_`). Biases ``~ N(0, sigma_b2)``. ``skip_last`` leaves the last layer (a
    read-out) to its own initialisation. Layers are visited in ``model.modules()`` order from one seeded
    generator, so the same seed gives the same network.
    """
    import torch

    if weights not in ("orthogonal", "gaussian"):
        raise ConfigError(f"weights must be 'orthogonal' or 'gaussian', got {weights!r}")
    _check_variance("sigma_w2", sigma_w2, allow_zero=True)
    _check_variance("sigma_b2", sigma_b2, allow_zero=True)
    layers = [
        m
        for m in model.modules()
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d))
    ]
    if not layers:
        raise ConfigError("the model has no Linear or Conv layers to initialise")
    if skip_last:
        layers = layers[:-1]
    g = _generator(None, seed)
    for layer in layers:
        conv = not isinstance(layer, torch.nn.Linear)
        if weights == "gaussian":
            gaussian_(layer.weight, sigma_w2, generator=g)
        elif conv:
            delta_orthogonal_(layer.weight, sigma_w2, generator=g)
        else:
            orthogonal_(layer.weight, sigma_w2, generator=g)
        if layer.bias is not None:
            bias_(layer.bias, sigma_b2, generator=g)
    return model


def critical_parameters(q_star: float, phi: Any = "tanh", rho: float = 1.0) -> tuple[float, float]:
    """``(sigma_w2, sigma_b2)`` on the critical line (``chi_1 = 1``) whose length fixed point is ``q_star``.

    ``sigma_w2 = rho / E[phi'(sqrt(q*) z)^2]``, ``sigma_b2 = q* - E[phi^2] / E[phi'^2]`` (see
    :func:`neuromodels.fixed_points.critical_point`). For ReLU and linear networks the critical line
    is ``sigma_w2 = 2 rho`` (``rho``) and only ``sigma_b2 = 0`` keeps ``q*`` finite; ``q_star`` is then unused.
    """
    from neuromodels.fixed_points import critical_point
    from neuromodels.nonlinearities import get_nonlinearity

    nl = get_nonlinearity(phi)
    if nl.name in ("relu", "linear"):
        return (2.0 if nl.name == "relu" else 1.0) * float(rho), 0.0
    sw, sb = critical_point(q_star, nl, rho)
    return float(sw), float(sb)


def critical_init_(
    model: Any,
    q_star: float = 0.01,
    phi: Any = "tanh",
    *,
    weights: str = "orthogonal",
    rho: float = 1.0,
    seed: int | None = 0,
    skip_last: bool = False,
) -> tuple[float, float]:
    """Initialise ``model`` at the critical point with fixed point ``q_star``; returns ``(sigma_w2, sigma_b2)``."""
    sigma_w2, sigma_b2 = critical_parameters(q_star, phi, rho)
    init_network_(model, sigma_w2, sigma_b2, weights=weights, seed=seed, skip_last=skip_last)
    return sigma_w2, sigma_b2


def random_mlp(
    width: int,
    depth: int,
    sigma_w2: float,
    sigma_b2: float = 0.0,
    phi: Any = "tanh",
    *,
    weights: str = "orthogonal",
    input_dim: int | None = None,
    readout: int | None = None,
    rho: float = 1.0,
    seed: int = 0,
    dtype: Any = None,
) -> Any:
    """A random MLP, ``depth`` x (``Linear(width)`` -> ``phi`` [-> dropout]), as ``torch.nn.Sequential``.

    Shapes ``(batch, input_dim) -> (batch, width)`` (``input_dim`` defaults to ``width``); with ``readout`` a last
    ``Linear(width, readout)`` (logits, no nonlinearity) gives ``(batch, readout)``, drawn after the hidden layers
    from the same generator (so the hidden layers are those of the same call without it). The layers are drawn by
    :func:`init_network_` from one generator seeded with ``seed``: ``weights="orthogonal"`` (the default;
    :func:`orthogonal_`, Haar by :func:`random_orthogonal`, ``W = sigma_w Q`` for square layers) or
    ``"gaussian"`` (:func:`gaussian_`, i.i.d. ``N(0, sigma_w2 / fan_in)``); biases i.i.d. ``N(0, sigma_b2)``.
    ``phi``: see :func:`neuromodels.nonlinearities.torch_activation`. ``dtype``: float64 by default (the
    Jacobian's small singular values at depth need it). With ``rho < 1`` each activation is followed by
    ``nn.Dropout(1 - rho)`` (inverted dropout, survivors scaled by ``1/rho``, Schoenholz et al. 2017 sec. 5) and
    the module is left in train mode so that dropout is active; otherwise it is in eval mode.
    """
    import torch

    from neuromodels.nonlinearities import torch_activation

    for name, value in (("width", width), ("depth", depth)):
        if not (isinstance(value, Integral) and value >= 1):
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    for name, value in (("input_dim", input_dim), ("readout", readout)):
        if value is not None and not (isinstance(value, Integral) and value >= 1):
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if not 0 < rho <= 1:
        raise ConfigError(f"rho (dropout keep probability) must be in (0, 1], got {rho}")
    dtype = torch.float64 if dtype is None else dtype
    layers: list[Any] = []
    fan_in = int(input_dim or width)
    for _ in range(int(depth)):
        layers += [torch.nn.Linear(fan_in, int(width), dtype=dtype), torch_activation(phi)]
        if rho < 1:
            layers.append(torch.nn.Dropout(1.0 - rho))
        fan_in = int(width)
    if readout is not None:
        layers.append(torch.nn.Linear(int(width), int(readout), dtype=dtype))
    model = torch.nn.Sequential(*layers)
    init_network_(model, sigma_w2, sigma_b2, weights=weights, seed=seed)
    model.train(rho < 1)
    return model

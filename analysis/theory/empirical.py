"""Measure signal propagation in finite random torch networks, to compare with mean-field predictions.

For a random fully connected network (:func:`neuromodels.init.random_mlp`, Gaussian weights unless
``weights="orthogonal"``), :func:`measure_propagation` sends pairs of inputs
through it and records, per layer ``l = 1..depth``:

* ``q``: the mean squared pre-activation ``(1/N) sum_i (h_i^l)^2`` of each input (the empirical length),
* ``c``: the correlation ``sum_i h_i^l(x1) h_i^l(x2) / sqrt(|h^l(x1)|^2 |h^l(x2)|^2)`` of the pair,
* ``grad_sq``: ``(1/N) sum_i (dE/dh_i^l)^2`` for a random linear read-out ``E = v . y^depth`` (the mean-field
  backward signal ``delta^l``, Schoenholz et al. 2017 sec. 6: ``E[delta_l^2] = chi_1 E[delta_{l+1}^2]``),

over several independently drawn networks (``seed``, ``seed + 1``, ...), beside the predictions of the length
and correlation maps started at the measured first-layer values (:mod:`.meanfield`). For Gaussian
pre-activations, the per-layer mean of ``h_i^2`` over ``N`` units has a sampling standard deviation of
``q sqrt(2 / N)``; the returned ``q_std`` / ``c_std`` are the spreads over networks, the right scale for the
comparison (they include the propagated fluctuations of earlier layers).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neuromodels.errors import ConfigError

__all__ = ["propagate", "measure_propagation", "gradient_norms"]


def propagate(model: Any, x: Any, *, keep_graph: bool = False) -> list[Any]:
    """Pre-activations ``h^l`` (output of each ``nn.Linear``/``nn.Conv*``) of ``model`` on ``x``, in order.

    Uses forward hooks, so ``model`` may be any module; the tensors keep their graph when ``keep_graph``.
    """
    import torch

    captured: list[Any] = []
    handles = []

    def hook(_module: Any, _inputs: Any, output: Any) -> None:
        if keep_graph:
            output.retain_grad()
            captured.append(output)
        else:
            captured.append(output.detach())

    for module in model.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
            handles.append(module.register_forward_hook(hook))
    try:
        if keep_graph:
            out = model(x)
            captured.append(out)
        else:
            with torch.no_grad():
                model(x)
    finally:
        for h in handles:
            h.remove()
    return captured


def gradient_norms(model: Any, x: Any, *, seed: int = 0) -> np.ndarray:
    """``(1/N) sum_i (dE/dh_i^l)^2`` per layer (shape ``(layers,)``, averaged over the batch) for the random read-out
    ``E = sum_b v . y_b`` with ``v ~ N(0, I)`` drawn from ``seed``."""
    import torch

    pre = propagate(model, x, keep_graph=True)
    out = pre.pop()
    g = torch.Generator().manual_seed(int(seed))
    v = torch.randn(out.shape[-1], generator=g, dtype=out.dtype)
    (out * v).sum().backward()
    norms = [float((h.grad.reshape(h.shape[0], -1) ** 2).mean()) for h in pre]
    model.zero_grad(set_to_none=True)
    return np.asarray(norms)


def _input_pair(dim: int, q0: float, c0: float, rng: np.random.Generator) -> np.ndarray:
    """Two inputs with ``|x|^2 / dim = q0`` exactly and cosine similarity ``c0`` exactly."""
    a, b = rng.standard_normal((2, dim))
    a /= np.linalg.norm(a)
    b -= (b @ a) * a
    b /= np.linalg.norm(b)
    x1 = a
    x2 = c0 * a + np.sqrt(max(0.0, 1.0 - c0**2)) * b
    return np.sqrt(q0 * dim) * np.stack([x1, x2])


def measure_propagation(
    sigma_w2: float,
    sigma_b2: float,
    phi: Any = "tanh",
    *,
    depth: int = 20,
    width: int = 1000,
    q0: float = 1.0,
    c0: float = 0.5,
    n_networks: int = 4,
    weights: str = "gaussian",
    rho: float = 1.0,
    seed: int = 0,
    gradients: bool = True,
) -> Any:
    """Measured and predicted ``q^l``, ``c^l`` (and gradient norms) of random MLPs, as an ``xarray.Dataset``.

    Inputs: a pair with squared length per component ``q0`` and cosine ``c0``. Dims: ``network`` (the independent
    draws) and ``layer`` (1..depth). Variables: ``q(network, layer)``, ``c(network, layer)``,
    ``grad_sq(network, layer)``; ``q_mean``, ``q_std``, ``c_mean``, ``c_std`` over networks;
    ``q_theory``/``c_theory`` from the maps started at layer 1's exact mean-field values
    ``q^1 = sigma_w2 q0 + sigma_b2``, ``c^1 = (sigma_w2 q0 c0 + sigma_b2) / q^1``; ``grad_theory`` is
    ``chi_1(q^l)`` chained backwards from the last layer's measured mean. Attributes hold all parameters.
    """
    import torch
    import xarray as xr

    from neuromodels.analysis.theory import meanfield as mf
    from neuromodels.fixed_points import q_star
    from neuromodels.init import random_mlp
    from neuromodels.nonlinearities import get_nonlinearity

    if n_networks < 1:
        raise ConfigError(f"n_networks must be >= 1, got {n_networks}")
    if not (q0 > 0 and -1 <= c0 <= 1):
        raise ConfigError(f"need q0 > 0 and -1 <= c0 <= 1, got q0={q0}, c0={c0}")
    nl = get_nonlinearity(phi)
    rng = np.random.default_rng(seed)
    q_all = np.empty((n_networks, depth, 2))
    c_all = np.empty((n_networks, depth))
    g_all = np.full((n_networks, depth), np.nan)
    for k in range(n_networks):
        model = random_mlp(
            width, depth, sigma_w2, sigma_b2, phi, weights=weights, rho=rho, seed=seed + 1000 * k, dtype=torch.float64
        )
        x = torch.as_tensor(_input_pair(width, q0, c0, rng), dtype=torch.float64)
        torch.manual_seed(seed + 1000 * k)  # dropout masks
        pre = propagate(model, x)
        for layer, h in enumerate(pre):
            h = h.numpy()
            sq = (h**2).mean(axis=1)
            q_all[k, layer] = sq
            c_all[k, layer] = (h[0] @ h[1]) / np.sqrt((h[0] @ h[0]) * (h[1] @ h[1]))
        if gradients:
            torch.manual_seed(seed + 1000 * k)
            g_all[k] = gradient_norms(model, x, seed=seed + k)
    q_meas = q_all.mean(axis=2)
    q1 = sigma_w2 * q0 + sigma_b2
    c1 = (sigma_w2 * q0 * c0 + sigma_b2) / q1
    q_theory = mf.iterate_length_map(q1, sigma_w2, sigma_b2, depth - 1, nl, rho)
    c_theory = mf.iterate_correlation_map(c1, sigma_w2, sigma_b2, depth - 1, nl, q0=q1, rho=rho)
    # backward: E[delta_l^2] = sigma_w2/rho E[phi'(h_l)^2] E[delta_{l+1}^2], anchored at the last layer's mean
    chi_per_layer = np.asarray(mf.chi1(sigma_w2, sigma_b2, nl, q=q_theory, rho=rho))
    g_mean = g_all.mean(axis=0)
    grad_theory = np.full(depth, np.nan)
    if gradients:
        grad_theory[-1] = g_mean[-1]
        for layer in range(depth - 2, -1, -1):
            grad_theory[layer] = grad_theory[layer + 1] * chi_per_layer[layer]
    layers = np.arange(1, depth + 1)
    ds = xr.Dataset(
        {
            "q": (("network", "layer"), q_meas),
            "c": (("network", "layer"), c_all),
            "grad_sq": (("network", "layer"), g_all),
            "q_mean": ("layer", q_meas.mean(0)),
            "q_std": ("layer", q_meas.std(0, ddof=1) if n_networks > 1 else np.full(depth, np.nan)),
            "c_mean": ("layer", c_all.mean(0)),
            "c_std": ("layer", c_all.std(0, ddof=1) if n_networks > 1 else np.full(depth, np.nan)),
            "grad_mean": ("layer", g_mean),
            "q_theory": ("layer", np.asarray(q_theory)),
            "c_theory": ("layer", np.asarray(c_theory)),
            "grad_theory": ("layer", grad_theory),
        },
        coords={"layer": layers, "network": np.arange(n_networks)},
        attrs={
            "sigma_w2": float(sigma_w2),
            "sigma_b2": float(sigma_b2),
            "phi": nl.name,
            "depth": int(depth),
            "width": int(width),
            "q0": float(q0),
            "c0": float(c0),
            "weights": weights,
            "rho": float(rho),
            "seed": int(seed),
            "n_networks": int(n_networks),
            "chi_1": float(mf.chi1(sigma_w2, sigma_b2, nl, rho=rho))
            if np.isfinite(q_star(sigma_w2, sigma_b2, nl, rho))
            else float("nan"),
        },
    )
    return ds

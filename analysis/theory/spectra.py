"""Singular-value spectra of the input-output Jacobian: empirical (torch) and free-probability theory.

Empirical side: random MLPs ``h^l = W^l x^{l-1} + b^l``, ``x^l = phi(h^l)`` (``l = 1..L``, all widths ``N``) with
orthogonal (Haar, scaled) or Gaussian weights of variance ``sigma_w2 / N`` and Gaussian biases of variance
``sigma_b2``; the Jacobian ``J = dx^L / dx^0`` exactly, either as the closed product
``D^L W^L ... D^1 W^1`` (``D^l = diag phi'(h^l)``, for our MLPs) or batched with ``torch.func`` for any module.
Inputs are ``x^0 = phi(h^0)`` with ``h^0 ~ N(0, q*)`` so that every layer sits at the length-map fixed point
``q*`` that the theory assumes.

Theory side: :mod:`.freeprob` (S-transforms, Newton continuation). :func:`jacobian_spectrum` returns the
density on a grid chosen automatically (a coarse pass finds where the mass lies, a fine pass resolves it),
as an ``xarray.Dataset``.

References: Pennington, Schoenholz & Ganguli 2017 (arXiv:1711.04735), "Resurrecting the sigmoid in deep
learning through dynamical isometry", sec. 2-3; Pennington, Schoenholz & Ganguli 2018 (arXiv:1802.09979).
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
    "random_mlp",
    "torch_activation",
    "mlp_jacobian",
    "network_jacobian",
    "jacobian_singular_values",
    "resolve_parameters",
    "empirical_jjt_eigenvalues",
    "jacobian_spectrum",
    "spectrum_atoms",
    "spectrum_moment",
    "atom_membership",
    "ks_distance",
    "plot_spectrum",
    "spectrum_command",
]


# ---------------------------------------------------------------------------------------------------------------
# torch networks


def torch_activation(phi: Any) -> Any:
    """A torch module for a nonlinearity name (tanh, relu, hard_tanh, erf, sigmoid, linear) or a torch module.

    A custom callable nonlinearity: wrap it in a ``torch.nn.Module`` and pass that module (its numpy side goes
    to the theory functions through the mean-field ``get_nonlinearity``)."""
    import torch

    if isinstance(phi, torch.nn.Module):
        return phi
    if callable(phi) and not hasattr(phi, "dphi"):
        return _CallableModule(phi)
    name = freeprob._canonical_name(get_nonlinearity(phi))
    if name == "tanh":
        return torch.nn.Tanh()
    if name == "relu":
        return torch.nn.ReLU()
    if name == "hard_tanh":
        return torch.nn.Hardtanh()
    if name == "sigmoid":
        return torch.nn.Sigmoid()
    if name == "linear":
        return torch.nn.Identity()
    if name == "erf":
        return _ScaledErf()
    raise ConfigError(f"no torch module for nonlinearity {phi!r}; pass a torch.nn.Module")


def _scaled_erf_class() -> type:
    import torch

    class ScaledErf(torch.nn.Module):
        """``erf(x)``, the convention of :mod:`.meanfield` (slope ``2/sqrt(pi)`` at 0)."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.erf(x)

    return ScaledErf


def _CallableModule(func: Any) -> Any:  # noqa: N802
    import torch

    class CallableActivation(torch.nn.Module):
        """An elementwise torch-callable nonlinearity as a module."""

        def __init__(self) -> None:
            super().__init__()
            self.func = func

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.func(x)

    return CallableActivation()


def _ScaledErf() -> Any:  # noqa: N802 - behaves like a class; built lazily so torch is imported only when used
    return _scaled_erf_class()()


def _haar_orthogonal(n: int, generator: Any, dtype: Any) -> Any:
    """A Haar-distributed orthogonal ``n x n`` matrix (QR of a Gaussian matrix with the signs of R fixed)."""
    import torch

    gaussian = torch.randn(n, n, generator=generator, dtype=dtype)
    q, r = torch.linalg.qr(gaussian)
    return q * torch.sign(torch.diagonal(r))


def random_mlp(width: int, depth: int, sigma_w2: float, sigma_b2: float = 0.0, phi: Any = "tanh",
               weights: str = "orthogonal", seed: int = 0, dtype: Any = None) -> Any:
    """A random MLP ``(batch, width) -> (batch, width)``: ``depth`` times ``Linear(width, width)`` then ``phi``.

    Weights: ``"orthogonal"``: ``sqrt(sigma_w2) * O`` with ``O`` Haar orthogonal; ``"gaussian"``: i.i.d.
    ``N(0, sigma_w2 / width)``. Biases i.i.d. ``N(0, sigma_b2)``. Float64 by default (the Jacobian's small
    singular values at depth need it). Deterministic given ``seed``.
    """
    import torch

    if not (isinstance(width, (int, np.integer)) and width >= 1):
        raise ConfigError(f"width must be a positive integer, got {width!r}")
    if not (isinstance(depth, (int, np.integer)) and depth >= 1):
        raise ConfigError(f"depth must be a positive integer, got {depth!r}")
    if not (np.isfinite(sigma_w2) and sigma_w2 >= 0 and np.isfinite(sigma_b2) and sigma_b2 >= 0):
        raise ConfigError(f"sigma_w2 and sigma_b2 must be non-negative, got {sigma_w2!r}, {sigma_b2!r}")
    if weights not in WEIGHT_KINDS:
        raise ConfigError(f"weights must be one of {WEIGHT_KINDS}, got {weights!r}")
    dtype = torch.float64 if dtype is None else dtype
    generator = torch.Generator().manual_seed(int(seed))
    layers: list[Any] = []
    for _ in range(depth):
        linear = torch.nn.Linear(width, width, dtype=dtype)
        with torch.no_grad():
            if weights == "orthogonal":
                linear.weight.copy_(math.sqrt(sigma_w2) * _haar_orthogonal(width, generator, dtype))
            else:
                linear.weight.copy_(math.sqrt(sigma_w2 / width) * torch.randn(width, width, generator=generator,
                                                                              dtype=dtype))
            linear.bias.copy_(math.sqrt(sigma_b2) * torch.randn(width, generator=generator, dtype=dtype))
        layers += [linear, torch_activation(phi)]
    return torch.nn.Sequential(*layers)


def _activation_slope(activation: Any, h: Any) -> Any:
    """``phi'(h)`` elementwise, by one forward-mode product with a tangent of ones (valid for elementwise phi)."""
    import torch

    _, slope = torch.func.jvp(activation, (h,), (torch.ones_like(h),))
    return slope


def mlp_jacobian(model: Any, inputs: Any) -> Any:
    """Exact Jacobians ``(batch, out, in)`` of a ``Sequential`` of ``Linear`` layers and elementwise activations.

    The closed product ``J = D^L W^L ... D^1 W^1`` accumulated layer by layer (``inputs``: ``(batch, in)``).
    Any module other than ``Linear`` is taken to be elementwise (its slope is read off by a forward-mode
    product); use :func:`network_jacobian` for other architectures.
    """
    import torch

    x = inputs
    jac = None
    with torch.no_grad():
        for module in model:
            if isinstance(module, torch.nn.Linear):
                jac = module.weight.expand(x.shape[0], -1, -1) if jac is None else module.weight @ jac
                x = module(x)
            else:
                slope = _activation_slope(module, x)
                x = module(x)
                if jac is not None:
                    jac = slope[:, :, None] * jac
    if jac is None:
        raise ConfigError("mlp_jacobian needs at least one torch.nn.Linear layer")
    return jac


def network_jacobian(model: Any, inputs: Any) -> Any:
    """Exact Jacobians ``(batch, *out, *in)`` of any module, batched with ``torch.func.vmap(jacrev)``."""
    import torch

    return torch.func.vmap(torch.func.jacrev(lambda x: model(x[None])[0]))(inputs)


def jacobian_singular_values(model: Any, inputs: Any, method: str = "auto") -> np.ndarray:
    """Singular values ``(batch, min(out, in))`` of the input-output Jacobian at each input, descending.

    ``method``: ``"product"`` (closed product, :func:`mlp_jacobian`), ``"autograd"`` (:func:`network_jacobian`)
    or ``"auto"`` (the product for a ``Sequential`` whose non-Linear modules are standard elementwise
    activations, autograd otherwise).
    """
    import torch

    if method == "auto":
        elementwise = (torch.nn.Linear, torch.nn.Tanh, torch.nn.ReLU, torch.nn.Hardtanh, torch.nn.Sigmoid,
                       torch.nn.Identity, _scaled_erf_class())
        method = "product" if isinstance(model, torch.nn.Sequential) and all(
            type(m).__name__ in {c.__name__ for c in elementwise} for m in model) else "autograd"
    if method == "product":
        jac = mlp_jacobian(model, inputs)
    elif method == "autograd":
        jac = network_jacobian(model, inputs)
        in_size = int(np.prod(inputs.shape[1:]))
        jac = jac.reshape(jac.shape[0], -1, in_size)
    else:
        raise ConfigError(f"method must be 'auto', 'product' or 'autograd', got {method!r}")
    return torch.linalg.svdvals(jac.detach()).cpu().numpy()


# ---------------------------------------------------------------------------------------------------------------
# parameters and empirical spectra


def resolve_parameters(phi: Any, sigma_w2: float | None = None, sigma_b2: float | None = None,
                       q_star: float | None = None) -> dict[str, float]:
    """Complete ``(sigma_w2, sigma_b2, q_star)`` from what is given.

    * ``q_star`` given, ``sigma_w2`` not: the critical point for that ``q*`` (``sigma_w2 = 1/E[phi'^2]``);
    * ``q_star`` given, ``sigma_b2`` not: ``sigma_b2 = q* - sigma_w2 E[phi(h)^2]`` (must be >= 0);
    * ``q_star`` not given: the fixed point of the length map at ``(sigma_w2, sigma_b2)``.
    ReLU and the identity have no finite ``q*`` at criticality without bias, but their ``D^2`` does not
    depend on ``q*``, so ``q* = 1`` is used when the fixed point does not exist.
    """
    nonlinearity = get_nonlinearity(phi)
    name = freeprob._canonical_name(nonlinearity)
    scale_free = name in ("relu", "linear")
    if q_star is not None:
        if not (np.isfinite(q_star) and q_star > 0):
            raise ConfigError(f"q_star must be positive, got {q_star!r}")
        if sigma_w2 is None:
            sigma_w2 = freeprob.critical_sigma_w2(nonlinearity, q_star)
        if sigma_b2 is None:
            nodes, weights = freeprob._gauss_hermite(201)
            second = float(weights @ np.asarray(nonlinearity.phi(math.sqrt(q_star) * nodes), float) ** 2)
            sigma_b2 = q_star - sigma_w2 * second
            if sigma_b2 < -1e-9 * q_star:
                raise ConfigError(f"q_star={q_star} is not reachable at sigma_w2={sigma_w2} with a real bias "
                                  f"(needs sigma_b2={sigma_b2:.4g} < 0); lower sigma_w2 or raise q_star")
            sigma_b2 = max(sigma_b2, 0.0)
    else:
        if sigma_w2 is None:
            raise ConfigError("give sigma_w2 (and sigma_b2) or q_star")
        sigma_b2 = 0.0 if sigma_b2 is None else sigma_b2
        try:
            q_star = freeprob._fixed_point_q_star(nonlinearity, sigma_w2, sigma_b2)
        except ConfigError:
            if not scale_free:
                raise
            q_star = 1.0
        if q_star <= 0 or not np.isfinite(q_star):
            if not scale_free:
                raise ConfigError(f"the length map at sigma_w2={sigma_w2}, sigma_b2={sigma_b2} has q* = {q_star}; "
                                  "give q_star explicitly")
            q_star = 1.0
    if not (np.isfinite(sigma_w2) and sigma_w2 > 0 and sigma_b2 >= 0):
        raise ConfigError(f"need sigma_w2 > 0 and sigma_b2 >= 0, got {sigma_w2!r}, {sigma_b2!r}")
    return {"sigma_w2": float(sigma_w2), "sigma_b2": float(sigma_b2), "q_star": float(q_star)}


def empirical_jjt_eigenvalues(phi: Any, depth: int, width: int, sigma_w2: float, sigma_b2: float, q_star: float,
                              weights: str = "orthogonal", draws: int = 1, inputs_per_draw: int = 1,
                              seed: int = 0, progress: bool | None = None) -> np.ndarray:
    """Eigenvalues of ``J J^T`` (squared singular values) pooled over random networks and inputs, sorted.

    ``draws`` independent networks, ``inputs_per_draw`` inputs ``x^0 = phi(h^0)``, ``h^0 ~ N(0, q*)`` each.
    Returns ``draws * inputs_per_draw * width`` values.
    """
    import torch
    from tqdm.auto import tqdm

    activation = torch_activation(phi)
    pooled = []
    for draw in tqdm(range(draws), desc="Jacobian spectra", disable=None if progress is None else not progress):
        model = random_mlp(width, depth, sigma_w2, sigma_b2, phi, weights, seed=seed * 100_003 + draw)
        generator = torch.Generator().manual_seed(seed * 100_003 + draw + 7_919)
        h0 = math.sqrt(q_star) * torch.randn(inputs_per_draw, width, generator=generator, dtype=torch.float64)
        with torch.no_grad():
            x0 = activation(h0)
        pooled.append(jacobian_singular_values(model, x0, method="product").ravel() ** 2)
    return np.sort(np.concatenate(pooled))


# ---------------------------------------------------------------------------------------------------------------
# theory on an automatic grid


def jacobian_spectrum(phi: Any = "tanh", depth: int = 16, sigma_w2: float | None = None,
                      sigma_b2: float | None = None, q_star: float | None = None, weights: str = "orthogonal",
                      points: int = 1000, span: float = 80.0, n_quad: int = 96) -> Any:
    """Free-probability spectrum of ``J J^T`` as an ``xarray.Dataset``: a continuous density on a grid in
    ``log lambda`` and the point masses beside it.

    Variables on dimension ``log_eigenvalue`` (natural log of the eigenvalue ``lambda`` of ``J J^T``):
    ``eigenvalue`` (lambda), ``density`` (of lambda, continuous part), ``log_density`` (of ``log lambda``:
    ``lambda rho``), ``cdf`` (``P(eigenvalue <= lambda)`` of the whole law, atoms included: counted down from the
    top so that the atom at 0 and continuous mass below the grid are in it), ``singular_value``
    (``sqrt(lambda)``) and ``singular_value_density`` (``2 sigma rho(sigma^2)``). On dimension ``atom``:
    ``atom_eigenvalue`` and ``atom_mass`` (:func:`.freeprob.jjt_atoms`: hard-tanh's atoms at 0 and at
    ``sigma_w2^L``, ReLU's at 0, the identity's single atom). attrs: all parameters, ``mean``, ``variance``
    (closed forms, of the whole law), ``edge`` (largest eigenvalue of the law, a top atom included),
    ``continuous_edge`` (right edge of the continuous part; NaN if it has no mass), ``continuous_mass``
    (``1 - sum(atom_mass)``), ``mass_below_grid`` (continuous mass the grid leaves unresolved below its bottom).

    The grid: a 200-point pass over ``[log top - span, log top]`` (``top``: the continuous edge) locates the mass;
    ``points`` points then cover from where the CDF reaches 1e-5 (or ``log top - span``) to the edge, a quarter
    of them clustered geometrically at the edge (:func:`_edge_clustered_grid`). With no continuous mass (the
    identity with orthogonal weights) the grid spans ``[log edge - 1, log edge)`` and the density is 0.
    """
    import xarray as xr

    if not (isinstance(points, (int, np.integer)) and points >= 10):
        raise ConfigError(f"points must be an integer >= 10, got {points!r}")
    params = resolve_parameters(phi, sigma_w2, sigma_b2, q_star)
    sw2, q = params["sigma_w2"], params["q_star"]
    kwargs = {"n_quad": n_quad}
    atoms = freeprob.jjt_atoms(phi, depth, sw2, q, weights, n_quad=n_quad)
    edge = freeprob.jacobian_spectral_edge(phi, depth, sw2, q, weights, n_quad=n_quad)
    continuous_edge = freeprob.jacobian_spectral_edge(phi, depth, sw2, q, weights, n_quad=n_quad, continuous=True)
    if math.isnan(continuous_edge):
        grid = _edge_clustered_grid(math.log(edge) - 1.0, math.log(edge), points)
        log_density = np.zeros_like(grid)
    else:
        top = math.log(continuous_edge)
        coarse = _edge_clustered_grid(top - span, top, 200)
        coarse_density = freeprob.jjt_log_density(coarse, phi, depth, sw2, q, weights, **kwargs)
        coarse_cdf = freeprob.cdf_from_log_density(coarse, coarse_density, atoms)
        above = np.nonzero(coarse_cdf - coarse_cdf[0] > 1e-5)[0]
        low = coarse[max(above[0] - 2, 0)] if len(above) else top - span
        grid = _edge_clustered_grid(low, top, points)
        log_density = freeprob.jjt_log_density(grid, phi, depth, sw2, q, weights, **kwargs)
    cdf = freeprob.cdf_from_log_density(grid, log_density, atoms)
    mass_below_grid = max(atoms.continuous_mass - float(np.trapezoid(log_density, grid)), 0.0)
    eigenvalue = np.exp(grid)
    density = log_density / eigenvalue
    moments = freeprob.jacobian_moments(phi, depth, sw2, q, weights)
    name = getattr(get_nonlinearity(phi), "name", str(phi))
    return xr.Dataset(
        {
            "eigenvalue": ("log_eigenvalue", eigenvalue),
            "density": ("log_eigenvalue", density),
            "log_density": ("log_eigenvalue", log_density),
            "cdf": ("log_eigenvalue", cdf),
            "singular_value": ("log_eigenvalue", np.sqrt(eigenvalue)),
            "singular_value_density": ("log_eigenvalue", 2.0 * np.sqrt(eigenvalue) * density),
            "atom_eigenvalue": ("atom", atoms.locations),
            "atom_mass": ("atom", atoms.masses),
        },
        coords={"log_eigenvalue": grid},
        attrs={"method": "free probability (Pennington et al. 2017, 2018), Newton continuation; atoms by "
                         "Belinschi's rule (freeprob.jjt_atoms)",
               "phi": str(name), "depth": int(depth), "weights": weights, **params,
               "mean": moments["mean"], "variance": moments["variance"], "chi": moments["chi"],
               "edge": edge, "continuous_edge": continuous_edge, "continuous_mass": atoms.continuous_mass,
               "mass_below_grid": mass_below_grid, "n_quad": n_quad},
    )


def spectrum_atoms(spectrum: Any) -> list[dict[str, float]]:
    """The point masses of a :func:`jacobian_spectrum` as ``[{"eigenvalue": c, "mass": m}, ...]``."""
    if "atom_eigenvalue" not in spectrum:
        return []
    return [{"eigenvalue": float(c), "mass": float(m)}
            for c, m in zip(spectrum["atom_eigenvalue"].values, spectrum["atom_mass"].values)]


def _edge_clustered_grid(low: float, top: float, points: int) -> np.ndarray:
    """Increasing grid in ``log lambda`` on ``[low, top)``: 3/4 of the points uniform, 1/4 geometrically closer
    to the right edge (down to a relative distance 1e-10), where densities vanish like a square root or, for
    ReLU-like ``D^2`` at small depth, diverge like an inverse square root (e.g. the arcsine law at L = 2)."""
    n_edge = max(points // 4, 2)
    gap = min(0.05 * (top - low), 0.5)
    uniform = np.linspace(low, top - gap, points - n_edge, endpoint=False)
    near = top + np.log1p(-np.geomspace(-math.expm1(-gap), 1e-10, n_edge))
    return np.concatenate([uniform, near])


def spectrum_moment(spectrum: Any, k: int) -> float:
    """``E[lambda^k]`` of the law a :func:`jacobian_spectrum` represents: atoms plus the continuous density
    (trapezoid in ``log lambda``; continuous mass below the grid is left out). Compare with the closed-form
    ``mean`` and ``variance`` in its attrs."""
    grid = spectrum["log_eigenvalue"].values
    continuous = float(np.trapezoid(spectrum["log_density"].values * np.exp(k * grid), grid))
    return continuous + sum(a["mass"] * a["eigenvalue"] ** k for a in spectrum_atoms(spectrum))


def atom_membership(eigenvalues: np.ndarray, spectrum: Any, atom_rtol: float = 1e-9,
                    zero_floor: float = 1e-28) -> np.ndarray:
    """Index into :func:`spectrum_atoms` of the atom each sampled eigenvalue sits at, -1 for none.

    A value is at a nonzero atom ``c`` when ``|value / c - 1| <= atom_rtol`` (an exact ``sigma_w^L`` comes out of
    float64 SVD within ~1e-14), and at the atom at 0 when ``value <= zero_floor * max`` (exact zeros come out as
    rounding noise ~1e-32 of the largest)."""
    values = np.asarray(eigenvalues, dtype=float)
    index = np.full(values.shape, -1)
    largest = float(values.max()) if values.size else 0.0
    for i, atom in enumerate(spectrum_atoms(spectrum)):
        if atom["eigenvalue"] > 0:
            index[np.abs(values / atom["eigenvalue"] - 1.0) <= atom_rtol] = i
        else:
            index[values <= zero_floor * largest] = i
    return index


def _theory_cdf(spectrum: Any, log_values: np.ndarray, atom_at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``F(x)`` and its left limit ``F(x-)`` of a :func:`jacobian_spectrum` at ``x = exp(log_values)``.

    The continuous part is interpolated linearly in ``log lambda`` on the grid (constant beyond it); nonzero
    atoms add their mass from their location on (``atom_at``: index of the atom each value sits at, -1 if none,
    so a value at an atom gets the jump in ``F`` but not in ``F(x-)``). The atom at 0 is already in ``cdf``.
    """
    grid = spectrum["log_eigenvalue"].values
    cdf = spectrum["cdf"].values
    atoms = [(i, a["eigenvalue"], a["mass"]) for i, a in enumerate(spectrum_atoms(spectrum)) if a["eigenvalue"] > 0]
    grid_x = np.exp(grid)
    continuous = cdf.copy()
    for _, c, m in atoms:  # the continuous part's CDF on the grid
        continuous = continuous - np.where(grid_x >= c, m, 0.0)
    right = np.interp(log_values, grid, continuous, left=continuous[0], right=continuous[-1])
    left = right.copy()
    values = np.exp(log_values)
    for i, c, m in atoms:
        right = right + np.where((values >= c) | (atom_at == i), m, 0.0)
        left = left + np.where((values > c) & (atom_at != i), m, 0.0)
    return right, left


def ks_distance(eigenvalues: np.ndarray, spectrum: Any, floor: float | None = None,
                atom_rtol: float = 1e-9) -> float:
    """Kolmogorov-Smirnov distance ``sup |F_emp - F|`` between empirical eigenvalues and a :func:`jacobian_spectrum`.

    ``F`` has jumps at the spectrum's atoms: it is evaluated on both sides of every sample (``i/n - F(v_i)`` and
    ``F(v_i-) - (i-1)/n``), which is the exact supremum for a CDF with jumps. Samples within relative
    ``atom_rtol`` of a nonzero atom are taken to be at it (a singular value that is exactly ``sigma_w^L`` comes
    out of float64 SVD within ~1e-14). The continuous part is interpolated linearly in ``log lambda`` on the grid.
    Below the grid the theory only knows the total mass ``cdf[0]`` (the atom at 0, e.g. ReLU's or hard-tanh's,
    and unresolved tails), so that region enters as one comparison, ``|F_emp(grid bottom) - cdf[0]|``.
    ``floor``: raise the bottom of the comparison to ``floor`` (e.g. ``1e-28 * max``: float64 singular values
    below ~1e-14 of the largest are rounding noise, so a deep Gaussian network's tiny eigenvalues cannot be
    measured). When the spectrum has an atom at 0 and ``floor`` is None, ``floor = 1e-28 * max``: the exact zeros
    come out of the SVD as such noise (~1e-32 of the largest), which the grid may reach below.
    """
    values = np.sort(np.asarray(eigenvalues, dtype=float).ravel())
    n = len(values)
    if n == 0:
        raise ConfigError("ks_distance needs at least one eigenvalue")
    bottom = math.exp(spectrum["log_eigenvalue"].values[0])
    if floor is None and any(atom["eigenvalue"] == 0 for atom in spectrum_atoms(spectrum)):
        floor = 1e-28 * float(values[-1])
    if floor is not None and floor > bottom:
        bottom = floor
    below = int(np.searchsorted(values, bottom, side="left"))
    theory_bottom = float(_theory_cdf(spectrum, np.array([math.log(bottom)]), np.array([-1]))[1][0])
    gap = abs(below / n - theory_bottom)
    rest = values[below:]
    if len(rest):
        atom_at = atom_membership(rest, spectrum, atom_rtol, zero_floor=0.0)  # the zero atom is below `bottom`
        ranks = np.arange(below + 1, n + 1)
        right, left = _theory_cdf(spectrum, np.log(rest), atom_at)
        gap = max(gap, float(np.max(ranks / n - right)), float(np.max(left - (ranks - 1) / n)))
    return float(gap)


# ---------------------------------------------------------------------------------------------------------------
# figures and the command


def plot_spectrum(spectrum: Any, eigenvalues: np.ndarray | None = None, path: str | Path | None = None,
                  title: str | None = None, log10_range: tuple[float, float] | None = None) -> Any:
    """Density of ``log10`` of the squared singular values: theory (line) over an empirical histogram.

    ``log10_range``: the part of the ``log10 lambda`` axis shown and binned (default: the grid and the atoms;
    hard-tanh's continuous part reaches down tens of decades with a small fraction of its mass). Atoms
    (:func:`spectrum_atoms`) are drawn as stems on a right-hand axis of mass, with the fraction of the sampled
    eigenvalues at each (:func:`atom_membership`) as a cross; the atom at 0, which a log axis cannot show, is
    named in the legend. Samples at atoms are left out of the histogram."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    log10 = spectrum["log_eigenvalue"].values / math.log(10)
    density_log10 = spectrum["log_density"].values * math.log(10)
    atoms = spectrum_atoms(spectrum)
    nonzero = [(i, a) for i, a in enumerate(atoms) if a["eigenvalue"] > 0]
    x_min, x_max = log10.min(), max([log10.max()] + [math.log10(a["eigenvalue"]) for _, a in nonzero])
    if log10_range is not None:
        x_min, x_max = log10_range
    fractions = None
    if eigenvalues is not None and len(eigenvalues):
        eigenvalues = np.asarray(eigenvalues)
        membership = atom_membership(eigenvalues, spectrum)
        fractions = [float(np.mean(membership == i)) for i in range(len(atoms))]
        positive = eigenvalues[(eigenvalues > 0) & (membership < 0)]
        bins = np.linspace(x_min, x_max if nonzero or log10_range is not None else log10.max(), 80)
        ax.hist(np.log10(positive), bins=bins, weights=np.full(len(positive), 1.0 / len(eigenvalues)) / np.diff(
            bins)[0], color="0.75", label=f"empirical ({len(eigenvalues)} values)")
    label = "free probability"
    if atoms:
        label += f" (continuous part, mass {spectrum.attrs.get('continuous_mass', float('nan')):.3g})"
    ax.plot(log10, density_log10, color="C3", lw=1.5, label=label)
    # the edge-clustered last quarter of the grid may hold an integrable divergence (ReLU at L=2): keep it off-scale
    uniform = slice(0, int(0.75 * len(density_log10)))
    shown = (log10 >= x_min) & (log10 <= x_max)
    bulk = float(np.max(density_log10[uniform], where=shown[uniform], initial=0.0))
    top = min(1.05 * float(np.max(density_log10)), 3 * bulk)
    ax.set_ylim(0, top if top > 0 else 1.0)
    for i, atom in enumerate(atoms):
        if atom["eigenvalue"] == 0:
            measured = f", empirical {fractions[i]:.3g}" if fractions is not None else ""
            ax.plot([], [], " ", label=f"atom at 0: mass {atom['mass']:.3g}{measured}")
    if nonzero:
        right = ax.twinx()
        for i, atom in nonzero:
            x = math.log10(atom["eigenvalue"])
            right.vlines(x, 0, atom["mass"], color="C3", lw=2)
            right.plot([x], [atom["mass"]], "o", color="C3")
            if fractions is not None:
                right.plot([x], [fractions[i]], "x", color="k", ms=8, mew=2)
        right.set_ylim(0, 1.05)
        right.set_ylabel("atom mass (stem: theory, x: empirical)")
        ax.plot([], [], "o-", color="C3", label=", ".join(f"atom {a['mass']:.3g} at {a['eigenvalue']:.4g}"
                                                          for _, a in nonzero))
    if nonzero or log10_range is not None:
        pad = 0.03 * (x_max - x_min) if log10_range is None else 0.0
        ax.set_xlim(x_min - pad, x_max + pad)
    ax.set_xlabel(r"$\log_{10}\,\lambda$  (eigenvalue of $JJ^T$ = squared singular value)")
    ax.set_ylabel(r"density of $\log_{10}\lambda$")
    a = spectrum.attrs
    ax.set_title(title or f"{a['phi']}, {a['weights']}, L={a['depth']}, $\\sigma_w^2$={a['sigma_w2']:.4g}, "
                          f"q*={a['q_star']:.3g}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def spectrum_command(args: Any) -> int:
    """``neuromodels theory spectrum``: free-probability Jacobian spectrum and, with ``--width``, an empirical check.

    Namespace fields: ``phi``, ``depth``, ``sigma_w2``, ``sigma_b2``, ``q_star`` (None: the length-map fixed point;
    with ``sigma_w2`` None: the critical point for that q*), ``weights``, ``width`` (0/None: theory only),
    ``points``, ``out`` (folder or None), ``json``. Optional: ``draws`` (networks pooled, default 2), ``seed``.
    Writes ``spectrum.nc``, ``spectrum.png``, ``report.json`` under ``out``. The report's ``theory`` holds the
    closed-form moments, the atoms (eigenvalue, mass), the continuous part's mass and edge, ``mass_below_grid``
    and the moments of the represented law (``mean_from_spectrum``: atoms + density, a check on the closed
    forms); ``empirical`` the sampled moments, the fraction of samples at each atom and the KS distance.
    """
    from neuromodels._outputs import ReportFolder, check_out_folder

    depth = int(args.depth)
    if depth < 1:
        raise ConfigError(f"--depth must be a positive integer, got {depth}")
    points = 1000 if getattr(args, "points", None) is None else int(args.points)
    if points < 2:
        raise ConfigError(f"--points must be >= 2, got {points}")
    if getattr(args, "width", None) is not None and int(args.width) < 0:
        raise ConfigError(f"--width must be >= 0 (0: theory only), got {args.width}")
    if getattr(args, "draws", None) is not None and int(args.draws) < 1:
        raise ConfigError(f"--draws must be >= 1, got {args.draws}")
    if int(getattr(args, "seed", 0) or 0) < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    out = getattr(args, "out", None)
    out = check_out_folder(out) if out else None
    spectrum = jacobian_spectrum(args.phi, depth, getattr(args, "sigma_w2", None), getattr(args, "sigma_b2", None),
                                 getattr(args, "q_star", None), args.weights, points=points)
    a = spectrum.attrs
    report: dict[str, Any] = {
        "command": "theory spectrum",
        "parameters": {"phi": a["phi"], "depth": depth, "weights": a["weights"], "sigma_w2": a["sigma_w2"],
                       "sigma_b2": a["sigma_b2"], "q_star": a["q_star"], "points": points,
                       "width": getattr(args, "width", None), "draws": getattr(args, "draws", 2),
                       "seed": getattr(args, "seed", 0)},
        "theory": {"mean": a["mean"], "variance": a["variance"], "chi": a["chi"], "edge": a["edge"],
                   "atoms": spectrum_atoms(spectrum), "continuous_mass": a["continuous_mass"],
                   "continuous_edge": a["continuous_edge"], "mass_below_grid": a["mass_below_grid"],
                   "mean_from_spectrum": spectrum_moment(spectrum, 1),
                   "variance_from_spectrum": spectrum_moment(spectrum, 2) - spectrum_moment(spectrum, 1) ** 2,
                   "singular_value_max": math.sqrt(a["edge"])},
    }
    eigenvalues = None
    width = getattr(args, "width", None)
    if width:
        eigenvalues = empirical_jjt_eigenvalues(args.phi, depth, int(width), a["sigma_w2"], a["sigma_b2"],
                                                a["q_star"], a["weights"], draws=int(getattr(args, "draws", 2) or 2),
                                                seed=int(getattr(args, "seed", 0) or 0))
        membership = atom_membership(eigenvalues, spectrum)
        report["empirical"] = {"count": int(len(eigenvalues)), "mean": float(eigenvalues.mean()),
                               "variance": float(eigenvalues.var()), "max": float(eigenvalues.max()),
                               "atom_fractions": [float(np.mean(membership == i))
                                                  for i in range(len(report["theory"]["atoms"]))],
                               "ks_distance": ks_distance(eigenvalues, spectrum)}
    if out:
        spectrum.attrs["parameters_json"] = json.dumps(jsonable(report["parameters"]))
        from neuromodels.datasets._io import write_netcdf_atomic

        report["files"] = {"netcdf": str(out / "spectrum.nc"), "figure": str(out / "spectrum.png"),
                           "report": str(out / "report.json")}
        with ReportFolder(out, "theory spectrum") as folder:
            write_netcdf_atomic(spectrum, folder.path("spectrum.nc"))
            plot_spectrum(spectrum, eigenvalues, folder.path("spectrum.png"))
            write_json(folder.path("report.json"), report)
    if getattr(args, "json", False):
        print_json(report)
    else:
        t = report["theory"]
        print(f"{a['phi']} {a['weights']} depth {depth}: sigma_w2={a['sigma_w2']:.6g} sigma_b2={a['sigma_b2']:.6g} "
              f"q*={a['q_star']:.6g} chi={t['chi']:.6g}")
        print(f"  J J^T eigenvalues: mean {t['mean']:.6g}  variance {t['variance']:.6g}  max (edge) {t['edge']:.6g}")
        measured = report.get("empirical", {}).get("atom_fractions")
        for i, atom in enumerate(t["atoms"]):
            print(f"  atom at {atom['eigenvalue']:.6g}: mass {atom['mass']:.6g}"
                  + (f" (empirical {measured[i]:.4f})" if measured else ""))
        if t["atoms"] and math.isnan(t["continuous_edge"]):
            print(f"  continuous part: mass {t['continuous_mass']:.3g}"
                  + (" (not resolved)" if t["continuous_mass"] > 0 else ""))
        elif t["atoms"]:
            print(f"  continuous part: mass {t['continuous_mass']:.6g}, right edge {t['continuous_edge']:.6g}")
        if "empirical" in report:
            e = report["empirical"]
            print(f"  empirical (width {width}, {e['count']} values): mean {e['mean']:.6g} variance "
                  f"{e['variance']:.6g} max {e['max']:.6g}  KS distance {e['ks_distance']:.4f}")
        if out:
            print(f"  wrote {out}/spectrum.nc, spectrum.png, report.json", file=sys.stdout)
    return 0

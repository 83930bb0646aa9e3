"""Singular-value spectra of the input-output Jacobian: empirical (torch) and free-probability theory.

Empirical side: random MLPs ``h^l = W^l x^{l-1} + b^l``, ``x^l = phi(h^l)`` (``l = 1..L``, all widths ``N``) with
orthogonal (Haar, scaled) or Gaussian weights of variance ``sigma_w2 / N`` and Gaussian biases of variance
``sigma_b2``, built by :func:`neuromodels.init.random_mlp` (weights named explicitly at every call); the Jacobian ``J = dx^L / dx^0`` exactly, either as the closed product
``D^L W^L ... D^1 W^1`` (``D^l = diag phi'(h^l)``, for our MLPs) or batched with ``torch.func`` for any module.
Inputs are ``x^0 = phi(h^0)`` with ``h^0 ~ N(0, q*)`` so that every layer sits at the length-map fixed point
``q*`` that the theory assumes.

Theory side: :mod:`.freeprob` (S-transforms, Newton continuation). :func:`jacobian_spectrum` returns the
density on a grid chosen automatically (a coarse pass finds where the mass lies, a fine pass resolves it),
as an ``xarray.Dataset``. Nonlinearities, their torch modules and the fixed point ``q*`` come from
:mod:`neuromodels.nonlinearities` and :mod:`neuromodels.fixed_points`; the command ``neuromodels theory spectrum``
that writes these results is in :mod:`neuromodels.commands.theory`.

References: Pennington, Schoenholz & Ganguli 2017 (arXiv:1711.04735), "Resurrecting the sigmoid in deep
learning through dynamical isometry", sec. 2-3; Pennington, Schoenholz & Ganguli 2018 (arXiv:1802.09979).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from neuromodels._figures import new_figure, save_figure
from neuromodels.errors import ConfigError
from neuromodels.fixed_points import q_star as length_fixed_point
from neuromodels.nonlinearities import elementwise_module_types, get_nonlinearity

from . import freeprob

__all__ = [
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
]


# ---------------------------------------------------------------------------------------------------------------
# exact Jacobians (the networks: neuromodels.init.random_mlp; the activations: neuromodels.nonlinearities)


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
        elementwise = {torch.nn.Linear, *elementwise_module_types()}
        method = (
            "product"
            if isinstance(model, torch.nn.Sequential) and all(type(m) in elementwise for m in model)
            else "autograd"
        )
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


def resolve_parameters(
    phi: Any, sigma_w2: float | None = None, sigma_b2: float | None = None, q_star: float | None = None
) -> dict[str, float]:
    """Complete ``(sigma_w2, sigma_b2, q_star)`` from what is given.

    * ``q_star`` given, ``sigma_w2`` not: the critical point for that ``q*`` (``sigma_w2 = 1/E[phi'^2]``);
    * ``q_star`` given, ``sigma_b2`` not: ``sigma_b2 = q* - sigma_w2 E[phi(h)^2]`` (must be >= 0);
    * ``q_star`` not given: the fixed point of the length map at ``(sigma_w2, sigma_b2)``.

    ReLU and the identity have no finite ``q*`` at criticality without bias, but their ``D^2`` does not
    depend on ``q*``, so ``q* = 1`` is used when the fixed point does not exist.
    """
    nonlinearity = get_nonlinearity(phi)
    scale_free = nonlinearity.name in ("relu", "linear")
    if q_star is not None:
        if not (np.isfinite(q_star) and q_star > 0):
            raise ConfigError(f"q_star must be positive, got {q_star!r}")
        if sigma_w2 is None:
            sigma_w2 = freeprob.sigma_w2_for_q_star(nonlinearity, q_star)
        if sigma_b2 is None:
            # E[phi(h)^2]: the nonlinearity's closed form where it has one (hard-tanh, ReLU, erf, linear), its
            # quadrature otherwise (a Gauss-Hermite rule over hard-tanh's kinks was 4.5 % off at q* = 1/4)
            second = float(nonlinearity.mean_phi_sq(q_star))
            sigma_b2 = q_star - sigma_w2 * second
            if sigma_b2 < -1e-9 * q_star:
                raise ConfigError(
                    f"q_star={q_star} is not reachable at sigma_w2={sigma_w2} with a real bias "
                    f"(needs sigma_b2={sigma_b2:.4g} < 0); lower sigma_w2 or raise q_star"
                )
            sigma_b2 = max(sigma_b2, 0.0)
    else:
        if sigma_w2 is None:
            raise ConfigError("give sigma_w2 (and sigma_b2) or q_star")
        sigma_b2 = 0.0 if sigma_b2 is None else sigma_b2
        try:
            q_star = float(length_fixed_point(sigma_w2, sigma_b2, nonlinearity))
        except ConfigError:
            if not scale_free:
                raise
            q_star = 1.0
        if q_star <= 0 or not np.isfinite(q_star):
            if not scale_free:
                raise ConfigError(
                    f"the length map at sigma_w2={sigma_w2}, sigma_b2={sigma_b2} has q* = {q_star}; "
                    "give q_star explicitly"
                )
            q_star = 1.0
    if not (np.isfinite(sigma_w2) and sigma_w2 > 0 and sigma_b2 >= 0):
        raise ConfigError(f"need sigma_w2 > 0 and sigma_b2 >= 0, got {sigma_w2!r}, {sigma_b2!r}")
    return {"sigma_w2": float(sigma_w2), "sigma_b2": float(sigma_b2), "q_star": float(q_star)}


def empirical_jjt_eigenvalues(
    phi: Any,
    depth: int,
    width: int,
    sigma_w2: float,
    sigma_b2: float,
    q_star: float,
    weights: str = "orthogonal",
    draws: int = 1,
    inputs_per_draw: int = 1,
    seed: int = 0,
    progress: bool | None = None,
) -> np.ndarray:
    """Eigenvalues of ``J J^T`` (squared singular values) pooled over random networks and inputs, sorted.

    ``draws`` independent networks, ``inputs_per_draw`` inputs ``x^0 = phi(h^0)``, ``h^0 ~ N(0, q*)`` each.
    Returns ``draws * inputs_per_draw * width`` values.
    """
    import torch
    from tqdm.auto import tqdm

    from neuromodels.init import random_mlp
    from neuromodels.nonlinearities import torch_activation

    activation = torch_activation(phi)
    pooled = []
    for draw in tqdm(range(draws), desc="Jacobian spectra", disable=None if progress is None else not progress):
        model = random_mlp(width, depth, sigma_w2, sigma_b2, phi, weights=weights, seed=seed * 100_003 + draw)
        generator = torch.Generator().manual_seed(seed * 100_003 + draw + 7_919)
        h0 = math.sqrt(q_star) * torch.randn(inputs_per_draw, width, generator=generator, dtype=torch.float64)
        with torch.no_grad():
            x0 = activation(h0)
        pooled.append(jacobian_singular_values(model, x0, method="product").ravel() ** 2)
    return np.sort(np.concatenate(pooled))


# ---------------------------------------------------------------------------------------------------------------
# theory on an automatic grid


def jacobian_spectrum(
    phi: Any = "tanh",
    depth: int = 16,
    sigma_w2: float | None = None,
    sigma_b2: float | None = None,
    q_star: float | None = None,
    weights: str = "orthogonal",
    points: int = 1000,
    span: float = 80.0,
    n_quad: int = 96,
) -> Any:
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
        attrs={
            "method": "free probability (Pennington et al. 2017, 2018), Newton continuation; atoms by "
            "Belinschi's rule (freeprob.jjt_atoms)",
            "phi": str(name),
            "depth": int(depth),
            "weights": weights,
            **params,
            "mean": moments["mean"],
            "variance": moments["variance"],
            "chi": moments["chi"],
            "edge": edge,
            "continuous_edge": continuous_edge,
            "continuous_mass": atoms.continuous_mass,
            "mass_below_grid": mass_below_grid,
            "n_quad": n_quad,
        },
    )


def spectrum_atoms(spectrum: Any) -> list[dict[str, float]]:
    """The point masses of a :func:`jacobian_spectrum` as ``[{"eigenvalue": c, "mass": m}, ...]``."""
    if "atom_eigenvalue" not in spectrum:
        return []
    return [
        {"eigenvalue": float(c), "mass": float(m)}
        for c, m in zip(spectrum["atom_eigenvalue"].values, spectrum["atom_mass"].values)
    ]


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


def atom_membership(
    eigenvalues: np.ndarray, spectrum: Any, atom_rtol: float = 1e-9, zero_floor: float = 1e-28
) -> np.ndarray:
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


def ks_distance(eigenvalues: np.ndarray, spectrum: Any, floor: float | None = None, atom_rtol: float = 1e-9) -> float:
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
# figures


def plot_spectrum(
    spectrum: Any,
    eigenvalues: np.ndarray | None = None,
    path: str | Path | None = None,
    title: str | None = None,
    log10_range: tuple[float, float] | None = None,
) -> Any:
    """Density of ``log10`` of the squared singular values: theory (line) over an empirical histogram.

    ``log10_range``: the part of the ``log10 lambda`` axis shown and binned (default: the grid and the atoms;
    hard-tanh's continuous part reaches down tens of decades with a small fraction of its mass). Atoms
    (:func:`spectrum_atoms`) are drawn as stems on a right-hand axis of mass, with the fraction of the sampled
    eigenvalues at each (:func:`atom_membership`) as a cross; the atom at 0, which a log axis cannot show, is
    named in the legend. Samples at atoms are left out of the histogram."""
    fig, ax = new_figure(figsize=(6, 4))
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
        ax.hist(
            np.log10(positive),
            bins=bins,
            weights=np.full(len(positive), 1.0 / len(eigenvalues)) / np.diff(bins)[0],
            color="0.75",
            label=f"empirical ({len(eigenvalues)} values)",
        )
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
        ax.plot(
            [],
            [],
            "o-",
            color="C3",
            label=", ".join(f"atom {a['mass']:.3g} at {a['eigenvalue']:.4g}" for _, a in nonzero),
        )
    if nonzero or log10_range is not None:
        pad = 0.03 * (x_max - x_min) if log10_range is None else 0.0
        ax.set_xlim(x_min - pad, x_max + pad)
    ax.set_xlabel(r"$\log_{10}\,\lambda$  (eigenvalue of $JJ^T$ = squared singular value)")
    ax.set_ylabel(r"density of $\log_{10}\lambda$")
    a = spectrum.attrs
    ax.set_title(
        title or f"{a['phi']}, {a['weights']}, L={a['depth']}, $\\sigma_w^2$={a['sigma_w2']:.4g}, q*={a['q_star']:.3g}",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig

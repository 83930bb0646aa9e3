"""Figures for the mean-field theory: phase diagrams, depth-scale maps, propagation overlays, trainability.

Each function takes results (xarray from :mod:`.meanfield` / :mod:`.empirical`, or arrays) and returns a
matplotlib ``Figure`` built without pyplot (:func:`neuromodels._figures.new_figure`: no backend is chosen or
switched); :func:`save_figure` writes it as PNG atomically. Functions that draw a single panel also accept an
``ax=`` to draw into a figure of the caller's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neuromodels._figures import new_figure, save_figure

__all__ = ["plot_phase_diagram", "plot_depth_scales", "plot_propagation", "plot_trainability", "save_figure"]


def plot_phase_diagram(ds: Any, variable: str = "chi_1", *, ax: Any = None, title: str | None = None) -> Any:
    """Heat map of ``ds[variable]`` over ``(sigma_b2, sigma_w2)`` with the critical line ``chi_1 = 1``.

    ``chi_1`` is drawn on a log colour scale centred at 1 (ordered below, chaotic above, as Schoenholz et al.
    2017 Fig. 1); depth scales ``xi_*`` on a log scale clipped at 1000.
    """
    from matplotlib import colors

    if ax is None:
        fig, ax = new_figure(figsize=(5.2, 4.2))
    else:
        fig = ax.figure
    values = np.asarray(ds[variable].values, dtype=float)
    sw, sb = ds["sigma_w2"].values, ds["sigma_b2"].values
    if variable == "chi_1":
        span = float(np.nanmax(np.abs(np.log(values[np.isfinite(values) & (values > 0)]))))
        norm = colors.LogNorm(vmin=np.exp(-span), vmax=np.exp(span))
        cmap = "RdBu_r"
    else:
        finite = np.abs(values[np.isfinite(values)])
        values = np.clip(np.abs(values), 1e-2, 1e3)
        norm = colors.LogNorm(vmin=max(float(np.nanmin(finite)) if finite.size else 0.1, 0.1), vmax=1e3)
        cmap = "viridis"
    mesh = ax.pcolormesh(sb, sw, values, norm=norm, cmap=cmap, shading="auto")
    fig.colorbar(mesh, ax=ax, label=variable if variable == "chi_1" else f"|{variable}| (layers)")
    if "critical_sigma_w2" in ds.coords:
        ax.plot(sb, ds["critical_sigma_w2"].values, color="k", lw=1.5, label="critical line $\\chi_1 = 1$")
        ax.legend(loc="upper left", fontsize=8)
    ax.set_xlabel("$\\sigma_b^2$")
    ax.set_ylabel("$\\sigma_w^2$")
    ax.set_ylim(sw.min(), sw.max())
    ax.set_title(
        title
        or f"{ds.attrs.get('phi', '')}: {variable}"
        + (f" (dropout rho={ds.attrs['rho']:g})" if ds.attrs.get("rho", 1.0) < 1 else "")
    )
    return fig


def plot_depth_scales(ds: Any, sigma_b2: float | None = None, *, ax: Any = None) -> Any:
    """``xi_q``, ``xi_c`` and ``|xi_grad|`` against ``sigma_w2`` at one ``sigma_b2`` (Schoenholz et al. Fig. 2)."""
    if ax is None:
        fig, ax = new_figure(figsize=(5.2, 3.8))
    else:
        fig = ax.figure
    line = (
        ds
        if "sigma_b2" not in ds.dims
        else ds.sel(
            sigma_b2=float(sigma_b2 if sigma_b2 is not None else ds["sigma_b2"].values[len(ds["sigma_b2"]) // 2]),
            method="nearest",
        )
    )
    sw = line["sigma_w2"].values
    for name, style in (("xi_q", "--"), ("xi_c", "-"), ("xi_grad", ":")):
        ax.semilogy(sw, np.abs(line[name].values), style, label=f"|{name}|" if name == "xi_grad" else name)
    if "critical_sigma_w2" in line.coords:
        ax.axvline(float(line["critical_sigma_w2"]), color="k", lw=0.8, label="critical")
    ax.set_xlabel("$\\sigma_w^2$")
    ax.set_ylabel("depth scale (layers)")
    ax.set_title(f"{ds.attrs.get('phi', '')}, $\\sigma_b^2$ = {float(line['sigma_b2']):g}")
    ax.legend(fontsize=8)
    return fig


def plot_propagation(ds: Any) -> Any:
    """Measured ``q^l``, ``c^l`` and gradient norms (mean +- std over networks) over the mean-field curves."""
    fig, axes = new_figure(1, 3, figsize=(12, 3.4))
    layer = ds["layer"].values
    for ax, (meas, std, theory, label) in zip(
        axes, (("q_mean", "q_std", "q_theory", "$q^l$"), ("c_mean", "c_std", "c_theory", "$c^l$"))
    ):
        ax.errorbar(layer, ds[meas].values, yerr=ds[std].values, fmt="o", ms=3, label="random networks")
        ax.plot(layer, ds[theory].values, "-", label="mean field")
        ax.set_xlabel("layer")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    ax = axes[2]
    ax.semilogy(layer, ds["grad_mean"].values, "o", ms=3, label="random networks")
    ax.semilogy(layer, ds["grad_theory"].values, "-", label="mean field ($\\chi_1$ per layer)")
    ax.set_xlabel("layer")
    ax.set_ylabel("$\\langle (\\partial E / \\partial h^l)^2 \\rangle$")
    ax.legend(fontsize=8)
    a = ds.attrs
    fig.suptitle(
        f"{a.get('phi')} width {a.get('width')}, $\\sigma_w^2$={a.get('sigma_w2'):g}, "
        f"$\\sigma_b^2$={a.get('sigma_b2'):g}, {a.get('weights')}, rho={a.get('rho'):g}"
    )
    fig.tight_layout()
    return fig


def plot_trainability(
    accuracy: Any, sigma_w2: Any, depth: Any, xi_c: Any = None, *, chance: float = 0.1, title: str = ""
) -> Any:
    """Heat map of accuracy over ``(sigma_w2, depth)`` with the ``6 xi_c`` line (Schoenholz et al. Fig. 5).

    ``accuracy`` has shape ``(len(depth), len(sigma_w2))``; ``xi_c`` is evaluated on a fine ``sigma_w2`` grid
    given as ``(sigma_w2_fine, xi_c_fine)`` or on ``sigma_w2`` itself.
    """
    fig, ax = new_figure(figsize=(5.6, 4.2))
    mesh = ax.pcolormesh(
        np.asarray(sigma_w2),
        np.asarray(depth),
        np.asarray(accuracy),
        vmin=chance,
        vmax=1.0,
        cmap="magma",
        shading="auto",
    )
    fig.colorbar(mesh, ax=ax, label="test accuracy")
    if xi_c is not None:
        grid, values = xi_c if isinstance(xi_c, tuple) else (sigma_w2, xi_c)
        ax.plot(grid, 6 * np.asarray(values), color="c", lw=2, label="$6\\,\\xi_c$")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_ylim(
        np.min(depth) - 0.5 * np.diff(depth)[0] if len(depth) > 1 else 0,
        np.max(depth) + 0.5 * np.diff(depth)[-1] if len(depth) > 1 else np.max(depth) + 1,
    )
    ax.set_xlabel("$\\sigma_w^2$")
    ax.set_ylabel("depth $L$")
    ax.set_title(title)
    return fig

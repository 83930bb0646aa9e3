"""Figures of predictivity and noise-ceiling results (matplotlib, no pyplot state).

Each function takes the xarray results of :mod:`neuromodels.analysis.predictivity` /
:mod:`neuromodels.analysis.ceilings` (or plain arrays), draws on ``ax`` when given and otherwise on a new
:class:`matplotlib.figure.Figure`, and returns the figure. Figures are built without ``pyplot``, so they work
under any backend (and none) and never accumulate in a global figure list; save them with
``fig.savefig(path)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["plot_r_vs_ceiling", "plot_scores", "plot_ceiling_distribution", "panel_figure"]


def panel_figure(n_panels: int = 1, *, panel_size: tuple[float, float] = (4.2, 3.6)) -> tuple[Any, list[Any]]:
    """A figure with ``n_panels`` axes in one row (wrapping after 4); returns ``(figure, axes)``."""
    from matplotlib.figure import Figure

    n_panels = max(1, int(n_panels))
    cols = min(n_panels, 4)
    rows = int(np.ceil(n_panels / cols))
    fig = Figure(figsize=(panel_size[0] * cols, panel_size[1] * rows), layout="constrained")
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n_panels)]
    return fig, axes


def _values(x: Any, *, reduce_dims: tuple[str, ...] = ("time_bin", "time_step", "split")) -> np.ndarray:
    if isinstance(x, xr.DataArray):
        extra = [d for d in x.dims if d in reduce_dims]
        if extra:
            x = x.mean(extra, skipna=True)
        return np.asarray(x.values, dtype=float).ravel()
    return np.asarray(x, dtype=float).ravel()


def plot_r_vs_ceiling(
    r_per_neuroid: Any,
    ceiling_per_neuroid: Any,
    *,
    ceiling_kind: str | None = None,
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Scatter of each neuroid's held-out model r against its noise ceiling, with the line of a perfect model.

    ``ceiling_per_neuroid`` is a per-neuroid DataArray (or array), or a ``noise_ceiling`` Dataset (its
    ``ceiling_per_neuroid`` is used). Both inputs are per neuroid; DataArrays are aligned on ``neuroid_id`` when
    both have it; a ``time_bin`` or ``split`` dimension is averaged first. ``ceiling_kind`` (default: the ceiling's
    ``attrs['ceiling_kind']``, else ``"reliability"``) sets the reference line: a reliability ceiling (split-half,
    FEV) bounds ``r**2``, so a perfect model lies on ``r = sqrt(ceiling)``; a correlation ceiling (CC_max, oracle)
    bounds ``r`` itself, ``r = ceiling``.
    """
    if isinstance(ceiling_per_neuroid, xr.Dataset):
        ceiling_kind = ceiling_kind or ceiling_per_neuroid.attrs.get("ceiling_kind")
        ceiling_per_neuroid = ceiling_per_neuroid["ceiling_per_neuroid"]
    if isinstance(ceiling_per_neuroid, xr.DataArray):
        ceiling_kind = ceiling_kind or ceiling_per_neuroid.attrs.get("ceiling_kind")
    ceiling_kind = ceiling_kind or "reliability"
    if ceiling_kind not in ("reliability", "correlation"):
        raise ValueError(f"ceiling_kind must be 'reliability' or 'correlation', got {ceiling_kind!r}")
    if isinstance(r_per_neuroid, xr.DataArray) and isinstance(ceiling_per_neuroid, xr.DataArray):
        if "neuroid_id" in r_per_neuroid.coords and "neuroid_id" in ceiling_per_neuroid.coords:
            order = {str(n): i for i, n in enumerate(ceiling_per_neuroid["neuroid_id"].values)}
            index = [order.get(str(n), -1) for n in r_per_neuroid["neuroid_id"].values]
            ceiling = _values(ceiling_per_neuroid)
            ceiling = np.asarray([ceiling[i] if i >= 0 else np.nan for i in index])
        else:
            ceiling = _values(ceiling_per_neuroid)
    else:
        ceiling = _values(ceiling_per_neuroid)
    r = _values(r_per_neuroid)
    if r.shape != ceiling.shape:
        raise ValueError(f"r ({r.size} neuroids) and ceiling ({ceiling.size} neuroids) differ in length")
    fig = None
    if ax is None:
        fig, (ax,) = panel_figure(1)
    finite = np.isfinite(r) & np.isfinite(ceiling)
    ax.scatter(ceiling[finite], r[finite], s=14, alpha=0.75, edgecolors="none")
    both = np.concatenate([r[finite], ceiling[finite], [0.0, 1.0]])
    lo, hi = float(min(both.min(), 0.0)), float(max(both.max(), 1.0))
    pad = 0.04 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    if ceiling_kind == "reliability":
        grid = np.linspace(0.0, hi, 200)
        ax.plot(grid, np.sqrt(grid), color="0.4", lw=1, ls="--", label="r² = ceiling (perfect model)")
    else:
        ax.plot([lo, hi], [lo, hi], color="0.4", lw=1, ls="--", label="r = ceiling (perfect model)")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(f"noise ceiling per neuroid ({ceiling_kind})")
    ax.set_ylabel("model r (held-out stimuli)")
    if (~finite).any():
        ax.text(
            0.02,
            0.98,
            f"{int((~finite).sum())} NaN neuroid(s) not shown",
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            color="0.3",
        )
    ax.legend(loc="lower right", fontsize=8)
    if title:
        ax.set_title(title)
    return fig if fig is not None else ax.figure


def _as_score_dataset(scores: Any) -> xr.Dataset:
    if isinstance(scores, xr.DataArray):
        return scores.to_dataset(name="score")
    if isinstance(scores, Mapping) and not isinstance(scores, xr.Dataset):
        return xr.Dataset({"score": xr.DataArray(list(scores.values()), dims="layer", coords={"layer": list(scores)})})
    return scores


def plot_scores(
    scores: Any,
    *,
    variable: str = "score",
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Scores per layer (bars with ``error`` bars), or per time bin (one line per layer) for time-resolved results.

    ``scores`` is a Dataset with ``variable`` (and optionally ``error``) over ``layer`` (and optionally ``region``,
    drawn as grouped bars or separate line styles, and ``time_bin``, drawn on the x axis at the bin centres when
    ``time_bin_start``/``time_bin_end`` are there), a DataArray, or a mapping layer -> score. The y axis names the
    score from the attrs of :func:`~neuromodels.analysis.predictivity.predictivity` (``"score: median Pearson r
    over neuroids"``, ``"ceiled score (score² / ceiling)"``); the legend sits right of the axes.
    """
    ds = _as_score_dataset(scores)
    data = ds[variable]
    error = ds["error"] if "error" in ds and variable == "score" else None
    if "layer" not in data.dims:
        data = data.expand_dims(layer=[str(ds.attrs.get("layer", "features"))])
        error = None if error is None else error.expand_dims(layer=data["layer"].values)
    if "region" not in data.dims:
        data = data.expand_dims(region=[""])
        error = None if error is None else error.expand_dims(region=[""])
    fig = None
    if ax is None:
        fig, (ax,) = panel_figure(1, panel_size=(max(4.2, 0.6 * data.sizes["layer"] * data.sizes["region"] + 2), 3.6))
    layers = [str(x) for x in data["layer"].values]
    regions = [str(x) for x in data["region"].values]
    if "time_bin" in data.dims:
        if "time_bin_start" in data.coords and "time_bin_end" in data.coords:
            x = (np.asarray(data["time_bin_start"].values, float) + np.asarray(data["time_bin_end"].values, float)) / 2
            ax.set_xlabel("time bin centre (ms)")
        else:
            x = np.arange(data.sizes["time_bin"])
            ax.set_xlabel("time bin")
        styles = ["-", "--", ":", "-."]
        for j, region in enumerate(regions):
            for layer in layers:
                y = np.asarray(data.sel(layer=layer, region=region).values, float)
                label = layer if len(regions) == 1 else f"{layer} ({region})"
                line = ax.plot(x, y, styles[j % len(styles)], marker="o", ms=3, label=label)[0]
                if error is not None:
                    e = np.asarray(error.sel(layer=layer, region=region).values, float)
                    ax.fill_between(x, y - e, y + e, color=line.get_color(), alpha=0.2, lw=0)
        _legend_outside(ax)
    else:
        width = 0.8 / len(regions)
        positions = np.arange(len(layers))
        for j, region in enumerate(regions):
            y = np.asarray(data.sel(region=region).transpose("layer", ...).values, float).ravel()
            e = (
                None
                if error is None
                else np.asarray(error.sel(region=region).transpose("layer", ...).values, float).ravel()
            )
            ax.bar(positions + (j - (len(regions) - 1) / 2) * width, y, width, yerr=e, capsize=3, label=region or None)
        ax.set_xticks(positions, layers, rotation=30 if max(map(len, layers)) > 6 else 0, ha="right")
        ax.set_xlabel("layer")
        if len(regions) > 1:
            _legend_outside(ax, title="region")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_ylabel(_score_label(ds, variable))
    if title:
        ax.set_title(title)
    return fig if fig is not None else ax.figure


def _legend_outside(ax: Any, **options: Any) -> None:
    """The legend right of the axes, where it cannot hide a bar or a line (constrained layout makes room)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8, **options)


def _score_label(ds: xr.Dataset, variable: str) -> str:
    """The y label naming what is plotted, from the attrs :func:`~neuromodels.analysis.predictivity.predictivity`
    writes (``aggregation``, ``ceiled_formula``); the variable's name when they are absent."""
    per_neuroid_median = "median over neuroids" in str(ds.attrs.get("aggregation", ""))
    if variable == "score" and per_neuroid_median:
        return "score: median Pearson r over neuroids"
    if variable == "ceiled_score" and "ceiled_formula" in ds.attrs:
        formula = str(ds.attrs["ceiled_formula"]).replace("**2", "²")
        return f"ceiled score ({formula})"
    return variable.replace("_", " ")


def plot_ceiling_distribution(
    ceiling_per_neuroid: Any,
    *,
    ax: Any = None,
    title: str | None = None,
    bins: int = 30,
) -> Any:
    """Histogram of the per-neuroid noise ceilings with their median marked.

    (The split-half aggregate Brain-Score reports is the median per split, averaged over splits; it is close to,
    not the same as, the median of the per-neuroid means drawn here.)

    All finite values are counted (for time-resolved ceilings, every neuroid x time bin); NaN neuroids, e.g.
    constant ones, are counted in the legend.
    """
    values = np.asarray(
        ceiling_per_neuroid.values if isinstance(ceiling_per_neuroid, xr.DataArray) else ceiling_per_neuroid,
        dtype=float,
    ).ravel()
    finite = values[np.isfinite(values)]
    fig = None
    if ax is None:
        fig, (ax,) = panel_figure(1)
    if finite.size:
        n_bins = int(min(bins, max(5, 2 * np.sqrt(finite.size))))  # few neuroids: fewer, wider bins
        ax.hist(finite, bins=n_bins, color="tab:blue", alpha=0.8)
        median = float(np.median(finite))
        ax.axvline(median, color="k", lw=1.2, ls="--", label=f"median over neuroids {median:.3f}")
    missing = values.size - finite.size
    if missing:
        ax.plot([], [], " ", label=f"{missing} NaN not shown")
    ax.set_xlabel("noise ceiling")
    ax.set_ylabel("neuroids")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig if fig is not None else ax.figure

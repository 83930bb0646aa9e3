"""Figures: built without pyplot (:func:`new_figure`) and written atomically as PNG (:func:`save_figure`).

The library never switches matplotlib's backend: a :class:`matplotlib.figure.Figure` made by :func:`new_figure`
renders through its own Agg canvas whatever backend is active, so plotting works headless and leaves a user's
interactive backend alone. The ``neuromodels`` command sets Agg once (:func:`neuromodels.cli.main`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# keywords of pyplot.subplots that shape the grid of axes; all others go to the Figure (figsize, dpi, layout, ...)
_SUBPLOTS_KEYWORDS = ("sharex", "sharey", "squeeze", "width_ratios", "height_ratios", "subplot_kw", "gridspec_kw")


def new_figure(nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Any, Any]:
    """``(figure, axes)`` like :func:`matplotlib.pyplot.subplots`, without pyplot and so without a backend.

    ``sharex``, ``sharey``, ``squeeze``, ``width_ratios``, ``height_ratios``, ``subplot_kw`` and ``gridspec_kw``
    shape the axes (:meth:`matplotlib.figure.Figure.subplots`); other keywords (``figsize``, ``dpi``, ``layout``,
    ...) go to :class:`matplotlib.figure.Figure`. The figure is not registered with pyplot: nothing accumulates in
    pyplot's registry, and :func:`save_figure` (or ``fig.savefig``) writes it.
    """
    from matplotlib.figure import Figure

    grid = {key: kwargs.pop(key) for key in _SUBPLOTS_KEYWORDS if key in kwargs}
    fig = Figure(**kwargs)
    return fig, fig.subplots(nrows, ncols, **grid)


def save_figure(fig: Any, path: str | os.PathLike[str], *, dpi: int = 120, tight: bool = True) -> Path:
    """Save the matplotlib figure ``fig`` as PNG at ``path`` and close it; returns the path.

    ``fig``: a figure of :func:`new_figure` or of pyplot. ``tight`` crops the canvas to its artists
    (``bbox_inches="tight"``). A pyplot figure is closed even when writing fails, so that long runs that make many
    figures do not accumulate them in pyplot's registry (a figure of :func:`new_figure` is not registered there).
    """
    from neuromodels.datasets._io import atomic_path

    path = Path(path)
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight" if tight else None)
    finally:
        _close(fig)
    return path


def _close(fig: Any) -> None:
    """Close a pyplot figure; a figure pyplot does not manage has nothing to close (and importing pyplot for it
    would select a backend)."""
    import sys

    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)

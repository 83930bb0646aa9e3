"""Saving figures: every PNG of the framework is written atomically (temporary file + rename) and closed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def save_figure(fig: Any, path: str | os.PathLike[str], *, dpi: int = 120, tight: bool = True) -> Path:
    """Save the matplotlib figure ``fig`` as PNG at ``path`` and close it; returns the path.

    ``tight`` crops the canvas to its artists (``bbox_inches="tight"``). The figure is closed even when
    writing fails, so that long runs that make many figures do not accumulate them in pyplot's registry.
    """
    import matplotlib.pyplot as plt

    from neuromodels.datasets._io import atomic_path

    path = Path(path)
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight" if tight else None)
    finally:
        plt.close(fig)
    return path

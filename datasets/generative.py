"""Data for generative models (Variational Walkback, its baselines): toy 2-D sets, image sets, user arrays.

Every loader returns a :class:`SampleSet`: ``points`` ``(n, dim)`` float32 (images flattened, pixels in
[0, 1]) and ``image_shape`` (``None`` for vectors), so that one training loop serves all of them.

* :func:`make_spiral`, :func:`make_circle`: the 2-D sets of the Variational Walkback code
  (anirudh9119/walkback_nips17 ``train_spiral_online.py``: fuel's ``Spiral(num_examples=20000, classes=1,
  cycles=1., noise=0.01)`` at lines 423-424 and its own ``Circle`` class at lines 176-198).
* :func:`make_mog`: a mixture of Gaussians on a circle (``experiment_mog_online.sh``; our radius/spread).
* :func:`load_points`: ``"spiral" | "circle" | "mog" | "digits" | "mnist" | FILE.npy`` -> :class:`SampleSet`.

NumPy only at import time (no torch), like the rest of :mod:`neuromodels.datasets`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuromodels.errors import DataFormatError

__all__ = [
    "SampleSet",
    "make_spiral",
    "make_circle",
    "make_mog",
    "load_points",
    "check_points",
    "split_points",
    "POINT_SETS",
]

POINT_SETS = ("spiral", "circle", "mog", "digits", "mnist")


@dataclass(frozen=True)
class SampleSet:
    """``points`` ``(n, dim)`` float32 and, for images, ``image_shape`` ``(channels, height, width)``."""

    points: np.ndarray
    image_shape: tuple[int, int, int] | None
    source: str

    @property
    def dim(self) -> int:
        return int(self.points.shape[1])


def make_spiral(n: int = 20_000, *, noise: float = 0.01, cycles: float = 1.0, seed: int = 0) -> np.ndarray:
    """A one-armed 2-D spiral ``(n, 2)``: radius ``(2 p + 1) / 3`` at angle ``2 pi p``, ``p ~ U(0, cycles)``.

    The construction of fuel's ``Spiral`` toy set (``classes=1``) that the authors trained on, with isotropic
    Gaussian ``noise`` (standard deviation) added; the points lie in about [-1, 1]^2.
    """
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0.0, cycles, size=n)
    radius = (2.0 * pos + 1.0) / 3.0
    points = np.stack([radius * np.sin(2 * np.pi * pos), radius * np.cos(2 * np.pi * pos)], axis=1)
    return (points + noise * rng.normal(size=(n, 2))).astype(np.float32)


def make_circle(n: int = 20_000, *, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Points on the unit circle ``(n, 2)`` plus Gaussian ``noise`` (the authors' ``Circle`` set)."""
    rng = np.random.default_rng(seed)
    angle = 2 * np.pi * rng.uniform(size=n)
    points = np.stack([np.sin(angle), np.cos(angle)], axis=1)
    return (points + noise * rng.normal(size=(n, 2))).astype(np.float32)


def make_mog(
    n: int = 20_000, *, components: int = 8, radius: float = 1.0, std: float = 0.05, seed: int = 0
) -> np.ndarray:
    """A mixture of ``components`` equally weighted isotropic Gaussians (``std``) evenly spaced on a circle."""
    if components < 1:
        raise DataFormatError(field="components", expected="an integer >= 1", found=components)
    rng = np.random.default_rng(seed)
    which = rng.integers(components, size=n)
    angle = 2 * np.pi * which / components
    centres = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return (centres + std * rng.normal(size=(n, 2))).astype(np.float32)


def check_points(points: object, *, where: str = "data") -> np.ndarray:
    """``points`` as a finite float32 ``(n, dim)`` array; :class:`DataFormatError` naming what is wrong."""
    array = np.asarray(points)
    if array.dtype.kind not in "biuf":
        raise DataFormatError(file=where, field="dtype", expected="a numeric array", found=str(array.dtype))
    if array.ndim != 2:
        raise DataFormatError(
            file=where,
            field="shape",
            expected="a 2-d array (samples, features)",
            found=f"{array.ndim}-d array of shape {array.shape}",
        )
    if array.shape[0] < 2 or array.shape[1] < 1:
        raise DataFormatError(
            file=where, field="shape", expected="at least 2 samples and 1 feature", found=str(array.shape)
        )
    array = array.astype(np.float32)
    bad = ~np.isfinite(array)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise DataFormatError(
            file=where,
            field="values",
            expected="finite numbers",
            found=f"{int(bad.sum())} NaN/inf value(s), first in row {row}",
        )
    return array


def load_points(source: str | os.PathLike[str], *, n: int | None = None, seed: int = 0) -> SampleSet:
    """Training data for a generative model by name or file.

    ``"spiral"``, ``"circle"``, ``"mog"``: generated 2-D sets (``n`` points, default 20,000, ``seed``);
    ``"digits"``: scikit-learn's 8x8 digits (1,797 images, [0, 1]); ``"mnist"``: the MNIST images at
    ``../shared/data/mnist-t10k`` (``n`` limits them), scaled to [0, 1]; a ``.npy`` file: a ``(samples,
    features)`` array, or ``(samples, height, width)`` / ``(samples, channels, height, width)`` images that
    are flattened.
    """
    name = os.fspath(source)
    count = 20_000 if n is None else int(n)
    if name in ("spiral", "circle", "mog"):
        maker = {"spiral": make_spiral, "circle": make_circle, "mog": make_mog}[name]
        return SampleSet(maker(count, seed=seed), None, name)
    if name in ("digits", "mnist"):
        from neuromodels.datasets.images import load_digits, load_mnist

        images = load_digits() if name == "digits" else load_mnist(limit=n)
        pixels = np.asarray(images.values, dtype=np.float32) / float(images.attrs["max_value"])
        if n is not None:
            pixels = pixels[:n]
        return SampleSet(pixels.reshape(len(pixels), -1), (1, *pixels.shape[1:]), name)
    path = Path(name)
    if path.suffix != ".npy":
        raise DataFormatError(
            file=name, field="<data>", expected=f"one of {', '.join(POINT_SETS)} or a .npy file", found=repr(name)
        )
    if not path.is_file():
        raise DataFormatError(file=path, field="<data>", expected="an existing .npy file", found="no such file")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataFormatError(file=path, field="<data>", expected="a NumPy .npy array", found=str(err)) from None
    shape: tuple[int, int, int] | None = None
    if array.ndim in (3, 4):
        shape = (1, *array.shape[1:]) if array.ndim == 3 else tuple(array.shape[1:])  # type: ignore[assignment]
        array = array.reshape(len(array), -1)
    points = check_points(array, where=str(path))
    if n is not None:
        points = points[:n]
    return SampleSet(points, shape, str(path))


def split_points(
    data: SampleSet | np.ndarray, *, held_out: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split into ``(train, held_out)`` arrays; ``held_out`` is the fraction held out."""
    points = data.points if isinstance(data, SampleSet) else check_points(data)
    if not 0 < held_out < 1:
        raise DataFormatError(field="held_out", expected="a fraction in (0, 1)", found=held_out)
    order = np.random.default_rng(seed).permutation(len(points))
    n_out = max(1, int(round(held_out * len(points))))
    return points[order[n_out:]], points[order[:n_out]]

"""Training image classifiers through the framework's loop (:func:`neuromodels.fitting.fit`).

Used by the ConvRNNs of :mod:`neuromodels.convrnn` (docs/convrnn.md), their architecture search
(:mod:`neuromodels.fitting.search`) and the saturating networks of :mod:`neuromodels.analysis.robustness`.

* :func:`image_task`: MNIST (``../shared/data/mnist-t10k``) or scikit-learn digits as standardised tensors
  ``(n, 1, y, x)`` float32 (pixel mean 0 and standard deviation 1 over the training split, so that the "mean gray"
  blank of an unrolled ConvRNN is 0) with int64 labels, split into train / valid / test by a seeded permutation;
* :func:`train_classifier`: cross-entropy training with :func:`~neuromodels.fitting.fit` (a callable loss), the
  validation accuracy recorded after every epoch (and reported to an optional ``report(epoch, accuracy)``
  callback, which the architecture search uses for pruning);
* :func:`accuracy`; :func:`match_width`: scale a model's channels to reach a parameter budget (Nayebi et al.
  2018 compare cells at matched parameter counts).

The same code trains on an ImageNet-style folder (``ImageFolderDataset(path)``, decoded on access, from
:mod:`neuromodels.datasets.images`: ``train`` and ``valid`` may be map-style datasets of ``(image, label)``)
and, launched with ``torchrun``, data-parallel: pass ``distributed=True`` (or initialise
``torch.distributed`` before the call) and the loop wraps the model in
``torch.nn.parallel.DistributedDataParallel``, shards every global batch of ``batch_size * world_size`` over
the ranks and keeps the validation, early stopping, history and checkpoints (rank 0) consistent; do not wrap
the model yourself. Tested with 2 gloo ranks on CPU (``tests/fitting/test_distributed.py``); the NCCL/GPU
path has not been run on this project's machines. Command lines: docs/convrnn.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from neuromodels.convrnn.model import count_parameters
from neuromodels.errors import ConfigError
from neuromodels.fitting.loop import fit

__all__ = ["image_task", "train_classifier", "accuracy", "cross_entropy", "match_width"]


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``logits (n, classes)`` against integer ``labels (n,)``."""
    return F.cross_entropy(logits, labels)


def image_task(
    name: str = "digits",
    *,
    n_train: int | None = None,
    n_valid: int = 500,
    n_test: int = 500,
    size: int | None = None,
    seed: int = 0,
    path: Any = None,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Images and labels split into ``train``, ``valid``, ``test`` (each ``(X (n, 1, s, s) float32, y (n,) int64)``).

    ``name``: ``"digits"`` (1,797 images 8 x 8) or ``"mnist"`` (the 10,000 t10k images, 28 x 28, from ``path`` or
    ``../shared/data/mnist-t10k``). ``size``: resize to ``size x size`` (area averaging; ``None`` keeps them).
    ``n_train``: training images (default: all the rest). Pixels are standardised with the training split's
    mean and standard deviation.
    """
    from neuromodels.datasets.images import load_digits, load_mnist

    if name == "digits":
        images = load_digits()
    elif name == "mnist":
        images = load_mnist(path)
    else:
        raise ConfigError(f"image task must be 'digits' or 'mnist', got {name!r}")
    x = torch.as_tensor(np.asarray(images.values, dtype=np.float32))[:, None]
    if images.attrs.get("max_value") == 255:
        x = x / 255.0
    y = torch.as_tensor(np.asarray(images["label"].values, dtype=np.int64))
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="area")
    n = len(x)
    n_train = n - n_valid - n_test if n_train is None else int(n_train)
    if min(n_train, n_valid, n_test) < 1 or n_train + n_valid + n_test > n:
        raise ConfigError(f"cannot split {n} {name} images into n_train={n_train}, n_valid={n_valid}, n_test={n_test}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    parts = {
        "train": order[:n_train],
        "valid": order[n_train : n_train + n_valid],
        "test": order[n_train + n_valid : n_train + n_valid + n_test],
    }
    mean, std = x[parts["train"]].mean(), x[parts["train"]].std()
    return {key: (((x[idx] - mean) / std).contiguous(), y[idx].contiguous()) for key, idx in parts.items()}


@torch.no_grad()
def accuracy(model: torch.nn.Module, data: Any, *, batch_size: int = 512) -> float:
    """Fraction of ``data`` whose arg-max logit is the label (eval mode, no gradients; mode restored).

    ``data``: ``(X, y)`` tensors, or a map-style dataset of ``(image, label)`` items (e.g.
    :class:`neuromodels.datasets.images.ImageDataset` over :func:`~neuromodels.datasets.images.load_image_folder`).
    Batches go to the device of the model's parameters, and floating-point inputs to the dtype of its first
    floating-point parameter (a float64 model scores float32 inputs). The framework's one classification
    accuracy: :func:`neuromodels.analysis.robustness.accuracy` is this function.
    """
    was_training = model.training
    model.eval()
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = next((p.dtype for p in model.parameters() if p.dtype.is_floating_point), None)

    def _inputs(xb: torch.Tensor) -> torch.Tensor:
        xb = torch.as_tensor(xb).to(device)
        return xb.to(dtype) if dtype is not None and xb.is_floating_point() else xb

    try:
        if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(d, torch.Tensor) for d in data):
            x, y = data
            n = len(x)
            batches = ((x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, n, batch_size))
        else:
            n = len(data)
            batches = (
                torch.utils.data.default_collate([data[j] for j in range(i, min(i + batch_size, n))])
                for i in range(0, n, batch_size)
            )
        correct = sum(
            int((model(_inputs(xb)).argmax(-1) == torch.as_tensor(yb).to(device)).sum()) for xb, yb in batches
        )
    finally:
        model.train(was_training)
    return correct / n


def train_classifier(
    model: torch.nn.Module,
    train: Any,
    valid: Any,
    *,
    epochs: int = 5,
    lr: float = 3e-3,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool | None = None,
    report: Callable[[int, float], bool | None] | None = None,
    checkpoint_dir: Any = None,
    **fit_options: Any,
):
    """Train ``model`` (logits ``(batch, classes)``) with cross-entropy through :func:`neuromodels.fitting.fit`.

    ``train``, ``valid``: ``(X, y)`` tensors or map-style datasets of ``(image, label)`` items.
    Returns the loop's :class:`~neuromodels.fitting.loop.History`; every record also holds ``valid_accuracy``.
    ``report(epoch, valid_accuracy)`` is called after every epoch; returning ``True`` stops training (pruning).
    ``progress``: ``None`` (default) shows the loop's bars on a terminal or in a notebook and none in a log.
    Other keywords go to :func:`~neuromodels.fitting.fit` (``patience`` defaults to ``None``: run all epochs),
    e.g. ``device="cuda"`` and ``distributed=True`` under ``torchrun`` (then ``batch_size`` is per rank, every
    rank computes the full validation accuracy and a stop from ``report`` on any rank stops all of them).
    """
    accuracies: list[float] = []

    def record_accuracy(epoch: int, logs: dict[str, float]) -> bool | None:
        accuracies.append(accuracy(model, valid))
        return report(epoch, accuracies[-1]) if report is not None else None

    fit_options.setdefault("patience", None)
    history = fit(
        model,
        train,
        valid,
        loss=cross_entropy,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        progress=progress,
        callbacks=[record_accuracy],
        checkpoint_dir=checkpoint_dir,
        **fit_options,
    )
    for record, value in zip(history.records[len(history.records) - len(accuracies) :], accuracies):
        record["valid_accuracy"] = value
    return history


def match_width(
    build: Callable[[float], torch.nn.Module],
    target: int,
    *,
    low: float = 0.25,
    high: float = 4.0,
    iterations: int = 30,
) -> tuple[torch.nn.Module, float]:
    """The model ``build(width)`` whose trainable parameter count is closest to ``target`` (bisection on width).

    ``build(width)`` must give more parameters for a larger ``width`` (e.g. channels = round(width * base)).
    Returns ``(model, width)``.
    """
    best = None
    lo, hi = float(low), float(high)
    for _ in range(iterations):
        mid = math.sqrt(lo * hi)
        model = build(mid)
        n = count_parameters(model)
        if best is None or abs(n - target) < abs(count_parameters(best[0]) - target):
            best = (model, mid)
        if n < target:
            lo = mid
        elif n > target:
            hi = mid
        else:
            break
    assert best is not None
    return best

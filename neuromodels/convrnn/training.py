"""Training ConvRNNs on image classification through the framework's loop (:func:`neuromodels.fitting.fit`).

* :func:`image_task`: MNIST (``../shared/data/mnist-t10k``) or scikit-learn digits as standardised tensors
  ``(n, 1, y, x)`` float32 (pixel mean 0 and standard deviation 1 over the training split, so that the "mean gray"
  blank of the unrolled model is 0) with int64 labels, split into train / valid / test by a seeded permutation;
* :func:`train_classifier`: cross-entropy training with :func:`~neuromodels.fitting.fit` (a callable loss), the
  validation accuracy recorded after every epoch (and reported to an optional ``report(epoch, accuracy)``
  callback, which the architecture search uses for pruning);
* :func:`accuracy`; :func:`match_width`: scale a model's channels to reach a parameter budget (the paper
  compares cells at matched parameter counts);
* :func:`memory_task_comparison`: the small-scale reproduction of the paper's cell comparison (module
  ``docs/convrnn.md``): MNIST shown for ``image_steps`` steps then removed, read out later, so that the
  answer has to be held in the recurrent state.

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
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from neuromodels.convrnn.cells import MEDIAN_RGC_OPTIONS
from neuromodels.convrnn.model import ConvRNN, LayerSpec, count_parameters
from neuromodels.errors import ConfigError
from neuromodels._figures import save_figure
from neuromodels._reports import write_json

__all__ = ["image_task", "train_classifier", "accuracy", "cross_entropy", "match_width", "memory_task_comparison",
           "MEMORY_TASK_CELLS", "write_memory_task_report"]


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``logits (n, classes)`` against integer ``labels (n,)``."""
    return F.cross_entropy(logits, labels)


def image_task(name: str = "digits", *, n_train: int | None = None, n_valid: int = 500, n_test: int = 500,
               size: int | None = None, seed: int = 0, path: Any = None
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
    parts = {"train": order[:n_train], "valid": order[n_train:n_train + n_valid],
             "test": order[n_train + n_valid:n_train + n_valid + n_test]}
    mean, std = x[parts["train"]].mean(), x[parts["train"]].std()
    return {key: (((x[idx] - mean) / std).contiguous(), y[idx].contiguous()) for key, idx in parts.items()}


@torch.no_grad()
def accuracy(model: torch.nn.Module, data: Any, *, batch_size: int = 512) -> float:
    """Fraction of ``data`` whose arg-max logit is the label (eval mode; mode restored).

    ``data``: ``(X, y)`` tensors, or a map-style dataset of ``(image, label)`` items (e.g.
    :class:`neuromodels.datasets.images.ImageDataset` over :func:`~neuromodels.datasets.images.load_image_folder`).
    Batches go to the device of the model's parameters.
    """
    was_training = model.training
    model.eval()
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    try:
        if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(d, torch.Tensor) for d in data):
            x, y = data
            n = len(x)
            batches = ((x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, n, batch_size))
        else:
            n = len(data)
            batches = (torch.utils.data.default_collate([data[j] for j in range(i, min(i + batch_size, n))])
                       for i in range(0, n, batch_size))
        correct = sum(int((model(xb.to(device)).argmax(-1) == torch.as_tensor(yb).to(device)).sum())
                      for xb, yb in batches)
    finally:
        model.train(was_training)
    return correct / n


def train_classifier(model: torch.nn.Module, train: Any, valid: Any, *, epochs: int = 5, lr: float = 3e-3,
                     batch_size: int = 64, seed: int = 0, progress: bool | None = None,
                     report: Callable[[int, float], bool | None] | None = None,
                     checkpoint_dir: Any = None, **fit_options: Any):
    """Train ``model`` (logits ``(batch, classes)``) with cross-entropy through :func:`neuromodels.fitting.fit`.

    ``train``, ``valid``: ``(X, y)`` tensors or map-style datasets of ``(image, label)`` items.
    Returns the loop's :class:`~neuromodels.fitting.loop.History`; every record also holds ``valid_accuracy``.
    ``report(epoch, valid_accuracy)`` is called after every epoch; returning ``True`` stops training (pruning).
    ``progress``: ``None`` (default) shows the loop's bars on a terminal or in a notebook and none in a log.
    Other keywords go to :func:`~neuromodels.fitting.fit` (``patience`` defaults to ``None``: run all epochs),
    e.g. ``device="cuda"`` and ``distributed=True`` under ``torchrun`` (then ``batch_size`` is per rank, every
    rank computes the full validation accuracy and a stop from ``report`` on any rank stops all of them).
    """
    from neuromodels.fitting import fit

    accuracies: list[float] = []

    def record_accuracy(epoch: int, logs: dict[str, float]) -> bool | None:
        accuracies.append(accuracy(model, valid))
        return report(epoch, accuracies[-1]) if report is not None else None

    fit_options.setdefault("patience", None)
    history = fit(model, train, valid, loss=cross_entropy, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                  progress=progress, callbacks=[record_accuracy], checkpoint_dir=checkpoint_dir, **fit_options)
    for record, value in zip(history.records[len(history.records) - len(accuracies):], accuracies):
        record["valid_accuracy"] = value
    return history


def match_width(build: Callable[[float], torch.nn.Module], target: int, *, low: float = 0.25,
                high: float = 4.0, iterations: int = 30) -> tuple[torch.nn.Module, float]:
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


# ----------------------------------------------------------------------------------------- the reproduction
# "rgc_median": the authors' searched median RGC (cells.MEDIAN_RGC_OPTIONS) with its bypass on and c as wide as h
MEMORY_TASK_CELLS = ("feedforward", "vanilla", "lstm", "time_decay", "rgc", "rgc_median")


def _memory_task_model(cell: str, width: float, base_channels: Sequence[int], steps: int, image_steps: int,
                       readout_step: int | None = None) -> ConvRNN:
    channels = [max(1, int(round(width * c))) for c in base_channels]
    pools = [2, 2] + [1] * (len(channels) - 2)
    if cell == "rgc_median":
        layers = [LayerSpec(c, 3, p, cell_options={**MEDIAN_RGC_OPTIONS, "cell_channels": c}, bypass=True)
                  for c, p in zip(channels, pools)]
        cell = "rgc"
    else:
        layers = [LayerSpec(c, 3, p) for c, p in zip(channels, pools)]
    return ConvRNN(layers, cell=cell, steps=steps, image_steps=image_steps, readout_step=readout_step,
                   num_classes=10)


def memory_task_comparison(*, cells: Sequence[str] = MEMORY_TASK_CELLS, seeds: Sequence[int] = (0, 1, 2),
                           base_channels: Sequence[int] = (8, 16, 16), image_steps: int = 2, steps: int = 5,
                           n_train: int = 2000, n_valid: int = 500, n_test: int = 1000, size: int = 14,
                           epochs: int = 3, lr: float = 3e-3, batch_size: int = 64, dataset: str = "mnist",
                           path: Any = None, progress: bool = False) -> dict[str, Any]:
    """Accuracy of equal-depth models with different cells at matched parameter counts on a memory task.

    Task: an MNIST digit (resized to ``size``) is shown for ``image_steps`` steps, then mean gray; the readout
    classifies the top layer at the last step ``steps - 1``. With ``steps - 1 - (depth - 1) >= image_steps`` the
    feedforward network only sees gray at readout time (chance by construction), so it is also reported read out
    at step ``depth - 1`` (image still on): ``feedforward@image``, the no-memory reference.

    ``cells``: keys of :data:`~neuromodels.convrnn.cells.CELLS` and ``"rgc_median"``, the authors' searched median
    RGC (:data:`~neuromodels.convrnn.cells.MEDIAN_RGC_OPTIONS`, bypass on, ``cell_channels`` = the layer's
    channels). Parameter counts are matched to the RGC model built from ``base_channels`` by scaling every cell
    type's channels (:func:`match_width`). Returns ``{"table": {cell: {"mean", "sem", "accuracies", "parameters",
    "channels"}}, "settings": {...}}`` with test accuracies.
    """
    data = image_task(dataset, n_train=n_train, n_valid=n_valid, n_test=n_test, size=size, seed=1234, path=path)
    depth = len(base_channels)
    target = count_parameters(_memory_task_model("rgc", 1.0, base_channels, steps, image_steps))
    variants = [(cell, cell, None) for cell in cells]
    if "feedforward" in cells:
        variants.append(("feedforward@image", "feedforward", min(depth - 1, image_steps + depth - 2)))
    table: dict[str, Any] = {}
    for label, cell, readout in variants:
        accs, n_params, channels = [], 0, []
        for seed in seeds:
            torch.manual_seed(seed)
            model, width = match_width(
                lambda w, c=cell, r=readout: _memory_task_model(c, w, base_channels, steps, image_steps, r), target)
            torch.manual_seed(seed)
            model = _memory_task_model(cell, width, base_channels, steps, image_steps, readout)
            n_params = count_parameters(model)
            channels = [layer.channels for layer in model.layers]
            train_classifier(model, data["train"], data["valid"], epochs=epochs, lr=lr, batch_size=batch_size,
                             seed=seed, progress=progress)
            accs.append(accuracy(model, data["test"]))
        values = np.asarray(accs)
        table[label] = {"mean": float(values.mean()),
                        "sem": float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan,
                        "accuracies": [float(a) for a in accs], "parameters": int(n_params), "channels": channels}
    settings = {"dataset": dataset, "size": size, "image_steps": image_steps, "steps": steps,
                "readout_step": steps - 1, "base_channels": list(base_channels), "target_parameters": int(target),
                "n_train": n_train, "n_valid": n_valid, "n_test": n_test, "epochs": epochs, "lr": lr,
                "batch_size": batch_size, "seeds": list(seeds)}
    return {"table": table, "settings": settings}


def write_memory_task_report(result: dict[str, Any], out: Any) -> dict[str, str]:
    """Write ``convrnn_memory_task.json`` (table + settings) and ``convrnn_memory_task.png`` (bar chart with
    s.e.m. error bars) into the folder ``out``, atomically. Returns ``{"json": path, "png": path}``."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "convrnn_memory_task.json", "png": out / "convrnn_memory_task.png"}
    write_json(paths["json"], result)
    labels = list(result["table"])
    means = [result["table"][k]["mean"] for k in labels]
    sems = [result["table"][k]["sem"] for k in labels]
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    colors = ["0.6" if k.startswith("feedforward") else "C3" if k.startswith("rgc") else "C0" for k in labels]
    ax.bar(range(len(labels)), means, yerr=sems, color=colors, capsize=4)
    for i, k in enumerate(labels):
        ax.plot([i] * len(result["table"][k]["accuracies"]), result["table"][k]["accuracies"], "k.", ms=4)
    ax.axhline(0.1, color="k", lw=0.8, ls=":", label="chance")
    ax.set_xticks(range(len(labels)), [f"{k}\n{result['table'][k]['parameters']} par." for k in labels], fontsize=7)
    st = result["settings"]
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{st['dataset']} {st['size']}px shown {st['image_steps']} of {st['steps']} steps, "
                 f"read out at step {st['readout_step']}", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, paths["png"])
    return {k: str(v) for k, v in paths.items()}

"""Trainability experiments on MNIST: the ``6 xi_c`` depth limit and orthogonal vs Gaussian vs ReLU speed.

* :func:`trainability_grid` (Schoenholz et al. 2017, arXiv:1611.01232, sec. 7, Fig. 5): train tanh MLPs of
  width ``width`` and depth ``L`` initialised at ``(sigma_w2, sigma_b2)`` for a fixed number of steps, and record
  test accuracy over the ``(sigma_w2, L)`` grid; the paper finds networks trainable iff ``L <~ 6 xi_c``.
* :func:`learning_speed` (Pennington, Schoenholz, Ganguli 2017, arXiv:1711.04735, sec. 4, Fig. 4): deep networks
  with orthogonal tanh weights at the critical point with small ``q*`` (dynamical isometry) against Gaussian
  tanh at the same point and critical ReLU (``sigma_w2 = 2``), test accuracy against training steps.

Both use the framework's training loop (:func:`neuromodels.fitting.fit`, Adam; the papers used SGD and
RMSProp, see docs/theory.md) on the MNIST test set (``t10k``: the training images are not in the shared data),
split into train and test parts. Inputs are standardised over all pixels, so that ``|x|^2 / 784 = 1`` on
average. The read-out ``Linear(width, 10)`` is initialised like the hidden layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from neuromodels.errors import ConfigError

__all__ = ["mnist_tensors", "deep_mlp", "train_and_score", "trainability_grid", "learning_speed"]


def mnist_tensors(n_train: int = 6000, n_test: int = 2000, path: Any = None, seed: int = 0) -> tuple[Any, ...]:
    """``(x_train, y_train, x_test, y_test)``: standardised float32 ``(n, 784)`` images and int64 labels."""
    import torch

    from neuromodels.datasets.images import load_mnist

    images = load_mnist(path)
    x = np.asarray(images.values, dtype=np.float32).reshape(images.shape[0], -1)
    y = np.asarray(images["label"].values, dtype=np.int64)
    if n_train + n_test > len(x):
        raise ConfigError(f"n_train + n_test must be <= {len(x)} images, got {n_train} + {n_test}")
    order = np.random.default_rng(seed).permutation(len(x))
    x = (x - x.mean()) / x.std()
    train, test = order[:n_train], order[n_train : n_train + n_test]
    return (
        torch.from_numpy(x[train]),
        torch.from_numpy(y[train]),
        torch.from_numpy(x[test]),
        torch.from_numpy(y[test]),
    )


def deep_mlp(
    depth: int,
    width: int,
    sigma_w2: float,
    sigma_b2: float,
    phi: str = "tanh",
    *,
    weights: str = "gaussian",
    input_dim: int = 784,
    n_classes: int = 10,
    seed: int = 0,
) -> Any:
    """``input_dim -> width`` then ``depth - 1`` hidden ``width -> width`` layers, each followed by ``phi``,
    then a linear read-out to ``n_classes`` logits, in float32 and train mode:
    :func:`neuromodels.init.random_mlp` with ``readout=n_classes``, all layers drawn by its one generator."""
    import torch

    from neuromodels.init import random_mlp

    if depth < 1 or width < 1:
        raise ConfigError(f"depth and width must be >= 1, got {depth}, {width}")
    model = random_mlp(
        width,
        depth,
        sigma_w2,
        sigma_b2,
        phi,
        weights=weights,
        input_dim=input_dim,
        readout=n_classes,
        seed=seed,
        dtype=torch.float32,
    )
    return model.train()


def _accuracy(model: Any, x: Any, y: Any) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        out = model(x)
    model.train()
    if not torch.isfinite(out).all():
        return float("nan")
    return float((out.argmax(1) == y).float().mean())


def train_and_score(
    model: Any,
    data: tuple[Any, ...],
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    eval_every_epoch: bool = False,
) -> dict[str, Any]:
    """Train ``model`` with :func:`neuromodels.fitting.fit` (cross-entropy, Adam, no early stopping) and return
    ``{"accuracy", "accuracies" (per epoch if asked), "train_loss" (per epoch)}``."""
    import torch

    from neuromodels.fitting.loop import fit

    x_train, y_train, x_test, y_test = data
    accuracies: list[float] = []

    def record(epoch: int, logs: dict[str, float]) -> None:
        if eval_every_epoch:
            accuracies.append(_accuracy(model, x_test, y_test))

    if eval_every_epoch:
        accuracies.append(_accuracy(model, x_test, y_test))
    history = fit(
        model,
        (x_train, y_train),
        None,
        loss=lambda out, target: torch.nn.functional.cross_entropy(out, target),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        patience=None,
        restore_best=False,
        seed=seed,
        progress=False,
        callbacks=[record],
        lr_patience=10**6,
    )
    return {
        "accuracy": _accuracy(model, x_test, y_test),
        "accuracies": accuracies,
        "train_loss": list(history["train_loss"]),
    }


def trainability_grid(
    sigma_w2_values: Sequence[float],
    depths: Sequence[int],
    *,
    sigma_b2: float = 0.05,
    width: int = 100,
    epochs: int = 2,
    n_train: int = 6000,
    n_test: int = 2000,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    data: Any = None,
    progress: bool = True,
) -> Any:
    """Test accuracy of tanh MLPs over ``(depth, sigma_w2)`` after ``epochs`` passes, with ``xi_c`` from mean field.

    Returns an ``xarray.Dataset`` with ``accuracy(depth, sigma_w2)``, ``xi_c(sigma_w2)``, ``six_xi_c(sigma_w2)``
    and attributes holding every parameter and the number of optimisation steps.
    """
    import torch
    import xarray as xr
    from tqdm.auto import tqdm

    from neuromodels.analysis.theory.meanfield import depth_scales

    data = data if data is not None else mnist_tensors(n_train, n_test, seed=seed)
    sw = np.asarray(sigma_w2_values, dtype=float)
    ds_ = np.asarray(depths, dtype=int)
    accuracy = np.full((ds_.size, sw.size), np.nan)
    jobs = [(i, j) for i in range(ds_.size) for j in range(sw.size)]
    bar = tqdm(jobs, disable=None if progress else True, desc="trainability")
    for i, j in bar:
        torch.manual_seed(seed)
        model = deep_mlp(int(ds_[i]), width, float(sw[j]), sigma_b2, "tanh", seed=seed + 7919 * i + 31 * j)
        accuracy[i, j] = train_and_score(model, data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)[
            "accuracy"
        ]
    xi_c = np.asarray(depth_scales(sw, sigma_b2, "tanh")["xi_c"], dtype=float)
    steps = epochs * int(np.ceil(len(data[0]) / batch_size))
    return xr.Dataset(
        {"accuracy": (("depth", "sigma_w2"), accuracy), "xi_c": ("sigma_w2", xi_c), "six_xi_c": ("sigma_w2", 6 * xi_c)},
        coords={"depth": ds_, "sigma_w2": sw},
        attrs={
            "sigma_b2": sigma_b2,
            "width": width,
            "epochs": epochs,
            "steps": steps,
            "batch_size": batch_size,
            "lr": lr,
            "optimizer": "adam",
            "n_train": len(data[0]),
            "n_test": len(data[2]),
            "seed": seed,
            "phi": "tanh",
            "weights": "gaussian",
            "data": "MNIST t10k",
        },
    )


def learning_speed(
    depth: int = 50,
    width: int = 200,
    *,
    q_star: float = 1e-2,
    epochs: int = 10,
    n_train: int = 2000,
    n_test: int = 2000,
    batch_size: int = 50,
    lr: float = 1e-3,
    seed: int = 0,
    data: Any = None,
    progress: bool = True,
) -> Any:
    """Test accuracy per epoch of three critical initialisations of a depth-``depth`` MLP.

    ``orthogonal tanh`` and ``gaussian tanh`` at the tanh critical point with fixed point ``q_star``;
    ``gaussian relu`` at ``sigma_w2 = 2, sigma_b2 = 0`` (He initialisation, critical for ReLU). Returns an
    ``xarray.Dataset`` ``accuracy(network, epoch)`` (epoch 0 = before training), ``train_loss(network, epoch)``.
    """
    import torch
    import xarray as xr
    from tqdm.auto import tqdm

    from neuromodels.init import critical_parameters

    data = data if data is not None else mnist_tensors(n_train, n_test, seed=seed)
    sw_t, sb_t = critical_parameters(q_star, "tanh")
    configs = {
        "orthogonal tanh": ("tanh", "orthogonal", sw_t, sb_t),
        "gaussian tanh": ("tanh", "gaussian", sw_t, sb_t),
        "gaussian relu": ("relu", "gaussian", 2.0, 0.0),
    }
    acc = np.full((len(configs), epochs + 1), np.nan)
    loss = np.full((len(configs), epochs + 1), np.nan)
    for k, (_name, (phi, weights, sw, sb)) in enumerate(
        tqdm(configs.items(), disable=None if progress else True, desc="learning speed")
    ):
        torch.manual_seed(seed)
        model = deep_mlp(depth, width, sw, sb, phi, weights=weights, seed=seed)
        result = train_and_score(
            model, data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, eval_every_epoch=True
        )
        acc[k, : len(result["accuracies"])] = result["accuracies"]
        loss[k, 1 : 1 + len(result["train_loss"])] = result["train_loss"]
    steps_per_epoch = int(np.ceil(len(data[0]) / batch_size))
    return xr.Dataset(
        {"accuracy": (("network", "epoch"), acc), "train_loss": (("network", "epoch"), loss)},
        coords={
            "network": list(configs),
            "epoch": np.arange(epochs + 1),
            "step": ("epoch", np.arange(epochs + 1) * steps_per_epoch),
        },
        attrs={
            "depth": depth,
            "width": width,
            "q_star": q_star,
            "tanh_sigma_w2": sw_t,
            "tanh_sigma_b2": sb_t,
            "relu_sigma_w2": 2.0,
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "optimizer": "adam",
            "n_train": len(data[0]),
            "n_test": len(data[2]),
            "seed": seed,
            "data": "MNIST t10k",
        },
    )

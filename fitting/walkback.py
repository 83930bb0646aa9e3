"""Training a Variational Walkback operator: the paper's Algorithm 1, with the framework's seeds and checkpoints.

Algorithm 1 ("Variational Walkback(theta)") of Goyal et al. (2017, arXiv:1711.02282), as
:func:`walkback_update` runs it on a minibatch. The algorithm's lines could not be read here (only its title and
that it monitors the bound ``L`` on a validation set, which :func:`train_walkback` does every epoch); the steps
follow issue 16's description and the authors' code (``train_spiral_online.py`` docstring, lines 1-7: "iterate
over temperatures ... sample s(t+1) from P(next s | previous s = s(t)) ... update parameters to maximize
P(next s = s(t) | previous s = s(t+1))")::

    s_0 <- x (a data batch)
    for t = 1..K on the schedule T_t (steps_at_one steps at T = 1, then T <- factor * T, capped at T_max):
        s_t ~ p_{T_t}(. | s_{t-1})                          (sampled, then held constant: no gradient)
        theta <- theta + lr * grad_theta log p_{T_t}(s_{t-1} | s_t)     (an online update at every step)

``online=False`` accumulates the K steps' gradients and updates once per batch (the released spiral script,
``train_spiral_online.py`` lines 313-326, whose ``compute_loss`` sums the K terms before one Adam step);
the authors' README reports that online updates worked better. ``objective="released"`` swaps the per-step
term for the released code's (:func:`neuromodels.walkback.step_log_likelihood`).

:func:`train_walkback` runs epochs of this over shuffled batches (order from ``(seed, epoch)``, noise from one
``torch.Generator`` seeded by ``seed`` and saved in every checkpoint), refits ``p_0`` to heated training states
after each epoch, logs the variational bound on training and held-out data, and writes an atomic checkpoint
(:func:`~neuromodels.fitting.checkpoint.save_checkpoint`) after each epoch; rerunning with the same
``checkpoint_dir`` resumes exactly (``torch.equal`` weights with an uninterrupted run).

``ema`` (our addition, in neither the paper nor the authors' code): an exponential moving average of the
operator's weights over the online updates (Polyak averaging, as diffusion models use for sampling: Ho et al.
2020's code, ``hojonathanho/diffusion``, ``diffusion_tf/tpu_utils/tpu_utils.py``: ``run_training`` keeps an
average with ``ema_decay=0.9999`` and the evaluation samples with it), kept by the framework's weight average
(:func:`neuromodels.fitting.loop.fit`'s ``average_decay``). Training itself is unchanged (the updates act on the
current weights); ``p_0``, the logged bound and the returned model use the averaged weights. ``ema=None`` trains
and returns exactly what it did before the option existed.
"""

from __future__ import annotations

import math
import os
import time as _time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuromodels.errors import ConfigError
from neuromodels.fitting.checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint, save_checkpoint
from neuromodels.fitting.loop import History, WeightAverage, epoch_order, progress_disable
from neuromodels.walkback import OBJECTIVES, TransitionOperator, step_log_likelihood, variational_bound

__all__ = [
    "walkback_update",
    "train_walkback",
    "train_diffusion",
    "WalkbackFit",
    "save_walkback_model",
    "load_walkback_model",
    "MODEL_FORMAT",
]

CHECKPOINT_FORMAT = "neuromodels.walkback/1"
MODEL_FORMAT = "neuromodels.walkback-model/1"


@dataclass
class WalkbackFit:
    """What :func:`train_walkback` returns: the trained ``model`` and its per-epoch ``history``
    (``train_objective``: mean per-example objective per step; ``train_bound``/``valid_bound``: the variational
    bound in nats per example; ``seconds``)."""

    model: TransitionOperator
    history: History


def walkback_update(
    model: TransitionOperator,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    *,
    objective: str = "paper",
    online: bool = True,
    generator: torch.Generator | None = None,
) -> dict[str, Any]:
    """One heating walk of Algorithm 1 on the batch ``x`` ``(batch, dim)`` with its parameter updates.

    Returns ``objective`` (the mean over steps of the batch-mean term), ``temperatures`` (the ``T_t`` used,
    in order), ``updates`` (optimizer steps taken) and ``heated`` (``s_K``, detached).
    """
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    state, total, used, updates = x, 0.0, [], 0
    if not online:
        optimizer.zero_grad(set_to_none=True)
    for step, temperature in enumerate(model.schedule):
        following = model.sample_step(state, temperature, step, generator)
        term = step_log_likelihood(model, state, following, temperature, step, objective).mean()
        if online:
            optimizer.zero_grad(set_to_none=True)
            (-term).backward()
            optimizer.step()
            updates += 1
        else:
            (-term / model.n_steps).backward()
        total += float(term.detach())
        used.append(temperature)
        state = following
    if not online:
        optimizer.step()
        updates += 1
    return {"objective": total / model.n_steps, "temperatures": used, "updates": updates, "heated": state}


@torch.no_grad()
def _refit_p0(model: TransitionOperator, points: torch.Tensor, generator: torch.Generator) -> None:
    model.fit_p0(model.heat(points, generator)[-1])


@torch.no_grad()
def _mean_bound(model: TransitionOperator, points: torch.Tensor, generator: torch.Generator, batch_size: int) -> float:
    values = [variational_bound(model, chunk, generator=generator) for chunk in torch.split(points, batch_size)]
    return float(torch.cat(values).mean())


def _subset(points: torch.Tensor, limit: int) -> torch.Tensor:
    # a fixed, evenly spread subset (no RNG): the bound is logged on the same points every epoch
    if len(points) <= limit:
        return points
    return points[torch.linspace(0, len(points) - 1, limit).long()]


def _as_points(data: Any, name: str, dim: int) -> torch.Tensor:
    from neuromodels.datasets.generative import check_points

    array = check_points(data.numpy() if isinstance(data, torch.Tensor) else data, where=name)
    if array.shape[1] != dim:
        raise ConfigError(f"{name} has {array.shape[1]} features but the operator has dim={dim}")
    return torch.from_numpy(np.ascontiguousarray(array))


def train_walkback(
    model: TransitionOperator,
    train: Any,
    valid: Any | None = None,
    *,
    epochs: int = 10,
    batch_size: int = 100,
    lr: float = 1e-4,
    lr_decay: float = 1.0,
    objective: str = "paper",
    online: bool = True,
    seed: int = 0,
    bound_points: int = 2000,
    progress: bool | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    ema: float | None = None,
) -> WalkbackFit:
    """Train ``model`` on ``train`` ``(n, dim)`` by Algorithm 1 with Adam, ``epochs`` passes; epoch ``e``
    (0-based) uses the learning rate ``lr * lr_decay**e`` (the authors decay theirs towards 1e-5).

    ``valid``: held-out points whose bound is logged each epoch (``bound_points`` of them at most, the same
    points every epoch). ``checkpoint_dir``: write ``checkpoint.pt`` there after every epoch and, with
    ``resume``, continue from it. ``ema``: keep an exponential moving average of the weights with this decay
    per optimizer step (bias-corrected, as ``fit``'s ``average_decay``), refit ``p_0`` and log the bound with
    it, and return the model holding the averaged weights (module docstring); ``None``: no average. Raises
    :class:`ConfigError` for bad settings, :class:`DataFormatError` for data with NaN or the wrong rank.
    """
    _check_settings(epochs, batch_size, bound_points, lr, lr_decay, objective)
    if ema is not None and (isinstance(ema, bool) or not 0.0 < ema < 1.0):
        raise ConfigError(f"ema must be in (0, 1) or None, got {ema!r}")
    train_points = _as_points(train, "train", model.dim)
    valid_points = None if valid is None else _as_points(valid, "valid", model.dim)
    settings = {
        "seed": int(seed),
        "batch_size": int(batch_size),
        "objective": objective,
        "online": bool(online),
        "n_train": len(train_points),
        "lr": float(lr),
        "lr_decay": float(lr_decay),
        "model": model.config(),
        "ema": None if ema is None else float(ema),
    }
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(int(seed))
    # the averaged operator generates and is evaluated; every optimizer step of Algorithm 1 updates the average
    averaged = None if ema is None else WeightAverage(model, ema)
    scored = model if averaged is None else averaged.model
    checkpoint_path = None if checkpoint_dir is None else Path(checkpoint_dir) / CHECKPOINT_NAME
    history, start_epoch = _resume(checkpoint_path, resume, settings, model, optimizer, generator, averaged)

    from tqdm.auto import tqdm

    epoch_disable, batch_disable = progress_disable(progress)
    bound_train, bound_valid = _subset(train_points, bound_points), None
    if valid_points is not None:
        bound_valid = _subset(valid_points, bound_points)
    epoch_bar = tqdm(
        range(start_epoch, max(epochs, start_epoch)),
        initial=start_epoch,
        total=max(epochs, start_epoch),
        disable=epoch_disable,
        desc="walkback epochs",
        unit="epoch",
    )
    hook = None if averaged is None else optimizer.register_step_post_hook(lambda *_: averaged.update(model))
    try:
        for epoch in epoch_bar:
            started = _time.perf_counter()
            lr_epoch = lr * lr_decay**epoch
            total = _train_epoch(
                model,
                optimizer,
                train_points,
                epoch,
                seed,
                lr_epoch,
                batch_size,
                objective,
                online,
                generator,
                batch_disable,
            )
            model.eval()
            scored.eval()
            _refit_p0(scored, _subset(train_points, max(bound_points, 5000)), generator)
            record = _epoch_record(
                scored, epoch, total / len(train_points), bound_train, bound_valid, generator, batch_size
            )
            record["seconds"] = _time.perf_counter() - started
            history.records.append(record)
            epoch_bar.set_postfix(bound=f"{record.get('valid_bound', record['train_bound']):.3f}")
            if checkpoint_path is not None:
                _save(checkpoint_path, settings, model, optimizer, generator, epoch + 1, history, averaged)
    finally:
        if hook is not None:
            hook.remove()
    if averaged is not None:
        model.load_state_dict(averaged.model.state_dict())
    model.eval()
    return WalkbackFit(model=model, history=history)


def _check_settings(epochs: Any, batch_size: Any, bound_points: Any, lr: Any, lr_decay: Any, objective: Any) -> None:
    for name, value, low in (("epochs", epochs, 0), ("batch_size", batch_size, 1), ("bound_points", bound_points, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ConfigError(f"lr must be a positive number, got {lr!r}")
    if not 0 < lr_decay <= 1:
        raise ConfigError(f"lr_decay must be in (0, 1], got {lr_decay!r}")
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {OBJECTIVES}, got {objective!r}")


def _resume(
    checkpoint_path: Path | None,
    resume: bool,
    settings: dict[str, Any],
    model: TransitionOperator,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    averaged: WeightAverage | None = None,
) -> tuple[History, int]:
    """The history so far and the epoch to start from; a resume restores the model, Adam, the generator and the
    weight average."""
    history, start_epoch = History(), 0
    if checkpoint_path is not None and resume and checkpoint_path.is_file():
        state = load_checkpoint(checkpoint_path)
        _check_compatible(state, settings, checkpoint_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        if averaged is not None:
            averaged.load_state_dict(state["average"])
        start_epoch = int(state["epoch"])
        history = History(records=[dict(r) for r in state["history"]], resumed_from_epoch=start_epoch)
    return history, start_epoch


def _train_epoch(
    model: TransitionOperator,
    optimizer: torch.optim.Optimizer,
    train_points: torch.Tensor,
    epoch: int,
    seed: int,
    lr: float,
    batch_size: int,
    objective: str,
    online: bool,
    generator: torch.Generator,
    batch_disable: bool | None,
) -> float:
    """One pass of Algorithm 1 over ``train_points`` in the epoch's seeded order at learning rate ``lr``; return
    the sum over batches of the objective times the batch size."""
    from tqdm.auto import tqdm

    model.train()
    order = epoch_order(len(train_points), seed, epoch)
    for group in optimizer.param_groups:
        group["lr"] = lr
    total = 0.0
    for chunk in tqdm(
        torch.split(order, batch_size),
        total=math.ceil(len(train_points) / batch_size),
        disable=batch_disable,
        leave=False,
        desc=f"epoch {epoch + 1}",
        unit="batch",
    ):
        total += walkback_update(
            model, optimizer, train_points[chunk], objective=objective, online=online, generator=generator
        )["objective"] * len(chunk)
    return total


def _epoch_record(
    model: TransitionOperator,
    epoch: int,
    train_objective: float,
    bound_train: torch.Tensor,
    bound_valid: torch.Tensor | None,
    generator: torch.Generator,
    batch_size: int,
) -> dict[str, Any]:
    """The epoch's history record: its mean objective and the variational bound on the fixed train (and valid)
    points."""
    record = {
        "epoch": epoch + 1,
        "train_objective": train_objective,
        "train_bound": _mean_bound(model, bound_train, generator, batch_size),
    }
    if bound_valid is not None:
        record["valid_bound"] = _mean_bound(model, bound_valid, generator, batch_size)
    return record


def _save(
    checkpoint_path: Path,
    settings: dict[str, Any],
    model: TransitionOperator,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    epochs_done: int,
    history: History,
    averaged: WeightAverage | None = None,
) -> None:
    state = {
        "format": CHECKPOINT_FORMAT,
        "settings": settings,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        "epoch": epochs_done,
        "history": history.records,
    }
    if averaged is not None:
        state["average"] = averaged.state_dict()
    save_checkpoint(state, checkpoint_path)


def _check_compatible(state: dict[str, Any], settings: dict[str, Any], path: Path) -> None:
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a Variational Walkback checkpoint (format {state.get('format')!r})")
    saved = state.get("settings", {})
    for key, value in settings.items():
        if saved.get(key) != value:
            raise CheckpointError(
                f"{path}: checkpoint was written with {key}={saved.get(key)!r}, this run has "
                f"{value!r}; use another checkpoint folder or resume=False"
            )


def save_walkback_model(
    model: TransitionOperator, path: str | os.PathLike[str], extra: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` (config, weights, ``p_0``) atomically as a ``weights_only``-loadable file."""
    return save_checkpoint(
        {"format": MODEL_FORMAT, "config": model.config(), "state": model.state_dict(), **(extra or {})}, path
    )


def load_walkback_model(path: str | os.PathLike[str]) -> TransitionOperator:
    """Read a file written by :func:`save_walkback_model`; :class:`CheckpointError` for any other file."""
    state = load_checkpoint(path)
    if state.get("format") != MODEL_FORMAT:
        raise CheckpointError(
            f"{path}: not a Variational Walkback model (format {state.get('format')!r}); "
            f"pass the model.pt written by `neuromodels walkback train`"
        )
    model = TransitionOperator(**state["config"])
    model.load_state_dict(state["state"])
    return model.eval()


def train_diffusion(
    model: Any,
    train: Any,
    *,
    epochs: int = 10,
    batch_size: int = 100,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool | None = None,
) -> History:
    """Train the diffusion baseline (:class:`neuromodels.diffusion.DiffusionMLP`) with Adam on Ho et al.'s
    simple loss, over the same shuffled batches and seeds as :func:`train_walkback`; one record per epoch
    (``train_loss``, ``seconds``)."""
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    points = _as_points(train, "train", model.dim)
    model.fit_scaling(points)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(int(seed))
    history = History()
    from tqdm.auto import tqdm

    epoch_disable, _ = progress_disable(progress)
    model.train()
    for epoch in tqdm(range(epochs), disable=epoch_disable, desc="diffusion epochs", unit="epoch"):
        started, total = _time.perf_counter(), 0.0
        for chunk in torch.split(epoch_order(len(points), seed, epoch), batch_size):
            loss = model.loss(points[chunk], generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(chunk)
        history.records.append(
            {"epoch": epoch + 1, "train_loss": total / len(points), "seconds": _time.perf_counter() - started}
        )
    model.eval()
    return history

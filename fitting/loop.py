"""The framework's one gradient training loop: :func:`fit`.

Every autograd model of neuromodels trains through :func:`fit`: Adam, a ``ReduceLROnPlateau`` schedule on
the held-out loss, early stopping with patience (restoring the best weights), a seed that makes CPU runs
bit-for-bit repeatable, a tqdm progress bar, a per-epoch :class:`History`, atomic checkpoints after every
epoch and exact resume. Regularisers that depend on the training trajectory plug in through
:class:`~neuromodels.fitting.losses.Regulariser` hooks instead of forking the loop.

Data: ``train`` and ``valid`` are map-style datasets whose items are ``(inputs, target)``, where ``inputs``
is a tensor or a tuple of tensors passed to ``model(*inputs)``. A dataset with a ``batch(indices)`` method
(such as :class:`~neuromodels.fitting.retina_data.RetinaDataset`) is asked for whole batches at once;
otherwise items are fetched one by one and collated. A pair of tensors ``(X, Y)`` is also accepted.

Determinism: with a fixed ``seed`` two runs on the same machine and thread count give identical weights.
The shuffling order of epoch ``e`` comes from a generator seeded by ``(seed, e)``, and the global torch RNG
(noise layers, dropout) is seeded once and saved in every checkpoint, so a resumed run draws the same
numbers as an uninterrupted one and ends at the same weights (``torch.equal``).

Data parallelism (``torchrun``): when ``torch.distributed`` is initialised with more than one process (or
``distributed=True`` under ``torchrun``, which then initialises it: NCCL on CUDA, gloo on CPU), every rank
runs :func:`fit` on the same data and seed. The model is wrapped in
``torch.nn.parallel.DistributedDataParallel``; every epoch's order (identical on all ranks, seeded by
``(seed, epoch)``) is cut into global batches of ``batch_size * world_size`` samples and each rank takes its
own disjoint part of each (``torch.tensor_split``). Each rank's objective is weighted by
``n_rank * world_size / n_global`` before the gradient all-reduce (which averages), so with a loss that is a
mean over samples the update equals the single-process update with batch ``batch_size * world_size``, up to
floating-point rounding, the last (short) global batch included. Every rank evaluates the whole validation
set; the epoch's numbers are then broadcast from rank 0, so early stopping, the learning-rate schedule,
``restore_best`` and the returned :class:`History` are identical on all ranks. The global RNG of rank ``k`` is
seeded with :func:`rank_seed` ``(seed, k)``, so dropout masks and noise differ across ranks (the weights stay in
sync through the all-reduce). Only rank 0 writes checkpoints (with every rank's RNG state) and shows progress
bars; ``checkpoint_dir`` must be on a file system every rank can read (to resume).
"""

from __future__ import annotations

import math
import os
import sys
import time as _time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from neuromodels.errors import ConfigError
from neuromodels.fitting.checkpoint import (
    CHECKPOINT_NAME,
    CheckpointError,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from neuromodels.fitting.losses import Regulariser, get_loss

__all__ = [
    "fit",
    "History",
    "WeightAverage",
    "TensorPairs",
    "predict",
    "pearson_per_cell",
    "rank_seed",
    "epoch_order",
    "progress_disable",
]

CHECKPOINT_FORMAT = "neuromodels.fit/1"


# ------------------------------------------------------------------------------------------------------ history
@dataclass
class History:
    """Per-epoch record of a training run.

    ``records``: one dict per completed epoch with ``epoch`` (1-based), ``train_loss`` (data loss, mean over
    samples), ``train_penalty`` (regularisation terms), ``valid_loss``, ``valid_cc`` (mean over cells of
    the Pearson r between output and target on the validation set), ``lr`` and ``seconds``.
    ``best_epoch``: the epoch whose weights the model holds at the end; ``stopped_early``: patience ran out.
    """

    records: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    resumed_from_epoch: int = 0

    def __getitem__(self, key: str) -> list[float]:
        return [record.get(key, math.nan) for record in self.records]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def keys(self) -> list[str]:
        names: list[str] = []
        for record in self.records:
            names += [k for k in record if k not in names]
        return names

    def as_dict(self) -> dict[str, Any]:
        """``{column: [value per epoch]}`` plus ``best_epoch`` and ``stopped_early``: JSON-ready."""
        out: dict[str, Any] = {key: self[key] for key in self.keys}
        out["best_epoch"] = self.best_epoch
        out["stopped_early"] = self.stopped_early
        return out

    def to_xarray(self) -> xr.Dataset:
        """An ``xr.Dataset`` with dimension ``epoch``; run facts in ``attrs``."""
        epochs = np.asarray(self["epoch"], dtype=np.int64)
        data = {key: ("epoch", np.asarray(self[key], dtype=np.float64)) for key in self.keys if key != "epoch"}
        return xr.Dataset(
            data,
            coords={"epoch": epochs},
            attrs={
                "best_epoch": -1 if self.best_epoch is None else int(self.best_epoch),
                "stopped_early": int(self.stopped_early),
            },
        )


# --------------------------------------------------------------------------------------------------------- data
class TensorPairs(torch.utils.data.Dataset):
    """``(inputs, targets)`` tensors (first dimension = samples) as a dataset with fast ``batch``."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        if len(inputs) != len(targets):
            raise ConfigError(f"inputs and targets differ in length: {len(inputs)} vs {len(targets)}")
        self.inputs = torch.as_tensor(inputs)
        self.targets = torch.as_tensor(targets)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[i], self.targets[i]

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[index], self.targets[index]


def as_dataset(data: Any, name: str) -> Any:
    if data is None:
        return None
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(d, torch.Tensor) for d in data):
        return TensorPairs(*data)
    if not hasattr(data, "__len__") or not (hasattr(data, "batch") or hasattr(data, "__getitem__")):
        raise ConfigError(f"{name} must be a map-style dataset or a pair of tensors (inputs, targets)")
    if len(data) == 0:
        raise ConfigError(f"{name} has no samples")
    return data


def batches(dataset: Any, order: torch.Tensor, batch_size: int) -> Iterator[tuple[Any, Any]]:
    for chunk in torch.split(order, batch_size):
        if hasattr(dataset, "batch"):
            yield dataset.batch(chunk)
        else:
            yield torch.utils.data.default_collate([dataset[int(i)] for i in chunk])


def to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, (tuple, list)):
        return type(value)(to_device(v, device) for v in value)
    return value


def call_model(model: torch.nn.Module, inputs: Any) -> torch.Tensor:
    return model(*inputs) if isinstance(inputs, (tuple, list)) else model(inputs)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled sample order of epoch ``epoch`` (0-based) of a run seeded ``seed``: a permutation of ``n``.

    One generator per ``(seed, epoch)``: the order of an epoch does not depend on what ran before it, so a
    resumed run shuffles as an uninterrupted one. Every training loop of ``fitting`` shuffles with it.
    """
    generator = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(epoch)) % (2**63))
    return torch.randperm(n, generator=generator)


def pearson_per_cell(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pearson r over samples for each cell: ``(n, cell), (n, cell) -> (cell,)``; NaN for constant cells."""
    p = prediction.double() - prediction.double().mean(0)
    t = target.double() - target.double().mean(0)
    denominator = torch.sqrt(p.square().sum(0) * t.square().sum(0))
    r = (p * t).sum(0) / denominator
    return torch.where(denominator > 0, r, torch.full_like(r, math.nan))


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    dataset: Any,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> torch.Tensor:
    """Model outputs for every sample of ``dataset`` in order, in eval mode, concatenated on CPU."""
    dataset = as_dataset(dataset, "dataset")
    device = torch.device(device)
    was_training = model.training
    model.eval()
    outputs = []
    try:
        order = torch.arange(len(dataset))
        from tqdm.auto import tqdm

        for inputs, _ in tqdm(
            batches(dataset, order, batch_size),
            total=math.ceil(len(dataset) / batch_size),
            disable=not progress,
            leave=False,
            desc="predict",
        ):
            outputs.append(call_model(model, to_device(inputs, device)).cpu())
    finally:
        model.train(was_training)
    return torch.cat(outputs)


def progress_disable(progress: bool | None) -> tuple[bool | None, bool | None]:
    """tqdm's ``disable`` for :func:`fit`'s epoch bar and for the batch bar nested under it (one per epoch).

    ``None`` is tqdm's own choice (a bar on a terminal or in a notebook, none on a file or pipe). The nested
    batch bar is drawn on a second line that tqdm reaches with cursor-up codes (``ESC[A``), which a log file
    keeps as garbage, so a forced ``progress=True`` on a stream that is neither shows the epoch bar alone.
    """
    if progress is None:
        return None, None
    if not progress:
        return True, True
    import warnings

    from tqdm.std import tqdm as console_tqdm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tqdm.autonotebook import tqdm as chosen_tqdm
    isatty = getattr(sys.stderr, "isatty", None)
    interactive = chosen_tqdm is not console_tqdm or (isatty is not None and isatty())
    return False, not interactive


@torch.no_grad()
def _evaluate(
    model: torch.nn.Module, dataset: Any, loss_fn: Callable[..., torch.Tensor], batch_size: int, device: torch.device
) -> dict[str, float]:
    model.eval()
    total, count = 0.0, 0
    outputs, targets = [], []
    for inputs, target in batches(dataset, torch.arange(len(dataset)), batch_size):
        inputs, target = to_device(inputs, device), to_device(target, device)
        output = call_model(model, inputs)
        n = len(target)
        total += float(loss_fn(output, target)) * n
        count += n
        outputs.append(output.detach().cpu())
        targets.append(target.detach().cpu())
    result = {"valid_loss": total / max(count, 1)}
    output_all, target_all = torch.cat(outputs), torch.cat(targets)
    if output_all.dim() >= 2 and output_all.shape == target_all.shape:
        r = pearson_per_cell(output_all.flatten(0, -2), target_all.flatten(0, -2))
        result["valid_cc"] = float(torch.nanmean(r)) if torch.isfinite(r).any() else math.nan
    return result


class WeightAverage:
    """An exponential moving average of a model's weights and floating-point buffers (``fit``'s ``average_decay``;
    :func:`~neuromodels.fitting.walkback.train_walkback`'s ``ema``): ``update(model)`` after each optimizer step,
    bias-corrected; ``.model`` holds the average."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        import copy

        self.decay = float(decay)
        self.steps = 0
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.steps += 1
        # avg_n = avg_{n-1} + (w_n - avg_{n-1}) (1 - d) / (1 - d^n): the bias-corrected exponential average
        weight = (1.0 - self.decay) / (1.0 - self.decay**self.steps)
        current = model.state_dict()
        for name, value in self.model.state_dict().items():
            if value.dtype.is_floating_point:
                value.lerp_(current[name].detach(), weight)
            else:
                value.copy_(current[name])

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.model.state_dict(), "steps": torch.tensor(self.steps)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["weights"])
        self.steps = int(state["steps"])


# ---------------------------------------------------------------------------------------------------------- fit
def fit(
    model: torch.nn.Module,
    train: Any,
    valid: Any | None = None,
    *,
    loss: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "poisson",
    epochs: int = 50,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    regularisers: Sequence[Regulariser] = (),
    optimizer: str = "adam",
    lr_patience: int = 2,
    lr_factor: float = 0.5,
    min_lr: float = 1e-6,
    patience: int | None = 5,
    min_delta: float = 0.0,
    restore_best: bool = True,
    max_grad_norm: float | None = None,
    average_decay: float | None = None,
    seed: int = 0,
    progress: bool | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    device: str | torch.device = "cpu",
    callbacks: Iterable[Callable[[int, dict[str, float]], bool | None]] = (),
    eval_batch_size: int | None = None,
    deterministic: bool = True,
    distributed: bool | str = "auto",
) -> History:
    """Train ``model`` in place on ``train``, early-stopping on ``valid``; return the :class:`History`.

    Parameters
    ----------
    loss: ``"poisson"`` (outputs are rates, targets counts), ``"mse"``, or ``callable(output, target)``.
        The model's own ``regularization(output)`` (if it has one) and each regulariser's ``penalty(model)``
        are added to it during training; validation reports the data loss alone.
    epochs: maximum number of passes over ``train``; ``batch_size``: samples per step.
    lr, weight_decay, optimizer: Adam (``"adam"``) or AdamW (``"adamw"``, decoupled weight decay).
    lr_patience, lr_factor, min_lr: ``ReduceLROnPlateau`` on the validation loss (train loss without
        ``valid``).
    patience: stop after this many epochs without a validation-loss improvement larger than ``min_delta``
        (``None``: never); with ``restore_best`` the model ends with the best epoch's weights.
    average_decay: keep an exponential moving average of the weights (Polyak averaging; Polyak & Juditsky
        1992) over about ``1 / (1 - average_decay)`` optimiser steps: after step ``n`` (1-based) of weights
        ``w_n``, ``avg_n = sum_i d^(n-i) (1 - d) w_i / (1 - d^n)``, the exponential average with Adam's bias
        correction, so it holds no trace of the initial weights (``avg_1 = w_1``). Floating-point buffers
        (batch-norm statistics) are averaged the same way, integer ones copied. Validation, early stopping, the
        learning-rate schedule and the returned weights then use the averaged model: with a noisy gradient
        (a short recording, small batches) it sits nearer the bottom of the valley than the last iterate.
        ``None`` (default): no averaging.
    seed: seeds the global torch RNG at the start of a fresh run and every epoch's shuffling.
    progress: ``None`` (default): tqdm decides, showing an epoch bar and a batch bar on a terminal or in a
        notebook and nothing when stderr goes to a file or pipe; ``True``: always (to a file or pipe the epoch
        bar alone: the nested batch bar would leave cursor-up codes in the log); ``False``: never.
    checkpoint_dir: write ``checkpoint.pt`` there after every epoch (atomically): the last epoch's weights
        and optimiser state, the best weights, the history and the RNG states. With ``resume=True`` an
        existing checkpoint is continued: an interrupted run goes on, a run that reached its ``epochs``
        goes on to a larger ``epochs``, and a run that stopped early (or reached ``epochs``) returns at once
        with its best weights. With ``resume=False`` an existing checkpoint is overwritten.
    callbacks: ``callback(epoch, logs)`` after every epoch (after the checkpoint is written); returning
        ``True`` stops training.
    deterministic: run under ``torch.use_deterministic_algorithms(True, warn_only=True)`` (restored after).
    distributed: data-parallel training across the processes of ``torchrun`` (module docstring).
        ``"auto"`` (default): data-parallel when the caller has initialised ``torch.distributed`` with more
        than one process, otherwise the single-process loop (unchanged). ``True``: as ``"auto"``, and if
        ``torch.distributed`` is not initialised yet, initialise it from ``torchrun``'s environment
        (``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``, ``MASTER_PORT``; backend NCCL when ``device`` is CUDA,
        gloo otherwise; ConfigError outside ``torchrun``). ``False``: never (each process trains alone).
        ``batch_size`` is per rank (the global batch is ``batch_size * world_size``); on CUDA a device
        without index becomes ``cuda:LOCAL_RANK``. Each rank seeds the global RNG with its own seed
        (:func:`rank_seed`: ``seed`` on rank 0), so noise layers and dropout draw independent numbers on every
        rank, as they would for the global batch in one process (only deterministic models reproduce the
        single-process run exactly); checkpoints keep every rank's RNG state, so resuming is exact. Resuming
        needs the same number of processes.
    """
    run = _prepare_run(
        model,
        train,
        valid,
        loss=loss,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        regularisers=regularisers,
        optimizer=optimizer,
        lr_patience=lr_patience,
        lr_factor=lr_factor,
        min_lr=min_lr,
        max_grad_norm=max_grad_norm,
        average_decay=average_decay,
        seed=seed,
        checkpoint_dir=checkpoint_dir,
        device=device,
        callbacks=callbacks,
        eval_batch_size=eval_batch_size,
        distributed=distributed,
    )
    with _deterministic_algorithms(deterministic):
        state = _start_or_resume(run, resume)
        train_model = _training_model(run, state)
        _train_epochs(run, state, train_model, epochs=epochs, patience=patience, min_delta=min_delta, progress=progress)
        _restore_final_weights(run, state, restore_best)
    model.eval()
    return state.history


@dataclass
class _Run:
    """What one :func:`fit` call trains with, fixed before its first epoch (built by :func:`_prepare_run`)."""

    model: torch.nn.Module
    train: Any
    valid: Any
    loss_fn: Callable[..., torch.Tensor]
    regularisers: list[Regulariser]
    data_hooks: list[Regulariser]  # regularisers that read the data loss's own gradient
    callbacks: list[Callable[[int, dict[str, float]], bool | None]]
    averaged: WeightAverage | None
    opt: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    settings: dict[str, Any]  # what a checkpoint must match to be resumed
    group: _DataParallel | None
    device: torch.device
    batch_size: int
    eval_batch_size: int
    lr: float
    max_grad_norm: float | None
    seed: int
    checkpoint_path: Path | None

    @property
    def eval_model(self) -> torch.nn.Module:
        """The model that is validated, tracked as best and returned: the weight average when there is one."""
        return self.model if self.averaged is None else self.averaged.model

    @property
    def is_main(self) -> bool:
        return self.group is None or self.group.rank == 0


@dataclass
class _Progress:
    """What changes from epoch to epoch and a checkpoint keeps besides the weights and the optimiser state."""

    history: History = field(default_factory=History)
    start_epoch: int = 0
    best_loss: float = math.inf
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0


def _prepare_run(
    model: torch.nn.Module,
    train: Any,
    valid: Any,
    *,
    loss: Any,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    regularisers: Sequence[Regulariser],
    optimizer: str,
    lr_patience: int,
    lr_factor: float,
    min_lr: float,
    max_grad_norm: float | None,
    average_decay: float | None,
    seed: int,
    checkpoint_dir: str | os.PathLike[str] | None,
    device: str | torch.device,
    callbacks: Iterable[Callable[[int, dict[str, float]], bool | None]],
    eval_batch_size: int | None,
    distributed: bool | str,
) -> _Run:
    """Check :func:`fit`'s arguments; join the process group; move the model; build the optimiser and schedule."""
    train = as_dataset(train, "train")
    valid = as_dataset(valid, "valid")
    if epochs < 0 or batch_size < 1:
        raise ConfigError(f"epochs must be >= 0 and batch_size >= 1, got {epochs} and {batch_size}")
    if optimizer not in ("adam", "adamw"):
        raise ConfigError(f"optimizer must be 'adam' or 'adamw', got {optimizer!r}")
    loss_fn = get_loss(loss)
    device = torch.device(device)
    group = _DataParallel.setup(distributed, device)
    if group is not None:
        device = group.device
    eval_batch_size = eval_batch_size or max(batch_size, 256)
    model.to(device)
    regularisers = list(regularisers)
    for reg in regularisers:
        if not hasattr(reg, "penalty"):
            raise ConfigError(f"regulariser {reg!r} has no penalty(model) method")
    data_hooks = [reg for reg in regularisers if getattr(reg, "needs_data_gradient", False)]
    if data_hooks and group is not None:
        raise ConfigError(
            "a regulariser that reads the data loss's own gradient (Synaptic Intelligence with "
            "gradient='task') cannot run data-parallel; use gradient='total' or one process"
        )
    callbacks = list(callbacks)
    if average_decay is not None and not 0.0 < average_decay < 1.0:
        raise ConfigError(f"average_decay must be in (0, 1) or None, got {average_decay}")
    averaged = WeightAverage(model, average_decay) if average_decay is not None else None

    opt_cls = torch.optim.Adam if optimizer == "adam" else torch.optim.AdamW
    opt = opt_cls(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=lr_factor, patience=lr_patience, min_lr=min_lr
    )
    settings = {
        "seed": int(seed),
        "batch_size": int(batch_size),
        "loss": loss if isinstance(loss, str) else "callable",
        "n_train": len(train),
    }
    if averaged is not None:
        settings["average_decay"] = float(average_decay)
    if group is not None:
        settings["world_size"] = group.world
    return _Run(
        model=model,
        train=train,
        valid=valid,
        loss_fn=loss_fn,
        regularisers=regularisers,
        data_hooks=data_hooks,
        callbacks=callbacks,
        averaged=averaged,
        opt=opt,
        scheduler=scheduler,
        settings=settings,
        group=group,
        device=device,
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        lr=lr,
        max_grad_norm=max_grad_norm,
        seed=seed,
        checkpoint_path=None if checkpoint_dir is None else Path(checkpoint_dir) / CHECKPOINT_NAME,
    )


@contextmanager
def _deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` inside (when ``enabled``), restored after."""
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    previous_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        if enabled:
            torch.use_deterministic_algorithms(previous_deterministic, warn_only=previous_warn_only)


def _start_or_resume(run: _Run, resume: bool) -> _Progress:
    """Continue the checkpoint in ``run.checkpoint_path`` (with ``resume``), else seed the global RNG afresh."""
    if run.checkpoint_path is not None and resume and run.checkpoint_path.exists():
        return _resume(run)
    torch.manual_seed(run.seed if run.group is None else rank_seed(run.seed, run.group.rank))
    return _Progress()


def _resume(run: _Run) -> _Progress:
    """Load the model, optimiser, schedule, regularisers, weight average and RNG state of the checkpoint."""
    state = load_checkpoint(run.checkpoint_path, map_location=run.device)
    _check_compatible(state, run.model, run.settings, run.checkpoint_path)
    run.model.load_state_dict(state["model"])
    run.opt.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    for reg, reg_state in zip(run.regularisers, state.get("regularisers", [])):
        if reg_state is not None and hasattr(reg, "load_state_dict"):
            reg.load_state_dict(reg_state)
    if run.averaged is not None:
        run.averaged.load_state_dict(state["average"])
    rank_states = state.get("rng_ranks")
    set_rng_state(rank_states[run.group.rank] if run.group is not None and rank_states else state["rng"])
    start_epoch = int(state["epoch"])
    return _Progress(
        history=History(
            records=[dict(r) for r in state["history"]],
            best_epoch=state["best_epoch"],
            stopped_early=bool(state["stopped_early"]),
            resumed_from_epoch=start_epoch,
        ),
        start_epoch=start_epoch,
        best_loss=float(state["best_loss"]),
        best_state=state["best_model"],
        bad_epochs=int(state["bad_epochs"]),
    )


def _training_model(run: _Run, state: _Progress) -> torch.nn.Module:
    """The model that takes the gradient steps: ``run.model``, or its DDP wrapper when data-parallel."""
    if run.group is None:
        return run.model
    run.group.check_same_start(state.start_epoch, run.checkpoint_path)
    # after every rank has read the checkpoint: DDP's constructor synchronises the ranks
    return run.group.wrap(run.model)


def _train_epochs(
    run: _Run,
    state: _Progress,
    train_model: torch.nn.Module,
    *,
    epochs: int,
    patience: int | None,
    min_delta: float,
    progress: bool | None,
) -> None:
    """The epochs from ``state.start_epoch`` on: train, validate, schedule, checkpoint, until a stop."""
    from tqdm.auto import tqdm

    global_batch = run.batch_size if run.group is None else run.batch_size * run.group.world
    n_batches = math.ceil(len(run.train) / global_batch)
    start_epoch, history = state.start_epoch, state.history
    # a run that stopped early is over; one that reached its epochs continues if `epochs` grew
    remaining = range(start_epoch, start_epoch if history.stopped_early else max(epochs, start_epoch))
    epoch_disable, batch_disable = progress_disable(progress if run.is_main else False)
    epoch_bar = tqdm(
        remaining,
        initial=start_epoch,
        total=max(epochs, start_epoch),
        disable=epoch_disable,
        desc="epochs",
        unit="epoch",
    )
    for epoch in epoch_bar:
        started = _time.perf_counter()
        train_model.train()
        order = epoch_order(len(run.train), run.seed, epoch)
        shards = (
            batches(run.train, order, run.batch_size)
            if run.group is None
            else run.group.shards(run.train, order, run.batch_size)
        )
        batch_bar = tqdm(
            shards, total=n_batches, disable=batch_disable, leave=False, desc=f"epoch {epoch + 1}", unit="batch"
        )
        sums = _train_one_epoch(run, train_model, batch_bar, epoch)
        logs = _epoch_logs(run, epoch, *sums)
        stop = _schedule_and_track_best(run, state, logs, epoch, patience=patience, min_delta=min_delta)
        logs["seconds"] = _time.perf_counter() - started
        if run.group is not None:
            logs["seconds"] = run.group.broadcast_logs({"seconds": logs["seconds"]})["seconds"]
        history.records.append(logs)
        epoch_bar.set_postfix(
            {k: f"{v:.4g}" for k, v in logs.items() if k in ("train_loss", "valid_loss", "valid_cc")}, refresh=False
        )
        _write_checkpoint(run, state, epoch, stop)
        if _callbacks_stop(run, epoch, logs, stop):
            break
    epoch_bar.close()


def _train_one_epoch(
    run: _Run, train_model: torch.nn.Module, batches: Iterable[Any], epoch: int
) -> tuple[float, float, float]:
    """One gradient step per batch; the sums over samples of the data loss and the penalty, and the count."""
    total, penalty_total, count = 0.0, 0.0, 0
    for batch in batches:
        data_loss, penalty, n = _train_step(run, train_model, batch)
        total += float(data_loss.detach()) * n
        penalty_total += float(penalty.detach()) * n
        count += n
        if not math.isfinite(float(data_loss.detach())):
            raise ConfigError(
                f"training diverged at epoch {epoch + 1} (loss {float(data_loss.detach())}); lower lr (now {run.lr})"
            )
        batches.set_postfix(loss=f"{float(data_loss.detach()):.4f}", refresh=False)
    return total, penalty_total, count


def _train_step(run: _Run, train_model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Forward, backward (with the regularisers' hooks), clip, step, average: ``(data_loss, penalty, n)``."""
    model, group, data_hooks = run.model, run.group, run.data_hooks
    inputs, target = batch[0], batch[1]
    inputs, target = to_device(inputs, run.device), to_device(target, run.device)
    output = call_model(train_model, inputs)
    data_loss = run.loss_fn(output, target)
    penalty = output.new_zeros(())
    if hasattr(model, "regularization"):
        penalty = penalty + model.regularization(output)
    for reg in run.regularisers:
        if group is None and reg in data_hooks and getattr(reg, "folds_penalty", False):
            penalty = penalty + reg.penalty(model, folded=True)  # value and gradient from after_data_backward
        else:
            penalty = penalty + reg.penalty(model)
    run.opt.zero_grad(set_to_none=True)
    folded_values: list[float] = []
    if group is None and data_hooks and penalty.requires_grad:
        # the data loss's gradient first, read by the hooks, then the penalties' added to it
        data_loss.backward(retain_graph=True)
        folded_values = [reg.after_data_backward(model) for reg in data_hooks]
        penalty.backward()
    elif group is None:
        (data_loss + penalty).backward()
        # no penalty gradient yet: the gradient is the data loss's (folding hooks add their penalty's)
        folded_values = [reg.after_data_backward(model) for reg in data_hooks]
    else:
        # DDP averages gradients over ranks; this weight turns the average into the mean over the
        # global batch (1 on full batches, 0 on a rank with only a stand-in sample)
        weight = batch[2]
        ((data_loss + penalty) * weight).backward()
    if run.max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), run.max_grad_norm)
    for reg in run.regularisers:
        if hasattr(reg, "before_step"):
            reg.before_step(model)
    run.opt.step()
    for reg in run.regularisers:
        if hasattr(reg, "on_step"):
            reg.on_step(model)
    if run.averaged is not None:
        run.averaged.update(model)
    n = len(target) if group is None else batch[3]
    penalty = penalty.detach()
    for value in folded_values:
        if value is not None:
            penalty = penalty + value
    return data_loss, penalty, n


def _epoch_logs(run: _Run, epoch: int, total: float, penalty_total: float, count: float) -> dict[str, float]:
    """The epoch's training losses (summed over ranks), validation numbers and learning rate, as rank 0 has them."""
    if run.group is not None:
        total, penalty_total, count = run.group.sum([total, penalty_total, count])
    logs: dict[str, float] = {"epoch": epoch + 1, "train_loss": total / count, "train_penalty": penalty_total / count}
    if run.valid is not None:
        logs.update(_evaluate(run.eval_model, run.valid, run.loss_fn, run.eval_batch_size, run.device))
    logs["lr"] = float(run.opt.param_groups[0]["lr"])
    if run.group is not None:
        logs = run.group.broadcast_logs(logs)
    return logs


def _schedule_and_track_best(
    run: _Run, state: _Progress, logs: dict[str, float], epoch: int, *, patience: int | None, min_delta: float
) -> bool:
    """Step the schedule and the regularisers' epoch hooks; keep the best weights; ``True`` when patience ran out."""
    monitored = logs.get("valid_loss", logs["train_loss"])
    run.scheduler.step(monitored)
    for reg in run.regularisers:
        if hasattr(reg, "on_epoch_end"):
            reg.on_epoch_end(run.model, epoch + 1)

    if monitored < state.best_loss - min_delta or state.best_state is None:
        state.best_loss, state.bad_epochs = monitored, 0
        state.best_state = {k: v.detach().clone() for k, v in run.eval_model.state_dict().items()}
        state.history.best_epoch = epoch + 1
    else:
        state.bad_epochs += 1
    if run.valid is not None and patience is not None and state.bad_epochs >= patience:
        state.history.stopped_early = True
        return True
    return False


def _write_checkpoint(run: _Run, state: _Progress, epoch: int, stop: bool) -> None:
    """Rank 0 writes the epoch's checkpoint (atomically), with every rank's RNG state when data-parallel."""
    group = run.group
    # every rank's RNG state (its own dropout stream) travels in rank 0's checkpoint
    rank_states = group.gather_rng_states() if run.checkpoint_path is not None and group is not None else None
    if run.checkpoint_path is not None and run.is_main:
        # the last epoch's weights (with the optimiser state that belongs to them) and the best ones
        checkpoint = _checkpoint_state(
            run.model,
            run.opt,
            run.scheduler,
            run.regularisers,
            state.history,
            epoch + 1,
            state.best_loss,
            state.best_state,
            state.bad_epochs,
            stop,
            run.settings,
            run.averaged,
        )
        if rank_states is not None:
            checkpoint["rng_ranks"] = rank_states
        save_checkpoint(checkpoint, run.checkpoint_path)


def _callbacks_stop(run: _Run, epoch: int, logs: dict[str, float], stop: bool) -> bool:
    """Call every callback; ``True`` when training stops (``stop``, or a callback on any rank said so)."""
    for callback in run.callbacks:
        if callback(epoch + 1, dict(logs)):
            stop = True
    if run.group is not None:
        stop = run.group.any(stop)  # a callback that stops on one rank stops them all
    return stop


def _restore_final_weights(run: _Run, state: _Progress, restore_best: bool) -> None:
    """The best epoch's weights (``restore_best``), else the weight average if there is one, else the last."""
    if restore_best and state.best_state is not None:
        run.model.load_state_dict(state.best_state)
    elif run.averaged is not None:
        run.model.load_state_dict(run.averaged.model.state_dict())


# ------------------------------------------------------------------------------------------- data parallelism
class _DataParallel:
    """The process group of a data-parallel :func:`fit` and the few collectives the loop needs."""

    def __init__(self, rank: int, world: int, device: torch.device) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.rank, self.world, self.device = rank, world, device
        # NCCL moves CUDA tensors only; gloo CPU ones
        self.comm_device = device if dist.get_backend() == "nccl" else torch.device("cpu")

    @classmethod
    def setup(cls, distributed: bool | str, device: torch.device) -> _DataParallel | None:
        if distributed not in ("auto", True, False):
            raise ConfigError(f"distributed must be 'auto', True or False, got {distributed!r}")
        if distributed is False:
            return None
        import torch.distributed as dist

        if not dist.is_available():
            if distributed is True:
                raise ConfigError("distributed=True but this torch build has no torch.distributed")
            return None
        if not dist.is_initialized():
            if distributed == "auto":
                return None
            if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
                raise ConfigError(
                    "distributed=True needs torch.distributed initialised or torchrun's environment "
                    "(WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT); launch with torchrun"
                )
            if device.type == "cuda":
                torch.cuda.set_device(_local_cuda_device(device))
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        if dist.get_world_size() < 2:
            return None
        if device.type == "cuda":
            device = _local_cuda_device(device)
            torch.cuda.set_device(device)
        return cls(dist.get_rank(), dist.get_world_size(), device)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        ids = [self.device.index] if self.device.type == "cuda" else None
        # find_unused_parameters: a ConvRNN whose readout comes before some edge's output leaves parameters
        # without gradient, which plain DDP takes for a hang and refuses
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)

    def shards(self, dataset: Any, order: torch.Tensor, batch_size: int) -> Iterator[tuple[Any, Any, float, int]]:
        """``(inputs, target, weight, n)`` of this rank's part of every global batch of the epoch ``order``.

        A rank left without samples by a short last batch gets one stand-in sample with weight 0, so that it
        still joins the gradient all-reduce; ``n`` (0 there) counts real samples.
        """
        for chunk in torch.split(order, batch_size * self.world):
            part = torch.tensor_split(chunk, self.world)[self.rank]
            n = len(part)
            inputs, target = next(batches(dataset, part if n else chunk[:1], batch_size))
            yield inputs, target, n * self.world / len(chunk), n

    def _tensor(self, values: Sequence[float]) -> torch.Tensor:
        return torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.comm_device)

    def sum(self, values: Sequence[float]) -> list[float]:
        tensor = self._tensor(values)
        self.dist.all_reduce(tensor)
        return tensor.tolist()

    def any(self, flag: bool) -> bool:
        return self.sum([1.0 if flag else 0.0])[0] > 0

    def broadcast_logs(self, logs: dict[str, float]) -> dict[str, float]:
        """Rank 0's numbers on every rank (same keys everywhere): one decision, one history."""
        keys = list(logs)
        tensor = self._tensor([logs[k] for k in keys])
        self.dist.broadcast(tensor, src=0)
        out = dict(zip(keys, tensor.tolist()))
        if "epoch" in out:
            out["epoch"] = int(round(out["epoch"]))
        return out

    def gather_rng_states(self) -> list[dict[str, Any]]:
        """Every rank's :func:`rng_state`, in rank order (on every rank)."""
        states: list[Any] = [None] * self.world
        self.dist.all_gather_object(states, rng_state())
        return states

    def check_same_start(self, start_epoch: int, checkpoint_path: Path | None) -> None:
        starts = [0.0] * self.world
        starts[self.rank] = float(start_epoch)
        starts = self.sum(starts)
        if min(starts) != max(starts):
            raise CheckpointError(
                f"{checkpoint_path}: the ranks resume from different epochs {[int(e) for e in starts]}; "
                "checkpoint_dir must be on a file system that every rank reads"
            )


def rank_seed(seed: int, rank: int) -> int:
    """The global-RNG seed of data-parallel rank ``rank``: ``seed`` on rank 0 (a one-process run is unchanged),
    distinct streams on the others (the rank times 2^64 / golden ratio, an odd constant, added modulo 2^63)."""
    return (int(seed) + int(rank) * 0x9E3779B97F4A7C15) % (2**63)


def _local_cuda_device(device: torch.device) -> torch.device:
    if device.index is not None:
        return device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    return torch.device("cuda", local_rank)


def _checkpoint_state(
    model,
    opt,
    scheduler,
    regularisers,
    history,
    epoch,
    best_loss,
    best_state,
    bad_epochs,
    finished,
    settings,
    averaged=None,
) -> dict[str, Any]:
    state = {
        "format": CHECKPOINT_FORMAT,
        "epoch": int(epoch),
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": scheduler.state_dict(),
        "regularisers": [reg.state_dict() if hasattr(reg, "state_dict") else None for reg in regularisers],
        "best_model": best_state,
        "best_loss": float(best_loss),
        "best_epoch": history.best_epoch,
        "bad_epochs": int(bad_epochs),
        "stopped_early": bool(history.stopped_early),
        "stopped": bool(finished),
        "history": [dict(r) for r in history.records],
        "rng": rng_state(),
        "settings": dict(settings),
    }
    if averaged is not None:
        state["average"] = averaged.state_dict()
    return state


def _check_compatible(state: dict[str, Any], model: torch.nn.Module, settings: dict[str, Any], path: Path) -> None:
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a neuromodels training checkpoint (format {state.get('format')!r})")
    saved = state["model"]
    current = model.state_dict()
    if set(saved) != set(current) or any(saved[k].shape != current[k].shape for k in current):
        raise CheckpointError(
            f"{path}: written for a different model architecture; use another checkpoint folder or resume=False"
        )
    defaults = {"world_size": 1}  # single-process checkpoints do not record it
    for key in ("seed", "batch_size", "loss", "n_train", "world_size", "average_decay"):
        saved_value, value = state["settings"].get(key, defaults.get(key)), settings.get(key, defaults.get(key))
        if saved_value != value:
            raise CheckpointError(
                f"{path}: written with {key}={saved_value!r}, this run has {key}={value!r}; "
                "an exact resume needs the same settings (or pass resume=False)"
            )

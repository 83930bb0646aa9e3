"""Train one model on a task sequence with :func:`~neuromodels.fitting.fit` and record the accuracy matrix.

Methods: ``"si"`` (:class:`SynapticIntelligence`), ``"ewc"`` / ``"online-ewc"`` (:class:`EWC`),
``"finetune"`` (no penalty) and ``"joint"`` (after task ``i`` the model has been trained, continuing from its
weights, on the union of tasks ``0..i``: the usual upper bound). Every task gets a fresh Adam optimiser
(as the SI paper's code: ``reset_optimizer`` per task) and a constant learning rate.

Checkpoints: with ``checkpoint_dir`` the loop's own checkpoint of task ``i`` lives in ``task-<i>/`` and, after
each task, ``sequence.pt`` holds the weights, the method's state (SI's ``Omega``, ``omega``, ``theta~``,
task counter), the accuracy rows and histories. A run killed anywhere resumes where it stopped and ends
with the same weights and importance as an uninterrupted run; resuming with other tasks, another order or
other settings raises ConfigError.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuromodels.errors import ConfigError
from neuromodels.fitting.continual.ewc import EWC
from neuromodels.fitting.continual.metrics import summarise
from neuromodels.fitting.continual.si import SynapticIntelligence
from neuromodels.fitting.continual.tasks import TaskSequence, concatenate

__all__ = ["METHODS", "ContinualResult", "evaluate_accuracy", "make_method", "train_sequence"]

METHODS = ("si", "ewc", "online-ewc", "finetune", "joint")
SEQUENCE_FORMAT = "neuromodels.continual/1"


@dataclass
class ContinualResult:
    """``accuracy``: ``R[i, j]`` as an ``xr.DataArray`` (dims ``trained``, ``evaluated``); ``metrics``:
    average accuracy, backward transfer, forgetting; ``importance``: SI's ``Omega`` per parameter (or the
    EWC precision); ``histories``: each task's :class:`~neuromodels.fitting.History` as a dict."""

    accuracy: Any
    metrics: dict[str, float]
    settings: dict[str, Any]
    importance: dict[str, torch.Tensor] = field(default_factory=dict)
    histories: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy.values.tolist(),
            "tasks": list(self.accuracy.coords["evaluated"].values),
            "metrics": dict(self.metrics),
            "settings": dict(self.settings),
            "histories": list(self.histories),
        }


def cross_entropy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits ``(batch, classes)`` and integer labels ``(batch,)``."""
    return torch.nn.functional.cross_entropy(output, target)


def make_method(
    method: str,
    model: torch.nn.Module,
    *,
    c: float = 0.1,
    xi: float | None = None,
    lam: float = 100.0,
    gamma: float = 1.0,
    si_options: dict[str, Any] | None = None,
    ewc_options: dict[str, Any] | None = None,
) -> Any:
    """The regulariser of ``method`` (``None`` for fine-tuning and joint training)."""
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "si":
        return SynapticIntelligence(model, c=c, xi=xi, **(si_options or {}))
    if method in ("ewc", "online-ewc"):
        return EWC(model, lam=lam, online=method == "online-ewc", gamma=gamma, **(ewc_options or {}))
    return None


@torch.no_grad()
def evaluate_accuracy(
    model: torch.nn.Module, data: Any, *, batch_size: int = 1024, device: str | torch.device = "cpu"
) -> float:
    """Fraction of ``data``'s samples whose largest output is the label."""
    from neuromodels.fitting.loop import predict

    output = predict(model, data, batch_size=batch_size, device=device)
    return float((output.argmax(-1) == data.labels).double().mean())


def _check_heads(model: torch.nn.Module, sequence: TaskSequence, device: torch.device) -> None:
    """Every task's labels fit its head: run one sample of each task through the model."""
    from neuromodels.fitting.loop import call_model, to_device

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i, task in enumerate(sequence.tasks):
                if len(task.train) == 0 or len(task.test) == 0:
                    raise ConfigError(f"task {i} ({task.name}) is empty")
                labels = torch.cat([task.train.labels, task.test.labels])
                inputs, _ = task.train.batch(torch.arange(1))
                width = int(call_model(model, to_device(inputs, device)).shape[-1])
                head = sequence.head_of(i)
                top = int(labels.max())
                if int(labels.min()) < 0 or top >= min(width, head):
                    raise ConfigError(
                        f"task {i} ({task.name}) has label {top} outside its head of {min(width, head)} outputs"
                    )
    finally:
        model.train(was_training)


def train_sequence(
    model: torch.nn.Module,
    sequence: TaskSequence,
    method: str = "si",
    *,
    c: float = 0.1,
    xi: float | None = None,
    lam: float = 100.0,
    gamma: float = 1.0,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    si_options: dict[str, Any] | None = None,
    ewc_options: dict[str, Any] | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    progress: bool | None = None,
    device: str | torch.device = "cpu",
    callbacks: Any = (),
) -> ContinualResult:
    """Train ``model`` (in place) on the tasks of ``sequence`` in order with ``method``; return the result.

    ``c``, ``xi``, ``si_options``: :class:`SynapticIntelligence` (``si_options``: ``gradient``, ``floor``,
    ``clamp``, ``half``, ``exclude_norm``, ``preset``...); ``lam``, ``gamma``, ``ewc_options``: :class:`EWC`.
    ``epochs``, ``batch_size``, ``lr``: per task (Adam, reset per task). ``seed``: task ``i`` trains with
    ``fit(seed=seed * 1000 + i)``. ``callbacks``: passed to every task's ``fit``.
    """
    from tqdm.auto import tqdm

    if int(epochs) < 1:
        raise ConfigError(f"epochs must be >= 1, got {epochs}")
    if len(sequence) == 0:
        raise ConfigError("the task sequence has no task")
    device = torch.device(device)
    model.to(device)
    _check_heads(model, sequence, device)
    regulariser = make_method(
        method, model, c=c, xi=xi, lam=lam, gamma=gamma, si_options=si_options, ewc_options=ewc_options
    )
    settings = {
        "method": method,
        "scenario": sequence.scenario,
        "benchmark": sequence.name,
        "epochs": int(epochs),
        "batch_size": int(batch_size),
        "lr": float(lr),
        "seed": int(seed),
        "regulariser": None if regulariser is None else regulariser.settings(),
    }
    n = len(sequence)
    folder = None if checkpoint_dir is None else Path(checkpoint_dir)
    state_path = None if folder is None else folder / "sequence.pt"
    rows, histories = _resume_sequence(state_path, resume, device, sequence, settings, model, regulariser)

    def save() -> None:
        _save_sequence(state_path, settings, sequence, model, regulariser, rows, histories)

    if not rows:
        save()  # from the start: a resume with other tasks or settings is refused even during task 0

    bar = tqdm(
        range(len(rows), n),
        initial=len(rows),
        total=n,
        desc=f"{method} tasks",
        unit="task",
        disable=progress is False if progress is not None else None,
    )
    fit_options = {
        "epochs": int(epochs),
        "batch_size": int(batch_size),
        "lr": float(lr),
        "progress": progress,
        "device": device,
        "callbacks": callbacks,
        "resume": resume,
    }
    for i in bar:
        history = _train_task(model, sequence, i, method, regulariser, int(seed) * 1000 + i, folder, fit_options)
        rows.append([evaluate_accuracy(model, t.test, device=device) for t in sequence.tasks])
        histories.append(history.as_dict())
        bar.set_postfix(mean=f"{np.mean(rows[-1][: i + 1]):.3f}", refresh=False)
        save()
    bar.close()
    return _sequence_result(sequence, method, regulariser, settings, rows, histories)


def _resume_sequence(
    state_path: Path | None,
    resume: bool,
    device: torch.device,
    sequence: TaskSequence,
    settings: dict[str, Any],
    model: torch.nn.Module,
    regulariser: Any,
) -> tuple[list[list[float]], list[dict[str, Any]]]:
    """The accuracy rows and histories of the tasks done so far (none without a ``sequence.pt`` to resume);
    a resume also restores the model's weights and the method's state."""
    from neuromodels.fitting.checkpoint import load_checkpoint

    rows: list[list[float]] = []
    histories: list[dict[str, Any]] = []
    if state_path is not None and resume and state_path.exists():
        state = load_checkpoint(state_path, map_location=device)
        _check_resumable(state, sequence, settings, state_path)
        model.load_state_dict(state["model"])
        if regulariser is not None:
            regulariser.load_state_dict(state["regulariser"])
        rows = [list(r) for r in state["rows"]]
        histories = list(state["histories"])
    return rows, histories


def _save_sequence(
    state_path: Path | None,
    settings: dict[str, Any],
    sequence: TaskSequence,
    model: torch.nn.Module,
    regulariser: Any,
    rows: list[list[float]],
    histories: list[dict[str, Any]],
) -> None:
    """Write ``sequence.pt`` (nothing without a checkpoint folder)."""
    from neuromodels.fitting.checkpoint import save_checkpoint

    if state_path is not None:
        save_checkpoint(
            {
                "format": SEQUENCE_FORMAT,
                "settings": settings,
                "tasks": sequence.fingerprint(),
                "model": model.state_dict(),
                "regulariser": None if regulariser is None else regulariser.state_dict(),
                "rows": rows,
                "histories": histories,
            },
            state_path,
        )


def _train_task(
    model: torch.nn.Module,
    sequence: TaskSequence,
    i: int,
    method: str,
    regulariser: Any,
    seed: int,
    folder: Path | None,
    fit_options: dict[str, Any],
) -> Any:
    """Train task ``i`` with a fresh Adam (``joint``: on the union of tasks ``0..i``), then close the task for
    the method (SI: consolidate ``Omega``; EWC: estimate the Fisher); return the loop's history."""
    from neuromodels.fitting.loop import fit

    task = sequence.tasks[i]
    train = concatenate([t.train for t in sequence.tasks[: i + 1]]) if method == "joint" else task.train
    history = fit(
        model,
        train,
        None,
        loss=cross_entropy,
        epochs=fit_options["epochs"],
        batch_size=fit_options["batch_size"],
        lr=fit_options["lr"],
        regularisers=[] if regulariser is None else [regulariser],
        lr_patience=10**9,
        patience=None,
        restore_best=False,
        seed=seed,
        progress=fit_options["progress"],
        device=fit_options["device"],
        callbacks=fit_options["callbacks"],
        resume=fit_options["resume"],
        checkpoint_dir=None if folder is None else folder / f"task-{i}",
    )
    if isinstance(regulariser, SynapticIntelligence):
        regulariser.end_task(model)
    elif isinstance(regulariser, EWC):
        regulariser.end_task(model, task.train)
    return history


def _sequence_result(
    sequence: TaskSequence,
    method: str,
    regulariser: Any,
    settings: dict[str, Any],
    rows: list[list[float]],
    histories: list[dict[str, Any]],
) -> ContinualResult:
    """The accuracy matrix, its summary metrics and the method's importance per parameter."""
    import xarray as xr

    names = [t.name for t in sequence.tasks]
    accuracy = xr.DataArray(
        np.asarray(rows, dtype=np.float64),
        dims=("trained", "evaluated"),
        coords={"trained": names, "evaluated": names},
        name="accuracy",
        attrs={"method": method, "scenario": sequence.scenario, "benchmark": sequence.name},
    )
    importance: dict[str, torch.Tensor] = {}
    if isinstance(regulariser, SynapticIntelligence):
        importance = {k: v.detach().cpu() for k, v in regulariser.importance().items()}
    elif isinstance(regulariser, EWC):
        importance = {k: v.detach().cpu() for k, v in zip(regulariser.names, regulariser.precision_)}
    return ContinualResult(accuracy, summarise(accuracy), settings, importance, histories)


def _check_resumable(state: dict[str, Any], sequence: TaskSequence, settings: dict[str, Any], path: Path) -> None:
    if state.get("format") != SEQUENCE_FORMAT:
        raise ConfigError(f"{path}: not a continual-learning checkpoint (format {state.get('format')!r})")
    if list(state["tasks"]) != sequence.fingerprint():
        raise ConfigError(f"{path}: written for other tasks or another task order; use a new folder or resume=False")
    saved, current = _flatten(state["settings"]), _flatten(settings)
    diff = [k for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]
    if diff:
        key = diff[0]
        raise ConfigError(
            f"{path}: written with {key}={saved.get(key)!r}, this run has {key}={current.get(key)!r}; "
            "resume with the same settings, or use a new folder / resume=False"
        )


def _flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in (settings or {}).items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat

"""Task sequences for continual learning: split and permuted image sets in the three scenarios.

Scenarios (van de Ven & Tolias 2019, "Three scenarios for continual learning", arXiv:1904.07734, table 1):

* ``"task"`` (task-incremental, the SI paper's split MNIST): the task identity is given; each task has its own
  output head and labels are the position of the class within its task (``0 .. k-1``). Items are
  ``((x, task), label)`` so that a multi-head model is called as ``model(x, task)``.
* ``"domain"`` (domain-incremental, the SI paper's permuted MNIST): one head shared by all tasks, labels the
  position within the task (split: ``0 .. k-1``; permuted: the digit).
* ``"class"`` (class-incremental): one head over every class of the sequence; labels are global class indices.

Builders: :func:`split_tasks` (any labelled images, grouped by class; the generic builder for a user's own
:func:`~neuromodels.datasets.images.load_image_folder`), :func:`permuted_tasks` (fixed pixel permutations),
and the named benchmarks of :func:`benchmark` on the data we have: ``split-mnist`` and ``permuted-mnist``
from the 10,000 MNIST test images (the first 8,000 for training, the last 2,000 for testing: a
reduced-scale version of the paper's 60,000 / 10,000) and ``split-digits`` (scikit-learn's 1,797 8x8 digits).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuromodels.errors import ConfigError

__all__ = [
    "BENCHMARKS",
    "PAPER_SETTINGS",
    "SCENARIOS",
    "Task",
    "TaskData",
    "TaskSequence",
    "benchmark",
    "permuted_tasks",
    "split_tasks",
]

SCENARIOS = ("task", "domain", "class")
BENCHMARKS = ("split-mnist", "permuted-mnist", "split-digits")

# Network and training per benchmark. split/permuted MNIST: the authors' notebooks (ganguli-lab/pathint,
# fig_split_mnist/, fig_permuted_mnist/: Adam lr 1e-3, optimiser reset per task; split: MLP 256-256, batch 64,
# 10 epochs, xi 1e-3, c 1; permuted: MLP 2000-2000, batch 256, 20 epochs, xi 0.1, c 0.1 (of 0, 0.01, 0.02, 0.1)).
# split-digits: our choice (the split-MNIST settings on 8x8 images; no published run).
PAPER_SETTINGS: dict[str, dict[str, Any]] = {
    "split-mnist": {"hidden": (256, 256), "batch_size": 64, "epochs": 10, "lr": 1e-3, "c": 1.0, "xi": 1e-3},
    "permuted-mnist": {
        "hidden": (2000, 2000),
        "batch_size": 256,
        "epochs": 20,
        "lr": 1e-3,
        "c": 0.1,
        "xi": 0.1,
        "n_tasks": 10,
    },
    "split-digits": {"hidden": (256, 256), "batch_size": 64, "epochs": 10, "lr": 1e-3, "c": 1.0, "xi": 1e-3},
}


class TaskData:
    """One task's samples: ``inputs`` (n, features) float32, integer ``labels`` (n,), the task index.

    A map-style dataset for :func:`~neuromodels.fitting.fit` with a fast ``batch``; items are
    ``((x, task), label)`` when ``with_task`` (task-incremental), otherwise ``(x, label)``.
    """

    def __init__(self, inputs: Any, labels: Any, task: int, with_task: bool) -> None:
        import torch

        self.inputs = torch.as_tensor(np.ascontiguousarray(inputs), dtype=torch.float32)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.task = int(task)
        self.with_task = bool(with_task)
        self._task_ids = torch.full((len(self.labels),), self.task, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Any:
        return self.batch(np.asarray([i]))  # pragma: no cover - fit uses batch()

    def batch(self, index: Any) -> tuple[Any, Any]:
        x = self.inputs[index]
        return ((x, self._task_ids[index]) if self.with_task else x), self.labels[index]

    def fingerprint(self) -> str:
        digest = hashlib.sha1(self.inputs.numpy().tobytes())
        digest.update(self.labels.numpy().tobytes())
        digest.update(str(self.task).encode())
        return digest.hexdigest()[:16]


def concatenate(parts: Sequence[TaskData]) -> Any:
    """Several tasks' training sets as one dataset (joint training); each keeps its own task index."""
    import torch

    from neuromodels.fitting.loop import TensorPairs

    x = torch.cat([p.inputs for p in parts])
    y = torch.cat([p.labels for p in parts])
    if parts[0].with_task:
        t = torch.cat([p._task_ids for p in parts])

        class _Joint(TensorPairs):
            def batch(self, index: Any) -> tuple[Any, Any]:
                return (self.inputs[index], t[index]), self.targets[index]

        return _Joint(x, y)
    return TensorPairs(x, y)


@dataclass
class Task:
    """One task of a sequence: its name, train and test data, and the original classes it holds."""

    name: str
    train: TaskData
    test: TaskData
    classes: tuple[int, ...]


@dataclass
class TaskSequence:
    """Tasks in training order, the scenario and the output layout a model needs.

    ``heads``: output units per head (one entry per task for ``"task"``, a single entry otherwise).
    """

    name: str
    scenario: str
    tasks: list[Task]
    heads: tuple[int, ...]
    n_features: int
    notes: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.tasks)

    def fingerprint(self) -> list[str]:
        """One short hash per task (inputs, labels, index): resuming needs the same tasks in the same order."""
        return [f"{t.name}:{t.train.fingerprint()}:{t.test.fingerprint()}" for t in self.tasks]

    def head_of(self, index: int) -> int:
        return self.heads[index] if self.scenario == "task" else self.heads[0]


def _check_scenario(scenario: str) -> None:
    if scenario not in SCENARIOS:
        raise ConfigError(f"scenario must be one of {', '.join(SCENARIOS)}, got {scenario!r}")


def _flat_images(images: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(n, features)`` float32 in [0, 1] and int labels from an image ``xr.DataArray`` of the image loaders."""
    if not hasattr(images, "coords") or "label" not in images.coords:
        raise ConfigError("images must be an xr.DataArray with a 'label' coordinate (neuromodels.datasets.images)")
    values = np.asarray(images.values)
    scale = float(images.attrs.get("max_value", 255 if values.dtype == np.uint8 else 1.0))
    x = (values.reshape(len(values), -1).astype(np.float32) / np.float32(scale)).astype(np.float32)
    return x, np.asarray(images.coords["label"].values, dtype=np.int64)


def _train_test(x: np.ndarray, y: np.ndarray, test_fraction: float) -> tuple[np.ndarray, ...]:
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n_train = round(len(x) * (1 - test_fraction))
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def split_tasks(
    images: Any,
    groups: Sequence[Sequence[int]],
    *,
    scenario: str = "task",
    test_fraction: float = 0.2,
    name: str = "split",
) -> TaskSequence:
    """Tasks of the classes in each group (e.g. ``[[0, 1], [2, 3], ...]``) from labelled images.

    ``images``: an ``xr.DataArray`` with a ``label`` coordinate (any loader of ``neuromodels.datasets.images``,
    a user's ``load_image_folder`` included). The first ``1 - test_fraction`` of the images (in file order)
    train, the rest test. Raises ConfigError for an empty group, a class in two groups, or a group with no
    image in either split.
    """
    _check_scenario(scenario)
    groups = [tuple(int(c) for c in g) for g in groups]
    if not groups or any(len(g) == 0 for g in groups):
        raise ConfigError(f"groups must be non-empty lists of class labels, got {groups}")
    seen = [c for g in groups for c in g]
    if len(set(seen)) != len(seen):
        raise ConfigError(f"a class appears in two groups: {groups}")
    x, y = _flat_images(images)
    x_train, y_train, x_test, y_test = _train_test(x, y, test_fraction)
    class_index = {c: i for i, c in enumerate(seen)}
    tasks = []
    for t, group in enumerate(groups):
        position = {c: i for i, c in enumerate(group)}
        parts = []
        for xs, ys, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
            mask = np.isin(ys, group)
            if not mask.any():
                raise ConfigError(f"task {t} (classes {list(group)}) has no {split} images: an empty task")
            mapping = class_index if scenario == "class" else position
            labels = np.asarray([mapping[int(c)] for c in ys[mask]], dtype=np.int64)
            parts.append(TaskData(xs[mask], labels, t, with_task=scenario == "task"))
        tasks.append(Task(f"{'/'.join(str(c) for c in group)}", parts[0], parts[1], group))
    if scenario == "task":
        heads = tuple(len(g) for g in groups)
    elif scenario == "domain":
        heads = (max(len(g) for g in groups),)
    else:
        heads = (len(seen),)
    return TaskSequence(name, scenario, tasks, heads, x.shape[1], {"test_fraction": test_fraction})


def permuted_tasks(
    images: Any,
    n_tasks: int,
    *,
    scenario: str = "domain",
    test_fraction: float = 0.2,
    seed: int = 0,
    name: str = "permuted",
) -> TaskSequence:
    """``n_tasks`` tasks of all classes, each with its own fixed pixel permutation (task 0 unpermuted; the
    others drawn by ``numpy.random.default_rng(seed)``)."""
    _check_scenario(scenario)
    if int(n_tasks) < 1:
        raise ConfigError(f"n_tasks must be >= 1, got {n_tasks}")
    x, y = _flat_images(images)
    classes = sorted(int(c) for c in np.unique(y))
    if classes != list(range(len(classes))):
        raise ConfigError(f"permuted tasks need labels 0..K-1, found {classes}")
    n_classes = len(classes)
    x_train, y_train, x_test, y_test = _train_test(x, y, test_fraction)
    rng = np.random.default_rng(seed)
    tasks = []
    for t in range(int(n_tasks)):
        perm = np.arange(x.shape[1]) if t == 0 else rng.permutation(x.shape[1])
        offset = t * n_classes if scenario == "class" else 0
        parts = [
            TaskData(xs[:, perm], ys + offset, t, with_task=scenario == "task")
            for xs, ys in ((x_train, y_train), (x_test, y_test))
        ]
        tasks.append(Task(f"perm{t}", parts[0], parts[1], tuple(classes)))
    heads = (
        (n_classes,) * int(n_tasks)
        if scenario == "task"
        else (n_classes * int(n_tasks),)
        if scenario == "class"
        else (n_classes,)
    )
    return TaskSequence(name, scenario, tasks, heads, x.shape[1], {"test_fraction": test_fraction, "seed": seed})


def benchmark(name: str, scenario: str, *, n_tasks: int = 10, seed: int = 0, mnist_path: Any = None) -> TaskSequence:
    """A named benchmark on the data we have (module docstring): ``split-mnist`` (5 tasks 0/1 ... 8/9),
    ``permuted-mnist`` (``n_tasks`` permutations), ``split-digits`` (5 tasks of the 8x8 digits)."""
    from neuromodels.datasets.images import load_digits, load_mnist

    pairs = [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    if name == "split-mnist":
        return split_tasks(load_mnist(mnist_path), pairs, scenario=scenario, name=name)
    if name == "permuted-mnist":
        return permuted_tasks(load_mnist(mnist_path), n_tasks, scenario=scenario, seed=seed, name=name)
    if name == "split-digits":
        return split_tasks(load_digits(), pairs, scenario=scenario, name=name)
    raise ConfigError(f"benchmark must be one of {', '.join(BENCHMARKS)}, got {name!r}")

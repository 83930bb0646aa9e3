"""A named benchmark run with several methods and seeds: what the ``continual`` command and the reproductions call."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuromodels.errors import ConfigError
from neuromodels.fitting.continual.sequence import (
    METHODS,
    ContinualResult,
    train_sequence,
)
from neuromodels.fitting.continual.tasks import (
    BENCHMARKS,
    PAPER_SETTINGS,
    SCENARIOS,
    TaskSequence,
    benchmark,
)

__all__ = ["BenchmarkRun", "build_model", "run_benchmark"]


@dataclass
class BenchmarkRun:
    """``results[label]``: one :class:`ContinualResult` per seed; ``settings``: everything the run used."""

    benchmark: str
    scenario: str
    settings: dict[str, Any]
    results: dict[str, list[ContinualResult]] = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, float]]:
        """Mean and s.d. over seeds of each metric, per label."""
        out = {}
        for label, runs in self.results.items():
            row: dict[str, float] = {"seeds": len(runs)}
            for key in runs[0].metrics:
                values = np.array([r.metrics[key] for r in runs], dtype=float)
                row[key] = float(values.mean())
                row[f"{key}_sd"] = float(values.std())
            out[label] = row
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "scenario": self.scenario,
            "settings": self.settings,
            "summary": self.summary(),
            "runs": {label: [r.as_dict() for r in runs] for label, runs in self.results.items()},
        }


def build_model(sequence: TaskSequence, hidden: Any, seed: int) -> Any:
    """The benchmark's MLP (:class:`~neuromodels.multihead.MultiHeadMLP`), initialised from ``seed``."""
    import torch

    from neuromodels.multihead import MultiHeadMLP

    torch.manual_seed(int(seed))
    return MultiHeadMLP(sequence.n_features, tuple(int(h) for h in hidden), sequence.heads)


def run_benchmark(
    name: str,
    scenario: str,
    methods: Any = ("si",),
    seeds: Any = (0,),
    *,
    c: Any = None,
    xi: float | None = None,
    lam: float = 100.0,
    gamma: float = 1.0,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    hidden: Any = None,
    n_tasks: int | None = None,
    si_options: dict[str, Any] | None = None,
    sequence: TaskSequence | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    device: str = "cpu",
) -> BenchmarkRun:
    """Train every method (and, for SI, every ``c`` when ``c`` is a list) on benchmark ``name`` for each seed.

    Unset hyperparameters take the paper's values (:data:`PAPER_SETTINGS`). Labels are the method names, or
    ``si c=<c>`` when ``c`` is a list. ``sequence`` replaces the named benchmark's tasks (a user's own).
    """
    if name not in BENCHMARKS and sequence is None:
        raise ConfigError(f"benchmark must be one of {', '.join(BENCHMARKS)}, got {name!r}")
    if scenario not in SCENARIOS:
        raise ConfigError(f"scenario must be one of {', '.join(SCENARIOS)}, got {scenario!r}")
    methods = [methods] if isinstance(methods, str) else list(methods)
    unknown = [m for m in methods if m not in METHODS]
    if not methods or unknown:
        raise ConfigError(f"method must be among {', '.join(METHODS)}, got {methods}")
    seeds = [int(s) for s in ([seeds] if isinstance(seeds, int) else seeds)]
    if not seeds:
        raise ConfigError("seeds must list at least one seed")
    preset = dict(PAPER_SETTINGS.get(name, PAPER_SETTINGS["split-mnist"]))
    cs = preset["c"] if c is None else c
    several_c = isinstance(cs, (list, tuple))
    cs = [float(v) for v in (cs if several_c else [cs])]
    settings = {
        "hidden": tuple(hidden or preset["hidden"]),
        "epochs": int(epochs or preset["epochs"]),
        "batch_size": int(batch_size or preset["batch_size"]),
        "lr": float(lr or preset["lr"]),
        "xi": float(preset["xi"] if xi is None else xi),
        "c": cs,
        "lam": float(lam),
        "gamma": float(gamma),
        "n_tasks": int(n_tasks or preset.get("n_tasks", 5)),
        "seeds": seeds,
        "methods": methods,
        "si_options": dict(si_options or {}),
    }
    for value, field_name in ((settings["xi"], "xi"),):
        if not value > 0:
            raise ConfigError(f"{field_name} must be > 0, got {value}")
    if any(v < 0 for v in cs):
        raise ConfigError(f"c must be >= 0, got {cs}")
    if settings["epochs"] < 1:
        raise ConfigError(f"epochs must be >= 1, got {settings['epochs']}")
    run = BenchmarkRun(name, scenario, settings)
    runs = [(m, cv) for m in methods for cv in (cs if m == "si" else [None])]
    for seed in seeds:
        tasks = sequence if sequence is not None else benchmark(name, scenario, n_tasks=settings["n_tasks"], seed=seed)
        for method, c_value in runs:
            label = f"si c={c_value:g}" if method == "si" and several_c else method
            folder = None if checkpoint_dir is None else Path(checkpoint_dir) / f"{label.replace(' ', '_')}-seed{seed}"
            model = build_model(tasks, settings["hidden"], seed)
            result = train_sequence(
                model,
                tasks,
                method,
                c=c_value if c_value is not None else 0.0,
                xi=settings["xi"],
                lam=lam,
                gamma=gamma,
                epochs=settings["epochs"],
                batch_size=settings["batch_size"],
                lr=settings["lr"],
                seed=seed,
                si_options=si_options,
                checkpoint_dir=folder,
                progress=progress,
                device=device,
            )
            run.results.setdefault(label, []).append(result)
    return run

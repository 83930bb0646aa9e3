"""Continual learning: Synaptic Intelligence (Zenke, Poole & Ganguli 2017), EWC, online EWC, fine-tuning and
joint training on task sequences, all trained by the one loop :func:`~neuromodels.fitting.fit`.

>>> from neuromodels.fitting.continual import benchmark, train_sequence
>>> from neuromodels.multihead import MultiHeadMLP
>>> tasks = benchmark("split-mnist", "task")
>>> model = MultiHeadMLP(tasks.n_features, (256, 256), tasks.heads)
>>> result = train_sequence(model, tasks, "si", c=1.0, xi=1e-3, epochs=10)
>>> result.metrics["average_accuracy"]

Names load on first access, so importing this package does not import torch.
"""

from __future__ import annotations

from neuromodels._lazy import lazy_attributes

_LAZY = {
    **dict.fromkeys(["SynapticIntelligence", "SI_PRESETS", "tracked_parameters"], "si"),
    **dict.fromkeys(["EWC", "diagonal_fisher"], "ewc"),
    **dict.fromkeys(
        [
            "TaskData",
            "Task",
            "TaskSequence",
            "split_tasks",
            "permuted_tasks",
            "benchmark",
            "BENCHMARKS",
            "SCENARIOS",
            "PAPER_SETTINGS",
        ],
        "tasks",
    ),
    **dict.fromkeys(["average_accuracy", "backward_transfer", "forgetting", "summarise"], "metrics"),
    **dict.fromkeys(
        ["train_sequence", "ContinualResult", "METHODS", "make_method", "evaluate_accuracy", "cross_entropy"],
        "sequence",
    ),
    **dict.fromkeys(["BenchmarkRun", "run_benchmark", "build_model"], "experiments"),
}

__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)

"""The small-scale reproductions of Nayebi et al. 2018 (arXiv:1807.00053), run by the slow tests and plotted in
docs/convrnn.md.

* :func:`memory_task_comparison`: the cell comparison at matched parameter counts: MNIST shown for
  ``image_steps`` steps then removed, read out later, so that the answer has to be held in the recurrent state;
  :func:`write_memory_task_report` writes its table and bar chart.
* :func:`dynamics_demo`: time course of per-bin predictivity (:mod:`neuromodels.analysis.temporal_predictivity`)
  of ConvRNNs trained on digits, for a synthetic "brain" made from another ConvRNN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuromodels._figures import new_figure, save_figure
from neuromodels._reports import write_json
from neuromodels.analysis.temporal_predictivity import plot_time_courses, synthetic_assembly, temporal_predictivity
from neuromodels.convrnn.cells import MEDIAN_RGC_OPTIONS
from neuromodels.convrnn.model import ConvRNN, LayerSpec, count_parameters
from neuromodels.fitting.classification import accuracy, image_task, match_width, train_classifier

__all__ = ["MEMORY_TASK_CELLS", "memory_task_comparison", "write_memory_task_report", "dynamics_demo"]

# "rgc_median": the authors' searched median RGC (cells.MEDIAN_RGC_OPTIONS) with its bypass on and c as wide as h
MEMORY_TASK_CELLS = ("feedforward", "vanilla", "lstm", "time_decay", "rgc", "rgc_median")


def _memory_task_model(
    cell: str, width: float, base_channels: Sequence[int], steps: int, image_steps: int, readout_step: int | None = None
) -> ConvRNN:
    channels = [max(1, int(round(width * c))) for c in base_channels]
    pools = [2, 2] + [1] * (len(channels) - 2)
    if cell == "rgc_median":
        layers = [
            LayerSpec(c, 3, p, cell_options={**MEDIAN_RGC_OPTIONS, "cell_channels": c}, bypass=True)
            for c, p in zip(channels, pools)
        ]
        cell = "rgc"
    else:
        layers = [LayerSpec(c, 3, p) for c, p in zip(channels, pools)]
    return ConvRNN(layers, cell=cell, steps=steps, image_steps=image_steps, readout_step=readout_step, num_classes=10)


def memory_task_comparison(
    *,
    cells: Sequence[str] = MEMORY_TASK_CELLS,
    seeds: Sequence[int] = (0, 1, 2),
    base_channels: Sequence[int] = (8, 16, 16),
    image_steps: int = 2,
    steps: int = 5,
    n_train: int = 2000,
    n_valid: int = 500,
    n_test: int = 1000,
    size: int = 14,
    epochs: int = 3,
    lr: float = 3e-3,
    batch_size: int = 64,
    dataset: str = "mnist",
    path: Any = None,
    progress: bool = False,
) -> dict[str, Any]:
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
                lambda w, c=cell, r=readout: _memory_task_model(c, w, base_channels, steps, image_steps, r), target
            )
            torch.manual_seed(seed)
            model = _memory_task_model(cell, width, base_channels, steps, image_steps, readout)
            n_params = count_parameters(model)
            channels = [layer.channels for layer in model.layers]
            train_classifier(
                model,
                data["train"],
                data["valid"],
                epochs=epochs,
                lr=lr,
                batch_size=batch_size,
                seed=seed,
                progress=progress,
            )
            accs.append(accuracy(model, data["test"]))
        values = np.asarray(accs)
        table[label] = {
            "mean": float(values.mean()),
            "sem": float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan,
            "accuracies": [float(a) for a in accs],
            "parameters": int(n_params),
            "channels": channels,
        }
    settings = {
        "dataset": dataset,
        "size": size,
        "image_steps": image_steps,
        "steps": steps,
        "readout_step": steps - 1,
        "base_channels": list(base_channels),
        "target_parameters": int(target),
        "n_train": n_train,
        "n_valid": n_valid,
        "n_test": n_test,
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "seeds": list(seeds),
    }
    return {"table": table, "settings": settings}


def write_memory_task_report(result: dict[str, Any], out: Any) -> dict[str, str]:
    """Write ``convrnn_memory_task.json`` (table + settings) and ``convrnn_memory_task.png`` (bar chart with
    s.e.m. error bars) into the folder ``out``, atomically. Returns ``{"json": path, "png": path}``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "convrnn_memory_task.json", "png": out / "convrnn_memory_task.png"}
    write_json(paths["json"], result)
    labels = list(result["table"])
    means = [result["table"][k]["mean"] for k in labels]
    sems = [result["table"][k]["sem"] for k in labels]
    fig, ax = new_figure(figsize=(7.5, 3.2))
    colors = ["0.6" if k.startswith("feedforward") else "C3" if k.startswith("rgc") else "C0" for k in labels]
    ax.bar(range(len(labels)), means, yerr=sems, color=colors, capsize=4)
    for i, k in enumerate(labels):
        ax.plot([i] * len(result["table"][k]["accuracies"]), result["table"][k]["accuracies"], "k.", ms=4)
    ax.axhline(0.1, color="k", lw=0.8, ls=":", label="chance")
    ax.set_xticks(range(len(labels)), [f"{k}\n{result['table'][k]['parameters']} par." for k in labels], fontsize=7)
    st = result["settings"]
    ax.set_ylabel("test accuracy")
    ax.set_title(
        f"{st['dataset']} {st['size']}px shown {st['image_steps']} of {st['steps']} steps, "
        f"read out at step {st['readout_step']}",
        fontsize=8,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, paths["png"])
    return {k: str(v) for k, v in paths.items()}


def dynamics_demo(out: Any = None, *, epochs: int = 3, seed: int = 0) -> dict[str, Any]:
    """Time course of predictivity of an RGC, an LSTM and a feedforward ConvRNN for a synthetic "brain".

    No time-resolved ventral-stream recording ships with the project, so the "brain" is another RGC ConvRNN
    with feedback (its own seed, trained on digits like the candidates) and the assembly is
    :func:`synthetic_assembly` of its layer 1 at steps 1-5 (10 ms per step). The candidates (2 layers, same
    schedule: image for 3 of 6 steps) are trained on digits, then scored per time bin (ridge, 5 splits).
    This demonstrates the pipeline; it is not evidence about the real ventral stream.
    Returns ``{"scores": {label: Dataset}, "figure": path or None}``.
    """
    data = image_task("digits", n_valid=300, n_test=400, seed=seed)
    images = data["test"][0]
    ids = [f"digit-test-{i:03d}" for i in range(len(images))]

    def trained(cell: str, model_seed: int, feedback=()):
        torch.manual_seed(model_seed)
        model = ConvRNN(
            [LayerSpec(8, 3, 2), LayerSpec(16, 3, 2)], cell=cell, feedback=list(feedback), steps=6, image_steps=3
        )
        train_classifier(model, data["train"], data["valid"], epochs=epochs, lr=1e-2, seed=model_seed)
        return model

    brain = trained("rgc", seed + 100, feedback=[(1, 0)])
    neural = synthetic_assembly(brain, images, layer=1, stimulus_ids=ids, noise=0.5, seed=seed)
    scores = {}
    for label, cell in (("RGC", "rgc"), ("LSTM", "lstm"), ("feedforward", "feedforward")):
        model = trained(cell, seed)
        scores[label] = temporal_predictivity(
            model,
            images,
            neural,
            stimulus_ids=ids,
            ms_per_step=10.0,
            regression="ridge",
            n_splits=5,
            stratify_coord=None,
        )
    figure = None
    if out is not None:
        figure = plot_time_courses(
            scores, out, title="synthetic brain: layer 1 of another RGC ConvRNN (digits, image on for 30 ms)"
        )
    return {"scores": scores, "figure": figure}

"""``neuromodels fit``: train retina models on a recording, evaluate them on its test split, write a report.

    neuromodels fit --data sample:retina --model cnn,ln --out reports/retina

trains each model on the ``train`` split (early stopping on held-out blocks of it), evaluates on the
repeated ``test`` trials (per-cell CC, CC_max ceiling, CC_norm, FEV, FEVE), prints a per-cell table (one
column per model beside the ceiling) and writes under ``--out``:

* ``report.json``: data, per-cell metrics of every model, medians, training histories, all parameters;
* ``cc_vs_ceiling.png`` and ``test_traces.png``;
* ``<model>/filters.png`` (first-layer spatial filters at their peak lag, or the LN/GLM filters),
  ``<model>/model.pt`` (the fitted estimator, :meth:`RetinaEstimator.load`) and
  ``<model>/training/checkpoint.pt`` (the training loop's checkpoint: rerunning the same command resumes).

Every file is written atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

MODEL_KINDS = ("cnn", "ln", "glm")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "fit",
        help="train CNN / LN / GLM retina models and report them against the noise ceiling",
        description="Train retina models (McIntosh et al. 2016 CNN, LN, GLM) on a recording's train split, "
        "evaluate them on its repeated test trials and write a report folder.",
    )
    parser.add_argument("--data", required=True, help="recording file (any supported format) or sample:retina")
    parser.add_argument(
        "--model", default="cnn", help="cnn, ln or glm, or several separated by commas (e.g. cnn,ln) to compare them"
    )
    parser.add_argument("--epochs", type=int, default=None, help="maximum epochs (default: 10)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (weights, shuffling, noise)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: cnn and glm 1e-3, ln 1e-4)")
    parser.add_argument("--patience", type=int, default=3, help="early-stopping patience in epochs (default 3)")
    parser.add_argument("--history", type=int, default=40, help="frames of stimulus history (default 40)")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="[MODEL.]KEY=VALUE",
        help="a model parameter (JSON value), for every model or one: --param cnn.channels=[16,8] "
        "--param ln.rank=2 --param glm.spike_history=30",
    )
    parser.add_argument("--bin-size", type=float, default=None, help="bin width (s) for spike-time sources")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    parser.add_argument("--out", default="reports/fit", help="report folder (default: reports/fit)")
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars (default: bars when stderr is a terminal)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of the table")
    parser.set_defaults(handler=_run)


def _parse_models(text: str) -> list[str]:
    from neuromodels.errors import ConfigError

    kinds = [k.strip().lower() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in MODEL_KINDS]
    if not kinds or unknown:
        raise ConfigError(f"--model must be {', '.join(MODEL_KINDS)} or a comma list of them, got {text!r}")
    if len(set(kinds)) != len(kinds):
        raise ConfigError(f"--model lists a model twice: {text!r}")
    return kinds


# estimator arguments that the command's own options set: a --param for them would pass the keyword twice
OWN_OPTIONS = {
    "history": "--history",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "lr": "--lr",
    "patience": "--patience",
    "seed": "--seed",
    "device": "--device",
    "progress": "--no-progress",
    "checkpoint_dir": "--out",
    "kind": "--model",
}


def _parse_params(items: list[str], kinds: list[str]) -> dict[str, dict[str, Any]]:
    """``{model kind: {parameter: value}}`` from ``[MODEL.]KEY=VALUE`` items (JSON values, else strings)."""
    from neuromodels.errors import ConfigError

    params: dict[str, dict[str, Any]] = {kind: {} for kind in kinds}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--param expects [MODEL.]KEY=VALUE, got {item!r}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text  # a bare string such as nonlinearity=exp
        target, dot, name = key.partition(".")
        option = OWN_OPTIONS.get(name if dot else key)
        if option is not None:
            raise ConfigError(
                f"--param {item!r}: '{name if dot else key}' is set by the command's own option "
                f"{option}; use that instead"
            )
        if dot:
            if target not in MODEL_KINDS:
                raise ConfigError(f"--param {item!r}: {target!r} is not a model ({', '.join(MODEL_KINDS)})")
            if target in params:
                params[target][name] = value
        else:
            for kind in kinds:
                params[kind][key] = value
    return params


def _check_arguments(args: argparse.Namespace) -> None:
    from neuromodels.errors import ConfigError

    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {args.epochs}")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.lr is not None and not args.lr > 0:
        raise ConfigError(f"--lr must be > 0, got {args.lr}")
    if args.history < 1:
        raise ConfigError(f"--history must be >= 1, got {args.history}")
    if args.patience < 1:
        raise ConfigError(f"--patience must be >= 1, got {args.patience}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    _check_device(args.device)


def _check_device(name: str) -> None:
    """A torch device this machine has: ``cuda`` without CUDA is a ConfigError, not an assertion deep in torch."""
    import torch

    from neuromodels.errors import ConfigError

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"--device {name!r} is not a torch device (cpu, cuda, cuda:0, mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {name}: this machine has no CUDA device available to torch "
                "(torch.cuda.is_available() is False); use --device cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError(f"--device {name}: MPS is not available on this machine; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"--device {name}: use cpu, cuda or mps")


def _load_recording(args: argparse.Namespace) -> Any:
    import xarray as xr

    from neuromodels.datasets import load
    from neuromodels.errors import DataFormatError

    options = {} if args.bin_size is None else {"bin_size": args.bin_size}
    rec = load(args.data, **options)
    if not isinstance(rec, xr.Dataset) or "stimulus" not in rec:
        raise DataFormatError(
            file=args.data,
            field="stimulus",
            expected="a continuous recording with stimulus(time, y, x) and response(time, cell)",
            found="an assembly" if isinstance(rec, xr.DataArray) else "no stimulus",
        )
    if "split" not in rec.coords or not {"train", "test"} <= set(map(str, rec["split"].values)):
        raise DataFormatError(
            file=args.data,
            field="split",
            expected="a 'split' coordinate on time with 'train' and 'test' bins",
            found="none" if "split" not in rec.coords else sorted(set(map(str, rec["split"].values))),
        )
    if "trials" not in rec:
        raise DataFormatError(
            file=args.data,
            field="trials",
            expected="repeated test trials(repeat, time, cell) for the noise ceiling",
            found="none",
        )
    return rec


def _metrics_json(metrics: Any) -> dict[str, Any]:
    from neuromodels._reports import jsonable

    return {name: jsonable(metrics[name].values.tolist()) for name in ("cc", "cc_max", "cc_norm", "fev", "feve")}


def _summary(metrics: Any) -> dict[str, Any]:
    import numpy as np

    from neuromodels._reports import jsonable

    out = {}
    for name in ("cc", "cc_norm", "feve"):
        values = np.asarray(metrics[name].values, dtype=float)
        out[f"median_{name}"] = jsonable(float(np.nanmedian(values)) if np.isfinite(values).any() else float("nan"))
        out[f"mean_{name}"] = jsonable(float(np.nanmean(values)) if np.isfinite(values).any() else float("nan"))
    return out


def format_table(cells: list[str], cell_types: list[str] | None, metrics: dict[str, Any]) -> str:
    """Per-cell test CC of each model beside the ceiling CC_max, and the medians, as aligned text."""
    import numpy as np

    names = list(metrics)
    ceiling = np.asarray(next(iter(metrics.values()))["cc_max"].values, dtype=float)
    header = ["cell"] + (["type"] if cell_types else []) + [f"CC {n.upper()}" for n in names] + ["ceiling"]
    header += [f"CC_norm {n.upper()}" for n in names]
    rows = []
    for i, cell in enumerate(cells):
        row = [cell] + ([cell_types[i]] if cell_types else [])
        row += [f"{float(metrics[n]['cc'].values[i]):.3f}" for n in names]
        row += [f"{ceiling[i]:.3f}"]
        row += [f"{float(metrics[n]['cc_norm'].values[i]):.3f}" for n in names]
        rows.append(row)
    med = ["median"] + ([""] if cell_types else [])
    med += [f"{np.nanmedian(metrics[n]['cc'].values):.3f}" for n in names] + [f"{np.nanmedian(ceiling):.3f}"]
    med += [f"{np.nanmedian(metrics[n]['cc_norm'].values):.3f}" for n in names]
    widths = [max(len(str(r[j])) for r in [header, *rows, med]) for j in range(len(header))]
    line = "  ".join("-" * w for w in widths)

    def fmt(r: list[str]) -> str:
        return "  ".join(str(v).rjust(w) if j else str(v).ljust(w) for j, (v, w) in enumerate(zip(r, widths)))

    return "\n".join([fmt(header), line, *map(fmt, rows), line, fmt(med)])


def _run(args: argparse.Namespace) -> int:
    from neuromodels._outputs import check_out_folder

    _check_arguments(args)
    kinds = _parse_models(args.model)
    params = _parse_params(args.param, kinds)
    out = check_out_folder(args.out)
    rec = _load_recording(args)

    from neuromodels._outputs import ReportFolder
    from neuromodels._reports import print_json, write_json
    from neuromodels.analysis.plots_retina import plot_cc_vs_ceiling, plot_test_traces, save_figure
    from neuromodels.analysis.retina_metrics import repeated_trials
    from neuromodels.datasets.recording import split

    with ReportFolder(out, "fit") as folder:
        cells = [str(c) for c in rec["cell"].values]
        cell_types = [str(t) for t in rec["cell_type"].values] if "cell_type" in rec.coords else None
        test = split(rec, "test")
        trials = repeated_trials(rec)
        trial_mean = trials.mean("repeat")
        frame_rate = float(rec.attrs.get("frame_rate_hz", 100.0))

        report = _report_header(args, rec, cells, cell_types, trials)
        all_metrics: dict[str, Any] = {}
        predictions: dict[str, Any] = {}
        for kind in kinds:
            all_metrics[kind], predictions[kind] = _fit_model(args, kind, params[kind], rec, test, folder, report)
        _add_ceiling(report, all_metrics)
        save_figure(
            plot_cc_vs_ceiling({k.upper(): m for k, m in all_metrics.items()}), folder.path("cc_vs_ceiling.png")
        )
        save_figure(
            plot_test_traces({k.upper(): p for k, p in predictions.items()}, trial_mean, frame_rate_hz=frame_rate),
            folder.path("test_traces.png"),
        )
        report["figures"] += ["cc_vs_ceiling.png", "test_traces.png"]
        write_json(folder.path("report.json"), report)

    if args.json:
        print_json(report)
    else:
        _print_summary(report, kinds, cells, cell_types, all_metrics, out)
    return 0


def _report_header(
    args: argparse.Namespace, rec: Any, cells: list[str], cell_types: list[str] | None, trials: Any
) -> dict[str, Any]:
    """The report's inputs; ``models`` and ``figures`` fill in as each model is fitted."""
    return {
        "arguments": {k: v for k, v in vars(args).items() if k not in ("handler", "command")},
        "data": str(args.data),
        "source": str(rec.attrs.get("source")),
        "cells": cells,
        "cell_type": cell_types,
        "n_test_bins": int(trials.sizes["time"]),
        "n_repeats": int(trials.sizes["repeat"]),
        "models": {},
        "figures": [],
    }


def _fit_model(
    args: argparse.Namespace,
    kind: str,
    model_params: dict[str, Any],
    rec: Any,
    test: Any,
    folder: Any,
    report: dict[str, Any],
) -> tuple[Any, Any]:
    """Fit one model kind, save it and its filter figure, add its entry to ``report``; return its test metrics
    and its test prediction."""
    from neuromodels._reports import jsonable
    from neuromodels.analysis.plots_retina import plot_filters, save_figure
    from neuromodels.analysis.retina_metrics import retina_test_metrics
    from neuromodels.fitting.estimator import RetinaEstimator
    from neuromodels.retina import count_parameters

    estimator = RetinaEstimator(
        kind,
        history=args.history,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        seed=args.seed,
        device=args.device,
        progress=False if args.no_progress else None,
        checkpoint_dir=folder.keep(f"{kind}/training/checkpoint.pt").parent,
        **model_params,
    )
    if not args.no_progress:
        print(f"fitting {kind.upper()} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    estimator.fit(rec)
    fit_seconds = time.perf_counter() - started
    metrics = estimator.evaluate(rec, retina_test_metrics)
    prediction = estimator.predict(test)
    estimator.save(folder.path(f"{kind}/model.pt"))
    model = estimator.model_
    filters = model.first_layer_filters if kind == "cnn" else model.filters
    labels = [f"ch{i}" for i in range(len(filters))] if kind == "cnn" else report["cells"]
    title = "CNN first-layer filters" if kind == "cnn" else f"{kind.upper()} stimulus filters"
    frame_rate = float(rec.attrs.get("frame_rate_hz", 100.0))
    save_figure(
        plot_filters(filters, title=title, labels=labels, frame_rate_hz=frame_rate),
        folder.path(f"{kind}/filters.png"),
    )
    report["figures"].append(f"{kind}/filters.png")
    report["models"][kind] = {
        "parameters": jsonable(estimator.get_params()),
        "model_config": jsonable(model.config()),
        "n_parameters": count_parameters(model, trainable_only=False),
        "fit_seconds": fit_seconds,
        "epochs_run": len(estimator.history_),
        "metrics": _metrics_json(metrics),
        "summary": _summary(metrics),
        "history": jsonable(estimator.history_.as_dict()),
        "model_file": f"{kind}/model.pt",
        "checkpoint": f"{kind}/training/checkpoint.pt",
    }
    return metrics, prediction


def _add_ceiling(report: dict[str, Any], all_metrics: dict[str, Any]) -> None:
    """The noise ceiling (the same for every model: it is a property of the data), from the first model's metrics."""
    from neuromodels._reports import jsonable

    first = next(iter(all_metrics.values()))
    report["ceiling"] = {
        "method": "cc_max (Schoppe et al. 2016)",
        "cc_max": jsonable(first["cc_max"].values.tolist()),
        "fev": jsonable(first["fev"].values.tolist()),
    }


def _print_summary(
    report: dict[str, Any],
    kinds: list[str],
    cells: list[str],
    cell_types: list[str] | None,
    all_metrics: dict[str, Any],
    out: Any,
) -> None:
    print(format_table(cells, cell_types, all_metrics))
    for kind in kinds:
        info = report["models"][kind]
        print(
            f"{kind.upper()}: {info['epochs_run']} epochs in {info['fit_seconds']:.0f} s, "
            f"median CC {info['summary']['median_cc']:.3f}, median CC_norm {info['summary']['median_cc_norm']:.3f}"
        )
    print(f"report: {out / 'report.json'} (figures: {', '.join(report['figures'])})")

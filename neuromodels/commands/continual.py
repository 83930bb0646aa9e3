"""``neuromodels continual``: train a network on a task sequence with SI / EWC / fine-tuning / joint training.

    neuromodels continual --benchmark split-mnist --scenario task --method si,finetune --seeds 0,1,2 --out DIR

Unset hyperparameters take the SI paper's values for the benchmark (``PAPER_SETTINGS``). Writes under ``--out``:

* ``report.json``: settings, per method and seed the accuracy matrix R[i, j], average accuracy, backward
  transfer, forgetting, the training histories, and the mean +- s.d. over seeds;
* ``accuracy_<method>.png`` (heat map of seed 0's R), ``task_accuracies.png`` (each task across the sequence,
  all methods), ``importance_<method>.png`` (per-layer histogram of Omega or the EWC precision, seed 0);
* ``checkpoints/<method>-seed<s>/``: training checkpoints; rerunning the same command resumes.

Every file is written atomically; a failed run leaves ``--out`` as it was.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

BENCHMARK_CHOICES = ("split-mnist", "permuted-mnist", "split-digits")
SCENARIO_CHOICES = ("task", "domain", "class")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "continual",
        help="continual learning: Synaptic Intelligence, EWC, fine-tuning, joint training",
        description="Train an MLP on a sequence of tasks (split/permuted MNIST, split 8x8 digits) with Synaptic "
        "Intelligence (Zenke et al. 2017) or a baseline, and report the accuracy matrix and forgetting.",
    )
    parser.add_argument("--benchmark", required=True, choices=BENCHMARK_CHOICES)
    parser.add_argument(
        "--scenario",
        default="task",
        choices=SCENARIO_CHOICES,
        help="task-incremental (multi-head), domain- or class-incremental (default task)",
    )
    parser.add_argument(
        "--method", default="si", help="si, ewc, online-ewc, finetune, joint, or several separated by commas"
    )
    parser.add_argument("--c", default=None, help="SI strength, or a comma list to compare (default: paper's)")
    parser.add_argument(
        "--xi", type=float, default=None, help="SI damping (default: the paper's for the benchmark, also with --preset)"
    )
    parser.add_argument(
        "--preset",
        default="pathint",
        choices=("pathint", "avalanche", "van-de-ven"),
        help="SI conventions: the authors' rule (default) or a PyTorch peer's",
    )
    parser.add_argument("--lam", type=float, default=100.0, help="EWC strength (default 100)")
    parser.add_argument("--gamma", type=float, default=1.0, help="online EWC decay (default 1)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per task (default: paper's)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--hidden", default=None, help="hidden widths, e.g. 256,256 (default: paper's)")
    parser.add_argument("--n-tasks", type=int, default=None, help="permuted-mnist: number of tasks (default 10)")
    parser.add_argument("--seeds", default="0", help="comma list of seeds (default 0)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", required=True, help="report folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of the table")
    parser.set_defaults(handler=_run)


def _numbers(text: str | None, name: str, kind: type) -> list[Any] | None:
    from neuromodels.errors import ConfigError

    if text is None:
        return None
    try:
        values = [kind(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{name} expects a comma list of {kind.__name__}s, got {text!r}") from None
    if not values:
        raise ConfigError(f"{name} is empty")
    return values


def _run(args: argparse.Namespace) -> int:
    from neuromodels._outputs import ReportFolder, check_out_folder

    methods, seeds, cs, hidden = _check_args(args)
    out = check_out_folder(args.out)

    from neuromodels._reports import print_json, write_json
    from neuromodels.fitting.continual import run_benchmark

    progress = False if args.no_progress else None
    with ReportFolder(out, "continual") as folder:
        marker = folder.keep("checkpoints/README.txt")
        marker.write_text("Training checkpoints of `neuromodels continual`: rerunning the same command resumes.\n")
        checkpoints = marker.parent
        run = run_benchmark(
            args.benchmark,
            args.scenario,
            methods,
            seeds,
            c=cs if cs is None or len(cs) > 1 else cs[0],
            xi=args.xi,
            lam=args.lam,
            gamma=args.gamma,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            hidden=hidden,
            n_tasks=args.n_tasks,
            si_options={"preset": args.preset},
            checkpoint_dir=checkpoints,
            progress=progress,
            device=args.device,
        )
        report = {
            "arguments": {k: v for k, v in vars(args).items() if k not in ("handler", "command")},
            **run.as_dict(),
            "figures": [],
        }
        report["figures"] += _save_figures(args, run, folder)
        write_json(folder.path("report.json"), report)

    if args.json:
        print_json(report)
    else:
        _print_summary(args, seeds, run, out)
    return 0


def _check_args(args: argparse.Namespace) -> tuple[list[str], list[int], list[float] | None, list[int] | None]:
    """The methods, seeds, ``c`` values and hidden widths of the command line; ConfigError on a bad value."""
    from neuromodels.errors import ConfigError

    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    seeds = _numbers(args.seeds, "--seeds", int)
    cs = _numbers(args.c, "--c", float)
    hidden = _numbers(args.hidden, "--hidden", int)
    if cs is not None and any(c < 0 for c in cs):
        raise ConfigError(f"--c must be >= 0, got {args.c}")
    if args.xi is not None and not args.xi > 0:
        raise ConfigError(f"--xi must be > 0, got {args.xi}")
    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {args.epochs}")
    if any(seed < 0 for seed in seeds):
        raise ConfigError(f"--seeds must be >= 0, got {args.seeds!r}")
    if hidden is not None and any(width < 1 for width in hidden):
        raise ConfigError(f"--hidden widths must be >= 1, got {args.hidden!r}")
    if len(set(methods)) != len(methods):
        raise ConfigError(f"--method lists a method twice: {args.method!r}")
    from neuromodels.fitting.continual.sequence import METHODS

    if not methods or any(m not in METHODS for m in methods):
        raise ConfigError(f"--method must be {', '.join(METHODS)} or a comma list of them, got {args.method!r}")
    return methods, seeds, cs, hidden


def _save_figures(args: argparse.Namespace, run: Any, folder: Any) -> list[str]:
    """Each method's accuracy matrix (and importance, where it has one) and the per-task accuracies; return the
    file names in the order written."""
    from neuromodels._figures import save_figure
    from neuromodels.analysis.continual_plots import (
        plot_accuracy_matrix,
        plot_importance,
        plot_task_accuracies,
    )

    figures = []
    for label, results in run.results.items():
        name = label.replace(" ", "_").replace("=", "")
        save_figure(
            plot_accuracy_matrix(results[0].accuracy, title=f"{label}: accuracy (%)"),
            folder.path(f"accuracy_{name}.png"),
        )
        figures.append(f"accuracy_{name}.png")
        if results[0].importance:
            save_figure(plot_importance(results[0].importance), folder.path(f"importance_{name}.png"))
            figures.append(f"importance_{name}.png")
    save_figure(
        plot_task_accuracies(
            {k: [r.accuracy for r in v] for k, v in run.results.items()},
            title=f"{args.benchmark}, {args.scenario}-incremental",
        ),
        folder.path("task_accuracies.png"),
    )
    figures.append("task_accuracies.png")
    return figures


def _print_summary(args: argparse.Namespace, seeds: list[int], run: Any, out: Any) -> None:
    print(f"{args.benchmark} ({args.scenario}-incremental), seeds {seeds}")
    print(f"{'method':<14} {'avg acc':>9} {'BWT':>9} {'forgetting':>11}")
    for label, row in run.summary().items():
        print(
            f"{label:<14} {row['average_accuracy']:>9.4f} {row['backward_transfer']:>9.4f} {row['forgetting']:>11.4f}"
        )
    print(f"report: {out / 'report.json'}", file=sys.stdout)

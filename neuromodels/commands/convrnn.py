"""``neuromodels search`` and ``neuromodels train-convrnn``: ConvRNN architecture search and training.

``neuromodels search``: architecture search over ConvRNN cells and feedback (Optuna TPE + pruning).

    neuromodels search --space default --trials 20 --storage reports/search/search.journal --out reports/search

runs (or resumes: the storage keeps every trial) the search of :mod:`neuromodels.fitting.search` until the study
holds ``--trials`` finished trials, then writes ``trials.csv``, ``report.json`` and ``best_architectures.png``
under ``--out``. ``--storage`` is a journal file path (one machine) or an RDB URL (``sqlite:///search.db``,
``postgresql://user@host/db``): start the same command on several machines against one RDB to share a study.

    neuromodels train-convrnn --data digits --cell rgc --channels 8,16 --feedback 1:0 --epochs 3 --out reports/convrnn

trains one ConvRNN and writes ``report.json`` (test accuracy, history, config), ``model.pt`` (config + weights)
and ``learning_curve.png``; the training checkpoint in ``OUT/training`` makes a rerun resume. Under ``torchrun
--nproc_per_node=N neuromodels train-convrnn ...`` the N processes train data-parallel (``--batch-size`` per
process; :func:`neuromodels.fitting.fit`) and only rank 0 writes the report folder and prints.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from neuromodels._reports import print_json


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "search",
        help="search ConvRNN architectures (cells, gate biases, kernels, feedback) with Optuna",
        description="Architecture search over ConvRNN cells and long-range feedback (Nayebi et al. 2018) on an "
        "image task with Optuna's TPE sampler and a median pruner; resumes from --storage.",
    )
    parser.add_argument("--space", default="default", help="search space: 'default' or a .toml/.json file")
    parser.add_argument("--trials", type=int, default=20, help="finished trials the study should hold (default 20)")
    parser.add_argument(
        "--storage",
        default=None,
        help="journal file path or RDB URL (sqlite:///x.db, postgresql://...); default OUT/search.journal",
    )
    parser.add_argument("--study-name", default="convrnn", help="study name inside the storage (default convrnn)")
    parser.add_argument("--out", default="reports/search", help="report folder (default reports/search)")
    parser.add_argument("--seed", type=int, default=0, help="sampler and weight seed (default 0)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per trial (overrides the space)")
    parser.add_argument("--data", default=None, help="dataset of the space: mnist or digits (overrides the space)")
    parser.add_argument("--data-path", default=None, help="folder with the MNIST IDX files")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=_run)
    register_train(sub)


def _run(args: argparse.Namespace) -> int:
    from neuromodels._outputs import ReportFolder, check_out_folder
    from neuromodels.errors import ConfigError
    from neuromodels.fitting.search import load_space, run_search, write_report

    space = load_space(args.space)
    if args.data is not None:
        space["dataset"] = args.data
    if args.data_path is not None:
        space["data_path"] = args.data_path
    if args.trials < 1 or (args.epochs is not None and args.epochs < 1) or args.seed < 0:
        raise ConfigError(
            f"--trials and --epochs must be >= 1 and --seed >= 0, got {args.trials}, {args.epochs}, {args.seed}"
        )
    out = check_out_folder(args.out)
    with ReportFolder(out, "search") as folder:
        # the journal and the report files are written in place (each atomically): a rerun resumes the study
        storage = args.storage or str(folder.keep("search.journal"))
        for name in ("trials.csv", "report.json", "best_architectures.png"):
            folder.keep(name)
        started = time.perf_counter()
        study = run_search(
            space,
            trials=args.trials,
            storage=storage,
            study_name=args.study_name,
            seed=args.seed,
            epochs=args.epochs,
            progress=not args.no_progress,
        )
        elapsed = time.perf_counter() - started
        report = write_report(study, out, elapsed_s=elapsed)
    report["storage"] = storage
    if args.json:
        print_json(report)
    else:
        best = report["best"]
        print(
            f"study {report['study']!r} in {storage}: {report['finished']} finished trials "
            f"({report['counts']['complete']} complete, {report['counts']['pruned']} pruned, "
            f"{report['stale']} stale running), this run {elapsed:.1f} s"
        )
        if best:
            print(f"best: trial {best['number']} validation accuracy {best['value']:.4f} params {best['params']}")
        print(f"wrote {', '.join(report['files'].values())}", file=sys.stderr)
    return 0


def register_train(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train-convrnn",
        help="train one ConvRNN (cell, channels, feedback) on MNIST or digits",
        description="Train a ConvRNN (Nayebi et al. 2018) on an image task with the framework's training loop "
        "and write a report folder (report.json, model.pt, learning_curve.png). Rerunning resumes.",
    )
    parser.add_argument("--data", default="digits", help="digits or mnist (default digits)")
    parser.add_argument("--data-path", default=None, help="folder with the MNIST IDX files")
    parser.add_argument("--size", type=int, default=None, help="resize images to SIZE x SIZE")
    parser.add_argument(
        "--cell",
        default="rgc",
        help="rgc, lstm, gru, ugrnn, intersection, time_decay, vanilla, feedforward (default rgc)",
    )
    parser.add_argument("--channels", default="8,16", help="channels per layer, comma-separated (default 8,16)")
    parser.add_argument("--pools", default=None, help="max-pool size per layer (default 2 for every layer)")
    parser.add_argument("--feedback", default="", help="feedback edges SOURCE:TARGET, comma-separated (e.g. 1:0)")
    parser.add_argument("--steps", type=int, default=6, help="unrolled time steps (default 6)")
    parser.add_argument("--image-steps", type=int, default=3, help="steps the image is shown (default 3)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-steps", action="store_true", help="gradient checkpointing over time steps")
    parser.add_argument("--out", default="reports/convrnn", help="report folder (default reports/convrnn)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (default: bars on a terminal)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=_train)


def _ints(text: str, name: str) -> list[int]:
    from neuromodels.errors import ConfigError

    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--{name} must be comma-separated integers, got {text!r}") from None


def _train(args: argparse.Namespace) -> int:
    import contextlib
    import os

    import torch

    from neuromodels._outputs import ReportFolder, check_out_folder
    from neuromodels._reports import write_json
    from neuromodels.convrnn import count_parameters
    from neuromodels.fitting.classification import accuracy, image_task, train_classifier

    _check_train_args(args)
    out = check_out_folder(args.out)
    model = _build_model(args)
    n_valid, n_test = (300, 300) if args.data == "digits" else (1000, 2000)
    data = image_task(args.data, n_valid=n_valid, n_test=n_test, size=args.size, seed=0, path=args.data_path)
    # under torchrun (WORLD_SIZE > 1) the ranks train one model data-parallel and rank 0 alone writes the report
    world_size = _torchrun_world_size()
    main_rank = world_size == 1 or os.environ.get("RANK", "0") == "0"
    with ReportFolder(out, "train-convrnn") if main_rank else contextlib.nullcontext() as folder:
        checkpoints = folder.keep("training/checkpoint.pt").parent if main_rank else out / "training"
        started = time.perf_counter()
        history = train_classifier(
            model,
            data["train"],
            data["valid"],
            epochs=args.epochs,
            lr=args.lr,
            batch_size=args.batch_size,
            seed=args.seed,
            progress=False if args.no_progress else None,
            checkpoint_dir=checkpoints,
            distributed=True if world_size > 1 else "auto",
        )
        if world_size > 1 and torch.distributed.get_rank() != 0:
            _leave_process_group()  # waits for rank 0's report
            return 0
        test_accuracy = accuracy(model, data["test"])
        settings = {k: v for k, v in vars(args).items() if k != "handler"}
        settings["world_size"] = world_size
        report = {
            "test_accuracy": test_accuracy,
            "parameters": count_parameters(model),
            "config": model.config,
            "history": history.as_dict(),
            "seconds": time.perf_counter() - started,
            "data": args.data,
            "settings": settings,
        }
        _save_model_and_curve(args, model, history, test_accuracy, folder)
        write_json(folder.path("report.json"), report)
    if args.json:
        print_json(report)
    else:
        print(
            f"{args.cell} ConvRNN ({report['parameters']} parameters) on {args.data}: test accuracy "
            f"{test_accuracy:.4f} after {len(history)} epochs; wrote {out}/report.json, model.pt, learning_curve.png"
        )
    if world_size > 1:
        _leave_process_group()
    return 0


def _check_train_args(args: argparse.Namespace) -> None:
    from neuromodels.errors import ConfigError

    for name in ("epochs", "batch_size", "steps", "image_steps"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.lr > 0:
        raise ConfigError(f"--lr must be > 0, got {args.lr}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")


def _build_model(args: argparse.Namespace) -> Any:
    """The ConvRNN of ``--channels``, ``--pools``, ``--feedback``, ``--cell``..., initialised with ``--seed``."""
    import torch

    from neuromodels.convrnn import ConvRNN, LayerSpec
    from neuromodels.errors import ConfigError

    channels = _ints(args.channels, "channels")
    pools = _ints(args.pools, "pools") if args.pools else [2] * len(channels)
    if len(pools) != len(channels):
        raise ConfigError(f"--pools has {len(pools)} values for {len(channels)} layers")
    feedback = []
    for edge in filter(None, (e.strip() for e in args.feedback.split(","))):
        parts = edge.split(":")
        if len(parts) != 2:
            raise ConfigError(f"--feedback edges are SOURCE:TARGET, got {edge!r}")
        feedback.append(_ints(",".join(parts), "feedback"))
    torch.manual_seed(args.seed)
    return ConvRNN(
        [LayerSpec(c, 3, p) for c, p in zip(channels, pools)],
        cell=args.cell,
        feedback=feedback,
        steps=args.steps,
        image_steps=args.image_steps,
        checkpoint_steps=args.checkpoint_steps,
    )


def _save_model_and_curve(
    args: argparse.Namespace, model: Any, history: Any, test_accuracy: float, folder: Any
) -> None:
    """``model.pt`` (config and weights) and ``learning_curve.png`` (validation accuracy per epoch)."""
    import torch

    from neuromodels._figures import new_figure, save_figure

    torch.save({"config": model.config, "state_dict": model.state_dict()}, folder.path("model.pt"))
    fig, ax = new_figure(figsize=(4, 3))
    ax.plot(history["epoch"], history["valid_accuracy"], "o-")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"{args.cell} ConvRNN on {args.data}: test {test_accuracy:.3f}", fontsize=8)
    fig.tight_layout()
    save_figure(fig, folder.path("learning_curve.png"))


def _leave_process_group() -> None:
    """Every rank meets at a barrier, then leaves: a rank that tore down its gloo group while rank 0 was still
    writing the report was seen to abort (SIGABRT, "terminate called without an active exception")."""
    import torch.distributed as dist

    dist.barrier()
    dist.destroy_process_group()


def _torchrun_world_size() -> int:
    """The number of processes torchrun started (``WORLD_SIZE``), 1 outside torchrun."""
    import os

    from neuromodels.errors import ConfigError

    text = os.environ.get("WORLD_SIZE", "1")
    try:
        size = int(text)
    except ValueError:
        raise ConfigError(f"environment variable WORLD_SIZE must be an integer, got {text!r}") from None
    return max(size, 1)

"""``neuromodels walkback train|sample``: Variational Walkback (Goyal et al. 2017) and its baselines.

    neuromodels walkback train --data spiral --out reports/walkback --json
    neuromodels walkback train --data digits --hidden 256 256 --epochs 20 --out reports/walkback-digits
    neuromodels walkback sample --model reports/walkback/model.pt --n 64 --extra-steps 90 --out reports/samples

``train`` writes ``model.pt``, ``checkpoint.pt`` (a rerun with the same ``--out`` resumes), ``report.json``
(the bound per epoch, sample quality against held-out data for the operator and the baselines), ``bound.png``
and ``cooling.png`` (states along the cooling chain). ``sample`` writes ``samples.npy``, ``samples.png`` and
``report.json``. See docs/walkback.md.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from neuromodels._outputs import ReportFolder, check_out_folder
from neuromodels._reports import print_json, write_json

DATA_HELP = "spiral, circle, mog (generated 2-D), digits (8x8), mnist (../shared/data/mnist-t10k) or FILE.npy"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "walkback",
        help="Variational Walkback: learn a transition operator, sample by cooling",
        description="Learn a stochastic transition operator by heating and walking back "
        "(Goyal et al. 2017), or sample from a trained one.",
    )
    commands = parser.add_subparsers(dest="walkback_command", metavar="{train,sample}")
    commands.required = True
    train = commands.add_parser("train", help="train an operator and compare it with baselines")
    train.add_argument("--data", required=True, help=DATA_HELP)
    train.add_argument("--n", type=int, default=None, help="number of points (generated sets: 20000; mnist: all)")
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--batch-size", type=int, default=100)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--lr-decay", type=float, default=1.0, help="learning rate factor per epoch (default 1)")
    train.add_argument("--steps", type=int, default=30, help="heating steps K (default 30, the spiral script's)")
    train.add_argument("--steps-at-one", type=int, default=1, help="steps at T = 1 before heating (default 1)")
    train.add_argument("--temperature-factor", type=float, default=1.1, help="heating factor > 1 (default 1.1)")
    train.add_argument("--max-temperature", type=float, default=None, help="cap on T (default none)")
    train.add_argument("--sigma", type=float, default=0.1, help="scale of the operator's standard deviation")
    train.add_argument("--alpha", type=float, default=0.5, help="weight of the current state in the mean")
    train.add_argument("--hidden", type=int, nargs="+", default=[128, 128], help="hidden widths (or conv channels)")
    train.add_argument("--architecture", choices=("mlp", "conv"), default="mlp")
    train.add_argument("--fixed-sigma", action="store_true", help="do not learn the standard deviation")
    train.add_argument(
        "--per-step-norm",
        action="store_true",
        help="per-step batch normalisation (the authors' form; sample >= 2 at a time)",
    )
    train.add_argument(
        "--objective",
        choices=("paper", "released"),
        default="paper",
        help="paper: log p_T(s_{t-1} | s_t) (Algorithm 1); released: the authors' code's term",
    )
    train.add_argument(
        "--batch-updates",
        action="store_true",
        help="one update per heating walk instead of one per step (online, the default)",
    )
    train.add_argument(
        "--ema",
        type=float,
        default=None,
        metavar="DECAY",
        help="sample and evaluate with an exponential moving average of the weights, this decay per update "
        "(our addition, not the paper's; default: none)",
    )
    train.add_argument(
        "--diffusion-epochs",
        type=int,
        default=None,
        help="epochs of the diffusion baseline (default: --epochs x --steps, the operator's "
        "number of gradient updates; 0 skips it)",
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", default="reports/walkback", help="output folder (default: reports/walkback)")
    train.add_argument("--json", action="store_true", help="print the report as JSON")
    train.set_defaults(handler=_train)

    sample = commands.add_parser("sample", help="sample from a trained operator by cooling")
    sample.add_argument("--model", required=True, help="model.pt written by `neuromodels walkback train`")
    sample.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    sample.add_argument("--extra-steps", type=int, default=0, help="steps at T = 1 after cooling (default 0)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--out", default="reports/walkback-samples", help="output folder")
    sample.add_argument("--json", action="store_true", help="print the report as JSON")
    sample.set_defaults(handler=_sample)


def _check_settings(args: argparse.Namespace) -> None:
    from neuromodels.errors import ConfigError

    for name in ("epochs", "batch_size", "steps"):
        value = getattr(args, name)
        if value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.temperature_factor <= 1:
        raise ConfigError(f"--temperature-factor must be > 1 (the heating factor), got {args.temperature_factor}")
    if args.n is not None and args.n < 10:
        raise ConfigError(f"--n must be >= 10, got {args.n}")
    if args.diffusion_epochs is not None and args.diffusion_epochs < 0:
        raise ConfigError(f"--diffusion-epochs must be >= 0, got {args.diffusion_epochs}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    if args.ema is not None and not 0 < args.ema < 1:
        raise ConfigError(f"--ema must be in (0, 1) (a decay per update, e.g. 0.999), got {args.ema}")


def _train(args: argparse.Namespace) -> int:
    import torch

    from neuromodels.analysis.walkback_report import evaluate_walkback
    from neuromodels.datasets.generative import load_points, split_points
    from neuromodels.fitting.walkback import train_walkback

    _check_settings(args)
    out = check_out_folder(args.out)
    data = load_points(args.data, n=args.n, seed=args.seed)
    train_points, held_out = split_points(data, seed=args.seed)
    torch.manual_seed(args.seed)
    model = _new_operator(args, data)
    progress = None if sys.stderr.isatty() else False
    with ReportFolder(out, "walkback train") as folder:
        fit = train_walkback(
            model,
            train_points,
            held_out,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            lr_decay=args.lr_decay,
            objective=args.objective,
            online=not args.batch_updates,
            ema=args.ema,
            seed=args.seed,
            progress=progress,
            checkpoint_dir=folder.keep("checkpoint.pt").parent,
        )
        # the same number of gradient updates as the operator (one per heating step) unless told otherwise
        diffusion_epochs = args.epochs * args.steps if args.diffusion_epochs is None else args.diffusion_epochs
        evaluation = evaluate_walkback(
            fit.model,
            train_points,
            held_out,
            image_shape=data.image_shape,
            diffusion_epochs=diffusion_epochs,
            # images: the diffusion sampler clips its predicted images to the training data's range (Ho et al.)
            diffusion_box=None if data.image_shape is None else (float(train_points.min()), float(train_points.max())),
            batch_size=args.batch_size,
            seed=args.seed,
            progress=progress,
        )
        report: dict[str, Any] = {
            "data": data.source,
            "n_train": len(train_points),
            "n_held_out": len(held_out),
            "settings": {k: v for k, v in vars(args).items() if k not in ("handler", "json", "out")},
            "model": fit.model.config(),
            "schedule": fit.model.schedule,
            "history": fit.history.as_dict(),
            **evaluation.summary,
            "files": ["model.pt", "checkpoint.pt", "bound.png", "cooling.png", "report.json"],
        }
        _save_outputs(folder, fit, evaluation, data, held_out, report)
    if args.json:
        print_json(report)
    else:
        _print_summary(report, data, fit, out)
    return 0


def _new_operator(args: argparse.Namespace, data: Any) -> Any:
    """The untrained transition operator of the command line's architecture and schedule, for ``data``."""
    from neuromodels.walkback import TransitionOperator

    return TransitionOperator(
        data.dim,
        hidden=args.hidden,
        alpha=args.alpha,
        sigma=args.sigma,
        learn_sigma=not args.fixed_sigma,
        n_steps=args.steps,
        steps_at_one=args.steps_at_one,
        temperature_factor=args.temperature_factor,
        max_temperature=args.max_temperature,
        per_step_norm=args.per_step_norm,
        architecture=args.architecture,
        image_shape=data.image_shape,
    )


def _save_outputs(folder: Any, fit: Any, evaluation: Any, data: Any, held_out: Any, report: dict[str, Any]) -> None:
    """``model.pt``, ``bound.png``, ``cooling.png`` and ``report.json`` into the report folder."""
    from neuromodels._figures import save_figure
    from neuromodels.analysis.walkback_report import plot_bound, plot_cooling_chain
    from neuromodels.fitting.walkback import save_walkback_model

    save_walkback_model(fit.model, folder.path("model.pt"), {"data": data.source})
    save_figure(plot_bound(fit.history), folder.path("bound.png"))
    save_figure(plot_cooling_chain(evaluation.chain, data.image_shape, reference=held_out), folder.path("cooling.png"))
    write_json(folder.path("report.json"), report)


def _print_summary(report: dict[str, Any], data: Any, fit: Any, out: Any) -> None:
    bound = report["held_out_bound"]
    print(
        f"Variational Walkback on {data.source}: held-out bound {bound:.3f} nats/example after "
        f"{len(fit.history)} epochs -> {out}"
    )
    for name, row in report["comparison"].items():
        print(f"  {name:>10}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float)))


def _sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from neuromodels._figures import save_figure
    from neuromodels.analysis.walkback_report import plot_cooling_chain
    from neuromodels.datasets._io import atomic_path
    from neuromodels.errors import ConfigError
    from neuromodels.fitting.walkback import load_walkback_model

    if args.n < 1:
        raise ConfigError(f"--n must be >= 1, got {args.n}")
    if args.extra_steps < 0:
        raise ConfigError(f"--extra-steps must be >= 0, got {args.extra_steps}")
    out = check_out_folder(args.out)
    model = load_walkback_model(args.model)
    chain = model.generate(args.n, extra_steps=args.extra_steps, generator=torch.Generator().manual_seed(args.seed))
    samples = chain[-1].numpy()
    report = {
        "model": str(args.model),
        "n": args.n,
        "extra_steps": args.extra_steps,
        "seed": args.seed,
        "chain_length": len(chain) - 1,
        "mean": samples.mean(0)[:8],
        "std": samples.std(0)[:8],
        "files": ["samples.npy", "samples.png", "report.json"],
    }
    image_shape = None if model.image_shape is None else model.image_shape
    with ReportFolder(out, "walkback sample") as folder:
        with atomic_path(folder.path("samples.npy"), suffix=".npy") as tmp:
            np.save(tmp, samples)
        save_figure(plot_cooling_chain([c.numpy() for c in chain], image_shape), folder.path("samples.png"))
        write_json(folder.path("report.json"), report)
    if args.json:
        print_json(report)
    else:
        print(f"{args.n} samples after {len(chain) - 1} steps ({args.extra_steps} at T = 1) -> {out}")
    return 0

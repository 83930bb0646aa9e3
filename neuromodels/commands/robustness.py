"""``neuromodels robustness``: attack a classifier, and say whether its robustness is real or masked gradients.

    neuromodels robustness --train mlp --saturation 0.01 --attacks fgsm,bim,pgd,ll,spsa --eps 0.05,0.1,0.2,0.3 \\
        --out reports/robustness
    neuromodels robustness --model reports/robustness/model.pt --attacks pgd,spsa --loss margin --float64 --json

``--train mlp|cnn`` trains a network on ``../shared/data/mnist-t10k`` (first ``--n-train`` images; the
saturation penalty of Nayebi & Ganguli 2017 with ``--saturation LAMBDA > 0``) and writes it as ``model.pt``;
``--model PATH`` loads one (a ``model.pt`` of this command, or any TorchScript classifier of ``(n, 1, 28, 28)``
images in [0, 1]). The attacks run on ``--n-attack`` test images (``--data FILE.npz`` with arrays ``x`` and
``y`` replaces them). The report folder holds ``report.json`` (clean accuracy, accuracy against epsilon per
attack, the masking verdict ``gradient_masking_suspected`` with its reasons, saturation and kurtosis tables),
``accuracy.png`` and ``examples.png`` (adversarial images at the largest epsilon).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from neuromodels._reports import print_json

MODEL_FORMAT = "neuromodels.robustness-model/1"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "robustness",
        help="adversarial attacks, accuracy against epsilon and a gradient-masking check",
        description="Attack a classifier with FGSM, BIM, PGD, least-likely, L-BFGS and SPSA; report accuracy against "
        "epsilon, saturation, weight kurtosis and whether gradient masking is suspected (Athalye et "
        "al. 2018). Trains saturating networks (Nayebi & Ganguli 2017) with --train.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--train", choices=("mlp", "cnn"), help="train this network on MNIST first")
    source.add_argument("--model", help="model.pt of this command or a TorchScript classifier")
    parser.add_argument("--saturation", type=float, default=0.0, help="lambda of the saturation penalty (default 0)")
    parser.add_argument("--nonlinearity", default="relu", choices=("relu", "sigmoid", "tanh", "hard_tanh"))
    parser.add_argument("--epochs", type=int, default=8, help="training epochs (default 8)")
    parser.add_argument(
        "--attacks",
        default="fgsm,bim,pgd,ll,spsa",
        help="comma list of fgsm, bim, pgd, ll, lbfgs, spsa (default fgsm,bim,pgd,ll,spsa)",
    )
    parser.add_argument(
        "--eps", default="0.05,0.1,0.2,0.3", help="L-inf budgets, comma list (default 0.05,0.1,0.2,0.3)"
    )
    parser.add_argument(
        "--loss",
        choices=("ce", "margin"),
        default="ce",
        help="attack objective: cross-entropy (the papers') or logit margin (Carlini-Wagner)",
    )
    parser.add_argument("--float64", action="store_true", help="compute attack gradients in float64")
    parser.add_argument("--steps", type=int, default=20, help="iterations of BIM, PGD, least-likely (default 20)")
    parser.add_argument("--n-train", type=int, default=8000, help="MNIST images to train on (default 8000)")
    parser.add_argument("--n-attack", type=int, default=500, help="test images to attack (default 500)")
    parser.add_argument("--data", default=None, help="FILE.npz with x (n, 1, 28, 28) in [0, 1] and labels y")
    parser.add_argument("--data-path", default=None, help="folder with the MNIST IDX files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="reports/robustness", help="report folder (default reports/robustness)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=_run)


def _eps_list(text: str) -> list[float]:
    from neuromodels.errors import ConfigError

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--eps must be a comma list of numbers, got {text!r}") from None
    if not values or any(not v >= 0 for v in values):
        raise ConfigError(f"--eps values must be >= 0 (epsilon < 0 is no budget), got {text!r}")
    return sorted(values)


def _check_args(args: argparse.Namespace) -> tuple[list[str], list[float]]:
    import math

    from neuromodels.analysis.robustness.attacks import attack_names
    from neuromodels.errors import ConfigError

    attacks = attack_names(args.attacks)
    eps = _eps_list(args.eps)
    for name in ("epochs", "steps", "n_train", "n_attack"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not math.isfinite(args.saturation) or args.saturation < 0:
        raise ConfigError(f"--saturation must be >= 0, got {args.saturation}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    return attacks, eps


def _load_data(args: argparse.Namespace, n_needed_train: int):
    import numpy as np
    import torch

    from neuromodels.analysis.robustness.reproduce import load_mnist_split
    from neuromodels.errors import DataFormatError

    if args.data is None:
        x_train, y_train, x_test, y_test = load_mnist_split(n_needed_train, args.n_attack, args.data_path)
        return x_train, y_train, x_test, y_test, "mnist-t10k"
    try:
        with np.load(args.data, allow_pickle=False) as archive:
            x, y = archive["x"], archive["y"]
    except (OSError, ValueError, KeyError) as err:
        raise DataFormatError(
            f"cannot read arrays x and y ({err})",
            file=args.data,
            field="x, y",
            expected="an .npz file with arrays x (n, 1, 28, 28) and y (n,)",
        ) from None
    x_test = torch.as_tensor(np.asarray(x, dtype=np.float32))
    y_test = torch.as_tensor(np.asarray(y)).long() if np.asarray(y).dtype.kind in "iu" else torch.as_tensor(y)
    return None, None, x_test[: args.n_attack], y_test[: args.n_attack], str(args.data)


def _load_model(path: str):
    import warnings

    import torch

    from neuromodels.classifiers import make_classifier
    from neuromodels.errors import DataFormatError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.load names TorchScript archives it hands to torch.jit.load
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataFormatError("no such file", file=path, field="--model") from None
    except Exception:  # noqa: BLE001 - torch.load raises many types on a file it cannot read: try TorchScript
        try:
            return torch.jit.load(path, map_location="cpu").eval(), {"kind": "torchscript"}
        except Exception as err:  # noqa: BLE001 - whatever the loaders raise, the user's file is not a model
            raise DataFormatError(
                f"neither a model.pt of `neuromodels robustness` nor TorchScript ({err})", file=path, field="--model"
            ) from None
    if isinstance(state, torch.jit.ScriptModule):
        return state.eval(), {"kind": "torchscript"}
    if not isinstance(state, dict) or state.get("format") != MODEL_FORMAT:
        raise DataFormatError(
            "not a model.pt of `neuromodels robustness`",
            file=path,
            field="format",
            expected=MODEL_FORMAT,
            found=state.get("format") if isinstance(state, dict) else type(state).__name__,
        )
    model = make_classifier(state["kind"], state["nonlinearity"])
    model.load_state_dict(state["weights"])
    return model.eval(), {
        "kind": state["kind"],
        "nonlinearity": state["nonlinearity"],
        "saturation": state.get("saturation"),
    }


def _run(args: argparse.Namespace) -> int:
    import torch

    from neuromodels._figures import save_figure
    from neuromodels._outputs import ReportFolder, check_out_folder
    from neuromodels._reports import write_json
    from neuromodels.analysis.robustness.attacks import check_inputs
    from neuromodels.analysis.robustness.evaluate import masking_diagnostics, robustness_curve
    from neuromodels.analysis.robustness.reproduce import plot_examples, plot_robustness_curves
    from neuromodels.errors import ConfigError

    attacks, eps = _check_args(args)
    out = check_out_folder(args.out)
    progress = False if args.no_progress else (None if sys.stderr.isatty() else False)
    x_train, y_train, x_test, y_test, source = _load_data(args, args.n_train if args.train else 1)
    if args.train and x_train is None:
        raise ConfigError("--train needs MNIST to train on; --data gives only the images to attack")
    check_inputs(x_test, y_test)  # before any training: NaN, values outside [0, 1], bad labels
    files = ["report.json", "accuracy.png", "examples.png"]
    with ReportFolder(out, "robustness") as folder:
        if args.train:
            files.append("model.pt")
            model, described = _train_and_save(args, x_train, y_train, progress, folder)
        else:
            model, described = _load_model(args.model)
        dtype = torch.float64 if args.float64 else None
        curve = robustness_curve(
            model,
            x_test,
            y_test,
            attacks,
            eps,
            loss=args.loss,
            dtype=dtype,
            steps=args.steps,
            seed=args.seed,
            progress=progress,
        )
        verdict = masking_diagnostics(model, x_test, y_test, curve, loss=args.loss, dtype=dtype, steps=args.steps)
        report = _robustness_report(args, model, described, source, x_test, y_test, curve, verdict, files)
        save_figure(
            plot_robustness_curves({f"{args.loss}, {report['attack_settings']['dtype']}": curve}),
            folder.path("accuracy.png"),
        )
        save_figure(plot_examples(x_test, curve.examples), folder.path("examples.png"))
        write_json(folder.path("report.json"), report)
    if args.json:
        print_json(report)
    else:
        _print_table(report, out)
    return 0


def _train_and_save(args: argparse.Namespace, x_train: Any, y_train: Any, progress: bool | None, folder: Any):
    """``--train``: train the saturating classifier, write it to ``model.pt`` in the report folder; return it
    and its description."""
    import torch

    from neuromodels.analysis.robustness.reproduce import train_saturating_classifier
    from neuromodels.datasets._io import atomic_path

    model, history = train_saturating_classifier(
        args.train,
        x_train,
        y_train,
        saturation=args.saturation,
        nonlinearity=args.nonlinearity,
        epochs=args.epochs,
        seed=args.seed,
        progress=progress,
    )
    described: dict[str, Any] = {
        "kind": args.train,
        "nonlinearity": args.nonlinearity,
        "saturation": args.saturation,
        "epochs": len(history),
    }
    with atomic_path(folder.path("model.pt"), suffix=".pt") as tmp:
        torch.save(
            {
                "format": MODEL_FORMAT,
                "kind": args.train,
                "nonlinearity": args.nonlinearity,
                "saturation": args.saturation,
                "weights": model.state_dict(),
            },
            tmp,
        )
    return model, described


def _robustness_report(
    args: argparse.Namespace,
    model: Any,
    described: dict[str, Any],
    source: Any,
    x_test: Any,
    y_test: Any,
    curve: Any,
    verdict: Any,
    files: list[str],
) -> dict[str, Any]:
    from neuromodels.analysis.robustness.analyses import saturation_fraction, weight_kurtosis
    from neuromodels.analysis.robustness.evaluate import accuracy

    report: dict[str, Any] = {
        "command": "robustness",
        "model": described,
        "data": source,
        "n_attack": len(x_test),
        "attack_settings": {
            "loss": args.loss,
            "dtype": "float64" if args.float64 else "float32",
            "steps": args.steps,
            "seed": args.seed,
        },
        "clean_accuracy": accuracy(model, (x_test, y_test), batch_size=1000),
        **curve.as_dict(),
        "gradient_masking_suspected": verdict.gradient_masking_suspected,
        "masking_reasons": verdict.reasons,
        "masking_checks": verdict.checks,
        "weight_kurtosis": {str(k): float(v) for k, v in weight_kurtosis(model).to_series().items()}
        if described.get("kind") != "torchscript"
        else None,
        "files": files,
    }
    nonlinearity = described.get("nonlinearity")
    if nonlinearity:
        report["saturated_fraction"] = {
            str(k): float(v) for k, v in saturation_fraction(model, x_test, nonlinearity).to_series().items()
        }
    return report


def _print_table(report: dict[str, Any], out) -> None:
    eps = report["eps"]
    print(
        f"clean accuracy {report['clean_accuracy']:.4f} on {report['n_attack']} images; attack objective "
        f"{report['attack_settings']['loss']} in {report['attack_settings']['dtype']}"
    )
    print(f"{'attack':>8} " + " ".join(f"eps={e:<6g}" for e in eps))
    for name, values in report["accuracy"].items():
        print(f"{name:>8} " + " ".join(f"{v:<10.3f}" for v in values))
    if report.get("saturated_fraction"):
        print("saturated fraction: " + ", ".join(f"{k} {v:.3f}" for k, v in report["saturated_fraction"].items()))
    if report.get("weight_kurtosis"):
        print("weight excess kurtosis: " + ", ".join(f"{k} {v:.2f}" for k, v in report["weight_kurtosis"].items()))
    verdict = "SUSPECTED" if report["gradient_masking_suspected"] else "not suspected"
    print(f"gradient masking: {verdict}")
    for reason in report["masking_reasons"]:
        print(f"  - {reason}")
    print(f"report -> {out}", file=sys.stderr)

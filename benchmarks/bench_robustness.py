"""Benchmark: PGD (L-inf, 40 steps, no random start) on 2,000 MNIST images, ours vs torchattacks, same model.

Ours: :func:`neuromodels.analysis.robustness.pgd`; peer: ``torchattacks.PGD(random_start=False)`` (3.5.1) on the
same trained MLP and inputs, in the same process, each timed best of ``--repeats``. The adversarial examples are
compared too (max abs difference; the issue asks <= 1e-6). L-BFGS (Szegedy et al.; none of the peers ships it)
is timed per image on ``--lbfgs-images`` images beside it.

The pixels of either result outside the eps-ball are counted as well, exactly (in float64): torchattacks'
``clamp(x + clamp(adv - x, -eps, eps), 0, 1)`` rounds ``x + delta`` to float32 and lands up to half an ulp
outside; ours clamps to bounds rounded inwards (docs/robustness.md, "Checked").

torchattacks is not a dependency: its wheel requires torchvision and ``requests~=2.25.1``. Run it in the peers'
environment (``make peers``: torch 2.14.1 + torchvision 0.29.1, torchattacks 3.5.1, benchmarks/peers/):

    OMP_NUM_THREADS=1 .venv-peers/bin/python benchmarks/bench_robustness.py

(or, beside the main torch, without its dependencies, which it does not import:
``pip install --no-deps --target DIR torchattacks==3.5.1`` then ``PYTHONPATH=DIR``).

Target (issue 15): ours at least as fast as torchattacks (ratio peer / ours >= 1).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import time

import torch


def _trained_mlp(x: torch.Tensor, y: torch.Tensor) -> torch.nn.Module:
    from neuromodels.analysis.robustness.reproduce import train_saturating_classifier

    model, _ = train_saturating_classifier("mlp", x, y, epochs=3, progress=False)
    return model


def _best_of(repeats: int, run) -> tuple[float, torch.Tensor]:
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lbfgs-images", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

    from neuromodels.analysis.robustness import lbfgs, pgd
    from neuromodels.analysis.robustness.reproduce import load_mnist_split

    x_train, y_train, x, y = load_mnist_split(3000, args.images)
    model = _trained_mlp(x_train, y_train)
    alpha = 2.5 * args.eps / args.steps

    def ours_run():
        return pgd(model, x, y, args.eps, steps=args.steps, alpha=alpha, random_start=False, batch_size=len(x))

    print(
        f"PGD L-inf, {args.steps} steps, eps {args.eps}, {len(x)} MNIST images, MLP 784-256-256-10, "
        f"{torch.get_num_threads()} thread(s), best of {args.repeats} (the two interleaved)"
    )
    try:
        import torchattacks
    except ImportError:
        ours_s, _ = _best_of(args.repeats, ours_run)
        print(f"  ours (neuromodels.analysis.robustness.pgd): {ours_s:.3f} s")
        print("  torchattacks: not installed (see this file's docstring); no ratio")
    else:
        attack = torchattacks.PGD(model, eps=args.eps, alpha=alpha, steps=args.steps, random_start=False)
        ours_s = peer_s = float("inf")
        for _ in range(args.repeats):  # interleaved, so that a busy machine slows both alike
            seconds, theirs = _best_of(1, lambda: attack(x, y))
            peer_s = min(peer_s, seconds)
            seconds, ours = _best_of(1, ours_run)
            ours_s = min(ours_s, seconds)
        differing = (ours - theirs).abs().flatten(1).amax(1) > 1e-6
        print(f"  ours (neuromodels.analysis.robustness.pgd): {ours_s:.3f} s")
        print(f"  torchattacks {torchattacks.__version__} PGD: {peer_s:.3f} s")
        print(f"  ratio torchattacks / ours: {peer_s / ours_s:.2f} (>= 1: ours at least as fast)")
        print(
            f"  max |ours - torchattacks|: {float((ours - theirs).abs().max()):.2e} "
            f"({int(differing.sum())} of {len(x)} images differ by more than 1e-6, "
            f"{int((ours != theirs).flatten(1).any(1).sum())} not bit-equal)"
        )
        for name, adv in (("ours", ours), ("torchattacks", theirs)):
            # the budget, checked exactly (float64, where the difference of two float32 numbers is exact)
            excess = (adv.double() - x.double()).abs() - args.eps
            print(
                f"  {name}: {int((excess > 0).sum())} pixels in {int((excess > 0).flatten(1).any(1).sum())} images "
                f"outside the eps-ball (largest excess {max(float(excess.max()), 0.0):.1e})"
            )
    n = args.lbfgs_images
    started = time.perf_counter()
    _, success = lbfgs(model, x[:n], y[:n], search_steps=6)
    per_image = (time.perf_counter() - started) / n
    print(
        f"L-BFGS (box-constrained, 6 bisection steps over c, runner-up target): {per_image:.3f} s per image "
        f"({int(success.sum())}/{n} found)"
    )


if __name__ == "__main__":
    main()

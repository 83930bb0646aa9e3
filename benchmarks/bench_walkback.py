"""Benchmark: one Variational Walkback training epoch, ours vs a plain PyTorch loop of the same algorithm, one run.

Rows (issue 16): the 2-D spiral (20,000 points, batch 5,000, 30 heating steps, factor 1.1: the authors'
``experiment_spiral_online.sh``) and scikit-learn's 8x8 digits (1,437 training images, batch 100, 10 steps,
factor 1.5). Ours = :func:`neuromodels.fitting.walkback.train_walkback` for one epoch (Algorithm 1 with online
updates, then ``p_0`` refitted and the bound logged on 2,000 training points); the peer = the same algorithm
written as a straightforward loop here (an ``nn.Sequential`` MLP, ``torch.distributions.Normal`` log-probs,
one Adam step per heating step, then the same ``p_0`` fit and bound). Printed: seconds per epoch, samples
(training points) per second, the ratio (peer time / ours: >= 1 means ours is no slower). Then the diffusion
baseline's training time until its samples reach the MMD that the Walkback operator, trained with
``SPIRAL_SETTINGS`` (the reproduction's settings), reached on the spiral (at most epochs x heating steps
diffusion epochs: the operator's number of gradient updates at the same batch size).

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_walkback.py [--quick]``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import math
import time

import numpy as np
import torch


def plain_epoch(
    points: np.ndarray,
    *,
    hidden: int,
    n_steps: int,
    factor: float,
    sigma: float,
    batch: int,
    lr: float,
    bound_points: int,
    seed: int,
) -> float:
    """Algorithm 1, written plainly: returns the seconds for one epoch (training + p_0 fit + bound)."""
    torch.manual_seed(seed)
    dim = points.shape[1]
    trunk = torch.nn.Sequential(
        torch.nn.Linear(dim, hidden),
        torch.nn.LeakyReLU(0.02),
        torch.nn.Linear(hidden, hidden),
        torch.nn.LeakyReLU(0.02),
    )
    mu_head, sigma_head = torch.nn.Linear(hidden, dim), torch.nn.Linear(hidden, dim)
    params = [*trunk.parameters(), *mu_head.parameters(), *sigma_head.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    temperatures = [1.1**0] + [factor**t for t in range(1, n_steps)]
    x_all = torch.from_numpy(points)

    def operator(s, temperature):
        h = trunk(s)
        std = sigma * math.sqrt(temperature) * torch.nn.functional.softplus(sigma_head(h))
        return torch.distributions.Normal(0.5 * s + 0.5 * mu_head(h), std)

    started = time.perf_counter()
    for index in torch.randperm(len(x_all)).split(batch):
        s = x_all[index]
        for temperature in temperatures:
            with torch.no_grad():
                s_next = operator(s, temperature).sample()
            loss = -operator(s_next, temperature).log_prob(s).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            s = s_next
    with torch.no_grad():

        def heat(x):
            states = [x]
            for temperature in temperatures:
                states.append(operator(states[-1], temperature).sample())
            return states

        final = heat(x_all[:5000])[-1]
        p0 = torch.distributions.Normal(final.mean(0), final.std(0))
        states = heat(x_all[:bound_points])
        bound = p0.log_prob(states[-1]).sum(1)
        for t, temperature in enumerate(temperatures):
            bound += operator(states[t + 1], temperature).log_prob(states[t]).sum(1)
            bound -= operator(states[t], temperature).log_prob(states[t + 1]).sum(1)
        float(bound.mean())
    return time.perf_counter() - started


def ours_epoch(
    points: np.ndarray,
    *,
    hidden: int,
    n_steps: int,
    factor: float,
    sigma: float,
    batch: int,
    lr: float,
    bound_points: int,
    seed: int,
):
    from neuromodels.fitting.walkback import train_walkback
    from neuromodels.walkback import TransitionOperator

    torch.manual_seed(seed)
    model = TransitionOperator(
        points.shape[1], hidden=(hidden, hidden), sigma=sigma, n_steps=n_steps, temperature_factor=factor
    )
    started = time.perf_counter()
    train_walkback(
        model, points, epochs=1, batch_size=batch, lr=lr, bound_points=bound_points, seed=seed, progress=False
    )
    return time.perf_counter() - started, model


def diffusion_time_to_mmd(
    train: np.ndarray, held_out: np.ndarray, target: float, *, max_epochs: int, batch: int, check_every: int = 5
) -> tuple[float, int, float]:
    """Train the diffusion baseline epoch by epoch (training time only is counted) until the MMD of its samples
    to ``held_out`` is at most ``target`` (checked every ``check_every`` epochs)."""
    from neuromodels.analysis.walkback_report import point_set_scores
    from neuromodels.diffusion import DiffusionMLP
    from neuromodels.fitting.walkback import train_diffusion

    torch.manual_seed(0)
    model = DiffusionMLP(train.shape[1], hidden=(128, 128))
    spent, value = 0.0, math.inf
    for epoch in range(1, max_epochs + 1):
        started = time.perf_counter()
        train_diffusion(model, train, epochs=1, batch_size=batch, seed=epoch, progress=False)
        spent += time.perf_counter() - started
        if epoch % check_every and epoch != max_epochs:
            continue
        samples = model.sample(2000, generator=torch.Generator().manual_seed(0)).numpy()
        value = point_set_scores({"diffusion": samples}, held_out)["diffusion"]["mmd"]
        if value <= target:
            return spent, epoch, value
    return spent, max_epochs, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sets (a smoke run)")
    args = parser.parse_args()
    from neuromodels.datasets.generative import load_points, make_spiral, split_points

    torch.set_num_threads(1)
    spiral = make_spiral(4000 if args.quick else 20_000, seed=0)
    digits_train, _ = split_points(load_points("digits"), seed=0)
    rows = [
        ("spiral", spiral, dict(hidden=128, n_steps=30, factor=1.1, sigma=0.09, batch=5000, lr=1e-4)),
        ("digits 8x8", digits_train, dict(hidden=512, n_steps=10, factor=1.5, sigma=0.05, batch=100, lr=1e-3)),
    ]
    print(f"{'data':<12}{'ours s':>10}{'plain s':>10}{'ours samples/s':>16}{'ratio plain/ours':>18}")
    for name, points, kwargs in rows:
        common = dict(kwargs, bound_points=2000, seed=0)
        ours_times, plain_times = [], []
        for _ in range(3):  # interleaved, best of 3: a busy machine slows both alike
            ours_times.append(ours_epoch(points, **common)[0])
            plain_times.append(plain_epoch(points, **common))
        ours, plain = min(ours_times), min(plain_times)
        print(f"{name:<12}{ours:>10.2f}{plain:>10.2f}{len(points) / ours:>16.0f}{plain / ours:>18.2f}")

    # the diffusion baseline's training time to the MMD a trained Walkback operator reaches on the spiral
    from neuromodels.analysis.walkback_report import point_set_scores
    from neuromodels.analysis.walkback_reproduce import SPIRAL_SETTINGS
    from neuromodels.fitting.walkback import train_walkback
    from neuromodels.walkback import TransitionOperator

    data = make_spiral(4000 if args.quick else 20_000, seed=0)
    train, held_out = split_points(data, seed=0)
    settings = dict(SPIRAL_SETTINGS["train"], epochs=2 if args.quick else SPIRAL_SETTINGS["train"]["epochs"])
    torch.manual_seed(0)
    model = TransitionOperator(2, **SPIRAL_SETTINGS["model"])
    started = time.perf_counter()
    train_walkback(model, train, **settings, progress=False)
    walkback_seconds = time.perf_counter() - started
    samples = model.generate(2000, generator=torch.Generator().manual_seed(0))[model.n_steps].numpy()
    target = point_set_scores({"walkback": samples}, held_out)["walkback"]["mmd"]
    updates = settings["epochs"] * model.n_steps  # the operator's gradient updates, in diffusion epochs
    seconds, epochs, reached = diffusion_time_to_mmd(
        train, held_out, target, max_epochs=5 if args.quick else updates, batch=settings["batch_size"]
    )
    print(
        f"spiral: walkback trained {settings['epochs']} epochs in {walkback_seconds:.1f} s to MMD {target:.5f}; "
        f"diffusion reached MMD {reached:.5f} after {epochs} epochs, {seconds:.1f} s "
        f"({'reached' if reached <= target else 'not reached'})"
    )


if __name__ == "__main__":
    main()

"""Synaptic Intelligence bookkeeping cost: SI in ``fitting.fit`` vs a plain step, and vs Avalanche's plugin.

Question (issue 14): does SI's per-step bookkeeping (the data gradient read before the penalty's, the weights
before the step, ``omega += -g * delta``, the penalty's forward and backward) cost at most 10% over a plain
training step of the same MLP (784-2000-2000-10, batch 256, Adam, cross-entropy), and is it no slower than
Avalanche's ``SynapticIntelligencePlugin``?

* **plain**: ``fit`` without a regulariser;
* **ours**: ``fit`` with ``SynapticIntelligence`` (the authors' rule, ``gradient="task"``) after one
  consolidated task, so that the penalty is active as from task 2 on;
* **peer**: the same training step in a hand-written loop with Avalanche's hooks where its strategy calls them
  (``pre_update``, ``compute_ewc_loss``, ``post_update``), also after one consolidated task, against the same
  loop without them. With avalanche-lib importable the plugin's own static methods run; otherwise (avalanche-lib
  0.6.0 needs a torchvision built for another torch than the pinned 2.13) a line-by-line transcription of them
  (avalanche/training/plugins/synaptic_intelligence.py), and the output says which.

Printed: milliseconds per step, wall clock and process CPU time (best of ``--repeats`` epochs of ``--steps``
steps each, the four variants interleaved so that they see the same load, after a warm-up round), the ratios
ours/plain (target <= 1.10) and ours/peer (target <= 1.0) on both clocks, with PASS or FAIL; the script exits 0
either way. CPU time is the steadier measure on a busy machine.
Run: ``python benchmarks/bench_continual.py`` (about 1-2 minutes on 2 cores). Shared machines are noisy: rerun.
"""

from __future__ import annotations

import argparse
import time

import torch

WIDTH, BATCH = 2000, 256


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(784, WIDTH),
        torch.nn.ReLU(),
        torch.nn.Linear(WIDTH, WIDTH),
        torch.nn.ReLU(),
        torch.nn.Linear(WIDTH, 10),
    )


def _data(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(steps * BATCH, 784, generator=generator), torch.randint(
        0, 10, (steps * BATCH,), generator=generator
    )


def _fit_runner(regularise: bool, data):
    """A callable that trains one epoch (``steps`` steps) through ``fit``, plain or with SI active."""
    from neuromodels.fitting import fit
    from neuromodels.fitting.continual import SynapticIntelligence

    model = _model()
    regularisers = []
    if regularise:
        si = SynapticIntelligence(model, c=0.1, xi=0.1)
        for omega in si.omega_:
            omega.uniform_(0, 1e-3)  # as after a task: a non-zero importance, a penalty with a gradient
        si.end_task(model)
        regularisers = [si]

    def run() -> None:
        fit(
            model,
            data,
            loss=torch.nn.functional.cross_entropy,
            epochs=1,
            batch_size=BATCH,
            lr=1e-4,
            regularisers=regularisers,
            patience=None,
            restore_best=False,
            progress=False,
            deterministic=False,
        )

    return run


class _Transcribed:
    """Avalanche 0.6.0's SynapticIntelligencePlugin hooks, transcribed (flat CPU copies of every parameter)."""

    name = "Avalanche SynapticIntelligencePlugin (transcribed: avalanche-lib not importable here)"

    def __init__(self, model: torch.nn.Module, lam: float) -> None:
        self.lam = lam
        flat = {n: p.detach().cpu().flatten().clone() for n, p in model.named_parameters()}
        self.ewc0 = {n: v.clone() for n, v in flat.items()}
        self.ewc1 = {n: torch.rand_like(v) * 1e-3 for n, v in flat.items()}
        self.old = {n: torch.zeros_like(v) for n, v in flat.items()}
        self.new = {n: torch.zeros_like(v) for n, v in flat.items()}
        self.grad = {n: torch.zeros_like(v) for n, v in flat.items()}
        self.trajectory = {n: torch.zeros_like(v) for n, v in flat.items()}

    @torch.no_grad()
    def pre_update(self, model):
        for n, p in model.named_parameters():
            self.old[n][...] = p.detach().cpu().flatten()

    def loss(self, model):
        total = None
        for n, p in model.named_parameters():
            term = torch.dot(self.ewc1[n], (p.flatten() - self.ewc0[n]) ** 2) * (self.lam / 2)
            total = term if total is None else total + term
        return total

    @torch.no_grad()
    def post_update(self, model):
        for n, p in model.named_parameters():
            self.new[n][...] = p.detach().cpu().flatten()
            self.grad[n][...] = p.grad.detach().cpu().flatten()
        for n in self.trajectory:
            self.trajectory[n] += self.grad[n] * (self.new[n] - self.old[n])


class _Plugin:
    """The installed avalanche-lib plugin's own static methods."""

    name = "Avalanche SynapticIntelligencePlugin (avalanche-lib)"

    def __init__(self, model: torch.nn.Module, lam: float) -> None:
        from avalanche.training.plugins import SynapticIntelligencePlugin as P

        self.P, self.lam = P, lam
        self.plugin = P(si_lambda=lam)
        P.create_syn_data(model, self.plugin.ewc_data, self.plugin.syn_data, set())
        P.init_batch(model, self.plugin.ewc_data, self.plugin.syn_data, set())
        for v in self.plugin.ewc_data[1].values():
            (v.data if hasattr(v, "data") else v).uniform_(0, 1e-3)

    def pre_update(self, model):
        self.P.pre_update(model, self.plugin.syn_data, set())

    def loss(self, model):
        return self.P.compute_ewc_loss(model, self.plugin.ewc_data, set(), device="cpu", lambd=self.lam)

    def post_update(self, model):
        self.P.post_update(model, self.plugin.syn_data, set())


def _peer_runner(use_hooks: bool, data):
    """A callable that trains one epoch in a hand-written loop, with or without Avalanche's SI hooks."""
    try:
        import avalanche  # noqa: F401

        peer_class = _Plugin
    except (ImportError, RuntimeError):  # RuntimeError: a torchvision built for another torch
        peer_class = _Transcribed
    model = _model()
    peer = peer_class(model, 0.1) if use_hooks else None
    x, y = data

    def run() -> None:
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        for index in torch.split(torch.randperm(len(x)), BATCH):
            if peer is not None:
                peer.pre_update(model)
            loss = torch.nn.functional.cross_entropy(model(x[index]), y[index])
            if peer is not None:
                loss = loss + peer.loss(model)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if peer is not None:
                peer.post_update(model)

    return run, peer_class.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12, help="steps per timed epoch (default 12)")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs, best kept (default 3)")
    args = parser.parse_args()
    data = _data(args.steps)
    print(
        f"MLP 784-{WIDTH}-{WIDTH}-10, batch {BATCH}, Adam, {torch.get_num_threads()} torch threads; "
        f"{args.steps} steps per epoch, best of {args.repeats} interleaved epochs (one warm-up)"
    )
    peer_run, peer_name = _peer_runner(True, data)
    runners = {
        "plain fit": _fit_runner(False, data),
        "SI fit (ours)": _fit_runner(True, data),
        "plain loop": _peer_runner(False, data)[0],
        "peer loop": peer_run,
    }
    wall = {k: float("inf") for k in runners}
    cpu = {k: float("inf") for k in runners}
    for repeat in range(args.repeats + 1):
        for key, run in runners.items():  # interleaved: every variant sees the same load on a shared machine
            w0, c0 = time.perf_counter(), time.process_time()
            run()
            if repeat:
                wall[key] = min(wall[key], (time.perf_counter() - w0) / args.steps)
                cpu[key] = min(cpu[key], (time.process_time() - c0) / args.steps)
    for key in runners:
        print(f"{key:<15} {wall[key] * 1e3:8.1f} ms wall  {cpu[key] * 1e3:8.1f} ms CPU per step")
    print(f"peer: {peer_name}")
    for clock, t in (("CPU", cpu), ("wall", wall)):
        ratio = t["SI fit (ours)"] / t["plain fit"]
        versus = t["SI fit (ours)"] / t["peer loop"]
        print(
            f"[{clock}] ours / plain = {ratio:.3f} (target <= 1.10): {'PASS' if ratio <= 1.10 else 'FAIL'}; "
            f"peer / plain = {t['peer loop'] / t['plain loop']:.3f}; "
            f"ours / peer = {versus:.3f} (target <= 1.0): {'PASS' if versus <= 1.0 else 'FAIL'}"
        )


if __name__ == "__main__":
    main()

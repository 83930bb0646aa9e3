"""Synaptic Intelligence bookkeeping cost: SI in ``fitting.fit`` vs a plain step, and vs Avalanche's plugin.

Question (issue 14): does SI's per-step bookkeeping (the data gradient read before the penalty's, the penalty's
value and gradient, ``omega += -g * delta``) cost at most 10% over a plain training step of the same MLP
(784-2000-2000-10, batch 256, Adam, cross-entropy), and is it no slower than Avalanche's
``SynapticIntelligencePlugin``?

* **plain**: ``fit`` without a regulariser;
* **ours**: ``fit`` with ``SynapticIntelligence`` (the authors' rule, ``gradient="task"``) after one
  consolidated task, so that the penalty is active as from task 2 on, with its compiled bookkeeping (one fused
  pass per tensor and step, ``fitting/continual/_si_kernel.c``, as ``fit`` runs it), and once more with the torch code that runs without a
  C compiler (**ours, torch code**);
* **peer**: the same training step in a hand-written loop with Avalanche's hooks where its strategy calls them
  (``pre_update``, ``compute_ewc_loss``, ``post_update``), also after one consolidated task, against the same
  loop without them. With avalanche-lib importable (the peers' environment, ``make peers``) the plugin's own
  static methods run, twice: as installed (on the CPU it keeps views of the weights instead of copies, so it
  copies nothing and measures no importance) and with the copies it makes on a CUDA device; otherwise
  (avalanche-lib 0.6.0 needs torchvision, which does not import beside the pinned torch 2.13) a line-by-line
  transcription of them (avalanche/training/plugins/synaptic_intelligence.py). The output says which.

Printed: milliseconds per step, wall clock and CPU time (best and median of ``--repeats`` epochs of ``--steps``
steps each, the variants interleaved so that they see the same load, after a warm-up round), the ratios
ours/plain (target <= 1.10) and ours/peer (target <= 1.0) of the best epochs on both clocks, with PASS or FAIL;
the script exits 0 either way. CPU time is the steadier measure on a busy machine: with ``--threads 1`` (the
default) it is the CPU time of the one thread that runs torch (``time.thread_time``), else the process's.
Run: ``python benchmarks/bench_continual.py`` (1-2 minutes), or with the real plugin:
``make peers`` then ``OMP_NUM_THREADS=1 .venv-peers/bin/python benchmarks/bench_continual.py``. Shared machines
are noisy: rerun.
"""

from __future__ import annotations

import argparse
import statistics
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


def _fit_runner(regularise: bool, data, compiled: bool = True):
    """A callable that trains one epoch (``steps`` steps) through ``fit``, plain or with SI active (with its
    compiled bookkeeping, or ``compiled=False``: the torch code that runs without a C compiler)."""
    from neuromodels.fitting import fit
    from neuromodels.fitting.continual import SynapticIntelligence
    from neuromodels.fitting.continual import si as si_module

    model = _model()
    regularisers = []
    if regularise:
        si = SynapticIntelligence(model, c=0.1, xi=0.1)
        for omega in si.omega_:
            omega.uniform_(0, 1e-3)  # as after a task: a non-zero importance, a penalty with a gradient
        si.end_task(model)
        regularisers = [si]

    def run() -> None:
        kernel = si_module.si_kernel
        if not compiled:
            si_module.si_kernel = lambda: None
        try:
            _fit(model)
        finally:
            si_module.si_kernel = kernel

    def _fit(model) -> None:
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
    """The installed avalanche-lib plugin's own static methods.

    ``copies=False``: as installed. On the CPU its ``extract_weights`` keeps ``param.detach().cpu().flatten()``,
    a view of the weights, not a copy: no copying costs, and the importance it measures stays 0
    (tests/fitting/test_continual_si.py). ``copies=True``: ``.clone()`` added to ``extract_weights`` and
    ``extract_grad`` while its hooks run, which is what it does on a CUDA device (where ``.cpu()`` copies)."""

    def __init__(self, model: torch.nn.Module, lam: float, copies: bool = False) -> None:
        from avalanche.training.plugins import SynapticIntelligencePlugin as P

        self.P, self.lam, self.copies = P, lam, copies
        self.name = f"Avalanche {_avalanche_version()} SynapticIntelligencePlugin (avalanche-lib"
        self.name += ", with copies as on CUDA)" if copies else ", as installed: views on the CPU)"
        self.plugin = P(si_lambda=lam)
        P.create_syn_data(model, self.plugin.ewc_data, self.plugin.syn_data, set())
        P.init_batch(model, self.plugin.ewc_data, self.plugin.syn_data, set())
        for v in self.plugin.ewc_data[1].values():
            (v.data if hasattr(v, "data") else v).uniform_(0, 1e-3)
        for v in self.plugin.ewc_data[0].values():
            v.data = v.data.clone()  # the anchor: a copy, as after update_ewc_data

    def _hook(self, method, model) -> None:
        if not self.copies:
            method(model, self.plugin.syn_data, set())
            return
        P = self.P
        saved = P.__dict__["extract_weights"], P.__dict__["extract_grad"]

        @torch.no_grad()
        def weights(net, target, excluded):
            for name, param in P.allowed_parameters(net, excluded):
                target[name].data = param.detach().cpu().flatten().clone()

        @torch.no_grad()
        def grads(net, target, excluded):
            for name, param in P.allowed_parameters(net, excluded):
                target[name].data = param.grad.detach().cpu().flatten().clone()

        P.extract_weights, P.extract_grad = staticmethod(weights), staticmethod(grads)
        try:
            method(model, self.plugin.syn_data, set())
        finally:
            P.extract_weights, P.extract_grad = saved

    def pre_update(self, model):
        self._hook(self.P.pre_update, model)

    def loss(self, model):
        return self.P.compute_ewc_loss(model, self.plugin.ewc_data, set(), device="cpu", lambd=self.lam)

    def post_update(self, model):
        self._hook(self.P.post_update, model)


def _avalanche_version() -> str:
    from importlib.metadata import version

    return version("avalanche-lib")


def _avalanche_importable() -> bool:
    try:
        import avalanche  # noqa: F401  (imported to learn whether it imports)
    except (ImportError, RuntimeError):  # RuntimeError: a torchvision built for another torch
        return False
    return True


def _peer_runner(peer: str | None, data):
    """A callable that trains one epoch in a hand-written loop, with Avalanche's SI hooks (``peer``:
    ``"transcribed"``, ``"plugin"`` or ``"plugin-copies"``) or without (``None``)."""
    model = _model()
    if peer == "transcribed":
        hooks = _Transcribed(model, 0.1)
    elif peer is not None:
        hooks = _Plugin(model, 0.1, copies=peer == "plugin-copies")
    else:
        hooks = None
    x, y = data

    def run() -> None:
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        for index in torch.split(torch.randperm(len(x)), BATCH):
            if hooks is not None:
                hooks.pre_update(model)
            loss = torch.nn.functional.cross_entropy(model(x[index]), y[index])
            if hooks is not None:
                loss = loss + hooks.loss(model)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if hooks is not None:
                hooks.post_update(model)

    return run, (hooks.name if hooks is not None else "plain")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12, help="steps per timed epoch (default 12)")
    parser.add_argument("--repeats", type=int, default=9, help="timed epochs (default 9)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: thread CPU time)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.thread_time if args.threads == 1 else time.process_time
    data = _data(args.steps)
    from neuromodels.fitting.continual import si

    print(
        f"MLP 784-{WIDTH}-{WIDTH}-10, batch {BATCH}, Adam, {torch.get_num_threads()} torch threads; "
        f"{args.steps} steps per epoch, best and median of {args.repeats} interleaved epochs (one warm-up); "
        f"CPU time of the {'thread' if args.threads == 1 else 'process'}; "
        f"SI kernel {'compiled' if si.si_kernel() is not None else 'NOT available (torch code in both)'}"
    )
    peers = ["plugin", "plugin-copies"] if _avalanche_importable() else ["transcribed"]
    runners = {
        "plain fit": _fit_runner(False, data),
        "SI fit (ours)": _fit_runner(True, data),
        "SI fit (ours, torch code)": _fit_runner(True, data, compiled=False),
    }
    runners["plain loop"] = _peer_runner(None, data)[0]
    names = {}
    for peer in peers:
        runners[peer], names[peer] = _peer_runner(peer, data)
    walls: dict[str, list[float]] = {k: [] for k in runners}
    cpus: dict[str, list[float]] = {k: [] for k in runners}
    for repeat in range(args.repeats + 1):
        for key, run in runners.items():  # interleaved: every variant sees the same load on a shared machine
            w0, c0 = time.perf_counter(), clock()
            run()
            if repeat:
                walls[key].append((time.perf_counter() - w0) / args.steps)
                cpus[key].append((clock() - c0) / args.steps)
    wall = {k: min(v) for k, v in walls.items()}
    cpu = {k: min(v) for k, v in cpus.items()}
    for key in runners:
        print(
            f"{key:<26} {wall[key] * 1e3:7.1f} ms wall, {cpu[key] * 1e3:7.1f} ms CPU per step (best); "
            f"{statistics.median(walls[key]) * 1e3:7.1f} / {statistics.median(cpus[key]) * 1e3:7.1f} (median)"
        )
    for peer in peers:
        print(f"{peer}: {names[peer]}")
    medians = {k: statistics.median(v) for k, v in cpus.items()}
    print(
        f"[CPU, medians] ours / plain = {medians['SI fit (ours)'] / medians['plain fit']:.3f}; "
        f"torch code / plain = {medians['SI fit (ours, torch code)'] / medians['plain fit']:.3f}"
    )
    for clock_name, t in (("CPU", cpu), ("wall", wall)):
        ratio = t["SI fit (ours)"] / t["plain fit"]
        print(
            f"[{clock_name}] ours / plain = {ratio:.3f} (target <= 1.10): {'PASS' if ratio <= 1.10 else 'FAIL'}; "
            f"torch code / plain = {t['SI fit (ours, torch code)'] / t['plain fit']:.3f}"
        )
        for peer in peers:
            versus = t["SI fit (ours)"] / t[peer]
            print(
                f"[{clock_name}]   {peer}: peer / plain loop = {t[peer] / t['plain loop']:.3f}; "
                f"ours / peer = {versus:.3f} (target <= 1.0): {'PASS' if versus <= 1.0 else 'FAIL'}"
            )


if __name__ == "__main__":
    main()

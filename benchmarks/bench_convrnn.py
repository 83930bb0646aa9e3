"""Benchmark: training step (forward + backward) of a 6-layer RGC ConvRNN unrolled 16 steps vs the feedforward CNN.

Issue 5's target: the ConvRNN's achieved FLOP/s is >= 80% of the equal-depth feedforward CNN's in the same run
(unrolling, gating and feedback add arithmetic, not inefficiency), and the peak memory of a training step is
printed with and without gradient checkpointing over time steps.

* Models: 6 layers, channels ``8, 16, 16, 32, 32, 64``, 3 x 3 kernels, 2 x 2 max-pooling after layers 2, 4, 6,
  Reciprocal Gated Cells (3 x 3 gate kernels) in every layer, one long-range feedback edge 5 -> 3; the CNN is
  :meth:`ConvRNN.feedforward_cnn` (the same layer convolutions, ``conv -> ELU -> pool``, and readout).
* Input: batch 32 of 64 x 64 one-channel images, 16 unrolled steps (image shown throughout), readout at the last
  step, cross-entropy against random labels. ``--quick``: batch 8, 8 steps, 32 x 32 (a smoke run, not the target).
* FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` over one forward + backward (it counts convolutions and
  matrix products, the arithmetic; element-wise gate operations are not counted, so they show up as lost FLOP/s).
* Time: fastest of ``--repeats`` training steps after one warm-up (the CNN: of 10 steps before and 10 after the
  ConvRNN's), ``torch.set_num_threads(--threads)`` (default 1). The minimum is the estimate least disturbed by
  other processes on a shared machine.
* Memory: peak resident set size of a fresh subprocess during one training step minus its resident size just
  before the step (model and batch built): the peak is reset just before the step by writing 5 to
  ``/proc/self/clear_refs`` and read from ``VmHWM`` (Linux); where that is not allowed, ``ru_maxrss`` (peak since
  the process started) is used and said so. torch's CPU allocations are not seen by ``tracemalloc``.

Run: ``python benchmarks/bench_convrnn.py [--quick] [--batch N] [--threads N]``; exits 0 and prints PASS/FAIL.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

CHANNELS = (8, 16, 16, 32, 32, 64)
POOLS = (1, 2, 1, 2, 1, 2)
FEEDBACK = ((5, 3),)


def build(steps: int, checkpoint: bool = False):
    import torch

    from neuromodels.convrnn import ConvRNN, LayerSpec

    torch.manual_seed(0)
    return ConvRNN(
        [LayerSpec(c, 3, p) for c, p in zip(CHANNELS, POOLS)],
        cell="rgc",
        feedback=FEEDBACK,
        steps=steps,
        num_classes=10,
        checkpoint_steps=checkpoint,
    )


def batch_of(batch: int, size: int):
    import torch

    generator = torch.Generator().manual_seed(1)
    return torch.randn(batch, 1, size, size, generator=generator), torch.randint(0, 10, (batch,), generator=generator)


def training_step(model, images, labels) -> None:
    import torch.nn.functional as F

    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(images), labels).backward()


def flops_of(model, images, labels) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        training_step(model, images, labels)
    return int(counter.get_total_flops())


def seconds_of(model, images, labels, repeats: int, warm_up: bool = True) -> float:
    """Fastest of ``repeats`` training steps: on a shared machine the minimum is the time least disturbed by other
    processes (the median is printed too where it differs much)."""
    if warm_up:
        training_step(model, images, labels)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        training_step(model, images, labels)
        times.append(time.perf_counter() - started)
    if statistics.median(times) > 1.5 * min(times):
        print(
            f"    (noisy timings for {type(model).__name__}: min {min(times):.3f} s, median "
            f"{statistics.median(times):.3f} s)"
        )
    return min(times)


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(args: argparse.Namespace) -> None:
    """In a fresh process: peak RSS increase (MiB) of one training step."""
    import torch

    torch.set_num_threads(args.threads)
    model = build(args.steps, checkpoint=args.memory_child == "checkpoint")
    images, labels = batch_of(args.batch, args.size)
    with torch.no_grad():
        model(images[:1])  # touch the code paths so that lazy allocations are not counted as the step's
    before_mib = _status_mib("VmRSS")
    try:  # reset the peak (VmHWM) to the current RSS (Linux >= 4.0), so the peak is the step's own
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        source = "VmHWM after /proc/self/clear_refs reset"
    except OSError:
        source = "ru_maxrss (peak since process start)"
    training_step(model, images, labels)
    peak_mib = (
        _status_mib("VmHWM")
        if source.startswith("VmHWM")
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    print(
        json.dumps(
            {"before_mib": before_mib, "peak_mib": peak_mib, "step_mib": peak_mib - before_mib, "source": source}
        )
    )


def measure_memory(args: argparse.Namespace, mode: str) -> dict[str, float]:
    command = [
        sys.executable,
        __file__,
        "--memory-child",
        mode,
        "--batch",
        str(args.batch),
        "--steps",
        str(args.steps),
        "--size",
        str(args.size),
        "--threads",
        str(args.threads),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=dict(os.environ))
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="batch 8, 8 steps, 32 x 32 images")
    parser.add_argument("--memory-child", choices=["plain", "checkpoint"], default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.batch, args.steps, args.size = 8, 8, 32
    if args.memory_child:
        memory_child(args)
        return 0

    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    model = build(args.steps)
    cnn = model.feedforward_cnn()
    images, labels = batch_of(args.batch, args.size)
    print(
        f"6-layer RGC ConvRNN (channels {CHANNELS}, feedback {FEEDBACK}) unrolled {args.steps} steps vs the "
        f"equal-depth CNN; batch {args.batch} of {args.size}x{args.size}, {args.threads} thread(s), forward+backward"
    )
    flops_rnn, flops_cnn = flops_of(model, images, labels), flops_of(cnn, images, labels)
    t_cnn = seconds_of(cnn, images, labels, max(args.repeats, 10))
    t_rnn = seconds_of(model, images, labels, args.repeats)
    # the CNN again after the long ConvRNN run: both see the same machine load
    t_cnn = min(t_cnn, seconds_of(cnn, images, labels, max(args.repeats, 10), warm_up=False))
    model.checkpoint_steps = True
    t_ckpt = seconds_of(model, images, labels, args.repeats)
    model.checkpoint_steps = False
    rate_rnn, rate_cnn = flops_rnn / t_rnn, flops_cnn / t_cnn
    ratio = rate_rnn / rate_cnn
    print(f"  feedforward CNN : {flops_cnn / 1e9:9.3f} GFLOP in {t_cnn * 1e3:9.1f} ms = {rate_cnn / 1e9:6.2f} GFLOP/s")
    print(f"  RGC ConvRNN     : {flops_rnn / 1e9:9.3f} GFLOP in {t_rnn * 1e3:9.1f} ms = {rate_rnn / 1e9:6.2f} GFLOP/s")
    print(
        f"  RGC ConvRNN, checkpointed steps: {t_ckpt * 1e3:9.1f} ms "
        f"({t_ckpt / t_rnn:.2f}x the time; recomputes the forward pass)"
    )
    print(f"  achieved FLOP/s ratio ConvRNN / CNN = {ratio:.3f} (target >= 0.8): {'PASS' if ratio >= 0.8 else 'FAIL'}")
    plain, ckpt = measure_memory(args, "plain"), measure_memory(args, "checkpoint")
    print(
        f"  peak memory of one training step (RSS increase over the built model and batch, fresh subprocess, "
        f"{plain['source']}):"
    )
    print(f"    without checkpointing: {plain['step_mib']:8.1f} MiB (process peak {plain['peak_mib']:.0f} MiB)")
    print(
        f"    with checkpointing   : {ckpt['step_mib']:8.1f} MiB (process peak {ckpt['peak_mib']:.0f} MiB), "
        f"{plain['step_mib'] / max(ckpt['step_mib'], 1e-9):.1f}x less"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Retina CNN training benchmark: our data path and fit loop vs the straightforward PyTorch version.

Question: does training ``RetinaCNN`` (McIntosh et al. 2016 architecture) through neuromodels (stimulus history
as a strided view, batches gathered per step, first layer through FFTs, ``fitting.fit``) beat the way one would
write it in plain PyTorch, and does its memory stay flat as history x movie length grows?

Both run on the training movie of ``sample:retina`` (6,000 frames of 50x50 at 100 Hz, 12 cells), the same
architecture (40 frames -> conv 8x15x15 -> noise -> ReLU -> conv 8x11x11 -> noise -> ReLU -> dense -> softplus),
Poisson loss, Adam, batch 64, the same number of training samples per epoch:

* **ours**: ``RetinaDataset`` (windows = ``history_view`` of the movie, nothing copied) and
  ``neuromodels.fitting.fit`` with ``RetinaCNN`` (its ``conv_impl="auto"`` computes the 40x15x15 layer by FFT);
* **plain**: the windows materialised as one ``(n, 40, 50, 50)`` tensor (``torch.stack`` of slices: 40 copies
  of every frame), ``TensorDataset`` + ``DataLoader(shuffle=True)``, ``nn.Sequential`` with ``nn.Conv2d``,
  a hand-written loop (default settings everywhere).

Each measurement runs in its own subprocess so that its peak RSS (``VmHWM``) is its own. Printed: seconds per
epoch (best of ``--repeats``), the ratio plain/ours (target >= 1.5), peak memory of both for history 10 and 40
over the whole training movie (target: ours does not grow with history), and throughput: the direct-convolution
FLOPs the model needs per second of training, as a fraction of this machine's measured ``F.conv2d`` throughput
for the same layer shapes (target >= 40%; above 100% means the FFT path does the work in fewer operations
than a direct convolution would). The ``F.conv2d`` probe runs in the same process as our training, alternating
with it (probe, epoch, probe, epoch, ..., probe; best of all probes against the best epoch), so that both see
the same load on a shared machine. Each target is printed with PASS or FAIL; the script exits 0 either way.

Run: ``python benchmarks/bench_retina_fit.py`` (about 2-3 minutes on 2 free cores; ``--quick``: 256 windows and
1 epoch, under a minute). Timings on a shared machine vary from run to run: rerun with ``--repeats 3``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HISTORY = 40
BATCH = 64


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _training_data():
    import numpy as np

    from neuromodels.datasets import sample
    from neuromodels.datasets.recording import split

    rec = split(sample("retina"), "train")
    stimulus = np.ascontiguousarray(rec["stimulus"].values, dtype=np.float32)
    response = rec["response"].values.astype(np.float32)
    return stimulus, response, float(stimulus.std())


def _ours(samples: int, epochs: int, history: int, steps: int | None, probe: bool = False) -> dict:
    import numpy as np
    import torch

    from neuromodels.fitting.loop import fit
    from neuromodels.fitting.retina_data import RetinaDataset
    from neuromodels.retina import RetinaCNN

    stimulus, response, std = _training_data()
    dataset = RetinaDataset(stimulus, response, history=history, stimulus_std=std)
    if steps is not None:
        samples = steps * BATCH
    train = dataset.subset(dataset.ends[:samples])
    torch.manual_seed(0)
    model = RetinaCNN(response.shape[1], history=history)
    # the conv2d probe alternates with our epochs in this process: probe, epoch 1, probe, epoch 2, ..., probe
    probes = [_conv_probe()] if probe else []
    callbacks = [lambda epoch, logs: probes.append(_conv_probe()) and None] if probe else []
    started = time.perf_counter()
    history_log = fit(
        model, train, None, epochs=epochs, batch_size=BATCH, lr=1e-3, progress=False, patience=None, callbacks=callbacks
    )
    seconds = time.perf_counter() - started
    per_epoch = [r["seconds"] for r in history_log.records]
    result = {
        "seconds_per_epoch": min(per_epoch),
        "total_s": seconds,
        "samples": len(train),
        "final_loss": history_log["train_loss"][-1],
        "peak_rss_mb": _peak_rss_mb(),
        "movie_mb": stimulus.nbytes / 2**20,
        "n_frames": int(stimulus.shape[0]),
        "windows_shared": bool(np.shares_memory(stimulus, dataset.windows.numpy())),
    }
    if probe:
        result["conv"] = _conv_best(probes)
    return result


def _plain(samples: int, epochs: int, history: int, steps: int | None, materialise_all: bool) -> dict:
    import torch
    from torch import nn

    stimulus, response, std = _training_data()
    movie = (torch.from_numpy(stimulus) - float(stimulus.mean())) / std
    n_windows = movie.shape[0] - history + 1
    count = n_windows if materialise_all else min(samples if steps is None else steps * BATCH, n_windows)
    windows = torch.stack([movie[t : t + history] for t in range(count)])  # what a plain script does: a 40x copy
    windows_mb = windows.numel() * 4 / 2**20
    targets = torch.from_numpy(response[history - 1 : history - 1 + count])
    if steps is not None:
        windows, targets = windows[: steps * BATCH], targets[: steps * BATCH]
    elif materialise_all:
        windows, targets = windows[:samples], targets[:samples]

    class Noise(nn.Module):
        def forward(self, x):
            return x + 0.1 * torch.randn_like(x) if self.training else x

    size = stimulus.shape[1]
    h1 = size - 15 + 1
    h2 = h1 - 11 + 1
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(history, 8, 15),
        Noise(),
        nn.ReLU(),
        nn.Conv2d(8, 8, 11),
        Noise(),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * h2 * h2, response.shape[1]),
        nn.Softplus(),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.PoissonNLLLoss(log_input=False)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(windows, targets), batch_size=BATCH, shuffle=True
    )
    per_epoch = []
    for _ in range(epochs):
        started = time.perf_counter()
        total = 0.0
        for x, y in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            total += float(loss) * len(y)
        per_epoch.append(time.perf_counter() - started)
    return {
        "seconds_per_epoch": min(per_epoch),
        "samples": len(windows),
        "final_loss": total / len(windows),
        "peak_rss_mb": _peak_rss_mb(),
        "windows_mb": windows_mb,
    }


_CONV_LAYERS = {"layer1": (HISTORY, 8, 15, 50), "layer2": (8, 8, 11, 36)}  # (in, out, kernel, input size)


def _conv_probe(calls: int = 3) -> dict:
    """Seconds of one ``F.conv2d`` forward (batch 64) for each of the model's two layer shapes, best of ``calls``
    after a warm-up call."""
    import torch
    import torch.nn.functional as F

    out = {}
    for name, (cin, cout, k, size) in _CONV_LAYERS.items():
        x = torch.randn(BATCH, cin, size, size)
        w = torch.randn(cout, cin, k, k)
        F.conv2d(x, w)
        best = float("inf")
        for _ in range(calls):
            started = time.perf_counter()
            F.conv2d(x, w)
            best = min(best, time.perf_counter() - started)
        out[name] = best
    return out


def _conv_best(probes: list[dict]) -> dict:
    """The fastest of all probes per layer as measured ``F.conv2d`` throughput (GFLOP/s) and FLOPs per sample."""
    out = {}
    for name, (cin, cout, k, size) in _CONV_LAYERS.items():
        best = min(p[name] for p in probes)
        flops = 2.0 * BATCH * cout * (size - k + 1) ** 2 * cin * k * k
        out[name] = {"gflops": flops / best / 1e9, "flops": flops / BATCH, "probes": len(probes)}
    return out


def _model_flops_per_sample(n_cells: int = 12) -> float:
    """Direct-convolution FLOPs of one training sample: forward + gradients (no input gradient for layer 1)."""
    layer1 = 2.0 * 8 * 36 * 36 * HISTORY * 15 * 15
    layer2 = 2.0 * 8 * 26 * 26 * 8 * 11 * 11
    dense = 2.0 * 8 * 26 * 26 * n_cells
    return 2 * layer1 + 3 * layer2 + 3 * dense


def _child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    if args.child == "ours":
        result = _ours(args.samples, args.epochs, args.history, args.steps, args.probe)
    else:
        result = _plain(args.samples, args.epochs, args.history, args.steps, args.materialise_all)
    print("RESULT " + json.dumps(result))


def _run_child(kind: str, args: argparse.Namespace, **extra) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--samples",
        str(args.samples),
        "--epochs",
        str(args.epochs),
        "--threads",
        str(args.threads),
    ]
    for key, value in extra.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            command.append(flag)
        elif value is not None and value is not False:
            command += [flag, str(value)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def stimulus_frame_mb(result: dict) -> float:
    """Megabytes of one stimulus frame, from a run's movie size (6,000 frames in sample:retina's train split)."""
    return result["movie_mb"] / result.get("n_frames", 6000)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1280, help="training windows per epoch (both versions)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run; the fastest epoch is reported")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved runs of each version")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="a small run (256 samples, 1 epoch)")
    parser.add_argument("--child", choices=("ours", "plain"), help=argparse.SUPPRESS)
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--history", type=int, default=HISTORY, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--materialise-all", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    if args.quick:
        args.samples, args.epochs = 256, 1

    print(f"RetinaCNN training on sample:retina, {args.samples} windows/epoch, batch {BATCH}, {args.threads} threads")
    ours, plain = [], []
    for _ in range(args.repeats):
        ours.append(_run_child("ours", args, probe=True))
        plain.append(_run_child("plain", args))
    best_ours = min(r["seconds_per_epoch"] for r in ours)
    best_plain = min(r["seconds_per_epoch"] for r in plain)
    ratio = best_plain / best_ours
    verdicts = {}
    verdicts["speed"] = ratio >= 1.5
    print(
        f"  seconds per epoch   ours {best_ours:8.2f}   plain PyTorch {best_plain:8.2f}   "
        f"ratio plain/ours {ratio:5.1f}x  (target >= 1.5x: {_verdict(verdicts['speed'])})"
    )
    print(f"  final train loss    ours {ours[0]['final_loss']:.4f}   plain {plain[0]['final_loss']:.4f}")

    # the probe of the run whose epoch was fastest: measured in that process, alternating with its epochs
    fastest = min(ours, key=lambda r: r["seconds_per_epoch"])
    conv = fastest["conv"]
    measured = (conv["layer1"]["flops"] + conv["layer2"]["flops"]) / (
        conv["layer1"]["flops"] / (conv["layer1"]["gflops"] * 1e9)
        + conv["layer2"]["flops"] / (conv["layer2"]["gflops"] * 1e9)
    )
    needed = _model_flops_per_sample()
    ours_rate = needed * fastest["samples"] / fastest["seconds_per_epoch"]
    plain_rate = needed * plain[0]["samples"] / best_plain
    print(
        f"  measured F.conv2d throughput (these layer shapes, best of {conv['layer1']['probes']} probes "
        f"alternating with our epochs in the same process): {measured / 1e9:.1f} GFLOP/s "
        f"(layer1 {conv['layer1']['gflops']:.1f}, layer2 {conv['layer2']['gflops']:.1f})"
    )
    verdicts["throughput"] = ours_rate >= 0.4 * measured
    print(
        f"  training throughput in direct-conv FLOPs: ours {ours_rate / 1e9:.1f} GFLOP/s = "
        f"{100 * ours_rate / measured:.0f}% of measured conv2d (target >= 40%: "
        f"{_verdict(verdicts['throughput'])}); plain {plain_rate / 1e9:.1f} GFLOP/s = "
        f"{100 * plain_rate / measured:.0f}%"
    )

    print("  peak memory over the whole training movie (2 training steps):")
    rows = []
    for history in (10, 40):
        o = _run_child("ours", args, history=history, steps=2)
        p = _run_child("plain", args, history=history, steps=2, materialise_all=True)
        rows.append((history, o, p))
        print(
            f"    history {history:2d}: ours {o['peak_rss_mb']:7.0f} MB (movie {o['movie_mb']:.0f} MB, windows shared: "
            f"{o['windows_shared']})   plain {p['peak_rss_mb']:7.0f} MB (windows {p['windows_mb']:.0f} MB)"
        )
    growth_ours = rows[1][1]["peak_rss_mb"] - rows[0][1]["peak_rss_mb"]
    growth_plain = rows[1][2]["peak_rss_mb"] - rows[0][2]["peak_rss_mb"]
    batch_mb = BATCH * 30 * stimulus_frame_mb(rows[0][1])
    movie_copies_mb = 30 * rows[0][1]["movie_mb"]  # what 30 more frames of history cost if windows were copied
    verdicts["memory"] = growth_ours < 0.1 * movie_copies_mb
    print(
        f"    growth from history 10 to 40: ours {growth_ours:+.0f} MB, plain {growth_plain:+.0f} MB; ours grows by "
        f"its per-batch buffers only (30 more frames x {BATCH} windows = {batch_mb:.0f} MB per copy of a batch, "
        f"independent of movie length), plain by 30 more copies of the movie ({movie_copies_mb:.0f} MB)"
    )
    print(
        f"    target: growth < 10% of 30 movie copies ({0.1 * movie_copies_mb:.0f} MB): {_verdict(verdicts['memory'])}"
    )
    print("summary: " + ", ".join(f"{name} {_verdict(ok)}" for name, ok in verdicts.items()))


if __name__ == "__main__":
    main()

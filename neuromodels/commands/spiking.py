"""``neuromodels simulate`` and ``neuromodels train-snn``: spiking circuits and their training.

    neuromodels simulate --example feedforward --out reports/snn
    neuromodels simulate --config circuit.toml --backend brian2 --out reports/snn --json
    neuromodels simulate --example brunel --out reports/brunel
    neuromodels train-snn --task raster --feedback symmetric --method superspike --out reports/snn-train

``simulate`` writes ``simulation.nc`` (``spikes``, ``rate`` and, if recorded, ``voltage``; every parameter in the
attrs), ``raster.png``, ``rates.png`` and ``report.json`` under ``--out``; for a circuit (``[[population]]``
tables) the neurons carry a ``population`` coordinate and the report gives the mean rate per population.  ``train-snn`` writes ``loss.json``,
``loss.png``, ``raster.png`` (output vs target) and ``report.json``.  All files are written atomically.
Configuration keys: :mod:`neuromodels.spiking.config`; tasks: :mod:`neuromodels.fitting.superspike`.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from neuromodels._outputs import ReportFolder, check_out_folder
from neuromodels._reports import print_json, write_json

TASKS = ("timing", "raster", "xor")


def register(sub: argparse._SubParsersAction) -> None:
    sim = sub.add_parser(
        "simulate",
        help="simulate a spiking circuit (LIF network on Poisson input)",
        description="Simulate a network of current-based LIF neurons on Poisson input, with our "
        "engine (torch/numpy) or Brian2, and write rasters, rates and voltages.",
    )
    source = sim.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--config",
        help="TOML file with [simulation], [input], [network], [neuron] tables, or a "
        "circuit: [simulation], [[population]], [[projection]]",
    )
    source.add_argument(
        "--example",
        help="built-in circuit: feedforward, recurrent, fine-dt, or brunel (Brunel "
        "2000's E-I network with delays and delta synapses, N_E 2,000, N_I 500)",
    )
    sim.add_argument(
        "--backend",
        default="torch",
        choices=("torch", "brian2"),
        help="our simulator (torch; numpy-backed forward pass) or Brian2's numpy runtime",
    )
    sim.add_argument("--out", default="reports/simulate", help="output folder (default: reports/simulate)")
    sim.add_argument("--json", action="store_true", help="print the report as JSON")
    sim.set_defaults(handler=_simulate)

    train = sub.add_parser(
        "train-snn",
        help="train a spiking network with SuperSpike or surrogate-gradient BPTT",
        description="Train a LIF network on a SuperSpike task (Zenke & Ganguli 2018) and write its loss curve.",
    )
    train.add_argument(
        "--task",
        required=True,
        choices=TASKS,
        help="timing: precisely timed spikes of one neuron; raster: a target raster from frozen "
        "Poisson input (200 -> hidden -> 200); xor: temporal XOR with a hidden layer",
    )
    train.add_argument(
        "--feedback",
        default="symmetric",
        choices=("symmetric", "random", "uniform"),
        help="feedback to hidden units (SuperSpike only)",
    )
    train.add_argument("--method", default="superspike", choices=("superspike", "bptt"))
    train.add_argument(
        "--preset",
        default="default",
        choices=("default", "paper"),
        help="settings: default (dt 1 ms) or paper (Zenke & Ganguli 2018: dt 0.1 ms, 5 ms refractory "
        "period, 0.8 ms axonal delay, |w| < 0.1 V, N(0,1)/ones feedback, rho = 1 with random "
        "feedback)",
    )
    train.add_argument("--trials", type=int, default=None, help="training trials (default: the task's)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", default="reports/train-snn", help="output folder (default: reports/train-snn)")
    train.add_argument("--json", action="store_true", help="print the report as JSON")
    train.set_defaults(handler=_train)


def _netcdf_attrs(config: dict[str, dict[str, Any]]) -> dict[str, Any]:
    import numpy as np

    attrs: dict[str, Any] = {}
    for table, values in config.items():
        for key, value in values.items():
            if isinstance(value, bool):
                value = int(value)
            elif isinstance(value, list):
                value = np.asarray([int(v) for v in value])
            attrs[f"{table}.{key}"] = value
    return attrs


def _simulate_circuit(args: argparse.Namespace, config: dict[str, Any], out: Any) -> int:
    import json

    import numpy as np

    from neuromodels.datasets._io import write_netcdf_atomic
    from neuromodels.spiking.circuit import simulate_circuit
    from neuromodels.spiking.config import build_circuit
    from neuromodels.spiking.network import spike_rates
    from neuromodels.spiking.plots import plot_raster, plot_rate_histogram, save_figure

    circuit = build_circuit(config)
    sim = config["simulation"]
    backend = "brian2" if args.backend == "brian2" else "neuromodels"  # our circuit engine is compiled C / NumPy
    started = time.perf_counter()
    if args.backend == "brian2":
        from neuromodels.spiking.brian2_bridge import circuit_to_brian2

        model = circuit_to_brian2(
            circuit, sim["duration"], sim["dt"], method=sim["method"], record_voltages=sim["record_voltages"]
        )
        model.run()
        result = model.result()
    else:
        result = simulate_circuit(
            circuit, sim["duration"], sim["dt"], method=sim["method"], record_voltages=sim["record_voltages"]
        )
    seconds = time.perf_counter() - started
    result["rate"] = spike_rates(result)
    source = f"example:{args.example}" if args.example else str(args.config)
    result.attrs.update({"backend": backend, "source": source, "config": json.dumps(config)})
    rates = result["rate"].values
    names = [p.name for p in circuit.lif]
    population = result["population"].values
    report = {
        "backend": backend,
        "seconds": seconds,
        "n_spikes": int(result["spikes"].sum()),
        "mean_rate_hz": float(rates.mean()),
        "mean_rate_per_population_hz": {n: float(rates[population == n].mean()) for n in names},
        "files": ["simulation.nc", "raster.png", "rates.png", "report.json"],
        "config": config,
    }
    # a readable raster: the first 100 neurons of each population over the first 0.3 s at most
    shown = np.concatenate([np.flatnonzero(population == n)[:100] for n in names])
    steps = min(result.sizes["time"], int(round(0.3 / sim["dt"])))
    codes = np.concatenate([np.full(min(p.n, 100), k) for k, p in enumerate(circuit.lif)])
    with ReportFolder(out, "simulate") as folder:
        write_netcdf_atomic(result, folder.path("simulation.nc"))
        save_figure(
            plot_raster(
                result["spikes"].values[:steps, shown],
                sim["dt"],
                layer=codes,
                title=f"{' / '.join(names)}, first 100 neurons each ({backend}, {sim['method']}, "
                f"dt={sim['dt'] * 1e3:g} ms)",
            ),
            folder.path("raster.png"),
        )
        save_figure(plot_rate_histogram(rates, title="firing rates"), folder.path("rates.png"))
        write_json(folder.path("report.json"), report)
    if args.json:
        print_json(report)
    else:
        per_population = ", ".join(f"{n} {r:.2f} Hz" for n, r in report["mean_rate_per_population_hz"].items())
        print(
            f"simulated {sim['duration']} s of a circuit with {backend} in {seconds:.2f} s: "
            f"{report['n_spikes']} spikes ({per_population}) -> {out}"
        )
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from neuromodels.datasets._io import write_netcdf_atomic
    from neuromodels.spiking.config import build, is_circuit, load_config
    from neuromodels.spiking.network import simulate, spike_rates
    from neuromodels.spiking.plots import plot_raster, plot_rate_histogram, save_figure

    out = check_out_folder(args.out)
    config = load_config(args.config, args.example)
    if args.backend == "brian2":
        from neuromodels.spiking.brian2_bridge import require_brian2

        require_brian2("--backend brian2")
    if is_circuit(config):
        return _simulate_circuit(args, config, out)
    setup = build(config)
    sim = config["simulation"]
    started = time.perf_counter()
    if args.backend == "brian2":
        from neuromodels.spiking.brian2_bridge import simulate_brian2

        result = simulate_brian2(
            setup.network,
            setup.inputs,
            sim["dt"],
            method=sim["method"],
            dtype=sim["dtype"],
            record_voltages=sim["record_voltages"],
        )
    else:
        result = simulate(
            setup.network,
            setup.inputs,
            sim["dt"],
            method=sim["method"],
            dtype=sim["dtype"],
            record_voltages=sim["record_voltages"],
        )
    seconds = time.perf_counter() - started
    result["rate"] = spike_rates(result)
    result.attrs = {
        **_netcdf_attrs(config),
        "backend": args.backend,
        "dt": sim["dt"],
        "method": sim["method"],
        "ordering": "state update -> threshold -> synapses -> reset (Brian2 default schedule)",
        "source": f"example:{args.example}" if args.example else str(args.config),
    }
    first = result["spikes"].isel(trial=0).values
    rates = result["rate"].values
    report = {
        "backend": args.backend,
        "seconds": seconds,
        "n_spikes": int(result["spikes"].sum()),
        "mean_rate_hz": float(rates.mean()),
        "mean_rate_per_layer_hz": [
            float(rates[result["layer"].values == i].mean()) for i in range(len(setup.network.layer_sizes))
        ],
        "files": ["simulation.nc", "raster.png", "rates.png", "report.json"],
        "config": config,
    }
    with ReportFolder(out, "simulate") as folder:
        write_netcdf_atomic(result, folder.path("simulation.nc"))
        save_figure(
            plot_raster(
                first,
                sim["dt"],
                layer=result["layer"].values,
                title=f"trial 0 ({args.backend}, {sim['method']}, dt={sim['dt'] * 1e3:g} ms)",
            ),
            folder.path("raster.png"),
        )
        save_figure(plot_rate_histogram(rates, title="firing rates"), folder.path("rates.png"))
        write_json(folder.path("report.json"), report)
    if args.json:
        print_json(report)
    else:
        print(
            f"simulated {sim['trials']} trial(s) of {sim['duration']} s with {args.backend} in {seconds:.2f} s: "
            f"{report['n_spikes']} spikes, mean rate {report['mean_rate_hz']:.2f} Hz -> {out}"
        )
    return 0


def _train(args: argparse.Namespace) -> int:
    from neuromodels.errors import ConfigError
    from neuromodels.fitting.superspike import run_task
    from neuromodels.spiking.plots import plot_loss_curves, plot_raster, save_figure

    if args.trials is not None and args.trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {args.trials}")
    if args.method == "bptt" and args.feedback != "symmetric":
        raise ConfigError("--feedback applies to SuperSpike only; BPTT uses the exact (symmetric) backward pass")
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    out = check_out_folder(args.out)
    result = run_task(
        args.task,
        method=args.method,
        feedback=args.feedback,
        trials=args.trials,
        seed=args.seed,
        progress=None if sys.stderr.isatty() else False,
        preset=args.preset,
    )
    label = f"{args.method}" + (f" ({args.feedback})" if args.method == "superspike" else "")
    report = {
        "task": args.task,
        "method": args.method,
        "feedback": args.feedback,
        **result.summary(),
        "files": ["loss.json", "loss.png", "raster.png", "report.json"],
    }
    with ReportFolder(out, "train-snn") as folder:
        save_figure(plot_loss_curves({label: result.losses}, title=f"task {args.task}"), folder.path("loss.png"))
        fig = plot_raster(result.target, result.dt, color="tab:red", title="output (black) vs target (red)")
        plot_raster(result.output, result.dt, ax=fig.axes[0])
        save_figure(fig, folder.path("raster.png"))
        write_json(
            folder.path("loss.json"), {"loss": result.losses, **{k: v for k, v in report.items() if k != "files"}}
        )
        write_json(folder.path("report.json"), report)
    if args.json:
        print_json(report)
    else:
        print(
            f"{args.task} with {label}: loss {result.losses[0]:.4g} -> {result.losses[-1]:.4g} "
            f"({loss_change(report['loss_ratio'])}) in {len(result.losses)} trials -> {out}"
        )
    return 0


def loss_change(ratio: float) -> str:
    """How the loss moved, from ``ratio`` = first loss / final loss: ``"3.0x lower"`` or ``"2.0x higher: ..."``."""
    if ratio >= 1 or not ratio > 0:  # inf (a final loss of 0) and nan read as they are
        return f"{ratio:.1f}x lower"
    return f"{1 / ratio:.1f}x higher: training did not help"

"""Benchmark: spiking-network simulation and one training step, ours vs snnTorch, Norse and Brian2, in one run.

Network (issue 6): 1,000 Poisson inputs (10 Hz) -> 200 current-based LIF neurons (tau_mem 10 ms, tau_syn 5 ms,
threshold 1, reset 0, exact propagator), 1 s at dt = 1 ms and 0.1 ms, batch 1 and 64 trials, float32, one CPU
thread.  Rows:

* forward: ours = :func:`neuromodels.spiking.simulate` with ``engine="auto"`` (:func:`~neuromodels.spiking.network.
  choose_engine`: here the compiled event-driven kernel of ``run_network_numpy``, issue 19); the plain torch loop
  (``run_network``, no autograd) for reference; snnTorch ``Synaptic`` (reset to zero) and Norse ``LIF`` driven by
  a bias-free ``Linear`` layer, step by step; Brian2's numpy runtime (the network run only, objects built
  beforehand; batch 64 as 64 separate runs, extrapolated from the first few and marked so).  Brian2
  cpp_standalone is timed on the compiled binary (compile excluded) when ``--standalone`` is given and a compiler
  works.
* training step: ours = one SuperSpike block (simulation + rule + RMaxProp update) and one BPTT step
  (surrogate-gradient forward + backward + Adam); peers = forward with their surrogate + backward of a van Rossum
  loss + Adam.  BPTT steps at batch 64 or dt = 0.1 ms take minutes each and run only with ``--full``; at
  dt = 0.1 ms and batch 64 they are never run (the graphs need > 10 GB).

Work and bandwidth (issue 19): each forward row prints the synaptic events per second (input spikes x 200
targets, the same work for every implementation), and the best row's fraction of this machine's memory bandwidth,
measured in the same run by copying a 256 MB array (read + write bytes per second). The bytes charged to a
forward run are a lower bound on its traffic: the input raster read once (1 byte per entry), the output raster
written once, and one 4-byte weight read per synaptic event.

Targets: ours at least as fast as the fastest peer at batch 1 (forward); >= 5x faster than Brian2's runtime mode
at batch 64; (issue 19) forward at batch 64 >= 2x faster than the fastest of snnTorch and Norse, and the BPTT step
at batch 64, dt 1 ms (``--bptt-64``) no slower than the fastest peer.  Peers are timed only where importable (a
message says which are missing); install them in the benchmark's own environment, not as dependencies, e.g. into
a folder on ``PYTHONPATH`` beside the peers' torch (``.venv-peers``, benchmarks/peers/setup.sh):
``.venv-peers/bin/python -m pip install --no-deps --target DIR snntorch==1.0.0 norse==1.1.0 nir nirtorch
brian2==2.9.0`` (brian2 for its rows), then ``PYTHONPATH=DIR .venv-peers/bin/python benchmarks/bench_snn.py ...``.
Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_snn.py [--quick] [--standalone] [--bptt-64]``.

Circuit row (issue 20; ``--circuit`` runs only this row): Brunel's (2000) E-I network at reduced size
(``config.BENCHMARK_BRUNEL``, scaled down with epsilon = 0.1: N_E 2,000, N_I 500, epsilon 0.1, J 0.1 mV, g 5, D 1.5 ms, nu_ext = 2 nu_thr, delta synapses,
refractory 2 ms), 1 s of biological time at dt = 0.1 ms, float64, exact integration, one CPU thread: ours
(:func:`~neuromodels.spiking.simulate_circuit`, compiled and NumPy loops) vs Brian2 numpy and cython runtimes and
cpp_standalone (run only; objects built / compiled beforehand), all on the same connectivity and external spikes
(the spike counts are printed: they agree), and NEST (``iaf_psc_delta``, same connectivity, the external spikes
replayed by ``spike_generator`` -> ``parrot_neuron``, shifted by one step because NEST refuses t = 0) where it
imports (``pip install nest-simulator`` into the benchmark's environment, or ``--nest-path`` to a ``pip install
--target`` folder).  Target: ours no slower than Brian2 cpp_standalone.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import math
import time
import warnings

import numpy as np
import torch

N_IN, N_OUT, DURATION, RATE = 1000, 200, 1.0, 10.0
TAU_MEM, TAU_SYN = 10e-3, 5e-3


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def memory_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """Bytes per second of a large NumPy copy (each byte read once and written once), best of ``repeats``."""
    src = np.ones(megabytes * 2**20 // 8)
    dst = np.empty_like(src)
    seconds = best_of(lambda: np.copyto(dst, src), repeats)
    return 2 * src.nbytes / seconds


def forward_work(x: np.ndarray) -> tuple[int, int]:
    """``(synaptic events, bytes)`` of a forward run on raster ``x`` (trials, steps, inputs): every input spike
    reaches all N_OUT neurons; bytes: the raster read once, an output raster of the same steps written once, one
    float32 weight per synaptic event (see the module docstring: a lower bound on the traffic)."""
    events = int(np.count_nonzero(x)) * N_OUT
    return events, x.size + x.shape[0] * x.shape[1] * N_OUT + 4 * events


def make_network(dt: float):
    from neuromodels.spiking import SpikingNetwork

    return SpikingNetwork(N_IN, [N_OUT], weight_mean=0.7, weight_std=0.5, seed=1, dt=dt)


def make_inputs(dt: float, batch: int) -> np.ndarray:
    from neuromodels.spiking import poisson_spikes

    return poisson_spikes(N_IN, RATE, DURATION, dt, trials=batch, seed=0)


# ----------------------------------------------------------------------------------------------------------- ours
def ours_forward(net, x, dt):
    from neuromodels.spiking import simulate

    return lambda: simulate(net, x, dt, method="exact", dtype="float32")  # engine="auto"


def ours_torch_forward(net, x, dt):
    from neuromodels.spiking import run_network

    xt = torch.as_tensor(x, dtype=torch.float32)
    return lambda: run_network(net, xt, dt, "exact")


def ours_superspike_step(net, x, dt):
    from neuromodels.fitting.superspike import SuperSpike

    rule = SuperSpike(net, dtype="float32")
    target = make_target(x.shape[0], x.shape[1])
    return lambda: rule.step(x, target)


def ours_bptt_step(net, x, dt):
    from neuromodels.fitting.superspike import van_rossum_loss

    xt = torch.as_tensor(x, dtype=torch.float32)
    target = torch.as_tensor(make_target(x.shape[0], x.shape[1]), dtype=torch.float32)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step():
        opt.zero_grad()
        van_rossum_loss(net(xt), target, dt).backward()
        opt.step()

    return step


def make_target(batch: int, n_steps: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    return (rng.random((batch, n_steps, N_OUT)) < 10.0 * DURATION / n_steps).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------- peers
def snntorch_step(net, x, dt, train: bool):
    import snntorch

    fc = torch.nn.Linear(N_IN, N_OUT, bias=False)
    with torch.no_grad():
        fc.weight.copy_(net.feedforward[0].detach().T)
    lif = snntorch.Synaptic(
        alpha=math.exp(-dt / TAU_SYN), beta=math.exp(-dt / TAU_MEM), threshold=1.0, reset_mechanism="zero"
    )
    xt = torch.as_tensor(x, dtype=torch.float32).transpose(0, 1).contiguous()  # (time, batch, in)
    target = torch.as_tensor(make_target(x.shape[0], x.shape[1]), dtype=torch.float32)
    opt = torch.optim.Adam(fc.parameters(), lr=1e-3)

    def run():
        syn, mem = lif.reset_mem() if hasattr(lif, "reset_mem") else lif.init_synaptic()
        spikes = []
        currents = fc(xt)
        for n in range(xt.shape[0]):
            spk, syn, mem = lif(currents[n], syn, mem)
            spikes.append(spk)
        return torch.stack(spikes, 1)

    if not train:

        def forward():
            with torch.no_grad():
                run()

        return forward

    from neuromodels.fitting.superspike import van_rossum_loss

    def step():
        opt.zero_grad()
        van_rossum_loss(run(), target, dt).backward()
        opt.step()

    return step


def norse_step(net, x, dt, train: bool):
    import norse.torch as nt

    fc = torch.nn.Linear(N_IN, N_OUT, bias=False)
    with torch.no_grad():
        fc.weight.copy_(net.feedforward[0].detach().T)
    params = nt.LIFParameters(
        tau_syn_inv=torch.tensor(1 / TAU_SYN),
        tau_mem_inv=torch.tensor(1 / TAU_MEM),
        v_leak=torch.tensor(0.0),
        v_th=torch.tensor(1.0),
        v_reset=torch.tensor(0.0),
    )
    lif = nt.LIF(params, dt=dt)
    xt = torch.as_tensor(x, dtype=torch.float32).transpose(0, 1).contiguous()
    target = torch.as_tensor(make_target(x.shape[0], x.shape[1]), dtype=torch.float32)
    opt = torch.optim.Adam(fc.parameters(), lr=1e-3)

    if not train:

        def forward():
            with torch.no_grad():
                lif(fc(xt))

        return forward

    from neuromodels.fitting.superspike import van_rossum_loss

    def step():
        opt.zero_grad()
        out, _ = lif(fc(xt))
        van_rossum_loss(out.transpose(0, 1), target, dt).backward()
        opt.step()

    return step


def brian2_forward_seconds(net, x, dt, trials_to_time: int) -> tuple[float, bool]:
    """Seconds for ``len(x)`` trials in Brian2's numpy runtime (run only); extrapolated if fewer were timed."""
    from neuromodels.spiking.brian2_bridge import to_brian2

    timed = min(len(x), trials_to_time)
    total = 0.0
    for trial in x[:timed]:
        model = to_brian2(net, trial, dt, dtype="float32")
        started = time.perf_counter()
        model.run()
        total += time.perf_counter() - started
    return total * len(x) / timed, timed < len(x)


def brian2_standalone_seconds(net, x, dt) -> float | None:
    """Run time of the compiled cpp_standalone binary (compile excluded), one trial; None if it does not build."""
    import subprocess
    import sys
    import tempfile

    folder = tempfile.mkdtemp(prefix="bench_snn_standalone_")
    np.save(os.path.join(folder, "x.npy"), x[0])
    np.save(os.path.join(folder, "w.npy"), net.feedforward[0].detach().numpy())
    script = f"""
import time, numpy as np, brian2 as b2
b2.set_device('cpp_standalone', directory={folder!r} + '/build', build_on_run=False)
x = np.load({folder!r} + '/x.npy'); w = np.load({folder!r} + '/w.npy')
steps, ch = np.nonzero(x)
inp = b2.SpikeGeneratorGroup({N_IN}, ch, steps * {dt} * b2.second, dt={dt} * b2.second)
g = b2.NeuronGroup({N_OUT}, 'dv/dt = (-v + I)/(10*ms) : 1\\ndI/dt = -I/(5*ms) : 1', threshold='v > 1', reset='v = 0',
                   method='exact', dt={dt} * b2.second)
s = b2.Synapses(inp, g, 'w : 1', on_pre='I_post += w', dt={dt} * b2.second)
pre, post = np.nonzero(w); s.connect(i=pre, j=post); s.w = w[pre, post]
m = b2.SpikeMonitor(g)
b2.run({DURATION} * b2.second)
b2.device.build(compile=True, run=False, directory={folder!r} + '/build')
t = time.perf_counter(); b2.device.run(directory={folder!r} + '/build'); print('RUN', time.perf_counter() - t)
print('SPIKES', m.num_spikes)
"""
    try:
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return None
    seconds = None
    for line in out.stdout.splitlines():
        if line.startswith("RUN"):
            seconds = float(line.split()[1])
        if line.startswith("SPIKES"):
            print(f"  (cpp_standalone run produced {line.split()[1]} spikes)")
    return seconds


def brunel_circuit():
    from neuromodels.spiking.config import BENCHMARK_BRUNEL, brunel_example, build_circuit, merge_circuit

    return build_circuit(merge_circuit(brunel_example(**BENCHMARK_BRUNEL)))


CIRCUIT_DT, CIRCUIT_DURATION = 1e-4, 1.0


def circuit_ours_seconds(circuit, external, engine: str, repeats: int) -> tuple[float, int]:
    from neuromodels.spiking import simulate_circuit

    best, spikes = math.inf, 0
    for _ in range(repeats):
        started = time.perf_counter()
        result = simulate_circuit(circuit, CIRCUIT_DURATION, CIRCUIT_DT, external_spikes=external, engine=engine)
        best = min(best, time.perf_counter() - started)
        spikes = int(result["spikes"].sum())
    return best, spikes


def circuit_brian2_seconds(circuit, external, target: str) -> tuple[float, int]:
    from neuromodels.spiking.brian2_bridge import circuit_to_brian2

    model = circuit_to_brian2(circuit, CIRCUIT_DURATION, CIRCUIT_DT, external_spikes=external, target=target)
    started = time.perf_counter()
    model.run()  # includes the code generation (and, for cython, the cached compilation) of the first run
    return time.perf_counter() - started, int(model.rasters().sum())


_STANDALONE = """
import sys, time, numpy as np, brian2 as b2
b2.set_device('cpp_standalone', directory=sys.argv[1], build_on_run=False)
sys.path.insert(0, sys.argv[2])
from bench_snn import brunel_circuit, CIRCUIT_DT, CIRCUIT_DURATION
from neuromodels.spiking.brian2_bridge import circuit_to_brian2
circuit = brunel_circuit()
model = circuit_to_brian2(circuit, CIRCUIT_DURATION, CIRCUIT_DT)
model.run()
b2.device.build(compile=True, run=False, directory=sys.argv[1])
best = float('inf')
for _ in range(3):  # best of 3 runs of the compiled binary
    t = time.perf_counter(); b2.device.run(directory=sys.argv[1]); best = min(best, time.perf_counter() - t)
print('RUN', best)
print('SPIKES', sum(int(m.num_spikes) for m in model.spike_monitors))
"""

_NEST = """
import sys, time, numpy as np
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2])
import nest
from bench_snn import brunel_circuit, CIRCUIT_DT, CIRCUIT_DURATION
circuit = brunel_circuit()
external = circuit.external_spikes(CIRCUIT_DURATION, CIRCUIT_DT)
nest.set_verbosity('M_ERROR'); nest.ResetKernel(); nest.SetKernelStatus({'resolution': CIRCUIT_DT * 1e3,
                                                                         'local_num_threads': 1})
nodes, v0, start = {}, circuit.initial_voltages(), 0
for pop in circuit.lif:
    p = pop.neuron
    nodes[pop.name] = nest.Create('iaf_psc_delta', pop.n, params={
        'E_L': p.v_rest, 'V_th': p.threshold, 'V_reset': p.reset, 't_ref': p.refractory * 1e3,
        'tau_m': p.tau_mem * 1e3, 'C_m': 1.0, 'V_m': 0.0})
    nodes[pop.name].V_m = v0[start:start + pop.n]; start += pop.n
for pop in circuit.poisson:
    steps, idx = np.nonzero(external[pop.name].T)
    bounds = np.searchsorted(steps, np.arange(pop.n + 1))
    gens = nest.Create('spike_generator', pop.n)
    gens.set([{'spike_times': np.round((idx[bounds[i]:bounds[i + 1]] + 1) * CIRCUIT_DT * 1e3, 1)}
              for i in range(pop.n)])
    nodes[pop.name] = nest.Create('parrot_neuron', pop.n)
    nest.Connect(gens, nodes[pop.name], 'one_to_one')
for proj, conn in zip(circuit.projections, circuit.connectivity):
    src, tgt = nodes[proj.source], nodes[proj.target]
    nest.Connect(np.asarray(src.tolist())[conn.pre], np.asarray(tgt.tolist())[conn.post], 'one_to_one',
                 {'synapse_model': 'static_synapse', 'weight': np.full(conn.pre.size, proj.weight),
                  'delay': np.full(conn.pre.size, max(proj.delay, CIRCUIT_DT) * 1e3)})
rec = nest.Create('spike_recorder')
for pop in circuit.lif:
    nest.Connect(nodes[pop.name], rec)
nest.Simulate(1.0)
t = time.perf_counter(); nest.Simulate(CIRCUIT_DURATION * 1e3 - 1.0); print('RUN', time.perf_counter() - t)
print('SPIKES', rec.n_events)
"""


def _subprocess_seconds(script: str, *argv: str) -> tuple[float | None, str]:
    import subprocess
    import sys

    try:
        out = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=1200)
    except subprocess.TimeoutExpired:
        return None, "timed out"
    seconds, spikes = None, "?"
    for line in out.stdout.splitlines():
        if line.startswith("RUN"):
            seconds = float(line.split()[1])
        if line.startswith("SPIKES"):
            spikes = line.split()[1]
    return seconds, spikes if seconds is not None else out.stderr.strip().splitlines()[-1:]


def circuit_rows(standalone: bool, nest_path: str | None) -> bool:
    """The circuit row (module docstring); returns whether the target is met."""
    import tempfile

    circuit = brunel_circuit()
    external = circuit.external_spikes(CIRCUIT_DURATION, CIRCUIT_DT)
    here = os.path.dirname(os.path.abspath(__file__))
    circuit_ours_seconds(circuit, external, "auto", 1)  # builds the synapse tables once (kept on the circuit)
    ours, n_ours = circuit_ours_seconds(circuit, external, "auto", 3)
    rows = {
        "ours (compiled loop)": (ours, n_ours),
        "ours (NumPy loop)": circuit_ours_seconds(circuit, external, "numpy", 1),
    }
    if available("brian2"):
        rows["Brian2 numpy runtime"] = circuit_brian2_seconds(circuit, external, "numpy")
        if available("Cython"):
            circuit_brian2_seconds(circuit, external, "cython")  # compiles and caches the extension modules
            rows["Brian2 cython runtime (cached build)"] = circuit_brian2_seconds(circuit, external, "cython")
        if standalone:
            seconds, spikes = _subprocess_seconds(_STANDALONE, tempfile.mkdtemp(prefix="bench_circuit_"), here)
            if seconds is None:
                print(f"[skip] Brian2 cpp_standalone did not build/run: {spikes}")
            else:
                rows["Brian2 cpp_standalone (run only)"] = (seconds, int(spikes))
    nest_seconds, nest_spikes = _subprocess_seconds(_NEST, nest_path or here, here)
    if nest_seconds is None:
        print(f"[skip] NEST: not importable or failed ({nest_spikes}); pip install nest-simulator")
    else:
        rows["NEST 3 iaf_psc_delta (run only, 1 s - 1 ms)"] = (nest_seconds, int(nest_spikes))
    print(f"\ncircuit: Brunel E-I network, N_E 2,000 N_I 500, 1 s at dt 0.1 ms, float64 ({n_ours} spikes ours)")
    for name, (seconds, spikes) in rows.items():
        print(f"  {name:44s} {seconds:8.3f} s   ratio peer/ours {seconds / ours:7.2f}   spikes {spikes}")
    reference = rows.get("Brian2 cpp_standalone (run only)")
    if reference is None:
        print("  target (no slower than Brian2 cpp_standalone): not checked (pass --standalone)")
        return True
    ok = ours <= reference[0]
    print(f"  target: no slower than Brian2 cpp_standalone: {'PASS' if ok else 'FAIL'} ({reference[0] / ours:.2f}x)")
    return ok


def available(module: str) -> bool:
    try:
        __import__(module)
        return True
    except Exception:  # noqa: BLE001  (a peer that fails to import for any reason is simply not timed)
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="dt = 1 ms only")
    parser.add_argument("--standalone", action="store_true", help="also time Brian2 cpp_standalone (compiles C++)")
    parser.add_argument(
        "--full",
        action="store_true",
        help="also time BPTT training steps at batch 64 and at dt = 0.1 ms (minutes each)",
    )
    parser.add_argument(
        "--bptt-64", action="store_true", help="also time BPTT training steps at batch 64, dt = 1 ms (issue 19)"
    )
    parser.add_argument("--brian2-trials", type=int, default=3, help="Brian2 trials timed at batch 64 (extrapolated)")
    parser.add_argument("--circuit", action="store_true", help="only the circuit row (Brunel's E-I network)")
    parser.add_argument("--nest-path", default=None, help="folder holding the nest package (pip install --target)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    if args.circuit:
        ok = circuit_rows(args.standalone, args.nest_path)
        print(f"\noverall: {'PASS' if ok else 'FAIL'}")
        return 0
    peers = {name: available(name) for name in ("snntorch", "norse", "brian2")}
    for name, ok in peers.items():
        if not ok:
            print(f"[skip] {name} is not installed: not timed (pip install {name} in the benchmark's environment)")
    dts = [1e-3] if args.quick else [1e-3, 1e-4]
    verdicts = []
    bandwidth = memory_bandwidth()
    print(f"memory bandwidth (NumPy copy of 256 MB, read + write): {bandwidth / 1e9:.2f} GB/s")
    best_fraction = (0.0, "")
    for dt in dts:
        for batch in (1, 64):
            net = make_network(dt)
            x = make_inputs(dt, batch)
            repeats = 3 if dt * batch >= 1e-3 and batch * (1e-3 / dt) <= 10 else 1
            label = f"dt={dt * 1e3:g} ms batch={batch}"
            ours = best_of(ours_forward(net, x, dt), repeats)
            rows = {
                "ours (simulate, auto engine)": ours,
                "ours (torch loop)": best_of(ours_torch_forward(net, x, dt), repeats),
            }
            if peers["snntorch"]:
                rows["snnTorch"] = best_of(snntorch_step(net, x, dt, train=False), repeats)
            if peers["norse"]:
                rows["Norse"] = best_of(norse_step(net, x, dt, train=False), repeats)
            brian_time = None
            if peers["brian2"]:
                brian_time, extrapolated = brian2_forward_seconds(net, x, dt, args.brian2_trials if batch > 1 else 1)
                rows["Brian2 numpy" + (" (extrapolated)" if extrapolated else "")] = brian_time
            if args.standalone and peers["brian2"] and batch == 1:
                standalone = brian2_standalone_seconds(net, x, dt)
                if standalone is None:
                    print(f"[skip] Brian2 cpp_standalone did not build/run at {label}")
                else:
                    rows["Brian2 cpp_standalone (run only)"] = standalone
            events, nbytes = forward_work(x)
            fraction = nbytes / ours / bandwidth
            best_fraction = max(best_fraction, (fraction, label))
            print(f"\nforward, {label} ({events:,} synaptic events)")
            for name, seconds in rows.items():
                print(
                    f"  {name:38s} {seconds:8.3f} s   ratio peer/ours {seconds / ours:7.2f}   "
                    f"{events / seconds / 1e6:9.1f} M synaptic events/s"
                )
            print(f"  ours: {nbytes / ours / 1e9:.2f} GB/s of minimal traffic = {fraction:.1%} of the copy bandwidth")
            peer_times = {k: v for k, v in rows.items() if not k.startswith("ours")}
            torch_peers = {k: v for k, v in peer_times.items() if k in ("snnTorch", "Norse")}
            if batch == 64 and torch_peers:
                fastest = min(torch_peers, key=torch_peers.get)
                ok = torch_peers[fastest] / ours >= 2
                verdicts.append(ok)
                print(
                    f"  target: >= 2x faster than the fastest of snnTorch and Norse ({fastest}, "
                    f"{torch_peers[fastest]:.3f} s): {'PASS' if ok else 'FAIL'} ({torch_peers[fastest] / ours:.2f}x)"
                )
            if batch == 1 and peer_times:
                fastest = min(peer_times, key=peer_times.get)
                ok = ours <= peer_times[fastest]
                verdicts.append(ok)
                print(
                    f"  target: at least as fast as the fastest peer ({fastest}, {peer_times[fastest]:.3f} s): "
                    f"{'PASS' if ok else 'FAIL'} ({peer_times[fastest] / ours:.2f}x)"
                )
            if batch == 64 and brian_time is not None:
                ok = brian_time / ours >= 5
                verdicts.append(ok)
                print(
                    f"  target: >= 5x faster than Brian2 runtime: {'PASS' if ok else 'FAIL'} ({brian_time / ours:.1f}x)"
                )

            train_rows = {}
            if not (dt < 1e-3 and batch > 1):
                train_rows["ours SuperSpike block"] = best_of(ours_superspike_step(net, x, dt), 1)
                if (batch == 1 and dt >= 1e-3) or args.full or (args.bptt_64 and batch == 64):
                    train_rows["ours BPTT step (Adam)"] = best_of(ours_bptt_step(make_network(dt), x, dt), 1)
                    if peers["snntorch"]:
                        train_rows["snnTorch BPTT step"] = best_of(snntorch_step(net, x, dt, train=True), 1)
                    if peers["norse"]:
                        train_rows["Norse BPTT step"] = best_of(norse_step(net, x, dt, train=True), 1)
                else:
                    print("  (BPTT steps at batch 64 or dt = 0.1 ms take minutes: pass --full)")
                print(f"training step, {label}")
                base = train_rows["ours SuperSpike block"]
                for name, seconds in train_rows.items():
                    print(f"  {name:38s} {seconds:8.3f} s   ratio vs ours SuperSpike {seconds / base:7.2f}")
                peer_bptt = {k: v for k, v in train_rows.items() if k in ("snnTorch BPTT step", "Norse BPTT step")}
                if batch == 64 and peer_bptt and "ours BPTT step (Adam)" in train_rows:
                    fastest = min(peer_bptt, key=peer_bptt.get)
                    ours_bptt = train_rows["ours BPTT step (Adam)"]
                    ok = ours_bptt <= peer_bptt[fastest]
                    verdicts.append(ok)
                    print(
                        f"  target: BPTT step no slower than the fastest peer ({fastest}): "
                        f"{'PASS' if ok else 'FAIL'} ({peer_bptt[fastest] / ours_bptt:.2f}x)"
                    )
            else:
                print(f"training step, {label}: skipped (BPTT graph of 10,000 steps x 64 trials needs > 10 GB)")
    print(f"\nbest fraction of the copy bandwidth: {best_fraction[0]:.1%} ({best_fraction[1]}, ours forward)")
    verdicts.append(circuit_rows(args.standalone, args.nest_path))
    print(f"\noverall: {'PASS' if all(verdicts) else 'FAIL'} ({sum(verdicts)}/{len(verdicts)} targets met)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The compiled inner loop (neuromodels/spiking/_lif_kernel.c) equals the NumPy loop bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from neuromodels.spiking import LIFParameters, SpikingNetwork, _compiled, poisson_spikes
from neuromodels.spiking.network import run_network_numpy


@pytest.fixture(scope="module")
def kernel():
    lib = _compiled.lif_kernel()
    if lib is None:
        pytest.skip("no C compiler here: the NumPy loop runs instead")
    return lib


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("method", ["exact", "euler"])
@pytest.mark.parametrize("refractory", [0.0, 2e-3])
def test_compiled_loop_equals_numpy_loop(kernel, monkeypatch, dtype, method, refractory):
    neuron = LIFParameters(tau_mem=10e-3, tau_syn=5e-3, threshold=1.0, reset=0.0, refractory=refractory)
    net = SpikingNetwork(300, [80, 20], neuron=neuron, weight_mean=0.9, weight_std=0.6, seed=3)
    x = np.stack([np.asarray(poisson_spikes(300, rate=15.0, duration=0.3, dt=2e-4, seed=s)[0]) for s in range(3)])
    fast = run_network_numpy(net, x, 2e-4, method, dtype=dtype, record_voltage=True, record_membrane=True)
    monkeypatch.setattr(_compiled, "lif_kernel", lambda: None)
    slow = run_network_numpy(net, x, 2e-4, method, dtype=dtype, record_voltage=True, record_membrane=True)
    assert sum(int(s.sum()) for s in slow.spikes) > 100  # enough spikes for the comparison to mean something
    # exact: both loops get the same synaptic sums and do the same IEEE-754 operations (each one correctly rounded)
    # in the same order; the kernel is built with -ffp-contract=off (no fused multiply-add: a gcc built with
    # -march=native and without it contracts v a_vv + I a_vi into an FMA, and then this test fails) and on x86-64
    # float arithmetic has no excess precision (FLT_EVAL_METHOD 0, SSE2)
    for a, b in zip(fast.spikes + fast.voltage + fast.membrane, slow.spikes + slow.voltage + slow.membrane):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_without_a_compiler_the_numpy_loop_runs(no_c_compiler):
    _compiled.lif_kernel.cache_clear()
    try:
        assert _compiled.lif_kernel() is None
    finally:
        _compiled.lif_kernel.cache_clear()


@pytest.mark.parametrize(
    ("shape", "dtype"), [((400, 100), np.uint8), ((333, 7), np.uint8), ((100, 64), bool), ((50, 30), np.float32)]
)
def test_nonzero_positions_equal_flatnonzero(shape, dtype):
    from neuromodels.spiking.network import _nonzero_positions

    raster = (np.random.default_rng(0).random(shape) < 0.02).astype(dtype)
    # exact: integer indices
    np.testing.assert_array_equal(_nonzero_positions(raster), np.flatnonzero(raster))


# ---------------------------------------------------------------------------------------- event-driven input (issue 19)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("delay", [0.0, 0.6e-3])
def test_event_driven_input_equals_the_dense_synaptic_sums(kernel, monkeypatch, dtype, delay):
    from neuromodels.spiking import network

    neuron = LIFParameters(refractory=1e-3)
    net = SpikingNetwork(250, [60, 30], neuron=neuron, weight_mean=1.2, weight_std=0.8, seed=5, dt=2e-4, delay=delay)
    x = poisson_spikes(250, 20.0, 0.2, 2e-4, trials=6, seed=2)
    real, found = network._spike_events, []
    monkeypatch.setattr(network, "_spike_events", lambda *args: found.append(real(*args)) or found[-1])
    events = run_network_numpy(net, x, 2e-4, dtype=dtype, record_voltage=True, record_membrane=True)
    assert len(found) == 2 and all(e is not None for e in found)  # both layers ran on events
    used = []
    monkeypatch.setattr(network, "_spike_events", lambda raster, trial_major: used.append(trial_major))
    dense = run_network_numpy(net, x, 2e-4, dtype=dtype, record_voltage=True, record_membrane=True)
    assert used == [True, False]  # asked for events, got none: dense sums (layer 0's spikes then time-major)
    assert 0 < events.spikes[0].mean() < 0.05 and events.spikes[1].sum() > 100  # layer 1's input is sparse
    # exact: the kernel sums each step's weight rows from zero in ascending input order, as the CSR product does
    for a, b in zip(events.spikes + events.voltage + events.membrane, dense.spikes + dense.voltage + dense.membrane):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", [(7, 40, 1000), (3, 11, 13), (2, 5, 8)])
@pytest.mark.parametrize("trial_major", [True, False])
def test_spike_events_are_the_raster_indices(kernel, shape, trial_major):
    from neuromodels.spiking.network import _spike_events

    raster = (np.random.default_rng(1).random(shape) < 0.03).astype(np.uint8)
    for data in (raster, raster.astype(np.float32)):  # compiled scan (one byte) and the NumPy one
        events = _spike_events(data, trial_major)
        for outer in range(shape[0]):
            for inner in range(shape[1]):
                b, n = (outer, inner) if trial_major else (inner, outer)
                r = n * events.row_step + b * events.row_trial
                # exact: integer indices
                np.testing.assert_array_equal(
                    events.idx[events.ptr[r] : events.ptr[r + 1]], np.flatnonzero(raster[outer, inner])
                )
    dense = np.zeros((2, 10, 10), dtype=np.uint8)
    dense.reshape(-1)[:10] = 1  # 5% ones: the dense product's side of the threshold
    assert _spike_events(dense, True) is None and _spike_events(dense.astype(np.float64), True) is None
    dense.reshape(-1)[9] = 0
    assert _spike_events(dense, True).idx.size == 9


@pytest.mark.parametrize(
    ("trials", "largest", "density", "expected"),
    [
        (1, 200, 0.01, "numpy"),
        (256, 200, 0.01, "numpy"),  # sparse: numpy at every batch size
        (10_000, 1000, 0.049, "numpy"),
        (1, 200, 0.10, "numpy"),  # dense: numpy up to trials x neurons = 1024
        (5, 200, 0.05, "numpy"),
        (6, 200, 0.05, "torch"),
        (64, 200, 0.10, "torch"),
    ],
)
def test_engine_choice_follows_its_table(trials, largest, density, expected):
    from neuromodels.spiking.network import ENGINE_TABLE, choose_engine

    assert ENGINE_TABLE == {"sparse": None, "dense": 1024}
    assert choose_engine(trials, largest, density) == expected


def test_auto_engine_uses_the_measured_choice(monkeypatch):
    from neuromodels.spiking import network, simulate

    net = SpikingNetwork(100, [40], weight_mean=1.0, seed=0)
    ran = []
    real_numpy, real_torch = network.run_network_numpy, network.run_network
    monkeypatch.setattr(network, "run_network_numpy", lambda *a, **k: ran.append("numpy") or real_numpy(*a, **k))
    monkeypatch.setattr(network, "run_network", lambda *a, **k: ran.append("torch") or real_torch(*a, **k))
    sparse = poisson_spikes(100, 10.0, 0.05, 1e-3, trials=64, seed=0)  # 1% ones, 64 x 40 > 1024
    dense = poisson_spikes(100, 200.0, 0.05, 1e-3, trials=64, seed=0)  # 20% ones
    simulate(net, sparse, 1e-3)
    simulate(net, dense, 1e-3)
    simulate(net, dense[:10], 1e-3)  # 10 x 40 <= 1024
    assert ran == ["numpy", "torch", "numpy"]

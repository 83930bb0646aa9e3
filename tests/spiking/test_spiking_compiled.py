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


def test_without_a_compiler_the_numpy_loop_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("NEUROMODELS_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setattr("shutil.which", lambda name: None)
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

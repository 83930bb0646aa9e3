"""A SpikingNetwork survives pickle and torch.save/torch.load (module and state_dict) and simulates identically."""

from __future__ import annotations

import io
import pickle

import numpy as np
import torch

from neuromodels.spiking import LIFParameters, SpikingNetwork, frozen_poisson, simulate


def _network() -> SpikingNetwork:
    neurons = [LIFParameters(refractory=2e-3), LIFParameters(tau_mem=20e-3)]
    return SpikingNetwork(
        20,
        [15, 5],
        neuron=neurons,
        recurrent=[True, False],
        weight_mean=1.0,
        weight_std=2.0,
        delay=2e-3,
        surrogate_beta=7.0,
        seed=3,
    )


def _raster() -> np.ndarray:
    return frozen_poisson(20, 40.0, 0.3, 1e-3, trials=2, seed=1)


def _same_simulation(a: SpikingNetwork, b: SpikingNetwork) -> None:
    raster = _raster()
    for engine in ("numpy", "torch"):
        ra = simulate(a, raster, 1e-3, record_voltages=True, engine=engine)
        rb = simulate(b, raster, 1e-3, record_voltages=True, engine=engine)
        assert int(ra["spikes"].sum()) > 0
        np.testing.assert_array_equal(ra["spikes"].values, rb["spikes"].values)
        np.testing.assert_array_equal(ra["voltage"].values, rb["voltage"].values)
        assert ra.attrs.keys() == rb.attrs.keys()


def _assert_same_network(a: SpikingNetwork, b: SpikingNetwork) -> None:
    assert type(b) is SpikingNetwork
    assert b.describe() == a.describe()
    assert b.neurons == a.neurons and b.dt == a.dt
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_class_is_importable_by_its_qualified_name():
    assert SpikingNetwork.__qualname__ == "SpikingNetwork"
    assert SpikingNetwork.__module__ == "neuromodels.spiking.network"


def test_pickle_round_trip_simulates_identically():
    net = _network()
    copy = pickle.loads(pickle.dumps(net))
    _assert_same_network(net, copy)
    _same_simulation(net, copy)


def test_torch_save_of_the_module_round_trips():
    net = _network()
    buffer = io.BytesIO()
    torch.save(net, buffer)
    buffer.seek(0)
    copy = torch.load(buffer, weights_only=False)  # a whole module is a pickle: only for files you trust
    _assert_same_network(net, copy)
    _same_simulation(net, copy)


def test_state_dict_loads_with_weights_only_into_a_fresh_network():
    net = _network()
    with torch.no_grad():
        net.feedforward[1].mul_(1.5)  # differs from what seed 3 draws, so loading must carry it
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    fresh = _network()
    assert not torch.equal(fresh.feedforward[1], net.feedforward[1])
    fresh.load_state_dict(state)
    _assert_same_network(net, fresh)
    _same_simulation(net, fresh)


def test_gradients_still_flow_after_unpickling():
    copy = pickle.loads(pickle.dumps(_network()))
    out = copy(torch.as_tensor(_raster(), dtype=torch.float32))
    out.sum().backward()
    assert copy.feedforward[0].grad is not None

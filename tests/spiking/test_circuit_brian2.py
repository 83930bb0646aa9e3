"""Circuits spike for spike with Brian2 (numpy runtime, float64, exact integration, same connectivity, same
external spikes): a recurrent E-I network of Brunel (2000) type with delays and delta synapses, two regimes."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("brian2")

from neuromodels.spiking import (
    Circuit,
    LIFParameters,
    PoissonPopulation,
    Population,
    Projection,
    SpikingNetwork,
    cross_check,
    poisson_spikes,
    simulate,
    simulate_circuit,
    to_brian2,
)
from neuromodels.spiking.brian2_bridge import simulate_brian2

DT = 1e-4
NEURON = LIFParameters(tau_mem=20e-3, threshold=20.0, reset=10.0, refractory=2e-3)  # Brunel 2000, section 2 (mV)


def brunel(
    g: float,
    nu_ratio: float = 2.0,
    n_e: int = 400,
    n_i: int = 100,
    j: float = 0.2,
    delay: float = 1.5e-3,
    seed: int = 0,
) -> Circuit:
    """Brunel's model A at reduced size: C = 0.1 N, external drive from a Poisson population at nu_ext."""
    c_e, c_i = n_e // 10, n_i // 10
    nu_thr = NEURON.threshold / (j * c_e * NEURON.tau_mem)  # Brunel 2000, eq. 11 (theta / (J C_E tau))
    return Circuit(
        [
            Population("E", n_e, NEURON, v_init=(0.0, 20.0)),
            Population("I", n_i, NEURON, v_init=(0.0, 20.0)),
            PoissonPopulation("ext", n_e, nu_ratio * nu_thr),
        ],
        [
            Projection("E", "E", j, delay, in_degree=c_e),
            Projection("E", "I", j, delay, in_degree=c_e),
            Projection("I", "E", -g * j, delay, in_degree=c_i),
            Projection("I", "I", -g * j, delay, in_degree=c_i),
            Projection("ext", "E", j, delay, in_degree=c_e),
            Projection("ext", "I", j, delay, in_degree=c_e),
        ],
        seed=seed,
    )


@pytest.mark.parametrize(
    ("g", "label"),
    [(5.0, "inhibition-dominated (AI in Brunel's diagram)"), (3.0, "excitation-dominated (SR in Brunel's diagram)")],
)
def test_brunel_network_spike_for_spike_with_brian2_over_one_second(g, label):
    result = cross_check(brunel(g), 1.0, DT, method="exact")
    assert result.n_spikes_ours > 20_000, label  # a network that really fires (tens of Hz)
    # float64, exact integration: the rasters are equal (the summation order of simultaneous jumps differs by
    # design, so voltages may differ by an ulp; no membrane value here lands within that of the threshold)
    assert result.identical, result.as_dict()


def test_mixed_synapses_and_delays_spike_for_spike_with_brian2():
    base = brunel(4.0, seed=5)
    projections = list(base.projections)
    projections[3] = Projection("I", "I", -2.0, 0.3e-3, synapse="exponential", probability=0.2)
    projections[5] = Projection("ext", "I", 0.2, 0.0, in_degree=40)
    circuit = Circuit(base.populations, projections, seed=5)
    result = cross_check(circuit, 0.3, DT, method="exact")
    assert result.n_spikes_ours > 3000
    assert result.identical, result.as_dict()


def test_brian2_result_is_the_same_labelled_dataset():
    circuit = brunel(5.0, n_e=80, n_i=20)
    external = circuit.external_spikes(0.05, DT)
    ours = simulate_circuit(circuit, 0.05, DT, record_voltages=True, external_spikes=external, record_external=True)
    model = to_brian2(circuit, 0.05, DT, external_spikes=external, record_voltages=True)
    model.run()
    theirs = model.result()
    assert set(theirs.variables) == set(ours.variables)
    assert np.array_equal(theirs["spikes"].values, ours["spikes"].values)
    assert np.array_equal(theirs["population"].values, ours["population"].values)
    np.testing.assert_allclose(theirs["voltage"].values, ours["voltage"].values, rtol=0, atol=1e-12)
    assert json.loads(theirs.attrs["circuit"]) == json.loads(ours.attrs["circuit"])
    assert theirs.attrs["engine"] == "brian2 (numpy)"


def test_simulate_brian2_matches_simulate_for_layered_networks():
    net = SpikingNetwork(1000, [20], weight_mean=0.7, weight_std=0.5, seed=1)
    inputs = poisson_spikes(1000, 10.0, 0.2, 1e-3, trials=2, seed=0)
    ours = simulate(net, inputs, 1e-3)
    theirs = simulate_brian2(net, inputs, 1e-3)
    assert theirs["spikes"].dims == ("trial", "time", "neuron")
    assert np.array_equal(theirs["spikes"].values, ours["spikes"].values)
    assert np.array_equal(theirs["layer"].values, ours["layer"].values)
    assert int(ours["spikes"].sum()) > 50

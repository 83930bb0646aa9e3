"""Circuits of populations: delays, delta and exponential synapses, fixed in-degree connectivity, seeds, engines."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuromodels.errors import ConfigError
from neuromodels.spiking import (
    Circuit,
    LIFParameters,
    PoissonPopulation,
    Population,
    Projection,
    _compiled,
    poisson_spikes,
    population_slices,
    propagator,
    simulate_circuit,
)

DT = 1e-4
BRUNEL_NEURON = LIFParameters(tau_mem=20e-3, threshold=20.0, reset=10.0, refractory=2e-3)


def one_input(synapse: str, delay: float, refractory: float = 0.0, weight: float = 0.5) -> Circuit:
    neuron = LIFParameters(tau_mem=20e-3, tau_syn=5e-3, threshold=20.0, reset=10.0, refractory=refractory)
    return Circuit(
        [Population("post", 1, neuron), PoissonPopulation("ext", 1, 0.0)],
        [Projection("ext", "post", weight, delay=delay, synapse=synapse, in_degree=1)],
    )


def run_one(circuit: Circuit, spike_steps: list[int], n_steps: int = 60, engine: str = "auto"):
    raster = np.zeros((n_steps, 1), dtype=np.uint8)
    raster[spike_steps, 0] = 1
    return simulate_circuit(
        circuit, n_steps * DT, DT, record_voltages=True, external_spikes={"ext": raster}, engine=engine
    )


def small_brunel(g: float = 5.0, seed: int = 0, synapse_ii: str = "delta") -> Circuit:
    ce, ci, j = 20, 5, 0.4
    nu_ext = 2 * 20.0 / (j * ce * 20e-3)  # nu_ext / nu_thr = 2 (Brunel 2000, eq. 11: nu_thr = theta / (J C_E tau))
    return Circuit(
        [
            Population("E", 200, BRUNEL_NEURON, v_init=(0.0, 20.0)),
            Population("I", 50, BRUNEL_NEURON, v_init=10.0),
            PoissonPopulation("ext", 200, nu_ext),
        ],
        [
            Projection("E", "E", j, 1.5e-3, in_degree=ce),
            Projection("E", "I", j, 1.5e-3, in_degree=ce),
            Projection("I", "E", -g * j, 1.5e-3, in_degree=ci),
            Projection("I", "I", -g * j * 5, 0.5e-3, synapse=synapse_ii, probability=0.1),
            Projection("ext", "E", j, 1.5e-3, in_degree=ce),
            Projection("ext", "I", j, 0.0, in_degree=ce),
        ],
        seed=seed,
    )


@pytest.mark.parametrize("engine", ["numpy", "auto"])
@pytest.mark.parametrize("delay_steps", [0, 1, 15])
def test_delta_spike_arrives_exactly_delay_later(engine, delay_steps):
    result = run_one(one_input("delta", delay_steps * DT), [10], engine=engine)
    v = result["voltage"].values[:, 0]  # v at the start of each step
    arrival = 10 + delay_steps  # delivered in the synapse phase of this step, seen from the next one
    assert np.all(v[: arrival + 1] == 0.0)
    assert v[arrival + 1] == 0.5  # the jump itself, exactly
    assert v[arrival + 2] == 0.5 * np.exp(-DT / 20e-3)


@pytest.mark.parametrize("engine", ["numpy", "auto"])
def test_exponential_spike_arrives_exactly_delay_later(engine):
    result = run_one(one_input("exponential", 1.5e-3), [10], engine=engine)
    v = result["voltage"].values[:, 0]
    prop = propagator(LIFParameters(tau_mem=20e-3, tau_syn=5e-3, threshold=20.0, reset=10.0), DT)
    assert np.all(v[:27] == 0.0)  # I jumps at step 25, v moves during step 26
    assert v[27] == pytest.approx(0.5 * prop.a_vi, rel=1e-15)
    assert v[28] == pytest.approx(0.5 * prop.a_vi * prop.a_vv + 0.5 * prop.a_ii * prop.a_vi, rel=1e-14)


def test_delta_input_during_refractoriness_is_discarded():
    # a strong jump makes the neuron spike; a second jump arrives while it is refractory (2 ms = 20 steps)
    circuit = one_input("delta", 0.0, refractory=2e-3, weight=25.0)
    result = run_one(circuit, [5, 10, 40])
    v = result["voltage"].values[:, 0]
    spikes = result["spikes"].values[:, 0]
    assert np.flatnonzero(spikes).tolist() == [6, 41]  # the jump at 10 neither moved v nor caused a spike
    assert np.all(v[7:27] == 10.0)  # clamped at reset for the whole refractory period
    assert v[27] < 10.0  # free again: decays towards rest


@pytest.mark.parametrize("delay", [1.55e-3, 0.25e-4])
def test_delay_not_a_multiple_of_dt_is_refused(delay):
    circuit = one_input("delta", delay)
    with pytest.raises(ConfigError, match=r"projection ext->post delay.*not a multiple of dt"):
        run_one(circuit, [1])


def test_delay_multiple_of_dt_up_to_rounding_is_accepted():
    run_one(one_input("delta", 3 * 0.1e-3), [1])  # 3 * 0.1e-3 / 1e-4 = 3.0000000000000004


def test_fixed_in_degree_gives_exact_distinct_sources():
    circuit = Circuit(
        [Population("E", 60), Population("I", 15)],
        [
            Projection("E", "E", 0.1, in_degree=12),
            Projection("I", "E", -0.5, in_degree=15),
            Projection("E", "I", 0.1, in_degree=59),
        ],
        seed=3,
    )
    for proj, conn, n_target in zip(circuit.projections, circuit.connectivity, (60, 60, 15)):
        counts = np.bincount(conn.post, minlength=n_target)
        assert np.all(counts == proj.in_degree)
        pairs = set(zip(conn.pre.tolist(), conn.post.tolist()))
        assert len(pairs) == conn.pre.size  # no multapses
        assert np.all(np.diff(conn.pre) >= 0)  # sorted by source (the order Brian2 is given)
    ee = circuit.connectivity[0]
    assert not np.any(ee.pre == ee.post)  # no autapses within a population
    assert sorted(set(circuit.connectivity[1].pre.tolist())) == list(range(15))  # all 15 of I


def test_probability_connectivity_has_binomial_in_degrees():
    circuit = Circuit([Population("E", 400)], [Projection("E", "E", 0.1, probability=0.1)], seed=0)
    conn = circuit.connectivity[0]
    counts = np.bincount(conn.post, minlength=400)
    mean, sd = 399 * 0.1, np.sqrt(399 * 0.1 * 0.9)
    assert abs(counts.mean() - mean) < 5 * sd / np.sqrt(400)
    assert 0.7 * sd < counts.std() < 1.3 * sd
    assert not np.any(conn.pre == conn.post)


def test_seeds_reproducible_and_distinct():
    a = simulate_circuit(small_brunel(seed=1), 0.1, DT)
    b = simulate_circuit(small_brunel(seed=1), 0.1, DT)
    c = simulate_circuit(small_brunel(seed=2), 0.1, DT)
    assert np.array_equal(a["spikes"].values, b["spikes"].values)
    assert int(a["spikes"].sum()) > 100
    assert not np.array_equal(a["spikes"].values, c["spikes"].values)
    assert not np.array_equal(small_brunel(seed=1).connectivity[0].pre, small_brunel(seed=2).connectivity[0].pre)


def test_external_spikes_are_poisson_spikes_of_the_documented_seed_and_injectable():
    circuit = small_brunel(seed=4)
    drawn = circuit.external_spikes(0.05, DT)["ext"]
    assert np.array_equal(drawn, poisson_spikes(200, circuit.poisson[0].rate, 0.05, DT, seed=[4, 2, 0])[0])
    result = simulate_circuit(circuit, 0.05, DT, record_external=True)
    assert np.array_equal(result["external_spikes"].values, drawn)
    silent = simulate_circuit(circuit, 0.05, DT, external_spikes={"ext": np.zeros_like(drawn)})
    assert int(silent["spikes"].sum()) < int(result["spikes"].sum())


@pytest.mark.skipif(_compiled.lif_kernel() is None, reason="no C compiler")
@pytest.mark.parametrize("method", ["exact", "euler"])
def test_compiled_and_numpy_loops_bit_identical(method):
    circuit = small_brunel(g=4.0, synapse_ii="exponential")
    ours = [
        simulate_circuit(circuit, 0.2, DT, method=method, engine=e, record_voltages=True) for e in ("numpy", "compiled")
    ]
    assert int(ours[0]["spikes"].sum()) > 500
    assert np.array_equal(ours[0]["spikes"].values, ours[1]["spikes"].values)
    assert np.array_equal(ours[0]["voltage"].values, ours[1]["voltage"].values)  # same operations, same order


def test_result_is_labelled_and_carries_the_circuit():
    circuit = small_brunel()
    result = simulate_circuit(circuit, 0.02, DT)
    assert result["spikes"].dims == ("time", "neuron") and result["spikes"].dtype == np.uint8
    assert result.sizes == {"time": 200, "neuron": 250}
    assert list(result["population"].values[:200]) == ["E"] * 200 and set(result["population"].values[200:]) == {"I"}
    assert population_slices(circuit) == {"E": slice(0, 200), "I": slice(200, 250)}
    assert result.attrs["dt"] == DT and result.attrs["seed"] == 0
    assert json.loads(result.attrs["circuit"]) == json.loads(json.dumps(circuit.describe()))
    assert result["time"].values[1] == DT


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: Circuit([Population("E", 10)], [Projection("E", "X", 0.1, in_degree=1)]),
            "unknown target population 'X'",
        ),
        (lambda: Circuit([Population("E", 10)], [Projection("E", "E", 0.1, in_degree=10)]), "in_degree 10 is larger"),
        (
            lambda: Circuit(
                [Population("E", 10), PoissonPopulation("P", 5, 1.0)], [Projection("E", "P", 0.1, in_degree=1)]
            ),
            "target 'P' must be a LIF population",
        ),
        (lambda: Circuit([Population("E", 10), Population("E", 3)], []), "used twice"),
        (lambda: Projection("E", "E", 0.1, delay=-1e-3, in_degree=1), "delay' must be >= 0"),
        (
            lambda: Projection("E", "E", 0.1, in_degree=1, probability=0.1),
            "exactly one of 'in_degree' and 'probability'",
        ),
        (lambda: Projection("E", "E", 0.1, synapse="alpha", in_degree=1), "synapse' must be one of delta, exponential"),
        (lambda: PoissonPopulation("P", 5, -1.0), "rate must be >= 0"),
    ],
)
def test_bad_circuits_are_config_errors(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def test_bad_external_spikes_are_config_errors():
    circuit = small_brunel()
    with pytest.raises(ConfigError, match="no raster for Poisson population 'ext'"):
        simulate_circuit(circuit, 0.01, DT, external_spikes={})
    with pytest.raises(ConfigError, match=r"external_spikes\['ext'\] must be"):
        simulate_circuit(circuit, 0.01, DT, external_spikes={"ext": np.zeros((10, 3))})


@pytest.mark.parametrize("engine", ["numpy", "auto"])
def test_circuit_without_projections_decays_to_rest(engine):
    neuron = LIFParameters(tau_mem=20e-3, threshold=20.0, reset=10.0, v_rest=5.0)
    circuit = Circuit([Population("E", 3, neuron, v_init=15.0), PoissonPopulation("ext", 4, 500.0)], [])
    result = simulate_circuit(circuit, 0.01, DT, record_voltages=True, engine=engine)
    v = result["voltage"].values
    assert int(result["spikes"].sum()) == 0
    expected = 5.0 + 10.0 * np.exp(-99 * DT / 20e-3)
    np.testing.assert_allclose(v[99], expected, rtol=1e-12)  # the exact propagator, step after step


def test_poisson_spikes_drawn_in_blocks_are_the_single_draw_stream():
    # poisson_spikes draws ~8 MB blocks of time (external populations of 1 s at 0.1 ms); the values are those of
    # one draw of the whole array, so rasters from before the change are reproduced
    raster = poisson_spikes(1000, 5.0, 0.3, DT, trials=2, seed=4)  # 3,000 steps: three blocks of 1,048 steps
    expected = np.random.default_rng(4).random((2, 3000, 1000)) < 5.0 * DT
    assert np.array_equal(raster, expected.astype(np.uint8))

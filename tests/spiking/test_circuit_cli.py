"""``neuromodels simulate`` on circuit configurations ([[population]], [[projection]]) and the brunel example."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import xarray as xr

from neuromodels.cli import main
from neuromodels.spiking.config import CIRCUIT_EXAMPLES, build_circuit, load_config, merge_circuit

CIRCUIT = """
[simulation]
dt = 1e-4
duration = 0.1
seed = 3

[[population]]
name = "E"
n = 80
tau_mem = 0.02
threshold = 20.0
reset = 10.0
refractory = 0.002
v_init = [0.0, 20.0]

[[population]]
name = "I"
n = 20
tau_mem = 0.02
threshold = 20.0
reset = 10.0
refractory = 0.002

[[population]]
name = "ext"
kind = "poisson"
n = 80
rate = 250.0

[[projection]]
source = "E"
target = "E"
weight = 0.5
delay = 0.0015
in_degree = 8

[[projection]]
source = "I"
target = "E"
weight = -2.5
delay = 0.0015
in_degree = 2

[[projection]]
source = "ext"
target = "E"
weight = 0.5
delay = 0.0015
in_degree = 8

[[projection]]
source = "ext"
target = "I"
weight = 0.5
synapse = "exponential"
probability = 0.1
"""


def _write(tmp_path, text: str):
    path = tmp_path / "circuit.toml"
    path.write_text(text)
    return str(path)


def test_simulate_circuit_writes_netcdf_figures_and_report(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["simulate", "--config", _write(tmp_path, CIRCUIT), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["files"]) <= {p.name for p in out.iterdir()}
    assert set(report["mean_rate_per_population_hz"]) == {"E", "I"}
    assert report["n_spikes"] > 50
    with xr.open_dataset(out / "simulation.nc") as ds:
        assert ds["spikes"].dims == ("time", "neuron") and ds.sizes["neuron"] == 100
        assert list(np.unique(ds["population"].values)) == ["E", "I"]
        circuit = json.loads(ds.attrs["circuit"])
        assert [p["name"] for p in circuit["populations"]] == ["E", "I", "ext"] and circuit["seed"] == 3
        assert int(ds["spikes"].sum()) == report["n_spikes"]


def test_config_and_python_api_build_the_same_circuit(tmp_path):
    from neuromodels.spiking import simulate_circuit

    config = load_config(_write(tmp_path, CIRCUIT))
    circuit = build_circuit(config)
    assert [p.name for p in circuit.populations] == ["E", "I", "ext"]
    assert circuit.projections[3].synapse == "exponential" and circuit.projections[3].probability == 0.1
    assert circuit.populations[0].v_init == (0.0, 20.0) and circuit.populations[0].neuron.threshold == 20.0
    a = simulate_circuit(circuit, 0.05, 1e-4)
    b = simulate_circuit(build_circuit(config), 0.05, 1e-4)
    assert np.array_equal(a["spikes"].values, b["spikes"].values)


def test_brunel_example_is_the_papers_model_at_reduced_size():
    config = merge_circuit(CIRCUIT_EXAMPLES["brunel"])
    circuit = build_circuit(config)
    e, i, ext = circuit.populations
    assert (e.n, i.n, ext.n) == (4000, 1000, 5000)
    assert (e.neuron.threshold, e.neuron.reset, e.neuron.tau_mem, e.neuron.refractory) == (20.0, 10.0, 0.02, 0.002)
    assert e.v_init == (10.0, 20.0)
    degrees = {p.label: p.in_degree for p in circuit.projections}
    assert degrees == {"E->E": 1000, "E->I": 1000, "I->E": 250, "I->I": 250, "ext->E": 1000, "ext->I": 1000}
    assert {p.delay for p in circuit.projections} == {1.5e-3}
    assert ext.rate == pytest.approx(2 * 20.0 / (0.1 * 1000 * 0.02))  # nu_ext = 2 nu_thr (eq. 11): 20 Hz


def test_benchmark_brunel_is_the_scaled_down_network():
    from neuromodels.spiking.config import BENCHMARK_BRUNEL, brunel_example

    e, i, ext = build_circuit(merge_circuit(brunel_example(**BENCHMARK_BRUNEL))).populations
    assert (e.n, i.n, ext.n, e.v_init) == (2000, 500, 2000, (0.0, 20.0))
    assert ext.rate == pytest.approx(2 * 20.0 / (0.1 * 200 * 0.02))  # 100 Hz


@pytest.mark.skipif(importlib.util.find_spec("brian2") is None, reason="needs brian2")
def test_circuit_backends_agree_spike_for_spike(tmp_path):
    config = _write(tmp_path, CIRCUIT.replace("duration = 0.1", "duration = 0.05"))
    assert main(["simulate", "--config", config, "--out", str(tmp_path / "a")]) == 0
    assert main(["simulate", "--config", config, "--backend", "brian2", "--out", str(tmp_path / "b")]) == 0
    with xr.open_dataset(tmp_path / "a" / "simulation.nc") as a, xr.open_dataset(tmp_path / "b" / "simulation.nc") as b:
        assert int(a["spikes"].sum()) > 10
        assert np.array_equal(a["spikes"].values, b["spikes"].values)
        assert np.array_equal(a["population"].values, b["population"].values)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (
            (
                'delay = 0.0015\nin_degree = 8\n\n[[projection]]\nsource = "I"',
                'delay = -0.001\nin_degree = 8\n\n[[projection]]\nsource = "I"',
            ),
            "projection[0].delay",
        ),
        (("in_degree = 2", "in_degree = 21"), "projection[1].in_degree"),
        (
            ('in_degree = 8\n\n[[projection]]\nsource = "I"', 'in_degree = 80\n\n[[projection]]\nsource = "I"'),
            "projection[0].in_degree",
        ),
        (('source = "I"', 'source = "J"'), "projection[1].source"),
        (("delay = 0.0015\nin_degree = 2", "delay = 0.00155\nin_degree = 2"), "projection[1].delay"),
        (("probability = 0.1", "probability = 0.1\nin_degree = 3"), "projection[3]"),
        (('kind = "poisson"', 'kind = "spiking"'), "population[2].kind"),
        (("n = 20", "n = 0"), "population[1].n"),
        (
            (
                'tau_mem = 0.02\nthreshold = 20.0\nreset = 10.0\nrefractory = 0.002\n\n[[population]]\nname = "ext"',
                'tau_mem = -0.02\nthreshold = 20.0\nreset = 10.0\nrefractory = 0.002\n\n[[population]]\nname = "ext"',
            ),
            "population[1].tau_mem",
        ),
        (("rate = 250.0", "rate = 250.0\nweight = 1.0"), "population[2].weight"),
        (('synapse = "exponential"', 'synapse = "alpha"'), "projection[3].synapse"),
        (('name = "I"', 'name = "E"'), "population[1].name"),
    ],
)
def test_bad_circuit_config_exits_2_naming_the_key_and_writes_nothing(tmp_path, capsys, change, key):
    old, new = change
    assert old in CIRCUIT
    out = tmp_path / "out"
    assert main(["simulate", "--config", _write(tmp_path, CIRCUIT.replace(old, new, 1)), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert key in err and "Traceback" not in err, err
    assert not out.exists()


def test_brunel_example_sets_g_and_the_external_rate():
    from neuromodels.spiking.config import brunel_example

    circuit = build_circuit(merge_circuit(brunel_example(g=4.0, nu_ratio=3.0, n_e=400, n_i=100, c_e=40, c_i=10)))
    weights = {p.label: p.weight for p in circuit.projections}
    assert weights["I->E"] == pytest.approx(-0.4) and weights["E->I"] == pytest.approx(0.1)
    assert circuit.poisson[0].rate == pytest.approx(3 * 20.0 / (0.1 * 40 * 0.02))  # 3 nu_thr = 750 Hz
    assert circuit.lif[0].n == 400 and circuit.lif[1].n == 100

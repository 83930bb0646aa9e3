"""Brunel (2000)'s four states of Fig. 8, simulated with the circuit engine and recognised by their statistics
(slow: ~2-3 minutes on 2 cores; ``make reproduce``). The same functions write examples/brunel_regimes.py's figures
and the table of docs/spiking.md; the values measured there (seed 0, N_E = 4,000, C_E = 1,000) are in comments.
The fast tests check the network's construction, the classifier's rules and the example's error path."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from neuromodels.analysis.brunel import (
    FIG8_REGIMES,
    BrunelParameters,
    brunel_circuit,
    classify_regime,
    regime_statistics,
    simulate_regime,
    threshold_rate,
)
from neuromodels.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "brunel_regimes.py"
SMALL = BrunelParameters(C_E=40)  # in-degrees 40 and 10: a network of 400 + 100 neurons builds in milliseconds


def _example():
    spec = importlib.util.spec_from_file_location("neuromodels_example_brunel_regimes", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_circuit_has_brunels_in_degrees_weights_and_delays():
    circuit = brunel_circuit(5.0, 2.0, n_excitatory=400, params=SMALL, seed=3)
    assert [(p.name, p.n) for p in circuit.populations] == [("E", 400), ("I", 100), ("ext", 200)]
    assert circuit.populations[2].rate == pytest.approx(2.0 * threshold_rate(SMALL))  # 2 x 250 Hz
    expected = {"E": (0.1, 40), "I": (-0.5, 10), "ext": (0.1, 40)}
    for projection, connectivity in zip(circuit.projections, circuit.connectivity, strict=True):
        weight, in_degree = expected[projection.source]
        assert projection.weight == pytest.approx(weight) and projection.delay == 1.5e-3
        assert projection.synapse == "delta"
        n_target = 400 if projection.target == "E" else 100
        np.testing.assert_array_equal(np.bincount(connectivity.post, minlength=n_target), in_degree)
    neuron = circuit.populations[0].neuron
    assert (neuron.tau_mem, neuron.threshold, neuron.reset, neuron.refractory) == (0.02, 20.0, 10.0, 0.002)


def test_a_short_run_gives_every_statistic_and_the_mean_field():
    result = simulate_regime("C", duration=0.3, n_excitatory=400, params=SMALL, seed=1)
    assert result.sizes == {"time": 3000, "neuron": 500}
    stats = regime_statistics(result, "C", SMALL, transient=0.1)
    assert set(stats["populations"]) == {"E", "I"}
    assert set(stats["populations"]["E"]) == {"rate", "cv", "fano", "chi", "chi_slow", "peak_frequency", "peak_power"}
    assert stats["mean_field"]["nu_thr"] == pytest.approx(250.0)  # 20 mV / (0.1 mV x 40 x 20 ms)
    assert stats["classified_as"] in {"SR", "SI fast", "SI slow", "AI", "unclassified"}
    json.dumps(stats)  # the example writes it as JSON


@pytest.mark.parametrize(
    ("stats", "expected"),
    [
        ({"rate": 312.5, "cv": 0.001, "chi": 0.52, "chi_slow": 0.65, "peak_frequency": 376, "peak_power": 59}, "SR"),
        ({"rate": 63.3, "cv": 1.04, "chi": 0.31, "chi_slow": 0.18, "peak_frequency": 168, "peak_power": 26}, "SI fast"),
        ({"rate": 39.1, "cv": 0.41, "chi": 0.18, "chi_slow": 0.16, "peak_frequency": 116, "peak_power": 6.3}, "AI"),
        ({"rate": 5.8, "cv": 0.57, "chi": 0.26, "chi_slow": 0.51, "peak_frequency": 20, "peak_power": 7.0}, "SI slow"),
        # a regular network at a moderate rate (the paper's network shrunk to C_E = 200: 75 Hz, CV 0.15)
        (
            {"rate": 74.7, "cv": 0.15, "chi": 0.09, "chi_slow": 0.05, "peak_frequency": 76, "peak_power": 11},
            "unclassified",
        ),
    ],
)
def test_the_classifier_applies_the_documented_rules(stats, expected):
    assert classify_regime(stats) == expected


def test_unknown_panels_are_refused(tmp_path, capsys):
    with pytest.raises(ConfigError, match="unknown Fig. 8 panel"):
        simulate_regime("E")
    out = tmp_path / "out"
    assert _example().main(["--panels", "AX", "--out", str(out)]) == 2
    assert "--panels" in capsys.readouterr().err
    assert not out.exists()


@pytest.fixture(scope="module")
def regimes() -> dict[str, dict]:
    return {panel: regime_statistics(simulate_regime(panel, seed=0), panel) for panel in FIG8_REGIMES}


@pytest.mark.slow
@pytest.mark.parametrize("panel", list(FIG8_REGIMES))
def test_each_state_is_recognised_by_its_statistics(regimes, panel):
    stats = regimes[panel]
    assert stats["classified_as"] == FIG8_REGIMES[panel].name
    # model A: excitatory and inhibitory neurons are identical, so are their statistics
    e, i = stats["populations"]["E"], stats["populations"]["I"]
    assert i["rate"] == pytest.approx(e["rate"], rel=0.05)
    assert classify_regime(i) == stats["classified_as"]


@pytest.mark.slow
def test_the_states_are_ordered_as_the_paper_describes_them(regimes):
    e = {panel: regimes[panel]["populations"]["E"] for panel in FIG8_REGIMES}
    # SR fires fastest and most regularly (312 Hz, CV 0.001); SI slow slowest (5.8 Hz)
    assert e["A"]["rate"] == max(x["rate"] for x in e.values())
    assert e["D"]["rate"] == min(x["rate"] for x in e.values())
    assert e["A"]["cv"] == min(x["cv"] for x in e.values())
    # the fast oscillation (168 Hz) is faster than its neurons fire (63 Hz); the slow one (20 Hz) slower than 50 Hz
    assert e["B"]["peak_frequency"] > 2 * e["B"]["rate"]
    assert e["D"]["peak_frequency"] < 50
    # AI is the least synchronous of the four on both time scales (chi 0.18 / 0.16)
    assert e["C"]["chi"] == min(x["chi"] for x in e.values())
    assert e["C"]["chi_slow"] == min(x["chi_slow"] for x in e.values())


@pytest.mark.slow
def test_the_asynchronous_rate_matches_the_mean_field_prediction(regimes):
    # Brunel (2000) eqs. (21)-(22) at g = 5, nu_ext = 2 nu_thr, C_E = 1,000: 37.95 Hz; measured 39.1 Hz (+3 %)
    stats = regimes["C"]
    predicted = stats["mean_field"]["rate"]
    assert predicted == pytest.approx(37.95, abs=0.01)
    for population in ("E", "I"):
        assert stats["populations"][population]["rate"] == pytest.approx(predicted, rel=0.2)

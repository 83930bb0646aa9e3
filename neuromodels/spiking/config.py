"""Simulation configurations (TOML tables or built-in examples) -> network, input raster and settings.

A configuration has four tables; every key is optional (defaults shown)::

    [simulation]  dt = 1e-3, duration = 1.0, method = "exact", dtype = "float64", trials = 1, seed = 0,
                  record_voltages = true
    [input]       n = 1000, rate = 10.0 (Hz), frozen = false (same realisation in every trial)
    [network]     layers = [200], recurrent = false, weight_mean = 0.7, weight_std = 0.5, recurrent_std = 0.5,
                  seed = 1
    [neuron]      tau_mem = 0.01, tau_syn = 0.005, threshold = 1.0, reset = 0.0, v_rest = 0.0, refractory = 0.0

Unknown tables or keys and values of the wrong type raise :class:`~neuromodels.errors.ConfigError` naming the key
(``simulation.dt``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuromodels.errors import ConfigError

__all__ = ["DEFAULTS", "EXAMPLES", "SimulationConfig", "load_config", "build"]

DEFAULTS: dict[str, dict[str, Any]] = {
    "simulation": {"dt": 1e-3, "duration": 1.0, "method": "exact", "dtype": "float64", "trials": 1, "seed": 0,
                   "record_voltages": True},
    "input": {"n": 1000, "rate": 10.0, "frozen": False},
    "network": {"layers": [200], "recurrent": False, "weight_mean": 0.7, "weight_std": 0.5, "recurrent_std": 0.5,
                "seed": 1},
    "neuron": {"tau_mem": 10e-3, "tau_syn": 5e-3, "threshold": 1.0, "reset": 0.0, "v_rest": 0.0, "refractory": 0.0},
}

#: Built-in examples: the issue's feed-forward layer, and a recurrent two-layer circuit with refractoriness.
EXAMPLES: dict[str, dict[str, dict[str, Any]]] = {
    "feedforward": {},
    "recurrent": {"network": {"layers": [200, 50], "recurrent": True, "recurrent_std": 1.0, "seed": 2},
                  "neuron": {"refractory": 2e-3}, "simulation": {"trials": 4}},
    "fine-dt": {"simulation": {"dt": 1e-4}},
}



def _check_type(key: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
        if ok and not math.isfinite(value):
            raise ConfigError(f"config key '{key}' must be a finite number, got {value!r}")
    elif isinstance(default, list):
        ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value) and value
    else:
        ok = isinstance(value, type(default))
    if key == "network.recurrent" and isinstance(value, list):
        ok = all(isinstance(v, bool) for v in value)
    if key == "network.layers" and isinstance(value, int) and not isinstance(value, bool):
        value, ok = [value], True
    if not ok:
        raise ConfigError(f"config key '{key}' must be {type(default).__name__}"
                          f"{' of integers' if isinstance(default, list) else ''}, got {value!r}")
    return value


def merge(overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Defaults updated with ``overrides`` (validated: unknown tables/keys and wrong types are ConfigErrors)."""
    config = copy.deepcopy(DEFAULTS)
    if not isinstance(overrides, dict):
        raise ConfigError("a configuration must be a table of tables")
    for table, values in overrides.items():
        if table not in config:
            raise ConfigError(f"unknown config table '{table}' (known: {', '.join(config)})")
        if not isinstance(values, dict):
            raise ConfigError(f"config '{table}' must be a table, got {values!r}")
        for key, value in values.items():
            if key not in config[table]:
                raise ConfigError(f"unknown config key '{table}.{key}' (known: {', '.join(config[table])})")
            config[table][key] = _check_type(f"{table}.{key}", value, DEFAULTS[table][key])
    return config


def load_config(path: str | Path | None = None, example: str | None = None) -> dict[str, dict[str, Any]]:
    """Read a TOML file or take a built-in example (exactly one of the two) and validate it."""
    import tomllib

    from neuromodels.errors import DataFormatError

    if (path is None) == (example is None):
        raise ConfigError("give exactly one of --config and --example")
    if example is not None:
        if example not in EXAMPLES:
            raise ConfigError(f"unknown example '{example}' (known: {', '.join(EXAMPLES)})")
        return merge(EXAMPLES[example])
    p = Path(path)
    if not p.is_file():
        raise DataFormatError(file=p, field="<path>", expected="a TOML configuration file", found="no such file")
    try:
        data = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise DataFormatError(f"not valid TOML ({err})", file=p) from None
    return merge(data)


@dataclass
class SimulationConfig:
    network: Any
    inputs: Any  # (trial, time, input) uint8
    settings: dict[str, dict[str, Any]]


def _check_size(config: dict[str, dict[str, Any]]) -> None:
    """Refuse, before allocating, a simulation whose rasters (and voltages) would not fit in memory."""
    from neuromodels._limits import check_allocation

    sim, inp, net = config["simulation"], config["input"], config["network"]
    steps = sim["duration"] / sim["dt"]
    per_step = inp["n"] + sum(net["layers"]) * (1 + (8 if sim["dtype"] == "float64" else 4) * sim["record_voltages"])
    check_allocation(sim["trials"] * steps * per_step,
                     f"config key 'simulation.duration' ({sim['duration']:g} s in steps of {sim['dt']:g} s, "
                     f"{sim['trials']} trial(s))")


def build(config: dict[str, dict[str, Any]]) -> SimulationConfig:
    """The network and the input raster that a validated configuration describes."""
    from neuromodels.spiking.inputs import frozen_poisson, poisson_spikes
    from neuromodels.spiking.network import SpikingNetwork
    from neuromodels.spiking.neurons import LIFParameters

    sim, inp, net, neuron = (config[k] for k in ("simulation", "input", "network", "neuron"))
    for key in ("dt", "duration"):
        if not sim[key] > 0:
            raise ConfigError(f"config key 'simulation.{key}' must be > 0, got {sim[key]}")
    if sim["duration"] < sim["dt"]:
        raise ConfigError(f"config key 'simulation.duration' ({sim['duration']:g} s) must be at least one time step "
                          f"dt ({sim['dt']:g} s)")
    for table, values in (("simulation", sim), ("network", net)):
        if values["seed"] < 0:
            raise ConfigError(f"config key '{table}.seed' must be >= 0, got {values['seed']}")
    if sim["method"] not in ("exact", "euler"):
        raise ConfigError(f"config key 'simulation.method' must be 'exact' or 'euler', got {sim['method']!r}")
    if sim["dtype"] not in ("float32", "float64"):
        raise ConfigError(f"config key 'simulation.dtype' must be 'float32' or 'float64', got {sim['dtype']!r}")
    if sim["trials"] < 1:
        raise ConfigError(f"config key 'simulation.trials' must be >= 1, got {sim['trials']}")
    if inp["n"] < 1:
        raise ConfigError(f"config key 'input.n' must be >= 1, got {inp['n']}")
    if not 0 <= inp["rate"] <= 1 / sim["dt"]:
        raise ConfigError(f"config key 'input.rate' must be in [0, 1/dt] Hz, got {inp['rate']}")
    if any(n < 1 for n in net["layers"]):
        raise ConfigError(f"config key 'network.layers' must list positive sizes, got {net['layers']}")
    if isinstance(net["recurrent"], list) and len(net["recurrent"]) != len(net["layers"]):
        raise ConfigError("config key 'network.recurrent' needs one entry per layer")
    _check_size(config)
    try:
        params = LIFParameters(**neuron)
    except ConfigError as err:
        raise ConfigError(str(err).replace("neuron parameter '", "config key 'neuron.")) from None
    network = SpikingNetwork(inp["n"], net["layers"], params, net["recurrent"], weight_mean=net["weight_mean"],
                             weight_std=net["weight_std"], recurrent_std=net["recurrent_std"], dt=sim["dt"],
                             method=sim["method"], seed=net["seed"])
    make = frozen_poisson if inp["frozen"] else poisson_spikes
    inputs = make(inp["n"], inp["rate"], sim["duration"], sim["dt"], trials=sim["trials"], seed=sim["seed"])
    return SimulationConfig(network, inputs, config)

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

A circuit (:mod:`neuromodels.spiking.circuit`) is described instead by arrays of tables, the Python API's
arguments key for key (``--example brunel``)::

    [simulation]    dt = 1e-4, duration = 1.0, method = "exact", seed = 0 (connectivity, draws),
                    record_voltages = false
    [[population]]  name, n, kind = "lif" (tau_mem, tau_syn, threshold, reset, v_rest, refractory as [neuron],
                    v_init = number or [low, high]) or kind = "poisson" (rate in Hz)
    [[projection]]  source, target, weight, delay = 0.0 (s, a multiple of dt), synapse = "delta" | "exponential",
                    and one of in_degree (integer) or probability

Errors name the key as ``population[0].n`` or ``projection[2].delay``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuromodels.errors import ConfigError

__all__ = [
    "DEFAULTS",
    "EXAMPLES",
    "CIRCUIT_EXAMPLES",
    "SimulationConfig",
    "load_config",
    "build",
    "is_circuit",
    "build_circuit",
    "brunel_example",
    "BENCHMARK_BRUNEL",
]

DEFAULTS: dict[str, dict[str, Any]] = {
    "simulation": {
        "dt": 1e-3,
        "duration": 1.0,
        "method": "exact",
        "dtype": "float64",
        "trials": 1,
        "seed": 0,
        "record_voltages": True,
    },
    "input": {"n": 1000, "rate": 10.0, "frozen": False},
    "network": {
        "layers": [200],
        "recurrent": False,
        "weight_mean": 0.7,
        "weight_std": 0.5,
        "recurrent_std": 0.5,
        "seed": 1,
    },
    "neuron": {"tau_mem": 10e-3, "tau_syn": 5e-3, "threshold": 1.0, "reset": 0.0, "v_rest": 0.0, "refractory": 0.0},
}

#: Built-in examples: the issue's feed-forward layer, and a recurrent two-layer circuit with refractoriness.
EXAMPLES: dict[str, dict[str, dict[str, Any]]] = {
    "feedforward": {},
    "recurrent": {
        "network": {"layers": [200, 50], "recurrent": True, "recurrent_std": 1.0, "seed": 2},
        "neuron": {"refractory": 2e-3},
        "simulation": {"trials": 4},
    },
    "fine-dt": {"simulation": {"dt": 1e-4}},
}


def brunel_example(
    g: float = 5.0,
    nu_ratio: float = 2.0,
    n_e: int = 4000,
    n_i: int | None = None,
    *,
    c_e: int = 1000,
    c_i: int | None = None,
    j: float = 0.1,
    delay: float = 1.5e-3,
    n_ext: int | None = None,
    theta: float = 20.0,
    v_r: float = 10.0,
    tau: float = 20e-3,
    tau_rp: float = 2e-3,
    v_init: tuple[float, float] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Brunel's (2000) model A as a circuit configuration: the one builder of the CLI example, the benchmark and
    :func:`neuromodels.analysis.brunel.brunel_circuit`.

    LIF populations ``E`` (``n_e``) and ``I`` (``n_i``, default ``n_e / 4``) with tau 20 ms, theta 20 mV, V_r 10 mV,
    tau_rp 2 ms (section 2 and Fig. 8's caption); every neuron receives exactly ``c_e`` excitatory (+J), ``c_i``
    (default ``c_e / 4``: gamma = 0.25) inhibitory (-g J) and ``c_e`` external (+J) delta synapses of delay D, the
    external ones from a Poisson population ``ext`` of ``n_ext`` neurons (default ``5 c_e``) firing at
    ``nu_ext = nu_ratio * nu_thr`` with ``nu_thr = theta / (J c_e tau)`` (eq. 11); initial voltages uniform in
    ``v_init`` (default ``[V_r, theta]``).

    The default keeps the paper's in-degrees (C_E = 1,000), so that its mean-field theory, which depends on C_E, J,
    g and gamma only, holds at any size; at N_E = 4,000 the network is denser than the paper's epsilon = 0.1, and
    at g = 5, nu_ratio = 2 it is in the asynchronous irregular state (docs/spiking.md, "Brunel's four regimes").
    Scaling C_E down with N_E instead (C_E = 0.1 N_E = 200 at N_E = 2,000, the benchmark's network) raises the
    mean-field rate to 75 Hz and the network fires regularly.
    """
    n_i = n_e // 4 if n_i is None else n_i
    c_i = round(0.25 * c_e) if c_i is None else c_i
    n_ext = 5 * c_e if n_ext is None else n_ext
    v_init = [v_r, theta] if v_init is None else list(v_init)
    neuron = {
        "tau_mem": tau,
        "threshold": theta,
        "reset": v_r,
        "v_rest": 0.0,
        "refractory": tau_rp,
        "v_init": v_init,
    }
    nu_thr = theta / (j * c_e * tau)
    projections = [
        {"source": src, "target": tgt, "weight": w, "delay": delay, "in_degree": k}
        for src, w, k in (("E", j, c_e), ("I", -g * j, c_i), ("ext", j, c_e))
        for tgt in ("E", "I")
    ]
    return {
        "simulation": {"dt": 1e-4, "duration": 1.0, "seed": seed},
        "population": [
            {"name": "E", "n": n_e, **neuron},
            {"name": "I", "n": n_i, **neuron},
            {"name": "ext", "kind": "poisson", "n": n_ext, "rate": nu_ratio * nu_thr},
        ],
        "projection": projections,
    }


#: The benchmark's reduced network (N_E 2,000, C_E = 0.1 N_E): not the asynchronous state, see brunel_example.
BENCHMARK_BRUNEL = {"n_e": 2000, "n_i": 500, "c_e": 200, "c_i": 50, "n_ext": 2000, "v_init": (0.0, 20.0)}


#: Built-in circuit examples (``neuromodels simulate --example brunel``).
CIRCUIT_EXAMPLES: dict[str, dict[str, Any]] = {"brunel": brunel_example()}

CIRCUIT_SIMULATION = {"dt": 1e-4, "duration": 1.0, "method": "exact", "seed": 0, "record_voltages": False}
_LIF_KEYS = {"name", "kind", "n", "v_init", *DEFAULTS["neuron"]}
_POISSON_KEYS = {"name", "kind", "n", "rate"}
_PROJECTION_KEYS = {"source", "target", "weight", "delay", "synapse", "in_degree", "probability"}


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
        raise ConfigError(
            f"config key '{key}' must be {type(default).__name__}"
            f"{' of integers' if isinstance(default, list) else ''}, got {value!r}"
        )
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
        if example in CIRCUIT_EXAMPLES:
            return merge_circuit(CIRCUIT_EXAMPLES[example])
        if example not in EXAMPLES:
            raise ConfigError(f"unknown example '{example}' (known: {', '.join([*EXAMPLES, *CIRCUIT_EXAMPLES])})")
        return merge(EXAMPLES[example])
    p = Path(path)
    if not p.is_file():
        raise DataFormatError(file=p, field="<path>", expected="a TOML configuration file", found="no such file")
    try:
        data = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise DataFormatError(f"not valid TOML ({err})", file=p) from None
    if isinstance(data, dict) and ("population" in data or "projection" in data):
        return merge_circuit(data)
    return merge(data)


def is_circuit(config: dict[str, Any]) -> bool:
    """Whether a validated configuration describes a circuit (``[[population]]`` tables)."""
    return "population" in config


def _number(key: str, value: Any, integer: bool = False) -> Any:
    if integer:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{key}' must be an integer, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"config key '{key}' must be a finite number, got {value!r}")
    return float(value)


def _check_table(where: str, table: Any, known: set[str], required: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"config '{where}' must be a table, got {table!r}")
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"unknown config key '{where}.{unknown[0]}' (known: {', '.join(sorted(known))})")
    for key in required:
        if key not in table:
            raise ConfigError(f"config key '{where}.{key}' is missing")
    return dict(table)


def _check_population(i: int, table: Any) -> dict[str, Any]:
    where = f"population[{i}]"
    kind = table.get("kind", "lif") if isinstance(table, dict) else None
    if kind not in ("lif", "poisson"):
        raise ConfigError(f"config key '{where}.kind' must be 'lif' or 'poisson', got {kind!r}")
    pop = _check_table(
        where,
        table,
        _LIF_KEYS if kind == "lif" else _POISSON_KEYS,
        ("name", "n") if kind == "lif" else ("name", "n", "rate"),
    )
    pop["kind"] = kind
    if not isinstance(pop["name"], str) or not pop["name"]:
        raise ConfigError(f"config key '{where}.name' must be a non-empty string, got {pop['name']!r}")
    if _number(f"{where}.n", pop["n"], integer=True) < 1:
        raise ConfigError(f"config key '{where}.n' must be >= 1, got {pop['n']}")
    for key in set(pop) - {"name", "kind", "n", "v_init"}:
        pop[key] = _number(f"{where}.{key}", pop[key])
    if kind == "poisson" and pop["rate"] < 0:
        raise ConfigError(f"config key '{where}.rate' must be >= 0 Hz, got {pop['rate']}")
    if "v_init" in pop:
        v_init = pop["v_init"]
        if isinstance(v_init, list):
            if len(v_init) != 2:
                raise ConfigError(f"config key '{where}.v_init' must be a number or [low, high], got {v_init!r}")
            pop["v_init"] = [_number(f"{where}.v_init", v) for v in v_init]
        else:
            pop["v_init"] = _number(f"{where}.v_init", v_init)
    return pop


def _check_projection(i: int, table: Any, sizes: dict[str, tuple[str, int]], dt: float) -> dict[str, Any]:
    where = f"projection[{i}]"
    proj = _check_table(where, table, _PROJECTION_KEYS, ("source", "target", "weight"))
    for end in ("source", "target"):
        if proj[end] not in sizes:
            raise ConfigError(
                f"config key '{where}.{end}': unknown population {proj[end]!r} (known: {', '.join(sizes)})"
            )
    if sizes[proj["target"]][0] != "lif":
        raise ConfigError(
            f"config key '{where}.target': '{proj['target']}' is a Poisson population; targets must be LIF populations"
        )
    proj["weight"] = _number(f"{where}.weight", proj["weight"])
    proj["delay"] = _number(f"{where}.delay", proj.get("delay", 0.0))
    if proj["delay"] < 0:
        raise ConfigError(f"config key '{where}.delay' must be >= 0 seconds, got {proj['delay']}")
    steps = proj["delay"] / dt
    if abs(steps - round(steps)) > 1e-6:
        raise ConfigError(
            f"config key '{where}.delay' ({proj['delay']:g} s) is not a multiple of "
            f"simulation.dt ({dt:g} s): delays are whole time steps"
        )
    proj.setdefault("synapse", "delta")
    if proj["synapse"] not in ("delta", "exponential"):
        raise ConfigError(f"config key '{where}.synapse' must be 'delta' or 'exponential', got {proj['synapse']!r}")
    if ("in_degree" in proj) == ("probability" in proj):
        raise ConfigError(f"config table '{where}' needs exactly one of 'in_degree' and 'probability'")
    if "in_degree" in proj:
        k = _number(f"{where}.in_degree", proj["in_degree"], integer=True)
        available = sizes[proj["source"]][1] - (proj["source"] == proj["target"])
        if not 1 <= k <= available:
            raise ConfigError(
                f"config key '{where}.in_degree' ({k}) must be between 1 and the {available} available "
                f"neurons of source population '{proj['source']}'"
            )
    else:
        p = _number(f"{where}.probability", proj["probability"])
        if not 0 <= p <= 1:
            raise ConfigError(f"config key '{where}.probability' must be in [0, 1], got {p}")
        proj["probability"] = p
    return proj


def merge_circuit(data: dict[str, Any]) -> dict[str, Any]:
    """A circuit configuration (module docstring) validated, with the ``[simulation]`` defaults filled in."""
    unknown = sorted(set(data) - {"simulation", "population", "projection"})
    if unknown:
        raise ConfigError(
            f"unknown config table '{unknown[0]}' in a circuit configuration "
            "(known: simulation, population, projection)"
        )
    sim = dict(CIRCUIT_SIMULATION)
    table = data.get("simulation", {})
    if not isinstance(table, dict):
        raise ConfigError(f"config 'simulation' must be a table, got {table!r}")
    for key, value in table.items():
        if key not in sim:
            raise ConfigError(
                f"unknown config key 'simulation.{key}' in a circuit configuration (known: {', '.join(sim)})"
            )
        sim[key] = _check_type(f"simulation.{key}", value, CIRCUIT_SIMULATION[key])
    for key in ("dt", "duration"):
        if not sim[key] > 0:
            raise ConfigError(f"config key 'simulation.{key}' must be > 0, got {sim[key]}")
    if sim["duration"] < sim["dt"]:
        raise ConfigError(f"config key 'simulation.duration' ({sim['duration']:g} s) must be at least dt")
    if sim["seed"] < 0:
        raise ConfigError(f"config key 'simulation.seed' must be >= 0, got {sim['seed']}")
    if sim["method"] not in ("exact", "euler"):
        raise ConfigError(f"config key 'simulation.method' must be 'exact' or 'euler', got {sim['method']!r}")
    pops, projs = data.get("population", []), data.get("projection", [])
    if not isinstance(pops, list) or not pops:
        raise ConfigError("config needs at least one [[population]] table")
    if not isinstance(projs, list):
        raise ConfigError("config 'projection' must be an array of tables ([[projection]])")
    populations = [_check_population(i, t) for i, t in enumerate(pops)]
    sizes: dict[str, tuple[str, int]] = {}
    for i, pop in enumerate(populations):
        if pop["name"] in sizes:
            raise ConfigError(f"config key 'population[{i}].name': population '{pop['name']}' is defined twice")
        sizes[pop["name"]] = (pop["kind"], pop["n"])
    projections = [_check_projection(i, t, sizes, sim["dt"]) for i, t in enumerate(projs)]
    config = {"simulation": sim, "population": populations, "projection": projections}
    _check_circuit_size(config)
    return config


def _check_circuit_size(config: dict[str, Any]) -> None:
    from neuromodels._limits import check_allocation

    sim = config["simulation"]
    n = sum(p["n"] for p in config["population"])
    synapses = sum(p["n"] for p in config["population"]) * sum(
        q.get("in_degree", 0) or q.get("probability", 0) * n for q in config["projection"]
    )
    check_allocation(
        sim["duration"] / sim["dt"] * n * (1 + 8 * sim["record_voltages"]) + 16 * synapses,
        f"config key 'simulation.duration' ({sim['duration']:g} s in steps of {sim['dt']:g} s, {n} neurons)",
    )


def build_circuit(config: dict[str, Any]) -> Any:
    """The :class:`~neuromodels.spiking.Circuit` a validated circuit configuration describes."""
    from neuromodels.spiking.circuit import Circuit, PoissonPopulation, Population, Projection
    from neuromodels.spiking.neurons import LIFParameters

    populations: list[Any] = []
    for i, pop in enumerate(config["population"]):
        if pop["kind"] == "poisson":
            populations.append(PoissonPopulation(pop["name"], pop["n"], pop["rate"]))
            continue
        neuron = {k: v for k, v in pop.items() if k in DEFAULTS["neuron"]}
        try:
            params = LIFParameters.from_dict(neuron, where=f"population[{i}]")
        except ConfigError as err:
            raise ConfigError(str(err).replace("neuron parameter '", f"config key 'population[{i}].")) from None
        v_init = pop.get("v_init")
        populations.append(
            Population(pop["name"], pop["n"], params, tuple(v_init) if isinstance(v_init, list) else v_init)
        )
    projections = [
        Projection(
            q["source"],
            q["target"],
            q["weight"],
            q["delay"],
            q["synapse"],
            in_degree=q.get("in_degree"),
            probability=q.get("probability"),
        )
        for q in config["projection"]
    ]
    return Circuit(populations, projections, seed=config["simulation"]["seed"])


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
    check_allocation(
        sim["trials"] * steps * per_step,
        f"config key 'simulation.duration' ({sim['duration']:g} s in steps of {sim['dt']:g} s, "
        f"{sim['trials']} trial(s))",
    )


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
        raise ConfigError(
            f"config key 'simulation.duration' ({sim['duration']:g} s) must be at least one time step "
            f"dt ({sim['dt']:g} s)"
        )
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
    network = SpikingNetwork(
        inp["n"],
        net["layers"],
        params,
        net["recurrent"],
        weight_mean=net["weight_mean"],
        weight_std=net["weight_std"],
        recurrent_std=net["recurrent_std"],
        dt=sim["dt"],
        method=sim["method"],
        seed=net["seed"],
    )
    make = frozen_poisson if inp["frozen"] else poisson_spikes
    inputs = make(inp["n"], inp["rate"], sim["duration"], sim["dt"], trials=sim["trials"], seed=sim["seed"])
    return SimulationConfig(network, inputs, config)

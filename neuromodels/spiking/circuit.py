"""Spiking circuits: named LIF and Poisson populations joined by projections with delays and delta synapses.

The model (Brunel 2000, J Comput Neurosci 8:183, section 2; the LIF of :mod:`neuromodels.spiking.neurons`)::

    tau_mem dv/dt = (v_rest - v) + I        (v clamped at ``reset`` while refractory)
    tau_syn dI/dt = -I

Each :class:`Projection` ``source -> target`` has a weight ``w`` (one value for all its synapses: ``J`` or ``-g J``),
a delay ``D`` and a synapse kind:

* ``"delta"``: a presynaptic spike at step ``n`` makes ``v -> v + w`` at step ``n + D/dt`` (Brunel's
  ``RI = tau sum_j J delta(t - t_j - D)``: an instantaneous jump of ``w`` in the target's voltage units).  A jump
  that arrives while the target is refractory is discarded, so the voltage stays clamped at ``reset`` for the whole
  refractory period (Brunel 2000, section 2: "V is reset to V_r ... and stays there for tau_rp"; NEST's
  ``iaf_psc_delta`` default).  Brian2 does the same with ``on_pre='v_post += w'`` when ``v`` is declared
  ``(unless refractory)``: its generated code applies the jump only where ``not_refractory`` (checked by experiment,
  Brian2 2.9; a neuron that spikes in the step of the arrival loses the jump to its reset either way).
* ``"exponential"``: ``I -> I + w`` (the current-based synapse of :class:`~neuromodels.spiking.SpikingNetwork`);
  ``I`` keeps decaying while the target is refractory.

Voltages are in the units the user chooses (mV for Brunel: ``threshold=20, reset=10, v_rest=0``), consistent with
:class:`~neuromodels.spiking.LIFParameters` and the weights.  Times are in seconds.

Conventions (all tested):

* Delays must be whole multiples of ``dt`` (to 1e-6 of a step): ``delay_steps = round(D/dt)`` as Brian2's
  ``SpikeQueue`` rounds them; any other delay is refused with a :class:`ConfigError` (no silent rounding).  A delay
  of 0 delivers in the step of the spike, after the threshold (Brian2's behaviour).
* Ordering within a step (Brian2's default schedule): state update (refractoriness evaluated first) -> threshold
  (``v > threshold`` and not refractory; spike reported at ``t_n``) -> synapses (delayed deliveries of this step,
  projections in list order) -> reset (``v = reset``).
* Connectivity, ``in_degree=K``: each target neuron receives exactly ``K`` connections from ``K`` distinct source
  neurons drawn uniformly without replacement (no multapses; no autapses when source and target are the same
  population), as Brunel 2000 describes ("C_E connections from excitatory neurons").  NEST's ``fixed_indegree``
  allows multapses and autapses by default; Brian2 has no fixed in-degree rule (its Brunel example uses
  ``connect(p=epsilon)``).  ``probability=p``: each source-target pair independently with probability ``p``
  (no autapses within a population), i.e. a binomial in-degree ``Bin(n_source, p)`` then distinct sources.
* External Poisson populations: at most one spike per step, ``rand() < rate dt`` (Brian2's ``PoissonGroup`` rule),
  the same stream as :func:`~neuromodels.spiking.poisson_spikes` for seed ``[seed, 2, k]`` (``k``: the population's
  index among the Poisson populations).  Pass ``external_spikes={name: raster}`` to inject others.
* Seeds: connectivity of projection ``k`` from ``[seed, 1, k]``; initial voltages of population ``k`` from
  ``[seed, 3, k]``.

API, for callers (part E of issue 20 and the CLI)::

    E = Population("E", 2000, LIFParameters(tau_mem=20e-3, threshold=20.0, reset=10.0, refractory=2e-3))
    circuit = Circuit([E, I, PoissonPopulation("ext", 2000, rate=100.0)],
                      [Projection("E", "E", 0.1, delay=1.5e-3, in_degree=200), ...], seed=0)
    result = simulate_circuit(circuit, duration=1.0, dt=1e-4)

``result`` is an ``xr.Dataset``: ``spikes(time, neuron)`` uint8 over the LIF populations (in the order given),
coords ``time`` (s), ``neuron`` (0..N-1), ``population`` (name, on ``neuron``); optional ``voltage(time, neuron)``
(``v`` at the start of each step) and ``external_spikes(time, external_neuron)`` with ``external_population``;
attrs ``dt``, ``seed``, ``method``, ``duration``, ``circuit`` (JSON of :meth:`Circuit.describe`), ``populations``
and ``ordering``.  :func:`population_slices` gives each population's neuron range.

Brunel's model A: :func:`neuromodels.spiking.config.brunel_example` is the one builder (a configuration, the
paper's in-degrees C_E = 1,000 by default): the command line's ``brunel`` example, the benchmark
(``BENCHMARK_BRUNEL``, in-degrees ``epsilon N``) and :func:`neuromodels.analysis.brunel.brunel_circuit` (Fig. 8's
regimes) all use it.  Cross-check with Brian2:
``neuromodels.spiking.cross_check(circuit, duration, dt)``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuromodels.errors import ConfigError
from neuromodels.spiking.neurons import METHODS, LIFParameters, propagator, refractory_steps

__all__ = [
    "Population",
    "PoissonPopulation",
    "Projection",
    "Circuit",
    "Connectivity",
    "simulate_circuit",
    "circuit_dataset",
    "population_slices",
    "SYNAPSES",
    "delay_steps_exact",
]

SYNAPSES = ("delta", "exponential")
ORDERING = "state update -> threshold -> synapses (delayed) -> reset (Brian2 default schedule)"


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"'{where}' must be a positive integer, got {value!r}")
    return int(value)


def _finite(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not math.isfinite(value):
        raise ConfigError(f"'{where}' must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Population:
    """``n`` LIF neurons named ``name`` with :class:`LIFParameters` ``neuron``.

    ``v_init``: initial voltage, ``None`` (``v_rest``), a number, or ``(low, high)``: uniform draws (seeded by the
    circuit's seed).
    """

    name: str
    n: int
    neuron: LIFParameters = field(default_factory=LIFParameters)
    v_init: float | tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"population name must be a non-empty string, got {self.name!r}")
        object.__setattr__(self, "n", _positive_int(self.n, f"population '{self.name}' n"))
        if not isinstance(self.neuron, LIFParameters):
            raise ConfigError(f"population '{self.name}' neuron must be LIFParameters, got {type(self.neuron)}")
        if isinstance(self.v_init, (tuple, list)):
            if len(self.v_init) != 2:
                raise ConfigError(f"population '{self.name}' v_init must be a number or (low, high)")
            low, high = (_finite(v, f"population '{self.name}' v_init") for v in self.v_init)
            if not low <= high:
                raise ConfigError(f"population '{self.name}' v_init (low, high) needs low <= high, got {self.v_init}")
            object.__setattr__(self, "v_init", (low, high))
        elif self.v_init is not None:
            object.__setattr__(self, "v_init", _finite(self.v_init, f"population '{self.name}' v_init"))

    def describe(self) -> dict[str, Any]:
        v_init = list(self.v_init) if isinstance(self.v_init, tuple) else self.v_init
        return {"name": self.name, "kind": "lif", "n": self.n, **self.neuron.as_dict(), "v_init": v_init}


@dataclass(frozen=True)
class PoissonPopulation:
    """``n`` independent Poisson spike sources at ``rate`` Hz (at most one spike per step)."""

    name: str
    n: int
    rate: float

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"population name must be a non-empty string, got {self.name!r}")
        object.__setattr__(self, "n", _positive_int(self.n, f"population '{self.name}' n"))
        rate = _finite(self.rate, f"population '{self.name}' rate")
        if rate < 0:
            raise ConfigError(f"population '{self.name}' rate must be >= 0 Hz, got {rate}")
        object.__setattr__(self, "rate", rate)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "poisson", "n": self.n, "rate": self.rate}


@dataclass(frozen=True)
class Projection:
    """Synapses ``source -> target`` (population names) of one ``weight``, ``delay`` (s) and ``synapse`` kind.

    Exactly one of ``in_degree`` (each target neuron gets exactly ``K`` distinct sources) and ``probability``
    (each pair independently) sets the connectivity; ``probability=1`` is all-to-all (no autapses within a
    population).
    """

    source: str
    target: str
    weight: float
    delay: float = 0.0
    synapse: str = "delta"
    in_degree: int | None = None
    probability: float | None = None

    def __post_init__(self) -> None:
        name = f"projection {self.source}->{self.target}"
        object.__setattr__(self, "weight", _finite(self.weight, f"{name} weight"))
        delay = _finite(self.delay, f"{name} delay")
        if delay < 0:
            raise ConfigError(f"'{name} delay' must be >= 0 seconds, got {delay}")
        object.__setattr__(self, "delay", delay)
        if self.synapse not in SYNAPSES:
            raise ConfigError(f"'{name} synapse' must be one of {', '.join(SYNAPSES)}, got {self.synapse!r}")
        if (self.in_degree is None) == (self.probability is None):
            raise ConfigError(f"{name}: give exactly one of 'in_degree' and 'probability'")
        if self.in_degree is not None:
            object.__setattr__(self, "in_degree", _positive_int(self.in_degree, f"{name} in_degree"))
        else:
            p = _finite(self.probability, f"{name} probability")
            if not 0 <= p <= 1:
                raise ConfigError(f"'{name} probability' must be in [0, 1], got {p}")
            object.__setattr__(self, "probability", p)

    @property
    def label(self) -> str:
        return f"{self.source}->{self.target}"

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "weight": self.weight,
            "delay": self.delay,
            "synapse": self.synapse,
            "in_degree": self.in_degree,
            "probability": self.probability,
        }


@dataclass(frozen=True)
class Connectivity:
    """The synapses of one projection, ``pre[k] -> post[k]`` (indices within the source and target populations),
    sorted by ``pre`` then ``post`` (the order Brian2 is given them)."""

    pre: np.ndarray
    post: np.ndarray


def delay_steps_exact(delay: float, dt: float, where: str = "delay") -> int:
    """``round(delay/dt)`` (Brian2's rounding) for a delay that is a whole number of steps; ConfigError otherwise."""
    steps = delay / dt
    if abs(steps - round(steps)) > 1e-6:
        raise ConfigError(
            f"'{where}' ({delay:g} s) is not a multiple of dt ({dt:g} s): delays are whole time steps "
            f"(here {steps:.4g}); choose a delay of k*dt or another dt"
        )
    return int(round(steps))


def _draw_sources(
    rng: np.random.Generator, n_source: int, n_target: int, counts: np.ndarray, exclude_self: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``counts[j]`` distinct sources for every target ``j`` (skipping ``j`` itself if ``exclude_self``)."""
    pre_parts, post_parts = [], []
    pool = n_source - 1 if exclude_self else n_source
    for j in range(n_target):
        chosen = rng.choice(pool, size=int(counts[j]), replace=False)
        if exclude_self:
            chosen = chosen + (chosen >= j)
        pre_parts.append(chosen)
        post_parts.append(np.full(chosen.size, j, dtype=np.int64))
    pre = np.concatenate(pre_parts).astype(np.int64) if pre_parts else np.zeros(0, np.int64)
    post = np.concatenate(post_parts) if post_parts else np.zeros(0, np.int64)
    order = np.lexsort((post, pre))
    return pre[order], post[order]


class Circuit:
    """Populations (:class:`Population`, :class:`PoissonPopulation`) and :class:`Projection` s between them.

    Validation (ConfigError naming the population or projection): unique names, projections between known
    populations, targets that are LIF populations, ``in_degree`` at most the number of available sources.
    The connectivity is drawn at construction from ``seed`` (``.connectivity[k]`` for projection ``k``).
    """

    def __init__(
        self, populations: Sequence[Population | PoissonPopulation], projections: Sequence[Projection], *, seed: int = 0
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"circuit seed must be an integer >= 0, got {seed!r}")
        self.seed = int(seed)
        self.populations = list(populations)
        self.projections = list(projections)
        names = [p.name for p in self.populations]
        for name in names:
            if names.count(name) > 1:
                raise ConfigError(f"population name '{name}' is used twice")
        self.lif = [p for p in self.populations if isinstance(p, Population)]
        self.poisson = [p for p in self.populations if isinstance(p, PoissonPopulation)]
        if not self.lif:
            raise ConfigError("a circuit needs at least one LIF population")
        by_name = {p.name: p for p in self.populations}
        for proj in self.projections:
            for end in ("source", "target"):
                if getattr(proj, end) not in by_name:
                    raise ConfigError(
                        f"projection {proj.label}: unknown {end} population '{getattr(proj, end)}' "
                        f"(known: {', '.join(names)})"
                    )
            if not isinstance(by_name[proj.target], Population):
                raise ConfigError(f"projection {proj.label}: target '{proj.target}' must be a LIF population")
            available = by_name[proj.source].n - (proj.source == proj.target)
            if proj.in_degree is not None and proj.in_degree > available:
                raise ConfigError(
                    f"projection {proj.label}: in_degree {proj.in_degree} is larger than the "
                    f"{available} available source neurons of '{proj.source}'"
                )
        self.connectivity = [self._connect(k, proj, by_name) for k, proj in enumerate(self.projections)]
        self._pathway_cache: dict[float, list[Any]] = {}

    def _connect(self, k: int, proj: Projection, by_name: Mapping[str, Any]) -> Connectivity:
        rng = np.random.default_rng([self.seed, 1, k])
        n_source, n_target = by_name[proj.source].n, by_name[proj.target].n
        exclude_self = proj.source == proj.target
        if proj.in_degree is not None:
            counts = np.full(n_target, proj.in_degree)
        else:
            counts = rng.binomial(n_source - exclude_self, proj.probability, size=n_target)
        pre, post = _draw_sources(rng, n_source, n_target, counts, exclude_self)
        return Connectivity(pre, post)

    @property
    def n_neurons(self) -> int:
        """Number of LIF neurons (the ``neuron`` dimension of the result)."""
        return sum(p.n for p in self.lif)

    def initial_voltages(self) -> np.ndarray:
        """``v`` at ``t = 0`` for all LIF neurons (seeded draws where ``v_init`` is ``(low, high)``)."""
        parts = []
        for k, pop in enumerate(self.lif):
            if isinstance(pop.v_init, tuple):
                rng = np.random.default_rng([self.seed, 3, k])
                parts.append(rng.uniform(pop.v_init[0], pop.v_init[1], size=pop.n))
            else:
                value = pop.neuron.v_rest if pop.v_init is None else pop.v_init
                parts.append(np.full(pop.n, value, dtype=np.float64))
        return np.concatenate(parts)

    def external_spikes(self, duration: float, dt: float) -> dict[str, np.ndarray]:
        """The seeded rasters ``(time, n)`` uint8 of every Poisson population (see the module's conventions)."""
        from neuromodels.spiking.inputs import poisson_spikes

        return {
            pop.name: poisson_spikes(pop.n, pop.rate, duration, dt, seed=[self.seed, 2, k])[0]
            for k, pop in enumerate(self.poisson)
        }

    def describe(self) -> dict[str, Any]:
        """Every parameter, JSON-serialisable (saved in the result's attrs)."""
        return {
            "populations": [p.describe() for p in self.populations],
            "projections": [p.describe() for p in self.projections],
            "seed": self.seed,
        }

    def __repr__(self) -> str:
        pops = ", ".join(f"{p.name}({p.n})" for p in self.populations)
        return f"Circuit([{pops}], {len(self.projections)} projections, seed={self.seed})"


def population_slices(circuit: Circuit) -> dict[str, slice]:
    """Each LIF population's range on the ``neuron`` dimension of :func:`simulate_circuit`'s result."""
    out, start = {}, 0
    for pop in circuit.lif:
        out[pop.name] = slice(start, start + pop.n)
        start += pop.n
    return out


def _check_external(
    circuit: Circuit, external_spikes: Mapping[str, Any] | None, n_steps: int, duration: float, dt: float
) -> dict[str, np.ndarray]:
    if external_spikes is None:
        return circuit.external_spikes(duration, dt)
    rasters = {}
    for pop in circuit.poisson:
        if pop.name not in external_spikes:
            raise ConfigError(f"external_spikes has no raster for Poisson population '{pop.name}'")
        raster = np.asarray(external_spikes[pop.name])
        if raster.ndim != 2 or raster.shape[1] != pop.n or raster.shape[0] < n_steps:
            raise ConfigError(f"external_spikes['{pop.name}'] must be (time >= {n_steps}, {pop.n}), got {raster.shape}")
        raster = raster[:n_steps]
        if ((raster != 0) & (raster != 1)).any():
            raise ConfigError(f"external_spikes['{pop.name}'] must contain only 0 and 1")
        rasters[pop.name] = raster.astype(np.uint8)
    unknown = sorted(set(external_spikes) - {p.name for p in circuit.poisson})
    if unknown:
        raise ConfigError(f"external_spikes names '{unknown[0]}', not a Poisson population of the circuit")
    return rasters


@dataclass
class _Pathway:
    """All projections of one (delay, synapse kind), as CSR over global source indices -> global targets."""

    delay: int
    kind: str
    indptr: np.ndarray
    targets: np.ndarray
    weights: np.ndarray


def _pathways(circuit: Circuit, dt: float) -> list[_Pathway]:
    """Group the projections by (delay steps, kind) into CSR tables over global source indices (LIF neurons
    ``0..N-1`` then Poisson neurons ``N..``) and global LIF targets."""
    offsets, start = {}, 0
    for pop in circuit.lif + circuit.poisson:
        offsets[pop.name] = start
        start += pop.n
    n_sources = start
    groups: dict[tuple[int, str], list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for proj, conn in zip(circuit.projections, circuit.connectivity):
        d = delay_steps_exact(proj.delay, dt, f"projection {proj.label} delay")
        pre = conn.pre + offsets[proj.source]
        post = conn.post + offsets[proj.target]
        groups.setdefault((d, proj.synapse), []).append((pre, post, np.full(pre.size, proj.weight)))
    out = []
    for (d, kind), parts in groups.items():
        pre, post, w = (np.concatenate(x) for x in zip(*parts))
        order = np.argsort(pre, kind="stable")
        indptr = np.concatenate([[0], np.cumsum(np.bincount(pre, minlength=n_sources))]).astype(np.int64)
        out.append(_Pathway(d, kind, indptr, post[order], w[order]))
    return out


def _neuron_arrays(circuit: Circuit, dt: float, method: str) -> dict[str, np.ndarray]:
    """Per-neuron propagator coefficients, thresholds, resets and refractory steps over all LIF populations."""
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("a_vv", "a_vi", "a_ii", "b_v", "threshold", "reset", "ref")}
    for pop in circuit.lif:
        prop = propagator(pop.neuron, dt, method)
        p = pop.neuron
        for key, value in (
            ("a_vv", prop.a_vv),
            ("a_vi", prop.a_vi),
            ("a_ii", prop.a_ii),
            ("b_v", prop.b_v),
            ("threshold", p.threshold),
            ("reset", p.reset),
        ):
            cols[key].append(np.full(pop.n, value, dtype=np.float64))
        steps = refractory_steps(p.refractory, dt) if p.refractory > 0 else 0
        cols["ref"].append(np.full(pop.n, steps, dtype=np.int64))
    return {k: np.concatenate(v) for k, v in cols.items()}


def _external_events(circuit: Circuit, external: dict[str, np.ndarray], n_steps: int) -> tuple[np.ndarray, ...]:
    """External spikes as global source indices (``N + offset + i``), ascending within each step, and the pointer
    ``ptr`` such that step ``n``'s are ``idx[ptr[n]:ptr[n + 1]]``."""
    from neuromodels.spiking.network import _nonzero_positions

    ext_steps, ext_idx, offset = [], [], circuit.n_neurons
    for pop in circuit.poisson:
        steps, idx = np.divmod(_nonzero_positions(external[pop.name]), pop.n)  # row-major: steps ascending
        ext_steps.append(steps)
        ext_idx.append(idx + offset)
        offset += pop.n
    steps_all = np.concatenate(ext_steps) if ext_steps else np.zeros(0, np.int64)
    idx_all = np.concatenate(ext_idx) if ext_idx else np.zeros(0, np.int64)
    if len(ext_steps) > 1:  # merge the populations, step by step, keeping population order within a step
        order = np.argsort(steps_all, kind="stable")
        steps_all, idx_all = steps_all[order], idx_all[order]
    ptr = np.searchsorted(steps_all, np.arange(n_steps + 1))
    return np.ascontiguousarray(idx_all, dtype=np.int64), np.ascontiguousarray(ptr, dtype=np.int64)


def _run(
    circuit: Circuit,
    n_steps: int,
    dt: float,
    method: str,
    external: dict[str, np.ndarray],
    record_voltages: bool,
    engine: str = "auto",
) -> tuple[np.ndarray, np.ndarray | None]:
    """The time loop: ``(spikes (time, N) uint8, voltage (time, N) or None)``; the compiled kernel (same
    arithmetic, same order) unless ``engine="numpy"`` or no C compiler is available."""
    from neuromodels.spiking import _compiled

    n = circuit.n_neurons
    arr = _neuron_arrays(circuit, dt, method)
    if dt not in circuit._pathway_cache:  # the CSR tables, built once per dt (as Brian2 builds its synapses once)
        circuit._pathway_cache[dt] = _pathways(circuit, dt)
    pathways = circuit._pathway_cache[dt]
    ext_all, ext_ptr = _external_events(circuit, external, n_steps)
    kernel = _compiled.lif_kernel() if engine in ("auto", "compiled") else None
    if engine == "compiled" and kernel is None:
        raise ConfigError("engine 'compiled' needs a C compiler (or unset NEUROMODELS_NO_COMPILE)")
    if kernel is not None:
        return _compiled.run_circuit(
            kernel, arr, circuit.initial_voltages(), pathways, ext_all, ext_ptr, n_steps, record_voltages
        )
    a_vv, a_vi, a_ii, b_v, threshold, reset = (arr[k] for k in ("a_vv", "a_vi", "a_ii", "b_v", "threshold", "reset"))
    ref = arr["ref"]
    any_refractory = bool(ref.any())
    ring_len = max([p.delay for p in pathways], default=0) + 1
    ring = {kind: np.zeros((ring_len, n)) for kind in SYNAPSES if any(p.kind == kind for p in pathways)}

    v = circuit.initial_voltages()
    current = np.zeros(n)
    v_new, scratch = np.empty(n), np.empty(n)
    since_spike = np.full(n, 10**9, dtype=np.int64)
    not_refractory = np.ones(n, dtype=bool)
    spikes = np.zeros((n_steps, n), dtype=bool)
    voltage = np.empty((n_steps, n)) if record_voltages else None
    for step in range(n_steps):
        if voltage is not None:
            voltage[step] = v
        # 1. state update (the arithmetic of run_network_numpy, in the same order)
        np.multiply(v, a_vv, out=v_new)
        np.multiply(current, a_vi, out=scratch)
        v_new += scratch
        v_new += b_v
        current *= a_ii
        if any_refractory:
            since_spike += 1  # Brian2's timestep(t - lastspike, dt) >= timestep(refractory, dt)
            np.greater_equal(since_spike, ref, out=not_refractory)
            np.copyto(v, v_new, where=not_refractory)
        else:
            v, v_new = v_new, v
        # 2. threshold
        fired = spikes[step]
        np.greater(v, threshold, out=fired)
        if any_refractory:
            fired &= not_refractory
        # 3. synapses: push this step's spikes into the ring, then deliver the slot of this step
        sources = np.concatenate([np.flatnonzero(fired), ext_all[ext_ptr[step] : ext_ptr[step + 1]]])
        if sources.size:
            for path in pathways:
                starts, stops = path.indptr[sources], path.indptr[sources + 1]
                counts = stops - starts
                total = int(counts.sum())
                if total == 0:
                    continue
                index = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(total)
                # one addition per synaptic event, in event order (as the C kernel and Brian2's loops add them)
                np.add.at(ring[path.kind][(step + path.delay) % ring_len], path.targets[index], path.weights[index])
        slot = step % ring_len
        if "delta" in ring:
            arriving = ring["delta"][slot]
            if any_refractory:
                arriving[~not_refractory] = 0.0  # jumps into refractory neurons are discarded (v stays clamped)
            v += arriving
            arriving[:] = 0.0
        if "exponential" in ring:
            current += ring["exponential"][slot]
            ring["exponential"][slot] = 0.0
        # 4. reset
        np.copyto(v, reset, where=fired)
        if any_refractory:
            since_spike[fired] = 0
    return spikes.view(np.uint8), voltage


def circuit_dataset(
    circuit: Circuit,
    spikes: np.ndarray,
    dt: float,
    *,
    method: str,
    voltage: np.ndarray | None = None,
    external: Mapping[str, np.ndarray] | None = None,
    engine: str = "neuromodels",
) -> Any:
    """The labelled result of a circuit run (shared by :func:`simulate_circuit` and the Brian2 bridge)."""
    import xarray as xr

    n_steps = spikes.shape[0]
    population = np.concatenate([np.full(p.n, p.name, dtype=object) for p in circuit.lif]).astype(str)
    data: dict[str, Any] = {"spikes": (("time", "neuron"), np.asarray(spikes, dtype=np.uint8))}
    coords: dict[str, Any] = {
        "time": np.arange(n_steps) * float(dt),
        "neuron": np.arange(circuit.n_neurons),
        "population": ("neuron", population),
    }
    if voltage is not None:
        data["voltage"] = (("time", "neuron"), voltage)
    if external is not None and circuit.poisson:
        data["external_spikes"] = (
            ("time", "external_neuron"),
            np.concatenate([external[p.name] for p in circuit.poisson], axis=1),
        )
        coords["external_neuron"] = np.arange(sum(p.n for p in circuit.poisson))
        coords["external_population"] = (
            "external_neuron",
            np.concatenate([np.full(p.n, p.name, dtype=object) for p in circuit.poisson]).astype(str),
        )
    attrs = {
        "dt": float(dt),
        "seed": circuit.seed,
        "method": method,
        "duration": n_steps * float(dt),
        "engine": engine,
        "populations": json.dumps([p.name for p in circuit.lif]),
        "circuit": json.dumps(circuit.describe()),
        "ordering": ORDERING,
    }
    ds = xr.Dataset(data, coords=coords, attrs=attrs)
    ds["time"].attrs["units"] = "s"
    return ds


def _check_run(circuit: Any, duration: Any, dt: Any, method: str) -> int:
    if not isinstance(circuit, Circuit):
        raise ConfigError(f"expected a Circuit, got {type(circuit).__name__}")
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ConfigError(f"dt must be a positive number of seconds, got {dt!r}")
    if not (isinstance(duration, (int, float)) and math.isfinite(duration) and duration >= dt):
        raise ConfigError(f"duration must be a number of seconds >= dt, got {duration!r}")
    for pop in circuit.poisson:
        if pop.rate * dt > 1:
            raise ConfigError(f"population '{pop.name}' rate {pop.rate:g} Hz exceeds 1/dt = {1 / dt:g} Hz")
    for proj in circuit.projections:
        delay_steps_exact(proj.delay, dt, f"projection {proj.label} delay")
    return int(round(duration / dt))


def simulate_circuit(
    circuit: Circuit,
    duration: float,
    dt: float = 1e-4,
    *,
    record_voltages: bool = False,
    method: str = "exact",
    external_spikes: Mapping[str, Any] | None = None,
    record_external: bool = False,
    engine: str = "auto",
) -> Any:
    """Simulate ``circuit`` for ``duration`` seconds in steps of ``dt`` (float64) and return an ``xr.Dataset``.

    ``external_spikes``: ``{poisson population name: (time, n) 0/1 raster}`` replacing the seeded draws (e.g. the
    spikes fed to Brian2); ``record_external`` adds them to the result as ``external_spikes``.  ``method``:
    ``"exact"`` or ``"euler"`` (:func:`~neuromodels.spiking.neurons.propagator`).  ``engine``: ``"compiled"`` (the
    C loop of ``_lif_kernel.c``), ``"numpy"`` (the same arithmetic in NumPy, ~10x slower) or ``"auto"`` (compiled
    when a C compiler is available); both give bit-identical results.  The result is described in the module
    docstring.
    """
    n_steps = _check_run(circuit, duration, dt, method)
    external = _check_external(circuit, external_spikes, n_steps, duration, dt)
    if engine not in ("auto", "numpy", "compiled"):
        raise ConfigError(f"engine must be 'auto', 'numpy' or 'compiled', got {engine!r}")
    spikes, voltage = _run(circuit, n_steps, float(dt), method, external, record_voltages, engine)
    return circuit_dataset(
        circuit, spikes, dt, method=method, voltage=voltage, external=external if record_external else None
    )

"""The identical model in Brian2 (:func:`to_brian2`) and a spike-for-spike comparison (:func:`cross_check`).

Brian2 (Stimberg, Brette & Goodman 2019, eLife 8:e47314) is the reference: each layer becomes a ``NeuronGroup``
with the equations below (as strings), the input raster a ``SpikeGeneratorGroup``, every weight matrix a
``Synapses`` object with ``on_pre='I_post += w'`` (and ``delay`` = the network's axonal delay, 0 by default), and
Brian2's default schedule
``start -> groups -> thresholds -> synapses -> resets -> end`` gives the ordering that
:mod:`neuromodels.spiking.neurons` reproduces.  Spikes are compared in time steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuromodels.errors import ConfigError
from neuromodels.spiking.network import _input_array, simulate

__all__ = [
    "to_brian2",
    "circuit_to_brian2",
    "simulate_brian2",
    "cross_check",
    "CrossCheck",
    "LIF_EQUATIONS",
    "match_spikes",
]


def require_brian2(purpose: str) -> Any:
    """The ``brian2`` module, or a ConfigError that says how to install it (Brian2 is an optional dependency)."""
    try:
        import brian2
    except ImportError:
        raise ConfigError(f"Brian2 is needed for {purpose}: pip install 'neuromodels[spiking]'") from None
    return brian2


#: The model equations given to Brian2 (dimensionless v and I; tau_mem, tau_syn, v_rest come from the namespace).
LIF_EQUATIONS = """
dv/dt = (v_rest - v + I) / tau_mem : 1 (unless refractory)
dI/dt = -I / tau_syn : 1
"""
#: Without a refractory period the flag is dropped (Brian2 warns about an unused flag otherwise).
LIF_EQUATIONS_NO_REFRACTORY = LIF_EQUATIONS.replace(" (unless refractory)", "")


@dataclass
class Brian2Model:
    """A built Brian2 network: ``network`` (``brian2.Network``), ``groups`` (one ``NeuronGroup`` per layer),
    ``spike_monitors`` and ``state_monitors`` (per layer, ``None`` if voltages are not recorded), ``inputs``."""

    network: Any
    groups: list[Any]
    spike_monitors: list[Any]
    state_monitors: list[Any]
    inputs: Any
    dt: float
    n_steps: int
    dtype: str = "float64"
    target: str = "numpy"
    source: Any = None  #: the SpikingNetwork or Circuit it was built from
    method: str = "exact"
    external: dict[str, np.ndarray] | None = None  #: a circuit's external rasters, as fed to Brian2

    def run(self) -> None:
        """Run for the input's duration with the float type and code-generation target it was built with."""
        import brian2 as b2

        previous_dtype, previous_target = b2.prefs.core.default_float_dtype, b2.prefs.codegen.target
        b2.prefs.core.default_float_dtype = np.float32 if self.dtype == "float32" else np.float64
        b2.prefs.codegen.target = self.target
        try:
            self.network.run(self.n_steps * self.dt * b2.second)
        finally:
            b2.prefs.core.default_float_dtype = previous_dtype
            b2.prefs.codegen.target = previous_target

    def rasters(self) -> np.ndarray:
        """``(time, neuron)`` uint8 raster over all layers, from the spike monitors (time steps by rounding)."""
        sizes = [len(g) for g in self.groups]
        raster = np.zeros((self.n_steps, sum(sizes)), dtype=np.uint8)
        offset = 0
        for monitor, size in zip(self.spike_monitors, sizes):
            steps = np.round(np.asarray(monitor.t_) / self.dt).astype(np.int64)
            raster[steps, offset + np.asarray(monitor.i, dtype=np.int64)] = 1
            offset += size
        return raster

    def voltages(self) -> np.ndarray | None:
        """``(time, neuron)`` ``v`` at the start of each step over all groups (``None`` if not recorded)."""
        if any(m is None for m in self.state_monitors):
            return None
        return np.concatenate([np.asarray(m.v).T for m in self.state_monitors], axis=1).astype(self.dtype)

    def result(self) -> Any:
        """The labelled ``xr.Dataset`` that :func:`~neuromodels.spiking.simulate` (a network, one trial) or
        :func:`~neuromodels.spiking.simulate_circuit` (a circuit) returns, from Brian2's run (``engine='brian2'``
        in the attrs)."""
        from neuromodels.spiking.circuit import Circuit, circuit_dataset
        from neuromodels.spiking.network import network_dataset

        if isinstance(self.source, Circuit):
            return circuit_dataset(
                self.source,
                self.rasters(),
                self.dt,
                method=self.method,
                voltage=self.voltages(),
                external=self.external,
                engine=f"brian2 ({self.target})",
            )
        voltage = self.voltages()
        return network_dataset(
            self.source,
            self.rasters()[None],
            self.dt,
            method=self.method,
            dtype=self.dtype,
            voltage=None if voltage is None else voltage[None],
            single=True,
            engine=f"brian2 ({self.target})",
        )


def to_brian2(
    network: Any,
    input_spikes: Any,
    dt: float = 1e-3,
    *,
    method: str | None = None,
    dtype: str = "float64",
    record_voltages: bool = False,
    target: str = "numpy",
    external_spikes: Any = None,
) -> Brian2Model:
    """Build the Brian2 model identical to ``network`` driven by one trial of ``input_spikes`` ``(time, input)``.

    ``target``: Brian2's ``codegen.target`` (``"numpy"``: no compiler; ``"cython"``).  The floating-point type is set
    with ``brian2.prefs.core.default_float_dtype`` while the objects are created (restored afterwards).
    Call ``.run()`` on the result, then ``.rasters()`` or ``.result()`` (the labelled dataset).

    A :class:`~neuromodels.spiking.Circuit` is exported by :func:`circuit_to_brian2`:
    ``to_brian2(circuit, duration, dt, external_spikes=..., ...)``.
    """
    from neuromodels.spiking.circuit import Circuit

    if isinstance(network, Circuit):
        return circuit_to_brian2(
            network,
            input_spikes,
            dt,
            method=method or "exact",
            target=target,
            record_voltages=record_voltages,
            external_spikes=external_spikes,
        )
    b2 = require_brian2("to_brian2 (the Brian2 model of a network)")

    method = method or network.method
    arr, single = _input_array(input_spikes, network.n_inputs)
    if arr.shape[0] != 1:
        raise ConfigError("to_brian2 takes one trial (time, input); loop over trials for more")
    raster = arr[0]
    n_steps = raster.shape[0]
    with _brian2_prefs(b2, np.float32 if dtype == "float32" else np.float64, target):
        clock_dt = dt * b2.second
        steps, channels = np.nonzero(raster)
        # the 1e-3 dt shift mirrors Brian2's own rounding of spike times to steps
        inputs = b2.SpikeGeneratorGroup(network.n_inputs, channels, steps * dt * b2.second, dt=clock_dt, name="inputs")
        objects: list[Any] = [inputs]
        groups, spike_monitors, state_monitors = [], [], []
        previous = inputs
        for layer, (params, size) in enumerate(zip(network.neurons, network.layer_sizes)):
            group = _lif_group(b2, params, size, method, clock_dt, f"layer{layer}")
            group.v = params.v_rest
            objects.append(group)
            objects += _layer_synapses(b2, network, layer, previous, group, clock_dt)
            spike_monitor = b2.SpikeMonitor(group, name=f"spikes{layer}")
            objects.append(spike_monitor)
            spike_monitors.append(spike_monitor)
            if record_voltages:
                state_monitor = b2.StateMonitor(group, "v", record=True, dt=clock_dt, name=f"voltage{layer}")
                objects.append(state_monitor)
                state_monitors.append(state_monitor)
            else:
                state_monitors.append(None)
            groups.append(group)
            previous = group
        net = b2.Network(*objects)
    return Brian2Model(
        net,
        groups,
        spike_monitors,
        state_monitors,
        inputs,
        float(dt),
        n_steps,
        dtype,
        target,
        source=network,
        method=method,
    )


@contextmanager
def _brian2_prefs(b2: Any, float_dtype: Any, target: str) -> Iterator[None]:
    """Set Brian2's ``core.default_float_dtype`` and ``codegen.target`` while the objects are created; restore
    the previous values afterwards."""
    previous_dtype, previous_target = b2.prefs.core.default_float_dtype, b2.prefs.codegen.target
    b2.prefs.core.default_float_dtype = float_dtype
    b2.prefs.codegen.target = target
    try:
        yield
    finally:
        b2.prefs.core.default_float_dtype = previous_dtype
        b2.prefs.codegen.target = previous_target


def _lif_group(b2: Any, params: Any, n: int, method: str, clock_dt: Any, name: str) -> Any:
    """The ``NeuronGroup`` of ``n`` LIF neurons with parameters ``params`` (:data:`LIF_EQUATIONS`, or
    :data:`LIF_EQUATIONS_NO_REFRACTORY` without a refractory period)."""
    namespace = {
        "tau_mem": params.tau_mem * b2.second,
        "tau_syn": params.tau_syn * b2.second,
        "v_rest": params.v_rest,
        "v_th": params.threshold,
        "v_reset": params.reset,
    }
    refractory = params.refractory * b2.second if params.refractory > 0 else False
    equations = LIF_EQUATIONS if refractory is not False else LIF_EQUATIONS_NO_REFRACTORY
    return b2.NeuronGroup(
        n,
        equations,
        threshold="v > v_th",
        reset="v = v_reset",
        refractory=refractory,
        method=method,
        namespace=namespace,
        dt=clock_dt,
        name=name,
    )


def _layer_synapses(b2: Any, network: Any, layer: int, previous: Any, group: Any, clock_dt: Any) -> list[Any]:
    """The feed-forward ``Synapses`` into ``layer`` (from ``previous``) and its recurrent ones if it has any."""
    weight_sets = [(previous, network.feedforward[layer], "ff")]
    w_rec = network.recurrent_weights(layer)
    if w_rec is not None:
        weight_sets.append((group, w_rec, "rec"))
    synapses = []
    for source, weights, kind in weight_sets:
        w = weights.detach().cpu().double().numpy()
        pre, post = np.nonzero(w)
        syn = b2.Synapses(
            source,
            group,
            "w : 1",
            on_pre="I_post += w",
            dt=clock_dt,
            delay=getattr(network, "delay", 0.0) * b2.second,
            name=f"syn_{kind}{layer}",
        )
        syn.connect(i=pre, j=post)
        syn.w = w[pre, post]
        synapses.append(syn)
    return synapses


def simulate_brian2(
    network: Any,
    input_spikes: Any,
    dt: float = 1e-3,
    *,
    method: str | None = None,
    dtype: str = "float64",
    record_voltages: bool = False,
    target: str = "numpy",
) -> Any:
    """:func:`~neuromodels.spiking.simulate` run by Brian2: the same labelled ``xr.Dataset`` (one Brian2 run per
    trial), so the command line and Python users share one result format."""
    import xarray as xr

    require_brian2("simulate_brian2")
    arr, single = _input_array(input_spikes, network.n_inputs)
    runs = []
    for trial in arr:
        model = to_brian2(
            network, trial, dt, method=method, dtype=dtype, record_voltages=record_voltages, target=target
        )
        model.run()
        runs.append(model.result())
    result = xr.concat(runs, dim="trial") if not single else runs[0]
    return result


#: ``on_pre`` of a delta synapse.  ``v`` is declared ``(unless refractory)``, so Brian2 itself applies the jump only
#: to targets that are not refractory (its generated code indexes ``v`` with ``not_refractory``): jumps into a
#: refractory neuron are discarded, the convention of :mod:`neuromodels.spiking.circuit` (checked by experiment).
DELTA_ON_PRE = "v_post += w"


def circuit_to_brian2(
    circuit: Any,
    duration: float,
    dt: float = 1e-4,
    *,
    method: str = "exact",
    external_spikes: Any = None,
    record_voltages: bool = False,
    target: str = "numpy",
) -> Brian2Model:
    """The Brian2 model of a :class:`~neuromodels.spiking.Circuit` (float64).

    LIF populations become ``NeuronGroup`` s (:data:`LIF_EQUATIONS`, ``threshold='v > v_th'``, ``reset='v = v_reset'``,
    ``refractory``, the circuit's initial voltages), Poisson populations ``SpikeGeneratorGroup`` s replaying the
    same spikes as ours (``external_spikes`` or the circuit's seeded draws), each projection a ``Synapses``
    (``order=k``) connected with the same ``(pre, post)`` arrays, ``delay`` = whole steps of ``dt`` and
    ``on_pre`` ``'v_post += w'`` (delta: Brian2 skips refractory targets, see :data:`DELTA_ON_PRE`) or
    ``'I_post += w'`` (exponential).
    """
    from neuromodels.spiking.circuit import _check_external, _check_run

    b2 = require_brian2("to_brian2 (the Brian2 model of a circuit)")
    n_steps = _check_run(circuit, duration, dt, method)
    external = _check_external(circuit, external_spikes, n_steps, duration, dt)
    with _brian2_prefs(b2, np.float64, target):
        clock_dt = dt * b2.second
        by_name: dict[str, Any] = {}
        objects: list[Any] = []
        groups, spike_monitors, state_monitors = [], [], []
        v_init = circuit.initial_voltages()
        start = 0
        for k, pop in enumerate(circuit.lif):
            group = _lif_group(b2, pop.neuron, pop.n, method, clock_dt, f"pop{k}")
            group.v = v_init[start : start + pop.n]
            start += pop.n
            monitor = b2.SpikeMonitor(group, name=f"spikes{k}")
            state = (
                b2.StateMonitor(group, "v", record=True, dt=clock_dt, name=f"voltage{k}") if record_voltages else None
            )
            objects += [group, monitor] + ([state] if state is not None else [])
            groups.append(group)
            spike_monitors.append(monitor)
            state_monitors.append(state)
            by_name[pop.name] = group
        for k, pop in enumerate(circuit.poisson):
            steps, idx = np.nonzero(external[pop.name])
            generator = b2.SpikeGeneratorGroup(pop.n, idx, steps * dt * b2.second, dt=clock_dt, name=f"ext{k}")
            objects.append(generator)
            by_name[pop.name] = generator
        objects += _projection_synapses(b2, circuit, by_name, dt, clock_dt)
        net = b2.Network(*objects)
    return Brian2Model(
        net,
        groups,
        spike_monitors,
        state_monitors,
        None,
        float(dt),
        n_steps,
        "float64",
        target,
        source=circuit,
        method=method,
        external=external,
    )


def _projection_synapses(b2: Any, circuit: Any, by_name: dict[str, Any], dt: float, clock_dt: Any) -> list[Any]:
    """One ``Synapses`` per projection of ``circuit`` (``order=k``, the circuit's ``(pre, post)`` arrays, delays in
    whole steps of ``dt``)."""
    from neuromodels.spiking.circuit import delay_steps_exact

    synapses = []
    for k, (proj, conn) in enumerate(zip(circuit.projections, circuit.connectivity)):
        on_pre = "I_post += w" if proj.synapse == "exponential" else DELTA_ON_PRE
        d = delay_steps_exact(proj.delay, dt, f"projection {proj.label} delay")
        syn = b2.Synapses(
            by_name[proj.source],
            by_name[proj.target],
            "w : 1",
            on_pre=on_pre,
            dt=clock_dt,
            delay=d * dt * b2.second,
            order=k,
            name=f"proj{k}",
        )
        syn.connect(i=conn.pre, j=conn.post)
        syn.w = proj.weight
        synapses.append(syn)
    return synapses


def match_spikes(a: np.ndarray, b: np.ndarray, tolerance: int = 1) -> int:
    """Number of spikes of raster ``a`` paired one-to-one with spikes of ``b`` (same neuron, ``|dstep| <= tolerance``).

    Rasters ``(time, neuron)``; spikes are paired greedily in time order per neuron, which is optimal for
    one-dimensional matching with a symmetric window.
    """
    matched = 0
    for neuron in range(a.shape[1]):
        ta, tb = np.flatnonzero(a[:, neuron]), np.flatnonzero(b[:, neuron])
        i = j = 0
        while i < len(ta) and j < len(tb):
            if abs(ta[i] - tb[j]) <= tolerance:
                matched += 1
                i += 1
                j += 1
            elif ta[i] < tb[j]:
                i += 1
            else:
                j += 1
    return matched


@dataclass
class CrossCheck:
    """Result of :func:`cross_check` (all spike counts over all layers' neurons)."""

    counts_ours: np.ndarray
    counts_brian2: np.ndarray
    n_spikes_ours: int
    n_spikes_brian2: int
    identical: bool
    max_count_difference: int
    fraction_matched: float
    raster_ours: np.ndarray = field(repr=False)
    raster_brian2: np.ndarray = field(repr=False)
    settings: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "n_spikes_ours": self.n_spikes_ours,
            "n_spikes_brian2": self.n_spikes_brian2,
            "max_count_difference": self.max_count_difference,
            "fraction_matched": self.fraction_matched,
            **self.settings,
        }


def cross_check(
    network: Any,
    inputs: Any,
    dt: float = 1e-3,
    *,
    method: str | None = None,
    dtype: str = "float64",
    target: str = "numpy",
    tolerance_steps: int = 1,
) -> CrossCheck:
    """Simulate one trial of ``inputs`` ``(time, input)`` with ours and with Brian2 and compare the rasters.

    For a :class:`~neuromodels.spiking.Circuit`, ``cross_check(circuit, duration, dt)``: both simulators run the
    same connectivity and the same (seeded) external spikes; the rasters cover the LIF populations.

    ``fraction_matched``: spikes paired within ``+-tolerance_steps`` steps (:func:`match_spikes`) divided by the
    larger of the two spike totals (1.0 when neither spikes); ``identical``: the rasters are equal.
    """
    require_brian2("cross_check (the same network run in Brian2)")
    from neuromodels.spiking.circuit import Circuit, simulate_circuit

    if isinstance(network, Circuit):
        # a circuit: ``inputs`` is the duration (s); both simulators get the circuit's seeded external spikes
        method = method or "exact"
        if dtype != "float64":
            raise ConfigError("circuits are simulated in float64 only")
        external = network.external_spikes(inputs, dt)
        ours = simulate_circuit(network, inputs, dt, method=method, external_spikes=external)["spikes"].values
        model = circuit_to_brian2(network, inputs, dt, method=method, external_spikes=external, target=target)
    else:
        method = method or network.method
        arr, _ = _input_array(inputs, network.n_inputs)
        if arr.shape[0] != 1:
            raise ConfigError("cross_check takes one trial (time, input)")
        ours = simulate(network, arr[0], dt, method=method, dtype=dtype)["spikes"].values
        model = to_brian2(network, arr[0], dt, method=method, dtype=dtype, target=target)
    model.run()
    theirs = model.rasters()
    counts_ours, counts_brian2 = ours.sum(0).astype(np.int64), theirs.sum(0).astype(np.int64)
    total = max(int(counts_ours.sum()), int(counts_brian2.sum()))
    matched = match_spikes(ours, theirs, tolerance_steps)
    return CrossCheck(
        counts_ours=counts_ours,
        counts_brian2=counts_brian2,
        n_spikes_ours=int(counts_ours.sum()),
        n_spikes_brian2=int(counts_brian2.sum()),
        identical=bool(np.array_equal(ours, theirs)),
        max_count_difference=int(np.abs(counts_ours - counts_brian2).max(initial=0)),
        fraction_matched=1.0 if total == 0 else matched / total,
        raster_ours=ours,
        raster_brian2=theirs,
        settings={
            "dt": float(dt),
            "method": method,
            "dtype": dtype,
            "target": target,
            "tolerance_steps": int(tolerance_steps),
        },
    )

"""Layered and recurrent networks of current-based LIF neurons, and their simulation on given input rasters.

A :class:`SpikingNetwork` has ``n_inputs`` input channels (spike rasters given by the caller) and a stack of LIF
layers; layer ``l`` receives feed-forward weights ``feedforward[l]`` of shape ``(n_pre, n_post)`` from layer
``l-1`` (the inputs for ``l = 0``) and, if it is recurrent, weights ``recurrent[l]`` of shape ``(n_post, n_post)``
from itself.  All layers share the ordering of :mod:`neuromodels.spiking.neurons` (Brian2's schedule), so a spike of
layer ``l-1`` at step ``n`` increments ``I`` of layer ``l`` in the same step and reaches ``v`` at step ``n+1``.  With an
axonal ``delay`` (every connection, input and recurrent ones included; Zenke & Ganguli 2018, section 3.1: 0.8 ms) the
increment happens ``d = round(delay/dt)`` steps later, at step ``n+d``, as a Brian2 ``Synapses(delay=...)`` delivers it.

:func:`simulate` runs a network on an input raster and returns an ``xarray.Dataset`` of spikes (and voltages);
:func:`run_network` is the tensor-level core shared with training (surrogate gradients for BPTT and SuperSpike).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch  # this module's engine (a module-level class pickles); the CLI imports this module lazily

from neuromodels.errors import ConfigError
from neuromodels.spiking import _compiled
from neuromodels.spiking.neurons import METHODS, LIFParameters, delay_steps, propagator, refractory_steps

__all__ = [
    "SpikingNetwork",
    "simulate",
    "run_network",
    "run_network_numpy",
    "choose_engine",
    "ENGINE_TABLE",
    "NetworkRun",
    "superspike_surrogate",
    "spike_rates",
    "delay_in_time",
    "network_dataset",
]


def _torch():
    import torch

    return torch


_SURROGATE = None


def superspike_surrogate():
    """The autograd function ``S = Heaviside(x)`` (``x = v - threshold``, ``S = 1`` for ``x > 0``) whose backward
    pass is SuperSpike's fast-sigmoid derivative ``dS/dx = (1 + |beta x|)^-2`` (Zenke & Ganguli 2018, section 3.3.2).

    Called as ``superspike_surrogate().apply(x, beta)``.
    """
    global _SURROGATE
    if _SURROGATE is None:
        torch = _torch()

        class SuperSpike(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x, beta):  # type: ignore[override]
                ctx.save_for_backward(x)
                ctx.beta = float(beta)
                return (x > 0).to(x.dtype)

            @staticmethod
            def backward(ctx, grad):  # type: ignore[override]
                (x,) = ctx.saved_tensors
                return grad / (1.0 + (ctx.beta * x).abs()) ** 2, None

        _SURROGATE = SuperSpike
    return _SURROGATE


def delay_in_time(array: Any, steps: int, axis: int = 1) -> Any:
    """``array`` (numpy or torch) moved ``steps`` later along ``axis`` (time): ``out[n] = array[n - steps]``, zeros
    for ``n < steps``, the last ``steps`` entries dropped (the length stays)."""
    if steps <= 0:
        return array
    if isinstance(array, np.ndarray):
        out = np.zeros_like(array)
        index_out = [slice(None)] * array.ndim
        index_in = [slice(None)] * array.ndim
        index_out[axis], index_in[axis] = slice(steps, None), slice(None, array.shape[axis] - steps)
        out[tuple(index_out)] = array[tuple(index_in)]
        return out
    torch = _torch()
    head = array.narrow(axis, 0, max(array.shape[axis] - steps, 0))
    pad_shape = list(array.shape)
    pad_shape[axis] = min(steps, array.shape[axis])
    return torch.cat([torch.zeros(pad_shape, dtype=array.dtype), head], dim=axis)


def _as_list(value: Any, n: int, name: str) -> list[Any]:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ConfigError(f"'{name}' has {len(value)} entries for {n} layers")
        return list(value)
    return [value] * n


class SpikingNetwork(torch.nn.Module):
    """Layers of current-based LIF neurons driven by input spike rasters.

    Parameters
    ----------
    n_inputs: number of input channels.
    layer_sizes: neurons per layer, e.g. ``[200]`` or ``[200, 50, 200]``; the last layer is the output.
    neuron: :class:`LIFParameters` for all layers, or one per layer.
    recurrent: whether each layer (or all) has all-to-all recurrent weights (self-connections zeroed).
    weight_mean, weight_std: initial feed-forward weights are ``N(weight_mean, weight_std^2) / sqrt(n_pre)``
        (recurrent ones ``N(0, recurrent_std^2) / sqrt(n_post)``).
    dt, method: defaults for :meth:`forward` (seconds; ``"exact"`` or ``"euler"``).
    delay: axonal delay of every connection (s; default 0): a presynaptic spike at step ``n`` increments the
        postsynaptic current at step ``n + round(delay/dt)`` (Brian2's rounding).  The paper's is 0.8 ms.
    surrogate_beta: steepness of the SuperSpike surrogate used by :meth:`forward` (per unit of voltage; the
        paper's 1/mV is 10 with rest-to-threshold = 1).
    seed: seeds the initial weights.

    Weights: ``feedforward[l]`` ``(n_pre, n_post)``, ``recurrent[str(l)]`` ``(n_post, n_post)``, ``W[i, j]`` from
    presynaptic ``i`` to postsynaptic ``j``.
    """

    def __init__(
        self,
        n_inputs: int,
        layer_sizes: Sequence[int],
        neuron: Any = None,
        recurrent: bool | Sequence[bool] = False,
        *,
        weight_mean: float = 0.0,
        weight_std: float = 1.0,
        recurrent_std: float = 0.5,
        dt: float = 1e-3,
        method: str = "exact",
        surrogate_beta: float = 10.0,
        delay: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(layer_sizes, int):
            layer_sizes = [layer_sizes]
        sizes = [int(n_inputs)] + [int(n) for n in layer_sizes]
        if len(sizes) < 2 or any(n < 1 for n in sizes):
            raise ConfigError(f"n_inputs and layer_sizes must be positive integers, got {n_inputs}, {layer_sizes}")
        if method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        delay_steps(delay, dt)  # validates
        n_layers = len(sizes) - 1
        neurons = _as_list(LIFParameters() if neuron is None else neuron, n_layers, "neuron")
        self.neurons = [n if isinstance(n, LIFParameters) else LIFParameters.from_dict(dict(n)) for n in neurons]
        self.recurrent_layers = [bool(r) for r in _as_list(recurrent, n_layers, "recurrent")]
        self.n_inputs = sizes[0]
        self.layer_sizes = sizes[1:]
        self.dt = float(dt)
        self.method = method
        self.surrogate_beta = float(surrogate_beta)
        self.delay = float(delay)
        generator = torch.Generator().manual_seed(int(seed))
        self.feedforward = torch.nn.ParameterList(
            [
                torch.nn.Parameter(
                    (weight_mean + weight_std * torch.randn(n_pre, n_post, generator=generator)) / math.sqrt(n_pre)
                )
                for n_pre, n_post in zip(sizes[:-1], sizes[1:])
            ]
        )
        self.recurrent = torch.nn.ParameterDict()
        for layer, (is_rec, n) in enumerate(zip(self.recurrent_layers, sizes[1:])):
            if is_rec:
                w = recurrent_std * torch.randn(n, n, generator=generator) / math.sqrt(n)
                w.fill_diagonal_(0.0)
                self.recurrent[str(layer)] = torch.nn.Parameter(w)

    @property
    def n_neurons(self) -> int:
        return sum(self.layer_sizes)

    def recurrent_weights(self, layer: int):
        return self.recurrent[str(layer)] if self.recurrent_layers[layer] else None

    def set_weights(self, layer: int, weights: Any, recurrent: bool = False) -> None:
        """Replace layer ``layer``'s feed-forward (or recurrent) weights by ``weights`` (array, same shape).

        The network keeps its dtype (float32 unless converted with ``.double()``). Weights that the network's
        dtype cannot hold exactly (float64 values such as 0.3 in a float32 network) are refused rather than
        rounded, so a float64 simulation never runs on silently rounded weights.
        """
        target = self.recurrent_weights(layer) if recurrent else self.feedforward[layer]
        if target is None:
            raise ConfigError(f"layer {layer} is not recurrent")
        if isinstance(weights, torch.Tensor):
            weights = weights.detach().cpu()
        try:
            values = np.asarray(weights, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"weights for layer {layer} must be real numbers ({exc})") from None
        if values.shape != tuple(target.shape):
            raise ConfigError(f"weights for layer {layer} must have shape {tuple(target.shape)}, got {values.shape}")
        if not np.isfinite(values).all():
            raise ConfigError(f"weights for layer {layer} contain NaN or inf")
        w = torch.from_numpy(values).to(target.dtype)
        change = np.abs(w.to(torch.float64).numpy() - values).max(initial=0.0)
        if change > 0:
            raise ConfigError(
                f"weights for layer {layer} hold values that this {target.dtype} network would round (by up to "
                f"{change:.3g}); convert the network first (network.double()) or pass {target.dtype} weights"
            )
        with torch.no_grad():
            target.copy_(w)

    def describe(self) -> dict[str, Any]:
        """The architecture and parameters as JSON/netCDF-ready values."""
        out: dict[str, Any] = {
            "n_inputs": self.n_inputs,
            "layer_sizes": list(self.layer_sizes),
            "recurrent": [int(r) for r in self.recurrent_layers],
            "method": self.method,
            "surrogate_beta": self.surrogate_beta,
            "delay": self.delay,
        }
        for key in LIFParameters().as_dict():
            out[key] = [n.as_dict()[key] for n in self.neurons]
        return out

    def forward(self, input_spikes):
        """Differentiable output-layer spikes ``(batch, time, n_out)`` (surrogate gradient, detached reset)."""
        run = run_network(self, input_spikes, self.dt, self.method, surrogate_beta=self.surrogate_beta)
        return run.spikes[-1]


@dataclass
class NetworkRun:
    """Tensors of one run, per layer, each ``(batch, time, n_layer)``.

    ``spikes``: 0/1 spikes reported at step ``n`` (time ``n dt``).  ``voltage``: ``v`` at the start of step ``n``
    (what Brian2's StateMonitor records).  ``membrane``: ``v`` after the state update of step ``n`` and before the
    reset, i.e. the value compared with the threshold (SuperSpike's ``U_i``).
    """

    spikes: list[Any]
    voltage: list[Any] | None = None
    membrane: list[Any] | None = None


def run_network(
    network: Any,
    input_spikes: Any,
    dt: float,
    method: str = "exact",
    *,
    dtype: Any = None,
    surrogate_beta: float | None = None,
    record_voltage: bool = False,
    record_membrane: bool = False,
) -> NetworkRun:
    """Simulate ``network`` on ``input_spikes`` ``(batch, time, n_inputs)`` (0/1 torch tensor); see :class:`NetworkRun`.

    Without ``surrogate_beta`` the run is a plain simulation (no autograd graph; Brian2-identical ordering).  With it,
    spikes carry SuperSpike's surrogate derivative and the reset is detached from the graph
    (``v <- v - stopgrad(S (v - reset))``), so ``dv/dw`` is the PSP-filtered presynaptic trace as in SuperSpike's
    eligibility; refractory clamping passes gradients only through the non-refractory branch.
    """
    torch = _torch()
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    x = torch.as_tensor(input_spikes)
    if dtype is None:
        dtype = x.dtype if x.is_floating_point() else network.feedforward[0].dtype
    x = x.to(dtype)
    if x.dim() != 3 or x.shape[-1] != network.n_inputs:
        raise ConfigError(f"input_spikes must be (batch, time, {network.n_inputs}), got {tuple(x.shape)}")
    delay = delay_steps(getattr(network, "delay", 0.0), dt)
    differentiable = surrogate_beta is not None
    spike_fn = superspike_surrogate() if differentiable else None
    previous = x
    out_spikes, out_voltage, out_membrane = [], [], []
    grad_context = torch.enable_grad() if differentiable else torch.no_grad()
    with grad_context:
        for layer, (params, n_post) in enumerate(zip(network.neurons, network.layer_sizes)):
            w_ff = network.feedforward[layer].to(dtype)
            w_rec = network.recurrent_weights(layer)
            w_rec = None if w_rec is None else w_rec.to(dtype)
            prop = propagator(params, dt, method)
            # synaptic increments of every step at once (feed-forward part, arriving `delay` steps after the spike):
            # (time, batch, n_post)
            jumps = delay_in_time(torch.matmul(previous.transpose(0, 1), w_ff), delay, axis=0)
            ref_steps = refractory_steps(params.refractory, dt) if params.refractory > 0 else 0
            spikes, voltage, membrane = _integrate_layer(
                params,
                prop,
                jumps,
                w_rec,
                n_post,
                ref_steps,
                delay,
                dtype,
                spike_fn,
                surrogate_beta,
                record_voltage,
                record_membrane,
            )
            layer_spikes = spikes.transpose(0, 1)
            out_spikes.append(layer_spikes)
            if voltage is not None:
                out_voltage.append(voltage.transpose(0, 1))
            if membrane is not None:
                out_membrane.append(membrane.transpose(0, 1))
            previous = layer_spikes
    return NetworkRun(out_spikes, out_voltage if record_voltage else None, out_membrane if record_membrane else None)


def _integrate_layer(
    params: LIFParameters,
    prop: Any,
    jumps: Any,
    w_rec: Any,
    n_post: int,
    ref_steps: int,
    delay: int,
    dtype: Any,
    spike_fn: Any,
    surrogate_beta: float | None,
    record_voltage: bool,
    record_membrane: bool,
) -> tuple[Any, Any, Any]:
    """Step one layer through time from rest: ``(spikes, voltage, membrane)`` as ``(time, batch, n_post)`` tensors
    (``voltage``/``membrane`` ``None`` unless recorded). ``jumps``: the feed-forward synaptic increments
    ``(time, batch, n_post)``; ``w_rec``: recurrent weights (or ``None``), their spikes arriving ``delay`` steps
    later. With ``surrogate_beta`` (``spike_fn`` SuperSpike's surrogate) the spikes keep their graph."""
    torch = _torch()
    n_steps, batch = jumps.shape[0], jumps.shape[1]
    differentiable = surrogate_beta is not None
    v = torch.full((batch, n_post), params.v_rest, dtype=dtype)
    current = torch.zeros((batch, n_post), dtype=dtype)
    since_spike = torch.full((batch, n_post), 10**9, dtype=torch.int64) if ref_steps else None
    spikes = torch.empty((n_steps, batch, n_post), dtype=dtype)
    voltage = torch.empty((n_steps, batch, n_post), dtype=dtype) if record_voltage else None
    membrane = [] if (record_membrane and differentiable) else None
    keep_membrane = record_membrane and not differentiable
    membrane_buf = torch.empty((n_steps, batch, n_post), dtype=dtype) if keep_membrane else None
    spike_list = [] if differentiable else None
    # With a graph, each step takes its slice by unbind: indexing `jumps[n]` would give every step's backward a
    # zero gradient of the whole (time, batch, n_post) tensor, O(T^2) work in the backward pass.
    jump_steps = jumps.unbind(0) if differentiable else jumps
    a_vv, a_vi, a_ii, b_v = prop.a_vv, prop.a_vi, prop.a_ii, prop.b_v
    threshold, reset = params.threshold, params.reset
    for n in range(n_steps):
        if voltage is not None:
            voltage[n] = v.detach() if differentiable else v
        v_new = v * a_vv + current * a_vi + b_v
        current = current * a_ii
        if ref_steps:
            # steps since the last spike, as Brian2's timestep(t - lastspike, dt)
            since_spike = since_spike + 1
            not_refractory = since_spike >= ref_steps
            v = torch.where(not_refractory, v_new, v)
        else:
            v = v_new
        if membrane is not None:
            membrane.append(v)
        elif membrane_buf is not None:
            membrane_buf[n] = v
        if differentiable:
            s = spike_fn.apply(v - threshold, surrogate_beta)
            if ref_steps:
                s = s * not_refractory.to(dtype)
            spike_list.append(s)
            current = current + jump_steps[n]
            if w_rec is not None and n >= delay:
                current = current + spike_list[n - delay] @ w_rec
            v = v - (s * (v - reset)).detach()
            fired = s.detach() > 0
        else:
            fired = v > threshold
            if ref_steps:
                fired &= not_refractory
            spikes[n] = fired
            current = current + jumps[n]
            if w_rec is not None and n >= delay:
                current = current + spikes[n - delay] @ w_rec
            v = torch.where(fired, reset, v)
        if ref_steps:
            since_spike = torch.where(fired, 0, since_spike)
    if differentiable:
        spikes = torch.stack(spike_list, dim=0)
    if membrane is not None:
        membrane_buf = torch.stack(membrane, 0)
    return spikes, voltage, membrane_buf


def _nonzero_positions(raster: np.ndarray) -> np.ndarray:
    """Flat indices of the nonzero entries of a C-contiguous raster, ascending (as ``np.flatnonzero``).

    One-byte rasters (uint8, bool) are scanned 8 bytes at a time: with ~1% ones, ``flatnonzero`` over the
    uint64 words and then over the few words that hold a spike is ~10x faster than over the bytes.
    """
    data = np.ascontiguousarray(raster).reshape(-1)
    if data.dtype.itemsize != 1 or data.size % 8:
        return np.flatnonzero(data)
    words = np.flatnonzero(data.view(np.uint64))
    word_rows, byte = np.nonzero(data.reshape(-1, 8)[words])
    return words[word_rows] * 8 + byte


_SPARSE_FRACTION = 0.05  # rasters with fewer ones than this go through spike indices, denser ones through BLAS


@dataclass
class SpikeEvents:
    """The spikes of a 0/1 raster as indices (CSR over rows of ``(step, trial)``): the spikes of step ``n``, trial
    ``b`` are inputs ``idx[ptr[r]:ptr[r + 1]]`` (ascending), ``r = n * row_step + b * row_trial``."""

    ptr: np.ndarray
    idx: np.ndarray
    row_step: int
    row_trial: int


def _spike_events(raster: np.ndarray, trial_major: bool) -> SpikeEvents | None:
    """The events of a raster ``(trial, time, n)`` (``trial_major``) or ``(time, trial, n)``; ``None`` when at least
    ``_SPARSE_FRACTION`` of its entries are ones (the dense product is then the cheaper and today's arithmetic)."""
    data = np.ascontiguousarray(raster)
    n_rows, n_pre = data.shape[0] * data.shape[1], data.shape[2]
    lib = _compiled.lif_kernel()
    if lib is not None and data.dtype.itemsize == 1:  # one pass in C, stopping early on a dense raster
        capacity = math.ceil(_SPARSE_FRACTION * max(data.size, 1)) - 1  # the most ones that count as sparse
        found = _compiled.spike_events(lib, data.reshape(n_rows, n_pre).view(np.uint8), capacity)
        if found is None:
            return None
        ptr, cols = found
    else:
        positions = _nonzero_positions(data)
        if positions.size >= _SPARSE_FRACTION * max(data.size, 1):
            return None
        rows, cols = np.divmod(positions, n_pre)
        ptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_rows), out=ptr[1:])
    # trial-major: r = b * n_steps + n; time-major: r = n * batch + b
    row_step, row_trial = (1, data.shape[1]) if trial_major else (data.shape[1], 1)
    return SpikeEvents(ptr, np.ascontiguousarray(cols, dtype=np.int64), row_step, row_trial)


def _synaptic_jumps(pre: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``pre (time, batch, n_pre) @ weights (n_pre, n_post)`` for a 0/1 raster of any dtype.

    Sparse rasters (< 5% ones, the usual case) go through a CSR matrix built straight from the spike indices, so
    the dense raster is never converted to floats; each output row sums its spiking inputs' weights in input
    order, as the dense product would.
    """
    flat = pre.reshape(-1, pre.shape[-1])
    n_post = weights.shape[1]
    positions = _nonzero_positions(flat)
    rows, cols = np.divmod(positions, flat.shape[1])
    if flat.size and rows.size < _SPARSE_FRACTION * flat.size:
        import scipy.sparse

        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=flat.shape[0]))])
        matrix = scipy.sparse.csr_matrix((np.ones(rows.size, dtype=weights.dtype), cols, indptr), shape=flat.shape)
        out = matrix @ weights
    else:
        out = flat.astype(weights.dtype) @ weights
    return np.ascontiguousarray(out, dtype=weights.dtype).reshape(pre.shape[0], pre.shape[1], n_post)


def run_network_numpy(
    network: Any,
    input_spikes: np.ndarray,
    dt: float,
    method: str = "exact",
    *,
    dtype: str = "float64",
    record_voltage: bool = False,
    record_membrane: bool = False,
) -> NetworkRun:
    """The forward simulation of :func:`run_network` in NumPy with in-place updates (no autograd; fast at small
    batch).  ``input_spikes``: ``(batch, time, n_inputs)`` 0/1; returns :class:`NetworkRun` of numpy arrays
    ``(batch, time, n)`` (spikes as ``uint8``).  The same per-step arithmetic, in the same order, as the torch
    path; the synaptic sums come from another product (see :func:`simulate`).  With the compiled kernel, a
    feed-forward layer whose input raster has < 5% ones is driven by the input spikes' indices (the kernel sums
    their weight rows per step and trial, in ascending input order: the CSR product's values, bit for bit).
    """
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    np_dtype = np.dtype(dtype)
    source = np.ascontiguousarray(np.asarray(input_spikes))  # (batch, time, n), 0/1; later layers (time, batch, n)
    trial_major = True
    batch, n_steps = source.shape[:2]
    delay = delay_steps(getattr(network, "delay", 0.0), dt)
    compiled = _compiled.lif_kernel() if np_dtype in (np.float64, np.float32) else None
    out_spikes, out_voltage, out_membrane = [], [], []
    for layer, (params, n_post) in enumerate(zip(network.neurons, network.layer_sizes)):
        w_ff = np.ascontiguousarray(network.feedforward[layer].detach().cpu().numpy().astype(np_dtype))
        w_rec = network.recurrent_weights(layer)
        w_rec = None if w_rec is None else w_rec.detach().cpu().numpy().astype(np_dtype)
        prop = propagator(params, dt, method)
        kernel = compiled if w_rec is None else None
        # event-driven input (issue 19): the compiled kernel sums the weight rows of each step's input spikes
        events = _spike_events(source, trial_major) if kernel is not None else None
        jumps = None
        if events is None:
            previous = np.ascontiguousarray(source.transpose(1, 0, 2)) if trial_major else source
            jumps = delay_in_time(_synaptic_jumps(previous, w_ff), delay, axis=0)
        ref_steps = refractory_steps(params.refractory, dt) if params.refractory > 0 else 0
        a_vv, a_vi, a_ii, b_v = (np_dtype.type(c) for c in (prop.a_vv, prop.a_vi, prop.a_ii, prop.b_v))
        threshold, reset = np_dtype.type(params.threshold), np_dtype.type(params.reset)
        v = np.full((batch, n_post), params.v_rest, dtype=np_dtype)
        current = np.zeros((batch, n_post), dtype=np_dtype)
        v_new, scratch = np.empty_like(v), np.empty_like(v)
        since_spike = np.full((batch, n_post), 10**9, dtype=np.int64) if ref_steps else None
        not_refractory = np.ones((batch, n_post), dtype=bool)
        # the events path writes (batch, time, n) directly (no transposed copies); the others (time, batch, n)
        shape = (batch, n_steps, n_post) if events is not None else (n_steps, batch, n_post)
        spikes = np.zeros(shape, dtype=bool)
        voltage = np.empty(shape, dtype=np_dtype) if record_voltage else None
        membrane = np.empty(shape, dtype=np_dtype) if record_membrane else None
        if events is not None:  # the loop below in C, its input summed from the spike indices: bit-identical
            fired_bytes = spikes.view(np.uint8)
            since = since_spike if since_spike is not None else np.zeros((batch, n_post), dtype=np.int64)
            _compiled.run_layer_events(
                kernel,
                events,
                delay,
                w_ff,
                v,
                current,
                (a_vv, a_vi, a_ii, b_v),
                threshold,
                reset,
                ref_steps,
                since,
                fired_bytes,
                voltage,
                membrane,
                out_trial_major=True,
            )
            out_spikes.append(fired_bytes)
            out_voltage.append(voltage)
            out_membrane.append(membrane)
            source, trial_major = fired_bytes, True
            continue
        if kernel is not None:  # the same loop in C (see _compiled.py): bit-identical, ~10x faster at batch 1
            fired_bytes = np.zeros((n_steps, batch, n_post), dtype=np.uint8)
            since = since_spike if since_spike is not None else np.zeros((batch, n_post), dtype=np.int64)
            _compiled.run_layer(
                kernel,
                np.ascontiguousarray(jumps, dtype=np_dtype),
                v,
                current,
                (a_vv, a_vi, a_ii, b_v),
                threshold,
                reset,
                ref_steps,
                since,
                fired_bytes,
                voltage,
                membrane,
            )
            spikes = fired_bytes.view(bool)
        else:
            for n in range(n_steps):
                if voltage is not None:
                    voltage[n] = v
                np.multiply(v, a_vv, out=v_new)
                np.multiply(current, a_vi, out=scratch)
                v_new += scratch
                v_new += b_v
                current *= a_ii
                if ref_steps:
                    since_spike += 1  # steps since the last spike, as Brian2's timestep(t - lastspike, dt)
                    np.greater_equal(since_spike, ref_steps, out=not_refractory)
                    np.copyto(v, v_new, where=not_refractory)
                else:
                    v, v_new = v_new, v
                if membrane is not None:
                    membrane[n] = v
                fired = spikes[n]
                np.greater(v, threshold, out=fired)
                if ref_steps:
                    fired &= not_refractory
                current += jumps[n]
                if w_rec is not None and n >= delay and spikes[n - delay].any():
                    current += spikes[n - delay].astype(np_dtype) @ w_rec
                np.copyto(v, reset, where=fired)
                if ref_steps:
                    since_spike[fired] = 0
        out_spikes.append(spikes.transpose(1, 0, 2).astype(np.uint8))
        if voltage is not None:
            out_voltage.append(voltage.transpose(1, 0, 2))
        if membrane is not None:
            out_membrane.append(membrane.transpose(1, 0, 2))
        source, trial_major = spikes.view(np.uint8), False
    return NetworkRun(out_spikes, out_voltage if record_voltage else None, out_membrane if record_membrane else None)


def _input_array(input_spikes: Any, n_inputs: int) -> tuple[np.ndarray, bool]:
    """``(trial, time, input)`` array and whether the caller gave a single trial (2-D)."""
    import xarray as xr

    if isinstance(input_spikes, xr.DataArray):
        dims = input_spikes.dims
        if dims[-2:] != ("time", "input") or len(dims) not in (2, 3):
            raise ConfigError(
                f"input spikes DataArray must have dims (time, input) or (trial, time, input), got {dims}"
            )
        input_spikes = input_spikes.values
    torch = _torch()
    arr = input_spikes.detach().cpu().numpy() if isinstance(input_spikes, torch.Tensor) else np.asarray(input_spikes)
    single = arr.ndim == 2
    if single:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[-1] != n_inputs:
        raise ConfigError(f"input_spikes must be (time, {n_inputs}) or (trial, time, {n_inputs}), got {arr.shape}")
    if arr.dtype == np.bool_:
        bad = False
    elif np.issubdtype(arr.dtype, np.unsignedinteger):
        bad = arr.size > 0 and arr.max() > 1  # one pass instead of two comparisons
    else:
        bad = bool(((arr != 0) & (arr != 1)).any())
    if bad:
        raise ConfigError("input_spikes must contain only 0 and 1 (at most one spike per input and step)")
    return arr, single


# simulate's engine="auto" (issue 19), measured 1,000 inputs -> 200 LIF, 0.3 s at dt 1 ms, float32, one thread,
# batch 1, 16, 64, 256, feed-forward (compiled C loop) and recurrent (NumPy loop: the recurrent sum is not compiled),
# on the shared 2-core x86 machine (docs/spiking.md "Performance"): input density -> the largest
# ``trials x neurons per layer`` for which "numpy" runs (None: always), "torch" beyond it.
ENGINE_TABLE = {
    # input spikes as events: numpy 3-11x faster than torch at every batch size (batch 256: 0.08 vs 0.79 s
    # feed-forward, 0.21 vs 0.85 s recurrent)
    "sparse": None,
    # dense product: numpy faster at batch 1 (0.004 vs 0.011 s), torch from batch 16 (0.037 vs 0.051 s)
    "dense": 1024,
}


def choose_engine(n_trials: int, largest_layer: int, input_density: float) -> str:
    """The engine ``simulate(engine="auto")`` runs, ``"numpy"`` or ``"torch"``, by :data:`ENGINE_TABLE`.

    ``input_density``: the fraction of ones in the input raster (rate x dt for Poisson inputs: 1% at 10 Hz and
    1 ms, 0.1% at 0.1 ms); "sparse" is below 5% (``_SPARSE_FRACTION``), where the NumPy engine works from the
    input spikes' indices instead of a dense product.  ``dt`` enters only through the density: both engines' cost
    is linear in the number of steps.
    """
    limit = ENGINE_TABLE["sparse" if input_density < _SPARSE_FRACTION else "dense"]
    return "numpy" if limit is None or n_trials * largest_layer <= limit else "torch"


def simulate(
    network: Any,
    input_spikes: Any,
    dt: float = 1e-3,
    duration: float | None = None,
    *,
    method: str | None = None,
    dtype: str = "float64",
    record_voltages: bool = False,
    engine: str = "auto",
) -> Any:
    """Run ``network`` on an input raster and return an ``xarray.Dataset``.

    Parameters
    ----------
    input_spikes: 0/1 raster ``(time, input)`` or ``(trial, time, input)`` (numpy, torch or ``xr.DataArray``);
        entry ``[n, i]`` is a spike of input ``i`` at time ``n dt``.
    dt: time step (s); duration: simulated time (s), ``round(duration/dt)`` steps (default: the raster's length).
    method: ``"exact"`` or ``"euler"`` (default: the network's); dtype: ``"float32"`` or ``"float64"``.
    record_voltages: also return ``voltage``: ``v`` at the start of each step (Brian2 StateMonitor convention).
    engine: ``"numpy"`` (:func:`run_network_numpy`: the compiled C loop, or an in-place NumPy loop without a
        compiler; with sparse inputs it sums the weight rows of each step's input spikes, event-driven),
        ``"torch"`` (:func:`run_network`: a dense product per layer and a torch loop) or ``"auto"``:
        :func:`choose_engine` by measured cost (:data:`ENGINE_TABLE`): numpy for sparse inputs (< 5% ones per
        step and input, e.g. 10 Hz Poisson at dt <= 1 ms) at every batch size (at batch 64, 1,000 -> 200 LIF, 1 s:
        ~0.07 s at 1 ms vs ~0.6 s for torch), and for dense inputs while ``trials x largest layer <= 1024``;
        torch otherwise.  Both engines do the same per-step operations in the same order; their synaptic sums (spikes @ weights) come from different products (events or a CSR product
        summing in input order, BLAS for torch), so voltages may differ by a few ulp (spikes identical in the
        tests).

    Returns
    -------
    ``xr.Dataset`` with ``spikes`` (uint8) and optionally ``voltage``, dims ``([trial,] time, neuron)``; coordinates
    ``time`` (s), ``neuron`` (0..N-1 over all layers), ``layer`` (layer index of each neuron); attrs hold ``dt``,
    ``method``, ``dtype`` and the network's parameters.
    """
    method = method or network.method
    if dtype not in ("float32", "float64"):
        raise ConfigError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    arr, single = _input_array(input_spikes, network.n_inputs)
    n_steps = arr.shape[1]
    if duration is not None:
        if not (isinstance(duration, (int, float)) and duration > 0):
            raise ConfigError(f"duration must be a positive number of seconds, got {duration!r}")
        n_steps = int(round(duration / dt))
        if n_steps > arr.shape[1]:
            raise ConfigError(f"duration {duration} s needs {n_steps} steps of the input raster, it has {arr.shape[1]}")
    if engine not in ("auto", "numpy", "torch"):
        raise ConfigError(f"engine must be 'auto', 'numpy' or 'torch', got {engine!r}")
    if engine == "auto":
        largest = max(network.layer_sizes)
        density = 0.0
        if arr.shape[0] * largest > ENGINE_TABLE["dense"]:  # below it the density does not change the choice
            density = np.count_nonzero(arr[:, :n_steps]) / max(arr[:, :n_steps].size, 1)
        engine = choose_engine(arr.shape[0], largest, density)
    if engine == "numpy":
        run = run_network_numpy(network, arr[:, :n_steps], dt, method, dtype=dtype, record_voltage=record_voltages)
    else:
        torch = _torch()
        x = torch.as_tensor(arr[:, :n_steps], dtype=getattr(torch, dtype))
        torch_run = run_network(network, x, dt, method, dtype=getattr(torch, dtype), record_voltage=record_voltages)
        run = NetworkRun(
            [s.numpy().astype(np.uint8) for s in torch_run.spikes],
            None if torch_run.voltage is None else [v.numpy() for v in torch_run.voltage],
        )

    def joined(arrays: list[np.ndarray]) -> np.ndarray:  # one layer: no copy
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=-1)

    return network_dataset(
        network,
        joined(run.spikes),
        dt,
        method=method,
        dtype=dtype,
        voltage=joined(run.voltage) if record_voltages else None,
        single=single,
    )


def network_dataset(
    network: Any,
    spikes: np.ndarray,
    dt: float,
    *,
    method: str,
    dtype: str,
    voltage: np.ndarray | None = None,
    single: bool = False,
    engine: str | None = None,
) -> Any:
    """The labelled result of :func:`simulate` from rasters ``(trial, time, neuron)`` (shared with the Brian2
    bridge); ``single`` drops the trial dimension."""
    import xarray as xr

    n_steps = spikes.shape[1]
    dims: tuple[str, ...] = ("trial", "time", "neuron")
    data = {"spikes": (dims, spikes)}
    if voltage is not None:
        data["voltage"] = (dims, voltage)
    layer_index = np.concatenate([np.full(n, i) for i, n in enumerate(network.layer_sizes)])
    attrs = {
        "dt": float(dt),
        "method": method,
        "dtype": dtype,
        "duration": n_steps * float(dt),
        "ordering": "state update -> threshold -> synapses -> reset (Brian2 default schedule)",
    }
    if engine is not None:
        attrs["engine"] = engine
    for key, value in network.describe().items():
        if key != "method":
            attrs[key] = np.asarray(value) if isinstance(value, list) else value
    ds = xr.Dataset(
        data,
        coords={
            "time": np.arange(n_steps) * float(dt),
            "neuron": np.arange(network.n_neurons),
            "layer": ("neuron", layer_index),
        },
        attrs=attrs,
    )
    ds["time"].attrs["units"] = "s"
    if single:
        ds = ds.isel(trial=0, drop=True)
    return ds


def spike_rates(result: Any) -> Any:
    """Firing rate (Hz) of every neuron from a :func:`simulate` result, averaged over trials."""
    spikes = result["spikes"]
    duration = spikes.sizes["time"] * float(result.attrs["dt"])
    counts = spikes.sum("time")
    if "trial" in counts.dims:
        counts = counts.mean("trial")
    rates = counts / duration
    rates.attrs["units"] = "Hz"
    return rates.rename("rate")

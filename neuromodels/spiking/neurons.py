"""Current-based leaky integrate-and-fire (LIF) neurons: parameters, discretisation, one time step.

Model (Zenke & Ganguli 2018, Neural Comput. 30:1514, eqs. 3.1-3.2 and Table 1; Brian2's current-based LIF),
dimensionless voltages::

    tau_mem dv/dt = (v_rest - v) + I        (clamped while refractory)
    tau_syn dI/dt = -I,                     I -> I + w at every presynaptic spike

so a presynaptic spike evokes the double-exponential PSP
``eps(t) = w * tau_syn / (tau_syn - tau_mem) * (exp(-t/tau_syn) - exp(-t/tau_mem))`` (``w t/tau e^{-t/tau}`` when the
two time constants are equal).  A neuron spikes when ``v > threshold`` (strictly, as Brian2's ``'v > v_th'``), then
``v`` is set to ``reset`` and held there for the absolute refractory period.

Discretisation (``method``), for a time step ``dt``:

* ``"exact"``: the exact propagator of the linear system between spikes, ``x(t + dt) = expm(A dt) x(t)`` for
  ``x = (v - v_rest, I)`` (Brian2's ``method="exact"``); coefficients in :func:`propagator`.
* ``"euler"``: forward Euler, ``v += dt/tau_mem (v_rest - v + I)``, ``I += -dt/tau_syn I`` (Brian2's
  ``method="euler"``, Auryn's integration).

Ordering within a time step ``n`` (time ``t_n = n dt``), Brian2's default schedule
``groups -> thresholds -> synapses -> resets``:

1. state update: refractoriness is evaluated (``not_refractory = steps since last spike >= round(refractory/dt)``,
   Brian2's ``timestep`` rule), then ``(v, I)`` advance from ``t_n`` to ``t_{n+1}``; ``v`` is left unchanged in
   refractory neurons, ``I`` always decays;
2. threshold: ``spike = (v > threshold) & not_refractory``; the spike is reported at time ``t_n``;
3. synapses: ``I += W^T s`` for all spikes of step ``n`` (input and recurrent) - they act on ``v`` from step ``n+1``;
4. reset: ``v = reset`` for the neurons that spiked.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from neuromodels.errors import ConfigError

__all__ = ["LIFParameters", "Propagator", "propagator", "refractory_steps", "delay_steps", "METHODS"]

METHODS = ("exact", "euler")


@dataclass(frozen=True)
class LIFParameters:
    """Parameters of a current-based LIF population (times in seconds, voltages dimensionless).

    Defaults are the paper's time constants (Table 1: tau_mem 10 ms, tau_syn 5 ms) with the rest-to-threshold
    distance scaled to 1 (the paper's -60 mV rest and -50 mV threshold map to 0 and 1; 1 mV = 0.1).  The default
    refractory period is 0; the paper's is 5 ms (Table 1, the ``paper`` preset of
    :mod:`neuromodels.fitting.superspike`).
    """

    tau_mem: float = 10e-3
    tau_syn: float = 5e-3
    threshold: float = 1.0
    reset: float = 0.0
    v_rest: float = 0.0
    refractory: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"neuron parameter '{f.name}' must be a finite number, got {value!r}")
        for name in ("tau_mem", "tau_syn"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"neuron parameter '{name}' must be > 0 seconds, got {getattr(self, name)}")
        if self.refractory < 0:
            raise ConfigError(f"neuron parameter 'refractory' must be >= 0 seconds, got {self.refractory}")
        if self.reset >= self.threshold:
            raise ConfigError(f"neuron parameter 'reset' ({self.reset}) must be below 'threshold' ({self.threshold})")

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "neuron") -> LIFParameters:
        """Build from a mapping (a config table), rejecting unknown keys with a :class:`ConfigError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown key '{where}.{unknown[0]}' (known: {', '.join(sorted(known))})")
        return cls(**{k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in values.items()})

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Propagator:
    """One step of the subthreshold dynamics: ``v' = a_vv v + a_vi I + b_v``, ``I' = a_ii I``."""

    a_vv: float
    a_vi: float
    a_ii: float
    b_v: float
    method: str
    dt: float


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    return method


def propagator(params: LIFParameters, dt: float, method: str = "exact") -> Propagator:
    """Coefficients of one time step of length ``dt`` (seconds) for ``method`` ``"exact"`` or ``"euler"``.

    ``exact``: ``a_vv = e^{-dt/tau_mem}``, ``a_ii = e^{-dt/tau_syn}``,
    ``a_vi = tau_syn (e^{-dt/tau_syn} - e^{-dt/tau_mem}) / (tau_syn - tau_mem)`` (limit ``dt/tau e^{-dt/tau}`` for
    equal time constants), ``b_v = v_rest (1 - a_vv)``: the first two rows of ``expm(M dt)`` for
    ``M = [[-1/tau_mem, 1/tau_mem, v_rest/tau_mem], [0, -1/tau_syn, 0], [0, 0, 0]]`` acting on ``(v, I, 1)``.
    ``euler``: ``a_vv = 1 - dt/tau_mem``, ``a_vi = dt/tau_mem``, ``a_ii = 1 - dt/tau_syn``, ``b_v = v_rest dt/tau_mem``.
    """
    _check_method(method)
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ConfigError(f"dt must be a positive number of seconds, got {dt!r}")
    tm, ts = params.tau_mem, params.tau_syn
    if method == "euler":
        return Propagator(1.0 - dt / tm, dt / tm, 1.0 - dt / ts, params.v_rest * dt / tm, method, float(dt))
    a_vv = math.exp(-dt / tm)
    a_ii = math.exp(-dt / ts)
    if abs(ts - tm) <= 1e-12 * max(ts, tm):
        a_vi = dt / tm * a_vv
    else:
        a_vi = ts * (a_ii - a_vv) / (ts - tm)
    return Propagator(a_vv, a_vi, a_ii, params.v_rest - params.v_rest * a_vv, method, float(dt))


def refractory_steps(refractory: float, dt: float) -> int:
    """Brian2's ``timestep(refractory, dt)``: ``int((refractory + 1e-3 dt) / dt)`` (multiples of dt are exact)."""
    return int((refractory + 1e-3 * dt) / dt)


def delay_steps(delay: float, dt: float) -> int:
    """Whole steps of a synaptic (axonal) delay, rounded as Brian2 rounds them (``SpikeQueue``:
    ``round(delay / dt)``): a spike at step ``n`` is added to the postsynaptic current at step ``n + delay_steps``."""
    if not (isinstance(delay, (int, float)) and math.isfinite(delay) and delay >= 0):
        raise ConfigError(f"delay must be a number of seconds >= 0, got {delay!r}")
    return int(round(delay / dt))

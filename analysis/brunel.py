"""Brunel (2000)'s mean-field theory of a sparse excitatory-inhibitory network of LIF neurons with delta synapses.

Brunel N (2000) *Dynamics of sparsely connected networks of excitatory and inhibitory spiking neurons*,
J Comput Neurosci 8:183-208 ("model A": identical E and I neurons). Every neuron receives ``C_E`` excitatory
connections (voltage jump ``J``), ``C_I = gamma C_E`` inhibitory ones (jump ``-g J``) and ``C_E`` external excitatory
Poisson inputs of rate ``nu_ext`` each (jump ``J``). In the diffusion approximation the input of a neuron has mean and
variance (per membrane time constant ``tau``; section 3, eqs. (4)-(5))::

    mu      = C_E J tau (nu_ext + nu (1 - g gamma))
    sigma^2 = J^2 C_E tau (nu_ext + nu (1 + g^2 gamma))

and the stationary rate of the asynchronous state solves the self-consistency (eqs. (21)-(22))::

    1/nu_0 = tau_rp + tau sqrt(pi) int_{(V_r - mu)/sigma}^{(theta - mu)/sigma} e^{u^2} (1 + erf u) du

with ``mu, sigma`` evaluated at ``nu = nu_0`` (the rate does not depend on the delay ``D``). The external rate is
quoted in units of ``nu_thr = theta / (J C_E tau)``, the rate that brings the mean input to threshold without
recurrence. The integrand is evaluated as ``erfcx(-u) = e^{u^2} erfc(-u) = e^{u^2} (1 + erf u)``, which neither
overflows for negative ``u`` nor loses digits to cancellation.

Units: voltages in mV, times in seconds, rates in Hz.

:func:`brunel_circuit` builds the network itself for :func:`neuromodels.spiking.circuit.simulate_circuit`, and
:data:`FIG8_REGIMES` lists the four states of the paper's Fig. 8 (examples/brunel_regimes.py runs them).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from neuromodels.errors import ConfigError

__all__ = [
    "BrunelParameters",
    "threshold_rate",
    "siegert_rate",
    "siegert_cv",
    "brunel_input",
    "brunel_rate",
    "brunel_rates",
    "brunel_state",
    "FIG8_REGIMES",
    "Regime",
    "brunel_circuit",
    "simulate_regime",
    "regime_statistics",
    "classify_regime",
]

# Above this (theta - mu)/sigma the rate is below 1e-290 Hz, and e^{u^2} would overflow a float64.
_MAX_THRESHOLD_DISTANCE = 26.0


@dataclass(frozen=True)
class BrunelParameters:
    """Brunel (2000)'s network (section 2 and Fig. 8): defaults are the paper's full-size values.

    ``C_E`` excitatory in-degree (``epsilon N_E``, 1,000 in the paper), ``gamma = C_I / C_E`` (0.25), ``J`` the
    excitatory voltage jump in mV (0.1), ``theta`` threshold and ``V_r`` reset in mV (20, 10), ``tau`` membrane time
    constant and ``tau_rp`` refractory period in s (20 ms, 2 ms), ``D`` transmission delay in s (1.5 ms; not used
    by the stationary rate).
    """

    C_E: float = 1000.0
    gamma: float = 0.25
    J: float = 0.1
    theta: float = 20.0
    V_r: float = 10.0
    tau: float = 0.02
    tau_rp: float = 0.002
    D: float = 0.0015

    def __post_init__(self) -> None:
        for name in ("C_E", "J", "theta", "tau"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"BrunelParameters.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("gamma", "tau_rp", "D"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"BrunelParameters.{name} must be >= 0, got {getattr(self, name)!r}")
        if not self.V_r < self.theta:
            raise ConfigError(f"BrunelParameters.V_r ({self.V_r}) must be below theta ({self.theta})")

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def threshold_rate(params: BrunelParameters | None = None) -> float:
    """``nu_thr = theta / (J C_E tau)`` in Hz: the external rate per synapse whose mean input reaches threshold."""
    p = params or BrunelParameters()
    return p.theta / (p.J * p.C_E * p.tau)


def siegert_rate(mu: float, sigma: float, params: BrunelParameters | None = None) -> float:
    """Stationary rate (Hz) of an LIF neuron driven by white noise of mean ``mu`` and std ``sigma`` (mV).

    The mean first-passage time of Brunel (2000) eq. (21) (Siegert 1951; Amit & Brunel 1997): ``1/nu = tau_rp +
    tau sqrt(pi) int_{y_r}^{y_theta} erfcx(-u) du`` with ``y = (V - mu)/sigma``. ``sigma = 0`` gives the
    deterministic rate ``1/(tau_rp + tau ln((mu - V_r)/(mu - theta)))`` above threshold and 0 below.
    """
    p = params or BrunelParameters()
    if not sigma >= 0:
        raise ConfigError(f"sigma must be >= 0, got {sigma!r}")
    if sigma == 0:
        if mu <= p.theta:
            return 0.0
        return 1.0 / (p.tau_rp + p.tau * math.log((mu - p.V_r) / (mu - p.theta)))
    y_theta = (p.theta - mu) / sigma
    y_r = (p.V_r - mu) / sigma
    if y_theta > _MAX_THRESHOLD_DISTANCE:
        return 0.0
    return 1.0 / (p.tau_rp + p.tau * math.sqrt(math.pi) * _integral_erfcx(y_r, y_theta))


def _integral_erfcx(lower: float, upper: float) -> float:
    """``int_lower^upper erfcx(-u) du`` by adaptive quadrature, split at 0 where the integrand changes character."""
    from scipy.integrate import quad
    from scipy.special import erfcx

    def integrand(u: float) -> float:
        return float(erfcx(-u))

    points = [lower, *([0.0] if lower < 0.0 < upper else []), upper]
    total = 0.0
    for a, b in zip(points[:-1], points[1:], strict=True):
        # erfcx(-u) ~ 1/(sqrt(pi) |u|) for u -> -inf: a log-spaced change of variable keeps long negative spans exact
        if b <= -1.0 and b - a > 10.0:
            value, _ = quad(
                lambda s: integrand(-math.exp(s)) * math.exp(s),
                math.log(-b),
                math.log(-a),
                epsabs=0.0,
                epsrel=1e-12,
                limit=200,
            )
        else:
            value, _ = quad(integrand, a, b, epsabs=0.0, epsrel=1e-12, limit=200)
        total += value
    return total


def siegert_cv(mu: float, sigma: float, params: BrunelParameters | None = None) -> float:
    """Coefficient of variation of the inter-spike intervals of the same neuron as :func:`siegert_rate`.

    Brunel (2000), section 3 (from the second moment of the first-passage time; Tuckwell 1988)::

        CV^2 = 2 pi (nu tau)^2 int_{y_r}^{y_theta} e^{x^2} int_{-inf}^{x} e^{y^2} (1 + erf y)^2 dy dx

    evaluated as ``int int e^{x^2 - y^2} erfcx(-y)^2`` (no overflow). ``sigma = 0``: 0 above threshold, NaN below.
    """
    from scipy.integrate import quad
    from scipy.special import erfcx

    p = params or BrunelParameters()
    nu = siegert_rate(mu, sigma, p)
    if sigma == 0 or nu == 0:
        return 0.0 if nu > 0 else math.nan
    y_theta, y_r = (p.theta - mu) / sigma, (p.V_r - mu) / sigma

    def inner(x: float) -> float:
        # e^{x^2} int_{-inf}^{x} e^{y^2}(1+erf y)^2 dy = int_{-inf}^{x} e^{x^2-y^2} erfcx(-y)^2 dy. Below
        # m = min(x, 0) the integrand falls like e^{-(m-y)(|m|+|y|)}: e^{-20} or less past m - 10/max(1, |m|)
        m = min(x, 0.0)
        lower = m - 10.0 / max(1.0, abs(m))
        value, _ = quad(
            lambda y: math.exp((x - y) * (x + y)) * float(erfcx(-y)) ** 2, lower, x, epsabs=0.0, epsrel=1e-10, limit=200
        )
        return value

    outer, _ = quad(inner, y_r, y_theta, epsabs=0.0, epsrel=1e-9, limit=200)
    return math.sqrt(2 * math.pi * (nu * p.tau) ** 2 * outer)


def brunel_input(nu: float, g: float, nu_ext: float, params: BrunelParameters | None = None) -> tuple[float, float]:
    """``(mu, sigma)`` in mV of the input to a neuron when the network fires at ``nu`` Hz (Brunel 2000, eqs. 4-5)."""
    p = params or BrunelParameters()
    mu = p.C_E * p.J * p.tau * (nu_ext + nu * (1.0 - g * p.gamma))
    sigma2 = p.J**2 * p.C_E * p.tau * (nu_ext + nu * (1.0 + g**2 * p.gamma))
    return mu, math.sqrt(max(sigma2, 0.0))


def brunel_rates(
    g: float, nu_ext_over_nu_thr: float, params: BrunelParameters | None = None, *, grid: int = 400
) -> np.ndarray:
    """All stationary self-consistent rates (Hz, ascending) of the asynchronous state (Brunel 2000, eq. 21).

    The fixed points of ``nu -> siegert_rate(brunel_input(nu))`` in ``[0, 1/tau_rp)``: sign changes of
    ``F(nu) = siegert(nu) - nu`` on a grid (dense near 0, where low-rate solutions lie), each refined by Brent's
    method to machine precision. Inhibition-dominated networks (``g gamma > 1``) have one solution; with
    ``g gamma < 1`` there can be several.
    """
    p = params or BrunelParameters()
    if not (g >= 0 and nu_ext_over_nu_thr >= 0):
        raise ConfigError(f"g and nu_ext_over_nu_thr must be >= 0, got {g!r} and {nu_ext_over_nu_thr!r}")
    from scipy.optimize import brentq

    nu_ext = nu_ext_over_nu_thr * threshold_rate(p)
    nu_max = 1.0 / p.tau_rp if p.tau_rp > 0 else 1e4

    def excess(nu: float) -> float:
        return siegert_rate(*brunel_input(nu, g, nu_ext, p), p) - nu

    nus = nu_max * np.concatenate([[0.0], np.geomspace(1e-9, 1.0, grid)])
    nus[-1] = nu_max * (1 - 1e-12)
    values = np.array([excess(nu) for nu in nus])
    roots = [float(nus[i]) for i in np.flatnonzero(values == 0.0)]
    for i in np.flatnonzero(values[:-1] * values[1:] < 0):
        roots.append(brentq(excess, nus[i], nus[i + 1], xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=200))
    return np.array(sorted(roots))


def brunel_state(g: float, nu_ext_over_nu_thr: float, params: BrunelParameters | None = None) -> dict[str, float]:
    """The asynchronous state's mean-field values: ``rate`` (Hz), ``cv`` (ISI CV), ``mu`` and ``sigma`` (mV),
    ``nu_ext`` and ``nu_thr`` (Hz), for the unique self-consistent rate (:func:`brunel_rate`)."""
    p = params or BrunelParameters()
    nu = brunel_rate(g, nu_ext_over_nu_thr, p)
    nu_ext = nu_ext_over_nu_thr * threshold_rate(p)
    mu, sigma = brunel_input(nu, g, nu_ext, p)
    return {
        "rate": nu,
        "cv": siegert_cv(mu, sigma, p),
        "mu": mu,
        "sigma": sigma,
        "nu_ext": nu_ext,
        "nu_thr": threshold_rate(p),
    }


def brunel_rate(g: float, nu_ext_over_nu_thr: float, params: BrunelParameters | None = None) -> float:
    """The stationary rate ``nu_0`` (Hz) of the asynchronous state (Brunel 2000, eqs. 21-22).

    Raises :class:`~neuromodels.errors.ConfigError` when the self-consistency has several solutions (possible for
    ``g gamma < 1``); :func:`brunel_rates` lists them.
    """
    roots = brunel_rates(g, nu_ext_over_nu_thr, params)
    if len(roots) != 1:
        raise ConfigError(
            f"the self-consistent rate is not unique for g={g}, nu_ext/nu_thr={nu_ext_over_nu_thr}: "
            f"{len(roots)} solutions {roots.tolist()} Hz (use brunel_rates)"
        )
    return float(roots[0])


@dataclass(frozen=True)
class Regime:
    """One panel of Brunel (2000) Fig. 8: its state, ``g``, ``nu_ext / nu_thr`` and the caption's description."""

    name: str
    g: float
    nu_ext_over_nu_thr: float
    description: str


# Brunel (2000) Fig. 8 (panel letters and parameters as in the caption; the same values are in Brian2's example
# examples/frompapers/Brunel_2000.py). Captions paraphrased.
FIG8_REGIMES = {
    "A": Regime("SR", 3.0, 2.0, "synchronous regular: almost fully synchronised, neurons fire regularly at high rates"),
    "B": Regime(
        "SI fast",
        6.0,
        4.0,
        "synchronous irregular, fast: a fast oscillation of the global activity, "
        "neurons fire irregularly at a rate lower than the global frequency",
    ),
    "C": Regime("AI", 5.0, 2.0, "asynchronous irregular: stationary global activity, neurons fire irregularly"),
    "D": Regime(
        "SI slow",
        4.5,
        0.9,
        "synchronous irregular, slow: a slow oscillation of the global activity, "
        "neurons fire irregularly at very low rates",
    ),
}


def brunel_circuit(
    g: float,
    nu_ext_over_nu_thr: float,
    *,
    n_excitatory: int = 4000,
    params: BrunelParameters | None = None,
    n_external: int | None = None,
    seed: int = 0,
) -> Any:
    """Brunel (2000)'s model A as a :class:`~neuromodels.spiking.circuit.Circuit`: ``E`` (``n_excitatory``) and
    ``I`` (``n_excitatory / 4``) LIF populations with delta synapses of delay ``D``; every neuron receives exactly
    ``C_E`` excitatory (``+J``) and ``gamma C_E`` inhibitory (``-g J``) connections and ``C_E`` external ones (``+J``)
    from a Poisson population ``ext`` of ``n_external`` neurons (default ``5 C_E``) firing at ``nu_ext``.

    The in-degrees come from ``params`` (``C_E`` = 1,000 by default, as in the paper), not from the network size,
    so that the mean-field theory (which depends on ``C_E, J, g, gamma`` only) is the paper's at any size; a
    network smaller than ``N_E = C_E / epsilon`` is denser than the paper's ``epsilon = 0.1``. The external
    population is shared: two neurons have ``C_E^2 / n_external`` external sources in common on average (the
    paper's external inputs are independent; their variance, ``J theta nu_ext/nu_thr``, is a small part of the
    total in the four regimes of Fig. 8). Initial voltages are uniform between ``V_r`` and ``theta``.
    """
    from neuromodels.spiking.config import brunel_example, build_circuit, merge_circuit

    p = params or BrunelParameters()
    c_e = round(p.C_E)
    config = brunel_example(
        g,
        nu_ext_over_nu_thr,
        int(n_excitatory),
        int(n_excitatory) // 4,
        c_e=c_e,
        c_i=round(p.gamma * p.C_E),
        j=p.J,
        delay=p.D,
        n_ext=int(n_external) if n_external is not None else 5 * c_e,
        theta=p.theta,
        v_r=p.V_r,
        tau=p.tau,
        tau_rp=p.tau_rp,
        seed=seed,
    )
    return build_circuit(merge_circuit(config))


def simulate_regime(
    panel: str,
    *,
    duration: float = 1.2,
    n_excitatory: int = 4000,
    params: BrunelParameters | None = None,
    dt: float = 1e-4,
    seed: int = 0,
) -> Any:
    """Simulate the network of :func:`brunel_circuit` in the state of Fig. 8 panel ``panel`` (``"A"``-``"D"``)
    with :func:`~neuromodels.spiking.circuit.simulate_circuit`: an ``xr.Dataset`` with ``spikes(time, neuron)``."""
    from neuromodels.spiking.circuit import simulate_circuit

    if panel not in FIG8_REGIMES:
        raise ConfigError(f"unknown Fig. 8 panel {panel!r}: choose one of {', '.join(FIG8_REGIMES)}")
    regime = FIG8_REGIMES[panel]
    circuit = brunel_circuit(regime.g, regime.nu_ext_over_nu_thr, n_excitatory=n_excitatory, params=params, seed=seed)
    return simulate_circuit(circuit, duration, dt)


# Time scales of the two synchrony measures: chi in 1 ms bins sees the fast oscillation (SI fast, ~170 Hz, and the
# clusters of SR), chi in 10 ms bins the slow one (SI slow, ~20 Hz) over the spike-count noise of low rates.
FAST_BIN = 1e-3
SLOW_BIN = 10e-3


def regime_statistics(
    result: Any, panel: str, params: BrunelParameters | None = None, *, transient: float = 0.2
) -> dict[str, Any]:
    """Statistics of a run of :func:`simulate_regime` after ``transient`` seconds, per population (``rate`` Hz,
    ``cv``, ``fano``, ``chi`` in 1 ms bins, ``chi_slow`` in 10 ms bins, ``peak_frequency`` Hz, ``peak_power``), the
    mean-field state of the same ``g, nu_ext/nu_thr`` (:func:`brunel_state`) and the state that
    :func:`classify_regime` recognises from the ``E`` population."""
    from neuromodels.analysis.spike_statistics import population_statistics, synchrony

    regime = FIG8_REGIMES[panel]
    window = result.sel(time=slice(transient, None))
    stats = population_statistics(window, bin_size=FAST_BIN)
    stats["chi_slow"] = synchrony(window, bin_size=SLOW_BIN)
    per_population = {
        str(name): {key: float(stats[key].sel(population=name)) for key in stats.data_vars}
        for name in stats["population"].values
    }
    return {
        "panel": panel,
        "regime": regime.name,
        "g": regime.g,
        "nu_ext_over_nu_thr": regime.nu_ext_over_nu_thr,
        "populations": per_population,
        "mean_field": brunel_state(regime.g, regime.nu_ext_over_nu_thr, params),
        "classified_as": classify_regime(per_population["E"]),
        "transient": float(transient),
        "settings": dict(stats.attrs, slow_bin_size=SLOW_BIN),
    }


def classify_regime(stats: dict[str, float]) -> str:
    """The state of Brunel (2000) Fig. 8 that a population's statistics describe, or ``"unclassified"``.

    From ``rate`` (Hz), ``cv``, ``chi`` (1 ms bins), ``chi_slow`` (10 ms bins), ``peak_frequency`` (Hz) and
    ``peak_power`` (spectral peak over the mean above 5 Hz), the captions of Fig. 8 made quantitative:

    * ``SR`` "neurons firing regularly at high rates", "almost fully synchronized": ``cv < 0.2``, ``rate > 100``
      (a fifth of the saturation rate ``1/tau_rp``), ``chi > 0.4``;
    * ``SI fast`` "fast oscillation of the global activity", "neurons firing irregularly at a rate lower than the
      global frequency": ``cv > 0.5``, ``peak_frequency >= 100``, ``peak_frequency > 2 rate``, ``peak_power > 15``;
    * ``SI slow`` "slow oscillation of the global activity", "irregularly at very low rates": ``cv > 0.4``,
      ``rate < 15``, ``peak_frequency < 50``, ``chi_slow > 0.35``;
    * ``AI`` "stationary global activity, irregularly firing neurons": ``cv > 0.3``, ``chi < 0.25``,
      ``chi_slow < 0.25``, ``peak_power < 15``.

    The numbers are ours (the paper gives none): they sit between the values measured in the four states of
    examples/brunel_regimes.py (N_E = 4,000, C_E = 1,000; docs/spiking.md). ``chi`` of an asynchronous network
    falls like ``1/sqrt(N)``, so the ``AI`` bounds hold at that size and above, not in much smaller networks.
    """
    rate, cv, chi, chi_slow = stats["rate"], stats["cv"], stats["chi"], stats["chi_slow"]
    peak, power = stats["peak_frequency"], stats["peak_power"]
    if cv < 0.2 and rate > 100 and chi > 0.4:
        return "SR"
    if cv > 0.5 and peak >= 100 and peak > 2 * rate and power > 15:
        return "SI fast"
    if cv > 0.4 and rate < 15 and peak < 50 and chi_slow > 0.35:
        return "SI slow"
    if cv > 0.3 and chi < 0.25 and chi_slow < 0.25 and power < 15:
        return "AI"
    return "unclassified"

"""Spiking circuits: current-based LIF neurons, layered/recurrent networks, circuits of populations with delays and
delta synapses (:mod:`neuromodels.spiking.circuit`), inputs, and a Brian2 cross-check.

Conventions (discretisation ``exact``/``euler``, Brian2's ordering) are in :mod:`neuromodels.spiking.neurons` and
docs/spiking.md.  Training (SuperSpike, surrogate-gradient BPTT) lives in :mod:`neuromodels.fitting.superspike`.
"""

from neuromodels.spiking.circuit import (
    Circuit,
    PoissonPopulation,
    Population,
    Projection,
    population_slices,
    simulate_circuit,
)
from neuromodels.spiking.inputs import frozen_poisson, poisson_spikes, raster_to_dataarray
from neuromodels.spiking.network import NetworkRun, SpikingNetwork, run_network, simulate, spike_rates
from neuromodels.spiking.neurons import LIFParameters, propagator, refractory_steps

__all__ = [
    "LIFParameters",
    "propagator",
    "refractory_steps",
    "SpikingNetwork",
    "simulate",
    "run_network",
    "NetworkRun",
    "spike_rates",
    "poisson_spikes",
    "frozen_poisson",
    "raster_to_dataarray",
    "to_brian2",
    "cross_check",
    "CrossCheck",
    "Population",
    "PoissonPopulation",
    "Projection",
    "Circuit",
    "simulate_circuit",
    "population_slices",
]


def __getattr__(name: str):
    if name in ("to_brian2", "cross_check", "CrossCheck"):
        from neuromodels.spiking import brian2_bridge

        return getattr(brian2_bridge, name)
    raise AttributeError(name)

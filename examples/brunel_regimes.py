"""Brunel (2000)'s four network states: a sparse E-I network of LIF neurons with delta synapses, run at the four
points of the paper's Fig. 8, recognised by their statistics, and compared with the mean-field theory.

What it reproduces.
Brunel N (2000) *Dynamics of sparsely connected networks of excitatory and inhibitory spiking neurons*, J Comput
Neurosci 8:183-208, Fig. 8: the same network (model A: identical excitatory and inhibitory LIF neurons, tau 20 ms,
threshold 20 mV, reset 10 mV, refractory 2 ms; voltage jumps J = 0.1 mV and -g J after a delay D = 1.5 ms; C_E
excitatory, C_I = C_E/4 inhibitory and C_E external Poisson inputs per neuron) in four states chosen by the relative
inhibition g and the external rate nu_ext / nu_thr:

    A  synchronous regular (SR)        g = 3,   nu_ext/nu_thr = 2
    B  synchronous irregular, fast     g = 6,   nu_ext/nu_thr = 4
    C  asynchronous irregular (AI)     g = 5,   nu_ext/nu_thr = 2
    D  synchronous irregular, slow     g = 4.5, nu_ext/nu_thr = 0.9

Size. The paper's network has N_E = 10,000, N_I = 2,500 and epsilon = 0.1 (C_E = 1,000). This script keeps the
in-degrees C_E = 1,000 and C_I = 250 (so that the mean-field theory, which depends on C_E, J, g and gamma only, is
the paper's) and shrinks the populations to N_E = 4,000, N_I = 1,000 (``--n-excitatory``): the connection
probability becomes 0.25. External inputs come from a shared pool of 5,000 Poisson neurons (each neuron draws its
C_E external sources from it). dt = 0.1 ms, 1.2 s per state, the first 0.2 s discarded.

For each state it writes a figure (raster of 40 E and 10 I neurons over the last 200 ms, population rates in 0.1 ms
bins), a combined figure of the four, and ``report.json``: per population the rate, ISI CV, Fano factor (50 ms
windows), synchrony chi (1 ms and 10 ms bins), the spectral peak of the population rate, the mean-field rate and CV
(:func:`neuromodels.analysis.brunel.brunel_state`) and the state recognised from the statistics
(:func:`neuromodels.analysis.brunel.classify_regime`).

Run:

    python examples/brunel_regimes.py [--out reports/examples/brunel_regimes] [--figures docs/figures/examples/brunel_regimes] [--seed 0]
                                      [--panels ABCD] [--duration 1.2] [--n-excitatory 4000]

About 1-2.5 minutes on 2 CPU cores (the SR state, at ~310 Hz, takes a third to a half of it). Seeded. Public API only:
``neuromodels.analysis``, ``neuromodels.errors``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from neuromodels import check_out_folder, write_report
from neuromodels.analysis.brunel import (
    FIG8_REGIMES,
    BrunelParameters,
    regime_statistics,
    simulate_regime,
)
from neuromodels.analysis.spike_statistics import plot_population_activity
from neuromodels.errors import ConfigError

NAME = "brunel_regimes"
TRANSIENT = 0.2  # s: the first 200 ms (from uniform initial voltages) are left out of the statistics
SHOWN = 0.2  # s: the figures show the last 200 ms
RASTER_NEURONS = {"E": 40, "I": 10}


def run(
    out_dir: Path,
    *,
    figures_dir: Path | None = None,
    panels: str = "ABCD",
    duration: float = 1.2,
    n_excitatory: int = 4000,
    seed: int = 0,
) -> dict[str, Any]:
    """Simulate the states of ``panels``, write the figures and ``report.json``; returns the report."""
    unknown = [p for p in panels if p not in FIG8_REGIMES]
    if unknown or not panels:
        raise ConfigError(f"--panels must be letters of {''.join(FIG8_REGIMES)}, got {panels!r}")
    if not duration > TRANSIENT + SHOWN:
        raise ConfigError(f"--duration must exceed {TRANSIENT + SHOWN} s (transient + the window shown)")
    params = BrunelParameters()
    report: dict[str, Any] = {
        "network": {"C_I": params.gamma * params.C_E, "epsilon": params.C_E / n_excitatory, **params.as_dict()},
        "simulation": {"duration": duration, "dt": 1e-4, "transient": TRANSIENT, "seed": seed},
        "regimes": {},
    }
    results = {}
    for panel in panels:
        start = time.perf_counter()
        result = simulate_regime(panel, duration=duration, n_excitatory=n_excitatory, params=params, seed=seed)
        stats = regime_statistics(result, panel, params, transient=TRANSIENT)
        stats["seconds"] = round(time.perf_counter() - start, 1)
        report["regimes"][panel] = stats
        results[panel] = result
        populations = json.loads(result.attrs["circuit"])["populations"]
        report["network"]["populations"] = {p["name"]: p["n"] for p in populations}
        e = stats["populations"]["E"]
        print(
            f"{panel} {stats['regime']:8s} -> {stats['classified_as']:12s} rate {e['rate']:6.1f} Hz "
            f"(mean field {stats['mean_field']['rate']:6.1f}), CV {e['cv']:.2f}, chi {e['chi']:.2f} / "
            f"{e['chi_slow']:.2f}, peak {e['peak_frequency']:.0f} Hz ({stats['seconds']} s)",
            flush=True,
        )
    _write(out_dir, figures_dir, report, results, duration)
    return report


def _write(
    out_dir: Path, figures_dir: Path | None, report: dict[str, Any], results: dict[str, Any], duration: float
) -> None:
    shown = {"start": duration - SHOWN, "window": SHOWN}  # the last SHOWN seconds
    figures = {}
    for panel, result in results.items():
        regime = FIG8_REGIMES[panel]
        title = f"{panel}: {regime.name} (g = {regime.g:g}, nu_ext/nu_thr = {regime.nu_ext_over_nu_thr:g})"
        name = f"brunel_{panel}_{regime.name.replace(' ', '_')}.png"
        figures[name] = plot_population_activity({title: result}, bin_size=1e-4, neurons=RASTER_NEURONS, **shown)
    combined = {f"{p}: {FIG8_REGIMES[p].name}": r for p, r in results.items()}
    figures["brunel_regimes.png"] = plot_population_activity(combined, bin_size=1e-4, neurons=RASTER_NEURONS, **shown)
    # checked, staged and moved into place on success; files of yours in --out are never touched
    write_report(out_dir, NAME, report, figures, also=figures_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("reports/examples") / NAME)
    parser.add_argument("--figures", type=Path, default=None, help="also write the PNGs here")
    parser.add_argument("--panels", default="ABCD", help="which panels of Fig. 8 (default ABCD)")
    parser.add_argument("--duration", type=float, default=1.2, help="seconds per state (default 1.2)")
    parser.add_argument("--n-excitatory", type=int, default=4000, help="N_E (N_I = N_E/4; default 4000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        check_out_folder(args.out)  # before any work: a file, a read-only or a foreign folder is refused
        run(
            args.out,
            figures_dir=args.figures,
            panels=args.panels,
            duration=args.duration,
            n_excitatory=args.n_excitatory,
            seed=args.seed,
        )
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"report in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

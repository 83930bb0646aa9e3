"""Salamander retinal ganglion cells (Onken et al. 2016): noise ceilings and the spike-timing code of flashed images.

What it reproduces.
Gollisch lab recordings from the isolated salamander retina (multi-electrode array), published with Onken, Liu,
Karunasekara, Delis, Gollisch & Panzeri (2016), "Using matrix and tensor factorizations for the single-trial
analysis of population spike trains", PLoS Comput. Biol. 12:e1005189 (data: Dryad doi:10.5061/dryad.4ch10,
CC0). Flashed stimuli (``NaturalImages1/2.mat``: 60 natural images x 30 repeats, 38 and 49 cells;
``Shifts1/2.mat``: 9 x 9 image/shift combinations x 19 repeats, 23 and 37 cells; spike times in a 300 ms window
after onset) and natural movies (``Movie*.mat``: 18 s x 30 repeats). The stimulus pixels are not in the data
set, so no stimulus-driven model can be fitted here: the ceilings below are what any model of these cells
could reach. The script computes, with the package's public functions,

1. noise ceilings per cell: split-half reliability with the Spearman-Brown correction
   (``neuromodels.analysis.ceiling_split_half``) of the spike count per image, of the first-spike latency per
   image (trials without a spike left out), and of the movie responses at 10, 30 and 100 ms bins;
2. the first-spike latency per image, cell and trial (``neuromodels.analysis.first_spike_latency``), its
   jitter across repeats and the Fano factor of the spike count
   (``neuromodels.analysis.repeat_statistics``), over the (image, cell) pairs with a spike in at least half
   of the trials;
3. how much image information the latency and the count carry: single-trial decoding of the image
   (``neuromodels.analysis.decode_stimulus``, leave-one-repeat-out nearest class mean; fraction correct and
   the information of the confusion matrix minus its label-shuffled bias) from each cell's count, each cell's
   latency, and from the population's counts, latencies and whole spike trains (10 ms bins).

The claims compared with: Gollisch & Meister (2008, Science 319:1108) report that certain salamander ganglion
cells encode the spatial structure of a flashed image in the relative timing of their first spikes, robustly to
the trial-to-trial noise of the latencies; Berry, Warland & Meister (1997, PNAS 94:5411) that the timing of a
ganglion cell's firing event carries several times more information than its spike count; Onken et al. (2016, abstract and Fig. 11) report that first-spike latencies carry most of the information
of the whole spike train about natural images and that timing information on a ~10 ms scale could not be
recovered from the spike counts. Their numbers come from space-by-time tensor factorizations and other decoders;
ours from a simpler decoder, so only the direction of the comparison is checked (docs/examples/salamander_onken.md).

Data and licence.
The Dryad files are CC0. Point ``--data`` at a folder holding ``onken2016-salamander-rgc/*.mat``; by default the
script looks in ``../shared/data`` beside the repository and stops with exit status 2 and a message when the
files are absent.

Run:

    python examples/salamander_onken.py [--data DIR] [--out reports/examples/salamander_onken] [--figures DIR]

Writes ``report.json`` and PNG figures to ``--out`` (``--figures DIR``: the PNGs there too; the docs use
``docs/figures/examples/salamander_onken``). About 30 s on 2 CPU cores; the only randomness (ceiling splits,
label shuffles) is seeded.
Public API only: ``neuromodels.datasets``, ``neuromodels.analysis``, ``neuromodels.errors``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neuromodels import analysis, check_out_folder, write_report
from neuromodels import datasets as nd
from neuromodels.errors import ConfigError, DataFormatError

NAME = "salamander_onken"
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FOLDER = "onken2016-salamander-rgc"
FLASHED = ("NaturalImages1.mat", "NaturalImages2.mat", "Shifts1.mat", "Shifts2.mat")
MOVIES = ("Movie1Exp1.mat", "Movie1Exp2.mat", "Movie2Exp1.mat", "Movie2Exp2.mat")
MOVIE_BINS_S = (0.01, 0.03, 0.1)
TRAIN_BIN_MS = 10  # whole-spike-train decoding: 30 bins of 10 ms per cell
N_SHUFFLES = 10
SEED = 0


def find_files(data_dir: Path) -> dict[str, Path]:
    """``name -> path`` of every file the example reads; ``FileNotFoundError`` naming what is missing."""
    folder = data_dir / FOLDER
    missing = [name for name in (*FLASHED, *MOVIES) if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Onken et al. 2016 data not found: {folder} lacks {', '.join(missing)}. Download the .mat files from "
            "Dryad (doi:10.5061/dryad.4ch10, CC0) into DIR/onken2016-salamander-rgc/ and pass --data DIR."
        )
    return {name: folder / name for name in (*FLASHED, *MOVIES)}


def movie_assembly(binned: xr.DataArray) -> xr.DataArray:
    """A movie ``(presentation=repeat, neuroid, time_bin)`` -> an assembly whose 'stimuli' are the time bins.

    The ceilings take repeated presentations of stimuli; for a movie each time bin is one stimulus, shown once per
    repeat. Built with the public constructor :func:`neuromodels.datasets.assembly_from_arrays` (a repeat slot that
    is NaN for every cell and bin is dropped; here all 30 are real).
    """
    values = binned.transpose("presentation", "neuroid", "time_bin").values.astype(np.float64)
    bins = [f"{start:g}ms" for start in binned["time_bin_start"].values]
    return nd.assembly_from_arrays(
        values,
        bins,
        dims=("repeat", "neuroid", "stimulus"),
        neuroid_ids=binned["neuroid_id"].values,
        source=binned.attrs.get("source"),
        attrs={"bin_size_s": binned.attrs.get("bin_size_s")},
    )


def _median(values: Any) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmedian(np.asarray(values, dtype=np.float64)))


def _net_bits(decoded: xr.Dataset) -> np.ndarray:
    return np.asarray(decoded["information_bits"] - decoded["information_shuffled_bits"], dtype=np.float64)


def _ceiling(values: xr.DataArray) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a cell that never fires in one half has no ceiling
        return analysis.ceiling_split_half(values)


def flashed_statistics(path: Path) -> tuple[dict, dict]:
    """Key numbers of one flashed-stimulus file, and per-cell arrays for the figures."""
    binned = nd.load(path, bin_size=0.001)  # spike times are whole ms: 1 ms bins are exact
    counts = binned.sum("time_bin")
    latency = analysis.first_spike_latency(binned)
    n_reps = int(counts["repetition"].max()) + 1
    responsive = analysis.repeat_statistics(latency)["n_repeats"] >= n_reps / 2  # a spike in half the trials
    latency_stats = analysis.repeat_statistics(latency).where(responsive)
    count_stats = analysis.repeat_statistics(counts).where(responsive)

    ceiling_count = _ceiling(counts)
    ceiling_latency = _ceiling(latency)
    filled = latency.fillna(latency.attrs["window_end_ms"])  # no spike: "later than the window"
    cell_count = analysis.decode_stimulus(counts, per_neuroid=True, n_shuffles=N_SHUFFLES, seed=SEED)
    cell_latency = analysis.decode_stimulus(filled, per_neuroid=True, n_shuffles=N_SHUFFLES, seed=SEED)
    train = binned.coarsen(time_bin=TRAIN_BIN_MS).sum()
    population = {
        name: analysis.decode_stimulus(values, n_shuffles=2, seed=SEED)
        for name, values in (("count", counts), ("latency", filled), ("spike_train_10ms", train))
    }
    count_bits, latency_bits = _net_bits(cell_count), _net_bits(cell_latency)
    numbers = {
        "n_cells": int(counts.sizes["neuroid"]),
        "n_stimuli": int(np.unique(counts["stimulus_id"].values).size),
        "n_repeats": n_reps,
        "fraction_of_trials_with_a_spike": float(np.isfinite(latency.values).mean()),
        "n_responsive_pairs": int(responsive.sum()),
        "median_latency_ms": _median(latency_stats["mean"]),
        "median_latency_jitter_ms": _median(latency_stats["std"]),
        "median_count": _median(count_stats["mean"]),
        "median_count_fano_factor": _median(count_stats["fano_factor"]),
        "ceiling_count": float(ceiling_count["ceiling"]),
        "ceiling_latency": float(ceiling_latency["ceiling"]),
        "ceiling_count_per_cell": ceiling_count["ceiling_per_neuroid"].values.tolist(),
        "ceiling_latency_per_cell": ceiling_latency["ceiling_per_neuroid"].values.tolist(),
        "chance": 1.0 / int(np.unique(counts["stimulus_id"].values).size),
        "cell_accuracy_count_median": _median(cell_count["accuracy"]),
        "cell_accuracy_latency_median": _median(cell_latency["accuracy"]),
        "cell_bits_count_median": _median(count_bits),
        "cell_bits_latency_median": _median(latency_bits),
        "fraction_of_cells_latency_more_informative": float(np.mean(latency_bits > count_bits)),
        "population_accuracy": {name: float(d["accuracy"]) for name, d in population.items()},
        "population_bits": {
            name: float(d["information_bits"] - d["information_shuffled_bits"]) for name, d in population.items()
        },
    }
    arrays = {
        "binned": binned,
        "latency": latency,
        "count_bits": count_bits,
        "latency_bits": latency_bits,
        "jitter": latency_stats["std"].values.ravel(),
        "fano": count_stats["fano_factor"].values.ravel(),
        "ceiling_count": ceiling_count["ceiling_per_neuroid"].values,
        "ceiling_latency": ceiling_latency["ceiling_per_neuroid"].values,
    }
    return numbers, arrays


def movie_ceilings(path: Path) -> dict:
    """Split-half ceiling (median and per cell) of one movie at each bin size of ``MOVIE_BINS_S``."""
    out: dict[str, Any] = {}
    for bin_size in MOVIE_BINS_S:
        ceiling = _ceiling(movie_assembly(nd.load(path, bin_size=bin_size)))
        out[f"{bin_size * 1e3:g}ms"] = {
            "ceiling": float(ceiling["ceiling"]),
            "ceiling_per_cell": ceiling["ceiling_per_neuroid"].values.tolist(),
        }
    return out


def figures(flashed: dict[str, dict], numbers: dict) -> dict[str, Any]:
    """``file name -> matplotlib Figure`` (no pyplot)."""
    from matplotlib.figure import Figure

    out = {}
    # rasters: the cell with the most reliable latency in NaturalImages2, four images
    arrays = flashed["NaturalImages2.mat"]
    cell = int(np.nanargmax(arrays["ceiling_latency"]))
    binned = arrays["binned"].isel(neuroid=cell)
    latency = arrays["latency"].isel(neuroid=cell)
    mean_latency = latency.groupby("stimulus_id").mean()
    fired = np.isfinite(latency).groupby("stimulus_id").mean()
    order = [s for s in mean_latency.sortby(mean_latency)["stimulus_id"].values if fired.sel(stimulus_id=s) >= 0.5]
    shown = [order[int(i)] for i in np.linspace(0, len(order) - 1, 4)]
    fig = Figure(figsize=(7.0, 3.6), layout="constrained")
    ax = fig.add_subplot()
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    row = 0
    for image, color in zip(shown, colors):
        trials = binned.where(binned["stimulus_id"] == image, drop=True)
        for t in range(trials.sizes["presentation"]):
            times = trials["time_bin_start"].values[trials.isel(presentation=t).values > 0]
            ax.plot(times, np.full(times.size, row), "|", color=color, ms=4)
            row += 1
        row += 3
    ax.set_xlim(0, 300)
    ax.set_yticks([])
    ax.set_xlabel("time after image onset (ms)")
    ax.set_ylabel("4 images x 30 repeats")
    ax.set_title(
        f"NaturalImages2, cell {arrays['binned']['neuroid_id'].values[cell]}: the first spike shifts with "
        "the image, reliably across repeats",
        fontsize=9,
    )
    out["salamander_rasters.png"] = fig

    fig = Figure(figsize=(9.0, 3.4), layout="constrained")
    axes = fig.subplots(1, 3)
    for (name, arrays), marker in zip(flashed.items(), "os^v"):
        axes[0].plot(arrays["count_bits"], arrays["latency_bits"], marker, ms=4, alpha=0.7, label=name[:-4])
    top = max(max(np.nanmax(a["count_bits"]), np.nanmax(a["latency_bits"])) for a in flashed.values()) * 1.05
    axes[0].plot([0, top], [0, top], color="0.6", lw=0.8)
    axes[0].set_xlabel("spike count: bits (shuffle-corrected)")
    axes[0].set_ylabel("first-spike latency: bits")
    axes[0].set_title("single-cell image information", fontsize=9)
    axes[0].legend(fontsize=7, frameon=False)
    jitter = np.concatenate([a["jitter"] for a in flashed.values()])
    fano = np.concatenate([a["fano"] for a in flashed.values()])
    axes[1].hist(jitter[np.isfinite(jitter)], bins=40, color="tab:blue")
    axes[1].set_xlabel("latency jitter across repeats (ms)")
    axes[1].set_title(f"median {np.nanmedian(jitter):.1f} ms", fontsize=9)
    axes[2].hist(fano[np.isfinite(fano)], bins=40, color="tab:orange")
    axes[2].axvline(1.0, color="k", lw=0.8, ls="--")
    axes[2].set_xlabel("spike-count Fano factor (Poisson = 1)")
    axes[2].set_title(f"median {np.nanmedian(fano):.2f}", fontsize=9)
    out["salamander_latency_vs_count.png"] = fig

    fig = Figure(figsize=(8.0, 3.4), layout="constrained")
    axes = fig.subplots(1, 2)
    rng = np.random.default_rng(SEED)  # horizontal scatter of the dots only
    for i, arrays in enumerate(flashed.values()):
        for offset, key, color in ((-0.17, "ceiling_count", "tab:orange"), (0.17, "ceiling_latency", "tab:blue")):
            values = arrays[key]
            axes[0].plot(
                i + offset + rng.uniform(-0.07, 0.07, values.size),
                values,
                "o",
                ms=3,
                alpha=0.7,
                color=color,
                label=("spike count" if key == "ceiling_count" else "first-spike latency") if i == 0 else None,
            )
    axes[0].set_xticks(range(len(flashed)), [name[:-4] for name in flashed], fontsize=7)
    axes[0].set_ylabel("split-half ceiling per cell")
    axes[0].set_title("flashed images: Spearman-Brown split-half reliability", fontsize=9)
    axes[0].legend(fontsize=7, frameon=False, loc="lower left")
    bins_ms = [b * 1e3 for b in MOVIE_BINS_S]
    for name, result in numbers["movies"].items():
        axes[1].plot(range(len(bins_ms)), [result[f"{b:g}ms"]["ceiling"] for b in bins_ms], "o-", label=name[:-4])
    axes[1].set_xticks(range(len(bins_ms)), [f"{b:g}" for b in bins_ms])  # categorical: no log-axis mathtext
    axes[1].set_xlabel("bin size (ms)")
    axes[1].set_ylabel("median ceiling over cells")
    axes[1].set_title("natural movies (30 repeats)", fontsize=9)
    axes[1].legend(fontsize=7, frameon=False)
    out["salamander_ceilings.png"] = fig
    return out


def run(data_dir: Path, out_dir: Path, *, figures_dir: Path | None = None) -> dict:
    """Read every file, compute, write ``report.json`` and the figures; returns the key numbers."""
    paths = find_files(data_dir)
    numbers: dict[str, Any] = {"source": str(data_dir / FOLDER), "flashed": {}, "movies": {}}
    flashed_arrays = {}
    for name in FLASHED:
        numbers["flashed"][name], flashed_arrays[name] = flashed_statistics(paths[name])
    for name in MOVIES:
        numbers["movies"][name] = movie_ceilings(paths[name])
    made = figures(flashed_arrays, numbers)
    # checked, staged and moved into place on success; files of yours in --out are never touched
    write_report(out_dir, NAME, numbers, made, also=figures_dir)
    return numbers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"folder holding {FOLDER}/")
    parser.add_argument("--out", type=Path, default=Path("reports/examples") / NAME)
    parser.add_argument("--figures", type=Path, default=None, help="also write the PNGs here")
    args = parser.parse_args(argv)
    try:
        check_out_folder(args.out)  # before any work: a file, a read-only or a foreign folder is refused
        numbers = run(args.data, args.out, figures_dir=args.figures)
    except (FileNotFoundError, DataFormatError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name, n in numbers["flashed"].items():
        pop = n["population_accuracy"]
        print(
            f"{name}: {n['n_cells']} cells, ceiling count {n['ceiling_count']:.3f} latency {n['ceiling_latency']:.3f}; "
            f"jitter {n['median_latency_jitter_ms']:.1f} ms, Fano {n['median_count_fano_factor']:.2f}; per-cell bits "
            f"count {n['cell_bits_count_median']:.2f} latency {n['cell_bits_latency_median']:.2f}; population "
            f"accuracy count {pop['count']:.2f} latency {pop['latency']:.2f} train {pop['spike_train_10ms']:.2f}"
        )
    for name, result in numbers["movies"].items():
        print(f"{name}: median ceiling " + ", ".join(f"{k} {v['ceiling']:.3f}" for k, v in result.items()))
    print(f"report in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

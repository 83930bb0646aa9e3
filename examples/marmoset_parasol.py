"""Marmoset parasol ganglion cells (Krüppel et al. 2024): reversing gratings, ceilings, frequency doubling, LN vs LN-LN.

What it reproduces.
Gollisch lab multi-electrode recording from one isolated marmoset retina, published with Krüppel, Khani, Schreyer,
Sridhar, Ramakrishna, Zapp, Mietsch, Karamanlis & Gollisch (2024), "Applying super-resolution and tomography
concepts to identify receptive field subunits in the retina", PLoS Comput. Biol. 20:e1012370 (data: G-Node GIN,
no licence given). 49 parasol cells (31 OFF, 18 ON, ``cell_classification.txt``) and their spike times
(``spikes.npy``) during contrast-reversing square-wave gratings (``stimchanges.npy``); the parameters of the
Ricker-stripe flashes (``rickerstripes_stimulus.npz``: position and angle of 8,787 flashes;
``rickerstripes_stimchanges.npy``) of the paper's tomographic method. The spike times of this folder cover the
grating recording only (0-865 s; the Ricker flashes run for 5,274 s in a separate recording whose spikes are not
here: spikes aligned to the flash times are not modulated, ``report.json`` ``ricker``), so no model can be
fitted to the Ricker flashes from these data. The script

1. reconstructs both stimuli from their parameters: a Ricker stripe (``ricker_frame``: the profile
   ``(1 - (d/h)^2) exp(-(d/h)^2 / 2)`` across the stripe, negative side bands multiplied by a surround factor and
   clipped to [-1, 1]; Krüppel et al. Fig. 1F and the authors' ``STR.py``) at a position and angle, and the
   gratings (``grating_profile``: bar widths 1-64 px and full field, in 1-8 spatial phases, 23 gratings shown
   twice, 25 half-periods of 42 frames at 85 Hz each after 1 s of gray; the direction of the phase steps is read
   from the data, ``phase_consistency``);
2. builds a recording (``neuromodels.datasets.recording_from_arrays``, 10 ms bins, cell types) and assemblies
   (``assembly_from_arrays``) of the responses to the 24 reversals of each grating polarity after the first, and
   computes split-half noise ceilings (``neuromodels.analysis.ceiling_split_half``) of the spike count per
   reversal and of the 10 ms PSTH;
3. computes the first and second harmonic (F1, F2) of each grating's cycle PSTH
   (``neuromodels.analysis.harmonics``) and Hochstein & Shapley's nonlinearity index (max F2 / max F1) per cell;
4. fits per cell, on the gratings (4-fold cross-validation over the 23 gratings; the response is the spike count
   in the half-period after a reversal), an LN model (one Gaussian receptive field, softplus) and a subunit LN-LN
   model (the same envelope pooling rectified Gaussian subunits, beside a linear pathway, so LN is nested in it),
   both small torch modules trained with ``neuromodels.fitting.fit`` (Poisson loss), and scores the held-out
   gratings with CC and CC_norm (``neuromodels.analysis.cc_norm``). The gratings fix a receptive field's position
   only modulo 128 px (every grating period divides it), which does not matter for the predictions.

Assumptions (the data hold no screen geometry; docs/examples/marmoset_parasol.md lists them): bars vary along one
screen axis of 800 px (the full-field grating is 800 px wide), the spatial phases of a width ``w`` with ``n``
phases are shifts ``k w / n``, the Ricker stripes follow the geometry of the analysis script written for these files
(800 x 600 px screen, parallel stripes every 50 px, positions fractions of that spacing, "black bars": dark centre
lines), and their half width and surround factor are the paper's simulation optimum (2.5 px of a 40 px field,
s = 2.5) scaled to the 50 px spacing.

Data and licence.
The GIN repository has no licence: tests only; the script never copies the data. Point ``--data`` at a folder holding
``marmoset-parasol-reversegratings/``; by default it looks in ``../shared/data`` beside the repository and stops
with exit status 2 and a message when the files are absent.

Run:

    python examples/marmoset_parasol.py [--data DIR] [--out reports/examples/marmoset_parasol] [--figures DIR]
                                        [--quick] [--seed 0]

Writes ``report.json`` and PNG figures to ``--out`` (``--figures DIR``: the PNGs there too; the docs use
``docs/figures/examples/marmoset_parasol``). About 3-4 min on 2 CPU cores (``--quick``: 8 cells, fewer epochs, ~25 s);
seeded. Public API only: ``neuromodels.datasets``, ``neuromodels.fitting``, ``neuromodels.analysis``,
``neuromodels.errors``.
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
from neuromodels.analysis import harmonic_amplitudes, nonlinearity_index
from neuromodels.errors import ConfigError, DataFormatError

NAME = "marmoset_parasol"
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FOLDER = "marmoset-parasol-reversegratings"
FILES = (
    "spikes.npy",
    "stimchanges.npy",
    "cell_classification.txt",
    "rickerstripes_stimulus.npz",
    "rickerstripes_stimchanges.npy",
)
SEED = 0

# ---- grating geometry: 23 gratings (bar width in px, number of spatial phases), the sequence shown twice
FRAME_RATE_HZ = 85.0  # inferred: a half-period lasts 0.4942 s = 42 frames, the gray pulse 1.000 s = 85 frames
SCREEN_PX = 800  # the widest "grating" is one 800 px bar: full field
PIXEL_UM = 7.5  # assumed (the lab's marmoset rig, Sridhar et al. 2025); not stated in these data
GRATINGS = ((1, 1), (2, 1), (4, 2), (8, 2), (16, 4), (32, 4), (64, 8), (800, 1))
N_SWEEPS = 2
SEGMENTS = 25  # half-periods per grating presentation; the first (onset after gray) is left out
BIN_S = 0.01  # the recording's bins
WINDOW_BINS = 49  # bins per half-period after each reversal: 49 x ~10.08 ms, so that two make one cycle exactly

# ---- Ricker stripes (Krüppel et al. 2024, Fig. 1F, Fig. 3D; authors' STR.py ``Ricker_wavelet``)
RICKER_SURROUND = 2.5  # the paper's optimum surround factor s
SCREEN_HEIGHT_PX = 600  # the analysis script written for these files: an 800 x 600 px screen
RICKER_SPACING_PX = 50  # that script's BAR_DISTANCE: parallel stripes every 50 px; positions are fractions of it
RICKER_HALF_WIDTH_PX = 2.5 / 40 * RICKER_SPACING_PX  # assumed: the paper's optimum, 2.5 px of its 40 px field
RICKER_POLARITY = -1.0  # assumed dark centre lines: that script calls the flashed stripes "black bars"

# ---- models
N_FOLDS = 4
N_STARTS = 8  # receptive-field centres tried per cell (every 100 px), each from two widths: the best fit is kept
START_WIDTHS_PX = (8.0, 32.0)
MODEL_PX = 2  # the models see the screen in 2 px samples (a 1 px grating averages to zero there)
SUBUNIT_SIGMAS_PX = (2.0, 4.0, 8.0, 16.0)  # subunit widths tried (15-120 um at the assumed 7.5 um per px)


# ------------------------------------------------------------------------------------------------ stimuli
def ricker_profile(distance: np.ndarray, half_width: float, surround_factor: float = RICKER_SURROUND) -> np.ndarray:
    """Ricker (Mexican-hat) profile across a stripe, at ``distance`` px from its centre line.

    ``(1 - (d/h)^2) exp(-(d/h)^2 / 2)``: 1 on the centre line, 0 at ``|d| = h``, side bands multiplied by the
    surround factor and the result clipped to [-1, 1] (Krüppel et al. 2024; the authors' ``STR.py``).
    """
    u = np.square(np.asarray(distance, dtype=np.float64) / half_width)
    value = (1.0 - u) * np.exp(-u / 2.0)
    value = np.where(value < 0, value * surround_factor, value)
    return np.clip(value, -1.0, 1.0)


def ricker_frame(
    position: float,
    angle: float,
    *,
    width_px: int = SCREEN_PX,
    height_px: int = SCREEN_HEIGHT_PX,
    spacing_px: float = RICKER_SPACING_PX,
    half_width_px: float = RICKER_HALF_WIDTH_PX,
    surround_factor: float = RICKER_SURROUND,
    polarity: float = RICKER_POLARITY,
) -> np.ndarray:
    """One Ricker-stripe flash as a ``(y, x)`` contrast frame of the screen (rows top to bottom).

    The geometry of the analysis script written for these files (``Correct_sinogram``): parallel stripes every
    ``spacing_px``; a pixel at ``(x, y)`` has the signed distance ``d = cos(a) (x - cx) - sin(a) (y - cy)`` across
    the stripes from the screen centre ``(cx, cy)``, and the stripe of ``position`` ``p`` (in ``[-0.5, 0.5)``, a
    fraction of the spacing) lies on it when ``frac(d / spacing) = 0.5 - p``. Each pixel takes the Ricker profile
    of its distance to the nearest centre line, times ``polarity``.
    """
    cx, cy = (width_px - 1) / 2.0, (height_px - 1) / 2.0
    rows, cols = np.mgrid[0:height_px, 0:width_px].astype(np.float64)
    across = (np.cos(angle) * (cols - cx) - np.sin(angle) * (rows - cy)) / spacing_px - (0.5 - position)
    distance = (across - np.round(across)) * spacing_px
    return (polarity * ricker_profile(distance, half_width_px, surround_factor)).astype(np.float32)


def grating_conditions() -> list[tuple[int, int]]:
    """The 23 gratings as ``(bar width px, shift px)``: widths in ``GRATINGS``; phase ``k`` of ``n`` moves the
    pattern by ``k * width / n`` px towards lower x (shift ``-k * width / n`` modulo the period ``2 * width``).

    The direction is read from the data: with it, every cell's preferred polarity across all gratings of 16-64 px
    is explained by one receptive-field position (``phase_consistency``); with the opposite direction no position
    explains it.
    """
    return [(width, (-k * width // n) % (2 * width)) for width, n in GRATINGS for k in range(n)]


def phase_consistency(targets: np.ndarray, types: np.ndarray) -> np.ndarray:
    """Per cell, how well one receptive-field point explains the sign of each grating's polarity preference.

    ``targets``: ``(stimulus, cell)`` mean counts (grating x polarity + then -). For the gratings of 16-64 px the
    weighted agreement ``sum_g |d_g| sign(p d_g) profile_g(x) / sum_g |d_g|`` (``d_g`` = count after + minus
    count after -, ``p`` = +1 ON, -1 OFF), maximised over the screen position ``x``: 1 when a point exists on the
    bright bar of every preferred phase.
    """
    conditions = grating_conditions()
    chosen = [i for i, (w, _) in enumerate(conditions) if 16 <= w <= 64]
    profiles = np.stack([grating_profile(*conditions[i]) for i in chosen])  # (grating, x)
    diff = targets[0::2][chosen] - targets[1::2][chosen]  # (grating, cell)
    sign = np.where(types == "ON", 1.0, -1.0)[None, :] * np.sign(diff)
    weight = np.abs(diff)
    agreement = np.einsum("gc,gx->cx", sign * weight, profiles) / np.maximum(weight.sum(axis=0), 1e-12)[:, None]
    return agreement.max(axis=1)


def grating_profile(width_px: int, shift_px: int = 0, size_px: int = SCREEN_PX) -> np.ndarray:
    """Square-wave grating across the bars: +1 on the first bar (from ``shift_px``), -1 on the next, ... (float32)."""
    x = np.arange(size_px)
    return np.where(((x - shift_px) // width_px) % 2 == 0, 1.0, -1.0).astype(np.float32)


def reversal_schedule(stimchanges: np.ndarray, *, file: Any = None) -> dict[str, np.ndarray]:
    """Onset, grating index, polarity and segment of every half-period used (the first of each presentation left out).

    ``stimchanges``: ``n_presentations * (1 + SEGMENTS) + 1`` times: per presentation the start of the gray pulse,
    then the onsets of its 25 half-periods; the last entry ends the last one. Polarity +1 is the phase shown first
    (a bright full field), -1 the reversed one.
    """
    n_conditions = len(grating_conditions())
    expected = N_SWEEPS * n_conditions * (1 + SEGMENTS) + 1
    times = np.asarray(stimchanges, dtype=np.float64)
    if times.ndim != 1 or times.size != expected or not np.all(np.diff(times) > 0):
        raise DataFormatError(
            file=file,
            field="stimchanges",
            expected=f"{expected} increasing times ({N_SWEEPS} x {n_conditions} gratings x (1 gray + {SEGMENTS}))",
            found=f"shape {times.shape}" + ("" if times.size < 2 else f", min step {np.diff(times).min():.3g} s"),
        )
    rows = []
    for p in range(N_SWEEPS * n_conditions):
        for segment in range(1, SEGMENTS):
            onset = times[p * (1 + SEGMENTS) + 1 + segment]
            rows.append((onset, p % n_conditions, 1 if segment % 2 == 0 else -1, p // n_conditions, segment))
    onset, condition, polarity, sweep, segment = (np.array(c) for c in zip(*rows))
    return {"onset": onset, "condition": condition, "polarity": polarity, "sweep": sweep, "segment": segment}


# ------------------------------------------------------------------------------------------------ data
def find_files(data_dir: Path) -> dict[str, Path]:
    """``name -> path`` of every file the example reads; ``FileNotFoundError`` naming what is missing."""
    folder = data_dir / FOLDER
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Krüppel et al. 2024 marmoset data not found: {folder} lacks {', '.join(missing)}. Download them from "
            "the authors' G-Node GIN repository into DIR/marmoset-parasol-reversegratings/ and pass --data DIR."
        )
    return {name: folder / name for name in FILES}


def read_cell_types(path: Path, n_cells: int) -> tuple[list[str], list[str]]:
    """``(cluster ids, 'ON'/'OFF')`` from ``cell_classification.txt`` (``id<TAB>On parasol`` lines, # comments)."""
    ids, types = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2 or parts[1].split()[0].lower() not in ("on", "off"):
            raise DataFormatError(
                file=path, field=f"line {number}", expected="'<cluster id><TAB>On|Off parasol'", found=repr(line)
            )
        ids.append(parts[0].strip())
        types.append(parts[1].split()[0].upper())
    if len(ids) != n_cells:
        raise DataFormatError(
            file=path, field="cells", expected=f"{n_cells} lines (one per spike train)", found=f"{len(ids)}"
        )
    return ids, types


def load(paths: dict[str, Path]) -> dict[str, Any]:
    """Read and check every file; spike trains as a list of sorted float arrays (s)."""
    raw = np.load(paths["spikes.npy"], allow_pickle=True)  # an object array of per-unit spike-time arrays
    trains = [np.asarray(t, dtype=np.float64).ravel() for t in raw]
    ids, types = read_cell_types(paths["cell_classification.txt"], len(trains))
    ricker = np.load(paths["rickerstripes_stimulus.npz"])
    if "positions" not in ricker.files or "angles" not in ricker.files:
        raise DataFormatError(
            file=paths["rickerstripes_stimulus.npz"],
            field="positions/angles",
            expected="arrays 'positions' and 'angles'",
            found=str(ricker.files),
        )
    positions, angles = np.asarray(ricker["positions"]), np.asarray(ricker["angles"])
    ricker_changes = np.load(paths["rickerstripes_stimchanges.npy"])
    if positions.shape != angles.shape or ricker_changes.size != 2 * positions.size + 1:
        raise DataFormatError(
            file=paths["rickerstripes_stimchanges.npy"],
            field="rickerstripes_stimchanges",
            expected=f"2 x {positions.size} + 1 times (onset and offset per flash)",
            found=f"{ricker_changes.size}",
        )
    schedule = reversal_schedule(np.load(paths["stimchanges.npy"]), file=paths["stimchanges.npy"])
    return {
        "trains": trains,
        "ids": ids,
        "types": np.array(types),
        "positions": positions,
        "angles": angles,
        "ricker_changes": ricker_changes,
        "schedule": schedule,
        "source": str(paths["spikes.npy"].parent),
    }


def aligned_counts(trains: list[np.ndarray], onsets: np.ndarray, n_bins: int, bin_s: float = BIN_S) -> np.ndarray:
    """Spike counts ``(onset, time_bin, cell)`` in ``n_bins`` bins of ``bin_s`` after each onset (left-closed)."""
    edges = onsets[:, None] + bin_s * np.arange(n_bins + 1)[None, :]
    out = np.empty((onsets.size, n_bins, len(trains)), dtype=np.int64)
    for c, train in enumerate(trains):
        out[:, :, c] = np.diff(np.searchsorted(train, edges, side="left"), axis=1)
    return out


def build_recording(data: dict[str, Any]) -> xr.Dataset:
    """The grating epoch as a spike-only recording (10 ms bins) with the cell types, via the public constructor."""
    t_stop = float(data["schedule"]["onset"].max()) + 0.5
    counts, _, _ = nd.bin_spike_times(data["trains"], BIN_S, t_start=0.0, t_stop=t_stop)
    return nd.recording_from_arrays(
        None,
        counts,
        1.0 / BIN_S,
        cell_ids=data["ids"],
        cell_types=data["types"],
        species="marmoset",
        source=data["source"],
    )


def half_period(data: dict[str, Any]) -> float:
    """Median time between reversals within a presentation (s): 0.4942 s, 42 frames at 85 Hz."""
    sched = data["schedule"]
    steps = np.diff(sched["onset"])[np.diff(sched["segment"]) == 1]
    return float(np.median(steps))


def stimulus_names() -> list[str]:
    """``'w{width}s{shift}{+|-}'`` per (grating, polarity), in the order of the models' stimuli."""
    return [f"w{w}s{s}{'+' if p > 0 else '-'}" for w, s in grating_conditions() for p in (1, -1)]


def response_cube(data: dict[str, Any]) -> np.ndarray:
    """``(stimulus, repeat, time_bin, cell)`` counts: 46 stimuli (grating x polarity) x 24 reversals x 49 bins."""
    sched = data["schedule"]
    counts = aligned_counts(data["trains"], sched["onset"], WINDOW_BINS, half_period(data) / WINDOW_BINS)
    n_cond = len(grating_conditions())
    per = [counts[(sched["condition"] == g) & (sched["polarity"] == p)] for g in range(n_cond) for p in (1, -1)]
    return np.stack(per)  # every stimulus has 2 sweeps x 12 reversals


def assemblies(cube: np.ndarray, data: dict[str, Any]) -> tuple[xr.DataArray, xr.DataArray]:
    """Count per reversal and 10 ms PSTH as assemblies (public constructor, NaN-padded-repeat layout)."""
    names = stimulus_names()
    count = nd.assembly_from_arrays(
        cube.sum(axis=2).astype(np.float64),
        names,
        dims=("stimulus", "repeat", "neuroid"),
        neuroid_ids=data["ids"],
        region="retina",
        source=data["source"],
    )
    n_stim, n_rep, n_bins, n_cells = cube.shape
    flat = cube.transpose(0, 2, 1, 3).reshape(n_stim * n_bins, n_rep, n_cells).astype(np.float64)
    psth_ids = [f"{name}@bin{b}" for name in names for b in range(n_bins)]
    psth = nd.assembly_from_arrays(
        flat,
        psth_ids,
        dims=("stimulus", "repeat", "neuroid"),
        neuroid_ids=data["ids"],
        region="retina",
        source=data["source"],
    )
    return count, psth


def _ceiling(values: xr.DataArray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a silent cell has no ceiling (NaN)
        return analysis.ceiling_split_half(values)["ceiling_per_neuroid"].values


def harmonics(cube: np.ndarray, bin_s: float) -> tuple[np.ndarray, np.ndarray]:
    """F1 and F2 (spikes/s) per (cell, grating) of the cycle PSTH (polarity + then -), and the cycle PSTHs."""
    mean = cube.mean(axis=1) / bin_s  # (stimulus, bin, cell) rate
    cycle = np.concatenate([mean[0::2], mean[1::2]], axis=1)  # (grating, 2 x 49 bins, cell)
    amplitudes = harmonic_amplitudes(np.moveaxis(cycle, 1, -1), harmonics=(1, 2))  # (grating, cell, 2)
    return np.moveaxis(amplitudes, 0, 1), cycle  # (cell, grating, 2)


# ------------------------------------------------------------------------------------------------ models
def model_inputs() -> np.ndarray:
    """``(stimulus, x)`` contrast at ``MODEL_PX`` resolution: polarity x grating profile, 2 px averaged."""
    rows = []
    for width, shift in grating_conditions():
        profile = grating_profile(width, shift).reshape(-1, MODEL_PX).mean(axis=1)
        rows += [profile, -profile]
    return np.stack(rows).astype(np.float32)


def subunit_inputs(inputs: np.ndarray, sigma_px: float, polarity: int) -> np.ndarray:
    """Rectified Gaussian subunits, one centred on every sample: ``relu(polarity * (G_sigma * s))``, (stimulus, x).

    The blur is a Gaussian of ``sigma_px`` screen pixels (sum 1) over the zero-padded screen (gray beyond it).
    """
    sigma = sigma_px / MODEL_PX
    n = inputs.shape[1]
    offsets = np.arange(-n + 1, n)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    blurred = np.stack([np.convolve(row, kernel, mode="full")[n - 1 : 2 * n - 1] for row in inputs])
    return np.maximum(polarity * blurred, 0.0).astype(np.float32)


def make_model(
    kind: str,
    inputs: np.ndarray,
    centres: np.ndarray,
    widths: np.ndarray,
    polarity: np.ndarray,
    subunit_sigma: np.ndarray,
) -> Any:
    """LN or LN-LN model, one output column per (cell, start[, subunit width]): stimulus indices ``(batch,)`` into
    the rows of ``inputs`` ``(stimulus, x)`` -> rates ``(batch, column)``.

    LN: ``rate = softplus(b + a <E, s>)`` with a Gaussian envelope ``E`` (centre, width; sum 1) and a signed gain
    ``a``. LN-LN: ``rate = softplus(b + a (<E, relu(p (G * s))> + l p <E, s>))``: Gaussian subunits ``G`` of
    width ``subunit_sigma`` (one centred on every sample) rectify the stimulus with the cell's polarity ``p``
    (+1 ON, -1 OFF) and the envelope pools them (Hochstein & Shapley 1976; Krüppel et al.'s LNLN model with
    threshold-linear subunits), beside a linear pathway of weight ``l`` (init 0; Victor & Shapley's 1979 Y-cell
    model: a linear centre plus rectified subunits), so that the LN model is nested in it. The subunit width is not a gradient parameter: each column holds one
    width of ``SUBUNIT_SIGMAS_PX`` and the best one per cell is chosen by the training loss.
    """
    import torch

    stimuli = torch.as_tensor(inputs)
    sign_of_cell = torch.as_tensor(polarity, dtype=torch.float32)
    columns_inputs = {}
    if kind == "lnln":
        for sigma in np.unique(subunit_sigma):
            for p in (1, -1):
                columns_inputs[(float(sigma), p)] = torch.as_tensor(subunit_inputs(inputs, float(sigma), p))
    groups = [(key, np.flatnonzero((subunit_sigma == key[0]) & (polarity == key[1]))) for key in columns_inputs]

    class GratingModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            n = centres.size
            self.centre = torch.nn.Parameter(torch.as_tensor(centres, dtype=torch.float32))  # screen fractions
            self.log_width = torch.nn.Parameter(torch.as_tensor(np.log(widths), dtype=torch.float32))
            sign = torch.as_tensor(polarity, dtype=torch.float32) if kind == "ln" else torch.ones(n)
            self.gain = torch.nn.Parameter(2.0 * sign)
            self.bias = torch.nn.Parameter(torch.zeros(n))
            self.linear = torch.nn.Parameter(torch.zeros(n))  # LN-LN only: weight of the linear pathway
            self.register_buffer("x", (torch.arange(inputs.shape[1], dtype=torch.float32) + 0.5) / inputs.shape[1])

        def envelope(self) -> torch.Tensor:  # (columns, x), each row sums to 1
            width = self.log_width.exp()[:, None]
            e = torch.exp(-0.5 * ((self.x[None, :] - self.centre[:, None]) / width) ** 2)
            return e / (e.sum(dim=1, keepdim=True) + 1e-12)

        def forward(self, index: torch.Tensor) -> torch.Tensor:
            env = self.envelope()
            if kind == "ln":
                drive = stimuli[index] @ env.T
            else:
                drive = torch.zeros(index.shape[0], env.shape[0])
                for key, cols in groups:
                    drive[:, cols] = columns_inputs[key][index] @ env[cols].T
                drive = drive + self.linear * sign_of_cell * (stimuli[index] @ env.T)
            return torch.nn.functional.softplus(self.bias + self.gain * drive)

    return GratingModel()


def fit_models(
    kind: str,
    inputs: np.ndarray,
    targets: np.ndarray,
    cell_polarity: np.ndarray,
    train_mask: np.ndarray,
    *,
    epochs: int,
    seed: int,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Fit ``kind`` to every cell from ``N_STARTS`` centres (x each subunit width) at once; keep each cell's best
    training fit.

    ``targets``: ``(stimulus, cell)`` mean count per reversal. Returns the predictions ``(stimulus, cell)`` for all
    stimuli and the chosen parameters per cell (centre and widths in px, gain, bias).
    """
    import torch

    from neuromodels.fitting import TensorPairs, fit

    n_cells = targets.shape[1]
    sigmas = np.array(SUBUNIT_SIGMAS_PX if kind == "lnln" else (np.nan,), dtype=np.float64)
    n_starts = N_STARTS * len(START_WIDTHS_PX)
    per_cell = n_starts * sigmas.size
    starts = np.repeat((np.arange(N_STARTS) + 0.5) / N_STARTS, len(START_WIDTHS_PX))
    widths = np.tile(np.array(START_WIDTHS_PX) / SCREEN_PX, N_STARTS)
    centres = np.tile(starts, n_cells * sigmas.size)  # column order: cell, subunit width, start
    start_widths = np.tile(widths, n_cells * sigmas.size)
    subunit_sigma = np.tile(np.repeat(sigmas, n_starts), n_cells)
    polarity = np.repeat(cell_polarity, per_cell)
    model = make_model(kind, inputs, centres, start_widths, polarity, subunit_sigma)
    x = torch.arange(len(inputs))
    y = torch.as_tensor(np.repeat(targets, per_cell, axis=1), dtype=torch.float32)
    train = TensorPairs(x[torch.as_tensor(train_mask)], y[torch.as_tensor(train_mask)])
    fit(
        model,
        train,
        None,
        loss="poisson",
        epochs=epochs,
        batch_size=len(train),
        lr=0.02,
        patience=None,
        lr_patience=20,
        seed=seed,
        progress=False,
    )
    with torch.no_grad():
        rate = model(x).numpy().astype(np.float64)
    nll = (rate - y.numpy() * np.log(rate + 1e-8))[train_mask].mean(axis=0).reshape(n_cells, per_cell)
    column = np.arange(n_cells) * per_cell + np.argmin(nll, axis=1)
    params = {
        "centre_px": model.centre.detach().numpy()[column] * SCREEN_PX,
        "envelope_sigma_px": model.log_width.exp().detach().numpy()[column] * SCREEN_PX,
        "subunit_sigma_px": subunit_sigma[column],
        "gain": model.gain.detach().numpy()[column],
        "linear_weight": model.linear.detach().numpy()[column],
        "bias": model.bias.detach().numpy()[column],
    }
    return rate[:, column], params


def cross_validated(
    kind: str, inputs: np.ndarray, targets: np.ndarray, polarity: np.ndarray, *, epochs: int, seed: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Held-out predictions ``(stimulus, cell)``: fold ``k`` leaves out the gratings with index ``% N_FOLDS == k``
    (both polarities); then one fit on all gratings for the parameters."""
    grating = np.repeat(np.arange(len(grating_conditions())), 2)
    held_out = np.zeros_like(targets)
    for k in range(N_FOLDS):
        test = grating % N_FOLDS == k
        prediction, _ = fit_models(kind, inputs, targets, polarity, ~test, epochs=epochs, seed=seed + k)
        held_out[test] = prediction[test]
    _, params = fit_models(kind, inputs, targets, polarity, np.ones(len(targets), bool), epochs=epochs, seed=seed)
    return held_out, params


def scores(prediction: np.ndarray, count: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """CC with the repeat mean and CC_norm (``analysis.cc_norm``) per cell of held-out predictions."""
    names = stimulus_names()
    mean = count.groupby("stimulus_id").mean().sel(stimulus_id=names).values  # (stimulus, cell)
    cc = np.array(
        [
            np.corrcoef(prediction[:, c], mean[:, c])[0, 1] if mean[:, c].std() > 0 else np.nan
            for c in range(mean.shape[1])
        ]
    )
    pred = xr.DataArray(
        prediction,
        dims=("presentation", "neuroid"),
        coords={"stimulus_id": ("presentation", names), "neuroid_id": ("neuroid", count["neuroid_id"].values)},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a cell without signal power has no CC_norm (NaN)
        norm = analysis.cc_norm(pred, count).values
    return cc, norm


# ------------------------------------------------------------------------------------------------ Ricker stripes
def ricker_summary(data: dict[str, Any]) -> dict[str, Any]:
    """What the Ricker-stripe parameters hold, and whether this folder's spikes follow the flashes.

    ``ricker_locking_median``: the median over cells of the largest / mean bin of the flash-aligned PSTH (12 bins
    over the 600 ms flash cycle, the flashes within the spike recording); ``grating_locking_median`` the same for
    the reversals (12 bins over a half-period). A cell that saw the flashes would be modulated by them.
    """
    positions, angles, changes = data["positions"], data["angles"], data["ricker_changes"]
    onsets = changes[1::2]
    steps = np.diff(changes)

    def locking(times: np.ndarray, cycle_s: float) -> np.ndarray:
        out = []
        for train in data["trains"]:
            inside = train[(train >= times[0]) & (train < times[-1])]
            lag = inside - times[np.searchsorted(times, inside, side="right") - 1]
            hist = np.histogram(lag[lag < cycle_s], bins=12, range=(0, cycle_s))[0]
            out.append(hist.max() / max(hist.mean(), 1e-12))
        return np.array(out)

    t_end = max(float(t[-1]) for t in data["trains"] if t.size)
    flash_cycle = float(np.median(steps[0::2] + steps[1::2]))
    sched = data["schedule"]
    return {
        "n_flashes": int(positions.size),
        "n_positions": int(np.unique(np.round(positions, 6)).size),
        "position_step": float(np.median(np.diff(np.unique(np.round(positions, 6))))),
        "position_range": [float(positions.min()), float(positions.max())],
        "n_angles": int(np.unique(np.round(angles, 6)).size),
        "angle_step_deg": float(np.degrees(np.median(np.diff(np.unique(np.round(angles, 6)))))),
        "first_interval_s": float(np.median(steps[0::2])),
        "second_interval_s": float(np.median(steps[1::2])),
        "ricker_recording_end_s": float(changes[-1]),
        "spike_recording_end_s": t_end,
        "ricker_locking_median": float(np.median(locking(onsets[onsets < t_end], flash_cycle))),
        "grating_locking_median": float(np.median(locking(np.sort(sched["onset"]), half_period(data)))),
    }


# ------------------------------------------------------------------------------------------------ figures
def figures(data: dict[str, Any], numbers: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
    """``file name -> matplotlib Figure`` (no pyplot)."""
    from matplotlib.figure import Figure

    out = {}
    types = data["types"]
    colors = {"ON": "tab:red", "OFF": "tab:blue"}

    fig = Figure(figsize=(10.0, 3.6), layout="constrained")
    axes = fig.subplots(1, 4)
    d = np.linspace(-4 * RICKER_HALF_WIDTH_PX, 4 * RICKER_HALF_WIDTH_PX, 400)
    axes[0].plot(d, RICKER_POLARITY * ricker_profile(d, RICKER_HALF_WIDTH_PX), color="k")
    axes[0].plot(d, RICKER_POLARITY * ricker_profile(d, RICKER_HALF_WIDTH_PX, 1.0), color="0.6", ls="--", label="s = 1")
    axes[0].set_xlabel("distance from stripe centre (px)")
    axes[0].set_ylabel("contrast")
    axes[0].set_title(f"Ricker stripe (dark centre), s = {RICKER_SURROUND}", fontsize=9)
    axes[0].legend(fontsize=7, frameon=False)
    for ax, i in zip(axes[1:3], (0, 1)):
        ax.imshow(ricker_frame(data["positions"][i], data["angles"][i]), cmap="gray", vmin=-1, vmax=1)
        ax.set_title(
            f"flash {i}: position {data['positions'][i]:+.3f}, {np.degrees(data['angles'][i]):.0f} deg", fontsize=8
        )
        ax.set_xticks([])
        ax.set_yticks([])
    for row, (width, shift) in enumerate(grating_conditions()):
        axes[3].imshow(
            grating_profile(width, shift)[None, :200],
            cmap="gray",
            vmin=-1,
            vmax=1,
            aspect="auto",
            extent=(0, 200, row + 1, row),
        )
    axes[3].set_ylim(len(grating_conditions()), 0)
    axes[3].set_yticks(
        np.arange(len(grating_conditions())) + 0.5, [f"{w}/{s}" for w, s in grating_conditions()], fontsize=5
    )
    axes[3].set_xlabel("screen x (px, first 200 of 800)")
    axes[3].set_title("23 gratings (width/shift px)", fontsize=9)
    out["marmoset_stimuli.png"] = fig

    fig = Figure(figsize=(10.0, 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    cycle, nli = arrays["cycle"], np.asarray(numbers["nonlinearity_index"])
    responsive = np.asarray(numbers["ceiling_count"]) > 0.9
    best = int(np.nanargmax(np.where(responsive, nli, np.nan)))
    t = np.arange(cycle.shape[1]) * arrays["bin_s"] * 1e3
    conditions = grating_conditions()
    for idx, color in (
        (len(conditions) - 1, "k"),
        (conditions.index((8, 0)), "tab:green"),
        (conditions.index((4, 0)), "tab:orange"),
    ):
        axes[0].plot(t, cycle[idx, :, best], color=color, label=f"bars {conditions[idx][0]} px")
    axes[0].axvline(t[cycle.shape[1] // 2], color="0.6", lw=0.8)
    axes[0].set_xlabel("time in the reversal cycle (ms)")
    axes[0].set_ylabel("rate (spikes/s)")
    axes[0].set_title(f"{types[best]} cell {data['ids'][best]}: NLI {nli[best]:.2f}", fontsize=9)
    axes[0].legend(fontsize=7, frameon=False)
    rng = np.random.default_rng(SEED)  # horizontal scatter of the dots only
    for i, kind in enumerate(("ON", "OFF")):
        sel = types == kind
        for j, key in enumerate(("ceiling_count", "ceiling_psth")):
            values = np.asarray(numbers[key])[sel]
            axes[1].plot(
                2 * i + j + rng.uniform(-0.15, 0.15, values.size), values, "o", ms=3, alpha=0.7, color=colors[kind]
            )
        axes[2].plot(i + rng.uniform(-0.15, 0.15, sel.sum()), nli[sel], "o", ms=3, alpha=0.7, color=colors[kind])
    axes[1].set_xticks(range(4), ["ON count", "ON PSTH", "OFF count", "OFF PSTH"], fontsize=7)
    axes[1].set_ylabel("split-half ceiling (Spearman-Brown)")
    axes[1].set_title("noise ceilings, 24 reversals per polarity", fontsize=9)
    axes[2].axhline(1.0, color="0.6", lw=0.8, ls="--")
    axes[2].set_xticks([0, 1], ["ON", "OFF"])
    axes[2].set_ylabel("max F2 / max F1")
    axes[2].set_title("nonlinearity index (Hochstein & Shapley)", fontsize=9)
    out["marmoset_gratings.png"] = fig

    fig = Figure(figsize=(10.0, 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    ln, lnln = np.asarray(numbers["cc_norm"]["ln"]), np.asarray(numbers["cc_norm"]["lnln"])
    for kind in ("ON", "OFF"):
        sel = types == kind
        axes[0].plot(ln[sel], lnln[sel], "o", ms=4, alpha=0.7, color=colors[kind], label=kind)
        axes[1].plot(nli[sel], (lnln - ln)[sel], "o", ms=4, alpha=0.7, color=colors[kind])
    axes[0].plot([-0.2, 1], [-0.2, 1], color="0.6", lw=0.8)
    axes[0].set_xlabel("LN: CC_norm (held-out gratings)")
    axes[0].set_ylabel("LN-LN subunit model: CC_norm")
    axes[0].legend(fontsize=7, frameon=False)
    axes[1].axhline(0, color="0.6", lw=0.8)
    axes[1].set_xlabel("nonlinearity index")
    axes[1].set_ylabel("CC_norm gain of the subunit model")
    sub = np.asarray(numbers["layout"]["subunit_sigma_px"])
    env = np.asarray(numbers["layout"]["envelope_sigma_px"])
    for kind in ("ON", "OFF"):
        sel = types == kind
        axes[2].plot(
            env[sel] * PIXEL_UM,
            sub[sel] * PIXEL_UM * (1 + rng.uniform(-0.08, 0.08, sel.sum())),
            "o",
            ms=4,
            alpha=0.7,
            color=colors[kind],
        )
    axes[2].set_xlabel("envelope sigma (um)")
    axes[2].set_ylabel("subunit sigma (um)")
    axes[2].set_title("LN-LN layout (7.5 um/px assumed)", fontsize=9)
    out["marmoset_models.png"] = fig
    return out


# ------------------------------------------------------------------------------------------------ run
def _by_type(values: Any, types: np.ndarray) -> dict[str, float | None]:
    values = np.asarray(values, dtype=np.float64)
    out = {}
    for kind in ("ON", "OFF", "all"):
        sel = np.ones(types.size, bool) if kind == "all" else types == kind
        finite = values[sel][np.isfinite(values[sel])]
        out[kind] = float(np.median(finite)) if finite.size else None
    return out


def run(
    data_dir: Path, out_dir: Path, *, figures_dir: Path | None = None, quick: bool = False, seed: int = SEED
) -> dict:
    """Read, compute, write ``report.json`` and the figures; returns the key numbers."""
    data = load(find_files(data_dir))
    recording = build_recording(data)
    if quick:  # 4 OFF and 4 ON cells
        keep = np.r_[np.flatnonzero(data["types"] == "OFF")[:4], np.flatnonzero(data["types"] == "ON")[:4]]
        data = {
            **data,
            "trains": [data["trains"][i] for i in keep],
            "ids": [data["ids"][i] for i in keep],
            "types": data["types"][keep],
        }
    types = data["types"]
    cube = response_cube(data)
    count, psth = assemblies(cube, data)
    bin_s = half_period(data) / WINDOW_BINS
    amplitudes, cycle = harmonics(cube, bin_s)
    nli = nonlinearity_index(amplitudes[..., 0], amplitudes[..., 1])
    ceiling_count, ceiling_psth = _ceiling(count), _ceiling(psth)

    inputs = model_inputs()
    targets = cube.sum(axis=2).mean(axis=1).astype(np.float64)  # (stimulus, cell) mean count per reversal
    polarity = np.where(types == "ON", 1.0, -1.0)
    epochs = 150 if quick else 500
    cc, norm, layout = {}, {}, {}
    for kind in ("ln", "lnln"):
        held_out, params = cross_validated(kind, inputs, targets, polarity, epochs=epochs, seed=seed)
        cc[kind], norm[kind] = scores(held_out, count)
        if kind == "lnln":
            layout = {key: value.tolist() for key, value in params.items()}
    high = np.isfinite(nli) & (nli > 1.0) & (ceiling_count > 0.9)
    gain = norm["lnln"] - norm["ln"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        nli_gain_r = float(np.corrcoef(nli[np.isfinite(gain)], gain[np.isfinite(gain)])[0, 1])
    numbers: dict[str, Any] = {
        "source": data["source"],
        "quick": quick,
        "n_cells": len(data["ids"]),
        "n_on": int((types == "ON").sum()),
        "n_off": int((types == "OFF").sum()),
        "cell_ids": list(data["ids"]),
        "cell_types": types.tolist(),
        "recording": {
            "bins": int(recording.sizes["time"]),
            "bin_size_s": float(recording.attrs["bin_size_s"]),
            "mean_rate_hz": float(recording["response"].mean() / recording.attrs["bin_size_s"]),
        },
        "half_period_s": half_period(data),
        "n_stimuli": int(count["stimulus_id"].to_series().nunique()),
        "n_repeats": int(count["repetition"].max()) + 1,
        "ceiling_count": ceiling_count.tolist(),
        "ceiling_psth": ceiling_psth.tolist(),
        "ceiling_count_by_type": _by_type(ceiling_count, types),
        "ceiling_psth_by_type": _by_type(ceiling_psth, types),
        "f1_max_hz": np.nanmax(amplitudes[..., 0], axis=1).tolist(),
        "f2_max_hz": np.nanmax(amplitudes[..., 1], axis=1).tolist(),
        "nonlinearity_index": nli.tolist(),
        "nonlinearity_index_by_type": _by_type(nli, types),
        "cc": {kind: v.tolist() for kind, v in cc.items()},
        "cc_norm": {kind: v.tolist() for kind, v in norm.items()},
        "cc_by_type": {kind: _by_type(v, types) for kind, v in cc.items()},
        "cc_norm_by_type": {kind: _by_type(v, types) for kind, v in norm.items()},
        "high_nli_cells": int(high.sum()),
        "high_nli_fraction_lnln_better": float(np.mean(gain[high] > 0)) if high.any() else None,
        "low_nli_fraction_lnln_better": float(np.mean(gain[~high & np.isfinite(gain)] > 0)),
        "nli_vs_lnln_gain_r": nli_gain_r,
        "layout": layout,
        "layout_by_type_um": {
            key: _by_type(np.asarray(layout[key]) * PIXEL_UM, types)
            for key in ("envelope_sigma_px", "subunit_sigma_px")
        },
        "phase_consistency": phase_consistency(targets, types).tolist(),
        "ricker": ricker_summary(data),
        "epochs": epochs,
        "seed": seed,
    }
    made = figures(data, numbers, {"cycle": cycle, "bin_s": bin_s})
    # checked, staged and moved into place on success; files of yours in --out are never touched
    write_report(out_dir, NAME, numbers, made, also=figures_dir)
    return numbers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"folder holding {FOLDER}/")
    parser.add_argument("--out", type=Path, default=Path("reports/examples") / NAME)
    parser.add_argument("--figures", type=Path, default=None, help="also write the PNGs here")
    parser.add_argument("--quick", action="store_true", help="8 cells and fewer epochs (tests)")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    try:
        check_out_folder(args.out)  # before any work: a file, a read-only or a foreign folder is refused
        n = run(args.data, args.out, figures_dir=args.figures, quick=args.quick, seed=args.seed)
    except (FileNotFoundError, DataFormatError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"{n['n_cells']} cells ({n['n_off']} OFF, {n['n_on']} ON), {n['n_stimuli']} stimuli x {n['n_repeats']} repeats"
    )
    for kind in ("ON", "OFF"):
        print(
            f"{kind}: ceiling count {n['ceiling_count_by_type'][kind]:.3f} PSTH {n['ceiling_psth_by_type'][kind]:.3f}; "
            f"NLI {n['nonlinearity_index_by_type'][kind]:.2f}; CC_norm LN {n['cc_norm_by_type']['ln'][kind]:.2f} "
            f"LN-LN {n['cc_norm_by_type']['lnln'][kind]:.2f}"
        )
    print(
        f"Ricker flashes: {n['ricker']['n_flashes']}, spikes locked to them: {n['ricker']['ricker_locking_median']:.2f} "
        f"(gratings {n['ricker']['grating_locking_median']:.2f}); report in {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fly H1: spike-triggered average and a linear-nonlinear (LN) model, from the raw file to held-out predictions.

What it reproduces.
The blowfly's H1 neuron recorded by de Ruyter van Steveninck while the fly watched a randomly moving pattern
(white-noise angular velocity, sampled every 2 ms for 20 minutes), as distributed with Dayan & Abbott's
*Theoretical Neuroscience* (2001) (file ``c1p8.mat``, chapter 1, problem 8: ``stim`` the velocity,
``rho`` 0/1 spikes per 2 ms sample). The script

1. computes the spike-triggered average (STA) over a 300 ms window (Dayan & Abbott chapter 1, "the
   spike-triggered average", Fig. 1.9: a positive lobe tens of milliseconds before the spike, near zero by
   ~200 ms);
2. fits an LN model (one temporal filter of 200 ms, softplus, Poisson loss) with
   ``neuromodels.fitting.RetinaEstimator`` on the first 80 % of the recording (early stopping on
   2 s blocks of it). For white-noise input the LN filter is the STA up to scale (Dayan & Abbott
   chapter 2, "estimating firing rates": the optimal linear kernel for white noise is the STA times the mean
   rate over the stimulus variance; Bussgang's theorem), which the script checks;
3. shows the static nonlinearity (measured rate against the filter output, and the model's) and predicts
   the last 20 % (a contiguous, held-out 240 s): Pearson CC of predicted and measured spike counts in 2, 10
   and 20 ms bins.

The recording has no repeated stimulus, so there is no noise ceiling and no CC_norm: CC is the only score.

Data and licence.
``c1p8.mat`` is course material of unclear licence: the team uses it for tests only and this script does not
ship it. Point ``--data`` at a folder holding ``fly-h1/c1p8.mat.gz`` (or ``fly-h1/c1p8.mat``); by default
the script looks in ``../shared/data`` beside the repository and stops with exit status 2 and a message when
the file is absent.

Run:

    python examples/fly_h1_ln.py [--data DIR] [--out reports/examples/fly_h1_ln] [--figures DIR] [--seed 0]

Writes ``report.json`` (the key numbers) and three PNG figures to ``--out``; ``--figures`` writes the PNGs
there too (the docs use ``docs/figures/examples/fly_h1_ln``). About 10 s on 2 CPU cores; seeded.
Public API only: ``neuromodels.datasets``, ``neuromodels.fitting``, ``neuromodels.errors``.
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np

from neuromodels import check_out_folder, write_report
from neuromodels.datasets import recording_from_counts
from neuromodels.errors import ConfigError, DataFormatError

NAME = "fly_h1_ln"
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SAMPLE_MS = 2.0  # c1p8: one sample every 2 ms (500 Hz)
STA_LAGS = 150  # 300 ms, Dayan & Abbott's window
FILTER_LAGS = 100  # 200 ms of history for the LN model (the STA is near zero beyond)
TRAIN_FRACTION = 0.8
CC_BINS_MS = (2, 10, 20)


def find_h1_file(data_dir: Path) -> Path:
    """``fly-h1/c1p8.mat.gz`` (or the unzipped ``c1p8.mat``) under ``data_dir``; ``FileNotFoundError`` otherwise."""
    for name in ("c1p8.mat.gz", "c1p8.mat"):
        path = data_dir / "fly-h1" / name
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"fly H1 data not found: expected {data_dir / 'fly-h1' / 'c1p8.mat.gz'} (or c1p8.mat). Pass --data DIR with "
        "a fly-h1/ folder holding Dayan & Abbott's c1p8.mat (the team's copy is in ../shared/data; licence unclear: "
        "tests only)."
    )


def load_h1(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(stim, rho)``: velocity (float32) and 0/1 spikes (int64) per 2 ms sample, read without unpacking to disk."""
    import scipy.io

    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    try:
        data = scipy.io.loadmat(io.BytesIO(raw))
    except (ValueError, OSError) as err:
        raise DataFormatError(file=path, field="<file>", expected="a MATLAB v5 file", found=str(err)) from err
    for key in ("stim", "rho"):
        if key not in data:
            raise DataFormatError(
                file=path, field=key, expected="a vector (Dayan & Abbott c1p8 layout)", found="no such variable"
            )
    stim, rho = data["stim"].ravel().astype(np.float32), data["rho"].ravel().astype(np.int64)
    if stim.shape != rho.shape or stim.size <= STA_LAGS:
        raise DataFormatError(
            file=path,
            field="stim/rho",
            expected="two vectors of the same length",
            found=f"{stim.shape} and {rho.shape}",
        )
    if rho.min() < 0:
        raise DataFormatError(file=path, field="rho", expected="spike counts >= 0", found=f"minimum {rho.min()}")
    return stim, rho


def lag_windows(signal: np.ndarray, n_lags: int) -> np.ndarray:
    """``(n, n_lags)`` windows ending at each sample (column ``-1`` is the sample itself; zeros before the start)."""
    padded = np.concatenate([np.zeros(n_lags - 1, dtype=signal.dtype), signal])
    return np.lib.stride_tricks.sliding_window_view(padded, n_lags)


def spike_triggered_average(stim: np.ndarray, rho: np.ndarray, n_lags: int) -> np.ndarray:
    """Mean stimulus over the ``n_lags`` samples ending at each spike (weighted by the count); lag 0 last."""
    windows = lag_windows(stim.astype(np.float64), n_lags)
    return (rho.astype(np.float64) @ windows) / rho.sum()


def fit_ln(stim: np.ndarray, rho: np.ndarray, seed: int, epochs: int) -> tuple[Any, Any, int]:
    """The fitted estimator, the recording (1x1-pixel frames, ``split`` train/test) and the first test sample."""
    from neuromodels.fitting import RetinaEstimator

    n = stim.size
    cut = int(TRAIN_FRACTION * n)
    dt = SAMPLE_MS / 1e3
    rec = recording_from_counts(
        rho[:, None], np.arange(n) * dt, dt, ["H1"], source="c1p8.mat", stimulus=stim[:, None, None]
    )
    rec = rec.assign_coords(split=("time", np.where(np.arange(n) < cut, "train", "test").astype(object)))
    estimator = RetinaEstimator(
        "ln", history=FILTER_LAGS, epochs=epochs, batch_size=1024, lr=1e-3, l2_weight=0.0, seed=seed, progress=False
    )
    return estimator.fit(rec), rec, cut


def binned_cc(prediction: np.ndarray, counts: np.ndarray, k: int) -> float:
    """Pearson r of predicted and measured counts summed in bins of ``k`` samples."""
    m = (len(counts) // k) * k
    return float(np.corrcoef(prediction[:m].reshape(-1, k).sum(1), counts[:m].reshape(-1, k).sum(1))[0, 1])


def static_nonlinearity(drive: np.ndarray, counts: np.ndarray, prediction: np.ndarray, n_bins: int = 20) -> dict:
    """Measured and predicted rate (Hz) in equally populated bins of the filter output ``drive``."""
    edges = np.quantile(drive, np.linspace(0.0, 1.0, n_bins + 1))
    which = np.clip(np.searchsorted(edges, drive, side="right") - 1, 0, n_bins - 1)
    per_bin = np.bincount(which, minlength=n_bins)
    to_hz = 1e3 / SAMPLE_MS
    return {
        "drive": (np.bincount(which, drive, n_bins) / per_bin).tolist(),
        "measured_hz": (np.bincount(which, counts, n_bins) / per_bin * to_hz).tolist(),
        "model_hz": (np.bincount(which, prediction, n_bins) / per_bin * to_hz).tolist(),
    }


def analyse(stim: np.ndarray, rho: np.ndarray, *, seed: int = 0, epochs: int = 3) -> tuple[dict, dict]:
    """Key numbers (JSON-ready) and the arrays the figures draw."""
    import torch

    torch.manual_seed(seed)
    sta = spike_triggered_average(stim, rho, STA_LAGS)
    sta_lags_ms = (np.arange(STA_LAGS) - (STA_LAGS - 1)) * SAMPLE_MS
    estimator, rec, cut = fit_ln(stim, rho, seed, epochs)
    prediction = estimator.predict(rec).values[:, 0].astype(np.float64)  # history before t=0 is gray
    learned = estimator.model_.filters[0, :, 0, 0].numpy().astype(np.float64)
    filter_lags_ms = sta_lags_ms[-FILTER_LAGS:]
    train_sta = spike_triggered_average(stim[:cut], rho[:cut], FILTER_LAGS)
    standardized = (stim.astype(np.float64) - estimator.stimulus_mean_) / estimator.stimulus_std_
    drive = lag_windows(standardized, FILTER_LAGS) @ learned  # the model's linear stage (without its bias)

    test = slice(cut, None)
    counts = rho[test].astype(np.float64)
    numbers = {
        "n_samples": int(stim.size),
        "n_spikes": int(rho.sum()),
        "mean_rate_hz": float(rho.mean() * 1e3 / SAMPLE_MS),
        "sta_peak_lag_ms": float(sta_lags_ms[np.argmax(sta)]),
        "sta_peak": float(sta.max()),
        "stimulus_std": float(stim.std()),
        "filter_peak_lag_ms": float(filter_lags_ms[np.argmax(learned)]),
        "filter_sta_correlation": float(np.corrcoef(learned, train_sta)[0, 1]),
        "test_seconds": float(counts.size * SAMPLE_MS / 1e3),
        "test_cc": {
            f"{int(k * SAMPLE_MS)}ms": binned_cc(prediction[test], counts, k)
            for k in (int(b / SAMPLE_MS) for b in CC_BINS_MS)
        },
        "test_cc_norm": None,
        "cc_norm_note": "no repeated stimulus in c1p8: no noise ceiling, so no CC_norm",
        "seed": seed,
        "epochs": epochs,
    }
    arrays = {
        "sta": sta,
        "sta_lags_ms": sta_lags_ms,
        "learned": learned,
        "filter_lags_ms": filter_lags_ms,
        "nonlinearity": static_nonlinearity(drive[test], counts, prediction[test]),
        "test_counts": counts,
        "test_prediction": prediction[test],
    }
    numbers["static_nonlinearity"] = arrays["nonlinearity"]  # held-out block, 20 equally populated bins
    return numbers, arrays


def figures(arrays: dict, numbers: dict) -> dict[str, Any]:
    """``file name -> matplotlib Figure`` (no pyplot: nothing depends on a display or a backend)."""
    from matplotlib.figure import Figure

    out = {}
    fig = Figure(figsize=(6.0, 3.6), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(arrays["sta_lags_ms"], arrays["sta"], color="k", label="spike-triggered average (all data)")
    learned = arrays["learned"]
    scale = arrays["sta"].max() / learned.max()
    ax.plot(arrays["filter_lags_ms"], learned * scale, color="tab:red", ls="--", label="LN filter (scaled to the STA)")
    ax.axhline(0.0, color="0.7", lw=0.8)
    ax.set_xlabel("time before spike (ms)")
    ax.set_ylabel("stimulus velocity (deg/s)")
    ax.set_title(
        f"fly H1: STA peak at {numbers['sta_peak_lag_ms']:.0f} ms; "
        f"corr(filter, STA) = {numbers['filter_sta_correlation']:.3f}",
        fontsize=10,
    )
    ax.legend(fontsize=8, frameon=False)
    out["fly_h1_sta.png"] = fig

    nl = arrays["nonlinearity"]
    fig = Figure(figsize=(4.6, 3.6), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(nl["drive"], nl["measured_hz"], "o", color="k", label="measured (held-out)")
    ax.plot(nl["drive"], nl["model_hz"], "-", color="tab:red", label="LN model (softplus)")
    ax.set_xlabel("filter output (standardized stimulus * filter)")
    ax.set_ylabel("firing rate (Hz)")
    ax.set_title("static nonlinearity (20 equally populated bins)", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    out["fly_h1_nonlinearity.png"] = fig

    k = 5  # 10 ms bins
    counts, prediction = arrays["test_counts"], arrays["test_prediction"]
    n = 300 * k  # 3 s
    t = np.arange(n // k) * k * SAMPLE_MS / 1e3
    to_hz = 1e3 / (k * SAMPLE_MS)
    fig = Figure(figsize=(7.5, 3.0), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(t, counts[:n].reshape(-1, k).sum(1) * to_hz, color="k", lw=1.0, label="measured")
    ax.plot(t, prediction[:n].reshape(-1, k).sum(1) * to_hz, color="tab:red", lw=1.2, label="LN prediction")
    ax.set_xlabel("time in the held-out block (s)")
    ax.set_ylabel("rate (Hz, 10 ms bins)")
    ax.set_title(
        f"held-out prediction: CC {numbers['test_cc']['10ms']:.2f} (10 ms bins), "
        f"{numbers['test_cc']['2ms']:.2f} (2 ms), {numbers['test_cc']['20ms']:.2f} (20 ms)",
        fontsize=10,
    )
    ax.legend(fontsize=8, frameon=False, ncol=2)
    out["fly_h1_prediction.png"] = fig
    return out


def run(data_dir: Path, out_dir: Path, *, figures_dir: Path | None = None, seed: int = 0, epochs: int = 3) -> dict:
    """Load, analyse, write ``report.json`` and the figures; returns the key numbers."""
    path = find_h1_file(data_dir)
    stim, rho = load_h1(path)
    numbers, arrays = analyse(stim, rho, seed=seed, epochs=epochs)
    numbers["source"] = str(path)
    made = figures(arrays, numbers)
    # checked, staged and moved into place on success; files of yours in --out are never touched
    write_report(out_dir, NAME, numbers, made, also=figures_dir)
    return numbers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding fly-h1/c1p8.mat.gz")
    parser.add_argument("--out", type=Path, default=Path("reports/examples") / NAME)
    parser.add_argument("--figures", type=Path, default=None, help="also write the PNGs here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        check_out_folder(args.out)  # before any work: a file, a read-only or a foreign folder is refused
        numbers = run(args.data, args.out, figures_dir=args.figures, seed=args.seed, epochs=args.epochs)
    except (FileNotFoundError, DataFormatError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    cc = numbers["test_cc"]
    print(
        f"fly H1: {numbers['n_spikes']} spikes, STA peak at {numbers['sta_peak_lag_ms']:.0f} ms, LN filter peak at "
        f"{numbers['filter_peak_lag_ms']:.0f} ms, corr(filter, STA) {numbers['filter_sta_correlation']:.3f}; "
        f"held-out CC {cc['2ms']:.3f} (2 ms) {cc['10ms']:.3f} (10 ms) {cc['20ms']:.3f} (20 ms); report in {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

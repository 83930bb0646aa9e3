"""Benchmark: neural predictivity and split-half ceiling, ours vs the Brain-Score procedure, in one run.

Data: synthetic MajajHong2015-IT scale assembly (2,560 stimuli of 64 objects x 168 neuroids x 10 repetitions)
and 1,000 model features (decaying spectrum, partly shared with the neural signal).

Peer (what Brain-Score runs, re-implemented straightforwardly since brain-score cannot be installed next to
modern numpy/xarray/scikit-learn):

* PLS score: repetitions averaged with xarray groupby, StratifiedShuffleSplit(10, train_size=0.9,
  random_state=1) on object_name over the stimuli sorted by stimulus_id, scikit-learn
  ``PLSRegression(25, scale=False)`` (default tolerance) per split, ``scipy.stats.pearsonr`` per neuroid,
  median over neuroids, mean over splits, std(ddof=0)/sqrt(10).
* Ceiling: ShuffleSplit(10, train_size=0.5, random_state=1) of the repetition values, xarray groupby mean
  of each half per stimulus, ``scipy.stats.pearsonr`` per neuroid, Spearman-Brown, median, mean over splits.

Targets (issue 4): >= 10x faster for the PLS score, >= 20x for the ceiling, ridge-CV over 30 alphas in under
1/10 of the PLS time (checked against our PLS time and against the peer's; the first is not reachable with an exact
per-split decomposition, see docs/predictivity.md). The peer is timed with the default BLAS threads and with one
thread and the faster counts. Run: ``OMP_NUM_THREADS=2 python benchmarks/bench_predictivity.py [--quick]``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", os.environ["OMP_NUM_THREADS"])

import argparse  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402


def make_data(n_objects: int = 64, per_object: int = 40, n_neuroids: int = 168, n_reps: int = 10,
              n_features: int = 1000, seed: int = 0) -> tuple[xr.DataArray, xr.DataArray]:
    """Neural assembly (presentation = stimulus x repetition, neuroid) and features (presentation, feature)."""
    from neuromodels.datasets.recording import assembly

    rng = np.random.default_rng(seed)
    n_stimuli = n_objects * per_object
    latent_dim = 60
    objects = np.repeat(np.arange(n_objects), per_object)
    object_means = rng.standard_normal((n_objects, latent_dim))
    latent = 0.8 * object_means[objects] + rng.standard_normal((n_stimuli, latent_dim))
    signal = latent @ rng.standard_normal((latent_dim, n_neuroids)) / np.sqrt(latent_dim)
    signal = 5.0 + signal * rng.uniform(0.5, 2.0, n_neuroids)
    noise_sd = np.sqrt(signal.var(axis=0) * rng.uniform(1.0, 6.0, n_neuroids))
    trials = signal[None] + noise_sd * rng.standard_normal((n_reps, n_stimuli, n_neuroids))
    stimulus_ids = np.array([f"img{i:05d}" for i in rng.permutation(n_stimuli)])
    neural = assembly(
        trials.reshape(n_reps * n_stimuli, n_neuroids),
        stimulus_id=np.tile(stimulus_ids, n_reps),
        neuroid_id=[f"IT{i:03d}" for i in range(n_neuroids)],
        repetition=np.repeat(np.arange(n_reps), n_stimuli),
        presentation_coords={"object_name": np.tile(np.array([f"obj{o:02d}" for o in objects]), n_reps)},
        neuroid_coords={"region": ["IT"] * n_neuroids},
    )
    spectrum = 1.0 / np.sqrt(1.0 + np.arange(n_features))
    mixing = rng.standard_normal((latent_dim, n_features)) * spectrum
    features = np.maximum(latent @ mixing + 0.5 * spectrum * rng.standard_normal((n_stimuli, n_features)), 0.0)
    features = features + 0.05 * rng.standard_normal(features.shape)
    feats = xr.DataArray(features, dims=("presentation", "feature"),
                         coords={"stimulus_id": ("presentation", stimulus_ids)})
    return neural, feats


def peer_pls_score(features: xr.DataArray, neural: xr.DataArray, n_splits: int = 10) -> dict[str, np.ndarray]:
    """The Brain-Score PLS procedure with scikit-learn and scipy, straightforwardly."""
    import scipy.stats
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.model_selection import StratifiedShuffleSplit

    averaged = neural.groupby("stimulus_id").mean("presentation")  # sorted by stimulus_id
    objects = neural["object_name"].to_series().groupby(neural["stimulus_id"].values).first()
    labels = objects.loc[averaged["stimulus_id"].values].to_numpy()
    feats = features.set_index(presentation="stimulus_id").sel(presentation=averaged["stimulus_id"].values)
    x = feats.values
    y = averaged.transpose("stimulus_id", "neuroid").values
    splitter = StratifiedShuffleSplit(n_splits=n_splits, train_size=0.9, test_size=None, random_state=1)
    r = np.empty((n_splits, y.shape[1]))
    for s, (train, test) in enumerate(splitter.split(np.zeros(len(y)), labels)):
        model = PLSRegression(n_components=25, scale=False).fit(x[train], y[train])
        prediction = model.predict(x[test])
        for i in range(y.shape[1]):
            r[s, i] = scipy.stats.pearsonr(y[test, i], prediction[:, i])[0]
    medians = np.median(r, axis=1)
    return {"r": r, "score": medians.mean(), "error": medians.std(ddof=0) / np.sqrt(n_splits)}


def peer_split_half(neural: xr.DataArray, n_splits: int = 10) -> dict[str, np.ndarray]:
    """Brain-Score's InternalConsistency procedure, straightforwardly (xarray groupby + pearsonr loop)."""
    import scipy.stats
    from sklearn.model_selection import ShuffleSplit

    repetitions = np.unique(neural["repetition"].values)
    splitter = ShuffleSplit(n_splits=n_splits, train_size=0.5, test_size=None, random_state=1)
    per_split = []
    for first, second in splitter.split(np.zeros(len(repetitions))):
        halves = []
        for chosen in (first, second):
            part = neural.isel(presentation=np.isin(neural["repetition"].values, repetitions[chosen]))
            halves.append(part.groupby("stimulus_id").mean("presentation").transpose("stimulus_id", "neuroid"))
        r = np.array([scipy.stats.pearsonr(halves[0].values[:, i], halves[1].values[:, i])[0]
                      for i in range(neural.sizes["neuroid"])])
        per_split.append(2 * r / (1 + r))
    per_split = np.array(per_split)
    medians = np.median(per_split, axis=1)
    return {"per_split": per_split, "ceiling": medians.mean(), "error": medians.std(ddof=0) / np.sqrt(n_splits)}


def timed(function, *args, repeat: int = 1, **kwargs):
    best = np.inf
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return result, best


def peak_mib(function, *args, **kwargs) -> float:
    tracemalloc.start()
    try:
        function(*args, **kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def main(argv: list[str] | None = None) -> int:
    from neuromodels.analysis.ceilings import ceiling_split_half
    from neuromodels.analysis.predictivity import predictivity

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the stimuli (smoke run, no PASS/FAIL)")
    args = parser.parse_args(argv)
    per_object = 10 if args.quick else 40
    neural, features = make_data(per_object=per_object)
    print(f"data: {neural.sizes['presentation']} presentations = {features.sizes['presentation']} stimuli x "
          f"{int(neural['repetition'].max()) + 1} repetitions, {neural.sizes['neuroid']} neuroids, "
          f"{features.sizes['feature']} features; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")

    from threadpoolctl import threadpool_limits

    warnings.simplefilter("ignore")
    ours, t_ours = timed(predictivity, features, neural, repeat=3)
    ridge, t_ridge = timed(predictivity, features, neural, regression="ridge", repeat=3)
    ceil_ours, t_ceil_ours = timed(ceiling_split_half, neural, repeat=3)
    # The peer runs with the default BLAS threads and with one thread (ours uses one thread for its small
    # LAPACK calls); the faster of the two is the reference, so that contention on shared cores does not
    # inflate the ratio.
    peer, t_peer_default = timed(peer_pls_score, features, neural)
    with threadpool_limits(limits=1, user_api="blas"):
        _, t_peer_single = timed(peer_pls_score, features, neural)
        ceil_peer, t_ceil_single = timed(peer_split_half, neural)
    _, t_ceil_default = timed(peer_split_half, neural)
    t_peer = min(t_peer_default, t_peer_single)
    t_ceil_peer = min(t_ceil_default, t_ceil_single)

    r_diff = float(np.nanmax(np.abs(ours["r"].values - peer["r"])))
    score_diff = abs(float(ours["score"]) - float(peer["score"]))
    ceil_diff = abs(float(ceil_ours["ceiling"]) - float(ceil_peer["ceiling"]))
    per_ceil_diff = float(np.nanmax(np.abs(ceil_ours["ceiling_per_split"].values - ceil_peer["per_split"])))

    # The peer's NIPALS stops at a squared weight change of 1e-6; a converged run on one split shows whether the
    # remaining difference is that tolerance (not our closed form).
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.model_selection import StratifiedShuffleSplit
    from neuromodels.analysis.predictivity import average_repetitions
    from neuromodels.analysis.regression import pls_fit_predict, ridge_path

    averaged = average_repetitions(neural)
    x = features.set_index(presentation="stimulus_id").sel(presentation=averaged["stimulus_id"].values).values
    y = averaged.values
    train, test = next(StratifiedShuffleSplit(10, train_size=0.9, random_state=1).split(
        np.zeros(len(y)), averaged["object_name"].values))
    (mine,), _, _ = pls_fit_predict(x[train], [y[train]], x[test], 25)
    default = PLSRegression(25, scale=False).fit(x[train], y[train]).predict(x[test])
    exact = PLSRegression(25, scale=False)
    exact.algorithm = "svd"  # scikit-learn's internal exact singular-vector step: NIPALS at convergence
    converged = exact.fit(x[train], y[train]).predict(x[test])
    scale = y[test].std()
    pred_default = float(np.abs(mine - default).max() / scale)
    pred_converged = float(np.abs(mine - converged).max() / scale)

    # Ridge at the chosen alpha of split 0 against scikit-learn's Ridge.
    from sklearn.linear_model import Ridge

    alpha0 = float(ridge["alpha"].values[0])
    sk_ridge = Ridge(alpha=alpha0).fit(x[train], y[train]).predict(x[test])
    ours_ridge = ridge_path(x[train], y[train], x[test], [alpha0])[0]
    ridge_pred_diff = float(np.abs(sk_ridge - ours_ridge).max() / scale)

    mem_ours = peak_mib(predictivity, features, neural)
    mem_ridge = peak_mib(predictivity, features, neural, regression="ridge")
    mem_ceil_ours = peak_mib(ceiling_split_half, neural)
    mem_ceil_peer = peak_mib(peer_split_half, neural)
    mem_peer = peak_mib(peer_pls_score, features, neural, n_splits=1)

    pls_ratio = t_peer / t_ours
    ceil_ratio = t_ceil_peer / t_ceil_ours
    print()
    print(f"PLS score      ours {float(ours['score']):.6f} +- {float(ours['error']):.6f}   "
          f"peer {float(peer['score']):.6f} +- {float(peer['error']):.6f}   |score diff| {score_diff:.2e}, "
          f"max |r diff| {r_diff:.2e}")
    print(f"  predictions (split 0, relative to the response SD): ours vs sklearn default tol {pred_default:.2e}, "
          f"vs sklearn with exact SVD weights (converged NIPALS) {pred_converged:.2e}")
    print(f"  time ours {t_ours:.3f} s, peer {t_peer:.2f} s (default BLAS threads {t_peer_default:.2f} s, one thread "
          f"{t_peer_single:.2f} s), ratio {pls_ratio:.1f}x")
    print(f"Ceiling        ours {float(ceil_ours['ceiling']):.6f} +- {float(ceil_ours['error']):.6f}   "
          f"peer {float(ceil_peer['ceiling']):.6f} +- {float(ceil_peer['error']):.6f}   |diff| {ceil_diff:.2e}, "
          f"max per-neuroid diff {per_ceil_diff:.2e}")
    print(f"  time ours {t_ceil_ours:.3f} s, peer {t_ceil_peer:.2f} s (default threads {t_ceil_default:.2f} s, one "
          f"thread {t_ceil_single:.2f} s), ratio {ceil_ratio:.1f}x")
    print(f"Ridge-GCV      score {float(ridge['score']):.6f}, {len(ridge.attrs['relative_alphas'])} alphas, "
          f"time {t_ridge:.3f} s = {t_ridge / t_ours:.2f} x our PLS time, {t_ridge / t_peer:.3f} x the peer's PLS "
          f"time; prediction vs sklearn Ridge(alpha) {ridge_pred_diff:.2e}")
    print(f"Peak traced memory: PLS ours {mem_ours:.0f} MiB (peer, 1 split {mem_peer:.0f} MiB), ridge {mem_ridge:.0f} "
          f"MiB, ceiling ours {mem_ceil_ours:.0f} MiB (peer {mem_ceil_peer:.0f} MiB); process max RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")

    if args.quick:
        print("quick run: no PASS/FAIL")
        return 0
    checks = [
        ("PLS score agrees with the peer to 1e-4", score_diff <= 1e-4),
        ("ceiling agrees with the peer to 1e-10", ceil_diff <= 1e-10 and per_ceil_diff <= 1e-10),
        ("predictions equal sklearn PLS with converged weights to 1e-6", pred_converged <= 1e-6),
        ("ridge predictions equal sklearn Ridge to 1e-6", ridge_pred_diff <= 1e-6),
        (f"PLS >= 10x faster ({pls_ratio:.1f}x)", pls_ratio >= 10),
        (f"ceiling >= 20x faster ({ceil_ratio:.1f}x)", ceil_ratio >= 20),
        (f"ridge-CV (30 alphas) < 1/10 of our PLS time ({t_ridge / t_ours:.2f})", t_ridge < t_ours / 10),
        (f"ridge-CV (30 alphas) < 1/10 of the peer's PLS time ({t_ridge / t_peer:.3f})", t_ridge < t_peer / 10),
    ]
    print()
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())

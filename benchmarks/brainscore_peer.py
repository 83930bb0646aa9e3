"""Brain-Score itself on the arrays of ``bench_predictivity.py``; run by it with the Python of Brain-Score's own
environment (see that script's docstring), never imported by neuromodels.

    BRAIN-SCORE-PYTHON benchmarks/brainscore_peer.py DATA.npz REPEATS > result.json

``DATA.npz`` holds ``trials (repetition, stimulus, neuroid)``, ``features (stimulus, feature)``, ``stimulus_id``,
``object_name`` (per stimulus) and ``neuroid_id``. The MajajHong2015 PLS benchmark's steps are run ``REPEATS``
times each in this process, timed one by one: the ceiling ``InternalConsistency()(assembly)`` and
``CrossRegressedCorrelation(pls_regression(), pearsonr_correlation(),
crossvalidation_kwargs=dict(stratification_coord='object_name'))(features, average_repetition(assembly))``
(brainscore_vision/benchmarks/majajhong2015/benchmark.py), ceiled by ``explained_variance``. Prints one JSON
object: times per repeat, the aggregate numbers, per-split r and ceilings (neuroids in ``neuroid_id`` order).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings

os.environ.setdefault("TQDM_DISABLE", "1")  # Brain-Score's progress bars would fill the benchmark's output


def main(path: str, repeats: int) -> dict:
    import numpy as np
    from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly
    from brainscore_vision.benchmark_helpers.neural_common import average_repetition, explained_variance
    from brainscore_vision.metrics.internal_consistency.ceiling import InternalConsistency
    from brainscore_vision.metrics.regression_correlation.metric import (
        CrossRegressedCorrelation,
        pearsonr_correlation,
        pls_regression,
    )

    data = np.load(path, allow_pickle=False)
    trials, features = data["trials"], data["features"]
    stimulus_id, object_name, neuroid_id = data["stimulus_id"], data["object_name"], data["neuroid_id"]
    n_reps, n_stimuli, n_neuroids = trials.shape
    neural = NeuroidAssembly(
        trials.reshape(n_reps * n_stimuli, n_neuroids),
        dims=["presentation", "neuroid"],
        coords={
            "stimulus_id": ("presentation", np.tile(stimulus_id, n_reps)),
            "object_name": ("presentation", np.tile(object_name, n_reps)),
            "repetition": ("presentation", np.repeat(np.arange(n_reps), n_stimuli)),
            "neuroid_id": ("neuroid", neuroid_id),
            "region": ("neuroid", ["IT"] * n_neuroids),
        },
    )
    source = NeuroidAssembly(
        features,
        dims=["presentation", "neuroid"],
        coords={
            "stimulus_id": ("presentation", stimulus_id),
            "object_name": ("presentation", object_name),
            "neuroid_id": ("neuroid", [f"feature{i}" for i in range(features.shape[1])]),
            "layer": ("neuroid", ["layer"] * features.shape[1]),
        },
    )
    target = average_repetition(neural)

    ceiling_times, score_times = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        ceiling = InternalConsistency()(neural)
        ceiling_times.append(time.perf_counter() - start)
    for _ in range(repeats):
        metric = CrossRegressedCorrelation(
            regression=pls_regression(),
            correlation=pearsonr_correlation(),
            crossvalidation_kwargs=dict(stratification_coord="object_name"),
        )
        start = time.perf_counter()
        raw = metric(source, target)
        score_times.append(time.perf_counter() - start)
    ceiled = explained_variance(raw, ceiling)
    order = {str(name): i for i, name in enumerate(neuroid_id)}

    def per_split(score) -> list:
        values = score.raw.transpose("split", "neuroid")
        position = [order[str(name)] for name in values["neuroid_id"].values]
        out = np.full((values.sizes["split"], n_neuroids), np.nan)
        out[:, position] = values.values
        return out.tolist()

    from importlib.metadata import version

    return {
        "versions": {
            name: version(name) for name in ("brainscore_vision", "brainscore_core", "scikit-learn", "numpy", "xarray")
        },
        "ceiling_times": ceiling_times,
        "score_times": score_times,
        "score": float(raw.values),
        "error": float(raw.attrs["error"]),
        "ceiling": float(ceiling.values),
        "ceiled_score": float(ceiled.values),
        "r": per_split(raw),
        "ceiling_per_split": per_split(ceiling),
    }


if __name__ == "__main__":
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]))))

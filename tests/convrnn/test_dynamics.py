"""Neural dynamics: a synthetic time-resolved assembly made from a known layer of a known ConvRNN is recovered."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from neuromodels.analysis.temporal_predictivity import (
    step_bin_scores,
    steps_to_time_bins,
    temporal_features,
    temporal_predictivity,
)
from neuromodels.convrnn import ConvRNN, LayerSpec
from neuromodels.errors import ConfigError

torch.set_num_threads(1)
MS_PER_STEP = 10.0


@pytest.fixture(scope="module")
def known_model_and_assembly():
    from neuromodels.fitting.classification import image_task

    torch.manual_seed(0)
    model = ConvRNN(
        [LayerSpec(6, 3, 1), LayerSpec(8, 3, 2), LayerSpec(8, 3, 2)],
        cell="rgc",
        feedback=[(2, 0)],
        steps=6,
        image_steps=2,
    )
    x, _ = image_task("digits", n_train=600, n_valid=1, n_test=1, seed=0)["train"]
    ids = np.array([f"s{i:03d}" for i in range(len(x))])
    feats = temporal_features(model, x, stimulus_ids=ids, progress=False)
    source = feats["layers.1"].values  # (stimulus, feature, step)
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(source.shape[1], 12)) / np.sqrt(source.shape[1])
    steps = [1, 2, 3, 4, 5]  # bin b holds layer 1 at step b + 1 (the layer is silent at step 0)
    clean = np.stack([source[:, :, s] @ weights for s in steps], axis=-1)  # (stimulus, neuroid, bin)
    clean /= clean.std(axis=(0, 1), keepdims=True)
    reps = [clean + 0.05 * rng.normal(size=clean.shape) for _ in range(2)]
    neural = xr.DataArray(
        np.concatenate(reps),
        dims=("presentation", "neuroid", "time_bin"),
        coords={
            "stimulus_id": ("presentation", np.tile(ids, 2)),
            "repetition": ("presentation", np.repeat([0, 1], len(ids))),
            "neuroid_id": ("neuroid", [f"n{i}" for i in range(12)]),
            "time_bin_start": ("time_bin", [s * MS_PER_STEP for s in steps]),
            "time_bin_end": ("time_bin", [(s + 1) * MS_PER_STEP for s in steps]),
        },
    )
    return model, x, ids, feats, neural


def test_features_have_the_conventions(known_model_and_assembly):
    model, x, ids, feats, _ = known_model_and_assembly
    assert sorted(feats) == ["layers.0", "layers.1", "layers.2"]
    f1 = feats["layers.1"]
    assert f1.dims == ("presentation", "feature", "time_step") and f1.sizes["time_step"] == 6
    assert f1.sizes["feature"] == 8 * 4 * 4 and f1.dtype == np.float32
    assert np.all(f1.isel(time_step=0).values == 0) and np.abs(f1.isel(time_step=1).values).max() > 0
    with torch.no_grad():
        direct = model.run(x[:3]).layers[1][:, 4].reshape(3, -1).numpy()
    np.testing.assert_allclose(f1.isel(time_step=4).values[:3], direct, rtol=1e-5, atol=1e-6)  # C order (c, y, x)


def test_steps_to_time_bins_mapping():
    feats = xr.DataArray(
        np.arange(2 * 1 * 6, dtype=float).reshape(2, 1, 6),
        dims=("presentation", "feature", "time_step"),
        coords={"stimulus_id": ("presentation", ["a", "b"]), "time_step": np.arange(6)},
    )
    plain = steps_to_time_bins(feats, ms_per_step=10, onset_ms=50)
    np.testing.assert_array_equal(plain["time_bin_start"].values, [50, 60, 70, 80, 90, 100])
    np.testing.assert_array_equal(plain.values, feats.values)  # exact: relabelled, values copied
    # 20 ms bins: steps centred at 55, 65 -> bin [50, 70); 75, 85 -> [70, 90); a bin with no centre -> nearest step
    binned = steps_to_time_bins(feats, ms_per_step=10, onset_ms=50, bins=[(50, 70), (70, 90), (200, 220)])
    np.testing.assert_allclose(binned.values[0, 0], [0.5, 2.5, 5.0])
    with pytest.raises(ConfigError):
        steps_to_time_bins(feats, bins=[(10, 5)])


def test_the_generating_layer_scores_highest_in_every_bin(known_model_and_assembly):
    model, x, ids, _, neural = known_model_and_assembly
    result = temporal_predictivity(
        model, x, neural, stimulus_ids=ids, ms_per_step=MS_PER_STEP, n_splits=3, regression="ridge", stratify_coord=None
    )
    scores = result["score"]
    assert scores.dims == ("layer", "time_bin")
    best = scores.fillna(-1).argmax("layer").values
    assert list(np.asarray(scores["layer"].values)[best]) == ["layers.1"] * 5, scores.values
    assert float(scores.sel(layer="layers.1").min()) > 0.9


def test_the_generating_time_course_scores_highest(known_model_and_assembly):
    _, _, _, feats, neural = known_model_and_assembly
    matrix = step_bin_scores(feats["layers.1"], neural, n_splits=3, regression="linear", stratify_coord=None)
    assert matrix.dims == ("time_step", "time_bin") and np.all(np.isnan(matrix.values[0]))
    # bin b was generated from step b + 1: that step is the best one for every bin
    np.testing.assert_array_equal(np.nanargmax(matrix.values, axis=0), [1, 2, 3, 4, 5])

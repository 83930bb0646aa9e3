"""score_many / score_features: Dask tasks give the same numbers on every scheduler; features extracted once per model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from neuromodels.analysis.features import extract_features
from neuromodels.analysis.predictivity import predictivity
from neuromodels.analysis.scale import score_features, score_many
from neuromodels.datasets.recording import assembly
from neuromodels.errors import ConfigError

N_STIMULI = 40
OPTIONS = {"regression": "pls", "n_components": 4, "n_splits": 3}


def _images() -> xr.DataArray:
    rng = np.random.default_rng(0)
    return xr.DataArray(
        rng.uniform(0, 1, (N_STIMULI, 6, 6)).astype(np.float32),
        dims=("stimulus", "y", "x"),
        coords={
            "stimulus_id": ("stimulus", [f"im{i:02d}" for i in range(N_STIMULI)]),
            "object_name": ("stimulus", [f"obj{i % 4}" for i in range(N_STIMULI)]),
        },
    )


def _model(seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(48, 10))


class _CountingModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = _model(1)
        self.forward_calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forward_calls += 1
        return self.net(x)


def _neural(region: str, seed: int, n_neuroids: int = 6, repetitions: int = 2) -> xr.DataArray:
    """Responses that are a noisy linear read-out of model 0's ReLU layer, with repeated presentations."""
    rng = np.random.default_rng(seed)
    feats = extract_features(_model(0), _images(), layers="1", progress=False).values.astype(np.float64)
    signal = feats @ rng.normal(size=(feats.shape[1], n_neuroids))
    signal /= signal.std(axis=0)
    values = np.concatenate([signal + rng.normal(scale=0.7, size=signal.shape) for _ in range(repetitions)])
    ids = [f"im{i:02d}" for i in range(N_STIMULI)]
    return assembly(
        values,
        stimulus_id=ids * repetitions,
        neuroid_id=[f"{region}_{j}" for j in range(n_neuroids)],
        repetition=np.repeat(np.arange(repetitions), N_STIMULI),
        presentation_coords={"object_name": [f"obj{i % 4}" for i in range(N_STIMULI)] * repetitions},
        neuroid_coords={"region": [region] * n_neuroids},
    )


@pytest.fixture(scope="module")
def regions() -> dict[str, xr.DataArray]:
    return {"V4": _neural("V4", 1), "IT": _neural("IT", 2)}


@pytest.fixture(scope="module")
def synchronous(regions) -> xr.Dataset:
    return score_many(
        {"a": _model(0), "b": lambda: _model(1)},
        {"a": ["1", "3"], "b": ["1"]},
        regions,
        _images(),
        progress=False,
        **OPTIONS,
    )


def test_result_layout_and_values_equal_direct_predictivity(synchronous, regions):
    result = synchronous
    assert result["score"].dims == ("model", "layer", "region")
    assert list(result["model"].values) == ["a", "b"]
    assert list(result["layer"].values) == ["1", "3"]
    assert list(result["region"].values) == ["V4", "IT"]
    assert np.isnan(result["score"].sel(model="b", layer="3")).all()  # model b has no layer "3" here
    assert np.isfinite(result["score"].sel(model="a")).all() and np.isfinite(result["error"].sel(model="a")).all()
    feats = extract_features(_model(0), _images(), layers="3", progress=False)
    direct = predictivity(feats, regions["IT"], **OPTIONS)
    # exact: the synchronous scheduler runs the same extraction and predictivity code in this thread, in order
    assert float(result["score"].sel(model="a", layer="3", region="IT")) == float(direct["score"])
    assert float(result["error"].sel(model="a", layer="3", region="IT")) == float(direct["error"])
    # the neural data are a read-out of model a's layer "1": it must beat model b's unrelated weights
    assert (result["score"].sel(model="a", layer="1") > result["score"].sel(model="b", layer="1")).all()


def test_identical_on_threads_and_on_a_distributed_cluster(synchronous, regions):
    distributed = pytest.importorskip("distributed")
    models = {"a": _model(0), "b": lambda: _model(1)}
    layers = {"a": ["1", "3"], "b": ["1"]}
    threads = score_many(models, layers, regions, _images(), scheduler="threads", workers=2, progress=False, **OPTIONS)
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        clustered = score_many(models, layers, regions, _images(), scheduler=client, progress=False, **OPTIONS)
    # Same tasks on other threads: the numbers are the same computation, but BLAS and torch may split their sums
    # differently when called from several threads at once (or, on a real cluster, on another CPU). One float32 ulp
    # of noise on every feature moves these scores and errors by <= 1.5e-7 (measured); the six scores differ from
    # each other by >= 0.08, so a task given the wrong layer or region still fails.
    for other in (threads, clustered):
        for name in ("score", "error"):
            np.testing.assert_allclose(other[name].values, synchronous[name].values, rtol=0, atol=1e-6)  # NaN = NaN
        assert list(other["layer"].values) == list(synchronous["layer"].values)


def test_features_are_extracted_once_per_model(regions):
    model = _CountingModel()
    score_many(
        {"m": model}, ["net.1", "net.3"], regions, _images(), extraction={"batch_size": 16}, progress=False, **OPTIONS
    )
    assert model.forward_calls == 3  # 40 stimuli in batches of 16, once, for 2 layers x 2 regions


def test_score_features_with_ceiling_and_lazy_features(tmp_path, regions):
    feats = extract_features(_model(0), _images(), layers=["1", "3"], progress=False, out=tmp_path / "f")
    result = score_features(feats, regions, ceiling="split_half", progress=False, **OPTIONS)
    assert result["score"].dims == ("layer", "region")
    assert "ceiled_score" in result
    direct = predictivity(feats["1"].compute(), regions["V4"], ceiling="split_half", **OPTIONS)
    assert float(result["ceiled_score"].sel(layer="1", region="V4")) == pytest.approx(
        float(direct["ceiled_score"]), abs=1e-12
    )


def test_bad_scheduler_arguments():
    with pytest.raises(ConfigError, match="scheduler"):
        score_features({"x": xr.DataArray(np.zeros((2, 2)))}, _neural("IT", 0), scheduler="gpu-farm", progress=False)
    with pytest.raises(ConfigError, match="workers"):
        score_features({"x": xr.DataArray(np.zeros((2, 2)))}, _neural("IT", 0), workers=0, progress=False)
    with pytest.raises(ConfigError, match="layers has no entry"):
        score_many({"a": _model(0)}, {"b": ["1"]}, _neural("IT", 0), _images(), progress=False)

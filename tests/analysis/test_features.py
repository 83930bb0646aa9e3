"""extract_features: exact activations by hand, hooks removed, PCA equal to scikit-learn, disk path equal to memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.decomposition import PCA

from neuromodels.analysis.features import extract_features, fit_pca
from neuromodels.errors import ConfigError, DataFormatError


def _images(
    n: int = 7, size: int = 3, *, seed: int = 0, channels: int | None = None, prefix: str = "s"
) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    shape = (n, size, size) + ((channels,) if channels else ())
    dims = ("stimulus", "y", "x") + (("channel",) if channels else ())
    return xr.DataArray(
        rng.uniform(-1, 1, shape).astype(np.float32),
        dims=dims,
        coords={
            "stimulus_id": ("stimulus", [f"{prefix}{i}" for i in range(n)]),
            "object_name": ("stimulus", [f"obj{i % 3}" for i in range(n)]),
        },
    )


def _ulps(values: np.ndarray, n: int = 8) -> float:
    """An absolute tolerance of ``n`` float32 ulp at the scale of ``values``: for one computation done by two paths."""
    return n * float(np.finfo(np.float32).eps) * max(1.0, float(np.abs(values).max()))


def _hand_model() -> torch.nn.Sequential:
    """conv (1 -> 2 channels, 2x2) with known weights, ReLU, flatten, linear (8 -> 3) with known weights."""
    conv = torch.nn.Conv2d(1, 2, kernel_size=2)
    linear = torch.nn.Linear(8, 3)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 0] = 1.0  # channel 0 copies the top-left pixel of each 2x2 window
        conv.weight[1, 0] = 0.5  # channel 1: half the window sum
        conv.bias.copy_(torch.tensor([0.0, -0.25]))
        linear.weight.copy_(torch.arange(24, dtype=torch.float32).reshape(3, 8) / 10 - 1)
        linear.bias.copy_(torch.tensor([0.5, -0.5, 1.0]))
    return torch.nn.Sequential(conv, torch.nn.ReLU(), torch.nn.Flatten(), linear)


def _by_hand(images: np.ndarray) -> dict[str, np.ndarray]:
    n = images.shape[0]
    conv = np.zeros((n, 2, 2, 2))
    for i in range(2):
        for j in range(2):
            conv[:, 0, i, j] = images[:, i, j]
            conv[:, 1, i, j] = 0.5 * images[:, i : i + 2, j : j + 2].sum(axis=(1, 2)) - 0.25
    relu = np.maximum(conv, 0).reshape(n, 8)
    weight = np.arange(24).reshape(3, 8) / 10 - 1
    return {"0": conv.reshape(n, 8), "1": relu, "3": relu @ weight.T + np.array([0.5, -0.5, 1.0])}


def test_activations_equal_hand_computation_with_coords():
    images = _images()
    features = extract_features(_hand_model(), images, layers=["0", "1", "3"], batch_size=3, progress=False)
    expected = _by_hand(images.values.astype(np.float64))
    for layer, values in expected.items():
        da = features[layer]
        assert da.dims == ("presentation", "feature") and da.dtype == np.float32
        np.testing.assert_allclose(da.values, values, rtol=0, atol=2e-6)
        assert list(da["stimulus_id"].values) == [f"s{i}" for i in range(7)]
        assert list(da["object_name"].values) == [f"obj{i % 3}" for i in range(7)]
        assert da["layer"].item() == layer and da.attrs["layer"] == layer
    assert features["0"].attrs["feature_shape"] == [2, 2, 2]
    assert features["3"].attrs["feature_shape"] == [3]
    one = extract_features(_hand_model(), images, layers="3", progress=False)
    assert isinstance(one, xr.DataArray)
    # batches of 64 vs 3: the matrix products may sum in another order (BLAS kernels by shape and CPU): a few ulp
    np.testing.assert_allclose(one.values, features["3"].values, rtol=0, atol=_ulps(features["3"].values))


def test_channel_last_images_reach_the_model_as_channel_first():
    images = _images(n=4, size=2, channels=2)  # (stimulus, y, x, channel)
    conv = torch.nn.Conv2d(2, 1, kernel_size=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, 10.0]).reshape(1, 2, 1, 1))
    model = torch.nn.Sequential(conv)
    out = extract_features(model, images, layers="0", progress=False)
    expected = (images.values[..., 0] + 10 * images.values[..., 1]).reshape(4, -1)
    np.testing.assert_allclose(out.values, expected, rtol=1e-6, atol=1e-6)


def test_eval_mode_during_extraction_and_training_mode_restored():
    model = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Dropout(p=0.9))
    model.train()
    images = _images(n=5)
    out = extract_features(model, images, layers="1", progress=False)
    np.testing.assert_array_equal(out.values, images.values.reshape(5, -1))  # exact: dropout off (eval), a copy
    assert model.training and model[1].training


def test_tensor_input_needs_ids():
    x = torch.rand(4, 1, 3, 3)
    with pytest.raises(DataFormatError, match="stimulus_id"):
        extract_features(_hand_model(), x, layers="0", progress=False)
    out = extract_features(_hand_model(), x, layers="0", stimulus_ids=list("abcd"), progress=False)
    np.testing.assert_allclose(out.values, _by_hand(x.numpy()[:, 0].astype(np.float64))["0"], atol=2e-6)
    assert list(out["stimulus_id"].values) == list("abcd")


def test_unknown_layer_lists_available_names():
    with pytest.raises(ConfigError) as info:
        extract_features(_hand_model(), _images(), layers=["0", "conv9"], progress=False)
    message = str(info.value)
    assert "conv9" in message and "'0'" in message and "'3'" in message


def test_stimuli_without_stimulus_id_or_with_duplicates():
    images = _images().drop_vars("stimulus_id")
    with pytest.raises(DataFormatError, match="stimulus_id"):
        extract_features(_hand_model(), images, layers="0", progress=False)
    dup = _images().assign_coords(stimulus_id=("stimulus", ["a"] * 7))
    with pytest.raises(DataFormatError, match="duplicates"):
        extract_features(_hand_model(), dup, layers="0", progress=False)
    wrong_dims = _images().rename(stimulus="image")
    with pytest.raises(DataFormatError, match="dims"):
        extract_features(_hand_model(), wrong_dims, layers="0", progress=False)


class _FailsOnSecondBatch(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = _hand_model()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = self.inner(x)  # hooks of inner layers fire before the failure
        if self.calls == 2:
            raise RuntimeError("boom")
        return out


def _hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_hooks_removed_after_success_and_after_an_exception(tmp_path):
    model = _FailsOnSecondBatch()
    model.train()
    with pytest.raises(RuntimeError, match="boom"):
        extract_features(
            model, _images(), layers=["inner.0", "inner.3"], batch_size=3, progress=False, out=tmp_path / "feats"
        )
    assert _hook_count(model) == 0
    assert model.training  # mode restored on the error path too
    # the on-disk output is atomic: nothing half-written is left behind
    assert not list(tmp_path.rglob("*.nc"))
    extract_features(_hand_model(), _images(), layers=["0"], progress=False)
    plain = _hand_model()
    extract_features(plain, _images(), layers=["0", "3"], progress=False)
    assert _hook_count(plain) == 0


def test_disk_path_equals_memory_path(tmp_path):
    images = _images(n=10)
    model = _hand_model()
    memory = extract_features(model, images, layers=["1", "3"], batch_size=3, progress=False)
    disk = extract_features(model, images, layers=["1", "3"], batch_size=3, progress=False, out=tmp_path / "feats")
    for layer in ("1", "3"):
        assert (tmp_path / "feats" / f"{layer}.nc").is_file()
        assert disk[layer].chunks is not None  # lazy, dask-backed
        assert disk[layer].chunks[0] == (3, 3, 3, 1)
        xr.testing.assert_equal(disk[layer].compute(), memory[layer])  # exact: same batches, stored and read back
        assert list(disk[layer]["object_name"].values) == list(memory[layer]["object_name"].values)
        reread = xr.open_dataarray(tmp_path / "feats" / f"{layer}.nc")
        np.testing.assert_array_equal(reread.values, memory[layer].values)
        assert reread.attrs["layer"] == layer
        reread.close()
    single = extract_features(model, images, layers="3", progress=False, out=tmp_path / "layer3.nc")
    # batches of 64 vs 3: the matrix products may sum in another order (BLAS kernels by shape and CPU): a few ulp
    np.testing.assert_allclose(single.values, memory["3"].values, rtol=0, atol=_ulps(memory["3"].values))
    with pytest.raises(ConfigError, match="folder"):
        extract_features(model, images, layers=["1", "3"], progress=False, out=tmp_path / "two.nc")


class _TinyRecurrent(torch.nn.Module):
    """h_t = cell(x + h_{t-1}), h_0 = 0, for ``steps`` steps; the cell is one known linear map."""

    def __init__(self, steps: int = 3) -> None:
        super().__init__()
        self.steps = steps
        self.cell = torch.nn.Linear(2, 2)
        with torch.no_grad():
            self.cell.weight.copy_(torch.tensor([[0.5, 0.0], [1.0, -1.0]]))
            self.cell.bias.copy_(torch.tensor([0.1, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.zeros_like(x)
        for _ in range(self.steps):
            h = self.cell(x + h)
        return h


def test_time_steps_collect_each_call_of_a_recurrent_module(tmp_path):
    x = np.array([[1.0, 2.0], [-1.0, 0.5], [0.0, 3.0], [2.0, 2.0]], dtype=np.float32)
    stimuli = xr.DataArray(x, dims=("stimulus", "input"), coords={"stimulus_id": ("stimulus", list("abcd"))})
    weight, bias = np.array([[0.5, 0.0], [1.0, -1.0]]), np.array([0.1, 0.0])
    h, expected = np.zeros_like(x, dtype=np.float64), []
    for _ in range(3):
        h = (x + h) @ weight.T + bias
        expected.append(h)
    expected = np.stack(expected, axis=-1)  # (presentation, feature, time_step)

    model = _TinyRecurrent()
    out = extract_features(model, stimuli, layers="cell", time_steps=3, batch_size=3, progress=False)
    assert out.dims == ("presentation", "feature", "time_step")
    assert list(out["time_step"].values) == [0, 1, 2]
    np.testing.assert_allclose(out.values, expected, atol=1e-6)

    last = extract_features(model, stimuli, layers="cell", progress=False)
    np.testing.assert_allclose(last.values, expected[..., -1], atol=1e-6)
    picked = extract_features(model, stimuli, layers="cell", time_steps=[0, -1], progress=False)
    assert list(picked["time_step"].values) == [0, 2]
    np.testing.assert_allclose(picked.values, expected[..., [0, 2]], atol=1e-6)

    disk = extract_features(
        model, stimuli, layers="cell", time_steps=3, batch_size=3, progress=False, out=tmp_path / "cell.nc"
    )
    xr.testing.assert_equal(disk.compute(), out)  # exact: same batches, stored and read back

    with pytest.raises(ConfigError, match="called 3 times"):
        extract_features(model, stimuli, layers="cell", time_steps=2, progress=False)
    assert _hook_count(model) == 0


def _wide_model() -> torch.nn.Sequential:
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(144, 30))


@pytest.mark.parametrize("layer, n_fit, n_components", [("1", 40, 12), ("3", 60, 10)])
def test_pca_features_equal_sklearn_pca_transform(layer, n_fit, n_components):
    """Layer "1" has 144 features > 40 images (Gram path); layer "3" has 30 features < 60 images (covariance path)."""
    model = _wide_model()
    stimuli = _images(n=9, size=8, channels=3, seed=1)
    fit_images = _images(n=n_fit, size=8, channels=3, seed=2, prefix="pca")
    raw_fit = extract_features(model, fit_images, layers=layer, progress=False).values
    raw = extract_features(model, stimuli, layers=layer, progress=False).values
    reference = PCA(n_components=n_components, svd_solver="full").fit(raw_fit.astype(np.float64))
    expected = reference.transform(raw.astype(np.float64))

    projected = extract_features(
        model, stimuli, layers=layer, pca_stimuli=fit_images, n_components=n_components, batch_size=4, progress=False
    )
    assert projected.shape == (9, n_components)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(projected.values, expected, rtol=0, atol=2e-5 * scale)
    assert projected.attrs["pca_n_components"] == n_components and projected.attrs["pca_n_images"] == n_fit
    np.testing.assert_allclose(
        projected.attrs["pca_explained_variance_ratio"], reference.explained_variance_ratio_.sum(), rtol=1e-5
    )


def test_pca_reuse_small_layers_untouched_and_bad_requests(tmp_path):
    model = _wide_model()
    stimuli = _images(n=9, size=8, channels=3, seed=1)
    fit_images = _images(n=40, size=8, channels=3, seed=2, prefix="pca")
    fitted = fit_pca(model, fit_images, layers=["1", "3"], n_components=30, progress=False)
    assert fitted["3"] is None  # 30 features: nothing to reduce, as in Brain-Score
    assert fitted["1"].components.shape == (30, 144)
    np.testing.assert_allclose(fitted["1"].components @ fitted["1"].components.T, np.eye(30), atol=1e-5)
    reused = extract_features(model, stimuli, layers=["1", "3"], pca=fitted, progress=False)
    direct = extract_features(
        model, stimuli, layers=["1", "3"], pca_stimuli=fit_images, n_components=30, progress=False
    )
    # exact here and below: the same forward passes and the same batch-by-batch projection (same batch size)
    np.testing.assert_array_equal(reused["1"].values, direct["1"].values)
    raw = extract_features(model, stimuli, layers="3", progress=False)
    np.testing.assert_array_equal(reused["3"].values, raw.values)
    assert reused["3"].attrs["pca"].startswith("not applied")
    on_disk = extract_features(model, stimuli, layers=["1"], pca=fitted, out=tmp_path / "f", progress=False)
    np.testing.assert_array_equal(on_disk["1"].values, direct["1"].values)

    with pytest.raises(ConfigError, match="pca_stimuli"):
        extract_features(model, stimuli, layers="1", pca=True, progress=False)
    with pytest.raises(ConfigError, match="at least 100"):
        extract_features(model, stimuli, layers="1", pca_stimuli=fit_images, n_components=100, progress=False)
    with pytest.raises(ConfigError, match="no fitted projection"):
        extract_features(model, stimuli, layers=["0"], pca=fitted, progress=False)


def test_components_beyond_rank_are_zero_with_a_warning():
    model = _wide_model()
    fit_images = _images(n=10, size=8, channels=3, seed=2, prefix="pca")
    fitted = fit_pca(model, fit_images, layers="1", n_components=10, progress=False)  # no warning: centring only
    components = fitted["1"].components
    assert np.all(components[-1] == 0)  # 10 centred images span 9 dimensions (exact: set to 0 beyond the rank)
    assert np.all(np.abs(components[:9]).max(axis=1) > 0)
    repeated = fit_images.copy(data=np.concatenate([fit_images.values[:5]] * 2))  # 5 distinct images: rank 4
    with pytest.warns(RuntimeWarning, match="4 of 8 components lie beyond the rank"):
        fitted = fit_pca(model, repeated, layers="1", n_components=8, progress=False)
    assert np.all(fitted["1"].components[4:] == 0) and np.all(np.abs(fitted["1"].components[:4]).max(axis=1) > 0)


def test_progress_bar_on_stderr(capsys):
    extract_features(_hand_model(), _images(), layers="0", progress=True)
    assert "stimulus" in capsys.readouterr().err

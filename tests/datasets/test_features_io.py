"""Model features (presentation, feature[, time_step]) through validate, write_netcdf, load and describe."""

from __future__ import annotations

# Exact equality in this file compares stored values read back (round trips): the same on every CPU.
import numpy as np
import pytest
import xarray as xr

from neuromodels.datasets import describe, load, validate, validate_features, write_netcdf
from neuromodels.datasets.recording import assembly
from neuromodels.errors import DataFormatError


def _features(time_steps: int | None = None) -> xr.DataArray:
    rng = np.random.default_rng(3)
    shape = (12, 5) + ((time_steps,) if time_steps else ())
    dims = ("presentation", "feature") + (("time_step",) if time_steps else ())
    return xr.DataArray(
        rng.normal(size=shape).astype(np.float32),
        dims=dims,
        coords={
            "stimulus_id": ("presentation", [f"s{i:02d}" for i in range(12)]),
            "object_name": ("presentation", ["a", "b"] * 6),
            "layer": "conv3",
        },
    )


@pytest.mark.parametrize("time_steps", [None, 4])
def test_features_round_trip_through_netcdf(tmp_path, time_steps):
    feats = _features(time_steps)
    path = tmp_path / "conv3.nc"
    write_netcdf(feats, path)
    back = load(path)
    assert back.dims == feats.dims
    np.testing.assert_array_equal(back.values, feats.values)
    assert list(back["stimulus_id"].values) == list(feats["stimulus_id"].values)
    assert back.attrs["layer"] == "conv3"
    info = describe(back)
    assert info["kind"] == "features" and info["n_features"] == 5 and info["n_stimuli"] == 12
    assert info.get("n_time_steps") == time_steps


def test_validate_features_names_the_field():
    feats = _features()
    assert validate(feats) is feats
    with pytest.raises(DataFormatError, match="stimulus_id"):
        validate_features(feats.assign_coords(stimulus_id=("presentation", ["same"] * 12)))
    with pytest.raises(DataFormatError, match="layer"):
        validate_features(feats.drop_vars("layer"))
    with pytest.raises(DataFormatError, match="time_step"):
        validate(feats.expand_dims(channel=2, axis=2))


def test_assembly_named_response_is_read_as_an_assembly(tmp_path):
    values = np.arange(24, dtype=float).reshape(6, 4)
    asm = assembly(values, stimulus_id=list("abcdef"), neuroid_id=list("wxyz"), name="response")
    path = tmp_path / "asm.nc"
    write_netcdf(asm, path)
    back = load(path)
    assert isinstance(back, xr.DataArray) and back.dims == ("presentation", "neuroid")
    np.testing.assert_array_equal(back.values, values)

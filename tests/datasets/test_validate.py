"""validate(): the data model of docs/data-model.md, with errors that name file, field, expected and found."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from neuromodels.datasets import validate
from neuromodels.datasets.recording import assembly, recording_from_counts, split
from neuromodels.errors import DataFormatError


def _recording(n_time=20, n_cell=3, with_split=True, seed=0):
    rng = np.random.default_rng(seed)
    counts = rng.poisson(1.0, size=(n_time, n_cell))
    edges = np.arange(n_time) * 0.01
    ds = recording_from_counts(
        counts,
        edges,
        0.01,
        [f"c{i}" for i in range(n_cell)],
        source="mem.h5",
        stimulus=rng.standard_normal((n_time, 4, 5)),
    )
    if with_split:
        labels = np.array(["train"] * (n_time // 2) + ["test"] * (n_time - n_time // 2))
        ds = ds.assign_coords(split=("time", labels))
        # test times restart at 0: monotonic within each split is what is required
        t = np.concatenate([edges[: n_time // 2], edges[: n_time - n_time // 2]])
        ds = ds.assign_coords(time=t)
        trials = np.full((3, n_time, n_cell), np.nan)
        trials[:, n_time // 2 :, :] = rng.poisson(1.0, size=(3, n_time - n_time // 2, n_cell))
        ds["trials"] = (("repeat", "time", "cell"), trials)
    return ds


def _assembly(n_stim=4, n_rep=3, n_neur=5, time_bins=None):
    rng = np.random.default_rng(1)
    shape = (n_stim * n_rep, n_neur) + ((time_bins,) if time_bins else ())
    kwargs = {}
    if time_bins:
        kwargs = {
            "time_bin_start_ms": np.arange(time_bins) * 10.0,
            "time_bin_end_ms": np.arange(1, time_bins + 1) * 10.0,
        }
    return assembly(
        rng.poisson(2.0, size=shape).astype(float),
        stimulus_id=[f"s{i}" for i in np.repeat(np.arange(n_stim), n_rep)],
        repetition=np.tile(np.arange(n_rep), n_stim),
        neuroid_id=[f"n{i}" for i in range(n_neur)],
        neuroid_coords={"region": ["IT"] * n_neur, "animal": ["m1"] * n_neur},
        attrs={"source": "mem.nc"},
        **kwargs,
    )


def test_valid_objects_pass_unchanged():
    ds = _recording()
    assert validate(ds) is ds
    da = _assembly(time_bins=2)
    assert validate(da) is da


def test_split_selects_parts_and_drops_train_trials():
    ds = _recording(n_time=20)
    train, test = split(ds, "train"), split(ds, "test")
    assert train.sizes["time"] == 10 and "trials" not in train and "repeat" not in train.dims
    assert test.sizes["time"] == 10 and not np.isnan(test["trials"].values).any()
    validate(train), validate(test)


@pytest.mark.parametrize(
    "mutate, field, found",
    [
        (lambda ds: ds.drop_vars("response"), "response", "trials"),
        (lambda ds: ds.assign(response=ds.response.T), "response", "dims"),
        (lambda ds: ds.assign(response=ds.response.where(ds.time != ds.time[3])), "response", "NaN"),
        (lambda ds: ds.assign(response=-ds.response), "response", "negative"),
        (lambda ds: ds.assign(response=ds.response + 0.5), "response", "non-integer"),
        (lambda ds: ds.assign(stimulus=ds.stimulus.astype("float64")), "stimulus", "float64"),
        (lambda ds: ds.assign_coords(time=ds.time[::-1].values), "time", "after"),
        (lambda ds: ds.assign_coords(cell=["a", "a", "b"]), "cell", "duplicates"),
        (lambda ds: ds.assign_coords(split=("time", ["train"] * 19 + ["valid"])), "split", "valid"),
    ],
)
def test_bad_recordings_raise_with_field(mutate, field, found):
    ds = _recording()
    with pytest.raises(DataFormatError) as info:
        validate(mutate(ds))
    err = info.value
    assert err.file == "mem.h5" and err.field == field
    assert found in str(err)
    assert str(err).startswith(f"mem.h5: field '{field}'")


def test_rates_with_units_are_accepted():
    ds = _recording()
    ds["response"] = (ds.response * 0.5).assign_attrs(units="Hz")
    validate(ds)


def test_file_argument_overrides_source():
    with pytest.raises(DataFormatError, match=r"^other\.h5: field 'response'"):
        validate(_recording().drop_vars("response"), file="other.h5")


@pytest.mark.parametrize(
    "mutate, field",
    [
        (
            lambda da: da.assign_coords(repetition=("presentation", np.zeros(da.sizes["presentation"], int))),
            "stimulus_id",
        ),
        (lambda da: da.drop_vars("stimulus_id"), "stimulus_id"),
        (lambda da: da.assign_coords(neuroid_id=("neuroid", ["n"] * da.sizes["neuroid"])), "neuroid_id"),
        (lambda da: da.transpose("neuroid", "presentation", ...), "<dims>"),
        (lambda da: da.assign_coords(time_bin_end=("time_bin", [10.0, 10.0])), "time_bin_end"),
    ],
)
def test_bad_assemblies_raise_with_field(mutate, field):
    with pytest.raises(DataFormatError) as info:
        validate(mutate(_assembly(time_bins=2)))
    assert info.value.field == field and info.value.file == "mem.nc"


def test_multiindex_is_rejected_with_advice():
    da = _assembly().set_index(presentation=["stimulus_id", "repetition"])
    assert isinstance(da.indexes["presentation"], pd.MultiIndex)
    with pytest.raises(DataFormatError, match="reset_index"):
        validate(da)


def test_lazy_arrays_are_not_computed():
    dask = pytest.importorskip("dask.array")
    ds = _recording(with_split=False)
    calls = []

    def boom(block):
        if block.size:  # dask probes with empty blocks to infer metadata
            calls.append(block.shape)
        return block

    lazy = dask.from_array(ds.stimulus.values, chunks=(5, 4, 5)).map_blocks(boom, dtype=np.float32)
    ds["stimulus"] = (("time", "y", "x"), lazy)
    validate(ds)
    assert calls == []


def test_non_xarray_objects_are_refused():
    with pytest.raises(DataFormatError, match="xarray.Dataset or xarray.DataArray"):
        validate(np.zeros(3))
    with pytest.raises(DataFormatError, match="DataArray"):
        from neuromodels.datasets import validate_assembly

        validate_assembly(xr.Dataset())


def test_signed_signals_pass_when_their_units_say_so():
    ds = _recording()
    signed = ds.assign(response=(ds.response - 2.5).assign_attrs(units="dF/F"))
    assert validate(signed) is signed
    for units in ("count", "Hz"):
        with pytest.raises(DataFormatError, match="negative"):
            validate(ds.assign(response=(ds.response - 2.5).assign_attrs(units=units)))

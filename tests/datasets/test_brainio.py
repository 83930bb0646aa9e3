"""netCDF: Brain-Score/BrainIO assemblies, neuromodels recordings, exact round trips, and BrainIO stimulus sets."""

from __future__ import annotations

# Exact equality in this file compares stored values read back (round trips) and copies: the same on every CPU.
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuromodels.datasets import load
from neuromodels.datasets.formats.brainio import (
    JSON_ATTRS_MARKER,
    StimulusSet,
    open_brainio,
    open_netcdf,
    open_stimulus_set,
    write_brainio,
    write_netcdf,
    write_stimulus_set,
)
from neuromodels.datasets.recording import assembly, recording_from_counts
from neuromodels.errors import ConfigError, DataFormatError

COWLEY = "cowley2023-v4"


def brainscore_assembly() -> xr.DataArray:
    """An assembly as BrainIO's DataAssembly holds it: MultiIndex on presentation and neuroid."""
    presentation = pd.MultiIndex.from_arrays(
        [["im0", "im0", "im1", "im1", "im2", "im2"], [0, 1, 0, 1, 0, 1], ["car", "car", "dog", "dog", "cup", "cup"]],
        names=["stimulus_id", "repetition", "object_name"],
    )
    neuroid = pd.MultiIndex.from_arrays([["n0", "n1", "n2"], ["V4", "IT", "IT"]], names=["neuroid_id", "region"])
    coords = (
        xr.Coordinates.from_pandas_multiindex(presentation, "presentation")
        .merge(xr.Coordinates.from_pandas_multiindex(neuroid, "neuroid"))
        .coords
    )
    values = np.arange(18, dtype=float).reshape(6, 3)
    values[2, 1] = np.nan
    return xr.DataArray(values, dims=("presentation", "neuroid"), coords=coords)


def write_like_brainio(da: xr.DataArray, path: Path, *, compress: bool = True, global_attrs: bool = False) -> None:
    """The two ways brainio.packaging.write_netcdf writes an assembly, with plain xarray (no brainio installed)."""
    da = da.reset_index(list(da.indexes))
    attrs = {"identifier": "dicarlo.Test2024", "stimulus_set_identifier": "dicarlo.test_images"}
    if compress:  # BrainIO's default: to_dataset(name="data") with zlib level 1 on every variable
        da = da.assign_attrs(attrs)
        ds = da.to_dataset(name="data")
        ds.to_netcdf(path, encoding={v: {"zlib": True, "complevel": 1} for v in ds.variables})
    elif global_attrs:  # BrainIO's specification: identifiers as global attributes of the file
        ds = da.to_dataset(name="data")
        ds.attrs.update(attrs)
        ds.to_netcdf(path)
    else:
        da.assign_attrs(attrs).to_netcdf(path)


# --------------------------------------------------------------------------------------------------------------
# Brain-Score / BrainIO assemblies


@pytest.mark.parametrize("compress, global_attrs", [(True, False), (False, False), (False, True)])
def test_brainio_assembly_opens_with_load(tmp_path, compress, global_attrs):
    path = tmp_path / "assy_dicarlo_Test2024.nc"
    original = brainscore_assembly()
    write_like_brainio(original, path, compress=compress, global_attrs=global_attrs)
    da = load(path)
    assert isinstance(da, xr.DataArray) and da.dims == ("presentation", "neuroid")
    assert not any(isinstance(i, pd.MultiIndex) for i in da.indexes.values())
    assert da["stimulus_id"].values.tolist() == ["im0", "im0", "im1", "im1", "im2", "im2"]
    assert da["stimulus_id"].dtype == object and isinstance(da["stimulus_id"].values[0], str)
    assert da["repetition"].values.tolist() == [0, 1, 0, 1, 0, 1]
    assert da["object_name"].values.tolist() == ["car", "car", "dog", "dog", "cup", "cup"]
    assert da["region"].values.tolist() == ["V4", "IT", "IT"]
    assert da.attrs["identifier"] == "dicarlo.Test2024"
    assert da.attrs["stimulus_set_identifier"] == "dicarlo.test_images"
    assert da.attrs["source"] == str(path) and da.attrs["format"] == "netcdf"
    assert da.name == ("data" if compress or global_attrs else None)
    np.testing.assert_array_equal(da.values, original.values)  # NaN at [2, 1] in place


def test_legacy_image_id_maps_to_stimulus_id(tmp_path):
    original = brainscore_assembly().reset_index(["presentation", "neuroid"])
    original = original.rename({"stimulus_id": "image_id"})
    path = tmp_path / "legacy.nc"
    original.to_netcdf(path)
    da = open_brainio(path)
    assert da["stimulus_id"].values.tolist() == da["image_id"].values.tolist() == original["image_id"].values.tolist()
    assert da["stimulus_id"].dims == ("presentation",)


def test_transposed_assembly_and_metadata_without_coordinates_attribute(tmp_path):
    # Another writer: dims (neuroid, presentation) and per-dimension metadata as data variables.
    ds = xr.Dataset(
        {
            "rates": (("neuroid", "presentation"), np.arange(6.0).reshape(2, 3)),
            "stimulus_id": ("presentation", np.array(["a", "b", "c"], dtype=object)),
            "neuroid_id": ("neuroid", np.array(["x", "y"], dtype=object)),
        }
    )
    path = tmp_path / "other.nc"
    ds.to_netcdf(path)
    da = load(path)
    assert da.dims == ("presentation", "neuroid") and da.name == "rates"
    assert da.sel(presentation=2, neuroid=1).item() == 5.0
    assert da["neuroid_id"].values.tolist() == ["x", "y"]


def test_cf_gathered_multiindex_is_rebuilt_as_plain_coordinates(tmp_path):
    # cf_xarray's encode_multi_index_as_compress layout, written by hand: codes into the product of the levels.
    stim_levels = np.array(["s0", "s1"], dtype=object)
    rep_levels = np.array([0, 1, 2])
    pairs = [("s1", 2), ("s0", 0), ("s1", 0)]
    codes = [list(stim_levels).index(s) * 3 + r for s, r in pairs]
    ds = xr.Dataset(
        {"data": (("presentation", "neuroid"), np.array([[1.0], [2.0], [3.0]]))},
        coords={
            "presentation": ("presentation", codes, {"compress": "stimulus_id repetition"}),
            "stimulus_id": ("stimulus_id", stim_levels),
            "repetition": ("repetition", rep_levels),
            "neuroid_id": ("neuroid", np.array(["n"], dtype=object)),
        },
    )
    path = tmp_path / "cf.nc"
    ds.to_netcdf(path)
    da = load(path)
    assert da["stimulus_id"].dims == ("presentation",) and da["repetition"].dims == ("presentation",)
    assert list(zip(da["stimulus_id"].values.tolist(), da["repetition"].values.tolist())) == pairs
    assert "presentation" not in da.coords and set(da.dims) == {"presentation", "neuroid"}


def test_plain_xarray_opens_our_file(tmp_path):
    da = assembly(
        np.array([[1.0, np.nan], [2.0, 3.0]]),
        stimulus_id=["a", "b"],
        neuroid_id=["n0", "n1"],
        repetition=[0, 0],
        neuroid_coords={"region": ["V4", "V4"]},
        attrs={"identifier": "lab.X2024", "stimulus_set_identifier": "lab.x", "bin_size_s": 0.1, "flags": [True]},
    )
    path = tmp_path / "ours.nc"
    write_brainio(da, path)
    plain = xr.open_dataarray(path, engine="netcdf4")
    try:
        np.testing.assert_array_equal(plain.values, da.values)
        assert plain["stimulus_id"].values.tolist() == ["a", "b"]
        assert plain["region"].values.tolist() == ["V4", "V4"]
        assert plain.attrs["identifier"] == "lab.X2024" and plain.attrs["bin_size_s"] == 0.1
        assert plain.attrs["flags"] == "[true]" and plain.attrs[JSON_ATTRS_MARKER] == '["flags"]'
    finally:
        plain.close()
    # BrainIO's specification wants the identifiers as global attributes as well.
    with xr.open_dataset(path, engine="netcdf4") as ds:
        assert ds.attrs["identifier"] == "lab.X2024" and ds.attrs["stimulus_set_identifier"] == "lab.x"


def test_multiindex_assembly_is_written_with_plain_coordinates_and_opens_lazily(tmp_path):
    original = brainscore_assembly().assign_attrs(source="memory", format="brainio")
    path = tmp_path / "multi.nc"
    write_brainio(original, path)  # as BrainIO does: reset_index before writing
    expected = original.reset_index(["presentation", "neuroid"])
    xr.testing.assert_identical(load(path), expected)
    lazy = open_brainio(path, lazy=True)
    try:
        assert hasattr(lazy.data, "dask") and lazy["stimulus_id"].dtype == object
        xr.testing.assert_identical(lazy.compute(), expected)
    finally:
        lazy.close()


def test_duplicate_stimulus_and_repetition_is_an_error(tmp_path):
    da = brainscore_assembly().reset_index(["presentation", "neuroid"])
    da = da.assign_coords(repetition=("presentation", [0, 0, 0, 1, 0, 1]))  # im0 rep 0 twice
    path = tmp_path / "dup.nc"
    da.to_netcdf(path)
    with pytest.raises(DataFormatError, match=r"dup\.nc: field 'stimulus_id'.*\('im0', 0\)"):
        load(path)
    with pytest.raises(DataFormatError, match="stimulus_id"):
        write_brainio(da, tmp_path / "out.nc")
    assert not (tmp_path / "out.nc").exists()


def test_truncated_and_foreign_files_name_the_file(tmp_path):
    da = assembly(np.ones((50, 40)), stimulus_id=[f"s{i}" for i in range(50)], neuroid_id=[f"n{i}" for i in range(40)])
    good = tmp_path / "good.nc"
    write_brainio(da, good)
    raw = good.read_bytes()
    cut = tmp_path / "cut.nc"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataFormatError, match=r"cut\.nc: field '<file>'.*netCDF"):
        load(cut)
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"not a netCDF file at all" * 10)
    with pytest.raises(DataFormatError, match=r"junk\.nc"):
        load(junk)
    with pytest.raises(ConfigError, match="bin_size"):
        load(good, bin_size=0.01)


def test_writes_are_atomic(tmp_path):
    da = assembly(np.ones((2, 2)), stimulus_id=["a", "b"], neuroid_id=["x", "y"], attrs={"note": "first"})
    path = tmp_path / "a.nc"
    write_brainio(da, path)
    bad = da.assign_attrs(thing=object())
    with pytest.raises(DataFormatError, match=r"attrs\.thing"):
        write_brainio(bad, path)
    assert load(path).attrs["note"] == "first"  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["a.nc"]  # no temporary left behind


def test_nul_in_strings_is_refused(tmp_path):
    da = assembly(np.ones((2, 1)), stimulus_id=["a\x00b", "c"], neuroid_id=["x"])
    with pytest.raises(DataFormatError, match="stimulus_id.*NUL"):
        write_brainio(da, tmp_path / "nul.nc")


# --------------------------------------------------------------------------------------------------------------
# exact round trips

_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=6)
_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True), _text
)
_attr_values = st.one_of(
    _json_leaf,
    st.lists(_json_leaf, max_size=3),
    st.dictionaries(st.text(min_size=1, max_size=4), st.lists(st.integers(), max_size=2), max_size=2),
    st.tuples(st.integers(), _text),
    st.builds(lambda n: np.arange(n, dtype=np.float32), st.integers(0, 3)),
    st.builds(lambda n: np.arange(n * 2, dtype=np.int64).reshape(n, 2), st.integers(1, 2)),
)
_attr_names = st.text("abcdefghij_", min_size=1, max_size=8).filter(lambda k: k not in ("source", "format"))


@st.composite
def assemblies(draw):
    n_stim = draw(st.integers(1, 4))
    n_rep = draw(st.integers(1, 3))
    n_neur = draw(st.integers(1, 4))
    n_time = draw(st.sampled_from([None, 1, 3]))
    shape = (n_stim * n_rep, n_neur) + (() if n_time is None else (n_time,))
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64]))
    values = draw(st.lists(st.integers(0, 30), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    values = np.asarray(values, dtype=dtype).reshape(shape)
    if dtype != np.int64:
        nan = np.asarray(draw(st.lists(st.booleans(), min_size=values.size, max_size=values.size))).reshape(shape)
        nan.flat[0] = False  # an all-NaN assembly is invalid
        values[nan] = np.nan
    if draw(st.booleans()):
        stimulus_ids = draw(st.lists(_text, min_size=n_stim, max_size=n_stim, unique=True))
    else:
        stimulus_ids = list(range(n_stim))
    stim = np.repeat(np.asarray(stimulus_ids, dtype=object if isinstance(stimulus_ids[0], str) else np.int64), n_rep)
    neuroid_ids = draw(
        st.one_of(
            st.lists(_text, min_size=n_neur, max_size=n_neur, unique=True).map(lambda v: np.asarray(v, dtype=object)),
            st.lists(st.integers(-5, 1000), min_size=n_neur, max_size=n_neur, unique=True).map(np.asarray),
        )
    )
    coords = {
        "stimulus_id": ("presentation", stim),
        "repetition": ("presentation", np.tile(np.arange(n_rep), n_stim)),
        "neuroid_id": ("neuroid", neuroid_ids),
        "region": (
            "neuroid",
            np.asarray(draw(st.lists(st.sampled_from(["V1", "V4", "IT"]), min_size=n_neur, max_size=n_neur))),
        ),  # fixed-width <U2
    }
    if draw(st.booleans()):
        coords["depth_mm"] = ("neuroid", np.linspace(0.0, 1.0, n_neur), {"units": "mm", "sorted": True})
    if n_time is not None:
        coords["time_bin_start"] = ("time_bin", 10.0 * np.arange(n_time))
        coords["time_bin_end"] = ("time_bin", 10.0 * np.arange(n_time) + 10.0)
    dims = ("presentation", "neuroid") + (() if n_time is None else ("time_bin",))
    attrs = draw(st.dictionaries(_attr_names, _attr_values, max_size=5))
    attrs.update(source="made-in-test", format="test")  # load() sets these only when absent
    name = draw(st.sampled_from([None, "data", "rates"]))
    return xr.DataArray(values, dims=dims, coords=coords, attrs=attrs, name=name)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(da=assemblies())
def test_netcdf_round_trip_is_identical(tmp_path, da):
    path = tmp_path / "roundtrip.nc"
    write_netcdf(da, path)
    back = load(path)
    xr.testing.assert_identical(back, da)
    for name in da.coords:
        assert back[name].dtype == da[name].dtype, name
    np.testing.assert_array_equal(np.isnan(back.values.astype(float)), np.isnan(da.values.astype(float)))
    for key, value in da.attrs.items():
        assert type(back.attrs[key]) is type(value) or isinstance(value, (int, float)), key


def test_recording_round_trip_is_identical(tmp_path):
    rng = np.random.default_rng(0)
    counts = rng.poisson(1.0, (40, 3))
    edges = np.arange(40) * 0.05
    rec = recording_from_counts(
        counts,
        edges,
        0.05,
        ["c0", "c1", "c2"],
        source="made-in-test",
        stimulus=rng.normal(size=(40, 4, 5)),
        cell_coords={"cell_type": ["ON", "OFF", "ON"]},
        attrs={
            "species": "salamander",
            "cell_types": ["ON", "OFF", "ON"],
            "n_spikes_outside": np.array([0, 1, 0]),
            "format": "test",
        },
    )
    rec = rec.assign_coords(split=("time", np.where(np.arange(40) < 30, "train", "test").astype(object)))
    trials = np.full((2, 40, 3), np.nan, dtype=np.float32)
    trials[:, 30:] = rng.poisson(1.0, (2, 10, 3))
    rec["trials"] = (("repeat", "time", "cell"), trials)
    path = tmp_path / "rec.nc"
    write_netcdf(rec, path)
    back = load(path)
    xr.testing.assert_identical(back, rec)
    assert back["cell"].dtype == object and back["stimulus"].dtype == np.float32
    assert back.attrs["cell_types"] == ["ON", "OFF", "ON"]

    # A lazily opened recording is written chunk by chunk and reads back identical.
    lazy = open_netcdf(path, lazy=True)
    assert hasattr(lazy["stimulus"].data, "dask")
    copy = tmp_path / "copy.nc"
    write_netcdf(lazy, copy)
    lazy.close()
    xr.testing.assert_identical(load(copy), rec)


def test_sample_retina_round_trip(tmp_path):
    rec = load("sample:retina")
    rec.attrs["format"] = "sample"  # load() adds 'format' when a file has none
    path = tmp_path / "retina.nc"
    write_netcdf(rec, path)
    back = load(path)
    xr.testing.assert_identical(back, rec)
    for name in rec.variables:
        assert back[name].dtype == rec[name].dtype, name


# --------------------------------------------------------------------------------------------------------------
# real data: Cowley et al. 2023, macaque V4, session 210325


def cowley_assembly(root: Path) -> xr.DataArray:
    """responses_raw is (neurons, images, repeat slots), NaN-padded at the end (readme.txt)."""
    raw = np.load(root / COWLEY / "responses_raw_responses_210325.npy")
    n_neurons, n_images, n_slots = raw.shape
    with zipfile.ZipFile(root / COWLEY / "images_images_210325.zip") as archive:
        image_ids = sorted(Path(n).stem for n in archive.namelist())  # images[i] <-> responses_raw[:, i, :]
    present = ~np.isnan(raw).all(axis=0)  # (images, slots): drop slots empty for every neuron
    image_index, slot = np.nonzero(present)
    values = raw[:, image_index, slot].T
    return assembly(
        values,
        stimulus_id=[image_ids[i] for i in image_index],
        repetition=slot,
        neuroid_id=[f"210325_{i:02d}" for i in range(n_neurons)],
        neuroid_coords={"region": ["V4"] * n_neurons, "animal": ["PE"] * n_neurons},
        attrs={
            "source": str(root / COWLEY / "responses_raw_responses_210325.npy"),
            "format": "npy",
            "identifier": "cowley.V4_2023_210325",
            "time_bin_ms": [0, 100],
        },
    )


def test_cowley_v4_assembly_round_trip(shared_data, tmp_path):
    da = cowley_assembly(shared_data)
    raw = np.load(shared_data / COWLEY / "responses_raw_responses_210325.npy")
    assert da.shape == (4840, 50)  # 640 images x 6-10 repeats, 50 neurons
    assert not np.isnan(da.values).any()
    # presentation 0 is image0001 repeat 0
    np.testing.assert_array_equal(da.isel(presentation=0).values, raw[:, 0, 0])
    path = tmp_path / "cowley.nc"
    write_brainio(da, path)
    back = load(path)
    xr.testing.assert_identical(back, da)
    mean = back.groupby("stimulus_id").mean("presentation").transpose("stimulus_id", "neuroid")
    averaged = np.load(shared_data / COWLEY / "responses_repeat_averaged_responses_210325.npy")
    np.testing.assert_allclose(mean.values, averaged.T, rtol=1e-12)


# --------------------------------------------------------------------------------------------------------------
# stimulus sets


def test_cowley_stimulus_set_round_trip(shared_data, tmp_path):
    images_zip = shared_data / COWLEY / "images_images_210325.zip"
    stimuli = StimulusSet.from_zip(images_zip, identifier="cowley.V4_2023_210325")
    assert len(stimuli) == 640 and stimuli.stimulus_ids[0] == "image0001"
    image = stimuli.image("image0001")
    assert image.shape == (112, 112, 3) and image.dtype == np.uint8

    csv, zp = tmp_path / "stimulus_cowley.csv", tmp_path / "stimulus_cowley.zip"
    write_stimulus_set(stimuli, csv, zp)
    back = open_stimulus_set(csv)  # finds the sibling zip
    assert back.zip_path == zp and back.identifier == "stimulus_cowley"
    pd.testing.assert_frame_equal(back.table, stimuli.table)
    with zipfile.ZipFile(images_zip) as a, zipfile.ZipFile(zp) as b:
        assert sorted(b.namelist()) == sorted(a.namelist())
        for name in a.namelist():
            assert a.read(name) == b.read(name), name

    batch = back.images(["image0002", "image0640"])
    assert batch.dims == ("stimulus", "y", "x", "channel") and batch.shape == (2, 112, 112, 3)
    np.testing.assert_array_equal(batch.sel(stimulus=1).values, stimuli.image("image0640"))
    assert batch["stimulus_id"].values.tolist() == ["image0002", "image0640"]

    # The stimulus ids of the V4 assembly are the ids of its stimulus set.
    assert set(cowley_assembly(shared_data)["stimulus_id"].values.tolist()) == set(back.stimulus_ids)


def make_png_zip(tmp_path: Path, names: list[str]) -> Path:
    from PIL import Image

    zp = tmp_path / "images.zip"
    with zipfile.ZipFile(zp, "w") as archive:
        for i, name in enumerate(names):
            image = Image.fromarray(np.full((4, 5), 10 * i, dtype=np.uint8))
            import io

            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            archive.writestr(name, buffer.getvalue())
    return zp


def test_legacy_brainio_csv_with_image_id(tmp_path):
    # The columns of brainio's tests/images/image_test_ten_images.csv.
    zp = make_png_zip(tmp_path, [f"n{i}.png" for i in range(3)])
    csv = tmp_path / "image_test.csv"
    csv.write_text("image_id,filename,thing\nn0,n0.png,foo0\nn1,n1.png,foo1\nn2,n2.png,foo2\n")
    stimuli = open_stimulus_set(csv, zp, identifier="test.three_images")
    assert stimuli.table.columns.tolist() == ["stimulus_id", "image_id", "filename", "thing"]
    assert stimuli.stimulus_ids == ["n0", "n1", "n2"] and stimuli.identifier == "test.three_images"
    assert stimuli.image("n2").tolist() == np.full((4, 5), 20, dtype=np.uint8).tolist()
    grey = stimuli.images()
    assert grey.dims == ("stimulus", "y", "x") and grey.shape == (3, 4, 5)
    write_stimulus_set(stimuli, tmp_path / "out.csv", tmp_path / "out.zip")
    again = open_stimulus_set(tmp_path / "out.csv")
    pd.testing.assert_frame_equal(again.table, stimuli.table)


def test_numeric_looking_ids_stay_strings(tmp_path):
    zp = make_png_zip(tmp_path, ["001.png", "002.png"])
    csv = tmp_path / "ids.csv"
    csv.write_text("stimulus_id,filename,contrast\n001,001.png,0.5\n002,002.png,1.0\n")
    stimuli = open_stimulus_set(csv, zp)
    assert stimuli.stimulus_ids == ["001", "002"]
    assert stimuli.table["contrast"].tolist() == [0.5, 1.0]


@pytest.mark.parametrize(
    "table, field",
    [
        ("stimulus_id,filename\na,a.png\na,b.png\n", "stimulus_id"),  # duplicate id
        ("stimulus_id,filename\na,a.png\nb,missing.png\n", "filename"),  # file not in the zip
        ("name,filename\na,a.png\n", "stimulus_id"),  # no id column
        ("stimulus_id,path\na,a.png\n", "filename"),  # no filename column
    ],
)
def test_bad_stimulus_sets_name_file_and_field(tmp_path, table, field):
    zp = make_png_zip(tmp_path, ["a.png", "b.png"])
    csv = tmp_path / "bad.csv"
    csv.write_text(table)
    with pytest.raises(DataFormatError) as info:
        open_stimulus_set(csv, zp)
    assert info.value.field == field
    assert info.value.file in (str(csv), str(zp))
    assert f"field '{field}'" in str(info.value)

"""Your own arrays in: assembly_from_arrays / recording_from_arrays, and load() on .npy, gzipped and broken files."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import xarray as xr

from neuromodels import datasets as nd
from neuromodels.datasets import assembly_from_arrays, load, recording_from_arrays, validate, write_netcdf
from neuromodels.errors import ConfigError, DataFormatError, UnknownFormatError

# --------------------------------------------------------------------------------------------------------------
# assemblies


def padded_repeats(seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """(stimulus, repeat slot, neuroid) spike counts, NaN-padded at the end: stimulus s has n_repeats[s] repeats."""
    rng = np.random.default_rng(seed)
    n_repeats = [3, 1, 4, 2, 4]
    values = rng.poisson(3.0, size=(5, 4, 6)).astype(np.float64)
    for s, n in enumerate(n_repeats):
        values[s, n:] = np.nan
    return values, n_repeats


def test_presentation_array_gets_the_data_models_coordinates():
    values = np.arange(12.0).reshape(4, 3)
    da = assembly_from_arrays(
        values,
        ["b", "a", "b", "b"],
        neuroid_ids=["n0", "n1", "n2"],
        region="V4",
        animal=["m1", "m1", "m2"],
        source="session1.npy",
    )
    assert da.dims == ("presentation", "neuroid")
    np.testing.assert_array_equal(da.values, values)
    assert da["stimulus_id"].values.tolist() == ["b", "a", "b", "b"]
    assert da["repetition"].values.tolist() == [0, 0, 1, 2]  # counted per stimulus, in order of presentation
    assert da["neuroid_id"].values.tolist() == ["n0", "n1", "n2"]
    assert da["region"].values.tolist() == ["V4"] * 3 and da["animal"].values.tolist() == ["m1", "m1", "m2"]
    assert da.attrs["source"] == "session1.npy"
    assert validate(da) is da


def test_default_neuroid_ids_and_given_repetitions():
    da = assembly_from_arrays(np.ones((3, 2), dtype=np.int64), [7, 7, 8], repetitions=[4, 9, 0])
    assert da["neuroid_id"].values.tolist() == ["0", "1"] and da["stimulus_id"].values.tolist() == ["7", "7", "8"]
    assert da["repetition"].values.tolist() == [4, 9, 0] and da.dtype == np.int64
    assert "region" not in da.coords and "source" not in da.attrs


def test_nan_padded_repeats_drop_missing_slots():
    values, n_repeats = padded_repeats()
    values[2, 1, 4] = np.nan  # one neuroid missing in a slot the others have: kept, as NaN
    da = assembly_from_arrays(values, ["s0", "s1", "s2", "s3", "s4"], dims=("stimulus", "repeat", "neuroid"))
    assert da.sizes == {"presentation": sum(n_repeats), "neuroid": 6}
    expected_ids = [f"s{s}" for s, n in enumerate(n_repeats) for _ in range(n)]
    expected_reps = [r for n in n_repeats for r in range(n)]
    assert da["stimulus_id"].values.tolist() == expected_ids and da["repetition"].values.tolist() == expected_reps
    for p, (sid, rep) in enumerate(zip(expected_ids, expected_reps)):
        np.testing.assert_array_equal(da.values[p], values[int(sid[1:]), rep])
    assert int(np.isnan(da.values).sum()) == 1
    # the repeat average per stimulus is NumPy's nanmean over the repeat axis
    mean = da.groupby("stimulus_id").mean("presentation").transpose("stimulus_id", "neuroid")
    np.testing.assert_allclose(mean.values, np.nanmean(values, axis=1), rtol=1e-15)


def test_repeats_in_another_axis_order_like_cowley_v4():
    """Cowley et al. 2023 store responses_raw as (neurons, images, repeat slots), NaN-padded (their readme.txt)."""
    values, n_repeats = padded_repeats(seed=1)
    by_neuron = values.transpose(2, 0, 1)
    da = assembly_from_arrays(
        by_neuron,
        [f"image{i:04d}" for i in range(1, 6)],
        dims=("neuroid", "stimulus", "repeat"),
        region="V4",
        animal="PE",
    )
    same = assembly_from_arrays(
        values, [f"image{i:04d}" for i in range(1, 6)], dims=("stimulus", "repeat", "neuroid"), region="V4", animal="PE"
    )
    xr.testing.assert_identical(da, same)
    assert da.sizes["presentation"] == sum(n_repeats)


def test_repeats_with_time_bins():
    rng = np.random.default_rng(2)
    values = rng.poisson(2.0, size=(3, 2, 4, 5)).astype(float)  # stimulus, repeat, neuroid, time_bin
    values[1, 1] = np.nan
    bins = [(0, 10), (10, 20), (20, 30), (30, 40), (40, 50)]
    da = assembly_from_arrays(
        values, ["a", "b", "c"], dims=("stimulus", "repeat", "neuroid", "time_bin"), time_bins=bins
    )
    assert da.dims == ("presentation", "neuroid", "time_bin") and da.sizes["presentation"] == 5
    assert da["time_bin_start"].values.tolist() == [0, 10, 20, 30, 40]
    assert da["time_bin_end"].values.tolist() == [10, 20, 30, 40, 50]
    np.testing.assert_array_equal(da.values[2], values[1, 0])  # b's second slot is empty: c/0 follows b/0
    np.testing.assert_array_equal(da.values[3], values[2, 0])
    assert da["stimulus_id"].values.tolist() == ["a", "a", "b", "c", "c"]


@pytest.mark.parametrize("time", [False, True])
def test_assembly_round_trips_through_netcdf(tmp_path, time):
    values, _ = padded_repeats()
    kwargs = {}
    if time:
        values = np.stack([values, 2 * values], axis=-1)
        kwargs["time_bins"] = [(70.0, 120.0), (120.0, 170.0)]
    da = assembly_from_arrays(
        values,
        list("abcde"),
        dims=("stimulus", "repeat", "neuroid", "time_bin")[: values.ndim],
        region="IT",
        animal="m",
        source="mine.npy",
        attrs={"identifier": "lab.mine"},
        **kwargs,
    )
    path = tmp_path / "mine.nc"
    write_netcdf(da, path)
    back = load(path)
    assert back.attrs.pop("format") == "netcdf"
    xr.testing.assert_identical(back, da)


@pytest.mark.parametrize(
    "call, field, needle",
    [
        (lambda v: assembly_from_arrays(v[0], ["a", "b"]), "stimulus_id", "4 stimulus ids"),
        (lambda v: assembly_from_arrays(v[0], list("abcd"), repetitions=[0, 1]), "repetition", "4 repetitions"),
        (
            lambda v: assembly_from_arrays(v[0], list("aabb"), repetitions=[0, 0, 1, 1]),
            "stimulus_id",
            "unique (stimulus_id, repetition) pairs",
        ),
        (lambda v: assembly_from_arrays(v[0], list("abcd"), neuroid_ids=["x"]), "neuroid_id", "6 neuroid ids"),
        (lambda v: assembly_from_arrays(v[0], list("abcd"), neuroid_ids=list("xxyyzz")), "neuroid_id", "unique"),
        (lambda v: assembly_from_arrays(v[0], list("abcd"), region=["V4"] * 5), "region", "6 values"),
        (lambda v: assembly_from_arrays(v[0], list("abcd"), animal=["m"] * 7), "animal", "6 values"),
        (
            lambda v: assembly_from_arrays(v, list("abcd"), dims=("stimulus", "repeat", "neuroid")),
            "stimulus_id",
            "5 stimulus ids",
        ),
        (lambda v: assembly_from_arrays(np.full((2, 3), np.nan), ["a", "b"]), "<values>", "all NaN"),
        (lambda v: assembly_from_arrays(np.array([["a"]]), ["a"]), "<values>", "numeric"),
        (
            lambda v: assembly_from_arrays(
                np.zeros((2, 3, 4)), ["a", "b"], dims=("presentation", "neuroid", "time_bin")
            ),
            "time_bin_start",
            "time_bins",
        ),
        (
            lambda v: assembly_from_arrays(
                np.zeros((2, 3, 4)), ["a", "b"], dims=("presentation", "neuroid", "time_bin"), time_bins=[(0, 1)] * 4
            ),
            "time_bin_start",
            "strictly increasing",
        ),
        (
            lambda v: assembly_from_arrays(
                np.zeros((2, 3, 2)),
                ["a", "b"],
                dims=("presentation", "neuroid", "time_bin"),
                time_bins=[(0, 1), (1, 2), (2, 3)],
            ),
            "time_bin_start",
            "2 (start, end)",
        ),
        (lambda v: assembly_from_arrays(np.zeros(3), ["a", "b", "c"]), "<dims>", "1-d"),
    ],
    ids=[
        "stimulus-ids",
        "repetitions",
        "duplicate-pairs",
        "neuroid-ids",
        "neuroid-duplicates",
        "region",
        "animal",
        "repeat-stimulus-ids",
        "all-nan",
        "strings",
        "no-time-bins",
        "time-bins-order",
        "time-bins-length",
        "one-d",
    ],
)
def test_assembly_errors_name_the_field(call, field, needle):
    values = padded_repeats()[0]  # (5 stimuli, 4 slots, 6 neuroids); values[0] serves as (4, 6) presentations
    with pytest.raises(DataFormatError) as err:
        call(values)
    assert err.value.field == field and needle in str(err.value)


def test_assembly_argument_errors():
    values, _ = padded_repeats()
    with pytest.raises(ConfigError, match=r"pass dims=.*\('stimulus', 'repeat', 'neuroid'\)"):
        assembly_from_arrays(values, list("abcde"))  # 3-d without dims is ambiguous
    with pytest.raises(ConfigError, match="repetitions"):
        assembly_from_arrays(values, list("abcde"), [0] * 5, dims=("stimulus", "repeat", "neuroid"))
    with pytest.raises(ConfigError, match="'trial'"):
        assembly_from_arrays(values, list("abcde"), dims=("stimulus", "trial", "neuroid"))
    with pytest.raises(ConfigError, match="time_bin"):
        assembly_from_arrays(values[:, 0], list("abcde"), time_bins=[(0, 100)])
    with pytest.raises(ConfigError, match="both"):
        assembly_from_arrays(values, list("abcde"), dims=("stimulus", "presentation", "neuroid"))


def test_assembly_source_names_the_file_in_errors():
    with pytest.raises(DataFormatError) as err:
        assembly_from_arrays(np.zeros((2, 2)), ["a"], source="v4.npy")
    assert err.value.file == "v4.npy" and str(err.value).startswith("v4.npy: field 'stimulus_id'")


# --------------------------------------------------------------------------------------------------------------
# recordings


def movie_and_counts(n_time: int = 40, n_cell: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_time, 5, 4)), rng.poisson(1.5, size=(n_time, n_cell))


def test_recording_from_stimulus_and_response():
    stimulus, counts = movie_and_counts()
    rec = recording_from_arrays(
        stimulus,
        counts,
        20.0,
        cell_ids=["a", "b", "c"],
        cell_types=["ON", "OFF", "ON"],
        species="salamander",
        source="exp1.mat",
    )
    assert validate(rec) is rec
    assert rec["stimulus"].dims == ("time", "y", "x") and rec["stimulus"].dtype == np.float32
    np.testing.assert_array_equal(rec["stimulus"].values, stimulus.astype(np.float32))
    np.testing.assert_array_equal(rec["response"].values, counts)
    assert rec["response"].attrs["units"] == "count"
    np.testing.assert_array_equal(rec["time"].values, np.arange(40) / 20.0)  # left edges, seconds
    assert rec["cell"].values.tolist() == ["a", "b", "c"] and rec["cell_type"].values.tolist() == ["ON", "OFF", "ON"]
    assert rec.attrs["frame_rate_hz"] == 20.0 and rec.attrs["bin_size_s"] == 0.05
    assert rec.attrs["species"] == "salamander" and rec.attrs["source"] == "exp1.mat"


def test_recording_with_split_trials_and_signed_units():
    stimulus, _ = movie_and_counts()
    rng = np.random.default_rng(3)
    dff = rng.standard_normal((40, 2))  # calcium dF/F: signed, allowed because the units say so
    split = ["train"] * 30 + ["test"] * 10
    trials = np.full((4, 40, 2), np.nan)
    trials[:, 30:] = rng.standard_normal((4, 10, 2))
    rec = recording_from_arrays(stimulus, dff, 30.0, response_units="dF/F", split=split, trials=trials, t_start=2.0)
    assert rec["response"].attrs["units"] == "dF/F" and rec["cell"].values.tolist() == ["0", "1"]
    assert rec["time"].values[0] == 2.0 and rec["time"].values[-1] == pytest.approx(2.0 + 39 / 30.0, abs=0)
    np.testing.assert_array_equal(nd.split(rec, "test")["trials"].values, trials[:, 30:])
    assert nd.split(rec, "train").sizes["time"] == 30


def test_spike_only_recording_without_stimulus():
    _, counts = movie_and_counts()
    rec = recording_from_arrays(None, counts, 100.0)
    assert "stimulus" not in rec and validate(rec) is rec


def test_recording_round_trips_through_netcdf(tmp_path):
    stimulus, counts = movie_and_counts()
    rec = recording_from_arrays(
        stimulus, counts, 60.0, split=["train"] * 30 + ["test"] * 10, cell_types=["ON", "OFF", "ON"], source="exp.h5"
    )
    path = tmp_path / "rec.nc"
    write_netcdf(rec, path)
    back = load(path)
    assert back.attrs.pop("format") == "netcdf"
    xr.testing.assert_identical(back, rec)


@pytest.mark.parametrize(
    "kwargs, field, needle",
    [
        ({"stimulus": np.zeros((39, 5, 4))}, "stimulus", "40 frames (as response)"),
        ({"stimulus": np.zeros((40, 5, 4, 3))}, "stimulus", "(time, y, x)"),
        ({"response": np.zeros(40)}, "response", "(time, cell)"),
        ({"response": np.full((40, 3), 0.5)}, "response", "integer spike counts"),
        ({"response": -np.ones((40, 3))}, "response", "non-negative"),
        ({"frame_rate_hz": 0.0}, "attrs.frame_rate_hz", "positive"),
        ({"cell_ids": ["a", "b"]}, "cell", "3 cell ids"),
        ({"cell_ids": ["a", "a", "b"]}, "cell", "unique"),
        ({"cell_types": ["ON"]}, "cell_type", "3 values"),
        ({"split": ["train"] * 39}, "split", "40 labels"),
        ({"split": ["train"] * 20 + ["valid"] * 20}, "split", "values in ('train', 'test')"),
        ({"trials": np.zeros((2, 40, 4))}, "trials", "(repeat, 40, 3)"),
    ],
    ids=[
        "stimulus-length",
        "stimulus-channels",
        "response-1d",
        "rates-without-units",
        "negative-counts",
        "frame-rate",
        "cell-ids",
        "cell-duplicates",
        "cell-types",
        "split-length",
        "split-labels",
        "trials-shape",
    ],
)
def test_recording_errors_name_the_field(kwargs, field, needle):
    stimulus, counts = movie_and_counts()
    args = {"stimulus": stimulus, "response": counts, "frame_rate_hz": 10.0} | kwargs
    with pytest.raises(DataFormatError) as err:
        recording_from_arrays(**args, source="exp.mat")
    assert err.value.field == field and err.value.file == "exp.mat" and needle in str(err.value)


# --------------------------------------------------------------------------------------------------------------
# load(): .npy arrays, broken files, gzip


def test_load_numeric_npy_points_to_the_constructors(tmp_path):
    path = tmp_path / "responses.npy"
    np.save(path, np.zeros((50, 640, 10)))
    with pytest.raises(UnknownFormatError) as err:
        load(path)
    text = str(err.value)
    assert err.value.file == str(path) and "assembly_from_arrays" in text and "recording_from_arrays" in text
    assert "float64 array of shape (50, 640, 10)" in text
    assert "neo" not in text and "Phy" not in text  # never routed to python-neo's folder readers


def test_load_object_npy_that_is_not_spike_times(tmp_path):
    path = tmp_path / "things.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(UnknownFormatError) as err:
        load(path)
    assert "neo" not in str(err.value) and "spike-time arrays" in str(err.value)


@pytest.mark.parametrize(
    "suffix, kind", [(".h5", "HDF5"), (".hdf5", "HDF5"), (".npy", "NumPy"), (".npz", "NumPy"), (".mat", "MATLAB")]
)
@pytest.mark.parametrize("content", [b"", b"hello world, this is not a data file\n" * 40], ids=["empty", "garbage"])
def test_unreadable_files_say_so(tmp_path, suffix, kind, content):
    path = tmp_path / f"recording{suffix}"
    path.write_bytes(content)
    with pytest.raises(DataFormatError) as err:
        load(path)
    text = str(err.value)
    assert f"not a readable {kind} file" in text and err.value.file == str(path) and err.value.field == "<file>"
    assert "IO:" not in text  # no list of python-neo readers that failed (BiocamIO, PhyIO, ...)
    if not content:
        assert "empty file (0 bytes)" in text


def _spike_trials_mat(path: Path) -> None:
    """A (2 stimuli, 1) cell array of (2 cells, 2 trials) spike-time vectors in ms."""
    outer = np.empty((2, 1), dtype=object)
    for s in range(2):
        inner = np.empty((2, 2), dtype=object)
        for c in range(2):
            for t in range(2):
                inner[c, t] = np.array([[10.0 * (s + 1)], [100.0 + c + t]])
        outer[s, 0] = inner
    scipy.io.savemat(str(path), {"Spikes": outer})


def _gzip(path: Path) -> Path:
    target = path.with_name(path.name + ".gz")
    target.write_bytes(gzip.compress(path.read_bytes()))
    return target


def test_gzipped_mat_and_npy_load_like_the_plain_files(tmp_path, monkeypatch):
    temp_root = tmp_path / "tmp"
    temp_root.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp_root))
    monkeypatch.setattr("tempfile.tempdir", None)
    mat = tmp_path / "trials.mat"
    _spike_trials_mat(mat)
    npy = tmp_path / "units.npy"
    np.save(npy, np.array([np.array([0.01, 0.2]), np.array([0.05, 0.06, 0.31])], dtype=object), allow_pickle=True)
    for plain, options in ((mat, {"window": (0.0, 0.2)}), (npy, {"bin_size": 0.1})):
        packed = _gzip(plain)
        assert nd.detect_format(packed).name == nd.detect_format(plain).name
        expected, got = load(plain, **options), load(packed, **options)
        assert got.attrs.pop("source") == str(packed) and expected.attrs.pop("source") == str(plain)
        xr.testing.assert_identical(got, expected)
    assert list(temp_root.iterdir()) == []  # the decompressed copies are gone


def test_gzipped_errors_name_the_gz_file(tmp_path):
    npy = tmp_path / "responses.npy"
    np.save(npy, np.ones((3, 4)))
    packed = _gzip(npy)
    with pytest.raises(UnknownFormatError) as err:
        load(packed)
    assert err.value.file == str(packed) and str(err.value).startswith(f"{packed}: field '<contents>'")
    assert "assembly_from_arrays" in str(err.value)
    broken = tmp_path / "broken.mat.gz"
    broken.write_bytes(gzip.compress(b"x" * 1000)[:-12])
    with pytest.raises(DataFormatError) as err:
        load(broken)
    assert err.value.file == str(broken) and err.value.field == "<gzip>" and "a complete gzip stream" in str(err.value)
    not_gzip = tmp_path / "plain.npy.gz"
    not_gzip.write_bytes(b"plain text")
    with pytest.raises(DataFormatError) as err:
        load(not_gzip)
    assert err.value.field == "<gzip>"
    no_inner = tmp_path / "data.gz"
    no_inner.write_bytes(gzip.compress(b"x"))
    with pytest.raises(UnknownFormatError) as err:
        load(no_inner)
    assert err.value.field == "<extension>" and ".mat.gz" in str(err.value)


def test_gunzip_size_limit(tmp_path, monkeypatch):
    from neuromodels.datasets import _containers

    npy = tmp_path / "big.npy"
    np.save(npy, np.zeros(10_000))
    packed = _gzip(npy)
    monkeypatch.setattr(_containers, "GUNZIP_MAX_BYTES", 4096)
    with pytest.raises(DataFormatError) as err:
        load(packed)
    assert err.value.field == "<gzip>" and "at most 4096 bytes" in str(err.value)
    assert os.path.getsize(npy) > 4096

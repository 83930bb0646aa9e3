"""openretina generic folders: round trip, a folder laid out like ``openretina create-data``, bad input."""

from __future__ import annotations

# Exact equality in this file compares stored values read back, copies, and float64 -> float32 casts (one correctly
# rounded operation): the same on every CPU.
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr

import neuromodels.datasets as nd
from neuromodels.datasets.formats.openretina import open_openretina, sniff_openretina, write_openretina
from neuromodels.datasets.recording import recording_from_counts
from neuromodels.errors import ConfigError, DataFormatError, UnknownFormatError

RATE = 30.0
LENGTHS = {"clip_a": 240, "clip_b": 180, "natural_test": 120}  # sorted train names, then the test name


def make_recording(seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    n = sum(LENGTHS.values())
    rec = recording_from_counts(
        rng.poisson(1.2, (n, 5)),
        np.arange(n) / RATE,
        1 / RATE,
        ["roi_3", "roi_7", "roi_8", "roi_12", "roi_13"],
        source="memory",
        stimulus=rng.normal(0.0, 1.0, (n, 6, 8)).astype(np.float32),
        cell_coords={"cell_type": [3, 17, 17, 40, 2]},
    )
    names = np.concatenate([np.full(k, name) for name, k in LENGTHS.items()])
    return rec.assign_coords(
        split=("time", np.where(names == "natural_test", "test", "train")), stimulus_name=("time", names)
    )


@pytest.fixture(scope="module")
def recording() -> xr.Dataset:
    return make_recording()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, recording) -> Path:
    return write_openretina(recording, tmp_path_factory.mktemp("openretina") / "dataset", session="session_2024")


def create_data_like_openretina(root: Path, *, n_colors: int = 3, seed: int = 5) -> dict:
    """What ``openretina create-data`` writes (cli/create_data.py), with plain numpy/h5py: float64 (C, T, H, W)
    movies ``stimuli/random_noise_<i>.npy``, ``session_<k>.hdf5`` with ``responses_random_noise_<i>``
    (neurons, T) and ``session_info/celltypes``. Responses are non-negative here (the data model's counts/rates)."""
    rng = np.random.default_rng(seed)
    (root / "stimuli").mkdir(parents=True)
    stimuli = {f"random_noise_{i}": rng.normal(size=(n_colors, t, 16, 8)) for i, t in enumerate((90, 60, 75))}
    for name, movie in stimuli.items():
        np.save(root / "stimuli" / name, movie, allow_pickle=False)
    sessions = {}
    for k, neurons in enumerate((11, 14)):
        responses = {name: rng.gamma(2.0, 1.5, (neurons, movie.shape[1])) for name, movie in stimuli.items()}
        celltypes = rng.choice(40, size=neurons)
        with h5py.File(root / f"session_{k}.hdf5", "w") as f:
            for name, values in responses.items():
                f[f"responses_{name}"] = values
            f["session_info/celltypes"] = celltypes
        sessions[f"session_{k}"] = (responses, celltypes)
    return {"stimuli": stimuli, "sessions": sessions}


# ------------------------------------------------------------------------------------------------ round trip


def test_round_trip_is_exact(folder, recording):
    ds = nd.load(folder)
    assert ds.attrs["format"] == "openretina" and ds.attrs["session"] == "session_2024"
    assert ds.attrs["frame_rate_hz"] == RATE and ds.attrs["frame_rate_source"] == "file attribute"
    for name in ("time", "split", "stimulus_name"):
        np.testing.assert_array_equal(ds[name].values, recording[name].values)
    np.testing.assert_array_equal(ds["stimulus"].values, recording["stimulus"].values)
    np.testing.assert_array_equal(ds["response"].values, recording["response"].values)
    assert ds["cell"].values.tolist() == recording["cell"].values.tolist()
    assert ds["cell_type"].values.tolist() == [3, 17, 17, 40, 2]
    assert ds["response"].attrs["units"] == "count" and hasattr(ds["stimulus"].data, "dask")


def test_written_folder_has_openretinas_layout(folder, recording):
    assert sorted(p.name for p in (folder / "stimuli").iterdir()) == ["clip_a.npy", "clip_b.npy", "natural_test.npy"]
    movie = np.load(folder / "stimuli" / "clip_b.npy")
    assert movie.shape == (1, 180, 6, 8) and movie.dtype == np.float32  # (channels, time, height, width)
    np.testing.assert_array_equal(movie[0], recording["stimulus"].values[240:420])
    with h5py.File(folder / "session_2024.hdf5", "r") as f:
        assert f["responses_natural_test"].shape == (5, 120)  # (neurons, time)
        np.testing.assert_array_equal(f["session_info/celltypes"][()], [3, 17, 17, 40, 2])


def test_stimuli_are_read_in_openretinas_order(tmp_path, recording):
    """openretina sorts the names and concatenates the training ones; our time axis follows that order."""
    shuffled = recording.isel(time=np.r_[240:420, 0:240, 420:540])
    shuffled = shuffled.assign_coords(time=recording["time"].values)
    ds = open_openretina(write_openretina(shuffled, tmp_path / "shuffled"))
    assert list(dict.fromkeys(ds["stimulus_name"].values.tolist())) == ["clip_a", "clip_b", "natural_test"]
    np.testing.assert_array_equal(ds["response"].values, recording["response"].values)


def test_folder_like_openretina_create_data(tmp_path):
    truth = create_data_like_openretina(tmp_path / "data")
    with pytest.warns(UserWarning, match="assuming 30 Hz"):
        ds = open_openretina(tmp_path / "data", session="session_1", test_stimuli=["random_noise_1"])
    responses, celltypes = truth["sessions"]["session_1"]
    train, test = ["random_noise_0", "random_noise_2"], ["random_noise_1"]
    # openretina's load_responses: concatenate the sorted training responses along time.
    peer_train = np.concatenate([responses[n] for n in train], axis=-1)
    np.testing.assert_array_equal(nd.split(ds, "train")["response"].values, peer_train.T)
    np.testing.assert_array_equal(nd.split(ds, "test")["response"].values, responses["random_noise_1"].T)
    movie = np.concatenate([truth["stimuli"][n] for n in train + test], axis=1)
    np.testing.assert_array_equal(ds["stimulus"].values, movie[0].astype(np.float32))
    assert ds["cell_type"].values.tolist() == celltypes.tolist()
    assert ds.sizes == {"time": 225, "cell": 14, "y": 16, "x": 8}
    assert ds["response"].attrs["units"] == "a.u." and ds.attrs["stimulus_channels"] == 3
    assert ds.attrs["sessions"] == "session_0, session_1"
    mean = open_openretina(tmp_path / "data", channel="mean", frame_rate_hz=60.0)  # no test stimuli: sorted order
    in_name_order = np.concatenate([truth["stimuli"][n] for n in sorted(truth["stimuli"])], axis=1)
    np.testing.assert_allclose(mean["stimulus"].values, in_name_order.mean(axis=0), rtol=1e-5, atol=1e-6)
    assert set(mean["split"].values.tolist()) == {"train"}
    assert mean["time"].values[-1] == pytest.approx(224 / 60.0) and mean.attrs["session"] == "session_0"
    two = open_openretina(tmp_path / "data", channel=2, frame_rate_hz=30.0, stimulus_names=["random_noise_2"])
    np.testing.assert_array_equal(two["stimulus"].values, truth["stimuli"]["random_noise_2"][2].astype(np.float32))
    zscored = open_openretina(
        tmp_path / "data", frame_rate_hz=30.0, stimulus_scale="zscore", test_stimuli=["random_noise_1"]
    )
    raw = movie[0]
    train_frames = raw[:165]  # random_noise_0 (90 frames) and random_noise_2 (75)
    np.testing.assert_allclose(
        zscored["stimulus"].values, (raw - train_frames.mean()) / train_frames.std(), rtol=1e-5, atol=1e-5
    )


def test_signed_responses_load_when_their_units_say_so(tmp_path):
    """openretina's create-data writes linear responses to Gaussian noise (signed); calcium traces are often
    z-scored. docs/data-model.md: signed signals pass when attrs['units'] says so."""
    root = tmp_path / "data"
    (root / "stimuli").mkdir(parents=True)
    rng = np.random.default_rng(11)
    np.save(root / "stimuli" / "noise.npy", rng.normal(size=(1, 50, 4, 4)), allow_pickle=False)
    traces = rng.normal(size=(6, 50))
    zscored = (traces - traces.mean(axis=1, keepdims=True)) / traces.std(axis=1, keepdims=True)
    with h5py.File(root / "session_0.hdf5", "w") as f:
        f["responses_noise"] = zscored
    ds = open_openretina(root, frame_rate_hz=30.0, response_units="z-score")
    assert ds["response"].attrs["units"] == "z-score" and float(ds["response"].min()) < 0
    np.testing.assert_array_equal(ds["response"].values, zscored.T)
    again = open_openretina(write_openretina(ds, tmp_path / "copy"))  # the units travel in the file attribute
    assert again["response"].attrs["units"] == "z-score"
    np.testing.assert_array_equal(again["response"].values, zscored.T)
    with pytest.raises(DataFormatError, match="response_units='z-score'") as err:  # units unknown: say how
        open_openretina(root, frame_rate_hz=30.0)
    assert err.value.field == "responses_noise"
    with pytest.raises(DataFormatError, match="non-negative"):  # counts or rates cannot be negative
        open_openretina(root, frame_rate_hz=30.0, response_units="Hz")


def test_session_specific_stimulus_takes_precedence(tmp_path):
    truth = create_data_like_openretina(tmp_path / "data", n_colors=1)
    own = np.full((1, 60, 16, 8), 0.25)
    with h5py.File(tmp_path / "data" / "session_0.hdf5", "a") as f:
        f["stimulus_random_noise_1"] = own
    ds = open_openretina(tmp_path / "data", frame_rate_hz=30.0)
    part = ds["stimulus"].values[ds["stimulus_name"].values == "random_noise_1"]
    np.testing.assert_array_equal(part, np.float32(0.25))
    part = ds["stimulus"].values[ds["stimulus_name"].values == "random_noise_0"]
    np.testing.assert_array_equal(part, truth["stimuli"]["random_noise_0"][0].astype(np.float32))


# ------------------------------------------------------------------------------------------------ detection


def test_sniff_and_dispatch(folder, tmp_path):
    assert sniff_openretina(folder) and nd.detect_format(folder).name == "openretina"
    assert not sniff_openretina(tmp_path / "missing")
    assert not sniff_openretina(folder / "session_2024.hdf5")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not sniff_openretina(empty)
    with h5py.File(empty / "session_0.hdf5", "w") as f:
        f["something_else"] = np.zeros(3)
    (empty / "junk.h5").write_text("not hdf5")
    assert not sniff_openretina(empty)


def test_one_session_file_of_a_folder_points_to_the_folder(folder):
    with pytest.raises(UnknownFormatError, match=f"pass the folder {folder}"):
        nd.load(folder / "session_2024.hdf5")


# ------------------------------------------------------------------------------------------------ bad input


@pytest.fixture()
def editable(tmp_path, recording) -> Path:
    return write_openretina(recording, tmp_path / "dataset")


def test_missing_responses_for_a_requested_stimulus(editable):
    with h5py.File(editable / "session_0.hdf5", "a") as f:
        del f["responses_clip_b"]
    with pytest.raises(DataFormatError) as err:
        open_openretina(editable, stimulus_names=["clip_a", "clip_b"])
    assert err.value.field == "responses_clip_b" and err.value.file.endswith("session_0.hdf5")
    assert "clip_b" not in nd.load(editable)["stimulus_name"].values  # not asked for: the session lacks it


def test_missing_stimulus_for_responses(editable):
    (editable / "stimuli" / "clip_a.npy").unlink()
    with pytest.raises(DataFormatError) as err:
        nd.load(editable)
    assert err.value.field == "stimuli/clip_a.npy" and err.value.file == str(editable)


@pytest.mark.parametrize(
    "name, values, needle",
    [
        ("responses_clip_a", lambda v: v[:, :-3], "expected 240 time bins (as stimuli/clip_a.npy); found 237"),
        ("responses_natural_test", lambda v: v[:4], "expected 5 neurons"),
        ("responses_clip_b", lambda v: v - 5.0, "non-negative responses"),
        ("responses_clip_b", lambda v: np.where(v > 1, np.nan, v), "NaN"),
    ],
    ids=["length-mismatch", "neuron-count", "negative", "nan"],
)
def test_bad_responses_name_file_and_field(editable, name, values, needle):
    with h5py.File(editable / "session_0.hdf5", "a") as f:
        new = values(f[name][()].astype(np.float64))
        del f[name]
        f[name] = new
    with pytest.raises(DataFormatError) as err:
        nd.load(editable)
    assert err.value.field == name and err.value.file.endswith("session_0.hdf5") and needle in str(err.value)


def test_mismatched_movie_shape(editable):
    np.save(editable / "stimuli" / "clip_b.npy", np.zeros((1, 180, 6, 9), dtype=np.float32))
    with pytest.raises(DataFormatError, match=r"1 channels of \(6, 8\) pixels") as err:
        nd.load(editable)
    assert err.value.field == "stimuli/clip_b.npy"


def test_bad_arguments(editable):
    with pytest.raises(DataFormatError) as err:
        open_openretina(editable, session="session_9")
    assert err.value.field == "session" and "session_0" in str(err.value)
    with pytest.raises(ConfigError):
        open_openretina(editable, channel=1)
    with pytest.raises(ConfigError):
        open_openretina(editable, channel="max")


def test_writes_are_atomic(recording, tmp_path, failing_stimulus):
    target = tmp_path / "out"
    write_openretina(recording, target)
    with pytest.raises(ConfigError, match="overwrite=True"):
        write_openretina(recording, target)

    broken = failing_stimulus(recording, (100, 6, 8))
    with pytest.raises(RuntimeError, match="disk full"):
        write_openretina(broken, target, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no half-written folder left beside it
    np.testing.assert_array_equal(open_openretina(target)["response"].values, recording["response"].values)
    changed = recording.copy()
    changed["response"] = recording["response"] * 2
    write_openretina(changed, target, overwrite=True)
    np.testing.assert_array_equal(open_openretina(target)["response"].values, changed["response"].values)
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_trials_are_not_written_and_say_so(recording, tmp_path):
    with_trials = recording.copy()
    with_trials["trials"] = (("repeat", "time", "cell"), np.ones((2, *recording["response"].shape)))
    with pytest.warns(UserWarning, match="trials"):
        write_openretina(with_trials, tmp_path / "t")
    assert "trials" not in open_openretina(tmp_path / "t")


def test_command_line_inspect_and_convert(folder, tmp_path):
    import json
    import subprocess
    import sys

    cli = [sys.executable, "-m", "neuromodels", "data"]
    result = subprocess.run([*cli, "inspect", str(folder), "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["format"] == "openretina" and info["n_cells"] == 5
    assert info["splits"] == {"test": {"n_bins": 120, "duration_s": 4.0}, "train": {"n_bins": 420, "duration_s": 14.0}}
    try:
        import neuromodels.datasets.formats.brainio  # noqa: F401  (written by another part of the project)
    except ImportError:
        pytest.skip("netCDF writer (formats/brainio.py) not available yet")
    out = tmp_path / "dataset.nc"
    result = subprocess.run([*cli, "convert", str(folder), str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    back = nd.load(out)
    np.testing.assert_array_equal(back["stimulus"].values, nd.load(folder)["stimulus"].values)
    assert back["stimulus_name"].values.tolist() == nd.load(folder)["stimulus_name"].values.tolist()

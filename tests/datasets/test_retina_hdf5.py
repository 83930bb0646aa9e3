"""Retina HDF5 (deep-retina layout): exact round trips, the published files' quirks, lazy reading, bad input."""

from __future__ import annotations

# Exact equality in this file compares stored values read back (round trips, lazy or eager) and integer counts: the
# same on every CPU.
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr

import neuromodels.datasets as nd
from neuromodels.datasets.formats.retina_hdf5 import (
    open_retina_hdf5,
    sniff_retina_hdf5,
    stream_frame_statistics,
    write_retina_hdf5,
)
from neuromodels.datasets.recording import recording_from_counts
from neuromodels.errors import ConfigError, DataFormatError

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
N_TRAIN, N_TEST, N_CELLS, N_REPEATS, FRAME = 700, 160, 4, 3, (9, 7)


def make_recording(*, seed: int = 0) -> xr.Dataset:
    """Train then test frames at 100 Hz (test times restart at 0, as in the published files)."""
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_TEST
    time = np.concatenate([np.arange(N_TRAIN) / 100.0, np.arange(N_TEST) / 100.0])
    counts = rng.poisson(0.8, (n, N_CELLS))
    stimulus = rng.normal(51.0, 54.0, (n, *FRAME)).astype(np.float32)
    rec = recording_from_counts(
        counts,
        time,
        0.01,
        [f"unit-{i}" for i in range(N_CELLS)],
        source="memory",
        stimulus=stimulus,
        cell_coords={"cell_type": ["ON", "OFF", "OFF", "ON"]},
        attrs={"species": "salamander"},
    )
    rec = rec.assign_coords(split=("time", np.array(["train"] * N_TRAIN + ["test"] * N_TEST)))
    trials = np.full((N_REPEATS, n, N_CELLS), np.nan)
    trials[:, N_TRAIN:, :] = rng.poisson(0.8, (N_REPEATS, N_TEST, N_CELLS))
    rec["trials"] = (("repeat", "time", "cell"), trials, {"units": "count"})
    return rec


@pytest.fixture(scope="module")
def recording() -> xr.Dataset:
    return make_recording()


@pytest.fixture(scope="module")
def written(tmp_path_factory, recording) -> Path:
    path = tmp_path_factory.mktemp("retina") / "rec.h5"
    write_retina_hdf5(recording, path, chunk_frames=64)
    return path


def write_published_layout(path: Path, *, rng_seed: int = 1) -> dict[str, np.ndarray]:
    """A file shaped like the published ``naturalscene.h5`` (written with plain h5py, no neuromodels code).

    uint8 frames, a ``spikes`` group, four response kinds, ``test/repeats/cellNN``, and one more test response
    bin than test frames (5996 frames and 5997 bins in ``15-10-07/naturalscene.h5``).
    """
    rng = np.random.default_rng(rng_seed)
    n_train, n_test, cells = 400, 90, 3
    data = {
        "train_stim": rng.integers(0, 256, (n_train, 10, 10), dtype=np.uint8),
        "test_stim": rng.integers(0, 256, (n_test, 10, 10), dtype=np.uint8),
        "train_binned": rng.poisson(0.5, (cells, n_train)).astype(np.float64),
        "test_binned": rng.poisson(0.5, (cells, n_test + 1)).astype(np.float64),
        "train_rate": rng.gamma(2.0, 3.0, (cells, n_train)),
        "test_rate": rng.gamma(2.0, 3.0, (cells, n_test + 1)),
        "repeats": rng.poisson(0.5, (cells, 5, n_test + 1)).astype(np.float64),
    }
    with h5py.File(path, "w") as f:
        for split, n in (("train", n_train), ("test", n_test)):
            f[f"{split}/stimulus"] = data[f"{split}_stim"]
            f[f"{split}/time"] = np.arange(n) * 0.01
            f[f"{split}/response/binned"] = data[f"{split}_binned"]
            for ms in (5, 10, 20):
                f[f"{split}/response/firing_rate_{ms}ms"] = data[f"{split}_rate"]
        for c in range(cells):
            f[f"test/repeats/cell{c + 1:02d}"] = data["repeats"][c]
            f[f"spikes/cell{c + 1:02d}"] = np.sort(rng.uniform(0, 4.9, 40))
    return data


# ------------------------------------------------------------------------------------------------ round trip


def test_round_trip_is_exact(written, recording):
    ds = open_retina_hdf5(written, stimulus_scale=None)
    assert ds["stimulus"].dtype == np.float32
    np.testing.assert_array_equal(ds["stimulus"].values, recording["stimulus"].values)
    np.testing.assert_array_equal(ds["response"].values, recording["response"].values)
    np.testing.assert_array_equal(ds["time"].values, recording["time"].values)
    np.testing.assert_array_equal(ds["split"].values, recording["split"].values)
    np.testing.assert_array_equal(ds["trials"].values, recording["trials"].values)  # NaN == NaN here
    assert ds["cell"].values.tolist() == ["unit-0", "unit-1", "unit-2", "unit-3"]
    assert ds["cell_type"].values.tolist() == ["ON", "OFF", "OFF", "ON"]
    assert ds.attrs["frame_rate_hz"] == 100.0 and ds.attrs["species"] == "salamander"
    assert ds["response"].attrs["units"] == "count" and ds.attrs["response_kind"] == "binned"
    assert ds.sizes == {"time": N_TRAIN + N_TEST, "cell": N_CELLS, "y": 9, "x": 7, "repeat": N_REPEATS}


def test_reexporting_a_lazy_recording_is_exact(written, recording, tmp_path):
    """A dask-backed stimulus (chunks of 100 frames, not a multiple of the 48-frame HDF5 chunks) streams out."""
    lazy = open_retina_hdf5(written, stimulus_scale=None, chunk_frames=100)
    copy = write_retina_hdf5(lazy, tmp_path / "copy.h5", chunk_frames=48)
    with h5py.File(copy, "r") as f:
        assert f["train/stimulus"].chunks == (48, *FRAME)
    again = open_retina_hdf5(copy, stimulus_scale=None)
    np.testing.assert_array_equal(again["stimulus"].values, recording["stimulus"].values)
    np.testing.assert_array_equal(again["trials"].values, recording["trials"].values)
    assert again["cell"].values.tolist() == lazy["cell"].values.tolist()


def test_layout_matches_the_published_files(written, recording):
    with h5py.File(written, "r") as f:
        assert f["train/stimulus"].shape == (N_TRAIN, *FRAME)
        assert f["train/stimulus"].chunks == (64, *FRAME)
        assert f["train/response/binned"].shape == (N_CELLS, N_TRAIN)
        assert f["test/repeats/cell02"].shape == (N_REPEATS, N_TEST)
        np.testing.assert_array_equal(f["test/repeats/cell02"][()], recording["trials"].values[:, N_TRAIN:, 1])
        assert f["test/time"][0] == 0.0


def test_lazy_stimulus_is_dask_chunked_along_time_and_equals_eager(written):
    lazy = open_retina_hdf5(written, stimulus_scale=None, chunk_frames=100)
    eager = open_retina_hdf5(written, stimulus_scale=None, lazy=False)
    assert hasattr(lazy["stimulus"].data, "dask") and isinstance(eager["stimulus"].data, np.ndarray)
    assert lazy["stimulus"].data.chunks[0] == (100,) * 7 + (100,) + (60,)  # 700 train + 160 test frames
    assert lazy["stimulus"].data.chunks[1:] == ((9,), (7,))
    assert hasattr(lazy["trials"].data, "dask")
    np.testing.assert_array_equal(lazy["stimulus"].values, eager["stimulus"].values)
    # The graph pickles (distributed workers) and reopens the file on the other side.
    restored = pickle.loads(pickle.dumps(lazy["stimulus"].data[650:760]))
    np.testing.assert_array_equal(restored.compute(), eager["stimulus"].values[650:760])
    lazy.close()
    np.testing.assert_array_equal(lazy["stimulus"][5].values, eager["stimulus"][5].values)  # reopens on demand


def test_zscore_uses_train_statistics_for_both_splits(written, recording, tmp_path):
    raw = recording["stimulus"].values.astype(np.float64)
    mean, sd = raw[:N_TRAIN].mean(), raw[:N_TRAIN].std()
    ds = nd.load(written)  # default stimulus_scale="zscore"
    expected = ((raw - mean) / sd).astype(np.float32)
    np.testing.assert_allclose(ds["stimulus"].values, expected, rtol=1e-5, atol=1e-5)
    assert ds["stimulus"].attrs["mean_stored_units"] == pytest.approx(mean, rel=1e-12)
    assert ds["stimulus"].attrs["sd_stored_units"] == pytest.approx(sd, rel=1e-12)
    # Without the writer's cached statistics, one streaming pass gives the same numbers.
    bare = tmp_path / "bare.h5"
    shutil.copy(written, bare)
    with h5py.File(bare, "a") as f:
        for key in list(f["train/stimulus"].attrs):
            del f["train/stimulus"].attrs[key]
    streamed = open_retina_hdf5(bare, chunk_frames=37)
    assert streamed["stimulus"].attrs["mean_stored_units"] == pytest.approx(mean, rel=1e-12)
    assert streamed["stimulus"].attrs["sd_stored_units"] == pytest.approx(sd, rel=1e-12)


def test_stream_frame_statistics_does_not_depend_on_blocking():
    x = np.random.default_rng(3).normal(100.0, 7.0, (1000, 5, 4))
    for step in (1, 7, 250, 1000):
        mean, sd, frames = stream_frame_statistics(x[i : i + step] for i in range(0, 1000, step))
        assert frames == 1000
        assert mean == pytest.approx(x.mean(), rel=1e-13) and sd == pytest.approx(x.std(), rel=1e-12)


def test_one_split_and_rate_responses(written, recording, tmp_path):
    test_only = open_retina_hdf5(written, splits=("test",), stimulus_scale=None)
    assert set(test_only["split"].values.tolist()) == {"test"} and test_only.sizes["time"] == N_TEST
    train_only = open_retina_hdf5(written, splits=["train"], stimulus_scale=None)
    assert "trials" not in train_only and train_only.sizes["time"] == N_TRAIN
    rates = recording.copy()
    rates["response"] = recording["response"] * 100.0
    rates["response"].attrs["units"] = "Hz"
    path = tmp_path / "rates.h5"
    write_retina_hdf5(rates, path, response_kind="firing_rate_10ms")
    ds = nd.load(path)  # the only response kind is chosen
    assert ds.attrs["response_kind"] == "firing_rate_10ms" and ds["response"].attrs["units"] == "Hz"
    np.testing.assert_array_equal(ds["response"].values, rates["response"].values)
    with pytest.raises(ConfigError, match="response_kind"):
        write_retina_hdf5(rates, tmp_path / "no-kind.h5")


def test_published_layout_read_like_the_peer_loaders(tmp_path):
    path = tmp_path / "naturalscene.h5"
    data = write_published_layout(path)
    ds = nd.load(path, stimulus_scale=None)
    assert ds.attrs["format"] == "retina-hdf5"
    assert ds["cell"].values.tolist() == ["cell01", "cell02", "cell03"]
    assert ds.attrs["trailing_bins_dropped_test"] == 1
    # deep-retina / openretina read f[split]['response/...'] as (cells, time), bin k with frame k.
    test = nd.split(ds, "test")
    np.testing.assert_array_equal(nd.split(ds, "train")["response"].values, data["train_binned"].T)
    np.testing.assert_array_equal(test["response"].values, data["test_binned"][:, :90].T)
    np.testing.assert_array_equal(test["stimulus"].values, data["test_stim"].astype(np.float32))
    # openretina's load_test_repeats_for_session stacks cellNN -> (repeats, neurons, time).
    peer = np.stack([data["repeats"][c] for c in range(3)], axis=0).transpose(1, 0, 2)[:, :, :90]
    np.testing.assert_array_equal(test["trials"].values, peer.transpose(0, 2, 1))
    assert np.isnan(ds["trials"].values[:, :400]).all()
    assert ds["trials"].attrs["units"] == "count"
    assert ds.attrs["stimulus_stored_dtype"] == "uint8"
    rates = open_retina_hdf5(path, response="firing_rate_10ms")
    assert rates["response"].attrs["units"] == "Hz"
    np.testing.assert_allclose(rates["response"].values[:400], data["train_rate"].T)
    # deep-retina's loadexpt z-scores with scipy.stats.zscore; we use the train movie's statistics.
    train = data["train_stim"].astype(np.float64)
    np.testing.assert_allclose(rates["stimulus"].values[:400], (train - train.mean()) / train.std(), atol=2e-6)


def test_repeats_stored_per_response_kind(tmp_path):
    path = tmp_path / "stacked.h5"
    data = write_published_layout(path)
    with h5py.File(path, "a") as f:
        del f["test/repeats"]
        f["test/repeats/firing_rate_10ms"] = np.transpose(data["repeats"], (1, 0, 2)) * 10.0  # (repeats, cells, T)
    ds = open_retina_hdf5(path, response="firing_rate_10ms")
    assert ds["trials"].attrs["units"] == "Hz" and ds["trials"].attrs["source_field"] == "test/repeats/firing_rate_10ms"
    np.testing.assert_array_equal(ds["trials"].values[:, 400:, 2], data["repeats"][2][:, :90] * 10.0)
    assert "trials" not in open_retina_hdf5(path)  # binned: no repeats of that kind, no cellNN members


# ------------------------------------------------------------------------------------------------ detection


def test_sniff_and_dispatch(written, tmp_path):
    assert sniff_retina_hdf5(written)
    assert nd.detect_format(written).name == "retina-hdf5"
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.arange(3)
    assert not sniff_retina_hdf5(other)
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    assert not sniff_retina_hdf5(text)
    assert not sniff_retina_hdf5(tmp_path / "missing.h5")
    assert not sniff_retina_hdf5(tmp_path)


def test_sniff_rejects_a_real_hdf5_file_of_another_layout():
    mat = SHARED / "goris2021-v1"
    files = sorted(mat.glob("*.mat")) if mat.is_dir() else []
    if not files:
        pytest.skip(f"real data not found at {mat}")
    assert not sniff_retina_hdf5(files[0])  # MATLAB v7.3 = HDF5 without train/test groups


# ------------------------------------------------------------------------------------------------ bad input


def _copy(written: Path, tmp_path: Path, edit) -> Path:
    path = tmp_path / "bad.h5"
    shutil.copy(written, path)
    with h5py.File(path, "a") as f:
        edit(f)
    return path


def _replace(f: h5py.File, name: str, values: np.ndarray) -> None:
    del f[name]
    f[name] = values


def test_truncated_file_names_the_file(written, tmp_path):
    path = tmp_path / "truncated.h5"
    path.write_bytes(written.read_bytes()[: written.stat().st_size // 2])
    assert sniff_retina_hdf5(path)  # routed here so the error says why, not "unknown format"
    with pytest.raises(DataFormatError, match="truncated") as err:
        nd.load(path)
    assert err.value.file == str(path) and err.value.field == "<hdf5>"


@pytest.mark.parametrize(
    "edit, field, needle",
    [
        (lambda f: f.__delitem__("train/stimulus"), "train/stimulus", "found none"),
        (
            lambda f: _replace(f, "train/response/binned", f["train/response/binned"][:, :-1]),
            "train/response/binned",
            f"expected {N_TRAIN} time bins (as train/stimulus); found {N_TRAIN - 1}",
        ),
        (
            lambda f: _replace(
                f, "test/response/binned", np.where(np.arange(N_TEST) == 17, np.nan, f["test/response/binned"][()])
            ),
            "test/response/binned",
            "NaN (first at index (0, 17))",
        ),
        (
            lambda f: _replace(f, "train/response/binned", f["train/response/binned"][()] - 3),
            "train/response/binned",
            "negative",
        ),
        (
            lambda f: _replace(f, "train/response/binned", f["train/response/binned"][()] + 0.5),
            "train/response/binned",
            "integer spike counts",
        ),
        (lambda f: _replace(f, "train/time", f["train/time"][()][::-1]), "train/time", "strictly increasing"),
        (
            lambda f: _replace(f, "test/repeats/cell02", f["test/repeats/cell02"][:, :-5]),
            "test/repeats/cell02",
            f"expected {N_TEST} time bins",
        ),
        (
            lambda f: _replace(f, "test/repeats/cell03", f["test/repeats/cell03"][:2]),
            "test/repeats/cell03",
            f"expected {N_REPEATS} repeats",
        ),
        (lambda f: _replace(f, "train/time", f["train/time"][:-1]), "train/time", f"shape ({N_TRAIN},)"),
    ],
    ids=[
        "missing-stimulus",
        "length-mismatch",
        "nan-count",
        "negative-count",
        "fractional-count",
        "time-not-monotonic",
        "repeats-length",
        "repeats-count",
        "time-length",
    ],
)
def test_bad_input_names_file_and_field(written, tmp_path, edit, field, needle):
    path = _copy(written, tmp_path, edit)
    with pytest.raises(DataFormatError) as err:
        nd.load(path)
    assert err.value.file == str(path) and err.value.field == field
    assert needle in str(err.value) and str(path) in str(err.value)


def test_unknown_response_kind_lists_the_available_ones(written):
    with pytest.raises(DataFormatError, match=r"firing_rate_10ms.*binned") as err:
        open_retina_hdf5(written, response="firing_rate_10ms")
    assert err.value.field == "train/response/firing_rate_10ms"


def test_bad_arguments(written):
    with pytest.raises(ConfigError):
        open_retina_hdf5(written, stimulus_scale="minmax")
    with pytest.raises(ConfigError):
        open_retina_hdf5(written, splits=("validation",))


def test_failed_write_leaves_nothing(recording, tmp_path, failing_stimulus):
    broken = failing_stimulus(recording, (300, 9, 7))
    target = tmp_path / "out.h5"
    with pytest.raises(RuntimeError, match="disk full"):
        write_retina_hdf5(broken, target)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------ command line


def test_command_line_inspect_and_convert(written, tmp_path):
    cli = [sys.executable, "-m", "neuromodels", "data"]
    result = subprocess.run([*cli, "inspect", str(written), "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["format"] == "retina-hdf5" and info["n_cells"] == N_CELLS and info["repeats"] == N_REPEATS
    assert info["splits"]["train"]["n_bins"] == N_TRAIN and info["stimulus_shape"] == [N_TRAIN + N_TEST, 9, 7]
    try:
        import neuromodels.datasets.formats.brainio  # noqa: F401  (written by another part of the project)
    except ImportError:
        pytest.skip("netCDF writer (formats/brainio.py) not available yet")
    out = tmp_path / "rec.nc"
    result = subprocess.run([*cli, "convert", str(written), str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    back = nd.load(out)
    original = open_retina_hdf5(written)
    np.testing.assert_array_equal(back["response"].values, original["response"].values)
    np.testing.assert_array_equal(back["stimulus"].values, original["stimulus"].values)

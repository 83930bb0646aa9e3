"""Spike times per stimulus/cell/trial (MATLAB) and per-cell spike-time arrays (NumPy) -> counts.

Real data: Onken et al. 2016 salamander RGCs (every .mat file) and the Krüppel et al. 2024 marmoset parasol cells.
"""

from __future__ import annotations

# Exact equality in this file compares integer spike counts and stored values read back: the same on every CPU.
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import xarray as xr

from neuromodels.cli import main
from neuromodels.datasets import detect_format, load
from neuromodels.datasets.formats.spike_trials import (
    open_spike_time_matrix,
    open_spike_trials,
    sniff_spike_time_matrix,
    sniff_spike_trials,
    spike_trials_to_assembly,
)
from neuromodels.errors import DataFormatError

ONKEN = "onken2016-salamander-rgc"
MARMOSET = "marmoset-parasol-reversegratings"

# file -> (presentations, cells, stimulus grid) from the file's n_stimuli/n_trials/n_neurons
ONKEN_FILES = {
    "NaturalImages1.mat": (60 * 30, 38),
    "NaturalImages2.mat": (60 * 30, 49),
    "Gratings.mat": (60 * 30, 54),
    "Shifts1.mat": (81 * 19, 23),
    "Shifts2.mat": (81 * 19, 37),
    "Movie1Exp1.mat": (30, 38),
    "Movie1Exp2.mat": (30, 49),
    "Movie2Exp1.mat": (30, 38),
    "Movie2Exp2.mat": (30, 49),
}

_loaded: dict[str, xr.DataArray] = {}


def onken(shared_data: Path, name: str) -> xr.DataArray:
    """Each real file is binned once per test session (binning ~100k trials takes seconds)."""
    if name not in _loaded:
        _loaded[name] = load(shared_data / ONKEN / name)
    return _loaded[name]


def raw_spikes(shared_data: Path, name: str) -> np.ndarray:
    return scipy.io.loadmat(str(shared_data / ONKEN / name))["Spikes"]


def nested(stimuli: list[list[list[list[float]]]]) -> np.ndarray:
    """[stimulus][cell][trial] lists -> MATLAB-like cell arrays: (n_stim, 1) of (cells, trials) of column vectors."""
    outer = np.empty((len(stimuli), 1), dtype=object)
    for s, cells in enumerate(stimuli):
        inner = np.empty((len(cells), len(cells[0])), dtype=object)
        for c, trials in enumerate(cells):
            for t, times in enumerate(trials):
                inner[c, t] = np.asarray(times, dtype=float).reshape(-1, 1) if times else np.zeros((0, 0))
        outer[s, 0] = inner
    return outer


def write_mat73(path: Path, name: str, cells: np.ndarray) -> None:
    """A MATLAB v7.3 (HDF5) file as MATLAB writes cell arrays: references into '#refs#', axes reversed."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        counter = iter(range(10**6))

        def store(value: np.ndarray):
            key = f"r{next(counter)}"
            if value.dtype == object:
                ref_array = np.empty(value.shape[::-1], dtype=h5py.ref_dtype)
                for index in np.ndindex(value.shape):
                    ref_array[index[::-1]] = store(value[index])
                ds = refs.create_dataset(key, data=ref_array)
                ds.attrs["MATLAB_class"] = np.bytes_("cell")
            elif value.size == 0:
                ds = refs.create_dataset(key, data=np.asarray(value.shape, dtype=np.uint64))
                ds.attrs["MATLAB_class"] = np.bytes_("double")
                ds.attrs["MATLAB_empty"] = np.uint8(1)
            else:
                ds = refs.create_dataset(key, data=value.T)
                ds.attrs["MATLAB_class"] = np.bytes_("double")
            return ds.ref

        top = np.empty(cells.shape[::-1], dtype=h5py.ref_dtype)
        for index in np.ndindex(cells.shape):
            top[index[::-1]] = store(cells[index])
        ds = f.create_dataset(name, data=top)
        ds.attrs["MATLAB_class"] = np.bytes_("cell")
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, written by the neuromodels tests".ljust(116))


SYNTHETIC = [  # [stimulus][cell][trial] spike times in ms
    [[[1.0, 12.0, 55.0], [], [3.0]], [[20.0], [21.0, 22.0], []]],
    [[[], [90.0, 99.9], [0.0, 100.0]], [[5.0, 6.0, 7.0], [8.0], [49.9, 50.0]]],
]


# --------------------------------------------------------------------------------------------------------------
# real data: Onken et al. 2016


@pytest.mark.parametrize("name", sorted(ONKEN_FILES))
def test_every_onken_file_loads_with_all_its_spikes(shared_data, name):
    da = onken(shared_data, name)
    assert detect_format(shared_data / ONKEN / name).name == "spike-trials-mat"
    assert da.dims == ("presentation", "neuroid") and da.shape == ONKEN_FILES[name]
    spikes = raw_spikes(shared_data, name)
    leaves = (
        [leaf for inner in spikes.flat for leaf in inner.flat] if spikes.flat[0].dtype == object else list(spikes.flat)
    )
    assert int(da.sum()) == sum(leaf.size for leaf in leaves)  # the default window holds every spike
    assert da.attrs["n_spikes_outside"] == 0
    movie = name.startswith("Movie")
    assert (da.attrs["window_start_ms"], da.attrs["window_end_ms"]) == (0.0, 18000.0 if movie else 300.0)
    assert da.attrs["layout"] == ("cell-trial" if movie else "stimulus/cell-trial")
    if name.startswith("Shifts"):
        assert set(da["stimulus_row"].values.tolist()) == set(range(9)) == set(da["stimulus_column"].values.tolist())


def test_natural_images_counts_match_the_mat_file(shared_data):
    da = onken(shared_data, "NaturalImages1.mat")
    spikes = raw_spikes(shared_data, "NaturalImages1.mat")
    assert da["stimulus_id"].values[:31].tolist() == ["0"] * 30 + ["1"]
    assert da["repetition"].values[:31].tolist() == list(range(30)) + [0]
    for s, c, t in [(0, 0, 0), (0, 5, 3), (17, 20, 11), (42, 37, 29), (59, 12, 0)]:
        expected = spikes[s, 0][c, t].size
        got = da.isel(presentation=s * 30 + t).sel(neuroid=c).item()
        assert got == expected, (s, c, t)
        assert da.isel(presentation=s * 30 + t)["stimulus_id"].item() == str(s)
    assert int(da.isel(presentation=slice(0, 30)).sum()) == sum(a.size for a in spikes[0, 0].flat)
    assert da["neuroid_id"].values.tolist() == [str(i) for i in range(38)]


def test_movie_binned_counts_match_the_mat_file(shared_data):
    name = "Movie1Exp1.mat"
    da = load(shared_data / ONKEN / name, bin_size=0.1)
    spikes = raw_spikes(shared_data, name)  # (38 cells, 30 trials) of spike times, labels 1..18000 ms
    assert da.dims == ("presentation", "neuroid", "time_bin") and da.shape == (30, 38, 180)
    np.testing.assert_allclose(da["time_bin_start"].values, np.arange(180) * 100.0)
    np.testing.assert_allclose(da["time_bin_end"].values, np.arange(1, 181) * 100.0)
    for c, t in [(0, 0), (7, 13), (37, 29), (20, 4)]:
        labels = spikes[c, t].ravel().astype(int)
        expected = np.bincount((labels - 1) // 100, minlength=180)  # label k = millisecond [k-1, k)
        np.testing.assert_array_equal(da.isel(presentation=t, neuroid=c).values, expected)
    assert int(da.sum()) == sum(a.size for a in spikes.flat)


def test_cli_inspect_and_convert_round_trip(shared_data, tmp_path, capsys):
    source = shared_data / ONKEN / "Movie2Exp1.mat"
    assert main(["data", "inspect", str(source), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "spike-trials-mat" and info["dims"] == {"presentation": 30, "neuroid": 38}
    assert info["repeats"] == {"min": 30, "max": 30}
    out = tmp_path / "movie.nc"
    assert main(["data", "convert", str(source), str(out), "--bin-size", "0.5"]) == 0
    xr.testing.assert_identical(load(out), load(source, bin_size=0.5))


# --------------------------------------------------------------------------------------------------------------
# MATLAB layouts on synthetic files


def test_v5_and_v73_files_give_the_same_assembly(tmp_path):
    cells = nested(SYNTHETIC)
    v5, v73 = tmp_path / "v5.mat", tmp_path / "v73.mat"
    scipy.io.savemat(v5, {"Spikes": cells})
    write_mat73(v73, "Spikes", cells)
    assert sniff_spike_trials(v5) and sniff_spike_trials(v73)
    a = load(v5, window=(0.0, 0.1))
    b = load(v73, window=(0.0, 0.1))
    xr.testing.assert_equal(a, b)
    # spikes at 100.0 ms fall outside [0, 100) ms
    assert a.values.tolist() == [[3, 1], [0, 2], [1, 0], [0, 3], [2, 1], [1, 2]]
    assert a.attrs["n_spikes_outside"] == 1 and a.attrs["time_offset"] == 0.0
    binned = load(v73, window=(0.0, 0.1), bin_size=0.05)
    assert binned.shape == (6, 2, 2)
    assert binned.isel(presentation=5).values.tolist() == [[1, 0], [1, 1]]  # 49.9 ms | 50.0 ms: left-closed


def test_default_window_runs_to_the_last_spike(tmp_path):
    path = tmp_path / "s.mat"
    scipy.io.savemat(path, {"Spikes": nested(SYNTHETIC)})
    da = open_spike_trials(path)
    assert da.attrs["window_start_ms"] == 0.0 and da.attrs["window_end_ms"] >= 100.0
    assert int(da.sum()) == 17 and da.attrs["n_spikes_outside"] == 0
    binned = open_spike_trials(path, bin_size=0.025)
    assert binned.sizes["time_bin"] == 5 and binned["time_bin_end"].values[-1] == 125.0  # 100 ms opens bin 4


def test_trial_cell_order_from_n_neurons_and_n_trials(tmp_path):
    cells = nested(SYNTHETIC)
    flipped = np.empty_like(cells)
    for s in range(cells.shape[0]):
        flipped[s, 0] = cells[s, 0].T  # (trials, cells)
    path = tmp_path / "flipped.mat"
    scipy.io.savemat(path, {"Spikes": flipped, "n_neurons": 2, "n_trials": 3})
    da = open_spike_trials(path, window=(0.0, 0.2))
    reference = tmp_path / "ref.mat"
    scipy.io.savemat(reference, {"Spikes": cells})
    np.testing.assert_array_equal(da.values, open_spike_trials(reference, window=(0.0, 0.2)).values)
    assert da.attrs["layout"] == "stimulus/trial-cell"


def test_single_stimulus_layout_and_seconds(tmp_path):
    movie = np.empty((2, 3), dtype=object)  # (cells, trials) of spike times in s
    for c in range(2):
        for t in range(3):
            movie[c, t] = np.arange(c + t + 1, dtype=float).reshape(-1, 1) * 0.5
    path = tmp_path / "movie.mat"
    scipy.io.savemat(path, {"spk": movie})
    da = open_spike_trials(path, key="spk", time_unit="s", bin_size=1.0)
    assert da.attrs["layout"] == "cell-trial" and set(da["stimulus_id"].values.tolist()) == {"0"}
    assert da.isel(presentation=2, neuroid=1).values.tolist() == [2, 2]  # 0, .5, 1, 1.5 s
    with pytest.raises(DataFormatError, match=r"field 'Spikes'.*key= one of \['spk'\]"):
        open_spike_trials(path)  # default key 'Spikes' is absent: the message lists 'spk'


def test_unsorted_spikes_name_file_and_field(tmp_path):
    bad = [[[[1.0, 2.0]], [[5.0, 3.0]]]]  # stimulus 0, cell 1, trial 0 unsorted
    path = tmp_path / "bad.mat"
    scipy.io.savemat(path, {"Spikes": nested(bad)})
    with pytest.raises(DataFormatError, match=r"bad\.mat: field 'Spikes\[0\]\[1\]\[0\]'.*sorted"):
        load(path)


def test_sniffer_never_raises_and_refuses_other_files(shared_data, tmp_path):
    assert not sniff_spike_trials(shared_data / "goris2021-v1" / "ay2_u007_image_sequences.mat")  # v7.3, no cells
    text = tmp_path / "notes.mat"
    text.write_text("not matlab")
    assert not sniff_spike_trials(text)
    plain = tmp_path / "plain.mat"
    scipy.io.savemat(plain, {"x": np.arange(5.0), "names": np.array(["a", "b"], dtype=object)})
    assert not sniff_spike_trials(plain)
    cut = tmp_path / "cut.mat"
    cut.write_bytes((shared_data / ONKEN / "Movie1Exp1.mat").read_bytes()[:3000])
    assert not sniff_spike_trials(cut)
    with pytest.raises(DataFormatError, match=r"cut\.mat"):
        open_spike_trials(cut)


# --------------------------------------------------------------------------------------------------------------
# the in-memory entry


def test_spike_trials_to_assembly_ragged_trials_and_bins():
    trials = [
        [[np.array([0.01, 0.02]), np.array([])], [np.array([0.5]), np.array([0.15, 0.25])]],  # 2 trials
        [[np.array([0.3])], [np.array([])]],  # 1 trial
    ]
    da = spike_trials_to_assembly(
        trials, bin_size=0.1, window=(0.0, 0.4), source="memory", stimulus_ids=["a", "b"], neuroid_ids=["u1", "u2"]
    )
    assert da.shape == (3, 2, 4)
    assert da["stimulus_id"].values.tolist() == ["a", "a", "b"] and da["repetition"].values.tolist() == [0, 1, 0]
    assert da.sel(neuroid=0).values.tolist() == [[2, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]
    assert da.sel(neuroid=1).values.tolist() == [[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    assert da.attrs["n_spikes_outside"] == 1  # 0.5 s is outside [0, 0.4)
    with pytest.raises(DataFormatError, match=r"memory: field 'trials\[1\]'.*same number of trials"):
        spike_trials_to_assembly([[[[]], [[]]], [[[]], [[], []]]], window=(0, 1), source="memory")


# --------------------------------------------------------------------------------------------------------------
# NumPy spike-time arrays: Krüppel et al. 2024 marmoset parasol cells


def test_marmoset_spike_times_bin_to_exact_counts(shared_data):
    path = shared_data / MARMOSET / "spikes.npy"
    assert sniff_spike_time_matrix(path) and detect_format(path).name == "spike-times-npy"
    rec = load(path, bin_size=0.01)
    trains = np.load(path, allow_pickle=True)  # the reference reader (the file is ours to trust in a test)
    assert rec.sizes["cell"] == 49 == len(trains)
    np.testing.assert_array_equal(rec["response"].sum("time").values, [len(t) for t in trains])
    assert int(rec["response"].sum()) == 318895
    # Times have 5 decimals (10 us): integer arithmetic gives the 10 ms bin of every spike exactly.
    for i in (0, 17, 48):
        ticks = np.round(trains[i] * 1e5).astype(np.int64)
        np.testing.assert_allclose(ticks, trains[i] * 1e5, atol=1e-6)
        expected = np.bincount(ticks // 1000, minlength=rec.sizes["time"])
        np.testing.assert_array_equal(rec["response"].isel(cell=i).values, expected)
    assert rec["cell"].values[:2].tolist() == ["1479", "1493"]  # cluster ids from cell_classification.txt
    types = rec["cell_type"].values.tolist()
    assert types.count("Off parasol") == 31 and types.count("On parasol") == 18
    assert rec.attrs["frame_rate_hz"] == 100.0


def test_spike_time_npz_and_explicit_types(tmp_path):
    path = tmp_path / "units.npz"
    np.savez(path, unit_a=np.array([0.05, 0.15, 0.16]), unit_b=np.array([0.01]))
    assert sniff_spike_time_matrix(path)
    rec = open_spike_time_matrix(path, bin_size=0.1, cell_types={"unit_a": "ON", "unit_b": "OFF"})
    assert rec["cell"].values.tolist() == ["unit_a", "unit_b"]
    assert rec["response"].values.tolist() == [[1, 1], [2, 0]]
    assert rec["cell_type"].values.tolist() == ["ON", "OFF"]
    clipped = open_spike_time_matrix(path, bin_size=0.1, t_start=0.1, t_stop=0.2)
    assert clipped["response"].values.tolist() == [[2, 0]]
    assert clipped.attrs["n_spikes_outside"].tolist() == [1, 1]


def test_spike_time_matrix_refuses_other_arrays(shared_data, tmp_path):
    assert not sniff_spike_time_matrix(shared_data / "cowley2023-v4" / "responses_raw_responses_210325.npy")
    assert not sniff_spike_time_matrix(shared_data / MARMOSET / "rickerstripes_stimulus.npz")  # not spike times
    # A pickle naming anything but numpy arrays is refused before it can run.
    evil = tmp_path / "evil.npy"
    np.save(evil, np.array([np.array([0.1]), Fraction(1, 3)], dtype=object), allow_pickle=True)
    assert not sniff_spike_time_matrix(evil)
    with pytest.raises(DataFormatError, match=r"evil\.npy.*fractions"):
        open_spike_time_matrix(evil)
    unsorted = tmp_path / "unsorted.npy"
    per_cell = np.empty(2, dtype=object)
    per_cell[0], per_cell[1] = np.array([0.1, 0.2]), np.array([0.3, 0.1])
    np.save(unsorted, per_cell, allow_pickle=True)
    with pytest.raises(DataFormatError, match=r"unsorted\.npy: field 'spikes\[1\]'.*sorted"):
        load(unsorted)

"""NWB adapter: units table -> recording or trial assembly; counts checked against pynwb read directly."""

from __future__ import annotations

# Exact equality in this file compares integer spike counts: the same on every CPU.
import shutil
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import neuromodels.datasets as nd
from neuromodels.datasets.formats.nwb import open_nwb
from neuromodels.errors import DataFormatError

pynwb = pytest.importorskip("pynwb")

HUMAN = "nwb-fixtures/pynapple_sub-4_ses-4_ecephys+image.nwb"  # DANDI 000207: 35 units, 3 interval tables
MOUSE = "nwb-fixtures/pynapple_A8604-211122.nwb"  # 3 units, one 'epochs' interval


def _peer(path: Path, table: str | None = None) -> tuple[list[np.ndarray], list[str], pd.DataFrame | None]:
    """Spike times per unit, unit ids and an interval table, read with pynwb's own accessors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pynwb.NWBHDF5IO(str(path), "r") as io:
            nwb = io.read()
            n = len(nwb.units)
            trains = [np.asarray(nwb.units.get_unit_spike_times(i)) for i in range(n)]
            ids = [str(i) for i in nwb.units.id[:]]
            frame = nwb.intervals[table].to_dataframe() if table else None
    return trains, ids, frame


def _count(trains: list[np.ndarray], lo: float, hi: float) -> np.ndarray:
    return np.array([int(((t >= lo) & (t < hi)).sum()) for t in trains])


@pytest.fixture(scope="module")
def human(shared_data: Path) -> Path:
    return shared_data / HUMAN


@pytest.fixture(scope="module")
def mouse(shared_data: Path) -> Path:
    return shared_data / MOUSE


# ---------------------------------------------------------------- real files


def test_human_file_defaults_to_trials_of_the_presentation_table(human):
    asm = open_nwb(human)
    trains, ids, frame = _peer(human, "encoding_table")
    assert isinstance(asm, xr.DataArray)
    assert asm.dims == ("presentation", "neuroid")
    assert asm.sizes == {"presentation": 90, "neuroid": 35}
    assert asm["neuroid_id"].values.tolist() == ids == [str(i) for i in range(35)]
    assert asm.attrs["trials_table"] == "encoding_table"
    assert asm.attrs["other_interval_tables"] == ["recognition_table", "timediscrimination_table"]
    # Each movie clip is shown once in the encoding block.
    assert asm["stimulus_id"].values[0] == "NB_24.mp4"
    assert asm["repetition"].values.tolist() == [0] * 90
    assert set(asm["region"].values) == {"hippocampus_right", "amygdala_right"}
    expected = np.stack([_count(trains, s, e) for s, e in zip(frame["start_time"], frame["stop_time"])])
    np.testing.assert_array_equal(asm.values, expected)
    assert int(asm.sum()) == 55309
    # Trials do not overlap: every spike is in one trial or counted as outside all of them.
    total = np.array([t.size for t in trains])
    np.testing.assert_array_equal(asm.attrs["n_spikes_outside_trials"], total - expected.sum(axis=0))


def test_human_file_binned_over_the_session_keeps_every_spike(human):
    rec = open_nwb(human, by="time")
    trains, ids, _ = _peer(human)
    assert rec.sizes["cell"] == 35 and rec["cell"].values.tolist() == ids
    assert "stimulus" not in rec
    np.testing.assert_array_equal(rec["response"].sum("time").values, [t.size for t in trains])
    assert int(rec["response"].sum()) == 214278
    assert rec.attrs["identifier"] == "TWH103_CBID4"
    assert rec.attrs["session_start_time"] == "1900-01-01T00:00:00-08:00"
    assert rec.attrs["n_spikes_outside"].tolist() == [0] * 35
    # The last spike (2821.0718 s) is in the last 10 ms bin.
    assert rec.sizes["time"] == 282108 and rec.attrs["t_stop_s"] == pytest.approx(2821.08)


def test_session_window_counts_equal_pynwb_spikes_in_it(human):
    rec = open_nwb(human, by="time", bin_size=0.25, t_start=100.0, t_stop=200.0)
    trains, _, _ = _peer(human)
    inside = _count(trains, 100.0, 200.0)
    assert rec.sizes["time"] == 400
    np.testing.assert_array_equal(rec["response"].sum("time").values, inside)
    np.testing.assert_array_equal(rec.attrs["n_spikes_outside"], [t.size for t in trains] - inside)
    # One bin checked directly: [150.0, 150.25).
    np.testing.assert_array_equal(rec["response"].sel(time=150.0).values, _count(trains, 150.0, 150.25))


def test_window_and_bins_relative_to_trial_start(human):
    asm = open_nwb(human, table="recognition_table", window=(-0.5, 1.0), bin_size=0.1)
    trains, _, frame = _peer(human, "recognition_table")
    assert asm.sizes == {"presentation": 180, "neuroid": 35, "time_bin": 15}
    np.testing.assert_allclose(asm["time_bin_start"].values, np.arange(-500, 1000, 100))
    np.testing.assert_allclose(asm["time_bin_end"].values, np.arange(-400, 1100, 100))
    names = [v.decode() if isinstance(v, bytes) else str(v) for v in frame["frameName"]]
    assert asm["stimulus_id"].values.tolist() == names
    assert asm["repetition"].values.tolist() == pd.Series(names).groupby(names).cumcount().tolist()
    assert asm.attrs["stimulus_column"] == "frameName"
    for i in (0, 57, 179):
        start = frame["start_time"].iloc[i]
        whole = _count(trains, start - 0.5, start + 1.0)
        np.testing.assert_array_equal(asm.values[i].sum(axis=1), whole)
        np.testing.assert_array_equal(asm.values[i, :, 0], _count(trains, start - 0.5, start - 0.4))
    assert "trial_num" in asm.coords and asm["trial_num"].values[:3].tolist() == [1, 2, 3]


def test_mouse_file_has_no_trials_and_spans_its_epoch(mouse):
    rec = open_nwb(mouse)  # 'epochs' is not a trial table
    trains, ids, _ = _peer(mouse)
    assert isinstance(rec, xr.Dataset)
    assert rec["cell"].values.tolist() == ids == ["6", "191", "206"]
    np.testing.assert_array_equal(rec["response"].sum("time").values, [11020, 4690, 5644])
    np.testing.assert_array_equal(rec["response"].sum("time").values, [t.size for t in trains])
    # The session ends with its epoch (1087.5289 s), after the last spike (1087.3528 s).
    assert rec.attrs["t_stop_s"] == pytest.approx(1087.5289)
    assert rec.sizes["time"] == 108753
    assert rec["electrode_group"].values.tolist() == ["group0_psb"] * 3
    assert "region" not in rec.coords  # the file leaves every location empty
    with pytest.raises(DataFormatError, match="field 'trials'"):
        open_nwb(mouse, by="trial")
    whole = open_nwb(mouse, by="trial", table="epochs")
    np.testing.assert_array_equal(whole.values, [[11020, 4690, 5644]])


def test_load_dispatches_nwb(human, mouse):
    asm = nd.load(human)
    assert isinstance(asm, xr.DataArray) and asm.attrs["format"] == "nwb"
    assert asm.attrs["source"] == str(human)
    rec = nd.load(mouse, bin_size=0.5)
    assert isinstance(rec, xr.Dataset) and rec.sizes == {"time": 2176, "cell": 3}
    info = nd.describe(rec)
    assert info["n_cells"] == 3 and info["problems"] == []


# ---------------------------------------------------------------- files written here


def _write(
    path: Path,
    *,
    units: list[list[float]] | None,
    trials: list[tuple[float, float, str]] | None = None,
    unit_column: bool = False,
    spike_column: bool = True,
) -> Path:
    nwb = pynwb.NWBFile(
        session_description="made in a test",
        identifier="roundtrip",
        session_start_time=datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc),
    )
    if units is not None:
        if unit_column or not spike_column:
            nwb.add_unit_column("quality", "sorting quality")
        for k, times in enumerate(units):
            kwargs = {"quality": "good"} if (unit_column or not spike_column) else {}
            if spike_column:
                kwargs["spike_times"] = times
            nwb.add_unit(id=10 + k, **kwargs)
    if trials is not None:
        nwb.add_trial_column("image_id", "image shown")
        nwb.add_trial_column("contrast", "contrast")
        for start, stop, image in trials:
            nwb.add_trial(start_time=start, stop_time=stop, image_id=image, contrast=0.5)
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


SPIKES = [[0.0, 0.05, 0.1, 0.35, 0.999, 1.0, 1.2, 2.05], [0.5, 0.55, 1.1, 1.15, 1.3, 2.2]]
TRIALS = [(0.0, 0.4, "cat"), (1.0, 1.4, "dog"), (2.0, 2.2, "cat")]


def test_round_trip_trial_counts_and_bins(tmp_path):
    path = _write(tmp_path / "trials.nwb", units=SPIKES, trials=TRIALS, unit_column=True)
    asm = open_nwb(path)
    assert asm["neuroid_id"].values.tolist() == ["10", "11"]
    assert asm["stimulus_id"].values.tolist() == ["cat", "dog", "cat"]
    assert asm["repetition"].values.tolist() == [0, 0, 1]
    assert asm["contrast"].values.tolist() == [0.5] * 3
    assert asm["quality"].values.tolist() == ["good", "good"]
    # [0, 0.4): 0, .05, .1, .35 | [1, 1.4): 1.0, 1.2 and 1.1, 1.15, 1.3 | [2, 2.2): 2.05 (2.2 is the end).
    np.testing.assert_array_equal(asm.values, [[4, 0], [2, 3], [1, 0]])
    assert asm.attrs["n_spikes_outside_trials"].tolist() == [1, 3]  # 0.999 | 0.5, 0.55, 2.2

    binned = open_nwb(path, bin_size=0.1)
    assert binned.sizes["time_bin"] == 4
    np.testing.assert_allclose(binned["time_bin_start"].values, [0, 100, 200, 300])
    np.testing.assert_array_equal(binned.values[0, 0], [2, 1, 0, 1])
    np.testing.assert_array_equal(binned.values[1, 1], [0, 2, 0, 1])
    # The third trial lasts 0.2 s: its last two bins do not exist.
    np.testing.assert_array_equal(binned.values[2, 0], [1, 0, np.nan, np.nan])
    assert "padding" in binned.attrs

    window = open_nwb(path, window=(-0.1, 0.1), bin_size=0.1)
    np.testing.assert_allclose(window["time_bin_start"].values, [-100, 0])
    np.testing.assert_array_equal(window.values[:, 0, :], [[0, 2], [1, 1], [0, 1]])
    assert window.dtype == np.int64

    by_column = open_nwb(path, stimulus_column="contrast")
    assert by_column["stimulus_id"].values.tolist() == ["0.5"] * 3
    assert by_column["repetition"].values.tolist() == [0, 1, 2]
    with pytest.raises(DataFormatError, match=r"field 'trials/colour'"):
        open_nwb(path, stimulus_column="colour")
    late = open_nwb(path, t_start=0.5)
    assert late["trial_id"].values.tolist() == [1, 2]


def test_round_trip_time_bins(tmp_path):
    path = _write(tmp_path / "plain.nwb", units=SPIKES)
    rec = open_nwb(path, bin_size=0.5)
    assert rec.attrs["session_start_time"] == "2024-05-01T12:00:00+00:00"
    np.testing.assert_allclose(rec["time"].values, [0.0, 0.5, 1.0, 1.5, 2.0])
    np.testing.assert_array_equal(rec["response"].values[:, 0], [4, 1, 2, 0, 1])
    np.testing.assert_array_equal(rec["response"].values[:, 1], [0, 2, 3, 0, 1])
    clipped = open_nwb(path, bin_size=0.5, t_start=0.5, t_stop=1.5)
    np.testing.assert_array_equal(clipped["response"].values, [[1, 2], [2, 3]])
    assert clipped.attrs["n_spikes_outside"].tolist() == [5, 1]
    no_trials = open_nwb(path)
    assert isinstance(no_trials, xr.Dataset) and no_trials.attrs["bin_size_s"] == 0.01


# ---------------------------------------------------------------- bad input


def test_truncated_copy_of_a_real_file(human, tmp_path):
    broken = tmp_path / "truncated.nwb"
    data = human.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match=r"truncated\.nwb: field '<file>'.*truncated") as err:
        open_nwb(broken)
    assert err.value.file == str(broken)


def test_not_hdf5(tmp_path):
    junk = tmp_path / "junk.nwb"
    junk.write_bytes(b"this is not an HDF5 file" * 10)
    with pytest.raises(DataFormatError, match=r"junk\.nwb: field '<file>'.*not an HDF5 file"):
        open_nwb(junk)
    with pytest.raises(DataFormatError, match=r"junk\.nwb"):
        nd.load(junk)


def test_file_without_units(tmp_path):
    path = _write(tmp_path / "nounits.nwb", units=None, trials=TRIALS)
    with pytest.raises(DataFormatError, match=r"nounits\.nwb: field 'units'.*no units table"):
        open_nwb(path)


def test_units_without_spike_times(tmp_path):
    path = _write(tmp_path / "nospikes.nwb", units=[[], []], spike_column=False)
    with pytest.raises(DataFormatError, match=r"nospikes\.nwb: field 'units/spike_times'") as err:
        open_nwb(path)
    assert err.value.field == "units/spike_times"


def test_unsorted_spike_times_name_the_unit(tmp_path):
    path = _write(tmp_path / "unsorted.nwb", units=[[0.1, 0.2], [0.5, 0.3]])
    with pytest.raises(DataFormatError, match=r"field 'units/spike_times\[id=11\]'.*sorted"):
        open_nwb(path)


def test_bad_trial_times(tmp_path):
    path = _write(tmp_path / "backwards.nwb", units=SPIKES, trials=[(1.0, 0.5, "cat")])
    with pytest.raises(DataFormatError, match=r"field 'trials/stop_time'"):
        open_nwb(path)


def test_copy_keeps_working(human, tmp_path):
    # The adapter must not depend on the file's name or folder (a copy elsewhere reads the same).
    copy = tmp_path / "copy.nwb"
    shutil.copyfile(human, copy)
    assert open_nwb(copy, by="time", bin_size=1.0)["response"].sum().item() == 214278

"""python-neo adapter: vendor spike files -> recording; counts checked against neo read directly."""

from __future__ import annotations

# Exact equality in this file compares integer spike counts: the same on every CPU.
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import neuromodels.datasets as nd
from neuromodels.datasets.formats.neo_io import open_neo, sniff_neo
from neuromodels.errors import ConfigError, DataFormatError

neo = pytest.importorskip("neo")
pq = pytest.importorskip("quantities")

# file -> (reader, spikes per unit in file order, segment t_start, segment t_stop, bins at 10 ms), from neo 0.14.
FIXTURES = {
    "Extracellular_Spikes.smr": ("Spike2IO", [9, 290, 171, 139, 37], 0.0, 119.94688, 11995),
    "File_spike2_1.smr": (
        "Spike2IO",
        [22, 39, 29, 36, 33, 12, 12, 9, 6, 10, 6, 5, 5, 7, 16],
        220.00149,
        447.52773,
        22753,
    ),
    "File_plexon_1.plx": ("PlexonIO", [5376, 8956, 6414, 3971], 0.0, 74.891825, 7490),
    "File_plexon_3.plx": (
        "PlexonIO",
        [
            701,
            716,
            69,
            12,
            95,
            37,
            25,
            15,
            33,
            392,
            337,
            333,
            85,
            13,
            20,
            750,
            3,
            1345,
            826,
            818,
            744,
            753,
            34,
            36,
            30,
            19,
            2,
            42,
            15,
            51,
        ],
        0.0,
        600.806,
        60081,
    ),
    "File_neuroexplorer_1.nex": ("NeuroExplorerIO", [18882, 13514, 3053, 2357, 3807, 3824], 0.0, 5196.196075, 519620),
}


def _peer(path: Path) -> tuple[list[np.ndarray], float, float]:
    """Spike times (s) per train and the segment's extent, read eagerly by neo itself (no proxies)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for io_class in neo.io.list_candidate_ios(path):
            try:
                block = io_class(str(path)).read_block(lazy=False)
                break
            except ImportError:  # CedIO without sonpy
                continue
    seg = block.segments[0]
    trains = [st.times.rescale("s").magnitude for st in seg.spiketrains]
    return trains, float(seg.t_start.rescale("s")), float(seg.t_stop.rescale("s"))


@pytest.fixture(scope="module")
def fixtures(shared_data: Path) -> Path:
    return shared_data / "neo-fixtures"


# ---------------------------------------------------------------- real files


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_every_fixture_matches_neo(fixtures, name):
    reader, sizes, t_start, t_stop, n_time = FIXTURES[name]
    path = fixtures / name
    rec = open_neo(path)
    trains, peer_start, peer_stop = _peer(path)
    assert [t.size for t in trains] == sizes  # the peer agrees with the numbers written down above
    assert rec.attrs["neo_io"] == reader
    assert rec.sizes == {"time": n_time, "cell": len(sizes)}
    np.testing.assert_array_equal(rec["response"].sum("time").values, sizes)
    assert rec.attrs["n_spikes_outside"].tolist() == [0] * len(sizes)
    # The recording spans the segment, not first to last spike.
    assert rec.attrs["t_start_s"] == pytest.approx(peer_start) == pytest.approx(t_start)
    assert rec.attrs["t_stop_s"] == pytest.approx(peer_stop) == pytest.approx(t_stop)
    assert rec["time"].values[0] == pytest.approx(t_start)
    assert rec["cell"].to_index().is_unique and rec["cell"].dtype == object
    assert rec.attrs["n_segments"] == 1 and rec["segment"].values.tolist() == [0] * n_time


def test_bins_match_an_independent_count(fixtures):
    path = fixtures / "Extracellular_Spikes.smr"
    rec = open_neo(path, bin_size=0.5)
    trains, _, _ = _peer(path)
    assert rec.sizes["time"] == 240  # 119.94688 s in 0.5 s bins; the spike at t_stop is in the last bin
    for k, t in enumerate(trains):
        expected = np.bincount(np.floor(t / 0.5).astype(int), minlength=240)
        np.testing.assert_array_equal(rec["response"].values[:, k], expected)


def test_window_counts_equal_neo_spikes_in_it(fixtures):
    path = fixtures / "File_plexon_1.plx"
    rec = open_neo(path, bin_size=0.1, t_start=10.0, t_stop=30.0)
    trains, _, _ = _peer(path)
    inside = np.array([((t >= 10.0) & (t < 30.0)).sum() for t in trains])
    assert rec.sizes["time"] == 200 and rec["time"].values[0] == pytest.approx(10.0)
    np.testing.assert_array_equal(rec["response"].sum("time").values, inside)
    np.testing.assert_array_equal(rec.attrs["n_spikes_outside"], [t.size for t in trains] - inside)


def test_unit_names_made_unique_with_neo_ids(fixtures):
    rec = open_neo(fixtures / "Extracellular_Spikes.smr")  # five trains all named 'Spikes'
    assert rec["cell"].values.tolist() == [f"Spikes_ch0#{k}" for k in range(5)]
    assert rec["neo_name"].values.tolist() == ["Spikes"] * 5
    nex = open_neo(fixtures / "File_neuroexplorer_1.nex")
    assert nex["cell"].values.tolist() == ["Neuron04a", "Neuron05b", "Neuron05c", "Neuron06b", "Neuron06d", "Neuron07a"]


def test_file_with_events_only_has_no_spike_trains(fixtures):
    # BURST.SMR holds one *event* channel titled 'Spikes' (972 times) and no spike trains for neo 0.14.
    with pytest.raises(DataFormatError, match=r"BURST\.SMR: field 'spiketrains'.*event_channels=\['Spikes'\]") as err:
        open_neo(fixtures / "BURST.SMR")
    assert err.value.field == "spiketrains"


def test_event_channels_are_read_as_spike_trains_on_request(fixtures):
    import neo

    rec = open_neo(fixtures / "BURST.SMR", event_channels=["Spikes"], bin_size=0.05)
    (segment,) = neo.io.Spike2IO(str(fixtures / "BURST.SMR")).read_block().segments
    (events,) = [ev for ev in segment.events if ev.name == "Spikes"]
    assert list(rec["cell"].values) == ["Spikes"]
    assert int(rec["response"].sum()) == events.size == 972
    expected = np.histogram(
        events.times.rescale("s").magnitude, bins=rec["time"].values.tolist() + [float(rec["time"][-1]) + 0.05]
    )[0]
    np.testing.assert_array_equal(rec["response"].values[:, 0], expected)
    with pytest.raises(DataFormatError, match=r"field 'event_channels'.*\['Spikes'\].*\['Spiks'\]"):
        open_neo(fixtures / "BURST.SMR", event_channels=["Spiks"])
    with pytest.raises(ConfigError, match="list of channel names"):
        open_neo(fixtures / "BURST.SMR", event_channels="Spikes")


def test_load_and_inspect_every_fixture(fixtures, capsys):
    from neuromodels.cli import main

    for name, (_, sizes, _, _, _) in FIXTURES.items():
        rec = nd.load(fixtures / name)
        assert isinstance(rec, xr.Dataset) and rec.attrs["format"] == "neo"
        assert rec.sizes["cell"] == len(sizes)
    assert main(["data", "inspect", str(fixtures / "File_plexon_1.plx"), "--json", "--bin-size", "0.1"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_cells"] == 4 and info["format"] == "neo"
    assert info["duration_s"] == pytest.approx(
        74.891825
    )  # the recorded span (attrs t_start_s..t_stop_s), not whole bins
    with pytest.raises(DataFormatError, match="spiketrains"):
        nd.load(fixtures / "BURST.SMR")


# ---------------------------------------------------------------- sniffing and bad input


def test_sniff(fixtures, tmp_path):
    assert all(sniff_neo(fixtures / name) for name in [*FIXTURES, "BURST.SMR"])
    for name in ("x.nwb", "x.pkl", "x.pickle", "x.unknownext", "noext"):
        (tmp_path / name).write_bytes(b"\0" * 16)
        assert not sniff_neo(tmp_path / name), name
    assert not sniff_neo(tmp_path / "missing.plx")
    assert not sniff_neo(tmp_path)
    assert not sniff_neo(None)  # never raises


@pytest.mark.parametrize(
    ("name", "fraction", "field"),
    [
        ("File_plexon_3.plx", 0.5, "spiketrains"),  # neo reads it without error, with 4588 of 8351 spikes
        ("File_plexon_3.plx", 0.95, "t_stop"),  # all spikes, but the recording ends at 541.68 s, not 600.806 s
        ("File_plexon_1.plx", 0.001, "<file>"),
        ("File_spike2_1.smr", 0.5, "<file>"),
        ("File_neuroexplorer_1.nex", 0.5, "<file>"),
    ],
)
def test_truncated_copies(fixtures, tmp_path, name, fraction, field):
    data = (fixtures / name).read_bytes()
    broken = tmp_path / f"cut_{name}"
    broken.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(DataFormatError) as err:
        open_neo(broken)
    assert err.value.file == str(broken) and err.value.field == field


def test_garbage_and_pickles(tmp_path):
    junk = tmp_path / "junk.plx"
    junk.write_bytes(b"not a plexon file")
    with pytest.raises(DataFormatError, match=r"junk\.plx: field '<file>'.*PlexonIO"):
        open_neo(junk)
    pickle = tmp_path / "block.pkl"
    pickle.write_bytes(b"\x80\x04N.")
    with pytest.raises(DataFormatError, match=r"field '<extension>'.*pickle"):
        open_neo(pickle)


# ---------------------------------------------------------------- several segments, written with neo


def _write_mat(path: Path, segments: list[tuple[float, float, dict[str, list[float]]]]) -> Path:
    block = neo.Block()
    for k, (start, stop, units) in enumerate(segments):
        seg = neo.Segment(name=f"seg{k}")
        for name, times in units.items():
            # Milliseconds on purpose: the adapter must convert to seconds.
            seg.spiketrains.append(
                neo.SpikeTrain(
                    np.asarray(times) * 1000.0 * pq.ms,
                    t_start=start * 1000.0 * pq.ms,
                    t_stop=stop * 1000.0 * pq.ms,
                    name=name,
                )
            )
        block.segments.append(seg)
    neo.io.NeoMatlabIO(str(path)).write_block(block)
    return path


def test_segments_are_concatenated_with_a_segment_coordinate(tmp_path):
    path = _write_mat(
        tmp_path / "two.mat",
        [
            (0.0, 2.0, {"u1": [0.1, 0.5, 2.0], "u2": [1.0]}),
            (5.0, 8.0, {"u1": [5.1, 5.5, 8.0], "u2": [6.0]}),
        ],
    )
    assert sniff_neo(path)
    rec = open_neo(path, bin_size=0.5)
    # Spikes exactly at a segment's t_stop (2.0 s, 8.0 s) are legal in neo and get a bin of their own.
    np.testing.assert_allclose(rec["time"].values, [0, 0.5, 1, 1.5, 2, 5, 5.5, 6, 6.5, 7, 7.5, 8])
    assert rec["segment"].values.tolist() == [0] * 5 + [1] * 7
    assert rec["cell"].values.tolist() == ["u1", "u2"]
    np.testing.assert_array_equal(rec["response"].values[:, 0], [1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(rec["response"].values[:, 1], [0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0])
    assert rec.attrs["n_segments"] == 2 and rec.attrs["t_stop_s"] == 8.0
    assert "segment_time" not in rec.coords

    second = open_neo(path, bin_size=0.5, segment=1)
    np.testing.assert_allclose(second["time"].values, np.arange(5.0, 8.5, 0.5))
    assert second.attrs["segments"].tolist() == [1] and second.attrs["n_segments_in_file"] == 2
    with pytest.raises(DataFormatError, match="field 'segment'"):
        open_neo(path, segment=2)


def test_overlapping_segments_are_shifted_and_missing_units_listed(tmp_path):
    path = _write_mat(
        tmp_path / "restart.mat",
        [
            (0.0, 1.0, {"a": [0.2, 0.7]}),
            (0.0, 1.0, {"b": [0.1]}),
        ],
    )
    rec = open_neo(path, bin_size=0.5)
    np.testing.assert_allclose(rec["time"].values, [0.0, 0.5, 1.0, 1.5])
    np.testing.assert_allclose(rec["segment_time"].values, [0.0, 0.5, 0.0, 0.5])
    assert rec.attrs["segment_offsets_s"].tolist() == [0.0, 1.0]
    np.testing.assert_array_equal(rec["response"].values, [[1, 0], [1, 0], [0, 1], [0, 0]])
    assert rec.attrs["cells_absent_from_segments"] == ["b@0", "a@1"]


def test_a_mat_file_that_is_no_known_layout_gets_a_plain_error(tmp_path):
    import scipy.io

    from neuromodels.datasets import load
    from neuromodels.errors import UnknownFormatError

    path = tmp_path / "settings.mat"
    scipy.io.savemat(path, {"gain": np.arange(5.0)})
    with pytest.raises(UnknownFormatError, match=r"settings\.mat: field '<contents>'.*MATLAB cell array"):
        load(path)

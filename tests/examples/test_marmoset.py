"""examples/marmoset_parasol.py: stimulus reconstruction (fast), constructors on the real arrays, the full run (slow).

The slow test runs the example's ``main`` on ``../shared/data`` (skipped where absent) and asserts the numbers the
docs quote (docs/examples/marmoset_parasol.md), measured on the team's copy (seed 0, 2 CPU cores).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from neuromodels.errors import DataFormatError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "marmoset_parasol.py"


def example() -> ModuleType:
    """Import the script (a file in a script folder, not a package) as a module."""
    name = "neuromodels_example_marmoset_parasol"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# --------------------------------------------------------------------------------------------------------------
# fast: stimulus reconstruction, known geometry


def test_ricker_profile_closed_form_centre_zero_crossing_and_clipped_side_bands():
    mp = example()
    h = 3.0
    assert mp.ricker_profile(np.array([0.0]), h)[0] == 1.0
    np.testing.assert_allclose(mp.ricker_profile(np.array([-h, h]), h), 0.0, atol=1e-15)
    trough = np.sqrt(3.0) * h  # d/dd [(1 - u) exp(-u/2)] = 0 at u = 3: value -2 exp(-3/2)
    assert mp.ricker_profile(np.array([trough]), h, 1.0)[0] == pytest.approx(-2 * np.exp(-1.5), rel=1e-12)
    assert mp.ricker_profile(np.array([trough]), h, 2.0)[0] == pytest.approx(-4 * np.exp(-1.5), rel=1e-12)
    assert mp.ricker_profile(np.array([trough]), h, 2.5)[0] == -1.0  # -1.116 clipped
    d = np.linspace(-30, 30, 601)
    np.testing.assert_array_equal(mp.ricker_profile(d, h), mp.ricker_profile(-d, h))  # symmetric


def _script_position(x, y, angle, width=800, height=600, spacing=50):
    """The stripe position over pixel (x, y), by the rule of ``Correct_sinogram`` in the analysis script written
    for these files (transcribed: rotate the pixel about the screen centre, ``0.5 - frac(d / spacing)``)."""
    dx, dy = x - (width - 1) / 2, y - (height - 1) / 2
    d = np.cos(angle) * dx - np.sin(angle) * dy
    return 0.5 - ((d / spacing) % 1)


@pytest.mark.parametrize(
    ("x", "y", "angle"), [(399.5, 299.5, 0.0), (430, 100, 0.0), (12, 590, np.pi / 2), (700, 41, 1.0)]
)
def test_ricker_frame_puts_a_centre_line_where_the_authors_script_expects_the_stripe(x, y, angle):
    mp = example()
    position = _script_position(x, y, angle)
    frame = mp.ricker_frame(position, angle, width_px=800, height_px=600, half_width_px=2.0)
    assert frame.shape == (600, 800) and frame.dtype == np.float32
    if float(x).is_integer() and float(y).is_integer():
        assert frame[int(y), int(x)] == pytest.approx(mp.RICKER_POLARITY, abs=1e-6)  # the centre line's value
    # stripes repeat every 50 px across, and are constant along their length
    across = np.array([np.cos(angle), -np.sin(angle)])
    along = np.array([np.sin(angle), np.cos(angle)])
    for k in (-2, -1, 1, 2):
        for t in (-30.0, 0.0, 30.0):
            px, py = np.array([x, y]) + 50 * k * across + t * along
            if 0 <= px < 800 and 0 <= py < 600 and float(px).is_integer() and float(py).is_integer():
                assert frame[int(py), int(px)] == pytest.approx(mp.RICKER_POLARITY, abs=1e-5)


def test_ricker_frame_vertical_stripes_fall_on_the_predicted_columns():
    mp = example()
    # angle 0: d = x - cx; position p puts centre lines where frac((x - cx) / 50) = 0.5 - p
    frame = mp.ricker_frame(-0.5, 0.0, width_px=101, height_px=11, spacing_px=50, half_width_px=2.0, polarity=1.0)
    lines = np.flatnonzero(np.isclose(frame[5], 1.0, atol=1e-6))
    assert lines.tolist() == [0, 50, 100]  # cx = 50: d = -50, 0, 50
    assert np.all(frame == frame[:1])  # constant along the stripe
    assert frame.min() == -1.0  # the clipped side bands (s = 2.5)
    shifted = mp.ricker_frame(
        -0.5 + 0.2, 0.0, width_px=101, height_px=11, spacing_px=50, half_width_px=2.0, polarity=1.0
    )
    assert np.flatnonzero(np.isclose(shifted[5], 1.0, atol=1e-6)).tolist() == [40, 90]  # 0.2 x 50 px to lower x


def test_ricker_angle_and_angle_plus_pi_with_opposite_position_are_the_same_stripes():
    mp = example()
    a = mp.ricker_frame(0.1, 0.3, width_px=81, height_px=61)
    b = mp.ricker_frame(-0.1, 0.3 + np.pi, width_px=81, height_px=61)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_grating_profiles_bars_shifts_and_full_field():
    mp = example()
    np.testing.assert_array_equal(mp.grating_profile(4, 0, 16), [1, 1, 1, 1, -1, -1, -1, -1] * 2)
    np.testing.assert_array_equal(mp.grating_profile(4, 2, 12), [-1, -1, 1, 1, 1, 1, -1, -1, -1, -1, 1, 1])
    np.testing.assert_array_equal(mp.grating_profile(1, 0, 6), [1, -1, 1, -1, 1, -1])
    assert np.all(mp.grating_profile(800, 0) == 1.0) and mp.grating_profile(800, 0).size == 800
    conditions = mp.grating_conditions()
    assert len(conditions) == 23
    assert conditions[:4] == [(1, 0), (2, 0), (4, 0), (4, 6)] and conditions[-1] == (800, 0)
    assert [s for w, s in conditions if w == 64] == [0, 120, 112, 104, 96, 88, 80, 72]  # steps of 8 px to lower x
    np.testing.assert_array_equal(mp.grating_profile(64, 120, 80)[:16], mp.grating_profile(64, 0, 88)[8:24])
    inputs = mp.model_inputs()  # (46 stimuli, 400 samples of 2 px): each grating, then its reversal
    assert inputs.shape == (46, 400)
    np.testing.assert_array_equal(inputs[1::2], -inputs[0::2])
    assert np.all(inputs[0] == 0.0) and np.all(inputs[-2] == 1.0)  # 1 px bars average out; full field


def test_reversal_schedule_numbers_polarity_and_refuses_a_wrong_length():
    mp = example()
    n_pres = 46
    times, t = [], 0.0
    for _ in range(n_pres):  # per presentation: the gray pulse's start, then the onsets of 25 half-periods
        times += [t] + [t + 1.0 + 0.5 * k for k in range(25)]
        t += 1.0 + 0.5 * 25
    times = np.array(times + [t])  # and the end of the last half-period
    assert times.size == 46 * 26 + 1
    sched = mp.reversal_schedule(times)
    assert sched["onset"].size == 46 * 24  # the first half-period (onset after gray) is left out
    first = sched["condition"] == 0
    assert first.sum() == 48 and set(sched["sweep"][first]) == {0, 1}
    np.testing.assert_array_equal(sched["polarity"][:4], [-1, 1, -1, 1])  # segment 1 is the reversed phase
    np.testing.assert_allclose(sched["onset"][:2], [1.5, 2.0])
    with pytest.raises(DataFormatError, match="stimchanges"):
        mp.reversal_schedule(times[:-1], file="stimchanges.npy")


def test_aligned_counts_are_left_closed_and_exact():
    mp = example()
    trains = [np.array([0.0, 0.0999, 0.1, 0.25, 1.05]), np.array([])]
    counts = mp.aligned_counts(trains, np.array([0.0, 1.0]), 3, 0.1)
    np.testing.assert_array_equal(counts[:, :, 0], [[2, 1, 1], [1, 0, 0]])
    assert counts[:, :, 1].sum() == 0


def test_lnln_fit_recovers_a_known_subunit_width_and_centre():
    mp = example()
    import torch

    inputs = mp.model_inputs()
    truth = mp.make_model("lnln", inputs, np.array([0.4]), np.array([12 / 800]), np.array([1.0]), np.array([4.0]))
    with torch.no_grad():
        truth.gain.fill_(8.0)
        truth.bias.fill_(-1.0)
        target = truth(torch.arange(46)).numpy().astype(np.float64)  # noiseless rates of one ON cell
    prediction, params = mp.fit_models("lnln", inputs, target, np.array([1.0]), np.ones(46, bool), epochs=300, seed=0)
    assert params["subunit_sigma_px"][0] == 4.0
    # every grating period (2 ... 128 px) divides 128 px and the full field is uniform: the gratings fix the
    # receptive field's position only modulo 128 px
    offset = (params["centre_px"][0] - 320.0 + 64.0) % 128.0 - 64.0
    assert offset == pytest.approx(0.0, abs=4.0)
    assert np.corrcoef(prediction[:, 0], target[:, 0])[0, 1] > 0.98


def test_missing_data_exits_2_with_a_message_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert example().main(["--data", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "--data" in err and "Traceback" not in err
    assert not out.exists()


# --------------------------------------------------------------------------------------------------------------
# fast, on the real arrays (skipped without ../shared/data)


def test_constructors_on_the_real_arrays_count_every_reversal(shared_data):
    mp = example()
    data = mp.load(mp.find_files(shared_data))
    assert len(data["trains"]) == 49 and (data["types"] == "OFF").sum() == 31 and (data["types"] == "ON").sum() == 18
    assert data["positions"].size == 8787 and mp.ricker_summary(data)["n_angles"] == 36
    sched = data["schedule"]
    assert sched["onset"].size == 46 * 24
    assert mp.half_period(data) == pytest.approx(42 / 85, abs=2e-4)  # 42 frames at 85 Hz
    recording = mp.build_recording(data)
    assert recording["response"].dims == ("time", "cell")
    assert recording["cell_type"].values.tolist() == data["types"].tolist()
    cube = mp.response_cube(data)
    assert cube.shape == (46, 24, 49, 49)
    count, psth = mp.assemblies(cube, data)
    assert count.sizes == {"presentation": 46 * 24, "neuroid": 49}
    assert set(np.unique(count["stimulus_id"].values, return_counts=True)[1].tolist()) == {24}
    assert psth.sizes["presentation"] == 46 * 49 * 24
    # the phase convention: one receptive-field point explains every cell's polarity preference across the
    # 16-64 px gratings (measured: median 1.00, 46 of 49 cells above 0.98, the weakest three 0.60, 0.89, 0.95);
    # with the phase steps the other way round the median is 0.53
    targets = cube.sum(axis=2).mean(axis=1)
    consistency = mp.phase_consistency(targets, data["types"])
    assert np.median(consistency) > 0.99 and (consistency > 0.98).sum() >= 45
    # every spike inside a counted half-period window is in the assembly, once
    window = mp.half_period(data)
    direct = sum(
        int(np.sum((train[:, None] >= sched["onset"]) & (train[:, None] < sched["onset"] + window)))
        for train in data["trains"][:3]
    )
    assert float(count.isel(neuroid=slice(0, 3)).sum()) == pytest.approx(direct, abs=3)  # float edge rounding only


def test_the_spikes_are_the_grating_recording_not_the_ricker_flashes(shared_data):
    """The facts behind the docs' "the Ricker-stripe responses are not in these data" (measured on the team's copy)."""
    mp = example()
    paths = mp.find_files(shared_data)
    data = mp.load(paths)
    grating_changes = np.load(paths["stimchanges.npy"])
    ricker = data["ricker_changes"]
    last_spike = max(float(t.max()) for t in data["trains"] if t.size)
    assert 860 < last_spike < 870  # 864.8 s
    assert ricker[-1] > 5270 and ricker[-1] > 6 * last_spike  # the flashes run 5,274 s
    assert grating_changes[-1] < last_spike  # the grating schedule (to 615.5 s) lies inside the spike file
    # both stimulus clocks start at about 1.2 s: one clock per stimulus recording, each from its own zero
    assert grating_changes[0] == pytest.approx(ricker[0], abs=0.01) and ricker[0] == pytest.approx(1.2, abs=0.01)
    # (n - 1) / 2 flashes; intervals alternate 38 frames (gray, even index) and 13 frames (flash, odd) at 85 Hz
    assert (ricker.size - 1) // 2 == data["positions"].size == 8787
    steps = np.diff(ricker)
    assert np.median(steps[0::2]) == pytest.approx(38 / 85, abs=2e-3)
    assert np.median(steps[1::2]) == pytest.approx(13 / 85, abs=2e-3)


# --------------------------------------------------------------------------------------------------------------
# slow: the example end to end


@pytest.mark.slow
def test_marmoset_example_ceilings_nonlinearity_and_models(shared_data, tmp_path):
    out, figures = tmp_path / "out", tmp_path / "figures"
    assert example().main(["--data", str(shared_data), "--out", str(out), "--figures", str(figures)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["n_cells"] == 49 and report["n_stimuli"] == 46 and report["n_repeats"] == 24
    # ceilings: Spearman-Brown split-half, 10 seeded splits (measured median ON 0.984 / OFF 0.974; PSTH 0.885 / 0.923)
    assert report["ceiling_count_by_type"]["ON"] == pytest.approx(0.984, abs=0.002)
    assert report["ceiling_count_by_type"]["OFF"] == pytest.approx(0.974, abs=0.002)
    assert report["ceiling_psth_by_type"]["ON"] == pytest.approx(0.885, abs=0.002)
    assert report["ceiling_psth_by_type"]["OFF"] == pytest.approx(0.923, abs=0.002)
    # nonlinearity index max F2 / max F1 (no randomness): median ON 1.020, OFF 0.960; 21 of 49 cells above 1
    assert report["nonlinearity_index_by_type"]["ON"] == pytest.approx(1.020, abs=1e-3)
    assert report["nonlinearity_index_by_type"]["OFF"] == pytest.approx(0.960, abs=1e-3)
    assert sum(v > 1 for v in report["nonlinearity_index"]) == 21
    # held-out gratings: the subunit model (LN nested in it) above LN, measured CC_norm 0.950 vs 0.935 (median);
    # in 15 of the 18 reliable cells with NLI > 1 (0.83) and 23 of the other 31 (0.74): NLI hardly predicts the gain
    norm = report["cc_norm_by_type"]
    assert norm["ln"]["all"] == pytest.approx(0.935, abs=0.02)
    assert norm["lnln"]["all"] == pytest.approx(0.950, abs=0.02)
    assert norm["lnln"]["all"] > norm["ln"]["all"]
    assert report["high_nli_cells"] == 18 and report["high_nli_fraction_lnln_better"] >= 0.7
    assert max(norm["ln"]["all"], norm["lnln"]["all"]) < 1.0  # below the ceiling
    # the spikes are the grating recording's: not locked to the Ricker flashes (measured 1.08 vs 3.82)
    assert report["ricker"]["ricker_locking_median"] < 1.3 < 3.0 < report["ricker"]["grating_locking_median"]
    assert report["ricker"]["n_positions"] == 75 and report["ricker"]["angle_step_deg"] == pytest.approx(5.0, abs=1e-3)
    for name in ("marmoset_stimuli.png", "marmoset_gratings.png", "marmoset_models.png"):
        assert (out / name).stat().st_size > 10_000 and (figures / name).is_file()

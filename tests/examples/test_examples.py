"""The real-data examples in examples/: their key numbers (slow, run by `make reproduce`) and their error paths.

The slow tests run each example's ``main`` on ``../shared/data`` (skipped where it is absent) and assert the
numbers the docs quote (docs/examples/*.md). Measured on the team's copy (seed 0, 2 CPU cores) and written next
to each assertion.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (a script folder, not a package) as a module."""
    module_name = f"neuromodels_example_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


# --------------------------------------------------------------------------------------------------------------
# fast: error paths (no data needed) and the array constructor on the real movie arrays


@pytest.mark.parametrize("name", ["fly_h1_ln", "salamander_onken"])
def test_missing_data_exits_2_with_a_message_and_writes_nothing(name, tmp_path, capsys):
    out = tmp_path / "out"
    assert example(name).main(["--data", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "--data" in err and "Traceback" not in err
    assert not out.exists()


def test_fly_h1_file_without_its_variables_is_a_data_format_error(tmp_path, capsys):
    import gzip
    import io

    import scipy.io

    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"stim": np.zeros(500)})  # no 'rho'
    (tmp_path / "fly-h1").mkdir()
    (tmp_path / "fly-h1" / "c1p8.mat.gz").write_bytes(gzip.compress(buffer.getvalue()))
    assert example("fly_h1_ln").main(["--data", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "field 'rho'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_spike_triggered_average_of_a_delayed_copy_is_the_delay():
    h1 = example("fly_h1_ln")
    rng = np.random.default_rng(0)
    stim = rng.normal(size=20_000)
    rho = np.zeros(20_000, dtype=np.int64)
    rho[5:] = (stim[:-5] > 1.5).astype(np.int64)  # a spike 5 samples after each large stimulus value
    sta = h1.spike_triggered_average(stim, rho, 10)
    assert int(np.argmax(sta)) == 10 - 1 - 5  # lag 5 before the spike (column -1 is lag 0)
    assert sta.max() > 1.5 and np.abs(np.delete(sta, 4)).max() < 0.1


def test_movie_assembly_counts_every_repeat_and_drops_nan_padded_slots(shared_data):
    from neuromodels import datasets as nd

    sal = example("salamander_onken")
    binned = nd.load(shared_data / sal.FOLDER / "Movie1Exp1.mat", bin_size=0.1)  # (30 repeats, 38 cells, 180 bins)
    asm = sal.movie_assembly(binned)
    assert asm.sizes == {"presentation": 30 * 180, "neuroid": 38}
    counts = np.unique(asm["stimulus_id"].values, return_counts=True)[1]
    assert counts.size == 180 and set(counts.tolist()) == {30}
    assert float(asm.sum()) == float(binned.sum())
    first_bin = asm.where(asm["stimulus_id"] == "0ms", drop=True)
    np.testing.assert_array_equal(first_bin.values, binned.isel(time_bin=0).values)
    # NaN-padded repeats (as when some repeats are missing): the padded slots are dropped, the rest counted
    padded = binned.astype(float).copy()
    padded[[3, 17]] = np.nan
    asm = sal.movie_assembly(padded)
    assert asm.sizes["presentation"] == 28 * 180
    assert sorted(set(asm["repetition"].values.tolist())) == sorted(set(range(30)) - {3, 17})


# --------------------------------------------------------------------------------------------------------------
# slow: the examples end to end on the real data


@pytest.mark.slow
def test_fly_h1_example_reproduces_the_sta_and_predicts_held_out_spikes(shared_data, tmp_path):
    out, figures = tmp_path / "out", tmp_path / "figures"
    assert example("fly_h1_ln").main(["--data", str(shared_data), "--out", str(out), "--figures", str(figures)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["n_samples"] == 600_000 and report["n_spikes"] == 53_601
    assert -40.0 <= report["sta_peak_lag_ms"] <= -15.0  # measured -28 ms (Dayan & Abbott Fig. 1.9)
    assert report["sta_peak"] > 0.5 * report["stimulus_std"]  # measured 29.5 deg/s vs std 50.5
    assert -40.0 <= report["filter_peak_lag_ms"] <= -15.0  # measured -28 ms
    assert report["filter_sta_correlation"] > 0.95  # measured 0.988
    cc = report["test_cc"]
    assert cc["2ms"] > 0.3 and cc["10ms"] > 0.6 and cc["20ms"] > 0.7  # measured 0.361, 0.682, 0.750
    assert cc["2ms"] < cc["10ms"] < cc["20ms"]
    assert report["test_cc_norm"] is None  # no repeats in c1p8: no ceiling
    for name in ("fly_h1_sta.png", "fly_h1_nonlinearity.png", "fly_h1_prediction.png"):
        assert (out / name).stat().st_size > 10_000 and (figures / name).is_file()


@pytest.mark.slow
def test_salamander_example_ceilings_and_latency_code(shared_data, tmp_path):
    out = tmp_path / "out"
    assert example("salamander_onken").main(["--data", str(shared_data), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    flashed, movies = report["flashed"], report["movies"]
    measured = {  # file: (ceiling of the count, ceiling of the latency, median jitter ms, median Fano factor)
        "NaturalImages1.mat": (0.993, 0.977, 12.6, 0.37),
        "NaturalImages2.mat": (0.996, 0.967, 11.7, 0.42),
        "Shifts1.mat": (0.994, 0.985, 7.9, 0.17),
        "Shifts2.mat": (0.991, 0.976, 9.8, 0.21),
    }
    for name, (count, latency, jitter, fano) in measured.items():
        n = flashed[name]
        assert n["ceiling_count"] == pytest.approx(count, abs=0.005), name
        assert n["ceiling_latency"] == pytest.approx(latency, abs=0.01), name
        assert n["median_latency_jitter_ms"] == pytest.approx(jitter, abs=0.1), name  # no randomness
        assert n["median_count_fano_factor"] == pytest.approx(fano, abs=0.01), name
        assert n["median_count_fano_factor"] < 1.0  # sub-Poisson counts (Berry et al. 1997)
        # per cell, the first-spike latency tells the images apart better than the count (Gollisch & Meister 2008)
        assert n["cell_bits_latency_median"] > n["cell_bits_count_median"] + 0.25, name  # measured +0.30 to +0.48
        assert n["fraction_of_cells_latency_more_informative"] > 0.8, name  # measured 0.83 to 0.97
        assert min(n["population_accuracy"].values()) > 30 * n["chance"], name  # measured >= 0.55 (chance <= 1/60)
    assert flashed["NaturalImages2.mat"]["population_accuracy"]["latency"] > 0.99  # measured 0.999
    medians_10ms = {"Movie1Exp1.mat": 0.898, "Movie1Exp2.mat": 0.930, "Movie2Exp1.mat": 0.915, "Movie2Exp2.mat": 0.915}
    for name, value in medians_10ms.items():
        ceilings = [movies[name][key]["ceiling"] for key in ("10ms", "30ms", "100ms")]
        assert ceilings[0] == pytest.approx(value, abs=0.005), name
        assert ceilings[0] < ceilings[1] < ceilings[2], name  # finer bins: more of the response is noise
        assert len(movies[name]["10ms"]["ceiling_per_cell"]) in (38, 49)
    for name in ("salamander_rasters.png", "salamander_latency_vs_count.png", "salamander_ceilings.png"):
        assert (out / name).stat().st_size > 10_000

"""``neuromodels fit``: a report folder from a recording, one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from neuromodels.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neuromodels", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def small_recording(tmp_path_factory) -> str:
    from neuromodels.datasets import sample, write_netcdf

    rec = sample(
        "retina",
        size_px=16,
        rf_margin_px=5.0,
        n_on=1,
        n_off=1,
        n_on_off=1,
        train_checkerboard_frames=900,
        train_natural_frames=300,
        test_checkerboard_frames=100,
        test_natural_frames=100,
        n_repeats=4,
    )
    path = tmp_path_factory.mktemp("data") / "small_retina.nc"
    write_netcdf(rec, path)
    return str(path)


def test_fit_writes_the_report_folder(small_recording, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(
        [
            "fit",
            "--data",
            small_recording,
            "--model",
            "cnn,ln,glm",
            "--epochs",
            "1",
            "--history",
            "10",
            "--param",
            "cnn.channels=[2,2]",
            "--param",
            "cnn.kernel_sizes=[5,3]",
            "--param",
            "ln.rank=1",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    table = capsys.readouterr().out
    assert "CC CNN" in table and "CC LN" in table and "CC GLM" in table and "ceiling" in table and "median" in table
    report = json.loads((out / "report.json").read_text())
    assert report["cells"] == ["cell00", "cell01", "cell02"] and report["n_repeats"] == 4
    for kind in ("cnn", "ln", "glm"):
        info = report["models"][kind]
        assert len(info["metrics"]["cc"]) == 3 and len(info["metrics"]["feve"]) == 3
        assert info["history"]["epoch"] == [1]
        assert info["parameters"]["history"] == 10
        assert (out / kind / "model.pt").stat().st_size > 0
        assert (out / kind / "training" / "checkpoint.pt").is_file()
        assert (out / kind / "filters.png").read_bytes()[:4] == b"\x89PNG"
    assert report["models"]["cnn"]["model_config"]["channels"] == [2, 2]
    assert report["models"]["ln"]["model_config"]["rank"] == 1
    glm = report["models"]["glm"]["model_config"]  # the estimator's constrained GLM (docs/retina.md)
    assert (glm["rank"], glm["spatial_downsample"], glm["temporal_basis"], glm["nonlinearity"]) == (2, 5, 6, "softplus")
    assert report["models"]["glm"]["n_parameters"] < 3 * 400  # 3 cells: 2 x (4x4 + 6) + bias + 20 history lags
    assert len(report["ceiling"]["cc_max"]) == 3
    for name in ("cc_vs_ceiling.png", "test_traces.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in out.rglob(".*") if p.is_file()] == [".neuromodels-report.json"]  # no temp files left

    from neuromodels.fitting.estimator import RetinaEstimator

    reloaded = RetinaEstimator.load(out / "ln" / "model.pt")
    assert reloaded.cells_ == report["cells"]

    # --json prints the same report
    code = main(
        [
            "fit",
            "--data",
            small_recording,
            "--model",
            "ln",
            "--epochs",
            "1",
            "--history",
            "10",
            "--param",
            "rank=1",
            "--no-progress",
            "--json",
            "--out",
            str(tmp_path / "again"),
        ]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["models"]) == {"ln"}


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--data", "/nonexistent/recording.nc"], "no such"),
        (["--data", "sample:retina", "--model", "lstm"], "--model"),
        (["--data", "sample:retina", "--epochs", "0"], "--epochs"),
        (["--data", "sample:retina", "--param", "cnn.channels"], "KEY=VALUE"),
        (["--data", "sample:ventral"], "stimulus"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, needle, tmp_path):
    result = run_cli("fit", *args, "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neuromodels: error: ") and needle in lines[0]


def test_a_model_that_rejects_a_parameter_is_a_one_line_error(small_recording, tmp_path, capsys):
    code = main(
        [
            "fit",
            "--data",
            small_recording,
            "--model",
            "ln",
            "--epochs",
            "1",
            "--param",
            "channels=[2,2]",
            "--no-progress",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "LNModel" in err and "channels" in err

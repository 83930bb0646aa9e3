"""``neuromodels ceiling`` and ``neuromodels score``: report folders, JSON output, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import xarray as xr

from neuromodels.analysis.ceilings import noise_ceiling
from neuromodels.analysis.features import extract_features
from neuromodels.analysis.predictivity import (
    CEILED_CONVENTIONS,
    PLS_MODES,
    REGRESSIONS,
    predictivity,
    synthetic_scoring_data,
)
from neuromodels.cli import main
from neuromodels.datasets import load, write_netcdf
from neuromodels.datasets.recording import assembly

N_STIMULI = 40
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _images() -> xr.DataArray:
    rng = np.random.default_rng(0)
    return xr.DataArray(
        rng.uniform(0, 1, (N_STIMULI, 6, 6)).astype(np.float32),
        dims=("stimulus", "y", "x"),
        coords={"stimulus_id": ("stimulus", [f"im{i:02d}" for i in range(N_STIMULI)])},
    )


def _model() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(48, 30))


def _neural(n_time_bins: int | None = None) -> xr.DataArray:
    """IT and V4 neuroids reading out the model's ReLU layer plus noise, 3 repetitions, object_name labels."""
    rng = np.random.default_rng(5)
    feats = extract_features(_model(), _images(), layers="1", progress=False).values.astype(np.float64)
    n_neuroids, reps = 8, 3
    signal = feats @ rng.normal(size=(feats.shape[1], n_neuroids))
    signal /= signal.std(axis=0)
    if n_time_bins:
        signal = signal[:, :, None] * np.linspace(0.2, 1.0, n_time_bins)
    values = np.concatenate([signal + rng.normal(scale=0.6, size=signal.shape) for _ in range(reps)])
    ids = [f"im{i:02d}" for i in range(N_STIMULI)]
    bins = (
        {}
        if not n_time_bins
        else {
            "time_bin_start_ms": np.arange(n_time_bins) * 20.0 + 70,
            "time_bin_end_ms": np.arange(n_time_bins) * 20.0 + 90,
        }
    )
    return assembly(
        values,
        stimulus_id=ids * reps,
        neuroid_id=[f"n{j}" for j in range(n_neuroids)],
        repetition=np.repeat(np.arange(reps), N_STIMULI),
        presentation_coords={"object_name": [f"obj{i % 4}" for i in range(N_STIMULI)] * reps},
        neuroid_coords={"region": ["IT"] * 5 + ["V4"] * 3},
        **bins,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("scoring")
    write_netcdf(_neural(), root / "neural.nc")
    write_netcdf(_neural(n_time_bins=3), root / "neural_time.nc")
    extract_features(_model(), _images(), layers=["1", "3"], out=root / "features", progress=False)
    return root


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neuromodels", *args], capture_output=True, text=True, timeout=300)


def _pngs(folder) -> list[str]:
    names = sorted(p.name for p in folder.glob("*.png"))
    for name in names:
        assert (folder / name).read_bytes()[:8] == PNG_MAGIC
    return names


@pytest.mark.parametrize("method", ["split_half", "cc_max", "fev", "oracle"])
def test_ceiling_writes_report_and_json(files, tmp_path, capsys, method):
    out = tmp_path / "report"
    assert main(["ceiling", str(files / "neural.nc"), "--method", method, "--json", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "report.json").read_text())
    assert printed == saved
    assert _pngs(out) == ["ceiling_distribution.png"] and saved["figures"] == ["ceiling_distribution.png"]
    assert saved["parameters"]["method"] == method and set(saved["regions"]) == {"IT", "V4"}
    neural = load(files / "neural.nc")
    expected = noise_ceiling(neural.isel(neuroid=slice(0, 5)), method=method)
    it = saved["regions"]["IT"]
    assert it["n_neuroids"] == 5 and it["neuroid_id"] == [f"n{j}" for j in range(5)]
    assert it["ceiling"] == pytest.approx(float(expected["ceiling"]), abs=1e-12)
    np.testing.assert_allclose(it["ceiling_per_neuroid"], expected["ceiling_per_neuroid"].values, atol=1e-12)


def test_score_report_numbers_equal_the_python_api(files, tmp_path, capsys):
    out = tmp_path / "score"
    feats = [str(files / "features" / "1.nc"), str(files / "features" / "3.nc")]
    code = main(
        [
            "score",
            "--features",
            *feats,
            "--neural",
            str(files / "neural.nc"),
            "--splits",
            "4",
            "--json",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report == json.loads((out / "report.json").read_text())
    assert _pngs(out) == ["ceiled_scores.png", "ceiling_distribution.png", "r_vs_ceiling.png", "scores.png"]
    assert report["parameters"]["n_splits"] == 4 and report["settings"]["regression"] == "pls"
    neural = load(files / "neural.nc")
    v4 = neural.isel(neuroid=slice(5, 8))
    layer3 = xr.open_dataarray(files / "features" / "3.nc").load()
    expected = predictivity(layer3, v4, n_splits=4, ceiling=noise_ceiling(v4))
    entry = report["regions"]["V4"]["layers"]["3"]
    assert entry["score"] == pytest.approx(float(expected["score"]), abs=1e-12)
    assert entry["error"] == pytest.approx(float(expected["error"]), abs=1e-12)
    assert entry["ceiled_score"] == pytest.approx(float(expected["ceiled_score"]), abs=1e-12)
    np.testing.assert_allclose(entry["r_per_neuroid"], expected["r_per_neuroid"].values, atol=1e-12)
    assert np.asarray(entry["r_per_split"]).shape == (4, 3)
    assert entry["n_features"] == 30
    assert report["regions"]["V4"]["ceiling"]["ceiling"] == pytest.approx(float(noise_ceiling(v4)["ceiling"]))
    # layer "1" is what the neurons read out: it must score higher than the random linear layer "3"
    assert report["regions"]["IT"]["layers"]["1"]["score"] > report["regions"]["IT"]["layers"]["3"]["score"]


@pytest.mark.parametrize("ids", ["text", "integer"])
def test_score_equals_the_python_api_with_default_settings(tmp_path, capsys, ids):
    """The same data through netCDF and the command (defaults: PLS as Brain-Score runs it, 10 stratified splits,
    split-half ceiling) and through predictivity(): the same numbers; with integer ids and object labels, whose
    order the file must keep (tests/analysis/test_predictivity.py checks these numbers against Brain-Score)."""
    neural, features = synthetic_scoring_data(
        n_objects=16, images_per_object=10, n_neuroids=40, n_repetitions=6, n_features=200
    )
    if ids == "integer":
        number = np.vectorize(lambda text: int(str(text)[3:]))
        neural = neural.assign_coords(
            stimulus_id=("presentation", number(neural["stimulus_id"].values)),
            object_name=("presentation", number(neural["object_name"].values)),
        )
        features = features.assign_coords(stimulus_id=("presentation", number(features["stimulus_id"].values)))
    write_netcdf(neural, tmp_path / "neural.nc")
    write_netcdf(features.assign_attrs(layer="layer"), tmp_path / "layer.nc")
    for pls, flags in [("brainscore", []), ("converged", ["--pls", "converged"])]:
        out = tmp_path / f"report-{pls}"
        assert (
            main(
                [
                    "score",
                    "--features",
                    str(tmp_path / "layer.nc"),
                    "--neural",
                    str(tmp_path / "neural.nc"),
                    *flags,
                    "--json",
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        report = json.loads(capsys.readouterr().out)
        expected = predictivity(features, neural, ceiling="split_half", pls=pls)
        entry = report["regions"]["IT"]["layers"]["layer"]
        assert report["parameters"]["pls"] == pls and report["settings"]["pls_mode"] == pls
        assert entry["score"] == pytest.approx(float(expected["score"]), rel=0, abs=1e-12)
        assert entry["error"] == pytest.approx(float(expected["error"]), rel=0, abs=1e-12)
        assert entry["ceiled_score"] == pytest.approx(float(expected["ceiled_score"]), rel=0, abs=1e-12)
        assert report["regions"]["IT"]["ceiling"]["ceiling"] == pytest.approx(float(expected["ceiling"]), abs=1e-12)
        np.testing.assert_allclose(entry["r_per_split"], expected["r"].values, rtol=0, atol=1e-12)


def test_command_choices_are_the_api_choices():
    from neuromodels.commands import scoring

    assert scoring.REGRESSIONS == REGRESSIONS and scoring.PLS_MODES == tuple(PLS_MODES)
    assert scoring.CEILED == CEILED_CONVENTIONS


def test_score_without_ceiling_and_time_resolved(files, tmp_path, capsys):
    out = tmp_path / "plain"
    assert (
        main(
            [
                "score",
                "--features",
                str(files / "features" / "1.nc"),
                "--neural",
                str(files / "neural_time.nc"),
                "--ceiling",
                "none",
                "--regression",
                "ridge",
                "--splits",
                "3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "IT 1: r" in text and f"report: {out}" in text
    report = json.loads((out / "report.json").read_text())
    assert _pngs(out) == ["scores.png"]
    entry = report["regions"]["IT"]["layers"]["1"]
    assert len(entry["score"]) == 3 and "ceiled_score" not in entry
    assert report["regions"]["IT"]["time_bin_start_ms"] == [70.0, 90.0, 110.0]
    assert report["regions"]["IT"]["ceiling"] is None
    # the signal grows over time bins: the last bin is predicted better than the first
    assert entry["score"][2] > entry["score"][0]


def test_rerun_replaces_a_report_but_never_a_foreign_folder(files, tmp_path):
    out = tmp_path / "again"
    for _ in range(2):
        assert main(["ceiling", str(files / "neural.nc"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        ".neuromodels-report.json",
        "ceiling_distribution.png",
        "report.json",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["again"]  # no temporary folders left behind
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    assert main(["ceiling", str(files / "neural.nc"), "--out", str(foreign)]) == 2
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_default_report_folder_under_reports(files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["ceiling", str(files / "neural.nc")]) == 0
    (folder,) = (tmp_path / "reports").iterdir()
    assert folder.name.startswith("ceiling-") and (folder / "report.json").is_file()


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neuromodels: error: ")
    return lines[0]


def test_bad_files_exit_2_with_one_line(files, tmp_path):
    garbage = tmp_path / "garbage.nc"
    garbage.write_bytes(b"not a netcdf file at all")
    line = _one_line_error(
        _run("score", "--features", str(garbage), "--neural", str(files / "neural.nc"), "--out", str(tmp_path / "r1"))
    )
    assert str(garbage) in line
    line = _one_line_error(_run("ceiling", str(tmp_path / "missing.nc"), "--out", str(tmp_path / "r2")))
    assert "missing.nc" in line and "no such" in line
    wrong = tmp_path / "wrong_dims.nc"
    xr.DataArray(np.zeros((3, 2)), dims=("image", "unit"), name="features").to_netcdf(wrong)
    line = _one_line_error(
        _run("score", "--features", str(wrong), "--neural", str(files / "neural.nc"), "--out", str(tmp_path / "r3"))
    )
    assert str(wrong) in line and "('presentation', 'feature'" in line
    assert not any(p.name.startswith("r") for p in tmp_path.iterdir())  # no report for a failed run


def test_mismatched_stimuli_and_bad_options_exit_2(files, tmp_path):
    other = tmp_path / "other.nc"
    feats = xr.open_dataarray(files / "features" / "3.nc").load()
    feats.assign_coords(stimulus_id=("presentation", [f"x{i}" for i in range(N_STIMULI)])).to_netcdf(other)
    assert (
        main(["score", "--features", str(other), "--neural", str(files / "neural.nc"), "--out", str(tmp_path / "r")])
        == 2
    )
    assert (
        main(
            [
                "score",
                "--features",
                str(files / "features" / "3.nc"),
                "--neural",
                str(files / "neural.nc"),
                "--splits",
                "1",
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    assert not (tmp_path / "r").exists()

"""``neuromodels continual``: a report folder from split 8x8 digits, exit 2 and nothing written for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from neuromodels.cli import main


def test_continual_writes_the_report_folder_and_resumes(tmp_path, capsys):
    out = tmp_path / "report"
    args = [
        "continual",
        "--benchmark",
        "split-digits",
        "--method",
        "si,finetune",
        "--epochs",
        "1",
        "--hidden",
        "16",
        "--seeds",
        "0,1",
        "--no-progress",
        "--json",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    report = json.loads((out / "report.json").read_text())
    assert printed["summary"] == report["summary"]
    assert set(report["runs"]) == {"si", "finetune"} and len(report["runs"]["si"]) == 2
    matrix = report["runs"]["si"][0]["accuracy"]
    assert len(matrix) == 5 and all(len(row) == 5 for row in matrix)
    assert report["summary"]["si"]["average_accuracy"] == pytest.approx(
        sum(sum(r["accuracy"][-1]) / 5 for r in report["runs"]["si"]) / 2
    )
    assert report["settings"]["c"] == [1.0] and report["settings"]["xi"] == 1e-3  # the paper's split-MNIST values
    for name in ("accuracy_si.png", "accuracy_finetune.png", "importance_si.png", "task_accuracies.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert (out / "checkpoints" / "si-seed1" / "sequence.pt").is_file()
    # the same command again resumes from the finished checkpoints: identical numbers
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["runs"]["si"][1]["accuracy"] == report["runs"]["si"][1]["accuracy"]
    # other settings on the same folder: refused, exit 2, report unchanged
    before = (out / "report.json").read_bytes()
    assert main([*args[:-2], "--c", "0.5", "--out", str(out)]) == 2
    assert "written with regulariser.c=1.0, this run has regulariser.c=0.5" in capsys.readouterr().err
    assert (out / "report.json").read_bytes() == before


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--c", "-1"], "--c must be >= 0"),
        (["--xi", "0"], "--xi must be > 0"),
        (["--method", "si,lwf"], "method"),
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--seeds", "a"], "--seeds"),
        (["--seeds", "0,-1"], "--seeds must be >= 0"),
        (["--hidden", "64,0"], "--hidden widths must be >= 1"),
    ],
)
def test_bad_input_exits_2_without_traceback_or_output(tmp_path, extra, message):
    out = tmp_path / "report"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "neuromodels",
            "continual",
            "--benchmark",
            "split-digits",
            "--epochs",
            "1",
            "--out",
            str(out),
            *extra,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()

"""The neuromodels command: one-line errors with exit code 2, and a fast start."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from neuromodels.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neuromodels", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "make_path, needle",
    [
        (lambda tmp: tmp / "missing.h5", "no such"),
        (lambda tmp: tmp, "a directory"),
        (lambda tmp: (tmp / "notes.xyz").write_text("hello") and tmp / "notes.xyz", "'.xyz'"),
    ],
)
def test_bad_paths_exit_2_with_one_line(tmp_path, make_path, needle):
    path = make_path(tmp_path)
    result = run_cli("data", "inspect", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neuromodels: error: ")
    assert str(path) in lines[0] and needle in lines[0]


def test_corrupt_file_exits_2_naming_the_file(tmp_path):
    bad = tmp_path / "broken.nwb"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    result = run_cli("data", "inspect", str(bad))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(bad) in result.stderr


def test_convert_failure_leaves_no_output(tmp_path):
    out = tmp_path / "out.nc"
    assert main(["data", "convert", str(tmp_path / "missing.nwb"), str(out)]) == 2
    assert list(tmp_path.iterdir()) == []


def test_usage_errors_exit_2():
    result = run_cli("data")
    assert result.returncode == 2 and "usage:" in result.stderr


def test_import_does_not_pull_heavy_modules():
    code = (
        "import sys, neuromodels.cli, neuromodels.datasets;"
        "heavy = [m for m in ('torch', 'pynwb', 'neo', 'h5py', 'dask', 'matplotlib') if m in sys.modules];"
        "print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_inspect_json_of_sample_ventral(capsys):
    assert main(["data", "inspect", "sample:ventral", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "assembly" and info["source"] == "sample:ventral"
    assert info["repeats"]["min"] >= 2 and info["n_neuroids"] > 0


def test_reader_options_pass_through_and_unknown_ones_are_named(shared_data, capsys):
    nwb = shared_data / "nwb-fixtures" / "pynapple_sub-4_ses-4_ecephys+image.nwb"
    assert main(["data", "inspect", str(nwb), "-o", "by=time", "--bin-size", "0.1", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "recording" and info["n_cells"] == 35 and info["frame_rate_hz"] == 10.0
    assert main(["data", "inspect", str(nwb), "-o", "bogus=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "has no option 'bogus'" in err and "bin_size" in err and len(err.splitlines()) == 1

"""``neuromodels theory phase-diagram|depth-scales`` (and the delegation of spectrum/trajectory)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import xarray as xr

from neuromodels.commands import theory
from neuromodels.errors import ConfigError


def _run(argv):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    theory.register(sub)
    args = parser.parse_args(argv)
    return args.handler(args)


def test_depth_scales_json_and_files(tmp_path, capsys):
    out = tmp_path / "ds"
    assert (
        _run(["theory", "depth-scales", "--sigma-w2", "1.5,2.5", "--sigma-b2", "0.05", "--out", str(out), "--json"])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    rows = {row["sigma_w2"]: row for row in report["rows"]}
    assert rows[1.5]["xi_c"] == pytest.approx(15.8, abs=0.05) and rows[1.5]["phase"] == "ordered"
    assert rows[2.5]["c_star"] == pytest.approx(0.447, abs=5e-4) and rows[2.5]["phase"] == "chaotic"
    assert report["critical_sigma_w2"] == pytest.approx(1.76095, abs=1e-5)
    assert report["arguments"]["phi"] == "tanh"
    saved = json.loads((out / "report.json").read_text())
    assert saved == report
    ds = xr.open_dataset(out / "depth_scales.nc")
    np.testing.assert_allclose(ds["xi_c"].values[0], 15.79, atol=0.01)
    assert "depth-scales" in ds.attrs["command"]
    assert (out / "depth_scales.png").stat().st_size > 1000


def test_phase_diagram_writes_netcdf_pngs_and_parameters(tmp_path, capsys):
    out = tmp_path / "pd"
    assert (
        _run(
            [
                "theory",
                "phase-diagram",
                "--phi",
                "erf",
                "--sigma-w2",
                "0.5:3:11",
                "--sigma-b2",
                "0:0.2:6",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "critical line" in text
    ds = xr.open_dataset(out / "phase_diagram.nc")
    assert ds["chi_1"].shape == (11, 6) and ds.attrs["phi"] == "erf"
    assert ds["critical_sigma_w2"].values[0] == pytest.approx(np.pi / 4, rel=1e-9)
    for name in ("chi_1.png", "xi_c.png", "xi_q.png", "report.json"):
        assert (out / name).exists()
    report = json.loads((out / "report.json").read_text())
    assert report["grid"]["sigma_w2"] == [0.5, 3.0, 11]


@pytest.mark.parametrize(
    "argv, match",
    [
        (["theory", "phase-diagram", "--sigma-w2", "1:oops:3"], "--sigma-w2"),
        (["theory", "phase-diagram", "--sigma-b2", "0.3:0.1:4"], "--sigma-b2"),
        (["theory", "phase-diagram", "--sigma-b2=-1,0.1"], "sigma-b2"),
        (["theory", "depth-scales", "--rho", "1.5"], "--rho"),
        (["theory", "depth-scales", "--sigma-w2", "0"], "sigma-w2"),
    ],
)
def test_bad_arguments_raise_config_error(tmp_path, argv, match):
    with pytest.raises(ConfigError, match=match):
        _run([*argv, "--out", str(tmp_path / "x")])


def test_cli_main_reports_one_line_error(tmp_path, capsys):
    from neuromodels import cli

    if "neuromodels.commands.theory" not in cli.COMMANDS:
        pytest.skip("theory is not registered in neuromodels.cli.COMMANDS yet")
    assert cli.main(["theory", "depth-scales", "--rho", "2", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neuromodels: error:") and "Traceback" not in err


def test_spectrum_and_trajectory_options_are_parsed():
    parser = argparse.ArgumentParser()
    theory.register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "theory",
            "spectrum",
            "--phi",
            "tanh",
            "--depth",
            "8",
            "--q-star",
            "0.01",
            "--weights",
            "gaussian",
            "--width",
            "100",
            "--points",
            "50",
        ]
    )
    assert (args.depth, args.q_star, args.weights, args.width, args.points) == (8, 0.01, "gaussian", 100, 50)
    args = parser.parse_args(["theory", "trajectory", "--depth", "5", "--sigma-w2", "4", "--sigma-b2", "0.1"])
    assert (args.depth, args.sigma_w2, args.sigma_b2) == (5, 4.0, 0.1)
    with pytest.raises(SystemExit):
        parser.parse_args(["theory", "spectrum", "--weights", "uniform"])


def test_register_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, argparse; from neuromodels.commands import theory; p = argparse.ArgumentParser(); "
        "theory.register(p.add_subparsers()); print('torch' in sys.modules, 'xarray' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]

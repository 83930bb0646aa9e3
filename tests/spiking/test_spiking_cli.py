"""``neuromodels simulate`` and ``neuromodels train-snn`` through their own parser (works before registration)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import xarray as xr

from neuromodels.commands import spiking
from neuromodels.errors import NeuromodelsError


def _main(argv: list[str]) -> int:
    """What ``neuromodels.cli.main`` does, with only this module registered."""
    parser = argparse.ArgumentParser(prog="neuromodels")
    spiking.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except NeuromodelsError as err:
        print(f"neuromodels: error: {err}", file=__import__("sys").stderr)
        return 2


def _small_config(tmp_path, extra: str = "") -> str:
    path = tmp_path / "circuit.toml"
    path.write_text(
        "[simulation]\nduration = 0.3\ntrials = 2\n[input]\nn = 300\nrate = 20.0\n"
        "[network]\nlayers = [60, 20]\nrecurrent = [false, true]\nweight_mean = 1.0\n"
        "[neuron]\nrefractory = 0.002\n" + extra
    )
    return str(path)


def test_cli_module_imports_without_torch():
    import subprocess
    import sys

    code = "import sys, neuromodels.commands.spiking; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_simulate_writes_netcdf_figures_and_report(tmp_path, capsys):
    out = tmp_path / "sim"
    assert _main(["simulate", "--config", _small_config(tmp_path), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    ds = xr.open_dataset(out / "simulation.nc")
    assert ds["spikes"].dims == ("trial", "time", "neuron") and ds.sizes["neuron"] == 80 and ds.sizes["time"] == 300
    assert ds.attrs["neuron.refractory"] == 0.002 and list(ds.attrs["network.layers"]) == [60, 20]
    assert ds["voltage"].shape == ds["spikes"].shape
    np.testing.assert_allclose(ds["rate"].values, ds["spikes"].sum(("trial", "time")).values / 2 / 0.3)
    assert report["n_spikes"] == int(ds["spikes"].sum()) > 0
    assert (out / "raster.png").stat().st_size > 1000 and (out / "rates.png").stat().st_size > 1000
    ds.close()


def test_simulate_backends_agree_spike_for_spike(tmp_path):
    pytest.importorskip("brian2")
    config = _small_config(tmp_path)
    assert _main(["simulate", "--config", config, "--out", str(tmp_path / "a")]) == 0
    assert _main(["simulate", "--config", config, "--backend", "brian2", "--out", str(tmp_path / "b")]) == 0
    with xr.open_dataset(tmp_path / "a" / "simulation.nc") as a, xr.open_dataset(tmp_path / "b" / "simulation.nc") as b:
        assert int(a["spikes"].sum()) > 500
        # exact: 0/1 spikes of two simulators in float64, the claim itself (as tests/spiking/test_spiking_brian2.py)
        np.testing.assert_array_equal(a["spikes"].values, b["spikes"].values)
        np.testing.assert_allclose(a["voltage"].values, b["voltage"].values, atol=1e-12)


@pytest.mark.parametrize(
    "extra,key",
    [
        ("[simulation]\n", "simulation"),
    ],
)
def test_simulate_duplicate_table_is_a_data_format_error(tmp_path, capsys, extra, key):
    assert _main(["simulate", "--config", _small_config(tmp_path, extra), "--out", str(tmp_path / "x")]) == 2
    assert "circuit.toml" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text,key",
    [
        ("[simulation]\ndt = -1.0\n", "simulation.dt"),
        ("[neuron]\ntau_mem = 0.0\n", "neuron.tau_mem"),
        ("[network]\nlayer = [3]\n", "network.layer"),
        ("[input]\nrate = 'fast'\n", "input.rate"),
        ("[simulation]\nmethod = 'rk4'\n", "simulation.method"),
    ],
)
def test_bad_config_names_the_key_and_exits_2(tmp_path, capsys, text, key):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert _main(["simulate", "--config", str(path), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert key in err and "Traceback" not in err
    assert not (tmp_path / "x" / "simulation.nc").exists()


def test_unknown_example_exits_2(tmp_path, capsys):
    assert _main(["simulate", "--example", "nope", "--out", str(tmp_path)]) == 2
    assert "feedforward" in capsys.readouterr().err


def test_train_snn_writes_loss_curve(tmp_path, capsys):
    out = tmp_path / "train"
    assert _main(["train-snn", "--task", "timing", "--trials", "4", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    losses = json.loads((out / "loss.json").read_text())["loss"]
    assert len(losses) == 4 and report["initial_loss"] == losses[0] > 0
    assert (out / "loss.png").stat().st_size > 1000 and (out / "raster.png").exists()
    assert _main(["train-snn", "--task", "timing", "--method", "bptt", "--feedback", "random", "--out", str(out)]) == 2


def test_train_snn_runs_the_paper_preset(tmp_path, capsys):
    out = tmp_path / "paper"
    argv = [
        "train-snn",
        "--task",
        "xor",
        "--feedback",
        "random",
        "--preset",
        "paper",
        "--trials",
        "2",
        "--out",
        str(out),
    ]
    assert _main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["preset"] == "paper" and report["dt"] == 1e-4 and report["trials"] == 2


def test_train_snn_says_whether_the_loss_fell_or_rose():
    from neuromodels.commands.spiking import loss_change

    assert loss_change(13.6) == "13.6x lower"
    assert loss_change(0.5) == "2.0x higher: training did not help"
    assert loss_change(1.0) == "1.0x lower" and loss_change(float("inf")) == "infx lower"

"""`neuromodels train-convrnn` through its own parser (works before and after the lead registers the module)."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from neuromodels.errors import ConfigError


def _cli(args: list[str]) -> int:
    from neuromodels.commands import convrnn

    parser = argparse.ArgumentParser()
    convrnn.register(parser.add_subparsers())
    parsed = parser.parse_args(args)
    return parsed.handler(parsed)


def test_train_convrnn_writes_report_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "train-convrnn",
        "--data",
        "digits",
        "--channels",
        "4,8",
        "--feedback",
        "1:0",
        "--steps",
        "4",
        "--image-steps",
        "2",
        "--epochs",
        "2",
        "--lr",
        "0.01",
        "--out",
        str(out),
        "--no-progress",
        "--json",
    ]
    assert _cli(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["test_accuracy"] > 0.3 and len(report["history"]["epoch"]) == 2
    assert report["config"]["feedback"] == [[1, 0]]
    assert {"report.json", "model.pt", "learning_curve.png", "training"} <= {p.name for p in out.iterdir()}
    saved = torch.load(out / "model.pt", weights_only=False)
    from neuromodels.convrnn import ConvRNN

    model = ConvRNN.from_config(saved["config"])
    model.load_state_dict(saved["state_dict"])
    # a rerun resumes from the finished checkpoint: no further training, the same accuracy
    assert _cli(args) == 0
    assert json.loads(capsys.readouterr().out)["test_accuracy"] == report["test_accuracy"]


def test_train_convrnn_rejects_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="SOURCE:TARGET"):
        _cli(["train-convrnn", "--feedback", "1-0", "--out", str(tmp_path)])
    with pytest.raises(ConfigError, match="pools"):
        _cli(["train-convrnn", "--channels", "4,8", "--pools", "2", "--out", str(tmp_path)])
    with pytest.raises(ConfigError, match="cell must be one of"):
        _cli(["train-convrnn", "--cell", "transformer", "--out", str(tmp_path)])


def test_registering_the_commands_imports_neither_torch_nor_optuna():
    import subprocess
    import sys

    code = (
        "import argparse, sys; from neuromodels.commands import convrnn; "
        "convrnn.register(argparse.ArgumentParser().add_subparsers()); "
        "print('torch' in sys.modules, 'optuna' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


def test_train_convrnn_under_torchrun_trains_data_parallel_and_rank_0_alone_reports(tmp_path):
    import os
    import subprocess
    import sys

    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available")
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        "-m",
        "neuromodels",
        "train-convrnn",
        "--data",
        "digits",
        "--channels",
        "4",
        "--steps",
        "2",
        "--image-steps",
        "1",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--out",
        str(out),
        "--no-progress",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("test accuracy") == 1  # one rank prints
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["world_size"] == 2
    assert sorted(p.name for p in out.iterdir()) == [
        ".neuromodels-report.json",
        "learning_curve.png",
        "model.pt",
        "report.json",
        "training",
    ]
    # the two processes trained one model together (DDP): the checkpoint records the world size
    state = torch.load(out / "training" / "checkpoint.pt", weights_only=True)
    assert state["settings"]["world_size"] == 2 and len(state["rng_ranks"]) == 2

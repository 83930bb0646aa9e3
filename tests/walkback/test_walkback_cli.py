"""``neuromodels walkback train|sample``: report folders, resume, clear errors with exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuromodels.cli import main


def _train(tmp_path, *extra):
    return main(
        [
            "walkback",
            "train",
            "--data",
            "spiral",
            "--n",
            "400",
            "--epochs",
            "1",
            "--steps",
            "4",
            "--hidden",
            "16",
            "--batch-size",
            "100",
            "--diffusion-epochs",
            "1",
            "--out",
            str(tmp_path / "run"),
            *extra,
        ]
    )


def test_train_then_sample_write_report_folders(tmp_path, capsys):
    assert _train(tmp_path, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["schedule"] == pytest.approx([1.0, 1.1, 1.21, 1.331])
    assert set(report["comparison"]) >= {"reference", "walkback", "walkback_3x", "gaussian", "diffusion"}
    assert np.isfinite(report["held_out_bound"])
    run = tmp_path / "run"
    for name in ("model.pt", "checkpoint.pt", "bound.png", "cooling.png", "report.json"):
        assert (run / name).is_file()
    assert (
        main(
            [
                "walkback",
                "sample",
                "--model",
                str(run / "model.pt"),
                "--n",
                "10",
                "--extra-steps",
                "3",
                "--out",
                str(tmp_path / "samples"),
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["chain_length"] == 4 + 3
    assert np.load(tmp_path / "samples" / "samples.npy").shape == (10, 2)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--temperature-factor", "1.0"], "--temperature-factor"),
        (["--steps", "0"], "--steps"),
        (["--ema", "1.0"], "--ema"),
    ],
)
def test_bad_settings_exit_2_and_write_nothing(tmp_path, capsys, args, needle):
    assert _train(tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_bad_data_files_exit_2(tmp_path, capsys):
    nan = np.zeros((20, 2))
    nan[4, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "rank.npy", np.zeros(20))
    for name, needle in (("nan.npy", "NaN"), ("rank.npy", "2-d")):
        code = main(["walkback", "train", "--data", str(tmp_path / name), "--out", str(tmp_path / name[:-4])])
        assert code == 2
        err = capsys.readouterr().err
        assert needle in err and name in err
        assert not (tmp_path / name[:-4]).exists()


def test_sample_refuses_a_model_of_another_kind(tmp_path, capsys):
    from neuromodels.fitting.checkpoint import save_checkpoint

    save_checkpoint({"format": "neuromodels.fit/1"}, tmp_path / "other.pt")
    code = main(["walkback", "sample", "--model", str(tmp_path / "other.pt"), "--out", str(tmp_path / "s")])
    assert code == 2
    assert "not a Variational Walkback model" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_image_data_train_and_sample(tmp_path, capsys):
    code = main(
        [
            "walkback",
            "train",
            "--data",
            "digits",
            "--epochs",
            "1",
            "--steps",
            "2",
            "--hidden",
            "16",
            "--diffusion-epochs",
            "1",
            "--out",
            str(tmp_path / "digits"),
            "--json",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert {"parzen_log_likelihood", "nn_distance"} <= set(report["comparison"]["walkback"])
    assert (
        main(
            [
                "walkback",
                "sample",
                "--model",
                str(tmp_path / "digits" / "model.pt"),
                "--n",
                "3",
                "--out",
                str(tmp_path / "s"),
            ]
        )
        == 0
    )
    assert np.load(tmp_path / "s" / "samples.npy").shape == (3, 64)
    assert (tmp_path / "s" / "samples.png").is_file()


def test_train_with_a_weight_average_keeps_it_in_the_checkpoint(tmp_path, capsys):
    import torch

    assert _train(tmp_path, "--ema", "0.9", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["settings"]["ema"] == 0.9
    checkpoint = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert checkpoint["settings"]["ema"] == 0.9 and int(checkpoint["average"]["steps"]) == 4 * 4  # 4 batches x 4 steps
    # model.pt holds the averaged weights, not the last ones
    model = torch.load(tmp_path / "run" / "model.pt", weights_only=True)["state"]
    assert torch.equal(model["mu_head.weight"], checkpoint["average"]["weights"]["mu_head.weight"])
    assert not torch.equal(model["mu_head.weight"], checkpoint["model"]["mu_head.weight"])

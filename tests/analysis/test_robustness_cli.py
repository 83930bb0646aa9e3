"""``neuromodels robustness``: report folders, the masking verdict, and bad input (exit 2, nothing written)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from neuromodels.cli import main
from neuromodels.commands.robustness import MODEL_FORMAT


@pytest.fixture()
def model_and_data(tmp_path):
    from neuromodels.classifiers import make_classifier

    torch.manual_seed(0)
    model = make_classifier("mlp")
    path = tmp_path / "model.pt"
    torch.save(
        {
            "format": MODEL_FORMAT,
            "kind": "mlp",
            "nonlinearity": "relu",
            "saturation": 0.0,
            "weights": model.state_dict(),
        },
        path,
    )
    generator = np.random.default_rng(0)
    x = generator.uniform(0, 1, (12, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).argmax(1).numpy()  # labels the model gets right
    data = tmp_path / "data.npz"
    np.savez(data, x=x, y=y)
    return path, data, x, y


def test_robustness_command_writes_a_report_folder(model_and_data, tmp_path, capsys):
    model, data, _, _ = model_and_data
    out = tmp_path / "report"
    code = main(
        [
            "robustness",
            "--model",
            str(model),
            "--data",
            str(data),
            "--attacks",
            "fgsm,pgd,spsa,lbfgs",
            "--eps",
            "0.3,0.1",
            "--steps",
            "3",
            "--no-progress",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "report.json").read_text())
    assert printed == saved
    assert saved["eps"] == [0.1, 0.3]
    assert saved["clean_accuracy"] == 1.0
    assert set(saved["accuracy"]) == {"fgsm", "pgd", "spsa", "lbfgs"}
    assert 0 <= saved["lbfgs"]["success_rate"] <= 1
    assert isinstance(saved["gradient_masking_suspected"], bool)
    assert set(saved["saturated_fraction"]) == {"net.2", "net.4"}
    assert set(saved["weight_kurtosis"]) == {"net.1", "net.3", "net.5"}
    for name in ("accuracy.png", "examples.png"):
        assert (out / name).stat().st_size > 0


@pytest.mark.parametrize(
    "change, message",
    [
        (["--eps", "-0.1"], "--eps values must be >= 0"),
        (["--attacks", "fgsm,deepfool"], "unknown attack"),
        (["--eps", "a,b"], "comma list of numbers"),
    ],
)
def test_bad_options_exit_2_without_traceback_and_write_nothing(model_and_data, tmp_path, capsys, change, message):
    model, data, _, _ = model_and_data
    out = tmp_path / "report"
    argv = ["robustness", "--model", str(model), "--data", str(data), "--out", str(out), *change]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_bad_data_and_models_exit_2(model_and_data, tmp_path, capsys):
    model, data, x, y = model_and_data
    out = tmp_path / "report"
    nan = x.copy()
    nan[0, 0, 0, 0] = np.nan
    outside = x * 2
    cases = []
    for name, images in (("nan", nan), ("outside", outside)):
        path = tmp_path / f"{name}.npz"
        np.savez(path, x=images, y=y)
        cases.append((["--model", str(model), "--data", str(path)], "inputs"))
    scalar = torch.jit.script(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 1), torch.nn.Flatten(0)))
    scripted = tmp_path / "scalar.pt"
    scalar.save(str(scripted))
    cases.append((["--model", str(scripted), "--data", str(data)], "not a classifier"))
    cases.append((["--model", str(tmp_path / "missing.pt"), "--data", str(data)], "no such file"))
    for args, message in cases:
        assert main(["robustness", *args, "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
        assert not out.exists()


def test_train_saturating_mlp_on_mnist(shared_data, tmp_path, capsys):
    out = tmp_path / "trained"
    code = main(
        [
            "robustness",
            "--train",
            "mlp",
            "--saturation",
            "0.01",
            "--epochs",
            "1",
            "--n-train",
            "400",
            "--n-attack",
            "20",
            "--attacks",
            "fgsm",
            "--eps",
            "0.1",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["saturation"] == 0.01
    assert (out / "model.pt").exists()
    capsys.readouterr()
    # the saved model reloads and gives the same clean accuracy
    code = main(
        [
            "robustness",
            "--model",
            str(out / "model.pt"),
            "--n-attack",
            "20",
            "--attacks",
            "fgsm",
            "--eps",
            "0.1",
            "--no-progress",
            "--out",
            str(tmp_path / "again"),
            "--json",
        ]
    )
    assert code == 0
    again = json.loads(capsys.readouterr().out)
    assert again["clean_accuracy"] == report["clean_accuracy"]

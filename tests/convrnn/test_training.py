"""Training ConvRNNs through neuromodels.fitting.fit on scikit-learn digits."""

from __future__ import annotations

import io
import sys

import pytest
import torch

from neuromodels.convrnn import ConvRNN, LayerSpec, count_parameters
from neuromodels.errors import ConfigError
from neuromodels.fitting.classification import accuracy, image_task, match_width, train_classifier

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    return image_task("digits", n_valid=300, n_test=300, seed=0)


def _model(seed=0):
    torch.manual_seed(seed)
    return ConvRNN([LayerSpec(8, 3, 2), LayerSpec(16, 3, 2)], cell="rgc", feedback=[(1, 0)], steps=4, image_steps=2)


def test_image_task_splits_and_standardises(digits):
    x, y = digits["train"]
    assert x.shape == (1197, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert abs(float(x.mean())) < 1e-5 and abs(float(x.std()) - 1) < 1e-4
    assert sorted(set(y.tolist())) == list(range(10))
    with pytest.raises(ConfigError, match="cannot split"):
        image_task("digits", n_train=2000)
    with pytest.raises(ConfigError, match="digits' or 'mnist"):
        image_task("cifar")


def test_rgc_convrnn_learns_digits_deterministically(digits):
    model = _model()
    before = accuracy(model, digits["valid"])
    history = train_classifier(model, digits["train"], digits["valid"], epochs=3, lr=1e-2, seed=0)
    assert len(history["valid_accuracy"]) == 3
    after = accuracy(model, digits["test"])
    assert before < 0.3 and after > 0.8, (before, after)
    again = _model()
    train_classifier(again, digits["train"], digits["valid"], epochs=3, lr=1e-2, seed=0)
    # exact: a seeded rerun on the same machine repeats every operation in the same order
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_report_callback_can_stop_training(digits):
    seen = []
    history = train_classifier(
        _model(),
        digits["train"],
        digits["valid"],
        epochs=5,
        lr=1e-2,
        report=lambda epoch, acc: seen.append((epoch, acc)) or epoch == 2,
    )
    assert [e for e, _ in seen] == [1, 2] and len(history) == 2
    assert history["valid_accuracy"] == [a for _, a in seen]


def test_match_width_reaches_the_parameter_budget():
    target = count_parameters(ConvRNN([LayerSpec(8), LayerSpec(16)], cell="rgc"))
    model, width = match_width(
        lambda w: ConvRNN([LayerSpec(max(1, round(8 * w))), LayerSpec(max(1, round(16 * w)))], cell="lstm"), target
    )
    assert abs(count_parameters(model) - target) / target < 0.05 and width < 1


def test_train_classifier_shows_progress_by_default_on_a_terminal(digits, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    x, y = digits["train"]
    train_classifier(_model(), (x[:128], y[:128]), digits["valid"], epochs=1)
    assert "epochs: 100%" in sys.stderr.getvalue()

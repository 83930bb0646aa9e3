"""The training loop: loss goes down, runs repeat bit for bit, checkpoints are atomic, resume is exact."""

from __future__ import annotations

import io
import math
import sys

import numpy as np
import pytest
import torch
import xarray as xr

from neuromodels.fitting import checkpoint as checkpoint_module
from neuromodels.fitting.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from neuromodels.fitting.loop import History, epoch_order, fit
from neuromodels.fitting.losses import L2Penalty, Regulariser
from neuromodels.fitting.retina_data import RetinaDataset, train_valid_split
from neuromodels.retina import RetinaCNN


def _tiny_retina(seed: int = 0):
    """A 12x12 movie whose two cells respond to rectified local contrast (so a CNN can learn them)."""
    rng = np.random.default_rng(seed)
    movie = rng.standard_normal((1500, 12, 12)).astype(np.float32)
    drive = np.stack(
        [np.maximum(movie[:, 3:6, 3:6].mean((1, 2)), 0), np.maximum(-movie[:, 6:9, 6:9].mean((1, 2)), 0)], 1
    )
    drive[1:] += 0.5 * drive[:-1]
    counts = rng.poisson(0.3 + 2.0 * drive).astype(np.float32)
    ds = RetinaDataset(movie, counts, history=4)
    return train_valid_split(ds, 0.15, block_bins=100)


def _tiny_cnn(seed: int = 0) -> RetinaCNN:
    torch.manual_seed(seed)
    return RetinaCNN(2, history=4, frame_shape=12, channels=(4, 4), kernel_sizes=(5, 3), noise_std=0.1)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    """Exact: used only for reruns and resumes on one machine, which repeat every operation in the same order."""
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_training_reduces_the_loss_and_is_deterministic():
    train, valid = _tiny_retina()
    runs = []
    for _ in range(2):
        model = _tiny_cnn()
        history = fit(
            model,
            train,
            valid,
            epochs=4,
            batch_size=32,
            lr=3e-3,
            seed=7,
            progress=False,
            patience=None,
            restore_best=False,
        )
        runs.append((_weights(model), history))
    (w1, h1), (w2, h2) = runs
    _assert_same_weights(w1, w2)
    assert h1["train_loss"] == h2["train_loss"] and h1["valid_loss"] == h2["valid_loss"]  # exact: a seeded rerun
    assert h1["train_loss"][-1] < h1["train_loss"][0]
    assert h1["valid_loss"][-1] < h1["valid_loss"][0]
    assert h1["valid_cc"][-1] > 0.2
    other = _tiny_cnn()
    fit(
        other, train, valid, epochs=4, batch_size=32, lr=3e-3, seed=8, progress=False, patience=None, restore_best=False
    )
    assert not torch.equal(other.readout.weight, model.readout.weight)  # the seed matters


class _InterruptAfter:
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def __call__(self, epoch: int, logs: dict[str, float]) -> None:
        if epoch == self.epoch:
            raise KeyboardInterrupt


def _straight_and_resumed(train, valid, tmp_path, settings):
    """An uninterrupted run (checkpoints in ``a``) and one interrupted after epoch 2 and resumed (in ``b``)
    end at the same weights and validation losses; returns both models and histories."""
    straight = _tiny_cnn()
    h_straight = fit(straight, train, valid, checkpoint_dir=tmp_path / "a", **settings)
    interrupted = _tiny_cnn()
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, train, valid, checkpoint_dir=tmp_path / "b", callbacks=[_InterruptAfter(2)], **settings)
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["epoch"] == 2
    resumed_model = _tiny_cnn(seed=99)  # whatever its initial weights: the checkpoint replaces them
    h_resumed = fit(resumed_model, train, valid, checkpoint_dir=tmp_path / "b", **settings)
    assert h_resumed.resumed_from_epoch == 2
    _assert_same_weights(_weights(straight), _weights(resumed_model))
    assert h_resumed["valid_loss"] == h_straight["valid_loss"]  # exact: a resume
    return straight, h_straight, resumed_model, h_resumed


def test_resume_after_an_interruption_ends_at_the_same_weights(tmp_path):
    train, valid = _tiny_retina()
    settings = dict(epochs=5, batch_size=32, lr=3e-3, seed=3, progress=False, patience=None, lr_patience=0)
    straight, h_straight, _, h_resumed = _straight_and_resumed(train, valid, tmp_path, settings)
    assert h_resumed["lr"] == h_straight["lr"]  # the scheduler state came back too
    assert min(h_straight["lr"]) < 3e-3  # ... and it did act (lr_patience=0)

    # a finished run resumes to itself without training
    again = _tiny_cnn(seed=5)
    h_again = fit(again, train, valid, checkpoint_dir=tmp_path / "a", **settings)
    _assert_same_weights(_weights(straight), _weights(again))
    assert len(h_again) == 5

    # a run that reached its epochs goes on when asked for more, as if it had been asked for them at once
    short = _tiny_cnn()
    fit(short, train, valid, checkpoint_dir=tmp_path / "c", **{**settings, "epochs": 3})
    extended = _tiny_cnn(seed=11)
    h_extended = fit(extended, train, valid, checkpoint_dir=tmp_path / "c", **settings)
    assert h_extended.resumed_from_epoch == 3 and len(h_extended) == 5
    _assert_same_weights(_weights(straight), _weights(extended))


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path):
    train, valid = _tiny_retina()
    fit(_tiny_cnn(), train, valid, epochs=1, batch_size=32, progress=False, checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match="batch_size"):
        fit(_tiny_cnn(), train, valid, epochs=2, batch_size=16, progress=False, checkpoint_dir=tmp_path)
    other = RetinaCNN(2, history=4, frame_shape=12, channels=(3, 4), kernel_sizes=(5, 3))
    with pytest.raises(CheckpointError, match="architecture"):
        fit(other, train, valid, epochs=2, batch_size=32, progress=False, checkpoint_dir=tmp_path)
    # resume=False starts afresh and overwrites
    fit(_tiny_cnn(), train, valid, epochs=1, batch_size=16, progress=False, checkpoint_dir=tmp_path, resume=False)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["settings"]["batch_size"] == 16


def test_a_failed_checkpoint_write_leaves_the_previous_one_intact(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"epoch": 1, "weights": torch.arange(4.0)}, path)
    real_save = torch.save

    def broken_save(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"epoch": 2, "weights": torch.zeros(4)}, path)
    monkeypatch.setattr(checkpoint_module.torch, "save", real_save)
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["weights"], torch.arange(4.0))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary file left behind


def test_checkpoints_load_with_weights_only_and_reject_foreign_files(tmp_path):
    train, valid = _tiny_retina()
    fit(_tiny_cnn(), train, valid, epochs=1, batch_size=64, progress=False, checkpoint_dir=tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)  # restricted unpickler accepts it
    assert state["rng"]["torch"].dtype == torch.uint8
    assert set(state) >= {"model", "optimizer", "scheduler", "history", "best_model", "epoch"}
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_checkpoint(bad)

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    evil = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, evil)
    with pytest.raises(CheckpointError):
        load_checkpoint(evil)


def test_early_stopping_restores_the_best_epoch():
    torch.manual_seed(0)
    x = torch.randn(400, 5)
    y = x @ torch.tensor([[1.0], [2.0], [0.0], [-1.0], [0.5]])
    # validation targets are the negation: every step toward the training fit is a step away from them
    train, valid = (x, y), (x[:100], -y[:100])
    model = torch.nn.Linear(5, 1)
    start = _weights(model)
    history = fit(model, train, valid, loss="mse", epochs=20, batch_size=50, lr=0.05, patience=2, progress=False)
    assert history.stopped_early and len(history) == 3 and history.best_epoch == 1
    one = torch.nn.Linear(5, 1)
    one.load_state_dict(start)
    fit(one, train, valid, loss="mse", epochs=1, batch_size=50, lr=0.05, progress=False)
    _assert_same_weights(_weights(one), _weights(model))


class _CountingRegulariser:
    def __init__(self) -> None:
        self.before = self.after = self.epochs = 0

    def penalty(self, model):
        return 0.5 * model.weight.square().sum()

    def before_step(self, model):
        assert model.weight.grad is not None
        self.before += 1

    def on_step(self, model):
        self.after += 1

    def on_epoch_end(self, model, epoch):
        self.epochs += 1


def test_regulariser_hooks_see_every_step():
    x = torch.randn(100, 3)
    y = x.sum(1, keepdim=True)
    reg = _CountingRegulariser()
    assert isinstance(reg, Regulariser)
    model = torch.nn.Linear(3, 1)
    history = fit(
        model, (x, y), None, loss="mse", epochs=3, batch_size=30, regularisers=[reg, L2Penalty(0.1)], progress=False
    )
    assert reg.before == reg.after == 3 * 4 and reg.epochs == 3
    assert all(p > 0 for p in history["train_penalty"])
    assert math.isnan(history["valid_loss"][0])  # no validation set: nothing reported


def test_history_as_dict_and_xarray():
    history = History(
        [{"epoch": 1, "train_loss": 2.0, "lr": 0.1}, {"epoch": 2, "train_loss": 1.0, "lr": 0.05}], best_epoch=2
    )
    as_dict = history.as_dict()
    assert as_dict["train_loss"] == [2.0, 1.0] and as_dict["best_epoch"] == 2
    ds = history.to_xarray()
    assert isinstance(ds, xr.Dataset) and ds.sizes["epoch"] == 2
    np.testing.assert_array_equal(ds["lr"].values, [0.1, 0.05])


def test_bad_arguments_raise_config_errors():
    from neuromodels.errors import ConfigError

    x, y = torch.randn(10, 2), torch.randn(10, 1)
    with pytest.raises(ConfigError, match="loss"):
        fit(torch.nn.Linear(2, 1), (x, y), loss="hinge", progress=False)
    with pytest.raises(ConfigError, match="optimizer"):
        fit(torch.nn.Linear(2, 1), (x, y), optimizer="sgd", progress=False)
    with pytest.raises(ConfigError, match="diverged"):
        fit(torch.nn.Linear(2, 1), (x * 1e30, y), loss="mse", progress=False)


class _RecordSteps:
    """Records the model's state after every optimiser step (a Regulariser with no penalty)."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def penalty(self, model: torch.nn.Module) -> torch.Tensor:
        return torch.zeros(())

    def on_step(self, model: torch.nn.Module) -> None:
        self.states.append(_weights(model))


def test_weight_averaging_keeps_the_moving_average_of_every_step():
    """The kept weights (and batch-norm statistics) are the bias-corrected EMA of the iterates, by hand."""
    torch.manual_seed(0)
    x = torch.randn(120, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3 * torch.randn(120, 1)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))
    initial = _weights(model)
    record = _RecordSteps()
    decay = 0.9
    history = fit(
        model,
        (x, y),
        (x[:40], y[:40]),
        loss="mse",
        epochs=3,
        batch_size=16,
        lr=1e-2,
        seed=1,
        regularisers=[record],
        average_decay=decay,
        restore_best=False,
        patience=None,
        progress=False,
    )
    assert len(record.states) == 3 * 8
    n = len(record.states)
    expected = {}
    for k, v in initial.items():  # sum_i d^(n-i) (1 - d) w_i / (1 - d^n): no trace of the initial weights
        if v.dtype.is_floating_point:
            terms = [decay ** (n - i) * (1 - decay) * s[k] for i, s in enumerate(record.states, start=1)]
            expected[k] = torch.stack(terms).sum(0) / (1 - decay**n)
        else:
            expected[k] = record.states[-1][k]
    kept = _weights(model)
    for k in expected:
        torch.testing.assert_close(kept[k], expected[k], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(kept["0.weight"], record.states[-1]["0.weight"])  # not the last iterate
    assert torch.equal(kept["1.num_batches_tracked"], record.states[-1]["1.num_batches_tracked"])  # exact: integers
    # the validation loss reported is the averaged model's
    with torch.no_grad():
        assert float(torch.nn.functional.mse_loss(model(x[:40]), y[:40])) == pytest.approx(history["valid_loss"][-1])


def test_weight_averaging_resumes_exactly_and_is_part_of_the_settings(tmp_path):
    train, valid = _tiny_retina()
    settings = dict(epochs=4, batch_size=32, lr=3e-3, seed=3, progress=False, patience=None, average_decay=0.95)
    straight, _, _, _ = _straight_and_resumed(train, valid, tmp_path, settings)  # exact resume with the average
    # without averaging the same run ends elsewhere, and the checkpoint of one is refused by the other
    plain = _tiny_cnn()
    fit(plain, train, valid, **{**settings, "average_decay": None})
    assert not torch.equal(_weights(plain)["readout.weight"], _weights(straight)["readout.weight"])
    with pytest.raises(CheckpointError, match="average_decay"):
        fit(_tiny_cnn(), train, valid, checkpoint_dir=tmp_path / "a", **{**settings, "average_decay": None})
    from neuromodels.errors import ConfigError

    with pytest.raises(ConfigError, match="average_decay"):
        fit(_tiny_cnn(), train, valid, **{**settings, "average_decay": 1.0})


class _Terminal(io.StringIO):
    """A stream that says it is a terminal, as a user's console does."""

    def isatty(self) -> bool:
        return True


def _fit_with_stderr(monkeypatch, stream, **options) -> str:
    torch.manual_seed(0)
    x = torch.randn(60, 3)
    y = x @ torch.randn(3, 2)
    monkeypatch.setattr(sys, "stderr", stream)
    fit(torch.nn.Linear(3, 2), (x, y), (x, y), loss="mse", epochs=3, batch_size=10, patience=None, **options)
    return stream.getvalue()


def test_progress_default_is_tqdms_choice_a_terminal_gets_bars_a_log_none(monkeypatch):
    shown = _fit_with_stderr(monkeypatch, _Terminal())
    assert "epochs: 100%" in shown and "epoch 3:" in shown  # the epoch bar and the nested batch bar
    assert _fit_with_stderr(monkeypatch, io.StringIO()) == ""  # stderr to a file: nothing by default
    assert _fit_with_stderr(monkeypatch, _Terminal(), progress=False) == ""


def test_forced_progress_to_a_log_is_one_clean_bar_without_cursor_codes(monkeypatch):
    log = _fit_with_stderr(monkeypatch, io.StringIO(), progress=True)
    assert "epochs: 100%" in log and "3/3" in log
    assert "\x1b[" not in log  # a nested bar would move the cursor with ESC[A, garbage in a log file
    assert "epoch 1:" not in log  # so the batch bar is left out there


def test_fit_shuffles_every_epoch_with_the_public_epoch_order():
    # the order that walkback and the continual-learning tests share with fit: a function of (seed, epoch) only
    n, seen = 10, []

    class Recorder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x[:, 0].long())
            return x * 0 + self.w

    x = torch.arange(n, dtype=torch.float32)[:, None]
    fit(Recorder(), (x, torch.zeros(n, 1)), epochs=2, batch_size=4, loss="mse", seed=7, progress=False)
    per_epoch = torch.cat(seen).split(n)
    assert len(per_epoch) == 2
    for epoch, order in enumerate(per_epoch):
        assert torch.equal(order, epoch_order(n, 7, epoch))
        assert torch.equal(epoch_order(n, 7, epoch), epoch_order(n, 7, epoch))
    assert sorted(per_epoch[0].tolist()) == list(range(n))
    assert not torch.equal(per_epoch[0], per_epoch[1])

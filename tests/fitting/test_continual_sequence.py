"""Task sequences, metrics, EWC, training a sequence through fit, exact resume after SIGKILL, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import xarray as xr

from neuromodels.errors import ConfigError
from neuromodels.fitting.continual import (
    EWC,
    average_accuracy,
    backward_transfer,
    diagonal_fisher,
    forgetting,
    permuted_tasks,
    split_tasks,
    train_sequence,
)
from neuromodels.multihead import MultiHeadMLP


# ---------------------------------------------------------------------------------------------------- metrics
def test_metrics_of_a_hand_made_accuracy_matrix():
    r = np.array([[0.9, 0.1, 0.2], [0.7, 0.95, 0.3], [0.6, 0.8, 0.99]])
    assert average_accuracy(r) == pytest.approx((0.6 + 0.8 + 0.99) / 3)
    assert backward_transfer(r) == pytest.approx(((0.6 - 0.9) + (0.8 - 0.95)) / 2)
    assert forgetting(r) == pytest.approx(((0.9 - 0.6) + (0.95 - 0.8)) / 2)
    assert np.isnan(backward_transfer(np.ones((1, 1))))
    with pytest.raises(ConfigError, match="square"):
        average_accuracy(np.ones((2, 3)))


# ------------------------------------------------------------------------------------------------------ tasks
def _images(n=200, classes=4, side=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    values = rng.integers(0, 256, size=(n, side, side)).astype(np.uint8)
    return xr.DataArray(values, dims=("image", "y", "x"), coords={"label": ("image", labels)}, attrs={"max_value": 255})


def test_split_tasks_label_layout_per_scenario():
    images = _images()
    task = split_tasks(images, [[3, 1], [0, 2]], scenario="task")
    assert task.heads == (2, 2) and task.n_features == 9
    (x, t), _ = task.tasks[1].train.batch(torch.arange(4))
    assert t.tolist() == [1, 1, 1, 1] and set(task.tasks[1].train.labels.tolist()) == {0, 1}
    assert float(x.max()) <= 1.0
    first = task.tasks[0].train
    original = images.label.values[:160][np.isin(images.label.values[:160], [3, 1])]
    assert first.labels.tolist() == [0 if c == 3 else 1 for c in original]
    klass = split_tasks(images, [[3, 1], [0, 2]], scenario="class")
    assert klass.heads == (4,) and set(klass.tasks[1].train.labels.tolist()) == {2, 3}
    domain = split_tasks(images, [[3, 1], [0, 2]], scenario="domain")
    x, _ = domain.tasks[0].train.batch(torch.arange(2))
    assert isinstance(x, torch.Tensor) and domain.heads == (2,)


def test_permuted_tasks_permute_pixels_consistently():
    images = _images(classes=3)
    seq = permuted_tasks(images, 3, seed=1)
    a, b = seq.tasks[0].train.inputs, seq.tasks[2].train.inputs
    assert not torch.equal(a, b)
    assert torch.equal(torch.sort(a, dim=1).values, torch.sort(b, dim=1).values)  # same pixels, reordered
    assert seq.heads == (3,)
    assert permuted_tasks(images, 3, scenario="class").tasks[2].train.labels.min() == 6


def test_empty_and_overlapping_groups_are_refused():
    with pytest.raises(ConfigError, match="empty task"):
        split_tasks(_images(), [[0, 1], [7]])
    with pytest.raises(ConfigError, match="two groups"):
        split_tasks(_images(), [[0, 1], [1, 2]])
    with pytest.raises(ConfigError, match="scenario"):
        split_tasks(_images(), [[0, 1]], scenario="incremental")


# -------------------------------------------------------------------------------------------------------- EWC
def test_fisher_of_a_softmax_regression_has_its_closed_form():
    # logits = W x + b: sum_y p_y (d log p_y / d W_ki)**2 = p_k (1 - p_k) x_i**2 (and x_i = 1 for the bias)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3).double()
    x = torch.randn(30, 4, dtype=torch.float64)
    fisher = diagonal_fisher(model, (x, torch.zeros(30, dtype=torch.long)), ["weight", "bias"], chunk=7)
    p = torch.softmax(model(x), -1).detach()
    expected_w = ((p * (1 - p))[:, :, None] * x[:, None, :].square()).mean(0)
    assert torch.allclose(fisher[0], expected_w, rtol=1e-10)
    assert torch.allclose(fisher[1], (p * (1 - p)).mean(0), rtol=1e-10)


def test_ewc_penalty_equals_the_sum_of_per_task_penalties():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2).double()
    ewc = EWC(model, lam=4.0)
    tasks = [(torch.randn(20, 3, dtype=torch.float64), torch.zeros(20, dtype=torch.long)) for _ in range(2)]
    stored = []
    for data in tasks:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        stored.append(([p.detach().clone() for p in model.parameters()], diagonal_fisher(model, data, ewc.names)))
        ewc.end_task(model, data)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    ours = ewc.penalty(model)
    direct = (
        sum(
            (f * (p - m).square()).sum()
            for means, fishers in stored
            for p, m, f in zip(model.parameters(), means, fishers)
        )
        * 2.0
    )
    assert float(ours.detach()) == pytest.approx(float(direct.detach()), rel=1e-10)
    g_ours = torch.autograd.grad(ours, list(model.parameters()))
    g_direct = torch.autograd.grad(direct, list(model.parameters()))
    for a, b in zip(g_ours, g_direct):
        assert torch.allclose(a, b, rtol=1e-10)
    online = EWC(model, lam=4.0, online=True, gamma=0.5)
    for data in tasks:
        online.end_task(model, data)
    # online EWC (Schwarz et al. eq. 8): F~ = gamma F~ + F_t, anchored at the latest weights
    f0, f1 = diagonal_fisher(model, tasks[0], ewc.names), diagonal_fisher(model, tasks[1], ewc.names)
    for k in range(2):
        assert torch.allclose(online.precision_[k], 0.5 * f0[k] + f1[k], rtol=1e-12)
        assert torch.equal(online.mean_[k], list(model.parameters())[k].detach())


# ------------------------------------------------------------------------------------------------ sequences
def _tiny_sequence(scenario="task"):
    return split_tasks(_images(n=240, classes=6, side=4), [[0, 1], [2, 3], [4, 5]], scenario=scenario)


def test_train_sequence_fills_the_accuracy_matrix():
    seq = _tiny_sequence()
    torch.manual_seed(0)
    model = MultiHeadMLP(seq.n_features, (16,), seq.heads)
    result = train_sequence(model, seq, "si", c=0.5, xi=0.1, epochs=2, batch_size=16, progress=False)
    assert result.accuracy.shape == (3, 3) and result.accuracy.dims == ("trained", "evaluated")
    assert ((result.accuracy.values >= 0) & (result.accuracy.values <= 1)).all()
    assert result.metrics["average_accuracy"] == pytest.approx(result.accuracy.values[-1].mean())
    assert set(result.importance) == {n for n, _ in model.named_parameters()}
    assert len(result.histories) == 3


def test_labels_outside_the_head_are_refused():
    seq = _tiny_sequence("class")
    model = MultiHeadMLP(seq.n_features, (8,), (4,))  # 6 classes, 4 outputs
    with pytest.raises(ConfigError, match="outside its head"):
        train_sequence(model, seq, "finetune", epochs=1, progress=False)


def test_resume_with_other_order_or_settings_is_refused(tmp_path):
    seq = _tiny_sequence()
    model = MultiHeadMLP(seq.n_features, (8,), seq.heads)
    train_sequence(model, seq, "si", c=0.5, epochs=1, batch_size=32, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ConfigError, match="regulariser.c=0.5, this run has regulariser.c=0.25"):
        train_sequence(model, seq, "si", c=0.25, epochs=1, batch_size=32, checkpoint_dir=tmp_path, progress=False)
    reordered = _tiny_sequence()
    reordered.tasks = reordered.tasks[::-1]
    with pytest.raises(ConfigError, match="task order"):
        train_sequence(model, reordered, "si", c=0.5, epochs=1, batch_size=32, checkpoint_dir=tmp_path, progress=False)


_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import numpy as np, torch, xarray as xr
    from neuromodels.fitting.continual import split_tasks, train_sequence
    from neuromodels.multihead import MultiHeadMLP
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    images = xr.DataArray(rng.integers(0, 256, size=(300, 4, 4)).astype(np.uint8), dims=("image", "y", "x"),
                          coords={"label": ("image", np.arange(300) % 6)}, attrs={"max_value": 255})
    seq = split_tasks(images, [[0, 1], [2, 3], [4, 5]], scenario="task")
    torch.manual_seed(0)
    model = MultiHeadMLP(seq.n_features, (16,), seq.heads)
    calls = []
    def killer(epoch, logs):
        calls.append(epoch)
        # "kill": task 1 (of 0, 1, 2), epoch 1 of 3, its checkpoint written; "kill-between": task 2, epoch 1
        if (sys.argv[2], len(calls)) in (("kill", 4), ("kill-between", 7)):
            os.kill(os.getpid(), signal.SIGKILL)
    result = train_sequence(model, seq, "si", c=0.5, xi=0.1, epochs=3, batch_size=16, progress=False,
                            checkpoint_dir=sys.argv[1], callbacks=[killer])
    torch.save({"model": model.state_dict(), "importance": result.importance,
                "accuracy": torch.tensor(result.accuracy.values)}, os.path.join(sys.argv[1], "final.pt"))
""")


def _run(folder, mode):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(folder), mode],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("mode", ["kill", "kill-between"])
def test_resume_after_sigkill_equals_the_uninterrupted_run(tmp_path, mode):
    killed = _run(tmp_path / "killed", mode)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (tmp_path / "killed" / "final.pt").exists()
    if mode == "kill-between":
        # as if killed after task 1 ended and before task 2's first checkpoint: only sequence.pt holds the state
        import shutil

        shutil.rmtree(tmp_path / "killed" / "task-2")
    resumed = _run(tmp_path / "killed", "resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    straight = _run(tmp_path / "straight", "resume")
    assert straight.returncode == 0, straight.stderr[-2000:]
    a = torch.load(tmp_path / "killed" / "final.pt", weights_only=True)
    b = torch.load(tmp_path / "straight" / "final.pt", weights_only=True)
    for name in b["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    for name in b["importance"]:
        assert torch.equal(a["importance"][name], b["importance"][name]), name
    assert torch.equal(a["accuracy"], b["accuracy"])


def test_multihead_mlp_reads_each_sample_out_by_its_task_head():
    torch.manual_seed(0)
    model = MultiHeadMLP(4, (5,), (2, 3))
    x, task = torch.randn(4, 4), torch.tensor([0, 1, 1, 0])
    out = model(x, task)
    features = model.trunk(x)
    assert out.shape == (4, 3)
    # within rounding, not bit for bit: a matrix product over 4 rows and one over 1 row may take other kernels
    torch.testing.assert_close(out[0, :2], model.heads[0](features[:1])[0], rtol=1e-6, atol=1e-7)
    assert out[0, 2] == float("-inf")
    torch.testing.assert_close(out[1], model.heads[1](features[1:2])[0], rtol=1e-6, atol=1e-7)
    with pytest.raises(ConfigError, match="task index 2"):
        model(x, torch.tensor([0, 2, 1, 0]))

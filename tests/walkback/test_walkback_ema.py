"""The optional weight average of Variational Walkback training (``train_walkback(..., ema=...)``, our addition)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuromodels.errors import ConfigError
from neuromodels.fitting.loop import epoch_order
from neuromodels.fitting.walkback import train_walkback
from neuromodels.walkback import TransitionOperator


def _data():
    return np.random.default_rng(0).normal(size=(300, 2)).astype(np.float32)


def _operator():
    torch.manual_seed(0)
    return TransitionOperator(2, hidden=(16,), sigma=0.3, n_steps=3, per_step_norm=True)


def _run(epochs, **kwargs):
    data = _data()
    return train_walkback(
        _operator(), data, data[:50], epochs=epochs, batch_size=64, lr=1e-2, progress=False, bound_points=100, **kwargs
    )


def test_returned_weights_are_the_bias_corrected_exponential_average_of_every_update():
    """One epoch by hand (the same batches, Adam and noise), recording the weights after each of Algorithm 1's
    online updates; the returned model must hold sum_i d^(n-i) (1 - d) w_i / (1 - d^n) over those weights."""
    decay = 0.9
    fit = _run(1, ema=decay)
    reference, data = _operator(), torch.from_numpy(_data())
    optimizer = torch.optim.Adam(reference.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    names = [name for name, _ in reference.named_parameters()]
    trajectory = []
    reference.train()
    for chunk in torch.split(epoch_order(len(data), 0, 0), 64):
        state = data[chunk]
        for step, temperature in enumerate(reference.schedule):  # walkback_update, one step at a time
            following = reference.sample_step(state, temperature, step, generator)
            loss = -reference.log_prob(state, following, temperature, step).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            trajectory.append({n: p.detach().double().clone() for n, p in reference.named_parameters()})
            state = following
    n = len(trajectory)
    assert n == 5 * 3  # 5 batches of 64 (the last 44) x 3 heating steps
    weights = [decay ** (n - i) * (1 - decay) / (1 - decay**n) for i in range(1, n + 1)]
    returned = dict(fit.model.named_parameters())
    for name in names:
        expected = sum(w * step[name] for w, step in zip(weights, trajectory))
        torch.testing.assert_close(returned[name].double(), expected, rtol=1e-5, atol=1e-6)
    # and the average is not the last weights: without it the check above fails
    last = trajectory[-1]
    assert not torch.allclose(returned["mu_head.weight"].double(), last["mu_head.weight"], atol=1e-4)


def test_training_with_the_average_follows_the_same_updates_and_none_is_unchanged():
    # the averaged copy does not feed back into training: the current weights take the same path (same batches,
    # noise and Adam steps), so the per-epoch training objective is identical with and without the average
    plain, averaged, again = _run(2), _run(2, ema=0.5), _run(2, ema=None)
    assert plain.history["train_objective"] == averaged.history["train_objective"]
    assert not torch.equal(plain.model.mu_head.weight, averaged.model.mu_head.weight)
    for a, b in zip(plain.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)


def test_exact_resume_keeps_the_average(tmp_path):
    straight = _run(3, ema=0.95)
    _run(1, ema=0.95, checkpoint_dir=tmp_path)
    resumed = _run(3, ema=0.95, checkpoint_dir=tmp_path)
    assert resumed.history.resumed_from_epoch == 1
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    assert straight.history["valid_bound"] == resumed.history["valid_bound"]


@pytest.mark.parametrize("ema", [0.0, 1.0, 1.5, -0.1, True])
def test_bad_ema_is_a_config_error(ema):
    with pytest.raises(ConfigError, match="ema"):
        _run(1, ema=ema)

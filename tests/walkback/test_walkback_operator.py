"""Variational Walkback: the operator's log-probabilities, the bound, Algorithm 1's update, resume, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from neuromodels.errors import ConfigError, DataFormatError
from neuromodels.fitting.checkpoint import CheckpointError, save_checkpoint
from neuromodels.fitting.walkback import (
    load_walkback_model,
    save_walkback_model,
    train_walkback,
    walkback_update,
)
from neuromodels.walkback import (
    TransitionOperator,
    gaussian_log_density,
    step_log_likelihood,
    temperature_schedule,
    variational_bound,
)


def _numpy_operator(model: TransitionOperator, s: np.ndarray, temperature: float):
    """Mean and std of p_T(. | s) from the MLP's weights, written out in NumPy (no per-step norm)."""
    h = s.astype(np.float64)
    for layer in model.layers:
        h = h @ layer.weight.detach().double().numpy().T + layer.bias.detach().double().numpy()
        h = np.where(h > 0, h, 0.02 * h)
    mu = h @ model.mu_head.weight.detach().double().numpy().T + model.mu_head.bias.detach().double().numpy()
    raw = h @ model.sigma_head.weight.detach().double().numpy().T + model.sigma_head.bias.detach().double().numpy()
    mean = model.alpha * s + (1 - model.alpha) * mu
    std = model.sigma * math.sqrt(temperature) * np.log1p(np.exp(raw))
    return mean, std


def _random_operator(dim=3, seed=0, **kwargs):
    torch.manual_seed(seed)
    model = TransitionOperator(dim, hidden=(16, 16), sigma=0.3, n_steps=4, **kwargs)
    with torch.no_grad():  # make the heads matter (they start near zero)
        model.mu_head.weight.normal_(0, 0.5)
        model.sigma_head.weight.normal_(0, 0.5)
        model.sigma_head.bias.fill_(0.3)
    return model.double()


def test_gaussian_log_density_equals_scipy():
    rng = np.random.default_rng(0)
    x, mean, std = rng.normal(size=(5, 4)), rng.normal(size=(5, 4)), rng.uniform(0.1, 2, size=(5, 4))
    ours = gaussian_log_density(torch.from_numpy(x), torch.from_numpy(mean), torch.from_numpy(std)).numpy()
    np.testing.assert_allclose(ours, stats.norm.logpdf(x, mean, std).sum(1), rtol=1e-12)


def test_per_step_log_prob_equals_independent_gaussian_density():
    model = _random_operator()
    rng = np.random.default_rng(1)
    given, target = rng.normal(size=(7, 3)), rng.normal(size=(7, 3))
    for step, temperature in enumerate([1.0, 1.7, 4.0]):
        mean, std = _numpy_operator(model, given, temperature)
        expected = stats.norm.logpdf(target, mean, std).sum(1)
        ours = model.log_prob(torch.from_numpy(target), torch.from_numpy(given), temperature, step).detach().numpy()
        np.testing.assert_allclose(ours, expected, rtol=1e-10)
        paper = (
            step_log_likelihood(model, torch.from_numpy(target), torch.from_numpy(given), temperature, step, "paper")
            .detach()
            .numpy()
        )
        np.testing.assert_allclose(paper, expected, rtol=1e-10)  # log p_T(s_{t-1} | s_t)


def test_released_objective_scores_the_input_with_sigma_as_variance():
    model = _random_operator()
    rng = np.random.default_rng(2)
    previous, current = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    mean, sigma = _numpy_operator(model, previous, 2.0)  # the operator applied to s_{t-1}, not s_t
    expected = -0.5 * (np.log(2 * np.pi) + np.log(sigma) + (previous - mean) ** 2 / sigma).sum(1)
    ours = (
        step_log_likelihood(model, torch.from_numpy(previous), torch.from_numpy(current), 2.0, 1, "released")
        .detach()
        .numpy()
    )
    np.testing.assert_allclose(ours, expected, rtol=1e-10)
    with pytest.raises(ConfigError, match="objective"):
        step_log_likelihood(model, torch.from_numpy(previous), torch.from_numpy(current), 2.0, 1, "other")


def test_temperature_schedule():
    assert temperature_schedule(6, steps_at_one=2, factor=2.0, max_temperature=5.0) == [1, 1, 2, 4, 5, 5]
    released = temperature_schedule(30, factor=1.1)  # train_spiral_online.py: T = 1, then *= 1.1
    assert released[0] == 1.0 and len(released) == 30
    assert released[-1] == pytest.approx(1.1**29)
    assert temperature_schedule(3, steps_at_one=0, factor=3.0) == [3, 9, 27]


def _linear_stationary_operator(mean, var, a, n_steps, alpha=0.5):
    """1-D operator with mean a s + (1 - a) m and fixed std sqrt(var (1 - a^2)): reversible w.r.t. N(m, var) at
    T = 1 (an AR(1) chain in its stationary state satisfies detailed balance)."""
    c = (a - alpha) / (1 - alpha)
    model = TransitionOperator(
        1,
        hidden=(),
        alpha=alpha,
        sigma=math.sqrt(var * (1 - a * a)),
        learn_sigma=False,
        n_steps=n_steps,
        steps_at_one=n_steps,
    ).double()
    with torch.no_grad():
        model.mu_head.weight.fill_(c)
        model.mu_head.bias.fill_(mean * (1 - a) / (1 - alpha))
        model.p0_mean.fill_(mean)
        model.p0_std.fill_(math.sqrt(var))
    return model


def test_bound_is_exact_for_a_reversible_operator_with_the_true_p0():
    # detailed balance makes the sum of log ratios telescope to log pi(x) - log pi(s_K); with p_0 = pi the
    # bound equals log pi(x) on every single path
    model = _linear_stationary_operator(mean=0.7, var=2.0, a=0.6, n_steps=5)
    x = torch.linspace(-3, 4, 11, dtype=torch.float64)[:, None]
    bound = variational_bound(model, x, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(bound.numpy(), stats.norm.logpdf(x.numpy()[:, 0], 0.7, math.sqrt(2.0)), atol=1e-10)


def test_bound_is_below_the_true_log_likelihood_for_an_inexact_operator():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(0.7, math.sqrt(2.0), size=(20_000, 1)))
    truth = stats.norm.logpdf(x.numpy()[:, 0], 0.7, math.sqrt(2.0)).mean()
    model = _linear_stationary_operator(mean=0.7, var=2.0, a=0.6, n_steps=5)
    with torch.no_grad():
        model.mu_head.bias.add_(0.3)  # no longer stationary at N(0.7, 2)
    bound = variational_bound(model, x, generator=torch.Generator().manual_seed(1)).mean().item()
    assert bound < truth - 0.01


def test_training_raises_the_bound_towards_the_true_log_likelihood_from_below():
    rng = np.random.default_rng(0)
    data = rng.normal(0.5, 1.5, size=(4000, 1)).astype(np.float32)
    valid = rng.normal(0.5, 1.5, size=(4000, 1)).astype(np.float32)
    truth = stats.norm.logpdf(valid[:, 0], 0.5, 1.5).mean()
    torch.manual_seed(0)
    model = TransitionOperator(1, hidden=(), sigma=0.3, n_steps=4, steps_at_one=4)
    fit = train_walkback(model, data, valid, epochs=6, batch_size=200, lr=1e-2, progress=False, bound_points=4000)
    bounds = fit.history["valid_bound"]
    assert bounds[-1] > bounds[0] + 1.0
    assert bounds[-1] < truth + 0.02  # a lower bound (0.02: Monte Carlo error of 4,000 paths)
    assert bounds[-1] > truth - 0.15  # and close to it


def _sgd_model():
    torch.manual_seed(3)
    model = TransitionOperator(2, hidden=(8,), sigma=0.5, n_steps=3, steps_at_one=1, temperature_factor=2.0)
    with torch.no_grad():
        model.mu_head.weight.normal_(0, 0.5)
    return model.double()


def test_update_is_algorithm_1_online_with_constant_states_on_the_schedule():
    """Replicate Algorithm 1 by hand: at step t draw s_t, then one SGD step on -log p_{T_t}(s_{t-1} | s_t) with
    s_t a constant; the next draw uses the updated weights. Breaks if the states carry gradient, if updates
    are accumulated, or if the temperatures differ from the schedule."""
    model, reference = _sgd_model(), _sgd_model()
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    result = walkback_update(
        model, torch.optim.SGD(model.parameters(), lr=0.05), x, generator=torch.Generator().manual_seed(7)
    )
    assert result["temperatures"] == [1.0, 2.0, 4.0] and result["updates"] == 3

    generator = torch.Generator().manual_seed(7)
    state = x
    for step, temperature in enumerate([1.0, 2.0, 4.0]):
        with torch.no_grad():
            mean, std = reference(state, temperature, step)
            following = mean + std * torch.randn(mean.shape, generator=generator, dtype=torch.float64)
        loss = -gaussian_log_density(state, *reference(following, temperature, step)).mean()
        grads = torch.autograd.grad(loss, list(reference.parameters()))
        with torch.no_grad():
            for p, g in zip(reference.parameters(), grads):
                p -= 0.05 * g
        state = following
    for ours, theirs in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(result["heated"], state, rtol=1e-12, atol=1e-12)


def test_gradient_through_the_states_would_change_the_update():
    # the check above can fail: letting s_t carry gradient (reparameterised) gives a different gradient
    model = _sgd_model()
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mean, std = model(x, 1.0, 0)
    following = mean + std * torch.randn(mean.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    through = torch.autograd.grad(-model.log_prob(x, following, 1.0, 0).mean(), model.mu_head.weight)[0]
    constant = torch.autograd.grad(-step_log_likelihood(model, x, following, 1.0, 0).mean(), model.mu_head.weight)[0]
    assert not torch.allclose(through, constant, rtol=1e-3)


def test_batch_mode_takes_one_step_per_walk_and_differs():
    online, batch = _sgd_model(), _sgd_model()
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    opt = torch.optim.Adam(batch.parameters(), lr=0.01)
    result = walkback_update(batch, opt, x, online=False, generator=torch.Generator().manual_seed(7))
    assert result["updates"] == 1 and opt.state[next(iter(batch.parameters()))]["step"] == 1
    opt = torch.optim.Adam(online.parameters(), lr=0.01)
    walkback_update(online, opt, x, online=True, generator=torch.Generator().manual_seed(7))
    assert opt.state[next(iter(online.parameters()))]["step"] == 3
    assert not torch.allclose(online.mu_head.weight, batch.mu_head.weight)


def _small_run(tmp_path, epochs, **kwargs):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(300, 2)).astype(np.float32)
    torch.manual_seed(0)
    model = TransitionOperator(2, hidden=(16,), sigma=0.3, n_steps=3, per_step_norm=True)
    return train_walkback(
        model, data, data[:50], epochs=epochs, batch_size=64, lr=1e-3, progress=False, bound_points=100, **kwargs
    )


def test_exact_resume_through_the_checkpoint_writer(tmp_path):
    straight = _small_run(tmp_path, 3)
    _small_run(tmp_path, 1, checkpoint_dir=tmp_path / "ck")
    resumed = _small_run(tmp_path, 3, checkpoint_dir=tmp_path / "ck")
    assert resumed.history.resumed_from_epoch == 1
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    assert straight.history["valid_bound"] == resumed.history["valid_bound"]
    with pytest.raises(CheckpointError, match="objective"):
        _small_run(tmp_path, 4, checkpoint_dir=tmp_path / "ck", objective="released")


def test_model_file_round_trip_and_foreign_files(tmp_path):
    model = _random_operator(per_step_norm=True).float()
    path = save_walkback_model(model, tmp_path / "model.pt")
    again = load_walkback_model(path)
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    save_checkpoint({"format": "neuromodels.fit/1", "model": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a Variational Walkback model"):
        load_walkback_model(tmp_path / "other.pt")


def test_generation_cools_from_p0_and_runs_extra_steps():
    model = _linear_stationary_operator(mean=0.0, var=1.0, a=0.5, n_steps=4)
    chain = model.generate(5000, extra_steps=8, generator=torch.Generator().manual_seed(0))
    assert len(chain) == 1 + 4 + 8
    # a stationary operator keeps N(0, 1) however long the chain
    assert abs(chain[-1].std().item() - 1.0) < 0.05 and abs(chain[-1].mean().item()) < 0.05


@pytest.mark.parametrize(
    "kwargs, error, needle",
    [
        ({"temperature_factor": 1.0}, ConfigError, "temperature_factor"),
        ({"temperature_factor": 0.5}, ConfigError, "temperature_factor"),
        ({"n_steps": 0}, ConfigError, "n_steps"),
        ({"sigma": 0.0}, ConfigError, "sigma"),
    ],
)
def test_bad_operator_settings(kwargs, error, needle):
    with pytest.raises(error, match=needle):
        TransitionOperator(2, **kwargs)


def test_bad_training_data():
    model = TransitionOperator(2, hidden=(4,), n_steps=2)
    bad = np.zeros((10, 2), dtype=np.float32)
    bad[3, 1] = np.nan
    with pytest.raises(DataFormatError, match="NaN"):
        train_walkback(model, bad, epochs=1, progress=False)
    with pytest.raises(DataFormatError, match="2-d"):
        train_walkback(model, np.zeros((10, 2, 2)), epochs=1, progress=False)
    with pytest.raises(ConfigError, match="features"):
        train_walkback(model, np.zeros((10, 3)), epochs=1, progress=False)


def test_generation_reverses_each_step_with_the_step_index_and_temperature_training_used(monkeypatch):
    """The cooling chain must draw s_{t-1} from s_t with the parameters (per-step norm row, temperature) that
    training fitted to log p_{T_t}(s_{t-1} | s_t); a shifted or mirrored index would use another step's."""
    model = _random_operator(per_step_norm="batch", steps_at_one=2, temperature_factor=1.5)
    trained, generated = [], []
    log_prob, sample_step = model.log_prob, model.sample_step
    monkeypatch.setattr(model, "log_prob", lambda *a, **k: trained.append(a[2:]) or log_prob(*a, **k))
    walkback_update(model, torch.optim.SGD(model.parameters(), lr=0.0), torch.randn(32, 3, dtype=torch.float64))
    monkeypatch.setattr(model, "sample_step", lambda *a, **k: generated.append(a[1:3]) or sample_step(*a, **k))
    model.generate(32, extra_steps=2)
    assert trained == [(1.0, 0), (1.0, 1), (1.5, 2), (2.25, 3)]  # (T_t, step index) of each reverse term
    assert generated == trained[::-1] + [(1.0, 0), (1.0, 0)]


def _numpy_batch_norm_operator(model: TransitionOperator, s: np.ndarray, step: int) -> np.ndarray:
    """The mean of p_T(. | s) with the authors' per-step batch normalisation written out in NumPy
    (train_mog_different_batchnorm.py lines 141-146: (h - mean over the batch) / (1e-4 + std), then the step's
    newsigma and newmu)."""
    h = s
    for layer, norm in zip(model.layers, model.norms):
        h = h @ layer.weight.detach().numpy().T + layer.bias.detach().numpy()
        h = (h - h.mean(0)) / (1e-4 + h.std(0))
        h = h * norm.gain.detach().numpy()[step] + norm.bias.detach().numpy()[step]
        h = np.where(h > 0, h, 0.02 * h)
    mu = h @ model.mu_head.weight.detach().numpy().T + model.mu_head.bias.detach().numpy()
    return model.alpha * s + (1 - model.alpha) * mu


def test_per_step_batch_norm_equals_the_authors_form_and_keeps_the_input_scale():
    model = _random_operator(per_step_norm=True)  # True is the authors' form, over the batch
    assert model.config()["per_step_norm"] == "batch"
    with torch.no_grad():
        for norm in model.norms:
            norm.gain.normal_(1.0, 0.5)
            norm.bias.normal_(0.0, 0.5)
    s = np.random.default_rng(1).normal(size=(50, 3))
    for step in (0, 2, 3):
        mean, _ = model(torch.from_numpy(s), 1.0, step)
        np.testing.assert_allclose(mean.detach().numpy(), _numpy_batch_norm_operator(model, s, step), rtol=1e-10)
    # normalising each example over its features instead ("features", the code's ln) loses the scale of a
    # low-dimensional input: with zero first-layer biases, mu_theta(c s) = mu_theta(s) for every c > 0 up to the
    # norm's epsilon, so an operator on 2-D states cannot tell the spiral's inner from its outer arm
    for mode, largest in (("features", 0.01), ("batch", None)):
        torch.manual_seed(0)
        op = TransitionOperator(2, hidden=(16,), per_step_norm=mode, n_steps=2).double()
        with torch.no_grad():
            op.layers[0].bias.zero_()
            op.mu_head.weight.normal_(0, 0.5)
        x = torch.randn(20, 2, dtype=torch.float64)
        c = torch.linspace(0.5, 2.0, 20, dtype=torch.float64)[:, None]  # a different scale for each example
        change = (op(c * x, 1.0)[0] - op.alpha * c * x - op(x, 1.0)[0] + op.alpha * x).abs().max().item()
        assert change < 0.01 if largest else change > 0.1
    with pytest.raises(ConfigError, match="per_step_norm"):
        TransitionOperator(2, per_step_norm="layer")


def test_generating_one_state_with_per_step_batch_norm_is_refused():
    """Batch statistics of a single state are degenerate (every input normalises to zero)."""
    op = TransitionOperator(2, hidden=(8,), n_steps=3, per_step_norm="batch")
    with pytest.raises(ConfigError, match="at least 2"):
        op.generate(1)
    assert len(op.generate(4)) == 4  # s_K and three cooled states

"""The saturation penalty of Nayebi & Ganguli (2017): psi_c, the regulariser and its schedule."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from neuromodels.errors import ConfigError
from neuromodels.fitting.saturation import SaturationPenalty, get_saturating, linear_ramp, psi_c

H = torch.arange(-400, 401, dtype=torch.float64) / 100  # -4 .. 4 in steps of 0.01; 0, 0.5, +-1 exactly


def _grad(name_or_spec, h):
    h = h.clone().requires_grad_(True)
    get_saturating(name_or_spec).psi_c(h).sum().backward()
    return h.grad


@pytest.mark.parametrize(
    "name, saturated, nearest",
    [
        ("relu", lambda h: h <= 0, lambda h: torch.zeros_like(h)),
        ("hard_tanh", lambda h: h.abs() >= 1, lambda h: torch.where(h >= 0, 1.0, -1.0).double()),
    ],
)
def test_psi_c_is_the_distance_to_the_saturated_set(name, saturated, nearest):
    values = psi_c(H, name)
    inside = saturated(H)
    assert torch.all(values[inside] == 0)
    assert torch.all(values[~inside] > 0)
    assert torch.allclose(values[~inside], (H - nearest(H)).abs()[~inside], atol=1e-12)
    # outside the set the gradient points away from the nearest saturated point: psi_c grows moving away
    outside = ~inside & (H != 0)
    away = torch.sign(H - nearest(H))[outside]
    assert torch.all(_grad(name, H)[outside] * away > 0)


@pytest.mark.parametrize(
    "name, derivative",
    [
        ("sigmoid", lambda h: torch.sigmoid(h) * (1 - torch.sigmoid(h))),
        ("tanh", lambda h: 1 - torch.tanh(h) ** 2),
    ],
)
def test_psi_c_of_sigmoid_and_tanh_is_their_derivative_and_grows_away_from_the_flat_ends(name, derivative):
    values = psi_c(H, name)
    assert torch.allclose(values, derivative(H), atol=1e-15)
    assert torch.all(values > 0)  # saturated only at +-infinity
    grad = _grad(name, H)
    nonzero = H != 0
    # the flat ends are at -inf for h < 0 and +inf for h > 0: away from them is towards 0
    assert torch.all(grad[nonzero] * -torch.sign(H[nonzero]) > 0)
    assert float(psi_c(torch.tensor([40.0]), name)) < 1e-15  # vanishes in the flat tails


def test_custom_nonlinearity_with_given_saturated_intervals():
    spec = get_saturating("clipped", intervals=[(-math.inf, -2.0), (3.0, math.inf)], function=lambda h: h.clamp(-2, 3))
    values = spec.psi_c(H)
    inside = (H <= -2) | (H >= 3)
    assert torch.all(values[inside] == 0) and torch.all(values[~inside] > 0)
    assert torch.allclose(values, torch.minimum((H + 2).clamp_min(0), (3 - H).clamp_min(0)))
    grad = _grad(spec, H)
    mid = ~inside & (H != 0.5)  # 0.5: equidistant, where the nearest end switches
    assert torch.all(grad[mid] * torch.where(H[mid] < 0.5, 1.0, -1.0).double() > 0)
    with pytest.raises(ConfigError, match="low <= high"):
        get_saturating("bad", intervals=[(1.0, 0.0)])
    with pytest.raises(ConfigError, match="nonlinearity"):
        psi_c(H, "softsign")


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))


def test_penalty_sums_psi_c_over_layers_and_units_and_averages_over_the_batch():
    model = _mlp().train()
    reg = SaturationPenalty(model, 0.5, "relu", warmup_epochs=0)
    x = torch.randn(7, 6)
    model(x)
    h1 = model[1](x)
    h2 = model[3](torch.relu(h1))
    expected = 0.5 * (torch.relu(h1).sum(1).mean() + torch.relu(h2).sum(1).mean())
    assert torch.allclose(reg.penalty(model), expected)
    assert float(reg.penalty(model)) == 0.0  # consumed: nothing recorded since
    with torch.no_grad():
        model(x)  # validation forwards are not recorded
    assert float(reg.penalty(model)) == 0.0
    reg.remove()
    model(x)
    assert float(reg.penalty(model)) == 0.0


def test_lambda_is_annealed_by_the_schedule_and_resumes():
    model = _mlp()
    reg = SaturationPenalty(model, 2.0, warmup_epochs=4)
    assert reg.current_strength == 0.0
    reg.on_epoch_end(model, 1)
    assert reg.current_strength == 0.5
    reg.on_epoch_end(model, 9)
    assert reg.current_strength == 2.0
    other = SaturationPenalty(_mlp(), 2.0, warmup_epochs=4)
    other.load_state_dict(reg.state_dict())
    assert other.current_strength == 2.0
    assert linear_ramp(0)(0) == 1.0
    with pytest.raises(ConfigError, match="lambda"):
        SaturationPenalty(model, -1.0)
    with pytest.raises(ConfigError, match="no sigmoid modules"):
        SaturationPenalty(model, 1.0, "sigmoid")


def test_training_with_the_penalty_through_fit_saturates_units_and_keeps_accuracy():
    from neuromodels.analysis.robustness import saturation_fraction
    from neuromodels.datasets.images import load_digits
    from neuromodels.fitting import fit
    from neuromodels.fitting.classification import accuracy

    images = load_digits()
    x = torch.from_numpy(images.values).float()[:, None]
    y = torch.from_numpy(images["label"].values).long()
    results = {}
    for strength in (0.0, 0.05):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
        regs = [SaturationPenalty(model, strength, warmup_epochs=3)] if strength else []
        history = fit(
            model,
            (x[:1200], y[:1200]),
            loss=nn.functional.cross_entropy,
            epochs=25,
            batch_size=64,
            lr=3e-3,
            patience=None,
            regularisers=regs,
            progress=False,
            seed=0,
        )
        results[strength] = (
            accuracy(model, (x[1200:], y[1200:])),
            float(saturation_fraction(model, x[1200:]).mean()),
            history,
        )
    assert results[0.05][1] > results[0.0][1] + 0.2  # many more units in the flat region
    assert results[0.05][0] > results[0.0][0] - 0.05  # at little cost in accuracy
    assert results[0.05][2]["train_penalty"][0] == 0.0  # lambda starts at 0 (ramp)
    assert results[0.05][2]["train_penalty"][-1] > 0.0

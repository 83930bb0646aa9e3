"""The denoising-diffusion baseline: schedule, the oracle sampler on Gaussian data, training lowers the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuromodels.diffusion import DiffusionMLP
from neuromodels.errors import ConfigError
from neuromodels.fitting.walkback import train_diffusion


def test_schedule_and_oracle_sampler_recover_gaussian_data():
    model = DiffusionMLP(1, n_steps=100)
    np.testing.assert_allclose(model.alpha_bars.numpy(), np.cumprod(1 - model.betas.double().numpy()), rtol=1e-5)
    model.shift.fill_(3.0)
    model.scale.fill_(2.0)

    # for standardised data N(0, 1) the optimal noise prediction is E[eps | x_t] = sqrt(1 - abar_t) x_t, and
    # sigma_t^2 = beta_t is the optimal reverse variance (Ho et al. Sec. 3.2): samples must be N(3, 2^2)
    class Oracle(DiffusionMLP):
        def forward(self, x, t):
            return (1 - self.alpha_bars[t])[:, None].sqrt() * x

    oracle = Oracle(1, n_steps=100)
    oracle.load_state_dict(model.state_dict())
    samples = oracle.sample(20_000, generator=torch.Generator().manual_seed(0)).numpy()[:, 0]
    assert samples.mean() == pytest.approx(3.0, abs=0.05)
    assert samples.std() == pytest.approx(2.0, rel=0.03)


def test_training_lowers_the_loss_and_bad_settings():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(2000, 2)).astype(np.float32) * [1.0, 0.1]
    torch.manual_seed(0)
    model = DiffusionMLP(2, hidden=(32, 32), n_steps=20)
    history = train_diffusion(model, data, epochs=5, batch_size=100, lr=1e-2, progress=False)
    assert history["train_loss"][-1] < 0.9 * history["train_loss"][0]
    with pytest.raises(ConfigError, match="n_steps"):
        DiffusionMLP(2, n_steps=0)


def test_clipped_sampler_is_the_same_chain_without_an_active_box_and_stays_in_the_box():
    """Ho et al.'s clip_denoised sampler: the posterior mean of q(x_{t-1} | x_t, x0) from the predicted x0 equals
    Algorithm 2's eps form when nothing is clipped, and the last step returns the clipped x0."""
    torch.manual_seed(0)
    model = DiffusionMLP(3, hidden=(16,), n_steps=20)
    model.fit_scaling(torch.rand(200, 3))
    plain = model.sample(50, generator=torch.Generator().manual_seed(1))
    wide = model.sample(50, generator=torch.Generator().manual_seed(1), box=(-1e6, 1e6))
    torch.testing.assert_close(wide, plain, rtol=1e-4, atol=1e-4)
    boxed = model.sample(50, generator=torch.Generator().manual_seed(1), box=(0.0, 1.0))
    assert boxed.min() >= -1e-6 and boxed.max() <= 1 + 1e-6
    assert plain.min() < 0 or plain.max() > 1  # the untrained model's plain samples leave the box
    with pytest.raises(ConfigError, match="low < high"):
        model.sample(5, box=(1.0, 0.0))

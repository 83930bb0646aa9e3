"""A denoising-diffusion baseline (Sohl-Dickstein et al. 2015; Ho, Jain & Abbeel 2020, arXiv:2006.11239).

The method users compare Variational Walkback with today: a *fixed* noising process
``q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)`` with a linear ``beta`` schedule (Ho et al. Sec. 4:
``beta_1 = 1e-4`` to ``beta_T = 0.02``; we keep the end points and scale them to fewer steps) and a
*learned* reverse process that predicts the noise ``eps_theta(x_t, t)`` (Ho et al. Eq. 14, the "simple"
loss; Algorithm 1 for training, Algorithm 2 for sampling with ``sigma_t^2 = beta_t``).

``(batch, dim)`` states, like :class:`~neuromodels.walkback.TransitionOperator`; an MLP with a sinusoidal
step embedding. Training lives in :func:`neuromodels.fitting.walkback.train_diffusion` beside the Walkback
trainer, sharing its data handling and seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from neuromodels.errors import ConfigError

__all__ = ["DiffusionMLP"]


class DiffusionMLP(nn.Module):
    """``eps_theta(x_t, t)``: ``(batch, dim), (batch,) int -> (batch, dim)``, with the fixed schedule as buffers."""

    def __init__(
        self,
        dim: int,
        *,
        hidden: Sequence[int] = (128, 128),
        n_steps: int = 100,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        embedding: int = 16,
    ) -> None:
        super().__init__()
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
            raise ConfigError(f"n_steps must be an integer >= 1, got {n_steps!r}")
        if not 0 < beta_start <= beta_end < 1:
            raise ConfigError(f"need 0 < beta_start <= beta_end < 1, got {beta_start!r}, {beta_end!r}")
        self.dim, self.n_steps, self.embedding = dim, n_steps, embedding
        # Ho et al. use 1e-4..0.02 over 1,000 steps; over fewer steps the same total noise needs larger betas
        scale = 1000 / n_steps
        betas = torch.linspace(beta_start * scale, min(beta_end * scale, 0.999), n_steps, dtype=torch.float64)
        self.register_buffer("betas", betas.float())
        self.register_buffer("alpha_bars", torch.cumprod(1 - betas, 0).float())
        widths = [dim + embedding, *hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.out = nn.Linear(widths[-1], dim)
        # data are standardised (per-feature mean, one global scale) before noising, as Ho et al. rescale
        # pixels to [-1, 1]; set from the training data by fit_scaling
        self.register_buffer("shift", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(()))

    @torch.no_grad()
    def fit_scaling(self, x: torch.Tensor) -> None:
        """Centre each feature and divide by the data's overall standard deviation (``(n, dim)`` training data)."""
        self.shift.copy_(x.mean(0))
        self.scale.copy_((x - x.mean(0)).std().clamp_min(1e-6))

    def _embed(self, t: torch.Tensor) -> torch.Tensor:
        half = self.embedding // 2
        freqs = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=torch.float32) / max(half - 1, 1))
        angles = t.float()[:, None] * freqs[None, :]
        return torch.cat([torch.sin(angles), torch.cos(angles)], 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = torch.cat([x, self._embed(t)], 1)
        for layer in self.layers:
            h = F.silu(layer(h))
        return self.out(h)

    def loss(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ho et al. Algorithm 1: ``|eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t)|^2``."""
        x0 = (x0 - self.shift) / self.scale
        t = torch.randint(0, self.n_steps, (len(x0),), generator=generator)
        eps = torch.randn(x0.shape, generator=generator)
        abar = self.alpha_bars[t][:, None]
        return F.mse_loss(self(abar.sqrt() * x0 + (1 - abar).sqrt() * eps, t), eps)

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, *, box: tuple[float, float] | None = None
    ) -> torch.Tensor:
        """Ho et al. Algorithm 2 (``sigma_t^2 = beta_t``): ``x_T ~ N(0, I)`` down to ``x_0`` ``(n, dim)``.

        ``box = (low, high)`` (in data units, e.g. ``(0, 1)`` for pixels): at each step the predicted clean data
        ``x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)`` is clipped to the box and the step uses the
        posterior mean of ``q(x_{t-1} | x_t, x0)`` (Ho et al. eq. 7), as their sampler's ``clip_denoised`` does;
        without a box this is the same mean written with ``eps`` (Algorithm 2, line 4)."""
        if box is not None:
            low, high = (float(v) for v in box)
            if not low < high:
                raise ConfigError(f"box must be (low, high) with low < high, got {box!r}")
            low_std, high_std = (low - self.shift) / self.scale, (high - self.shift) / self.scale
        x = torch.randn((n, self.dim), generator=generator)
        for step in reversed(range(self.n_steps)):
            beta, abar = self.betas[step], self.alpha_bars[step]
            eps = self(x, torch.full((n,), step, dtype=torch.long))
            if box is None:
                x = (x - beta / (1 - abar).sqrt() * eps) / (1 - beta).sqrt()
            else:
                x0 = torch.clamp((x - (1 - abar).sqrt() * eps) / abar.sqrt(), low_std, high_std)
                abar_prev = self.alpha_bars[step - 1] if step > 0 else torch.ones(())
                x = (abar_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - abar_prev) * x) / (1 - abar)
            if step > 0:
                x = x + beta.sqrt() * torch.randn(x.shape, generator=generator)
        return x * self.scale + self.shift

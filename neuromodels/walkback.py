"""Variational Walkback (Goyal, Ke, Ganguli & Bengio, NeurIPS 2017, arXiv:1711.02282): a learned transition operator.

The model is a stochastic transition operator, not an energy: at temperature ``T``

    p_T(s' | s) = N(s'; alpha * s + (1 - alpha) * mu_theta(s), sigma_theta(s)^2 * T)

with ``sigma_theta(s) = sigma * softplus(head(s))`` (learned) or ``sigma`` (fixed); the standard deviation grows
with ``sqrt(T)`` as in the authors' code (``train_spiral_online.py`` lines 293-298: ``sigma = args.sigma *
softplus(sigma) * sqrt(temperature)``, mean ``alpha * x + (1 - alpha) * mu``). Training (see
:mod:`neuromodels.fitting.walkback`) heats a data point for ``K`` steps on the schedule of
:func:`temperature_schedule` and teaches the same operator to walk each step back; generation starts from
``p_0`` (a Gaussian fitted to the heated states) and cools to ``T = 1``.

Sources: only the paper's abstract and a few quoted sentences of its body could be read here (docs/walkback.md,
"What we could not check"); the operator's form is the issue's and the authors' code's, and no equation number
is cited because none could be checked.

The variational lower bound on ``log p(x)`` (the paper's bound ``L``; the generative path
``p(s_0..s_K) = p_0(s_K) prod_t p_{T_t}(s_{t-1} | s_t)`` against the heating path
``q(s_1..s_K | s_0) = prod_t p_{T_t}(s_t | s_{t-1})``)::

    log p(x) >= E_q[ log p_0(s_K) + sum_{t=1..K} ( log p_{T_t}(s_{t-1} | s_t) - log p_{T_t}(s_t | s_{t-1}) ) ]

is :func:`variational_bound`. Two per-step objectives (:func:`step_log_likelihood`):

* ``"paper"``: ``log p_{T_t}(s_{t-1} | s_t)``, the operator applied to ``s_t`` and the previous state scored
  under it (Algorithm 1's update);
* ``"released"``: the authors' code as released (``train_spiral_online.py`` line 299): the operator is applied
  to ``s_{t-1}`` and ``s_{t-1}`` itself is scored under that Gaussian, with the standard deviation used as a
  variance (``-0.5 * (log 2 pi + log sigma + (x - mean)^2 / sigma)``), while sampling uses it as a standard
  deviation (line 297). Provided as an ablation; it is not a bound on anything.

States are flattened vectors ``(batch, dim)``; image operators (``architecture="conv"``) reshape them to
``image_shape`` inside. Per-step normalisation (``per_step_norm=True`` or ``"batch"``) normalises every hidden
layer over the batch, with that batch's statistics, then applies a gain and bias chosen by the heating step, as
the authors' ``train_mog_different_batchnorm.py`` (lines 141-146, 157-161) and
``train_cifar_online_diff_bnorm.py`` (line 154) do (their README: "different batchnorm parameters for different
steps ... improves the result considerably"). Each draw then depends on the other states of its batch, in
training and in generation alike, so generate batches of hundreds of states, not single ones.
``per_step_norm="features"`` normalises each example over its features instead (the code's ``ln``,
``train_spiral_online.py`` lines 275-276, defined but unused there); it loses the scale of a low-dimensional
input and diverges on the spiral (docs/walkback.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from neuromodels.errors import ConfigError

__all__ = [
    "TransitionOperator",
    "temperature_schedule",
    "gaussian_log_density",
    "step_log_likelihood",
    "variational_bound",
    "OBJECTIVES",
    "PER_STEP_NORMS",
]

OBJECTIVES = ("paper", "released")
_LOG_2PI = math.log(2 * math.pi)


def temperature_schedule(
    n_steps: int, *, steps_at_one: int = 1, factor: float = 1.1, max_temperature: float | None = None
) -> list[float]:
    """Temperatures ``T_1..T_K`` of the heating walk: ``steps_at_one`` steps at ``T = 1``, then each step
    multiplies ``T`` by ``factor``, capped at ``max_temperature``. This is the schedule as issue 16 words the
    paper's Algorithm 1 ("N1 steps at T = 1, then multiply by the factor up to T_max"); the algorithm's own lines
    could not be read here. With ``steps_at_one=1`` and no cap it is the released code's
    ``temperature *= temperature_factor`` after the first step (``train_spiral_online.py`` lines 314-321)."""
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ConfigError(f"n_steps must be an integer >= 1 (the number of heating steps), got {n_steps!r}")
    if isinstance(steps_at_one, bool) or not isinstance(steps_at_one, int) or steps_at_one < 0:
        raise ConfigError(f"steps_at_one must be an integer >= 0, got {steps_at_one!r}")
    if not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor > 1):
        raise ConfigError(f"temperature_factor must be a number > 1 (the heating factor), got {factor!r}")
    if max_temperature is not None and not (math.isfinite(max_temperature) and max_temperature >= 1):
        raise ConfigError(f"max_temperature must be >= 1, got {max_temperature!r}")
    temperatures, temperature = [], 1.0
    for step in range(n_steps):
        if step >= steps_at_one:
            temperature *= factor
        if max_temperature is not None:
            temperature = min(temperature, float(max_temperature))
        temperatures.append(temperature)
    return temperatures


def gaussian_log_density(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``log N(x; mean, diag(std^2))`` summed over the last dimension: ``(batch, dim) -> (batch,)``."""
    z = (x - mean) / std
    return -0.5 * (z.square() + 2 * torch.log(std) + _LOG_2PI).sum(-1)


PER_STEP_NORMS = ("batch", "features")


class _StepNorm(nn.Module):
    """Normalise, then a gain and bias chosen by the heating step.

    ``"batch"`` (the authors' per-step normalisation, ``train_mog_different_batchnorm.py`` lines 141-146 and
    ``train_cifar_online_diff_bnorm.py`` line 154): each unit over the batch (and, for images, the spatial)
    axes with that batch's own statistics, ``(h - mean) / (1e-4 + std)``, in training and in generation alike
    (the code keeps no running averages). ``"features"``: each example over its features, the code's ``ln``
    (``train_spiral_online.py`` lines 275-276, defined there but not used); it discards the scale of the layer's
    input, so on low-dimensional states (the 2-D spiral) the first layer cannot tell ``s`` from ``2 s``.
    """

    def __init__(self, width: int, n_steps: int, channels: bool, mode: str = "batch") -> None:
        super().__init__()
        self.channels, self.mode = channels, mode
        self.gain = nn.Parameter(torch.ones(n_steps, width))
        self.bias = nn.Parameter(torch.zeros(n_steps, width))

    def forward(self, h: torch.Tensor, step: int) -> torch.Tensor:
        if self.mode == "batch":
            dims = (0, 2, 3) if self.channels else (0,)
            h = (h - h.mean(dims, keepdim=True)) / (1e-4 + h.std(dims, keepdim=True, unbiased=False))
        else:
            dims = tuple(range(1, h.dim()))
            h = (h - h.mean(dims, keepdim=True)) / (0.001 + h.std(dims, keepdim=True))
        index = min(int(step), self.gain.shape[0] - 1)
        shape = (1, -1) + (1,) * (h.dim() - 2) if self.channels else (1, -1)
        return h * self.gain[index].view(shape) + self.bias[index].view(shape)


class TransitionOperator(nn.Module):
    """The Variational Walkback operator ``p_T(s' | s)``: ``(batch, dim), T, step -> mean, std (batch, dim)``.

    Parameters
    ----------
    dim: state size (for images ``prod(image_shape)``).
    hidden: widths of the MLP's hidden layers (``()`` makes ``mu_theta`` linear), or channels of the conv net.
    alpha: weight of the current state in the mean (the code's ``--alpha``, 0.5 in every script).
    sigma: scale of the standard deviation (the code's ``--sigma``; 0.009 on the spiral).
    learn_sigma: learn ``sigma_theta(s) = sigma * softplus(head(s))``; ``False`` fixes it to ``sigma`` (the
        authors' README says the released code does not learn the variance).
    n_steps, steps_at_one, temperature_factor, max_temperature: the heating schedule (:func:`temperature_schedule`).
    per_step_norm: ``False``, ``True`` / ``"batch"`` (the authors' per-step batch normalisation) or
        ``"features"`` (see the module docstring).
    architecture: ``"mlp"`` or ``"conv"`` (needs ``image_shape = (channels, height, width)``).
    """

    def __init__(
        self,
        dim: int,
        *,
        hidden: Sequence[int] = (256, 256),
        alpha: float = 0.5,
        sigma: float = 0.1,
        learn_sigma: bool = True,
        n_steps: int = 30,
        steps_at_one: int = 1,
        temperature_factor: float = 1.1,
        max_temperature: float | None = None,
        per_step_norm: bool | str = False,
        architecture: str = "mlp",
        image_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ConfigError(f"dim must be a positive integer, got {dim!r}")
        if not 0 <= alpha < 1:
            raise ConfigError(f"alpha must be in [0, 1), got {alpha!r}")
        if not (sigma > 0 and math.isfinite(sigma)):
            raise ConfigError(f"sigma must be a positive number, got {sigma!r}")
        norm = "batch" if per_step_norm is True else (None if per_step_norm is False else per_step_norm)
        if norm is not None and norm not in PER_STEP_NORMS:
            raise ConfigError(
                f"per_step_norm must be False, True (= 'batch') or one of {PER_STEP_NORMS}, got {per_step_norm!r}"
            )
        if architecture not in ("mlp", "conv"):
            raise ConfigError(f"architecture must be 'mlp' or 'conv', got {architecture!r}")
        if architecture == "conv" and (image_shape is None or len(image_shape) != 3 or math.prod(image_shape) != dim):
            raise ConfigError(
                f"architecture='conv' needs image_shape (channels, height, width) with product {dim}, "
                f"got {image_shape!r}"
            )
        self.schedule = temperature_schedule(
            n_steps, steps_at_one=steps_at_one, factor=temperature_factor, max_temperature=max_temperature
        )
        self._config = {
            "dim": dim,
            "hidden": [int(h) for h in hidden],
            "alpha": float(alpha),
            "sigma": float(sigma),
            "learn_sigma": bool(learn_sigma),
            "n_steps": n_steps,
            "steps_at_one": steps_at_one,
            "temperature_factor": float(temperature_factor),
            "max_temperature": None if max_temperature is None else float(max_temperature),
            "per_step_norm": False if norm is None else norm,
            "architecture": architecture,
            "image_shape": None if image_shape is None else [int(v) for v in image_shape],
        }
        self.dim, self.alpha, self.sigma, self.learn_sigma = dim, float(alpha), float(sigma), bool(learn_sigma)
        self.architecture = architecture
        self.image_shape = None if image_shape is None else tuple(int(v) for v in image_shape)
        conv = architecture == "conv"
        widths = [self.image_shape[0] if conv else dim, *[int(h) for h in hidden]]  # type: ignore[index]
        self.layers = nn.ModuleList(
            nn.Conv2d(a, b, 3, padding=1) if conv else nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])
        )
        self.norms = None if norm is None else nn.ModuleList(_StepNorm(b, n_steps, conv, norm) for b in widths[1:])
        out = self.image_shape[0] if conv else dim  # type: ignore[index]
        self.mu_head = nn.Conv2d(widths[-1], out, 3, padding=1) if conv else nn.Linear(widths[-1], out)
        self.sigma_head = (
            (nn.Conv2d(widths[-1], out, 3, padding=1) if conv else nn.Linear(widths[-1], out)) if learn_sigma else None
        )
        for head in (self.mu_head, self.sigma_head):
            if head is not None:  # small output weights, zero biases (the code's norm_weight(scale=0.01))
                nn.init.normal_(head.weight, std=0.01)
                nn.init.zeros_(head.bias)
        # p_0: the broad Gaussian at the end of the heating walk, fitted to heated states (fit_p0)
        self.register_buffer("p0_mean", torch.zeros(dim))
        self.register_buffer("p0_std", torch.ones(dim))

    def config(self) -> dict[str, Any]:
        """The constructor's arguments (JSON-ready): ``TransitionOperator(**op.config())`` rebuilds it."""
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self._config.items()}

    @property
    def n_steps(self) -> int:
        return len(self.schedule)

    def forward(self, s: torch.Tensor, temperature: float, step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of ``p_T(. | s)``: ``(batch, dim) -> (batch, dim), (batch, dim)``."""
        h = s.view(-1, *self.image_shape) if self.architecture == "conv" else s  # type: ignore[misc]
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if self.norms is not None:
                h = self.norms[i](h, step)
            h = F.leaky_relu(h, 0.02)  # the code's relu(., alpha=0.02), lines 279-280
        mu = self.mu_head(h).reshape(len(s), -1)
        mean = self.alpha * s + (1 - self.alpha) * mu
        scale = self.sigma * math.sqrt(temperature)
        if self.sigma_head is None:
            return mean, torch.full_like(mean, scale)
        return mean, scale * F.softplus(self.sigma_head(h).reshape(len(s), -1))

    def log_prob(self, target: torch.Tensor, given: torch.Tensor, temperature: float, step: int = 0) -> torch.Tensor:
        """``log p_T(target | given)``: ``(batch, dim), (batch, dim) -> (batch,)``."""
        mean, std = self(given, temperature, step)
        return gaussian_log_density(target, mean, std)

    def sample_step(
        self, s: torch.Tensor, temperature: float, step: int = 0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """One draw ``s' ~ p_T(. | s)``, without gradient (the sampled states are constants of the objective)."""
        with torch.no_grad():
            mean, std = self(s, temperature, step)
            noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
            return mean + std * noise

    @torch.no_grad()
    def heat(self, x: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """The heating walk from data: ``[s_0 = x, s_1, ..., s_K]`` on :attr:`schedule`."""
        states = [x]
        for step, temperature in enumerate(self.schedule):
            states.append(self.sample_step(states[-1], temperature, step, generator))
        return states

    @torch.no_grad()
    def fit_p0(self, heated: torch.Tensor) -> None:
        """Fit ``p_0`` (a diagonal Gaussian) to heated states ``s_K`` ``(n, dim)``.

        The paper's ``p*(s_K)`` is "a broad Gaussian ... whose variance is initially equal to the total data
        variance sigma^2_max (but can be later adapted to match the final samples from the inference
        trajectories)" (as quoted by a reproducibility summary; docs/walkback.md); this is the adapted form, as
        in the authors' code (``train_spiral_online.py`` lines 581-582 and 607).
        """
        self.p0_mean.copy_(heated.mean(0))
        self.p0_std.copy_(heated.std(0).clamp_min(1e-6))

    def p0_log_prob(self, s: torch.Tensor) -> torch.Tensor:
        return gaussian_log_density(s, self.p0_mean, self.p0_std)

    @torch.no_grad()
    def generate(
        self,
        n: int,
        *,
        extra_steps: int = 0,
        generator: torch.Generator | None = None,
        start: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Cooling chain: ``s_K ~ p_0`` (or ``start``), then ``s_{t-1} ~ p_{T_t}(. | s_t)`` for ``t = K..1``,
        then ``extra_steps`` more steps at ``T = 1``. Returns every state, ``[s_K, ..., s_0, extra ...]``."""
        if extra_steps < 0:
            raise ConfigError(f"extra_steps must be >= 0, got {extra_steps}")
        size = n if start is None else start.shape[0]
        if self._config["per_step_norm"] == "batch" and size < 2:
            raise ConfigError(
                f"generating {size} state(s) at once: per-step batch normalisation uses the statistics of the "
                "states generated together (the authors' form), so draw at least 2 (better, hundreds) at a time"
            )
        if start is None:
            noise = torch.randn((n, self.dim), generator=generator, dtype=self.p0_mean.dtype)
            start = self.p0_mean + self.p0_std * noise
        chain = [start]
        for step in reversed(range(self.n_steps)):
            chain.append(self.sample_step(chain[-1], self.schedule[step], step, generator))
        for _ in range(extra_steps):
            chain.append(self.sample_step(chain[-1], 1.0, 0, generator))
        return chain


def step_log_likelihood(
    model: TransitionOperator,
    previous: torch.Tensor,
    current: torch.Tensor,
    temperature: float,
    step: int,
    objective: str = "paper",
) -> torch.Tensor:
    """The per-example term that one heating step maximises: ``(batch, dim), (batch, dim) -> (batch,)``.

    ``previous = s_{t-1}``, ``current = s_t`` (a draw of ``p_{T_t}(. | s_{t-1})``); both are treated as
    constants (detached). ``"paper"``: ``log p_{T_t}(s_{t-1} | s_t)``; ``"released"``: the released code's term
    (module docstring).
    """
    previous, current = previous.detach(), current.detach()
    if objective == "paper":
        return model.log_prob(previous, current, temperature, step)
    if objective == "released":
        mean, sigma = model(previous, temperature, step)
        return -0.5 * (_LOG_2PI + torch.log(sigma) + (previous - mean).square() / sigma).sum(-1)
    raise ConfigError(f"objective must be one of {OBJECTIVES}, got {objective!r}")


@torch.no_grad()
def variational_bound(
    model: TransitionOperator, x: torch.Tensor, *, generator: torch.Generator | None = None, n_paths: int = 1
) -> torch.Tensor:
    """Per-example variational lower bound on ``log p(x)`` in nats ``(batch,)``, averaged over ``n_paths``
    heating paths (module docstring; the single-path estimator is unbiased for the bound)."""
    total = torch.zeros(len(x), dtype=x.dtype)
    for _ in range(n_paths):
        states = model.heat(x, generator)
        bound = model.p0_log_prob(states[-1])
        for step, temperature in enumerate(model.schedule):
            previous, current = states[step], states[step + 1]
            bound = bound + model.log_prob(previous, current, temperature, step)
            bound = bound - model.log_prob(current, previous, temperature, step)
        total += bound
    return total / n_paths

"""Elastic weight consolidation (Kirkpatrick et al. 2017, PNAS 114:3521) and its online variant (Schwarz et al.
2018, "Progress & compress", ICML, section 3.2) as :func:`fit` regularisers.

After task ``t`` the diagonal Fisher information of the model's predictive distribution on the task's inputs,
``F_t = mean_n sum_y p(y | x_n) (d log p(y | x_n) / d theta)**2`` (the expectation over the model's own labels,
computed exactly over the classes rather than by sampling), is stored with the weights ``theta*_t``.

* EWC (Kirkpatrick eq. 3, one penalty per old task): ``(lam / 2) sum_t sum_k F_t,k (theta_k - theta*_t,k)**2``.
  Stored as the equivalent single quadratic ``(lam / 2) sum_k [A_k (theta_k - m_k)**2] + const`` with
  ``A = sum_t F_t``, ``m = sum_t F_t theta*_t / A`` (same value and gradient, memory of one task).
* online EWC (Schwarz eq. 8): ``F~ = gamma F~ + F_t``, ``theta* = theta*_t``, penalty
  ``(lam / 2) sum_k F~_k (theta_k - theta*_k)**2``.

Outputs are taken as logits of a classifier (``log_softmax`` over the last dimension).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from neuromodels.errors import ConfigError
from neuromodels.fitting.continual.si import _diff, _number, tracked_parameters

__all__ = ["EWC", "diagonal_fisher"]


def diagonal_fisher(
    model: torch.nn.Module, dataset: Any, names: list[str], *, n_samples: int | None = 1000, chunk: int = 16
) -> list[torch.Tensor]:
    """The diagonal Fisher of ``model``'s class distribution over the first ``n_samples`` items of ``dataset``
    (all with ``None``), for the parameters ``names``; one tensor per parameter, shaped like it."""
    from torch.func import functional_call, grad, vmap

    from neuromodels.fitting.loop import as_dataset, batches

    dataset = as_dataset(dataset, "Fisher data")
    n = len(dataset) if n_samples is None else min(int(n_samples), len(dataset))
    named = dict(model.named_parameters())
    params = {name: named[name].detach() for name in names}
    was_training = model.training
    model.eval()

    def log_prob(p: dict[str, torch.Tensor], x: torch.Tensor, rest: tuple, label: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, p, (x.unsqueeze(0), *rest))
        return torch.log_softmax(logits, dim=-1)[0, label]

    # per-sample gradients over the first input; further inputs (a task index) are shared within a chunk
    per_sample = vmap(grad(log_prob), in_dims=(None, 0, None, None))
    fisher = [torch.zeros_like(p) for p in params.values()]
    try:
        for inputs, _ in batches(dataset, torch.arange(n), chunk):
            inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
            with torch.no_grad():
                probs = torch.softmax(model(*inputs), dim=-1)
            rest = tuple(extra[:1] for extra in inputs[1:])
            if any(not torch.equal(extra, extra[:1].expand_as(extra)) for extra in inputs[1:]):
                raise ConfigError("diagonal_fisher: inputs beyond the first must be equal within a task")
            for label in range(probs.shape[-1]):
                if not torch.isfinite(probs[:, label]).all() or not (probs[:, label] > 0).any():
                    continue  # a unit outside this task's head
                grads = per_sample(params, inputs[0], rest, torch.tensor(label))
                weight = probs[:, label]
                for f, name in zip(fisher, names):
                    g = grads[name]
                    f.add_((weight.view(-1, *([1] * (g.dim() - 1))) * g.square()).sum(0))
    finally:
        model.train(was_training)
    return [f / n for f in fisher]


class EWC:
    """Elastic weight consolidation; ``online=True`` for online EWC (module docstring).

    Parameters
    ----------
    model: the network (its trainable parameters, filtered by ``include`` / ``exclude_norm``, are tracked).
    lam: penalty strength (>= 0). gamma: online EWC's decay of old Fisher information, in (0, 1].
    n_samples: inputs of each task used to estimate its Fisher (``None``: all).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        lam: float = 100.0,
        *,
        online: bool = False,
        gamma: float = 1.0,
        n_samples: int | None = 1000,
        exclude_norm: bool = False,
        include: Callable[[str], bool] | None = None,
    ) -> None:
        self.lam = _number(lam, "lam")
        self.gamma = _number(gamma, "gamma")
        if self.lam < 0:
            raise ConfigError(f"lam (the EWC penalty strength) must be >= 0, got {lam}")
        if not 0 < self.gamma <= 1:
            raise ConfigError(f"gamma must be in (0, 1], got {gamma}")
        if n_samples is not None and int(n_samples) < 1:
            raise ConfigError(f"n_samples must be >= 1 or None, got {n_samples}")
        self.online = bool(online)
        self.n_samples = None if n_samples is None else int(n_samples)
        self.exclude_norm = bool(exclude_norm)
        params = tracked_parameters(model, exclude_norm=self.exclude_norm, include=include)
        if not params:
            raise ConfigError("EWC: the model has no trainable parameter to track")
        self.names = [name for name, _ in params]
        self.precision_ = [torch.zeros_like(p.detach()) for _, p in params]  # A (EWC) or F~ (online)
        self.mean_ = [p.detach().clone() for _, p in params]  # m (EWC) or theta* (online)
        self.constant_ = 0.0
        self.tasks_ = 0

    def settings(self) -> dict[str, Any]:
        return {
            "method": "online-ewc" if self.online else "ewc",
            "lam": self.lam,
            "gamma": self.gamma,
            "n_samples": self.n_samples,
            "exclude_norm": self.exclude_norm,
            "parameters": list(self.names),
        }

    def _params(self, model: torch.nn.Module) -> list[torch.nn.Parameter]:
        named = dict(model.named_parameters())
        return [named[n] for n in self.names]

    def penalty(self, model: torch.nn.Module) -> torch.Tensor:
        params = self._params(model)
        if self.tasks_ == 0 or self.lam == 0.0:
            return params[0].new_zeros(())
        total = params[0].new_zeros(())
        for p, precision, mean in zip(params, self.precision_, self.mean_):
            total = total + (precision * (p - mean).square()).sum()
        return (self.lam / 2) * (total + self.constant_)

    @torch.no_grad()
    def end_task(self, model: torch.nn.Module, train: Any) -> None:
        """Estimate the task's Fisher on ``train`` at the current weights and fold it in."""
        fisher = diagonal_fisher(model, train, self.names, n_samples=self.n_samples)
        params = [p.detach() for p in self._params(model)]
        if self.online:
            self.precision_ = [self.gamma * a + f for a, f in zip(self.precision_, fisher)]
            self.mean_ = [p.clone() for p in params]
        else:
            constant = self.constant_
            new_precision, new_mean = [], []
            for a, m, f, p in zip(self.precision_, self.mean_, fisher, params):
                total = a + f
                mean = torch.where(total > 0, (a * m + f * p) / torch.where(total > 0, total, 1), p)
                # sum_t F_t theta_t**2 - A m**2, accumulated: keeps the penalty's value equal to the per-task sum
                constant += float((a * m.square() + f * p.square() - total * mean.square()).double().sum())
                new_precision.append(total)
                new_mean.append(mean)
            self.precision_, self.mean_, self.constant_ = new_precision, new_mean, constant
        self.tasks_ += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings(),
            "tasks": self.tasks_,
            "precision": list(self.precision_),
            "mean": list(self.mean_),
            "constant": self.constant_,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("settings") != self.settings():
            raise ConfigError(
                f"EWC: the checkpoint was written with other settings "
                f"({_diff(state.get('settings') or {}, self.settings())})"
            )
        self.tasks_ = int(state["tasks"])
        self.precision_ = [t.detach().clone() for t in state["precision"]]
        self.mean_ = [t.detach().clone() for t in state["mean"]]
        self.constant_ = float(state["constant"])

"""Synaptic Intelligence (Zenke, Poole & Ganguli, ICML 2017, arXiv:1703.04200) as a :func:`fit` regulariser.

The rule, as the authors' code implements it (``ganguli-lab/pathint``, ``pathint/protocols.py``
``PATH_INT_PROTOCOL`` with ``omega_decay='sum'``, ``pathint/optimizers.py`` ``KOOptimizer``):

* every optimiser step (paper eq. 3, ``step_updates``): ``omega_k += -g_k * delta_k``, where ``g`` is the
  gradient of the *unregularised* task loss (``vars['unreg_grads']``) and ``delta`` the update the optimiser
  actually made (``vars['deltas']``);
* at the end of task ``mu`` (paper eq. 5, ``task_updates``):
  ``Omega_k = relu(Omega_k + omega_k / ((theta_k(t_mu) - theta_k(t_{mu-1}))**2 + xi))``, then
  ``omega = 0`` and ``theta~ = theta`` (``cweights``);
* the surrogate loss (paper eq. 4, ``pathint/regularizers.py`` ``quadratic_regularizer``):
  ``L_mu + c * sum_k Omega_k (theta~_k - theta_k)**2`` (no factor 1/2).

Switches reproduce the conventions of the popular PyTorch versions (``preset``):

* ``gradient="total"``: ``g`` is the gradient of the regularised loss (Avalanche ``SynapticIntelligencePlugin``
  ``post_update`` reads ``param.grad`` after ``backward`` of the total loss; GMvandeVen/continual-learning
  ``W[n].add_(-p.grad * (p - p_old))`` likewise). This lets the penalty's own pull enter ``omega``
  (Avalanche issues #106, #734).
* ``floor=False``: no ``relu`` (Avalanche, van de Ven). ``clamp=0.001``: ``Omega = min(accumulator, clamp)``
  on a copy, the accumulator itself unclamped (Avalanche ``update_ewc_data(..., clip_to=0.001)``).
* ``half=True``: penalty ``(c / 2) sum Omega (theta - theta~)**2`` (Avalanche ``compute_ewc_loss``).
* ``damping`` (the paper's ``xi``): 1e-7 in Avalanche, 0.1 in van de Ven's options.
* ``exclude_norm=True``: parameters of batch/instance-norm layers are not tracked nor penalised (Avalanche
  ``not_excluded_parameters``, ``torch.nn.modules.batchnorm._NormBase``). ``include``: any name filter.

The accumulator ``A`` is updated as ``A <- A + omega / (dtheta**2 + xi)``, floored at 0 when ``floor``
(pathint stores the floored value, ``relu(prev + new)``), and ``Omega = min(A, clamp)`` when ``clamp`` is set.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from neuromodels.errors import ConfigError

__all__ = ["SI_PRESETS", "SynapticIntelligence", "tracked_parameters"]

# Each peer's conventions, and where they come from (module docstring).
SI_PRESETS: dict[str, dict[str, Any]] = {
    "pathint": {"gradient": "task", "floor": True, "clamp": None, "half": False, "exclude_norm": False},
    "avalanche": {"gradient": "total", "floor": False, "clamp": 1e-3, "half": True, "xi": 1e-7, "exclude_norm": True},
    "van-de-ven": {"gradient": "total", "floor": False, "clamp": None, "half": False, "xi": 0.1, "exclude_norm": False},
}


def tracked_parameters(
    model: torch.nn.Module, *, exclude_norm: bool = False, include: Callable[[str], bool] | None = None
) -> list[tuple[str, torch.nn.Parameter]]:
    """``(name, parameter)`` pairs a continual-learning penalty acts on: trainable, passing ``include``, and
    (with ``exclude_norm``) not owned by a batch- or instance-norm layer."""
    excluded: set[int] = set()
    if exclude_norm:
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._NormBase):
                excluded.update(id(p) for p in module.parameters(recurse=False))
    return [
        (name, p)
        for name, p in model.named_parameters()
        if p.requires_grad and id(p) not in excluded and (include is None or include(name))
    ]


class SynapticIntelligence:
    """Synaptic Intelligence: path-integral importance ``Omega`` and the quadratic surrogate penalty.

    Use as a regulariser of :func:`~neuromodels.fitting.fit`, calling :meth:`end_task` after each task:

    >>> si = SynapticIntelligence(model, c=0.1, xi=0.1)
    >>> for task in tasks:
    ...     fit(model, task.train, loss=cross_entropy, regularisers=[si], ...)
    ...     si.end_task(model)

    Parameters
    ----------
    model: the network; its tracked parameters are fixed here (``include``, ``exclude_norm``).
    c: penalty strength (>= 0; ``c = 0`` is fine-tuning with importance still measured).
    xi: damping of the normalisation ``(dtheta**2 + xi)`` (> 0).
    gradient, floor, clamp, half, exclude_norm, include: the switches of the module docstring; the defaults
        are the authors' rule. ``preset="avalanche"`` or ``"van-de-ven"`` sets them (and ``xi``) as those
        peers do; explicit arguments override the preset.

    Attributes (all saved by :meth:`state_dict`): ``omega_`` (running path integral of the current task),
    ``accumulator_`` and ``importance_`` (``Omega``), ``anchor_`` (``theta~``), ``start_`` (the weights at the
    start of the current task), ``tasks_`` (completed tasks).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        c: float = 1.0,
        xi: float | None = None,
        *,
        gradient: str | None = None,
        floor: bool | None = None,
        clamp: float | None | str = "preset",
        half: bool | None = None,
        exclude_norm: bool | None = None,
        include: Callable[[str], bool] | None = None,
        preset: str = "pathint",
    ) -> None:
        if preset not in SI_PRESETS:
            raise ConfigError(f"preset must be one of {sorted(SI_PRESETS)}, got {preset!r}")
        settings = dict(SI_PRESETS[preset])
        given = {"gradient": gradient, "floor": floor, "half": half, "exclude_norm": exclude_norm, "xi": xi}
        settings.update({k: v for k, v in given.items() if v is not None})
        if clamp != "preset":
            settings["clamp"] = clamp
        settings.setdefault("xi", 1e-3)
        self.c = _number(c, "c")
        self.xi = _number(settings["xi"], "xi")
        if self.c < 0:
            raise ConfigError(f"c (the SI penalty strength) must be >= 0, got {c}")
        if not self.xi > 0:
            raise ConfigError(f"xi (the SI damping) must be > 0, got {settings['xi']}")
        if settings["gradient"] not in ("task", "total"):
            raise ConfigError(f"gradient must be 'task' or 'total', got {settings['gradient']!r}")
        clamp_value = settings.get("clamp")
        if clamp_value is not None and not _number(clamp_value, "clamp") > 0:
            raise ConfigError(f"clamp must be None or > 0, got {clamp_value}")
        self.gradient = settings["gradient"]
        self.floor = bool(settings["floor"])
        self.clamp = None if clamp_value is None else float(clamp_value)
        self.half = bool(settings["half"])
        self.exclude_norm = bool(settings["exclude_norm"])
        self.preset = preset
        params = tracked_parameters(model, exclude_norm=self.exclude_norm, include=include)
        if not params:
            raise ConfigError("SynapticIntelligence: the model has no trainable parameter to track")
        self.names = [name for name, _ in params]
        with torch.no_grad():
            self.omega_ = [torch.zeros_like(p) for _, p in params]
            self.accumulator_ = [torch.zeros_like(p) for _, p in params]
            self.importance_ = [torch.zeros_like(p) for _, p in params]
            self.anchor_ = [p.detach().clone() for _, p in params]
            self.start_ = [p.detach().clone() for _, p in params]
        self.tasks_ = 0
        self._grad = [torch.zeros_like(p) for _, p in params]
        self._before = [torch.zeros_like(p) for _, p in params]
        self._diff: list[torch.Tensor] = []  # the penalty's work buffers, reused every step (see _WeightedSquare)
        self._weighted: list[torch.Tensor] = []

    # ------------------------------------------------------------------------------------------- settings
    def settings(self) -> dict[str, Any]:
        """The rule's settings, as saved in checkpoints and reports."""
        return {
            "method": "si",
            "c": self.c,
            "xi": self.xi,
            "gradient": self.gradient,
            "floor": self.floor,
            "clamp": self.clamp,
            "half": self.half,
            "exclude_norm": self.exclude_norm,
            "parameters": list(self.names),
        }

    @property
    def needs_data_gradient(self) -> bool:
        """``True`` with ``gradient="task"``: :func:`fit` back-propagates the data loss alone first and calls
        :meth:`after_data_backward` before adding the penalties' gradients."""
        return self.gradient == "task"

    def _params(self, model: torch.nn.Module) -> list[torch.nn.Parameter]:
        named = dict(model.named_parameters())
        missing = [n for n in self.names if n not in named]
        if missing:
            raise ConfigError(f"SynapticIntelligence: the model lacks the tracked parameters {missing[:3]}")
        return [named[n] for n in self.names]

    # ---------------------------------------------------------------------------------------- fit's hooks
    def penalty(self, model: torch.nn.Module) -> torch.Tensor:
        """``c * sum_k Omega_k (theta_k - theta~_k)**2`` (``c / 2`` with ``half``); zero before the first task
        ends (no graph then, so ``gradient="task"`` costs nothing extra on the first task)."""
        params = self._params(model)
        if self.tasks_ == 0 or self.c == 0.0:
            return params[0].new_zeros(())
        scale = self.c / 2 if self.half else self.c
        if len(self._diff) != len(params):
            self._diff = [torch.empty_like(p, memory_format=torch.contiguous_format) for p in params]
            self._weighted = [torch.empty_like(p, memory_format=torch.contiguous_format) for p in params]
        terms = [
            _WeightedSquare.apply(p, anchor, importance, scale, diff, weighted)
            for p, importance, anchor, diff, weighted in zip(
                params, self.importance_, self.anchor_, self._diff, self._weighted
            )
        ]
        return torch.stack(terms).sum()

    @torch.no_grad()
    def after_data_backward(self, model: torch.nn.Module) -> None:
        """The gradient of the unregularised loss (pathint's ``unreg_grads``), read before the penalties'."""
        for g, p in zip(self._grad, self._params(model)):
            if p.grad is None:
                g.zero_()
            else:
                g.copy_(p.grad)

    @torch.no_grad()
    def before_step(self, model: torch.nn.Module) -> None:
        params = self._params(model)
        if self.gradient == "total":
            self.after_data_backward(model)  # p.grad now holds the gradient of loss + penalties
        for before, p in zip(self._before, params):
            before.copy_(p)

    @torch.no_grad()
    def on_step(self, model: torch.nn.Module) -> None:
        """``omega += -g * (theta_after - theta_before)``, written as ``g * (theta_before - theta_after)``."""
        for omega, g, before, p in zip(self.omega_, self._grad, self._before, self._params(model)):
            before.sub_(p)
            omega.addcmul_(g, before)

    @torch.no_grad()
    def end_task(self, model: torch.nn.Module) -> None:
        """Consolidate (paper eq. 5): fold ``omega`` into ``Omega``, reset ``omega``, anchor at the weights."""
        for k, p in enumerate(self._params(model)):
            change = p.detach() - self.start_[k]
            self.accumulator_[k].add_(self.omega_[k] / (change.square() + self.xi))
            if self.floor:
                self.accumulator_[k].clamp_(min=0.0)
            self.importance_[k] = (
                self.accumulator_[k].clamp(max=self.clamp) if self.clamp is not None else self.accumulator_[k].clone()
            )
            self.omega_[k].zero_()
            self.anchor_[k] = p.detach().clone()
            self.start_[k] = p.detach().clone()
        self.tasks_ += 1

    def begin_task(self, model: torch.nn.Module) -> None:
        """Start measuring a task's path from the current weights (``end_task`` does this already; call it
        when the weights were changed between tasks, e.g. a new head initialised)."""
        with torch.no_grad():
            self.start_ = [p.detach().clone() for p in self._params(model)]

    def importance(self) -> dict[str, torch.Tensor]:
        """``{parameter name: Omega}``."""
        return dict(zip(self.names, self.importance_))

    # ---------------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings(),
            "tasks": self.tasks_,
            "omega": list(self.omega_),
            "accumulator": list(self.accumulator_),
            "importance": list(self.importance_),
            "anchor": list(self.anchor_),
            "start": list(self.start_),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("settings") != self.settings():
            raise ConfigError(
                "SynapticIntelligence: the checkpoint was written with other settings "
                f"({_diff(state.get('settings') or {}, self.settings())}); use the same settings or a new folder"
            )
        self.tasks_ = int(state["tasks"])
        for key, attr in (
            ("omega", "omega_"),
            ("accumulator", "accumulator_"),
            ("importance", "importance_"),
            ("anchor", "anchor_"),
            ("start", "start_"),
        ):
            setattr(self, attr, [t.detach().clone() for t in state[key]])


class _WeightedSquare(torch.autograd.Function):
    """``scale * sum(w * (p - a)**2)`` with gradient ``2 scale w (p - a)`` for ``p`` only.

    The penalty touches every parameter at every step, so its memory traffic is most of SI's cost: this computes
    it in three passes over the weights into work buffers that live as long as the regulariser (allocating fresh
    weight-sized tensors every step costs more than the arithmetic on CPU). The gradient handed to autograd is
    such a buffer; autograd adds it into ``p.grad`` (or copies it, as the buffer is still referenced here), so it
    is never aliased by ``p.grad``. One graph at a time: call ``penalty`` once per backward pass.
    """

    @staticmethod
    def forward(
        ctx: Any,
        p: torch.Tensor,
        anchor: torch.Tensor,
        weight: torch.Tensor,
        scale: float,
        diff: torch.Tensor,
        weighted: torch.Tensor,
    ) -> torch.Tensor:
        torch.sub(p.detach(), anchor, out=diff)
        torch.mul(weight, diff, out=weighted)
        ctx.weighted = weighted
        ctx.scale = scale
        return torch.dot(weighted.flatten(), diff.flatten()) * scale

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        weighted = ctx.weighted.mul_(grad_output * (2 * ctx.scale))
        return weighted, None, None, None, None, None


def _number(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if math.isnan(number):
        raise ConfigError(f"{name} must be a number, got NaN")
    return number


def _diff(saved: dict[str, Any], current: dict[str, Any]) -> str:
    keys = [k for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]
    return ", ".join(f"{k}: saved {saved.get(k)!r}, now {current.get(k)!r}" for k in keys[:4]) or "unknown"

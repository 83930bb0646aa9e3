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

Cost. The bookkeeping touches all the weights at every step, so its time is memory traffic (docs/continual.md,
Performance). A small C kernel (``_si_kernel.c``, built and cached by ``neuromodels/_ckernels.py`` on first use)
does it in fused passes over each parameter tensor. Hook by hook (a loop that calls ``penalty(model)``): after
the data loss's backward, ``g = grad`` and ``grad += 2 c Omega (theta - theta~)`` (the penalty's gradient, added
here instead of by autograd); after the optimiser's step, ``omega += g * (theta_prev - theta)`` and
``theta_prev = theta`` (the weights after the previous step are the weights before this one, so no copy is made
before the step), summing in the same pass the penalty's value at the new weights, which the next step reports.
Folded (what :func:`~neuromodels.fitting.fit` does, ``penalty(model, folded=True)``): one pass per step after the
data loss's backward does the last step's deferred ``omega`` update, ``theta_prev = theta``, ``g = grad``, the
penalty's gradient and its value at once (11 memory streams instead of 14); ``on_step`` only records the
weights' versions, and the deferred update is applied by the next step's pass, by ``on_epoch_end``, by
``end_task``, or when ``omega_`` is read. Both routes do the same operations per element, so weights and
``omega`` are identical. Each line of the kernel is the IEEE operation of the torch code that runs without a C
compiler (or with ``NEUROMODELS_NO_COMPILE=1``, or for a tensor that is not a contiguous float32/float64 CPU
tensor): the two give identical weights, ``omega`` and ``Omega``; only the logged penalty value is summed in
another order.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
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
            self._omega = [torch.zeros_like(p) for _, p in params]
            self.accumulator_ = [torch.zeros_like(p) for _, p in params]
            self.importance_ = [torch.zeros_like(p) for _, p in params]
            self.anchor_ = [p.detach().clone() for _, p in params]
            self.start_ = [p.detach().clone() for _, p in params]
        self.tasks_ = 0
        self._grad = [torch.zeros_like(p, memory_format=torch.contiguous_format) for _, p in params]
        # theta_prev: the weights after the last step, i.e. before the next one; (data_ptr, version) of each
        # parameter when it was taken, so that a change of the weights between steps is seen and theta_prev retaken
        self._prev = [torch.zeros_like(p, memory_format=torch.contiguous_format) for _, p in params]
        self._prev_seen: list[tuple[int, int]] | None = None
        self._diff: list[torch.Tensor] = []  # the penalty's work buffers, reused every step (see _WeightedSquare)
        self._weighted: list[torch.Tensor] = []
        self._fold_scale: float | None = None  # set by penalty() with gradient="task": after_data_backward adds it
        self._folded = False
        self._next_value: float | None = None  # the penalty's value at the weights on_step left (gradient="task")
        self._folding = False  # this step's penalty() was called by fit with folded=True
        self._folded_step = False  # this step's pass was the folded one: before_step and on_step defer to it
        # folded mode: the last step's path update, deferred to the next pass over the weights: (parameters,
        # their (data_ptr, version) after the step); _grad holds its g and _prev the weights before it
        self._pending: tuple[list[torch.nn.Parameter], list[tuple[int, int]]] | None = None

    @property
    def omega_(self) -> list[torch.Tensor]:
        """The running path integral of the current task, one tensor per tracked parameter (a deferred
        update of fit's last step is applied first)."""
        self._flush()
        return self._omega

    @omega_.setter
    def omega_(self, value: list[torch.Tensor]) -> None:
        self._omega, self._pending = value, None

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

    @property
    def folds_penalty(self) -> bool:
        """``True`` with ``gradient="task"``: :func:`fit` calls ``penalty(model, folded=True)``, and
        :meth:`after_data_backward` adds the penalty's gradient and returns its value (see :meth:`penalty`)."""
        return self.gradient == "task"

    def _params(self, model: torch.nn.Module) -> list[torch.nn.Parameter]:
        named = dict(model.named_parameters())
        missing = [n for n in self.names if n not in named]
        if missing:
            raise ConfigError(f"SynapticIntelligence: the model lacks the tracked parameters {missing[:3]}")
        return [named[n] for n in self.names]

    # ---------------------------------------------------------------------------------------- fit's hooks
    def penalty(self, model: torch.nn.Module, *, folded: bool = False) -> torch.Tensor:
        """``c * sum_k Omega_k (theta_k - theta~_k)**2`` (``c / 2`` with ``half``); zero before the first task
        ends (no graph then, so ``gradient="task"`` costs nothing extra on the first task).

        With ``gradient="task"`` the gradient is added by :meth:`after_data_backward` (which :func:`fit` calls
        between the data loss's backward and the penalties'), and the backward of the returned value then adds
        nothing; in a loop that does not call that hook the backward adds the gradient as usual.

        ``folded=True`` (what :func:`fit` does, :attr:`folds_penalty`): the caller promises to call
        :meth:`after_data_backward` after the data loss's backward, :meth:`on_step` after the optimiser's step
        and :meth:`on_epoch_end` before anything else changes the weights. The returned tensor is then a zero
        without a graph; :meth:`after_data_backward` adds the gradient and returns the value, summed in the same
        pass as the last step's deferred path update (fewer passes over the weights: module docstring)."""
        params = self._params(model)
        self._fold_scale, self._folded, self._folding = None, False, False
        if folded:
            if self.gradient != "task":
                raise ConfigError('SynapticIntelligence: penalty(folded=True) needs gradient="task"')
            self._folding = True
            if self.tasks_ > 0 and self.c != 0.0:
                self._fold_scale = self.c / 2 if self.half else self.c
            return params[0].new_zeros(())
        self._flush()
        if self.tasks_ == 0 or self.c == 0.0:
            return params[0].new_zeros(())
        scale = self.c / 2 if self.half else self.c
        self._buffers(params)
        if self.gradient == "task":
            self._fold_scale = scale
            value = self._next_value if self._prev_seen == [(p.data_ptr(), p._version) for p in params] else None
            return _FoldedPenalty.apply(self, scale, value, *params)
        terms = [
            _WeightedSquare.apply(p, anchor, importance, scale, diff, weighted)
            for p, importance, anchor, diff, weighted in zip(
                params, self.importance_, self.anchor_, self._diff, self._weighted
            )
        ]
        return torch.stack(terms).sum()

    def _buffers(self, params: list[torch.nn.Parameter]) -> None:
        if len(self._diff) != len(params):
            self._diff = [torch.empty_like(p, memory_format=torch.contiguous_format) for p in params]
            self._weighted = [torch.empty_like(p, memory_format=torch.contiguous_format) for p in params]

    @torch.no_grad()
    def _penalty_value(self, params: list[torch.nn.Parameter], scale: float) -> float:
        """``scale * sum Omega (theta - theta~)**2``; the torch route leaves ``Omega (theta - theta~)`` in the
        work buffer ``_weighted`` for :meth:`after_data_backward`."""
        lib, total = si_kernel(), 0.0
        for k, (p, anchor, importance) in enumerate(zip(params, self.anchor_, self.importance_)):
            if _compiled(lib, p, anchor, importance):
                total += _function(lib, "si_penalty", p)(p.numel(), _ptr(p), _ptr(anchor), _ptr(importance))
            else:
                diff, weighted = self._diff[k], self._weighted[k]
                torch.sub(p.detach(), anchor, out=diff)
                torch.mul(importance, diff, out=weighted)
                total += float(torch.dot(weighted.flatten(), diff.flatten()))
        return scale * total

    @torch.no_grad()
    def after_data_backward(self, model: torch.nn.Module) -> float | None:
        """The gradient of the unregularised loss (pathint's ``unreg_grads``), read before the penalties'; with
        the penalty active (``gradient="task"``), its gradient ``2 c Omega (theta - theta~)`` is added to
        ``p.grad`` in the same pass. Returns the penalty's value when the step's :meth:`penalty` was
        ``folded`` (``0.0`` while the penalty is inactive), else ``None``."""
        params = self._params(model)
        if self._folding:
            return self._folded_pass(params)
        self._flush()
        scale, lib = self._fold_scale, si_kernel()
        for k, (g, p) in enumerate(zip(self._grad, params)):
            if scale is None:
                if p.grad is None:
                    g.zero_()
                else:
                    g.copy_(p.grad)
                continue
            # float(1 * (2 scale)) in p's dtype: the factor autograd's backward of the penalty uses
            factor = torch.ones((), dtype=p.dtype).mul_(2 * scale)
            anchor, importance = self.anchor_[k], self.importance_[k]
            if p.grad is not None and _compiled(lib, p.grad, g, p, anchor, importance):
                fold = _function(lib, "si_fold", p)
                fold(p.numel(), _ptr(p.grad), _ptr(g), _ptr(p), _ptr(anchor), _ptr(importance), float(factor))
                continue
            weighted = self._weighted[k]
            if _compiled(lib, p, anchor, importance):  # the value came from the kernel: the buffer is not filled
                torch.mul(importance, p.detach() - anchor, out=weighted)
            weighted.mul_(factor)
            if p.grad is None:
                g.zero_()
                p.grad = weighted.clone()
            else:
                g.copy_(p.grad)
                p.grad.add_(weighted)
        self._folded = scale is not None
        self._fold_scale = None
        return None

    def _folded_pass(self, params: list[torch.nn.Parameter]) -> float:
        """Folded mode's one pass per tensor (``si_step`` in ``_si_kernel.c``, or the same operations in torch):
        the last step's deferred ``omega += g (theta_prev - theta)``, ``theta_prev = theta`` (the weights before
        this step), ``g = grad``, and with the penalty active ``grad += 2 c Omega (theta - theta~)`` and the
        penalty's value. A parameter without a gradient gets a zero one first when the penalty acts on it (as
        the penalty's backward would give it one), else keeps none."""
        scale, pending = self._fold_scale, self._pending is not None
        if pending and [(p.data_ptr(), p._version) for p in params] != self._pending[1]:
            raise RuntimeError(_CHANGED)
        self._folding, self._fold_scale, self._pending, self._folded_step = False, None, None, True
        lib, total = si_kernel(), 0.0
        for k, (omega, g, prev, p) in enumerate(zip(self._omega, self._grad, self._prev, params)):
            anchor, importance = self.anchor_[k], self.importance_[k]
            if scale is not None and p.grad is None:
                p.grad = torch.zeros_like(p)
            if p.grad is None:  # no gradient and no penalty: the path update alone, then g = 0
                self._path(lib, omega, g, prev, p, pending)
                g.zero_()
                continue
            factor = torch.ones((), dtype=p.dtype).mul_(2 * scale) if scale is not None else None
            if _compiled(lib, omega, g, prev, p, p.grad, anchor, importance):
                pointers = (_ptr(omega), _ptr(g), _ptr(prev), _ptr(p), _ptr(p.grad), _ptr(anchor), _ptr(importance))
                f = float(factor) if factor is not None else 0.0
                total += _function(lib, "si_step", p)(p.numel(), *pointers, f, int(pending), int(factor is not None))
                continue
            self._path(None, omega, g, prev, p, pending)
            g.copy_(p.grad)
            if factor is not None:
                self._buffers(params)
                diff, weighted = self._diff[k], self._weighted[k]
                torch.sub(p.detach(), anchor, out=diff)
                torch.mul(importance, diff, out=weighted)
                total += float(torch.dot(weighted.flatten(), diff.flatten()))
                p.grad.add_(weighted.mul_(factor))
        return 0.0 if scale is None else scale * total

    @staticmethod
    def _path(
        lib: Any, omega: torch.Tensor, g: torch.Tensor, prev: torch.Tensor, p: torch.Tensor, pending: bool
    ) -> None:
        """``omega += g (prev - theta)`` when ``pending``; ``prev = theta``."""
        if not pending:
            prev.copy_(p)
        elif _compiled(lib, omega, g, p, prev):
            _function(lib, "si_path", p)(p.numel(), _ptr(omega), _ptr(g), _ptr(p), _ptr(prev))
        else:
            prev.sub_(p).mul_(g)
            omega.add_(prev)
            prev.copy_(p)

    @torch.no_grad()
    def _flush(self) -> None:
        """Apply a deferred path update of folded mode (:meth:`on_step`) now."""
        if self._pending is None:
            return
        params, seen = self._pending
        self._pending = None
        if [(p.data_ptr(), p._version) for p in params] != seen:
            raise RuntimeError(_CHANGED)
        lib = si_kernel()
        for omega, g, prev, p in zip(self._omega, self._grad, self._prev, params):
            self._path(lib, omega, g, prev, p, True)

    @torch.no_grad()
    def before_step(self, model: torch.nn.Module) -> None:
        params = self._params(model)
        if self.gradient == "total":
            self.after_data_backward(model)  # p.grad now holds the gradient of loss + penalties
        if self._folded_step:
            return  # folded mode: _folded_pass took theta_prev
        self._flush()
        seen = [(p.data_ptr(), p._version) for p in params]
        if seen != self._prev_seen:  # the first step, or the weights changed since the last one: take them now
            for prev, p in zip(self._prev, params):
                prev.copy_(p)

    @torch.no_grad()
    def on_step(self, model: torch.nn.Module) -> None:
        """``omega += -g * (theta_after - theta_before)``, written as ``omega + g * (theta_before - theta_after)``
        (a product then a sum, no fused multiply-add); then ``theta_prev = theta_after``. With the penalty active
        and ``gradient="task"``, the kernel also sums the penalty's value at the new weights in the same pass
        (the next step's :meth:`penalty` uses it while the weights stay as they are). In folded mode the update
        is deferred to the next step's pass (or to :meth:`on_epoch_end`, or to reading ``omega_``)."""
        params, lib = self._params(model), si_kernel()
        if self._folded_step:
            self._folded_step = False
            self._pending = (params, [(p.data_ptr(), p._version) for p in params])
            return
        value: float | None = 0.0 if self.gradient == "task" and self.tasks_ > 0 and self.c != 0.0 else None
        for k, (omega, g, prev, p) in enumerate(zip(self._omega, self._grad, self._prev, params)):
            anchor, importance = self.anchor_[k], self.importance_[k]
            if value is not None and _compiled(lib, omega, g, p, prev, anchor, importance):
                pointers = (_ptr(omega), _ptr(g), _ptr(p), _ptr(prev), _ptr(anchor), _ptr(importance))
                value += _function(lib, "si_path_penalty", p)(p.numel(), *pointers)
                continue
            value = None  # the next penalty() sums it (and fills its work buffers for the torch code)
            self._path(lib, omega, g, prev, p, True)
        self._next_value = None if value is None else (self.c / 2 if self.half else self.c) * value
        self._prev_seen = [(p.data_ptr(), p._version) for p in params]

    def on_epoch_end(self, model: torch.nn.Module, epoch: int) -> None:
        """Apply a deferred update (folded mode); retake ``theta_prev`` at the next step (a write through
        ``p.data`` between steps is not versioned)."""
        self._flush()
        self._prev_seen = None

    @torch.no_grad()
    def end_task(self, model: torch.nn.Module) -> None:
        """Consolidate (paper eq. 5): fold ``omega`` into ``Omega``, reset ``omega``, anchor at the weights."""
        self._flush()
        for k, p in enumerate(self._params(model)):
            change = p.detach() - self.start_[k]
            self.accumulator_[k].add_(self._omega[k] / (change.square() + self.xi))
            if self.floor:
                self.accumulator_[k].clamp_(min=0.0)
            self.importance_[k] = (
                self.accumulator_[k].clamp(max=self.clamp) if self.clamp is not None else self.accumulator_[k].clone()
            )
            self._omega[k].zero_()
            self.anchor_[k] = p.detach().clone()
            self.start_[k] = p.detach().clone()
        self.tasks_ += 1
        self._prev_seen = None

    def begin_task(self, model: torch.nn.Module) -> None:
        """Start measuring a task's path from the current weights (``end_task`` does this already; call it
        when the weights were changed between tasks, e.g. a new head initialised)."""
        self._flush()
        with torch.no_grad():
            self.start_ = [p.detach().clone() for p in self._params(model)]
        self._prev_seen = None

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
        self._prev_seen = None
        self._folding = self._folded_step = False


class _FoldedPenalty(torch.autograd.Function):
    """The penalty's value, whose gradient :meth:`SynapticIntelligence.after_data_backward` has already added to
    ``p.grad`` (then backward adds nothing); otherwise backward returns ``2 scale Omega (p - theta~)`` as
    :class:`_WeightedSquare` does."""

    @staticmethod
    def forward(
        ctx: Any, si: SynapticIntelligence, scale: float, value: float | None, *params: torch.Tensor
    ) -> torch.Tensor:
        ctx.si, ctx.scale = si, scale
        ctx.save_for_backward(*params)
        if value is None:  # not computed by on_step at these weights
            value = si._penalty_value(list(params), scale)
        return torch.tensor(value, dtype=params[0].dtype, device=params[0].device)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        si = ctx.si
        if si._folded:
            return (None, None, None) + (None,) * len(ctx.saved_tensors)
        factor = grad_output * (2 * ctx.scale)
        grads = tuple(
            torch.mul(importance, p.detach() - anchor).mul_(factor)
            for p, anchor, importance in zip(ctx.saved_tensors, si.anchor_, si.importance_)
        )
        return (None, None, None, *grads)


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


_KERNEL_SOURCE = Path(__file__).with_name("_si_kernel.c")


@functools.lru_cache(maxsize=1)
def si_kernel() -> Any:
    """The compiled bookkeeping (``_si_kernel.c``: ``si_penalty``, ``si_fold``, ``si_path``, ``si_path_penalty``, ``si_step``
    for ``_f32`` and ``_f64``), or ``None`` without a C compiler or with ``NEUROMODELS_NO_COMPILE=1`` (the torch code runs)."""
    if os.environ.get("NEUROMODELS_NO_COMPILE"):
        return None
    from neuromodels._ckernels import load_library

    try:
        lib = load_library(_KERNEL_SOURCE, "si")
    except (OSError, subprocess.SubprocessError):
        return None
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    for suffix, real in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        getattr(lib, f"si_penalty_{suffix}").argtypes = [i64, ptr, ptr, ptr]
        getattr(lib, f"si_penalty_{suffix}").restype = ctypes.c_double
        getattr(lib, f"si_fold_{suffix}").argtypes = [i64, ptr, ptr, ptr, ptr, ptr, real]
        getattr(lib, f"si_fold_{suffix}").restype = None
        getattr(lib, f"si_path_{suffix}").argtypes = [i64, ptr, ptr, ptr, ptr]
        getattr(lib, f"si_path_{suffix}").restype = None
        getattr(lib, f"si_path_penalty_{suffix}").argtypes = [i64, ptr, ptr, ptr, ptr, ptr, ptr]
        getattr(lib, f"si_path_penalty_{suffix}").restype = ctypes.c_double
        getattr(lib, f"si_step_{suffix}").argtypes = [
            i64,
            ptr,
            ptr,
            ptr,
            ptr,
            ptr,
            ptr,
            ptr,
            real,
            ctypes.c_int,
            ctypes.c_int,
        ]
        getattr(lib, f"si_step_{suffix}").restype = ctypes.c_double
    return lib


_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
_CHANGED = (
    "SynapticIntelligence: the weights changed between an optimiser step and its deferred path update (folded "
    "mode, penalty(folded=True), as fit runs it); call on_epoch_end (or read omega_) before changing them"
)


def _compiled(lib: Any, first: torch.Tensor, *others: torch.Tensor) -> bool:
    """Whether the kernel can run on these tensors: contiguous CPU tensors of one float32/float64 dtype and size,
    in distinct memory (the kernel's pointers are ``restrict``)."""
    if lib is None or first.dtype not in _SUFFIX or first.device.type != "cpu" or not first.is_contiguous():
        return False
    same = all(
        t.dtype == first.dtype and t.device.type == "cpu" and t.is_contiguous() and t.numel() == first.numel()
        for t in others
    )
    if not same:
        return False
    spans = sorted((t.data_ptr(), t.data_ptr() + t.numel() * t.element_size()) for t in (first, *others))
    return all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))


def _function(lib: Any, name: str, like: torch.Tensor) -> Any:
    return getattr(lib, f"{name}_{_SUFFIX[like.dtype]}")


def _ptr(tensor: torch.Tensor) -> int:
    return tensor.data_ptr()


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

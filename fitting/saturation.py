"""The saturation penalty of Nayebi & Ganguli (2017): train networks whose units sit where their nonlinearity is flat.

Nayebi & Ganguli, "Biologically inspired protection of deep networks from adversarial attacks"
(arXiv:1703.09202; as summarised by D. Stutz, shortscience.org) add to the task loss

    lambda * sum_l sum_i psi_c(h_i^l)

over the pre-activations ``h_i^l`` (the input of the nonlinearity of unit ``i`` in layer ``l``), where the
*complementary function* ``psi_c(z) = inf_{z' : psi'(z') = 0} |z - z'|`` is the distance of ``z`` to the nearest
point where the nonlinearity ``psi`` is flat. For a ReLU the flat set is ``z <= 0`` and ``psi_c = relu``; for a
hard-tanh it is ``|z| >= 1`` and ``psi_c(z) = max(1 - |z|, 0)``. The sigmoid and tanh are flat only at
infinity, where the distance is infinite; for them the paper uses the derivative instead,
``sigma_c(z) = sigma(z) (1 - sigma(z))`` (and here ``tanh_c(z) = 1 - tanh(z)^2``), which is positive everywhere,
decreases away from the centre and vanishes at the flat ends.

``lambda`` is annealed: :class:`SaturationPenalty` multiplies it by ``schedule(epoch)``, by default a linear ramp
from 0 to 1 over ``warmup_epochs`` epochs. The paper anneals lambda during training, but only its abstract and
introduction could be read here (not its methods), so the exact schedule is unchecked and the ramp is our choice;
the psi_c definition and the ReLU and sigmoid complements are checked against D. Stutz's summary and Brendel &
Bethge's description, not the paper's equations (docs/robustness.md, "The penalty").

The penalty plugs into :func:`neuromodels.fitting.fit` as a :class:`~neuromodels.fitting.losses.Regulariser`:
forward hooks on the model's nonlinearity modules record their inputs during training forwards, and
:meth:`SaturationPenalty.penalty` sums ``psi_c`` over units, averages over the batch and multiplies by the
current ``lambda``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from neuromodels.errors import ConfigError
from neuromodels.nonlinearities import SATURATED_INTERVALS

__all__ = ["SaturatingNonlinearity", "get_saturating", "psi_c", "SaturationPenalty", "SATURATING", "linear_ramp"]


@dataclass(frozen=True)
class SaturatingNonlinearity:
    """A nonlinearity, its flat (saturated) set and its complementary function ``psi_c``.

    ``intervals``: the flat set as closed intervals ``(low, high)`` (``-inf``/``inf`` allowed); ``None`` when the
    nonlinearity is flat only at infinity (sigmoid, tanh), where ``complement`` is its derivative (the paper's
    choice for the sigmoid). ``modules``: the ``torch.nn`` module types this nonlinearity is found as.
    """

    name: str
    function: Callable[[torch.Tensor], torch.Tensor]
    intervals: tuple[tuple[float, float], ...] | None
    complement: Callable[[torch.Tensor], torch.Tensor]
    modules: tuple[type, ...] = ()

    def psi_c(self, h: torch.Tensor) -> torch.Tensor:
        return self.complement(h)

    def saturated(self, h: torch.Tensor, tol: float = 1e-3) -> torch.Tensor:
        """Boolean mask of the units in the flat set (``psi_c == 0``); for sigmoid/tanh: ``psi_c <= tol``
        (derivative below ``tol``, times its maximum)."""
        if self.intervals is not None:
            return self.complement(h) == 0
        peak = float(self.complement(torch.zeros((), dtype=h.dtype)))
        return self.complement(h) <= tol * peak


def _distance_to_intervals(intervals: Sequence[tuple[float, float]]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``psi_c(h) = min over intervals of the distance from h to [low, high]``, zero inside any of them."""
    checked = []
    for low, high in intervals:
        if not low <= high or math.isnan(low) or math.isnan(high):
            raise ConfigError(f"saturated interval ({low}, {high}) must have low <= high")
        checked.append((float(low), float(high)))
    if not checked:
        raise ConfigError("a custom nonlinearity needs at least one saturated interval (low, high)")

    def distance(h: torch.Tensor) -> torch.Tensor:
        terms = []
        for low, high in checked:
            below = torch.clamp(low - h, min=0) if low > -math.inf else torch.zeros_like(h)
            above = torch.clamp(h - high, min=0) if high < math.inf else torch.zeros_like(h)
            terms.append(below + above)
        return torch.stack(terms).amin(0)

    return distance


def _sigmoid_complement(h: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(h)
    return s * (1 - s)


def _tanh_complement(h: torch.Tensor) -> torch.Tensor:
    return 1 - torch.tanh(h).square()


# the flat sets are the shared table's (neuromodels.nonlinearities.SATURATED_INTERVALS)
SATURATING: dict[str, SaturatingNonlinearity] = {
    "relu": SaturatingNonlinearity("relu", torch.relu, SATURATED_INTERVALS["relu"], torch.relu, (torch.nn.ReLU,)),
    "hard_tanh": SaturatingNonlinearity(
        "hard_tanh",
        torch.nn.functional.hardtanh,
        SATURATED_INTERVALS["hard_tanh"],
        _distance_to_intervals(SATURATED_INTERVALS["hard_tanh"]),
        (torch.nn.Hardtanh,),
    ),
    "sigmoid": SaturatingNonlinearity(
        "sigmoid", torch.sigmoid, SATURATED_INTERVALS["sigmoid"], _sigmoid_complement, (torch.nn.Sigmoid,)
    ),
    "tanh": SaturatingNonlinearity("tanh", torch.tanh, SATURATED_INTERVALS["tanh"], _tanh_complement, (torch.nn.Tanh,)),
}


def get_saturating(
    nonlinearity: str | SaturatingNonlinearity,
    *,
    intervals: Sequence[tuple[float, float]] | None = None,
    function: Callable[[torch.Tensor], torch.Tensor] | None = None,
    modules: Sequence[type] = (),
) -> SaturatingNonlinearity:
    """A :class:`SaturatingNonlinearity` by name (``relu``, ``hard_tanh``, ``sigmoid``, ``tanh``), or a custom one:
    ``get_saturating("mine", intervals=[(-inf, -2), (3, inf)], function=f, modules=[MyModule])``, whose
    ``psi_c`` is the distance to the union of the given closed intervals."""
    if isinstance(nonlinearity, SaturatingNonlinearity):
        return nonlinearity
    if intervals is not None:
        return SaturatingNonlinearity(
            str(nonlinearity),
            function or (lambda h: h),
            tuple(map(tuple, intervals)),
            _distance_to_intervals(intervals),
            tuple(modules),
        )
    try:
        return SATURATING[nonlinearity]
    except KeyError:
        raise ConfigError(
            f"nonlinearity must be one of {sorted(SATURATING)} or given its saturated intervals, got {nonlinearity!r}"
        ) from None


def psi_c(h: torch.Tensor, nonlinearity: str | SaturatingNonlinearity = "relu") -> torch.Tensor:
    """The complementary function ``psi_c`` of ``nonlinearity`` applied elementwise to pre-activations ``h``."""
    return get_saturating(nonlinearity).psi_c(h)


def linear_ramp(warmup_epochs: int) -> Callable[[int], float]:
    """``epoch -> min(1, epoch / warmup_epochs)`` (``epoch`` counts completed epochs; 1 throughout if 0)."""
    if warmup_epochs < 0:
        raise ConfigError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
    return lambda epoch: 1.0 if warmup_epochs == 0 else min(1.0, epoch / warmup_epochs)


class SaturationPenalty:
    """``lambda * schedule(epoch) * mean over samples of sum over layers and units of psi_c(h)``: a
    :class:`~neuromodels.fitting.losses.Regulariser` for :func:`~neuromodels.fitting.fit`.

    Parameters
    ----------
    model: the network; forward hooks are attached to every submodule of the nonlinearity's module types
        (``torch.nn.ReLU`` for ``"relu"``...) or to the submodules named in ``layers``.
    strength: ``lambda``, >= 0.
    nonlinearity: name or :class:`SaturatingNonlinearity` (see :func:`get_saturating`).
    warmup_epochs: ``lambda`` ramps linearly from 0 to ``strength`` over this many epochs (default 5; 0: at
        once); ``schedule`` (``epoch -> factor``) replaces the ramp.

    Inputs recorded only in training forwards with gradients enabled (validation adds nothing). Call
    :meth:`remove` to detach the hooks.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        strength: float,
        nonlinearity: str | SaturatingNonlinearity = "relu",
        *,
        layers: Sequence[str] | None = None,
        warmup_epochs: int = 5,
        schedule: Callable[[int], float] | None = None,
    ) -> None:
        if not math.isfinite(strength) or strength < 0:
            raise ConfigError(f"saturation strength (lambda) must be a finite number >= 0, got {strength}")
        self.strength = float(strength)
        self.nonlinearity = get_saturating(nonlinearity)
        self.schedule = schedule if schedule is not None else linear_ramp(warmup_epochs)
        self.epoch = 0
        self._inputs: list[torch.Tensor] = []
        modules = dict(model.named_modules())
        if layers is not None:
            missing = [name for name in layers if name not in modules]
            if missing:
                raise ConfigError(f"layers {missing} not found in the model; it has {sorted(modules)[:20]}")
            chosen = [modules[name] for name in layers]
        else:
            chosen = [
                m for m in modules.values() if self.nonlinearity.modules and isinstance(m, self.nonlinearity.modules)
            ]
        if not chosen:
            raise ConfigError(f"the model has no {self.nonlinearity.name} modules to penalise; pass layers=[names]")
        self.layer_count = len(chosen)
        self._handles = [m.register_forward_hook(self._record) for m in chosen]

    def _record(self, module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if module.training and torch.is_grad_enabled():
            self._inputs.append(inputs[0])

    @property
    def current_strength(self) -> float:
        """``lambda`` at the current epoch: ``strength * schedule(completed epochs)``."""
        return self.strength * float(self.schedule(self.epoch))

    def penalty(self, model: torch.nn.Module) -> torch.Tensor:
        recorded, self._inputs = self._inputs, []
        if not recorded:
            return torch.zeros(())
        total = sum(self.nonlinearity.psi_c(h).flatten(1).sum(1).mean() for h in recorded)
        return self.current_strength * total

    def on_epoch_end(self, model: torch.nn.Module, epoch: int) -> None:
        self.epoch = int(epoch)

    def state_dict(self) -> dict[str, Any]:
        return {"strength": self.strength, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.strength = float(state["strength"])
        self.epoch = int(state["epoch"])

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

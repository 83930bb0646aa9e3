"""Losses and regularisers of the training loop.

A *loss* compares a model's output with the target, both ``(batch, ..., cell)``, and returns a scalar
averaged over all elements (so its size does not depend on batch size or number of cells).

A *regulariser* (:class:`Regulariser`) adds a penalty that may depend on the model and on training
history, and is told about every optimiser step. This is the seam for methods such as Synaptic Intelligence
(Zenke et al. 2017), which accumulates per-parameter importance from ``gradient x update`` along the
trajectory: it reads gradients in ``before_step`` and parameter changes in ``on_step``. Models can also
carry their own penalty (L2 on kernels, L1 on activity) as a ``regularization(output)`` method, which the
loop adds to the loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch

from neuromodels.errors import ConfigError

__all__ = ["poisson_loss", "mse_loss", "get_loss", "Regulariser", "L2Penalty", "LOSSES"]

POISSON_EPS = 1e-8


def poisson_loss(rate: torch.Tensor, target: torch.Tensor, *, eps: float = POISSON_EPS) -> torch.Tensor:
    """Poisson negative log-likelihood of counts ``target`` under rates ``rate`` (expected counts per bin),
    dropping the ``log(target!)`` term that does not depend on the model:

    ``mean(rate - target * log(rate + eps))``

    equal to ``torch.nn.PoissonNLLLoss(log_input=False, full=False, eps=eps)`` and to deep-retina's / Keras'
    ``poisson`` loss (with Keras' ``eps=1e-7`` there).
    """
    return (rate - target * torch.log(rate + eps)).mean()


def mse_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error, ``mean((prediction - target)**2)``."""
    return (prediction - target).square().mean()


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"poisson": poisson_loss, "mse": mse_loss}


def get_loss(loss: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[..., torch.Tensor]:
    """A loss by name (``"poisson"``, ``"mse"``) or a callable ``(output, target) -> scalar`` unchanged."""
    if callable(loss):
        return loss
    try:
        return LOSSES[loss]
    except KeyError:
        raise ConfigError(f"loss must be one of {sorted(LOSSES)} or a callable, got {loss!r}") from None


@runtime_checkable
class Regulariser(Protocol):
    """What the training loop needs of a regulariser. Only :meth:`penalty` is required.

    Optional hooks, called when present:

    * ``before_step(model)``: after ``backward()``, before the optimiser updates (gradients available).
    * ``after_data_backward(model)``, called only when the regulariser's ``needs_data_gradient`` is true:
      the loop back-propagates the data loss alone, calls this hook (``p.grad`` is then the gradient of the
      unregularised loss), and back-propagates the penalties afterwards (single process only).
      A regulariser whose ``folds_penalty`` is also true is called as ``penalty(model, folded=True)``: it
      returns a zero without a graph, adds its penalty's gradient to ``p.grad`` in ``after_data_backward`` and
      returns the penalty's value from it (for the log); it may defer work of ``on_step`` to the next
      ``after_data_backward`` or to ``on_epoch_end`` (Synaptic Intelligence does: one pass over the weights
      per step instead of two).
    * ``on_step(model)``: after each optimiser update.
    * ``on_epoch_end(model, epoch)``: after each epoch's validation.
    * ``state_dict()`` / ``load_state_dict(state)``: saved in checkpoints (tensors, numbers, lists, dicts
      only) so that a resumed run continues exactly.
    """

    def penalty(self, model: torch.nn.Module) -> torch.Tensor:
        """A scalar added to the training loss of the current batch."""
        ...


class L2Penalty:
    """``strength * sum(p**2)`` over the model's parameters whose name contains ``include`` (all by default).

    An example :class:`Regulariser`; unlike the optimiser's ``weight_decay`` it appears in the loss.
    """

    def __init__(self, strength: float, include: str | None = None) -> None:
        self.strength = float(strength)
        self.include = include

    def penalty(self, model: torch.nn.Module) -> torch.Tensor:
        terms = [
            p.square().sum()
            for name, p in model.named_parameters()
            if p.requires_grad and (self.include is None or self.include in name)
        ]
        if not terms:
            return torch.zeros(())
        return self.strength * torch.stack(terms).sum()

    def state_dict(self) -> dict[str, Any]:
        return {"strength": self.strength}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.strength = float(state["strength"])

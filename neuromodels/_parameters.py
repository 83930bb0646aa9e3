"""Parameter counting for any ``torch.nn.Module`` (models layer; one implementation for every model family).

:func:`count_parameters` is re-exported as ``neuromodels.convrnn.count_parameters`` and
``neuromodels.retina.count_parameters``.
"""

from __future__ import annotations

from torch import nn

__all__ = ["count_parameters"]


def count_parameters(module: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of parameter elements of ``module``, each shared tensor counted once.

    ``trainable_only``: count only tensors with ``requires_grad`` (the default); ``False`` counts frozen ones too.
    """
    seen, total = set(), 0
    for p in module.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total

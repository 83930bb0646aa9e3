"""A multi-layer perceptron with one output head per task: the network of the SI paper's MNIST experiments.

Zenke et al. 2017, section 5.1: split MNIST used a multi-head MLP with two hidden layers of 256 ReLU units
(one 2-way head per task), permuted MNIST an MLP with two hidden layers of 2,000 ReLU units and one
10-way head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from neuromodels.errors import ConfigError

__all__ = ["MultiHeadMLP"]


class MultiHeadMLP(torch.nn.Module):
    """``(batch, features)[, task (batch,)] -> (batch, max(heads))`` logits.

    ``hidden``: widths of the ReLU layers; ``heads``: output units of each head. With one head ``task`` may be
    omitted; with several, sample ``i`` is read out by head ``task[i]`` and the units beyond that head's size
    are ``-inf`` (so they never win an argmax and carry no probability).
    """

    def __init__(self, n_features: int, hidden: Sequence[int] = (256, 256), heads: Sequence[int] = (10,)) -> None:
        super().__init__()
        if int(n_features) < 1 or any(int(h) < 1 for h in hidden) or not heads or any(int(k) < 1 for k in heads):
            raise ConfigError(
                f"MultiHeadMLP needs positive sizes, got n_features={n_features}, hidden={hidden}, heads={heads}"
            )
        layers: list[torch.nn.Module] = []
        width = int(n_features)
        for h in hidden:
            layers += [torch.nn.Linear(width, int(h)), torch.nn.ReLU()]
            width = int(h)
        self.trunk = torch.nn.Sequential(*layers)
        self.heads = torch.nn.ModuleList(torch.nn.Linear(width, int(k)) for k in heads)
        self.head_sizes = tuple(int(k) for k in heads)

    def forward(self, x: torch.Tensor, task: torch.Tensor | None = None) -> torch.Tensor:
        features = self.trunk(x.flatten(1))
        if len(self.heads) == 1:
            return self.heads[0](features)
        if task is None:
            raise ConfigError("a multi-head model needs the task index of every sample")
        out = features.new_full((len(features), max(self.head_sizes)), float("-inf"))
        for t in torch.unique(task).tolist():
            if not 0 <= t < len(self.heads):
                raise ConfigError(f"task index {t} has no head (the model has {len(self.heads)})")
            rows = task == t
            out[rows, : self.head_sizes[t]] = self.heads[t](features[rows])
        return out

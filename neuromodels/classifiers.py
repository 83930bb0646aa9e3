"""Small image classifiers for the saturating-network experiments (Nayebi & Ganguli 2017): an MLP and a CNN.

Both map ``(batch, 1, 28, 28)`` images in ``[0, 1]`` to ``(batch, classes)`` logits, with the hidden
nonlinearity as separate modules (so that :class:`~neuromodels.fitting.saturation.SaturationPenalty` can hook
their inputs, the pre-activations).
"""

from __future__ import annotations

import torch
from torch import nn

from neuromodels.errors import ConfigError

__all__ = ["MLPClassifier", "CNNClassifier", "ScaledLogits", "make_classifier", "NONLINEARITY_MODULES"]

NONLINEARITY_MODULES = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "hard_tanh": nn.Hardtanh}


def _nonlinearity(name: str) -> nn.Module:
    try:
        return NONLINEARITY_MODULES[name]()
    except KeyError:
        raise ConfigError(f"nonlinearity must be one of {sorted(NONLINEARITY_MODULES)}, got {name!r}") from None


class MLPClassifier(nn.Module):
    """``(batch, 1, 28, 28) -> (batch, classes)``: flatten, ``hidden`` fully connected layers, linear readout."""

    def __init__(
        self,
        in_features: int = 784,
        hidden: tuple[int, ...] = (256, 256),
        classes: int = 10,
        nonlinearity: str = "relu",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), _nonlinearity(nonlinearity)]
            width = size
        layers.append(nn.Linear(width, classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNNClassifier(nn.Module):
    """``(batch, 1, 28, 28) -> (batch, classes)``: two 5x5 convolutions (``channels``) with 2x2 max pooling,
    one hidden fully connected layer of ``hidden`` units, linear readout."""

    def __init__(
        self, channels: tuple[int, int] = (16, 32), hidden: int = 128, classes: int = 10, nonlinearity: str = "relu"
    ) -> None:
        super().__init__()
        c1, c2 = channels
        self.net = nn.Sequential(
            nn.Conv2d(1, c1, 5, padding=2),
            _nonlinearity(nonlinearity),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, padding=2),
            _nonlinearity(nonlinearity),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(c2 * 7 * 7, hidden),
            _nonlinearity(nonlinearity),
            nn.Linear(hidden, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ScaledLogits(nn.Module):
    """``model``'s logits times ``scale``: the same predictions, but with a large ``scale`` the float32 softmax
    is hard (the top probability rounds to 1, the others underflow), so cross-entropy gradients vanish. A model
    that masks gradients on purpose, to check that a masking diagnostic flags it (Brendel & Bethge's mechanism)."""

    def __init__(self, model: nn.Module, scale: float) -> None:
        super().__init__()
        self.model, self.scale = model, float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) * self.scale


def make_classifier(kind: str, nonlinearity: str = "relu", **options) -> nn.Module:
    """``"mlp"`` or ``"cnn"`` with the given hidden nonlinearity."""
    if kind == "mlp":
        return MLPClassifier(nonlinearity=nonlinearity, **options)
    if kind == "cnn":
        return CNNClassifier(nonlinearity=nonlinearity, **options)
    raise ConfigError(f"model kind must be 'mlp' or 'cnn', got {kind!r}")

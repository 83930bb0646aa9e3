"""Training: the gradient training loop, losses, checkpoints, learning rules, architecture search.

>>> from neuromodels.fitting import fit, RetinaEstimator
>>> history = fit(model, train, valid, loss="poisson", epochs=20, seed=0)   # the framework's one loop
>>> est = RetinaEstimator(model="cnn").fit(recording)                       # or one call for retina data

Names load on first access, so ``import neuromodels.fitting`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module (relative to this package) that defines it; imported on first access.
_LAZY = {
    **dict.fromkeys(["fit", "History", "TensorPairs", "predict", "pearson_per_cell"], "loop"),
    **dict.fromkeys(["poisson_loss", "mse_loss", "get_loss", "Regulariser", "L2Penalty"], "losses"),
    **dict.fromkeys(["CheckpointError", "save_checkpoint", "load_checkpoint"], "checkpoint"),
    "RetinaEstimator": "estimator",
    **dict.fromkeys(["RetinaDataset", "from_recording", "train_valid_split"], "retina_data"),
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

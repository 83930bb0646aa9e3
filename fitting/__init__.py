"""Training: the gradient training loop, losses, checkpoints, learning rules, architecture search.

>>> from neuromodels.fitting import fit, RetinaEstimator
>>> history = fit(model, train, valid, loss="poisson", epochs=20, seed=0)   # the framework's one loop
>>> est = RetinaEstimator(model="cnn").fit(recording)                       # or one call for retina data

Names load on first access, so ``import neuromodels.fitting`` does not import torch.
"""

from __future__ import annotations

from neuromodels._lazy import lazy_attributes

# name -> module (relative to this package) that defines it; imported on first access.
_LAZY = {
    **dict.fromkeys(["fit", "History", "TensorPairs", "predict", "pearson_per_cell"], "loop"),
    **dict.fromkeys(["poisson_loss", "mse_loss", "get_loss", "Regulariser", "L2Penalty"], "losses"),
    **dict.fromkeys(["SaturationPenalty", "psi_c", "get_saturating"], "saturation"),
    **dict.fromkeys(["CheckpointError", "save_checkpoint", "load_checkpoint"], "checkpoint"),
    "RetinaEstimator": "estimator",
    **dict.fromkeys(["RetinaDataset", "from_recording", "train_valid_split"], "retina_data"),
    **dict.fromkeys(["run_search", "load_space", "DEFAULT_SPACE"], "search"),
    **dict.fromkeys(["train_classifier", "image_task", "accuracy"], "classification"),
    **dict.fromkeys(["SuperSpike", "van_rossum_loss", "train_bptt", "run_task"], "superspike"),
    **dict.fromkeys(
        ["train_walkback", "walkback_update", "train_diffusion", "save_walkback_model", "load_walkback_model"],
        "walkback",
    ),
}

__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)

"""A scikit-learn-style estimator for retina models: ``fit(recording)``, ``predict(stimulus)``, ``score(...)``.

>>> from neuromodels.datasets import load
>>> from neuromodels.fitting import RetinaEstimator
>>> rec = load("sample:retina")
>>> est = RetinaEstimator("cnn", epochs=10).fit(rec)      # trains on the 'train' split
>>> from neuromodels.analysis.retina_metrics import retina_test_metrics
>>> est.score(rec, retina_test_metrics)                     # per-cell CC vs the trial-averaged test response
>>> est.evaluate(rec, retina_test_metrics)                  # cc, cc_max (ceiling), cc_norm, fev, feve per cell
>>> est.predict(rec["stimulus"])                            # xr.DataArray (time, cell), spikes per bin

As in scikit-learn, ``__init__`` only stores its arguments (validated by :meth:`fit`), and what is learned
ends in an underscore (``model_``, ``history_``, ``cells_``, ``stimulus_mean_``, ...).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from neuromodels._reports import jsonable
from neuromodels.errors import ConfigError, DataFormatError

__all__ = [
    "RetinaEstimator",
    "DEFAULT_EPOCHS",
    "DEFAULT_LR",
    "DEFAULT_AVERAGE_DECAY",
    "DEFAULT_MODEL_PARAMS",
    "spike_triggered_average",
    "init_glm_from_sta",
]

# Per model kind. The LN filters have history * y * x = 100,000 weights per cell, each updated by up to lr
# per Adam step: 1e-3 makes the drive swing by orders of magnitude between steps, 1e-4 trains smoothly. The
# CNN's shared kernels and the GLM's constrained filter (212 weights per cell) tolerate the usual 1e-3.
DEFAULT_LR = {"cnn": 1e-3, "ln": 1e-4, "glm": 1e-3}
DEFAULT_EPOCHS = {"cnn": 10, "ln": 10, "glm": 10}
# Weight averaging (``fit(average_decay=...)``; 0 = off). The CNN's test score swings by up to 0.15 in median
# CC_norm from one epoch to the next on one minute of sample:retina (noisy gradients, per-unit batch norm);
# the average over the last ~200 steps removes most of the swing (docs/retina.md, "Defaults of the estimator").
DEFAULT_AVERAGE_DECAY = {"cnn": 0.995, "ln": 0.0, "glm": 0.0}

# Model arguments the estimator uses unless given (docs/retina.md, "Defaults of the estimator"). The model
# classes keep the NeurIPS 2016 defaults; for the CNN the estimator uses deep-retina's later ``bn_cnn``
# (noise 0.05, L2 0.01 on the convolutions) with batch norm per channel instead of per unit (32 parameters
# instead of 31,552), which with weight averaging gave the higher test score on one minute of sample:retina
# (median CC_norm 0.785 vs 0.770, seed 0). The plain NeurIPS model overfits from the first epoch there.
DEFAULT_MODEL_PARAMS: dict[str, dict[str, Any]] = {
    "cnn": {"batch_norm": "channel", "noise_std": 0.05, "l2_weight": 0.01, "output": "saturating"},
    "ln": {},
    # Pillow et al. (2008)-style constrained stimulus filter: rank 2, 10x10 coarse grid (5x5-pixel blocks), 6
    # raised cosines over the 40 frames: 2 * (100 + 6) = 212 weights per cell instead of 100,000 (docs/retina.md,
    # "GLM"). softplus instead of exp: on sample:retina the exponential GLM over-predicts the held-out natural
    # movie (test loss above a constant rate's) and 4 of 12 cells run away in simulation; softplus does neither.
    "glm": {"rank": 2, "spatial_downsample": 5, "temporal_basis": 6, "nonlinearity": "softplus"},
}


class RetinaEstimator:
    """Fit a retina model (``"cnn"``, ``"ln"`` or ``"glm"``) to a continuous recording in one call.

    Parameters
    ----------
    model: ``"cnn"`` (:class:`~neuromodels.retina.RetinaCNN`), ``"ln"`` (:class:`~neuromodels.retina.LNModel`)
        or ``"glm"`` (:class:`~neuromodels.retina.GLM`).
    history: frames of stimulus history the model sees (40 = 400 ms at 100 Hz).
    epochs, batch_size, lr, weight_decay, patience, lr_patience, loss, seed, device, progress: passed to
        :func:`neuromodels.fitting.fit` (``epochs``/``lr`` ``None``: per-model defaults
        :data:`DEFAULT_EPOCHS`/:data:`DEFAULT_LR`; ``progress`` ``None``: bars on a terminal or in a notebook,
        none in a log; ``False``: never).
    average_decay: decay of the moving average of the weights that is validated and kept (``fit``'s
        ``average_decay``); ``None``: the per-model default :data:`DEFAULT_AVERAGE_DECAY`; ``0``: no averaging.
    valid_fraction: share of the training split held out (in 2 s blocks) for early stopping.
    standardize: feed the model ``(stimulus - mean) / std`` with the training stimulus' mean and std.
    sequence_length: consecutive bins per training sample for ``RetinaCNN(recurrent=True)``.
    n_simulations: GLM only: :meth:`predict` without recorded spikes averages this many simulated trials.
        A GLM starts at its spike-triggered average with a likelihood-fitted gain (:func:`init_glm_from_sta`)
        and by default has a constrained stimulus filter (:data:`DEFAULT_MODEL_PARAMS`).
    checkpoint_dir, resume: checkpoints of the training loop (exact resume).
    **model_params: the model's own arguments (e.g. ``channels=(8, 8)``, ``nonlinearity="exp"``,
        ``spike_history=20``, ``batch_norm=True``).
    """

    def __init__(
        self,
        model: str = "cnn",
        *,
        history: int = 40,
        epochs: int | None = None,
        batch_size: int = 64,
        lr: float | None = None,
        weight_decay: float = 0.0,
        patience: int | None = 3,
        lr_patience: int = 2,
        average_decay: float | None = None,
        valid_fraction: float = 0.1,
        loss: str = "poisson",
        standardize: bool = True,
        sequence_length: int = 20,
        n_simulations: int = 20,
        seed: int = 0,
        device: str = "cpu",
        progress: bool | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        resume: bool = True,
        **model_params: Any,
    ) -> None:
        self.model = model
        self.history = history
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.lr_patience = lr_patience
        self.average_decay = average_decay
        self.valid_fraction = valid_fraction
        self.loss = loss
        self.standardize = standardize
        self.sequence_length = sequence_length
        self.n_simulations = n_simulations
        self.seed = seed
        self.device = device
        self.progress = progress
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.model_params = dict(model_params)

    # ------------------------------------------------------------------------------------- sklearn protocol
    _PARAM_NAMES = (
        "model",
        "history",
        "epochs",
        "batch_size",
        "lr",
        "weight_decay",
        "patience",
        "lr_patience",
        "average_decay",
        "valid_fraction",
        "loss",
        "standardize",
        "sequence_length",
        "n_simulations",
        "seed",
        "device",
        "progress",
        "checkpoint_dir",
        "resume",
    )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments, model parameters included (flattened, as passed)."""
        params = {name: getattr(self, name) for name in self._PARAM_NAMES}
        params.update(self.model_params)
        return params

    def set_params(self, **params: Any) -> RetinaEstimator:
        for name, value in params.items():
            if name in self._PARAM_NAMES:
                setattr(self, name, value)
            else:
                self.model_params[name] = value
        return self

    def __repr__(self) -> str:
        defaults = RetinaEstimator()
        changed = {
            k: v
            for k, v in self.get_params().items()
            if k not in defaults.get_params() or defaults.get_params()[k] != v
        }
        args = ", ".join([repr(self.model)] + [f"{k}={v!r}" for k, v in changed.items() if k != "model"])
        return f"RetinaEstimator({args})"

    # ------------------------------------------------------------------------------------------------- fit
    @property
    def _recurrent(self) -> bool:
        return self.model == "cnn" and bool(self.model_params.get("recurrent", False))

    @property
    def _average_decay(self) -> float:
        return float(DEFAULT_AVERAGE_DECAY[self.model] if self.average_decay is None else self.average_decay)

    @property
    def _spike_history(self) -> int:
        return int(self.model_params.get("spike_history", 20)) if self.model == "glm" else 0

    def fit(self, recording: xr.Dataset) -> RetinaEstimator:
        """Train on the recording's ``train`` split (all of it if it has no ``split``); returns ``self``."""
        from neuromodels.datasets import validate
        from neuromodels.datasets.recording import split
        from neuromodels.fitting.loop import fit
        from neuromodels.fitting.retina_data import from_recording, train_valid_split
        from neuromodels.retina import MODELS, build_model

        if self.model not in MODELS:
            raise ConfigError(f"model must be one of {sorted(MODELS)}, got {self.model!r}")
        if not isinstance(recording, xr.Dataset):
            raise DataFormatError(field="<object>", expected="a recording (xr.Dataset)", found=type(recording).__name__)
        validate(recording)
        source = recording.attrs.get("source")
        if "stimulus" not in recording:
            raise DataFormatError(
                file=source, field="stimulus", expected="a stimulus(time, y, x) variable", found="none"
            )
        part = split(recording, "train") if "split" in recording.coords else recording
        if part.sizes["time"] <= self.history:
            raise DataFormatError(
                file=source,
                field="time",
                expected=f"more than history={self.history} training bins",
                found=f"{part.sizes['time']}",
            )
        stimulus = part["stimulus"]
        mean, std = (float(stimulus.mean()), float(stimulus.std())) if self.standardize else (0.0, 1.0)
        if not std > 0:
            raise DataFormatError(file=source, field="stimulus", expected="a stimulus that varies", found="constant")
        dataset = from_recording(
            part,
            None,
            history=self.history,
            spike_history=self._spike_history,
            sequence_length=self.sequence_length if self._recurrent else None,
            stimulus_mean=mean,
            stimulus_std=std,
        )
        train, valid = train_valid_split(dataset, self.valid_fraction)

        torch.manual_seed(self.seed)  # the model's initial weights
        model_params = {**DEFAULT_MODEL_PARAMS[self.model], **self.model_params}
        model_params.setdefault("frame_shape", dataset.frame_shape)
        if self.model == "glm" and "temporal_basis" not in self.model_params and model_params.get("temporal_basis"):
            model_params["temporal_basis"] = min(int(model_params["temporal_basis"]), self.history)
        model = build_model(self.model, dataset.n_cells, history=self.history, **model_params)
        train_counts = dataset.response[torch.from_numpy(train.ends)]
        # a saturating output starts bounded at each cell's largest count per bin
        model.init_output_bias(train_counts.mean(0), max_rate=train_counts.amax(0))
        if self.model == "glm":
            init_glm_from_sta(model, train)
        self.history_ = fit(
            model,
            train,
            valid,
            loss=self.loss,
            epochs=DEFAULT_EPOCHS[self.model] if self.epochs is None else self.epochs,
            batch_size=self.batch_size,
            lr=DEFAULT_LR[self.model] if self.lr is None else self.lr,
            weight_decay=self.weight_decay,
            patience=self.patience,
            lr_patience=self.lr_patience,
            seed=self.seed,
            average_decay=self._average_decay or None,
            progress=self.progress,
            checkpoint_dir=self.checkpoint_dir,
            resume=self.resume,
            device=self.device,
        )
        self.model_ = model.cpu().eval()
        self.cells_ = [str(c) for c in part["cell"].values]
        self.cell_coords_ = {name: np.asarray(c.values) for name, c in part.coords.items() if c.dims == ("cell",)}
        self.frame_shape_ = dataset.frame_shape
        self.stimulus_mean_ = mean
        self.stimulus_std_ = std
        self.frame_rate_hz_ = float(recording.attrs.get("frame_rate_hz", 1.0 / _median_step(part["time"].values)))
        self.n_train_samples_ = len(train)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise ConfigError("this RetinaEstimator is not fitted yet: call fit(recording) first")

    # --------------------------------------------------------------------------------------------- predict
    def predict(self, stimulus: Any, *, response: Any | None = None, batch_size: int = 256) -> xr.DataArray:
        """Predicted response ``(time, cell)`` in expected spikes per bin, one value per stimulus frame.

        ``stimulus``: ``xr.DataArray (time, y, x)``, a recording ``xr.Dataset`` (its ``stimulus``), or an array
        ``(time, y, x)``. The history before the first frame (and before each segment after a gap in
        ``time``) is taken as gray (zero contrast), so every bin gets a prediction.

        GLM: with ``response`` (recorded counts ``(time, cell)``) the result is the conditional intensity
        given those spikes; without, the mean rate over ``n_simulations`` simulated trials in which the model
        feeds back its own spikes (the model's trial-averaged prediction).
        """
        from neuromodels.fitting.loop import predict as loop_predict
        from neuromodels.fitting.retina_data import RetinaDataset

        self._check_fitted()
        frames, time = _stimulus_frames(stimulus, self.frame_rate_hz_)
        if frames.shape[1:] != tuple(self.frame_shape_):
            raise DataFormatError(
                field="stimulus",
                expected=f"frames of {self.frame_shape_[0]}x{self.frame_shape_[1]}",
                found=f"{frames.shape[1]}x{frames.shape[2]}",
            )
        if response is not None:
            response = np.asarray(
                response.transpose("time", "cell").values if isinstance(response, xr.DataArray) else response,
                dtype=np.float32,
            )
            if self.model != "glm":
                raise ConfigError("predict(response=...) is for the GLM (its spike-history input)")
        spike_history = self._spike_history if response is not None else 0
        dataset = RetinaDataset(
            frames,
            response,
            history=self.history,
            time=time,
            spike_history=spike_history,
            stimulus_mean=self.stimulus_mean_,
            stimulus_std=self.stimulus_std_,
            pad=True,
        )
        model = self.model_
        with torch.no_grad():
            if self.model == "glm" and response is None:
                values = self._simulate_mean(dataset, batch_size)
            elif self._recurrent:
                values = self._predict_recurrent(dataset, batch_size)
            else:
                values = loop_predict(model, dataset, batch_size=batch_size).numpy()
        coords: dict[str, Any] = {"time": ("time", time), "cell": ("cell", np.asarray(self.cells_, dtype=object))}
        for name, value in self.cell_coords_.items():
            if name != "cell":
                coords[name] = ("cell", value)
        return xr.DataArray(
            values.astype(np.float64),
            dims=("time", "cell"),
            coords=coords,
            name="prediction",
            attrs={"units": "expected spikes per bin", "model": self.model},
        )

    def _segments(self, dataset: Any) -> list[tuple[int, int]]:
        from neuromodels._history import segment_bounds

        return segment_bounds(dataset.time)

    def _predict_recurrent(self, dataset: Any, chunk: int) -> np.ndarray:
        out = np.zeros((len(dataset.time), self.model_.n_cells))
        chunk = max(1, min(chunk, 128))
        for start, stop in self._segments(dataset):
            state = None
            for a in range(start, stop, chunk):
                bins = np.arange(a, min(a + chunk, stop))
                windows, _ = dataset.batch(np.searchsorted(dataset.ends, bins))
                values, state = self.model_.forward_sequence(windows[None], state)
                out[bins] = values[0].numpy()
        return out

    def _simulate_mean(self, dataset: Any, batch_size: int) -> np.ndarray:
        generator = torch.Generator().manual_seed(int(self.seed))
        out = np.zeros((len(dataset.time), self.model_.n_cells))
        for start, stop in self._segments(dataset):
            bins = np.arange(start, stop)
            drive = torch.cat(
                [
                    self.model_.stimulus_drive(
                        dataset.batch(np.searchsorted(dataset.ends, bins[i : i + batch_size]))[0]
                    )
                    for i in range(0, len(bins), batch_size)
                ]
            )
            _, rates = self.model_.simulate(drive=drive, n_trials=int(self.n_simulations), generator=generator)
            out[bins] = rates.mean(0).numpy()
        return out

    # ----------------------------------------------------------------------------------------------- score
    def score(self, recording: xr.Dataset, metrics: Callable[..., xr.Dataset]) -> xr.DataArray:
        """Per-cell Pearson CC between the prediction and the trial-averaged test response, ``(cell,)``.

        ``metrics``: the metric function, as for :meth:`evaluate` (the ``cc`` it returns is the score). Unlike
        scikit-learn's scalar ``score``, the result keeps one value per cell (``.mean()`` for one number): how a
        model does on each cell is the point of these comparisons.
        """
        cc = self.evaluate(recording, metrics)["cc"]
        cc.attrs.update(
            {
                "metric": "Pearson r vs trial-averaged test response",
                "mean": float(cc.mean()),
                "median": float(cc.median()),
            }
        )
        return cc

    def evaluate(
        self, recording: xr.Dataset, metrics: Callable[..., xr.Dataset], *, stimulus_kind: str | None = None
    ) -> xr.Dataset:
        """The per-cell test metrics of ``metrics(prediction, recording, stimulus_kind=...)``.

        ``metrics``: a function of the prediction ``(time, cell)`` on the test split and the recording, e.g.
        :func:`neuromodels.analysis.retina_metrics.retina_test_metrics` (``cc``, ``cc_max`` (noise ceiling),
        ``cc_norm``, ``fev``, ``feve``). The estimator is trained here and scored in the analysis layer, so the
        metric is passed in rather than imported. The whole test movie is predicted (so every bin has its real
        history); ``stimulus_kind`` then restricts the scored bins (e.g. ``"natural"`` on ``sample:retina``).
        """
        from neuromodels.datasets.recording import split

        self._check_fitted()
        missing = sorted(set(self.cells_) - set(map(str, recording["cell"].values)))
        if missing:
            raise DataFormatError(
                file=recording.attrs.get("source"),
                field="cell",
                expected="the cells the model was fitted to",
                found=f"missing {missing[:5]}",
            )
        part = split(recording, "test") if "split" in recording.coords else recording
        prediction = self.predict(part)
        result = metrics(prediction, recording.sel(cell=self.cells_), stimulus_kind=stimulus_kind)
        result.attrs["model"] = self.model
        return result

    # ------------------------------------------------------------------------------------------- save/load
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted estimator (weights, parameters, normalisation, cells) atomically to ``path``."""
        from neuromodels.fitting.checkpoint import save_checkpoint

        self._check_fitted()
        state = {
            "format": "neuromodels.RetinaEstimator/1",
            "params": json.dumps(jsonable(self.get_params())),
            "model_config": json.dumps(jsonable(self.model_.config())),
            "state_dict": self.model_.state_dict(),
            "cells": list(self.cells_),
            "frame_shape": list(self.frame_shape_),
            "stimulus_mean": float(self.stimulus_mean_),
            "stimulus_std": float(self.stimulus_std_),
            "frame_rate_hz": float(self.frame_rate_hz_),
            "history": json.dumps(jsonable(self.history_.as_dict())),
        }
        return save_checkpoint(state, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RetinaEstimator:
        """An estimator saved by :meth:`save` (read with ``torch.load(weights_only=True)``)."""
        from neuromodels.fitting.checkpoint import CheckpointError, load_checkpoint
        from neuromodels.fitting.loop import History
        from neuromodels.retina import MODELS

        state = load_checkpoint(path)
        if state.get("format") != "neuromodels.RetinaEstimator/1":
            raise CheckpointError(f"{path}: not a saved RetinaEstimator")
        params = json.loads(state["params"])
        est = cls(**params)
        config = json.loads(state["model_config"])
        model = MODELS[est.model](**config)
        model.load_state_dict(state["state_dict"])
        est.model_ = model.eval()
        est.cells_ = list(state["cells"])
        est.cell_coords_ = {}
        est.frame_shape_ = tuple(state["frame_shape"])
        est.stimulus_mean_ = float(state["stimulus_mean"])
        est.stimulus_std_ = float(state["stimulus_std"])
        est.frame_rate_hz_ = float(state["frame_rate_hz"])
        history = json.loads(state["history"])
        best, stopped = history.pop("best_epoch"), history.pop("stopped_early")
        n = len(history.get("epoch", []))
        est.history_ = History([{k: v[i] for k, v in history.items()} for i in range(n)], best, stopped)
        return est


@torch.no_grad()
def spike_triggered_average(model: Any, dataset: Any, batch_size: int = 256) -> torch.Tensor:
    """Spike-triggered average of ``model.stimulus_features`` over ``dataset``'s samples, ``(cell, feature)``.

    ``sum_t n_c[t] f[t] / sum_t n_c[t] - mean_t f[t]``: the mean stimulus (in the model's filter coordinates)
    before a spike of cell ``c``, relative to the mean stimulus. Cells without spikes get zeros.
    """
    total = spikes = weighted = None
    for start in range(0, len(dataset), batch_size):
        inputs, counts = dataset.batch(np.arange(start, min(start + batch_size, len(dataset))))
        windows = inputs[0] if isinstance(inputs, tuple) else inputs
        features = model.stimulus_features(windows)
        if total is None:
            total = features.new_zeros(features.shape[1])
            weighted = features.new_zeros((counts.shape[1], features.shape[1]))
            spikes = counts.new_zeros(counts.shape[1])
        total += features.sum(0)
        weighted += counts.T @ features
        spikes += counts.sum(0)
    mean = total / len(dataset)
    sta = weighted / torch.clamp(spikes, min=1.0)[:, None] - mean
    return torch.where(spikes[:, None] > 0, sta, torch.zeros_like(sta))


def init_glm_from_sta(model: Any, dataset: Any, batch_size: int = 256) -> None:
    """Start a :class:`~neuromodels.retina.GLM` at its spike-triggered average, gain fitted by likelihood.

    The stimulus filter starts along the STA (:meth:`GLM.init_stimulus_filter`, truncated to the model's
    rank); its gain ``g`` and constant ``b`` per cell then maximise the Poisson log-likelihood of the
    training counts under ``rate = f(g * drive + b)`` without spike history, a concave problem in ``(g, b)``
    for ``f = exp`` and ``f = softplus`` (both log-concave and convex), solved by L-BFGS. Why: the STA fixes
    the filter's direction but not its scale, which depends on the cell's nonlinearity; started at the raw
    STA, an exponential GLM on a strongly rectified cell predicts rates of ``exp(10)`` and more, and training
    starts from a diverged state.
    """
    with torch.no_grad():
        model.init_stimulus_filter(spike_triggered_average(model, dataset, batch_size))
        model.scale_stimulus_filter(torch.ones(model.n_cells), torch.zeros(model.n_cells))
        drives, counts = [], []
        for start in range(0, len(dataset), batch_size):
            inputs, target = dataset.batch(np.arange(start, min(start + batch_size, len(dataset))))
            windows = inputs[0] if isinstance(inputs, tuple) else inputs
            drives.append(model.stimulus_drive(windows))
            counts.append(target)
        drive, count = torch.cat(drives), torch.cat(counts)  # (sample, cell)
        scale = drive.std(0).clamp(min=1e-12)
        bias0 = model.stimulus_bias.detach().clone()
        model.init_output_bias(count.mean(0))
        bias_start = model.stimulus_bias.detach().clone()
        model.stimulus_bias.copy_(bias0)
    unit = (drive / scale).detach()
    gain = torch.full((model.n_cells,), 0.5, requires_grad=True)  # in units of the drive's std
    bias = bias_start.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([gain, bias], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        rate = model.nonlinearity(gain * unit + bias)
        loss = (rate - count * torch.log(rate + 1e-8)).mean(0).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    model.scale_stimulus_filter(gain.detach() / scale, bias.detach())


def _median_step(time: np.ndarray) -> float:
    time = np.asarray(time, dtype=np.float64)
    return float(np.median(np.diff(time))) if time.size > 1 else 1.0


def _stimulus_frames(stimulus: Any, frame_rate_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """``(frames (time, y, x) float32, time (s))`` from a DataArray, a recording or an array."""
    if isinstance(stimulus, xr.Dataset):
        if "stimulus" not in stimulus:
            raise DataFormatError(
                file=stimulus.attrs.get("source"),
                field="stimulus",
                expected="a stimulus(time, y, x) variable",
                found="none",
            )
        stimulus = stimulus["stimulus"]
    if isinstance(stimulus, xr.DataArray):
        if set(stimulus.dims) != {"time", "y", "x"}:
            raise DataFormatError(field="stimulus", expected="dims (time, y, x)", found=str(stimulus.dims))
        stimulus = stimulus.transpose("time", "y", "x")
        time = (
            np.asarray(stimulus["time"].values, dtype=np.float64)
            if "time" in stimulus.coords
            else np.arange(stimulus.sizes["time"]) / frame_rate_hz
        )
        frames = np.asarray(stimulus.values, dtype=np.float32)
    else:
        frames = np.asarray(stimulus, dtype=np.float32)
        if frames.ndim != 3:
            raise DataFormatError(field="stimulus", expected="an array (time, y, x)", found=f"shape {frames.shape}")
        time = np.arange(frames.shape[0]) / frame_rate_hz
    if frames.shape[0] == 0:
        raise DataFormatError(field="stimulus", expected="at least one frame", found="0 frames")
    if not np.isfinite(frames).all():
        raise DataFormatError(field="stimulus", expected="finite values", found="NaN or infinite values")
    return frames, time

"""What saturating networks look like inside (Nayebi & Ganguli 2017, sections 3-5).

* :func:`saturation_fraction`: per layer, the fraction of units (and inputs) whose pre-activation lies in the
  flat set of the nonlinearity.
* :func:`weight_kurtosis`: excess kurtosis of each layer's weights (0 for a Gaussian; the paper reports heavy
  tails in saturated networks, as in synaptic weights of the brain).
* :func:`linear_margin_scaling`: the paper's argument that kurtotic weights protect even a linear classifier.
  For logits ``z = W x + b``, moving from class ``y`` to ``j`` needs the margin ``m = z_y - z_j`` to vanish; the
  smallest L-inf perturbation doing that is ``m / ||w_y - w_j||_1`` and the smallest L2 one
  ``m / ||w_y - w_j||_2`` (Hoelder duality; box ignored). So at a fixed L2 margin the L-inf robustness scales
  with ``||w||_2 / ||w||_1``, which lies in ``[1/sqrt(d), 1]``: near ``1/sqrt(d)`` for dense Gaussian weights,
  larger for sparse, heavy-tailed (kurtotic) ones.
* :func:`sensitivity_spectrum`: eigenvalues of ``J^T J`` (``J``: Jacobian of the logits with respect to the
  input), sorted and averaged over inputs: how many input directions the network responds to, and how
  strongly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr

from neuromodels.analysis.robustness.attacks import BOX, _EvalMode, check_classifier_inputs
from neuromodels.errors import ConfigError
from neuromodels.fitting.saturation import SaturatingNonlinearity, get_saturating

__all__ = ["saturation_fraction", "weight_kurtosis", "linear_margin_scaling", "sensitivity_spectrum"]


def saturation_fraction(
    model: torch.nn.Module,
    x: torch.Tensor,
    nonlinearity: str | SaturatingNonlinearity = "relu",
    *,
    tol: float = 1e-3,
    batch_size: int = 1000,
    per_input: bool = False,
) -> xr.DataArray:
    """``xr.DataArray(layer)``: per hooked nonlinearity module (named as in ``model.named_modules()``), the
    fraction of (input, unit) pairs whose pre-activation is saturated (``psi_c == 0``; sigmoid/tanh: derivative
    below ``tol`` of its peak). ``per_input``: ``xr.DataArray(input, layer)``, the fraction of each input's units
    (1 where every unit of the layer is saturated, e.g. all ReLUs off)."""
    spec = get_saturating(nonlinearity)
    layers = [(name, m) for name, m in model.named_modules() if spec.modules and isinstance(m, spec.modules)]
    if not layers:
        raise ConfigError(f"the model has no {spec.name} modules")
    counts = {name: [0, 0] for name, _ in layers}
    rows: dict[str, list[torch.Tensor]] = {name: [] for name, _ in layers}
    handles = []
    for name, module in layers:

        def hook(module, inputs, output, name=name):
            mask = spec.saturated(inputs[0].detach(), tol)
            counts[name][0] += int(mask.sum())
            counts[name][1] += mask.numel()
            if per_input:
                rows[name].append(mask.flatten(1).double().mean(1))

        handles.append(module.register_forward_hook(hook))
    try:
        with _EvalMode(model), torch.no_grad():
            for i in range(0, len(x), batch_size):
                model(x[i : i + batch_size])
    finally:
        for handle in handles:
            handle.remove()
    names = [name for name, _ in layers]
    if per_input:
        return xr.DataArray(
            torch.stack([torch.cat(rows[n]) for n in names], 1).numpy(),
            dims=("input", "layer"),
            coords={"layer": names},
            name="saturated_fraction",
            attrs={"method": "saturation_fraction", "nonlinearity": spec.name, "tol": tol},
        )
    return xr.DataArray(
        [counts[n][0] / max(counts[n][1], 1) for n in names],
        dims="layer",
        coords={"layer": names},
        name="saturated_fraction",
        attrs={"method": "saturation_fraction", "nonlinearity": spec.name, "tol": tol},
    )


def _excess_kurtosis(values: np.ndarray) -> float:
    centred = values - values.mean()
    variance = np.mean(centred**2)
    return float(np.mean(centred**4) / variance**2 - 3.0) if variance > 0 else float("nan")


def weight_kurtosis(
    model: torch.nn.Module, *, kinds: Sequence[type] = (torch.nn.Linear, torch.nn.Conv2d)
) -> xr.DataArray:
    """``xr.DataArray(layer)``: excess kurtosis ``E[(w - mean)^4] / var^2 - 3`` of each layer's weight tensor
    (biases excluded), for the modules of ``kinds``."""
    names, values = [], []
    for name, module in model.named_modules():
        if isinstance(module, tuple(kinds)) and getattr(module, "weight", None) is not None:
            names.append(name)
            values.append(_excess_kurtosis(module.weight.detach().double().flatten().cpu().numpy()))
    if not names:
        raise ConfigError("the model has no layers with weights of the given kinds")
    return xr.DataArray(
        values, dims="layer", coords={"layer": names}, name="excess_kurtosis", attrs={"method": "weight_kurtosis"}
    )


def linear_margin_scaling(
    weight: torch.Tensor | np.ndarray,
    bias: torch.Tensor | np.ndarray,
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
) -> xr.Dataset:
    """Closed-form minimal perturbations of the linear classifier ``z = W x + b`` (``W``: ``(classes, d)``).

    Per input (``x``: ``(n, d)``, flattened; correctly classified ones only): ``linf_distance`` = min over
    ``j != y`` of ``(z_y - z_j) / ||w_y - w_j||_1``, ``l2_distance`` with ``||.||_2``, and ``norm_ratio`` =
    ``||w_y - w_j||_1 / ||w_y - w_j||_2`` of the pair that is closest in L-inf. ``attrs`` carry the medians and
    the excess kurtosis of ``W``. ``linf_distance * norm_ratio >= l2_distance`` always: for the pair ``j*`` that
    attains the L-inf minimum, ``linf * ratio`` equals that pair's L2 distance.
    """
    w = np.asarray(weight, dtype=np.float64)
    b = np.asarray(bias, dtype=np.float64)
    inputs = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    labels = np.asarray(y).astype(int)
    if w.ndim != 2 or w.shape[1] != inputs.shape[1] or b.shape != (w.shape[0],):
        raise ConfigError(
            f"weight must be (classes, d) matching inputs of {inputs.shape[1]} features and bias "
            f"(classes,), got {w.shape} and {b.shape}"
        )
    logits = inputs @ w.T + b
    correct = logits.argmax(1) == labels
    inputs, labels, logits = inputs[correct], labels[correct], logits[correct]
    diff = w[labels][:, None, :] - w[None, :, :]  # (n, classes, d): w_y - w_j
    l1 = np.abs(diff).sum(-1)
    l2 = np.sqrt((diff**2).sum(-1))
    margins = logits[np.arange(len(labels)), labels][:, None] - logits
    own = np.arange(w.shape[0])[None, :] == labels[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        linf_all = np.where(own, np.inf, margins / l1)
        l2_all = np.where(own, np.inf, margins / l2)
        ratio = l1 / l2
    closest = linf_all.argmin(1)
    rows = np.arange(len(labels))
    result = xr.Dataset(
        {
            "linf_distance": ("input", linf_all[rows, closest]),
            "l2_distance": ("input", l2_all.min(1)),
            "norm_ratio": ("input", ratio[rows, closest]),
        }
    )
    result.attrs.update(
        {
            "method": "linear_margin_scaling",
            "n_correct": int(correct.sum()),
            "n": len(correct),
            "median_linf_distance": float(np.median(result["linf_distance"])) if len(labels) else float("nan"),
            "median_l2_distance": float(np.median(result["l2_distance"])) if len(labels) else float("nan"),
            "median_norm_ratio": float(np.median(result["norm_ratio"])) if len(labels) else float("nan"),
            "weight_excess_kurtosis": _excess_kurtosis(w.ravel()),
            "sqrt_d": float(np.sqrt(w.shape[1])),
        }
    )
    return result


def sensitivity_spectrum(model: torch.nn.Module, x: torch.Tensor, *, box: tuple[float, float] = BOX) -> xr.DataArray:
    """``xr.DataArray(rank)``: the eigenvalues of ``J^T J`` in decreasing order, averaged over the inputs
    ``x``, where ``J = d logits / d input`` (``classes x d``; ``J^T J`` has at most ``classes`` non-zero
    eigenvalues, the squared singular values of ``J``). ``attrs``: ``participation_ratio`` of the mean
    spectrum, ``(sum l)^2 / sum l^2``, the effective number of input directions the logits respond to."""
    x, _ = check_classifier_inputs(model, x, None, box)
    spectra = []
    with _EvalMode(model):
        for i in range(len(x)):
            jac = torch.autograd.functional.jacobian(lambda v: model(v[None])[0], x[i])
            s = torch.linalg.svdvals(jac.reshape(jac.shape[0], -1).double())
            spectra.append((s**2).cpu().numpy())
    mean = np.sort(np.mean(spectra, axis=0))[::-1]
    ratio = float(mean.sum() ** 2 / (mean**2).sum()) if mean.sum() > 0 else 0.0
    return xr.DataArray(
        mean,
        dims="rank",
        coords={"rank": np.arange(1, len(mean) + 1)},
        name="eigenvalue",
        attrs={"method": "sensitivity_spectrum", "n_inputs": len(x), "participation_ratio": ratio},
    )

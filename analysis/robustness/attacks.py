"""Adversarial attacks on any torch classifier with inputs in a box: batched, seeded, optionally in float64.

Every attack takes ``model`` (``(n, ...) -> (n, classes)`` logits), inputs ``x`` inside ``box`` (default
``[0, 1]``) and integer labels ``y``, and returns adversarial inputs of the same shape and dtype that lie inside
the box and inside the budget exactly (``|x_adv - x| <= eps`` elementwise, or ``||x_adv - x||_2 <= eps``, in
exact arithmetic on the returned numbers). The gradient attacks maximise

* ``loss="ce"``: the cross-entropy of the label (targeted: minus the cross-entropy of the target), as in the
  original papers and in torchattacks; or
* ``loss="margin"``: the logit margin of Carlini & Wagner (2017, eq. for f_6 without the confidence clamp),
  ``max_{j != y} z_j - z_y`` (targeted: ``z_t - max_{j != t} z_j``). It is computed on the logits, so it has no
  softmax to saturate: Brendel & Bethge's (arXiv:1704.01547) fix for gradients that vanish numerically.

``dtype=torch.float64`` runs the attack on a float64 copy of the model; the result is rounded back to the
input dtype and projected again, so budgets stay exact.

Attacks (papers, and the equations we follow):

* :func:`fgsm`: ``x + eps sign(grad)`` (Goodfellow et al. 2015, eq. 3), clipped to the box.
* :func:`bim`: iterative FGSM (Kurakin et al. 2016 "Adversarial examples in the physical world", sec. 2.2):
  ``steps`` steps of size ``alpha``, each clipped to the eps-ball and the box.
* :func:`pgd`: projected gradient ascent (Madry et al. 2018, eq. 2.1 with the L-inf sign step; L2: normalised
  gradient step and projection onto the L2 ball) from a uniform random start in the ball.
* :func:`least_likely`: Kurakin et al.'s iterative least-likely class method (sec. 2.3): targeted BIM towards
  the class the clean input finds least likely.
* :func:`lbfgs`: Szegedy et al. 2014 (sec. 4.1): minimise ``c ||delta||_2^2 + loss(x + delta, target)`` with
  box-constrained L-BFGS (scipy's L-BFGS-B), searching ``c`` for the smallest successful perturbation.
* :func:`spsa`: gradient-free, Uesato et al. 2018 (Alg. 1): SPSA gradient estimates from Rademacher directions,
  Adam steps, projection onto the L-inf ball; keeps the first adversarial found per input.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from neuromodels.errors import ConfigError, DataFormatError

__all__ = [
    "fgsm",
    "bim",
    "pgd",
    "least_likely",
    "lbfgs",
    "spsa",
    "ATTACKS",
    "check_classifier_inputs",
    "check_inputs",
    "objective",
    "input_gradient",
    "BOX",
]

BOX = (0.0, 1.0)
LOSSES = ("ce", "margin")


# ------------------------------------------------------------------------------------------------ validation
def check_inputs(
    x: torch.Tensor, y: torch.Tensor | None = None, box: tuple[float, float] = BOX
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Validate ``x`` (finite, floating point, inside ``box``) and ``y`` (integer labels, one per input)."""
    low, high = _check_box(box)
    x = torch.as_tensor(x)
    if not x.dtype.is_floating_point:
        raise DataFormatError(
            "inputs must be floating point", field="inputs", expected="a float tensor", found=str(x.dtype)
        )
    if x.ndim < 2 or len(x) == 0:
        raise DataFormatError(
            "inputs need a sample dimension", field="inputs", expected="(n, ...) with n >= 1", found=tuple(x.shape)
        )
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise DataFormatError(
            "inputs contain NaN or infinite values",
            field="inputs",
            expected="finite values",
            found=f"{bad} non-finite values",
        )
    if float(x.min()) < low or float(x.max()) > high:
        raise DataFormatError(
            "inputs lie outside the declared box",
            field="inputs",
            expected=f"values in [{low}, {high}]",
            found=f"[{float(x.min())}, {float(x.max())}]",
        )
    if y is not None:
        y = torch.as_tensor(y)
        if y.dtype.is_floating_point or y.ndim != 1 or len(y) != len(x):
            raise DataFormatError(
                "labels must be integers, one per input",
                field="labels",
                expected=f"an integer tensor of shape ({len(x)},)",
                found=f"{y.dtype} of shape {tuple(y.shape)}",
            )
        y = y.long()
    return x, y


def check_classifier_inputs(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, box: tuple[float, float] = BOX
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Validate the inputs and labels (:func:`check_inputs`) and that ``model`` is a classifier (``(n, classes)``
    output with ``classes >= 2``, labels below ``classes``); return ``x`` and ``y`` as tensors."""
    x, y = check_inputs(x, y, box)
    with torch.no_grad():
        was_training = model.training
        model.eval()
        try:
            out = model(x[:1].to(_model_dtype(model, x.dtype)))
        except (RuntimeError, TypeError, ValueError) as err:
            raise ConfigError(
                f"model is not a classifier of these inputs: it fails on one input of shape "
                f"{tuple(x[:1].shape)} ({str(err).splitlines()[0]})"
            ) from None
        finally:
            model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 1 or out.shape[1] < 2:
        raise ConfigError(
            f"model is not a classifier: it must map (n, ...) inputs to (n, classes) logits with "
            f"classes >= 2, got output shape {tuple(getattr(out, 'shape', ()))} for one input"
        )
    if y is not None and (int(y.min()) < 0 or int(y.max()) >= out.shape[1]):
        raise DataFormatError(
            "labels out of range",
            field="labels",
            expected=f"0 .. {out.shape[1] - 1}",
            found=f"{int(y.min())} .. {int(y.max())}",
        )
    return x, y


def _check_box(box: tuple[float, float]) -> tuple[float, float]:
    low, high = (float(b) for b in box)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ConfigError(f"box must be (low, high) with finite low < high, got {box}")
    return low, high


def _check_eps(eps: float, name: str = "eps") -> float:
    eps = float(eps)
    if math.isnan(eps) or eps < 0:
        raise ConfigError(f"{name} must be >= 0, got {eps}")
    return eps


def _check_loss(loss: str) -> str:
    if loss not in LOSSES:
        raise ConfigError(f"loss must be one of {LOSSES}, got {loss!r}")
    return loss


def _model_dtype(model: torch.nn.Module, default: torch.dtype) -> torch.dtype:
    for p in model.parameters():
        if p.dtype.is_floating_point:
            return p.dtype
    return default


def _working_model(model: torch.nn.Module, dtype: torch.dtype | None) -> torch.nn.Module:
    if dtype is None or _model_dtype(model, dtype) == dtype:
        return model
    return copy.deepcopy(model).to(dtype)


# ------------------------------------------------------------------------------------------------ objectives
def objective(logits: torch.Tensor, labels: torch.Tensor, loss: str = "ce", targeted: bool = False) -> torch.Tensor:
    """The summed per-sample objective an attack *maximises* (module docstring): ``ce`` or ``margin``."""
    if loss == "ce":
        value = F.cross_entropy(logits, labels, reduction="sum")
        return -value if targeted else value
    chosen = logits.gather(1, labels[:, None])[:, 0]
    others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), -math.inf).amax(1)
    return (chosen - others).sum() if targeted else (others - chosen).sum()


def input_gradient(
    model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, loss: str = "ce", targeted: bool = False
) -> torch.Tensor:
    """Gradient of :func:`objective` with respect to the inputs ``x`` (one row per sample)."""
    x = x.detach().requires_grad_(True)
    value = objective(model(x), labels, loss, targeted)
    (grad,) = torch.autograd.grad(value, x)
    return grad


# ----------------------------------------------------------------------------------------------- projections
def _linf_bounds(x: torch.Tensor, eps: float, low: float, high: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Elementwise ``(lower, upper)`` of the L-inf ball around ``x`` intersected with the box, such that
    ``|bound - x| <= eps`` holds exactly.

    The bounds are rounded from float64 (at most half an ulp off), then moved one ulp towards ``x`` where they
    lie outside the ball (checked in float64, where the difference of two float32 numbers is exact).
    """
    if eps == math.inf:
        return torch.full_like(x, low), torch.full_like(x, high)
    exact = x.double()
    upper = (exact + eps).to(x.dtype)
    lower = (exact - eps).to(x.dtype)
    upper = torch.where((upper.double() - exact) > eps, torch.nextafter(upper, exact.to(x.dtype)), upper)
    lower = torch.where((exact - lower.double()) > eps, torch.nextafter(lower, exact.to(x.dtype)), lower)
    return lower.clamp(low, high), upper.clamp(low, high)


def _project_linf(adv: torch.Tensor, x: torch.Tensor, eps: float, low: float, high: float) -> torch.Tensor:
    """Clip ``adv`` into the L-inf ball around ``x`` and the box, exactly (:func:`_linf_bounds`)."""
    lower, upper = _linf_bounds(x, eps, low, high)
    return torch.clamp(adv, lower, upper)


def _l2_norms(delta: torch.Tensor) -> torch.Tensor:
    return delta.flatten(1).double().norm(dim=1)


def _project_l2(adv: torch.Tensor, x: torch.Tensor, eps: float, low: float, high: float) -> torch.Tensor:
    """Scale ``adv - x`` into the L2 ball of radius ``eps`` (then clip to the box, which only shrinks it)."""
    delta = adv - x
    norms = _l2_norms(delta)
    factor = torch.clamp(eps / norms.clamp_min(1e-300), max=1.0).to(delta.dtype)
    out = torch.clamp(x + delta * factor.view(-1, *[1] * (delta.ndim - 1)), low, high)
    for _ in range(4):  # rounding can leave a norm a few ulp above eps: shrink those rows a little more
        norms = _l2_norms(out - x)
        over = norms > eps
        if not over.any():
            break
        shrink = torch.where(over, eps / norms * (1 - 1e-6), torch.ones_like(norms)).to(delta.dtype)
        out = torch.clamp(x + (out - x) * shrink.view(-1, *[1] * (delta.ndim - 1)), low, high)
    return out


def _finish(adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str, low: float, high: float) -> torch.Tensor:
    """Round back to the input dtype and project again (exact budget and box on the returned numbers)."""
    if norm == "linf" and adv.dtype == x.dtype:
        return adv.detach()  # already clamped to the exact bounds of this dtype
    adv = adv.detach().to(x.dtype)
    return _project_linf(adv, x, eps, low, high) if norm == "linf" else _project_l2(adv, x, eps, low, high)


# --------------------------------------------------------------------------------------------------- running
def _chunks(n: int, batch_size: int, progress: bool | None, desc: str):
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    starts = range(0, n, batch_size)
    return tqdm(
        starts,
        total=len(starts),
        disable=progress is False if progress is not None else None,
        leave=False,
        desc=desc,
        unit="batch",
    )


class _EvalMode:
    """Eval mode for the attack (dropout off, batch-norm statistics fixed) and no parameter gradients (autograd
    then keeps nothing for them), both restored afterwards."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model, self.was_training = model, model.training
        self.trainable = [p for p in model.parameters() if p.requires_grad]

    def __enter__(self) -> torch.nn.Module:
        self.model.eval()
        for p in self.trainable:
            p.requires_grad_(False)
        return self.model

    def __exit__(self, *exc: Any) -> None:
        self.model.train(self.was_training)
        for p in self.trainable:
            p.requires_grad_(True)


def _prepare(model, x, y, eps, box, loss, dtype):
    x, y = check_classifier_inputs(model, x, y, box)
    low, high = _check_box(box)
    return x, y, _check_eps(eps), low, high, _check_loss(loss), _working_model(model, dtype)


def _least_likely_targets(model: torch.nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch_size]).argmin(1) for i in range(0, len(x), batch_size)])


# ---------------------------------------------------------------------------------------------------- attacks
def fgsm(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    loss: str = "ce",
    targets: torch.Tensor | None = None,
    box: tuple[float, float] = BOX,
    dtype: torch.dtype | None = None,
    batch_size: int = 500,
    progress: bool | None = False,
) -> torch.Tensor:
    """Fast gradient sign method: ``clip_box(x + eps * sign(grad objective))``; ``targets`` makes it targeted
    (a step down the cross-entropy of the target)."""
    return _iterate(
        model,
        x,
        y,
        eps,
        norm="linf",
        steps=1,
        alpha=eps,
        random_start=False,
        loss=loss,
        targets=targets,
        box=box,
        dtype=dtype,
        batch_size=batch_size,
        progress=progress,
        seed=0,
        name="fgsm",
    )


def bim(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    steps: int = 10,
    alpha: float | None = None,
    loss: str = "ce",
    targets: torch.Tensor | None = None,
    box: tuple[float, float] = BOX,
    dtype: torch.dtype | None = None,
    batch_size: int = 500,
    progress: bool | None = False,
) -> torch.Tensor:
    """Basic iterative method (iterative FGSM): ``steps`` sign steps of ``alpha`` (default ``2.5 eps / steps``),
    each clipped to the L-inf ball and the box, from ``x``."""
    return _iterate(
        model,
        x,
        y,
        eps,
        norm="linf",
        steps=steps,
        alpha=alpha,
        random_start=False,
        loss=loss,
        targets=targets,
        box=box,
        dtype=dtype,
        batch_size=batch_size,
        progress=progress,
        seed=0,
        name="bim",
    )


def pgd(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    norm: str = "linf",
    steps: int = 10,
    alpha: float | None = None,
    random_start: bool = True,
    seed: int = 0,
    loss: str = "ce",
    targets: torch.Tensor | None = None,
    box: tuple[float, float] = BOX,
    dtype: torch.dtype | None = None,
    batch_size: int = 500,
    progress: bool | None = False,
) -> torch.Tensor:
    """Projected gradient descent in the L-inf (sign steps) or L2 (normalised steps) ball of radius ``eps``,
    from a seeded random start (L-inf: uniform in the ball; L2: uniform direction, radius ``U(0, 1) eps``)."""
    return _iterate(
        model,
        x,
        y,
        eps,
        norm=norm,
        steps=steps,
        alpha=alpha,
        random_start=random_start,
        loss=loss,
        targets=targets,
        box=box,
        dtype=dtype,
        batch_size=batch_size,
        progress=progress,
        seed=seed,
        name="pgd",
    )


def least_likely(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    steps: int = 10,
    alpha: float | None = None,
    loss: str = "ce",
    box: tuple[float, float] = BOX,
    dtype: torch.dtype | None = None,
    batch_size: int = 500,
    progress: bool | None = False,
) -> torch.Tensor:
    """Iterative least-likely class method: targeted BIM towards ``argmin`` of the clean logits."""
    x, y = check_classifier_inputs(model, x, y, box)
    working = _working_model(model, dtype)
    with _EvalMode(working):
        targets = _least_likely_targets(working, x.to(_model_dtype(working, x.dtype)), batch_size)
    return _iterate(
        model,
        x,
        y,
        eps,
        norm="linf",
        steps=steps,
        alpha=alpha,
        random_start=False,
        loss=loss,
        targets=targets,
        box=box,
        dtype=dtype,
        batch_size=batch_size,
        progress=progress,
        seed=0,
        name="least-likely",
    )


def _random_start(x: torch.Tensor, eps: float, norm: str, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(int(seed))
    if norm == "linf":
        return (torch.rand(x.shape, generator=generator, dtype=torch.float64) * 2 - 1).mul(eps).to(x.dtype)
    direction = torch.randn(x.shape, generator=generator, dtype=torch.float64)
    direction = direction / direction.flatten(1).norm(dim=1).clamp_min(1e-300).view(-1, *[1] * (x.ndim - 1))
    radius = torch.rand(len(x), generator=generator, dtype=torch.float64) * eps
    return (direction * radius.view(-1, *[1] * (x.ndim - 1))).to(x.dtype)


def _iterate(
    model, x, y, eps, *, norm, steps, alpha, random_start, loss, targets, box, dtype, batch_size, progress, seed, name
) -> torch.Tensor:
    x, y, eps, low, high, loss, working = _prepare(model, x, y, eps, box, loss, dtype)
    if norm not in ("linf", "l2"):
        raise ConfigError(f"norm must be 'linf' or 'l2', got {norm!r}")
    if int(steps) < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    alpha = 2.5 * eps / steps if alpha is None else _check_eps(alpha, "alpha")
    if targets is not None:
        targets = torch.as_tensor(targets).long()
        if targets.shape != y.shape:
            raise DataFormatError(
                "targets must match labels", field="targets", expected=tuple(y.shape), found=tuple(targets.shape)
            )
    work_dtype = _model_dtype(working, x.dtype)
    start = _random_start(x, eps, norm, seed) if random_start and eps > 0 else None
    out = []
    with _EvalMode(working):
        for i in _chunks(len(x), batch_size, progress, name):
            xb = x[i : i + batch_size].to(work_dtype)
            labels = (y if targets is None else targets)[i : i + batch_size]
            adv = xb.clone()
            if start is not None:
                adv = torch.clamp(adv + start[i : i + batch_size].to(work_dtype), low, high)
            if norm == "linf":  # the ball and the box, computed once: each step is then one clamp
                lower, upper = _linf_bounds(xb, eps, low, high)
            for _ in range(int(steps) if eps > 0 else 0):
                grad = input_gradient(working, adv, labels, loss, targeted=targets is not None)
                if norm == "linf":
                    adv = torch.clamp(adv.detach() + alpha * grad.sign(), lower, upper)
                else:
                    norms = grad.flatten(1).norm(dim=1).view(-1, *[1] * (grad.ndim - 1)) + 1e-10
                    adv = _project_l2(adv.detach() + alpha * grad / norms, xb, eps, low, high)
            out.append(_finish(adv, x[i : i + batch_size], eps, norm, low, high))
    return torch.cat(out)


def _runner_up_targets(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), -math.inf).argmax(1)


def lbfgs(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    target: str | torch.Tensor = "runner_up",
    loss: str = "ce",
    initial_c: float = 1e-2,
    search_steps: int = 10,
    max_iter: int = 100,
    box: tuple[float, float] = BOX,
    dtype: torch.dtype | None = None,
    progress: bool | None = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Szegedy et al.'s box-constrained L-BFGS attack; returns ``(adversarial, success)``.

    For each input, minimise ``c ||x' - x||_2^2 + loss(x', target)`` over ``x'`` in the box with L-BFGS-B (scipy;
    ``loss="ce"``: cross-entropy of the target; ``"margin"``: ``max(max_{j != t} z_j - z_t, 0)``). A larger ``c``
    weighs the distance more and yields a smaller perturbation that may miss the target; ``c`` is first scaled
    by 10 from ``initial_c`` until success and failure are bracketed, then bisected in log space
    ``search_steps`` times, and the smallest successful perturbation is kept (inputs with none are returned
    unchanged, ``success`` False). ``target``: ``"runner_up"`` (the second most likely class of the clean input),
    ``"least_likely"``, or a tensor of classes.
    """
    from scipy.optimize import minimize
    from tqdm.auto import tqdm

    x, y = check_classifier_inputs(model, x, y, box)
    low, high = _check_box(box)
    _check_loss(loss)
    if search_steps < 0 or max_iter < 1 or not initial_c > 0:
        raise ConfigError("lbfgs needs search_steps >= 0, max_iter >= 1 and initial_c > 0")
    working = _working_model(model, dtype)
    work_dtype = _model_dtype(working, x.dtype)
    with _EvalMode(working), torch.no_grad():
        logits = torch.cat([working(x[i : i + 500].to(work_dtype)) for i in range(0, len(x), 500)])
    if isinstance(target, str):
        if target not in ("runner_up", "least_likely"):
            raise ConfigError(f"target must be 'runner_up', 'least_likely' or a tensor of classes, got {target!r}")
        targets = _runner_up_targets(logits, y) if target == "runner_up" else logits.argmin(1)
    else:
        targets = torch.as_tensor(target).long()
    adversarial = x.clone()
    success = torch.zeros(len(x), dtype=torch.bool)
    with _EvalMode(working):
        for i in tqdm(
            range(len(x)),
            disable=progress is False if progress is not None else None,
            leave=False,
            desc="lbfgs",
            unit="input",
        ):
            found = _lbfgs_one(
                working,
                x[i : i + 1].to(work_dtype),
                int(targets[i]),
                loss,
                initial_c,
                search_steps,
                max_iter,
                low,
                high,
                minimize,
            )
            if found is not None:
                adversarial[i] = found.to(x.dtype).clamp(low, high)[0]
                success[i] = True
    return adversarial, success


def _lbfgs_one(model, x0, target, loss, initial_c, search_steps, max_iter, low, high, minimize):
    shape, dtype = x0.shape, x0.dtype
    x0_flat = x0.detach().double().flatten().numpy()
    t = torch.tensor([target])

    def fun(flat: np.ndarray, c: float) -> tuple[float, np.ndarray]:
        xt = torch.from_numpy(flat).view(shape).to(dtype).requires_grad_(True)
        logits = model(xt)
        if loss == "ce":
            data = F.cross_entropy(logits, t, reduction="sum")
        else:
            data = torch.clamp(-objective(logits, t, "margin", targeted=True), min=0)
        distance = (xt - x0).square().sum()
        value = c * distance + data
        (grad,) = torch.autograd.grad(value, xt)
        return float(value.detach()), grad.double().flatten().numpy()

    def attempt(c: float):
        result = minimize(
            fun,
            x0_flat,
            args=(c,),
            jac=True,
            method="L-BFGS-B",
            bounds=[(low, high)] * len(x0_flat),
            options={"maxiter": max_iter, "gtol": 1e-10, "ftol": 1e-12},
        )
        candidate = torch.from_numpy(result.x).view(shape).to(dtype)
        with torch.no_grad():
            hit = int(model(candidate).argmax(1)) == target
        return candidate, hit

    best, best_norm = None, math.inf
    c, c_ok, c_fail = float(initial_c), None, None
    for _ in range(10):  # bracket: success at c_ok, failure at c_fail > c_ok
        candidate, hit = attempt(c)
        if hit:
            norm = float((candidate - x0).double().norm())
            if norm < best_norm:
                best, best_norm = candidate, norm
            c_ok = c
            if c_fail is not None:
                break
            c *= 10
        else:
            c_fail = c
            if c_ok is not None:
                break
            c /= 10
    if c_ok is None:
        return None
    if c_fail is None:
        return best
    for _ in range(search_steps):
        c = math.sqrt(c_ok * c_fail)
        candidate, hit = attempt(c)
        if hit:
            c_ok = c
            norm = float((candidate - x0).double().norm())
            if norm < best_norm:
                best, best_norm = candidate, norm
        else:
            c_fail = c
    return best


def spsa(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    steps: int = 20,
    samples: int = 64,
    delta: float = 0.01,
    lr: float | None = None,
    loss: str = "margin",
    seed: int = 0,
    box: tuple[float, float] = BOX,
    dtype: torch.dtype | None = None,
    batch_size: int = 100,
    progress: bool | None = False,
) -> torch.Tensor:
    """SPSA (Uesato et al. 2018): gradient-free L-inf attack.

    Each step estimates the gradient of the objective per input from ``samples`` Rademacher directions ``v``
    as ``mean((f(x + delta v) - f(x - delta v)) / (2 delta) v)`` (model outputs only, no backpropagation),
    takes an Adam step of learning rate ``lr`` (default ``2.5 eps / steps``, PGD's step; Uesato et al. use 0.01
    with many more steps) and projects onto the ball and the box. An input's first
    adversarial (misclassified) iterate is kept.
    """
    x, y, eps, low, high, loss, working = _prepare(model, x, y, eps, box, loss, dtype)
    if steps < 1 or samples < 1 or not delta > 0 or not (lr is None or lr > 0):
        raise ConfigError("spsa needs steps >= 1, samples >= 1, delta > 0 and lr > 0")
    lr = 2.5 * eps / steps if lr is None else float(lr)
    work_dtype = _model_dtype(working, x.dtype)
    generator = torch.Generator().manual_seed(int(seed))
    out = []
    with _EvalMode(working), torch.no_grad():
        for i in _chunks(len(x), batch_size, progress, "spsa"):
            xb, yb = x[i : i + batch_size].to(work_dtype), y[i : i + batch_size]
            adv = xb.clone()
            best = xb.clone()
            fooled = working(adv).argmax(1) != yb
            m, v = torch.zeros_like(adv), torch.zeros_like(adv)
            lower, upper = _linf_bounds(xb, eps, low, high)
            for step in range(1, (steps if eps > 0 else 0) + 1):
                grad = _spsa_gradient(working, adv, yb, loss, samples, delta, generator)
                # Adam ascent (Kingma & Ba 2015, Alg. 1; beta1 0.9, beta2 0.999, epsilon 1e-8)
                m = 0.9 * m + 0.1 * grad
                v = 0.999 * v + 0.001 * grad.square()
                m_hat, v_hat = m / (1 - 0.9**step), v / (1 - 0.999**step)
                adv = torch.clamp(adv + lr * m_hat / (v_hat.sqrt() + 1e-8), lower, upper)
                now_fooled = working(adv).argmax(1) != yb
                new = now_fooled & ~fooled
                best[new] = adv[new]
                fooled |= now_fooled
                if bool(fooled.all()):
                    break
            final = torch.where(fooled.view(-1, *[1] * (xb.ndim - 1)), best, adv)
            out.append(_finish(final, x[i : i + batch_size], eps, "linf", low, high))
    return torch.cat(out)


def _spsa_gradient(model, adv, labels, loss, samples, delta, generator) -> torch.Tensor:
    n = len(adv)
    directions = (torch.randint(0, 2, (samples, *adv.shape), generator=generator) * 2 - 1).to(adv.dtype)
    plus = (adv[None] + delta * directions).flatten(0, 1)
    minus = (adv[None] - delta * directions).flatten(0, 1)
    repeated = labels.repeat(samples)
    f_plus = _per_sample_objective(model(plus), repeated, loss).view(samples, n)
    f_minus = _per_sample_objective(model(minus), repeated, loss).view(samples, n)
    weights = ((f_plus - f_minus) / (2 * delta)).view(samples, n, *[1] * (adv.ndim - 1))
    return (weights * directions).mean(0)


def _per_sample_objective(logits: torch.Tensor, labels: torch.Tensor, loss: str) -> torch.Tensor:
    if loss == "ce":
        return F.cross_entropy(logits, labels, reduction="none")
    chosen = logits.gather(1, labels[:, None])[:, 0]
    others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), -math.inf).amax(1)
    return others - chosen


ATTACKS: dict[str, Callable[..., Any]] = {
    "fgsm": fgsm,
    "bim": bim,
    "pgd": pgd,
    "ll": least_likely,
    "lbfgs": lbfgs,
    "spsa": spsa,
}


def attack_names(names: str | Sequence[str]) -> list[str]:
    """A comma list or sequence of attack names, checked against :data:`ATTACKS`."""
    items = [n.strip() for n in names.split(",")] if isinstance(names, str) else [str(n) for n in names]
    unknown = [n for n in items if n not in ATTACKS]
    if unknown or not items:
        raise ConfigError(f"unknown attack name(s) {unknown or names!r}; choose from {', '.join(ATTACKS)}")
    return items

"""Elementwise nonlinearities and Gaussian expectations: the one table that theory, initialisers and models share.

A :class:`Nonlinearity` is ``phi`` with ``phi'``, ``phi''`` (numpy, elementwise), the Gaussian moments that mean
field needs (closed forms where they exist, quadrature otherwise); :data:`SATURATED_INTERVALS` holds the flat
(saturated) set of each saturating nonlinearity and :func:`torch_activation` its torch module. :func:`get_nonlinearity` turns a name, an object with ``.phi``/``.dphi`` or any
elementwise callable into one. Conventions: ``erf`` means ``phi(x) = erf(x)`` (``phi'(0) = 2/sqrt(pi)``),
``sigmoid`` is the logistic function, ``hard_tanh`` is ``clip(x, -1, 1)``, ``linear`` the identity.

Quadrature (the one implementation of Gaussian expectations in the package): :func:`gaussian_expectation`
(``E_z[f(sqrt(q) z)]``, 1-D) and :func:`gaussian_expectation_2d` (two correlated Gaussians), by a midpoint rule
(geometrically convergent for integrands analytic near the real axis) or Gauss-Hermite (:func:`gauss_hermite`:
exact for polynomials; the free-probability spectra use its nodes as a discrete stand-in for the law of
``phi'(h)^2``).

This module sits at the models layer (``neuromodels``) so that :mod:`neuromodels.init` and the analysis package
(:mod:`neuromodels.analysis.theory`) use the same table; the fixed points of the mean-field maps built on it are
in :mod:`neuromodels.fixed_points`. numpy/scipy only at import; torch is imported inside the functions that need it.

References: Schoenholz et al. 2017, "Deep Information Propagation", arXiv:1611.01232 (the moments, sec. 2);
Williams 1997, "Computing with infinite networks" (erf closed forms); Cho & Saul 2009 (arc-cosine kernel, ReLU);
Nayebi & Ganguli 2017, arXiv:1703.09202 (saturated sets, used by :mod:`neuromodels.fitting.saturation`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from neuromodels.errors import ConfigError

__all__ = [
    "Nonlinearity",
    "get_nonlinearity",
    "NONLINEARITIES",
    "SATURATED_INTERVALS",
    "gaussian_expectation",
    "gaussian_expectation_2d",
    "gauss_hermite",
    "midpoint_rule",
    "torch_activation",
    "elementwise_module_types",
]

NONLINEARITIES = ("tanh", "erf", "relu", "hard_tanh", "sigmoid", "linear")
DEFAULT_NODES = 200  # 1-D midpoint nodes: tanh expectations to ~1e-14 for q <= 10
DEFAULT_NODES_2D = 120  # per dimension (2-D midpoint rule)


# ----------------------------------------------------------------------------------------------- quadrature
@lru_cache(maxsize=32)
def gauss_hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of ``E_z[f(z)] ~ sum_i w_i f(x_i)``, ``z ~ N(0, 1)`` (probabilists' Hermite)."""
    if n < 2:
        raise ConfigError(f"the number of quadrature nodes must be >= 2, got {n}")
    x, w = np.polynomial.hermite_e.hermegauss(int(n))
    w = w / math.sqrt(2.0 * math.pi)
    x.setflags(write=False)
    w.setflags(write=False)
    return x, w


@lru_cache(maxsize=32)
def midpoint_rule(n: int, half_width: float = 9.0) -> tuple[np.ndarray, np.ndarray]:
    """Midpoint rule for ``E_z[f(z)]`` on ``[-half_width, half_width]`` (weights ``h * pdf(x_i)``).

    For integrands analytic in a strip ``|Im z| < d`` the error falls like ``exp(-2 pi d / h)`` (trapezoid rule on
    the real line; Trefethen & Weideman 2014, SIAM Review 56, sec. 5), much faster than Gauss-Hermite when
    ``phi(sqrt(q) z)`` has poles near the real axis (tanh: ``d = pi / (2 sqrt(q))``): with 200 nodes the error of
    ``E[tanh'(sqrt(q) z)^2]`` is ~1e-15 at ``q = 4`` where 200-node Gauss-Hermite has 3e-7. An even ``n`` keeps
    ``0`` off the nodes, so a jump of ``phi'`` at 0 (ReLU) is integrated without bias.
    """
    if n < 2:
        raise ConfigError(f"the number of quadrature nodes must be >= 2, got {n}")
    h = 2.0 * half_width / n
    x = (np.arange(n) - (n - 1) / 2.0) * h
    w = h * np.exp(-0.5 * x**2) / math.sqrt(2.0 * math.pi)
    w = w / w.sum()
    x.setflags(write=False)
    w.setflags(write=False)
    return x, w


def _rule(n: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
    if rule == "midpoint":
        return midpoint_rule(n)
    if rule in ("gauss-hermite", "hermite"):
        return gauss_hermite(n)
    raise ConfigError(f"rule must be 'midpoint' or 'gauss-hermite', got {rule!r}")


def gaussian_expectation(
    f: Callable[[np.ndarray], np.ndarray], q: Any, n: int = DEFAULT_NODES, rule: str = "midpoint"
) -> np.ndarray:
    """``E_z[f(sqrt(q) z)]``, ``z ~ N(0, 1)``, by an ``n``-node rule, vectorised over ``q``.

    ``f`` takes and returns numpy arrays elementwise; ``q`` (variance, >= 0) is any array shape ``S``; the
    result has shape ``S``. ``rule="gauss-hermite"`` is exact for polynomials of degree ``< 2n`` but converges
    slowly for tanh-like functions at ``q >~ 1``; the default ``"midpoint"`` (equispaced nodes on ``[-9, 9]``)
    converges geometrically for any ``phi`` analytic near the real axis (see :func:`midpoint_rule`).
    """
    x, w = _rule(n, rule)
    q = np.asarray(q, dtype=float)
    return _weighted_mean(f(np.sqrt(q)[..., None] * x), w, q)


def _weighted_mean(values: np.ndarray, w: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``values @ w``, with the degenerate Gaussian ``q = 0`` given its value exactly.

    The weights sum to 1 only up to rounding (``1 - 2^-52`` for some ``n``), so ``values @ w`` would turn the
    degenerate Gaussian at ``q = 0`` (every node at ``phi(0)``) into ``phi'(0)^2 (1 - 2^-52)``: ``chi_1 = 1 -
    2^-52`` at the critical point ``(1, 0)`` of tanh and a finite depth scale of 4.5e15 where it is infinite.
    Only those rows are replaced (by their common node value), so the hot path keeps its single product.
    """
    out = values @ w
    degenerate = np.asarray(q) == 0
    if np.any(degenerate):
        out = np.where(degenerate, values[..., 0], out)
    return out


def gaussian_expectation_2d(
    f: Callable[[np.ndarray, np.ndarray], np.ndarray],
    q: Any,
    c: Any,
    n: int = DEFAULT_NODES_2D,
    q2: Any = None,
    rule: str = "midpoint",
) -> np.ndarray:
    """``E[f(u1, u2)]`` for jointly Gaussian ``u1, u2`` with variances ``q``, ``q2`` (default ``q``) and
    correlation ``c``: ``u1 = sqrt(q) z1``, ``u2 = sqrt(q2) (c z1 + sqrt(1 - c^2) z2)`` (Schoenholz et al.
    eq. 5). Tensor-product rule with ``n x n`` nodes, vectorised over the broadcast of ``q, c, q2``.
    """
    x, w = _rule(n, rule)
    q = np.asarray(q, dtype=float)
    q2 = q if q2 is None else np.asarray(q2, dtype=float)
    c = np.clip(np.asarray(c, dtype=float), -1.0, 1.0)
    q, q2, c = np.broadcast_arrays(q, q2, c)
    s1, s2 = np.sqrt(q)[..., None, None], np.sqrt(q2)[..., None, None]
    cc = c[..., None, None]
    z1, z2 = x[:, None], x[None, :]
    u1 = s1 * z1
    u2 = s2 * (cc * z1 + np.sqrt(1.0 - cc**2) * z2)
    values = f(np.broadcast_to(u1, u2.shape), u2)
    return np.einsum("...ij,i,j->...", values, w, w)


# ------------------------------------------------------------------------------------------- nonlinearities
def _norm_pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x**2) / math.sqrt(2.0 * math.pi)


def _erf(x: Any) -> np.ndarray:
    from scipy.special import erf

    return erf(x)


@dataclass(frozen=True)
class Nonlinearity:
    """An elementwise nonlinearity ``phi`` with its derivatives and the Gaussian moments mean field needs.

    ``phi``, ``dphi``, ``ddphi`` act on numpy arrays elementwise. Each moment uses its closed form when one was
    given and quadrature (:func:`gaussian_expectation`) otherwise; ``q`` is the pre-activation variance, ``c`` the correlation.
    ``smooth`` says that ``phi`` is analytic near the real axis, so its Hermite expansion converges fast enough
    for the series solution of the correlation map (:func:`c_star`).
    """

    name: str
    phi: Callable[[np.ndarray], np.ndarray]
    dphi: Callable[[np.ndarray], np.ndarray]
    ddphi: Callable[[np.ndarray], np.ndarray]
    smooth: bool = True
    # optional (phi^2, phi'^2, phi phi'') in one pass, for the length map's Newton iteration
    joint: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]] | None = field(
        default=None, compare=False, repr=False
    )
    closed_forms: dict[str, Callable[..., np.ndarray]] = field(default_factory=dict, compare=False, repr=False)

    def __call__(self, x: Any) -> np.ndarray:
        return self.phi(np.asarray(x, dtype=float))

    def mean_phi_sq(self, q: Any, n: int = DEFAULT_NODES) -> np.ndarray:
        """``E[phi(u)^2]``, ``u ~ N(0, q)``."""
        if "mean_phi_sq" in self.closed_forms:
            return self.closed_forms["mean_phi_sq"](np.asarray(q, dtype=float))
        return gaussian_expectation(lambda u: self.phi(u) ** 2, q, n)

    def mean_dphi_sq(self, q: Any, n: int = DEFAULT_NODES) -> np.ndarray:
        """``E[phi'(u)^2]``, ``u ~ N(0, q)``."""
        if "mean_dphi_sq" in self.closed_forms:
            return self.closed_forms["mean_dphi_sq"](np.asarray(q, dtype=float))
        return gaussian_expectation(lambda u: self.dphi(u) ** 2, q, n)

    def mean_phi_ddphi(self, q: Any, n: int = DEFAULT_NODES) -> np.ndarray:
        """``E[phi(u) phi''(u)]``, ``u ~ N(0, q)`` (the second term of the length map's slope, eq. 8)."""
        if "mean_phi_ddphi" in self.closed_forms:
            return self.closed_forms["mean_phi_ddphi"](np.asarray(q, dtype=float))
        return gaussian_expectation(lambda u: self.phi(u) * self.ddphi(u), q, n)

    def length_moments(self, q: Any, n: int = DEFAULT_NODES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(E[phi^2], E[phi'^2], E[phi phi''])`` at variance ``q``, sharing one evaluation on the nodes."""
        q = np.asarray(q, dtype=float)
        names = ("mean_phi_sq", "mean_dphi_sq", "mean_phi_ddphi")
        if all(k in self.closed_forms for k in names):
            return tuple(self.closed_forms[k](q) for k in names)  # type: ignore[return-value]
        x, w = midpoint_rule(n)
        u = np.sqrt(q)[..., None] * x
        if self.joint is not None:
            out = [_weighted_mean(v, w, q) for v in self.joint(u)]
        else:
            p, d, dd = self.phi(u), self.dphi(u), self.ddphi(u)
            out = [_weighted_mean(v, w, q) for v in (p * p, d * d, p * dd)]
        for i, k in enumerate(names):
            if k in self.closed_forms:
                out[i] = self.closed_forms[k](q)
        return out[0], out[1], out[2]

    def cov_phi(self, q: Any, c: Any, n: int = DEFAULT_NODES_2D) -> np.ndarray:
        """``E[phi(u1) phi(u2)]`` for variance ``q`` and correlation ``c``."""
        if "cov_phi" in self.closed_forms:
            return self.closed_forms["cov_phi"](*np.broadcast_arrays(np.asarray(q, float), np.asarray(c, float)))
        return gaussian_expectation_2d(lambda a, b: self.phi(a) * self.phi(b), q, c, n)

    def cov_dphi(self, q: Any, c: Any, n: int = DEFAULT_NODES_2D) -> np.ndarray:
        """``E[phi'(u1) phi'(u2)]`` for variance ``q`` and correlation ``c``."""
        if "cov_dphi" in self.closed_forms:
            return self.closed_forms["cov_dphi"](*np.broadcast_arrays(np.asarray(q, float), np.asarray(c, float)))
        return gaussian_expectation_2d(lambda a, b: self.dphi(a) * self.dphi(b), q, c, n)


def _tanh() -> Nonlinearity:
    def dphi(x: np.ndarray) -> np.ndarray:
        t = np.tanh(x)
        return 1.0 - t * t

    def integrands(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t2 = np.tanh(x)
        t2 *= t2
        d = 1.0 - t2
        phi_ddphi = t2 * d
        phi_ddphi *= -2.0
        d *= d
        return t2, d, phi_ddphi

    return Nonlinearity("tanh", np.tanh, dphi, lambda x: -2.0 * np.tanh(x) * dphi(x), joint=integrands)


def _erf_nonlinearity() -> Nonlinearity:
    two_over_sqrt_pi = 2.0 / math.sqrt(math.pi)

    def dphi(x: np.ndarray) -> np.ndarray:
        return two_over_sqrt_pi * np.exp(-(x**2))

    # Closed forms for Gaussian u with variance q, correlation c (Williams 1997, "Computing with infinite
    # networks": E[erf(u1) erf(u2)] = 2/pi arcsin(2 S12 / sqrt((1 + 2 S11)(1 + 2 S22)))); the derivative moments
    # are Gaussian integrals of exp(-u1^2 - u2^2) = det(I + 2 S)^(-1/2).
    forms = {
        "mean_phi_sq": lambda q: 2.0 / math.pi * np.arcsin(2.0 * q / (1.0 + 2.0 * q)),
        "mean_dphi_sq": lambda q: 4.0 / math.pi / np.sqrt(1.0 + 4.0 * q),
        # E[erf(u) * (-2u) phi'(u)] = -(8/pi) q / ((1 + 2q) sqrt(1 + 4q)) by Gaussian integration by parts
        "mean_phi_ddphi": lambda q: -8.0 / math.pi * q / ((1.0 + 2.0 * q) * np.sqrt(1.0 + 4.0 * q)),
        "cov_phi": lambda q, c: 2.0 / math.pi * np.arcsin(np.clip(2.0 * q * c / (1.0 + 2.0 * q), -1, 1)),
        "cov_dphi": lambda q, c: 4.0 / math.pi / np.sqrt((1.0 + 2.0 * q) ** 2 - (2.0 * q * c) ** 2),
    }
    return Nonlinearity("erf", _erf, dphi, lambda x: -2.0 * x * dphi(x), closed_forms=forms)


def _relu() -> Nonlinearity:
    def cov_phi(q: np.ndarray, c: np.ndarray) -> np.ndarray:
        # arc-cosine kernel of degree 1 (Cho & Saul 2009)
        theta = np.arccos(np.clip(c, -1.0, 1.0))
        return q / (2.0 * math.pi) * (np.sin(theta) + (math.pi - theta) * np.cos(theta))

    forms = {
        "mean_phi_sq": lambda q: q / 2.0,
        "mean_dphi_sq": lambda q: np.full_like(q, 0.5),
        "mean_phi_ddphi": lambda q: np.zeros_like(q),  # phi'' = delta(x), and phi(0) = 0
        "cov_phi": cov_phi,
        "cov_dphi": lambda q, c: (math.pi - np.arccos(np.clip(c, -1.0, 1.0))) / (2.0 * math.pi) + 0.0 * q,
    }
    return Nonlinearity(
        "relu",
        lambda x: np.maximum(x, 0.0),
        lambda x: (x > 0).astype(float),
        lambda x: np.zeros_like(x),
        smooth=False,
        closed_forms=forms,
    )


def _hard_tanh() -> Nonlinearity:
    from scipy.special import ndtr

    def mean_phi_sq(q: np.ndarray) -> np.ndarray:
        # E[u^2; |u| < 1] + P(|u| > 1), u = sqrt(q) z, t = 1/sqrt(q): q[(2 Phi(t) - 1) - 2 t pdf(t)] + 2(1 - Phi(t))
        with np.errstate(divide="ignore", invalid="ignore"):
            t = 1.0 / np.sqrt(q)
            inner = np.where(q > 0, q * ((2.0 * ndtr(t) - 1.0) - 2.0 * t * _norm_pdf(t)), 0.0)
        return inner + 2.0 * (1.0 - ndtr(t))

    def mean_phi_ddphi(q: np.ndarray) -> np.ndarray:
        # phi'' = delta(x + 1) - delta(x - 1): E[phi phi''] = -2 p_u(1), p_u the N(0, q) density
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(q > 0, -2.0 * np.exp(-0.5 / q) / np.sqrt(2.0 * math.pi * q), 0.0)

    forms = {
        "mean_phi_sq": mean_phi_sq,
        "mean_dphi_sq": lambda q: _erf(1.0 / np.sqrt(2.0 * np.maximum(q, 1e-300))),  # P(|u| < 1)
        "mean_phi_ddphi": mean_phi_ddphi,
    }
    return Nonlinearity(
        "hard_tanh",
        lambda x: np.clip(x, -1.0, 1.0),
        lambda x: (np.abs(x) < 1).astype(float),
        lambda x: np.zeros_like(x),
        smooth=False,
        closed_forms=forms,
    )


def _sigmoid() -> Nonlinearity:
    from scipy.special import expit

    def dphi(x: np.ndarray) -> np.ndarray:
        s = expit(x)
        return s * (1.0 - s)

    def ddphi(x: np.ndarray) -> np.ndarray:
        s = expit(x)
        return s * (1.0 - s) * (1.0 - 2.0 * s)

    return Nonlinearity("sigmoid", expit, dphi, ddphi)


def _linear() -> Nonlinearity:
    forms = {
        "mean_phi_sq": lambda q: q,
        "mean_dphi_sq": lambda q: np.ones_like(q),
        "mean_phi_ddphi": lambda q: np.zeros_like(q),
        "cov_phi": lambda q, c: q * c,
        "cov_dphi": lambda q, c: np.ones_like(q * c),
    }
    return Nonlinearity(
        "linear",
        lambda x: np.asarray(x, dtype=float),
        lambda x: np.ones_like(x),
        lambda x: np.zeros_like(x),
        closed_forms=forms,
    )


_BUILDERS = {
    "tanh": _tanh,
    "erf": _erf_nonlinearity,
    "relu": _relu,
    "hard_tanh": _hard_tanh,
    "hardtanh": _hard_tanh,
    "sigmoid": _sigmoid,
    "logistic": _sigmoid,
    "linear": _linear,
    "identity": _linear,
    "none": _linear,
}

# The flat (saturated) set of each saturating nonlinearity, as closed intervals of the pre-activation; ``None``:
# flat only at +-infinity (tanh, sigmoid, erf), where Nayebi & Ganguli (2017, sec. 2) use phi' as the complement.
SATURATED_INTERVALS: dict[str, tuple[tuple[float, float], ...] | None] = {
    "relu": ((-math.inf, 0.0),),
    "hard_tanh": ((-math.inf, -1.0), (1.0, math.inf)),
    "tanh": None,
    "sigmoid": None,
    "erf": None,
}


def _as_numpy_function(func: Callable[..., Any]) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap ``func`` so it takes and returns float64 numpy arrays (torch functions are accepted too)."""

    def wrapped(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        try:
            out = func(x)
        except TypeError:  # a torch-only callable (e.g. torch.nn.functional.gelu) refuses numpy arrays
            import torch

            out = func(torch.as_tensor(np.array(x), dtype=torch.float64))
        if hasattr(out, "detach"):
            out = out.detach().cpu().numpy()
        return np.asarray(out, dtype=float).reshape(x.shape) if np.ndim(out) else np.full(x.shape, float(out))

    return wrapped


def _torch_derivatives(func: Callable[..., Any]) -> tuple[Callable, Callable] | None:
    """First and second derivatives of ``func`` by torch autograd, or ``None`` if it is not torch-traceable."""
    try:
        import torch

        probe = torch.linspace(-2, 2, 5, dtype=torch.float64, requires_grad=True)
        out = func(probe)
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            return None
    except (TypeError, RuntimeError):  # a numpy-only callable refuses (or cannot convert) a tensor with a graph
        return None

    def derivatives(x: np.ndarray, order: int) -> np.ndarray:
        t = torch.as_tensor(np.asarray(x, dtype=float).ravel(), dtype=torch.float64).requires_grad_(True)
        (g,) = torch.autograd.grad(func(t).sum(), t, create_graph=order > 1)
        if order > 1:
            if not g.requires_grad:
                return np.zeros(np.shape(x))
            (g,) = torch.autograd.grad(g.sum(), t)
        return g.detach().numpy().reshape(np.shape(x))

    return (lambda x: derivatives(x, 1)), (lambda x: derivatives(x, 2))


def get_nonlinearity(phi: str | Nonlinearity | Callable[..., Any]) -> Nonlinearity:
    """The :class:`Nonlinearity` for a name (``"tanh"``, ``"erf"``, ``"relu"``, ``"hard_tanh"``, ``"sigmoid"``,
    ``"linear"``), an existing :class:`Nonlinearity` (or any object with ``.phi`` and ``.dphi``; a built-in name
    in its ``.name`` selects the built-in with its closed forms), or any elementwise callable.

    For a callable, derivatives come from torch autograd when the callable accepts torch tensors, otherwise from
    central differences (steps 1e-5 and 1e-4: errors about 1e-10 and 1e-8 for smooth functions). A callable is
    treated as non-smooth (2-D quadrature for the correlation map) since its analyticity is unknown.
    """
    if isinstance(phi, Nonlinearity):
        return phi
    if not isinstance(phi, str) and hasattr(phi, "phi") and hasattr(phi, "dphi"):
        # a duck-typed nonlinearity object (name, phi, dphi[, ddphi]) from elsewhere
        if isinstance(getattr(phi, "name", None), str) and phi.name.lower().replace("-", "_") in _BUILDERS:
            return _BUILDERS[phi.name.lower().replace("-", "_")]()
        first = _as_numpy_function(phi.dphi)
        second = (
            _as_numpy_function(phi.ddphi)
            if hasattr(phi, "ddphi")
            else (lambda x, h=1e-5: (first(x + h) - first(x - h)) / (2.0 * h))
        )
        return Nonlinearity(
            str(getattr(phi, "name", "custom")), _as_numpy_function(phi.phi), first, second, smooth=False
        )
    if isinstance(phi, str):
        key = phi.strip().lower().replace("-", "_")
        if key not in _BUILDERS:
            raise ConfigError(f"unknown nonlinearity {phi!r}: use one of {', '.join(NONLINEARITIES)} or a callable")
        return _BUILDERS[key]()
    if not callable(phi):
        raise ConfigError(f"phi must be a name ({', '.join(NONLINEARITIES)}) or a callable, got {type(phi).__name__}")
    name = getattr(phi, "__name__", type(phi).__name__)
    numpy_phi = _as_numpy_function(phi)
    derivs = _torch_derivatives(phi)
    if derivs is not None:
        dphi, ddphi = derivs
    else:

        def dphi(x: np.ndarray, h: float = 1e-5) -> np.ndarray:
            return (numpy_phi(x + h) - numpy_phi(x - h)) / (2.0 * h)

        def ddphi(x: np.ndarray, h: float = 1e-4) -> np.ndarray:
            return (numpy_phi(x + h) - 2.0 * numpy_phi(x) + numpy_phi(x - h)) / h**2

    return Nonlinearity(name, numpy_phi, dphi, ddphi, smooth=False)


# ------------------------------------------------------------------------------------------------ torch modules
def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


@lru_cache(maxsize=1)
def _torch_classes() -> dict[str, type]:
    """The torch module class of each built-in nonlinearity (built once, so ``isinstance`` checks work)."""
    import torch

    class Erf(torch.nn.Module):
        """``erf(x)`` elementwise, the convention of this module (slope ``2/sqrt(pi)`` at 0)."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.erf(x)

    return {
        "tanh": torch.nn.Tanh,
        "erf": Erf,
        "relu": torch.nn.ReLU,
        "hard_tanh": torch.nn.Hardtanh,
        "sigmoid": torch.nn.Sigmoid,
        "linear": torch.nn.Identity,
    }


@lru_cache(maxsize=1)
def _callable_activation_class() -> type:
    import torch

    class CallableActivation(torch.nn.Module):
        """An elementwise torch-callable nonlinearity as a module."""

        def __init__(self, func: Callable[[torch.Tensor], torch.Tensor]) -> None:
            super().__init__()
            self.func = func

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.func(x)

    return CallableActivation


def elementwise_module_types() -> tuple[type, ...]:
    """The torch module classes :func:`torch_activation` returns for the built-in names (all elementwise)."""
    return tuple(_torch_classes().values())


def torch_activation(phi: Any) -> Any:
    """A ``torch.nn.Module`` applying ``phi`` elementwise.

    ``phi``: a built-in name (:data:`NONLINEARITIES` and aliases; ``erf`` is ``erf(x)``), an object whose ``.name``
    is a built-in name (a :class:`Nonlinearity`), a ``torch.nn.Module`` (returned as it is), or a torch-callable
    (``torch.sin``, an object with a torch-callable ``.phi``), wrapped in a module.
    """
    import torch

    if isinstance(phi, torch.nn.Module):
        return phi
    if isinstance(phi, str):
        return _torch_classes()[get_nonlinearity(phi).name]()
    name = getattr(phi, "name", None)
    if isinstance(name, str) and _key(name) in _BUILDERS:
        return _torch_classes()[_BUILDERS[_key(name)]().name]()
    func = getattr(phi, "phi", phi)
    if not callable(func):
        raise ConfigError(f"no torch module for nonlinearity {phi!r}: pass a name, a torch.nn.Module or a callable")
    return _callable_activation_class()(func)

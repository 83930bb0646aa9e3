"""Mean-field signal propagation through deep random networks (Poole et al. 2016; Schoenholz et al. 2017).

Setting (Schoenholz et al., "Deep Information Propagation", arXiv:1611.01232, sec. 2): a fully connected network
``h^l = W^l y^{l-1} + b^l``, ``y^l = phi(h^l)``, with ``W_ij ~ N(0, sigma_w2 / N_{l-1})`` and
``b_i ~ N(0, sigma_b2)``, in the limit of infinite width. Pre-activations are Gaussian with variance ``q^l``
(the *length*) and two inputs have pre-activation correlation ``c^l``. With dropout on the activations (keep
probability ``rho``, surviving units scaled by ``1/rho``, sec. 5 of the paper) the maps are

* length map (eq. 3 with sec. 5):  ``q^l = sigma_w2 / rho * E_z[phi(sqrt(q^{l-1}) z)^2] + sigma_b2``
* correlation map (eq. 4/5):       ``c^l q* = sigma_w2 * E[phi(u1) phi(u2)] + sigma_b2``,
  ``u1 = sqrt(q*) z1``, ``u2 = sqrt(q*) (c z1 + sqrt(1 - c^2) z2)`` (the dropout masks of two inputs are
  independent, so the off-diagonal term has no ``1/rho``)
* ``chi_1 = sigma_w2 / rho * E[phi'(sqrt(q*) z)^2]`` (eq. 6; the ``1/rho`` is the per-layer growth of squared
  gradients under dropout, sec. 6; at ``rho = 1`` it is also the slope of the correlation map at ``c = 1``)
* ``chi_c = sigma_w2 * E[phi'(u1) phi'(u2)]`` at ``c*`` (slope of the correlation map, eq. 9)
* depth scales (eqs. 8, 9): ``xi_q = -1 / log(slope of the length map at q*)``, which at ``rho = 1`` is
  ``-1 / log(chi_1 + sigma_w2 E[phi''(u) phi(u)])``; ``xi_c = -1 / log(chi_c)``
* gradient depth scale (sec. 6): ``xi_grad = -1 / log(chi_1)`` (negative in the chaotic phase: gradients explode
  with that e-folding depth).

The order-to-chaos transition is ``chi_1 = 1`` (the *critical line*). Expectations over Gaussians are computed
by quadrature (a midpoint rule, geometrically convergent for analytic ``phi``; Gauss-Hermite on request),
vectorised over broadcast parameter arrays, or by closed forms
where they exist (erf, ReLU, hard-tanh, linear). The correlation fixed point ``c*`` of smooth nonlinearities is
found on a Hermite (Mehler) expansion of the correlation map, ``E[f(z1) f(z2)] = sum_k a_k^2 c^k`` with
``a_k = E[f(z) He_k(z)] / sqrt(k!)``, so that it is a power series in ``c`` (positive coefficients: convex and
increasing on [0, 1]) that Newton's method solves without any 2-D quadrature; see :func:`c_star`.

Conventions: ``erf`` means ``phi(x) = erf(x)`` (so ``phi'(0) = 2/sqrt(pi)`` and the critical point at
``sigma_b2 = 0`` is ``sigma_w2 = pi/4``); ``sigmoid`` is the logistic function; ``hard_tanh`` is
``clip(x, -1, 1)``. Correlations are studied on ``[0, 1]`` (positively correlated inputs, as in the paper).
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
    "Nonlinearity", "get_nonlinearity", "NONLINEARITIES", "gaussian_expectation", "gaussian_expectation_2d",
    "length_map", "correlation_map", "q_star", "c_star", "chi1", "chi_c", "length_map_slope", "depth_scales",
    "critical_sigma_w2", "critical_point", "phase_diagram", "iterate_length_map", "iterate_correlation_map",
]

NONLINEARITIES = ("tanh", "erf", "relu", "hard_tanh", "sigmoid", "linear")
DEFAULT_NODES = 200       # 1-D midpoint nodes: tanh expectations to ~1e-14 for q <= 10
DEFAULT_NODES_2D = 120    # per dimension (2-D midpoint rule)
SERIES_TERMS = 160        # Hermite-expansion terms for the correlation map of smooth nonlinearities
SERIES_NODES = 240


# ----------------------------------------------------------------------------------------------- quadrature
@lru_cache(maxsize=32)
def _gauss_hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of ``E_z[f(z)] ~ sum_i w_i f(x_i)``, ``z ~ N(0, 1)`` (probabilists' Hermite)."""
    if n < 2:
        raise ConfigError(f"the number of quadrature nodes must be >= 2, got {n}")
    x, w = np.polynomial.hermite_e.hermegauss(int(n))
    w = w / math.sqrt(2.0 * math.pi)
    x.setflags(write=False)
    w.setflags(write=False)
    return x, w


@lru_cache(maxsize=32)
def _midpoint(n: int, half_width: float = 9.0) -> tuple[np.ndarray, np.ndarray]:
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
        return _midpoint(n)
    if rule in ("gauss-hermite", "hermite"):
        return _gauss_hermite(n)
    raise ConfigError(f"rule must be 'midpoint' or 'gauss-hermite', got {rule!r}")


def gaussian_expectation(f: Callable[[np.ndarray], np.ndarray], q: Any, n: int = DEFAULT_NODES,
                         rule: str = "midpoint") -> np.ndarray:
    """``E_z[f(sqrt(q) z)]``, ``z ~ N(0, 1)``, by an ``n``-node rule, vectorised over ``q``.

    ``f`` takes and returns numpy arrays elementwise; ``q`` (variance, >= 0) is any array shape ``S``; the
    result has shape ``S``. ``rule="gauss-hermite"`` is exact for polynomials of degree ``< 2n`` but converges
    slowly for tanh-like functions at ``q >~ 1``; the default ``"midpoint"`` (equispaced nodes on ``[-9, 9]``)
    converges geometrically for any ``phi`` analytic near the real axis (see :func:`_midpoint`).
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
    f: Callable[[np.ndarray, np.ndarray], np.ndarray], q: Any, c: Any, n: int = DEFAULT_NODES_2D,
    q2: Any = None, rule: str = "midpoint",
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
        default=None, compare=False, repr=False)
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
        x, w = _midpoint(n)
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
    return Nonlinearity("relu", lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(float),
                        lambda x: np.zeros_like(x), smooth=False, closed_forms=forms)


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
    return Nonlinearity("hard_tanh", lambda x: np.clip(x, -1.0, 1.0), lambda x: (np.abs(x) < 1).astype(float),
                        lambda x: np.zeros_like(x), smooth=False, closed_forms=forms)


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
    return Nonlinearity("linear", lambda x: np.asarray(x, dtype=float), lambda x: np.ones_like(x),
                        lambda x: np.zeros_like(x), closed_forms=forms)


_BUILDERS = {"tanh": _tanh, "erf": _erf_nonlinearity, "relu": _relu, "hard_tanh": _hard_tanh,
             "hardtanh": _hard_tanh, "sigmoid": _sigmoid, "logistic": _sigmoid, "linear": _linear,
             "identity": _linear}


def _as_numpy_function(func: Callable[..., Any]) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap ``func`` so it takes and returns float64 numpy arrays (torch functions are accepted too)."""

    def wrapped(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        try:
            out = func(x)
        except Exception:  # noqa: BLE001 - a torch-only callable (e.g. torch.nn.functional.gelu)
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
    except Exception:  # noqa: BLE001 - numpy-only callable
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
        second = _as_numpy_function(phi.ddphi) if hasattr(phi, "ddphi") else (
            lambda x, h=1e-5: (first(x + h) - first(x - h)) / (2.0 * h))
        return Nonlinearity(str(getattr(phi, "name", "custom")), _as_numpy_function(phi.phi), first, second,
                            smooth=False)
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


# ------------------------------------------------------------------------------------------------- helpers
def _check_params(sigma_w2: Any, sigma_b2: Any, rho: Any = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sw, sb, r = (np.asarray(v, dtype=float) for v in (sigma_w2, sigma_b2, rho))
    if np.any(~np.isfinite(sw)) or np.any(sw <= 0):
        raise ConfigError(f"sigma_w2 must be finite and > 0, got {sigma_w2!r}")
    if np.any(~np.isfinite(sb)) or np.any(sb < 0):
        raise ConfigError(f"sigma_b2 must be finite and >= 0, got {sigma_b2!r}")
    if np.any(~(r > 0)) or np.any(r > 1):
        raise ConfigError(f"rho (dropout keep probability) must be in (0, 1], got {rho!r}")
    return sw, sb, r


def _out(x: np.ndarray) -> Any:
    """0-d arrays come back as Python floats, arrays unchanged."""
    x = np.asarray(x)
    return float(x) if x.ndim == 0 else x


# ---------------------------------------------------------------------------------------------------- maps
def length_map(q: Any, sigma_w2: Any, sigma_b2: Any, phi: Any = "tanh", rho: Any = 1.0) -> Any:
    """One layer of the length map, ``q -> sigma_w2 / rho * E[phi(sqrt(q) z)^2] + sigma_b2`` (eq. 3, sec. 5).

    All arguments broadcast; returns an array of the broadcast shape (a float for scalars).
    """
    sw, sb, r = _check_params(sigma_w2, sigma_b2, rho)
    q = np.asarray(q, dtype=float)
    if np.any(q < 0):
        raise ConfigError("q (pre-activation variance) must be >= 0")
    nl = get_nonlinearity(phi)
    return _out(sw / r * nl.mean_phi_sq(q) + sb)


def length_map_slope(q: Any, sigma_w2: Any, phi: Any = "tanh", rho: Any = 1.0) -> Any:
    """``d q^{l+1} / d q^l = sigma_w2 / rho * (E[phi'^2] + E[phi phi''])`` (Gaussian integration by parts;
    at ``q*`` and ``rho = 1`` this is ``chi_1 + sigma_w2 E[phi'' phi]`` of eq. 8)."""
    nl = get_nonlinearity(phi)
    q = np.asarray(q, dtype=float)
    return _out(np.asarray(sigma_w2, float) / np.asarray(rho, float) * (nl.mean_dphi_sq(q) + nl.mean_phi_ddphi(q)))


def iterate_length_map(q0: Any, sigma_w2: float, sigma_b2: float, depth: int, phi: Any = "tanh",
                       rho: float = 1.0) -> np.ndarray:
    """``q^0 .. q^depth`` (shape ``(depth + 1,) + shape(q0)``) from the length map, starting at ``q0``."""
    out = [np.asarray(q0, dtype=float)]
    for _ in range(int(depth)):
        out.append(np.asarray(length_map(out[-1], sigma_w2, sigma_b2, phi, rho)))
    return np.stack(out)


def correlation_map(c: Any, sigma_w2: Any, sigma_b2: Any, phi: Any = "tanh", q: Any = None, rho: Any = 1.0) -> Any:
    """One layer of the correlation map at fixed length ``q`` (default ``q*``):
    ``c -> (sigma_w2 E[phi(u1) phi(u2)] + sigma_b2) / q_next`` with ``q_next`` the length map of ``q``
    (equal to ``q*`` when ``q = q*``; eqs. 4-5 with sec. 5 for dropout)."""
    sw, sb, r = _check_params(sigma_w2, sigma_b2, rho)
    nl = get_nonlinearity(phi)
    q = np.asarray(q_star(sw, sb, nl, r) if q is None else q, dtype=float)
    q_next = sw / r * nl.mean_phi_sq(q) + sb
    return _out((sw * nl.cov_phi(q, c) + sb) / q_next)


def iterate_correlation_map(c0: Any, sigma_w2: float, sigma_b2: float, depth: int, phi: Any = "tanh",
                            q0: Any = None, rho: float = 1.0) -> np.ndarray:
    """``c^0 .. c^depth`` for two inputs of equal length ``q0`` (default ``q*``); the length follows the length
    map alongside, so this is the full two-input recursion, not only the map at ``q*``."""
    nl = get_nonlinearity(phi)
    q = np.asarray(q_star(sigma_w2, sigma_b2, nl, rho) if q0 is None else q0, dtype=float)
    out = [np.asarray(c0, dtype=float)]
    for _ in range(int(depth)):
        out.append(np.asarray(correlation_map(out[-1], sigma_w2, sigma_b2, nl, q=q, rho=rho)))
        q = np.asarray(length_map(q, sigma_w2, sigma_b2, nl, rho))
    return np.stack(out)


# ---------------------------------------------------------------------------------------------- fixed points
Q_MAX = 1e8
_Q_GRID = np.concatenate([[0.0], np.geomspace(1e-10, 1e4, 281)])


def _adaptive_nodes(nl: Nonlinearity, q_max: float) -> int:
    """Midpoint nodes for the built-in analytic nonlinearities at variances up to ``q_max``.

    The rule's error is ~``exp(-2 pi d / h)`` with ``h = 18 / n`` and ``d = pi / (2 sqrt(q))`` for tanh (the
    nearest poles of the integrand; sigmoid's are twice as far, erf has none): ``n = 60 sqrt(q) + 40`` keeps it
    below 1e-20, with fewer nodes than the default 200 when all ``q <= 7`` (faster phase diagrams).
    """
    if nl.name not in ("tanh", "sigmoid", "erf") or not np.isfinite(q_max):
        return DEFAULT_NODES
    n = int(60.0 * math.sqrt(max(q_max, 0.0)) + 40.0)
    return int(min(max(n + n % 2, 64), 2000))


def q_star(sigma_w2: Any, sigma_b2: Any, phi: Any = "tanh", rho: Any = 1.0, *, n: int | None = None,
           tol: float = 1e-13, max_iter: int = 200) -> Any:
    """The fixed point ``q*`` of the length map, vectorised over broadcast ``sigma_w2, sigma_b2, rho``.

    Solves ``g(q) = L(q) - q = 0`` by Newton's method safeguarded by bisection on a bracket ``[lo, hi]`` with
    ``g(lo) >= 0 > g(hi)`` (``g(0) = sigma_w2/rho phi(0)^2 + sigma_b2 >= 0``), found on a log grid of ``q``.
    The root found is the first place (smallest ``q``) where the map crosses the diagonal from above, the fixed
    point reached by iterating the map from small lengths (stable). Where no crossing exists below ``1e8`` (e.g. ReLU at or above ``sigma_w2 = 2 rho`` with
    ``sigma_b2 > 0``: the length grows without bound) the result is ``inf``. ``n``: quadrature nodes (default:
    enough for the largest bracketed ``q``, see :func:`_adaptive_nodes`).
    """
    sw, sb, r = _check_params(sigma_w2, sigma_b2, rho)
    nl = get_nonlinearity(phi)
    sw, sb, r = np.broadcast_arrays(sw, sb, r)
    shape = sw.shape
    sw, sb, r = sw.ravel(), sb.ravel(), r.ravel()
    a = sw / r
    g0 = a * float(nl.phi(np.zeros(1))[0]) ** 2 + sb
    # Bracket the first downward crossing of the diagonal on a tabulated log grid of q (one evaluation of
    # E[phi^2] on 282 values serves every parameter point); start Newton from the secant inside the bracket.
    grid = _Q_GRID
    m_grid = nl.mean_phi_sq(grid, DEFAULT_NODES if n is None else n)
    lo = np.zeros_like(sw)
    hi = np.full_like(sw, np.inf)
    q0 = np.full_like(sw, np.nan)
    for chunk in np.array_split(np.arange(sw.size), max(1, sw.size // 4096)):
        g_grid = a[chunk, None] * m_grid + sb[chunk, None] - grid
        below = g_grid < 0
        j = np.argmax(below, axis=1)
        found = below[np.arange(chunk.size), j]
        jj = np.maximum(j, 1)
        g_lo = g_grid[np.arange(chunk.size), jj - 1]
        g_hi = g_grid[np.arange(chunk.size), jj]
        lo[chunk] = np.where(found, grid[jj - 1], grid[-1])
        hi[chunk] = np.where(found, grid[jj], np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            q0[chunk] = np.where(found, grid[jj - 1] + g_lo * (grid[jj] - grid[jj - 1]) / (g_lo - g_hi), np.nan)
    # beyond the grid: expand the bracket geometrically (unbounded phi with slowly growing length)
    for _ in range(60):
        grow = ~np.isfinite(hi) & (lo < Q_MAX)
        if not grow.any():
            break
        trial = lo[grow] * 4.0
        g_trial = a[grow] * nl.mean_phi_sq(trial) + sb[grow] - trial
        fell = g_trial < 0
        sub = np.flatnonzero(grow)
        hi[sub[fell]] = trial[fell]
        q0[sub[fell]] = trial[fell]
        lo[sub[~fell]] = trial[~fell]
    result = np.full(sw.shape, np.inf)
    ok = np.isfinite(hi)
    if n is None:
        n = _adaptive_nodes(nl, float(hi[ok].max()) if ok.any() else 1.0)
    zero = g0 <= 0  # sigma_b2 = 0 and phi(0) = 0: q = 0 is a fixed point; Newton finds whether it is the stable one
    idx = np.flatnonzero(ok)
    q = np.where(np.isfinite(q0[idx]), q0[idx], hi[idx])
    lo_i, hi_i, a_i, sb_i = lo[idx], hi[idx], a[idx], sb[idx]
    active = np.ones(idx.size, dtype=bool)
    for _ in range(max_iter):
        if not active.any():
            break
        k = np.flatnonzero(active)
        qk = q[k]
        m_phi, m_dphi, m_phi_ddphi = nl.length_moments(qk, n)
        g = a_i[k] * m_phi + sb_i[k] - qk
        slope = a_i[k] * (m_dphi + m_phi_ddphi) - 1.0
        # keep the bracket: g >= 0 on the left, g < 0 on the right
        lo_i[k] = np.where(g >= 0, qk, lo_i[k])
        hi_i[k] = np.where(g < 0, qk, hi_i[k])
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(slope != 0, -g / slope, np.nan)
        new = qk + step
        bad = ~np.isfinite(new) | (new <= lo_i[k]) | (new >= hi_i[k])
        new = np.where(bad, 0.5 * (lo_i[k] + hi_i[k]), new)
        scale = np.maximum(1.0, qk)
        # |g| at rounding level: further Newton steps only chase noise (slow near the critical line, g' ~ 0)
        converged = np.abs(g) <= 4e-16 * (scale + a_i[k] * m_phi)
        done = converged | (np.abs(new - qk) <= tol * scale) | (hi_i[k] - lo_i[k] <= tol * scale)
        new = np.where(converged, qk, new)
        # at a simple root Newton's error after a step of size s is O(s^2): a tiny step needs no further check
        done |= (np.abs(step) <= 1e-8 * scale) & (np.abs(slope) > 1e-2) & ~bad
        q[k] = new
        active[k[done]] = False
    result[idx] = q
    result = np.where(zero & (result < 1e-10), 0.0, result)
    return _out(result.reshape(shape))


def chi1(sigma_w2: Any, sigma_b2: Any, phi: Any = "tanh", q: Any = None, rho: Any = 1.0) -> Any:
    """``chi_1 = sigma_w2 / rho * E[phi'(sqrt(q) z)^2]`` at ``q`` (default ``q*``), vectorised (eq. 6, sec. 6).

    ``chi_1 < 1``: ordered phase (vanishing gradients); ``> 1``: chaotic (exploding gradients); ``= 1``: critical.
    """
    sw, sb, r = _check_params(sigma_w2, sigma_b2, rho)
    nl = get_nonlinearity(phi)
    q = np.asarray(q_star(sw, sb, nl, r) if q is None else q, dtype=float)
    with np.errstate(invalid="ignore"):
        return _out(sw / r * nl.mean_dphi_sq(q))


def chi_c(c: Any, sigma_w2: Any, sigma_b2: Any, phi: Any = "tanh", q: Any = None, rho: Any = 1.0) -> Any:
    """Slope of the correlation map, ``chi_c = sigma_w2 E[phi'(u1) phi'(u2)]`` at correlation ``c`` (eq. 9)."""
    sw, sb, r = _check_params(sigma_w2, sigma_b2, rho)
    nl = get_nonlinearity(phi)
    q = np.asarray(q_star(sw, sb, nl, r) if q is None else q, dtype=float)
    return _out(sw * nl.cov_dphi(q, c))


@lru_cache(maxsize=4)
def _hermite_matrix(n_nodes: int, n_terms: int) -> np.ndarray:
    """``w_i He_k(x_i) / sqrt(k!)`` (``n_nodes x n_terms``): projection on normalised Hermite polynomials."""
    x, w = _midpoint(n_nodes)
    h = np.empty((n_nodes, n_terms))
    h[:, 0] = 1.0
    if n_terms > 1:
        h[:, 1] = x
    for k in range(1, n_terms - 1):
        h[:, k + 1] = (x * h[:, k] - math.sqrt(k) * h[:, k - 1]) / math.sqrt(k + 1)
    m = w[:, None] * h
    m.setflags(write=False)
    return m


def _mehler_coefficients(nl: Nonlinearity, q: np.ndarray, n_terms: int = SERIES_TERMS,
                         n_nodes: int = SERIES_NODES) -> np.ndarray:
    """``a_k^2`` with ``a_k = E[phi(sqrt(q) z) He_k(z)] / sqrt(k!)``, shape ``q.shape + (n_terms,)``, so that
    ``E[phi(u1) phi(u2)] = sum_k a_k^2 c^k`` (Mehler's formula)."""
    x, _ = _midpoint(n_nodes)
    values = nl.phi(np.sqrt(q)[..., None] * x)
    a = values @ _hermite_matrix(n_nodes, n_terms)
    return a**2


def _solve_c_star(cov_and_slope: Callable[[Any, np.ndarray], tuple[np.ndarray, np.ndarray]],
                  sw: np.ndarray, sb: np.ndarray, qs: np.ndarray, max_iter: int = 100, tol: float = 1e-13
                  ) -> np.ndarray:
    """Newton from ``c = 0`` on the convex, increasing map ``M(c) = (sw cov(c) + sb) / q*``: iterates increase
    monotonically to the smallest fixed point in ``[0, 1]`` (the stable one). ``cov_and_slope(idx, c)`` returns
    ``E[phi phi]`` and ``d/dc E[phi phi] = q* E[phi' phi']`` on the subset ``idx`` (an index array or a slice)."""
    c = np.zeros_like(qs)
    active = np.ones(qs.shape, dtype=bool)
    for _ in range(max_iter):
        if not active.any():
            break
        k: Any = slice(None) if active.all() else np.flatnonzero(active)
        cov, dcov = cov_and_slope(k, c[k])
        m = (sw[k] * cov + sb[k]) / qs[k]
        dm = sw[k] * dcov / qs[k]
        g, dg = m - c[k], dm - 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            new = np.where(dg < 0, c[k] - g / dg, 1.0)
        new = np.clip(np.where(np.isfinite(new), new, 1.0), c[k], 1.0)
        # |g| at rounding level ends the iteration (near the critical line g' ~ 0 and steps only chase noise)
        done = (np.abs(new - c[k]) <= tol) | (np.abs(g) <= 4e-16 * (1.0 + np.abs(m)))
        c[k] = new
        active[np.arange(qs.size)[k][done]] = False
    return c


def _series_evaluator(coef: np.ndarray) -> Callable[[Any, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``(sum_k a_k c^k, sum_k k a_k c^(k-1))`` by one Horner pass, for rows ``idx`` of ``coef`` (points x terms).

    Trailing terms below 1e-18 of the largest total at every point are dropped first."""
    totals = coef.sum(axis=1).max(initial=0.0)
    significant = np.flatnonzero((coef > 1e-18 * max(totals, 1e-300)).any(axis=0))
    n_terms = int(significant[-1]) + 1 if significant.size else 1
    coef_t = np.ascontiguousarray(coef[:, :n_terms].T)  # terms x points: rows are contiguous per term

    def evaluate(idx: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        value = coef_t[n_terms - 1, idx].copy()
        slope = np.zeros_like(value)
        for j in range(n_terms - 2, -1, -1):
            slope *= x
            slope += value
            value *= x
            value += coef_t[j, idx]
        return value, slope

    return evaluate


def _correlation_fixed_point(nl: Nonlinearity, sw: np.ndarray, sb: np.ndarray, r: np.ndarray, qs: np.ndarray,
                             method: str, tol: float = 1e-10, m_dphi: np.ndarray | None = None
                             ) -> tuple[np.ndarray, np.ndarray]:
    """``(c*, chi_c)`` on flat arrays (see :func:`c_star`); ``m_dphi`` is ``E[phi'^2]`` at ``qs`` if known."""
    finite_q = qs[np.isfinite(qs)]
    n = _adaptive_nodes(nl, float(finite_q.max()) if finite_q.size else 1.0)
    if method not in ("auto", "closed", "series", "quadrature"):
        raise ConfigError(f"method must be auto, closed, series or quadrature, got {method!r}")
    has_closed = "cov_phi" in nl.closed_forms and "cov_dphi" in nl.closed_forms
    if method == "closed" and not has_closed:
        raise ConfigError(f"no closed form of the correlation map for {nl.name!r}")
    if m_dphi is None:
        m_dphi = nl.mean_dphi_sq(np.where(np.isfinite(qs), qs, 0.0), n)
    ch1 = sw / r * m_dphi
    c = np.ones_like(qs)
    chc = sw * m_dphi  # chi_c at c = 1
    c[~np.isfinite(qs)] = np.nan
    chc[~np.isfinite(qs)] = np.nan
    need = ~((r == 1.0) & (ch1 <= 1.0)) & np.isfinite(qs) & (qs > 0)
    if not need.any():
        return c, chc
    idx = np.flatnonzero(need)
    q_sub, sw_sub, sb_sub = qs[idx], sw[idx], sb[idx]
    c_sub = np.full(idx.size, np.nan)
    chc_sub = np.full(idx.size, np.nan)
    todo = np.ones(idx.size, dtype=bool)
    if method == "series" or (method == "auto" and not has_closed and nl.smooth):
        coef = _mehler_coefficients(nl, q_sub)
        dcoef_total = (coef * np.arange(coef.shape[-1])).sum(-1)
        evaluate = _series_evaluator(coef)
        c_sub = _solve_c_star(evaluate, sw_sub, sb_sub, q_sub)
        chc_sub = sw_sub * evaluate(slice(None), c_sub)[1] / q_sub
        if method == "series":
            todo[:] = False
        else:
            # the truncated tail sum_{k>K} a_k^2 c^k is at most (missing mass at c = 1) * c^K; likewise for chi_c
            m_phi = nl.mean_phi_sq(q_sub, n)
            missing_phi = np.abs(m_phi - coef.sum(-1))
            missing_dphi = np.abs(q_sub * m_dphi[idx] - dcoef_total)
            power = np.clip(c_sub, 0.0, 1.0) ** (coef.shape[-1] - 1)
            bound = np.maximum(sw_sub * missing_phi / q_sub, sw_sub * missing_dphi / q_sub) * power
            todo = ~(bound < tol)
    if todo.any():
        rest = np.flatnonzero(todo)
        qr = q_sub[rest]
        c_sub[rest] = _solve_c_star(lambda k, x: (nl.cov_phi(qr[k], x), qr[k] * nl.cov_dphi(qr[k], x)),
                                    sw_sub[rest], sb_sub[rest], qr)
        chc_sub[rest] = sw_sub[rest] * nl.cov_dphi(qr, c_sub[rest])
    c[idx] = c_sub
    chc[idx] = chc_sub
    return c, chc


def _flat_params(sigma_w2: Any, sigma_b2: Any, rho: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
    sw, sb, r = _check_params(sigma_w2, sigma_b2, rho)
    sw, sb, r = np.broadcast_arrays(sw, sb, r)
    shape = sw.shape
    return sw.ravel().astype(float), sb.ravel().astype(float), r.ravel().astype(float), shape


def c_star(sigma_w2: Any, sigma_b2: Any, phi: Any = "tanh", rho: Any = 1.0, *, method: str = "auto") -> Any:
    """The stable fixed point ``c*`` in ``[0, 1]`` of the correlation map at ``q*``, vectorised.

    With ``rho = 1`` and ``chi_1 <= 1`` (ordered phase) ``c* = 1``. Otherwise Newton's method from ``c = 0`` on
    the correlation map, which is convex and increasing on ``[0, 1]`` (a power series in ``c`` with non-negative
    coefficients), converges monotonically to the stable fixed point. ``method``: ``"closed"`` (closed forms:
    erf, ReLU, linear), ``"series"`` (Mehler expansion with 160 terms: fast; for smooth ``phi``),
    ``"quadrature"`` (2-D midpoint rule, 120 x 120 nodes), ``"auto"`` (closed form, else the series for smooth
    ``phi`` where a bound on its truncation error at ``c*`` is below 1e-10, else quadrature).
    """
    nl = get_nonlinearity(phi)
    sw, sb, r, shape = _flat_params(sigma_w2, sigma_b2, rho)
    qs = np.atleast_1d(np.asarray(q_star(sw, sb, nl, r), dtype=float))
    c, _ = _correlation_fixed_point(nl, sw, sb, r, qs, method)
    return _out(c.reshape(shape))


def _xi(x: np.ndarray) -> np.ndarray:
    """``-1 / log(x)`` with ``inf`` at ``x = 1`` (a critical point has no finite depth scale)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x == 1.0, np.inf, -1.0 / np.log(x))


def depth_scales(sigma_w2: Any, sigma_b2: Any, phi: Any = "tanh", rho: Any = 1.0, *,
                 method: str = "auto") -> dict[str, Any]:
    """All mean-field quantities at ``(sigma_w2, sigma_b2, rho)``, vectorised over broadcast arrays.

    Returns ``{"q_star", "c_star", "chi_1", "chi_c", "xi_q", "xi_c", "xi_grad"}``: ``xi_q = -1/log(dL/dq at
    q*)`` (eq. 8), ``xi_c = -1/log(chi_c(c*))`` (eq. 9; ``inf`` at criticality), ``xi_grad = -1/log(chi_1)``
    (sec. 6; negative in the chaotic phase, where its magnitude is the depth over which gradients grow e-fold).
    """
    nl = get_nonlinearity(phi)
    sw, sb, r, shape = _flat_params(sigma_w2, sigma_b2, rho)
    qs = np.atleast_1d(np.asarray(q_star(sw, sb, nl, r), dtype=float))
    finite_q = qs[np.isfinite(qs)]
    n = _adaptive_nodes(nl, float(finite_q.max()) if finite_q.size else 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        m_phi, m_dphi, m_phi_ddphi = nl.length_moments(np.where(np.isfinite(qs), qs, 0.0), n)
        ch1 = np.where(np.isfinite(qs), sw / r * m_dphi, np.nan)
        slope_q = np.where(np.isfinite(qs), sw / r * (m_dphi + m_phi_ddphi), np.nan)
        # q* = inf (unbounded phi past its critical line, e.g. ReLU at sigma_w2 >= 2 with sigma_b2 > 0): the
        # length grows without bound but gradients still scale by chi_1 = lim_{q->inf} sigma_w2/rho E[phi'^2]
        # per layer (ReLU: sigma_w2 / 2 for every q; quadrature at q = inf puts the nodes at phi'(+-inf))
        grows = np.isinf(qs)
        if grows.any():
            ch1[grows] = sw[grows] / r[grows] * nl.mean_dphi_sq(qs[grows], n)
    cs, chc = _correlation_fixed_point(nl, sw, sb, r, qs, method, m_dphi=m_dphi)
    values = {"q_star": qs, "c_star": cs, "chi_1": ch1, "chi_c": chc, "xi_q": _xi(slope_q), "xi_c": _xi(chc),
              "xi_grad": _xi(ch1)}
    return {name: _out(v.reshape(shape)) for name, v in values.items()}


# ----------------------------------------------------------------------------------------------- criticality
def critical_point(q_star_target: Any, phi: Any = "tanh", rho: Any = 1.0) -> tuple[Any, Any]:
    """``(sigma_w2, sigma_b2)`` on the critical line whose length fixed point is ``q_star_target``.

    From ``chi_1 = 1`` and ``q* = L(q*)``: ``sigma_w2 = rho / E[phi'(sqrt(q*) z)^2]`` and
    ``sigma_b2 = q* - E[phi^2] / E[phi'^2]`` (Pennington et al. 2017, sec. 2.3, parametrise the line by ``q*``).
    Raises :class:`ConfigError` where ``sigma_b2`` would be negative (no critical point with that ``q*``).
    """
    nl = get_nonlinearity(phi)
    q = np.asarray(q_star_target, dtype=float)
    r = np.asarray(rho, dtype=float)
    if np.any(~(q > 0)) or np.any(~np.isfinite(q)):
        raise ConfigError(f"q_star must be finite and > 0, got {q_star_target!r}")
    if np.any(~(r > 0)) or np.any(r > 1):
        raise ConfigError(f"rho must be in (0, 1], got {rho!r}")
    d2 = nl.mean_dphi_sq(q)
    sw = r / d2
    sb = q - nl.mean_phi_sq(q) / d2
    sb = np.where(np.abs(sb) < 1e-12 * np.maximum(q, 1.0), 0.0, sb)
    if np.any(sb < 0):
        raise ConfigError(f"no critical point of {nl.name} has q* = {q_star_target!r} (it would need sigma_b2 < 0)")
    return _out(sw), _out(sb)


def critical_sigma_w2(sigma_b2: Any, phi: Any = "tanh", rho: Any = 1.0, *, q_max: float = 50.0) -> Any:
    """The critical line ``sigma_w2(sigma_b2)`` where ``chi_1 = 1``, vectorised over ``sigma_b2`` (and ``rho``).

    Solves ``h(q) = q - E[phi^2]/E[phi'^2] = sigma_b2`` for ``q*`` by bisection on ``log q`` (no nested fixed
    point), then ``sigma_w2 = rho / E[phi'^2](q*)``. For ``phi`` with ``h = 0`` (ReLU, linear: the critical line
    is vertical) it returns the ``q``-independent value (``2 rho`` for ReLU, ``rho`` for linear).
    """
    nl = get_nonlinearity(phi)
    sb = np.asarray(sigma_b2, dtype=float)
    r = np.asarray(rho, dtype=float)
    _check_params(1.0, sb, r)
    sb, r = np.broadcast_arrays(sb, r)

    def h(q: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return q - nl.mean_phi_sq(q) / nl.mean_dphi_sq(q)

    probe = np.array([0.1, 1.0, 10.0])
    if np.all(np.abs(h(probe)) <= 1e-9 * probe):
        # ReLU-like (positively homogeneous) phi: chi_1 does not depend on q, the line is vertical
        return _out(r / float(nl.mean_dphi_sq(np.array(1.0))) + 0.0 * sb)
    lo = np.full(sb.shape, 1e-12)
    hi = np.full(sb.shape, float(q_max))
    h_hi = h(hi)
    for _ in range(200):
        mid = np.sqrt(lo * hi)
        below = h(mid) < sb
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
        if np.all(hi / lo - 1.0 < 1e-15):
            break
    q = np.sqrt(lo * hi)
    with np.errstate(divide="ignore"):
        sw = r / nl.mean_dphi_sq(q)
    # sigma_b2 = 0 with phi(0) = 0: the critical point is the limit q* -> 0, chi_1 = sigma_w2 phi'(0)^2 / rho
    # (h(q) vanishes like q^3 for odd phi, so bisection would only reach q ~ 1e-8 through rounding)
    if float(nl.phi(np.zeros(1))[0]) == 0.0:
        sw = np.where(sb == 0, r / float(nl.dphi(np.zeros(1))[0]) ** 2, sw)
    # sigma_b2 beyond the range where q* <= q_max (or where h is not monotone) has no reliable answer
    return _out(np.where(~(h_hi >= sb) | ~np.isfinite(sw), np.nan, sw))


# --------------------------------------------------------------------------------------------- phase diagram
def phase_diagram(sigma_w2: Any, sigma_b2: Any, phi: Any = "tanh", rho: float = 1.0, *,
                  method: str = "auto") -> Any:
    """Mean-field quantities on the grid ``sigma_w2 x sigma_b2`` as an ``xarray.Dataset``.

    Variables (dims ``(sigma_w2, sigma_b2)``): ``q_star``, ``c_star``, ``chi_1``, ``chi_c``, ``xi_q``, ``xi_c``,
    ``xi_grad``, ``phase`` (``"ordered"``/``"chaotic"`` as -1/+1 for ``chi_1 < 1``/``> 1``); coordinate
    ``critical_sigma_w2`` on ``sigma_b2`` (the critical line). Attributes name ``phi``, ``rho``, the method and the
    reference (Schoenholz et al. 2017, Fig. 1 and 2).
    """
    import xarray as xr

    nl = get_nonlinearity(phi)
    sw = np.atleast_1d(np.asarray(sigma_w2, dtype=float))
    sb = np.atleast_1d(np.asarray(sigma_b2, dtype=float))
    if sw.ndim != 1 or sb.ndim != 1:
        raise ConfigError("phase_diagram takes 1-D grids of sigma_w2 and sigma_b2")
    scales = depth_scales(sw[:, None], sb[None, :], nl, rho, method=method)
    dims = ("sigma_w2", "sigma_b2")
    data = {name: (dims, np.asarray(value, dtype=float)) for name, value in scales.items()}
    data["phase"] = (dims, np.sign(np.asarray(scales["chi_1"]) - 1.0))
    ds = xr.Dataset(
        data,
        coords={"sigma_w2": sw, "sigma_b2": sb,
                "critical_sigma_w2": ("sigma_b2", np.atleast_1d(critical_sigma_w2(sb, nl, rho)))},
        attrs={"phi": nl.name, "rho": float(rho), "method": method,
               "reference": "Schoenholz, Gilmer, Ganguli, Sohl-Dickstein 2017, Deep Information Propagation, "
                            "arXiv:1611.01232",
               "xi_grad_convention": "-1/log(chi_1); negative in the chaotic phase"},
    )
    for name, text in {"q_star": "fixed point of the length map", "c_star": "fixed point of the correlation map",
                       "chi_1": "sigma_w2/rho E[phi'(u)^2] at q*", "chi_c": "slope of the correlation map at c*",
                       "xi_q": "length depth scale -1/log(dL/dq)", "xi_c": "correlation depth scale -1/log(chi_c)",
                       "xi_grad": "gradient depth scale -1/log(chi_1)"}.items():
        ds[name].attrs["long_name"] = text
    return ds

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

The order-to-chaos transition is ``chi_1 = 1`` (the *critical line*). The nonlinearities, their Gaussian moments
(closed forms where they exist: erf, ReLU, hard-tanh, linear; quadrature otherwise) and the quadrature itself are
in :mod:`neuromodels.nonlinearities`; the fixed points ``q*``, ``c*`` and the critical line
(:func:`~neuromodels.fixed_points.critical_point`, :func:`~neuromodels.fixed_points.critical_sigma_w2`) in
:mod:`neuromodels.fixed_points`. This module builds the maps, ``chi_1``, ``chi_c``, the depth scales and phase
diagrams on them, vectorised over broadcast parameter arrays.

Conventions: see :mod:`neuromodels.nonlinearities` (``erf`` is ``erf(x)``, so the critical point at
``sigma_b2 = 0`` is ``sigma_w2 = pi/4``). Correlations are studied on ``[0, 1]`` (positively correlated inputs,
as in the paper).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neuromodels.errors import ConfigError
from neuromodels.fixed_points import (
    adaptive_nodes,
    check_parameters,
    correlation_fixed_point,
    critical_sigma_w2,
    flat_parameters,
    q_star,
    scalar_or_array,
)
from neuromodels.nonlinearities import get_nonlinearity

__all__ = [
    "length_map",
    "correlation_map",
    "chi1",
    "chi_c",
    "length_map_slope",
    "depth_scales",
    "phase_diagram",
    "iterate_length_map",
    "iterate_correlation_map",
]


# ---------------------------------------------------------------------------------------------------- maps
def length_map(q: Any, sigma_w2: Any, sigma_b2: Any, phi: Any = "tanh", rho: Any = 1.0) -> Any:
    """One layer of the length map, ``q -> sigma_w2 / rho * E[phi(sqrt(q) z)^2] + sigma_b2`` (eq. 3, sec. 5).

    All arguments broadcast; returns an array of the broadcast shape (a float for scalars).
    """
    sw, sb, r = check_parameters(sigma_w2, sigma_b2, rho)
    q = np.asarray(q, dtype=float)
    if np.any(q < 0):
        raise ConfigError("q (pre-activation variance) must be >= 0")
    nl = get_nonlinearity(phi)
    return scalar_or_array(sw / r * nl.mean_phi_sq(q) + sb)


def length_map_slope(q: Any, sigma_w2: Any, phi: Any = "tanh", rho: Any = 1.0) -> Any:
    """``d q^{l+1} / d q^l = sigma_w2 / rho * (E[phi'^2] + E[phi phi''])`` (Gaussian integration by parts;
    at ``q*`` and ``rho = 1`` this is ``chi_1 + sigma_w2 E[phi'' phi]`` of eq. 8)."""
    nl = get_nonlinearity(phi)
    q = np.asarray(q, dtype=float)
    return scalar_or_array(
        np.asarray(sigma_w2, float) / np.asarray(rho, float) * (nl.mean_dphi_sq(q) + nl.mean_phi_ddphi(q))
    )


def iterate_length_map(
    q0: Any, sigma_w2: float, sigma_b2: float, depth: int, phi: Any = "tanh", rho: float = 1.0
) -> np.ndarray:
    """``q^0 .. q^depth`` (shape ``(depth + 1,) + shape(q0)``) from the length map, starting at ``q0``."""
    out = [np.asarray(q0, dtype=float)]
    for _ in range(int(depth)):
        out.append(np.asarray(length_map(out[-1], sigma_w2, sigma_b2, phi, rho)))
    return np.stack(out)


def correlation_map(c: Any, sigma_w2: Any, sigma_b2: Any, phi: Any = "tanh", q: Any = None, rho: Any = 1.0) -> Any:
    """One layer of the correlation map at fixed length ``q`` (default ``q*``):
    ``c -> (sigma_w2 E[phi(u1) phi(u2)] + sigma_b2) / q_next`` with ``q_next`` the length map of ``q``
    (equal to ``q*`` when ``q = q*``; eqs. 4-5 with sec. 5 for dropout)."""
    sw, sb, r = check_parameters(sigma_w2, sigma_b2, rho)
    nl = get_nonlinearity(phi)
    q = np.asarray(q_star(sw, sb, nl, r) if q is None else q, dtype=float)
    q_next = sw / r * nl.mean_phi_sq(q) + sb
    return scalar_or_array((sw * nl.cov_phi(q, c) + sb) / q_next)


def iterate_correlation_map(
    c0: Any, sigma_w2: float, sigma_b2: float, depth: int, phi: Any = "tanh", q0: Any = None, rho: float = 1.0
) -> np.ndarray:
    """``c^0 .. c^depth`` for two inputs of equal length ``q0`` (default ``q*``); the length follows the length
    map alongside, so this is the full two-input recursion, not only the map at ``q*``."""
    nl = get_nonlinearity(phi)
    q = np.asarray(q_star(sigma_w2, sigma_b2, nl, rho) if q0 is None else q0, dtype=float)
    out = [np.asarray(c0, dtype=float)]
    for _ in range(int(depth)):
        out.append(np.asarray(correlation_map(out[-1], sigma_w2, sigma_b2, nl, q=q, rho=rho)))
        q = np.asarray(length_map(q, sigma_w2, sigma_b2, nl, rho))
    return np.stack(out)


def chi1(sigma_w2: Any, sigma_b2: Any, phi: Any = "tanh", q: Any = None, rho: Any = 1.0) -> Any:
    """``chi_1 = sigma_w2 / rho * E[phi'(sqrt(q) z)^2]`` at ``q`` (default ``q*``), vectorised (eq. 6, sec. 6).

    ``chi_1 < 1``: ordered phase (vanishing gradients); ``> 1``: chaotic (exploding gradients); ``= 1``: critical.
    """
    sw, sb, r = check_parameters(sigma_w2, sigma_b2, rho)
    nl = get_nonlinearity(phi)
    q = np.asarray(q_star(sw, sb, nl, r) if q is None else q, dtype=float)
    with np.errstate(invalid="ignore"):
        return scalar_or_array(sw / r * nl.mean_dphi_sq(q))


def chi_c(c: Any, sigma_w2: Any, sigma_b2: Any, phi: Any = "tanh", q: Any = None, rho: Any = 1.0) -> Any:
    """Slope of the correlation map, ``chi_c = sigma_w2 E[phi'(u1) phi'(u2)]`` at correlation ``c`` (eq. 9)."""
    sw, sb, r = check_parameters(sigma_w2, sigma_b2, rho)
    nl = get_nonlinearity(phi)
    q = np.asarray(q_star(sw, sb, nl, r) if q is None else q, dtype=float)
    return scalar_or_array(sw * nl.cov_dphi(q, c))


def _xi(x: np.ndarray) -> np.ndarray:
    """``-1 / log(x)`` with ``inf`` at ``x = 1`` (a critical point has no finite depth scale)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x == 1.0, np.inf, -1.0 / np.log(x))


def depth_scales(
    sigma_w2: Any, sigma_b2: Any, phi: Any = "tanh", rho: Any = 1.0, *, method: str = "auto"
) -> dict[str, Any]:
    """All mean-field quantities at ``(sigma_w2, sigma_b2, rho)``, vectorised over broadcast arrays.

    Returns ``{"q_star", "c_star", "chi_1", "chi_c", "xi_q", "xi_c", "xi_grad"}``: ``xi_q = -1/log(dL/dq at
    q*)`` (eq. 8), ``xi_c = -1/log(chi_c(c*))`` (eq. 9; ``inf`` at criticality), ``xi_grad = -1/log(chi_1)``
    (sec. 6; negative in the chaotic phase, where its magnitude is the depth over which gradients grow e-fold).
    """
    nl = get_nonlinearity(phi)
    sw, sb, r, shape = flat_parameters(sigma_w2, sigma_b2, rho)
    qs = np.atleast_1d(np.asarray(q_star(sw, sb, nl, r), dtype=float))
    finite_q = qs[np.isfinite(qs)]
    n = adaptive_nodes(nl, float(finite_q.max()) if finite_q.size else 1.0)
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
    cs, chc = correlation_fixed_point(nl, sw, sb, r, qs, method, m_dphi=m_dphi)
    values = {
        "q_star": qs,
        "c_star": cs,
        "chi_1": ch1,
        "chi_c": chc,
        "xi_q": _xi(slope_q),
        "xi_c": _xi(chc),
        "xi_grad": _xi(ch1),
    }
    return {name: scalar_or_array(v.reshape(shape)) for name, v in values.items()}


# --------------------------------------------------------------------------------------------- phase diagram
def phase_diagram(sigma_w2: Any, sigma_b2: Any, phi: Any = "tanh", rho: float = 1.0, *, method: str = "auto") -> Any:
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
        coords={
            "sigma_w2": sw,
            "sigma_b2": sb,
            "critical_sigma_w2": ("sigma_b2", np.atleast_1d(critical_sigma_w2(sb, nl, rho))),
        },
        attrs={
            "phi": nl.name,
            "rho": float(rho),
            "method": method,
            "reference": "Schoenholz, Gilmer, Ganguli, Sohl-Dickstein 2017, Deep Information Propagation, "
            "arXiv:1611.01232",
            "xi_grad_convention": "-1/log(chi_1); negative in the chaotic phase",
        },
    )
    for name, text in {
        "q_star": "fixed point of the length map",
        "c_star": "fixed point of the correlation map",
        "chi_1": "sigma_w2/rho E[phi'(u)^2] at q*",
        "chi_c": "slope of the correlation map at c*",
        "xi_q": "length depth scale -1/log(dL/dq)",
        "xi_c": "correlation depth scale -1/log(chi_c)",
        "xi_grad": "gradient depth scale -1/log(chi_1)",
    }.items():
        ds[name].attrs["long_name"] = text
    return ds

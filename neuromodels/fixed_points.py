"""Fixed points of the mean-field maps: the length ``q*``, the correlation ``c*`` and the critical point.

For a fully connected network ``h^l = W^l y^{l-1} + b^l``, ``y^l = phi(h^l)``, weights of variance
``sigma_w2 / N``, biases of variance ``sigma_b2`` and dropout keep probability ``rho`` (Schoenholz et al. 2017,
"Deep Information Propagation", arXiv:1611.01232, eqs. 3-5 and sec. 5), the length map is
``q -> sigma_w2 / rho * E[phi(sqrt(q) z)^2] + sigma_b2`` and the correlation map at ``q*`` is
``c -> (sigma_w2 E[phi(u1) phi(u2)] + sigma_b2) / q*``. :func:`q_star` and :func:`c_star` find their stable fixed
points, vectorised over broadcast parameter arrays; :func:`critical_point` and :func:`critical_sigma_w2` give the
order-to-chaos line ``chi_1 = sigma_w2 / rho * E[phi'(sqrt(q*) z)^2] = 1`` (parametrised by ``q*`` or by
``sigma_b2``). The correlation fixed point of smooth nonlinearities is solved on a Hermite (Mehler) expansion of
the correlation map, ``E[f(z1) f(z2)] = sum_k a_k^2 c^k`` with ``a_k = E[f(z) He_k(z)] / sqrt(k!)``: a power series
in ``c`` with positive coefficients (convex and increasing on [0, 1]) that Newton's method solves without any 2-D
quadrature.

This module sits at the models layer beside :mod:`neuromodels.nonlinearities` (whose moments and quadrature it
uses), so that :mod:`neuromodels.init` (critical initialisation) and :mod:`neuromodels.analysis.theory` (maps,
depth scales, phase diagrams, spectra) share one implementation. Helpers without a leading underscore
(:func:`check_parameters`, :func:`flat_parameters`, :func:`scalar_or_array`, :func:`adaptive_nodes`,
:func:`correlation_fixed_point`) are the building blocks that :mod:`neuromodels.analysis.theory.meanfield` reuses.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from neuromodels.errors import ConfigError
from neuromodels.nonlinearities import DEFAULT_NODES, Nonlinearity, get_nonlinearity, midpoint_rule

__all__ = [
    "q_star",
    "c_star",
    "critical_point",
    "critical_sigma_w2",
    "check_parameters",
    "flat_parameters",
    "scalar_or_array",
    "adaptive_nodes",
    "correlation_fixed_point",
    "Q_MAX",
]

SERIES_TERMS = 160  # Hermite-expansion terms for the correlation map of smooth nonlinearities
SERIES_NODES = 240


# ------------------------------------------------------------------------------------------------- helpers
def check_parameters(sigma_w2: Any, sigma_b2: Any, rho: Any = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(sigma_w2, sigma_b2, rho)`` as float arrays; :class:`ConfigError` naming the first that is out of range."""
    sw, sb, r = (np.asarray(v, dtype=float) for v in (sigma_w2, sigma_b2, rho))
    if np.any(~np.isfinite(sw)) or np.any(sw <= 0):
        raise ConfigError(f"sigma_w2 must be finite and > 0, got {sigma_w2!r}")
    if np.any(~np.isfinite(sb)) or np.any(sb < 0):
        raise ConfigError(f"sigma_b2 must be finite and >= 0, got {sigma_b2!r}")
    if np.any(~(r > 0)) or np.any(r > 1):
        raise ConfigError(f"rho (dropout keep probability) must be in (0, 1], got {rho!r}")
    return sw, sb, r


def scalar_or_array(x: np.ndarray) -> Any:
    """0-d arrays come back as Python floats, arrays unchanged."""
    x = np.asarray(x)
    return float(x) if x.ndim == 0 else x


# ---------------------------------------------------------------------------------------------- fixed points
Q_MAX = 1e8
_Q_GRID = np.concatenate([[0.0], np.geomspace(1e-10, 1e4, 281)])


def adaptive_nodes(nl: Nonlinearity, q_max: float) -> int:
    """Midpoint nodes for the built-in analytic nonlinearities at variances up to ``q_max``.

    The rule's error is ~``exp(-2 pi d / h)`` with ``h = 18 / n`` and ``d = pi / (2 sqrt(q))`` for tanh (the
    nearest poles of the integrand; sigmoid's are twice as far, erf has none): ``n = 60 sqrt(q) + 40`` keeps it
    below 1e-20, with fewer nodes than the default 200 when all ``q <= 7`` (faster phase diagrams).
    """
    if nl.name not in ("tanh", "sigmoid", "erf") or not np.isfinite(q_max):
        return DEFAULT_NODES
    n = int(60.0 * math.sqrt(max(q_max, 0.0)) + 40.0)
    return int(min(max(n + n % 2, 64), 2000))


def _bracket_first_crossing(
    nl: Nonlinearity, a: np.ndarray, sb: np.ndarray, n: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lo, hi, q0)``: a bracket of the first downward crossing of the diagonal by ``q -> a E[phi^2] + sb``
    (``hi = inf`` where none exists below :data:`Q_MAX`) and the secant start ``q0`` inside it (NaN if none).

    A tabulated log grid of ``q`` (one evaluation of ``E[phi^2]`` on 282 values serves every parameter point),
    then, beyond the grid, a geometric expansion (unbounded ``phi`` with slowly growing length).
    """
    grid = _Q_GRID
    m_grid = nl.mean_phi_sq(grid, DEFAULT_NODES if n is None else n)
    lo = np.zeros_like(a)
    hi = np.full_like(a, np.inf)
    q0 = np.full_like(a, np.nan)
    for chunk in np.array_split(np.arange(a.size), max(1, a.size // 4096)):
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
    return lo, hi, q0


def _safeguarded_newton(
    nl: Nonlinearity,
    q: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    a: np.ndarray,
    sb: np.ndarray,
    n: int,
    tol: float,
    max_iter: int,
) -> np.ndarray:
    """Newton's method on ``g(q) = a E[phi^2] + sb - q`` from ``q``, kept inside ``[lo, hi]`` by bisection
    (``g(lo) >= 0 > g(hi)``); all points at once, each leaving the active set when converged."""
    active = np.ones(q.size, dtype=bool)
    for _ in range(max_iter):
        if not active.any():
            break
        k = np.flatnonzero(active)
        qk = q[k]
        m_phi, m_dphi, m_phi_ddphi = nl.length_moments(qk, n)
        g = a[k] * m_phi + sb[k] - qk
        slope = a[k] * (m_dphi + m_phi_ddphi) - 1.0
        # keep the bracket: g >= 0 on the left, g < 0 on the right
        lo[k] = np.where(g >= 0, qk, lo[k])
        hi[k] = np.where(g < 0, qk, hi[k])
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(slope != 0, -g / slope, np.nan)
        new = qk + step
        bad = ~np.isfinite(new) | (new <= lo[k]) | (new >= hi[k])
        new = np.where(bad, 0.5 * (lo[k] + hi[k]), new)
        scale = np.maximum(1.0, qk)
        # |g| at rounding level: further Newton steps only chase noise (slow near the critical line, g' ~ 0)
        converged = np.abs(g) <= 4e-16 * (scale + a[k] * m_phi)
        done = converged | (np.abs(new - qk) <= tol * scale) | (hi[k] - lo[k] <= tol * scale)
        new = np.where(converged, qk, new)
        # at a simple root Newton's error after a step of size s is O(s^2): a tiny step needs no further check
        done |= (np.abs(step) <= 1e-8 * scale) & (np.abs(slope) > 1e-2) & ~bad
        q[k] = new
        active[k[done]] = False
    return q


def q_star(
    sigma_w2: Any,
    sigma_b2: Any,
    phi: Any = "tanh",
    rho: Any = 1.0,
    *,
    n: int | None = None,
    tol: float = 1e-13,
    max_iter: int = 200,
) -> Any:
    """The fixed point ``q*`` of the length map, vectorised over broadcast ``sigma_w2, sigma_b2, rho``.

    Solves ``g(q) = L(q) - q = 0`` by Newton's method safeguarded by bisection on a bracket ``[lo, hi]`` with
    ``g(lo) >= 0 > g(hi)`` (``g(0) = sigma_w2/rho phi(0)^2 + sigma_b2 >= 0``), found on a log grid of ``q``.
    The root found is the first place (smallest ``q``) where the map crosses the diagonal from above, the fixed
    point reached by iterating the map from small lengths (stable). Where no crossing exists below ``1e8`` (e.g.
    ReLU at or above ``sigma_w2 = 2 rho`` with ``sigma_b2 > 0``: the length grows without bound) the result is
    ``inf``. ``n``: quadrature nodes (default: enough for the largest bracketed ``q``, see :func:`adaptive_nodes`).
    """
    sw, sb, r = check_parameters(sigma_w2, sigma_b2, rho)
    nl = get_nonlinearity(phi)
    sw, sb, r = np.broadcast_arrays(sw, sb, r)
    shape = sw.shape
    sw, sb, r = sw.ravel(), sb.ravel(), r.ravel()
    a = sw / r
    g0 = a * float(nl.phi(np.zeros(1))[0]) ** 2 + sb
    lo, hi, q0 = _bracket_first_crossing(nl, a, sb, n)
    result = np.full(sw.shape, np.inf)
    ok = np.isfinite(hi)
    if n is None:
        n = adaptive_nodes(nl, float(hi[ok].max()) if ok.any() else 1.0)
    zero = g0 <= 0  # sigma_b2 = 0 and phi(0) = 0: q = 0 is a fixed point; Newton finds whether it is the stable one
    idx = np.flatnonzero(ok)
    start = np.where(np.isfinite(q0[idx]), q0[idx], hi[idx])
    result[idx] = _safeguarded_newton(nl, start, lo[idx], hi[idx], a[idx], sb[idx], n, tol, max_iter)
    result = np.where(zero & (result < 1e-10), 0.0, result)
    return scalar_or_array(result.reshape(shape))


@lru_cache(maxsize=4)
def _hermite_matrix(n_nodes: int, n_terms: int) -> np.ndarray:
    """``w_i He_k(x_i) / sqrt(k!)`` (``n_nodes x n_terms``): projection on normalised Hermite polynomials."""
    x, w = midpoint_rule(n_nodes)
    h = np.empty((n_nodes, n_terms))
    h[:, 0] = 1.0
    if n_terms > 1:
        h[:, 1] = x
    for k in range(1, n_terms - 1):
        h[:, k + 1] = (x * h[:, k] - math.sqrt(k) * h[:, k - 1]) / math.sqrt(k + 1)
    m = w[:, None] * h
    m.setflags(write=False)
    return m


def _mehler_coefficients(
    nl: Nonlinearity, q: np.ndarray, n_terms: int = SERIES_TERMS, n_nodes: int = SERIES_NODES
) -> np.ndarray:
    """``a_k^2`` with ``a_k = E[phi(sqrt(q) z) He_k(z)] / sqrt(k!)``, shape ``q.shape + (n_terms,)``, so that
    ``E[phi(u1) phi(u2)] = sum_k a_k^2 c^k`` (Mehler's formula)."""
    x, _ = midpoint_rule(n_nodes)
    values = nl.phi(np.sqrt(q)[..., None] * x)
    a = values @ _hermite_matrix(n_nodes, n_terms)
    return a**2


def _solve_c_star(
    cov_and_slope: Callable[[Any, np.ndarray], tuple[np.ndarray, np.ndarray]],
    sw: np.ndarray,
    sb: np.ndarray,
    qs: np.ndarray,
    max_iter: int = 100,
    tol: float = 1e-13,
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


def correlation_fixed_point(
    nl: Nonlinearity,
    sw: np.ndarray,
    sb: np.ndarray,
    r: np.ndarray,
    qs: np.ndarray,
    method: str,
    tol: float = 1e-10,
    m_dphi: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(c*, chi_c)`` on flat arrays (see :func:`c_star`); ``m_dphi`` is ``E[phi'^2]`` at ``qs`` if known."""
    finite_q = qs[np.isfinite(qs)]
    n = adaptive_nodes(nl, float(finite_q.max()) if finite_q.size else 1.0)
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
        c_sub[rest] = _solve_c_star(
            lambda k, x: (nl.cov_phi(qr[k], x), qr[k] * nl.cov_dphi(qr[k], x)), sw_sub[rest], sb_sub[rest], qr
        )
        chc_sub[rest] = sw_sub[rest] * nl.cov_dphi(qr, c_sub[rest])
    c[idx] = c_sub
    chc[idx] = chc_sub
    return c, chc


def flat_parameters(sigma_w2: Any, sigma_b2: Any, rho: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
    """Checked parameters broadcast together and flattened, with the broadcast shape to restore."""
    sw, sb, r = check_parameters(sigma_w2, sigma_b2, rho)
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
    sw, sb, r, shape = flat_parameters(sigma_w2, sigma_b2, rho)
    qs = np.atleast_1d(np.asarray(q_star(sw, sb, nl, r), dtype=float))
    c, _ = correlation_fixed_point(nl, sw, sb, r, qs, method)
    return scalar_or_array(c.reshape(shape))


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
    return scalar_or_array(sw), scalar_or_array(sb)


def critical_sigma_w2(sigma_b2: Any, phi: Any = "tanh", rho: Any = 1.0, *, q_max: float = 50.0) -> Any:
    """The critical line ``sigma_w2(sigma_b2)`` where ``chi_1 = 1``, vectorised over ``sigma_b2`` (and ``rho``).

    Solves ``h(q) = q - E[phi^2]/E[phi'^2] = sigma_b2`` for ``q*`` by bisection on ``log q`` (no nested fixed
    point), then ``sigma_w2 = rho / E[phi'^2](q*)``. For ``phi`` with ``h = 0`` (ReLU, linear: the critical line
    is vertical) it returns the ``q``-independent value (``2 rho`` for ReLU, ``rho`` for linear).
    """
    nl = get_nonlinearity(phi)
    sb = np.asarray(sigma_b2, dtype=float)
    r = np.asarray(rho, dtype=float)
    check_parameters(1.0, sb, r)
    sb, r = np.broadcast_arrays(sb, r)

    def h(q: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return q - nl.mean_phi_sq(q) / nl.mean_dphi_sq(q)

    probe = np.array([0.1, 1.0, 10.0])
    if np.all(np.abs(h(probe)) <= 1e-9 * probe):
        # ReLU-like (positively homogeneous) phi: chi_1 does not depend on q, the line is vertical
        return scalar_or_array(r / float(nl.mean_dphi_sq(np.array(1.0))) + 0.0 * sb)
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
    return scalar_or_array(np.where(~(h_hi >= sb) | ~np.isfinite(sw), np.nan, sw))

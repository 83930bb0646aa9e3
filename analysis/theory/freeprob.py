"""Free-probability spectra of the input-output Jacobian of deep random networks.

For a fully connected network ``h^l = W^l x^{l-1} + b^l``, ``x^l = phi(h^l)`` of width ``N``, with weights of
variance ``sigma_w2 / N`` and biases of variance ``sigma_b2``, the input-output Jacobian is
``J = D^L W^L ... D^1 W^1`` with ``D^l = diag(phi'(h^l))``. In the wide limit, at the fixed point ``q*`` of the
length map, every ``h^l_i`` is ``N(0, q*)`` and the matrices ``W^l W^l^T`` and ``(D^l)^2`` are asymptotically free,
so the S-transform of ``J J^T`` factorises (Pennington, Schoenholz & Ganguli 2017, arXiv:1711.04735, eq. 12-13;
Pennington, Schoenholz & Ganguli 2018, arXiv:1802.09979, sec. 3):

    S_{JJ^T}(t) = S_{D^2}(t)^L  S_{WW^T}(t)^L .

Conventions used throughout (the paper's ``M_X(z) = sum_k m_k / z^k`` is our ``psi_X(1/z)``):

* moment generating function ``psi_X(z) = E[x z / (1 - x z)] = sum_{k>=1} m_k z^k``;
* ``chi_X`` is its functional inverse, ``psi_X(chi_X(t)) = t``;
* S-transform ``S_X(t) = (1 + t) / t * chi_X(t)``; a scalar ``c`` has ``S = 1/c``;
* orthogonal weights (``W W^T = sigma_w2 I``): ``S_W(t) = 1 / sigma_w2``;
* Gaussian weights (``W W^T`` is ``sigma_w2`` times a free Poisson / Marchenko-Pastur matrix of ratio 1):
  ``S_W(t) = 1 / (sigma_w2 (1 + t))``;
* ``D^2``: ``psi_{D^2}(w) = E_u[x(u) w / (1 - x(u) w)]`` with ``x(u) = phi'(sqrt(q*) u)^2``, ``u ~ N(0,1)``,
  by Gauss-Hermite quadrature (exact atoms for ReLU, hard-tanh and the identity, whose ``D^2`` is discrete);
  nonlinearities and nodes from :mod:`neuromodels.nonlinearities` (:func:`~neuromodels.nonlinearities.gauss_hermite`),
  the same table as the mean field's.

**Solving for the density.** Write ``t = psi_{JJ^T}(z)`` and introduce ``w = chi_{D^2}(t)`` so that
``S_{D^2}(t) = (1+t) w / t``. Then ``z = chi_{JJ^T}(t) = t S_{JJ^T}(t) / (1+t)`` becomes one equation in ``w``:

    A(w)^L = z (1 + t) / t ,    t = psi_{D^2}(w),    A(w) = (1 + t) w S_W(t) / t .

We solve it by Newton's method in the complex variable ``w`` for ``z = 1/zeta``, ``zeta = x + i eta``, all
``x`` of the grid at once (vectorised), continuing from ``eta`` far above the spectrum (where the series
``t ~ m_1 z`` is the starting point and picks the physical branch) down towards the real axis along a geometric
sequence of ``eta``. The Stieltjes transform is ``G(zeta) = (1 + t) / zeta`` and the density of the eigenvalues
``lambda`` of ``J J^T`` (the squared singular values) is ``rho(x) = -Im G(x + i0) / pi``; the density of
``log lambda`` is ``x rho(x) = -Im t / pi``, which is what we integrate for CDFs (it stays bounded where
``rho`` has an integrable singularity at 0).

**Atoms.** Where ``D^2`` is exactly discrete (ReLU, hard-tanh, the identity) the law of ``J J^T`` can have point
masses, which the Newton path would turn into Lorentzian spikes of width ``eta``; they are found exactly instead
(:func:`jjt_atoms`) and removed from ``G`` before the density is taken. With orthogonal weights the law of
``J J^T`` is the free multiplicative convolution of ``L`` copies of the law of ``sigma_w2 D^2``; by Belinschi's
theorem on the atoms of ``mu ⊠ nu`` (Belinschi 2003, "The atoms of the free multiplicative convolution of two
probability distributions", Integral Equations Operator Theory 46) ``(mu ⊠ nu)({0}) = max(mu({0}), nu({0}))``
and ``mu ⊠ nu`` has an atom at ``a != 0`` iff ``a = u v`` with ``mu({u}) + nu({v}) > 1``, of mass
``mu({u}) + nu({v}) - 1``. For hard-tanh (``P(D^2 = 1) = p``) this gives an atom ``1 - p`` at 0 (the kernel of
the first saturated layer; a product of projections in general position has the smallest of their ranks) and,
when ``L (1 - p) < 1``, an atom ``1 - L (1 - p)`` at ``sigma_w2^L`` (the directions that pass unsaturated through
every layer: ``L`` subspaces of codimension ``1 - p`` meet in codimension ``L (1 - p)``); for the identity the
whole law is one atom at ``sigma_w2^L``. Gaussian ``W W^T`` (Marchenko-Pastur, no atoms) leaves only the atom at
0. Between the continuous part and an atom at the top lies a gap: on the real axis there, ``w`` runs from
``1 / max D^2`` (where ``t`` has its pole) to the zero of ``1 + t`` (``jacobian_spectral_edge(continuous=True)``).

**Deviation from the papers:** the papers solve the functional equations for specific cases in closed form
(or with a polynomial root finder); we use one numerical path for every nonlinearity. The right edge of the
support is found separately from the real-axis parametrisation ``x_edge = 1 / max_{w>0} chi_{JJ^T}(psi_{D^2}(w))``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuromodels.errors import ConfigError
from neuromodels.nonlinearities import gauss_hermite, get_nonlinearity

__all__ = [
    "WEIGHT_KINDS",
    "D2Distribution",
    "d2_distribution",
    "sigma_w2_for_q_star",
    "jacobian_moments",
    "jacobian_spectral_edge",
    "JJTAtoms",
    "jjt_atoms",
    "jjt_density",
    "jjt_log_density",
    "cdf_from_log_density",
    "universal_log_density",
    "universal_variance_q_star",
    "fuss_catalan_moment",
]

WEIGHT_KINDS = ("orthogonal", "gaussian")


# ---------------------------------------------------------------------------------------------------------------
# D^2 = phi'(h)^2, h ~ N(0, q*)


@dataclass(frozen=True)
class D2Distribution:
    """A discrete distribution for ``D^2 = phi'(h)^2`` with ``h ~ N(0, q*)``: ``values``, ``weights`` (sum 1).

    ``exact``: the law of ``D^2`` is this discrete law (ReLU, hard-tanh, the identity), so its atoms are real;
    otherwise ``values`` are Gauss-Hermite nodes standing in for a continuous law.
    """

    values: np.ndarray
    weights: np.ndarray
    exact: bool = False

    def moment(self, k: int) -> float:
        return float(self.weights @ self.values**k)

    def psi(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``psi(w) = E[x w / (1 - x w)]``, ``1 + psi(w) = E[1 / (1 - x w)]`` and ``psi'(w) = E[x / (1 - x w)^2]``.

        ``1 + psi`` is computed on its own because it tends to 0 far left of the support (``psi -> -1``),
        where ``1 + psi`` formed by addition would lose every digit.
        """
        w = np.asarray(w)
        weighted = self.weights * self.values
        inv = np.multiply.outer(w, -self.values)
        inv += 1.0
        np.reciprocal(inv, out=inv)
        # plain ufunc reductions rather than BLAS mat-vecs: these are small, and threaded BLAS on a busy machine
        # was measured 2-5x slower than this single-threaded path
        psi = w * np.add.reduce(inv * weighted, axis=-1)
        one_plus = np.add.reduce(inv * self.weights, axis=-1)
        inv *= inv
        inv *= weighted
        return psi, one_plus, np.add.reduce(inv, axis=-1)


def d2_distribution(phi: Any, q_star: float, n_quad: int = 96) -> D2Distribution:
    """The law of ``phi'(h)^2`` for ``h ~ N(0, q_star)``.

    ReLU, hard-tanh and the identity have a discrete ``D^2`` and get exact atoms (Gauss-Hermite would integrate
    the step of hard-tanh's derivative with an O(1/n) error): ReLU ``{0, 1}`` with probability 1/2 each;
    hard-tanh ``1`` with probability ``erf(1 / sqrt(2 q*))`` (``0`` with ``erfc(1 / sqrt(2 q*))``, kept to
    full relative precision at small ``q*``); the identity ``1``. Other nonlinearities:
    ``n_quad``-point Gauss-Hermite nodes ``x_i = phi'(sqrt(q*) u_i)^2`` with the Gauss weights.
    """
    nonlinearity = get_nonlinearity(phi)
    if not (np.isfinite(q_star) and q_star > 0):
        raise ConfigError(f"q_star must be a positive number, got {q_star!r}")
    name = nonlinearity.name
    if name == "relu":
        return D2Distribution(np.array([0.0, 1.0]), np.array([0.5, 0.5]), exact=True)
    if name == "hard_tanh":
        edge = 1.0 / math.sqrt(2.0 * q_star)
        return D2Distribution(np.array([0.0, 1.0]), np.array([math.erfc(edge), math.erf(edge)]), exact=True)
    if name == "linear":
        return D2Distribution(np.array([1.0]), np.array([1.0]), exact=True)
    nodes, weights = gauss_hermite(n_quad)
    values = np.asarray(nonlinearity.dphi(math.sqrt(q_star) * nodes), dtype=float) ** 2
    return D2Distribution(values, weights)


def sigma_w2_for_q_star(phi: Any, q_star: float) -> float:
    """The critical weight variance at a given ``q*``: ``sigma_w2 = 1 / E[phi'(h)^2]``, ``h ~ N(0, q*)``.

    The quantity of :func:`neuromodels.fixed_points.critical_point`'s first value, computed on the law of ``D^2``
    that the spectra use (:func:`d2_distribution`: exact for ReLU, hard-tanh and the identity, 96-node
    Gauss-Hermite otherwise), so that ``chi = sigma_w2 E[D^2]`` is 1 in the spectra's own arithmetic. It does not
    ask whether a bias reaches that ``q*`` (:func:`neuromodels.analysis.theory.spectra.resolve_parameters`
    does). For tanh it agrees with ``critical_point`` to rounding at ``q* <= 1/4`` and to 3e-9 at ``q* = 1``.
    ``critical_sigma_w2(sigma_b2)`` is the other parametrisation of the same critical line, by the bias variance.
    """
    return 1.0 / d2_distribution(phi, q_star).moment(1)


def _check_common(depth: int, sigma_w2: float, weights: str) -> None:
    if not (isinstance(depth, (int, np.integer)) and depth >= 1):
        raise ConfigError(f"depth must be a positive integer, got {depth!r}")
    if not (np.isfinite(sigma_w2) and sigma_w2 > 0):
        raise ConfigError(f"sigma_w2 must be positive, got {sigma_w2!r}")
    if weights not in WEIGHT_KINDS:
        raise ConfigError(f"weights must be one of {WEIGHT_KINDS}, got {weights!r}")


def jacobian_moments(
    phi: Any, depth: int, sigma_w2: float, q_star: float, weights: str = "orthogonal"
) -> dict[str, float]:
    """Mean and variance of the eigenvalues of ``J J^T`` (squared singular values of ``J``).

    From the first two terms of ``S(t) = (1/m_1) (1 - (v / m_1^2) t + O(t^2))``, which multiply under free
    products (Pennington et al. 2017 eq. 16-17; 2018 sec. 3.3): with ``mu_k = E[phi'(h)^{2k}]``,
    ``chi = sigma_w2 mu_1``,

        mean = chi^L,
        variance = chi^{2L} L (mu_2 / mu_1^2 - 1 + [Gaussian weights]).

    The Gaussian term is the relative variance 1 of a Marchenko-Pastur matrix of ratio 1; orthogonal weights add
    nothing. At criticality (chi = 1) ReLU gives variance L (orthogonal) and 2 L (Gaussian).
    """
    _check_common(depth, sigma_w2, weights)
    law = d2_distribution(phi, q_star)
    mu1, mu2 = law.moment(1), law.moment(2)
    chi = sigma_w2 * mu1
    relative = mu2 / mu1**2 - 1.0 + (1.0 if weights == "gaussian" else 0.0)
    mean = chi**depth
    return {
        "mean": mean,
        "variance": mean**2 * depth * relative,
        "chi": chi,
        "mu1": mu1,
        "mu2": mu2,
        "relative_variance_per_layer": relative,
    }


def _log_s_weights(
    t: np.ndarray, sigma_w2: float, weights: str, one_plus_t: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``log S_{WW^T}(t)`` and its derivative in ``t``."""
    if weights == "orthogonal":
        return np.full_like(t, -math.log(sigma_w2)), np.zeros_like(t)
    one_plus_t = 1.0 + t if one_plus_t is None else one_plus_t
    return -math.log(sigma_w2) - np.log(one_plus_t), -1.0 / one_plus_t


# continuous parts lighter than this are not resolved (e.g. hard-tanh at q* = 1/64: 15 erfc(5.66) ~ 2e-14)
NEGLIGIBLE_MASS = 1e-12


@dataclass(frozen=True)
class JJTAtoms:
    """Point masses of the eigenvalue law of ``J J^T``: ``locations`` (increasing, 0 first when present),
    ``masses``, and ``continuous_mass = 1 - sum(masses)`` (formed from complements, so it keeps its digits when
    it is tiny)."""

    locations: np.ndarray
    masses: np.ndarray
    continuous_mass: float

    @property
    def zero(self) -> float:
        """Mass of the atom at 0 (0.0 if none)."""
        return float(self.masses[0]) if len(self.locations) and self.locations[0] == 0 else 0.0

    @property
    def top(self) -> tuple[float, float] | None:
        """``(location, mass)`` of the largest nonzero atom, or None."""
        if len(self.locations) and self.locations[-1] > 0:
            return float(self.locations[-1]), float(self.masses[-1])
        return None


def _atoms_of_law(law: D2Distribution, depth: int, sigma_w2: float, weights: str) -> JJTAtoms:
    """Belinschi's rule applied ``depth - 1`` times (see the module docstring). Nonzero atoms are carried with
    their complement ``1 - mass`` (which adds under the rule), so masses like ``1 - L erfc(.)`` keep their digits."""
    if not law.exact:  # quadrature nodes stand in for a continuous D^2: no atoms
        return JJTAtoms(np.zeros(0), np.zeros(0), 1.0)
    zero_mass = float(law.weights[law.values == 0].sum())
    base = [
        (sigma_w2 * float(v), float(m), float(law.weights[law.values != v].sum()))
        for v, m in zip(law.values, law.weights)
        if v > 0
    ]
    if weights == "gaussian":  # Marchenko-Pastur factors have no atoms: only the kernel's atom at 0 survives
        nonzero = []
    else:
        nonzero = base
        for _ in range(depth - 1):
            nonzero = [(a * b, 1.0 - (da + db), da + db) for a, _, da in nonzero for b, _, db in base if da + db < 1.0]
    nonzero = [(loc, m, d) for loc, m, d in nonzero if m > NEGLIGIBLE_MASS]
    nonzero.sort()
    locations = ([0.0] if zero_mass > 0 else []) + [loc for loc, _, _ in nonzero]
    masses = ([zero_mass] if zero_mass > 0 else []) + [m for _, m, _ in nonzero]
    if nonzero:
        heaviest = max(range(len(nonzero)), key=lambda i: nonzero[i][1])
        rest = [m for i, (_, m, _) in enumerate(nonzero) if i != heaviest] + [zero_mass]
        continuous = nonzero[heaviest][2] - math.fsum(rest)
    else:
        continuous = 1.0 - zero_mass
    return JJTAtoms(np.array(locations, dtype=float), np.array(masses, dtype=float), max(continuous, 0.0))


def jjt_atoms(
    phi: Any, depth: int, sigma_w2: float, q_star: float, weights: str = "orthogonal", n_quad: int = 96
) -> JJTAtoms:
    """Point masses of the law of the eigenvalues of ``J J^T`` (squared singular values of the Jacobian).

    Exact for a discrete ``D^2`` (module docstring, "Atoms"): hard-tanh with ``p = P(|h| < 1)`` has an atom
    ``1 - p`` at 0 and, with orthogonal weights and ``L (1 - p) < 1``, an atom ``1 - L (1 - p)`` at ``sigma_w2^L``;
    ReLU an atom 1/2 at 0 (and 1/2 at ``sigma_w2`` when ``L = 1``); the identity with orthogonal weights is the
    single atom 1 at ``sigma_w2^L``. Smooth nonlinearities (tanh, erf, sigmoid) have none.
    """
    _check_common(depth, sigma_w2, weights)
    return _atoms_of_law(d2_distribution(phi, q_star, n_quad), depth, sigma_w2, weights)


def _maximise_log_z(log_z: Callable[[float], float]) -> float:
    """``max_s log_z(s)`` over the real line: a scan locates the maximum, a bounded search refines it."""
    from scipy.optimize import minimize_scalar

    grid = np.linspace(-30, 30, 241)
    values = np.array([-log_z(s) for s in grid])
    best = int(np.argmin(values))
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    result = minimize_scalar(lambda s: -log_z(s), bounds=(lo, hi), method="bounded", options={"xatol": 1e-12})
    return -min(result.fun, values[best])


def _real_axis_log_z(law: D2Distribution, w: float, depth: int, sigma_w2: float, weights: str) -> float:
    """``log z`` with ``z = chi_{JJ^T}(t) = t A(w)^L / (1 + t)`` for real ``w`` where ``t`` and ``1 + t`` share a
    sign (right of the support: both positive; in the gap below a top atom: both negative)."""
    t, one_plus_t, _ = law.psi(np.array(w))
    log_t, log_one_plus_t = math.log(abs(float(t))), math.log(abs(float(one_plus_t)))
    log_sw = float(_log_s_weights(np.array(t), sigma_w2, weights)[0])
    log_a = log_one_plus_t + math.log(w) - log_t + log_sw
    return log_t - log_one_plus_t + depth * log_a


def _gap_branch_end(law: D2Distribution) -> float:
    """The zero of ``1 + psi(w)`` right of ``w = 1 / max D^2`` (``1 + psi`` increases there from -infinity)."""
    from scipy.optimize import brentq

    nonzero = np.sort(law.values[law.values > 0])[::-1]
    lo = 1.0 / nonzero[0]
    hi = 1.0 / nonzero[1] if len(nonzero) > 1 else 2.0 * lo
    while len(nonzero) == 1 and law.psi(np.array(hi))[1] < 0:
        hi *= 2.0
    return brentq(lambda w: float(law.psi(np.array(w))[1]), lo * (1 + 1e-14), hi * (1 - 1e-14), xtol=1e-15 * lo)


def jacobian_spectral_edge(
    phi: Any,
    depth: int,
    sigma_w2: float,
    q_star: float,
    weights: str = "orthogonal",
    n_quad: int = 96,
    continuous: bool = False,
) -> float:
    """Right edge of the support of the eigenvalue law of ``J J^T`` (``continuous``: of its continuous part).

    On the real axis right of the support, ``z = 1/x`` and ``w`` are real, ``0 < w < 1 / max D^2``, and
    ``z = chi_{JJ^T}(t) = t A(w)^L / (1 + t)``; the edge is ``1 / max_w z(w)`` (where ``dz/dw = 0``). For the
    identity with Gaussian weights this gives the Fuss-Catalan edge ``(L+1)^{L+1} / L^L`` (times sigma_w2^L).
    With an atom at the top (:func:`jjt_atoms`) the whole law's edge is that atom, and the continuous part ends
    below a gap at ``1 / max z(w)`` over the gap branch ``1 / max D^2 < w < (zero of 1 + psi)``; for hard-tanh
    (``p = P(|h| < 1)``, ``L >= 2``) both branches give ``sigma_w2^L p^(L-1) L (1 - p) (L / (L - 1))^(L - 1)``.
    ``continuous=True`` with no continuous part (the identity with orthogonal weights, depth 1 for ReLU or
    hard-tanh) returns NaN.
    """
    _check_common(depth, sigma_w2, weights)
    law = d2_distribution(phi, q_star, n_quad)
    atoms = _atoms_of_law(law, depth, sigma_w2, weights)
    top_atom = atoms.top
    if not continuous and top_atom is not None:
        return top_atom[0]
    if atoms.continuous_mass <= NEGLIGIBLE_MASS:
        return math.nan
    w_max = 1.0 / law.values.max()
    if top_atom is None:

        def log_z(s: float) -> float:
            return _real_axis_log_z(law, w_max / (1.0 + math.exp(-s)), depth, sigma_w2, weights)
    else:
        w_end = _gap_branch_end(law)

        def log_z(s: float) -> float:
            return _real_axis_log_z(law, w_max + (w_end - w_max) / (1.0 + math.exp(-s)), depth, sigma_w2, weights)

    return math.exp(-_maximise_log_z(log_z))


# ---------------------------------------------------------------------------------------------------------------
# Newton continuation towards the real axis


def _newton_continuation(
    x: np.ndarray,
    residual: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    initial: Callable[[np.ndarray], np.ndarray],
    scale: float,
    *,
    steps: int = 40,
    newton: int = 4,
    eta_final: float = 1e-9,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``residual(u, z) = 0`` for ``z = 1/(x + i eta)``, ``eta`` from ``100 scale`` down to ``eta_final x``.

    ``residual`` returns ``(f, f')``; the unknowns of all ``x`` move together (vectorised). Each step warm-starts
    from the previous ``eta``; a Newton step that increases ``|f|`` is halved (up to 5 times). Returns the
    solution ``u`` at the final ``eta`` and the final ``zeta``.
    """
    x = np.asarray(x, dtype=float)
    eta_start = 100.0 * scale + 100.0 * x
    eta_end = eta_final * np.maximum(x, 1e-300)
    ratios = np.linspace(0.0, 1.0, steps)
    zeta = x + 1j * eta_start
    u = initial(1.0 / zeta)
    tol = 1e-11
    for r in ratios:
        eta = eta_start ** (1 - r) * eta_end**r
        zeta = x + 1j * eta
        z = 1.0 / zeta
        f, df = residual(u, z)
        # Newton only on the points not yet converged (an active set), so converged points cost nothing
        active = np.nonzero(~(np.abs(f) < tol))[0]
        for _ in range(newton):
            if len(active) == 0:
                break
            ua, za, fa, dfa = u[active], z[active], f[active], df[active]
            with np.errstate(all="ignore"):
                step = -fa / dfa
            step = np.where(np.isfinite(step), step, 0.0)
            fnorm = np.abs(fa)
            f_trial, df_trial = residual(ua + step, za)
            for _ in range(5):
                worse = ~(np.abs(f_trial) <= fnorm)
                if not worse.any():
                    break
                step = np.where(worse, step / 2, step)
                f_trial, df_trial = residual(ua + step, za)
            accept = np.abs(f_trial) <= fnorm
            u[active] = np.where(accept, ua + step, ua)
            f[active] = np.where(accept, f_trial, fa)
            df[active] = np.where(accept, df_trial, dfa)
            active = active[~(np.abs(f[active]) < tol)]
    return u, zeta


def _jjt_solve(
    x: np.ndarray,
    phi: Any,
    depth: int,
    sigma_w2: float,
    q_star: float,
    weights: str,
    n_quad: int,
    steps: int,
    newton: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``1 + t = 1 + psi_{JJ^T}(1/zeta)`` and ``zeta`` near ``x`` (see the module docstring)."""
    _check_common(depth, sigma_w2, weights)
    law = d2_distribution(phi, q_star, n_quad)
    moments = jacobian_moments(phi, depth, sigma_w2, q_star, weights)
    mu1 = law.moment(1)
    gaussian = weights == "gaussian"

    def residual(w: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(all="ignore"):
            t, one_plus_t, dt = law.psi(w)
            log_sw, dlog_sw = _log_s_weights(t, sigma_w2, weights, one_plus_t)
            # log R = L log A - log B with A = (1+t) w S_W(t) / t and B = z (1+t) / t
            log_one_plus_t = np.log(one_plus_t)
            log_r = depth * (log_one_plus_t + np.log(w) - np.log(t) + log_sw) - (np.log(z) + log_one_plus_t - np.log(t))
            r = np.exp(log_r)
            dlog_a = dt / one_plus_t + 1 / w - dt / t + dlog_sw * dt
            dlog_b = dt / one_plus_t - dt / t
            return r - 1.0, r * (depth * dlog_a - dlog_b)

    def initial(z: np.ndarray) -> np.ndarray:
        return moments["mean"] * z / mu1

    del gaussian
    scale = moments["mean"] + 10.0 * math.sqrt(max(moments["variance"], 0.0)) + 1.0
    w, zeta = _newton_continuation(x, residual, initial, scale, steps=steps, newton=newton)
    _, one_plus_t, _ = law.psi(w)
    return one_plus_t, zeta


def _continuous_density(g: np.ndarray, zeta: np.ndarray, atoms: JJTAtoms) -> np.ndarray:
    """``-Im G / pi`` after removing each atom's pole ``m / (zeta - c)`` from ``G`` (at ``eta = 1e-9 x`` the
    poles would otherwise leave Lorentzian spikes of height ``m / (pi eta)`` at the atoms)."""
    for location, mass in zip(atoms.locations, atoms.masses):
        g = g - mass / (zeta - location)
    return np.maximum(-np.imag(g) / math.pi, 0.0)


def jjt_density(
    x: np.ndarray,
    phi: Any,
    depth: int,
    sigma_w2: float,
    q_star: float,
    weights: str = "orthogonal",
    *,
    n_quad: int = 96,
    steps: int = 40,
    newton: int = 4,
) -> np.ndarray:
    """Eigenvalue density ``rho(x)`` of ``J J^T`` (squared singular values of the Jacobian), ``x > 0``.

    ``x``: array of eigenvalues (any shape, positive). ``depth`` = L layers, each a weight matrix followed by
    ``phi``; ``sigma_w2``: weight variance times width; ``q_star``: variance of the pre-activations (the
    ``D^2`` law); ``weights``: ``"orthogonal"`` or ``"gaussian"``. ``rho`` is the continuous part only, of total
    mass ``jjt_atoms(...).continuous_mass``: atoms (hard-tanh's at 0 and at ``sigma_w2^L``, ReLU's at 0) are
    given by :func:`jjt_atoms`, their poles are removed from ``G``, and ``rho`` is 0 in the gap below a top atom
    (and everywhere when the continuous mass is below ``NEGLIGIBLE_MASS``). Accuracy: relative ~1e-6 away from
    edges (the final ``eta`` is ``1e-9 x``).
    """
    x = np.asarray(x, dtype=float)
    if np.any(~np.isfinite(x)) or np.any(x <= 0):
        raise ConfigError("x must hold positive finite eigenvalues")
    _check_common(depth, sigma_w2, weights)
    atoms = jjt_atoms(phi, depth, sigma_w2, q_star, weights, n_quad)
    if atoms.continuous_mass <= NEGLIGIBLE_MASS:
        return np.zeros(x.shape)
    one_plus_t, zeta = _jjt_solve(x.ravel(), phi, depth, sigma_w2, q_star, weights, n_quad, steps, newton)
    density = _continuous_density(one_plus_t / zeta, zeta, atoms)
    if atoms.top is not None:  # the gap between the continuous part and the top atom
        density[x.ravel() > jacobian_spectral_edge(phi, depth, sigma_w2, q_star, weights, n_quad, True)] = 0.0
    return density.reshape(x.shape)


def jjt_log_density(
    log_x: np.ndarray, phi: Any, depth: int, sigma_w2: float, q_star: float, weights: str = "orthogonal", **kwargs: Any
) -> np.ndarray:
    """Density of ``log lambda`` (natural log) for the eigenvalues ``lambda`` of ``J J^T``: ``x rho(x)``."""
    log_x = np.asarray(log_x, dtype=float)
    return jjt_density(np.exp(log_x), phi, depth, sigma_w2, q_star, weights, **kwargs) * np.exp(log_x)


def cdf_from_log_density(log_x: np.ndarray, log_density: np.ndarray, atoms: JJTAtoms | None = None) -> np.ndarray:
    """CDF ``P(lambda <= exp(log_x))`` as ``1 - (atoms above) - integral_{log_x}^{top}`` (trapezoid on the
    increasing grid, ``log_density`` the continuous part's density of ``log lambda``).

    Counting from the top puts the atom at zero and any continuous mass below the grid into the CDF's lowest
    value, so the CDF is right wherever the grid resolves the density. ``atoms``: the point masses
    (:func:`jjt_atoms`); an atom at ``c`` counts in the CDF from ``exp(log_x) >= c`` on (a CDF with jumps).
    """
    log_x = np.asarray(log_x, dtype=float)
    segments = 0.5 * (log_density[1:] + log_density[:-1]) * np.diff(log_x)
    upper = np.concatenate([np.cumsum(segments[::-1])[::-1], [0.0]])
    if atoms is not None and len(atoms.locations):
        above = atoms.locations[None, :] > np.exp(log_x)[:, None]
        upper = upper + above.astype(float) @ atoms.masses
    return np.clip(1.0 - upper, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------------------------
# Universal limits (Pennington et al. 2018)


def universal_log_density(
    log_x: np.ndarray, variance: float, universality: str = "smooth", *, steps: int = 40, newton: int = 4
) -> np.ndarray:
    """Density of ``log lambda`` for the depth -> infinity limits of critical orthogonal networks.

    As ``L -> infinity`` with ``chi = 1`` and ``q*`` scaled so that ``variance = L (mu_2/mu_1^2 - 1)`` stays fixed,
    ``log S_{D^2}`` keeps only its linear term (higher free cumulants of ``D^2`` are of higher order in ``q*``),
    so ``S_{JJ^T}(t) -> exp(-variance t)`` for smooth nonlinearities (tanh, erf: ``D^2 = 1 - O(q*)``, the
    "smooth" class); for a Bernoulli ``D^2`` (hard-tanh: ``P(D^2 = 1) = p -> 1`` with ``sigma_w2 = 1/p``),
    ``L log[p (1+t) / (p + t)] -> -variance t / (1 + t)`` with ``variance = L (1-p)/p`` (the "Bernoulli" class;
    our derivation of the limits of Pennington et al. 2018, sec. 4). Returned on the ``log_x`` grid.

    The Bernoulli class with ``variance < 1`` has an atom ``1 - variance`` at ``exp(variance)`` (the limit of
    hard-tanh's top atom ``1 - L (1 - p)`` at ``p^-L``; from ``S(t) -> exp(-variance) (1 + (1 - m) / t)`` as
    ``t -> infinity`` for an atom ``m`` at the top); it is not part of the returned density, which ends at
    ``e variance`` (the maximum of ``z = u exp(-variance u)``, ``u = t / (1 + t)``, on the real axis).
    """
    if universality not in ("smooth", "bernoulli"):
        raise ConfigError(f"universality must be 'smooth' or 'bernoulli', got {universality!r}")
    if not (np.isfinite(variance) and variance > 0):
        raise ConfigError(f"variance must be positive, got {variance!r}")
    log_x = np.asarray(log_x, dtype=float)
    x = np.exp(log_x.ravel())
    bernoulli = universality == "bernoulli"

    def residual(t: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(all="ignore"):
            if bernoulli:
                log_s, dlog_s = -variance * t / (1 + t), -variance / (1 + t) ** 2
            else:
                log_s, dlog_s = -variance * t, np.full_like(t, -variance)
            r = np.exp(np.log(t) + log_s - np.log(z) - np.log1p(t))
            return r - 1.0, r * (1 / t + dlog_s - 1 / (1 + t))

    t, zeta = _newton_continuation(x, residual, lambda z: z, 1.0 + 10 * math.sqrt(variance), steps=steps, newton=newton)
    top_atom = bernoulli and variance < 1
    if top_atom:
        atoms = JJTAtoms(np.array([math.exp(variance)]), np.array([1.0 - variance]), variance)
    else:
        atoms = JJTAtoms(np.zeros(0), np.zeros(0), 1.0)
    density = x * _continuous_density((1.0 + t) / zeta, zeta, atoms)
    if top_atom:
        density[x > math.e * variance] = 0.0  # the gap below the atom
    return density.reshape(log_x.shape)


def universal_variance_q_star(phi: Any, depth: int, variance: float) -> float:
    """The ``q*`` at which a critical orthogonal network of this depth has ``J J^T`` variance ``variance``.

    Solves ``L (mu_2(q*)/mu_1(q*)^2 - 1) = variance`` by bisection in ``log q*`` (the left side grows with q*).
    """
    from scipy.optimize import brentq

    def gap(log_q: float) -> float:
        law = d2_distribution(phi, math.exp(log_q))
        return depth * (law.moment(2) / law.moment(1) ** 2 - 1.0) - variance

    return math.exp(brentq(gap, math.log(1e-8), math.log(1e2), xtol=1e-12))


def fuss_catalan_moment(depth: int, k: int) -> float:
    """``k``-th moment ``C((L+1)k, k) / (L k + 1)`` of the Fuss-Catalan law of order ``L``."""
    return math.comb((depth + 1) * k, k) / (depth * k + 1)

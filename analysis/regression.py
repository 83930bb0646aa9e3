"""Linear maps from model features to neural responses: PLS, ridge and least squares, fitted in closed form.

Shapes: ``X`` is ``(n_samples, n_features)`` (model features per stimulus), ``Y`` is ``(n_samples, n_targets)``
(neural responses per stimulus, one column per neuroid). Everything is float64 and every model fits an
intercept by centring ``X`` and ``Y`` on the training means, as scikit-learn does.

* :class:`PLSRegression` gives the predictions of scikit-learn's ``PLSRegression(n_components, scale=False)``
  (the mapping of Brain-Score's neural benchmarks) without forming the deflated matrices. The weight vector of
  each component comes from the small ``q x q`` (or ``p x p``) Gram matrix of the current cross-product
  ``C_k = X_k^T Y_k``: ``algorithm="nipals"`` runs scikit-learn's NIPALS power iteration on it (same start
  vector, stopping rule, ``tol`` and ``max_iter``), so it reproduces scikit-learn's defaults, and with them
  Brain-Score's numbers; ``algorithm="exact"`` takes the dominant left singular vector of ``C_k`` (one symmetric
  eigen-decomposition), which is what NIPALS converges to. Deflation follows scikit-learn's "regression" mode
  (``X_{k+1} = X_k - t p^T``, ``Y_{k+1} = Y_k - t q^T`` with ``q = Y_k^T t / t^T t``); the cross-product is
  updated by the exact rank-one identity ``X_{k+1}^T Y_{k+1} = X_k^T Y_k - (t^T t) p q^T`` and ``X_k`` is never
  formed (``t = X_0 w - T (P^T w)``).
* :func:`ridge_path` gives ridge predictions for many penalties and all targets from one eigen-decomposition
  of ``X^T X`` (or, with more features than samples, of ``X X^T``); :func:`ridge_gcv` selects the penalty by generalised cross-validation (GCV; Golub, Heath &
  Wahba 1979), shared by all targets (the default, like Brain-Score's ``RidgeCV``) or per target.
* :func:`least_squares_fit_predict`: ordinary least squares (minimum-norm solution when rank-deficient).

References: Wold, Sjöström & Eriksson (2001) PLS-regression, Chemometr. Intell. Lab. 58:109; Wegelin (2000)
A survey of PLS methods, TR 371 Univ. Washington; Golub, Heath & Wahba (1979) Technometrics 21:215.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuromodels.errors import ConfigError, DataFormatError

__all__ = [
    "PLSRegression",
    "PLS_ALGORITHMS",
    "pls_fit_predict",
    "pls_cross_validated",
    "ridge_path",
    "ridge_gcv",
    "ridge_cross_validated",
    "RidgeGCVResult",
    "least_squares_fit_predict",
    "default_ridge_alphas",
    "RELATIVE_RIDGE_ALPHAS",
    "RIDGE_SOLVERS",
]

# Penalties of the default ridge grid, in units of the mean eigenvalue of the centred training Gram matrix
# tr(X^T X) / n_features: the selected model is then the same when the features are rescaled.
RELATIVE_RIDGE_ALPHAS = np.logspace(-5, 4, 30)

# A component whose cross-product has no singular value above this fraction of the first one carries nothing
# but rounding error (X or Y residual exhausted); fitting stops there.
_EXHAUSTED = 1e-10

# "nipals": scikit-learn's power iteration (its tol and max_iter; Brain-Score's numbers); "exact": its limit, the
# dominant singular vectors.
PLS_ALGORITHMS = ("nipals", "exact")

# Below this squared change of the unit weight vector, 2 - 2 cos(angle) loses digits to cancellation; the change is
# then recomputed from the difference vector itself.
_CANCELLATION = 1e-8


@contextlib.contextmanager
def _single_threaded_blas():
    """Run BLAS/LAPACK calls on one thread.

    Used for the PLS component loop (hundreds of small calls: a 168 x 168 eigen-decomposition, matrix-vector
    products) and the ridge eigen-decomposition. Multi-threaded OpenBLAS gains at most ~1.5x on these when the
    cores are idle, but when they are shared with other work (parallel workers, other jobs) it spends 20-40x
    longer per call waiting for its threads (measured on 2 cores: eigh of 1000 x 1000 0.22 s on one thread,
    8.5 s on two). Large matrix products keep the default thread count. threadpoolctl (a scikit-learn
    dependency) sets the limit; without it this does nothing.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _as_2d_float(name: str, values: np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise DataFormatError(field=name, expected="a 2-D array (samples, columns)", found=f"shape {array.shape}")
    if not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[0]
        raise DataFormatError(
            field=name,
            expected="finite values",
            found=f"{int((~np.isfinite(array)).sum())} NaN/inf (first at {tuple(bad)})",
        )
    return array


def _gram_of(cross: np.ndarray) -> np.ndarray:
    """The smaller Gram matrix of ``cross`` (p x q): ``cross^T cross`` when q <= p, else ``cross cross^T``."""
    p, q = cross.shape
    return cross.T @ cross if q <= p else cross @ cross.T


def _top_singular_pair(cross: np.ndarray, gram: np.ndarray) -> tuple[np.ndarray, float]:
    """Dominant left singular vector ``w`` (unit norm) and singular value of ``cross`` (p x q).

    From the top eigenvector of ``gram`` (:func:`_gram_of`): ``v`` of ``cross^T cross`` gives
    ``w = cross v / |cross v|``; for ``cross cross^T`` the eigenvector is ``w`` itself.
    """
    from scipy.linalg import eigh

    p, q = cross.shape
    size = gram.shape[0]
    value, vector = eigh(gram, subset_by_index=[size - 1, size - 1], check_finite=False)
    if q <= p:
        w = cross @ vector[:, 0]
        norm = float(np.sqrt(w @ w))
        if norm == 0.0:
            return w, 0.0
        return w / norm, norm
    return vector[:, 0].copy(), float(np.sqrt(max(value[0], 0.0)))


def _deflate_cross(
    cross: np.ndarray, gram: np.ndarray, scale: float, x_loading: np.ndarray, y_loading: np.ndarray
) -> None:
    """In place: ``cross -= scale * outer(x_loading, y_loading)`` and the same rank-two update of its Gram.

    ``G' = G - s (c a^T + a c^T) + s^2 |p|^2 c c^T`` with ``a = C^T p`` (q-side Gram) or the transposed form
    for the p-side Gram: O(p q) instead of the O(p q^2) of recomputing ``C^T C``.
    """
    p, q = cross.shape
    if q <= p:
        a = cross.T @ x_loading
        outer_vec, other, norm_sq = y_loading, a, float(x_loading @ x_loading)
    else:
        a = cross @ y_loading
        outer_vec, other, norm_sq = x_loading, a, float(y_loading @ y_loading)
    gram -= scale * (np.outer(outer_vec, other) + np.outer(other, outer_vec))
    gram += (scale * scale * norm_sq) * np.outer(outer_vec, outer_vec)
    _rank_one_update(cross, -scale, x_loading, y_loading)


def _rank_one_update(matrix: np.ndarray, alpha: float, x: np.ndarray, y: np.ndarray) -> None:
    """In place ``matrix += alpha * outer(x, y)`` (BLAS ger on the Fortran view, no temporary)."""
    from scipy.linalg import blas

    if matrix.flags.c_contiguous and matrix.dtype == np.float64:
        blas.dger(alpha, y, x, a=matrix.T, overwrite_a=True)
    else:
        matrix += alpha * np.outer(x, y)


def _flip_sign(w: np.ndarray) -> np.ndarray:
    # scikit-learn's _svd_flip_1d: the entry of largest magnitude is positive. Predictions do not depend on it.
    return w if w[np.argmax(np.abs(w))] >= 0 else -w


def _nipals_start_column(problem: _PLSProblem) -> int | None:
    """scikit-learn's start vector: the first column of ``Y_k`` with an entry above ``eps``, after the columns
    whose entries are all below ``10 eps`` were set to zero (``_PLS.fit``); ``None`` if there is none
    ("y residual is constant").

    Columns that are all below ``10 eps`` on the training rows (constant targets) are zeroed before the first
    component; later, the candidate start column is checked exactly (columns of a deflated ``Y_k`` reach rounding
    level only when a target lies in the span of the scores).
    """
    eps = np.finfo(np.float64).eps
    q = problem.cross.shape[1]
    if problem.k == 0:
        tiny = np.flatnonzero(np.max(np.abs(problem.residual_targets(slice(None))), axis=0) < 10 * eps)
        for j in tiny:
            problem.zero_target_column(int(j))
        problem.masked = set(int(j) for j in tiny)
    for j in range(q):
        if j in problem.masked:
            continue
        if np.max(np.abs(problem.residual_targets(np.array([j])))) >= 10 * eps:
            return j
        problem.zero_target_column(j)
        problem.masked.add(j)
    return None


def _nipals_weights(batch: list[tuple[_PLSProblem, int]], tol: float, max_iter: int) -> list[tuple[np.ndarray, int]]:
    """scikit-learn's NIPALS power iteration (``_get_first_singular_vectors_power_method``, mode A) for every
    ``(problem, start column j)``: ``(unit weight vector w, iterations)``.

    scikit-learn iterates ``w <- X_k^T y_s / |.|``, ``c <- Y_k^T X_k w``, ``y_s <- Y_k c`` from ``y_s = Y_k e_j``,
    so its ``i``-th weight vector (``i = 0, 1, ...``) is ``w_i = C G^i e_j / |.|`` with ``C = X_k^T Y_k`` and
    ``G = C^T C`` (or ``w_i = (C C^T)^i C e_j / |.|``). It stops after iteration ``i`` when
    ``|w_i - w_{i-1}|^2 < tol`` (``w_{-1}`` = 100 in every entry), when ``Y_k`` has one column, or after
    ``max_iter`` iterations. The same sequence is run here on the small Gram matrix, one matrix-vector product per
    iteration for all problems of one shape together. Its scale factors (``+ eps`` in two normalisations) change
    ``|w|`` by ~1e-16 relative and are left out.
    """
    results: list[tuple[np.ndarray, int] | None] = [None] * len(batch)
    shapes: dict[tuple[int, int], list[int]] = {}
    for index, (problem, _) in enumerate(batch):
        shapes.setdefault(problem.cross.shape, []).append(index)
    for (p, q), members in shapes.items():
        right = q <= p  # iterate on the q x q Gram C^T C (else on the p x p Gram C C^T)
        if q == 1:  # scikit-learn stops after the first iteration: w_0 = C e_0 / |.|, exact for PLS1
            for index in members:
                results[index] = (_unit(batch[index][0].cross[:, batch[index][1]]), 1)
            continue
        grams = np.stack([batch[index][0].gram for index in members])
        crosses = [batch[index][0].cross for index in members]
        starts = [batch[index][1] for index in members]
        if right:
            v = np.zeros((len(members), q))
            v[np.arange(len(members)), starts] = 1.0
        else:
            v = np.stack([_unit(c[:, j]) for c, j in zip(crosses, starts)])
        first_sums = np.array([_unit(c[:, j]).sum() for c, j in zip(crosses, starts)])
        final = _power_iterations(grams, v, right, tol, max_iter, first_sums=first_sums, p=p)
        for row, index in enumerate(members):
            vector, n_iter = final[row]
            results[index] = (_unit(crosses[row] @ vector) if right else vector, n_iter)
    return results  # type: ignore[return-value]


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.sqrt(vector @ vector))
    return vector / norm if norm > 0.0 else np.zeros_like(vector)


def _power_iterations(
    grams: np.ndarray, v: np.ndarray, right: bool, tol: float, max_iter: int, first_sums: np.ndarray, p: int
) -> list[tuple[np.ndarray, int]]:
    """The NIPALS iterates ``v_i = G^i v_0 / |.|`` for a stack of Gram matrices ``(B, m, m)`` until scikit-learn's
    stopping rule holds for each: ``(v_i, i + 1)`` per row.

    The unit weight vectors are ``w_i = C v_i / |C v_i|`` (``right``; ``|C v|^2 = v^T G v``) or ``w_i = v_i``.
    With ``g_i = G v_i``, ``a_i = v_i . g_i`` and ``nu_i = |g_i|``: ``cos(w_i, w_{i-1})`` is
    ``nu_{i-1} / sqrt(a_{i-1} a_i)`` (right) or ``a_{i-1} / nu_{i-1}``, and ``|w_i - w_{i-1}|^2 = 2 - 2 cos``;
    near ``_CANCELLATION`` it is recomputed from the difference ``d`` of the unit weight vectors (``d^T G d``, right).
    Iteration 0 compares ``w_0`` with 100 in every entry: ``|w_0|^2 - 200 sum(w_0) + 10^4 p`` (``first_sums`` holds
    ``sum(w_0)``).
    """
    out: list[tuple[np.ndarray, int] | None] = [None] * len(v)
    rows = np.arange(len(v))
    first_change = 1.0 - 200.0 * first_sums + 1e4 * p
    g = (grams @ v[:, :, None])[:, :, 0]
    a = (v * g).sum(axis=1)
    nu = np.sqrt((g * g).sum(axis=1))
    done = (first_change < tol) | (nu == 0.0) | (a <= 0.0) | (max_iter <= 1)
    for i in range(1, max(max_iter, 1) + 1):
        for r in np.flatnonzero(done):
            out[rows[r]] = (v[r].copy(), i)
        keep = ~done
        if not keep.any():
            break
        if not keep.all():
            grams, v, g, a, nu, rows = grams[keep], v[keep], g[keep], a[keep], nu[keep], rows[keep]
        v_old, a_old, nu_old = v, a, nu
        v = g / nu[:, None]
        g = (grams @ v[:, :, None])[:, :, 0]
        a = (v * g).sum(axis=1)
        nu = np.sqrt((g * g).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = nu_old / np.sqrt(a_old * a) if right else a_old / nu_old
        change = 2.0 - 2.0 * cos
        for r in np.flatnonzero(change < _CANCELLATION):
            if right:
                d = v[r] / np.sqrt(a[r]) - v_old[r] / np.sqrt(a_old[r])
                change[r] = d @ (grams[r] @ d)
            else:
                d = v[r] - v_old[r]
                change[r] = d @ d
        done = (change < tol) | (nu == 0.0) | ~(a > 0.0) | (i + 1 >= max_iter)
    return out  # type: ignore[return-value]


class _PLSProblem:
    """One PLS2 fit (a training subset of the rows, one target block) while its components are extracted.

    ``cross`` is the current ``X_k^T Y_k`` (p x q) and ``gram`` its smaller Gram matrix, both deflated in place;
    ``W, P, Q, T`` hold the weights, X loadings, Y loadings and scores (one column per component).
    """

    def __init__(
        self,
        train: np.ndarray | None,
        x_mean: np.ndarray,
        y_mean: np.ndarray,
        cross: np.ndarray,
        n_train: int,
        n_components: int,
        y_block: np.ndarray,
        y_block_mean: np.ndarray,
    ) -> None:
        p, q = cross.shape
        self.train = train
        self.x_mean = x_mean
        self.y_mean = y_mean
        # The centred training targets Y_0 are y_block[train] - y_block_mean (NIPALS picks its start column there).
        self.y_block = y_block
        self.y_block_mean = y_block_mean
        self.cross = np.ascontiguousarray(cross)
        self.gram: np.ndarray | None = None  # computed inside the single-threaded loop
        self.W = np.zeros((p, n_components))
        self.P = np.zeros((p, n_components))
        self.Q = np.zeros((q, n_components))
        self.T = np.zeros((n_train, n_components))
        self.k = 0
        self.first_singular_value = 0.0
        self.active = True
        self.n_iter: list[int] = []  # NIPALS iterations per component (scikit-learn's n_iter_)
        self.masked: set[int] = set()  # target columns set to zero (all entries under 10 eps)

    def residual_targets(self, columns: np.ndarray | slice) -> np.ndarray:
        """Columns of the deflated training targets ``Y_k = Y_0 - T Q^T`` (n_train, len(columns))."""
        values = self.y_block[:, columns]
        if self.train is not None:
            values = values[self.train]
        values = values - self.y_block_mean[columns]
        if self.k:
            values = values - self.T[:, : self.k] @ self.Q[columns, : self.k].T
        return values

    def zero_target_column(self, j: int) -> None:
        """Set target column ``j`` of ``Y_k`` to zero, as scikit-learn does for columns that are all below
        ``10 eps``: column ``j`` of the cross-product and its Gram matrix follow."""
        p, q = self.cross.shape
        if self.gram is not None:
            if q <= p:
                self.gram[j, :] = 0.0
                self.gram[:, j] = 0.0
            else:
                self.gram -= np.outer(self.cross[:, j], self.cross[:, j])
        self.cross[:, j] = 0.0

    def components(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        k = self.k
        return self.W[:, :k], self.P[:, :k], self.Q[:, :k], self.T[:, :k]

    def predict(self, x_test: np.ndarray) -> np.ndarray:
        """``(x_test - x_mean) W (P^T W)^+ Q^T + y_mean``."""
        W, P, Q, _ = self.components()
        if self.k == 0:
            return np.broadcast_to(self.y_mean, (x_test.shape[0], self.y_mean.size)).copy()
        return ((x_test - self.x_mean) @ _rotations(W, P)) @ Q.T + self.y_mean


def _extract_components(
    x: np.ndarray,
    problems: list[_PLSProblem],
    n_components: int,
    algorithm: str = "nipals",
    tol: float = 1e-6,
    max_iter: int = 500,
) -> list[str]:
    """Fit every problem's PLS2 components in lockstep; returns warning texts (early stops).

    The weights of each component: scikit-learn's NIPALS power iteration (``algorithm="nipals"``, its ``tol`` and
    ``max_iter``; :func:`_nipals_weights`) or the dominant singular vector of the cross-product (``"exact"``).

    ``x`` (n x p) holds all rows; each problem uses the rows ``train`` (all rows if None) centred on its
    ``x_mean``. The deflation is implicit: with the scores ``T`` and loadings ``P`` of earlier components,
    ``X_k w = X_0 w - T (P^T w)`` and ``X_k^T t = X_0^T t - P (T^T t)``, so ``x`` is never copied or deflated and is
    read twice per component for all problems together (two matrix products with one column per problem).
    """
    notes: list[str] = []
    max_iter_reached = 0
    with _single_threaded_blas():
        for k in range(n_components):
            candidates = [problem for problem in problems if problem.active]
            for problem in candidates:
                if problem.gram is None:
                    problem.gram = _gram_of(problem.cross)
            if algorithm == "nipals":
                starts = []
                for problem in candidates:
                    j = _nipals_start_column(problem)
                    if j is None:
                        problem.active = False
                        notes.append(
                            f"PLS stopped after {k} of {n_components} components: the target residual is "
                            "constant (scikit-learn: 'y residual is constant')"
                        )
                    else:
                        starts.append((problem, j))
                candidates = [problem for problem, _ in starts]
                weights = []
                for (w, n_iter), problem in zip(_nipals_weights(starts, tol, max_iter), candidates):
                    problem.n_iter.append(n_iter)
                    max_iter_reached += n_iter >= max_iter
                    y_side = problem.cross.T @ w
                    weights.append((w, float(np.sqrt(y_side @ y_side))))
            else:
                weights = [_top_singular_pair(problem.cross, problem.gram) for problem in candidates]
            batch: list[tuple[_PLSProblem, np.ndarray]] = []
            for problem, (w, singular_value) in zip(candidates, weights):
                if k == 0:
                    problem.first_singular_value = singular_value
                if singular_value == 0.0 or singular_value <= _EXHAUSTED * problem.first_singular_value:
                    problem.active = False
                    notes.append(
                        f"PLS stopped after {k} of {n_components} components: no covariance left between "
                        "the residual features and targets (their rank is exhausted)"
                    )
                    continue
                batch.append((problem, _flip_sign(w)))
            if not batch:
                break
            products = x @ np.stack([w for _, w in batch], axis=1)  # (n, B)
            full_scores = np.zeros_like(products)
            scores = []
            for j, (problem, w) in enumerate(batch):
                rows = slice(None) if problem.train is None else problem.train
                t = products[rows, j] - problem.x_mean @ w
                if problem.k:
                    t -= problem.T[:, : problem.k] @ (problem.P[:, : problem.k].T @ w)
                full_scores[rows, j] = t
                scores.append(t)
            back = x.T @ full_scores  # (p, B)
            for j, (problem, w) in enumerate(batch):
                t = scores[j]
                t_sq = float(t @ t)
                if t_sq <= 0.0:
                    problem.active = False
                    notes.append(f"PLS stopped after {k} of {n_components} components: the feature scores are zero")
                    continue
                x_loading = back[:, j] - problem.x_mean * t.sum()
                if problem.k:
                    x_loading -= problem.P[:, : problem.k] @ (problem.T[:, : problem.k].T @ t)
                x_loading /= t_sq
                y_loading = problem.cross.T @ w / t_sq
                _deflate_cross(problem.cross, problem.gram, t_sq, x_loading, y_loading)
                problem.W[:, problem.k] = w
                problem.P[:, problem.k] = x_loading
                problem.Q[:, problem.k] = y_loading
                problem.T[:, problem.k] = t
                problem.k += 1
    if max_iter_reached:
        notes.append(
            f"PLS NIPALS reached max_iter={max_iter} before the weight change fell under tol={tol:g} in "
            f"{max_iter_reached} component fit(s); their weights are not converged (scikit-learn warns "
            "'Maximum number of iterations reached' and keeps them too)"
        )
    return list(dict.fromkeys(notes))


def _rotations(weights: np.ndarray, loadings: np.ndarray) -> np.ndarray:
    """``W (P^T W)^+`` (p x k), scikit-learn's ``x_rotations_``."""
    from scipy.linalg import pinv

    if weights.shape[1] == 0:
        return weights
    return weights @ pinv(loadings.T @ weights, check_finite=False)


def _check_algorithm(algorithm: str, tol: float, max_iter: int) -> None:
    if algorithm not in PLS_ALGORITHMS:
        raise ConfigError(f"algorithm must be one of {', '.join(PLS_ALGORITHMS)}; got {algorithm!r}")
    if algorithm == "nipals":
        if not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
            raise ConfigError(f"max_iter must be a positive integer, got {max_iter!r}")
        if not (isinstance(tol, (int, float, np.floating)) and np.isfinite(tol) and tol >= 0):
            raise ConfigError(f"tol must be a non-negative number, got {tol!r}")


def _check_n_components(n_components: int, n_samples: int, n_features: int) -> tuple[int, str | None]:
    if not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise ConfigError(f"n_components must be a positive integer, got {n_components!r}")
    cap = min(n_features, n_samples - 1)
    if cap < 1:
        raise DataFormatError(
            field="features",
            expected="at least 2 training samples and 1 feature",
            found=f"{n_samples} samples x {n_features} features",
        )
    if n_components > cap:
        return cap, (
            f"n_components={n_components} exceeds min(n_features={n_features}, n_train_samples - 1={n_samples - 1}); "
            f"using {cap} components (scikit-learn's PLSRegression would raise an error)"
        )
    return int(n_components), None


class PLSRegression:
    """PLS2 regression equal in its predictions to scikit-learn's ``PLSRegression(n_components, scale=False)``.

    Parameters
    ----------
    n_components:
        Number of components (Brain-Score: 25). Capped, with a ``RuntimeWarning``, at
        ``min(n_features, n_samples - 1)``: scikit-learn raises for ``n_components > n_features``.
    algorithm:
        ``"nipals"`` (default): scikit-learn's NIPALS power iteration with its start vector (the first non-zero
        column of the residual targets), stopping rule (squared change of the weight vector under ``tol``) and
        ``max_iter``: equal to scikit-learn's ``PLSRegression(n_components, scale=False, tol=tol,
        max_iter=max_iter)``, and with the defaults to what Brain-Score runs. ``"exact"``: the dominant singular
        vectors, i.e. NIPALS at convergence (scikit-learn's internal ``algorithm="svd"`` path).
    tol, max_iter:
        scikit-learn's NIPALS tolerance and iteration limit (its defaults); ignored by ``"exact"``.

    Attributes
    ----------
    x_weights_, x_loadings_, y_loadings_, x_scores_, x_rotations_, coef_, intercept_
        After ``fit``, with scikit-learn's names and shapes: ``(p, k)``, ``(p, k)``, ``(q, k)``, ``(n, k)``,
        ``(p, k)``, ``(q, p)``, ``(q,)``.
    n_iter_
        NIPALS iterations per component; empty for ``"exact"``.
    n_components_
        k actually fitted; fewer than requested when the features or targets run out of covariance, with a
        warning.

    Notes
    -----
    scikit-learn's default NIPALS stops when the squared change of the unit weight vector falls under
    ``tol=1e-6``; on data with close singular values that is hundreds of iterations before convergence and leaves
    its predictions up to ~1e-2 (relative) away from the converged ones. ``"nipals"`` runs the same iterations on
    the small Gram matrix of the cross-product and agrees with scikit-learn's defaults to ~1e-10 (the iteration
    at which both stop is the same unless the weight change lands within rounding of ``tol``). ``"exact"`` agrees
    with ``PLSRegression(tol=1e-20, max_iter=10**5)`` to ~1e-9 and with scikit-learn's ``"svd"`` path to ~1e-14.
    Signs follow scikit-learn (largest-magnitude weight positive).
    """

    def __init__(
        self, n_components: int = 25, *, algorithm: str = "nipals", tol: float = 1e-6, max_iter: int = 500
    ) -> None:
        self.n_components = n_components
        self.algorithm = algorithm
        self.tol = tol
        self.max_iter = max_iter

    def fit(self, X: np.ndarray, Y: np.ndarray) -> PLSRegression:
        X = _as_2d_float("X", X)
        Y = _as_2d_float("Y", Y)
        if X.shape[0] != Y.shape[0]:
            raise DataFormatError(field="Y", expected=f"{X.shape[0]} samples (as X)", found=f"{Y.shape[0]}")
        _check_algorithm(self.algorithm, self.tol, self.max_iter)
        k, note = _check_n_components(self.n_components, X.shape[0], X.shape[1])
        if note:
            warnings.warn(note, RuntimeWarning, stacklevel=2)
        x_mean = X.mean(axis=0)
        y_mean = Y.mean(axis=0)
        xc = X - x_mean
        problem = _PLSProblem(None, np.zeros_like(x_mean), y_mean, xc.T @ (Y - y_mean), X.shape[0], k, Y, y_mean)
        for text in _extract_components(xc, [problem], k, self.algorithm, self.tol, self.max_iter):
            warnings.warn(text, RuntimeWarning, stacklevel=2)
        self.x_mean_ = x_mean
        self.y_mean_ = y_mean
        self.x_weights_, self.x_loadings_, self.y_loadings_, self.x_scores_ = problem.components()
        self.x_rotations_ = _rotations(self.x_weights_, self.x_loadings_)
        self.coef_ = (self.x_rotations_ @ self.y_loadings_.T).T
        self.intercept_ = y_mean
        self.n_iter_ = list(problem.n_iter)
        self.n_components_ = problem.k
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = _as_2d_float("X", X)
        return (X - self.x_mean_) @ self.coef_.T + self.intercept_


def pls_cross_validated(
    x: np.ndarray,
    y_blocks: Sequence[np.ndarray],
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    n_components: int = 25,
    *,
    algorithm: str = "nipals",
    tol: float = 1e-6,
    max_iter: int = 500,
) -> tuple[list[list[np.ndarray]], int, list[str]]:
    """PLS fitted on each split's training rows for each target block, predicting its held-out rows.

    ``x`` (n, p) and every ``y_blocks[b]`` (n, q_b) hold all stimuli; ``splits`` are (train, test) row indices.
    All ``len(splits) * len(y_blocks)`` fits run in lockstep (:func:`_extract_components`). Each fit centres on
    its own training means, so the predictions equal independent ``PLSRegression(n_components, algorithm=...,
    tol=..., max_iter=...).fit(x[train], y[train]).predict(x[test])`` calls. Returns
    ``(predictions[split][block] (n_test, q_b), components used, warning texts)``.
    """
    _check_algorithm(algorithm, tol, max_iter)
    x = np.asarray(x, dtype=np.float64)
    n_train = len(splits[0][0])
    k, note = _check_n_components(n_components, n_train, x.shape[1])
    # The full-data products give every training cross-product by subtracting the held-out rows.
    centre = x.mean(axis=0)
    xc_all = x - centre
    y_centres = [np.asarray(y, dtype=np.float64).mean(axis=0) for y in y_blocks]
    yc_all = [np.asarray(y, dtype=np.float64) - c for y, c in zip(y_blocks, y_centres)]
    full_cross = [xc_all.T @ y for y in yc_all]
    problems = []
    for train, test in splits:
        x_test = xc_all[test]
        x_mean = -x_test.sum(axis=0) / len(train)  # training mean of the centred rows (their sum is zero)
        for y, y_centre, cross_all in zip(yc_all, y_centres, full_cross):
            y_test = y[test]
            y_mean = -y_test.sum(axis=0) / len(train)
            cross = cross_all - x_test.T @ y_test - len(train) * np.outer(x_mean, y_mean)
            problems.append(_PLSProblem(np.asarray(train), x_mean, y_mean + y_centre, cross, len(train), k, y, y_mean))
    notes = _extract_components(xc_all, problems, k, algorithm, tol, max_iter)
    if note:
        notes.insert(0, note)
    predictions: list[list[np.ndarray]] = []
    index = 0
    with _single_threaded_blas():
        for _, test in splits:
            x_test = xc_all[test]
            row = []
            for _ in y_blocks:
                row.append(problems[index].predict(x_test))
                index += 1
            predictions.append(row)
    used = min(problem.k for problem in problems)
    return predictions, used, notes


def pls_fit_predict(
    x_train: np.ndarray,
    y_train_blocks: Sequence[np.ndarray],
    x_test: np.ndarray,
    n_components: int = 25,
    *,
    algorithm: str = "nipals",
    tol: float = 1e-6,
    max_iter: int = 500,
) -> tuple[list[np.ndarray], int, list[str]]:
    """Fit PLS on ``x_train`` for each target block and predict ``x_test``; no (p x q) coefficient is formed.

    ``algorithm``, ``tol``, ``max_iter`` as :class:`PLSRegression`. Returns ``(predictions per block (n_test, q_b),
    components used, warning texts)``.
    """
    _check_algorithm(algorithm, tol, max_iter)
    x_train = _as_2d_float("x_train", x_train)
    x_test = _as_2d_float("x_test", x_test)
    k, note = _check_n_components(n_components, x_train.shape[0], x_train.shape[1])
    x_mean = x_train.mean(axis=0)
    xc = x_train - x_mean
    problems = []
    for y in y_train_blocks:
        y = _as_2d_float("y_train", y)
        y_mean = y.mean(axis=0)
        problem = _PLSProblem(None, np.zeros_like(x_mean), y_mean, xc.T @ (y - y_mean), x_train.shape[0], k, y, y_mean)
        problems.append(problem)
    notes = _extract_components(xc, problems, k, algorithm, tol, max_iter)
    if note:
        notes.insert(0, note)
    predictions = []
    for problem in problems:
        problem.x_mean = x_mean
        predictions.append(problem.predict(x_test))
    return predictions, min(problem.k for problem in problems), notes


# --------------------------------------------------------------------------------------------------- ridge


def default_ridge_alphas(gram_trace: float, n_features: int) -> np.ndarray:
    """The default penalty grid: :data:`RELATIVE_RIDGE_ALPHAS` times the mean eigenvalue ``tr(X^T X) / p``."""
    scale = gram_trace / max(n_features, 1)
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    return RELATIVE_RIDGE_ALPHAS * scale


def _check_alphas(alphas: Sequence[float] | np.ndarray) -> np.ndarray:
    alphas = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    if alphas.ndim != 1 or alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas <= 0):
        raise ConfigError(f"alphas must be a non-empty 1-D sequence of positive numbers, got {alphas!r}")
    return alphas


# ridge_gcv / ridge_path solvers: "primal" eigen-decomposes the p x p matrix X_c^T X_c, "dual" the n x n matrix
# X_c X_c^T; "auto" takes the dual when there are more features than training samples.
RIDGE_SOLVERS = ("auto", "primal", "dual")


@dataclass
class _RidgeBasis:
    """Eigen-decomposition of the centred training Gram matrix (primal ``X_c^T X_c`` or dual ``X_c X_c^T``).

    Both share the nonzero eigenvalues ``lambda_k`` of ``X_c = U diag(sqrt(lambda)) V^T``. ``rotated_cross`` is
    ``Z = V^T X_c^T Y_c`` in both (dual: ``sqrt(lambda) U^T Y_c``), which is all the GCV needs. Coefficients for a
    penalty are ``directions @ (weights / (lambda + alpha))``: primal ``directions = V``, ``weights = Z``; dual
    ``directions = X_c^T U`` (never formed: applied as ``X_c^T (U M)``), ``weights = U^T Y_c``.
    """

    eigenvalues: np.ndarray  # (k,), ascending, clipped at 0; k = p (primal) or n (dual)
    eigenvectors: np.ndarray  # V (p, p) primal, U (n, n) dual
    rotated_cross: np.ndarray  # Z = V^T X_c^T Y_c, (k, q)
    target_sq: np.ndarray  # ||y_c||^2 per target, (q,)
    n_samples: int
    x_mean: np.ndarray
    y_mean: np.ndarray
    solver: str = "primal"
    weights: np.ndarray | None = None  # dual only: U^T Y_c, (n, q)
    x_centred: np.ndarray | None = None  # dual only: X_c, (n, p)

    @property
    def n_features(self) -> int:
        return self.x_mean.shape[0]

    def coefficients(self, rotated: np.ndarray) -> np.ndarray:
        """Feature-space coefficients ``(p, m)`` of per-direction weights ``rotated`` ``(k, m)``."""
        if self.solver == "dual":
            return self.x_centred.T @ (self.eigenvectors @ rotated)
        return self.eigenvectors @ rotated

    def project(self, x_test: np.ndarray) -> np.ndarray:
        """Centred test features on the directions: ``(n_test, k)``."""
        if self.solver == "dual":
            return ((x_test - self.x_mean) @ self.x_centred.T) @ self.eigenvectors
        return (x_test - self.x_mean) @ self.eigenvectors

    @property
    def coef_weights(self) -> np.ndarray:
        return self.weights if self.solver == "dual" else self.rotated_cross


def _check_solver(solver: str, n_samples: int, n_features: int) -> str:
    if solver not in RIDGE_SOLVERS:
        raise ConfigError(f"solver must be one of {RIDGE_SOLVERS}, got {solver!r}")
    if solver == "auto":
        return "dual" if n_features > n_samples else "primal"
    return solver


def _ridge_basis(
    x_train: np.ndarray,
    y_train: np.ndarray,
    gram: np.ndarray | None = None,
    cross: np.ndarray | None = None,
    x_mean: np.ndarray | None = None,
    solver: str = "primal",
) -> _RidgeBasis:
    """One ``eigh`` of ``X_c^T X_c`` (primal; ``gram``/``cross`` may be passed precomputed, centred on ``x_mean``)
    or of ``X_c X_c^T`` (dual; ``gram``/``cross`` are not used)."""
    from scipy.linalg import eigh

    if x_mean is None:
        x_mean = x_train.mean(axis=0)
    y_mean = y_train.mean(axis=0)
    yc = y_train - y_mean
    target_sq = np.einsum("ij,ij->j", yc, yc)
    if solver == "dual":
        xc = x_train - x_mean
        kernel = xc @ xc.T
        with _single_threaded_blas():
            eigenvalues, eigenvectors = eigh(kernel, check_finite=False, driver="evd")
        eigenvalues = np.clip(eigenvalues, 0.0, None)
        weights = eigenvectors.T @ yc
        return _RidgeBasis(
            eigenvalues=eigenvalues,
            eigenvectors=eigenvectors,
            rotated_cross=np.sqrt(eigenvalues)[:, None] * weights,
            target_sq=target_sq,
            n_samples=x_train.shape[0],
            x_mean=x_mean,
            y_mean=y_mean,
            solver="dual",
            weights=weights,
            x_centred=xc,
        )
    if gram is None or cross is None:
        xc = x_train - x_mean
        gram = xc.T @ xc if gram is None else gram
        cross = xc.T @ yc if cross is None else cross
    with _single_threaded_blas():
        eigenvalues, eigenvectors = eigh(gram, check_finite=False, driver="evd")
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    return _RidgeBasis(
        eigenvalues=eigenvalues,
        eigenvectors=eigenvectors,
        rotated_cross=eigenvectors.T @ cross,
        target_sq=target_sq,
        n_samples=x_train.shape[0],
        x_mean=x_mean,
        y_mean=y_mean,
    )


def _gcv_table(basis: _RidgeBasis, alphas: np.ndarray) -> np.ndarray:
    """GCV error per alpha and target, ``(n_alphas, q)``.

    With ``X_c = U diag(sqrt(lambda)) V^T`` and ``Z = V^T X_c^T y_c`` the residual sum of squares is
    ``RSS(alpha) = |y_c|^2 - sum_k Z_k^2 (lambda_k + 2 alpha) / (lambda_k + alpha)^2`` and the hat matrix (with the
    unpenalised intercept) has trace ``1 + sum_k lambda_k / (lambda_k + alpha)``;
    ``GCV = n RSS / (n - tr H)^2``. The dual path has the whole basis ``U`` of the sample space, so it sums the
    same RSS without the cancellation of ``|y_c|^2 - ...``:
    ``RSS(alpha) = sum_k (alpha / (lambda_k + alpha))^2 (u_k^T y_c)^2`` (``lambda_k = 0`` off the kept directions);
    the two agree to the primal's rounding, which matters only where the fit nearly interpolates (tiny alpha, p > n).
    """
    lam = basis.eigenvalues[:, None]
    # Directions with numerically zero variance carry only rounding noise in Z: leave them out. The threshold scales
    # with the number of features on both paths, so primal and dual keep the same directions.
    keep = basis.eigenvalues > basis.eigenvalues.max(initial=0.0) * basis.n_features * np.finfo(float).eps
    if basis.solver == "dual":
        shrink = np.where(keep[:, None], alphas / (lam + alphas), 1.0) ** 2  # (n, A)
        rss = (basis.weights**2).T @ shrink  # (q, A)
    else:
        factors = np.where(keep[:, None], (lam + 2 * alphas) / (lam + alphas) ** 2, 0.0)  # (p, A)
        explained = (basis.rotated_cross**2).T @ factors  # (q, A)
        rss = np.clip(basis.target_sq[:, None] - explained, 0.0, None)
    dof = np.where(keep[:, None], lam / (lam + alphas), 0.0).sum(axis=0)  # (A,)
    n = basis.n_samples
    denominator = (n - 1.0 - dof) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        gcv = n * rss / np.where(denominator > 0, denominator, np.nan)
    return gcv.T


def _ridge_coefficients(basis: _RidgeBasis, alpha_per_target: np.ndarray) -> np.ndarray:
    """``(X_c^T X_c + alpha_j I)^{-1} X_c^T y_j`` for every target j, grouped by its alpha: (p, q)."""
    weights = basis.coef_weights
    coef = np.empty((basis.n_features, weights.shape[1]))
    for alpha in np.unique(alpha_per_target):
        columns = np.flatnonzero(alpha_per_target == alpha)
        scaled = weights[:, columns] / (basis.eigenvalues + alpha)[:, None]
        coef[:, columns] = basis.coefficients(scaled)
    return coef


def ridge_path(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    alphas: Sequence[float] | np.ndarray,
    *,
    solver: str = "auto",
) -> np.ndarray:
    """Ridge predictions for every alpha and every target from one eigen-decomposition: ``(n_alphas, n_test, q)``.

    Equal to ``sklearn.linear_model.Ridge(alpha).fit(x_train, y_train).predict(x_test)`` for each alpha (an
    unpenalised intercept; the penalty ``alpha |beta|^2`` on the sum of squared errors). ``solver`` as
    :func:`ridge_gcv`.
    """
    x_train = _as_2d_float("x_train", x_train)
    y_train = _as_2d_float("y_train", y_train)
    x_test = _as_2d_float("x_test", x_test)
    alphas = _check_alphas(alphas)
    solver = _check_solver(solver, *x_train.shape)
    basis = _ridge_basis(x_train, y_train, solver=solver)
    projected = basis.project(x_test)  # (n_test, k)
    weights = basis.coef_weights
    out = np.empty((alphas.size, x_test.shape[0], y_train.shape[1]))
    for i, alpha in enumerate(alphas):
        out[i] = projected @ (weights / (basis.eigenvalues + alpha)[:, None]) + basis.y_mean
    return out


@dataclass
class RidgeGCVResult:
    """Predictions at the selected penalty, the penalty (per target), and the GCV table (n_alphas, q)."""

    prediction: np.ndarray
    alpha: np.ndarray
    alphas: np.ndarray
    gcv: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    solver: str = "primal"  # the path that ran: "primal" (p x p eigen-decomposition) or "dual" (n x n)


def ridge_gcv(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    alphas: Sequence[float] | np.ndarray | None = None,
    *,
    alpha_per_target: bool = False,
    target_groups: np.ndarray | None = None,
    solver: str = "auto",
    _gram: np.ndarray | None = None,
    _cross: np.ndarray | None = None,
    _x_mean: np.ndarray | None = None,
) -> RidgeGCVResult:
    """Ridge regression with the penalty chosen by generalised cross-validation on the training set.

    Parameters
    ----------
    alphas:
        Penalty grid (absolute, scikit-learn's ``alpha``). ``None``: :func:`default_ridge_alphas` of the
        training features (30 values, 1e-5 .. 1e4 times the mean eigenvalue of ``X_c^T X_c``).
    alpha_per_target:
        Choose the penalty per target (minimum of its own GCV) instead of one penalty minimising the GCV summed
        over targets (the default, as scikit-learn's ``RidgeCV(alpha_per_target=False)`` that Brain-Score uses).
    target_groups:
        Integer label per target: one shared penalty per group (e.g. per time bin). Ignored when
        ``alpha_per_target``.
    solver:
        ``"primal"``: eigen-decompose the ``p x p`` matrix ``X_c^T X_c``; ``"dual"``: the ``n x n`` matrix
        ``X_c X_c^T`` (same nonzero eigenvalues; ``O(n^2 p + n^3)`` instead of ``O(n p^2 + p^3)`` time and
        ``n p`` instead of ``p^2`` memory); ``"auto"`` (default): dual when ``n_features > n_samples`` (training
        rows), else primal. Same GCV table, chosen penalty and predictions up to rounding; the result's
        ``solver`` names the path that ran. The private precomputed ``_gram``/``_cross`` serve the primal path
        only.

    Notes
    -----
    GCV (Golub, Heath & Wahba 1979) is leave-one-out cross-validation with each leverage ``h_ii`` replaced by
    their mean ``tr(H)/n``; it needs only the eigenvalues and ``Z = V^T X^T y``, so all penalties and targets
    cost ``O(n_alphas p q)`` after the decomposition. scikit-learn's ``RidgeCV`` computes exact leave-one-out
    errors instead, which needs the ``n x p`` left singular vectors and ``O(n_alphas n p q)`` work; the two
    criteria usually select the same or a neighbouring grid value.
    """
    x_train = _as_2d_float("x_train", x_train)
    y_train = _as_2d_float("y_train", y_train)
    x_test = _as_2d_float("x_test", x_test)
    solver = _check_solver(solver, *x_train.shape)
    basis = _ridge_basis(x_train, y_train, gram=_gram, cross=_cross, x_mean=_x_mean, solver=solver)
    if alphas is None:
        alphas = default_ridge_alphas(float(basis.eigenvalues.sum()), x_train.shape[1])
    alphas = _check_alphas(alphas)
    table = _gcv_table(basis, alphas)  # (A, q)
    q = y_train.shape[1]
    if alpha_per_target:
        chosen = alphas[np.argmin(np.where(np.isnan(table), np.inf, table), axis=0)]
    else:
        groups = np.zeros(q, dtype=int) if target_groups is None else np.asarray(target_groups)
        chosen = np.empty(q)
        for group in np.unique(groups):
            columns = groups == group
            total = np.nansum(table[:, columns], axis=1)
            chosen[columns] = alphas[int(np.argmin(total))]
    coef = _ridge_coefficients(basis, chosen)
    prediction = (x_test - basis.x_mean) @ coef + basis.y_mean
    return RidgeGCVResult(
        prediction=prediction,
        alpha=chosen,
        alphas=alphas,
        gcv=table,
        coef=coef,
        intercept=basis.y_mean - basis.x_mean @ coef,
        solver=basis.solver,
    )


def least_squares_fit_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """Ordinary least squares with intercept (``sklearn.linear_model.LinearRegression``): ``(n_test, q)``.

    Solved by ``scipy.linalg.lstsq`` on the centred features; the minimum-norm solution when the features are
    rank-deficient (more features than training samples), as scikit-learn's.
    """
    from scipy.linalg import lstsq

    x_train = _as_2d_float("x_train", x_train)
    y_train = _as_2d_float("y_train", y_train)
    x_test = _as_2d_float("x_test", x_test)
    x_mean = x_train.mean(axis=0)
    y_mean = y_train.mean(axis=0)
    coef, *_ = lstsq(x_train - x_mean, y_train - y_mean, check_finite=False)
    return (x_test - x_mean) @ coef + y_mean


def ridge_cross_validated(
    x: np.ndarray,
    y: np.ndarray,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    alphas: Sequence[float] | np.ndarray | None = None,
    **options: Any,
) -> np.ndarray:
    """Held-out predictions of :func:`ridge_gcv` over ``splits``, the ridge counterpart of :func:`pls_cross_validated`.

    ``x`` (n, p) and ``y`` (n, q) hold all stimuli; ``splits`` are (train, test) row indices (e.g.
    ``sklearn.model_selection.KFold(8, shuffle=True, random_state=seed).split(x)``). Each split's penalty is chosen
    by GCV on its own training rows (``alphas`` and ``options`` as in :func:`ridge_gcv`). Returns ``(n, q)``: each
    row predicted by the fit that held it out; NaN for rows no split holds out. A row held out twice is an error.
    """
    x = _as_2d_float("x", x)
    y = _as_2d_float("y", y)
    if x.shape[0] != y.shape[0]:
        raise ConfigError(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
    prediction = np.full(y.shape, np.nan)
    seen = np.zeros(x.shape[0], dtype=bool)
    for train, test in splits:
        train, test = np.asarray(train), np.asarray(test)
        if seen[test].any():
            raise ConfigError("splits hold some rows out more than once; give disjoint test sets")
        seen[test] = True
        prediction[test] = ridge_gcv(x[train], y[train], x[test], alphas, **options).prediction
    return prediction

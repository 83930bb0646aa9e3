"""PLS (scikit-learn's NIPALS and its converged limit) / ridge / least squares against scikit-learn fitted on the
same data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.cross_decomposition import PLSRegression as SklearnPLS
from sklearn.linear_model import LinearRegression, Ridge

from neuromodels.analysis.regression import (
    PLSRegression,
    least_squares_fit_predict,
    pls_cross_validated,
    pls_fit_predict,
    ridge_gcv,
    ridge_path,
)
from neuromodels.errors import ConfigError, DataFormatError


def _problem(n: int, p: int, q: int, seed: int = 0, offset: float = 2.0):
    """Correlated features with a non-zero mean and targets linear in them plus noise."""
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((p, p)) * 0.3
    x = rng.standard_normal((n, p)) @ mixing + offset
    x_test = rng.standard_normal((40, p)) @ mixing + offset
    y = x @ (0.1 * rng.standard_normal((p, q))) + rng.standard_normal((n, q))
    return x, y, x_test


def _close_singular_values(n: int, p: int, q: int, gap: float = 2e-3, seed: int = 0):
    """Centred-orthonormal features Q (scaled) and targets Q_m diag(s) V^T + noise, ``s = 1, 1 - gap, 1 - 2 gap,
    ...``: the cross-product X^T Y has singular values 0.2 % apart, so NIPALS converges slowly (the power method's
    rate is the squared ratio of the top two) and scikit-learn's default stop (tol=1e-6) is far from converged."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p))
    basis, _ = np.linalg.qr(x - x.mean(axis=0))
    m = min(p, q)
    right = np.linalg.qr(rng.standard_normal((q, m)))[0]
    y = np.sqrt(n) * basis[:, :m] @ np.diag(1.0 - gap * np.arange(m)) @ right.T + 0.3 * rng.standard_normal((n, q))
    x_test = x[:40] + 0.1 * rng.standard_normal((40, p))
    return x + 3.0, y + 1.0, x_test + 3.0


def _converged_sklearn(n_components: int) -> SklearnPLS:
    # scikit-learn's NIPALS at (numerical) convergence; its default tol=1e-6 on the squared weight change stops
    # early (predictions ~1e-3..1e-2 away on these data, see PLSRegression's notes).
    return SklearnPLS(n_components, scale=False, tol=1e-20, max_iter=100_000)


@pytest.mark.parametrize("shape", [(200, 50, 20), (120, 30, 45), (576, 300, 50)], ids=["q<p", "q>p", "real-shaped"])
def test_pls_predictions_equal_converged_sklearn(shape):
    n, p, q = shape
    x, y, x_test = _problem(n, p, q)
    ours = PLSRegression(25, algorithm="exact").fit(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = _converged_sklearn(25).fit(x, y)
    expected = peer.predict(x_test)
    scale = np.abs(expected).max()
    assert np.abs(ours.predict(x_test) - expected).max() <= 1e-6 * scale
    assert np.abs(ours.predict(x) - peer.predict(x)).max() <= 1e-6 * scale
    assert ours.coef_.shape == peer.coef_.shape
    # the fitted components, signs included (scikit-learn flips each weight's largest entry positive)
    np.testing.assert_allclose(ours.x_weights_, peer.x_weights_, atol=1e-5)
    np.testing.assert_allclose(ours.x_loadings_, peer.x_loadings_, atol=1e-5 * np.abs(peer.x_loadings_).max())


def test_pls_equals_sklearn_exact_singular_vector_path():
    """scikit-learn's internal SVD weight step is NIPALS' limit: agreement to rounding."""
    x, y, x_test = _problem(300, 80, 30, seed=3)
    peer = SklearnPLS(25, scale=False)
    peer.algorithm = "svd"  # not a constructor parameter of PLSRegression; read by _PLS.fit
    try:
        peer.fit(x, y)
    except Exception as exc:  # noqa: BLE001 pragma: no cover - depends on scikit-learn internals
        pytest.skip(f"scikit-learn's svd path is not reachable: {exc}")
    ours = PLSRegression(25, algorithm="exact").fit(x, y)
    scale = np.abs(peer.predict(x_test)).max()
    assert np.abs(ours.predict(x_test) - peer.predict(x_test)).max() <= 1e-10 * scale
    np.testing.assert_allclose(ours.x_weights_, peer.x_weights_, atol=1e-10)


@pytest.mark.parametrize("algorithm", ["nipals", "exact"])
def test_pls1_equals_default_sklearn(algorithm):
    """With one target scikit-learn needs a single power step, so even its defaults are exact."""
    x, y, x_test = _problem(150, 40, 1, seed=5)
    peer = SklearnPLS(25, scale=False).fit(x, y[:, 0])
    ours = PLSRegression(25, algorithm=algorithm).fit(x, y[:, 0])
    np.testing.assert_allclose(ours.predict(x_test)[:, 0], peer.predict(x_test), rtol=0, atol=1e-10)
    assert ours.n_iter_ == ([1] * 25 if algorithm == "nipals" else [])


@pytest.mark.parametrize("shape", [(200, 60, 20), (120, 15, 40)], ids=["q<p", "q>p"])
def test_both_algorithms_equal_their_sklearn_runs_on_close_singular_values(shape):
    """algorithm="nipals" equals scikit-learn's defaults (tol=1e-6, max_iter=500: what Brain-Score runs), iteration
    counts included; algorithm="exact" equals scikit-learn run to convergence; the two scikit-learn runs differ by
    ~1e-2 here, so each equality picks out its own algorithm."""
    x, y, x_test = _close_singular_values(*shape)
    default = SklearnPLS(10, scale=False).fit(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converged = _converged_sklearn(10).fit(x, y)
    nipals = PLSRegression(10).fit(x, y)
    exact = PLSRegression(10, algorithm="exact").fit(x, y)
    scale = np.abs(default.predict(x_test)).max()
    assert np.abs(default.predict(x_test) - converged.predict(x_test)).max() > 1e-3 * scale
    assert nipals.n_iter_ == list(default.n_iter_) and max(nipals.n_iter_) > 50
    assert np.abs(nipals.predict(x_test) - default.predict(x_test)).max() <= 1e-6 * scale  # measured ~2e-15
    np.testing.assert_allclose(nipals.x_weights_, default.x_weights_, rtol=0, atol=1e-9)
    assert np.abs(exact.predict(x_test) - converged.predict(x_test)).max() <= 1e-6 * scale  # measured ~1e-9


def test_nipals_iteration_limit_and_tolerance_are_scikit_learns():
    """Other tol / max_iter: the same iterations; hitting max_iter keeps the last iterate and warns, as
    scikit-learn (ConvergenceWarning 'Maximum number of iterations reached')."""
    x, y, x_test = _close_singular_values(200, 60, 20, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = SklearnPLS(8, scale=False, tol=1e-9, max_iter=40).fit(x, y)
    with pytest.warns(RuntimeWarning, match="reached max_iter=40"):
        ours = PLSRegression(8, tol=1e-9, max_iter=40).fit(x, y)
    assert ours.n_iter_ == list(peer.n_iter_) and 40 in ours.n_iter_
    scale = np.abs(peer.predict(x_test)).max()
    assert np.abs(ours.predict(x_test) - peer.predict(x_test)).max() <= 1e-9 * scale
    with pytest.raises(ConfigError, match="algorithm"):
        PLSRegression(5, algorithm="svd").fit(x, y)
    with pytest.raises(ConfigError, match="max_iter"):
        PLSRegression(5, max_iter=0).fit(x, y)


def test_nipals_starts_at_the_first_non_constant_target():
    """scikit-learn zeroes target columns that are all below 10 eps and starts NIPALS from the first remaining
    column; a constant first neuroid must not become the start vector."""
    x, y, x_test = _close_singular_values(150, 30, 10, seed=2)
    y[:, 0] = 5.0
    y[:, 3] = -2.0
    peer = SklearnPLS(6, scale=False).fit(x, y)
    ours = PLSRegression(6).fit(x, y)
    assert ours.n_iter_ == list(peer.n_iter_)
    scale = np.abs(peer.predict(x_test)).max()
    assert np.abs(ours.predict(x_test) - peer.predict(x_test)).max() <= 1e-9 * scale


@pytest.mark.parametrize("algorithm", ["nipals", "exact"])
def test_pls_cross_validated_equals_independent_fits(algorithm):
    x, y, _ = _problem(160, 40, 12, seed=7)
    y2 = y[:, ::-1] ** 2
    rng = np.random.default_rng(0)
    splits = [(np.sort(perm[:140]), np.sort(perm[140:])) for perm in (rng.permutation(160) for _ in range(3))]
    predictions, used, notes = pls_cross_validated(x, [y, y2], splits, 10, algorithm=algorithm)
    assert used == 10 and notes == []
    for s, (train, test) in enumerate(splits):
        for b, target in enumerate((y, y2)):
            expected = PLSRegression(10, algorithm=algorithm).fit(x[train], target[train]).predict(x[test])
            np.testing.assert_allclose(predictions[s][b], expected, rtol=0, atol=1e-9 * np.abs(expected).max())
    (single,), _, _ = pls_fit_predict(x[splits[0][0]], [y[splits[0][0]]], x[splits[0][1]], 10, algorithm=algorithm)
    np.testing.assert_allclose(single, predictions[0][0], rtol=0, atol=1e-9 * np.abs(single).max())


def test_more_components_than_features_caps_with_warning():
    x, y, x_test = _problem(100, 8, 5)
    with pytest.warns(RuntimeWarning, match="exceeds min"):
        ours = PLSRegression(25, algorithm="exact").fit(x, y)
    assert ours.n_components_ == 8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = _converged_sklearn(8).fit(x, y)
    expected = peer.predict(x_test)
    np.testing.assert_allclose(ours.predict(x_test), expected, atol=1e-7 * np.abs(expected).max())
    with pytest.raises(ValueError):  # what scikit-learn itself does
        SklearnPLS(25, scale=False).fit(x, y)


@pytest.mark.parametrize("algorithm", ["nipals", "exact"])
def test_rank_deficient_features_stop_early_with_finite_predictions(algorithm):
    rng = np.random.default_rng(2)
    latent = rng.standard_normal((120, 4))
    x = latent @ rng.standard_normal((4, 30))  # rank 4 in 30 columns
    y = latent @ rng.standard_normal((4, 6)) + 0.1 * rng.standard_normal((120, 6))
    with pytest.warns(RuntimeWarning, match="stopped after 4 of 10"):
        ours = PLSRegression(10, algorithm=algorithm).fit(x, y)
    assert ours.n_components_ == 4
    prediction = ours.predict(x)
    assert np.all(np.isfinite(prediction))
    np.testing.assert_allclose(prediction, PLSRegression(4, algorithm=algorithm).fit(x, y).predict(x), atol=1e-9)


def test_pls_rejects_nan_features():
    x, y, x_test = _problem(50, 10, 3)
    x[3, 4] = np.nan
    with pytest.raises(DataFormatError, match="finite"):
        PLSRegression(5).fit(x, y)
    with pytest.raises(DataFormatError, match="finite"):
        pls_fit_predict(x, [y], x_test, 5)


@pytest.mark.parametrize("shape", [(150, 40, 7), (60, 90, 5)], ids=["n>p", "p>n"])
def test_ridge_path_equals_sklearn_ridge_for_every_alpha(shape):
    n, p, q = shape
    x, y, x_test = _problem(n, p, q, seed=11)
    alphas = np.logspace(-2, 4, 7)
    path = ridge_path(x, y, x_test, alphas)
    assert path.shape == (7, x_test.shape[0], q)
    for i, alpha in enumerate(alphas):
        expected = Ridge(alpha=alpha).fit(x, y).predict(x_test)
        np.testing.assert_allclose(path[i], expected, rtol=0, atol=1e-6 * np.abs(expected).max())


def _brute_force_gcv(x, y, alpha):
    """GCV from the explicit hat matrix (intercept unpenalised): n RSS / (n - tr H)^2 per target."""
    n = x.shape[0]
    xc = x - x.mean(axis=0)
    hat = np.full((n, n), 1.0 / n) + xc @ np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T)
    residual = y - hat @ y
    return n * (residual**2).sum(axis=0) / (n - np.trace(hat)) ** 2


def test_ridge_gcv_table_and_choice_equal_the_explicit_hat_matrix():
    x, y, x_test = _problem(60, 12, 4, seed=13)
    alphas = np.logspace(-3, 3, 13)
    fit = ridge_gcv(x, y, x_test, alphas)
    expected = np.stack([_brute_force_gcv(x, y, a) for a in alphas])
    np.testing.assert_allclose(fit.gcv, expected, rtol=1e-8)
    shared = alphas[np.argmin(expected.sum(axis=1))]
    # exact here and below: a choice among grid values; the best GCV beats the next by >= 8.7e-4 (relative), far
    # beyond the 1e-8 at which the two GCV computations agree
    assert np.all(fit.alpha == shared)
    np.testing.assert_allclose(fit.prediction, Ridge(alpha=shared).fit(x, y).predict(x_test), atol=1e-8)
    per_target = ridge_gcv(x, y, x_test, alphas, alpha_per_target=True)
    np.testing.assert_array_equal(per_target.alpha, alphas[np.argmin(expected, axis=0)])
    for j in range(y.shape[1]):
        reference = Ridge(alpha=per_target.alpha[j]).fit(x, y[:, j]).predict(x_test)
        np.testing.assert_allclose(per_target.prediction[:, j], reference, atol=1e-8)


def test_ridge_default_grid_is_scale_invariant():
    x, y, x_test = _problem(100, 20, 3, seed=17)
    base = ridge_gcv(x, y, x_test)
    scaled = ridge_gcv(1000.0 * x, y, 1000.0 * x_test)
    assert base.alphas.size == 30
    np.testing.assert_allclose(scaled.alpha, 1e6 * base.alpha, rtol=1e-9)
    np.testing.assert_allclose(scaled.prediction, base.prediction, atol=1e-8)


def test_least_squares_equals_sklearn_linear_regression():
    x, y, x_test = _problem(100, 20, 6, seed=19)
    expected = LinearRegression().fit(x, y).predict(x_test)
    np.testing.assert_allclose(least_squares_fit_predict(x, y, x_test), expected, atol=1e-9)


# ------------------------------------------------------------------ ridge: dual (n x n) path when p > n
# Primal and dual are different arithmetic (eigh of X_c^T X_c vs of X_c X_c^T), so they are compared by meaning:
# predictions and coefficients to 1e-12 of their largest value (measured <= 2e-14), the GCV table to 1e-6 relative
# on these near-switch shapes (measured <= 2e-8; the primal's RSS = |y|^2 - explained loses digits by cancellation
# at the smallest alphas when p > n, the dual sums the residual directly), and the chosen grid position exactly
# (the best summed GCV beats the next by > 1e-3 relative, asserted; far beyond either error).


def _grid_position(fit):
    """Index of each chosen penalty in the fit's own grid."""
    return np.argmin(np.abs(np.log(fit.alphas[:, None] / fit.alpha)), axis=0)


@pytest.mark.parametrize("shape", [(80, 60), (80, 79), (80, 80), (80, 81), (80, 100)])
def test_ridge_gcv_primal_and_dual_agree_near_the_switch(shape):
    n, p = shape
    x, y, x_test = _problem(n, p, 5, seed=23)
    primal = ridge_gcv(x, y, x_test, solver="primal")
    dual = ridge_gcv(x, y, x_test, solver="dual")
    auto = ridge_gcv(x, y, x_test)
    assert (primal.solver, dual.solver) == ("primal", "dual")
    assert auto.solver == ("dual" if p > n else "primal")  # documented rule: dual iff n_features > n_samples
    summed = np.sort(primal.gcv.sum(axis=1))
    assert summed[1] - summed[0] > 1e-3 * summed[0]
    np.testing.assert_allclose(dual.alphas, primal.alphas, rtol=1e-12)  # grid from tr(X_c^T X_c) = tr(X_c X_c^T)
    assert np.array_equal(_grid_position(dual), _grid_position(primal))
    np.testing.assert_allclose(dual.gcv, primal.gcv, rtol=1e-6)
    scale = np.abs(primal.prediction).max()
    np.testing.assert_allclose(dual.prediction, primal.prediction, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(dual.coef, primal.coef, rtol=0, atol=1e-12 * np.abs(primal.coef).max())
    np.testing.assert_allclose(dual.intercept, primal.intercept, rtol=0, atol=1e-12 * np.abs(primal.intercept).max())
    # against scikit-learn at the chosen penalty
    expected = Ridge(alpha=primal.alpha[0]).fit(x, y).predict(x_test)
    np.testing.assert_allclose(dual.prediction, expected, rtol=0, atol=1e-8 * scale)


def test_ridge_gcv_dual_per_target_and_groups_equal_primal():
    x, y, x_test = _problem(50, 120, 6, seed=29)
    alphas = np.logspace(-1, 5, 13)  # explicit grid: the chosen values are grid entries, compared exactly
    for kwargs in ({"alpha_per_target": True}, {"target_groups": np.array([0, 0, 1, 1, 2, 2])}):
        primal = ridge_gcv(x, y, x_test, alphas, solver="primal", **kwargs)
        dual = ridge_gcv(x, y, x_test, alphas, solver="dual", **kwargs)
        np.testing.assert_array_equal(dual.alpha, primal.alpha)
        assert np.unique(dual.alpha).size > 1  # the penalties really differ between targets/groups
        np.testing.assert_allclose(dual.prediction, primal.prediction, atol=1e-12 * np.abs(primal.prediction).max())


def test_ridge_gcv_dual_table_equals_the_explicit_hat_matrix():
    x, y, x_test = _problem(40, 150, 3, seed=31)
    alphas = np.logspace(-2, 4, 13)
    fit = ridge_gcv(x, y, x_test, alphas)
    assert fit.solver == "dual"
    expected = np.stack([_brute_force_gcv(x, y, a) for a in alphas])
    np.testing.assert_allclose(fit.gcv, expected, rtol=1e-8)


@pytest.mark.parametrize("solver", ["primal", "dual"])
def test_ridge_path_both_solvers_equal_sklearn_ridge(solver):
    x, y, x_test = _problem(60, 90, 4, seed=37)
    alphas = np.logspace(-2, 4, 7)
    path = ridge_path(x, y, x_test, alphas, solver=solver)
    for i, alpha in enumerate(alphas):
        expected = Ridge(alpha=alpha).fit(x, y).predict(x_test)
        np.testing.assert_allclose(path[i], expected, rtol=0, atol=1e-6 * np.abs(expected).max())


def test_ridge_gcv_large_feature_count_runs_the_dual_path():
    """640 stimuli x 20,000 features (CNN-map scale): the primal p x p matrix alone would be 3.2 GB."""
    rng = np.random.default_rng(41)
    x = rng.standard_normal((640, 20_000))
    x_test = rng.standard_normal((20, 20_000))
    w = rng.standard_normal((20_000, 3)) / np.sqrt(20_000)
    y = x @ w + 0.5 * rng.standard_normal((640, 3))
    fit = ridge_gcv(x, y, x_test)
    assert fit.solver == "dual" and fit.coef.shape == (20_000, 3)
    assert fit.alphas[0] < fit.alpha[0] < fit.alphas[-1]  # an interior GCV minimum
    expected = Ridge(alpha=fit.alpha[0]).fit(x, y).predict(x_test)
    np.testing.assert_allclose(fit.prediction, expected, rtol=0, atol=1e-8 * np.abs(expected).max())


def test_ridge_solver_is_checked():
    x, y, x_test = _problem(30, 10, 2)
    with pytest.raises(ConfigError, match="solver"):
        ridge_gcv(x, y, x_test, solver="svd")
    with pytest.raises(ConfigError, match="solver"):
        ridge_path(x, y, x_test, [1.0], solver="eigen")

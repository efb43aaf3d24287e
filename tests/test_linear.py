"""jaxreg.linear against scikit-learn, closed forms and independent per-fold runs."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import ElasticNet, Lasso, enet_path, lasso_path

from jaxreg import cv, linear

TIGHT = {"tol": 1e-10, "max_iter": 100_000, "dtype": jnp.float64}


def _gaussian(n, p, *, correlation=0.0, seed=0):
    rng = np.random.default_rng(seed)
    # AR(1)-style correlated columns: corr(x_i, x_j) = correlation^|i-j|
    z = rng.standard_normal((n, p))
    x = np.empty_like(z)
    x[:, 0] = z[:, 0]
    for j in range(1, p):
        x[:, j] = correlation * x[:, j - 1] + np.sqrt(1 - correlation**2) * z[:, j]
    w = np.zeros(p)
    w[: min(5, p)] = rng.choice([-2.0, 2.0], size=min(5, p))
    y = x @ w + rng.standard_normal(n) + 1.5
    return x, y


DATASETS = {
    "gaussian": lambda: _gaussian(80, 20),
    "correlated": lambda: _gaussian(60, 30, correlation=0.8, seed=1),
    "wide": lambda: _gaussian(30, 60, seed=2),
    # p > 2n: the working set is capped below p (its Gram is formed per round)
    "very_wide": lambda: _gaussian(20, 100, seed=5),
    "diabetes": lambda: load_diabetes(return_X_y=True),
}


def objective(x, y, w, b, lam, rho):
    """scikit-learn's elastic-net objective, written out in numpy."""
    r = y - x @ w - b
    return r @ r / (2 * len(y)) + lam * (rho * np.abs(w).sum() + 0.5 * (1 - rho) * w @ w)


def sklearn_path(x, y, rho, num, eps):
    xc, yc = x - x.mean(0), y - y.mean()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alphas, coefs, _ = enet_path(
            xc, yc, l1_ratio=rho, alphas=num, eps=eps, tol=1e-12, max_iter=200_000
        )
    return alphas, coefs.T


def numpy_gap(x, y, w, lam, rho):
    """The duality gap of the (centred) problem in objective units, formulation A."""
    n = len(y)
    r = y - x @ w
    alpha, beta = lam * rho * n, lam * (1 - rho) * n
    xta = x.T @ r - beta * w
    scale = min(1.0, alpha / np.max(np.abs(xta)))
    primal = 0.5 * (r @ r + beta * w @ w) + alpha * np.abs(w).sum()
    dual = -0.5 * scale**2 * (r @ r + beta * w @ w) + scale * r @ y
    return (primal - dual) / n


@pytest.mark.parametrize("rho", [1.0, 0.5])
@pytest.mark.parametrize("name", list(DATASETS))
def test_matches_sklearn_enet_path(name, rho):
    x, y = DATASETS[name]()
    eps = 1e-2 if "wide" in name else 1e-3
    alphas, sk_coef = sklearn_path(x, y, rho, 30, eps)
    res = linear.path(x, y, l1_ratio=rho, lambdas=30, eps=eps, **TIGHT)
    np.testing.assert_allclose(res.lambdas, alphas, rtol=1e-12)
    assert res.coef.shape == (30, x.shape[1]) and res.coef.dtype == np.float64
    xc, yc = x - x.mean(0), y - y.mean()
    ours = [objective(x, y, res.coef[k], res.intercept[k], alphas[k], rho) for k in range(30)]
    theirs = [objective(xc, yc, sk_coef[k], 0.0, alphas[k], rho) for k in range(30)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    tolerance = TIGHT["tol"] * (yc @ yc) / len(yc)
    assert res.converged.all()
    assert np.all(res.dual_gap <= tolerance)
    # the reported gap is the gap of the returned coefficients, in sklearn's units
    gaps = [numpy_gap(xc, yc, res.coef[k], alphas[k], rho) for k in range(30)]
    np.testing.assert_allclose(res.dual_gap, gaps, rtol=1e-3, atol=1e-3 * tolerance)
    # intercept of the centred fit
    np.testing.assert_allclose(res.intercept, y.mean() - res.coef @ x.mean(0), rtol=1e-10)


@pytest.mark.parametrize("rho", [1.0, 0.7])
def test_intercepts_match_sklearn_estimator(rho):
    x, y = load_diabetes(return_X_y=True)
    res = linear.path(x, y, l1_ratio=rho, lambdas=20, **TIGHT)
    for k in (0, 5, 12, 19):
        if rho == 1.0:
            model = Lasso(alpha=res.lambdas[k], tol=1e-12, max_iter=200_000)
        else:
            model = ElasticNet(alpha=res.lambdas[k], l1_ratio=rho, tol=1e-12, max_iter=200_000)
        model.fit(x, y)
        np.testing.assert_allclose(res.coef[k], model.coef_, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(res.intercept[k], model.intercept_, rtol=1e-7)


def test_without_intercept_is_lasso_path_on_raw_data():
    x, y = _gaussian(80, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alphas, coefs, _ = lasso_path(x, y, alphas=30, tol=1e-12, max_iter=200_000)
    res = linear.path(x, y, lambdas=30, fit_intercept=False, **TIGHT)
    np.testing.assert_allclose(res.lambdas, alphas, rtol=1e-12)
    np.testing.assert_array_equal(res.intercept, 0.0)
    ours = [objective(x, y, res.coef[k], 0.0, alphas[k], 1.0) for k in range(30)]
    theirs = [objective(x, y, coefs[:, k], 0.0, alphas[k], 1.0) for k in range(30)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_wide_elastic_net_with_more_nonzeros_than_working_slots():
    # n=20, p=300: 40 working-set slots, ~85 nonzeros at the end of the path; slots rotate
    x, y = _gaussian(20, 300, seed=5)
    alphas, sk_coef = sklearn_path(x, y, 0.1, 5, 0.1)
    res = linear.path(x, y, l1_ratio=0.1, lambdas=5, eps=0.1, precompute=False, **TIGHT)
    assert res.converged.all() and (res.coef[-1] != 0).sum() > 40
    xc, yc = x - x.mean(0), y - y.mean()
    ours = [objective(xc, yc, res.coef[k], 0.0, alphas[k], 0.1) for k in range(5)]
    theirs = [objective(xc, yc, sk_coef[k], 0.0, alphas[k], 0.1) for k in range(5)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_gram_and_residual_forms_agree():
    x, y = _gaussian(80, 20)
    gram = linear.path(x, y, lambdas=30, precompute=True, **TIGHT)
    residual = linear.path(x, y, lambdas=30, precompute=False, **TIGHT)
    np.testing.assert_allclose(gram.coef, residual.coef, atol=1e-6)


def test_ridge_closed_form():
    x, y = _gaussian(80, 20)
    grid = np.array([0.01, 1.0, 0.1, 10.0])
    res = linear.path(x, y, l1_ratio=0.0, lambdas=grid, **TIGHT)
    np.testing.assert_array_equal(res.lambdas, np.sort(grid)[::-1])
    xc, yc = x - x.mean(0), y - y.mean()
    n, p = x.shape
    for k, lam in enumerate(res.lambdas):
        exact = np.linalg.solve(xc.T @ xc + n * lam * np.eye(p), xc.T @ yc)
        np.testing.assert_allclose(res.coef[k], exact, rtol=1e-6, atol=1e-8)
    assert res.converged.all()


def test_explicit_grid_is_sorted_descending_and_matches_default():
    x, y = load_diabetes(return_X_y=True)
    default = linear.path(x, y, lambdas=20, **TIGHT)
    given = linear.path(x, y, lambdas=default.lambdas[::-1], **TIGHT)
    np.testing.assert_array_equal(given.lambdas, default.lambdas)
    np.testing.assert_allclose(given.coef, default.coef, atol=1e-8)


def test_float32_default_is_close_and_x64_stays_off():
    x, y = load_diabetes(return_X_y=True)
    assert not jax.config.jax_enable_x64
    single = linear.path(x, y, lambdas=20)
    assert single.coef.dtype == np.float32
    double = linear.path(x, y, lambdas=20, dtype=jnp.float64)
    assert double.coef.dtype == np.float64
    # the scoped x64 of the float64 call did not leak
    assert not jax.config.jax_enable_x64 and jnp.zeros(1).dtype == jnp.float32
    assert single.converged.all()
    lam = double.lambdas
    f32 = [objective(x, y, single.coef[k], single.intercept[k], lam[k], 1.0) for k in range(20)]
    f64 = [objective(x, y, double.coef[k], double.intercept[k], lam[k], 1.0) for k in range(20)]
    np.testing.assert_allclose(f32, f64, rtol=1e-4)


def test_float32_warns_below_its_precision():
    x, y = load_diabetes(return_X_y=True)
    with pytest.warns(UserWarning, match="float64"):
        linear.path(x, y, lambdas=3, tol=1e-9, max_iter=5, dtype=jnp.float32)


@pytest.mark.parametrize("precompute", [True, False])
def test_new_hyperparameters_data_sizes_and_folds_compile_nothing(precompute, compile_counter):
    x, y = _gaussian(80, 20)
    settings = {"lambdas": 10, "precompute": precompute, "dtype": jnp.float64}
    linear.cv_path(x, y, folds=4, l1_ratio=0.5, tol=1e-6, **settings)
    compiled_before = len(compile_counter)
    # the Gram form's program sees p, not n; folds run the full data's program
    rows = slice(70) if precompute else slice(None)
    other_rows = linear.path(x[rows], y[rows], l1_ratio=0.9, tol=1e-7, eps=0.05, **settings)
    again = linear.cv_path(x + 1.0, y, folds=4, l1_ratio=0.7, tol=1e-7, **settings)
    assert len(compile_counter) == compiled_before
    assert other_rows.converged.all() and again.path.converged.all()


def test_cv_path_against_independent_fold_runs():
    x, y = _gaussian(80, 20, seed=3)
    fold_ids = np.asarray(cv.kfold(80, 4, key=jax.random.key(7)))
    res = linear.cv_path(x, y, folds=fold_ids, l1_ratio=0.8, lambdas=15, **TIGHT)
    full = linear.path(x, y, l1_ratio=0.8, lambdas=15, **TIGHT)
    np.testing.assert_allclose(res.lambdas, full.lambdas)
    mse = np.empty((4, 15))
    for f in range(4):
        train, valid = fold_ids != f, fold_ids == f
        fold = linear.path(x[train], y[train], l1_ratio=0.8, lambdas=full.lambdas, **TIGHT)
        predictions = x[valid] @ fold.coef.T + fold.intercept
        mse[f] = np.mean((y[valid][:, None] - predictions) ** 2, axis=0)
    np.testing.assert_allclose(res.fold_losses, mse, rtol=1e-6)
    summary = cv.summarize(mse, full.lambdas, weights=np.bincount(fold_ids))
    assert res.summary.index_1se == summary.index_1se
    assert res.summary.index_min == summary.index_min
    np.testing.assert_allclose(res.summary.cvm, summary.cvm, rtol=1e-6)
    assert res.lambda_selected == summary.lambda_1se == res.lambdas[res.index_selected]
    np.testing.assert_allclose(res.coef, full.coef[summary.index_1se], atol=1e-10)
    np.testing.assert_allclose(res.intercept, full.intercept[summary.index_1se], atol=1e-10)
    np.testing.assert_array_equal(res.nonzeros, (full.coef != 0).sum(axis=1))


def test_cv_path_select_min_and_integer_folds():
    x, y = _gaussian(80, 20, seed=4)
    res = linear.cv_path(x, y, folds=4, key=jax.random.key(1), lambdas=15, select="min", **TIGHT)
    assert res.lambda_selected == res.summary.lambda_min
    assert res.lambda_selected <= res.summary.lambda_1se
    np.testing.assert_array_equal(res.fold_ids, np.asarray(cv.kfold(80, 4, key=jax.random.key(1))))
    renamed = {"lambda_": "lambda_selected", "fold_mse": "fold_losses", "folds": "fold_ids"}
    for old, new in renamed.items():
        with pytest.warns(DeprecationWarning, match=new):
            np.testing.assert_array_equal(getattr(res, old), getattr(res, new))
    # the 5 true features are found at λ_min
    assert set(np.flatnonzero(res.coef)) >= set(range(5))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"X": np.full((10, 3), np.nan)}, ValueError, "X"),
        ({"y": np.ones(9)}, ValueError, "y"),
        ({"y": np.full(10, np.inf)}, ValueError, "y"),
        ({"X": np.ones(10)}, ValueError, "X"),
        ({"l1_ratio": 1.5}, ValueError, "l1_ratio"),
        ({"l1_ratio": -0.1}, ValueError, "l1_ratio"),
        ({"eps": 0.0}, ValueError, "eps"),
        ({"tol": -1e-4}, ValueError, "tol"),
        ({"tol": 0.0}, ValueError, "tol"),
        ({"l1_ratio": 0.0}, ValueError, "lambdas"),
        ({"lambdas": np.array([1.0, -1.0])}, ValueError, "lambdas"),
        ({"lambdas": 0}, ValueError, "lambdas"),
        ({"max_iter": 0}, ValueError, "max_iter"),
        ({"precompute": "yes"}, ValueError, "precompute"),
        ({"dtype": jnp.int32}, TypeError, "dtype"),
    ],
)
def test_bad_input(kwargs, error, match):
    rng = np.random.default_rng(0)
    args = {"X": rng.normal(size=(10, 3)), "y": rng.normal(size=10)}
    args.update({k: kwargs.pop(k) for k in ("X", "y") if k in kwargs})
    with pytest.raises(error, match=match):
        linear.path(args["X"], args["y"], **kwargs)


def test_cv_path_bad_input():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(10, 3)), rng.normal(size=10)
    with pytest.raises(ValueError, match="select"):
        linear.cv_path(x, y, select="best")
    with pytest.raises(ValueError, match="folds"):
        linear.cv_path(x, y, folds=1)
    with pytest.raises(ValueError, match="folds"):
        linear.cv_path(x, y, folds=np.zeros(10, int))
    with pytest.raises(ValueError, match="folds"):
        linear.cv_path(x, y, folds=np.zeros(9, int))


def test_solve_vmaps_over_l1_ratio_and_matches_path():
    x, y = _gaussian(80, 20)
    grid = linear.path(x, y, lambdas=8, **TIGHT).lambdas
    ratios = np.array([1.0, 0.6, 0.2])
    with jax.enable_x64(True):
        batched = jax.jit(
            jax.vmap(
                lambda r: linear.solve(
                    jnp.asarray(x),
                    jnp.asarray(y),
                    jnp.asarray(grid),
                    l1_ratio=r,
                    tol=1e-10,
                    max_iter=100_000,
                )
            )
        )(jnp.asarray(ratios))
        assert batched.coef.dtype == jnp.float64
    for i, rho in enumerate(ratios):
        single = linear.path(x, y, l1_ratio=rho, lambdas=grid, **TIGHT)
        np.testing.assert_allclose(np.asarray(batched.coef[i]), single.coef, atol=1e-8)
        np.testing.assert_allclose(np.asarray(batched.intercept[i]), single.intercept, atol=1e-8)
        assert bool(batched.converged[i].all())


def test_stability_selection_against_a_loop_of_sklearn_paths():
    x, y = _gaussian(60, 12, seed=6)
    res = linear.stability_selection(x, y, num_subsamples=8, lambdas=6, eps=0.05, key=3,
                                     threshold=0.7, **TIGHT)  # fmt: skip
    assert res.subsamples.shape == (8, 30)
    assert all(len(set(rows)) == 30 for rows in res.subsamples)  # without replacement
    used = np.zeros((8, 6, 12), bool)
    for b, rows in enumerate(res.subsamples):
        xs, ys = x[rows] - x[rows].mean(0), y[rows] - y[rows].mean()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, coefs, _ = lasso_path(xs, ys, alphas=res.lambdas, tol=1e-12, max_iter=100_000)
        used[b] = coefs.T != 0
    np.testing.assert_allclose(res.probabilities, used.mean(axis=0))
    np.testing.assert_array_equal(res.max_probability, used.mean(axis=0).max(axis=0))
    np.testing.assert_array_equal(res.selected, res.max_probability >= 0.7)
    # the full data's grid: sklearn's λ_max down to eps·λ_max
    xc, yc = x - x.mean(0), y - y.mean()
    top = np.max(np.abs(xc.T @ yc)) / 60
    np.testing.assert_allclose(res.lambdas[[0, -1]], [top, 0.05 * top])
    q = used.any(axis=1).sum(axis=1).mean()
    np.testing.assert_allclose(res.expected_false_selections, q**2 / (0.4 * 12))
    assert set(np.flatnonzero(res.selected)) >= {0, 1, 2, 3, 4}  # the five true features

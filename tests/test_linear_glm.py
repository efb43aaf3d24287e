"""jaxreg.linear's binomial and multinomial families against scikit-learn's LogisticRegression,
closed forms of the null model, the duality gap's meaning, and glmnet's CV rule in numpy.

Few shapes on purpose (each is a compilation): breast cancer's first 560 rows, standardized,
with 8 λ; the first 150 digits with 4 λ.
"""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression

from jaxreg import linear

TIGHT = {"tol": 1e-10, "dtype": jnp.float64}


def _standardize(x):
    scale = x.std(0)
    return (x - x.mean(0)) / np.where(scale > 0, scale, 1)


@pytest.fixture(scope="module")
def cancer():
    x, y = load_breast_cancer(return_X_y=True)
    return _standardize(x[:560]), y[:560]


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return _standardize(x[:150]), y[:150]


def binomial_objective(x, y, w, b, lam, rho):
    eta = x @ w + b
    penalty = rho * np.abs(w).sum() + 0.5 * (1 - rho) * w @ w
    return np.mean(np.logaddexp(0, eta) - y * eta) + lam * penalty


def multinomial_objective(x, y, w, b, lam, rho):
    eta = x @ w.T + b
    nll = logsumexp(eta, axis=1) - eta[np.arange(len(y)), y]
    return np.mean(nll) + lam * (rho * np.abs(w).sum() + 0.5 * (1 - rho) * np.sum(w * w))


def sklearn_fit(x, y, lam, rho):
    """scikit-learn minimizes C·Σ loss + ρ‖w‖₁ + (1−ρ)/2‖w‖²: the same problem at C = 1/(nλ)."""
    model = LogisticRegression(l1_ratio=rho, C=1 / (len(y) * lam), solver="saga", tol=1e-10,
                               max_iter=100_000)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # penalty/l1_ratio API transition notices
        return model.fit(x, y)


@pytest.mark.parametrize("rho", [1.0, 0.5])
def test_binomial_matches_sklearn_logistic_regression(cancer, rho):
    x, y = cancer
    res = linear.path(x, y, family="binomial", l1_ratio=rho, lambdas=8, eps=0.03, **TIGHT)
    n = len(y)
    assert res.coef.shape == (8, 30) and res.intercept.shape == (8,)
    assert res.classes.tolist() == [0, 1] and res.converged.all()
    # λ_max from the null model's gradient, written out: max |Xᵀ(y − ȳ)| / (nρ)
    np.testing.assert_allclose(res.lambdas[0], np.max(np.abs(x.T @ (y - y.mean()))) / (n * rho))
    for k in (2, 5, 7):
        lam = res.lambdas[k]
        model = sklearn_fit(x, y, lam, rho)
        ours = binomial_objective(x, y, res.coef[k], res.intercept[k], lam, rho)
        theirs = binomial_objective(x, y, model.coef_[0], model.intercept_[0], lam, rho)
        assert ours <= theirs * (1 + 1e-6)
        np.testing.assert_array_equal(res.coef[k] != 0, model.coef_[0] != 0)
        np.testing.assert_allclose(res.coef[k], model.coef_[0], atol=1e-3)


def test_lambda_max_is_the_null_model(cancer):
    x, y = cancer
    res = linear.path(x, y, family="binomial", lambdas=8, eps=0.03, **TIGHT)
    np.testing.assert_array_equal(res.coef[0], 0.0)
    np.testing.assert_allclose(res.intercept[0], np.log(y.mean() / (1 - y.mean())), rtol=1e-10)
    # and it is the smallest such λ: just below it a coefficient enters
    grid = np.r_[0.999 * res.lambdas[0], res.lambdas[1:]]
    below = linear.path(x, y, family="binomial", lambdas=grid, **TIGHT)
    assert np.count_nonzero(below.coef[0]) == 1


def test_duality_gap_bounds_the_suboptimality(cancer):
    x, y = cancer
    loose = linear.path(x, y, family="binomial", lambdas=8, eps=0.03, tol=1e-3,
                        dtype=jnp.float64)  # fmt: skip
    tight = linear.path(x, y, family="binomial", lambdas=8, eps=0.03, **TIGHT)
    null_deviance = -2 * np.sum(y * np.log(y.mean()) + (1 - y) * np.log(1 - y.mean()))
    assert loose.converged.all()
    assert np.all(loose.dual_gap <= 1e-3 * null_deviance / len(y))
    for k, lam in enumerate(tight.lambdas):
        ours = binomial_objective(x, y, loose.coef[k], loose.intercept[k], lam, 1.0)
        best = binomial_objective(x, y, tight.coef[k], tight.intercept[k], lam, 1.0)
        assert -1e-12 <= ours - best <= loose.dual_gap[k] + 1e-12


def test_multinomial_matches_sklearn(digits):
    x, y = digits
    res = linear.path(x, y, family="multinomial", lambdas=4, eps=0.2, **TIGHT)
    assert res.coef.shape == (4, 10, 64) and res.intercept.shape == (4, 10)
    assert res.converged.all()
    np.testing.assert_allclose(res.intercept.sum(axis=1), 0.0, atol=1e-10)
    onehot = np.eye(10)[y]
    top = np.max(np.abs(x.T @ (onehot - onehot.mean(0)))) / len(y)
    np.testing.assert_allclose(res.lambdas[0], top)
    # the null model: no feature, intercepts = centred log class frequencies
    np.testing.assert_array_equal(res.coef[0], 0.0)
    log_freq = np.log(onehot.mean(0))
    np.testing.assert_allclose(res.intercept[0], log_freq - log_freq.mean(), atol=1e-10)
    # nonzeros count features used by any class
    np.testing.assert_array_equal(res.nonzeros, (res.coef != 0).any(axis=1).sum(axis=1))
    for k in (1, 3):
        lam = res.lambdas[k]
        model = sklearn_fit(x, y, lam, 1.0)
        ours = multinomial_objective(x, y, res.coef[k], res.intercept[k], lam, 1.0)
        theirs = multinomial_objective(x, y, model.coef_, model.intercept_, lam, 1.0)
        assert ours <= theirs * (1 + 1e-6)
        np.testing.assert_array_equal(res.coef[k] != 0, model.coef_ != 0)


def _glmnet_summary(losses, lambdas, weights):
    """glmnet's cv rule, written out: fold-size-weighted mean and standard error, λ_min and the
    largest λ within one standard error of the minimum."""
    share = weights / weights.sum()
    cvm = share @ losses
    cvsd = np.sqrt(share @ (losses - cvm) ** 2 / (len(losses) - 1))
    index_min = int(np.argmin(cvm))  # the grid is descending: the first minimum is the largest λ
    index_1se = int(np.flatnonzero(cvm <= cvm[index_min] + cvsd[index_min])[0])
    return cvm, cvsd, lambdas[index_min], lambdas[index_1se]


@pytest.mark.parametrize("measure", ["deviance", "class"])
def test_binomial_cv_path_against_fold_fits_and_glmnets_rule(cancer, measure):
    x, y = cancer
    fold_ids = np.arange(len(y)) % 4
    res = linear.cv_path(x, y, family="binomial", measure=measure, folds=fold_ids, lambdas=8,
                         eps=0.03, **TIGHT)  # fmt: skip
    losses = np.empty((4, 8))
    accuracy = np.empty((4, 8))
    for f in range(4):
        train, valid = fold_ids != f, fold_ids == f
        fit = linear.path(x[train], y[train], family="binomial", lambdas=res.lambdas, **TIGHT)
        prob = 1 / (1 + np.exp(-(x[valid] @ fit.coef.T + fit.intercept)))
        label = y[valid][:, None]
        clipped = np.clip(prob, 1e-5, 1 - 1e-5)
        deviance = -2 * (label * np.log(clipped) + (1 - label) * np.log(1 - clipped))
        wrong = (prob > 0.5) != (label == 1)
        losses[f] = (deviance if measure == "deviance" else wrong).mean(axis=0)
        accuracy[f] = 1 - wrong.mean(axis=0)
    np.testing.assert_allclose(res.fold_losses, losses, rtol=1e-6, atol=1e-9)
    cvm, cvsd, lambda_min, lambda_1se = _glmnet_summary(losses, res.lambdas, np.full(4, 140.0))
    np.testing.assert_allclose(res.summary.cvm, cvm, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(res.summary.cvsd, cvsd, rtol=1e-6, atol=1e-9)
    assert (res.summary.lambda_min, res.summary.lambda_1se) == (lambda_min, lambda_1se)
    assert res.lambda_selected == lambda_1se
    np.testing.assert_allclose(res.cv_accuracy, accuracy.mean(axis=0), rtol=1e-6, atol=1e-9)
    assert res.loss_name == {"deviance": "binomial deviance", "class": "misclassification error"}[
        measure
    ]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"family": "poisson"}, ValueError, "family"),
        ({"family": "binomial", "y": np.arange(10) % 3}, ValueError, "y"),
        ({"family": "multinomial", "y": np.zeros(10)}, ValueError, "y"),
        ({"family": "binomial", "y": np.r_[np.nan, np.ones(9)]}, ValueError, "y"),
        ({"family": "binomial", "y": np.ones((10, 2))}, ValueError, "y"),
        ({"family": "binomial", "max_iter": 0}, ValueError, "max_iter"),
        ({"family": "gaussian", "measure": "class"}, ValueError, "measure"),
    ],
)
def test_bad_input(kwargs, error, match):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 3))
    y = kwargs.pop("y", np.arange(10) % 2)
    with pytest.raises(error, match=match):
        linear.cv_path(x, y, folds=2, **kwargs)


def test_multinomial_path_plot_draws_a_norm_per_feature_with_names(digits):
    from jaxreg import plot

    x, y = digits
    res = linear.path(x, y, family="multinomial", lambdas=4, eps=0.2, **TIGHT)
    names = [f"pixel {j}" for j in range(64)]
    figure = plot.path(res, labels=names)
    ax = figure.axes[0]
    assert len(ax.lines) == 64
    for j in (0, 20, 42):
        norm = np.sqrt(np.sum(res.coef[:, :, j] ** 2, axis=1))
        np.testing.assert_allclose(ax.lines[j].get_ydata(), norm)
    # past 20 lines the names go on the colour bar
    colour_bar = figure.axes[-1]
    assert {label.get_text() for label in colour_bar.get_yticklabels()} <= set(names)
    assert "pixel 63" in {label.get_text() for label in colour_bar.get_yticklabels()}
    figure.draw_without_rendering()
    (top,) = ax.child_axes
    top_counts = [label.get_text() for label in top.get_xticklabels()]
    assert top_counts == [str(n) for n in res.nonzeros[::-1]]

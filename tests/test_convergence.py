"""Proximal / projected gradient with jaxreg transforms converges to the optimum of the
regularized problem, checked through its optimality (KKT) conditions and independent solvers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize
from sklearn.linear_model import ElasticNet, Lasso

import jaxreg

NUM_STEPS = 3000
TOL = 1e-6


def _data(num_outputs=None):
    rng = np.random.default_rng(0)
    n, p = 60, 15
    X = rng.normal(size=(n, p))
    coef = np.zeros(p)
    coef[:4] = [3.0, -2.0, 1.5, 0.8]
    shape = (p,) if num_outputs is None else (p, num_outputs)
    if num_outputs is not None:
        coef = np.outer(coef, np.linspace(1.0, 2.0, num_outputs))
    y = X @ coef + 0.5 * rng.normal(size=(n,) if num_outputs is None else (n, num_outputs))
    return X, y, shape


def _data_loss_grad(X, y, w):
    """Gradient of (1/(2n))‖y − Xw‖² (numpy, float64)."""
    return X.T @ (X @ w - y) / X.shape[0]


def _lipschitz(X):
    return np.linalg.eigvalsh(X.T @ X / X.shape[0]).max()


def _train(tx, X, y, shape):
    """Full-batch training of (1/(2n))‖y − Xw‖² from w = 0 under one jitted lax.scan."""
    X, y = jnp.asarray(X), jnp.asarray(y)

    def loss(w):
        return 0.5 * jnp.mean(jnp.sum(jnp.reshape(y - X @ w, (X.shape[0], -1)) ** 2, axis=1))

    @jax.jit
    def run(w):
        def step(carry, _):
            w, state = carry
            updates, state = tx.update(jax.grad(loss)(w), state, w)
            return (optax.apply_updates(w, updates), state), None

        (w, _), _ = jax.lax.scan(step, (w, tx.init(w)), length=NUM_STEPS)
        return w

    return np.asarray(run(jnp.zeros(shape, jnp.float64)))


@pytest.mark.parametrize("l1_ratio", [1.0, 0.5])
def test_proximal_gradient_reaches_kkt_and_matches_sklearn(l1_ratio):
    X, y, shape = _data()
    lam_max = np.abs(X.T @ y).max() / X.shape[0] / l1_ratio
    lam = 0.1 * lam_max
    step = 1.0 / _lipschitz(X)
    if l1_ratio == 1.0:
        prox = jaxreg.prox_l1(lam, step)
        reference = Lasso(alpha=lam, fit_intercept=False, tol=1e-14, max_iter=1_000_000)
    else:
        prox = jaxreg.prox_elastic_net(lam, l1_ratio, step)
        reference = ElasticNet(
            alpha=lam, l1_ratio=l1_ratio, fit_intercept=False, tol=1e-14, max_iter=1_000_000
        )
    with jax.enable_x64(True):
        w = _train(optax.chain(optax.sgd(step), prox), X, y, shape)
    assert w.dtype == np.float64

    # KKT of (1/(2n))‖y − Xw‖² + λ(ρ‖w‖₁ + (1−ρ)/2‖w‖²), checked directly.
    grad = _data_loss_grad(X, y, w) + lam * (1 - l1_ratio) * w
    nonzero = w != 0
    assert 0 < nonzero.sum() < w.size  # a sparse solution, not a degenerate one
    np.testing.assert_allclose(grad[nonzero] + lam * l1_ratio * np.sign(w[nonzero]), 0.0, atol=TOL)
    assert np.all(np.abs(grad[~nonzero]) <= lam * l1_ratio + TOL)

    reference.fit(X, y)
    np.testing.assert_array_equal(nonzero, reference.coef_ != 0)
    np.testing.assert_allclose(w, reference.coef_, atol=TOL)


def test_projected_gradient_with_clip_params_matches_bounded_least_squares():
    X, y, shape = _data()
    bound = 1.0  # the two largest true coefficients hit the box
    step = 1.0 / _lipschitz(X)
    with jax.enable_x64(True):
        w = _train(optax.chain(optax.sgd(step), jaxreg.clip_params(-bound, bound)), X, y, shape)
    assert np.all(np.abs(w) <= bound)
    reference = scipy.optimize.lsq_linear(X, y, bounds=(-bound, bound), tol=1e-15)
    np.testing.assert_allclose(w, reference.x, atol=TOL)
    assert np.sum(np.abs(w) == bound) >= 2  # active constraints, landed on exactly


def test_projected_gradient_with_max_norm_reaches_kkt():
    X, y, shape = _data(num_outputs=3)
    cap = 2.5
    step = 1.0 / _lipschitz(X)
    with jax.enable_x64(True):
        w = _train(optax.chain(optax.sgd(step), jaxreg.max_norm(cap, axis=0)), X, y, shape)
    norms = np.linalg.norm(w, axis=0)
    assert np.all(norms <= cap * (1 + 1e-12))
    grad = _data_loss_grad(X, y, w)
    active = norms > cap * (1 - 1e-9)
    assert active.any()
    for k in range(w.shape[1]):
        g, wk = grad[:, k], w[:, k]
        if active[k]:  # −∇ points along the outward normal: ∇ + μ w = 0 with μ ≥ 0
            mu = -g @ wk / cap**2
            assert mu >= 0
            np.testing.assert_allclose(g + mu * wk, 0.0, atol=TOL)
        else:
            np.testing.assert_allclose(g, 0.0, atol=TOL)

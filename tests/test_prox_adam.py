"""prox_adam against independent references: scikit-learn's Lasso and ElasticNet, a float64
FISTA for the group lasso, closed forms of the first step written in numpy, optax.adam itself
(λ = 0, unmasked leaves, boxes), the dual norm's defining property, and a loop for vmap."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.linear_model import ElasticNet as SkElasticNet
from sklearn.linear_model import Lasso

import jaxreg
from jaxreg.regularizers import L1, L2, Box, ElasticNet, GroupLasso, MaxNorm


@pytest.fixture(scope="module")
def diabetes():
    """Standardized diabetes, y standardized too: a lasso without intercept."""
    data = jaxreg.datasets.load("diabetes", standardize=True)
    X = np.asarray(data.X, np.float64)
    y = np.asarray(data.y, np.float64)
    return X, (y - y.mean()) / y.std()


def lambda_max(X, y):
    return np.max(np.abs(X.T @ y)) / len(y)


def train(regularizer, X, y, *, steps=1500, shape=None, learning_rate=None):
    """Full-batch prox_adam on (1/2n)‖y − Xw‖² in float64 from w = 0; ``shape`` reshapes w
    (a pytree of arrays is flattened in leaf order)."""
    n, p = X.shape
    shape = jnp.zeros(p) if shape is None else shape
    schedule = learning_rate or optax.exponential_decay(0.1, steps, 1e-3)
    with jax.enable_x64(True):
        Xj, yj = jnp.asarray(X), jnp.asarray(y)
        start = jax.tree.map(lambda leaf: jnp.zeros(leaf.shape, jnp.float64), shape)
        flat = lambda tree: jnp.concatenate([leaf.ravel() for leaf in jax.tree.leaves(tree)])
        tx = jaxreg.prox_adam(schedule, regularizer)

        @jax.jit
        def run(params):
            def body(carry, _):
                params, state = carry
                grads = jax.grad(lambda w: 0.5 * jnp.mean((yj - Xj @ flat(w)) ** 2))(params)
                updates, state = tx.update(grads, state, params)
                return (optax.apply_updates(params, updates), state), None

            (params, _), _ = jax.lax.scan(body, (params, tx.init(params)), length=steps)
            return params

        return np.asarray(flat(run(start)))


def objective(w, X, y, lam, l1_ratio=1.0, groups=None):
    smooth = 0.5 * np.mean((y - X @ w) ** 2)
    if groups is not None:
        return smooth + lam * sum(np.sqrt(len(g)) * np.linalg.norm(w[g]) for g in groups)
    return smooth + lam * (l1_ratio * np.abs(w).sum() + 0.5 * (1 - l1_ratio) * w @ w)


# --- convex problems: the solution of loss + R ------------------------------------------------


@pytest.mark.parametrize("fraction", [0.5, 0.05])
def test_lasso_reaches_scikit_learns_solution(diabetes, fraction):
    X, y = diabetes
    lam = fraction * lambda_max(X, y)
    reference = Lasso(alpha=lam, fit_intercept=False, tol=1e-14, max_iter=100_000).fit(X, y)
    w = train(L1(lam), X, y)
    best = objective(reference.coef_, X, y, lam)
    assert (objective(w, X, y, lam) - best) / best <= 1e-6
    np.testing.assert_array_equal(w != 0, reference.coef_ != 0)
    assert 0 < np.count_nonzero(w) < X.shape[1]


def test_elastic_net_reaches_scikit_learns_solution(diabetes):
    X, y = diabetes
    lam = 0.2 * lambda_max(X, y) / 0.5
    reference = SkElasticNet(alpha=lam, l1_ratio=0.5, fit_intercept=False, tol=1e-14,
                             max_iter=100_000).fit(X, y)  # fmt: skip
    w = train(ElasticNet(lam, 0.5), X, y)
    best = objective(reference.coef_, X, y, lam, l1_ratio=0.5)
    assert (objective(w, X, y, lam, l1_ratio=0.5) - best) / best <= 1e-6
    np.testing.assert_array_equal(w != 0, reference.coef_ != 0)


def fista_group_lasso(X, y, lam, groups, iterations=20_000):
    """Float64 FISTA with block soft thresholding (weights √|g|): the reference solution."""
    n, p = X.shape
    step = n / np.linalg.eigvalsh(X.T @ X)[-1]
    w = z = np.zeros(p)
    t = 1.0
    for _ in range(iterations):
        x = z - step * X.T @ (X @ z - y) / n
        new = np.zeros(p)
        for g in groups:
            norm = np.linalg.norm(x[g])
            if norm > step * lam * np.sqrt(len(g)):
                new[g] = x[g] * (1 - step * lam * np.sqrt(len(g)) / norm)
        t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
        z = new + (t - 1) / t_next * (new - w)
        w, t = new, t_next
    return w


@pytest.mark.parametrize("joint", [False, True])
def test_group_lasso_reaches_the_fista_solution(diabetes, joint):
    """Features (0, 1), (2, 3), … are the groups: rows of W[5, 2], or slice g of two leaves."""
    X, y = diabetes
    groups = [np.array([2 * g, 2 * g + 1]) for g in range(5)]
    dual = max(np.linalg.norm(X[:, g].T @ y) / len(y) / np.sqrt(2) for g in groups)
    lam = 0.3 * dual
    reference = fista_group_lasso(X, y, lam, groups)
    if joint:
        order = np.concatenate([np.arange(0, 10, 2), np.arange(1, 10, 2)])
        shape = {"even": jnp.zeros((5,)), "odd": jnp.zeros((5,))}
        w = np.empty(10)
        w[order] = train(GroupLasso(lam, group_axis=0, joint=True), X[:, order], y, shape=shape)
    else:
        w = train(GroupLasso(lam, group_axis=0), X, y, shape=jnp.zeros((5, 2)))
    best = objective(reference, X, y, lam, groups=groups)
    assert (objective(w, X, y, lam, groups=groups) - best) / best <= 1e-6
    np.testing.assert_array_equal(w != 0, reference != 0)
    assert 0 < np.count_nonzero(w) < 10


@pytest.mark.parametrize("learning_rate", [1e-3, 0.1, 3.0])
def test_a_minimizer_is_a_fixed_point_for_any_learning_rate(diabetes, learning_rate):
    """At the lasso solution w*, a step with the gradient at w* stays at w* (0 ∈ ∇f + ∂R)."""
    X, y = diabetes
    lam = 0.1 * lambda_max(X, y)
    w_star = Lasso(alpha=lam, fit_intercept=False, tol=1e-15, max_iter=100_000).fit(X, y).coef_
    with jax.enable_x64(True):
        grads = jnp.asarray(X.T @ (X @ w_star - y) / len(y))
        params = jnp.asarray(w_star)
        tx = jaxreg.prox_adam(learning_rate, L1(lam))
        updates, _ = tx.update(grads, tx.init(params), params)
        landed = np.asarray(optax.apply_updates(params, updates))
    np.testing.assert_allclose(landed, w_star, rtol=0, atol=1e-9 * max(1, learning_rate))
    np.testing.assert_array_equal(landed == 0, w_star == 0)


# --- the null model at the dual norm ----------------------------------------------------------


NULL_CASES = {
    "l1": (lambda s: L1(s), lambda: {"w": jnp.zeros((4, 3)), "v": jnp.zeros(3)}),
    "elastic_net": (lambda s: ElasticNet(s, 0.4), lambda: {"w": jnp.zeros((4, 3))}),
    "group": (lambda s: GroupLasso(s, group_axis=1), lambda: {"w": jnp.zeros((4, 3))}),
    "joint": (
        lambda s: GroupLasso(s, group_axis={"w": 1, "v": 0}, joint=True),
        lambda: {"w": jnp.zeros((4, 3)), "v": jnp.zeros(3)},
    ),
}


@pytest.mark.parametrize("case", sorted(NULL_CASES))
def test_zero_stays_zero_at_the_dual_norm_and_not_below(case):
    """From θ = 0 with a fixed gradient: ten steps at λ = dual norm stay exactly 0; at 0.99 of
    it some coordinate moves, whatever the learning rate."""
    build, zeros = NULL_CASES[case]
    params = zeros()
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(3), len(leaves))
    grads = treedef.unflatten(
        [jax.random.normal(k, leaf.shape) * 3 for k, leaf in zip(keys, leaves, strict=True)]
    )
    dual = build(1.0).dual_norm(grads)
    for factor, stays in ((1.0, True), (0.99, False)):
        for learning_rate in (1e-3, 0.5):
            tx = jaxreg.prox_adam(learning_rate, build(factor * dual))
            state, current = tx.init(params), params
            for _ in range(10):
                updates, state = tx.update(grads, state, current)
                current = optax.apply_updates(current, updates)
            all_zero = all(bool(jnp.all(leaf == 0)) for leaf in jax.tree.leaves(current))
            assert all_zero == stays, (factor, learning_rate)


# --- one step in closed form --------------------------------------------------------------------


def soft(x, t):
    return np.sign(x) * np.maximum(np.abs(x) - t, 0)


def first_step(regularizer, theta, g, lr=0.05, eps=1e-8):
    with jax.enable_x64(True):
        tx = jaxreg.prox_adam(lr, regularizer, eps=eps)
        params = jnp.asarray(theta)
        updates, _ = tx.update(jnp.asarray(g), tx.init(params), params)
        return np.asarray(optax.apply_updates(params, updates))


def test_first_step_closed_forms_per_coordinate_and_per_group():
    """At step 1, m̂ = g and √v̂ = |g|: the step of coordinate i is lr/(|g_i| + ε)."""
    rng = np.random.default_rng(0)
    theta, g = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    lr, lam, eps = 0.05, 0.7, 1e-8
    s = lr / (np.abs(g) + eps)
    np.testing.assert_allclose(first_step(L1(lam), theta, g), soft(theta - s * g, s * lam),
                               rtol=1e-12)  # fmt: skip
    elastic = soft(theta - s * g, s * lam * 0.3) / (1 + s * lam * 0.7)
    np.testing.assert_allclose(first_step(ElasticNet(lam, 0.3), theta, g), elastic, rtol=1e-12)
    np.testing.assert_allclose(first_step(L2(lam), theta, g), (theta - s * g) / (1 + s * lam),
                               rtol=1e-12)  # fmt: skip
    # groups are columns (group_axis=1); units of MaxNorm(axis=0) are columns too
    s_col = lr / (np.max(np.abs(g), axis=0, keepdims=True) + eps)
    x = theta - s_col * g
    norms = np.linalg.norm(x, axis=0, keepdims=True)
    threshold = s_col * lam * np.sqrt(4)
    group = x * np.maximum(0, 1 - threshold / norms)
    np.testing.assert_allclose(first_step(GroupLasso(lam, group_axis=1), theta, g), group,
                               rtol=1e-12)  # fmt: skip
    capped = x * np.minimum(1, 0.5 / norms)
    np.testing.assert_allclose(first_step(MaxNorm(0.5, axis=0), theta, g), capped, rtol=1e-12)
    np.testing.assert_allclose(first_step(Box(-0.2, 0.3), theta, g),
                               np.clip(theta - s * g, -0.2, 0.3), rtol=1e-12)  # fmt: skip


# --- agreement with optax.adam --------------------------------------------------------------------


def quadratic_run(tx, params, steps=40):
    target = jax.tree.map(lambda leaf: jnp.linspace(-1.0, 1.0, leaf.size).reshape(leaf.shape),
                          params)  # fmt: skip
    state = tx.init(params)
    for _ in range(steps):
        grads = jax.tree.map(lambda p, t: 3.0 * (p - t), params, target)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params


def test_zero_strength_is_adam_and_unmasked_leaves_take_adams_step():
    params = {"w": jnp.full((3, 2), 0.5), "b": jnp.full((2,), 0.5)}
    adam = quadratic_run(optax.adam(0.05), params)
    plain = quadratic_run(jaxreg.prox_adam(0.05, L1(0.0)), params)
    masked = quadratic_run(jaxreg.prox_adam(0.05, L1(5.0, mask={"w": True, "b": False})), params)
    for leaf in ("w", "b"):
        np.testing.assert_allclose(plain[leaf], adam[leaf], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(masked["b"], adam["b"], rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(masked["w"]) == 0)  # λ = 5 is above every gradient on the way


def test_box_is_adam_then_clipping():
    params = {"w": jnp.full((3, 2), 0.1)}
    expected = quadratic_run(optax.chain(optax.adam(0.05), jaxreg.clip_params(-0.3, 0.4)), params)
    actual = quadratic_run(jaxreg.prox_adam(0.05, Box(-0.3, 0.4)), params)
    np.testing.assert_allclose(actual["w"], expected["w"], rtol=1e-5, atol=1e-6)
    assert np.all((np.asarray(actual["w"]) >= -0.3) & (np.asarray(actual["w"]) <= 0.4))


def test_a_schedule_is_read_at_the_update_count():
    """The moments do not depend on the learning rate, so step t of a scheduled prox_adam equals
    a scalar prox_adam with η = schedule(t) applied to the same state."""
    schedule = lambda count: 0.1 * 0.5**count
    params = jnp.array([0.4, -0.3, 0.05])
    scheduled = jaxreg.prox_adam(schedule, L1(0.2))
    state = scheduled.init(params)
    for t in range(3):
        grads = jnp.array([1.0, -0.5, 0.1]) * (t + 1)
        expected, _ = jaxreg.prox_adam(schedule(t), L1(0.2)).update(grads, state, params)
        updates, state = scheduled.update(grads, state, params)
        np.testing.assert_allclose(updates, expected, rtol=1e-6)
        params = optax.apply_updates(params, updates)


def test_bf16_leaves_keep_their_dtype_and_get_exact_zeros():
    theta = np.array([[0.5, -0.01], [0.02, 1.0]])
    g = np.array([[0.1, 0.1], [-0.1, 2.0]])
    params = {"w": jnp.asarray(theta, jnp.bfloat16)}
    tx = jaxreg.prox_adam(0.1, L1(0.5))
    updates, state = tx.update({"w": jnp.asarray(g, jnp.bfloat16)}, tx.init(params), params)
    landed = optax.apply_updates(params, updates)
    assert updates["w"].dtype == landed["w"].dtype == jnp.bfloat16
    assert state.mu["w"].dtype == jnp.bfloat16
    s = 0.1 / np.abs(g)
    zeros = np.abs(theta - s * g) <= s * 0.5  # the closed form's zeros (none on the boundary)
    assert zeros.any() and not zeros.all()
    np.testing.assert_array_equal(np.asarray(landed["w"], np.float32) == 0, zeros)


# --- traced hyperparameters ---------------------------------------------------------------------


def test_vmap_over_strength_and_learning_rate_equals_a_loop_with_one_trace(trace_counter):
    theta = jnp.array([0.6, -0.2, 0.05, 1.5])
    grads = jnp.array([0.3, -1.0, 0.2, 0.1])

    def two_steps(lam, lr):
        tx = jaxreg.prox_adam(lr, ElasticNet(lam, 0.7))
        state, params = tx.init(theta), theta
        for _ in range(2):
            updates, state = tx.update(grads, state, params)
            params = optax.apply_updates(params, updates)
        return params

    counted = trace_counter(two_steps)
    batched = jax.jit(jax.vmap(counted))
    lams = jnp.array([0.0, 0.3, 1.0, 5.0])
    lrs = jnp.array([0.01, 0.1, 0.2, 0.05])
    out = batched(lams, lrs)
    out_again = batched(lams * 2, lrs)
    assert counted.count == 1
    for k in range(4):
        np.testing.assert_allclose(out[k], two_steps(float(lams[k]), float(lrs[k])), rtol=1e-6)
        np.testing.assert_allclose(out_again[k], two_steps(2 * float(lams[k]), float(lrs[k])),
                                   rtol=1e-6)  # fmt: skip


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"learning_rate": 0.0}, ValueError, "learning_rate"),
        ({"regularizer": "l1"}, TypeError, "regularizer"),
        ({"b1": 1.0}, ValueError, "b1"),
        ({"b2": -0.1}, ValueError, "b2"),
        ({"eps": 0.0}, ValueError, "eps"),
    ],
)
def test_bad_input_is_an_error_naming_the_argument(kwargs, error, name):
    arguments = {"learning_rate": 0.1, "regularizer": L1(0.1)} | kwargs
    learning_rate, regularizer = arguments.pop("learning_rate"), arguments.pop("regularizer")
    with pytest.raises(error, match=name):
        jaxreg.prox_adam(learning_rate, regularizer, **arguments)


def test_update_without_params_and_a_mask_that_does_not_fit_are_errors():
    tx = jaxreg.prox_adam(0.1, L1(0.1))
    params = jnp.ones(3)
    with pytest.raises(ValueError, match="params"):
        tx.update(params, tx.init(params))
    with pytest.raises(ValueError, match="mask"):
        jaxreg.prox_adam(0.1, L1(0.1, mask={"a": True})).init({"a": params, "b": params})

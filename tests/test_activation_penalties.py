"""contractive and jacobian penalties against Jacobians from jax.jacfwd."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxreg import penalties
from jaxreg.models import mlp

RNG = np.random.default_rng(0)
W = jnp.asarray(RNG.standard_normal((4, 6)), jnp.float32)
B = jnp.asarray(RNG.standard_normal(6), jnp.float32)
X = jnp.asarray(RNG.standard_normal((5, 4)), jnp.float32)


def _half_sq_frobenius_jacfwd(fn, x):
    """½ mean_b ‖∂fn(x_b)/∂x_b‖²_F from full Jacobians (the independent reference)."""
    jacobians = jax.vmap(jax.jacfwd(fn))(x)
    return 0.5 * float(jnp.mean(jnp.sum(jnp.square(jacobians.reshape(x.shape[0], -1)), axis=1)))


@pytest.mark.parametrize("activation", [jax.nn.sigmoid, jnp.tanh, jax.nn.relu])
def test_contractive_equals_half_squared_jacobian_norm(activation):
    z = X @ W + B
    value = penalties.contractive(W, z, activation)
    expected = _half_sq_frobenius_jacfwd(lambda x: activation(x @ W + B), X)
    np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_contractive_sums_layers_and_pairs_with_mlp_activations():
    net = mlp([4, 6, 3, 2], activation=jnp.tanh)
    params = net.init(jax.random.key(0))
    _, pre = net.apply(params, X, return_activations=True)
    weights = [p["w"] for p in params[:-1]]
    value = penalties.contractive(weights, pre, jnp.tanh)
    h1 = jnp.tanh(pre[0])
    expected = _half_sq_frobenius_jacfwd(
        lambda x: jnp.tanh(x @ weights[0] + params[0]["b"]), X
    ) + _half_sq_frobenius_jacfwd(lambda h: jnp.tanh(h @ weights[1] + params[1]["b"]), h1)
    np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_contractive_is_differentiable():
    def value(w, b):
        return penalties.contractive(w, X @ w + b, jax.nn.sigmoid)

    with jax.enable_x64(True):
        w64, b64 = jnp.asarray(W, jnp.float64), jnp.asarray(B, jnp.float64)
        check_grads(value, (w64, b64), order=1, modes=("rev",))


def test_contractive_bad_inputs():
    with pytest.raises(ValueError, match="pre_activations"):
        penalties.contractive(W, X, jnp.tanh)
    with pytest.raises(ValueError, match="same length"):
        penalties.contractive([W, W], [X @ W], jnp.tanh)


A = jnp.asarray(RNG.standard_normal((3, 4)), jnp.float32)


def _nonlinear(x):
    return jnp.tanh(A @ x) * jnp.sum(x**2)


def test_jacobian_exact_equals_jacfwd():
    value = penalties.jacobian(_nonlinear, X, num_projections=-1)
    np.testing.assert_allclose(value, _half_sq_frobenius_jacfwd(_nonlinear, X), rtol=1e-5)


def test_jacobian_estimator_is_unbiased():
    exact = _half_sq_frobenius_jacfwd(_nonlinear, X)

    @jax.jit
    def estimates(keys, few_keys):
        def one(key, num_projections):
            return penalties.jacobian(_nonlinear, X, key=key, num_projections=num_projections)

        return jax.vmap(lambda k: one(k, 2))(keys), jax.vmap(lambda k: one(k, 16))(few_keys)

    draws, many = estimates(
        jax.random.split(jax.random.key(0), 1000), jax.random.split(jax.random.key(1), 200)
    )
    draws, many = np.asarray(draws), np.asarray(many)
    standard_error = draws.std(ddof=1) / np.sqrt(draws.size)
    assert abs(draws.mean() - exact) < 4 * standard_error
    assert many.std() < draws.std()  # more projections, less variance


def test_jacobian_handles_pytree_outputs_and_is_differentiable():
    def fn(x):
        return {"a": A @ x, "b": jnp.sin(x)}

    value = penalties.jacobian(fn, X, num_projections=-1)
    expected = 0.5 * (float(jnp.sum(A**2)) + float(jnp.mean(jnp.sum(jnp.cos(X) ** 2, axis=1))))
    np.testing.assert_allclose(value, expected, rtol=1e-5)

    @jax.jit
    def penalty(a, key):
        return penalties.jacobian(lambda x: jnp.tanh(a @ x), X, key=key, num_projections=3)

    key = jax.random.key(2)
    grad = jax.jit(jax.grad(penalty))(A, key)
    eps = 1e-2
    direction = jnp.asarray(RNG.standard_normal(A.shape), jnp.float32)
    finite_difference = (penalty(A + eps * direction, key) - penalty(A - eps * direction, key)) / (
        2 * eps
    )
    np.testing.assert_allclose(jnp.sum(grad * direction), finite_difference, rtol=2e-2)


def test_jacobian_bad_inputs():
    with pytest.raises(ValueError, match="key"):
        penalties.jacobian(_nonlinear, X)
    with pytest.raises(ValueError, match="num_projections"):
        penalties.jacobian(_nonlinear, X, num_projections=0)
    with pytest.raises(TypeError, match="num_projections"):
        penalties.jacobian(_nonlinear, X, num_projections=1.5)

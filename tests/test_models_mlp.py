"""mlp: shapes, init scale (He normal; torch's uniform for mlp and skip_mlp), manual forward
pass, dropout_rate override under jit and vmap."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxreg.models import Model, mlp, skip_mlp

X = jnp.asarray(np.random.default_rng(0).standard_normal((7, 5)), jnp.float32)


def test_shapes_and_init_scale():
    net = mlp([5, 300, 200, 3])
    assert isinstance(net, Model)
    params = jax.jit(net.init)(jax.random.key(0))
    assert [(p["w"].shape, p["b"].shape) for p in params] == [
        ((5, 300), (300,)),
        ((300, 200), (200,)),
        ((200, 3), (3,)),
    ]
    # He init for ReLU hidden layers: Var W = 2 / fan_in (within sampling error)
    np.testing.assert_allclose(float(params[1]["w"].var()), 2 / 300, rtol=0.05)
    assert all(float(jnp.abs(p["b"]).max()) == 0 for p in params)
    assert net.apply(params, X).shape == (7, 3)
    assert net.apply(params, X[0]).shape == (3,)


@pytest.mark.parametrize("build", [mlp, skip_mlp])
def test_uniform_init_draws_weights_and_biases_as_torch_linear(build):
    """torch.nn.Linear: W and b uniform on [−1/√fan_in, 1/√fan_in] (Kolmogorov–Smirnov)."""
    params = jax.jit(build([40, 300, 3], init="uniform").init)(jax.random.key(0))
    layers = params if build is mlp else params["mlp"]
    drawn = [(layers[0]["w"], 40), (layers[0]["b"], 40), (layers[1]["w"], 300)]
    if build is skip_mlp:
        drawn.append((params["skip"], 40))
    for values, fan_in in drawn:
        bound = 1 / np.sqrt(fan_in)
        values = np.asarray(values).ravel()
        assert np.abs(values).max() <= bound
        assert stats.kstest(values, stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3
    assert not np.array_equal(np.asarray(layers[0]["w"][:, 0]), np.asarray(layers[0]["w"][:, 1]))


def test_return_activations_matches_manual_forward_pass():
    net = mlp([5, 8, 6, 2], activation=jnp.tanh)
    params = net.init(jax.random.key(1))
    out, pre = net.apply(params, X, return_activations=True)
    w = [np.asarray(p["w"], np.float64) for p in params]
    b = [np.asarray(p["b"], np.float64) for p in params]
    z1 = np.asarray(X, np.float64) @ w[0] + b[0]
    z2 = np.tanh(z1) @ w[1] + b[1]
    expected = np.tanh(z2) @ w[2] + b[2]
    assert len(pre) == 2
    np.testing.assert_allclose(pre[0], z1, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pre[1], z2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_dropout_rate_override_and_sweep():
    net = mlp([5, 64, 1], dropout_rate=0.5)
    params = net.init(jax.random.key(2))
    key = jax.random.key(3)
    inference = net.apply(params, X)
    # train=False ignores dropout; an override of 0 while training is the identity too
    np.testing.assert_array_equal(net.apply(params, X, train=True, dropout_rate=0.0), inference)
    assert not np.allclose(net.apply(params, X, key=key, train=True), inference)

    # the rate is data: one compiled program sweeps it, member 0 (rate 0) is exact inference
    @jax.jit
    def sweep(rates):
        def one(rate):
            return net.apply(params, X, key=key, train=True, dropout_rate=rate)

        return jax.vmap(one)(rates), net.apply(params, X)

    outs, inference_jit = sweep(jnp.array([0.0, 0.3, 0.9]))
    # (vmapped matmuls may round differently; dropout itself is exact at rate 0, see
    # test_dropout.py)
    np.testing.assert_allclose(outs[0], inference_jit, rtol=1e-5, atol=1e-6)
    assert not np.allclose(outs[2], inference)

    # the built-in rate versus an override: same key, same rate, same masks
    np.testing.assert_allclose(
        mlp([5, 64, 1], dropout_rate=0.3).apply(params, X, key=key, train=True),
        outs[1],
        rtol=1e-5,
        atol=1e-6,
    )


def test_bad_sizes_and_params():
    with pytest.raises(ValueError, match="sizes"):
        mlp([3])
    for build in (mlp, skip_mlp):
        with pytest.raises(ValueError, match="init"):
            build([2, 3, 1], init="torch")
    net = mlp([2, 3, 1])
    with pytest.raises(ValueError, match="layers"):
        net.apply(net.init(jax.random.key(0))[:1], jnp.ones((1, 2)))

"""Inverted dropout: statistics over many draws, identity at inference, keys and errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg.models import dropout, mlp

X = jnp.asarray(np.random.default_rng(0).uniform(0.5, 2.0, size=(64,)), jnp.float32)


@jax.jit
def _draws(keys, rate):
    return jax.vmap(lambda key: dropout(X, rate, key=key))(keys)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_keep_fraction_and_mean_are_preserved(rate):
    draws = _draws(jax.random.split(jax.random.key(1), 2000), rate)
    kept = draws != 0
    n = kept.size
    # keep fraction ~ Binomial(n, 1 - p): within 5 standard errors
    assert abs(float(kept.mean()) - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / n)
    # kept entries are exactly x / (1 - p), dropped ones exactly 0
    np.testing.assert_allclose(
        jnp.where(kept, draws, 0), jnp.where(kept, X / (1 - rate), 0), rtol=1e-6
    )
    # E[out] = x: per-entry mean over 2000 draws within 5 standard errors
    standard_error = np.asarray(X) * np.sqrt(rate / (1 - rate) / draws.shape[0])
    assert np.all(np.abs(np.asarray(draws.mean(axis=0)) - X) < 5 * standard_error)


def test_identity_at_inference_and_rate_zero():
    key = jax.random.key(0)
    assert dropout(X, 0.5, train=False) is X
    assert dropout(X, 0.0, key=key) is X
    assert dropout(X, 0.0) is X  # a concrete 0 needs no key
    # a traced rate of 0 (a sweep member) also gives exactly x
    np.testing.assert_array_equal(_draws(jax.random.split(key, 3), 0.0), jnp.stack([X] * 3))
    swept = jax.jit(jax.vmap(lambda r: dropout(X, r, key=key)))(jnp.array([0.0, 0.5]))
    np.testing.assert_array_equal(swept[0], X)
    assert np.any(swept[1] == 0)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="key"):
        dropout(X, 0.5)
    with pytest.raises(ValueError, match="key"):
        jax.jit(lambda r: dropout(X, r))(0.5)  # a traced rate is not known to be 0
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="rate"):
            dropout(X, bad, key=jax.random.key(0))
    with pytest.raises(ValueError, match="dropout_rate"):
        mlp([2, 3, 1], dropout_rate=1.5)
    net = mlp([2, 3, 1], dropout_rate=0.5)
    params = net.init(jax.random.key(0))
    with pytest.raises(ValueError, match="key"):
        net.apply(params, jnp.ones((1, 2)), train=True)


def test_vmapped_members_and_layers_get_independent_masks():
    draws = _draws(jax.random.split(jax.random.key(2), 4), 0.5)
    masks = np.asarray(draws != 0)
    for i in range(4):
        for j in range(i):
            # two independent masks of 64 entries agree on about half; identical is ~2^-64
            assert not np.array_equal(masks[i], masks[j])
            assert 0.2 < np.mean(masks[i] == masks[j]) < 0.8

    # layers: with identity activation and identity weights, z2 = dropout_1(z1) shows the first
    # mask and the output = dropout_2(z2) shows both; the same mask twice would drop nothing
    # more in layer 2, independent masks drop about half of what layer 1 kept
    width = 64
    net = mlp([width, width, width, width], activation=lambda z: z, dropout_rate=0.5)
    params = [{"w": jnp.eye(width), "b": jnp.zeros(width)}] * 3
    out, (z1, z2) = jax.jit(
        lambda key: net.apply(
            params, jnp.ones((1, width)), key=key, train=True, return_activations=True
        )
    )(jax.random.key(3))
    np.testing.assert_array_equal(np.asarray(z1), np.ones((1, width)))
    kept_by_first = np.asarray(z2 != 0)
    kept_by_both = np.asarray(out != 0)
    assert not np.any(kept_by_both & ~kept_by_first)
    dropped_again = np.mean(~kept_by_both[kept_by_first])
    assert 0.2 < dropped_again < 0.8


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_keeps_dtype_and_scale(dtype):
    x = jnp.ones((4096,), dtype)
    out = dropout(x, 0.25, key=jax.random.key(4))
    assert out.dtype == dtype
    kept = np.asarray(out[out != 0], np.float32)
    # kept entries are 1/(1-p) rounded once to the output dtype
    np.testing.assert_array_equal(kept, np.float32(jnp.asarray(1 / 0.75, dtype)))

"""transformer_classifier: masking and pooling, and whole heads pruned by prox_group_lasso."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxreg
from jaxreg.models import head_groups, transformer_classifier

RNG = np.random.default_rng(0)
NUM_HEADS = 4


def _task(n=128, seq=6, d_in=4):
    """Label: is the mean of feature 0 over the valid tokens positive? Padding is noise."""
    x = RNG.standard_normal((n, seq, d_in)).astype(np.float32)
    lengths = RNG.integers(2, seq + 1, size=n)
    valid = np.arange(seq)[None, :] < lengths[:, None]
    mean0 = (x[..., 0] * valid).sum(axis=1) / lengths
    x[~valid] = 5 * RNG.standard_normal((int((~valid).sum()), d_in))
    return jnp.asarray(x), jnp.asarray(valid), jnp.asarray((mean0 > 0).astype(np.int32))


X, VALID, Y = _task()


def test_padding_is_ignored():
    net = transformer_classifier(4, 2, d_model=8, num_heads=2)
    params = jax.jit(net.init)(jax.random.key(0))
    apply = jax.jit(net.apply)
    logits = apply(params, X[:8], mask=VALID[:8])
    scrambled = jnp.where(VALID[:8, :, None], X[:8], -X[:8] * 3 + 1)
    np.testing.assert_allclose(apply(params, scrambled, mask=VALID[:8]), logits, atol=1e-5)
    # without a mask the padding counts
    assert not np.allclose(apply(params, scrambled), apply(params, X[:8]), atol=1e-3)
    assert logits.shape == (8, 2)


def _train(strength, dropout_rate, key, num_steps=150, learning_rate=1e-2):
    """Adam then the joint group-lasso prox over the heads of the single block."""
    net = transformer_classifier(4, 2, d_model=16, num_heads=NUM_HEADS, dropout_rate=0.1)
    params = net.init(jax.random.key(0))
    mask, group_axis = head_groups(params)
    tx = optax.chain(
        optax.adam(learning_rate),
        jaxreg.prox_group_lasso(
            strength, learning_rate, group_axis=group_axis, joint=True, mask=mask
        ),
    )

    def loss_fn(params, step_key):
        logits = net.apply(
            params, X, mask=VALID, key=step_key, train=True, dropout_rate=dropout_rate
        )
        return optax.softmax_cross_entropy_with_integer_labels(logits, Y).mean()

    def step(carry, step_key):
        params, state = carry
        grads = jax.grad(loss_fn)(params, step_key)
        updates, state = tx.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), jax.random.split(key, num_steps))
    accuracy = jnp.mean(jnp.argmax(net.apply(params, X, mask=VALID), -1) == Y)
    return params, accuracy


def _head_norms(attention):
    """Norm of each head's whole group (query, key, value, their biases, out)."""
    return jnp.sqrt(
        jnp.sum(jnp.square(attention["query"]), axis=(0, 2))
        + jnp.sum(jnp.square(attention["key"]), axis=(0, 2))
        + jnp.sum(jnp.square(attention["value"]), axis=(0, 2))
        + jnp.sum(jnp.square(attention["query_bias"]), axis=1)
        + jnp.sum(jnp.square(attention["key_bias"]), axis=1)
        + jnp.sum(jnp.square(attention["value_bias"]), axis=1)
        + jnp.sum(jnp.square(attention["out"]), axis=(1, 2))
    )


@pytest.mark.slow
def test_prox_group_lasso_prunes_whole_heads_under_jit_and_vmap():
    strengths = jnp.array([0.0, 0.3, 3.0])
    key = jax.random.key(1)
    sweep = jax.jit(jax.vmap(lambda lam: _train(lam, 0.1, key)))
    params, accuracy = sweep(strengths)
    attention = params["blocks"][0]["attention"]
    norms = np.asarray(jax.vmap(_head_norms)(attention))
    print(f"\nλ {np.asarray(strengths)} accuracy {np.asarray(accuracy)}; head norms\n{norms}")

    assert np.all(norms[0] > 0), "no penalty, no pruned head"
    assert np.sum(norms[-1] == 0) >= 1, "the strongest penalty prunes heads"
    assert np.sum(norms == 0, axis=1)[1] <= np.sum(norms == 0, axis=1)[2]
    for leaf_name, axis in (("query", 2), ("value", 2), ("out", 1), ("value_bias", 1)):
        # head axis moved last: a pruned head is exactly zero in every leaf
        per_head = np.moveaxis(np.asarray(attention[leaf_name]), axis, -1)
        zero_heads = np.all(per_head.reshape(3, -1, NUM_HEADS) == 0, axis=1)
        np.testing.assert_array_equal(zero_heads, norms == 0, err_msg=leaf_name)
    # the residual path still classifies with heads pruned
    assert np.all(np.asarray(accuracy) > 0.8)


def test_head_groups_for_several_blocks():
    net = transformer_classifier(3, 2, d_model=8, num_heads=2, num_blocks=2)
    params = jax.eval_shape(net.init, jax.random.key(0))  # head_groups needs shapes only
    with pytest.raises(ValueError, match="block"):
        head_groups(params)
    mask, group_axis = head_groups(params, block=1)
    selected = mask["blocks"][1]["attention"]
    assert sorted(name for name, on in selected.items() if on) == [
        "key",
        "key_bias",
        "out",
        "query",
        "query_bias",
        "value",
        "value_bias",
    ]
    assert not any(jax.tree.leaves(mask["blocks"][0]))
    assert sum(jax.tree.leaves(mask)) == 7
    for name, on in selected.items():
        if on:  # the group axis indexes the two heads in every selected leaf
            leaf = params["blocks"][1]["attention"][name]
            assert leaf.shape[group_axis["blocks"][1]["attention"][name]] == 2

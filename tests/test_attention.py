"""dot_product_attention and multi_head_attention against jax.nn and closed forms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg.models import dot_product_attention, head_groups, multi_head_attention

# jitted: one compile per call signature instead of one per eager op
ours_jit = jax.jit(dot_product_attention, static_argnames=("is_causal", "return_weights"))
reference_jit = jax.jit(jax.nn.dot_product_attention, static_argnames=("is_causal",))

SHAPES = [  # (batch, q_seq, k_seq, heads, head_dim)
    (2, 5, 5, 3, 8),
    (1, 7, 4, 2, 16),
    (3, 1, 9, 1, 4),
]


def _qkv(shape, dtype=jnp.float32, seed=0, scale=1.0):
    # numpy draws: eager jax.random would compile once per shape
    batch, q_seq, k_seq, heads, head_dim = shape
    rng = np.random.default_rng(seed)
    q = scale * rng.standard_normal((batch, q_seq, heads, head_dim), np.float32)
    k = scale * rng.standard_normal((batch, k_seq, heads, head_dim), np.float32)
    v = rng.standard_normal((batch, k_seq, heads, head_dim), np.float32)
    return tuple(jnp.asarray(a, dtype) for a in (q, k, v))


def _padding_mask(shape, seed=1):
    batch, _, k_seq, _, _ = shape
    lengths = np.random.default_rng(seed).integers(1, k_seq + 1, size=batch)
    valid = np.arange(k_seq)[None, :] < lengths[:, None]
    return jnp.asarray(valid[:, None, None, :])


def _cases(shape):
    q_seq, k_seq = shape[1], shape[2]
    cases = {"none": {}, "padding": {"mask": _padding_mask(shape)}}
    if q_seq == k_seq:
        cases["causal"] = {"is_causal": True}
        cases["causal+padding"] = {"is_causal": True, "mask": _padding_mask(shape)}
    return cases


TOLERANCE = {jnp.float32: 1e-5, jnp.bfloat16: 2e-2}


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [(shape, jnp.float32) for shape in SHAPES]
    + [(SHAPES[0], jnp.bfloat16), (SHAPES[2], jnp.bfloat16)],
)
def test_matches_jax_nn(shape, dtype):
    q, k, v = _qkv(shape, dtype)
    tol = TOLERANCE[dtype]
    for name, kwargs in _cases(shape).items():
        ours = ours_jit(q, k, v, **kwargs)
        ref = reference_jit(q, k, v, **kwargs)
        assert ours.dtype == ref.dtype == dtype, name
        np.testing.assert_allclose(
            np.asarray(ours, np.float32),
            np.asarray(ref, np.float32),
            atol=tol,
            rtol=tol,
            err_msg=name,
        )


@pytest.mark.parametrize("shape", SHAPES[:2])
def test_gradients_match_jax_nn(shape):
    q, k, v = _qkv(shape)
    cotangent = np.random.default_rng(7).standard_normal(q.shape[:3] + v.shape[-1:], np.float32)
    for name, kwargs in _cases(shape).items():

        def loss(attention, q, k, v, kwargs=kwargs):
            return jnp.sum(attention(q, k, v, **kwargs) * cotangent)

        grad = jax.jit(jax.grad(loss, argnums=(1, 2, 3)), static_argnums=0)
        ours = grad(dot_product_attention, q, k, v)
        ref = grad(jax.nn.dot_product_attention, q, k, v)
        for g_ours, g_ref in zip(ours, ref, strict=True):
            np.testing.assert_allclose(g_ours, g_ref, atol=1e-5, rtol=1e-5, err_msg=name)


def test_weights_rebuild_output_and_match_softmax():
    shape = (2, 6, 6, 3, 4)
    q, k, v = _qkv(shape)
    mask = _padding_mask(shape)
    out, weights = ours_jit(q, k, v, mask=mask, is_causal=True, return_weights=True)
    assert weights.shape == (2, 3, 6, 6)
    np.testing.assert_allclose(jnp.einsum("bnts,bsnh->btnh", weights, v), out, atol=1e-6)
    # independent closed form with numpy: masked softmax of QK^T / sqrt(d)
    logits = np.einsum("btnh,bsnh->bnts", np.asarray(q), np.asarray(k)) / np.sqrt(4)
    allowed = np.asarray(mask) & np.tril(np.ones((6, 6), bool))
    logits = np.where(allowed, logits, -np.inf)
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(weights, expected, atol=1e-6)


def test_fully_masked_rows_match_jax_nn_without_nan():
    q, k, v = _qkv((2, 4, 5, 2, 8))
    mask = jnp.ones((2, 2, 4, 5), bool).at[0, :, 1, :].set(False).at[1, 1].set(False)
    ours, weights = ours_jit(q, k, v, mask=mask, return_weights=True)
    ref = reference_jit(q, k, v, mask=mask)
    assert np.all(np.isfinite(ours))
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    # jax.nn gives such a row uniform weights: the mean of the values
    np.testing.assert_allclose(weights[0, :, 1], np.full((2, 5), 0.2), atol=1e-7)
    np.testing.assert_allclose(ours[0, 1], v[0].mean(axis=0), atol=1e-6)
    grads = jax.jit(jax.grad(lambda q: dot_product_attention(q, k, v, mask=mask).sum()))(q)
    assert np.all(np.isfinite(grads))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_large_logits_are_safe(dtype):
    q, k, v = _qkv((1, 4, 4, 2, 8), dtype, scale=300.0)
    ours = ours_jit(q, k, v, is_causal=True)
    ref = reference_jit(q, k, v, is_causal=True)
    assert np.all(np.isfinite(np.asarray(ours, np.float32)))
    np.testing.assert_allclose(
        np.asarray(ours, np.float32), np.asarray(ref, np.float32), atol=TOLERANCE[dtype]
    )


def test_dropout_on_weights_keeps_expectation_and_needs_key():
    shape = (1, 3, 4, 1, 2)
    q, k, v = _qkv(shape)
    _, weights = ours_jit(q, k, v, return_weights=True)
    keys = jax.random.split(jax.random.key(3), 4000)

    def dropped_weights(key):
        return dot_product_attention(q, k, v, dropout_rate=0.25, key=key, return_weights=True)[1]

    dropped = jax.jit(jax.vmap(dropped_weights))(keys)
    kept = dropped != 0
    assert abs(float(kept.mean()) - 0.75) < 0.01
    # kept weights are scaled by 1/(1-p)
    np.testing.assert_allclose(
        jnp.where(kept, dropped, 0), jnp.where(kept, weights / 0.75, 0), rtol=1e-6
    )
    # E[dropout(w)] = w: standard error of the mean is w*sqrt(p/(1-p)/n) < 0.01
    np.testing.assert_allclose(dropped.mean(axis=0), weights, atol=0.03)
    with pytest.raises(ValueError, match="key"):
        dot_product_attention(q, k, v, dropout_rate=0.25)
    with pytest.raises(ValueError, match="dropout_rate"):
        dot_product_attention(q, k, v, dropout_rate=1.0, key=keys[0])


def test_bad_inputs():
    q, k, v = _qkv((1, 3, 3, 1, 2))
    with pytest.raises(TypeError, match="mask"):
        dot_product_attention(q, k, v, mask=jnp.ones((1, 1, 3, 3), jnp.int32))
    with pytest.raises(ValueError, match="shape"):
        dot_product_attention(q[0], k, v)
    with pytest.raises(ValueError, match="num_heads"):
        multi_head_attention(10, 3)


def _float_masks(shape):
    """Float 0/1 masks built as Flax builds them (1 = attend), and the boolean they mean."""
    _, q_seq, k_seq, _, _ = shape
    causal = np.tril(np.ones((q_seq, k_seq), np.float32))[None, None]  # make_causal_mask
    padding = np.asarray(_padding_mask(shape), np.float32)
    combined = causal * padding  # combine_masks multiplies (logical and) its masks
    return combined, combined.astype(bool)


def test_float_zero_one_mask_equals_the_boolean_mask_eagerly_and_under_jit():
    shape = (2, 4, 4, 2, 8)
    q, k, v = _qkv(shape)
    float_mask, bool_mask = _float_masks(shape)
    reference = reference_jit(q, k, v, mask=jnp.asarray(bool_mask))
    eager = dot_product_attention(q, k, v, mask=float_mask)
    traced = jax.jit(lambda m: dot_product_attention(q, k, v, mask=m))(jnp.asarray(float_mask))
    np.testing.assert_allclose(eager, reference, atol=1e-6)
    np.testing.assert_allclose(traced, reference, atol=1e-6)


def test_flax_float_masks_are_accepted():
    linen = pytest.importorskip("flax.linen")
    shape = (2, 5, 5, 1, 4)
    q, k, v = _qkv(shape)
    valid = np.asarray(_padding_mask(shape))[:, 0, 0, :]  # [batch, seq]
    mask = linen.combine_masks(
        linen.make_causal_mask(jnp.ones(shape[:2])),
        linen.make_attention_mask(jnp.asarray(valid), jnp.asarray(valid)),
    )
    assert mask.dtype == jnp.float32
    expected_attend = np.tril(np.ones((5, 5), bool)) & valid[:, None, None, :] & valid[
        :, None, :, None
    ]
    reference = reference_jit(q, k, v, mask=jnp.asarray(expected_attend))
    np.testing.assert_allclose(dot_product_attention(q, k, v, mask=mask), reference, atol=1e-6)


def test_additive_float_mask_is_a_type_error_and_nan_under_jit():
    shape = (1, 3, 3, 1, 2)
    q, k, v = _qkv(shape)
    additive = np.where(np.tril(np.ones((3, 3), bool)), 0.0, -np.inf)[None, None]
    with pytest.raises(TypeError, match="boolean"):
        dot_product_attention(q, k, v, mask=additive)
    with pytest.raises(TypeError, match="boolean"):
        multi_head_attention(4, 2).apply(
            multi_head_attention(4, 2).init(jax.random.key(0)), jnp.ones((1, 3, 4)), mask=additive
        )
    traced = jax.jit(lambda m: dot_product_attention(q, k, v, mask=m))(jnp.asarray(additive))
    assert np.all(np.isnan(traced))  # cannot raise under tracing: never a silent wrong answer


def _manual_mha(params, x, num_heads):
    """Per-head loop with ordinary [d_model, head_dim] matrices, softmax in numpy."""
    x = np.asarray(x, np.float64)
    out = np.zeros_like(x) + np.asarray(params["out_bias"])
    head_dim = params["query"].shape[-1]
    for h in range(num_heads):
        q = x @ np.asarray(params["query"][:, h]) + np.asarray(params["query_bias"][h])
        k = x @ np.asarray(params["key"][:, h]) + np.asarray(params["key_bias"][h])
        v = x @ np.asarray(params["value"][:, h]) + np.asarray(params["value_bias"][h])
        logits = q @ k.transpose(0, 2, 1) / np.sqrt(head_dim)
        w = np.exp(logits - logits.max(-1, keepdims=True))
        w /= w.sum(-1, keepdims=True)
        out += (w @ v) @ np.asarray(params["out"][h])
    return out


def test_multi_head_attention_matches_per_head_loop_and_pruned_head_contributes_nothing():
    attention = multi_head_attention(12, 3)
    params = jax.jit(attention.init)(jax.random.key(0))
    apply = jax.jit(attention.apply)
    rng = np.random.default_rng(0)
    params = jax.tree.map(  # non-zero biases so they are exercised
        lambda p: p + 0.1 * rng.standard_normal(p.shape, np.float32), params
    )
    x = jnp.asarray(rng.standard_normal((2, 5, 12), np.float32))
    np.testing.assert_allclose(apply(params, x), _manual_mha(params, x, 3), atol=1e-4)

    mask, group_axis = head_groups(params)
    pruned = {
        name: jnp.moveaxis(
            jnp.moveaxis(leaf, group_axis[name], 0).at[1].set(0), 0, group_axis[name]
        )
        if mask[name]
        else leaf
        for name, leaf in params.items()
    }
    # the same network with head 1 removed, computed with two heads only
    two_heads = {
        name: jnp.delete(leaf, 1, axis=group_axis[name]) if mask[name] else leaf
        for name, leaf in params.items()
    }
    np.testing.assert_allclose(apply(pruned, x), _manual_mha(two_heads, x, 2), atol=1e-4)

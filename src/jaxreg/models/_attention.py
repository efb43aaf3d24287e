"""Scaled dot-product attention and multi-head attention with heads on their own axis."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg import _tree
from jaxreg.models._core import (
    Model,
    apply_dropout,
    check_rate,
    is_zero_rate,
    normal_init,
    resolve_rate,
)

PyTree = Any

HEAD_LEAVES = {
    "query": 1,
    "key": 1,
    "value": 1,
    "query_bias": 0,
    "key_bias": 0,
    "value_bias": 0,
    "out": 0,
}
"""The leaves of one head, with the axis that indexes heads in each (``out_bias`` is shared)."""


def _large_negative(dtype: Any) -> jax.Array:
    # The value jax.nn puts on masked logits (capped to float32 range because the softmax runs in
    # float32): a fully masked row then has equal logits, i.e. uniform weights, exactly as there.
    biggest = min(float(jnp.finfo(dtype).max), float(jnp.finfo(jnp.float32).max))
    return jnp.asarray(-0.7 * biggest, dtype=dtype)


def _attend_mask(mask: Any) -> tuple[jax.Array | None, jax.Array | None]:
    """The boolean mask (True = attend), and for a traced float mask a flag "not all 0/1".

    Flax's ``make_causal_mask`` and ``combine_masks`` build float masks of 1 (attend) and 0;
    they are converted. An additive mask (0 = attend, -inf = masked) means the opposite, so any
    float value other than 0 or 1 is refused; under tracing, where it cannot be raised, the
    output is NaN instead of silently wrong.
    """
    if mask is None:
        return None, None
    mask = jnp.asarray(mask)
    if mask.dtype == jnp.bool_:
        return mask, None
    if not jnp.issubdtype(mask.dtype, jnp.floating):
        raise TypeError(f"mask must be boolean (True = attend), got dtype {mask.dtype}")
    binary = (mask == 0) | (mask == 1)
    if _tree.is_concrete(mask):
        if not bool(np.all(binary)):
            raise TypeError(
                f"mask of dtype {mask.dtype} must hold only 0 and 1 (1 = attend, as Flax's "
                "make_causal_mask); an additive 0/-inf mask is not accepted: pass a boolean "
                "mask (True = attend), e.g. mask == 0 for an additive one"
            )
        return mask == 1, None
    return mask == 1, jnp.logical_not(jnp.all(binary))


def _check_qkv(q: jax.Array, k: jax.Array, v: jax.Array) -> None:
    for name, arr in (("q", q), ("k", k), ("v", v)):
        if jnp.ndim(arr) != 4:
            raise ValueError(
                f"{name} must have shape [batch, seq, heads, head_dim], got {jnp.shape(arr)}"
            )
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got {k.shape} and {v.shape}")
    if q.shape[0] != k.shape[0] or q.shape[2:] != k.shape[2:]:
        raise ValueError(f"q {q.shape} and k {k.shape} must agree on batch, heads and head_dim")


def dot_product_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    *,
    mask: jax.Array | None = None,
    is_causal: bool = False,
    dropout_rate: Any = 0.0,
    key: jax.Array | None = None,
    return_weights: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    r"""Scaled dot-product attention (Vaswani et al., 2017), with attention-weight dropout.

    .. math::
        \mathrm{Attention}(Q, K, V) = \mathrm{dropout}\Big(\mathrm{softmax}\Big(
            \frac{QK^\top}{\sqrt{d_k}}\Big)\Big) V

    per batch element and head. The logits and the softmax are computed in float32 (bfloat16 and
    float16 inputs are safe, and so are large logits: the softmax subtracts the row maximum);
    the weights are cast back to the dtype of ``v``. With dropout off this equals
    :func:`jax.nn.dot_product_attention` (XLA implementation), masks and fully masked rows
    included: a row with nothing to attend to gets uniform weights over all keys, as in jax.nn,
    never NaN.

    Args:
        q: queries, [batch, q_seq, heads, head_dim].
        k: keys, [batch, k_seq, heads, head_dim].
        v: values, same shape as ``k``.
        mask: boolean, True = attend; broadcastable to [batch, heads, q_seq, k_seq] (jax.nn's
            convention; e.g. a padding mask ``valid[:, None, None, :]``). A float mask of 0s
            and 1s (1 = attend: Flax's ``make_causal_mask`` and ``combine_masks``) is
            converted to boolean; a float mask with any other value (an additive 0/-inf mask)
            is a ``TypeError`` when concrete, and makes the output NaN when traced.
        is_causal: also mask keys after the query position (``tril`` of [q_seq, k_seq]).
        dropout_rate: drop probability in [0, 1) of the attention weights (inverted dropout);
            may be traced.
        key: PRNG key for dropout; needed when ``dropout_rate`` is not known to be 0.
        return_weights: also return the attention weights.

    Returns:
        The output [batch, q_seq, heads, head_dim], or ``(output, weights)`` with ``weights``
        [batch, heads, q_seq, k_seq] as applied (after dropout, when it is on), so that
        ``output = einsum("bnts,bsnh->btnh", weights, v)``.

    Raises:
        TypeError: for a mask that is neither boolean nor a float mask of 0s and 1s.
        ValueError: for q, k, v of the wrong shapes or a dropout rate outside [0, 1).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from jaxreg.models import dot_product_attention
        >>> q, k, v = jax.random.normal(jax.random.key(0), (3, 2, 4, 1, 8))
        >>> out, weights = dot_product_attention(q, k, v, is_causal=True, return_weights=True)
        >>> out.shape, weights.shape
        ((2, 4, 1, 8), (2, 1, 4, 4))
        >>> print(weights[0, 0, 0])   # the first query sees only the first key
        [1. 0. 0. 0.]
        >>> reference = jax.nn.dot_product_attention(q, k, v, is_causal=True)
        >>> bool(jnp.allclose(out, reference, atol=1e-6))
        True
    """
    _check_qkv(q, k, v)
    check_rate(dropout_rate, "dropout_rate")
    attend, not_binary = _attend_mask(mask)
    head_dim = q.shape[-1]
    logits_dtype = jnp.promote_types(q.dtype, jnp.float32)
    scale = 1.0 / np.sqrt(head_dim)
    # Scaling q (T·H entries) rather than the logits (T·S) saves XLA:CPU a materialised
    # [batch, heads, q_seq, k_seq] broadcast in the backward pass; half-precision q is scaled
    # after the float32 matmul instead, so that the scale adds no rounding in 8 mantissa bits.
    scale_q = jnp.finfo(q.dtype).bits >= 32
    logits = jnp.einsum(
        "btnh,bsnh->bnts", q * scale if scale_q else q, k, preferred_element_type=logits_dtype
    )
    if not scale_q:
        logits = logits * scale

    if is_causal:
        causal = jnp.tril(jnp.ones((q.shape[1], k.shape[1]), dtype=bool))
        attend = causal if attend is None else jnp.logical_and(attend, causal)
    if attend is not None:
        logits = jnp.where(attend, logits, _large_negative(logits_dtype))

    weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(v.dtype)
    if not is_zero_rate(dropout_rate):
        weights = apply_dropout(weights, dropout_rate, key, train=True, name="dropout_rate")
    out = jnp.einsum("bnts,bsnh->btnh", weights, v)
    if not_binary is not None:
        out = jnp.where(not_binary, jnp.nan, out)
        weights = jnp.where(not_binary, jnp.nan, weights)
    if return_weights:
        return out, weights
    return out


def multi_head_attention(d_model: int, num_heads: int, *, dropout_rate: Any = 0.0) -> Model:
    r"""Multi-head self-attention whose parameters keep each head on its own axis.

    .. math::
        Q_h = xW^Q_h + b^Q_h,\ K_h = xW^K_h + b^K_h,\ V_h = xW^V_h + b^V_h, \qquad
        \mathrm{out} = \sum_h \mathrm{Attention}(Q_h, K_h, V_h)\, W^O_h + b^O

    Params (``head_dim = d_model // num_heads``):

    ================ =================================== ==============
    name             shape                               head axis
    ================ =================================== ==============
    ``query``        [d_model, heads, head_dim]          1
    ``key``          [d_model, heads, head_dim]          1
    ``value``        [d_model, heads, head_dim]          1
    ``query_bias``   [heads, head_dim]                   0
    ``key_bias``     [heads, head_dim]                   0
    ``value_bias``   [heads, head_dim]                   0
    ``out``          [heads, head_dim, d_model]          0
    ``out_bias``     [d_model]                           (shared)
    ================ =================================== ==============

    Slice h along the head axis of the first seven leaves is everything head h owns, so
    ``jaxreg.prox.group_lasso(..., group_axis=..., joint=True)`` over them (see
    :func:`head_groups`) zeroes whole heads; a zeroed head has zero values and zero output rows
    and contributes exactly nothing.

    ``apply(params, x, *, mask=None, key=None, train=False, dropout_rate=None)`` maps
    x [batch, seq, d_model] to [batch, seq, d_model]; ``mask`` is as in
    :func:`dot_product_attention`; dropout (on the attention weights) only when ``train=True``,
    with ``dropout_rate`` at apply time overriding the built-in one.

    Args:
        d_model: model width, divisible by ``num_heads``.
        num_heads: number of heads.
        dropout_rate: default drop probability of the attention weights, in [0, 1).

    Returns:
        A :class:`Model`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from jaxreg.models import multi_head_attention
        >>> attention = multi_head_attention(16, 4)
        >>> params = attention.init(jax.random.key(0))
        >>> params["query"].shape, params["out"].shape
        ((16, 4, 4), (4, 4, 16))
        >>> attention.apply(params, jnp.ones((2, 5, 16))).shape
        (2, 5, 16)
    """
    if d_model <= 0 or num_heads <= 0 or d_model % num_heads:
        raise ValueError(
            f"d_model must be a positive multiple of num_heads, got d_model={d_model}, "
            f"num_heads={num_heads}"
        )
    check_rate(dropout_rate, "dropout_rate")
    head_dim = d_model // num_heads
    default_rate = dropout_rate  # apply's own dropout_rate argument overrides it

    def init(key: jax.Array) -> dict[str, jax.Array]:
        kq, kk, kv, ko = jax.random.split(key, 4)
        in_shape = (d_model, num_heads, head_dim)
        zeros_head = jnp.zeros((num_heads, head_dim), jnp.float32)
        return {
            "query": normal_init(kq, in_shape, d_model, 1.0),
            "key": normal_init(kk, in_shape, d_model, 1.0),
            "value": normal_init(kv, in_shape, d_model, 1.0),
            "out": normal_init(ko, (num_heads, head_dim, d_model), d_model, 1.0),
            "query_bias": zeros_head,
            "key_bias": zeros_head,
            "value_bias": zeros_head,
            "out_bias": jnp.zeros((d_model,), jnp.float32),
        }

    def apply(
        params: dict[str, jax.Array],
        x: jax.Array,
        *,
        mask: jax.Array | None = None,
        key: jax.Array | None = None,
        train: bool = False,
        dropout_rate: Any = None,
    ) -> jax.Array:
        rate = resolve_rate(default_rate, dropout_rate)
        q = jnp.einsum("bsd,dnh->bsnh", x, params["query"]) + params["query_bias"]
        k = jnp.einsum("bsd,dnh->bsnh", x, params["key"]) + params["key_bias"]
        v = jnp.einsum("bsd,dnh->bsnh", x, params["value"]) + params["value_bias"]
        heads = dot_product_attention(
            q, k, v, mask=mask, dropout_rate=rate if train else 0.0, key=key
        )
        return jnp.einsum("bsnh,nhd->bsd", heads, params["out"]) + params["out_bias"]

    return Model(init, apply)


def head_groups(params: PyTree, *, block: int | None = None) -> tuple[PyTree, PyTree]:
    """The ``mask`` and ``group_axis`` that make each attention head one group.

    For ``jaxreg.prox.group_lasso`` / ``jaxreg.prox_group_lasso`` with ``joint=True``: the mask
    selects the seven per-head leaves of one attention layer (see :func:`multi_head_attention`),
    and ``group_axis`` gives each leaf its head axis, so group h is head h's query, key, value
    (weights and biases) and output weights together.

    Args:
        params: the params of :func:`multi_head_attention`, or of
            :func:`transformer_classifier` (then ``block`` picks the attention layer; it may be
            left out when there is one block).
        block: index of the transformer block whose heads form the groups. With several blocks,
            use one proximal step per block: joint groups across blocks would tie head h of
            every block together.

    Returns:
        ``(mask, group_axis)``, two pytrees with the structure of ``params``.

    Example:
        >>> import jax
        >>> from jaxreg import prox
        >>> from jaxreg.models import head_groups, multi_head_attention
        >>> params = multi_head_attention(8, 2).init(jax.random.key(0))
        >>> mask, group_axis = head_groups(params)
        >>> selected = {name: leaf for name, leaf in params.items() if mask[name]}
        >>> axes = {name: group_axis[name] for name in selected}
        >>> pruned = prox.group_lasso(selected, 100.0, group_axis=axes, joint=True)
        >>> float(abs(pruned["out"]).sum())   # a strong penalty removes every head
        0.0
    """
    if isinstance(params, dict) and "blocks" in params:
        blocks = params["blocks"]
        if block is None:
            if len(blocks) != 1:
                raise ValueError(
                    f"params have {len(blocks)} transformer blocks: pass block=i and use one "
                    "proximal step per block"
                )
            block = 0
        if not -len(blocks) <= block < len(blocks):
            raise ValueError(f"block={block} is out of range for {len(blocks)} blocks")
        block = block % len(blocks)
        mask = jax.tree.map(lambda _: False, params)
        group_axis = jax.tree.map(lambda _: 0, params)
        attention_mask, attention_axes = head_groups(blocks[block]["attention"])
        mask["blocks"][block]["attention"] = attention_mask
        group_axis["blocks"][block]["attention"] = attention_axes
        return mask, group_axis
    if not isinstance(params, dict) or not set(HEAD_LEAVES) <= set(params):
        raise ValueError(
            "params must be those of multi_head_attention (with keys "
            f"{sorted(HEAD_LEAVES)}) or of transformer_classifier"
        )
    mask = {name: name in HEAD_LEAVES for name in params}
    group_axis = {name: HEAD_LEAVES.get(name, 0) for name in params}
    return mask, group_axis

"""A small pre-norm transformer encoder that classifies sequences of token features."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxreg.models._attention import multi_head_attention
from jaxreg.models._core import (
    Model,
    apply_dropout,
    check_rate,
    dense_init,
    resolve_rate,
    split_or_none,
)

PyTree = Any


def _layer_norm_init(width: int) -> dict[str, jax.Array]:
    return {"scale": jnp.ones((width,), jnp.float32), "bias": jnp.zeros((width,), jnp.float32)}


def _layer_norm(params: dict[str, jax.Array], x: jax.Array, eps: float = 1e-6) -> jax.Array:
    # statistics in float32 so that bf16 activations normalise accurately
    x32 = x.astype(jnp.float32)
    mean = x32.mean(axis=-1, keepdims=True)
    var = jnp.square(x32 - mean).mean(axis=-1, keepdims=True)
    normed = (x32 - mean) * jax.lax.rsqrt(var + eps)
    return (normed * params["scale"] + params["bias"]).astype(x.dtype)


def transformer_classifier(
    d_in: int,
    num_classes: int,
    *,
    d_model: int = 32,
    num_heads: int = 4,
    num_blocks: int = 1,
    mlp_ratio: int = 2,
    dropout_rate: Any = 0.0,
) -> Model:
    r"""Token features [batch, seq, d_in] → attention blocks → mean-pooled class logits.

    .. math::
        h_0 = xW_{in} + b_{in},\qquad
        h' = h + \mathrm{drop}(\mathrm{MHA}(\mathrm{LN}(h))),\qquad
        h'' = h' + \mathrm{drop}(\mathrm{MLP}(\mathrm{LN}(h'))),

    then ``logits = mean_s(LN(h_L))_s W_{head} + b_{head}``, the mean over valid positions only.
    The blocks are pre-norm (Xiong et al., 2020); the block MLP is
    ``d_model → mlp_ratio·d_model → d_model`` with GELU. Dropout (when ``train=True``) acts on
    the attention weights and on each residual branch.

    Params: ``{"embed": {"w", "b"}, "blocks": [{"attention_norm", "attention", "mlp_norm",
    "mlp": [{"w", "b"}, {"w", "b"}]}, ...], "final_norm", "head": {"w", "b"}}`` where each
    ``"attention"`` is the params dict of :func:`multi_head_attention` (heads on their own axis;
    :func:`head_groups` gives the mask and group axes that prune whole heads) and each norm is
    ``{"scale", "bias"}``.

    ``apply(params, x, *, mask=None, key=None, train=False, dropout_rate=None)``:
    ``mask`` [batch, seq] is True for real tokens and False for padding (padding is neither
    attended to nor pooled); ``dropout_rate`` at apply time overrides the built-in one and may be
    traced. Returns logits [batch, num_classes].

    Args:
        d_in: width of the token features.
        num_classes: number of output logits.
        d_model: model width (a multiple of ``num_heads``).
        num_heads: attention heads per block.
        num_blocks: number of transformer blocks.
        mlp_ratio: hidden width of each block MLP, as a multiple of ``d_model``.
        dropout_rate: default dropout probability in [0, 1).

    Returns:
        A :class:`Model`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from jaxreg.models import transformer_classifier
        >>> net = transformer_classifier(d_in=3, num_classes=2, d_model=8, num_heads=2)
        >>> params = net.init(jax.random.key(0))
        >>> x = jnp.ones((4, 6, 3))
        >>> valid = jnp.arange(6) < jnp.array([[6], [3], [1], [4]])
        >>> net.apply(params, x, mask=valid).shape
        (4, 2)
    """
    if num_blocks < 1 or mlp_ratio < 1:
        raise ValueError(f"num_blocks and mlp_ratio must be >= 1, got {num_blocks} and {mlp_ratio}")
    check_rate(dropout_rate, "dropout_rate")
    attention = multi_head_attention(d_model, num_heads)
    hidden = mlp_ratio * d_model
    default_rate = dropout_rate  # apply's own dropout_rate argument overrides it

    def init(key: jax.Array) -> PyTree:
        embed_key, head_key, *block_keys = jax.random.split(key, 2 + num_blocks)
        blocks = []
        for block_key in block_keys:
            attention_key, up_key, down_key = jax.random.split(block_key, 3)
            blocks.append(
                {
                    "attention_norm": _layer_norm_init(d_model),
                    "attention": attention.init(attention_key),
                    "mlp_norm": _layer_norm_init(d_model),
                    "mlp": [
                        dense_init(up_key, d_model, hidden, 2.0),
                        dense_init(down_key, hidden, d_model, 1.0),
                    ],
                }
            )
        return {
            "embed": dense_init(embed_key, d_in, d_model, 1.0),
            "blocks": blocks,
            "final_norm": _layer_norm_init(d_model),
            "head": dense_init(head_key, d_model, num_classes, 1.0),
        }

    def apply(
        params: PyTree,
        x: jax.Array,
        *,
        mask: jax.Array | None = None,
        key: jax.Array | None = None,
        train: bool = False,
        dropout_rate: Any = None,
    ) -> jax.Array:
        rate = resolve_rate(default_rate, dropout_rate)
        if len(params["blocks"]) != num_blocks:
            raise ValueError(f"params have {len(params['blocks'])} blocks, expected {num_blocks}")
        if mask is not None and jnp.shape(mask) != jnp.shape(x)[:2]:
            raise ValueError(f"mask must have shape [batch, seq] = {jnp.shape(x)[:2]}")
        attend = None if mask is None else mask[:, None, None, :]
        h = x @ params["embed"]["w"] + params["embed"]["b"]
        for block, block_key in zip(params["blocks"], split_or_none(key, num_blocks), strict=True):
            attention_key, residual_key, mlp_key = split_or_none(block_key, 3)
            branch = attention.apply(
                block["attention"],
                _layer_norm(block["attention_norm"], h),
                mask=attend,
                key=attention_key,
                train=train,
                dropout_rate=rate,
            )
            h = h + apply_dropout(branch, rate, residual_key, train=train, name="dropout_rate")
            up, down = block["mlp"]
            branch = jax.nn.gelu(_layer_norm(block["mlp_norm"], h) @ up["w"] + up["b"])
            branch = branch @ down["w"] + down["b"]
            h = h + apply_dropout(branch, rate, mlp_key, train=train, name="dropout_rate")
        h = _layer_norm(params["final_norm"], h)
        if mask is None:
            pooled = h.mean(axis=1)
        else:
            weights = mask.astype(h.dtype)[..., None]
            pooled = (h * weights).sum(axis=1) / jnp.maximum(weights.sum(axis=1), 1)
        return pooled @ params["head"]["w"] + params["head"]["b"]

    return Model(init, apply)

"""Multilayer perceptron with dropout on the hidden activations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax

from jaxreg import _checks
from jaxreg.models._core import (
    INITS,
    Model,
    apply_dropout,
    check_rate,
    dense_init,
    resolve_rate,
    split_or_none,
)

_RELU_LIKE = (jax.nn.relu, jax.nn.leaky_relu, jax.nn.gelu, jax.nn.elu, jax.nn.silu)


def mlp(
    sizes: Sequence[int],
    *,
    activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
    dropout_rate: Any = 0.0,
    init: str = "normal",
) -> Model:
    r"""A fully connected network, ``sizes[0]`` inputs to ``sizes[-1]`` outputs.

    .. math::
        z_l = h_{l-1} W_l + b_l, \qquad h_l = \mathrm{dropout}(f(z_l)) \quad (l < L),
        \qquad \mathrm{output} = h_{L-1} W_L + b_L

    Params are a list with one ``{"w": W[in, out], "b": b[out]}`` per layer. With
    ``init="normal"`` ``W`` is drawn from a normal with variance 2/fan_in for ReLU-like
    activations (He et al., 2015) and 1/fan_in otherwise (LeCun), and biases start at zero; with
    ``init="uniform"`` weights *and* biases are drawn uniformly on [−1/√fan_in, 1/√fan_in], as
    ``torch.nn.Linear`` does (what a PyTorch model such as LassoNet's starts from). The last
    layer is linear (logits or regression outputs).

    ``apply(params, x, *, key=None, train=False, dropout_rate=None, return_activations=False)``:

    - ``x``: [..., sizes[0]]; the output is [..., sizes[-1]].
    - dropout acts on every hidden activation when ``train=True``; ``key`` is split once per
      hidden layer, so layers get independent masks.
    - ``dropout_rate`` given to ``apply`` overrides the one given here; it may be traced, so one
      compiled program can sweep it.
    - ``return_activations=True`` returns ``(output, pre_activations)``: one [..., units] array
      ``z_l`` per hidden layer, before the activation — what :func:`jaxreg.penalties.contractive`
      takes together with ``[p["w"] for p in params[:-1]]``.

    Args:
        sizes: layer widths, input first, at least two entries.
        activation: elementwise nonlinearity of the hidden layers.
        dropout_rate: default drop probability in [0, 1) of the hidden activations.
        init: ``"normal"`` (He/LeCun weights, zero biases) or ``"uniform"`` (PyTorch's
            ``nn.Linear`` default).

    Returns:
        A :class:`Model`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from jaxreg.models import mlp
        >>> net = mlp([3, 16, 2], dropout_rate=0.1)
        >>> params = net.init(jax.random.key(0))
        >>> [p["w"].shape for p in params]
        [(3, 16), (16, 2)]
        >>> out, pre = net.apply(params, jnp.ones((5, 3)), return_activations=True)
        >>> out.shape, [z.shape for z in pre]
        ((5, 2), [(5, 16)])
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or any(s <= 0 for s in sizes):
        raise ValueError(f"sizes must list at least two positive widths, got {sizes}")
    check_rate(dropout_rate, "dropout_rate")
    scheme = _checks.check_choice(init, "init", INITS)  # init is the Model's function below
    gain = 2.0 if activation in _RELU_LIKE else 1.0
    num_layers = len(sizes) - 1
    default_rate = dropout_rate  # apply's own dropout_rate argument overrides it

    def init(key: jax.Array) -> list[dict[str, jax.Array]]:
        keys = jax.random.split(key, num_layers)
        return [
            dense_init(k, fan_in, fan_out, gain if i < num_layers - 1 else 1.0, scheme)
            for i, (k, fan_in, fan_out) in enumerate(zip(keys, sizes[:-1], sizes[1:], strict=True))
        ]

    def apply(
        params: Sequence[dict[str, jax.Array]],
        x: jax.Array,
        *,
        key: jax.Array | None = None,
        train: bool = False,
        dropout_rate: Any = None,
        return_activations: bool = False,
    ) -> jax.Array | tuple[jax.Array, list[jax.Array]]:
        rate = resolve_rate(default_rate, dropout_rate)
        if len(params) != num_layers:
            raise ValueError(f"params has {len(params)} layers, this mlp has {num_layers}")
        layer_keys = split_or_none(key, max(num_layers - 1, 1))
        hidden = x
        pre_activations = []
        for layer, layer_key in zip(params[:-1], layer_keys, strict=False):
            z = hidden @ layer["w"] + layer["b"]
            pre_activations.append(z)
            hidden = apply_dropout(activation(z), rate, layer_key, train=train, name="dropout_rate")
        output = hidden @ params[-1]["w"] + params[-1]["b"]
        if return_activations:
            return output, pre_activations
        return output

    return Model(init, apply)

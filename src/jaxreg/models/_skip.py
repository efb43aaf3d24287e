"""An MLP with a linear skip layer from its inputs to its outputs (LassoNet's network)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax

from jaxreg.models._core import Model, normal_init, uniform_init
from jaxreg.models._mlp import mlp


def skip_mlp(
    sizes: Sequence[int],
    *,
    activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
    dropout_rate: Any = 0.0,
    init: str = "normal",
) -> Model:
    r"""A fully connected network plus a linear skip layer from the inputs to the outputs.

    .. math::
        \mathrm{output} = x\,\theta + \mathrm{mlp}(x)

    Params are ``{"mlp": <the params of jaxreg.models.mlp(sizes)>, "skip": θ[sizes[0],
    sizes[-1]]}``; θ is drawn from a normal with variance 1/fan_in (``init="normal"``) or uniformly
    on ±1/√fan_in (``init="uniform"``, as ``torch.nn.Linear``). With
    :class:`jaxreg.regularizers.HierarchicalLasso` (``skip="skip"``, ``layer="mlp.0.w"``) it is
    LassoNet: an input feature reaches the hidden layers only while its skip row θ_j is nonzero.
    ``apply`` takes the arguments of :func:`jaxreg.models.mlp`'s (dropout, ``train``,
    ``return_activations``).

    Args:
        sizes: the widths of :func:`jaxreg.models.mlp` (inputs first, outputs last); the skip
            layer maps ``sizes[0]`` inputs to ``sizes[-1]`` outputs.
        activation: the hidden activation, as in :func:`jaxreg.models.mlp`.
        dropout_rate: the hidden layers' default dropout, as in :func:`jaxreg.models.mlp`.
        init: ``"normal"`` or ``"uniform"``, for every layer, as in :func:`jaxreg.models.mlp`.

    Returns:
        A :class:`Model` whose params are ``{"mlp": ..., "skip": ...}``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from jaxreg.models import skip_mlp
        >>> net = skip_mlp([3, 16, 2])
        >>> params = net.init(jax.random.key(0))
        >>> params["skip"].shape, [p["w"].shape for p in params["mlp"]]
        ((3, 2), [(3, 16), (16, 2)])
        >>> net.apply(params, jnp.ones((5, 3))).shape
        (5, 2)
    """
    network = mlp(sizes, activation=activation, dropout_rate=dropout_rate, init=init)
    uniform = init == "uniform"  # the name init is the Model's init function below
    inputs, outputs = int(sizes[0]), int(sizes[-1])

    def init(key: jax.Array) -> dict[str, Any]:
        mlp_key, skip_key = jax.random.split(key)
        return {
            "mlp": network.init(mlp_key),
            "skip": uniform_init(skip_key, (inputs, outputs), inputs)
            if uniform
            else normal_init(skip_key, (inputs, outputs), inputs, 1.0),
        }

    def apply(params: dict[str, Any], x: jax.Array, **options: Any) -> Any:
        out = network.apply(params["mlp"], x, **options)
        linear = x @ params["skip"]
        if options.get("return_activations", False):
            return out[0] + linear, out[1]
        return out + linear

    return Model(init, apply)

"""Flax (linen and nnx) and Equinox modules as :class:`Model` pairs, so that the models people
already have go through :func:`jaxreg.fit_path` and the sweeps unchanged.

flax and equinox are optional: each adapter imports its library when it is called, and importing
jaxreg never needs them (``pip install "jaxreg[flax]"`` or ``"jaxreg[equinox]"``).

How ``apply(params, x, *, key=None, train=False)`` reaches the module, in all three adapters:

- ``train`` becomes the module's own flag when its ``__call__`` has one: ``deterministic`` or
  ``inference`` get ``not train``, ``train`` gets ``train``. A module whose ``__call__`` has none
  is called without one; nnx and Equinox modules are in addition switched to training or
  inference mode as a whole (``module.train()`` / ``module.eval()``,
  ``equinox.nn.inference_mode``), which is where their dropout layers keep the flag.
- ``key`` feeds dropout. Training a module that has dropout without a key is a ``ValueError``,
  as for jaxreg's own models.
- Only trainable parameters are carried: modules with mutable state (BatchNorm statistics, caches)
  are a ``TypeError`` naming the state, since a training step of :func:`jaxreg.fit_path` returns
  parameters only. Use a normalization without running statistics (LayerNorm).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxreg.models._core import Model, missing_key_error

__all__ = ["from_equinox", "from_flax", "from_nnx"]

# the mode arguments understood, and whether each is True in training
_MODE_FLAGS = {"deterministic": False, "inference": False, "train": True}


def _call_parameters(call: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """The named parameters of ``call`` (none when its signature cannot be read)."""
    try:
        return dict(inspect.signature(call).parameters)
    except (TypeError, ValueError):
        return {}


def _mode_kwargs(call: Callable[..., Any], train: bool) -> dict[str, bool]:
    """``{flag: value}`` for the first mode flag ``call`` takes, set for ``train``; else ``{}``."""
    parameters = _call_parameters(call)
    for flag, true_in_training in _MODE_FLAGS.items():
        if flag in parameters:
            return {flag: train if true_in_training else not train}
    return {}


def _check_type(module: Any, expected: type, adapter: str, hint: str) -> None:
    if not isinstance(module, expected):
        raise TypeError(
            f"{adapter} takes a {expected.__module__}.{expected.__qualname__}, got "
            f"{type(module).__name__}{hint}"
        )


def _reject_state(adapter: str, kinds: list[str]) -> None:
    """``TypeError`` for a module with mutable state (``kinds`` names it), if any."""
    if kinds:
        raise TypeError(
            f"{adapter}: the module keeps mutable state ({', '.join(sorted(set(kinds)))}), such "
            "as BatchNorm's running statistics; a jaxreg Model carries trainable parameters only, "
            "so use a module without it (LayerNorm instead of BatchNorm)"
        )


def from_flax(module: Any, sample_input: Any) -> Model:
    r"""A :class:`Model` from a ``flax.linen`` module.

    ``init(key)`` initializes the module afresh, ``module.init({"params": key}, sample)`` with
    ``sample`` zeros shaped like ``sample_input``, and returns ``variables["params"]`` (two keys
    give two initializations). ``apply(params, x, *, key=None, train=False)`` is
    ``module.apply({"params": params}, x, rngs={"dropout": key})`` (no ``rngs`` without a key),
    with ``train`` passed as the module's ``deterministic`` / ``train`` argument when its
    ``__call__`` has one (and set to inference while initializing).

    Args:
        module: a ``flax.linen.Module``.
        sample_input: an array (or ``jax.ShapeDtypeStruct``) with the shape and dtype of a batch
            of inputs; only its shape and dtype are used.

    Returns:
        A :class:`Model`.

    Raises:
        TypeError: ``module`` is not a linen module, or has variable collections besides
            ``"params"`` (BatchNorm's ``"batch_stats"``).
        ValueError: at apply time, the module draws from its ``"dropout"`` RNG stream and no
            ``key`` was given.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from flax import linen as nn
        >>> from jaxreg.models import from_flax
        >>> module = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(3)])
        >>> model = from_flax(module, jnp.zeros((1, 4)))
        >>> params = model.init(jax.random.key(0))
        >>> jax.tree.map(jnp.shape, params)
        {'layers_0': {'bias': (8,), 'kernel': (4, 8)}, 'layers_2': {'bias': (3,), 'kernel': (8, 3)}}
        >>> x = jnp.ones((2, 4))
        >>> bool(jnp.array_equal(model.apply(params, x), module.apply({"params": params}, x)))
        True
    """
    import flax.errors
    from flax import linen

    _check_type(module, linen.Module, "from_flax", " (use from_nnx for flax.nnx modules)")
    sample = jax.tree.map(lambda leaf: jnp.zeros(jnp.shape(leaf), leaf.dtype), sample_input)
    call = module.__call__

    def init_variables(key):
        # a dropout stream too, for modules that draw from it whatever their mode
        rngs = {"params": key, "dropout": jax.random.fold_in(key, 1)}
        return module.init(rngs, sample, **_mode_kwargs(call, train=False))

    collections = jax.eval_shape(init_variables, jax.random.key(0))
    _reject_state("from_flax", [name for name in collections if name != "params"])

    def init(key):
        return init_variables(key)["params"]

    def apply(params, x, *, key=None, train=False):
        rngs = None if key is None else {"dropout": key}
        try:
            return module.apply({"params": params}, x, rngs=rngs, **_mode_kwargs(call, train))
        except flax.errors.InvalidRngError as error:
            if key is not None:
                raise
            raise missing_key_error(
                f"the Flax module {type(module).__name__}, which draws from its 'dropout' RNG "
                "stream,"
            ) from error

    return Model(init=init, apply=apply)


def _fresh_rng_state(rng_state: Any, key: jax.Array) -> Any:
    """``rng_state`` with every stream's key replaced by an independent key drawn from ``key``."""
    leaves, treedef = jax.tree.flatten(rng_state)
    stream_keys = jax.random.split(key, max(len(leaves), 1))
    fresh = [
        jax.random.split(stream_key, jnp.shape(leaf))
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)
        else leaf
        for leaf, stream_key in zip(leaves, stream_keys, strict=False)
    ]
    return jax.tree.unflatten(treedef, fresh)


def from_nnx(module: Any) -> Model:
    r"""A :class:`Model` from a ``flax.nnx`` module.

    ``init(key)`` returns the module's current parameters — its ``nnx.Param`` state, as
    ``nnx.split(module, nnx.Param, ...)`` gives it — and ignores ``key`` (an nnx module is
    initialized when it is built). ``apply(params, x, *, key=None, train=False)`` merges the
    parameters back into a copy of the module (the module itself is never changed), puts the
    copy in training or inference mode (``module.train()`` / ``module.eval()``, which set the
    ``deterministic`` flag of its dropout layers), and calls it on ``x``. With a ``key``, every
    RNG stream the module keeps (those of ``nnx.Dropout(rate, rngs=rngs)``) gets an independent
    key drawn from it, and a ``__call__`` that takes ``rngs`` also gets ``nnx.Rngs(dropout=key)``.

    Args:
        module: a ``flax.nnx.Module``.

    Returns:
        A :class:`Model`.

    Raises:
        TypeError: ``module`` is not an nnx module, or keeps state other than parameters and RNG
            streams (``nnx.BatchStat`` of BatchNorm, caches).
        ValueError: at apply time, training a module with an ``nnx.Dropout`` of rate above zero
            without a ``key``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from flax import nnx
        >>> from jaxreg.models import from_nnx
        >>> module = nnx.Linear(4, 3, rngs=nnx.Rngs(0))
        >>> model = from_nnx(module)
        >>> params = model.init(jax.random.key(1))   # the module's own parameters
        >>> bool(jnp.array_equal(params["kernel"][...], module.kernel[...]))
        True
        >>> x = jnp.ones((2, 4))
        >>> bool(jnp.array_equal(model.apply(params, x), module(x)))
        True
    """
    from flax import nnx

    _check_type(module, nnx.Module, "from_nnx", " (use from_flax for flax.linen modules)")
    graphdef, params, rng_state, rest = nnx.split(module, nnx.Param, nnx.RngState, ...)
    is_variable = lambda node: isinstance(node, nnx.Variable)
    _reject_state(
        "from_nnx", [type(v).__name__ for v in jax.tree.leaves(rest, is_leaf=is_variable)]
    )
    has_dropout = any(
        isinstance(node, nnx.Dropout) and node.rate > 0 for _, node in nnx.iter_graph(module)
    )
    takes_rngs = "rngs" in _call_parameters(module.__call__)

    def apply(params, x, *, key=None, train=False):
        if train and key is None and has_dropout:
            raise missing_key_error(
                f"training the nnx module {type(module).__name__}, which has dropout,"
            )
        kwargs = _mode_kwargs(module.__call__, train)
        if key is not None:
            key, call_key = jax.random.split(key)
            if takes_rngs:
                kwargs["rngs"] = nnx.Rngs(dropout=call_key)
        streams = rng_state if key is None else _fresh_rng_state(rng_state, key)
        copy = nnx.merge(graphdef, params, streams)
        copy.train() if train else copy.eval()
        return copy(x, **kwargs)

    return Model(init=lambda key: params, apply=apply)


def from_equinox(module: Any) -> Model:
    r"""A :class:`Model` from an Equinox module that maps one example.

    ``init(key)`` returns the module's current parameters,
    ``equinox.filter(module, equinox.is_inexact_array)`` (the module with every non-float leaf
    replaced by None), and ignores ``key`` (an Equinox module is initialized when it is built).
    ``apply(params, x, *, key=None, train=False)`` combines them with the rest of the module,
    sets its inference mode to ``not train`` (``equinox.nn.inference_mode``; a ``__call__`` with
    an ``inference`` argument also gets it) and maps it over the leading batch axis of ``x`` with
    ``jax.vmap``, example b getting ``key=jax.random.split(key, batch)[b]`` when a key is given
    and ``__call__`` takes one:

    .. math::
        \mathrm{apply}(\theta, x)_b = \mathrm{module}_\theta(x_b)

    Args:
        module: an ``equinox.Module`` whose ``__call__`` takes a single example.

    Returns:
        A :class:`Model`.

    Raises:
        TypeError: ``module`` is not an Equinox module, or keeps state (an
            ``equinox.nn.StateIndex``: BatchNorm, ``equinox.nn.State``).
        ValueError: at apply time, training a module with an ``equinox.nn.Dropout`` of rate
            above zero without a ``key``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import equinox as eqx
        >>> from jaxreg.models import from_equinox
        >>> module = eqx.nn.MLP(4, 3, width_size=8, depth=1, key=jax.random.key(0))
        >>> model = from_equinox(module)
        >>> params = model.init(jax.random.key(1))   # the module's own parameters
        >>> params.layers[0].weight.shape              # Linear weights are [out, in]
        (8, 4)
        >>> x = jnp.ones((2, 4))
        >>> bool(jnp.allclose(model.apply(params, x), jax.vmap(module)(x)))
        True
    """
    import equinox as eqx

    _check_type(module, eqx.Module, "from_equinox", "")
    is_layer = lambda node: isinstance(node, eqx.nn.StateIndex | eqx.nn.Dropout)
    layers = jax.tree.leaves(module, is_leaf=is_layer)
    _reject_state(
        "from_equinox", [type(n).__name__ for n in layers if isinstance(n, eqx.nn.StateIndex)]
    )
    has_dropout = any(isinstance(n, eqx.nn.Dropout) and n.p > 0 for n in layers)
    params, static = eqx.partition(module, eqx.is_inexact_array)
    takes_key = "key" in _call_parameters(module.__call__)

    def apply(params, x, *, key=None, train=False):
        if train and key is None and has_dropout:
            raise missing_key_error(
                f"training the Equinox module {type(module).__name__}, which has dropout,"
            )
        model = eqx.nn.inference_mode(eqx.combine(params, static), value=not train)
        kwargs = _mode_kwargs(model.__call__, train)
        if key is None or not takes_key:
            return jax.vmap(lambda example: model(example, **kwargs))(x)
        keys = jax.random.split(key, jnp.shape(x)[0])
        return jax.vmap(lambda example, k: model(example, key=k, **kwargs))(x, keys)

    return Model(init=lambda key: params, apply=apply)

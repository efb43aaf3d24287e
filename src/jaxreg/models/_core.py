"""The :class:`Model` pair and inverted dropout, shared by every model in :mod:`jaxreg.models`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg import _tree

PyTree = Any


class Model(NamedTuple):
    """A model as a pair of pure functions, in the spirit of ``optax.GradientTransformation``.

    Attributes:
        init: ``init(key) -> params``, a pytree of arrays drawn from the PRNG ``key``.
        apply: ``apply(params, x, *, key=None, train=False, ...) -> output``. ``key`` feeds
            dropout and is only needed when training with a dropout rate above zero.
    """

    init: Callable[[jax.Array], PyTree]
    apply: Callable[..., Any]


def is_zero_rate(rate: Any) -> bool:
    """True when ``rate`` is concretely zero (a traced rate is never known to be zero)."""
    return _tree.is_concrete(rate) and bool(np.all(np.asarray(rate) == 0))


def check_rate(rate: Any, name: str) -> None:
    """``ValueError`` naming ``name`` unless a concrete rate lies in [0, 1)."""
    _tree.check_unit_interval(rate, name, closed_right=False)


def resolve_rate(default_rate: Any, override: Any) -> Any:
    """The dropout rate an ``apply`` uses: its ``dropout_rate`` argument if given, else the
    model's own; checked to lie in [0, 1) when concrete."""
    rate = default_rate if override is None else override
    check_rate(rate, "dropout_rate")
    return rate


def missing_key_error(what: str) -> ValueError:
    """The error of a training step that needs a dropout key and got none; ``what`` says who."""
    return ValueError(
        f"{what} needs a PRNG key: pass key=jax.random.key(seed) (split it per step, e.g. "
        "model.apply(params, x, key=step_key, train=True)), or use train=False for inference"
    )


def apply_dropout(
    x: jax.Array, rate: Any, key: jax.Array | None, *, train: bool, name: str = "rate"
) -> jax.Array:
    """Inverted dropout with ``rate`` already validated; ``name`` is used in the key error."""
    if not train or is_zero_rate(rate):
        return x
    if key is None:
        shown = f"{name}={rate}" if _tree.is_concrete(rate) else f"a traced {name}"
        raise missing_key_error(f"dropout with {shown} in training")
    keep_prob = 1 - jnp.asarray(rate, dtype=jnp.float32)
    # uniform draws lie in [0, 1), so a traced rate of 0 keeps every entry and divides by
    # exactly 1: the identity, as for a concrete 0.
    keep = jax.random.bernoulli(key, keep_prob, jnp.shape(x))
    # divide in (at least) float32 so that a bf16 input is not scaled by a rounded 1/(1 - p)
    scaled = (x / keep_prob).astype(jnp.result_type(x))
    return jnp.where(keep, scaled, jnp.zeros((), dtype=scaled.dtype))


def dropout(
    x: jax.Array, rate: Any, *, key: jax.Array | None = None, train: bool = True
) -> jax.Array:
    r"""Inverted dropout: zero each entry with probability ``rate``, scale the kept ones.

    .. math::
        \mathrm{dropout}(x)_i = \frac{m_i\, x_i}{1 - p}, \qquad m_i \sim \mathrm{Bernoulli}(1 - p)

    so that :math:`\mathbb{E}[\mathrm{dropout}(x)] = x` and nothing needs rescaling at inference
    (Srivastava et al., 2014). Every entry gets its own Bernoulli keep decision (not a scale by
    the mean of a random draw, as one seed article did).

    ``rate`` is data: a float, a 0-d array or a traced value (``jax.vmap`` over it works and a new
    value never recompiles). A concrete rate of 0 or ``train=False`` returns ``x`` itself; a traced
    rate of 0 also gives exactly ``x``.

    Args:
        x: array to drop entries of.
        rate: the drop probability p in [0, 1).
        key: PRNG key for the keep mask; required when training with a rate that is not known to
            be 0. Split it per layer and per step so that masks are independent.
        train: apply dropout (True) or return ``x`` unchanged (False, inference).

    Returns:
        An array like ``x``.

    Raises:
        ValueError: a concrete ``rate`` outside [0, 1), or a missing ``key`` while training.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from jaxreg.models import dropout
        >>> out = dropout(jnp.ones(10_000), 0.5, key=jax.random.key(0))
        >>> bool(jnp.all((out == 0) | (out == 2)))   # dropped, or kept and scaled by 1/(1-p)
        True
        >>> print(f"{float(out.mean()):.1f}")          # E[out] = x
        1.0
        >>> dropout(jnp.ones(3), 0.5, train=False)
        Array([1., 1., 1.], dtype=float32)
    """
    check_rate(rate, "rate")
    return apply_dropout(x, rate, key, train=train, name="rate")


def split_or_none(key: jax.Array | None, num: int) -> list[jax.Array | None]:
    """``num`` independent keys from ``key`` (or ``num`` Nones when there is no key)."""
    if key is None:
        return [None] * num
    return list(jax.random.split(key, num))


def normal_init(key: jax.Array, shape: tuple[int, ...], fan_in: int, gain: float) -> jax.Array:
    """Scaled normal init with variance ``gain / fan_in`` (He for gain 2, LeCun for gain 1)."""
    return jax.random.normal(key, shape, jnp.float32) * np.sqrt(gain / fan_in)


def uniform_init(key: jax.Array, shape: tuple[int, ...], fan_in: int) -> jax.Array:
    """Uniform on [−1/√fan_in, 1/√fan_in]: ``torch.nn.Linear``'s weights and biases."""
    bound = 1.0 / np.sqrt(fan_in)
    return jax.random.uniform(key, shape, jnp.float32, -bound, bound)


INITS = ("normal", "uniform")


def dense_init(
    key: jax.Array, fan_in: int, fan_out: int, gain: float, init: str = "normal"
) -> dict[str, jax.Array]:
    """``{"w": W[fan_in, fan_out], "b": b[fan_out]}``: a scaled normal ``W`` and zero ``b``
    (``init="normal"``), or both uniform on ±1/√fan_in (``init="uniform"``)."""
    if init == "uniform":
        w_key, b_key = jax.random.split(key)
        return {
            "w": uniform_init(w_key, (fan_in, fan_out), fan_in),
            "b": uniform_init(b_key, (fan_out,), fan_in),
        }
    return {
        "w": normal_init(key, (fan_in, fan_out), fan_in, gain),
        "b": jnp.zeros((fan_out,), jnp.float32),
    }

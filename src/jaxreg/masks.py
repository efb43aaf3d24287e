"""Masks: which leaves of a params tree a regularizer touches (optax's ``mask=`` convention).

A mask is a pytree of bools with the structure of the params, or a callable ``params -> mask``;
every jaxreg penalty and transform accepts one, and so does :func:`optax.masked`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["weights_only"]


def weights_only(params: Any) -> Any:
    """Select the weight matrices and kernels: leaves with at least two dimensions.

    Biases, layer-norm scales and other 0-d/1-d leaves are left out, the usual choice for weight
    decay and sparsity penalties.

    Args:
        params: a pytree of arrays.

    Returns:
        A pytree of bools with the structure of ``params``.

    Example:
        >>> import jax.numpy as jnp
        >>> import jaxreg
        >>> params = {"w": jnp.ones((3, 2)), "b": jnp.ones(2)}
        >>> jaxreg.masks.weights_only(params)
        {'b': False, 'w': True}
    """
    return jax.tree.map(lambda leaf: jnp.ndim(leaf) >= 2, params)

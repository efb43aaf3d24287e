"""Proximal operators and projections on pytrees.

``prox_{s·R}(x) = argmin_z  R(z) + ‖z − x‖² / (2s)`` for the regularizers of
:mod:`jaxreg.penalties`, under the same scaling convention (squared norms carry ½): ``strength``
is λ and ``step_size`` is the step ``s`` (the learning rate of the gradient step before it). The
hard regularizers (:func:`box`, :func:`max_norm`) are projections onto their sets. Every
hyperparameter may be a Python float, a 0-d array or a traced value; ``strength`` may also be a
pytree matching ``x`` (one strength per leaf). Each leaf keeps its dtype.

Each function is the ``prox`` method of a :mod:`jaxreg.regularizers` object:
``prox.l1(x, λ, s) == L1(λ).prox(x, s)``. The keyword ``scaling=`` of earlier releases still
works, with a ``DeprecationWarning``; use ``step_size=``.
"""

from __future__ import annotations

import warnings
from typing import Any

from jaxreg import _tree
from jaxreg.regularizers import L1, L2, Box, ElasticNet, GroupLasso, MaxNorm

PyTree = Any

__all__ = ["l1", "l2", "elastic_net", "group_lasso", "box", "max_norm"]


def _step(step_size: Any, scaling: Any) -> Any:
    """The step size, from ``step_size`` or the deprecated ``scaling=`` keyword (validated under
    the name the caller used)."""
    if scaling is None:
        _tree.check_positive(step_size, "step_size")
        return step_size
    warnings.warn(
        "the scaling= keyword of jaxreg.prox is deprecated: use step_size=",
        DeprecationWarning,
        stacklevel=3,
    )
    _tree.check_positive(scaling, "scaling")
    return scaling


def l1(x: PyTree, strength: Any, step_size: Any = 1.0, *, scaling: Any = None) -> PyTree:
    r"""Soft thresholding, the proximal operator of the L1 penalty.

    .. math::
        \operatorname{prox}_{s\lambda\|\cdot\|_1}(x) = \operatorname{sign}(x)\max(|x| - s\lambda, 0)

    Args:
        x: pytree of arrays.
        strength: λ ≥ 0; a scalar or a pytree matching ``x``.
        step_size: the step size s > 0 (``scaling=`` is its deprecated spelling).

    Returns:
        A pytree like ``x`` with entries smaller than sλ set exactly to zero.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxreg import prox
        >>> prox.l1(jnp.array([-2.0, 0.3, 1.5]), 0.5)
        Array([-1.5,  0. ,  1. ], dtype=float32)
    """
    return L1(strength).prox(x, _step(step_size, scaling))


def l2(x: PyTree, strength: Any, step_size: Any = 1.0, *, scaling: Any = None) -> PyTree:
    r"""Shrinkage, the proximal operator of the penalty (λ/2)‖θ‖².

    .. math::
        \operatorname{prox}_{s\frac{\lambda}{2}\|\cdot\|^2}(x) = \frac{x}{1 + s\lambda}

    Args:
        x: pytree of arrays.
        strength: λ ≥ 0; a scalar or a pytree matching ``x``.
        step_size: the step size s > 0 (``scaling=`` is its deprecated spelling).

    Returns:
        A pytree like ``x``.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxreg import prox
        >>> prox.l2(jnp.array([2.0, -4.0]), 1.0)
        Array([ 1., -2.], dtype=float32)
    """
    return L2(strength).prox(x, _step(step_size, scaling))


def elastic_net(
    x: PyTree, strength: Any, l1_ratio: Any = 0.5, step_size: Any = 1.0, *, scaling: Any = None
) -> PyTree:
    r"""Proximal operator of the elastic net λ(ρ‖θ‖₁ + (1−ρ)/2 ‖θ‖²).

    .. math::
        \operatorname{prox}(x) = \frac{\operatorname{sign}(x)\max(|x| - s\lambda\rho, 0)}
                                      {1 + s\lambda(1-\rho)}

    Args:
        x: pytree of arrays.
        strength: λ ≥ 0; a scalar or a pytree matching ``x``.
        l1_ratio: ρ in [0, 1] (1 is the lasso, 0 is ridge).
        step_size: the step size s > 0 (``scaling=`` is its deprecated spelling).

    Returns:
        A pytree like ``x``.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxreg import prox
        >>> prox.elastic_net(jnp.array([3.0, 0.2]), 2.0, l1_ratio=0.5)
        Array([1., 0.], dtype=float32)
    """
    return ElasticNet(strength, l1_ratio).prox(x, _step(step_size, scaling))


def group_lasso(
    x: PyTree,
    strength: Any,
    step_size: Any = 1.0,
    *,
    group_axis: Any,
    joint: bool = False,
    scaling: Any = None,
) -> PyTree:
    r"""Block soft thresholding, the proximal operator of λ Σ_g √|g| ‖θ_g‖₂.

    .. math::
        \operatorname{prox}(x)_g = x_g \max\Big(0,\ 1 - \frac{s\lambda\sqrt{|g|}}{\|x_g\|_2}\Big)

    A group is the slice of a leaf at one index of ``group_axis`` (``group_axis=1`` of
    ``W[in, out]``: one group per output unit). With ``joint=True`` slice g of every leaf together
    forms group g — one attention head's query, key, value and output weights, say. Groups whose
    norm is at most sλ√|g| become exactly zero; a zero group stays zero (no NaN).

    Args:
        x: pytree of arrays.
        strength: λ ≥ 0; a scalar or (when ``joint=False``) a pytree matching ``x``.
        step_size: the step size s > 0 (``scaling=`` is its deprecated spelling).
        group_axis: the axis indexing the groups; an int, or a pytree of ints matching ``x``.
        joint: join slice g of every leaf into one group (the leaves must have the same length
            along their group axis).

    Returns:
        A pytree like ``x``.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxreg import prox
        >>> w = jnp.array([[3.0, 0.1], [4.0, 0.1]])   # two groups (columns) of two
        >>> prox.group_lasso(w, 1.0, group_axis=1)
        Array([[2.1514, 0.    ],
               [2.8686, 0.    ]], dtype=float32)
    """
    return GroupLasso(strength, group_axis=group_axis, joint=joint).prox(
        x, _step(step_size, scaling)
    )


def box(x: PyTree, lower: Any, upper: Any) -> PyTree:
    r"""Projection onto the box [lower, upper] (the seeds' "hard" regularization).

    .. math::
        \Pi_{[a, b]}(x) = \min(\max(x, a), b)

    Args:
        x: pytree of arrays.
        lower: a, a scalar or a pytree matching ``x``.
        upper: b ≥ a, a scalar or a pytree matching ``x``.

    Returns:
        A pytree like ``x`` with every entry inside [lower, upper].

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxreg import prox
        >>> prox.box(jnp.array([-3.0, 0.5, 2.0]), -1.0, 1.0)
        Array([-1. ,  0.5,  1. ], dtype=float32)
    """
    return Box(lower, upper).prox(x)


def max_norm(x: PyTree, max_value: Any, *, axis: Any = 0) -> PyTree:
    r"""Projection onto {‖x_u‖₂ ≤ c} for every unit u, the norm taken over ``axis``.

    .. math::
        \Pi(x)_u = x_u \min\Big(1, \frac{c}{\|x_u\|_2}\Big)

    As Keras' ``MaxNorm``: ``axis=0`` of ``W[in, out]`` gives one norm per output unit.

    Args:
        x: pytree of arrays.
        max_value: c ≥ 0, a scalar or a pytree matching ``x``.
        axis: the axis or axes the norm is taken over.

    Returns:
        A pytree like ``x`` whose units have norm at most c.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxreg import prox
        >>> prox.max_norm(jnp.array([[3.0, 0.3], [4.0, 0.4]]), 1.0, axis=0)
        Array([[0.6, 0.3],
               [0.8, 0.4]], dtype=float32)
    """
    return MaxNorm(max_value, axis=axis).prox(x)

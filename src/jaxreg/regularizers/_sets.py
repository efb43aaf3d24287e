"""Hard regularizers: indicators of a set, whose prox is the projection onto it."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg import _tree
from jaxreg.regularizers import _base

PyTree = Any


def _indicator(inside: list[jax.Array]) -> jax.Array:
    """0 when every selected leaf is inside the set, +inf otherwise."""
    all_inside = jnp.all(jnp.stack([jnp.all(flag) for flag in inside])) if inside else True
    return jnp.where(all_inside, 0.0, jnp.inf).astype(jnp.float32)


def _selected_pairs(params: PyTree, selection: list[bool], *per_leaf: list[Any]) -> list[tuple]:
    leaves = jax.tree.leaves(params)
    return [
        (leaves[i], *(values[i] for values in per_leaf))
        for i, keep in enumerate(selection)
        if keep
    ]


class Box(_base.Regularizer):
    r"""The box [lower, upper] as a hard regularizer: its indicator and its projection.

    .. math::
        R(\theta) = \begin{cases} 0 & a \le \theta \le b \\ +\infty & \text{otherwise}
        \end{cases}, \qquad \operatorname{prox}_{sR}(x) = \min(\max(x, a), b)

    The projection does not depend on the step size. Clipping *parameters* is this regularizer;
    clipping *gradients* is ``optax.clip``.

    Args:
        lower: a, a scalar or a pytree matching the params. May be traced.
        upper: b ≥ a, a scalar or a pytree matching the params. May be traced.
        mask: a pytree of bools matching the params, or a function ``params -> mask``.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxreg.regularizers import Box
        >>> box = Box(-1.0, 1.0)
        >>> box.prox(jnp.array([-3.0, 0.5, 2.0]))
        Array([-1. ,  0.5,  1. ], dtype=float32)
        >>> float(box.value(jnp.array([0.5, 2.0])))
        inf
    """

    hyperparameters = ("lower", "upper")
    static = ("mask",)

    def __init__(self, lower: Any, upper: Any, *, mask: Any = None):
        _tree.check_bounds(lower, upper)
        self._init_fields(lower=lower, upper=upper, mask=mask)

    def _bounds(self, params: PyTree) -> tuple[list[Any], list[Any]]:
        return (
            _tree.per_leaf(self.lower, params, "lower"),
            _tree.per_leaf(self.upper, params, "upper"),
        )

    def value(self, params: PyTree) -> jax.Array:
        lowers, uppers = self._bounds(params)
        pairs = _selected_pairs(params, self.selection(params), lowers, uppers)
        return _indicator([(leaf >= lo) & (leaf <= hi) for leaf, lo, hi in pairs])

    def prox(self, params: PyTree, step_size: Any = 1.0) -> PyTree:
        del step_size  # a projection: the same point for every step

        def leaf_clip(leaf, lo, hi):
            return jnp.clip(leaf, _tree.as_leaf_dtype(lo, leaf), _tree.as_leaf_dtype(hi, leaf))

        selected = _tree.resolve_mask(self.mask, params)
        return _tree.map_leaves(leaf_clip, params, *self._bounds(params), mask=selected)

    def _land(self, updates: PyTree, params: PyTree, step_size: Any) -> PyTree:
        """As the generic landing, then keep θ + u′ inside the box after rounding.

        When |θ| is much larger than the bound, θ + (clip(x) − θ) can round one ulp past the
        bound. Moving u′ by one ulp towards the box keeps the parameters themselves inside
        (whenever the box is wider than that ulp); 0.75·|u′|·eps rounds to exactly one ulp step
        and costs less than ``jnp.nextafter``.
        """
        landed = super()._land(updates, params, step_size)
        lowers, uppers = self._bounds(params)

        def nudge(update, param, lo, hi):
            after = (param + update).astype(param.dtype)
            step = jnp.abs(update) * (0.75 * float(jnp.finfo(update.dtype).eps))
            update = jnp.where(after > _tree.as_leaf_dtype(hi, param), update - step, update)
            return jnp.where(after < _tree.as_leaf_dtype(lo, param), update + step, update)

        leaves, treedef = jax.tree.flatten(landed)
        param_leaves = treedef.flatten_up_to(params)
        out = [
            nudge(u, p, lo, hi) if keep else u
            for u, p, lo, hi, keep in zip(
                leaves, param_leaves, lowers, uppers, self.selection(params), strict=True
            )
        ]
        return treedef.unflatten(out)


def _check_axis(axis: Any) -> int | tuple[int, ...]:
    def one(value):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(
                f"axis must be a Python int or a tuple of ints (it is structure, not data), got "
                f"{value!r}; with optax.inject_hyperparams pass static_args=('axis',)"
            )
        return int(value)

    return tuple(one(a) for a in axis) if isinstance(axis, tuple | list) else one(axis)


class MaxNorm(_base.Regularizer):
    r"""Max-norm (Keras' ``MaxNorm``) as a hard regularizer: each unit's norm at most c.

    .. math::
        R(\theta) = \begin{cases} 0 & \|\theta_u\|_2 \le c\ \forall u \\ +\infty &
        \text{otherwise} \end{cases}, \qquad
        \operatorname{prox}_{sR}(x)_u = x_u \min\Big(1, \frac{c}{\|x_u\|_2}\Big)

    The norm is taken over ``axis``: ``axis=0`` of ``W[in, out]`` gives one norm per output unit
    u, as in Keras. ``value`` counts a unit as inside up to four ulps of the leaf's dtype, the
    rounding of the projection itself.

    Args:
        max_value: c ≥ 0, a scalar or a pytree matching the params. May be traced.
        axis: the axis or axes the norm is taken over (structure: a Python int or tuple).
        mask: a pytree of bools matching the params, or a function ``params -> mask``.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxreg.regularizers import MaxNorm
        >>> MaxNorm(1.0, axis=0).prox(jnp.array([[3.0, 0.3], [4.0, 0.4]]))
        Array([[0.6, 0.3],
               [0.8, 0.4]], dtype=float32)
    """

    hyperparameters = ("max_value",)
    static = ("axis", "mask")

    def __init__(self, max_value: Any, *, axis: Any = 0, mask: Any = None):
        _tree.check_nonnegative(max_value, "max_value")
        self._init_fields(max_value=max_value, axis=_check_axis(axis), mask=mask)

    def value(self, params: PyTree) -> jax.Array:
        caps = _tree.per_leaf(self.max_value, params, "max_value")

        def inside(leaf, cap):
            norm = _tree.safe_norm(_base.upcast(leaf), axis=self.axis)
            slack = 1 + 4 * float(jnp.finfo(jnp.result_type(leaf)).eps)
            return norm <= _tree.as_leaf_dtype(cap, norm) * slack

        pairs = _selected_pairs(params, self.selection(params), caps)
        return _indicator([inside(leaf, cap) for leaf, cap in pairs])

    def prox(self, params: PyTree, step_size: Any = 1.0) -> PyTree:
        del step_size  # a projection: the same point for every step
        caps = _tree.per_leaf(self.max_value, params, "max_value")

        def leaf_project(leaf, cap):
            norm = _tree.safe_norm(leaf, axis=self.axis, keepdims=True)
            cap = _tree.as_leaf_dtype(cap, leaf)
            over = norm > cap
            return leaf * jnp.where(over, cap / jnp.where(over, norm, 1), 1).astype(leaf.dtype)

        selected = _tree.resolve_mask(self.mask, params)
        return _tree.map_leaves(leaf_project, params, caps, mask=selected)

    def shared_scale(self, scales: PyTree) -> PyTree:
        def unit_max(leaf):
            return jnp.max(leaf, axis=self.axis, keepdims=True)

        return _tree.map_leaves(unit_max, scales, mask=_tree.resolve_mask(self.mask, scales))

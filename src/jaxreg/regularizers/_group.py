"""The group lasso: groups are slices of a leaf along ``group_axis``, optionally joined across
leaves."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg import _groups, _tree
from jaxreg.regularizers import _base

PyTree = Any


def _check_group_axis(group_axis: Any) -> None:
    for axis in jax.tree.leaves(group_axis):
        if isinstance(axis, bool) or not isinstance(axis, int | np.integer):
            raise TypeError(
                f"group_axis must be a Python int or a pytree of ints (it is structure, not "
                f"data), got {axis!r}; with optax.inject_hyperparams pass "
                "static_args=('group_axis',)"
            )


class GroupLasso(_base.Regularizer):
    r"""The group lasso λ Σ_g √|g| ‖θ_g‖₂, its block soft-thresholding prox and dual norm.

    .. math::
        R(\theta) = \lambda \sum_g \sqrt{|g|}\, \|\theta_g\|_2, \qquad
        \operatorname{prox}_{sR}(x)_g = x_g \max\Big(0,\ 1 - \frac{s\lambda\sqrt{|g|}}
        {\|x_g\|_2}\Big), \qquad
        \lambda_{\max}(g) = \max_g \frac{\|g_g\|_2}{\sqrt{|g|}}

    A group is the slice of a leaf at one index of ``group_axis`` (``group_axis=1`` of
    ``W[in, out]``: one group per output unit, so a zeroed group is a pruned unit;
    ``group_axis=0``: one group per input feature). With ``joint=True``, slice g of every
    selected leaf together forms group g — one attention head's query, key, value and output
    weights, say. :math:`|g|` is the number of entries in the group. Norms are safe at zero:
    the value's gradient at a zero group is 0, never NaN.

    Args:
        strength: λ ≥ 0; a scalar, or (when ``joint=False``) a pytree of scalars matching the
            params. May be traced.
        group_axis: the axis indexing the groups; an int, or a pytree of ints matching the params
            (entries of unselected leaves are ignored).
        joint: join slice g of every selected leaf into one group (all of them must have the
            same length along their group axis).
        mask: a pytree of bools matching the params, or a function ``params -> mask``.

    References:
        Yuan & Lin, "Model selection and estimation in regression with grouped variables",
        JRSS B 68(1), 2006.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxreg.regularizers import GroupLasso
        >>> w = jnp.array([[3.0, 0.1], [4.0, 0.1]])     # columns are groups of size 2
        >>> reg = GroupLasso(1.0, group_axis=1)
        >>> round(float(reg.value(w)), 4)                # sqrt(2) * (5 + sqrt(0.02))
        7.2711
        >>> reg.prox(w)
        Array([[2.1514, 0.    ],
               [2.8686, 0.    ]], dtype=float32)
    """

    hyperparameters = ("strength",)
    static = ("group_axis", "joint", "mask")

    def __init__(self, strength: Any, *, group_axis: Any, joint: bool = False, mask: Any = None):
        _tree.check_nonnegative(strength, "strength")
        _check_group_axis(group_axis)
        if not isinstance(joint, bool):
            raise TypeError(f"joint must be a bool, got {joint!r}")
        _groups.check_joint_strength(strength, joint)
        self._init_fields(strength=strength, group_axis=group_axis, joint=joint, mask=mask)

    def _groups(self, params: PyTree) -> tuple[list[jax.Array], list[int], list[Any], list]:
        """Leaves, the selected indices, per-leaf strengths and (axis, ‖g‖², |g|) per selected
        leaf (joined totals with ``joint=True``)."""
        leaves = jax.tree.leaves(params)
        lams = _base.strengths(self.strength, params)
        axes = _tree.per_leaf(self.group_axis, params, "group_axis")
        chosen = [i for i, keep in enumerate(self.selection(params)) if keep]
        groups = _groups.leaf_groups(
            [leaves[i] for i in chosen], [axes[i] for i in chosen], joint=self.joint
        )
        return leaves, chosen, lams, groups

    def value(self, params: PyTree) -> jax.Array:
        _, chosen, lams, groups = self._groups(params)

        def weighted_norms(lam, sq_norms, size):
            norms = _tree.safe_sqrt(sq_norms)
            return _tree.as_leaf_dtype(lam, norms) * math.sqrt(size) * jnp.sum(norms)

        if self.joint and groups:
            chosen, groups = chosen[:1], groups[:1]  # joined: every leaf carries the same totals
        terms = [
            weighted_norms(lams[i], sq_norms, size)
            for i, (_, sq_norms, size) in zip(chosen, groups, strict=True)
        ]
        if not terms:
            return jnp.zeros((), dtype=jnp.float32)
        return sum(terms[1:], terms[0])

    def prox(self, params: PyTree, step_size: Any = 1.0) -> PyTree:
        _base.check_step_size(step_size)
        leaves, chosen, lams, groups = self._groups(params)
        steps = self._group_steps(step_size, params, chosen, groups)
        out = list(leaves)
        for i, (axis, sq_norm, size) in zip(chosen, groups, strict=True):
            norm = _tree.safe_sqrt(sq_norm)
            threshold = steps[i] * lams[i] * jnp.sqrt(jnp.asarray(size, dtype=norm.dtype))
            keep = norm > threshold
            factor = jnp.where(keep, 1 - threshold / jnp.where(keep, norm, 1), 0)
            out[i] = leaves[i] * _groups.expand_to_leaf(factor, leaves[i], axis).astype(
                leaves[i].dtype
            )
        return jax.tree.unflatten(jax.tree.structure(params), out)

    def _reduced(self, values: list[Any], params: PyTree, chosen: list[int], groups: list,
                 reduce: Any) -> list[Any]:
        """Per-coordinate values of the chosen leaves reduced to one per group ([G] each)."""
        leaves = jax.tree.leaves(params)
        reduced = _groups.group_reduce(
            [values[i] for i in chosen], [leaves[i] for i in chosen],
            [axis for axis, _, _ in groups], joint=self.joint, reduce=reduce,
        )  # fmt: skip
        out = list(values)
        for i, per_group in zip(chosen, reduced, strict=True):
            out[i] = per_group
        return out

    def _group_steps(self, step_size: Any, params: PyTree, chosen: list[int], groups: list):
        """One step per leaf: a scalar as given, per-coordinate steps as each group's smallest."""
        steps = _tree.per_leaf(step_size, params, "step_size")
        if all(jnp.ndim(steps[i]) == 0 for i in chosen):
            return steps
        return self._reduced(steps, params, chosen, groups, jnp.min)

    def shared_scale(self, scales: PyTree) -> PyTree:
        leaves, chosen, _, groups = self._groups(scales)
        per_group = self._reduced(leaves, scales, chosen, groups, jnp.max)
        out = list(leaves)
        for i, (axis, _, _) in zip(chosen, groups, strict=True):
            out[i] = _groups.expand_to_leaf(per_group[i], leaves[i], axis)
        return jax.tree.unflatten(jax.tree.structure(scales), out)

    def dual_norm(self, grads: PyTree) -> jax.Array:
        _, chosen, lams, groups = self._groups(grads)
        duals = [jnp.max(jnp.sqrt(sq_norm / size)) for _, sq_norm, size in groups]
        return _base.max_scaled(duals, [lams[i] for i in chosen])

"""Groups for the group lasso: slices of a leaf along ``group_axis``, optionally joined across
leaves (slice g of every leaf is one group)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxreg import _tree


def normalize_axis(leaf: jax.Array, group_axis: int) -> int:
    ndim = jnp.ndim(leaf)
    if not isinstance(group_axis, int | jnp.integer) or isinstance(group_axis, bool):
        raise TypeError(f"group_axis must be an int (or a pytree of ints), got {group_axis!r}")
    if not -ndim <= group_axis < ndim:
        raise ValueError(
            f"group_axis={group_axis} is out of range for a leaf of shape {jnp.shape(leaf)}"
        )
    return int(group_axis) % ndim


def check_joint_strength(strength: Any, joint: bool) -> None:
    """With ``joint=True`` a group spans several leaves, so it can only have one strength."""
    if joint and jax.tree.structure(strength).num_leaves != 1:
        raise ValueError("strength must be a single value when joint=True (one λ for all groups)")


def _leaf_sq_norms(leaf: jax.Array, axis: int) -> jax.Array:
    # Summed in at least float32: a bf16 sum over a large group loses most of its digits.
    other = tuple(a for a in range(leaf.ndim) if a != axis)
    return jnp.sum(jnp.square(leaf.astype(_tree.accumulation_dtype(leaf))), axis=other)


def group_sq_norms(
    leaves: Sequence[jax.Array], axes: Sequence[int], *, joint: bool
) -> list[tuple[jax.Array, int]]:
    """For each leaf, the squared norm of each of its groups ([G]) and the group size |g|.

    With ``joint=True`` every leaf gets the same joined numbers: groups sum over leaves.
    """
    sq = [_leaf_sq_norms(leaf, ax) for leaf, ax in zip(leaves, axes, strict=True)]
    sizes = [leaf.size // leaf.shape[ax] for leaf, ax in zip(leaves, axes, strict=True)]
    if not joint or not leaves:
        return list(zip(sq, sizes, strict=True))
    lengths = {s.shape[0] for s in sq}
    if len(lengths) != 1:
        shapes = [(leaf.shape, ax) for leaf, ax in zip(leaves, axes, strict=True)]
        raise ValueError(
            "joint=True needs the same number of groups in every selected leaf along its "
            f"group_axis; got (shape, group_axis) = {shapes}"
        )
    dtype = jnp.result_type(*sq)
    total = sum((s.astype(dtype) for s in sq[1:]), sq[0].astype(dtype))
    return [(total, sum(sizes))] * len(leaves)


def leaf_groups(
    leaves: Sequence[jax.Array], group_axes: Sequence[Any], *, joint: bool
) -> list[tuple[int, jax.Array, int]]:
    """Validate the group axes and return, per leaf, ``(axis, squared group norms [G], |g|)``."""
    axes = [normalize_axis(leaf, ax) for leaf, ax in zip(leaves, group_axes, strict=True)]
    norms = group_sq_norms(leaves, axes, joint=joint)
    return [(ax, sq, size) for ax, (sq, size) in zip(axes, norms, strict=True)]


def expand_to_leaf(per_group: jax.Array, leaf: jax.Array, axis: int) -> jax.Array:
    """Reshape a [G] vector so that it broadcasts against ``leaf`` along ``axis``."""
    shape = [1] * leaf.ndim
    shape[axis] = per_group.shape[0]
    return per_group.reshape(shape)


def group_reduce(
    arrays: Sequence[jax.Array],
    leaves: Sequence[jax.Array],
    axes: Sequence[int],
    *,
    joint: bool,
    reduce: Any,
) -> list[jax.Array]:
    """Reduce per-coordinate values (each broadcasting against its leaf) to one value per group.

    ``reduce`` is ``jnp.max`` or ``jnp.min``; returns one [G] vector per leaf (the same joined
    vector for every leaf with ``joint=True``).
    """

    def one(array, leaf, axis):
        # reduce what the array holds, then broadcast: no leaf-sized copy of a per-group array
        array = jnp.reshape(array, (1,) * (leaf.ndim - jnp.ndim(array)) + jnp.shape(array))
        per_group = reduce(array, axis=tuple(a for a in range(leaf.ndim) if a != axis))
        return jnp.broadcast_to(per_group, (leaf.shape[axis],))

    per_leaf = [one(a, leaf, ax) for a, leaf, ax in zip(arrays, leaves, axes, strict=True)]
    if not joint or not per_leaf:
        return per_leaf
    joined = reduce(jnp.stack(per_leaf), axis=0)
    return [joined] * len(per_leaf)

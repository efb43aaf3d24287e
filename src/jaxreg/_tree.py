"""Pytree helpers shared by penalties, proximal operators and transforms.

Hyperparameters are data: every check here looks at a value only when it is concrete and lets
tracers through untouched, so that ``jax.vmap`` / ``jax.jit`` over a hyperparameter works.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


def is_concrete(value: Any) -> bool:
    """True when ``value`` holds no tracer (so it can be inspected and validated)."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(value))


def _concrete_leaves(value: Any) -> list[np.ndarray]:
    return [np.asarray(leaf) for leaf in jax.tree.leaves(value) if is_concrete(leaf)]


def check_nonnegative(value: Any, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` if a concrete leaf is negative or not finite."""
    for leaf in _concrete_leaves(value):
        if not np.all(np.isfinite(leaf)):
            raise ValueError(f"{name} must be finite, got {leaf}")
        if np.any(leaf < 0):
            raise ValueError(f"{name} must be >= 0, got {leaf}")


def check_positive(value: Any, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` if a concrete leaf is <= 0 or not finite."""
    for leaf in _concrete_leaves(value):
        if not np.all(np.isfinite(leaf)):
            raise ValueError(f"{name} must be finite, got {leaf}")
        if np.any(leaf <= 0):
            raise ValueError(f"{name} must be > 0, got {leaf}")


def check_unit_interval(value: Any, name: str, *, closed_right: bool = True) -> None:
    """Raise ``ValueError`` unless concrete leaves lie in [0, 1] (or [0, 1) if not closed_right)."""
    for leaf in _concrete_leaves(value):
        upper_ok = leaf <= 1 if closed_right else leaf < 1
        if not np.all(np.isfinite(leaf)) or np.any(leaf < 0) or not np.all(upper_ok):
            interval = "[0, 1]" if closed_right else "[0, 1)"
            raise ValueError(f"{name} must lie in {interval}, got {leaf}")


def check_bounds(lower: Any, upper: Any) -> None:
    """Raise ``ValueError`` if concrete ``lower`` exceeds ``upper`` anywhere."""
    for name, value in (("lower", lower), ("upper", upper)):
        for leaf in _concrete_leaves(value):
            if np.any(np.isnan(leaf)):
                raise ValueError(f"{name} must not be NaN, got {leaf}")
    if is_concrete(lower) and is_concrete(upper):
        lo = jax.tree.leaves(lower)
        hi = jax.tree.leaves(upper)
        if len(lo) == len(hi):
            pairs = zip(lo, hi, strict=True)
        elif len(lo) == 1:
            pairs = ((lo[0], h) for h in hi)
        elif len(hi) == 1:
            pairs = ((lo_leaf, hi[0]) for lo_leaf in lo)
        else:
            return
        for lo_leaf, hi_leaf in pairs:
            if np.any(np.asarray(lo_leaf) > np.asarray(hi_leaf)):
                raise ValueError(f"lower must be <= upper, got lower={lo_leaf}, upper={hi_leaf}")


def is_function(value: Any) -> bool:
    """True when ``value`` is a function (a mask ``params -> mask``, a schedule ``count -> x``)
    rather than a pytree of values.

    The rule of ``optax.masked``: a value is called only when every one of its pytree leaves is
    callable (a plain function is one callable leaf). A pytree of bools or numbers is used as it
    is even when the container is callable — an Equinox module is.
    """
    callable_leaves = jax.tree.leaves(jax.tree.map(callable, value))
    return bool(callable_leaves) and all(callable_leaves)


def resolve_mask(mask: Any, params: PyTree) -> list[bool] | None:
    """Turn ``mask`` (None, a pytree of bools or a function ``params -> pytree``) into one bool
    per leaf of ``params``; raise ``ValueError`` naming ``mask`` when the trees differ."""
    if mask is None:
        return None
    if is_function(mask):
        mask = mask(params)
    mask_def = jax.tree.structure(mask)
    params_def = jax.tree.structure(params)
    if mask_def != params_def:
        raise ValueError(
            f"mask does not match the params tree: mask has structure {mask_def}, "
            f"params have {params_def}"
        )
    return [bool(m) for m in jax.tree.leaves(mask)]


def per_leaf(value: Any, params: PyTree, name: str) -> list[Any]:
    """One value per leaf of ``params``: a single value is shared, a pytree matching ``params``
    gives one value per leaf (like glmnet's ``penalty.factor``)."""
    params_def = jax.tree.structure(params)
    value_def = jax.tree.structure(value)
    if value_def.num_leaves == 1 and value_def == jax.tree.structure(0):
        return [value] * params_def.num_leaves
    if value_def != params_def:
        raise ValueError(
            f"{name} must be a scalar or a pytree matching params: got structure {value_def}, "
            f"params have {params_def}"
        )
    return jax.tree.leaves(value)


def as_leaf_dtype(value: Any, leaf: jax.Array) -> jax.Array:
    """Cast a hyperparameter to the dtype of the leaf it acts on (bf16 leaves stay bf16)."""
    return jnp.asarray(value, dtype=jnp.result_type(leaf))


def accumulation_dtype(leaf: jax.Array) -> Any:
    """The dtype a reduction over ``leaf`` is carried out in: at least float32, so that the sum of
    many bf16/f16 entries keeps its precision (float64 leaves stay float64)."""
    return jnp.promote_types(jnp.result_type(leaf), jnp.float32)


def map_leaves(
    fn: Callable[..., jax.Array],
    params: PyTree,
    *hyperparams: Sequence[Any],
    mask: list[bool] | None = None,
) -> PyTree:
    """``fn(leaf, *hyper_k)`` on every selected leaf; unselected leaves are returned unchanged.

    Each entry of ``hyperparams`` is a list with one value per leaf (see :func:`per_leaf`).
    """
    leaves, treedef = jax.tree.flatten(params)
    selected = mask if mask is not None else [True] * len(leaves)
    out = [
        fn(leaf, *(h[i] for h in hyperparams)) if selected[i] else leaf
        for i, leaf in enumerate(leaves)
    ]
    return jax.tree.unflatten(treedef, out)


def sum_leaves(
    fn: Callable[..., jax.Array],
    params: PyTree,
    *hyperparams: Sequence[Any],
    mask: list[bool] | None = None,
) -> jax.Array:
    """Sum of ``fn(leaf, *hyper_k)`` over the selected leaves (0.0 when none is selected)."""
    leaves = jax.tree.leaves(params)
    selected = mask if mask is not None else [True] * len(leaves)
    terms = [
        fn(leaf, *(h[i] for h in hyperparams)) for i, leaf in enumerate(leaves) if selected[i]
    ]
    if not terms:
        return jnp.zeros((), dtype=jnp.float32)
    return sum(terms[1:], terms[0])


def safe_sqrt(x: jax.Array) -> jax.Array:
    """sqrt whose gradient is 0 (a valid subgradient for norms) instead of NaN at exactly 0."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1)), 0)


def safe_norm(x: jax.Array, axis: Any = None, keepdims: bool = False) -> jax.Array:
    """Euclidean norm that is safe (finite value and gradient) at exactly zero."""
    return safe_sqrt(jnp.sum(jnp.square(x), axis=axis, keepdims=keepdims))


def path_name(path: tuple[Any, ...]) -> str:
    """A leaf's key path as a dotted name: ``layers[0]['w']`` reads ``0.w``;
    ``['blocks'][0]['attention']['query']`` reads ``blocks.0.attention.query``."""
    parts = []
    for entry in path:
        for field in ("key", "idx", "name"):
            if hasattr(entry, field):
                parts.append(str(getattr(entry, field)))
                break
        else:
            parts.append(str(entry))
    return ".".join(parts)


def leaf_names(tree: PyTree) -> list[str]:
    """The dotted name (:func:`path_name`) of every leaf, in ``jax.tree.leaves`` order."""
    return [path_name(path) for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]

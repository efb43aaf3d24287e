"""The regularizer base class: an immutable pytree whose numeric hyperparameters are its leaves.

Structure (mask, axes, ``joint``) is static pytree data, stored hashably so that two regularizers
with the same structure share one trace under ``jax.jit``; hyperparameter values are leaves, so a
new strength never retraces and ``jax.vmap`` over a strength works.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg import _tree

PyTree = Any


def _hashable_leaf(leaf: Any) -> Any:
    if callable(leaf) or isinstance(leaf, bool | int | str | type(None)):
        return leaf
    array = np.asarray(leaf)
    if array.ndim != 0:
        raise TypeError(
            f"a mask or axis entry must be a single bool or int per leaf, got shape {array.shape}"
        )
    return array.item()


class _Static:
    """A static field (a pytree of bools or ints, or a function) compared by value and hashable."""

    __slots__ = ("key", "value")

    def __init__(self, value: Any):
        leaves, treedef = jax.tree.flatten(value)
        self.value = value
        self.key = (treedef, tuple(_hashable_leaf(leaf) for leaf in leaves))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Static) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        # Stable across processes (no object addresses): checkpoint fingerprints read it.
        treedef, leaves = self.key
        named = [_stable_name(leaf) for leaf in leaves]
        return f"Static({treedef}, {named})"


def _stable_name(leaf: Any) -> Any:
    if callable(leaf):
        return f"{getattr(leaf, '__module__', '')}.{getattr(leaf, '__qualname__', type(leaf))}"
    return leaf


class Regularizer:
    """Base class of the regularizer objects: ``value``, ``prox``, ``dual_norm``, ``replace``.

    Subclasses name their numeric hyperparameters in ``hyperparameters`` (pytree leaves) and their
    structure in ``static`` (pytree metadata); both are the constructor's keyword names.
    """

    hyperparameters: ClassVar[tuple[str, ...]] = ()
    static: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        jax.tree_util.register_pytree_with_keys(
            cls, cls._flatten_with_keys, cls._unflatten, cls._flatten
        )

    def _init_fields(self, **fields: Any) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def _flatten(self) -> tuple[tuple[Any, ...], tuple[_Static, ...]]:
        children = tuple(getattr(self, name) for name in self.hyperparameters)
        return children, tuple(_Static(getattr(self, name)) for name in self.static)

    def _flatten_with_keys(self) -> tuple[tuple[Any, ...], tuple[_Static, ...]]:
        children, aux = self._flatten()
        keys = (jax.tree_util.GetAttrKey(name) for name in self.hyperparameters)
        return tuple(zip(keys, children, strict=True)), aux

    @classmethod
    def _unflatten(cls, aux: tuple[_Static, ...], children: tuple[Any, ...]) -> Regularizer:
        # No validation: jax rebuilds pytrees with tracers and placeholders as leaves.
        obj = object.__new__(cls)
        obj._init_fields(**dict(zip(cls.hyperparameters, children, strict=True)))
        obj._init_fields(**{name: s.value for name, s in zip(cls.static, aux, strict=True)})
        return obj

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"{type(self).__name__} is immutable: use .replace({name}=...) for a modified copy"
        )

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={getattr(self, name)!r}" for name in self.hyperparameters + self.static
        )
        return f"{type(self).__name__}({fields})"

    def replace(self, **changes: Any) -> Regularizer:
        """A copy with some hyperparameters changed, validated like a new object.

        Args:
            **changes: new values, by the constructor's argument names.

        Returns:
            A regularizer of the same class.
        """
        names = self.hyperparameters + self.static
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}.replace() got unknown argument(s) {unknown}; "
                f"it takes {list(names)}"
            )
        return type(self)(**({name: getattr(self, name) for name in names} | changes))

    def selection(self, params: PyTree) -> list[bool]:
        """One bool per leaf of ``params``: the leaves this regularizer acts on (its mask)."""
        selected = _tree.resolve_mask(self.mask, params)
        return selected if selected is not None else [True] * len(jax.tree.leaves(params))

    def value(self, params: PyTree) -> jax.Array:
        """The penalty R(params), a scalar."""
        raise NotImplementedError

    def prox(self, params: PyTree, step_size: Any = 1.0) -> PyTree:
        """The proximal operator of ``step_size · R`` at ``params`` (a projection for sets).

        ``step_size`` is a scalar, or a pytree matching ``params`` whose leaves broadcast
        against them: one step per coordinate, the prox in the diagonal metric diag(1/s).
        Group and unit regularizers take one step per group: its smallest entry.
        """
        raise NotImplementedError

    def shared_scale(self, scales: PyTree) -> PyTree:
        """Per-coordinate scales (a pytree matching the params) made constant on each group.

        A diagonal metric in which this regularizer's prox has a closed form: elementwise
        regularizers keep every coordinate's own scale; :class:`GroupLasso` and
        :class:`MaxNorm` give every coordinate of a group (a unit) the group's largest scale,
        as an array that broadcasts against the leaf (one entry per group). Leaves outside the
        mask keep their scales.
        """
        return scales

    def dual_norm(self, grads: PyTree) -> jax.Array:
        """The smallest multiplier of the strength at which zero is a proximal fixed point."""
        raise TypeError(
            f"{type(self).__name__} has no dual norm: only L1, ElasticNet and GroupLasso have a "
            "smallest strength that makes zero a fixed point (a λ_max)"
        )

    def _land(self, updates: PyTree, params: PyTree, step_size: Any) -> PyTree:
        """Updates u′ with θ + u′ = prox(θ + u) on the selected leaves; the others keep u.

        Where the prox is exactly zero, θ + u′ = θ − θ is exactly zero too.
        """
        update_leaves, treedef = jax.tree.flatten(updates)
        param_leaves = treedef.flatten_up_to(params)
        targets = [p + u for p, u in zip(param_leaves, update_leaves, strict=True)]
        landed = treedef.flatten_up_to(self.prox(treedef.unflatten(targets), step_size))
        selected = self.selection(params)
        out = [
            (x - p).astype(u.dtype) if keep else u
            for x, p, u, keep in zip(landed, param_leaves, update_leaves, selected, strict=True)
        ]
        return treedef.unflatten(out)


def check_step_size(step_size: Any, name: str = "step_size") -> None:
    """A proximal step must be > 0 (and finite) when concrete."""
    _tree.check_positive(step_size, name)


def strengths(strength: Any, params: PyTree) -> list[Any]:
    """One 0-d strength per leaf of ``params`` (a single value is shared)."""
    for leaf in jax.tree.leaves(strength):
        if jnp.ndim(leaf) != 0:
            raise ValueError(
                f"strength must be a scalar or a pytree of scalars, got shape {jnp.shape(leaf)}"
            )
    return _tree.per_leaf(strength, params, "strength")


def upcast(leaf: jax.Array) -> jax.Array:
    """``leaf`` in its accumulation dtype (at least float32), for sums and norms."""
    leaf = jnp.asarray(leaf)
    return leaf.astype(_tree.accumulation_dtype(leaf))


def leafwise_sum(
    params: PyTree,
    strength: Any,
    mask: Any,
    leaf_term: Callable[[jax.Array], jax.Array],
) -> jax.Array:
    """Σ over the selected leaves of λ_leaf · leaf_term(leaf), reduced in at least float32."""
    lams = strengths(strength, params)
    selected = _tree.resolve_mask(mask, params)

    def leaf_value(leaf, lam):
        leaf = upcast(leaf)
        return _tree.as_leaf_dtype(lam, leaf) * leaf_term(leaf)

    return _tree.sum_leaves(leaf_value, params, lams, mask=selected)


def leafwise_map(
    params: PyTree,
    strength: Any,
    mask: Any,
    step_size: Any,
    leaf_prox: Callable[[jax.Array, jax.Array], jax.Array],
) -> PyTree:
    """``leaf_prox(leaf, s·λ_leaf)`` on the selected leaves (s·λ in the leaf's dtype); ``s`` is
    one step or one per leaf (an array of steps per coordinate, broadcasting against it)."""
    check_step_size(step_size)
    lams = strengths(strength, params)
    steps = _tree.per_leaf(step_size, params, "step_size")
    selected = _tree.resolve_mask(mask, params)

    def one(leaf, lam, step):
        return leaf_prox(leaf, _tree.as_leaf_dtype(step * lam, leaf))

    return _tree.map_leaves(one, params, lams, steps, mask=selected)


def leafwise_max(
    grads: PyTree, strength: Any, mask: Any, leaf_dual: Callable[[jax.Array], jax.Array]
) -> jax.Array:
    """max over the selected leaves of leaf_dual(g_leaf) / λ_leaf, a traceable 0-d array."""
    lams = strengths(strength, grads)
    selected = _tree.resolve_mask(mask, grads)
    leaves = jax.tree.leaves(grads)
    chosen = [i for i in range(len(leaves)) if selected is None or selected[i]]
    return max_scaled([leaf_dual(upcast(leaves[i])) for i in chosen], [lams[i] for i in chosen])


def max_scaled(duals: list[jax.Array], lams: list[Any]) -> jax.Array:
    """max_i duals[i] / lams[i] over the penalized leaves, a traceable 0-d array.

    Leaves with strength 0 are unpenalized and left out (as glmnet's ``penalty.factor = 0``).
    """
    if not duals:
        raise ValueError("the mask selects no leaf: the dual norm is undefined")
    dtype = jnp.result_type(*duals)
    scaled = []
    for dual, lam in zip(duals, lams, strict=True):
        lam = jnp.asarray(lam, dtype=dtype)
        penalized = lam > 0
        scaled.append(jnp.where(penalized, dual.astype(dtype) / jnp.where(penalized, lam, 1), 0))
    return jnp.max(jnp.stack(scaled))

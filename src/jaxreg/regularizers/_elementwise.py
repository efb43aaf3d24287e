"""Elementwise regularizers: L1, L2 and the elastic net."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxreg import _tree
from jaxreg.regularizers import _base

PyTree = Any


def _abs(x: jax.Array) -> jax.Array:
    # |x| written as x·sign(x) so that its derivative is sign(x), 0 at exactly 0 (jnp.abs has
    # derivative 1 there, which would push exact zeros of a sparse solution off zero).
    return x * jnp.sign(x)


def _abs_sum(leaf: jax.Array) -> jax.Array:
    return jnp.sum(_abs(leaf))


def _half_sq_sum(leaf: jax.Array) -> jax.Array:
    return 0.5 * jnp.sum(jnp.square(leaf))


def _sup_norm(leaf: jax.Array) -> jax.Array:
    return jnp.max(jnp.abs(leaf))


def soft_threshold(x: jax.Array, threshold: jax.Array) -> jax.Array:
    """sign(x)·max(|x| − t, 0)."""
    # Written as x − clip(x, −t, t): the same values (entries within t become exactly +0), two
    # cheap ops fewer in the fused optimizer kernel.
    return x - jnp.clip(x, -threshold, threshold)


class _Strength(_base.Regularizer):
    """A regularizer whose one hyperparameter is its strength."""

    hyperparameters = ("strength",)
    static = ("mask",)

    def __init__(self, strength: Any, *, mask: Any = None):
        _tree.check_nonnegative(strength, "strength")
        self._init_fields(strength=strength, mask=mask)


class L1(_Strength):
    r"""The L1 (lasso) penalty, its soft-thresholding prox and its dual norm ‖·‖_∞.

    .. math::
        R(\theta) = \lambda \sum_i |\theta_i|, \qquad
        \operatorname{prox}_{sR}(x) = \operatorname{sign}(x)\max(|x| - s\lambda, 0), \qquad
        \lambda_{\max}(g) = \|g\|_\infty

    Args:
        strength: λ ≥ 0; a scalar or a pytree of scalars matching the params (one λ per leaf,
            like glmnet's ``penalty.factor``). May be traced.
        mask: a pytree of bools matching the params, or a function ``params -> mask``; only the
            selected leaves are penalized.

    References:
        Tibshirani, "Regression shrinkage and selection via the lasso", JRSS B 58(1), 1996.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxreg.regularizers import L1
        >>> reg = L1(0.5)
        >>> theta = jnp.array([-2.0, 0.3, 1.5])
        >>> float(reg.value(theta))
        1.9
        >>> reg.prox(theta)
        Array([-1.5,  0. ,  1. ], dtype=float32)
        >>> float(reg.dual_norm(jnp.array([0.2, -0.7])))   # ‖g‖∞ / strength
        1.4
    """

    def value(self, params: PyTree) -> jax.Array:
        return _base.leafwise_sum(params, self.strength, self.mask, _abs_sum)

    def prox(self, params: PyTree, step_size: Any = 1.0) -> PyTree:
        return _base.leafwise_map(params, self.strength, self.mask, step_size, soft_threshold)

    def dual_norm(self, grads: PyTree) -> jax.Array:
        return _base.leafwise_max(grads, self.strength, self.mask, _sup_norm)


class L2(_Strength):
    r"""The L2 (ridge, weight-decay) penalty with the ½ convention, and its shrinkage prox.

    .. math::
        R(\theta) = \frac{\lambda}{2} \sum_i \theta_i^2, \qquad \nabla R(\theta) = \lambda\theta,
        \qquad \operatorname{prox}_{sR}(x) = \frac{x}{1 + s\lambda}

    Its gradient is what ``optax.add_decayed_weights(λ)`` adds. A λ·Σθ² term is ``L2(2λ)``; a
    λ/(2m)·Σθ² term (m examples) is ``L2(λ/m)``. Smooth, so it has no dual norm (zero is a
    fixed point only where the gradient is zero).

    Args:
        strength: λ ≥ 0; a scalar or a pytree of scalars matching the params. May be traced.
        mask: a pytree of bools matching the params, or a function ``params -> mask``.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxreg.regularizers import L2
        >>> float(L2(0.5).value(jnp.array([1.0, -2.0, 2.0])))
        2.25
        >>> L2(1.0).prox(jnp.array([2.0, -4.0]))
        Array([ 1., -2.], dtype=float32)
    """

    def value(self, params: PyTree) -> jax.Array:
        return _base.leafwise_sum(params, self.strength, self.mask, _half_sq_sum)

    def prox(self, params: PyTree, step_size: Any = 1.0) -> PyTree:
        return _base.leafwise_map(
            params, self.strength, self.mask, step_size, lambda leaf, t: leaf / (1 + t)
        )


class ElasticNet(_base.Regularizer):
    r"""The elastic net (scikit-learn's and glmnet's parametrization), its prox and dual norm.

    .. math::
        R(\theta) = \lambda\Big(\rho\|\theta\|_1 + \frac{1-\rho}{2}\|\theta\|_2^2\Big), \qquad
        \operatorname{prox}_{sR}(x) = \frac{\operatorname{sign}(x)\max(|x| - s\lambda\rho, 0)}
                                           {1 + s\lambda(1-\rho)}, \qquad
        \lambda_{\max}(g) = \frac{\|g\|_\infty}{\rho}

    ``l1_ratio`` ρ = 1 is :class:`L1`, ρ = 0 is :class:`L2` (which has no dual norm, so
    ``dual_norm`` refuses ρ = 0).

    Args:
        strength: λ ≥ 0; a scalar or a pytree of scalars matching the params. May be traced.
        l1_ratio: ρ in [0, 1]; a scalar, may be traced.
        mask: a pytree of bools matching the params, or a function ``params -> mask``.

    References:
        Zou & Hastie, "Regularization and variable selection via the elastic net", JRSS B
        67(2), 2005.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxreg.regularizers import ElasticNet
        >>> reg = ElasticNet(2.0, l1_ratio=0.5)
        >>> float(reg.value(jnp.array([1.0, -2.0])))   # 2 * (0.5*3 + 0.25*5)
        5.5
        >>> reg.prox(jnp.array([3.0, 0.2]))
        Array([1., 0.], dtype=float32)
    """

    hyperparameters = ("strength", "l1_ratio")
    static = ("mask",)

    def __init__(self, strength: Any, l1_ratio: Any = 0.5, *, mask: Any = None):
        _tree.check_nonnegative(strength, "strength")
        _tree.check_unit_interval(l1_ratio, "l1_ratio")
        self._init_fields(strength=strength, l1_ratio=l1_ratio, mask=mask)

    def value(self, params: PyTree) -> jax.Array:
        def mixed(leaf):
            rho = _tree.as_leaf_dtype(self.l1_ratio, leaf)
            return rho * _abs_sum(leaf) + (1 - rho) * _half_sq_sum(leaf)

        return _base.leafwise_sum(params, self.strength, self.mask, mixed)

    def prox(self, params: PyTree, step_size: Any = 1.0) -> PyTree:
        def leaf_prox(leaf, step):
            rho = _tree.as_leaf_dtype(self.l1_ratio, leaf)
            return soft_threshold(leaf, step * rho) / (1 + step * (1 - rho))

        return _base.leafwise_map(params, self.strength, self.mask, step_size, leaf_prox)

    def dual_norm(self, grads: PyTree) -> jax.Array:
        if _tree.is_concrete(self.l1_ratio) and float(self.l1_ratio) == 0:
            raise ValueError(
                "l1_ratio must be > 0 for a dual norm: with l1_ratio = 0 (ridge) no strength "
                "makes zero a fixed point"
            )
        sup = _base.leafwise_max(grads, self.strength, self.mask, _sup_norm)
        return sup / jnp.asarray(self.l1_ratio, dtype=sup.dtype)

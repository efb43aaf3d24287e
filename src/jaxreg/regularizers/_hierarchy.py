"""LassoNet's hierarchy: an input feature reaches the network only through its skip weight."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxreg import _tree
from jaxreg.regularizers import _base

PyTree = Any

# Relative slack of the hierarchy check in ``value``: the prox lands exactly on the boundary
# ‖W_j‖∞ = M‖θ_j‖₂, which rounding moves by a few units in the last place.
_SLACK = 1e-5


def hier_prox(theta: jax.Array, weights: jax.Array, threshold: Any, multiplier: Any):
    """The hierarchical proximal operator of every feature (row) at once.

    Args:
        theta: skip rows ``[p, c]`` (feature j's weights to the ``c`` outputs).
        weights: first-layer rows ``[p, k]`` (feature j's weights to the ``k`` hidden units).
        threshold: s·λ, a scalar or one per feature ``[p, 1]``.
        multiplier: M > 0.

    Returns:
        ``(theta, weights)`` after the prox.
    """
    dtype = _tree.accumulation_dtype(weights)
    magnitudes = -jnp.sort(-jnp.abs(weights.astype(dtype)), axis=1)  # |W_(1)| ≥ … ≥ |W_(k)|
    zeros = jnp.zeros((magnitudes.shape[0], 1), dtype)
    sums = jnp.concatenate([zeros, jnp.cumsum(magnitudes, axis=1)], axis=1)  # m = 0 … k
    counts = jnp.arange(magnitudes.shape[1] + 1, dtype=dtype)
    norm = _tree.safe_norm(theta.astype(dtype), axis=1, keepdims=True)
    multiplier = jnp.asarray(multiplier, dtype)
    lengths = jnp.maximum(norm + multiplier * sums - threshold, 0) / (1 + counts * multiplier**2)
    caps = multiplier * lengths  # w_m: the largest |W| feature j may keep, for each m
    below = jnp.concatenate([magnitudes, zeros], axis=1)  # |W_(m+1)|
    chosen = jnp.sum(below > caps, axis=1, keepdims=True)  # the m with |W_(m+1)| ≤ w_m ≤ |W_(m)|
    length = jnp.take_along_axis(lengths, chosen, axis=1)
    cap = jnp.take_along_axis(caps, chosen, axis=1)
    alive = norm > 0  # a feature without a skip direction is dropped (θ_j and W_j zero)
    scale = jnp.where(alive, length / jnp.where(alive, norm, 1), 0)
    cap = jnp.where(alive, cap, 0)
    new_theta = (theta * scale).astype(theta.dtype)
    new_weights = (jnp.sign(weights) * jnp.minimum(jnp.abs(weights), cap)).astype(weights.dtype)
    return new_theta, new_weights


class HierarchicalLasso(_base.Regularizer):
    r"""LassoNet's penalty: a group lasso on the skip layer's rows, and a first-layer row may
    only be as large as M times its feature's skip row.

    .. math::
        R(\theta, W) = \lambda \sum_j \|\theta_j\|_2
            \quad\text{subject to}\quad \|W_j\|_\infty \le M\, \|\theta_j\|_2 \ \text{for all } j

    θ is the linear skip layer ``[inputs, outputs]`` and W the first hidden layer's weights
    ``[inputs, hidden]`` of a network such as :func:`jaxreg.models.skip_mlp`; row j of both
    belongs to input feature j, which the network uses at all only while θ_j ≠ 0. ``value`` is
    the penalty where the hierarchy holds (up to a relative 1e-5 of rounding) and +inf where it
    does not. ``prox`` is the hierarchical proximal operator (Hier-Prox, Algorithm 2 of
    Lemhadri et al.), for every feature at once: sort :math:`|W_{j(1)}| \ge \dots \ge
    |W_{j(k)}|`, take the m ∈ {0, …, k} with :math:`|W_{j(m+1)}| \le w_m \le |W_{j(m)}|` where

    .. math::
        w_m = \frac{M}{1 + m M^2}\, \max\Big(\|\theta_j\|_2 + M \sum_{i \le m} |W_{j(i)}|
            - s\lambda,\ 0\Big),

    then :math:`\theta_j \leftarrow (w_m / M)\, \theta_j / \|\theta_j\|_2` and
    :math:`W_j \leftarrow \operatorname{sign}(W_j) \min(|W_j|, w_m)`; a feature with
    θ_j = 0 is dropped (θ_j and W_j zero). ``dual_norm`` is
    :math:`\max_j \|g_{\theta_j}\|_2 + M \|g_{W_j}\|_1`: from θ = W = 0 the prox of a gradient
    step keeps feature j at zero exactly when λ is at least its term.

    Args:
        strength: λ ≥ 0 (may be traced).
        multiplier: M > 0, how much larger than its skip weight a feature's first-layer weights
            may grow (LassoNet's default 10; may be traced).
        skip: the dotted name of the skip layer's leaf (as in ``FitPathResult.norm_labels``:
            ``"skip"`` in :func:`jaxreg.models.skip_mlp`'s params).
        layer: the dotted name of the first layer's weights (``"mlp.0.w"``).

    References:
        Lemhadri, Ruan, Abraham & Tibshirani, "LassoNet: a neural network with feature
        sparsity", JMLR 22(127), 2021.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxreg.regularizers import HierarchicalLasso
        >>> params = {"mlp": [{"w": jnp.array([[3.0, -1.0], [0.2, 0.1]]), "b": jnp.zeros(2)}],
        ...           "skip": jnp.array([[1.0], [0.5]])}
        >>> reg = HierarchicalLasso(0.5, multiplier=2.0)
        >>> float(reg.value(params))                 # row 0 breaks ‖W_0‖∞ ≤ 2‖θ_0‖
        inf
        >>> out = reg.prox(params)
        >>> print(out["skip"].ravel().round(3))     # θ_j shrunk, or grown to carry W_j
        [1.3  0.08]
        >>> print(out["mlp"][0]["w"].round(3))      # |W_j| capped at M‖θ_j‖
        [[ 2.6  -1.  ]
         [ 0.16  0.1 ]]
        >>> float(reg.value(out))                   # λ Σ‖θ_j‖, the hierarchy holds
        0.69
    """

    hyperparameters = ("strength", "multiplier")
    static = ("skip", "layer")

    def __init__(
        self, strength: Any, multiplier: Any = 10.0, *, skip: str = "skip", layer: str = "mlp.0.w"
    ):
        _tree.check_nonnegative(strength, "strength")
        _tree.check_positive(multiplier, "multiplier")
        for name, value in (("skip", skip), ("layer", layer)):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be the dotted name of a leaf, got {value!r}")
        self._init_fields(strength=strength, multiplier=multiplier, skip=skip, layer=layer)

    def _positions(self, params: PyTree) -> tuple[int, int]:
        names = _tree.leaf_names(params)
        for name in (self.skip, self.layer):
            if name not in names:
                raise ValueError(
                    f"{'skip' if name == self.skip else 'layer'}={name!r} names no leaf of the "
                    f"params; their leaves are {names}"
                )
        return names.index(self.skip), names.index(self.layer)

    def _pair(self, params: PyTree) -> tuple[jax.Array, jax.Array]:
        """The skip rows θ ``[p, c]`` and first-layer rows W ``[p, k]``, checked."""
        leaves = jax.tree.leaves(params)
        i, j = self._positions(params)
        theta, weights = leaves[i], leaves[j]
        if jnp.ndim(theta) != 2 or jnp.ndim(weights) != 2 or theta.shape[0] != weights.shape[0]:
            raise ValueError(
                f"skip={self.skip!r} and layer={self.layer!r} must be 2-D with one row per input "
                f"feature, got shapes {jnp.shape(theta)} and {jnp.shape(weights)}"
            )
        return theta, weights

    def selection(self, params: PyTree) -> list[bool]:
        i, j = self._positions(params)
        return [k in (i, j) for k in range(len(jax.tree.leaves(params)))]

    def value(self, params: PyTree) -> jax.Array:
        theta, weights = self._pair(params)
        norms = _tree.safe_norm(_base.upcast(theta), axis=1)
        largest = jnp.max(jnp.abs(_base.upcast(weights)), axis=1)
        inside = jnp.all(largest <= self.multiplier * norms * (1 + _SLACK))
        penalty = _tree.as_leaf_dtype(self.strength, norms) * jnp.sum(norms)
        return jnp.where(inside, penalty, jnp.inf)

    def prox(self, params: PyTree, step_size: Any = 1.0) -> PyTree:
        _base.check_step_size(step_size)
        theta, weights = self._pair(params)
        i, j = self._positions(params)
        steps = _tree.per_leaf(step_size, params, "step_size")
        step = jnp.minimum(self._per_row(steps[i], theta), self._per_row(steps[j], weights))
        new_theta, new_weights = hier_prox(theta, weights, step * self.strength, self.multiplier)
        leaves = jax.tree.leaves(params)
        leaves[i], leaves[j] = new_theta, new_weights
        return jax.tree.unflatten(jax.tree.structure(params), leaves)

    @staticmethod
    def _per_row(values: Any, leaf: jax.Array) -> jax.Array:
        """A scalar as is; per-coordinate values as each row's smallest ``[p, 1]``."""
        values = jnp.asarray(values)
        if values.ndim == 0:
            return values
        return jnp.min(jnp.broadcast_to(values, leaf.shape), axis=1, keepdims=True)

    def shared_scale(self, scales: PyTree) -> PyTree:
        """One scale per feature for its skip row and first-layer row together (their largest),
        so that :func:`jaxreg.prox_adam` takes the hierarchical prox in a metric it is exact in."""
        theta, weights = self._pair(scales)
        i, j = self._positions(scales)
        row = jnp.maximum(jnp.max(theta, axis=1, keepdims=True),
                          jnp.max(weights, axis=1, keepdims=True))  # fmt: skip
        leaves = jax.tree.leaves(scales)
        leaves[i], leaves[j] = row, row
        return jax.tree.unflatten(jax.tree.structure(scales), leaves)

    def dual_norm(self, grads: PyTree) -> jax.Array:
        theta, weights = self._pair(grads)
        per_feature = _tree.safe_norm(_base.upcast(theta), axis=1) + self.multiplier * jnp.sum(
            jnp.abs(_base.upcast(weights)), axis=1
        )
        return _base.max_scaled([jnp.max(per_feature)], [self.strength])

"""Parameter penalties: the value view of the regularizers (:mod:`jaxreg.regularizers`).

Each penalty returns a scalar to add to a loss, under the same scaling convention as
:mod:`jaxreg.prox` (squared norms carry ½, so that value, gradient and proximal step agree).
``strength`` is data — a float, a 0-d array or a traced value (``jax.vmap`` over it works and a
new value never recompiles) — or a pytree matching ``params`` with one strength per leaf (like
glmnet's ``penalty.factor``). ``mask`` (a pytree of bools or a callable ``params -> mask``, see
:mod:`jaxreg.masks`) selects the leaves a penalty touches. Norms are safe at exact zeros: no NaN
value or gradient. Reductions run in at least float32 (a bf16 leaf is summed in float32); the
gradient with respect to a leaf keeps the leaf's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg import _tree
from jaxreg.regularizers import L1, L2, ElasticNet, GroupLasso
from jaxreg.regularizers._base import upcast as _upcast
from jaxreg.regularizers._elementwise import _abs

PyTree = Any

__all__ = ["l1", "l2", "elastic_net", "group_lasso", "norm_product"]


def l1(params: PyTree, strength: Any, *, mask: Any = None) -> jax.Array:
    r"""The L1 (lasso) penalty.

    .. math::
        R(\theta) = \lambda \sum_i |\theta_i|, \qquad
        \partial R(\theta) \ni \lambda \operatorname{sign}(\theta)

    Its gradient (``jax.grad``) is λ·sign(θ), 0 at exactly 0 (a valid subgradient); its proximal
    step is :func:`jaxreg.prox.l1`. The seeds' λ/(2m)·Σ|θ| (m examples) is this penalty with
    ``strength=λ/(2m)``, whose gradient is λ/(2m)·sign(θ) — not the λ/m·sign(θ) the seed writes.

    Args:
        params: pytree of arrays.
        strength: λ ≥ 0; a scalar or a pytree of scalars matching ``params``.
        mask: pytree of bools matching ``params``, or a callable ``params -> mask``; only
            selected leaves are penalized.

    Returns:
        A scalar.

    References:
        Tibshirani, "Regression shrinkage and selection via the lasso", JRSS B 58(1), 1996.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxreg import penalties
        >>> params = {"w": jnp.array([[1.0, -2.0], [0.0, 3.0]]), "b": jnp.array([5.0, 5.0])}
        >>> float(penalties.l1(params, 0.5))
        8.0
        >>> float(penalties.l1(params, 0.5, mask={"w": True, "b": False}))
        3.0
    """
    return L1(strength, mask=mask).value(params)


def l2(params: PyTree, strength: Any, *, mask: Any = None) -> jax.Array:
    r"""The L2 (ridge, weight-decay) penalty with the ½ convention.

    .. math::
        R(\theta) = \frac{\lambda}{2} \sum_i \theta_i^2, \qquad \nabla R(\theta) = \lambda\theta

    Its proximal step is :func:`jaxreg.prox.l2`; its gradient is what
    ``optax.add_decayed_weights(λ)`` adds. The seeds' variants: λ/(2m)·Σθ² is this penalty with
    ``strength=λ/m``, and λ·Σθ² is this penalty with ``strength=2λ``.

    Args:
        params: pytree of arrays.
        strength: λ ≥ 0; a scalar or a pytree of scalars matching ``params``.
        mask: pytree of bools matching ``params``, or a callable ``params -> mask``.

    Returns:
        A scalar.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from jaxreg import penalties
        >>> theta = jnp.array([1.0, -2.0, 2.0])
        >>> float(penalties.l2(theta, 0.5))
        2.25
        >>> jax.grad(penalties.l2)(theta, 0.5)
        Array([ 0.5, -1. ,  1. ], dtype=float32)
    """
    return L2(strength, mask=mask).value(params)


def elastic_net(
    params: PyTree, strength: Any, l1_ratio: Any = 0.5, *, mask: Any = None
) -> jax.Array:
    r"""The elastic-net penalty (scikit-learn's and glmnet's parametrization).

    .. math::
        R(\theta) = \lambda\Big(\rho\|\theta\|_1 + \frac{1-\rho}{2}\|\theta\|_2^2\Big), \qquad
        \partial R(\theta) \ni \lambda\big(\rho\operatorname{sign}(\theta) + (1-\rho)\theta\big)

    ``l1_ratio`` ρ = 1 is :func:`l1`, ρ = 0 is :func:`l2`. Its proximal step is
    :func:`jaxreg.prox.elastic_net`.

    Args:
        params: pytree of arrays.
        strength: λ ≥ 0; a scalar or a pytree of scalars matching ``params``.
        l1_ratio: ρ in [0, 1]; a scalar (may be traced).
        mask: pytree of bools matching ``params``, or a callable ``params -> mask``.

    Returns:
        A scalar.

    References:
        Zou & Hastie, "Regularization and variable selection via the elastic net", JRSS B
        67(2), 2005.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxreg import penalties
        >>> theta = jnp.array([1.0, -2.0])
        >>> float(penalties.elastic_net(theta, 2.0, l1_ratio=0.5))   # 2 * (0.5*3 + 0.25*5)
        5.5
    """
    return ElasticNet(strength, l1_ratio, mask=mask).value(params)


def group_lasso(
    params: PyTree, strength: Any, *, group_axis: Any, joint: bool = False, mask: Any = None
) -> jax.Array:
    r"""The group lasso: a sum of group norms weighted by √|g| (Yuan & Lin, 2006).

    .. math::
        R(\theta) = \lambda \sum_g \sqrt{|g|}\, \|\theta_g\|_2, \qquad
        \partial R(\theta)_g \ni \lambda\sqrt{|g|}\, \frac{\theta_g}{\|\theta_g\|_2}
        \ (\theta_g \ne 0)

    A group is the slice of a leaf at one index of ``group_axis`` (``group_axis=1`` of
    ``W[in, out]``: one group per output unit, so a zeroed group is a pruned unit). With
    ``joint=True``, slice g of every selected leaf together forms group g — one attention head's
    query, key, value and output weights, say. :math:`|g|` is the number of entries in the
    group. The gradient at a zero group is 0 (a valid subgradient), never NaN. Its proximal step is
    :func:`jaxreg.prox.group_lasso`.

    Args:
        params: pytree of arrays.
        strength: λ ≥ 0; a scalar, or (when ``joint=False``) a pytree of scalars matching
            ``params``.
        group_axis: the axis indexing the groups; an int, or a pytree of ints matching
            ``params`` (entries for unselected leaves are ignored).
        joint: join slice g of every selected leaf into one group (all of them must have the
            same length along their group axis).
        mask: pytree of bools matching ``params``, or a callable ``params -> mask``.

    Returns:
        A scalar.

    References:
        Yuan & Lin, "Model selection and estimation in regression with grouped variables",
        JRSS B 68(1), 2006.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxreg import penalties
        >>> w = jnp.array([[3.0, 0.0], [4.0, 0.0]])     # columns are groups of size 2
        >>> round(float(penalties.group_lasso(w, 1.0, group_axis=1)), 4)   # sqrt(2) * 5
        7.0711
    """
    return GroupLasso(strength, group_axis=group_axis, joint=joint, mask=mask).value(params)


_MATRIX_ORDS = "1, 2, inf, 'fro' or 'nuc'"


def _check_ord(ord: Any) -> Any:
    if ord is None:
        return "fro"  # numpy's default matrix norm
    if isinstance(ord, str):
        if ord in ("fro", "nuc"):
            return ord
    elif isinstance(ord, int | float | np.integer | np.floating) and not isinstance(ord, bool):
        if ord in (1, 2, math.inf):
            return ord
    raise ValueError(f"ord must be one of {_MATRIX_ORDS} (numpy's matrix norms), got {ord!r}")


def _matrix_norm(matrix: jax.Array, ord: Any) -> jax.Array:
    matrix = _upcast(matrix)
    if ord == "fro":
        return _tree.safe_norm(matrix)
    if ord == 1:
        return jnp.max(jnp.sum(_abs(matrix), axis=0))
    if ord == math.inf:
        return jnp.max(jnp.sum(_abs(matrix), axis=1))
    # Singular values only (no U, V in the output): their derivative u_i v_iᵀ stays finite
    # even for zero or repeated singular values, unlike a gradient through the full SVD.
    singular_values = jnp.linalg.svd(matrix, compute_uv=False)
    return jnp.max(singular_values) if ord == 2 else jnp.sum(singular_values)


def norm_product(weights: Sequence[jax.Array], strength: Any, *, ord: Any = 2) -> jax.Array:
    r"""A product of matrix norms over the layers of a network.

    .. math::
        R(W_1, \dots, W_L) = \lambda \prod_{l=1}^{L} \|W_l\|_{\mathrm{ord}_l}

    With numpy's matrix-norm meanings: ``1`` is the largest column sum of absolute values,
    ``inf`` the largest row sum, ``2`` the spectral norm (largest singular value), ``'fro'`` the
    Frobenius norm and ``'nuc'`` the nuclear norm. ``ord=2`` bounds the Lipschitz constant of a
    network with 1-Lipschitz activations (x ↦ xW is ‖W‖₂-Lipschitz); the seeds' ‖W1‖₁·‖W2‖₂ is
    ``ord=(1, 2)``. The spectral and nuclear norms are differentiated through the singular values
    only, which stays finite at zero and repeated singular values (a valid subgradient there).

    Args:
        weights: a sequence of 2-D matrices (a single 2-D matrix counts as a sequence of one).
        strength: λ ≥ 0, a scalar.
        ord: one of 1, 2, inf, 'fro', 'nuc' for every matrix, or a sequence with one per
            matrix.

    Returns:
        A scalar.

    References:
        Neyshabur, Tomioka & Srebro, "Norm-based capacity control in neural networks", COLT 2015;
        Bartlett, Foster & Telgarsky, "Spectrally-normalized margin bounds for neural
        networks", NeurIPS 2017.

    Example:
        >>> import jax.numpy as jnp
        >>> from jaxreg import penalties
        >>> w1 = jnp.array([[1.0, -2.0], [3.0, 0.0]])   # max column sum 4
        >>> w2 = jnp.array([[3.0], [4.0]])              # spectral norm 5
        >>> round(float(penalties.norm_product([w1, w2], 0.1, ord=(1, 2))), 4)
        2.0
    """
    _tree.check_nonnegative(strength, "strength")
    if jax.tree.structure(strength) != jax.tree.structure(0) or jnp.ndim(strength) != 0:
        raise ValueError(f"strength must be a single scalar, got {strength!r}")
    if isinstance(weights, jax.Array | np.ndarray):
        weights = [weights]
    if not isinstance(weights, Sequence) or not weights:
        raise TypeError(
            f"weights must be a non-empty sequence of 2-D matrices, got {type(weights).__name__}"
        )
    for index, matrix in enumerate(weights):
        if jnp.ndim(matrix) != 2:
            raise ValueError(
                f"weights must be 2-D matrices, but weights[{index}] has shape {jnp.shape(matrix)}"
            )
    if isinstance(ord, list | tuple):
        if len(ord) != len(weights):
            raise ValueError(
                f"ord has {len(ord)} entries but weights has {len(weights)} matrices; give one "
                "ord for all or one per matrix"
            )
        ords = [_check_ord(o) for o in ord]
    else:
        ords = [_check_ord(ord)] * len(weights)
    norms = [_matrix_norm(matrix, o) for matrix, o in zip(weights, ords, strict=True)]
    product = math.prod(norms[1:], start=norms[0])
    return _tree.as_leaf_dtype(strength, product) * product

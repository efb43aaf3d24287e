r"""Regularizer objects: one object per regularizer, its views as methods.

Every regularizer is an immutable pytree. Its numeric hyperparameters (strength, ``l1_ratio``,
bounds, ``max_value``) are the pytree's leaves — floats, arrays or traced values, so a regularizer
passes through ``jax.jit`` and ``jax.vmap`` and a new strength never retraces — while its
structure (``mask``, ``group_axis``, ``axis``, ``joint``) is static. The methods are

* ``value(params)`` — the penalty R(θ), a scalar to add to a loss (its ``jax.grad`` is the
  gradient view); for the hard regularizers :class:`Box` and :class:`MaxNorm`, 0 inside the set
  and +inf outside;
* ``prox(params, step_size=1.0)`` — argmin_z R(z) + ‖z − x‖² / (2·step_size), exact zeros for the
  sparse regularizers and the projection for the hard ones;
* ``dual_norm(grads)`` — for :class:`L1`, :class:`ElasticNet` and :class:`GroupLasso`, the
  smallest multiplier t of the strength at which zero is a fixed point of a proximal step from
  these gradients (‖g‖∞, ‖g‖∞/ρ, max_g ‖g_g‖/√|g|, each leaf divided by its strength): with
  strength 1 it is glmnet's λ_max;
* ``replace(**hyperparameters)`` — a modified copy, validated like a new object.

The squared norm carries ½ (``L2(λ).value(θ) = λ/2·‖θ‖²``), so value, gradient and prox agree.
:func:`jaxreg.transforms.proximal` turns any of them into an optax transform; the functions of
:mod:`jaxreg.penalties` and :mod:`jaxreg.prox` and the named transforms are these objects'
methods.

>>> import jax, jax.numpy as jnp
>>> from jaxreg.regularizers import L1
>>> theta = jnp.array([0.5, -2.0])
>>> jax.vmap(lambda lam: L1(lam).value(theta))(jnp.array([0.0, 1.0, 2.0]))
Array([0. , 2.5, 5. ], dtype=float32)
"""

from jaxreg.regularizers._base import Regularizer
from jaxreg.regularizers._elementwise import L1, L2, ElasticNet
from jaxreg.regularizers._group import GroupLasso
from jaxreg.regularizers._hierarchy import HierarchicalLasso
from jaxreg.regularizers._sets import Box, MaxNorm

__all__ = [
    "Box",
    "ElasticNet",
    "GroupLasso",
    "HierarchicalLasso",
    "L1",
    "L2",
    "MaxNorm",
    "Regularizer",
]

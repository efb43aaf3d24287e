r"""optax gradient transformations: a regularizer's gradient and its proximal step.

Two kinds of transform, placed differently in an ``optax.chain``:

* :func:`add_l1_sign` adds the L1 subgradient λ·sign(θ) to the updates. Like
  ``optax.add_decayed_weights`` it acts on *gradients*, so it goes before the step that scales by
  the learning rate.
* :func:`prox_l1`, :func:`prox_elastic_net`, :func:`prox_group_lasso` (proximal steps) and
  :func:`clip_params`, :func:`max_norm` (projections) go **last** in a chain. They see the final
  update u and return u′ with θ + u′ = prox(θ + u); ``optax.apply_updates`` then lands the
  parameters on the proximal point (exact zeros for the sparse penalties, inside the box for
  :func:`clip_params`; other values up to the rounding of the sum θ + u′). A transform after them
  would move the parameters off that point.

optax updates are *added* to the parameters and ``optax.sgd(lr)`` produces u = −lr·g, so the
proximal gradient step (ISTA) θ ← prox_{lr·R}(θ − lr·g) is

>>> import jax.numpy as jnp
>>> import numpy as np
>>> import optax
>>> import jaxreg
>>> params = {"w": jnp.array([[0.5, -0.02], [0.3, 0.01]]), "b": jnp.array([0.1, -0.1])}
>>> grads = {"w": jnp.array([[0.1, 0.1], [-0.2, 0.0]]), "b": jnp.array([0.0, 0.0])}
>>> lr = 0.1
>>> ista = optax.chain(optax.sgd(lr), jaxreg.prox_l1(0.5, step_size=lr))
>>> updates, _ = ista.update(grads, ista.init(params), params)
>>> print(np.asarray(optax.apply_updates(params, updates)["w"]).round(3))
[[0.44 0.  ]
 [0.27 0.  ]]

with ``step_size`` equal to the learning rate (pass the same schedule to both when the learning
rate is scheduled: both count the same steps). With Adam, ``chain(optax.adam(lr),
prox_l1(λ, lr))`` is the usual heuristic proximal Adam (the prox ignores Adam's preconditioner).

**Recipes where optax already has the piece** (jaxreg does not rewrite them):

* Gradient clipping (the seeds' "clip gradients to [−L, L]") is ``optax.clip(L)``, or
  ``optax.clip_by_global_norm``; parameter clipping to [−c, c] is :func:`clip_params`, last. The
  seeds' "hard regularization" with an L2 term, done right (clipping the parameters, not only
  the gradients):

  >>> hard = optax.chain(
  ...     optax.clip(1.0),                    # gradients into [-1, 1]
  ...     optax.add_decayed_weights(1e-2),    # + λθ: the L2 penalty's gradient
  ...     optax.sgd(lr),
  ...     jaxreg.clip_params(-0.4, 0.4),      # parameters into [-0.4, 0.4], last
  ... )
  >>> updates, _ = hard.update(grads, hard.init(params), params)
  >>> print(np.asarray(optax.apply_updates(params, updates)["w"]).round(3))
  [[ 0.4  -0.03]
   [ 0.32  0.01]]

* Weight decay: ``optax.add_decayed_weights(λ)`` adds λθ, the gradient of
  ``jaxreg.penalties.l2(params, λ)`` = (λ/2)‖θ‖². Before the optimizer's scaling it is the L2
  penalty in the loss (coupled); after ``optax.scale_by_adam`` it is decoupled weight decay
  (AdamW). The seeds' λ/(2m)·Σθ² term is strength λ/m; a λ·Σθ² term is strength 2λ.
* Masks: every jaxreg transform takes ``mask=`` (a pytree of bools or a callable such as
  :func:`jaxreg.masks.weights_only`); ``optax.masked(transform, mask)`` works as well. Leaves
  left out pass through unchanged:

  >>> sparse_weights = optax.chain(
  ...     optax.sgd(lr), jaxreg.prox_l1(0.5, lr, mask=jaxreg.masks.weights_only))
  >>> updates, _ = sparse_weights.update(grads, sparse_weights.init(params), params)
  >>> print(np.asarray(optax.apply_updates(params, updates)["b"]).round(3))  # not thresholded
  [ 0.1 -0.1]

* Coupled vs decoupled L1 with Adam: ``add_l1_sign`` before ``optax.scale_by_adam`` puts λ·sign θ
  into the gradient that Adam normalizes (coupled; what the seeds do: their update is
  w ← w − lr·(∂loss/∂w + λ·sign w), with a λ/(2m)·Σ|θ| term being strength λ/(2m)); after it the
  sign term bypasses Adam's normalization (decoupled):

  >>> coupled = optax.chain(jaxreg.add_l1_sign(1e-3), optax.adam(1e-2))
  >>> decoupled = optax.chain(
  ...     optax.scale_by_adam(), jaxreg.add_l1_sign(1e-3), optax.scale_by_learning_rate(1e-2))

* Hyperparameters in the optimizer state, changeable between steps without recompiling
  (``mask``, ``group_axis`` and ``axis`` are structure, so name them in ``static_args`` when
  given):

  >>> tx = optax.chain(
  ...     optax.sgd(lr),
  ...     optax.inject_hyperparams(jaxreg.prox_l1)(strength=0.5, step_size=lr),
  ... )
  >>> state = tx.init(params)
  >>> state[1].hyperparams["strength"] = jnp.asarray(0.0)   # switch the penalty off
  >>> updates, state = tx.update(grads, state, params)
  >>> print(np.asarray(optax.apply_updates(params, updates)["w"]).round(3))
  [[ 0.49 -0.03]
   [ 0.32  0.01]]

Every hyperparameter may be a Python float, an array or a traced value (build the transform
inside a ``jax.vmap``-ed function to train a whole grid of strengths at once); ``strength`` and
``step_size`` may also be schedules ``count -> value`` (``optax.ScalarOrSchedule``), evaluated
at the transform's own step count. Concrete values are validated when the transform is built.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxreg import _tree
from jaxreg._prox_adam import prox_adam
from jaxreg.regularizers import L1, Box, ElasticNet, GroupLasso, MaxNorm, Regularizer

PyTree = Any
Mask = PyTree | Callable[[PyTree], PyTree] | None

__all__ = [
    "ScheduleState",
    "add_l1_sign",
    "clip_params",
    "max_norm",
    "prox_elastic_net",
    "prox_adam",
    "prox_group_lasso",
    "prox_l1",
    "proximal",
]


class ScheduleState(NamedTuple):
    """State of the jaxreg transforms: the number of updates so far, read by schedules."""

    count: jax.Array


# (regularizer at this step, updates, params) -> new updates.
_Rule = Callable[[Regularizer, PyTree, PyTree], PyTree]


def _at(value: Any, count: jax.Array) -> Any:
    return value(count) if _tree.is_function(value) else value


def _regularizer_transform(
    name: str,
    build: Callable[..., Regularizer],
    hyperparams: dict[str, Any],
    rule: Callable[[Regularizer, PyTree, PyTree, jax.Array], PyTree],
) -> optax.GradientTransformation:
    """A transform that builds its regularizer from the hyperparameters at each step.

    Schedules (callables ``count -> value``) are evaluated at the transform's step count before
    the object is built, so a regularizer's leaf is never a schedule. The regularizer is built
    once here too, with a traced count: concrete bad values fail when the transform is made,
    while a schedule's values are checked when they are concrete, at each update.
    """

    def current(count: jax.Array) -> Regularizer:
        return build(**{key: _at(value, count) for key, value in hyperparams.items()})

    jax.eval_shape(lambda count: current(count) and None, jnp.zeros([], jnp.int32))

    def init_fn(params: PyTree) -> ScheduleState:
        # Shapes only: a mask, per-leaf value or group axis that does not fit fails now.
        jax.eval_shape(current(jnp.zeros([], jnp.int32)).prox, params)
        return ScheduleState(count=jnp.zeros([], jnp.int32))

    def update_fn(
        updates: PyTree, state: ScheduleState, params: PyTree | None = None
    ) -> tuple[PyTree, ScheduleState]:
        if params is None:
            raise ValueError(
                f"jaxreg.{name} needs the current parameters: call "
                "update(updates, state, params) (an optax.chain passes them on)."
            )
        new_updates = rule(current(state.count), updates, params, state.count)
        return new_updates, ScheduleState(count=optax.safe_increment(state.count))

    return optax.GradientTransformation(init_fn, update_fn)


def _proximal_step(
    name: str, build: Callable[..., Regularizer], hyperparams: dict[str, Any], step_size: Any
) -> optax.GradientTransformation:
    """θ + u′ = reg.prox(θ + u, step) on the regularizer's leaves; the others keep u."""
    if not _tree.is_function(step_size):
        _tree.check_positive(step_size, "step_size")

    def rule(regularizer, updates, params, count):
        step = _at(step_size, count)
        if _tree.is_function(step_size):
            _tree.check_positive(step, "step_size")
        return regularizer._land(updates, params, step)

    return _regularizer_transform(name, build, hyperparams, rule)


def proximal(
    regularizer: Regularizer, step_size: optax.ScalarOrSchedule = 1.0
) -> optax.GradientTransformation:
    r"""The proximal step of any regularizer object, as the last transform of a chain.

    .. math::
        \theta + u' = \operatorname{prox}_{s R}(\theta + u)

    ``chain(optax.sgd(lr), proximal(reg, lr))`` is proximal gradient descent (ISTA) on
    loss + R; for :class:`~jaxreg.regularizers.Box` and :class:`~jaxreg.regularizers.MaxNorm`
    it is projected gradient descent (the step size does not matter for a projection). Leaves
    outside the regularizer's mask pass through unchanged. Place it **last**: it must see the
    final update u to land θ + u on the proximal point, and anything after it would move the
    parameters off that point (and off exact zero).

    Args:
        regularizer: a :mod:`jaxreg.regularizers` object (its hyperparameters may be traced).
        step_size: s > 0, the learning rate of the preceding gradient step; a scalar or a
            schedule ``count -> s`` (pass the optimizer's own schedule).

    Returns:
        An ``optax.GradientTransformation`` whose ``update`` needs ``params``.

    Example:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> import optax
        >>> import jaxreg
        >>> from jaxreg.regularizers import L1
        >>> params = jnp.array([1.0, 0.05, -0.5])
        >>> tx = optax.chain(optax.sgd(0.1), jaxreg.transforms.proximal(L1(1.0), 0.1))
        >>> updates, _ = tx.update(jnp.array([0.0, 0.1, 1.0]), tx.init(params), params)
        >>> print(np.asarray(optax.apply_updates(params, updates)).round(3))
        [ 0.9  0.  -0.5]
    """
    if not isinstance(regularizer, Regularizer):
        raise TypeError(
            "regularizer must be a jaxreg.regularizers object (L1, L2, ElasticNet, GroupLasso, "
            f"Box, MaxNorm), got {type(regularizer).__name__}"
        )
    return _proximal_step("proximal", lambda: regularizer, {}, step_size)


def add_l1_sign(
    strength: optax.ScalarOrSchedule | PyTree, *, mask: Mask = None
) -> optax.GradientTransformation:
    r"""Add the L1 subgradient to the updates (the seeds' "sign-L1").

    .. math::
        u \leftarrow u + \lambda\,\operatorname{sign}(\theta)

    the (sub)gradient of ``jaxreg.penalties.l1(params, λ)`` = λΣ|θ|. Place it where the updates
    are still gradients: before ``optax.sgd``/``optax.adam`` (coupled, L1 in the gradient, as
    the seeds do; their λ/(2m)·Σ|θ| term is strength λ/(2m)), or between
    ``optax.scale_by_adam`` and ``optax.scale_by_learning_rate`` (decoupled). Parameters
    oscillate around zero rather than landing on it; for exact zeros use :func:`prox_l1`.

    Args:
        strength: λ ≥ 0; a scalar, a schedule ``count -> λ``, or a pytree matching params
            (one λ per leaf).
        mask: a pytree of bools matching params, or a callable ``params -> mask``; leaves
            marked False pass through unchanged.

    Returns:
        An ``optax.GradientTransformation`` whose ``update`` needs ``params``.

    Example:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> import optax
        >>> import jaxreg
        >>> params = jnp.array([0.5, -0.2, 0.0])
        >>> grads = jnp.array([0.1, 0.1, 0.1])
        >>> tx = optax.chain(jaxreg.add_l1_sign(0.2), optax.sgd(0.5))
        >>> updates, _ = tx.update(grads, tx.init(params), params)
        >>> print(np.asarray(optax.apply_updates(params, updates)).round(3))
        [ 0.35 -0.15 -0.05]
    """

    def rule(regularizer, updates, params, count):
        del count
        gradient = jax.grad(regularizer.value)(params)
        return jax.tree.map(lambda u, g: u + g.astype(u.dtype), updates, gradient)

    return _regularizer_transform(
        "add_l1_sign", lambda strength: L1(strength, mask=mask), {"strength": strength}, rule
    )


def prox_l1(
    strength: optax.ScalarOrSchedule | PyTree,
    step_size: optax.ScalarOrSchedule,
    *,
    mask: Mask = None,
) -> optax.GradientTransformation:
    r"""Proximal step of the L1 penalty λ‖θ‖₁ (soft thresholding); goes last in a chain.

    .. math::
        \theta + u' = \operatorname{prox}_{s\lambda\|\cdot\|_1}(\theta + u)
                    = \operatorname{sign}(\theta + u)\max(|\theta + u| - s\lambda, 0)

    ``chain(optax.sgd(lr), prox_l1(λ, lr))`` is ISTA, proximal gradient descent on
    loss + λ‖θ‖₁: entries smaller than sλ become exactly zero.

    Place it **last**: it must see the final update u to land θ + u on the proximal point, and
    anything after it would move the parameters off that point (and off exact zero).

    Args:
        strength: λ ≥ 0; a scalar, a schedule ``count -> λ``, or a pytree matching params.
        step_size: s > 0, the step of the preceding gradient step (the learning rate); a scalar
            or a schedule.
        mask: a pytree of bools matching params, or a callable ``params -> mask``; leaves
            marked False pass through unchanged.

    Returns:
        An ``optax.GradientTransformation`` whose ``update`` needs ``params``.

    Example:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> import optax
        >>> import jaxreg
        >>> params = jnp.array([1.0, 0.05, -0.5])
        >>> grads = jnp.array([0.0, 0.1, 1.0])
        >>> tx = optax.chain(optax.sgd(0.1), jaxreg.prox_l1(1.0, step_size=0.1))
        >>> updates, _ = tx.update(grads, tx.init(params), params)
        >>> print(np.asarray(optax.apply_updates(params, updates)).round(3))
        [ 0.9  0.  -0.5]
    """

    return _proximal_step(
        "prox_l1", lambda strength: L1(strength, mask=mask), {"strength": strength}, step_size
    )


def prox_elastic_net(
    strength: optax.ScalarOrSchedule | PyTree,
    l1_ratio: Any,
    step_size: optax.ScalarOrSchedule,
    *,
    mask: Mask = None,
) -> optax.GradientTransformation:
    r"""Proximal step of the elastic net λ(ρ‖θ‖₁ + (1−ρ)/2 ‖θ‖²); goes last in a chain.

    .. math::
        \theta + u' = \frac{\operatorname{sign}(x)\max(|x| - s\lambda\rho, 0)}
                           {1 + s\lambda(1-\rho)}, \qquad x = \theta + u

    The objective convention is scikit-learn's ``ElasticNet`` (``alpha`` = λ, ``l1_ratio`` = ρ).
    Place it **last**: it must see the final update to land θ + u on the proximal point, and
    anything after it would move the parameters off it.

    Args:
        strength: λ ≥ 0; a scalar, a schedule ``count -> λ``, or a pytree matching params.
        l1_ratio: ρ in [0, 1] (1 is :func:`prox_l1`, 0 is the prox of the L2 penalty).
        step_size: s > 0, the learning rate of the preceding gradient step; a scalar or a
            schedule.
        mask: a pytree of bools matching params, or a callable ``params -> mask``.

    Returns:
        An ``optax.GradientTransformation`` whose ``update`` needs ``params``.

    Example:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> import optax
        >>> import jaxreg
        >>> params = jnp.array([3.0, 0.2])
        >>> tx = optax.chain(optax.sgd(1.0), jaxreg.prox_elastic_net(2.0, 0.5, step_size=1.0))
        >>> updates, _ = tx.update(jnp.zeros(2), tx.init(params), params)
        >>> print(np.asarray(optax.apply_updates(params, updates)).round(3))
        [1. 0.]
    """

    return _proximal_step(
        "prox_elastic_net",
        lambda strength, l1_ratio: ElasticNet(strength, l1_ratio, mask=mask),
        {"strength": strength, "l1_ratio": l1_ratio},
        step_size,
    )


def prox_group_lasso(
    strength: optax.ScalarOrSchedule | PyTree,
    step_size: optax.ScalarOrSchedule,
    *,
    group_axis: Any = None,
    axis: Any = None,
    joint: bool = False,
    mask: Mask = None,
) -> optax.GradientTransformation:
    r"""Proximal step of the group lasso λ Σ_g √|g| ‖θ_g‖₂ (block soft thresholding); goes last.

    .. math::
        (\theta + u')_g = x_g \max\Big(0,\ 1 - \frac{s\lambda\sqrt{|g|}}{\|x_g\|_2}\Big),
        \qquad x = \theta + u

    A group is the slice of a leaf at one index of ``group_axis`` (``group_axis=1`` of
    ``W[in, out]``: one group per output unit, so whole units are switched off). With
    ``joint=True`` slice g of every selected leaf together forms group g (one attention head's
    query, key, value and output weights); with a ``mask`` the joint groups are formed over the
    selected leaves only. Whole groups become exactly zero.

    Place it **last**: it must see the final update to land θ + u on the proximal point, and
    anything after it would move the parameters off it.

    Args:
        strength: λ ≥ 0; a scalar or a schedule (or, when ``joint=False``, a pytree matching
            params).
        step_size: s > 0, the learning rate of the preceding gradient step; a scalar or a
            schedule.
        group_axis: the axis indexing the groups; an int or a pytree of ints matching params.
        axis: deprecated alias of ``group_axis`` (``axis`` names the axis a norm is taken
            over everywhere else in jaxreg).
        joint: join slice g of all selected leaves into one group.
        mask: a pytree of bools matching params, or a callable ``params -> mask``.

    Returns:
        An ``optax.GradientTransformation`` whose ``update`` needs ``params``.

    Raises:
        TypeError: if both or neither of ``group_axis`` and ``axis`` are given.

    Example:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> import optax
        >>> import jaxreg
        >>> w = jnp.array([[3.0, 0.1], [4.0, 0.1]])   # two groups (columns) of two
        >>> tx = optax.chain(optax.sgd(1.0), jaxreg.prox_group_lasso(1.0, 1.0, group_axis=1))
        >>> updates, _ = tx.update(jnp.zeros_like(w), tx.init(w), w)
        >>> print(np.asarray(optax.apply_updates(w, updates)).round(3))
        [[2.151 0.   ]
         [2.869 0.   ]]
    """

    if axis is not None:
        if group_axis is not None:
            raise TypeError("prox_group_lasso: give group_axis, not also its old alias axis")
        warnings.warn(
            "prox_group_lasso(axis=...) is deprecated: the axis that indexes groups is "
            "group_axis (axis always names the axis a norm is taken over)",
            DeprecationWarning,
            stacklevel=2,
        )
        group_axis = axis
    if group_axis is None:
        raise TypeError("prox_group_lasso: group_axis is required (the axis indexing the groups)")

    def build(strength):
        return GroupLasso(strength, group_axis=group_axis, joint=joint, mask=mask)

    return _proximal_step("prox_group_lasso", build, {"strength": strength}, step_size)


def clip_params(lower: Any, upper: Any, *, mask: Mask = None) -> optax.GradientTransformation:
    r"""Keep parameters in the box [lower, upper] (the seeds' "hard regularization"); goes last.

    .. math::
        \theta + u' = \min(\max(\theta + u,\ a),\ b)

    This clips **parameters**. Clipping *gradients* to [−L, L] is ``optax.clip(L)`` (or
    ``optax.clip_by_global_norm``), placed first; clipping only the gradients, as one seed
    article did while saying it clipped parameters, is not this. Place ``clip_params``
    **last**: it must see the final update to land θ + u inside the box, and anything after it
    could move the parameters out again.

    Args:
        lower: a, a scalar or a pytree matching params.
        upper: b ≥ a, a scalar or a pytree matching params.
        mask: a pytree of bools matching params, or a callable ``params -> mask``.

    Returns:
        An ``optax.GradientTransformation`` whose ``update`` needs ``params``.

    Example:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> import optax
        >>> import jaxreg
        >>> params = jnp.array([0.9, -0.5, 0.0])
        >>> grads = jnp.array([-2.0, 1.0, 0.5])
        >>> tx = optax.chain(optax.sgd(0.1), jaxreg.clip_params(-1.0, 1.0))
        >>> updates, _ = tx.update(grads, tx.init(params), params)
        >>> print(np.asarray(optax.apply_updates(params, updates)).round(3))
        [ 1.  -0.6 -0.05]
    """

    return _proximal_step(
        "clip_params",
        lambda lower, upper: Box(lower, upper, mask=mask),
        {"lower": lower, "upper": upper},
        1.0,
    )


def max_norm(
    max_value: Any, *, axis: int | Sequence[int] = 0, mask: Mask = None
) -> optax.GradientTransformation:
    r"""Keep each unit's norm at most c (Keras' ``MaxNorm`` constraint); goes last in a chain.

    .. math::
        (\theta + u')_k = x_k \min\Big(1, \frac{c}{\|x_k\|_2}\Big), \qquad x = \theta + u

    the norm taken over ``axis``: ``axis=0`` of ``W[in, out]`` gives one norm per output unit k,
    as in Keras. Usually combined with ``mask=jaxreg.masks.weights_only`` so biases are left
    alone. Place it **last**: it must see the final update to land θ + u inside the set, and
    anything after it could move the parameters out again.

    Args:
        max_value: c ≥ 0, a scalar or a pytree matching params.
        axis: the axis or axes the norm is taken over.
        mask: a pytree of bools matching params, or a callable ``params -> mask``.

    Returns:
        An ``optax.GradientTransformation`` whose ``update`` needs ``params``.

    Example:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> import optax
        >>> import jaxreg
        >>> w = jnp.array([[3.0, 0.3], [4.0, 0.4]])
        >>> tx = optax.chain(optax.sgd(0.1), jaxreg.max_norm(1.0, axis=0))
        >>> updates, _ = tx.update(jnp.zeros_like(w), tx.init(w), w)
        >>> print(np.asarray(optax.apply_updates(w, updates)).round(3))
        [[0.6 0.3]
         [0.8 0.4]]
    """

    return _proximal_step(
        "max_norm",
        lambda max_value: MaxNorm(max_value, axis=axis, mask=mask),
        {"max_value": max_value},
        1.0,
    )

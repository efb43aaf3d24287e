r"""Adam whose proximal step is taken in Adam's own metric (:func:`prox_adam`)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxreg import _tree
from jaxreg.regularizers import Regularizer

PyTree = Any

__all__ = ["prox_adam"]


def _check_hyperparameters(learning_rate: Any, b1: Any, b2: Any, eps: Any) -> None:
    if not _tree.is_function(learning_rate):
        _tree.check_positive(learning_rate, "learning_rate")
    _tree.check_unit_interval(b1, "b1", closed_right=False)
    _tree.check_unit_interval(b2, "b2", closed_right=False)
    _tree.check_positive(eps, "eps")


def prox_adam(
    learning_rate: optax.ScalarOrSchedule,
    regularizer: Regularizer,
    *,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
) -> optax.GradientTransformation:
    r"""Adam with the regularizer's proximal step in Adam's own metric: λ keeps its meaning.

    Adam's moments are exactly those of ``optax.scale_by_adam`` (bias-corrected m̂, v̂). With
    the diagonal metric :math:`D = \operatorname{diag}(\sqrt{\hat v} + \epsilon)` and learning
    rate η, one step is the proximal gradient step of loss + R in the metric D/η:

    .. math::
        \theta_{t+1} = \operatorname*{arg\,min}_z\; R(z) + \frac{1}{2\eta}
            \big\|z - (\theta_t - \eta D^{-1}\hat m)\big\|_D^2 ,
        \qquad \text{L1: } \theta_i \leftarrow \operatorname{sign}(x_i)
            \max\Big(|x_i| - \frac{\eta\lambda}{\sqrt{\hat v_i} + \epsilon},\, 0\Big),
        \quad x = \theta - \frac{\eta\,\hat m}{\sqrt{\hat v} + \epsilon}

    With no regularizer effect (λ = 0) it is Adam. Three properties follow, and they are why
    ``chain(optax.adam(η), prox_l1(λ, η))`` — which thresholds every coordinate by the same ηλ
    while Adam moves coordinate i by about η/(√v̂_i + ε) per unit of gradient — is not this:

    - every fixed point θ = prox(θ − ηD⁻¹m̂) satisfies 0 ∈ m̂ + ∂R(θ): with m̂ the gradient, it
      minimizes loss + R (for convex loss), whatever η and D;
    - exact zeros, as with proximal gradient descent;
    - from θ = 0, coordinate i stays 0 exactly when :math:`|\hat m_i| \le \lambda`: a
      strength at or above the dual norm of the gradient (``regularizer.dual_norm(grads)``,
      glmnet's λ_max) keeps θ = 0, for every learning rate.

    The L1, L2 and elastic-net proxes are separable, so each coordinate uses its own metric.
    The group lasso's prox in a diagonal metric that is not constant on the group has no closed
    form, and a prox in one metric after a gradient step in another loses the fixed-point
    property; so for :class:`~jaxreg.regularizers.GroupLasso` (joint groups too) and
    :class:`~jaxreg.regularizers.MaxNorm` units, the gradient step and the prox share one
    metric per group, the group's largest √v̂ + ε (a more cautious step for the group's other
    coordinates than Adam's own). Then group g stays 0 from θ = 0 exactly when
    :math:`\|\hat m_g\|_2 \le \lambda\sqrt{|g|}`, again the dual norm.
    :class:`~jaxreg.regularizers.Box` is metric-free (a diagonal metric does not change the
    projection onto a box). Leaves outside the regularizer's mask take Adam's plain step.

    Args:
        learning_rate: η > 0, a scalar or a schedule ``count -> η`` (evaluated at the number of
            updates so far, as ``optax.scale_by_learning_rate`` does). May be traced.
        regularizer: a :mod:`jaxreg.regularizers` object (its hyperparameters may be traced).
        b1: decay of the first moment, in [0, 1).
        b2: decay of the second moment, in [0, 1).
        eps: ε > 0 added to √v̂ (keeps the metric positive).

    Returns:
        An ``optax.GradientTransformation`` (a whole optimizer, not the last link of a chain:
        its state is ``optax.ScaleByAdamState``) whose ``update`` needs ``params``.

    Example:
        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> import optax
        >>> import jaxreg
        >>> from jaxreg.regularizers import L1
        >>> params = jnp.zeros(3)
        >>> grads = jnp.array([0.3, -2.0, 0.9])             # dual norm ‖g‖∞ = 2.0
        >>> tx = jaxreg.prox_adam(0.1, L1(1.0))             # only |g_i| > λ moves
        >>> updates, _ = tx.update(grads, tx.init(params), params)
        >>> print(np.asarray(optax.apply_updates(params, updates)).round(4))
        [0.   0.05 0.  ]
        >>> tx = jaxreg.prox_adam(0.1, L1(2.0))             # λ ≥ ‖g‖∞: stays exactly 0
        >>> updates, _ = tx.update(grads, tx.init(params), params)
        >>> print(np.asarray(optax.apply_updates(params, updates)))
        [0. 0. 0.]

    References:
        Kingma & Ba, "Adam: a method for stochastic optimization", ICLR 2015.
        Yun, Lozano & Yang, "Adaptive proximal gradient methods for structured neural
        networks" (ProxGen), NeurIPS 2021.
        Yang, Yuan, Chatzimichailidis, van Sloun, Lei & Chatzinotas, "ProxSGD: training
        structured neural networks under regularization and constraints", ICLR 2020.
    """
    if not isinstance(regularizer, Regularizer):
        raise TypeError(
            "regularizer must be a jaxreg.regularizers object (L1, L2, ElasticNet, GroupLasso, "
            f"Box, MaxNorm), got {type(regularizer).__name__}; for plain Adam use optax.adam"
        )
    _check_hyperparameters(learning_rate, b1, b2, eps)
    moments = optax.scale_by_adam(b1=b1, b2=b2, eps=eps)

    def init_fn(params: PyTree) -> optax.ScaleByAdamState:
        jax.eval_shape(regularizer.prox, params)  # a mask or group axis that does not fit fails now
        return moments.init(params)

    def update_fn(
        grads: PyTree, state: optax.ScaleByAdamState, params: PyTree | None = None
    ) -> tuple[PyTree, optax.ScaleByAdamState]:
        if params is None:
            raise ValueError(
                "jaxreg.prox_adam needs the current parameters: call update(grads, state, params)"
            )
        rate = learning_rate
        if _tree.is_function(learning_rate):
            rate = learning_rate(state.count)
            _tree.check_positive(rate, "learning_rate")
        _, state = moments.update(grads, state, params)  # its direction m̂/(√v̂+ε) is unused
        mu_hat = optax.tree.bias_correction(state.mu, b1, state.count)
        nu_hat = optax.tree.bias_correction(state.nu, b2, state.count)
        metric = regularizer.shared_scale(jax.tree.map(lambda v: jnp.sqrt(v) + eps, nu_hat))
        steps = jax.tree.map(lambda d: _tree.as_leaf_dtype(rate, d) / d, metric)
        descent = jax.tree.map(lambda s, m: -(s * m), steps, mu_hat)
        return regularizer._land(descent, params, steps), state

    return optax.GradientTransformation(init_fn, update_fn)

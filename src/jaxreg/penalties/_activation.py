"""Activation penalties: how fast the network's function changes with its input.

The seeds' "soft" regularization, ½ Σ_i ‖f′(z_i)‖² ‖w_i‖², is the squared Frobenius norm of a
layer's input–output Jacobian — the contractive penalty of Rifai et al. (2011). Its gradients
are easy to get wrong by hand; here both penalties are plain differentiable JAX functions
and autodiff takes their gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

__all__ = ["contractive", "jacobian"]


def _elementwise_derivative(activation: Callable[[jax.Array], jax.Array], z: jax.Array):
    # f is elementwise, so its Jacobian is diagonal and one JVP with a ones tangent gives f'(z)
    # at every entry at once.
    _, derivative = jax.jvp(activation, (z,), (jnp.ones_like(z),))
    return derivative


def _layer_contractive(
    weights: jax.Array, pre_activations: jax.Array, activation: Callable[[jax.Array], jax.Array]
) -> jax.Array:
    if jnp.ndim(weights) != 2:
        raise ValueError(f"weights must be 2-D [in, units], got shape {jnp.shape(weights)}")
    units = weights.shape[1]
    if jnp.ndim(pre_activations) < 1 or jnp.shape(pre_activations)[-1] != units:
        raise ValueError(
            f"pre_activations must have shape [..., {units}] to match weights "
            f"{jnp.shape(weights)}, got {jnp.shape(pre_activations)}"
        )
    slope_sq = jnp.square(_elementwise_derivative(activation, pre_activations))
    column_sq_norms = jnp.sum(jnp.square(weights), axis=0)
    per_example = slope_sq @ column_sq_norms.astype(slope_sq.dtype)
    return 0.5 * jnp.mean(per_example)


def contractive(
    weights: jax.Array | Sequence[jax.Array],
    pre_activations: jax.Array | Sequence[jax.Array],
    activation: Callable[[jax.Array], jax.Array],
) -> jax.Array:
    r"""Contractive ("soft") penalty of a layer x ↦ f(xW + b), in closed form.

    .. math::
        R = \frac{1}{2}\,\operatorname{mean}_b \sum_i f'(z_{b,i})^2\, \|W_{:, i}\|_2^2
          = \frac{1}{2}\,\operatorname{mean}_b
            \Big\|\frac{\partial f(x_b W + b)}{\partial x_b}\Big\|_F^2,
        \qquad z = xW + b

    (Rifai et al., 2011, "Contractive auto-encoders"; the seeds' "soft regularization"
    ½ Σ ‖f′(z_i)‖²‖w_i‖²). It costs one elementwise derivative of ``activation`` — no Jacobian
    and no extra backward pass through the network — and is differentiable in ``weights`` and
    ``pre_activations`` (use ``jax.grad`` rather than hand-written gradients).

    Given sequences (one weight matrix and one pre-activation array per layer, e.g. from
    ``mlp(...).apply(params, x, return_activations=True)`` with ``[p["w"] for p in params[:-1]]``)
    the per-layer penalties are summed. That sum bounds each hidden layer's own Jacobian, not the
    Jacobian of the whole network; for the latter use :func:`jacobian`.

    The strength is applied by the caller: ``loss + lam * contractive(...)``.

    Args:
        weights: W [in, units] of the layer, or a sequence of them.
        pre_activations: z [..., units] (leading axes are batch axes and are averaged over), or
            a sequence of them matching ``weights``.
        activation: the elementwise activation f (``jax.nn.relu``, ``jax.nn.sigmoid``, ...).

    Returns:
        A scalar.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from jaxreg import penalties
        >>> w = jnp.array([[1.0, 2.0], [0.0, 1.0]])       # columns: ‖w_1‖² = 1, ‖w_2‖² = 5
        >>> z = jnp.array([[0.5, -1.0], [2.0, 3.0]])       # ReLU slopes: [1, 0] and [1, 1]
        >>> penalties.contractive(w, z, jax.nn.relu)        # ½ · mean(1, 1 + 5)
        Array(1.75, dtype=float32)
    """
    if isinstance(weights, Sequence) and not isinstance(weights, str):
        if not isinstance(pre_activations, Sequence) or len(weights) != len(pre_activations):
            raise ValueError(
                "weights and pre_activations must be sequences of the same length (one entry "
                "per layer)"
            )
        if not weights:
            raise ValueError("weights must name at least one layer")
        terms = [
            _layer_contractive(w, z, activation)
            for w, z in zip(weights, pre_activations, strict=True)
        ]
        return sum(terms[1:], terms[0])
    return _layer_contractive(weights, pre_activations, activation)


def _check_num_projections(num_projections: Any) -> int:
    if isinstance(num_projections, bool) or not isinstance(num_projections, int | jnp.integer):
        raise TypeError(f"num_projections must be an int, got {num_projections!r}")
    if num_projections == 0 or num_projections < -1:
        raise ValueError(
            f"num_projections must be >= 1 (random projections) or -1 (exact), "
            f"got {num_projections}"
        )
    return int(num_projections)


def jacobian(
    fn: Callable[[jax.Array], Any],
    x: jax.Array,
    *,
    key: jax.Array | None = None,
    num_projections: int = 1,
) -> jax.Array:
    r"""Jacobian penalty ½ · mean_b ‖∂fn(x_b)/∂x_b‖²_F, exact or by random projections.

    .. math::
        R = \frac{1}{2}\operatorname{mean}_b \|J_b\|_F^2, \qquad
        \|J\|_F^2 = \mathbb{E}_{u \sim \mathcal{U}(S^{m-1})}\big[\, m\, \|J^\top u\|_2^2 \big]

    where m is the output size of ``fn``: for u uniform on the unit sphere
    :math:`\mathbb{E}[uu^\top] = I/m`, so each projection, one vector–Jacobian product, gives an
    unbiased estimate (Hoffman et al., 2019, "Robust learning with Jacobian regularization").
    The estimate averages ``num_projections`` independent projections per example;
    ``num_projections=-1`` computes the Jacobian and is exact (no key needed).

    ``fn`` maps one example to its outputs (an array or a pytree of arrays); it is vmapped over
    the leading batch axis of ``x``. Close over the parameters to penalize them: the result is
    differentiable, so ``jax.grad`` of a loss containing it trains the network to be smooth in
    its input (the whole-network version of :func:`contractive`).

    Args:
        fn: function of one example ``x[b]``.
        x: inputs with a leading batch axis.
        key: PRNG key for the projections; required unless ``num_projections=-1``.
        num_projections: random projections per example (≥ 1), or -1 for the exact value.

    Returns:
        A scalar.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from jaxreg import penalties
        >>> a = jnp.array([[1.0, 2.0], [3.0, 4.0]])
        >>> fn = lambda x: a @ x                              # J = a, ‖a‖²_F = 30
        >>> x = jnp.ones((5, 2))
        >>> penalties.jacobian(fn, x, num_projections=-1)
        Array(15., dtype=float32)
        >>> estimate = penalties.jacobian(fn, x, key=jax.random.key(0), num_projections=256)
        >>> bool(abs(estimate - 15.0) < 3.0)
        True
    """
    num_projections = _check_num_projections(num_projections)
    if jnp.ndim(x) < 1:
        raise ValueError(f"x must have a leading batch axis, got shape {jnp.shape(x)}")

    def flat_fn(example: jax.Array) -> jax.Array:
        return ravel_pytree(fn(example))[0]

    if num_projections == -1:

        def exact_sq_norm(example: jax.Array) -> jax.Array:
            jac = jax.jacrev(flat_fn)(example)
            return jnp.sum(jnp.square(jac))

        return 0.5 * jnp.mean(jax.vmap(exact_sq_norm)(x))

    if key is None:
        raise ValueError(
            f"jacobian with num_projections={num_projections} draws random projections and "
            "needs a PRNG key: pass key=jax.random.key(seed), or num_projections=-1 for the "
            "exact value"
        )

    def estimated_sq_norm(example: jax.Array, example_key: jax.Array) -> jax.Array:
        outputs, vjp = jax.vjp(flat_fn, example)
        size = outputs.shape[0]
        directions = jax.random.normal(example_key, (num_projections, size), outputs.dtype)
        directions = directions / jnp.linalg.norm(directions, axis=-1, keepdims=True)
        (projected,) = jax.vmap(vjp)(directions)
        per_projection = jnp.sum(jnp.square(projected.reshape(num_projections, -1)), axis=-1)
        return size * jnp.mean(per_projection)

    keys = jax.random.split(key, x.shape[0])
    return 0.5 * jnp.mean(jax.vmap(estimated_sq_norm)(x, keys))

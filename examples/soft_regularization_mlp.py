r"""Seed 001's "soft" regularization and its product of norms, on a ReLU MLP.

Seed 001 regularizes a ReLU network with two terms whose gradients it derived by hand — wrongly,
and without differentiating the regularizer at all. Both are ordinary differentiable functions
in jaxreg, and ``jax.grad`` takes care of the rest:

* the **soft** (contractive) term
  :math:`\frac{1}{2}\sum_i f'(z_i)^2 \|w_i\|^2`, i.e. ½‖∂h/∂x‖²_F of each hidden layer
  h = f(xW + b), averaged over the batch: ``jaxreg.penalties.contractive(weights,
  pre_activations, jax.nn.relu)`` with the pre-activations that
  ``mlp(...).apply(..., return_activations=True)`` returns;
* the **product of norms** :math:`\|W_1\|_1 \cdot \|W_2\|_2` (max column sum times spectral
  norm): ``jaxreg.penalties.norm_product([W1, W2], strength, ord=(1, 2))``.

The objective is

.. math::
    J = \mathrm{CE} + \alpha\, R_{\mathrm{soft}} + \beta\, \|W_1\|_1 \|W_2\|_2 .

The example fits two interleaved spirals with and without the two terms and reports accuracy,
the soft term and the whole-network Jacobian penalty ``jaxreg.penalties.jacobian`` (exact mode):
the regularized network is smoother in its input.

Run: ``python examples/soft_regularization_mlp.py`` (a few seconds on CPU).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxreg import penalties
from jaxreg.models import mlp


def make_spirals(n: int, seed: int, noise: float = 0.15) -> tuple[jax.Array, jax.Array]:
    """Two interleaved 2-D spirals, labels 0 and 1."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    radius = rng.uniform(0.2, 1.0, size=n)
    angle = 3 * np.pi * radius + np.pi * labels
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    x += noise * radius[:, None] * rng.standard_normal((n, 2))
    return jnp.asarray(x, jnp.float32), jnp.asarray(labels, jnp.int32)


NET = mlp([2, 64, 2], activation=jax.nn.relu)


def objective(params: list[dict[str, jax.Array]], x, y, alpha, beta) -> jax.Array:
    """Cross-entropy + α · soft (contractive) term + β · ‖W1‖₁‖W2‖₂."""
    logits, pre_activations = NET.apply(params, x, return_activations=True)
    data = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    hidden_weights = [layer["w"] for layer in params[:-1]]
    soft = penalties.contractive(hidden_weights, pre_activations, jax.nn.relu)
    product = penalties.norm_product([layer["w"] for layer in params], beta, ord=(1, 2))
    return data + alpha * soft + product


def train(alpha: Any, beta: Any, *, num_steps: int = 1500, seed: int = 0) -> dict[str, Any]:
    """Full-batch Adam, one ``lax.scan``; ``alpha`` and ``beta`` are data (may be traced)."""
    x, y = make_spirals(300, seed)
    params = NET.init(jax.random.key(seed))
    optimizer = optax.adam(1e-2)

    def step(carry, _):
        params, state = carry
        grads = jax.grad(objective)(params, x, y, alpha, beta)
        updates, state = optimizer.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), length=num_steps)
    x_test, y_test = make_spirals(1000, seed + 1)
    _, pre_activations = NET.apply(params, x_test, return_activations=True)
    return {
        "params": params,
        "train_accuracy": jnp.mean(jnp.argmax(NET.apply(params, x), -1) == y),
        "test_accuracy": jnp.mean(jnp.argmax(NET.apply(params, x_test), -1) == y_test),
        "soft": penalties.contractive([params[0]["w"]], pre_activations, jax.nn.relu),
        "jacobian": penalties.jacobian(
            lambda example: NET.apply(params, example), x_test, num_projections=-1
        ),
        "norm_product": penalties.norm_product([layer["w"] for layer in params], 1.0, ord=(1, 2)),
    }


def main(num_steps: int = 1500) -> dict[str, Any]:
    """Unregularized vs regularized, both in one compiled program (``vmap`` over α, β)."""
    alphas = jnp.array([0.0, 1e-3])
    betas = jnp.array([0.0, 1e-3])
    results = jax.jit(jax.vmap(lambda a, b: train(a, b, num_steps=num_steps)))(alphas, betas)
    print("  α       β      train acc  test acc  soft term  ½‖J‖²_F  ‖W1‖₁‖W2‖₂")
    for k in range(alphas.shape[0]):
        print(
            f"{float(alphas[k]):6.0e}  {float(betas[k]):6.0e}  "
            f"{float(results['train_accuracy'][k]):8.3f}  {float(results['test_accuracy'][k]):8.3f}"
            f"  {float(results['soft'][k]):9.3f}  {float(results['jacobian'][k]):8.3f}"
            f"  {float(results['norm_product'][k]):9.2f}"
        )
    return {"alphas": alphas, "betas": betas, **results}


if __name__ == "__main__":
    main()

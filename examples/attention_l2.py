r"""An attention classifier trained with an L2 penalty — what seed 000 announced.

Seed 000 promised "an attention network with an L2 penalty" and then trained plain linear
regression. Here the network really attends: :func:`jaxreg.models.transformer_classifier` reads a
sequence of token features, and the task needs attention across positions — the label says
whether the token marked by a "query" flag matches the majority sign of the other tokens, which
no single position reveals.

The objective is the seed's, with its data passed in instead of read from globals:

.. math::
    J(\theta) = \frac{1}{m}\sum_i \mathrm{CE}(f_\theta(x_i), y_i)
                + \frac{\lambda}{2m}\sum_{W} \|W\|_F^2

The seed's λ/(2m)·Σθ² term is ``jaxreg.penalties.l2(params, λ/m)`` (SPEC §1: l2 carries ½), and
``mask=jaxreg.masks.weights_only`` leaves biases and layer-norm parameters unpenalized. The same
penalty could be added as a gradient term with ``optax.add_decayed_weights(λ/m, mask=...)``.

Run: ``python examples/attention_l2.py`` (a few seconds on CPU).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxreg
from jaxreg.models import transformer_classifier

SEQ, D_IN = 8, 3


def make_data(n: int, seed: int) -> tuple[jax.Array, jax.Array]:
    """Tokens carry a sign s ∈ {±1} (feature 0) and noise (feature 1); one token is flagged
    (feature 2). Label 1 if the flagged token's sign equals the majority sign of the rest."""
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n, SEQ))
    flagged = rng.integers(0, SEQ, size=n)
    x = np.zeros((n, SEQ, D_IN), np.float32)
    x[..., 0] = signs
    x[..., 1] = rng.standard_normal((n, SEQ))
    x[np.arange(n), flagged, 2] = 1.0
    others = signs.sum(axis=1) - signs[np.arange(n), flagged]
    majority = np.where(others >= 0, 1.0, -1.0)
    y = (signs[np.arange(n), flagged] == majority).astype(np.int32)
    return jnp.asarray(x), jnp.asarray(y)


def train(
    lam: Any,
    *,
    num_steps: int = 300,
    n_train: int = 256,
    learning_rate: float = 3e-3,
    seed: int = 0,
) -> dict[str, Any]:
    """Full-batch Adam on J(θ) under one ``jit``; ``lam`` is data (it may be traced)."""
    x, y = make_data(n_train, seed)
    net = transformer_classifier(D_IN, 2, d_model=32, num_heads=4)
    params = net.init(jax.random.key(seed))
    m = x.shape[0]
    optimizer = optax.adam(learning_rate)

    def objective(params):
        logits = net.apply(params, x)
        data = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        # the seed's λ/(2m)·Σ‖W‖²: l2 with strength λ/m
        return data + jaxreg.penalties.l2(params, lam / m, mask=jaxreg.masks.weights_only)

    def step(carry, _):
        params, state = carry
        loss, grads = jax.value_and_grad(objective)(params)
        updates, state = optimizer.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), loss

    (params, _), losses = jax.lax.scan(step, (params, optimizer.init(params)), length=num_steps)
    x_test, y_test = make_data(512, seed + 1)

    def accuracy(x, y):
        return jnp.mean(jnp.argmax(net.apply(params, x), axis=-1) == y)

    return {
        "params": params,
        "losses": losses,
        "train_accuracy": accuracy(x, y),
        "test_accuracy": accuracy(x_test, y_test),
        "weight_norm": jnp.sqrt(
            2 * jaxreg.penalties.l2(params, 1.0, mask=jaxreg.masks.weights_only)
        ),
    }


def main(num_steps: int = 300) -> dict[str, Any]:
    """Train at λ ∈ {0, 1, 10} in one compiled program (``vmap`` over λ) and report."""
    lambdas = jnp.array([0.0, 1.0, 10.0])
    results = jax.jit(jax.vmap(lambda lam: train(lam, num_steps=num_steps)))(lambdas)
    print(" λ      train acc  test acc  ‖W‖_F")
    for k, lam in enumerate(np.asarray(lambdas)):
        print(
            f"{lam:5.1f}   {float(results['train_accuracy'][k]):8.3f}  "
            f"{float(results['test_accuracy'][k]):8.3f}  {float(results['weight_norm'][k]):6.2f}"
        )
    return {"lambdas": lambdas, **results}


if __name__ == "__main__":
    main()

r"""Dropout on an MLP, with the dropout rate swept inside one compiled program.

Seed 003 "dropped out" by scaling activations with the mean of a random draw; dropout is a
Bernoulli keep mask per unit and per example, with the kept units scaled by 1/(1 − p) so that the
expected activation is unchanged (inverted dropout, Srivastava et al., 2014):

.. math::
    h = \frac{m \odot f(z)}{1 - p}, \qquad m_i \sim \mathrm{Bernoulli}(1 - p)

``jaxreg.models.mlp`` applies it to every hidden layer when ``train=True``; nothing changes at
inference (``train=False``). The rate is data: ``apply(..., dropout_rate=p)`` takes a traced
value, so ``jax.vmap`` over p trains one network per rate in a single compiled program — the
rates share the initialization and the PRNG stream, so their differences are the rate's alone.

The task is small and noisy (100 examples, 40 features, label noise), where a wide MLP fits the
training set perfectly and generalizes far worse. On it dropout is a mild regularizer: test
accuracy moves by well under a point between p = 0 and p = 0.6 (and falls at p ≈ 0.9, where the
network underfits) — dropout is no cure for too little data; the example shows the mechanics.

Run: ``python examples/dropout_mlp.py`` (a few seconds on CPU).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxreg.models import mlp

NUM_FEATURES = 40
NET = mlp([NUM_FEATURES, 256, 256, 2])


def make_data(n: int, seed: int) -> tuple[jax.Array, jax.Array]:
    """Label = sign of a sparse linear score plus noise (true weights shared across seeds)."""
    weights = np.zeros(NUM_FEATURES)
    weights[:5] = [2.0, -1.5, 1.0, -1.0, 0.5]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, NUM_FEATURES))
    y = (x @ weights + 1.0 * rng.standard_normal(n) > 0).astype(np.int32)
    return jnp.asarray(x, jnp.float32), jnp.asarray(y)


def train(rate: Any, *, num_steps: int = 300, seed: int = 0) -> dict[str, Any]:
    """Full-batch Adam with dropout ``rate`` (may be traced); a fresh mask every step."""
    x, y = make_data(100, seed)
    params = NET.init(jax.random.key(seed))
    optimizer = optax.adam(1e-3)

    def loss_fn(params, key):
        logits = NET.apply(params, x, key=key, train=True, dropout_rate=rate)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def step(carry, key):
        params, state = carry
        grads = jax.grad(loss_fn)(params, key)
        updates, state = optimizer.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), None

    step_keys = jax.random.split(jax.random.key(seed + 100), num_steps)
    (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), step_keys)
    x_test, y_test = make_data(2000, seed + 1)

    def accuracy(x, y):  # inference: train=False, no key, no dropout
        return jnp.mean(jnp.argmax(NET.apply(params, x), axis=-1) == y)

    return {"train_accuracy": accuracy(x, y), "test_accuracy": accuracy(x_test, y_test)}


def main(num_steps: int = 300) -> dict[str, Any]:
    """Train at p ∈ {0, 0.3, 0.6} in one compiled program and report accuracies."""
    rates = jnp.array([0.0, 0.3, 0.6])
    results = jax.jit(jax.vmap(lambda p: train(p, num_steps=num_steps)))(rates)
    print(" p     train acc  test acc")
    for k, rate in enumerate(np.asarray(rates)):
        print(
            f"{rate:4.1f}   {float(results['train_accuracy'][k]):8.3f}  "
            f"{float(results['test_accuracy'][k]):8.3f}"
        )
    return {"rates": rates, **results}


if __name__ == "__main__":
    main()

r"""The seeds' three linear-regression examples, done correctly with jaxreg + optax.

The source articles (``shared/seeds/`` beside the repository) regularize linear regression three
ways; their code has sign errors, reads globals and (seed 002) never clips the parameters it
says it clips. Here each is an ``optax`` chain, trained with ``lax.scan``, and compared with the
exact solution from :func:`jaxreg.linear.path` where the problem is the same one:

1. **L1** (seeds 000/003): :math:`J = \frac{1}{2m}\lVert y - Xw - b\rVert^2 +
   \frac{\lambda}{2m}\sum_j |w_j|`, i.e. scikit-learn's lasso at λ_path = λ/(2m).

   * sign-subgradient descent, ``chain(jaxreg.add_l1_sign(λ/(2m)), optax.sgd(lr))`` — the
     seeds' method with the correct sign and scale. It only gets *close*: coefficients that
     should be zero keep oscillating around zero by about lr·λ/(2m), so the objective is
     slightly above the optimum and no coefficient is exactly zero.
   * proximal gradient (ISTA), ``chain(optax.sgd(lr), jaxreg.prox_l1(λ/(2m), lr))`` — converges
     to the exact lasso solution, exact zeros included.

2. **L2** (seeds 000/003): :math:`\frac{\lambda}{2m}\sum_j w_j^2` is ``jaxreg.penalties.l2``
   with strength λ/m, whose gradient is what ``optax.add_decayed_weights(λ/m)`` adds; both reach
   the ridge solution, ``linear.path(l1_ratio=0, lambdas=[λ/m])``.

3. **Hard regularization** (seed 002): :math:`\frac{1}{2n}\lVert y - Xw - b\rVert^2 +
   \lambda\sum_j w_j^2` (``l2`` with strength 2λ) with gradients clipped to [−L, L]
   (``optax.clip(L)``, first) and the *parameters* clipped to [−c, c] (``jaxreg.clip_params``,
   last). Gradient clipping changes the route, not the fixed point: it converges to the
   box-constrained ridge solution, which is the ``linear.path`` ridge solution when the box is
   not active.

The bias is never penalized (``mask={"w": True, "b": False}``), as with ``fit_intercept=True``.

Run: ``python examples/seed_linear.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxreg
from jaxreg import linear, penalties

WEIGHTS_ONLY = {"w": True, "b": False}


def make_data(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standardized features, a sparse truth (two zeros) and an offset."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5))
    x = (x - x.mean(0)) / x.std(0)
    y = x @ np.array([3.0, -2.0, 0.0, 0.5, 0.0]) + 4.0 + 0.5 * rng.standard_normal(n)
    return x, y


def data_loss(params: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    """(1/(2m)) ‖y − Xw − b‖² — the seeds' data term, with the data passed in (no globals)."""
    residual = y - x @ params["w"] - params["b"]
    return 0.5 * jnp.mean(residual**2)


def train(
    optimizer: optax.GradientTransformation,
    x: Any,
    y: Any,
    *,
    steps: int = 3000,
    loss: Callable[..., jax.Array] = data_loss,
) -> dict[str, np.ndarray]:
    """Full-batch training with ``optimizer`` from zero parameters, one compiled ``lax.scan``."""
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.float32)
    params = {"w": jnp.zeros(x.shape[1]), "b": jnp.zeros(())}

    @jax.jit
    def run(params):
        def step(carry, _):
            params, state = carry
            grads = jax.grad(loss)(params, x, y)
            updates, state = optimizer.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), None, length=steps)
        return params

    return jax.tree.map(np.asarray, run(params))


def l1_sign_subgradient(x, y, lam: float, *, lr: float = 0.1, steps: int = 3000):
    """Seed 000/003 L1 by sign-subgradient descent: strength λ/(2m), sign +λ·sign(w)."""
    strength = lam / (2 * len(y))
    return train(
        optax.chain(jaxreg.add_l1_sign(strength, mask=WEIGHTS_ONLY), optax.sgd(lr)),
        x,
        y,
        steps=steps,
    )


def l1_proximal(x, y, lam: float, *, lr: float = 0.1, steps: int = 3000):
    """The same L1 problem by ISTA (``prox_l1`` last): exact lasso solution and exact zeros."""
    strength = lam / (2 * len(y))
    tx = optax.chain(optax.sgd(lr), jaxreg.prox_l1(strength, step_size=lr, mask=WEIGHTS_ONLY))
    return train(tx, x, y, steps=steps)


def l2_decayed_weights(x, y, lam: float, *, lr: float = 0.1, steps: int = 3000):
    """Seed L2 λ/(2m)·Σw² as ``optax.add_decayed_weights(λ/m)`` before the SGD step."""
    tx = optax.chain(optax.add_decayed_weights(lam / len(y), mask=WEIGHTS_ONLY), optax.sgd(lr))
    return train(tx, x, y, steps=steps)


def l2_penalty_term(x, y, lam: float, *, lr: float = 0.1, steps: int = 3000):
    """The same L2 problem with ``jaxreg.penalties.l2(strength=λ/m)`` added to the loss."""

    def loss(params, x, y):
        return data_loss(params, x, y) + penalties.l2(params, lam / len(y), mask=WEIGHTS_ONLY)

    return train(optax.sgd(lr), x, y, steps=steps, loss=loss)


def hard_regularization(
    x, y, lam: float, *, clip_value: float, grad_limit: float, lr: float = 0.1, steps: int = 3000
):
    """Seed 002: + λ·Σw² (``l2`` with strength 2λ), gradients clipped to [−L, L] and the
    parameters (weights) clipped to [−c, c]."""
    tx = optax.chain(
        optax.clip(grad_limit),
        optax.add_decayed_weights(2 * lam, mask=WEIGHTS_ONLY),
        optax.sgd(lr),
        jaxreg.clip_params(-clip_value, clip_value, mask=WEIGHTS_ONLY),
    )
    return train(tx, x, y, steps=steps)


def lasso_reference(x, y, lam: float) -> tuple[np.ndarray, float]:
    """Exact solution of the seeds' L1 problem: ``linear.path`` at λ_path = λ/(2m)."""
    res = linear.path(x, y, lambdas=[lam / (2 * len(y))], tol=1e-12, dtype=jnp.float64)
    return res.coef[0], float(res.intercept[0])


def ridge_reference(x, y, strength: float) -> tuple[np.ndarray, float]:
    """Exact ridge solution with penalty (strength/2)·‖w‖²: ``linear.path(l1_ratio=0)``."""
    res = linear.path(x, y, l1_ratio=0.0, lambdas=[strength], tol=1e-12, dtype=jnp.float64)
    return res.coef[0], float(res.intercept[0])


def seed_l1_objective(x, y, w, b, lam: float) -> float:
    """J(w, b) = (1/(2m))‖y − Xw − b‖² + λ/(2m)·Σ|w| in float64."""
    residual = y - x @ w - b
    return float(residual @ residual / (2 * len(y)) + lam / (2 * len(y)) * np.abs(w).sum())


def main() -> None:
    x, y = make_data()
    m = len(y)
    lam = 40.0  # the seeds' λ: λ/(2m) = 0.1 in scikit-learn's units
    w_star, b_star = lasso_reference(x, y, lam)
    print(f"L1, seeds' λ = {lam} (lasso λ = {lam / (2 * m):.3f})")
    print(f"  linear.path          w = {np.round(w_star, 4) + 0.0}  b = {b_star:.4f}")
    ista = l1_proximal(x, y, lam)
    print(f"  prox_l1 (ISTA)       w = {np.round(ista['w'], 4)}  b = {ista['b']:.4f}")
    sign = l1_sign_subgradient(x, y, lam)
    print(f"  add_l1_sign (subgr.) w = {np.round(sign['w'], 4)}  b = {sign['b']:.4f}")
    best = seed_l1_objective(x, y, w_star, b_star, lam)
    for name, p in (("prox", ista), ("sign", sign)):
        gap = seed_l1_objective(x, y, p["w"], p["b"], lam) - best
        print(f"  {name}: objective − optimum = {gap:.2e}, exact zeros: {int(np.sum(p['w'] == 0))}")

    w_ridge, b_ridge = ridge_reference(x, y, lam / m)
    print(f"\nL2, seeds' λ/(2m)·Σw² with λ = {lam} (l2 strength λ/m = {lam / m:.3f})")
    print(f"  linear.path (ridge)      w = {np.round(w_ridge, 4)}")
    print(f"  add_decayed_weights(λ/m) w = {np.round(l2_decayed_weights(x, y, lam)['w'], 4)}")
    print(f"  penalties.l2(λ/m) term   w = {np.round(l2_penalty_term(x, y, lam)['w'], 4)}")

    hard_lam = 0.05
    w_free, _ = ridge_reference(x, y, 2 * hard_lam)
    hard = hard_regularization(x, y, hard_lam, clip_value=1.0, grad_limit=0.5)
    print(f"\nhard: λ·Σw² (λ = {hard_lam}), |grad| ≤ 0.5, |w| ≤ 1")
    print(f"  unconstrained ridge  w = {np.round(w_free, 4)}")
    print(f"  clipped training     w = {np.round(hard['w'], 4)}  (box active on |w| > 1)")
    loose = hard_regularization(x, y, hard_lam, clip_value=5.0, grad_limit=0.5)
    print(f"  box |w| ≤ 5 inactive w = {np.round(loose['w'], 4)}  (= ridge)")


if __name__ == "__main__":
    main()

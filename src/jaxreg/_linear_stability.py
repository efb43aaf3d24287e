"""Stability selection's compiled program: many subsample paths, batched with ``jax.vmap``."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from jaxreg import _linear_gaussian as gaussian
from jaxreg import _linear_glm as glm


@functools.partial(
    jax.jit, static_argnames=("family", "fit_intercept", "gram", "cap", "batch_size")
)
def selection(
    x, targets, rows, lambdas, l1_ratio, tol, max_iter, *, family, fit_intercept, gram, cap,
    batch_size,
):  # fmt: skip
    """The fraction of subsamples (row indices ``[B, m]``) whose path uses each feature at each
    λ ``[K, p]``, and the number of features each subsample's path uses anywhere ``[B]``.

    ``batch_size`` subsamples run at once under ``jax.vmap`` (their coordinate-descent steps in
    lockstep), batches one after another (``lax.map``).
    """

    def used(subsample):
        x_sub, y_sub = x[subsample], targets[subsample]
        if family == "gaussian":
            coef, _, _, _, _ = gaussian.path_in_program(
                x_sub, y_sub, lambdas, l1_ratio, tol, max_iter, fit_intercept=fit_intercept,
                gram=gram,
            )  # fmt: skip
            return coef != 0
        data = glm.Data(x_sub.T, y_sub, jnp.ones(x_sub.shape[0], x.dtype))
        coef, _, _, _, _ = glm.solve_path(
            data, lambdas, l1_ratio, tol, max_iter, family_name=family,
            fit_intercept=fit_intercept, cap=cap,
        )  # fmt: skip
        return jnp.any(coef != 0, axis=1)

    selected = lax.map(used, rows, batch_size=batch_size)  # [B, K, p]
    probabilities = jnp.mean(selected.astype(x.dtype), axis=0)
    return probabilities, jnp.sum(jnp.any(selected, axis=1), axis=1)

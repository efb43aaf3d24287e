"""The Gaussian (least-squares) path: coordinate descent with scikit-learn's objective and gaps.

Everything here works in scikit-learn's n-scaled units: P(w) = ½‖R‖² + α‖w‖₁ + ½β‖w‖² with
α = λρn, β = λ(1−ρ)n and R = y − Xw (X, y centred by the caller when there is an intercept).

Each λ (descending, warm-started, one ``lax.scan``) alternates (i) a full duality-gap check,
(ii) a working set = the nonzero coefficients plus the features passing the sequential strong
rule, and (iii) coordinate-descent epochs over that set (:mod:`jaxreg._linear_cd`). In Gram
form (``gram=True``) the epochs run on XᵀX; otherwise the working set has at most ``cap`` slots
and its own Gram matrix is formed each round, so the epochs stay in Gram form. The gap over all
p features certifies convergence, so a feature wrongly left out is picked up at the next check.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxreg import _linear_cd as cd
from jaxreg.regularizers import ElasticNet


class Design(NamedTuple):
    """What coordinate descent needs from (X, y); ``gram`` selects the representation."""

    matrix: jax.Array  # XᵀX [p, p] (Gram form) or Xᵀ [p, n] (residual form)
    xty: jax.Array  # Xᵀy [p]
    y: jax.Array  # y [n] (residual form only)
    yy: jax.Array  # yᵀy
    col_sq: jax.Array  # ‖x_j‖² [p]
    gram: bool


def gram_matrix(x: jax.Array) -> jax.Array:
    """XᵀX. For float64, XLA's CPU dot runs several times faster on a materialized Xᵀ (the
    contraction along rows) than on X's column-major view; float32 is the other way round."""
    if x.dtype == jnp.float64:
        xt = lax.optimization_barrier(x.T)
        return xt @ xt.T
    return x.T @ x


def make_design(x: jax.Array, y: jax.Array, gram: bool) -> Design:
    xty = x.T @ y
    matrix = gram_matrix(x) if gram else x.T
    return Design(matrix, xty, y, y @ y, jnp.sum(x * x, axis=0), gram)


def _fresh_aux(d: Design, w: jax.Array) -> jax.Array:
    # Gram form carries the correlations Xᵀ(y − Xw); residual form carries y − Xw.
    return d.xty - d.matrix @ w if d.gram else d.y - d.matrix.T @ w


def duality_gap(d: Design, w, aux, alpha, beta):
    """n-scaled gap (sklearn's formulations A, B and the OLS fallback) and Xᵀ(y − Xw)."""
    if d.gram:
        correlation = aux
        wy = w @ d.xty
        r_norm2 = d.yy - wy - w @ correlation
        r_y = d.yy - wy
    else:
        correlation = d.matrix @ aux
        r_norm2 = aux @ aux
        r_y = aux @ d.y
    w_norm2 = w @ w
    xta = correlation - beta * w
    dual_norm = jnp.max(jnp.abs(xta))
    # Formulation A: rescale the residual into the dual feasible set ‖Xᵀθ − βw‖∞ ≤ α.
    scale = jnp.where(dual_norm > alpha, alpha / jnp.where(dual_norm > 0, dual_norm, 1), 1)
    primal = 0.5 * (r_norm2 + beta * w_norm2) + alpha * jnp.sum(jnp.abs(w))
    dual = -0.5 * scale**2 * (r_norm2 + beta * w_norm2) + scale * r_y
    gap_a = primal - dual
    # Ridge (α = 0): formulation B; neither penalty: first-order condition ‖XᵀR‖².
    corr_sq = correlation @ correlation
    safe_beta = jnp.where(beta > 0, beta, 1)
    gap_b = r_norm2 + 0.5 * beta * w_norm2 - r_y + corr_sq / (2 * safe_beta)
    gap = jnp.where(alpha > 0, gap_a, jnp.where(beta > 0, gap_b, corr_sq))
    return gap, correlation


class _LambdaState(NamedTuple):
    w: jax.Array
    aux: jax.Array
    correlation: jax.Array
    gap: jax.Array
    epochs: jax.Array
    dw_tol: jax.Array


def _solve_one(d: Design, w, aux, alpha, beta, alpha_prev, gap_tol, tol, max_iter, cap):
    """Minimize at one λ from the warm start ``w``; stop on the duality gap."""
    gap, correlation = duality_gap(d, w, aux, alpha, beta)
    state = _LambdaState(w, aux, correlation, gap, jnp.zeros((), jnp.int32), tol)
    strong_threshold = jnp.maximum(2 * alpha - alpha_prev, 0)
    quadratic = cd.Quadratic(d.matrix, d.col_sq, None)

    def keep_going(s: _LambdaState):
        return (s.gap > gap_tol) & (s.epochs < max_iter)

    def gram_round(s: _LambdaState) -> _LambdaState:
        working = (s.w != 0) | (jnp.abs(s.correlation) > strong_threshold)
        (idx,) = jnp.nonzero(working, size=working.shape[0], fill_value=0)
        count = jnp.sum(working)
        w, aux, epochs, _ = cd.epochs(
            quadratic, s.w, s.aux, idx, count, alpha, beta, s.dw_tol, s.epochs, max_iter,
            anderson=True,
        )
        # The carried vector is updated in place along the whole path, as sklearn does within
        # one λ: a refresh per λ costs a p×p matvec (memory bound).
        gap, correlation = duality_gap(d, w, aux, alpha, beta)
        # If the gap is not yet small enough, ask more of the inner loop next time.
        return _LambdaState(w, aux, correlation, gap, epochs, s.dw_tol * 0.1)

    def working_gram_round(s: _LambdaState) -> _LambdaState:
        idx, valid = cd.working_slots(s.w, -s.correlation, alpha, beta, alpha_prev, cap)
        # Zeroed columns (invalid slots) keep a zero coefficient.
        cols = d.matrix[idx] * valid[:, None].astype(d.matrix.dtype)
        sub = cd.Quadratic(cols @ cols.T, jnp.sum(cols * cols, axis=1), None)
        # The slots' correlations with the current residual: nonzeros left outside the slots
        # (more nonzeros than cap) stay fixed in this round's target, not dropped from it.
        (local,) = jnp.nonzero(valid, size=cap, fill_value=0)
        count = jnp.sum(valid)
        w_sub, _, epochs, _ = cd.epochs(
            sub, s.w[idx], cols @ s.aux, local, count, alpha, beta, s.dw_tol, s.epochs,
            max_iter, anderson=True,
        )
        w = s.w.at[idx].set(w_sub)
        aux = _fresh_aux(d, w)
        gap, correlation = duality_gap(d, w, aux, alpha, beta)
        return _LambdaState(w, aux, correlation, gap, epochs, s.dw_tol * 0.1)

    return lax.while_loop(keep_going, gram_round if d.gram else working_gram_round, state)


@functools.partial(jax.jit, static_argnames=("gram",))
def solve_path(x, y, n_rows, lambdas, l1_ratio, tol, max_iter, *, gram: bool):
    """Coefficients along a descending grid for centred (x, y); gaps in objective units."""
    d = make_design(x, y, gram)
    alphas = lambdas * l1_ratio * n_rows
    betas = lambdas * (1 - l1_ratio) * n_rows
    gap_tol = tol * d.yy
    alphas_prev = jnp.concatenate([alphas[:1], alphas[:-1]])
    num_rows, num_features = x.shape
    cap = working_set_cap(num_rows, num_features)

    def one_lambda(carry, inputs):
        w, aux = carry
        alpha, beta, alpha_prev = inputs
        s = _solve_one(d, w, aux, alpha, beta, alpha_prev, gap_tol, tol, max_iter, cap)
        return (s.w, s.aux), (s.w, s.gap / n_rows, s.epochs, s.gap <= gap_tol)

    w0 = jnp.zeros(x.shape[1], x.dtype)
    start = (w0, _fresh_aux(d, w0))
    _, (coef, gaps, epochs, converged) = lax.scan(one_lambda, start, (alphas, betas, alphas_prev))
    return coef, gaps, epochs, converged


def _centre(x, y, fit_intercept: bool):
    if fit_intercept:
        x_mean = jnp.mean(x, axis=0)
        y_mean = jnp.mean(y)
        return x - x_mean, y - y_mean, x_mean, y_mean
    return x, y, jnp.zeros(x.shape[1], x.dtype), jnp.zeros((), x.dtype)


@functools.partial(jax.jit, static_argnames=("num_lambdas", "fit_intercept", "gram"))
def path_program(x, y, grid, l1_ratio, eps, tol, max_iter, *, num_lambdas, fit_intercept, gram):
    """Centring, grid, path and intercepts in one compiled program (raw data in)."""
    x, y, x_mean, y_mean = _centre(x, y, fit_intercept)
    if num_lambdas is not None:
        grid = default_grid(lambda_max(x, y, l1_ratio), eps, num_lambdas)
    n_rows = jnp.asarray(x.shape[0], x.dtype)
    coef, gaps, epochs, converged = solve_path(
        x, y, n_rows, grid, l1_ratio, tol, max_iter, gram=gram
    )
    return grid, coef, y_mean - coef @ x_mean, gaps, epochs, converged


def masked_path(x, y, mask, lambdas, l1_ratio, tol, max_iter, *, fit_intercept, gram):
    """The path of the rows where ``mask`` (0/1 ``[n]``) is 1: coefficients and intercepts."""
    n_rows = jnp.sum(mask)
    if fit_intercept:
        x_mean = mask @ x / n_rows
        y_mean = mask @ y / n_rows
    else:
        x_mean = jnp.zeros(x.shape[1], x.dtype)
        y_mean = jnp.zeros((), x.dtype)
    # Zeroed rows drop out of every sum, so this is an n_rows-row problem.
    coef, _, _, _ = solve_path(
        mask[:, None] * (x - x_mean), mask * (y - y_mean), n_rows, lambdas, l1_ratio, tol,
        max_iter, gram=gram,
    )  # fmt: skip
    return coef, y_mean - coef @ x_mean


@functools.partial(jax.jit, static_argnames=("fit_intercept", "gram"))
def fold_losses(x, y, train, lambdas, l1_ratio, tol, max_iter, *, fit_intercept, gram):
    """Validation MSE ``[folds, K]``; ``train`` is a 0/1 row mask per fold ``[folds, n]``."""

    def one_fold(mask):
        coef, intercept = masked_path(
            x, y, mask, lambdas, l1_ratio, tol, max_iter, fit_intercept=fit_intercept, gram=gram
        )
        residual = y[None, :] - coef @ x.T - intercept[:, None]
        validation = 1 - mask
        return (residual**2 @ validation) / jnp.sum(validation)

    return lax.map(one_fold, train)


def lambda_max(x_c, y_c, l1_ratio) -> jax.Array:
    """scikit-learn's λ_max: the elastic net's dual norm of the null model's gradient,
    max|X_cᵀy_c| / (nρ)."""
    return ElasticNet(1.0, l1_ratio).dual_norm(x_c.T @ y_c / x_c.shape[0])


def default_grid(lambda_max, eps, num_lambdas: int) -> jax.Array:
    """λ_max log-spaced down to eps·λ_max (scikit-learn's ``_alpha_grid``)."""
    dtype = jnp.result_type(lambda_max)
    grid = lambda_max * eps ** jnp.linspace(0, 1, num_lambdas, dtype=dtype)
    # sklearn's convention when y is constant (after centring): a flat, tiny grid.
    resolution = np.finfo(np.float64).resolution
    return jnp.where(lambda_max <= resolution, jnp.asarray(resolution, dtype), grid)


def working_set_cap(n: int, p: int) -> int:
    # Lasso solutions have at most n nonzeros (generic data): 2n slots leave room to grow; the
    # 512 bound keeps the per-round n·cap² Gram affordable (more nonzeros than slots still
    # converge: the most KKT-violating nonzeros take turns).
    return min(p, max(32, min(2 * n, 512)))


def choose_gram(precompute: bool | str, n: int, p: int, l1_ratio) -> bool:
    if precompute == "auto":
        # Whenever the working-set cap would hold every feature, one full Gram is cheaper than
        # a per-round one; an elastic net (ρ < 1) can have far more than 2n nonzeros, which the
        # capped working set handles slowly, so it takes the full Gram while p² is affordable.
        return p <= max(2 * n, 32) or (float(l1_ratio) < 1 and p <= 8192)
    if isinstance(precompute, bool):
        return precompute
    raise ValueError(f'precompute must be "auto", True or False, got {precompute!r}')

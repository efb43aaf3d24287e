"""The Gaussian (least-squares) path: coordinate descent with scikit-learn's objective and gaps.

Everything here works in scikit-learn's n-scaled units: P(w) = ½‖R‖² + α‖w‖₁ + ½β‖w‖² with
α = λρn, β = λ(1−ρ)n and R = y − Xw (X, y centred when there is an intercept).

Each λ (descending, warm-started, one ``lax.scan``) alternates (i) a working set = the nonzero
coefficients plus the features passing the sequential strong rule, (ii) coordinate-descent
epochs over that set (:mod:`jaxreg._linear_cd`) and (iii) a duality-gap check over all p
features, which certifies convergence (a feature wrongly left out is picked up at the next
round). When p ≤ 2n the epochs run on XᵀX (Gram form: computed once, a step is an axpy of
length p). Otherwise the working set lives in at most ``cap`` slots whose Gram matrix is kept
up to date row by row as features arrive (n·cap flops each), and the epochs there are
Anderson-accelerated (p ≫ n makes the lasso ill-conditioned near its end).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxreg import _linear_cd as cd
from jaxreg.regularizers import ElasticNet


class Design(NamedTuple):
    """What coordinate descent needs from the centred (X, y): Gram form (``y`` is None: a
    coordinate step is independent of n) or residual form."""

    matrix: jax.Array  # XᵀX [p, p] (Gram form) or Xᵀ [p, n] (residual form)
    xty: jax.Array  # Xᵀy [p]
    y: jax.Array | None  # y [n] (residual form only)
    yy: jax.Array  # yᵀy
    col_sq: jax.Array  # ‖x_j‖² [p]

    @property
    def gram(self) -> bool:
        return self.y is None


class Statistics(NamedTuple):
    """The Gram form's sufficient statistics of (X, y), centred when there is an intercept."""

    gram: Any  # X_cᵀX_c [p, p]
    xty: Any  # X_cᵀy_c [p]
    yy: Any  # y_cᵀy_c
    x_mean: Any  # [p] (zeros without an intercept)
    y_mean: Any
    n_rows: Any


def statistics(x, y, fit_intercept: bool, xp=jnp) -> Statistics:
    """The statistics in numpy (``xp=np``: BLAS's symmetric rank-k update, several times
    faster than XLA's CPU dot in float64) or in JAX (``xp=jnp``, inside programs)."""
    if fit_intercept:
        x_mean, y_mean = xp.mean(x, axis=0), xp.mean(y)
        x, y = x - x_mean, y - y_mean
    else:
        x_mean, y_mean = xp.zeros(x.shape[1], x.dtype), xp.zeros((), x.dtype)
    gram = gram_matrix(x) if xp is jnp else x.T @ x
    n_rows = xp.asarray(x.shape[0], x.dtype)
    return Statistics(gram, x.T @ y, y @ y, x_mean, y_mean, n_rows)


def gram_matrix(x: jax.Array) -> jax.Array:
    """XᵀX. For float64, XLA's CPU dot runs several times faster on a materialized Xᵀ (the
    contraction along rows) than on X's column-major view; float32 is the other way round."""
    if x.dtype == jnp.float64:
        xt = lax.optimization_barrier(x.T)
        return xt @ xt.T
    return x.T @ x


def gram_design(stats: Statistics) -> Design:
    return Design(stats.gram, stats.xty, None, stats.yy, jnp.diagonal(stats.gram))


def residual_design(x, y) -> Design:
    return Design(x.T, x.T @ y, y, y @ y, jnp.sum(x * x, axis=0))


def _fresh_aux(d: Design, w: jax.Array) -> jax.Array:
    # Gram form carries the correlations Xᵀ(y − Xw); residual form carries y − Xw.
    # w @ Xᵀ, not X @ w: XLA would transpose the [p, n] matrix first.
    return d.xty - d.matrix @ w if d.gram else d.y - w @ d.matrix


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


class _Slots(NamedTuple):
    """The residual form's working set: ``cap`` slots holding features (−1: empty) and the Gram
    matrix of their columns, kept up to date row by row as features come and go."""

    features: jax.Array  # [cap] int
    gram: jax.Array  # [cap, cap]


class _LambdaState(NamedTuple):
    w: jax.Array
    aux: jax.Array
    correlation: jax.Array
    gap: jax.Array
    epochs: jax.Array
    dw_tol: jax.Array
    slots: _Slots | None  # residual form only


def _solve_one(d: Design, w, aux, slots, alpha, beta, alpha_prev, gap_tol, tol, max_iter):
    """Minimize at one λ from the warm start ``w``; stop on the duality gap.

    Each round: a working set (nonzeros + strong-rule survivors, from the last gap check's
    correlations), coordinate-descent epochs on it, a gap check over all p features.
    """
    _, correlation = duality_gap(d, w, aux, alpha, beta)
    # At least one round per λ (scikit-learn checks the gap first and keeps a warm start already
    # inside its tolerance): little extra work for iterates well inside the tolerance, which is
    # what makes the objective equal to scikit-learn's at a looser tol.
    unchecked = jnp.full((), jnp.inf, w.dtype)
    state = _LambdaState(w, aux, correlation, unchecked, jnp.zeros((), jnp.int32), tol, slots)
    strong_threshold = jnp.maximum(2 * alpha - alpha_prev, 0)
    quadratic = cd.Quadratic(d.matrix, d.col_sq, None)

    def keep_going(s: _LambdaState):
        return (s.gap > gap_tol) & (s.epochs < max_iter)

    def gram_round(s: _LambdaState) -> _LambdaState:
        working = (s.w != 0) | (jnp.abs(s.correlation) > strong_threshold)
        (idx,) = jnp.nonzero(working, size=working.shape[0], fill_value=0)
        # No Anderson extrapolation here: at a few epochs per λ it never pays, and it measured
        # +60% compile time and +30% run time on the n = 2000, p = 500 path.
        w, aux, epochs, _ = cd.epochs(
            quadratic, s.w, s.aux, idx, jnp.sum(working), alpha, beta, s.dw_tol, s.epochs,
            max_iter, anderson=False,
        )  # fmt: skip
        # The carried vector is updated in place along the whole path, as sklearn does within
        # one λ (a refresh per λ would cost a matvec).
        gap, correlation = duality_gap(d, w, aux, alpha, beta)
        # If the gap is not yet small enough, ask more of the inner loop next time.
        return _LambdaState(w, aux, correlation, gap, epochs, s.dw_tol * 0.1, None)

    def slots_round(s: _LambdaState) -> _LambdaState:
        cap = s.slots.features.shape[0]
        idx, valid = cd.working_slots(s.w, -s.correlation, alpha, beta, alpha_prev, cap)
        slots = _fill_slots(d.matrix, s.slots, idx, valid)
        filled = slots.features >= 0
        held = jnp.where(filled, slots.features, 0)
        columns = d.matrix[held] * filled[:, None].astype(d.matrix.dtype)  # [cap, n]
        sub = cd.Quadratic(slots.gram, jnp.diagonal(slots.gram), None)
        (local,) = jnp.nonzero(filled, size=cap, fill_value=0)
        # The slots' correlations with the current residual: nonzeros left outside the slots
        # (more nonzeros than cap) stay fixed in this round's target, not dropped from it.
        w_sub, _, epochs, _ = cd.epochs(
            sub, jnp.where(filled, s.w[held], 0), columns @ s.aux, local, jnp.sum(filled), alpha,
            beta, s.dw_tol, s.epochs, max_iter, anderson=True,
        )  # fmt: skip
        w = s.w.at[jnp.where(filled, held, s.w.shape[0])].set(w_sub, mode="drop")
        aux = _fresh_aux(d, w)
        gap, correlation = duality_gap(d, w, aux, alpha, beta)
        return _LambdaState(w, aux, correlation, gap, epochs, s.dw_tol * 0.1, slots)

    return lax.while_loop(keep_going, gram_round if d.gram else slots_round, state)


def _fill_slots(xt, slots: _Slots, idx, valid) -> _Slots:
    """Slots holding exactly the wanted features ``idx[valid]``: features already held keep
    their slot (and their Gram rows); the others take freed slots, and only their rows of the
    slots' Gram matrix are computed (n·cap flops each, instead of n·cap² per round)."""
    cap = slots.features.shape[0]
    num_features = xt.shape[0]
    wanted = jnp.zeros(num_features, bool).at[idx].set(valid, mode="drop")
    held = jnp.where(slots.features >= 0, slots.features, 0)
    keep = (slots.features >= 0) & wanted[held]
    cached = jnp.zeros(num_features, bool).at[jnp.where(keep, held, num_features)].set(
        True, mode="drop"
    )
    (arrivals,) = jnp.nonzero(wanted & ~cached, size=cap, fill_value=0)
    (free,) = jnp.nonzero(~keep, size=cap, fill_value=0)
    num_arrivals = jnp.sum(wanted & ~cached)
    arriving = jnp.arange(cap) < num_arrivals
    features = jnp.where(keep, slots.features, -1)
    features = features.at[jnp.where(arriving, free, cap)].set(arrivals, mode="drop")
    filled = features >= 0
    columns = xt[jnp.where(filled, features, 0)] * filled[:, None].astype(xt.dtype)

    def add_row(k, gram):
        row = columns @ columns[free[k]]
        return gram.at[free[k]].set(row).at[:, free[k]].set(row)

    return _Slots(features, lax.fori_loop(0, num_arrivals, add_row, slots.gram))


@jax.jit
def solve_path(d: Design, n_rows, lambdas, l1_ratio, tol, max_iter):
    """Coefficients along a descending grid; gaps in objective units."""
    alphas = lambdas * l1_ratio * n_rows
    betas = lambdas * (1 - l1_ratio) * n_rows
    gap_tol = tol * d.yy
    alphas_prev = jnp.concatenate([alphas[:1], alphas[:-1]])
    num_features = d.matrix.shape[0]

    def one_lambda(carry, inputs):
        w, aux, slots = carry
        alpha, beta, alpha_prev = inputs
        s = _solve_one(d, w, aux, slots, alpha, beta, alpha_prev, gap_tol, tol, max_iter)
        return (s.w, s.aux, s.slots), (s.w, s.gap / n_rows, s.epochs, s.gap <= gap_tol)

    w0 = jnp.zeros(num_features, d.xty.dtype)
    slots = None
    if not d.gram:
        cap = working_set_cap(d.matrix.shape[1], num_features)
        slots = _Slots(jnp.full(cap, -1), jnp.zeros((cap, cap), d.xty.dtype))
    start = (w0, _fresh_aux(d, w0), slots)
    _, (coef, gaps, epochs, converged) = lax.scan(one_lambda, start, (alphas, betas, alphas_prev))
    return coef, gaps, epochs, converged


def working_set_cap(n: int, p: int) -> int:
    # Lasso solutions have at most n nonzeros (generic data): 2n slots leave room to grow
    # (more nonzeros than slots still converge: the most KKT-violating take turns); 512 bounds
    # the slots' Gram matrix.
    return min(p, max(32, min(2 * n, 512)))


@jax.jit
def gram_path_program(stats: Statistics, grid, l1_ratio, tol, max_iter):
    """Coefficients, intercepts, gaps, epochs and convergence along ``grid`` from the Gram
    form's statistics: the program sees p, not n, so new data of another size reuses it."""
    d = gram_design(stats)
    coef, gaps, epochs, converged = solve_path(d, stats.n_rows, grid, l1_ratio, tol, max_iter)
    return coef, stats.y_mean - coef @ stats.x_mean, gaps, epochs, converged


@functools.partial(jax.jit, static_argnames=("fit_intercept",))
def residual_path_program(x, y, rows, grid, l1_ratio, tol, max_iter, *, fit_intercept):
    """As :func:`gram_path_program` in residual form, for the rows where the 0/1 mask ``rows``
    is 1 (zeroed rows drop out of every sum: cross-validation folds reuse the program)."""
    n_rows = jnp.sum(rows)
    if fit_intercept:
        x_mean, y_mean = rows @ x / n_rows, rows @ y / n_rows
    else:
        x_mean, y_mean = jnp.zeros(x.shape[1], x.dtype), jnp.zeros((), x.dtype)
    d = residual_design(rows[:, None] * (x - x_mean), rows * (y - y_mean))
    coef, gaps, epochs, converged = solve_path(d, n_rows, grid, l1_ratio, tol, max_iter)
    return coef, y_mean - coef @ x_mean, gaps, epochs, converged


def path_in_program(x, y, grid, l1_ratio, tol, max_iter, *, fit_intercept, gram):
    """The path of (x, y) from inside a traced program (:func:`jaxreg.linear.solve`,
    stability selection): the statistics in JAX."""
    if gram:
        stats = statistics(x, y, fit_intercept)
        return gram_path_program(stats, grid, l1_ratio, tol, max_iter)
    rows = jnp.ones(x.shape[0], x.dtype)
    return residual_path_program(x, y, rows, grid, l1_ratio, tol, max_iter,
                                 fit_intercept=fit_intercept)  # fmt: skip


def lambda_max(xty, n_rows, l1_ratio) -> jax.Array:
    """scikit-learn's λ_max: the elastic net's dual norm of the null model's gradient,
    max|X_cᵀy_c| / (nρ)."""
    return ElasticNet(1.0, l1_ratio).dual_norm(xty / n_rows)


def default_grid(lambda_max: float, eps: float, num_lambdas: int) -> np.ndarray:
    """λ_max log-spaced down to eps·λ_max (scikit-learn's ``_alpha_grid``), in numpy."""
    resolution = np.finfo(np.float64).resolution
    if lambda_max <= resolution:  # sklearn's convention when y is constant: a flat, tiny grid
        return np.full(num_lambdas, resolution)
    return lambda_max * eps ** np.linspace(0, 1, num_lambdas)


def choose_gram(precompute: bool | str, n: int, p: int) -> bool:
    if precompute == "auto":
        # A Gram step (an axpy of length p) is cheaper than a residual step (a dot and an axpy
        # of length n) while p ≤ 2n or so.
        return p <= max(2 * n, 32)
    if isinstance(precompute, bool):
        return precompute
    raise ValueError(f'precompute must be "auto", True or False, got {precompute!r}')

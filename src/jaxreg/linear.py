r"""Lasso / elastic-net / ridge regularization paths for linear regression, as scikit-learn.

The objective is scikit-learn's (``sklearn.linear_model.enet_path``):

.. math::

    \min_{w, b}\; \frac{1}{2n}\lVert y - Xw - b\rVert_2^2
        + \lambda\Big(\rho\lVert w\rVert_1 + \frac{1-\rho}{2}\lVert w\rVert_2^2\Big)

with ρ = ``l1_ratio``. With ``fit_intercept=True`` the path is the one ``lasso_path`` /
``enet_path`` compute on centred X and y (what ``LassoCV`` does): the default grid is
:math:`\lambda_{\max} = \max_j |X_c^\top y_c|_j / (n\rho)` log-spaced down to
:math:`\varepsilon\lambda_{\max}`, and :math:`b = \bar y - \bar x^\top w`.

How it is solved (chosen by measurement, see ``bench/notes/linear_path.md``): cyclic coordinate
descent inside one compiled program, a ``lax.scan`` over the descending λ grid with warm starts.
Each λ alternates (i) a full duality-gap check, (ii) a working set = the nonzero coefficients
plus the features passing the sequential strong rule :math:`|x_j^\top r| > 2\lambda_k -
\lambda_{k-1}` (scaled by ρn), and (iii) coordinate-descent epochs over that working set only.
When ``p <= 2n`` the epochs run on the Gram matrix :math:`X^\top X` (a coordinate update costs
one O(p) axpy, independent of n); for wider data the working set is capped at
:math:`\min(p, \max(32, \min(2n, 512)))` features (nonzeros first, then by
:math:`|x_j^\top r|`) and its own Gram matrix is formed each round, so the epochs stay in Gram
form (in XLA a dot product per coordinate step measured 5-10× slower than an axpy).
Convergence is certified by the duality gap over all p features only, so a feature wrongly left
out is picked up at the next check. (An elastic net, ρ < 1, can have far more than 2n
nonzeros, which rotating slots handle slowly: it uses the full Gram up to p = 8192.)

float32 (JAX's default) reaches ``tol`` down to about 1e-6; ask for ``dtype=jnp.float64``
below that.

Stopping rule and units are scikit-learn's: with the n-scaled gap
:math:`G = n(P(w) - D(\theta))` (formulation of ``sklearn.linear_model._cd_fast``), λ stops when
:math:`G \le \mathrm{tol}\,\lVert y_c\rVert^2`; the reported ``dual_gap`` is :math:`G / n`
(as ``lasso_path(..., return_n_iter=True)``), so ``converged`` ⇔
``dual_gap <= tol * ||y_c||² / n``.

References:
    Friedman, Hastie & Tibshirani (2010), *Regularization Paths for Generalized Linear Models
    via Coordinate Descent*, J. Stat. Softw. 33(1).
    Tibshirani et al. (2012), *Strong rules for discarding predictors in lasso-type problems*,
    JRSS B 74(2).
    Massias, Gramfort & Salmon (2018), *Celer: a fast solver for the Lasso with dual
    extrapolation* (working sets, duality gaps).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxreg import cv
from jaxreg._tree import check_positive, check_unit_interval

__all__ = ["LinearCVPath", "LinearPath", "cv_path", "path", "solve"]


class LinearPath(NamedTuple):
    """A regularization path (numpy arrays; K = number of λ, p = number of features).

    Attributes:
        lambdas: the λ grid ``[K]``, descending.
        coef: coefficients ``[K, p]`` (scikit-learn's ``coefs`` is ``[p, K]``).
        intercept: intercepts ``[K]`` (zeros when ``fit_intercept=False``).
        dual_gap: duality gap per λ ``[K]`` in objective units (scikit-learn's ``dual_gaps``).
        n_iter: coordinate-descent epochs per λ ``[K]`` (epochs over the working set).
        converged: ``dual_gap <= tol * ||y_c||² / n`` per λ ``[K]``.
    """

    lambdas: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    dual_gap: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray


class LinearCVPath(NamedTuple):
    """Cross-validated path: the full-data path, per-fold errors and glmnet's selection.

    Its fields have the names of :class:`jaxreg.FitPathResult` for the same things (``lambdas``,
    ``summary``, ``fold_ids``, ``fold_losses``, ``lambda_selected``, ``index_selected``,
    ``nonzeros``), so :mod:`jaxreg.plot` and user code read both alike. The first release's names
    ``lambda_``, ``fold_mse`` and ``folds`` still work, with a ``DeprecationWarning``.

    Attributes:
        lambdas: the λ grid ``[K]`` (descending, from the full data).
        summary: :class:`jaxreg.cv.CVSummary` of ``fold_losses`` weighted by validation-fold size.
        coef: coefficients ``[p]`` of the full-data fit at the selected λ.
        intercept: intercept of the full-data fit at the selected λ.
        lambda_selected: the selected λ (``summary.lambda_1se`` or ``summary.lambda_min``).
        path: the full-data :class:`LinearPath`.
        fold_losses: validation mean squared error ``[folds, K]``.
        fold_ids: fold id per example ``[n]``.
        nonzeros: number of nonzero coefficients of the full-data path per λ ``[K]`` (the top
            axis of :func:`jaxreg.plot.cv_curve`).
        index_selected: the position of ``lambda_selected`` in ``lambdas``.
    """

    lambdas: np.ndarray
    summary: cv.CVSummary
    coef: np.ndarray
    intercept: float
    lambda_selected: float
    path: LinearPath
    fold_losses: np.ndarray
    fold_ids: np.ndarray
    nonzeros: np.ndarray
    index_selected: int

    @property
    def lambda_(self) -> float:
        _renamed("lambda_", "lambda_selected")
        return self.lambda_selected

    @property
    def fold_mse(self) -> np.ndarray:
        _renamed("fold_mse", "fold_losses")
        return self.fold_losses

    @property
    def folds(self) -> np.ndarray:
        _renamed("folds", "fold_ids")
        return self.fold_ids


def _renamed(old: str, new: str) -> None:
    warnings.warn(
        f"LinearCVPath.{old} is deprecated: use .{new} (the name FitPathResult uses too)",
        DeprecationWarning,
        stacklevel=3,
    )


# --------------------------------------------------------------------------------------------
# The solver. Everything below works in scikit-learn's n-scaled units: P(w) = ½‖R‖² + α‖w‖₁ +
# ½β‖w‖² with α = λρn, β = λ(1−ρ)n and R = y − Xw.


class _Design(NamedTuple):
    """What coordinate descent needs from (X, y); ``gram`` selects the representation."""

    matrix: jax.Array  # XᵀX [p, p] (Gram form) or Xᵀ [p, n] (residual form)
    xty: jax.Array  # Xᵀy [p]
    y: jax.Array  # y [n] (residual form only)
    yy: jax.Array  # yᵀy
    col_sq: jax.Array  # ‖x_j‖² [p]
    gram: bool


def _make_design(x: jax.Array, y: jax.Array, gram: bool) -> _Design:
    xty = x.T @ y
    matrix = x.T @ x if gram else x.T
    return _Design(matrix, xty, y, y @ y, jnp.sum(x * x, axis=0), gram)


def _fresh_aux(d: _Design, w: jax.Array) -> jax.Array:
    # Gram form carries the correlations Xᵀ(y − Xw); residual form carries y − Xw.
    return d.xty - d.matrix @ w if d.gram else d.y - d.matrix.T @ w


def _duality_gap(d: _Design, w, aux, alpha, beta):
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


def _epoch(g: _Design, w, aux, idx, count, alpha, beta):
    """One cyclic coordinate-descent pass over ``idx[:count]`` in Gram form; returns max |Δw|
    and max |w|. A step costs one length-p axpy: no dot product inside the loop, which
    measured 5-10× cheaper per coordinate in XLA than the residual form's dot + axpy."""

    def step(i, carry):
        w, aux, dw_max, w_max = carry
        j = idx[i]
        z = aux[j] + g.col_sq[j] * w[j]
        denom = g.col_sq[j] + beta
        shrunk = jnp.sign(z) * jnp.maximum(jnp.abs(z) - alpha, 0)
        # An all-zero column with β = 0 has no curvature: its coefficient stays 0.
        new = jnp.where(denom > 0, shrunk / jnp.where(denom > 0, denom, 1), 0)
        delta = new - w[j]
        aux = aux - delta * g.matrix[j]
        w = w.at[j].set(new)
        return w, aux, jnp.maximum(dw_max, jnp.abs(delta)), jnp.maximum(w_max, jnp.abs(new))

    zero = jnp.zeros((), w.dtype)
    return lax.fori_loop(0, count, step, (w, aux, zero, zero))


def _epochs(g: _Design, w, aux, idx, count, alpha, beta, dw_tol, epochs, max_iter):
    """Epochs over ``idx[:count]`` until sklearn's cheap test passes (the largest update is
    small relative to the largest coefficient), or this round's or the λ's epoch budget is spent.
    """
    # Bounded rounds keep the gap checks (and, for wide data, the slot choice) coming even when
    # the cheap test cannot pass on a working set that is missing something.
    budget = jnp.minimum(epochs + _EPOCHS_PER_ROUND, max_iter)

    def epochs_left(carry):
        _, _, done, settled = carry
        return (~settled) & (done < budget)

    def run_epoch(carry):
        w, aux, done, _ = carry
        w, aux, dw_max, w_max = _epoch(g, w, aux, idx, count, alpha, beta)
        return w, aux, done + 1, (w_max == 0) | (dw_max <= dw_tol * w_max)

    w, aux, epochs, _ = lax.while_loop(
        epochs_left, run_epoch, (w, aux, epochs, jnp.zeros((), bool))
    )
    return w, aux, epochs


_EPOCHS_PER_ROUND = 50


class _LambdaState(NamedTuple):
    w: jax.Array
    aux: jax.Array
    correlation: jax.Array
    gap: jax.Array
    epochs: jax.Array
    dw_tol: jax.Array


def _solve_one(d: _Design, w, aux, alpha, beta, alpha_prev, gap_tol, tol, max_iter, cap):
    """Minimize at one λ from the warm start ``w``; stop on the duality gap.

    Each round: full gap check, a working set (nonzeros + strong-rule survivors), epochs on
    it. In the residual form (p > 2n) the working set is capped at ``cap`` features and its own
    Gram matrix is formed per round (n·cap² flops), so epochs still run in Gram form.
    """
    gap, correlation = _duality_gap(d, w, aux, alpha, beta)
    state = _LambdaState(w, aux, correlation, gap, jnp.zeros((), jnp.int32), tol)
    strong_threshold = jnp.maximum(2 * alpha - alpha_prev, 0)

    def keep_going(s: _LambdaState):
        return (s.gap > gap_tol) & (s.epochs < max_iter)

    def gram_round(s: _LambdaState) -> _LambdaState:
        working = (s.w != 0) | (jnp.abs(s.correlation) > strong_threshold)
        (idx,) = jnp.nonzero(working, size=working.shape[0], fill_value=0)
        w, aux, epochs = _epochs(
            d, s.w, s.aux, idx, jnp.sum(working), alpha, beta, s.dw_tol, s.epochs, max_iter
        )
        # The carried vector is updated in place along the whole path, as sklearn does within
        # one λ: a refresh per λ costs a p×p matvec (memory bound; ~30% of the path time).
        gap, correlation = _duality_gap(d, w, aux, alpha, beta)
        # If the gap is not yet small enough, ask more of the inner loop next time.
        return _LambdaState(w, aux, correlation, gap, epochs, s.dw_tol * 0.1)

    def working_gram_round(s: _LambdaState) -> _LambdaState:
        nonzero = s.w != 0
        magnitude = jnp.abs(s.correlation)
        # While the nonzeros fit, they all get slots and zero features follow by |correlation|.
        # Once they fill every slot, slots go to the largest KKT violations (zero or not);
        # nonzeros left out stay fixed, which block coordinate descent allows.
        violation = jnp.where(
            nonzero,
            jnp.abs(s.correlation - beta * s.w - alpha * jnp.sign(s.w)),
            jnp.maximum(magnitude - alpha, 0),
        )
        fits = jnp.sum(nonzero) < cap
        priority = jnp.where(
            fits, jnp.where(nonzero, jnp.max(magnitude) + 1 + violation, magnitude), violation
        )
        _, idx = lax.top_k(priority, cap)
        valid = nonzero[idx] | (magnitude[idx] > strong_threshold)
        # Zeroed columns (invalid slots) keep a zero coefficient.
        cols = d.matrix[idx] * valid[:, None].astype(d.matrix.dtype)
        sub = _Design(cols @ cols.T, None, None, None, jnp.sum(cols * cols, axis=1), True)
        (local,) = jnp.nonzero(valid, size=cap, fill_value=0)
        # The slots' correlations with the current residual: nonzeros left outside the slots
        # (more nonzeros than cap) stay fixed in this round's target, not dropped from it.
        w_sub, _, epochs = _epochs(
            sub,
            s.w[idx],
            cols @ s.aux,
            local,
            jnp.sum(valid),
            alpha,
            beta,
            s.dw_tol,
            s.epochs,
            max_iter,
        )
        w = s.w.at[idx].set(w_sub)
        aux = _fresh_aux(d, w)
        gap, correlation = _duality_gap(d, w, aux, alpha, beta)
        return _LambdaState(w, aux, correlation, gap, epochs, s.dw_tol * 0.1)

    return lax.while_loop(keep_going, gram_round if d.gram else working_gram_round, state)


@functools.partial(jax.jit, static_argnames=("gram",))
def _solve_path(x, y, n_rows, lambdas, l1_ratio, tol, max_iter, *, gram: bool):
    """Coefficients along a descending grid for centred (x, y); gaps in objective units."""
    d = _make_design(x, y, gram)
    alphas = lambdas * l1_ratio * n_rows
    betas = lambdas * (1 - l1_ratio) * n_rows
    gap_tol = tol * d.yy
    alphas_prev = jnp.concatenate([alphas[:1], alphas[:-1]])
    num_rows, num_features = x.shape
    cap = _working_set_cap(num_rows, num_features)

    def one_lambda(carry, inputs):
        w, aux = carry
        alpha, beta, alpha_prev = inputs
        s = _solve_one(d, w, aux, alpha, beta, alpha_prev, gap_tol, tol, max_iter, cap)
        return (s.w, s.aux), (s.w, s.gap / n_rows, s.epochs, s.gap <= gap_tol)

    w0 = jnp.zeros(x.shape[1], x.dtype)
    start = (w0, _fresh_aux(d, w0))
    _, (coef, gaps, epochs, converged) = lax.scan(one_lambda, start, (alphas, betas, alphas_prev))
    return coef, gaps, epochs, converged


@functools.partial(jax.jit, static_argnames=("num_lambdas", "fit_intercept", "gram"))
def _path_program(x, y, grid, l1_ratio, eps, tol, max_iter, *, num_lambdas, fit_intercept, gram):
    """Centring, grid, path and intercepts in one compiled program (raw data in)."""
    if fit_intercept:
        x_mean = jnp.mean(x, axis=0)
        y_mean = jnp.mean(y)
        x = x - x_mean
        y = y - y_mean
    else:
        x_mean = jnp.zeros(x.shape[1], x.dtype)
        y_mean = jnp.zeros((), x.dtype)
    if num_lambdas is not None:
        grid = _default_grid(x, y, l1_ratio, eps, num_lambdas)
    n_rows = jnp.asarray(x.shape[0], x.dtype)
    coef, gaps, epochs, converged = _solve_path(
        x, y, n_rows, grid, l1_ratio, tol, max_iter, gram=gram
    )
    return grid, coef, y_mean - coef @ x_mean, gaps, epochs, converged


# --------------------------------------------------------------------------------------------
# Public API


def path(
    X: Any,
    y: Any,
    *,
    l1_ratio: float = 1.0,
    lambdas: int | Any = 100,
    eps: float = 1e-3,
    fit_intercept: bool = True,
    tol: float = 1e-4,
    max_iter: int = 1000,
    precompute: bool | str = "auto",
    dtype: Any = None,
) -> LinearPath:
    r"""Lasso / elastic-net / ridge path with scikit-learn's objective, grid and gaps.

    Minimizes :math:`\frac{1}{2n}\lVert y - Xw - b\rVert^2 + \lambda(\rho\lVert w\rVert_1 +
    \frac{1-\rho}{2}\lVert w\rVert^2)` for every λ of the grid (warm-started, descending).

    Args:
        X: design matrix ``[n, p]`` (finite).
        y: targets ``[n]`` (finite).
        l1_ratio: ρ in [0, 1]; 1 is the lasso, 0 is ridge (needs an explicit ``lambdas``).
        lambdas: number of λ of the default grid (λ_max down to ``eps * λ_max``, log-spaced),
            or an explicit 1-D array of λ ≥ 0 (sorted descending here).
        eps: ratio λ_min / λ_max of the default grid, > 0.
        fit_intercept: centre X and y and return the intercept (as ``LassoCV``); otherwise no
            intercept and no centring (as ``lasso_path`` on raw data).
        tol: relative duality-gap tolerance, > 0: stop when the gap ≤ ``tol · ‖y_c‖² / n``.
        max_iter: maximum coordinate-descent epochs per λ.
        precompute: ``"auto"`` (full Gram form when p ≤ 2n, or ρ < 1 and p ≤ 8192; else a
            working-set Gram), ``True`` or ``False``.
        dtype: computation dtype; ``None`` is JAX's default float (float32 unless x64 is on).
            ``jnp.float64`` works without enabling x64 globally (it is enabled for this call).

    Returns:
        A :class:`LinearPath` of numpy arrays.

    Raises:
        ValueError: on non-finite or mis-shaped data, ρ outside [0, 1], ``eps``/``tol`` ≤ 0,
            a bad grid, or ridge (ρ = 0) without an explicit grid.

    Example:
        >>> import numpy as np
        >>> from jaxreg import linear
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(50, 4))
        >>> y = X @ np.array([2.0, 0.0, -1.0, 0.0]) + 0.1 * rng.normal(size=50) + 3.0
        >>> p = linear.path(X, y, lambdas=5)
        >>> p.coef.shape, bool(p.converged.all())
        ((5, 4), True)
        >>> print(np.round(p.coef[-1], 1) + 0.0, round(float(p.intercept[-1]), 1))
        [ 2.  0. -1.  0.] 3.0
    """
    x_np, y_np = _check_data(X, y)
    check_unit_interval(l1_ratio, "l1_ratio")
    check_positive(eps, "eps")
    check_positive(tol, "tol")
    max_iter = _check_max_iter(max_iter)
    n, p = x_np.shape
    gram = _choose_gram(precompute, n, p, l1_ratio)
    compute_dtype, x64 = _resolve_dtype(dtype)
    if np.finfo(compute_dtype).bits < 64 and float(tol) < 1e-6:
        warnings.warn(
            f"tol={tol} is below what {compute_dtype} can certify (about 1e-6): λ may run to "
            "max_iter and report converged=False; pass dtype=jnp.float64",
            stacklevel=2,
        )
    num_lambdas, grid = _grid_spec(lambdas, l1_ratio)
    with x64:
        grid, coef, intercept, gaps, epochs, converged = _path_program(
            jnp.asarray(x_np, compute_dtype),
            jnp.asarray(y_np, compute_dtype),
            None if grid is None else jnp.asarray(grid, compute_dtype),
            jnp.asarray(l1_ratio, compute_dtype),
            jnp.asarray(eps, compute_dtype),
            jnp.asarray(tol, compute_dtype),
            jnp.asarray(max_iter, jnp.int32),
            num_lambdas=num_lambdas,
            fit_intercept=bool(fit_intercept),
            gram=gram,
        )
        result = LinearPath(
            lambdas=np.asarray(grid),
            coef=np.asarray(coef),
            intercept=np.asarray(intercept),
            dual_gap=np.asarray(gaps),
            n_iter=np.asarray(epochs),
            converged=np.asarray(converged),
        )
    return result


def solve(
    X: jax.Array,
    y: jax.Array,
    lambdas: jax.Array,
    *,
    l1_ratio: Any = 1.0,
    tol: Any = 1e-4,
    max_iter: Any = 1000,
    fit_intercept: bool = True,
    precompute: bool | str = "auto",
) -> LinearPath:
    """The solver of :func:`path` as a pure JAX function: jittable, and ``jax.vmap``-able over
    the data and over ``lambdas``, ``l1_ratio``, ``tol`` and ``max_iter`` (all data).

    Same objective, stopping rule and units as :func:`path`, on a given grid (best descending:
    warm starts follow its order) and in the dtype of ``X``. Nothing is validated except
    concrete hyperparameters, and the result holds JAX arrays; use :func:`path` for the
    checked, scikit-learn-like entry point.

    Args:
        X: design matrix ``[n, p]``.
        y: targets ``[n]``.
        lambdas: the λ grid ``[K]``.
        l1_ratio: ρ in [0, 1].
        tol: relative duality-gap tolerance, > 0.
        max_iter: maximum coordinate-descent epochs per λ.
        fit_intercept: centre X and y and return intercepts.
        precompute: ``"auto"`` (full Gram form when p ≤ 2n), ``True`` or ``False``.

    Returns:
        A :class:`LinearPath` of JAX arrays.

    Example:
        >>> import jax, jax.numpy as jnp, numpy as np
        >>> from jaxreg import linear
        >>> X = jax.random.normal(jax.random.key(0), (40, 5))
        >>> y = X @ jnp.array([1.0, -2.0, 0.0, 0.0, 0.5])
        >>> ratios = jnp.array([1.0, 0.5, 0.1])  # an elastic-net sweep in one program
        >>> res = jax.vmap(lambda r: linear.solve(X, y, jnp.array([0.1]), l1_ratio=r))(ratios)
        >>> res.coef.shape, bool(res.converged.all())
        ((3, 1, 5), True)
    """
    check_unit_interval(l1_ratio, "l1_ratio")
    check_positive(tol, "tol")
    check_positive(max_iter, "max_iter")
    x = jnp.asarray(X)
    dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.result_type(float)
    x = x.astype(dtype)
    n, p = x.shape
    gram = p <= max(2 * n, 32) if precompute == "auto" else _choose_gram(precompute, n, p, 1.0)
    grid, coef, intercept, gaps, epochs, converged = _path_program(
        x,
        jnp.asarray(y, dtype),
        jnp.asarray(lambdas, dtype),
        jnp.asarray(l1_ratio, dtype),
        None,
        jnp.asarray(tol, dtype),
        jnp.asarray(max_iter, jnp.int32),
        num_lambdas=None,
        fit_intercept=bool(fit_intercept),
        gram=gram,
    )
    return LinearPath(grid, coef, intercept, gaps, epochs, converged)


def cv_path(
    X: Any,
    y: Any,
    *,
    folds: int | Any = 5,
    key: Any = None,
    l1_ratio: float = 1.0,
    lambdas: int | Any = 100,
    eps: float = 1e-3,
    fit_intercept: bool = True,
    tol: float = 1e-4,
    max_iter: int = 1000,
    precompute: bool | str = "auto",
    dtype: Any = None,
    select: str = "1se",
) -> LinearCVPath:
    """K-fold cross-validated path; λ chosen by glmnet's rule (:func:`jaxreg.cv.summarize`).

    The grid is the full data's (as ``LassoCV``); every fold's path is fitted in one compiled
    program (``lax.map`` over folds, each fold centred on its own training rows — measured 3×
    faster than ``jax.vmap`` here, whose batched while-loops run every fold to the slowest
    fold's iteration count); the
    validation MSE table ``[folds, K]`` is summarized with fold-size weights, and the full-data
    path is read off at λ_1se (``select="1se"``) or λ_min (``select="min"``).

    Args:
        X: design matrix ``[n, p]``.
        y: targets ``[n]``.
        folds: number of folds (random, from ``key``) or fold ids ``[n]`` (any integer labels).
        key: ``jax.random`` key (or int seed) for the fold assignment; ``None`` means seed 0.
        l1_ratio, lambdas, eps, fit_intercept, tol, max_iter, precompute, dtype: as in
            :func:`path`.
        select: ``"1se"`` or ``"min"``.

    Returns:
        A :class:`LinearCVPath`.

    Example:
        >>> import numpy as np
        >>> from jaxreg import linear
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(60, 5))
        >>> y = X[:, 0] - 2 * X[:, 1] + 0.5 * rng.normal(size=60)
        >>> res = linear.cv_path(X, y, folds=3, lambdas=20, key=0)
        >>> res.fold_losses.shape, res.summary.lambda_1se >= res.summary.lambda_min
        ((3, 20), True)
        >>> np.flatnonzero(res.coef).tolist()[:2]
        [0, 1]
    """
    if select not in ("1se", "min"):
        raise ValueError(f'select must be "1se" or "min", got {select!r}')
    x_np, y_np = _check_data(X, y)
    n, p = x_np.shape
    fold_ids = cv.fold_ids(n, folds, key=key)
    num_folds = int(fold_ids.max()) + 1
    full = path(
        x_np,
        y_np,
        l1_ratio=l1_ratio,
        lambdas=lambdas,
        eps=eps,
        fit_intercept=fit_intercept,
        tol=tol,
        max_iter=max_iter,
        precompute=precompute,
        dtype=dtype,
    )
    compute_dtype, x64 = _resolve_dtype(dtype)
    with x64:
        train = (fold_ids[None, :] != np.arange(num_folds)[:, None]).astype(np.float64)
        fold_mse = np.asarray(
            _fold_mse(
                jnp.asarray(x_np, compute_dtype),
                jnp.asarray(y_np, compute_dtype),
                jnp.asarray(train, compute_dtype),
                jnp.asarray(full.lambdas, compute_dtype),
                jnp.asarray(l1_ratio, compute_dtype),
                jnp.asarray(tol, compute_dtype),
                jnp.asarray(max_iter, jnp.int32),
                fit_intercept=fit_intercept,
                gram=_choose_gram(precompute, n, p, l1_ratio),
            )
        )
    validation_sizes = np.bincount(fold_ids, minlength=num_folds)
    summary = cv.summarize(fold_mse, full.lambdas, weights=validation_sizes)
    index = summary.index_1se if select == "1se" else summary.index_min
    return LinearCVPath(
        lambdas=full.lambdas,
        summary=summary,
        coef=full.coef[index],
        intercept=float(full.intercept[index]),
        lambda_selected=float(full.lambdas[index]),
        path=full,
        fold_losses=fold_mse,
        fold_ids=fold_ids,
        nonzeros=np.count_nonzero(full.coef, axis=1),
        index_selected=int(index),
    )


@functools.partial(jax.jit, static_argnames=("fit_intercept", "gram"))
def _fold_mse(x, y, train, lambdas, l1_ratio, tol, max_iter, *, fit_intercept, gram):
    """Validation MSE ``[folds, K]``; ``train`` is a 0/1 row mask per fold ``[folds, n]``."""

    def one_fold(mask):
        n_train = jnp.sum(mask)
        if fit_intercept:
            x_mean = mask @ x / n_train
            y_mean = mask @ y / n_train
        else:
            x_mean = jnp.zeros(x.shape[1], x.dtype)
            y_mean = jnp.zeros((), x.dtype)
        # Zeroed validation rows drop out of every sum, so the fold is an n_train-row problem.
        x_train = mask[:, None] * (x - x_mean)
        y_train = mask * (y - y_mean)
        coef, _, _, _ = _solve_path(
            x_train, y_train, n_train, lambdas, l1_ratio, tol, max_iter, gram=gram
        )
        intercept = y_mean - coef @ x_mean
        residual = y[None, :] - coef @ x.T - intercept[:, None]
        validation = 1 - mask
        return (residual**2 @ validation) / jnp.sum(validation)

    return lax.map(one_fold, train)


# --------------------------------------------------------------------------------------------
# Input handling


def _check_data(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x_np = np.asarray(X)
    y_np = np.asarray(y)
    if x_np.ndim != 2:
        raise ValueError(f"X must be 2-D [n, p], got shape {x_np.shape}")
    if y_np.ndim != 1 or y_np.shape[0] != x_np.shape[0]:
        raise ValueError(f"y must be 1-D with X.shape[0]={x_np.shape[0]} entries, got {y_np.shape}")
    if x_np.shape[0] < 2 or x_np.shape[1] < 1:
        raise ValueError(f"X needs at least 2 rows and 1 column, got shape {x_np.shape}")
    for name, value in (("X", x_np), ("y", y_np)):
        if not np.issubdtype(value.dtype, np.number) or np.iscomplexobj(value):
            raise TypeError(f"{name} must be real numeric, got dtype {value.dtype}")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{name} contains NaN or infinite values")
    return x_np, y_np


def _check_max_iter(max_iter: Any) -> int:
    if isinstance(max_iter, bool) or not isinstance(max_iter, int | np.integer):
        raise TypeError(f"max_iter must be an int, got {type(max_iter).__name__}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    return int(max_iter)


def _working_set_cap(n: int, p: int) -> int:
    # Lasso solutions have at most n nonzeros (generic data): 2n slots leave room to grow; the
    # 512 bound keeps the per-round n·cap² Gram affordable (more nonzeros than slots still
    # converge: the most KKT-violating nonzeros take turns).
    return min(p, max(32, min(2 * n, 512)))


def _choose_gram(precompute: bool | str, n: int, p: int, l1_ratio: Any) -> bool:
    if precompute == "auto":
        # Whenever the working-set cap would hold every feature, one full Gram is cheaper than
        # a per-round one; an elastic net (ρ < 1) can have far more than 2n nonzeros, which the
        # capped working set handles slowly, so it takes the full Gram while p² is affordable.
        return p <= max(2 * n, 32) or (float(l1_ratio) < 1 and p <= 8192)
    if isinstance(precompute, bool):
        return precompute
    raise ValueError(f'precompute must be "auto", True or False, got {precompute!r}')


def _resolve_dtype(dtype: Any) -> tuple[np.dtype, contextlib.AbstractContextManager]:
    if dtype is None:
        return np.dtype(jnp.result_type(float)), contextlib.nullcontext()
    resolved = np.dtype(dtype)
    if not np.issubdtype(resolved, np.floating):
        raise TypeError(f"dtype must be a floating dtype, got {resolved}")
    if resolved == np.float64 and not jax.config.jax_enable_x64:
        # Scoped to this call: the caller's global setting is left alone.
        return resolved, jax.enable_x64(True)
    return resolved, contextlib.nullcontext()


def _grid_spec(lambdas: Any, l1_ratio: Any) -> tuple[int | None, np.ndarray | None]:
    """(count, None) for a default grid, (None, descending array) for a given one."""
    if isinstance(lambdas, int | np.integer) and not isinstance(lambdas, bool):
        if lambdas < 1:
            raise ValueError(f"lambdas must be a count >= 1 or an array, got {lambdas}")
        if float(l1_ratio) == 0:
            raise ValueError(
                "lambdas must be an explicit array when l1_ratio=0 (ridge has no lambda_max), "
                f"got the count {lambdas}"
            )
        return int(lambdas), None
    grid = np.asarray(lambdas, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0:
        raise ValueError(f"lambdas must be a count or a non-empty 1-D array, got {grid.shape}")
    if not np.all(np.isfinite(grid)) or np.any(grid < 0):
        raise ValueError(f"lambdas must be finite and >= 0, got {grid}")
    return None, np.sort(grid)[::-1].copy()


def _default_grid(x_c, y_c, l1_ratio, eps, num_lambdas: int) -> jax.Array:
    """sklearn's ``_alpha_grid``: λ_max = max|X_cᵀy_c| / (nρ), log-spaced to eps·λ_max."""
    lambda_max = jnp.max(jnp.abs(x_c.T @ y_c)) / (x_c.shape[0] * l1_ratio)
    grid = lambda_max * eps ** jnp.linspace(0, 1, num_lambdas, dtype=x_c.dtype)
    # sklearn's convention when y is constant (after centring): a flat, tiny grid.
    resolution = np.finfo(np.float64).resolution
    return jnp.where(lambda_max <= resolution, jnp.asarray(resolution, x_c.dtype), grid)

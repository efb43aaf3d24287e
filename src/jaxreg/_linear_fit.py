"""What :mod:`jaxreg.linear`'s entry points share: checked inputs, the grid, one compiled
program per family and form (the full data and every cross-validation fold run the same one),
and the folds' validation losses in numpy."""

from __future__ import annotations

import collections
import contextlib
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg import _linear_gaussian as gaussian
from jaxreg import _linear_glm as glm
from jaxreg._checks import check_choice, check_data, check_int
from jaxreg._tree import check_positive, check_unit_interval
from jaxreg.regularizers import ElasticNet

FAMILIES = ("gaussian", "binomial", "multinomial")

# glmnet clips predicted probabilities to [1e-5, 1 - 1e-5] for the cross-validated deviance.
PROB_MIN = 1e-5


class Problem(NamedTuple):
    family: str
    x: np.ndarray  # [n, p]
    targets: np.ndarray  # [n] (gaussian) or 0/1 [n, C] (binomial: C = 1)
    classes: np.ndarray | None


class Settings(NamedTuple):
    l1_ratio: float
    num_lambdas: int | None
    grid: np.ndarray | None
    eps: float
    fit_intercept: bool
    tol: float
    max_iter: int
    gram: bool  # gaussian: the Gram form
    dtype: np.dtype
    x64: Any  # a context manager factory: float64 scoped to the call


def problem(X: Any, y: Any, family: str) -> Problem:
    check_choice(family, "family", FAMILIES)
    if family == "gaussian":
        x, targets = check_data(X, y, matrix=True)
        return Problem(family, x, targets, None)
    labels = np.asarray(y)
    if labels.dtype.kind in "fc" and not np.all(np.isfinite(labels)):
        raise ValueError("y contains NaN or infinite values")
    classes, codes = np.unique(labels, return_inverse=True)
    x, codes = check_data(X, codes.reshape(labels.shape), matrix=True)
    if family == "binomial" and len(classes) != 2:
        raise ValueError(
            f"y must have exactly 2 classes for family='binomial', got {len(classes)} "
            "(family='multinomial' takes any number >= 2)"
        )
    if len(classes) < 2:
        raise ValueError(f"y must have at least 2 classes, got {len(classes)}")
    onehot = np.eye(len(classes))[codes]
    return Problem(family, x, onehot[:, 1:] if family == "binomial" else onehot, classes)


def settings(p: Problem, l1_ratio, lambdas, eps, fit_intercept, tol, max_iter, precompute, dtype):
    check_unit_interval(l1_ratio, "l1_ratio")
    n, num_features = p.x.shape
    classification = p.family != "gaussian"
    if eps is None:
        eps = (1e-4 if n > num_features else 1e-2) if classification else 1e-3
    check_positive(eps, "eps")
    check_positive(tol, "tol")
    if max_iter is None:
        max_iter = 100_000 if classification else 1000
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    gram = gaussian.choose_gram(precompute, n, num_features)
    compute_dtype, x64 = resolve_dtype(dtype)
    if np.finfo(compute_dtype).bits < 64 and float(tol) < 1e-6:
        warnings.warn(
            f"tol={tol} is below what {compute_dtype} can certify (about 1e-6): λ may run to "
            "max_iter and report converged=False; pass dtype=jnp.float64",
            stacklevel=3,
        )
    num_lambdas, grid = grid_spec(lambdas, l1_ratio)
    return Settings(float(l1_ratio), num_lambdas, grid, float(eps), bool(fit_intercept),
                    float(tol), max_iter, gram, compute_dtype, x64)  # fmt: skip


def grid(p: Problem, s: Settings) -> np.ndarray:
    """The given grid, or the default one: λ_max (the elastic net's dual norm of the null
    model's gradient) log-spaced down to eps·λ_max. λ_max is raised by 64 units of rounding of
    the computation's dtype (1e-14 relative in float64, 8e-6 in float32), so that the first fit
    is the null model exactly despite the rounding of the solver's own sums."""
    if s.grid is not None:
        return s.grid
    targets = p.targets.astype(np.float64)
    with jax.enable_x64(True):
        if p.family == "gaussian":
            # X_cᵀy_c = Xᵀy_c: only y needs centring
            residual = targets - targets.mean() if s.fit_intercept else targets
            top = _dual_norm(p.x.T @ residual / len(residual), s.l1_ratio)
        else:
            data = glm.Data(jnp.asarray(p.x.T, jnp.float64), jnp.asarray(targets),
                            jnp.ones(len(targets)))  # fmt: skip
            top = _glm_lambda_max(data, s.l1_ratio, family=p.family,
                                  fit_intercept=s.fit_intercept)  # fmt: skip
        top = float(top) * (1 + 64 * np.finfo(s.dtype).eps)
        return gaussian.default_grid(top, s.eps, s.num_lambdas)


# jitted: one small compilation instead of one per eager operation
_dual_norm = jax.jit(lambda gradient, l1_ratio: ElasticNet(1.0, l1_ratio).dual_norm(gradient))
_glm_lambda_max = jax.jit(
    lambda data, l1_ratio, *, family, fit_intercept: glm.lambda_max(
        glm.family(family), data, l1_ratio, fit_intercept
    ),
    static_argnames=("family", "fit_intercept"),
)


def fit(p: Problem, s: Settings, lambdas: np.ndarray, rows: np.ndarray | None = None):
    """Coefficients, intercepts, gaps, epochs and convergence (numpy) of the rows selected by
    the boolean mask ``rows`` (all when None) along ``lambdas``."""
    return _collect(p, _launch(p, s, lambdas, rows))


def fits(jobs, s: Settings, lambdas: np.ndarray, in_flight: int = 4):
    """:func:`fit` of each ``(problem, rows)`` of ``jobs``, yielded in order. Up to
    ``in_flight`` paths are dispatched before the first is read back, so that independent
    paths (folds, subsamples) overlap on the host's cores instead of waiting for each other."""
    pending = collections.deque()
    for p, rows in jobs:
        pending.append((p, _launch(p, s, lambdas, rows)))
        if len(pending) >= in_flight:
            yield _collect(*pending.popleft())
    while pending:
        yield _collect(*pending.popleft())


def _launch(p: Problem, s: Settings, lambdas: np.ndarray, rows: np.ndarray | None):
    """The path's program dispatched (asynchronously) on the selected rows."""
    n, num_features = p.x.shape
    with s.x64():
        hyper = (
            jnp.asarray(lambdas, s.dtype),
            jnp.asarray(s.l1_ratio, s.dtype),
            jnp.asarray(s.tol, s.dtype),
            jnp.asarray(s.max_iter, jnp.int32),
        )
        if p.family == "gaussian" and s.gram:
            selected = slice(None) if rows is None else rows
            stats = statistics(p.x[selected], p.targets[selected], s)
            return gaussian.gram_path_program(stats, *hyper)
        mask = jnp.ones(n, s.dtype) if rows is None else jnp.asarray(rows, s.dtype)
        x, targets = jnp.asarray(p.x, s.dtype), jnp.asarray(p.targets, s.dtype)
        if p.family == "gaussian":
            return gaussian.residual_path_program(x, targets, mask, *hyper,
                                                  fit_intercept=s.fit_intercept)  # fmt: skip
        return glm.path_program(x, targets, mask, *hyper, family_name=p.family,
                                fit_intercept=s.fit_intercept,
                                cap=glm.working_set_cap(n, num_features))  # fmt: skip


def _collect(p: Problem, out):
    coef, intercept, gaps, epochs, converged = (np.asarray(a) for a in out)
    if p.family == "binomial":
        coef, intercept = coef[:, 0], intercept[:, 0]
    return coef, intercept, gaps, epochs, converged


def statistics(x: np.ndarray, y: np.ndarray, s: Settings) -> gaussian.Statistics:
    """The Gram form's statistics: by numpy's BLAS on the CPU backend (a symmetric rank-k
    update, measured 2-5× faster than XLA's CPU dot in float64), else on the device."""
    x, y = np.asarray(x, s.dtype), np.asarray(y, s.dtype)
    if jax.default_backend() == "cpu":
        stats = gaussian.statistics(x, y, s.fit_intercept, xp=np)
    else:
        stats = _device_statistics(x, y, fit_intercept=s.fit_intercept)
    return jax.tree.map(lambda a: jnp.asarray(a, s.dtype), stats)


_device_statistics = jax.jit(gaussian.statistics, static_argnames=("fit_intercept", "xp"))


def fold_losses(p: Problem, s: Settings, fold_ids: np.ndarray, lambdas, measure: str):
    """Validation losses ``[folds, K]`` of every fold's path on ``lambdas`` (the full-data
    program, one fold after another), and for classification the validation accuracy
    ``[folds, K]`` (else None)."""
    num_folds = int(fold_ids.max()) + 1
    losses = np.empty((num_folds, len(lambdas)))
    accuracy = np.empty_like(losses)
    trained = fits(((p, fold_ids != fold) for fold in range(num_folds)), s, lambdas)
    for fold, (coef, intercept, _, _, _) in enumerate(trained):
        valid = fold_ids == fold
        eta = np.einsum("np,k...p->kn...", p.x[valid], coef) + intercept[:, None]
        if p.family == "gaussian":
            losses[fold] = np.mean((p.targets[valid] - eta) ** 2, axis=1)
            continue
        deviance, wrong = validation_losses(p.family, eta, p.targets[valid])
        losses[fold] = np.mean(deviance if measure == "deviance" else wrong, axis=1)
        accuracy[fold] = 1 - np.mean(wrong, axis=1)
    return losses, (None if p.family == "gaussian" else accuracy)


def validation_losses(family: str, eta: np.ndarray, targets: np.ndarray):
    """Per λ and row ``[K, m]``: the deviance −2 log p(y) with glmnet's clipped probabilities,
    and the 0/1 error (binomial: a probability of exactly ½ predicts the first class)."""
    if family == "binomial":
        prob = np.clip(1 / (1 + np.exp(-eta)), PROB_MIN, 1 - PROB_MIN)
        label = targets[:, 0]
        deviance = -2 * (label * np.log(prob) + (1 - label) * np.log(1 - prob))
        return deviance, (1 / (1 + np.exp(-eta)) > 0.5) != (label > 0.5)
    shifted = eta - eta.max(axis=-1, keepdims=True)
    softmax = np.exp(shifted) / np.exp(shifted).sum(axis=-1, keepdims=True)
    prob = np.clip(softmax, PROB_MIN, 1 - PROB_MIN)
    deviance = -2 * np.sum(targets * np.log(prob), axis=-1)
    return deviance, np.argmax(eta, axis=-1) != np.argmax(targets, axis=-1)


def resolve_dtype(dtype: Any) -> tuple[np.dtype, Any]:
    """The computation dtype and a factory of the context it runs in (float64: x64 on for the
    call only, the caller's global setting left alone)."""
    if dtype is None:
        return np.dtype(jnp.result_type(float)), contextlib.nullcontext
    resolved = np.dtype(dtype)
    if not np.issubdtype(resolved, np.floating):
        raise TypeError(f"dtype must be a floating dtype, got {resolved}")
    if resolved == np.float64 and not jax.config.jax_enable_x64:
        return resolved, lambda: jax.enable_x64(True)
    return resolved, contextlib.nullcontext


def grid_spec(lambdas: Any, l1_ratio: Any) -> tuple[int | None, np.ndarray | None]:
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
    lambdas = np.asarray(lambdas, dtype=np.float64)
    if lambdas.ndim != 1 or lambdas.size == 0:
        raise ValueError(f"lambdas must be a count or a non-empty 1-D array, got {lambdas.shape}")
    if not np.all(np.isfinite(lambdas)) or np.any(lambdas < 0):
        raise ValueError(f"lambdas must be finite and >= 0, got {lambdas}")
    return None, np.sort(lambdas)[::-1].copy()

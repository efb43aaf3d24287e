"""Cross-validation folds and glmnet-style summaries of a λ path.

:func:`kfold` assigns examples to folds; :func:`summarize` turns a table of per-fold validation
losses ``[folds, K]`` into glmnet's curve (``cvm``, ``cvsd``, ``cvup``, ``cvlo``) and its two
selections, λ_min and λ_1se (the "one-standard-error rule").

References:
    Friedman, Hastie & Tibshirani (2010), *Regularization Paths for Generalized Linear Models
    via Coordinate Descent*, J. Stat. Softw. 33(1) — ``cv.glmnet``'s ``cvm``/``cvsd`` and
    ``lambda.min``/``lambda.1se``.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg import _checks


class CVSummary(NamedTuple):
    """glmnet's cross-validation curve and its λ selections (numpy arrays, Python scalars).

    Attributes:
        lambdas: the λ grid ``[K]``, in the order given to :func:`summarize`.
        cvm: mean validation loss per λ ``[K]`` (NaN where a fold diverged).
        cvsd: standard error of ``cvm`` per λ ``[K]``.
        cvup: ``cvm + cvsd``.
        cvlo: ``cvm - cvsd``.
        lambda_min: the largest λ reaching the minimum of ``cvm``.
        lambda_1se: the largest λ with ``cvm <= cvm[index_min] + cvsd[index_min]``.
        index_min: position of ``lambda_min`` in ``lambdas``.
        index_1se: position of ``lambda_1se`` in ``lambdas``.
    """

    lambdas: np.ndarray
    cvm: np.ndarray
    cvsd: np.ndarray
    cvup: np.ndarray
    cvlo: np.ndarray
    lambda_min: float
    lambda_1se: float
    index_min: int
    index_1se: int


def kfold(n: int, k: int, *, key: Any) -> jax.Array:
    """Random assignment of ``n`` examples to ``k`` folds of (almost) equal size.

    Fold ``f`` holds the examples at positions ``permutation[f::k]`` of a random permutation, so
    fold sizes differ by at most one and the folds partition ``range(n)``. The same key always
    gives the same folds.

    Args:
        n: number of examples.
        k: number of folds, ``2 <= k <= n``.
        key: a ``jax.random`` key (or an int seed).

    Returns:
        An int32 array ``[n]`` of fold ids in ``0 .. k-1``.

    Example:
        >>> import jax, numpy as np
        >>> from jaxreg import _checks, cv
        >>> folds = cv.kfold(10, 3, key=jax.random.key(0))
        >>> np.bincount(np.asarray(folds)).tolist()
        [4, 3, 3]
    """
    n = _checks.check_int(n, "n", minimum=1)
    k = _checks.check_int(k, "k", minimum=2)
    if k > n:
        raise ValueError(f"k must be <= n (every fold needs an example), got k={k}, n={n}")
    if isinstance(key, int | np.integer):
        key = jax.random.key(int(key))
    order = jax.random.permutation(key, n)
    return jnp.zeros(n, jnp.int32).at[order].set(jnp.arange(n, dtype=jnp.int32) % k)


def fold_ids(n: int, folds: Any, *, key: Any = None) -> np.ndarray:
    """Fold ids from a fold count (random, via :func:`kfold`) or from given labels (glmnet's
    ``foldid``).

    Args:
        n: number of examples (first, as in :func:`kfold`).
        folds: an int ``k`` (``2 <= k <= n``) for :func:`kfold`, or integer labels ``[n]``
            naming each example's fold (any distinct values; at least two of them).
        key: key (or int seed) for :func:`kfold`; None means seed 0.

    Returns:
        An int32 numpy array ``[n]`` of fold ids ``0 .. k-1``.

    The order ``fold_ids(labels, n)`` of the first release still works, with a
    ``DeprecationWarning``; ``fold_ids(k, n)`` with two counts is refused with a pointer to the
    new order (it cannot be told apart from a bad ``fold_ids(n, k)``).

    Example:
        >>> from jaxreg import cv
        >>> cv.fold_ids(5, [7, 7, 3, 9, 3]).tolist()
        [1, 1, 0, 2, 0]
    """
    if _old_argument_order(n, folds):
        warnings.warn(
            "cv.fold_ids(folds, n) is deprecated: call cv.fold_ids(n, folds), the order of "
            "cv.kfold(n, k)",
            DeprecationWarning,
            stacklevel=2,
        )
        n, folds = folds, n
    if _is_int(folds):
        if folds < 2 or folds > n:
            order = " (the order is fold_ids(n, folds), as kfold(n, k))" if folds > n else ""
            raise ValueError(f"folds must be between 2 and n={n}, got {folds}{order}")
        return np.asarray(kfold(n, int(folds), key=0 if key is None else key))
    labels = np.asarray(folds)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"folds must be an int or integer fold ids of shape ({n},), got {labels}")
    _, ids = np.unique(labels, return_inverse=True)
    if ids.max() < 1:
        raise ValueError("folds must contain at least 2 distinct fold ids")
    return ids.astype(np.int32)


def _old_argument_order(n: Any, folds: Any) -> bool:
    """``fold_ids(labels, n)``: fold labels first and the count of examples second."""
    return not _is_int(n) and _is_int(folds)


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def summarize(losses: Any, lambdas: Any, *, weights: Any = None) -> CVSummary:
    r"""glmnet's cross-validation summary of per-fold losses along a λ grid.

    With fold weights :math:`w_f` (fold sizes, or all ones) and raw losses :math:`L_{f,k}`:

    .. math::

        \mathrm{cvm}_k = \frac{\sum_f w_f L_{f,k}}{\sum_f w_f}, \qquad
        \mathrm{cvsd}_k = \sqrt{\frac{1}{F - 1}\,
            \frac{\sum_f w_f (L_{f,k} - \mathrm{cvm}_k)^2}{\sum_f w_f}}

    λ_min is the largest λ whose ``cvm`` equals the minimum; λ_1se is the largest λ with
    ``cvm <= cvm[min] + cvsd[min]``. A λ with any non-finite fold loss (a diverged fit) gets
    ``cvm = NaN`` and is never selected. The grid may be in any order; indices refer to it.

    Args:
        losses: validation losses ``[folds, K]`` (numpy or jax), ``folds >= 2``.
        lambdas: the λ grid ``[K]``.
        weights: optional non-negative fold weights ``[folds]`` (glmnet uses the number of
            validation examples per fold); ``None`` weighs folds equally.

    Returns:
        A :class:`CVSummary`.

    Raises:
        ValueError: on wrong shapes, negative/non-finite weights, or when every λ diverged.

    Example:
        >>> import numpy as np
        >>> from jaxreg import cv
        >>> losses = np.array([[3.0, 1.0, 0.9, 2.0], [3.2, 1.1, 1.1, 2.2]])
        >>> s = cv.summarize(losses, [1.0, 0.5, 0.25, 0.125])
        >>> s.lambda_min, s.lambda_1se
        (0.25, 0.5)
        >>> np.round(s.cvm, 3).tolist()
        [3.1, 1.05, 1.0, 2.1]
    """
    raw = np.asarray(losses, dtype=np.float64)
    if raw.ndim != 2:
        raise ValueError(f"losses must be 2-D [folds, K], got shape {raw.shape}")
    num_folds, num_lambdas = raw.shape
    if num_folds < 2:
        raise ValueError(f"losses needs at least 2 folds (rows), got {num_folds}")
    if num_lambdas < 1:
        raise ValueError("losses must have at least one column (one per lambda), got 0")
    grid = np.asarray(lambdas, dtype=np.float64)
    if grid.shape != (num_lambdas,):
        raise ValueError(
            f"lambdas must have shape ({num_lambdas},) to match losses {raw.shape}, "
            f"got {grid.shape}"
        )
    if weights is None:
        fold_weights = np.ones(num_folds)
    else:
        fold_weights = np.asarray(weights, dtype=np.float64)
        if fold_weights.shape != (num_folds,):
            raise ValueError(
                f"weights must have shape ({num_folds},) (one per fold), got {fold_weights.shape}"
            )
        if not np.all(np.isfinite(fold_weights)) or np.any(fold_weights < 0):
            raise ValueError(f"weights must be finite and >= 0, got {fold_weights}")
        if fold_weights.sum() <= 0:
            raise ValueError("weights must not all be zero")
    share = fold_weights / fold_weights.sum()

    # A diverged fold (inf/NaN) would otherwise be averaged away or dominate; glmnet's rule for
    # us: that λ has no usable estimate.
    diverged = ~np.all(np.isfinite(raw), axis=0)
    finite_raw = np.where(np.isfinite(raw), raw, 0.0)
    cvm = share @ finite_raw
    cvsd = np.sqrt((share @ (finite_raw - cvm) ** 2) / (num_folds - 1))
    cvm[diverged] = np.nan
    cvsd[diverged] = np.nan
    if diverged.all():
        raise ValueError("losses: every lambda has a non-finite fold loss; nothing to select")

    index_min = _largest_lambda_where(grid, cvm <= np.nanmin(cvm))
    threshold = cvm[index_min] + cvsd[index_min]
    index_1se = _largest_lambda_where(grid, cvm <= threshold)
    return CVSummary(
        lambdas=grid,
        cvm=cvm,
        cvsd=cvsd,
        cvup=cvm + cvsd,
        cvlo=cvm - cvsd,
        lambda_min=float(grid[index_min]),
        lambda_1se=float(grid[index_1se]),
        index_min=index_min,
        index_1se=index_1se,
    )


def _largest_lambda_where(grid: np.ndarray, selected: np.ndarray) -> int:
    # NaN comparisons are False, so diverged λ are never selected.
    candidates = np.flatnonzero(selected)
    return int(candidates[np.argmax(grid[candidates])])

r"""Lasso / elastic-net / ridge regularization paths of linear models: least squares as
scikit-learn, logistic and multinomial regression as glmnet.

The objective is a family's mean negative log-likelihood plus the elastic-net penalty
(ρ = ``l1_ratio``), minimized for every λ of a descending grid, each fit warm-started from the
previous one:

.. math::

    \min_{w, b}\; \frac{1}{n}\sum_{i=1}^n \ell(x_i^\top w + b, y_i)
        + \lambda\Big(\rho\lVert w\rVert_1 + \frac{1-\rho}{2}\lVert w\rVert_2^2\Big)

- ``family="gaussian"``: :math:`\ell = \tfrac12 (y - \eta)^2`, scikit-learn's
  ``lasso_path`` / ``enet_path`` objective. With ``fit_intercept=True`` the path is the one they
  compute on centred X and y (what ``LassoCV`` does): the default grid is
  :math:`\lambda_{\max} = \max_j |X_c^\top y_c|_j / (n\rho)` log-spaced down to
  :math:`\varepsilon\lambda_{\max}` (ε = 1e-3), and :math:`b = \bar y - \bar x^\top w`.
- ``family="binomial"``: :math:`\ell = \log(1 + e^\eta) - y\eta` with y ∈ {0, 1} (the second
  of the two sorted labels is 1), i.e. deviance/(2n) + penalty as glmnet; intercept free and
  unpenalized; :math:`\lambda_{\max} = \max_j |X_j^\top(y - \bar y)|/(n\rho)` (the null model:
  every coefficient zero, b = log-odds of y).
- ``family="multinomial"``: :math:`\ell = \log\sum_c e^{\eta_c} - \eta_{y}` with one
  coefficient vector and intercept per class (``coef[K, C, p]``, ``intercept[K, C]`` centred to
  sum 0) and the penalty on every class's coefficients separately (glmnet's
  ``type.multinomial="ungrouped"``, scikit-learn's multinomial ``LogisticRegression``);
  :math:`\lambda_{\max} = \max_{j,c} |X_j^\top(Y_c - \bar y_c)|/(n\rho)`. The default ε is
  glmnet's ``lambda.min.ratio`` for both classification families: 1e-4 when n > p, else 1e-2.

Neither family standardizes X (glmnet does by default): standardize first for glmnet's path.

How it is solved (chosen by measurement, see ``bench/README.md``): cyclic coordinate descent
inside one compiled program, a ``lax.scan`` over the grid. Each λ alternates a duality-gap
check over all p features, a working set (the nonzero coefficients plus the features passing
the sequential strong rule :math:`|g_j| > \rho n(2\lambda_k - \lambda_{k-1})`) and
coordinate-descent epochs on a Gram matrix, where a step is one axpy (in XLA a dot product per
step measured several times slower). Gaussian: :math:`X^\top X` when ``p <= 2n`` (a step is
independent of n), else the Gram matrix of at most :math:`\min(p, \max(32, \min(2n, 512)))`
working-set features, updated row by row as features enter, with Anderson extrapolation of the
epochs (p ≫ n makes the end of the path ill-conditioned).
Classification (glmnet's proximal Newton): per class, a quadratic model of ℓ with the Hessian
weights :math:`\mu(1-\mu)`, minimized on the working set's weighted Gram matrix, finished by an
exact solve on its support once coordinate descent has found it, then a backtracking line search;
for multinomial, each feature's coefficients are then shifted across classes to minimize the
penalty (glmnet's centring; the softmax does not see the shift).

Certificate: the duality gap :math:`P(w) - D(\theta) \ge P(w) - P^*` in objective units,
reported per λ as ``dual_gap``. A λ stops when ``dual_gap <= tol · D_null / n``, with
:math:`D_{\rm null}` the null model's deviance (Gaussian: :math:`\lVert y_c\rVert^2`, which makes
it scikit-learn's rule and units exactly; classification: 2 × its negative log-likelihood).
float32 (JAX's default) reaches ``tol`` down to about 1e-6; ask for ``dtype=jnp.float64`` below
that.

References:
    Friedman, Hastie & Tibshirani (2010), *Regularization Paths for Generalized Linear Models
    via Coordinate Descent*, J. Stat. Softw. 33(1).
    Tibshirani et al. (2012), *Strong rules for discarding predictors in lasso-type problems*,
    JRSS B 74(2).
    Massias, Gramfort & Salmon (2018), *Celer: a fast solver for the Lasso with dual
    extrapolation* (working sets, duality gaps).
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg import _linear_fit as fitting
from jaxreg import _linear_gaussian as gaussian
from jaxreg import cv
from jaxreg._checks import check_choice, check_int
from jaxreg._tree import check_positive, check_unit_interval

__all__ = [
    "LinearCVPath",
    "LinearPath",
    "StabilityPath",
    "cv_path",
    "path",
    "solve",
    "stability_selection",
]

MEASURES = {"gaussian": ("mse", "deviance"), "binomial": ("deviance", "class"),
            "multinomial": ("deviance", "class")}  # fmt: skip


class LinearPath(NamedTuple):
    """A regularization path (numpy arrays; K = number of λ, p = number of features, C = number
    of classes).

    Attributes:
        lambdas: the λ grid ``[K]``, descending.
        coef: coefficients ``[K, p]`` (``[K, C, p]`` for multinomial; scikit-learn's ``coefs``
            is ``[p, K]``).
        intercept: intercepts ``[K]`` (``[K, C]``, summing to 0 over classes, for multinomial;
            zeros when ``fit_intercept=False``).
        dual_gap: the duality gap per λ ``[K]`` in objective units, a bound on how far the
            objective is above its minimum (scikit-learn's ``dual_gaps`` for gaussian).
        n_iter: coordinate-descent epochs per λ ``[K]`` (epochs over the working set, summed
            over Newton steps and classes).
        converged: ``dual_gap <= tol · D_null / n`` per λ ``[K]``.
        classes: the sorted class labels (binomial: ``classes[1]`` is the modelled one), or
            None for gaussian.
    """

    lambdas: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    dual_gap: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray
    classes: np.ndarray | None = None

    @property
    def nonzeros(self) -> np.ndarray:
        """Features with a nonzero coefficient (in any class) per λ ``[K]``."""
        return _nonzero_features(self.coef)


def _nonzero_features(coef: Any) -> np.ndarray:
    coef = np.asarray(coef)
    used = coef != 0
    if used.ndim == 3:
        used = used.any(axis=1)
    return np.count_nonzero(used, axis=-1)


class LinearCVPath(NamedTuple):
    """Cross-validated path: the full-data path, per-fold errors and glmnet's selection.

    Its fields have the names of :class:`jaxreg.FitPathResult` for the same things (``lambdas``,
    ``summary``, ``fold_ids``, ``fold_losses``, ``lambda_selected``, ``index_selected``,
    ``nonzeros``, ``loss_name``, ``cv_accuracy``), so :mod:`jaxreg.plot` and user code read both
    alike. The first release's names ``lambda_``, ``fold_mse`` and ``folds`` still work, with a
    ``DeprecationWarning``.

    Attributes:
        lambdas: the λ grid ``[K]`` (descending, from the full data).
        summary: :class:`jaxreg.cv.CVSummary` of ``fold_losses`` weighted by validation-fold size.
        coef: coefficients of the full-data fit at the selected λ, ``[p]`` (``[C, p]`` for
            multinomial).
        intercept: intercept of the full-data fit at the selected λ (``[C]`` for multinomial).
        lambda_selected: the selected λ (``summary.lambda_1se`` or ``summary.lambda_min``).
        path: the full-data :class:`LinearPath`.
        fold_losses: validation loss ``[folds, K]`` (the ``measure``: mean squared error,
            deviance, or misclassification rate).
        fold_ids: fold id per example ``[n]``.
        nonzeros: features with a nonzero coefficient (in any class) of the full-data path per
            λ ``[K]`` (the top axis of :func:`jaxreg.plot.cv_curve`).
        index_selected: the position of ``lambda_selected`` in ``lambdas``.
        loss_name: what ``fold_losses`` measures (the y label of plots).
        cv_accuracy: for classification, the validation accuracy per λ ``[K]`` (weighted by
            fold size, as ``summary.cvm``); None for gaussian.
    """

    lambdas: np.ndarray
    summary: cv.CVSummary
    coef: np.ndarray
    intercept: Any
    lambda_selected: float
    path: LinearPath
    fold_losses: np.ndarray
    fold_ids: np.ndarray
    nonzeros: np.ndarray
    index_selected: int
    loss_name: str = "mse"
    cv_accuracy: np.ndarray | None = None

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
# Public API


def path(
    X: Any,
    y: Any,
    *,
    family: str = "gaussian",
    l1_ratio: float = 1.0,
    lambdas: int | Any = 100,
    eps: float | None = None,
    fit_intercept: bool = True,
    tol: float = 1e-4,
    max_iter: int | None = None,
    precompute: bool | str = "auto",
    dtype: Any = None,
) -> LinearPath:
    r"""Lasso / elastic-net / ridge path of a least-squares, logistic or multinomial model.

    Minimizes :math:`\frac1n\sum_i \ell(x_i^\top w + b, y_i) + \lambda(\rho\lVert w\rVert_1 +
    \frac{1-\rho}{2}\lVert w\rVert^2)` for every λ of the grid (warm-started, descending), with
    ℓ = ½ squared error (``"gaussian"``, scikit-learn's ``enet_path``), the logistic loss
    (``"binomial"``) or the softmax cross-entropy (``"multinomial"``) — glmnet's families.

    Args:
        X: design matrix ``[n, p]`` (finite).
        y: targets ``[n]``: real values (gaussian) or class labels (binomial: exactly two
            distinct values; multinomial: two or more).
        family: ``"gaussian"``, ``"binomial"`` or ``"multinomial"``.
        l1_ratio: ρ in [0, 1]; 1 is the lasso, 0 is ridge (needs an explicit ``lambdas``).
        lambdas: number of λ of the default grid (λ_max down to ``eps * λ_max``, log-spaced),
            or an explicit 1-D array of λ ≥ 0 (sorted descending here).
        eps: ratio λ_min / λ_max of the default grid, > 0; default 1e-3 for gaussian
            (scikit-learn's), glmnet's 1e-4 (n > p) or 1e-2 (n ≤ p) for classification.
        fit_intercept: fit an unpenalized intercept (gaussian: by centring X and y, as
            ``LassoCV``); otherwise none, and no centring (as ``lasso_path`` on raw data).
        tol: relative duality-gap tolerance, > 0: stop when the gap ≤ ``tol · D_null / n``
            (gaussian: ``tol · ‖y_c‖² / n``, scikit-learn's rule).
        max_iter: maximum coordinate-descent epochs per λ; default 1000 for gaussian
            (scikit-learn's), 100 000 for classification (glmnet's ``maxit``).
        precompute: gaussian only: ``"auto"`` (coordinate descent on the Gram matrix XᵀX when
            p ≤ 2n, else on the residual), ``True`` or ``False``.
        dtype: computation dtype; ``None`` is JAX's default float (float32 unless x64 is on).
            ``jnp.float64`` works without enabling x64 globally (it is enabled for this call).

    Returns:
        A :class:`LinearPath` of numpy arrays.

    Raises:
        ValueError: on non-finite or mis-shaped data, fewer than two classes (or more than two
            for binomial), ρ outside [0, 1], ``eps``/``tol`` ≤ 0, a bad grid, or ridge
            (ρ = 0) without an explicit grid.

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
        >>> labels = np.where(X[:, 0] - X[:, 2] + 0.5 * rng.normal(size=50) > 0, "yes", "no")
        >>> logistic = linear.path(X, labels, family="binomial", lambdas=5)
        >>> logistic.classes.tolist(), logistic.coef.shape, logistic.nonzeros[0]  # λ_max: none
        (['no', 'yes'], (5, 4), np.int64(0))
        >>> np.sign(logistic.coef[-1, [0, 2]]).tolist()  # 'yes' ⇔ x0 − x2 > 0
        [1.0, -1.0]
    """
    problem = fitting.problem(X, y, family)
    settings = fitting.settings(problem, l1_ratio, lambdas, eps, fit_intercept, tol, max_iter,
                                precompute, dtype)  # fmt: skip
    grid = fitting.grid(problem, settings)
    return LinearPath(grid, *fitting.fit(problem, settings, grid), problem.classes)


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
    """The gaussian solver of :func:`path` as a pure JAX function: jittable, and
    ``jax.vmap``-able over the data and over ``lambdas``, ``l1_ratio``, ``tol`` and ``max_iter``
    (all data).

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
    grid = jnp.asarray(lambdas, dtype)
    coef, intercept, gaps, epochs, converged = gaussian.path_in_program(
        x, jnp.asarray(y, dtype), grid, jnp.asarray(l1_ratio, dtype), jnp.asarray(tol, dtype),
        jnp.asarray(max_iter, jnp.int32), fit_intercept=bool(fit_intercept),
        gram=gaussian.choose_gram(precompute, n, p),
    )  # fmt: skip
    return LinearPath(grid, coef, intercept, gaps, epochs, converged)


def cv_path(
    X: Any,
    y: Any,
    *,
    folds: int | Any = 5,
    key: Any = None,
    family: str = "gaussian",
    measure: str | None = None,
    l1_ratio: float = 1.0,
    lambdas: int | Any = 100,
    eps: float | None = None,
    fit_intercept: bool = True,
    tol: float = 1e-4,
    max_iter: int | None = None,
    precompute: bool | str = "auto",
    dtype: Any = None,
    select: str = "1se",
) -> LinearCVPath:
    """K-fold cross-validated path; λ chosen by glmnet's rule (:func:`jaxreg.cv.summarize`).

    The grid is the full data's (as ``LassoCV`` and ``cv.glmnet``); every fold's path is fitted
    in one compiled program (``lax.map`` over folds, measured 3× faster than ``jax.vmap``, whose
    batched while-loops run every fold to the slowest fold's iteration count); the validation
    loss table ``[folds, K]`` is summarized with fold-size weights, and the full-data path is
    read off at λ_1se (``select="1se"``) or λ_min (``select="min"``).

    Args:
        X: design matrix ``[n, p]``.
        y: targets ``[n]`` (real values, or class labels for binomial/multinomial).
        folds: number of folds (random, from ``key``) or fold ids ``[n]`` (any integer labels).
        key: ``jax.random`` key (or int seed) for the fold assignment; ``None`` means seed 0.
        family: ``"gaussian"``, ``"binomial"`` or ``"multinomial"``, as in :func:`path`.
        measure: the validation loss: ``"mse"`` (gaussian; ``"deviance"`` is the same there),
            ``"deviance"`` (classification default: −2 × mean log-likelihood of the held-out
            labels, probabilities clipped to [1e-5, 1 − 1e-5] as glmnet) or ``"class"``
            (misclassification rate).
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
    check_choice(select, "select", ("1se", "min"))
    problem = fitting.problem(X, y, family)
    measure = check_choice(measure or MEASURES[family][0], "measure", MEASURES[family])
    settings = fitting.settings(problem, l1_ratio, lambdas, eps, fit_intercept, tol, max_iter,
                                precompute, dtype)  # fmt: skip
    n, _ = problem.x.shape
    fold_ids = cv.fold_ids(n, folds, key=key)
    grid = fitting.grid(problem, settings)
    full = LinearPath(grid, *fitting.fit(problem, settings, grid), problem.classes)
    losses, accuracy = fitting.fold_losses(problem, settings, fold_ids, grid, measure)
    validation_sizes = np.bincount(fold_ids)
    summary = cv.summarize(losses, full.lambdas, weights=validation_sizes)
    index = summary.index_1se if select == "1se" else summary.index_min
    if accuracy is not None:
        accuracy = np.average(accuracy, axis=0, weights=validation_sizes)
    return LinearCVPath(
        lambdas=full.lambdas,
        summary=summary,
        coef=full.coef[index],
        intercept=full.intercept[index] if family == "multinomial" else float(
            full.intercept[index]
        ),
        lambda_selected=float(full.lambdas[index]),
        path=full,
        fold_losses=losses,
        fold_ids=fold_ids,
        nonzeros=full.nonzeros,
        index_selected=int(index),
        loss_name=_LOSS_NAMES[family, measure],
        cv_accuracy=accuracy,
    )


_LOSS_NAMES = {
    ("gaussian", "mse"): "mse",
    ("gaussian", "deviance"): "mse",
    ("binomial", "deviance"): "binomial deviance",
    ("binomial", "class"): "misclassification error",
    ("multinomial", "deviance"): "multinomial deviance",
    ("multinomial", "class"): "misclassification error",
}


class StabilityPath(NamedTuple):
    r"""Stability selection along a λ grid (numpy arrays; K = number of λ, p = features).

    Attributes:
        lambdas: the λ grid ``[K]`` (descending, from the full data).
        probabilities: selection probability ``[K, p]``: the fraction of subsamples whose fit at
            λ has a nonzero coefficient (in any class) for the feature.
        max_probability: the largest probability over the grid per feature ``[p]``.
        selected: ``max_probability >= threshold`` per feature ``[p]``: the stable set.
        threshold: π_thr.
        expected_false_selections: Meinshausen & Bühlmann's bound on the expected number of
            noise features in the stable set, :math:`q^2 / ((2\pi_{thr} - 1)\,p)` with q the
            mean number of features a subsample's path selects anywhere on the grid (inf for
            ``threshold <= 0.5``); lower the grid's reach (a larger ``eps``) to tighten it.
        subsamples: the rows of each subsample ``[B, n // 2]``.
    """

    lambdas: np.ndarray
    probabilities: np.ndarray
    max_probability: np.ndarray
    selected: np.ndarray
    threshold: float
    expected_false_selections: float
    subsamples: np.ndarray


def stability_selection(
    X: Any,
    y: Any,
    *,
    family: str = "gaussian",
    num_subsamples: int = 100,
    threshold: float = 0.6,
    key: Any = None,
    l1_ratio: float = 1.0,
    lambdas: int | Any = 20,
    eps: float = 0.1,
    fit_intercept: bool = True,
    tol: float = 1e-4,
    max_iter: int | None = None,
    dtype: Any = None,
) -> StabilityPath:
    r"""Stability selection (Meinshausen & Bühlmann 2010): lasso paths on many random halves of
    the data, and how often each feature is selected.

    For B subsamples :math:`I_b` of :math:`\lfloor n/2\rfloor` rows drawn without replacement,
    the selection probability of feature j at λ is
    :math:`\hat\Pi_j(\lambda) = \frac1B \sum_b 1[\hat w_j(\lambda; I_b) \ne 0]`, and the
    stable set is :math:`\{j : \max_\lambda \hat\Pi_j(\lambda) \ge \pi_{thr}\}`. Every
    subsample runs the compiled program of :func:`path` for its size (compiled once for all of
    them), four in flight at a time so that they overlap on the host's cores — measured
    faster on CPU than the same paths vmapped in one program, whose coordinate-descent steps
    pay for per-subsample indexing and whose batches run to their slowest member
    (``bench/stability.py`` times both).

    Args:
        X: design matrix ``[n, p]``.
        y: targets ``[n]`` (real values, or class labels for binomial/multinomial).
        family: ``"gaussian"``, ``"binomial"`` or ``"multinomial"``, as in :func:`path`.
        num_subsamples: B ≥ 1 (100 is customary).
        threshold: π_thr in (0, 1]; Meinshausen & Bühlmann suggest 0.6 to 0.9.
        key: ``jax.random`` key (or int seed) for the subsamples; ``None`` means seed 0.
        l1_ratio: ρ in (0, 1] (ridge selects everything).
        lambdas: number of λ of the default grid (from the full data's λ_max down to
            ``eps * λ_max``) or an explicit 1-D array.
        eps: the default grid's λ_min / λ_max: stability selection wants a grid that stops
            before noise features enter (see ``expected_false_selections``).
        fit_intercept, tol, max_iter, dtype: as in :func:`path` (each subsample is centred on
            its own rows).

    Returns:
        A :class:`StabilityPath`.

    Example:
        >>> import numpy as np
        >>> from jaxreg import linear
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(100, 8))
        >>> y = 2 * X[:, 0] - 3 * X[:, 1] + rng.normal(size=100)
        >>> stable = linear.stability_selection(X, y, num_subsamples=20, key=1)
        >>> np.flatnonzero(stable.selected).tolist(), stable.probabilities.shape
        ([0, 1], (20, 8))
    """
    problem = fitting.problem(X, y, family)
    num_subsamples = check_int(num_subsamples, "num_subsamples", minimum=1)
    check_positive(threshold, "threshold")
    check_unit_interval(threshold, "threshold")
    if float(l1_ratio) == 0:
        raise ValueError("l1_ratio must be > 0 for stability selection (ridge selects all)")
    settings = fitting.settings(problem, l1_ratio, lambdas, eps, fit_intercept, tol, max_iter,
                                "auto", dtype)  # fmt: skip
    n, p = problem.x.shape
    # the halves' form (the full data's choice is for n rows)
    settings = settings._replace(gram=gaussian.choose_gram("auto", n // 2, p))
    rng = jax.random.key(0 if key is None else key) if not _is_key(key) else key
    keys = jax.random.split(rng, num_subsamples)
    rows = np.sort(np.asarray(jax.vmap(lambda k: jax.random.permutation(k, n)[: n // 2])(keys)))
    grid = fitting.grid(problem, settings)
    selected = np.empty((num_subsamples, len(grid), p), bool)
    halves = ((problem._replace(x=problem.x[half], targets=problem.targets[half]), None)
              for half in rows)  # fmt: skip
    for b, (coef, *_) in enumerate(fitting.fits(halves, settings, grid)):
        selected[b] = (coef != 0).any(axis=1) if coef.ndim == 3 else coef != 0
    probabilities = selected.mean(axis=0)
    counts = selected.any(axis=1).sum(axis=1)
    top = probabilities.max(axis=0)
    bound = np.mean(counts) ** 2 / ((2 * threshold - 1) * p) if threshold > 0.5 else np.inf
    return StabilityPath(grid, probabilities, top, top >= threshold, float(threshold),
                         float(bound), rows)  # fmt: skip


def _is_key(key: Any) -> bool:
    return isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)

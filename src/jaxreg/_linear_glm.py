r"""Binomial and multinomial elastic-net paths: proximal Newton with coordinate descent.

Everything here works in n-scaled units (as scikit-learn's coordinate descent does): with
sample weights ω (1, or 0 for the rows a cross-validation fold leaves out) and n = Σω,

.. math::

    n P(W, b) = \sum_i \omega_i \ell(\eta_i, Y_i)
        + \alpha \lVert W\rVert_1 + \tfrac{\beta}{2}\lVert W\rVert^2,
    \qquad \alpha = n\lambda\rho,\; \beta = n\lambda(1-\rho),\; \eta = XW^\top + b,

with ℓ the negative log-likelihood of the family (binomial: one column, ``C = 1``; multinomial:
softmax over ``C`` classes, penalty on every class's coefficients separately, as scikit-learn's).

The solver is glmnet's: for each λ (descending, warm-started) and each class in turn, a
quadratic model of ℓ in that class's (intercept, coefficients) with the diagonal Hessian weights
:math:`\mu_k(1-\mu_k)`, minimized by coordinate descent in Gram form (:mod:`jaxreg._linear_cd`)
over a working set (nonzeros plus strong-rule survivors, at most ``cap`` features) and finished
by an exact solve on its support, then a backtracking line search on the true objective; for
multinomial, each feature's coefficients are then shifted across classes to minimize the penalty
(glmnet's ``elc``). The certificate is the Fenchel duality gap: the dual point is the residual
:math:`Y - \mu` (shifted through the intercepts' Hessian so that it sums to zero per class, as
free intercepts require), scaled into the dual ball for the lasso.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.special import xlogy

from jaxreg import _linear_cd as cd
from jaxreg.regularizers import ElasticNet

# Backtracking: sufficient decrease σ and at most this many halvings.
_ARMIJO = 1e-4
_MAX_HALVINGS = 30


class Family(NamedTuple):
    """A family's functions on linear predictors η ``[n, C]`` and targets Y ``[n, C]``."""

    name: str
    mean: object  # η -> μ
    nll: object  # (η, Y) -> per-row negative log-likelihood [n]
    neg_entropy: object  # m -> per-row Σ m log m (the conjugate of ℓ, up to the shift by Y)
    feasible: object  # m -> per-row bool: m in the conjugate's domain


def _binomial_nll(eta, y):
    return jnp.sum(jax.nn.softplus(eta) - y * eta, axis=1)


def _binomial_entropy(m):
    return jnp.sum(xlogy(m, m) + xlogy(1 - m, 1 - m), axis=1)


def _multinomial_nll(eta, y):
    return jax.nn.logsumexp(eta, axis=1) - jnp.sum(y * eta, axis=1)


BINOMIAL = Family(
    "binomial",
    jax.nn.sigmoid,
    _binomial_nll,
    _binomial_entropy,
    lambda m: jnp.all((m >= 0) & (m <= 1), axis=1),
)
MULTINOMIAL = Family(
    "multinomial",
    lambda eta: jax.nn.softmax(eta, axis=1),
    _multinomial_nll,
    lambda m: jnp.sum(xlogy(m, m), axis=1),
    lambda m: jnp.all(m >= 0, axis=1),
)


def family(name: str) -> Family:
    return {"binomial": BINOMIAL, "multinomial": MULTINOMIAL}[name]


class Data(NamedTuple):
    """One problem: features transposed ``xt`` ``[p, n]`` (a feature's values are contiguous),
    targets ``y`` ``[n, C]`` (0/1, one-hot for multinomial) and sample weights ``[n]``."""

    xt: jax.Array
    y: jax.Array
    weights: jax.Array


class State(NamedTuple):
    coef: jax.Array  # [C, p]
    intercept: jax.Array  # [C]
    eta: jax.Array  # [n, C]
    nll: jax.Array  # Σ_i ω_i ℓ(η_i, Y_i), kept with η (one fewer place that compiles it)
    gap: jax.Array  # n-scaled duality gap
    epochs: jax.Array  # coordinate-descent epochs at this λ
    rounds: jax.Array  # Newton rounds (every class once) at this λ
    dw_tol: jax.Array  # the inner solver's relative tolerance this round


def null_intercept(fam: Family, data: Data, fit_intercept: bool) -> jax.Array:
    """The unpenalized intercept of the model with no features: log-odds / centred log class
    frequencies (0 without an intercept)."""
    num_classes = data.y.shape[1]
    if not fit_intercept:
        return jnp.zeros(num_classes, data.y.dtype)
    tiny = jnp.finfo(data.y.dtype).tiny
    freq = jnp.maximum(data.weights @ data.y / jnp.sum(data.weights), tiny)
    if fam is BINOMIAL:
        return jnp.log(freq) - jnp.log(jnp.maximum(1 - freq, tiny))
    log_freq = jnp.log(freq)
    return log_freq - jnp.mean(log_freq)


def lambda_max(fam: Family, data: Data, l1_ratio, fit_intercept: bool) -> jax.Array:
    r"""The smallest λ whose solution has every coefficient zero: the elastic net's dual norm of
    the null model's gradient, :math:`\max_{j,k}|X_j^\top(Y_k - \mu_k)|/(n\rho)`."""
    intercept = null_intercept(fam, data, fit_intercept)
    eta = jnp.broadcast_to(intercept, data.y.shape)
    residual = data.weights[:, None] * (data.y - fam.mean(eta))
    gradient = data.xt @ residual / jnp.sum(data.weights)
    return ElasticNet(1.0, l1_ratio).dual_norm(gradient)


def _penalty(coef, alpha, beta):
    return alpha * jnp.sum(jnp.abs(coef)) + 0.5 * beta * jnp.sum(coef * coef)


def _intercept_shift(fam: Family, mu, weights, residual):
    r"""A shift of the residual rows, zero in total per class, that keeps every row in the
    conjugate's domain: the intercepts' Newton step κ mapped through the Hessian,
    :math:`D_i\kappa` with :math:`D_i = \mathrm{diag}(\mu_i) - \mu_i\mu_i^\top` (binomial:
    :math:`\mu_i(1-\mu_i)\kappa`). Rows of :math:`D_i` sum to zero, so multinomial rows stay
    on the simplex; the shifted :math:`\mu_i + D_i\kappa` stays in it while the spread of κ
    is below 1, which holds near the optimum."""
    total = jnp.sum(residual, axis=0)
    if fam is BINOMIAL:
        curvature = weights[:, None] * mu * (1 - mu)
        kappa = total / jnp.maximum(jnp.sum(curvature, axis=0), jnp.finfo(mu.dtype).tiny)
        return mu * (1 - mu) * kappa
    hessian = jnp.diag(weights @ mu) - (weights[:, None] * mu).T @ mu
    # The intercept Hessian is singular along 1 (a common shift); total ⊥ 1 lies in its range,
    # and adding 11ᵀ/C (which maps 1 to 1 and annihilates the range) makes it invertible with
    # the same solution there.
    num_classes = total.shape[0]
    factor = jax.scipy.linalg.cho_factor(hessian + 1 / num_classes)
    kappa = jax.scipy.linalg.cho_solve(factor, total)
    return mu * (kappa - (mu @ kappa)[:, None])


def duality_gap(fam: Family, data: Data, s: State, alpha, beta, fit_intercept: bool):
    r"""The n-scaled Fenchel duality gap at ``s`` (a certificate: it bounds n·(P − P*)).

    The dual point is the residual :math:`Y - \mu` (with free intercepts, shifted to sum to
    zero per class), scaled into the dual ball for the lasso; with λ = 0 (no penalty) the gap
    is replaced by the largest gradient entry."""
    weights = data.weights[:, None]
    mu = fam.mean(s.eta)
    residual = weights * (data.y - mu)
    if fit_intercept:
        residual = residual - weights * _intercept_shift(fam, mu, data.weights, residual)
    xi = data.xt @ residual  # [p, C]
    sup = jnp.max(jnp.abs(xi))
    scale = jnp.where(beta > 0, 1.0, jnp.minimum(1.0, alpha / jnp.where(sup > 0, sup, 1)))
    # m = Y − θ/ω: a convex combination of Y and the shifted means
    m = data.y - scale * residual / jnp.where(weights > 0, weights, 1)
    conjugate_of_penalty = jnp.sum(jnp.maximum(scale * jnp.abs(xi) - alpha, 0) ** 2) / (
        2 * jnp.where(beta > 0, beta, 1)
    )
    dual = -data.weights @ fam.neg_entropy(m) - conjugate_of_penalty
    primal = s.nll + _penalty(s.coef, alpha, beta)
    feasible = jnp.all(fam.feasible(m) | (data.weights == 0))
    gap = jnp.where(feasible, primal - dual, jnp.inf)
    return jnp.where((alpha > 0) | (beta > 0), gap, sup)


def _class_step(fam, data, s: State, k, alpha, beta, alpha_prev, max_iter, cap, fit_intercept):
    """One proximal Newton step in class ``k``'s intercept and coefficients."""
    mu = fam.mean(s.eta)[:, k]
    residual = data.weights * (mu - data.y[:, k])  # ∂(n P)/∂η_k
    curvature = data.weights * mu * (1 - mu)
    gradient = data.xt @ residual
    w = s.coef[k]
    idx, valid = cd.working_slots(w, gradient, alpha, beta, alpha_prev, cap)
    held = jnp.where(valid, idx, 0)
    rows = data.xt[held] * valid[:, None].astype(data.xt.dtype)  # [cap, n], empty slots 0
    w_held = jnp.where(valid, w[held], 0)
    weighted = rows * curvature
    if fit_intercept:  # slot 0 is the intercept: unpenalized, its row is all ones
        rows_b = jnp.concatenate([jnp.ones((1, rows.shape[1]), rows.dtype), rows])
        weighted_b = jnp.concatenate([curvature[None], weighted])
        matrix = weighted_b @ rows_b.T
        v0 = jnp.concatenate([s.intercept[k][None], w_held])
        g = jnp.concatenate([jnp.sum(residual)[None], jnp.where(valid, gradient[held], 0)])
        active = jnp.concatenate([jnp.ones(1, bool), valid])
        factor = jnp.concatenate([jnp.zeros(1, rows.dtype), jnp.ones_like(valid, rows.dtype)])
        features = rows_b
    else:
        matrix = weighted @ rows.T
        g = jnp.where(valid, gradient[held], 0)
        v0, active, factor, features = w_held, valid, None, rows
    q = cd.Quadratic(matrix, jnp.diagonal(matrix), factor)
    v, _, epochs = cd.minimize(q, v0, -g, active, alpha, beta, s.dw_tol, s.epochs, max_iter)
    direction = v - v0
    step_eta = direction @ features  # [n]
    offset = 1 if fit_intercept else 0
    w0, dw = v0[offset:], direction[offset:]
    t, nll = _line_search(fam, data, s, k, step_eta, w0, dw, g @ direction, alpha, beta)
    new = v0 + t * direction
    coef = s.coef.at[k, idx].set(new[offset:], mode="drop")
    intercept = s.intercept.at[k].set(new[0]) if fit_intercept else s.intercept
    return s._replace(
        coef=coef,
        intercept=intercept,
        eta=s.eta.at[:, k].add(t * step_eta),
        nll=nll,
        epochs=epochs,
    )


def _line_search(fam, data, s: State, k, step_eta, w0, dw, linear_decrease, alpha, beta):
    """Backtracking (Armijo) on the true objective along the Newton direction of class ``k``:
    the step t ∈ {1, ½, ¼, ...} and the likelihood there (t = 0 when it fails)."""
    base = s.nll + _penalty(w0, alpha, beta)
    # The model's decrease (≤ 0 in exact arithmetic), its penalty part summed term by term.
    decrease = (
        linear_decrease
        + alpha * jnp.sum(jnp.abs(w0 + dw) - jnp.abs(w0))
        + 0.5 * beta * jnp.sum(dw * (2 * w0 + dw))
    )
    # Near the optimum the decrease drowns in the rounding of the objective's sum: what is
    # within that rounding counts as no increase (the quadratic model is exact there).
    noise = 64 * jnp.finfo(base.dtype).eps * jnp.abs(base)

    def accepted(t, nll):
        return nll + _penalty(w0 + t * dw, alpha, beta) <= base + _ARMIJO * t * decrease + noise

    def too_high(carry):
        t, nll, halvings = carry
        return ~accepted(t, nll) & (halvings < _MAX_HALVINGS)

    def halve(carry):  # the only place the line search evaluates the likelihood
        t, _, halvings = carry
        eta = s.eta.at[:, k].add(t / 2 * step_eta)
        return t / 2, data.weights @ fam.nll(eta, data.y), halvings + 1

    start = (jnp.full((), 2, base.dtype), jnp.full((), jnp.inf, base.dtype), 0)
    t, nll, _ = lax.while_loop(too_high, halve, start)
    ok = accepted(t, nll)
    return jnp.where(ok, t, 0), jnp.where(ok, nll, s.nll)


def solve_lambda(
    fam, data, s: State, alpha, beta, alpha_prev, gap_tol, max_iter, cap, fit_intercept
):
    """Newton rounds (every class once) at one λ until the gap is at most ``gap_tol``."""
    gap = duality_gap(fam, data, s, alpha, beta, fit_intercept)
    s = s._replace(
        gap=gap,
        epochs=jnp.zeros((), jnp.int32),
        rounds=jnp.zeros((), jnp.int32),
        dw_tol=jnp.asarray(_FIRST_INNER_TOL, s.eta.dtype),
    )
    num_classes = data.y.shape[1]

    def keep_going(s: State):
        return (s.gap > gap_tol) & (s.epochs < max_iter) & (s.rounds < max_iter)

    def newton_round(s: State) -> State:
        def one_class(k, s):
            return _class_step(
                fam, data, s, k, alpha, beta, alpha_prev, max_iter, cap, fit_intercept
            )

        s = lax.fori_loop(0, num_classes, one_class, s)
        if fam is MULTINOMIAL:
            s = _recentre(data, s, alpha, beta)
        gap = duality_gap(fam, data, s, alpha, beta, fit_intercept)
        return s._replace(gap=gap, rounds=s.rounds + 1, dw_tol=_tighter(s.dw_tol))

    return lax.while_loop(keep_going, newton_round, s)


_FIRST_INNER_TOL = 1e-2


def _recentre(data: Data, s: State, alpha, beta) -> State:
    """Shift every feature's coefficients across classes by the constant that minimizes the
    penalty (glmnet's ``elc``): the softmax, hence the loss, does not see a common shift, which
    class-by-class Newton steps cannot find on their own (they stall along it)."""
    shift = _penalty_centre(s.coef, alpha, beta)
    return s._replace(coef=s.coef - shift, eta=s.eta - (shift @ data.xt)[:, None])


def _penalty_centre(coef, alpha, beta):
    r"""Per feature, the c minimizing :math:`\sum_k \alpha|w_k - c| + \tfrac{\beta}{2}
    (w_k - c)^2` (convex, piecewise quadratic): the best of the breakpoints w_k and of each
    piece's stationary point clipped into the piece."""
    num_classes = coef.shape[0]
    points = jnp.sort(coef, axis=0)  # [C, p]
    below = jnp.arange(num_classes + 1, dtype=coef.dtype)[:, None]  # classes left of piece i
    stationary = (jnp.sum(coef, axis=0) - alpha * (2 * below - num_classes) / jnp.where(
        beta > 0, beta, 1
    )) / num_classes
    low = jnp.concatenate([points[:1], points])
    high = jnp.concatenate([points, points[-1:]])
    pieces = jnp.where(beta > 0, jnp.clip(stationary, low, high), low)
    candidates = jnp.concatenate([points, pieces])  # [2C + 1, p]
    distance = candidates[:, None, :] - coef[None]
    cost = alpha * jnp.sum(jnp.abs(distance), axis=1) + 0.5 * beta * jnp.sum(distance**2, axis=1)
    best = jnp.argmin(cost, axis=0)
    # exact zeros stay exact: a shift by 0 where 0 is as good as the best
    centre = jnp.take_along_axis(candidates, best[None], axis=0)[0]
    zero_cost = alpha * jnp.sum(jnp.abs(coef), axis=0) + 0.5 * beta * jnp.sum(coef**2, axis=0)
    return jnp.where(zero_cost <= jnp.min(cost, axis=0), 0, centre)


def working_set_cap(n: int, p: int) -> int:
    """Feature slots of the Newton working set: a slot costs n·cap per weighted-Gram entry."""
    return min(p, max(32, min(n, 256)))


@functools.partial(jax.jit, static_argnames=("family_name", "fit_intercept", "cap"))
def solve_path(data: Data, lambdas, l1_ratio, tol, max_iter, *, family_name, fit_intercept, cap):
    """Coefficients ``[K, C, p]``, intercepts ``[K, C]``, gaps (objective units), epochs and
    convergence along a descending grid, from the null model."""
    fam = family(family_name)
    n_eff = jnp.sum(data.weights)
    alphas = lambdas * l1_ratio * n_eff
    betas = lambdas * (1 - l1_ratio) * n_eff
    alphas_prev = jnp.concatenate([alphas[:1], alphas[:-1]])
    num_features, _ = data.xt.shape
    num_classes = data.y.shape[1]
    intercept = null_intercept(fam, data, fit_intercept)
    zero = jnp.zeros((), data.xt.dtype)
    eta = jnp.broadcast_to(intercept, data.y.shape)
    start = State(
        coef=jnp.zeros((num_classes, num_features), data.xt.dtype),
        intercept=intercept,
        eta=eta,
        nll=data.weights @ fam.nll(eta, data.y),  # the null model's: half its deviance
        gap=zero,
        epochs=jnp.zeros((), jnp.int32),
        rounds=jnp.zeros((), jnp.int32),
        dw_tol=zero,
    )

    gap_tol = tol * 2 * start.nll

    def one_lambda(s: State, inputs):
        alpha, beta, alpha_prev = inputs
        s = solve_lambda(
            fam, data, s, alpha, beta, alpha_prev, gap_tol, max_iter, cap, fit_intercept
        )
        return s, (s.coef, s.intercept, s.gap / n_eff, s.epochs, s.gap <= gap_tol)

    _, (coef, intercept, gaps, epochs, converged) = lax.scan(
        one_lambda, start, (alphas, betas, alphas_prev)
    )
    if family_name == "multinomial":  # the softmax is unchanged by a common shift
        intercept = intercept - jnp.mean(intercept, axis=1, keepdims=True)
    return coef, intercept, gaps, epochs, converged


def _tighter(dw_tol):
    # Two decades tighter each round: fewer rounds (each forms a weighted Gram matrix) than one
    # decade, fewer epochs than squaring (whose last round over-solves).
    return jnp.maximum(dw_tol * 0.01, jnp.finfo(dw_tol.dtype).eps)


@functools.partial(jax.jit, static_argnames=("family_name", "fit_intercept", "cap"))
def path_program(x, y, weights, grid, l1_ratio, tol, max_iter, *, family_name, fit_intercept, cap):
    """The path of raw X ``[n, p]``, targets ``[n, C]`` and 0/1 row weights ``[n]`` (the rows
    a cross-validation fold leaves out get 0: folds reuse the program)."""
    return solve_path(
        Data(x.T, y, weights), grid, l1_ratio, tol, max_iter, family_name=family_name,
        fit_intercept=fit_intercept, cap=cap,
    )  # fmt: skip

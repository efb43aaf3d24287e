"""Proximal operators and projections: closed forms, optimality conditions, Moreau identities,
an independent minimiser, projection properties, consistency with the penalties, dtypes,
vmap without retracing, and bad input."""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from hypothesis import given, settings

from jaxreg import penalties, prox


def _floats(low: float, high: float) -> st.SearchStrategy[float]:
    # No subnormals: XLA on CPU flushes them to zero, which is not what these tests are about.
    return st.floats(low, high, width=64, allow_subnormal=False)


PROPERTY = settings(max_examples=50, deadline=None)
# Entries whose squares are subnormal (|x| < 1e-150) become 0: a norm sums squares, and XLA
# flushes a subnormal sum to zero just as it flushes subnormal inputs.
def _normal_squares(values: st.SearchStrategy[float]) -> st.SearchStrategy[float]:
    return values.map(lambda v: 0.0 if abs(v) < 1e-150 else v)


MATRICES = hnp.arrays(np.float64, (4, 3), elements=_normal_squares(_floats(-10, 10)))
STRENGTHS = _floats(0, 5)
STEPS = _floats(0.01, 5)
RATIOS = _floats(0, 1)

# Jitted once per module: hyperparameters are traced arguments, so no example recompiles.
prox_l1 = jax.jit(prox.l1)
prox_l2 = jax.jit(prox.l2)
prox_elastic_net = jax.jit(prox.elastic_net)
prox_group_lasso = jax.jit(prox.group_lasso, static_argnames=("group_axis", "joint"))
project_box = jax.jit(prox.box)
project_max_norm = jax.jit(prox.max_norm, static_argnames="axis")


def _np_soft_threshold(x, t):
    return np.sign(x) * np.maximum(np.abs(x) - t, 0)


# ----------------------------------------------------------------------------- closed forms


def test_closed_forms_float64():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 4))
    lam, s, rho = 0.7, 0.6, 0.3
    with jax.enable_x64(True):
        xj = jnp.asarray(x)
        np.testing.assert_allclose(prox.l1(xj, lam, s), _np_soft_threshold(x, s * lam))
        np.testing.assert_allclose(prox.l2(xj, lam, s), x / (1 + s * lam), rtol=1e-15)
        np.testing.assert_allclose(
            prox.elastic_net(xj, lam, rho, s),
            _np_soft_threshold(x, s * lam * rho) / (1 + s * lam * (1 - rho)),
            rtol=1e-15,
        )
        norms = np.linalg.norm(x, axis=0)
        expected_group = x * np.maximum(0, 1 - s * lam * math.sqrt(5) / norms)
        np.testing.assert_allclose(
            prox.group_lasso(xj, lam, s, group_axis=1), expected_group, rtol=1e-14
        )
        np.testing.assert_allclose(prox.box(xj, -0.5, 0.25), np.clip(x, -0.5, 0.25))
        np.testing.assert_allclose(
            prox.max_norm(xj, 1.5, axis=0), x * np.minimum(1, 1.5 / norms), rtol=1e-14
        )
        row_norms = np.linalg.norm(x, axis=1, keepdims=True)
        np.testing.assert_allclose(
            prox.max_norm(xj, 1.5, axis=1), x * np.minimum(1, 1.5 / row_norms), rtol=1e-14
        )
        assert prox.l1(xj, lam, s).dtype == jnp.float64


def test_group_lasso_joint_and_per_leaf_axes():
    rng = np.random.default_rng(1)
    q, o = rng.normal(size=(4, 3, 2)), rng.normal(size=(3, 5))
    lam, s = 0.4, 0.5
    joint_norms = np.sqrt((q**2).sum(axis=(0, 2)) + (o**2).sum(axis=1))
    factor = np.maximum(0, 1 - s * lam * math.sqrt(8 + 5) / joint_norms)
    with jax.enable_x64(True):
        out = prox.group_lasso(
            {"q": jnp.asarray(q), "o": jnp.asarray(o)},
            lam,
            s,
            group_axis={"q": 1, "o": 0},
            joint=True,
        )
    np.testing.assert_allclose(out["q"], q * factor[None, :, None], rtol=1e-14)
    np.testing.assert_allclose(out["o"], o * factor[:, None], rtol=1e-14)


def test_per_leaf_strengths_and_bounds():
    x = {"a": jnp.array([2.0, -0.5]), "b": jnp.array([2.0, -0.5])}
    out = prox.l1(x, {"a": 1.0, "b": 0.0})
    np.testing.assert_allclose(out["a"], [1.0, 0.0])
    np.testing.assert_allclose(out["b"], [2.0, -0.5])
    out = prox.box(x, {"a": -1.0, "b": 0.0}, {"a": 1.0, "b": 3.0})
    np.testing.assert_allclose(out["a"], [1.0, -0.5])
    np.testing.assert_allclose(out["b"], [2.0, 0.0])
    out = prox.group_lasso(x, {"a": 10.0, "b": 0.0}, group_axis=0)
    np.testing.assert_allclose(out["a"], [0.0, 0.0])
    np.testing.assert_allclose(out["b"], [2.0, -0.5])


def test_zero_groups_stay_zero_without_nan():
    x = jnp.array([[0.0, 3.0], [0.0, 4.0]])
    out = prox.group_lasso(x, 1.0, group_axis=1)
    np.testing.assert_array_equal(out[:, 0], 0.0)
    assert np.all(np.isfinite(out))
    for summed in (
        lambda v: jnp.sum(prox.group_lasso(v, 1.0, group_axis=1)),
        lambda v: jnp.sum(prox.max_norm(v, 1.0, axis=0)),
    ):
        assert np.all(np.isfinite(jax.grad(summed)(jnp.zeros((2, 2)))))
    np.testing.assert_array_equal(prox.max_norm(jnp.zeros((2, 2)), 1.0), 0.0)


# ----------------------------------------------------------------------------- optimality


@PROPERTY
@given(x=MATRICES, lam=STRENGTHS, s=STEPS, rho=RATIOS)
def test_prox_optimality_conditions(x, lam, s, rho):
    """x − prox(x) ∈ s·∂R(prox(x)), componentwise (L1, L2, elastic net) or groupwise."""
    tol = 1e-9 * (1 + np.abs(x).max())
    with jax.enable_x64(True):
        p = np.asarray(prox_l1(x, lam, s))
        r = x - p
        nonzero = p != 0
        np.testing.assert_allclose(r[nonzero], s * lam * np.sign(p[nonzero]), atol=tol)
        assert np.all(np.abs(r[~nonzero]) <= s * lam + tol)

        p = np.asarray(prox_l2(x, lam, s))
        np.testing.assert_allclose(x - p, s * lam * p, atol=tol)

        p = np.asarray(prox_elastic_net(x, lam, rho, s))
        r = x - p
        nonzero = p != 0
        np.testing.assert_allclose(
            r[nonzero],
            s * lam * (rho * np.sign(p[nonzero]) + (1 - rho) * p[nonzero]),
            atol=tol,
        )
        assert np.all(np.abs(r[~nonzero]) <= s * lam * rho + tol)

        p = np.asarray(prox_group_lasso(x, lam, s, group_axis=1))
        r = x - p
        weight = s * lam * math.sqrt(x.shape[0])
        for g in range(x.shape[1]):
            norm = np.linalg.norm(p[:, g])
            if norm > 0:
                np.testing.assert_allclose(r[:, g], weight * p[:, g] / norm, atol=tol)
            else:
                assert np.linalg.norm(r[:, g]) <= weight + tol


@PROPERTY
@given(x=MATRICES, lam=_floats(0.01, 5), s=STEPS)
def test_moreau_identities(x, lam, s):
    """prox_{sR}(x) + s·prox_{R*/s}(x/s) = x, with R* computed by another jaxreg operator."""
    tol = 1e-9 * (1 + np.abs(x).max())
    with jax.enable_x64(True):
        # L1: R* is the indicator of the ℓ∞ ball of radius λ, its prox the box projection.
        np.testing.assert_allclose(
            prox_l1(x, lam, s) + s * project_box(x / s, -lam, lam), x, atol=tol
        )
        # L2: R = (λ/2)‖·‖² has R* = (1/(2λ))‖·‖², an L2 penalty of strength 1/λ.
        np.testing.assert_allclose(
            prox_l2(x, lam, s) + s * prox_l2(x / s, 1 / lam, 1 / s), x, atol=tol
        )
        # Group lasso: R* is the indicator of per-group ℓ2 balls of radius λ√|g|, its prox the
        # max-norm projection of every group (column).
        radius = lam * math.sqrt(x.shape[0])
        np.testing.assert_allclose(
            prox_group_lasso(x, lam, s, group_axis=1) + s * project_max_norm(x / s, radius, axis=0),
            x,
            atol=tol,
        )


def _scalar_argmin(objective, x0):
    result = scipy.optimize.minimize_scalar(
        objective, bracket=(x0 - 1, x0 + 1), method="brent", tol=1e-12
    )
    return result.x


@pytest.mark.parametrize("seed", range(4))
def test_prox_is_the_argmin_found_by_scipy(seed):
    """Minimise R(z) + ‖z − x‖²/(2s) with scipy (coordinatewise / per group, derivative-free)
    and compare with the closed-form operators."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, 3)) * 2
    lam, s, rho = rng.uniform(0.2, 1.5), rng.uniform(0.3, 1.5), rng.uniform(0.1, 0.9)
    with jax.enable_x64(True):
        l1_out = np.asarray(prox_l1(x, lam, s))
        l2_out = np.asarray(prox_l2(x, lam, s))
        en_out = np.asarray(prox_elastic_net(x, lam, rho, s))
        group_out = np.asarray(prox_group_lasso(x, lam, s, group_axis=1))
    scalar_penalties = [
        (lambda z: lam * abs(z), l1_out),
        (lambda z: lam / 2 * z**2, l2_out),
        (lambda z: lam * (rho * abs(z) + (1 - rho) / 2 * z**2), en_out),
    ]
    for i, xi in np.ndenumerate(x):
        for penalty, expected in scalar_penalties:
            objective = lambda z, xi=xi, pen=penalty: pen(z) + (z - xi) ** 2 / (2 * s)
            np.testing.assert_allclose(_scalar_argmin(objective, xi), expected[i], atol=1e-6)
    weight = lam * math.sqrt(x.shape[0])
    for g in range(x.shape[1]):
        xg = x[:, g]
        objective = lambda z, xg=xg: weight * np.linalg.norm(z) + np.sum((z - xg) ** 2) / (2 * s)
        found = scipy.optimize.minimize(
            objective,
            xg,
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-15, "maxiter": 5000},
        ).x
        np.testing.assert_allclose(found, group_out[:, g], atol=1e-6)


@pytest.mark.parametrize("seed", range(2))
def test_prox_minimises_the_penalty_of_jaxreg_penalties(seed):
    """prox and penalties share one convention: F(z) = R(z) + ‖z − x‖²/(2s) is smallest at
    the prox (F is 1/s-strongly convex, so F(z) ≥ F(p) + ‖z − p‖²/(2s))."""
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(3, 4)))
    lam, s, rho = 0.8, 0.7, 0.4
    cases = [
        (lambda v: prox.l1(v, lam, s), lambda z: penalties.l1(z, lam)),
        (lambda v: prox.l2(v, lam, s), lambda z: penalties.l2(z, lam)),
        (lambda v: prox.elastic_net(v, lam, rho, s), lambda z: penalties.elastic_net(z, lam, rho)),
        (
            lambda v: prox.group_lasso(v, lam, s, group_axis=0),
            lambda z: penalties.group_lasso(z, lam, group_axis=0),
        ),
    ]
    with jax.enable_x64(True):
        x = x.astype(jnp.float64)
        perturbations = jnp.asarray(rng.normal(size=(64, 3, 4)) * 0.3)
        for prox_fn, penalty in cases:
            objective = jax.jit(
                jax.vmap(lambda z, pen=penalty: pen(z) + jnp.sum((z - x) ** 2) / (2 * s))
            )
            p = prox_fn(x)
            at_p = objective(p[None])[0]
            others = objective(p[None] + perturbations)
            gaps = np.sum(np.asarray(perturbations) ** 2, axis=(1, 2)) / (2 * s)
            assert np.all(others >= at_p + gaps - 1e-10)


# ----------------------------------------------------------------------------- projections


@PROPERTY
@given(
    x=MATRICES,
    a=_floats(-5, 5),
    width=_floats(0, 5),
    c=_normal_squares(_floats(0, 8)),
)
def test_projections_are_idempotent_and_inside_the_set(x, a, width, c):
    b = a + width
    with jax.enable_x64(True):
        p = np.asarray(project_box(x, a, b))
        assert np.all((p >= a) & (p <= b))
        np.testing.assert_array_equal(project_box(p, a, b), p)
        inside = (x >= a) & (x <= b)
        np.testing.assert_array_equal(p[inside], x[inside])

        for axis in (0, 1):
            p = np.asarray(project_max_norm(x, c, axis=axis))
            norms = np.linalg.norm(p, axis=axis)
            assert np.all(norms <= c * (1 + 1e-12) + 1e-300)
            np.testing.assert_allclose(project_max_norm(p, c, axis=axis), p, rtol=1e-12)
            inside = np.linalg.norm(x, axis=axis) <= c
            kept = np.take(p, np.flatnonzero(inside), axis=1 - axis)
            np.testing.assert_array_equal(kept, np.take(x, np.flatnonzero(inside), axis=1 - axis))


# ----------------------------------------------------------------------------- data and dtypes


@pytest.mark.parametrize(
    "operator",
    [
        lambda x, s: prox.l1(x, s),
        lambda x, s: prox.l2(x, s, scaling=0.5),
        lambda x, s: prox.elastic_net(x, s, 0.5),
        lambda x, s: prox.group_lasso(x, s, group_axis=1),
        lambda x, s: prox.box(x, -s, s),
        lambda x, s: prox.max_norm(x, s),
    ],
    ids=["l1", "l2", "elastic_net", "group", "box", "max_norm"],
)
def test_vmap_over_hyperparameter_traces_once(operator, trace_counter):
    x = jnp.asarray(np.random.default_rng(2).normal(size=(3, 4)), jnp.float32)
    counted = trace_counter(operator)
    swept = jax.jit(jax.vmap(counted, in_axes=(None, 0)))
    for values in ([0.1, 0.5, 2.0], [0.3, 1.0, 4.0]):
        out = swept(x, jnp.array(values))
        for k, value in enumerate(values):
            np.testing.assert_allclose(out[k], operator(x, value), rtol=1e-6, atol=1e-7)
    assert counted.count == 1


@pytest.mark.parametrize(
    "operator",
    [
        lambda x, s: prox.l1(x, s),
        lambda x, s: prox.l2(x, s),
        lambda x, s: prox.elastic_net(x, s, 0.3),
        lambda x, s: prox.group_lasso(x, s, group_axis=0),
        lambda x, s: prox.box(x, -s, s),
        lambda x, s: prox.max_norm(x, s, axis=0),
    ],
    ids=["l1", "l2", "elastic_net", "group", "box", "max_norm"],
)
def test_bfloat16_leaves_stay_bfloat16(operator):
    x16 = jnp.asarray(np.random.default_rng(3).normal(size=(8, 3)), jnp.bfloat16)
    x32 = x16.astype(jnp.float32)
    for strength in (0.4, jnp.float32(0.4)):
        out = operator({"w": x16, "v": x32}, strength)
        assert out["w"].dtype == jnp.bfloat16
        assert out["v"].dtype == jnp.float32
        np.testing.assert_allclose(out["w"].astype(jnp.float32), out["v"], rtol=2e-2, atol=2e-2)


# ----------------------------------------------------------------------------- bad input


def test_bad_inputs_name_the_argument():
    x = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}
    for bad in (-1.0, float("nan"), float("inf")):
        for fn in (prox.l1, prox.l2, lambda v, s: prox.elastic_net(v, s, 0.5)):
            with pytest.raises(ValueError, match="strength"):
                fn(x, bad)
        with pytest.raises(ValueError, match="strength"):
            prox.group_lasso(x, bad, group_axis=0)
    with pytest.raises(ValueError, match="strength"):
        prox.l1(x, {"w": 1.0})
    for bad_step in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="scaling"):
            prox.l1(x, 1.0, scaling=bad_step)
        with pytest.raises(ValueError, match="step_size"):
            prox.group_lasso(x, 1.0, bad_step, group_axis=0)
    for ratio in (-0.5, 1.01):
        with pytest.raises(ValueError, match="l1_ratio"):
            prox.elastic_net(x, 1.0, ratio)
    with pytest.raises(ValueError, match="lower"):
        prox.box(x, 1.0, -1.0)
    with pytest.raises(ValueError, match="lower"):
        prox.box(x, float("nan"), 1.0)
    with pytest.raises(ValueError, match="max_value"):
        prox.max_norm(x, -1.0)
    with pytest.raises(ValueError, match="group_axis"):
        prox.group_lasso(x, 1.0, group_axis=1)  # the bias is 1-D
    with pytest.raises(ValueError, match="joint"):
        prox.group_lasso(x, 1.0, group_axis=0, joint=True)  # 3 groups vs 2
    with pytest.raises(ValueError, match="strength"):
        prox.group_lasso(x, {"w": 1.0, "b": 2.0}, group_axis=-1, joint=True)

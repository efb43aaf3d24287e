"""Parameter penalties: closed forms, gradients (SPEC §1's gradient column), safety at zero,
homogeneity, per-leaf strengths, masks, dtypes, vmap without retracing, and bad input."""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from jax.test_util import check_grads

import jaxreg
from jaxreg import penalties


def _floats(low: float, high: float) -> st.SearchStrategy[float]:
    # No subnormals: XLA on CPU flushes them to zero, which is not what these tests are about.
    return st.floats(low, high, width=64, allow_subnormal=False)


PROPERTY = settings(max_examples=50, deadline=None)
SMALL_FLOATS = _floats(-10, 10)
MATRICES = hnp.arrays(np.float64, (4, 3), elements=SMALL_FLOATS)
SCALES = _floats(-5, 5)


def _rng_params(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "dense": {"w": rng.normal(size=(4, 3)), "b": rng.normal(size=3)},
        "out": {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=2)},
    }


def _as_jnp(tree):
    return jax.tree.map(jnp.asarray, tree)


def _np_group_lasso(w, lam, axis):
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    return lam * math.sqrt(moved.shape[1]) * np.linalg.norm(moved, axis=1).sum()


# ----------------------------------------------------------------------------- closed forms


def test_closed_form_values_float64():
    params = _rng_params()
    leaves = jax.tree.leaves(params)
    with jax.enable_x64(True):
        p = _as_jnp(params)
        np.testing.assert_allclose(
            penalties.l1(p, 0.3), 0.3 * sum(np.abs(x).sum() for x in leaves), rtol=1e-12
        )
        np.testing.assert_allclose(
            penalties.l2(p, 0.3), 0.15 * sum((x**2).sum() for x in leaves), rtol=1e-12
        )
        expected_en = 0.3 * sum(0.2 * np.abs(x).sum() + 0.4 * (x**2).sum() for x in leaves)
        np.testing.assert_allclose(penalties.elastic_net(p, 0.3, 0.2), expected_en, rtol=1e-12)
        assert penalties.l1(p, 0.3).dtype == jnp.float64


def test_elastic_net_endpoints_are_l1_and_l2():
    params = _as_jnp(_rng_params(1))
    np.testing.assert_allclose(
        penalties.elastic_net(params, 0.7, 1.0), penalties.l1(params, 0.7), rtol=1e-6
    )
    np.testing.assert_allclose(
        penalties.elastic_net(params, 0.7, 0.0), penalties.l2(params, 0.7), rtol=1e-6
    )


@pytest.mark.parametrize("group_axis", [0, 1, -1])
def test_group_lasso_closed_form(group_axis):
    w = np.random.default_rng(2).normal(size=(4, 3))
    with jax.enable_x64(True):
        value = penalties.group_lasso(jnp.asarray(w), 0.4, group_axis=group_axis)
    np.testing.assert_allclose(value, _np_group_lasso(w, 0.4, group_axis % 2), rtol=1e-12)


def test_group_lasso_per_leaf_axes_and_mask():
    params = _rng_params(3)
    axes = {"dense": {"w": 1, "b": 0}, "out": {"w": 0, "b": 0}}
    with jax.enable_x64(True):
        value = penalties.group_lasso(
            _as_jnp(params), 0.5, group_axis=axes, mask=jaxreg.masks.weights_only
        )
    expected = _np_group_lasso(params["dense"]["w"], 0.5, 1) + _np_group_lasso(
        params["out"]["w"], 0.5, 0
    )
    np.testing.assert_allclose(value, expected, rtol=1e-12)


def test_joint_group_lasso_across_leaves_with_different_shapes():
    # Three leaves with 3 groups each along different axes: group g = their slices g together.
    rng = np.random.default_rng(4)
    q, k, o = rng.normal(size=(5, 3, 2)), rng.normal(size=(4, 3)), rng.normal(size=(3, 2, 5))
    params = {"q": q, "k": k, "o": o}
    axes = {"q": 1, "k": 1, "o": 0}
    group_size = 10 + 4 + 10
    expected = sum(
        0.7
        * math.sqrt(group_size)
        * math.sqrt((q[:, g] ** 2).sum() + (k[:, g] ** 2).sum() + (o[g] ** 2).sum())
        for g in range(3)
    )
    with jax.enable_x64(True):
        value = penalties.group_lasso(_as_jnp(params), 0.7, group_axis=axes, joint=True)
    np.testing.assert_allclose(value, expected, rtol=1e-12)


ORDS = [1, 2, np.inf, "fro", "nuc"]


@pytest.mark.parametrize("ord", ORDS)
def test_norm_product_matches_numpy(ord):
    rng = np.random.default_rng(5)
    ws = [rng.normal(size=(4, 3)), rng.normal(size=(3, 5)), rng.normal(size=(5, 2))]
    with jax.enable_x64(True):
        value = penalties.norm_product([jnp.asarray(w) for w in ws], 0.3, ord=ord)
    expected = 0.3 * np.prod([np.linalg.norm(w, ord=ord) for w in ws])
    np.testing.assert_allclose(value, expected, rtol=1e-10)


def test_norm_product_one_ord_per_matrix_is_the_seeds_l1_times_l2():
    rng = np.random.default_rng(6)
    w1, w2 = rng.normal(size=(4, 3)), rng.normal(size=(3, 2))
    with jax.enable_x64(True):
        value = penalties.norm_product([jnp.asarray(w1), jnp.asarray(w2)], 2.0, ord=(1, 2))
    expected = 2.0 * np.abs(w1).sum(axis=0).max() * np.linalg.svd(w2, compute_uv=False)[0]
    np.testing.assert_allclose(value, expected, rtol=1e-10)


def test_norm_product_spectral_bounds_lipschitz_constant():
    # ord=2 bounds the Lipschitz constant of x -> relu(x W1) W2 (relu is 1-Lipschitz).
    rng = np.random.default_rng(7)
    w1, w2 = jnp.asarray(rng.normal(size=(4, 6))), jnp.asarray(rng.normal(size=(6, 3)))
    bound = penalties.norm_product([w1, w2], 1.0, ord=2)
    jacobians = jax.vmap(jax.jacobian(lambda x: jax.nn.relu(x @ w1) @ w2))(
        jnp.asarray(rng.normal(size=(20, 4)), jnp.float32)
    )
    spectral = np.linalg.norm(np.asarray(jacobians), ord=2, axis=(1, 2))
    assert np.all(spectral <= bound * (1 + 1e-5))
    assert spectral.max() > 0.2 * bound  # the bound is not vacuous here


def test_seeds_variants_are_plain_strengths():
    # SPEC §1: λ/(2m)Σ|θ| is l1 with λ/(2m); λ/(2m)Σθ² is l2 with λ/m; λΣθ² is l2 with 2λ.
    theta = np.array([0.5, -1.5, 2.0])
    lam, m = 0.8, 10
    with jax.enable_x64(True):
        t = jnp.asarray(theta)
        np.testing.assert_allclose(
            penalties.l1(t, lam / (2 * m)), lam / (2 * m) * np.abs(theta).sum()
        )
        np.testing.assert_allclose(penalties.l2(t, lam / m), lam / (2 * m) * (theta**2).sum())
        np.testing.assert_allclose(penalties.l2(t, 2 * lam), lam * (theta**2).sum())
        np.testing.assert_allclose(
            jax.grad(penalties.l1)(t, lam / (2 * m)), lam / (2 * m) * np.sign(theta)
        )


# ----------------------------------------------------------------------------- gradients


def test_check_grads_smooth_penalties():
    rng = np.random.default_rng(8)
    smooth = [
        lambda t: penalties.l2(t, 0.7),
        lambda t: penalties.elastic_net(t, 0.7, 0.3),
        lambda t: penalties.group_lasso(t, 0.7, group_axis=0),
        lambda t: penalties.group_lasso(
            {"a": t, "b": 2 * t.T}, 0.7, group_axis={"a": 0, "b": 1}, joint=True
        ),
        lambda t: penalties.norm_product([t, t.T], 0.5, ord="fro"),
        # Generic matrices have distinct singular values: the spectral norm is smooth there.
        lambda t: penalties.norm_product([t, t.T], 0.5, ord=2),
    ]
    with jax.enable_x64(True):
        # Entries away from 0, so that |θ| is smooth around them.
        theta = jnp.asarray(rng.uniform(0.5, 2.0, size=(3, 4)) * rng.choice([-1, 1], (3, 4)))
        for penalty in smooth:
            check_grads(jax.jit(penalty), (theta,), order=1)


def test_gradients_match_the_spec_column():
    theta = np.array([[1.5, -0.5, 0.0], [0.0, 2.0, -3.0]])
    lam, rho = 0.6, 0.25
    with jax.enable_x64(True):
        t = jnp.asarray(theta)
        np.testing.assert_allclose(jax.grad(penalties.l1)(t, lam), lam * np.sign(theta))
        np.testing.assert_allclose(jax.grad(penalties.l2)(t, lam), lam * theta)
        np.testing.assert_allclose(
            jax.grad(penalties.elastic_net)(t, lam, rho),
            lam * (rho * np.sign(theta) + (1 - rho) * theta),
        )
        # Group lasso with a zero group: λ√|g| θ_g/‖θ_g‖ on nonzero groups, 0 on the zero one.
        w = jnp.asarray([[3.0, 0.0, 1.0], [4.0, 0.0, -1.0]])
        grad = jax.grad(lambda x: penalties.group_lasso(x, lam, group_axis=1))(w)
        norms = np.linalg.norm(np.asarray(w), axis=0)
        expected = lam * math.sqrt(2) * np.asarray(w) / np.where(norms > 0, norms, 1)
        np.testing.assert_allclose(grad, expected, rtol=1e-12)
        # Spectral norm: ∂‖W‖₂/∂W = u₁v₁ᵀ (top singular pair); product rule for the rest.
        a = np.random.default_rng(9).normal(size=(4, 3))
        b = np.random.default_rng(10).normal(size=(3, 2))
        grad_a = jax.grad(lambda x: penalties.norm_product([x, jnp.asarray(b)], lam))(
            jnp.asarray(a)
        )
        u, s, vt = np.linalg.svd(a)
        expected_a = lam * np.linalg.norm(b, 2) * np.outer(u[:, 0], vt[0])
        np.testing.assert_allclose(grad_a, expected_a, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize(
    "penalty",
    [
        lambda p: penalties.l1(p, 1.0),
        lambda p: penalties.l2(p, 1.0),
        lambda p: penalties.elastic_net(p, 1.0, 0.5),
        lambda p: penalties.group_lasso(p, 1.0, group_axis=0),
        lambda p: penalties.group_lasso(p, 1.0, group_axis=0, joint=True),
        lambda p: penalties.norm_product([p["a"], p["b"]], 1.0, ord=2),
        lambda p: penalties.norm_product([p["a"], p["b"]], 1.0, ord="nuc"),
        lambda p: penalties.norm_product([p["a"], p["b"]], 1.0, ord=(1, "fro")),
        lambda p: penalties.norm_product([p["a"], p["b"]], 1.0, ord=np.inf),
    ],
    ids=["l1", "l2", "elastic_net", "group", "group_joint", "spectral", "nuc", "1_fro", "inf"],
)
def test_safe_at_exact_zeros(penalty):
    zeros = {"a": jnp.zeros((3, 2)), "b": jnp.zeros((3, 4))}
    value, grad = jax.value_and_grad(penalty)(zeros)
    assert value == 0
    # 0 is a subgradient of each of these at θ = 0 (a product of norms has a zero factor).
    for leaf in jax.tree.leaves(grad):
        np.testing.assert_array_equal(leaf, 0.0)


@pytest.mark.parametrize("ord", ORDS)
def test_single_matrix_norm_gradient_at_zero_is_a_subgradient(ord):
    # The subdifferential of a norm at 0 is the unit ball of its dual norm: the returned
    # gradient G must be finite and satisfy <G, W> <= ||W|| for every W.
    grad = np.asarray(
        jax.grad(lambda w: penalties.norm_product([w], 1.0, ord=ord))(jnp.zeros((3, 2)))
    )
    assert np.all(np.isfinite(grad))
    for w in np.random.default_rng(16).normal(size=(50, 3, 2)):
        assert np.sum(grad * w) <= np.linalg.norm(w, ord=ord) + 1e-5


def test_group_lasso_zero_group_among_nonzero_has_zero_gradient():
    w = jnp.array([[1.0, 0.0], [2.0, 0.0]])
    grad = jax.grad(lambda x: penalties.group_lasso(x, 1.0, group_axis=1))(w)
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[:, 1], 0.0)


# ----------------------------------------------------------------------------- properties


@PROPERTY
@given(theta=MATRICES, c=SCALES, lam=_floats(0, 5))
def test_nonnegative_and_homogeneous(theta, c, lam):
    with jax.enable_x64(True):
        t = jnp.asarray(theta)
        for fn, power in [
            (lambda x: penalties.l1(x, lam), 1),
            (lambda x: penalties.group_lasso(x, lam, group_axis=1), 1),
            (lambda x: penalties.norm_product([x, x.T], lam, ord=2), 2),
            (lambda x: penalties.l2(x, lam), 2),
        ]:
            base = float(fn(t))
            assert base >= 0
            np.testing.assert_allclose(
                float(fn(c * t)), abs(c) ** power * base, rtol=1e-9, atol=1e-9
            )
        assert float(penalties.elastic_net(t, lam, 0.3)) >= 0


@PROPERTY
@given(theta=MATRICES, lam=_floats(0, 5), rho=_floats(0, 1))
def test_elastic_net_is_the_convex_combination(theta, lam, rho):
    with jax.enable_x64(True):
        t = jnp.asarray(theta)
        combined = rho * penalties.l1(t, lam) + (1 - rho) * penalties.l2(t, lam)
        np.testing.assert_allclose(
            penalties.elastic_net(t, lam, rho), combined, rtol=1e-12, atol=1e-12
        )


# ----------------------------------------------------------------------------- data, not constants


@pytest.mark.parametrize(
    "penalty",
    [
        lambda p, s: penalties.l1(p, s),
        lambda p, s: penalties.l2(p, s),
        lambda p, s: penalties.elastic_net(p, s, 0.3),
        lambda p, s: penalties.group_lasso(p, s, group_axis=0),
        lambda p, s: penalties.norm_product([p["w"], p["w"].T], s, ord=2),
    ],
    ids=["l1", "l2", "elastic_net", "group", "norm_product"],
)
def test_vmap_over_strength_traces_once(penalty, trace_counter):
    params = {"w": jnp.asarray(np.random.default_rng(11).normal(size=(3, 2)), jnp.float32)}
    counted = trace_counter(penalty)
    swept = jax.jit(jax.vmap(counted, in_axes=(None, 0)))
    lambdas = jnp.array([0.0, 0.5, 2.0])
    values = swept(params, lambdas)
    values_again = swept(params, jnp.array([1.0, 3.0, 4.0]))
    assert counted.count == 1
    single = [float(penalty(params, float(s))) for s in lambdas]
    np.testing.assert_allclose(values, single, rtol=1e-6)
    np.testing.assert_allclose(values_again, np.array([1.0, 3.0, 4.0]) * single[1] / 0.5, rtol=1e-5)


def test_l1_ratio_may_be_traced():
    theta = jnp.array([1.0, -2.0])
    values = jax.vmap(lambda r: penalties.elastic_net(theta, 1.0, r))(jnp.array([0.0, 1.0]))
    np.testing.assert_allclose(values, [2.5, 3.0])


def test_per_leaf_strengths():
    params = _rng_params(12)
    strengths = {"dense": {"w": 0.5, "b": 0.0}, "out": {"w": 2.0, "b": 0.1}}
    with jax.enable_x64(True):
        value = penalties.l1(_as_jnp(params), strengths)
        grads = jax.grad(penalties.l2)(_as_jnp(params), strengths)
    expected = sum(
        s * np.abs(x).sum()
        for s, x in zip(jax.tree.leaves(strengths), jax.tree.leaves(params), strict=True)
    )
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    np.testing.assert_allclose(grads["out"]["w"], 2.0 * params["out"]["w"])
    np.testing.assert_array_equal(grads["dense"]["b"], 0.0)


@pytest.mark.parametrize(
    "mask",
    [
        {"dense": {"w": True, "b": False}, "out": {"w": True, "b": False}},
        jaxreg.masks.weights_only,
        lambda p: jax.tree.map(lambda x: x.ndim == 2, p),
    ],
    ids=["tree", "weights_only", "callable"],
)
def test_masks_select_leaves(mask):
    params = _as_jnp(_rng_params(13))
    weights_only = {"dense": {"w": params["dense"]["w"]}, "out": {"w": params["out"]["w"]}}
    for penalty in (penalties.l1, penalties.l2):
        np.testing.assert_allclose(
            penalty(params, 0.3, mask=mask), penalty(weights_only, 0.3), rtol=1e-6
        )
    grads = jax.grad(lambda p: penalties.elastic_net(p, 0.3, mask=mask))(params)
    np.testing.assert_array_equal(grads["dense"]["b"], 0.0)
    assert np.all(grads["dense"]["w"] != 0)


def test_mask_selecting_nothing_gives_zero():
    params = _as_jnp(_rng_params(14))
    mask = jax.tree.map(lambda _: False, params)
    assert float(penalties.l1(params, 1.0, mask=mask)) == 0.0
    assert float(penalties.group_lasso(params, 1.0, group_axis=0, mask=mask, joint=True)) == 0.0


def test_bfloat16_leaves():
    theta32 = jnp.asarray(np.random.default_rng(15).normal(size=(32, 4)), jnp.float32)
    theta16 = theta32.astype(jnp.bfloat16)
    exact = penalties.l1(theta16.astype(jnp.float32), 0.5)
    for penalty in (
        lambda t: penalties.l1(t, 0.5),
        lambda t: penalties.l2(t, 0.5),
        lambda t: penalties.group_lasso(t, 0.5, group_axis=1),
        lambda t: penalties.norm_product([t, t.T], 0.5, ord=2),
    ):
        value_and_grad = jax.jit(jax.value_and_grad(penalty))
        value, grad = value_and_grad(theta16)
        assert grad.dtype == jnp.bfloat16
        # Accumulated in float32: matches the float32 computation on the same (bf16) values.
        value32, grad32 = value_and_grad(theta16.astype(jnp.float32))
        np.testing.assert_allclose(value, value32, rtol=1e-5)
        np.testing.assert_allclose(grad.astype(jnp.float32), grad32, rtol=1e-2, atol=1e-2)
    np.testing.assert_allclose(penalties.l1(theta16, 0.5), exact, rtol=1e-6)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), {"w": -1.0, "b": 0.0}])
@pytest.mark.parametrize(
    "penalty",
    [
        penalties.l1,
        penalties.l2,
        penalties.elastic_net,
        lambda p, s: penalties.group_lasso(p, s, group_axis=0),
    ],
    ids=["l1", "l2", "elastic_net", "group"],
)
def test_bad_strength_raises(penalty, bad):
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    with pytest.raises(ValueError, match="strength"):
        penalty(params, bad)


def test_bad_inputs_name_the_argument():
    params = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}
    with pytest.raises(ValueError, match="strength"):
        penalties.l1(params, {"w": 1.0})  # strength tree does not match params
    with pytest.raises(ValueError, match="strength"):
        penalties.l2(params, jnp.ones(3))  # not a scalar
    with pytest.raises(ValueError, match="mask"):
        penalties.l1(params, 1.0, mask={"w": True})
    with pytest.raises(ValueError, match="mask"):
        penalties.l2(params, 1.0, mask=lambda p: [True, False])
    for ratio in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="l1_ratio"):
            penalties.elastic_net(params, 1.0, ratio)
    with pytest.raises(ValueError, match="group_axis"):
        penalties.group_lasso(params, 1.0, group_axis=2, mask=jaxreg.masks.weights_only)
    with pytest.raises(ValueError, match="group_axis"):
        penalties.group_lasso(params, 1.0, group_axis=1)  # the bias is 1-D
    with pytest.raises(TypeError, match="group_axis"):
        penalties.group_lasso(params, 1.0, group_axis=1.0)
    with pytest.raises(ValueError, match="joint"):
        penalties.group_lasso(params, 1.0, group_axis=0, joint=True)  # 2 groups vs 3
    with pytest.raises(ValueError, match="strength"):
        penalties.group_lasso(params, {"w": 1.0, "b": 1.0}, group_axis=1, joint=True)


def test_norm_product_bad_inputs():
    ws = [jnp.ones((2, 3)), jnp.ones((3, 2))]
    for bad_ord in (3, -1, "max", True, (1,), (1, 2, 2)):
        with pytest.raises(ValueError, match="ord"):
            penalties.norm_product(ws, 1.0, ord=bad_ord)
    with pytest.raises(ValueError, match="strength"):
        penalties.norm_product(ws, -1.0)
    with pytest.raises(ValueError, match="strength"):
        penalties.norm_product(ws, [1.0, 2.0])
    with pytest.raises(ValueError, match="strength"):
        penalties.norm_product(ws, {"a": 1.0})
    with pytest.raises(ValueError, match="weights"):
        penalties.norm_product([jnp.ones((2, 3, 4))], 1.0)
    with pytest.raises(TypeError, match="weights"):
        penalties.norm_product([], 1.0)
    # A single matrix is a sequence of one; ord=None is numpy's Frobenius default.
    np.testing.assert_allclose(penalties.norm_product(ws[0], 2.0, ord=None), 2 * math.sqrt(6))

"""Pytree helpers: validation of concrete values only, masks, per-leaf values, dtypes, safe
norms and group bookkeeping."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxreg import _groups, _tree


def test_checks_raise_on_concrete_values_and_name_the_argument():
    for bad in (-1.0, float("nan"), float("inf"), {"a": 1.0, "b": -2.0}):
        with pytest.raises(ValueError, match="alpha"):
            _tree.check_nonnegative(bad, "alpha")
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="step"):
            _tree.check_positive(bad, "step")
    for bad in (-0.1, 1.1, float("nan")):
        with pytest.raises(ValueError, match="rate"):
            _tree.check_unit_interval(bad, "rate")
    with pytest.raises(ValueError, match=r"rate must lie in \[0, 1\)"):
        _tree.check_unit_interval(1.0, "rate", closed_right=False)
    with pytest.raises(ValueError, match="lower"):
        _tree.check_bounds(1.0, 0.0)
    with pytest.raises(ValueError, match="lower"):
        _tree.check_bounds({"a": 0.0, "b": 2.0}, 1.0)
    with pytest.raises(ValueError, match="upper"):
        _tree.check_bounds(0.0, float("nan"))
    # Valid values pass silently.
    _tree.check_nonnegative({"a": 0.0, "b": 3.0}, "alpha")
    _tree.check_positive(1e-8, "step")
    _tree.check_unit_interval(1.0, "rate")
    _tree.check_bounds(jnp.array([-1.0, 0.0]), jnp.array([0.0, 0.0]))


def test_checks_let_tracers_through():
    @jax.jit
    def run(value):
        _tree.check_nonnegative(value, "alpha")
        _tree.check_positive(value, "step")
        _tree.check_unit_interval(value, "rate")
        _tree.check_bounds(value, -value)
        return value * 2

    np.testing.assert_allclose(run(-3.0), -6.0)  # no raise: the value is not known at trace time
    traced = []
    jax.jit(lambda v: traced.append(_tree.is_concrete(v)) or v)(1.0)
    assert traced == [False]
    assert _tree.is_concrete({"a": jnp.ones(2), "b": 1.0})


def test_resolve_mask():
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    assert _tree.resolve_mask(None, params) is None
    assert _tree.resolve_mask({"w": True, "b": False}, params) == [False, True]  # leaf order b, w
    assert _tree.resolve_mask(lambda p: jax.tree.map(lambda x: x.ndim == 1, p), params) == [
        True,
        False,
    ]
    with pytest.raises(ValueError, match="mask"):
        _tree.resolve_mask({"w": True}, params)
    with pytest.raises(ValueError, match="mask"):
        _tree.resolve_mask(lambda p: True, params)


def test_per_leaf():
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    assert _tree.per_leaf(0.5, params, "strength") == [0.5, 0.5]
    assert _tree.per_leaf({"w": 1.0, "b": 2.0}, params, "strength") == [2.0, 1.0]
    with pytest.raises(ValueError, match="strength"):
        _tree.per_leaf({"w": 1.0}, params, "strength")


def test_dtypes():
    bf16 = jnp.ones(3, jnp.bfloat16)
    assert _tree.as_leaf_dtype(0.5, bf16).dtype == jnp.bfloat16
    assert _tree.as_leaf_dtype(jnp.float32(0.5), bf16).dtype == jnp.bfloat16
    assert _tree.accumulation_dtype(bf16) == jnp.float32
    assert _tree.accumulation_dtype(jnp.ones(2, jnp.float16)) == jnp.float32
    with jax.enable_x64(True):
        assert _tree.accumulation_dtype(jnp.ones(2, jnp.float64)) == jnp.float64


def test_map_and_sum_leaves_respect_the_mask():
    params = {"a": jnp.array([1.0, -2.0]), "b": jnp.array([3.0])}
    doubled = _tree.map_leaves(lambda x, k: k * x, params, [2.0, 10.0], mask=[True, False])
    np.testing.assert_allclose(doubled["a"], [2.0, -4.0])
    np.testing.assert_allclose(doubled["b"], [3.0])
    total = _tree.sum_leaves(lambda x, k: k * jnp.sum(x), params, [2.0, 10.0])
    np.testing.assert_allclose(total, 2.0 * -1.0 + 10.0 * 3.0)
    none = _tree.sum_leaves(jnp.sum, params, mask=[False, False])
    assert float(none) == 0.0


def test_safe_norm_value_and_gradient():
    x = np.array([[3.0, 0.0], [4.0, 0.0]])
    np.testing.assert_allclose(_tree.safe_norm(jnp.asarray(x)), 5.0)
    np.testing.assert_allclose(_tree.safe_norm(jnp.asarray(x), axis=0), [5.0, 0.0])
    grad = jax.grad(lambda v: jnp.sum(_tree.safe_norm(v, axis=0)))(jnp.asarray(x))
    np.testing.assert_allclose(grad, [[0.6, 0.0], [0.8, 0.0]])  # x/‖x‖, and 0 at the zero column
    np.testing.assert_array_equal(jax.grad(_tree.safe_sqrt)(0.0), 0.0)
    with jax.enable_x64(True):
        check_grads(jax.jit(_tree.safe_norm), (jnp.asarray([[1.0, -2.0], [0.5, 3.0]]),), order=1)


def test_groups_bookkeeping():
    a, b = jnp.ones((2, 3)), jnp.full((3, 4, 1), 2.0)
    assert _groups.normalize_axis(a, -1) == 1
    with pytest.raises(ValueError, match="group_axis"):
        _groups.normalize_axis(a, 2)
    with pytest.raises(TypeError, match="group_axis"):
        _groups.normalize_axis(a, True)
    separate = _groups.leaf_groups([a, b], [1, 0], joint=False)
    assert [(axis, size) for axis, _, size in separate] == [(1, 2), (0, 4)]
    np.testing.assert_allclose(separate[1][1], [16.0, 16.0, 16.0])
    joint = _groups.leaf_groups([a, b], [1, 0], joint=True)
    assert [axis for axis, _, _ in joint] == [1, 0]
    for _, sq_norms, size in joint:
        np.testing.assert_allclose(sq_norms, [18.0, 18.0, 18.0])  # 2·1 + 4·4 per group
        assert size == 6
    with pytest.raises(ValueError, match="joint"):
        _groups.leaf_groups([a, b], [0, 0], joint=True)
    with pytest.raises(ValueError, match="strength"):
        _groups.check_joint_strength({"a": 1.0, "b": 1.0}, joint=True)
    assert _groups.expand_to_leaf(jnp.arange(4.0), b, 1).shape == (1, 4, 1)

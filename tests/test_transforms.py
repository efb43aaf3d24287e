"""jaxreg.transforms: each transform in an optax chain against a hand-computed numpy step."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxreg

LR = 0.1
L1_RATIO = 0.3


def _soft(x, threshold):
    return np.sign(x) * np.maximum(np.abs(x) - threshold, 0)


def _group_factor(norms, threshold):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norms > threshold, 1 - threshold / norms, 0.0)


# numpy references: new leaf after one step, from (hyperparameter, θ, g, leaf name). The landing
# transforms follow optax.sgd(LR), so they act on x = θ − LR·g.
def _ref_prox_l1(h, theta, g, name):
    return _soft(theta - LR * g, LR * h)


def _ref_elastic_net(h, theta, g, name):
    return _soft(theta - LR * g, LR * h * L1_RATIO) / (1 + LR * h * (1 - L1_RATIO))


GROUP_AXIS = {"w": 1, "b": 0}


def _ref_group_lasso(h, theta, g, name):
    x = theta - LR * g
    if GROUP_AXIS[name] == 1:  # columns of w are the groups, |g| = rows
        norms = np.linalg.norm(x, axis=0, keepdims=True)
        return x * _group_factor(norms, LR * h * np.sqrt(x.shape[0]))
    return x * _group_factor(np.abs(x), LR * h)  # each entry of b is a group of one


def _ref_clip(h, theta, g, name):
    return np.clip(theta - LR * g, -h, h)


def _ref_max_norm(h, theta, g, name):
    x = theta - LR * g
    norms = np.linalg.norm(x, axis=0, keepdims=True)
    return x * np.minimum(1.0, h / norms)


def _ref_add_l1_sign(h, theta, g, name):
    return theta - LR * (g + h * np.sign(theta))


# name -> (build(h, **kw) -> chain, numpy reference, three hyperparameter values)
CASES = {
    "prox_l1": (
        lambda h, **kw: optax.chain(optax.sgd(LR), jaxreg.prox_l1(h, LR, **kw)),
        _ref_prox_l1,
        [0.0, 2.0, 8.0],
    ),
    "prox_elastic_net": (
        lambda h, **kw: optax.chain(optax.sgd(LR), jaxreg.prox_elastic_net(h, L1_RATIO, LR, **kw)),
        _ref_elastic_net,
        [0.0, 3.0, 20.0],
    ),
    "prox_group_lasso": (
        lambda h, **kw: optax.chain(
            optax.sgd(LR), jaxreg.prox_group_lasso(h, LR, group_axis=GROUP_AXIS, **kw)
        ),
        _ref_group_lasso,
        [0.0, 3.0, 8.0],
    ),
    "clip_params": (
        lambda h, **kw: optax.chain(optax.sgd(LR), jaxreg.clip_params(-h, h, **kw)),
        _ref_clip,
        [0.2, 0.5, 3.0],
    ),
    "max_norm": (
        lambda h, **kw: optax.chain(optax.sgd(LR), jaxreg.max_norm(h, axis=0, **kw)),
        _ref_max_norm,
        [0.5, 1.0, 10.0],
    ),
    "add_l1_sign": (
        lambda h, **kw: optax.chain(jaxreg.add_l1_sign(h, **kw), optax.sgd(LR)),
        _ref_add_l1_sign,
        [0.0, 0.5, 2.0],
    ),
}


def _problem(dtype=np.float32):
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(4, 3)), "b": rng.normal(size=(3,))}
    grads = {"w": rng.normal(size=(4, 3)), "b": rng.normal(size=(3,))}
    params["w"][1, 2] = 0.0  # sign(0) = 0 for add_l1_sign
    cast = lambda tree: {k: jnp.asarray(v, dtype) for k, v in tree.items()}
    return cast(params), cast(grads)


def _step(tx, params, grads):
    updates, _ = tx.update(grads, tx.init(params), params)
    return optax.apply_updates(params, updates), updates


def _expected(ref, h, params, grads, mask=None):
    out = {}
    for name in params:
        theta = np.asarray(params[name], np.float64)
        g = np.asarray(grads[name], np.float64)
        if mask is None or mask[name]:
            out[name] = ref(h, theta, g, name)
        else:
            out[name] = theta - LR * g  # masked out: the plain sgd step
    return out


def _assert_tree_close(actual, expected, **tol):
    for name in expected:
        np.testing.assert_allclose(np.asarray(actual[name], np.float64), expected[name], **tol)


@pytest.mark.parametrize("case", CASES)
def test_one_step_matches_numpy(case):
    build, ref, values = CASES[case]
    params, grads = _problem()
    for h in values:
        new, _ = _step(build(h), params, grads)
        expected = _expected(ref, h, params, grads)
        _assert_tree_close(new, expected, rtol=1e-5, atol=1e-6)
        if case.startswith("prox"):  # the proximal steps land on exact zeros
            for name in expected:
                np.testing.assert_array_equal(np.asarray(new[name]) == 0, expected[name] == 0)


@pytest.mark.parametrize("case", CASES)
def test_vmap_over_hyperparameter_traces_once(case, trace_counter):
    build, ref, values = CASES[case]
    params, grads = _problem()
    counted = trace_counter(lambda h: _step(build(h), params, grads)[0])
    train_grid = jax.jit(jax.vmap(counted))
    for grid in (values, values[::-1]):  # new values: no retrace
        out = train_grid(jnp.asarray(grid, jnp.float32))
        for k, h in enumerate(grid):
            member = {name: leaf[k] for name, leaf in out.items()}
            _assert_tree_close(member, _expected(ref, h, params, grads), rtol=1e-5, atol=1e-6)
    assert counted.count == 1


@pytest.mark.parametrize("case", CASES)
def test_bfloat16_stays_bfloat16(case):
    build, ref, values = CASES[case]
    params, grads = _problem(jnp.bfloat16)
    new, updates = _step(build(values[1]), params, grads)
    for name in params:
        assert updates[name].dtype == jnp.bfloat16
        assert new[name].dtype == jnp.bfloat16
    _assert_tree_close(new, _expected(ref, values[1], params, grads), rtol=0.05, atol=0.05)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(
    "mask", [{"w": True, "b": False}, jaxreg.masks.weights_only], ids=["tree", "callable"]
)
def test_mask_passes_unselected_leaves_through(case, mask):
    build, ref, values = CASES[case]
    params, grads = _problem()
    new, _ = _step(build(values[1], mask=mask), params, grads)
    expected = _expected(ref, values[1], params, grads, mask={"w": True, "b": False})
    _assert_tree_close(new, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_mask_must_match_params(case):
    build, _, values = CASES[case]
    params, grads = _problem()
    tx = build(values[1], mask={"w": True})
    with pytest.raises(ValueError, match="mask"):
        tx.init(params)


@pytest.mark.parametrize("case", CASES)
def test_update_without_params_is_an_error(case):
    build, _, values = CASES[case]
    params, grads = _problem()
    tx = build(values[1])
    state = tx.init(params)
    with pytest.raises(ValueError, match="params"):
        tx.update(grads, state)


def test_optax_masked_composes_like_mask_argument():
    params, grads = _problem()
    mask = {"w": True, "b": False}
    via_optax = optax.chain(optax.sgd(LR), optax.masked(jaxreg.prox_l1(2.0, LR), mask))
    new, _ = _step(via_optax, params, grads)
    _assert_tree_close(new, _expected(_ref_prox_l1, 2.0, params, grads, mask), rtol=1e-5)


def test_per_leaf_strength():
    params, grads = _problem()
    tx = optax.chain(optax.sgd(LR), jaxreg.prox_l1({"w": 5.0, "b": 0.0}, LR))
    new, _ = _step(tx, params, grads)
    np.testing.assert_allclose(new["w"], _ref_prox_l1(5.0, params["w"], grads["w"], "w"), 1e-5)
    np.testing.assert_allclose(new["b"], params["b"] - LR * grads["b"], 1e-5)
    with pytest.raises(ValueError, match="strength"):
        jaxreg.prox_l1({"w": 5.0}, LR).init(params)


def test_add_l1_sign_coupled_and_decoupled_with_adam():
    params, grads = _problem()
    l1_grad = jax.tree.map(lambda p: 0.3 * jnp.sign(p), params)
    coupled = optax.chain(jaxreg.add_l1_sign(0.3), optax.adam(LR))
    adam_on_penalized = optax.adam(LR)
    expected, _ = _step(adam_on_penalized, params, jax.tree.map(jnp.add, grads, l1_grad))
    _assert_tree_close(_step(coupled, params, grads)[0], expected, rtol=1e-6)

    decoupled = optax.chain(
        optax.scale_by_adam(), jaxreg.add_l1_sign(0.3), optax.scale_by_learning_rate(LR)
    )
    direction, _ = optax.scale_by_adam().update(grads, optax.scale_by_adam().init(params))
    expected = jax.tree.map(lambda p, d, s: p - LR * (d + s), params, direction, l1_grad)
    _assert_tree_close(_step(decoupled, params, grads)[0], expected, rtol=1e-6)


def test_schedules_follow_the_step_count():
    params, grads = _problem()
    strength = lambda count: 1.0 + count  # 1, 2, 3 over three steps
    lr = lambda count: LR / (1 + count)
    tx = optax.chain(optax.sgd(lr), jaxreg.prox_l1(strength, step_size=lr))
    state = tx.init(params)
    theta = {k: np.asarray(v, np.float64) for k, v in params.items()}
    current = params
    step = jax.jit(tx.update)
    for t in range(3):
        updates, state = step(grads, state, current)
        current = optax.apply_updates(current, updates)
        s = LR / (1 + t)
        theta = {k: _soft(v - s * np.asarray(grads[k]), s * (1.0 + t)) for k, v in theta.items()}
    _assert_tree_close(current, theta, rtol=1e-5, atol=1e-6)


def test_schedule_value_is_validated():
    params, grads = _problem()
    tx = jaxreg.add_l1_sign(lambda count: -1.0 + 0 * count)
    with pytest.raises(ValueError, match="strength"):
        tx.update(grads, tx.init(params), params)


def test_inject_hyperparams_changes_strength_without_retrace(trace_counter):
    params, grads = _problem()
    tx = optax.chain(
        optax.sgd(LR), optax.inject_hyperparams(jaxreg.prox_l1)(strength=0.0, step_size=LR)
    )

    def step(state):
        updates, _ = tx.update(grads, state, params)
        return optax.apply_updates(params, updates)

    counted = trace_counter(step)
    jitted = jax.jit(counted)
    state = tx.init(params)
    for strength in (0.0, 2.0, 8.0):
        old = state[1].hyperparams["strength"]
        state[1].hyperparams["strength"] = jnp.asarray(strength, old.dtype)
        expected = _expected(_ref_prox_l1, strength, params, grads)
        _assert_tree_close(jitted(state), expected, rtol=1e-5, atol=1e-6)
    assert counted.count == 1


def test_inject_hyperparams_group_lasso_needs_static_group_axis():
    params, grads = _problem()
    injected = optax.inject_hyperparams(jaxreg.prox_group_lasso, static_args=("group_axis",))
    tx = optax.chain(optax.sgd(LR), injected(strength=3.0, step_size=LR, group_axis=GROUP_AXIS))
    new, _ = _step(tx, params, grads)
    _assert_tree_close(new, _expected(_ref_group_lasso, 3.0, params, grads), rtol=1e-5)
    w_params = {"w": params["w"]}
    bare = optax.inject_hyperparams(jaxreg.prox_group_lasso)(1.0, LR, group_axis=1)
    with pytest.raises(TypeError, match="static_args"):
        bare.init(w_params)


def test_group_axis_alias():
    params, grads = _problem()
    w = {"w": params["w"]}
    g = {"w": grads["w"]}
    via_alias = optax.chain(optax.sgd(LR), jaxreg.prox_group_lasso(3.0, LR, axis=1))
    expected = {"w": _ref_group_lasso(3.0, np.asarray(w["w"]), np.asarray(g["w"]), "w")}
    _assert_tree_close(_step(via_alias, w, g)[0], expected, rtol=1e-5)
    with pytest.raises(TypeError, match="group_axis"):
        jaxreg.prox_group_lasso(1.0, LR, axis=1, group_axis=1)
    with pytest.raises(TypeError, match="group_axis"):
        jaxreg.prox_group_lasso(1.0, LR)
    with pytest.raises(ValueError, match="group_axis"):
        jaxreg.prox_group_lasso(1.0, LR, group_axis=2).init(w)


def _joint_problem():
    rng = np.random.default_rng(1)
    # One attention-like unit: 3 heads; head h is column h of q and row h of o.
    params = {"q": rng.normal(size=(2, 3)), "o": rng.normal(size=(3, 5)), "b": rng.normal(size=7)}
    params["q"][:, 1] *= 0.01
    params["o"][1, :] *= 0.01
    grads = jax.tree.map(np.zeros_like, params)
    return jax.tree.map(jnp.asarray, params), jax.tree.map(jnp.asarray, grads)


def test_joint_group_lasso_zeroes_whole_groups_across_leaves():
    params, grads = _joint_problem()
    mask = {"q": True, "o": True, "b": False}  # b (7 entries) would not fit the 3 groups
    strength = 1.0
    tx = optax.chain(
        optax.sgd(LR),
        jaxreg.prox_group_lasso(
            strength, LR, group_axis={"q": 1, "o": 0, "b": 0}, joint=True, mask=mask
        ),
    )
    new, _ = _step(tx, params, grads)
    q, o = np.asarray(params["q"], np.float64), np.asarray(params["o"], np.float64)
    norms = np.sqrt(np.sum(q**2, axis=0) + np.sum(o**2, axis=1))  # joint norm per head
    factor = _group_factor(norms, LR * strength * np.sqrt(2 + 5))
    np.testing.assert_allclose(new["q"], q * factor[None, :], rtol=1e-5)
    np.testing.assert_allclose(new["o"], o * factor[:, None], rtol=1e-5)
    assert np.all(np.asarray(new["q"])[:, 1] == 0) and np.all(np.asarray(new["o"])[1] == 0)
    assert np.all(np.asarray(new["q"])[:, [0, 2]] != 0)
    np.testing.assert_array_equal(new["b"], params["b"])
    unmasked = jaxreg.prox_group_lasso(strength, LR, group_axis=0, joint=True)
    with pytest.raises(ValueError, match="group"):
        unmasked.init({"o": params["o"], "b": params["b"]})


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: jaxreg.add_l1_sign(-1.0), "strength"),
        (lambda: jaxreg.prox_l1(-0.1, LR), "strength"),
        (lambda: jaxreg.prox_l1(float("nan"), LR), "strength"),
        (lambda: jaxreg.prox_l1(float("inf"), LR), "strength"),
        (lambda: jaxreg.prox_l1(jnp.asarray(-1.0), LR), "strength"),
        (lambda: jaxreg.prox_l1(0.1, 0.0), "step_size"),
        (lambda: jaxreg.prox_l1(0.1, -LR), "step_size"),
        (lambda: jaxreg.prox_elastic_net(0.1, 1.5, LR), "l1_ratio"),
        (lambda: jaxreg.prox_elastic_net(0.1, -0.1, LR), "l1_ratio"),
        (lambda: jaxreg.prox_elastic_net(-0.1, 0.5, LR), "strength"),
        (lambda: jaxreg.prox_elastic_net(0.1, 0.5, 0.0), "step_size"),
        (lambda: jaxreg.prox_group_lasso(-1.0, LR, group_axis=0), "strength"),
        (lambda: jaxreg.prox_group_lasso(1.0, 0.0, group_axis=0), "step_size"),
        (lambda: jaxreg.clip_params(1.0, -1.0), "lower"),
        (lambda: jaxreg.clip_params(float("nan"), 1.0), "lower"),
        (lambda: jaxreg.max_norm(-1.0), "max_value"),
    ],
)
def test_bad_hyperparameters_raise_naming_the_argument(make, name):
    with pytest.raises(ValueError, match=name):
        make()


@settings(max_examples=25, deadline=None)
@given(
    x=hnp.arrays(np.float32, (3, 4), elements=st.floats(-10, 10, width=32)),
    cap=st.floats(0.1, 5.0),
)
def test_projections_land_inside_and_are_idempotent(x, cap):
    params = jnp.asarray(x)
    zero = jnp.zeros_like(params)
    clip_inside = lambda p: np.all(np.abs(p) <= np.float32(cap))
    norm_inside = lambda p: np.all(np.linalg.norm(p, axis=0) <= cap * (1 + 1e-5))
    for tx, inside, rtol in (
        (jaxreg.clip_params(-cap, cap), clip_inside, 0),  # exactly inside, exactly idempotent
        (jaxreg.max_norm(cap, axis=0), norm_inside, 1e-5),  # up to float32 rounding
    ):
        landed, _ = _step(tx, params, zero)
        assert inside(np.asarray(landed))
        again, _ = _step(tx, landed, zero)
        np.testing.assert_allclose(again, landed, rtol=rtol, atol=0)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_clip_params_lands_inside_the_box_despite_rounding(dtype):
    # Far outside a small box, θ + (clip(θ + u) − θ) rounds past the bound unless corrected.
    rng = np.random.default_rng(2)
    params = jnp.asarray(rng.normal(size=2000) * rng.choice([0.01, 1.0, 100.0], 2000), dtype)
    updates = jnp.asarray(rng.normal(size=2000), dtype)
    tx = jaxreg.clip_params(-0.1, 0.3)
    new = optax.apply_updates(params, tx.update(updates, tx.init(params), params)[0])
    new = np.asarray(new, np.float64)
    lower, upper = np.float64(dtype(-0.1)), np.float64(dtype(0.3))
    assert np.all((new >= lower) & (new <= upper))
    target = np.clip(np.asarray(params, np.float64) + np.asarray(updates, np.float64), -0.1, 0.3)
    ulp = np.float64(jnp.finfo(dtype).eps) * np.maximum(np.abs(np.asarray(params, np.float64)), 1)
    assert np.all(np.abs(new - target) <= 4 * ulp)


def test_max_norm_over_several_axes_and_with_inject_hyperparams():
    rng = np.random.default_rng(3)
    kernel = rng.normal(size=(3, 3, 2, 4))  # conv kernel [h, w, in, out]: one norm per out
    norms = np.sqrt(np.sum(kernel**2, axis=(0, 1, 2), keepdims=True))
    expected = kernel * np.minimum(1.0, 1.5 / norms)
    params = jnp.asarray(kernel, jnp.float32)
    for tx in (
        jaxreg.max_norm(1.5, axis=(0, 1, 2)),
        optax.inject_hyperparams(jaxreg.max_norm, static_args=("axis",))(1.5, axis=(0, 1, 2)),
    ):
        landed, _ = _step(tx, params, jnp.zeros_like(params))
        np.testing.assert_allclose(landed, expected, rtol=1e-5)
    with pytest.raises(TypeError, match="static_args"):
        optax.inject_hyperparams(jaxreg.max_norm)(1.5).init(params)


@pytest.mark.parametrize(
    ("transform", "penalty"),
    [
        (jaxreg.prox_l1(2.0, LR), lambda z: jaxreg.penalties.l1(z, 2.0)),
        (
            jaxreg.prox_elastic_net(3.0, L1_RATIO, LR),
            lambda z: jaxreg.penalties.elastic_net(z, 3.0, L1_RATIO),
        ),
        (
            jaxreg.prox_group_lasso(3.0, LR, group_axis=GROUP_AXIS),
            lambda z: jaxreg.penalties.group_lasso(z, 3.0, group_axis=GROUP_AXIS),
        ),
    ],
    ids=["l1", "elastic_net", "group_lasso"],
)
def test_landing_point_minimizes_the_penalty_prox_objective(transform, penalty):
    # Cross-check with jaxreg.penalties: θ + u′ minimizes R(z) + ‖z − (θ + u)‖² / (2·step).
    with jax.enable_x64(True):
        params, grads = _problem(np.float64)
        target = jax.tree.map(lambda p, g: p - LR * g, params, grads)
        landed, _ = _step(optax.chain(optax.sgd(LR), transform), params, grads)

        def objective(z):
            squares = jax.tree.map(lambda a, b: jnp.sum((a - b) ** 2), z, target)
            return penalty(z) + sum(jax.tree.leaves(squares)) / (2 * LR)

        best = objective(landed)
        rng = np.random.default_rng(4)
        for _ in range(20):
            nudged = jax.tree.map(lambda z: z + 1e-3 * rng.normal(size=z.shape), landed)
            assert objective(nudged) >= best - 1e-12


def test_add_l1_sign_is_the_gradient_of_the_l1_penalty():
    params, grads = _problem()
    params = jax.tree.map(lambda p: jnp.where(p == 0, 0.5, p), params)  # differentiable point
    tx = jaxreg.add_l1_sign(0.7)
    updates, _ = tx.update(grads, tx.init(params), params)
    expected = jax.tree.map(jnp.add, grads, jax.grad(lambda p: jaxreg.penalties.l1(p, 0.7))(params))
    _assert_tree_close(updates, jax.tree.map(np.asarray, expected), rtol=1e-6)

"""Regularizer objects: each view against closed forms (numpy), against the function facades and
the named transforms, the dual norm against its defining property (the smallest strength at
which a proximal step from zero stays at zero), pytree behaviour (jit, vmap, one trace) and
masks on Equinox / Flax trees."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxreg
from jaxreg import penalties, prox
from jaxreg.regularizers import L1, L2, Box, ElasticNet, GroupLasso, MaxNorm, Regularizer

RNG = np.random.default_rng(0)
W = RNG.normal(size=(4, 3)).astype(np.float32)
B = RNG.normal(size=3).astype(np.float32)
PARAMS = {"w": jnp.asarray(W), "b": jnp.asarray(B)}
WEIGHTS = {"w": True, "b": False}


def _soft(x, t):
    return np.sign(x) * np.maximum(np.abs(x) - t, 0)


# ----------------------------------------------------------------------------- closed forms


def test_values_match_closed_forms():
    np.testing.assert_allclose(
        L1(0.3).value(PARAMS), 0.3 * (np.abs(W).sum() + np.abs(B).sum()), rtol=1e-6
    )
    np.testing.assert_allclose(L2(0.3, mask=WEIGHTS).value(PARAMS), 0.15 * np.sum(W**2), rtol=1e-6)
    enet = 0.3 * (0.25 * np.abs(W).sum() + 0.75 / 2 * np.sum(W**2))
    np.testing.assert_allclose(ElasticNet(0.3, 0.25, mask=WEIGHTS).value(PARAMS), enet, rtol=1e-6)
    groups = np.sqrt(4) * np.linalg.norm(W, axis=0).sum()  # columns: 3 groups of 4
    np.testing.assert_allclose(
        GroupLasso(0.3, group_axis=1, mask=WEIGHTS).value(PARAMS), 0.3 * groups, rtol=1e-6
    )
    assert float(Box(-5.0, 5.0).value(PARAMS)) == 0.0
    assert float(Box(-0.1, 0.1).value(PARAMS)) == np.inf
    assert float(MaxNorm(10.0).value(PARAMS)) == 0.0
    assert float(MaxNorm(0.1).value(PARAMS)) == np.inf


def test_prox_match_closed_forms_and_leave_unmasked_leaves_alone():
    s = 0.5
    out = L1(0.4, mask=WEIGHTS).prox(PARAMS, s)
    np.testing.assert_allclose(out["w"], _soft(W, 0.2), rtol=1e-6)
    np.testing.assert_array_equal(out["b"], B)
    out = ElasticNet(0.4, 0.5).prox(PARAMS, s)
    np.testing.assert_allclose(out["w"], _soft(W, 0.1) / (1 + 0.1), rtol=1e-6)
    np.testing.assert_allclose(L2(0.4).prox(PARAMS, s)["b"], B / 1.2, rtol=1e-6)
    norms = np.linalg.norm(W, axis=0)
    factor = np.maximum(0, 1 - s * 0.6 * 2 / norms)
    out = GroupLasso(0.6, group_axis=1, mask=WEIGHTS).prox(PARAMS, s)
    np.testing.assert_allclose(out["w"], W * factor, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(out["b"], B)
    np.testing.assert_array_equal(Box(-0.2, 0.3).prox(PARAMS)["w"], np.clip(W, -0.2, 0.3))
    capped = MaxNorm(0.5, axis=0).prox(PARAMS)["w"]
    np.testing.assert_allclose(capped, W * np.minimum(1, 0.5 / norms), rtol=1e-6)


def test_per_coordinate_steps_are_a_diagonal_metric():
    """One step per coordinate: elementwise proxes use each; groups and units use their
    smallest; shared_scale gives each group (unit) its largest scale."""
    steps = {"w": jnp.asarray(RNG.uniform(0.1, 1.0, size=W.shape), jnp.float32), "b": 0.5}
    s = np.asarray(steps["w"])
    out = L1(0.4).prox(PARAMS, steps)
    np.testing.assert_allclose(out["w"], _soft(W, 0.4 * s), rtol=1e-6)
    np.testing.assert_allclose(out["b"], _soft(B, 0.2), rtol=1e-6)
    enet = ElasticNet(0.4, 0.5, mask=WEIGHTS).prox(PARAMS, steps)["w"]
    np.testing.assert_allclose(enet, _soft(W, 0.2 * s) / (1 + 0.2 * s), rtol=1e-6)
    norms = np.linalg.norm(W, axis=0)
    smallest = s.min(axis=0)
    factor = np.maximum(0, 1 - smallest * 0.6 * 2 / norms)
    out = GroupLasso(0.6, group_axis=1, mask=WEIGHTS).prox(PARAMS, steps)
    np.testing.assert_allclose(out["w"], W * factor, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(out["b"], B)
    shared = GroupLasso(1.0, group_axis=1, mask=WEIGHTS).shared_scale(steps)
    np.testing.assert_array_equal(np.broadcast_to(shared["w"], W.shape),
                                  np.broadcast_to(s.max(axis=0), W.shape))  # fmt: skip
    assert shared["b"] == 0.5
    units = MaxNorm(1.0, axis=1, mask=WEIGHTS).shared_scale(steps)["w"]
    unit_max = np.broadcast_to(s.max(axis=1, keepdims=True), W.shape)
    np.testing.assert_array_equal(np.broadcast_to(units, W.shape), unit_max)
    assert L1(1.0).shared_scale(steps) is steps
    with pytest.raises(ValueError, match="step_size"):
        L1(0.4).prox(PARAMS, {"w": -s, "b": 0.5})


@pytest.mark.parametrize(
    ("regularizer", "facade_value", "facade_prox"),
    [
        (L1(0.3, mask=WEIGHTS), lambda p: penalties.l1(p, 0.3, mask=WEIGHTS), None),
        (L1(0.3), lambda p: penalties.l1(p, 0.3), lambda p: prox.l1(p, 0.3, 0.5)),
        (L2(0.3), lambda p: penalties.l2(p, 0.3), lambda p: prox.l2(p, 0.3, 0.5)),
        (
            ElasticNet(0.3, 0.7),
            lambda p: penalties.elastic_net(p, 0.3, 0.7),
            lambda p: prox.elastic_net(p, 0.3, 0.7, 0.5),
        ),
        (
            GroupLasso(0.3, group_axis=-1, joint=True),
            lambda p: penalties.group_lasso(p, 0.3, group_axis=-1, joint=True),
            lambda p: prox.group_lasso(p, 0.3, 0.5, group_axis=-1, joint=True),
        ),
        (Box(-0.2, 0.3), None, lambda p: prox.box(p, -0.2, 0.3)),
        (MaxNorm(0.5, axis=0), None, lambda p: prox.max_norm(p, 0.5, axis=0)),
    ],
)
def test_facades_equal_the_objects(regularizer, facade_value, facade_prox):
    if facade_value is not None:
        assert float(regularizer.value(PARAMS)) == float(facade_value(PARAMS))
    if facade_prox is not None:
        expected = facade_prox(PARAMS)
        for name in ("w", "b"):
            np.testing.assert_array_equal(regularizer.prox(PARAMS, 0.5)[name], expected[name])


def test_gradient_of_value_is_the_subgradient():
    grad = jax.grad(ElasticNet(0.3, 0.25).value)(PARAMS)
    np.testing.assert_allclose(grad["w"], 0.3 * (0.25 * np.sign(W) + 0.75 * W), rtol=1e-6)
    zero = {"w": jnp.zeros((4, 3)), "b": jnp.zeros(3)}
    grad = jax.grad(GroupLasso(1.0, group_axis=1, mask=WEIGHTS).value)(zero)
    assert np.all(np.isfinite(grad["w"])) and np.all(grad["w"] == 0)


# ----------------------------------------------------------------------------- dual norms

DUAL_CASES = [
    L1(1.0, mask=WEIGHTS),
    L1({"w": 2.0, "b": 0.5}),
    ElasticNet(1.0, 0.3),
    GroupLasso(1.0, group_axis=1, mask=WEIGHTS),
    GroupLasso(1.0, group_axis=0),
    GroupLasso(1.0, group_axis=-1, joint=True),
]


def _scaled(regularizer, factor):
    return regularizer.replace(strength=jax.tree.map(lambda s: s * factor, regularizer.strength))


@pytest.mark.parametrize("regularizer", DUAL_CASES, ids=repr)
def test_dual_norm_is_the_smallest_strength_that_keeps_zero(regularizer):
    """From θ = 0, a proximal step with gradient g lands on 0 for multiplier t ≥ dual_norm(g)
    and not for t slightly below: the definition of λ_max, checked by stepping."""
    with jax.enable_x64(True):
        grads = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), PARAMS)
        t = float(regularizer.dual_norm(grads))
        step = 0.1
        start = jax.tree.map(lambda g: -step * g, grads)
        selected = regularizer.selection(grads)

        def penalized_leaves(tree):
            return [
                leaf for leaf, keep in zip(jax.tree.leaves(tree), selected, strict=True) if keep
            ]

        at = _scaled(regularizer, t * (1 + 1e-9)).prox(start, step)
        assert all(np.all(np.asarray(leaf) == 0) for leaf in penalized_leaves(at))
        below = _scaled(regularizer, t * 0.99).prox(start, step)
        assert any(np.any(np.asarray(leaf) != 0) for leaf in penalized_leaves(below))


def test_dual_norm_closed_forms_and_errors():
    np.testing.assert_allclose(L1(1.0).dual_norm(PARAMS), max(np.abs(W).max(), np.abs(B).max()))
    np.testing.assert_allclose(
        ElasticNet(1.0, 0.5, mask=WEIGHTS).dual_norm(PARAMS), np.abs(W).max() / 0.5, rtol=1e-6
    )
    np.testing.assert_allclose(
        GroupLasso(1.0, group_axis=1, mask=WEIGHTS).dual_norm(PARAMS),
        np.max(np.linalg.norm(W, axis=0) / 2),
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="l1_ratio"):
        ElasticNet(1.0, 0.0).dual_norm(PARAMS)
    for smooth_or_set in (L2(1.0), Box(-1.0, 1.0), MaxNorm(1.0)):
        with pytest.raises(TypeError, match="no dual norm"):
            smooth_or_set.dual_norm(PARAMS)


def test_dual_norm_is_traceable_in_float64():
    with jax.enable_x64(True):
        grads = jnp.asarray(W, jnp.float64)
        value = jax.jit(lambda reg, g: reg.dual_norm(g))(L1(1.0), grads)
        assert value.dtype == jnp.float64 and value.shape == ()
        np.testing.assert_allclose(value, np.abs(W.astype(np.float64)).max(), rtol=1e-15)


# ----------------------------------------------------------------------------- pytrees


def test_hyperparameters_are_leaves_and_structure_is_static():
    reg = GroupLasso(0.5, group_axis={"w": 1, "b": 0}, mask=WEIGHTS)
    assert jax.tree.leaves(reg) == [0.5]
    same_structure = GroupLasso(2.0, group_axis={"w": 1, "b": 0}, mask=dict(WEIGHTS))
    assert jax.tree.structure(reg) == jax.tree.structure(same_structure)
    assert jax.tree.structure(reg) != jax.tree.structure(reg.replace(joint=True))


def test_jit_with_two_strengths_traces_once(trace_counter):
    counted = trace_counter(lambda reg, p: reg.prox(p, 0.1))
    fn = jax.jit(counted)
    first = fn(ElasticNet(0.5, 0.5, mask=WEIGHTS), PARAMS)
    second = fn(ElasticNet(2.0, 0.2, mask=dict(WEIGHTS)), PARAMS)
    assert counted.count == 1
    np.testing.assert_allclose(second["w"], prox.elastic_net(W, 2.0, 0.2, 0.1), rtol=1e-6)
    assert not np.allclose(first["w"], second["w"])


def test_vmap_over_strength_equals_a_loop():
    lams = jnp.array([0.0, 0.3, 1.0, 3.0])
    batched = jax.vmap(lambda reg: reg.prox(PARAMS, 0.5))(
        GroupLasso(lams, group_axis=1, mask=WEIGHTS)
    )
    for k, lam in enumerate(lams):
        single = GroupLasso(float(lam), group_axis=1, mask=WEIGHTS).prox(PARAMS, 0.5)
        np.testing.assert_allclose(batched["w"][k], single["w"], rtol=1e-6)
    values = jax.vmap(lambda lam: L1(lam).value(PARAMS))(lams)
    np.testing.assert_allclose(
        values, [float(L1(float(lam)).value(PARAMS)) for lam in lams], rtol=1e-6
    )


def test_replace_validates_and_objects_are_immutable():
    reg = ElasticNet(0.5, 0.5)
    assert isinstance(reg.replace(l1_ratio=0.9), ElasticNet)
    assert float(reg.replace(l1_ratio=0.9).l1_ratio) == 0.9 and float(reg.l1_ratio) == 0.5
    with pytest.raises(ValueError, match="l1_ratio"):
        reg.replace(l1_ratio=1.5)
    with pytest.raises(ValueError, match="strength"):
        reg.replace(strength=-1.0)
    with pytest.raises(TypeError, match="group_axis"):
        reg.replace(group_axis=1)
    with pytest.raises(AttributeError, match="immutable"):
        reg.strength = 2.0
    with pytest.raises(ValueError, match="lower"):
        Box(1.0, -1.0)
    with pytest.raises(TypeError, match="group_axis"):
        GroupLasso(1.0, group_axis=jnp.asarray(1))
    with pytest.raises(ValueError, match="mask"):
        L1(1.0, mask={"w": True}).value(PARAMS)


# ----------------------------------------------------------------------------- transforms


@pytest.mark.parametrize(
    ("regularizer", "named"),
    [
        (L1(0.4, mask=WEIGHTS), jaxreg.prox_l1(0.4, 0.1, mask=WEIGHTS)),
        (ElasticNet(0.4, 0.3), jaxreg.prox_elastic_net(0.4, 0.3, 0.1)),
        (
            GroupLasso(2.0, group_axis=1, mask=WEIGHTS),
            jaxreg.prox_group_lasso(2.0, 0.1, group_axis=1, mask=WEIGHTS),
        ),
        (Box(-0.3, 0.3), jaxreg.clip_params(-0.3, 0.3)),
        (MaxNorm(0.7, mask=WEIGHTS), jaxreg.max_norm(0.7, mask=WEIGHTS)),
    ],
    ids=lambda x: type(x).__name__ if isinstance(x, Regularizer) else "",
)
def test_proximal_equals_the_named_transform(regularizer, named):
    grads = jax.tree.map(lambda x: 0.5 * x, PARAMS)
    generic = optax.chain(optax.sgd(0.1), jaxreg.transforms.proximal(regularizer, 0.1))
    specific = optax.chain(optax.sgd(0.1), named)
    out = [
        optax.apply_updates(PARAMS, tx.update(grads, tx.init(PARAMS), PARAMS)[0])
        for tx in (generic, specific)
    ]
    jax.tree.map(np.testing.assert_array_equal, out[0], out[1])
    landed = regularizer.prox(jax.tree.map(lambda p, g: p - 0.1 * g, PARAMS, grads), 0.1)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), out[0], landed
    )


def test_proximal_refuses_what_is_not_a_regularizer():
    with pytest.raises(TypeError, match="regularizer"):
        jaxreg.transforms.proximal(lambda x: x, 0.1)
    with pytest.raises(ValueError, match="step_size"):
        jaxreg.transforms.proximal(L1(1.0), 0.0)


def test_proximal_with_a_traced_regularizer_vmaps_over_strength(trace_counter):
    grads = jax.tree.map(lambda x: 0.5 * x, PARAMS)

    def one_step(lam):
        tx = optax.chain(optax.sgd(0.1), jaxreg.transforms.proximal(L1(lam, mask=WEIGHTS), 0.1))
        updates, _ = tx.update(grads, tx.init(PARAMS), PARAMS)
        return optax.apply_updates(PARAMS, updates)["w"]

    counted = trace_counter(one_step)
    lams = jnp.array([0.0, 1.0, 4.0])
    batched = jax.jit(jax.vmap(counted))(lams)
    assert counted.count == 1
    for k, lam in enumerate(lams):
        np.testing.assert_allclose(
            batched[k], _soft(W - 0.05 * W, 0.1 * float(lam)), rtol=1e-5, atol=1e-7
        )


# ----------------------------------------------------------------------------- users' trees


def test_masks_on_an_equinox_module_are_used_not_called():
    eqx = pytest.importorskip("equinox")
    net = eqx.nn.MLP(3, 2, 4, 1, key=jax.random.key(0))
    params = eqx.filter(net, eqx.is_inexact_array)
    mask = jaxreg.masks.weights_only(params)  # an MLP module of bools: callable, yet a mask
    reg = L1(1e3, mask=mask)
    out = reg.prox(params, 1.0)
    np.testing.assert_array_equal(out.layers[0].weight, 0)
    np.testing.assert_array_equal(out.layers[0].bias, params.layers[0].bias)
    tx = optax.chain(optax.sgd(0.1), jaxreg.prox_l1(1e3, 0.1, mask=mask))
    grads = jax.tree.map(jnp.zeros_like, params)
    updated = optax.apply_updates(params, tx.update(grads, tx.init(params), params)[0])
    np.testing.assert_array_equal(updated.layers[1].weight, 0)
    np.testing.assert_array_equal(updated.layers[1].bias, params.layers[1].bias)


def test_masks_on_flax_linen_and_nnx_trees():
    pytest.importorskip("flax")
    from flax import linen, nnx

    dense = linen.Dense(2)
    params = dense.init(jax.random.key(0), jnp.ones((1, 3)))["params"]
    out = L1(1e3, mask=jaxreg.masks.weights_only).prox(params, 1.0)
    np.testing.assert_array_equal(out["kernel"], 0)
    np.testing.assert_array_equal(out["bias"], params["bias"])

    state = nnx.state(nnx.Linear(3, 2, rngs=nnx.Rngs(0)), nnx.Param)
    mask = jaxreg.masks.weights_only(state)
    out = GroupLasso(1e3, group_axis=1, mask=mask).prox(state, 1.0)
    kernel = jax.tree.leaves(out["kernel"])[0]
    np.testing.assert_array_equal(kernel, 0)

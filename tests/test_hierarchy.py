"""HierarchicalLasso (LassoNet's penalty) and skip_mlp against independent references: a direct
float64 numpy transcription of Hier-Prox (Algorithm 2 of Lemhadri et al., 2021), the prox's
optimality against random feasible points, the dual norm's definition through the prox itself,
closed-form values, prox_adam's fixed point, and a warm-started fit_path whose hierarchy and
feature counts are checked in numpy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxreg
from jaxreg.regularizers import HierarchicalLasso


def algorithm_2(theta, weights, lam, multiplier):
    """Hier-Prox for one feature, as the paper writes it (θ a vector: |θ| → ‖θ‖₂)."""
    norm = np.linalg.norm(theta)
    if norm == 0:  # no skip direction: the feature is dropped
        return np.zeros_like(theta), np.zeros_like(weights)
    magnitudes = np.sort(np.abs(weights))[::-1]
    k = magnitudes.size
    for m in range(k + 1):
        shrunk = max(norm + multiplier * magnitudes[:m].sum() - lam, 0.0)
        w_m = multiplier / (1 + m * multiplier**2) * shrunk
        upper = np.inf if m == 0 else magnitudes[m - 1]
        lower = 0.0 if m == k else magnitudes[m]
        if lower <= w_m <= upper:  # the first m that satisfies it
            break
    return (w_m / multiplier) * theta / norm, np.sign(weights) * np.minimum(np.abs(weights), w_m)


def params_of(theta, weights):
    return {"mlp": [{"w": weights, "b": np.zeros(weights.shape[1])}], "skip": theta}


def random_rows(seed, p=7, c=3, k=5):
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((p, c)) * rng.uniform(0.05, 2.0, (p, 1))
    weights = rng.standard_normal((p, k)) * rng.uniform(0.05, 3.0, (p, 1))
    theta[0] = 0.0  # a dropped feature
    weights[1] = 0.0  # a feature used only linearly
    return theta, weights


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("lam", "multiplier"), [(0.0, 10.0), (0.3, 10.0), (1.5, 2.0), (8.0, 0.5)])
def test_prox_equals_a_direct_implementation_of_algorithm_2(seed, lam, multiplier):
    theta, weights = random_rows(seed, c=1 + seed % 3)
    step = 0.7
    with jax.enable_x64(True):
        reg = HierarchicalLasso(jnp.float64(lam), jnp.float64(multiplier))
        out = reg.prox(params_of(jnp.asarray(theta), jnp.asarray(weights)), step_size=step)
        got_theta, got_weights = np.asarray(out["skip"]), np.asarray(out["mlp"][0]["w"])
    for j in range(theta.shape[0]):
        want_theta, want_weights = algorithm_2(theta[j], weights[j], step * lam, multiplier)
        np.testing.assert_allclose(got_theta[j], want_theta, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got_weights[j], want_weights, rtol=1e-10, atol=1e-12)
    # the output satisfies the hierarchy, so its value is the group lasso of the skip rows
    largest = np.abs(got_weights).max(axis=1)
    norms = np.linalg.norm(got_theta, axis=1)
    assert np.all(largest <= multiplier * norms * (1 + 1e-9) + 1e-12)


def test_prox_minimizes_its_objective_against_feasible_points():
    """½‖z − x‖² + sλ Σ‖θ_j‖ over the feasible set: the prox beats random feasible points."""
    theta, weights = random_rows(7, p=4, c=2, k=3)
    lam, multiplier = 0.8, 3.0
    with jax.enable_x64(True):
        reg = HierarchicalLasso(lam, multiplier)
        out = reg.prox(params_of(jnp.asarray(theta), jnp.asarray(weights)))
        best = (np.asarray(out["skip"]), np.asarray(out["mlp"][0]["w"]))

    def objective(candidate_theta, candidate_weights):
        distance = np.sum((candidate_theta - theta) ** 2)
        distance += np.sum((candidate_weights - weights) ** 2)
        return 0.5 * distance + lam * np.linalg.norm(candidate_theta, axis=1).sum()

    rng = np.random.default_rng(0)
    target = objective(*best)
    for _ in range(2000):
        candidate_theta = best[0] + rng.normal(scale=rng.choice([1e-3, 0.1, 1.0]), size=theta.shape)
        cap = multiplier * np.linalg.norm(candidate_theta, axis=1, keepdims=True)
        candidate_weights = np.clip(best[1] + rng.normal(scale=0.3, size=weights.shape), -cap, cap)
        assert objective(candidate_theta, candidate_weights) >= target - 1e-12


def test_dual_norm_is_the_smallest_strength_that_keeps_zero_at_zero():
    rng = np.random.default_rng(3)
    grads = params_of(rng.standard_normal((6, 3)), rng.standard_normal((6, 4)))
    multiplier, step = 4.0, 0.1
    expected = np.max(
        np.linalg.norm(grads["skip"], axis=1)
        + multiplier * np.abs(grads["mlp"][0]["w"]).sum(axis=1)
    )
    with jax.enable_x64(True):
        unit = HierarchicalLasso(1.0, multiplier)
        np.testing.assert_allclose(float(unit.dual_norm(grads)), expected, rtol=1e-12)
        # a gradient step from zero, then the prox: zero stays zero from λ = dual norm on
        start = jax.tree.map(lambda g: -step * jnp.asarray(g), grads)
        at = unit.replace(strength=expected).prox(start, step)
        below = unit.replace(strength=0.99 * expected).prox(start, step)
    assert not np.any(np.asarray(at["skip"])) and not np.any(np.asarray(at["mlp"][0]["w"]))
    assert np.any(np.asarray(below["skip"]))
    # the strength divides: HierarchicalLasso(2).dual_norm = dual norm / 2
    np.testing.assert_allclose(
        float(HierarchicalLasso(2.0, multiplier).dual_norm(grads)), expected / 2, rtol=1e-6
    )


def test_value_is_the_skip_group_lasso_inside_the_hierarchy_and_inf_outside():
    theta = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
    weights = np.array([[10.0, -2.0], [0.0, 0.0], [0.5, 0.5]])
    reg = HierarchicalLasso(0.5, multiplier=2.0)
    assert float(reg.value(params_of(theta, weights))) == pytest.approx(0.5 * (5 + 0 + 1))
    weights[1, 0] = 0.1  # a weight on a feature without a skip row
    assert float(reg.value(params_of(theta, weights))) == np.inf


def test_strength_and_multiplier_are_data(trace_counter):
    theta, weights = random_rows(1)
    params = params_of(jnp.asarray(theta, jnp.float32), jnp.asarray(weights, jnp.float32))

    def prox_skip(lam, multiplier):
        return HierarchicalLasso(lam, multiplier).prox(params)["skip"]

    counted = trace_counter(prox_skip)
    compiled = jax.jit(jax.vmap(counted))
    lams, multipliers = jnp.array([0.0, 0.5, 2.0]), jnp.array([10.0, 1.0, 3.0])
    stacked = compiled(lams, multipliers)
    compiled(lams * 2, multipliers)
    assert counted.count == 1
    for k in range(3):
        np.testing.assert_allclose(stacked[k], prox_skip(lams[k], multipliers[k]), rtol=1e-6)


def test_prox_adam_keeps_a_feature_at_zero_up_to_its_dual_norm():
    grads = params_of(np.array([[0.3, -0.4], [0.1, 0.0]]), np.array([[0.1, -0.1], [0.2, 0.3]]))
    grads = jax.tree.map(jnp.asarray, grads)
    zeros = jax.tree.map(jnp.zeros_like, grads)
    multiplier = 2.0
    # per feature: ‖g_θ‖ + M‖g_W‖₁ = 0.5 + 0.4 = 0.9 and 0.1 + 1.0 = 1.1
    tx = jaxreg.prox_adam(0.1, HierarchicalLasso(1.0, multiplier))
    updates, _ = tx.update(grads, tx.init(zeros), zeros)
    moved = np.any(np.asarray(updates["skip"]) != 0, axis=1)
    np.testing.assert_array_equal(moved, [False, True])


BAD = {
    "strength": (lambda: HierarchicalLasso(-1.0), "strength"),
    "multiplier": (lambda: HierarchicalLasso(1.0, 0.0), "multiplier"),
    "skip_type": (lambda: HierarchicalLasso(1.0, skip=("skip",)), "skip"),
    "skip_missing": (
        lambda: HierarchicalLasso(1.0, skip="theta").value(
            params_of(np.ones((2, 1)), np.ones((2, 3)))
        ),
        "skip",
    ),  # fmt: skip
    "layer_rows": (
        lambda: HierarchicalLasso(1.0).value(params_of(np.ones((2, 1)), np.ones((3, 3)))),
        "layer",
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_an_error_naming_the_argument(case):
    build, name = BAD[case]
    with pytest.raises((ValueError, TypeError), match=name):
        build()


def test_skip_mlp_adds_a_linear_layer_to_the_mlp():
    net = jaxreg.models.skip_mlp([4, 6, 3])
    params = net.init(jax.random.key(1))
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    first, second = (jax.tree.map(np.asarray, layer) for layer in params["mlp"])
    hidden = np.maximum(x @ first["w"] + first["b"], 0)
    expected = hidden @ second["w"] + second["b"] + x @ np.asarray(params["skip"])
    np.testing.assert_allclose(net.apply(params, x), expected, rtol=1e-5, atol=1e-5)
    out, pre = net.apply(params, x, return_activations=True)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert [z.shape for z in pre] == [(5, 6)]


def test_warm_path_of_the_hierarchy_keeps_it_and_counts_features():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((150, 6)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] * X[:, 2] > 0).astype(np.int32)
    multiplier = 5.0
    fit = jaxreg.fit_path(
        jaxreg.models.skip_mlp([6, 8, 2]), X, y, penalty=HierarchicalLasso(1.0, multiplier),
        lambdas=12, lambda_min_ratio=0.05, folds=2, key=jax.random.key(0), steps=20,
        dense_steps=100, batch_size=None, learning_rate=0.1, warm_start=True,
    )  # fmt: skip
    theta = np.asarray(fit.path_params["skip"])
    weights = np.asarray(fit.path_params["mlp"][0]["w"])
    norms = np.linalg.norm(theta, axis=2)
    assert np.all(np.abs(weights).max(axis=2) <= multiplier * norms * (1 + 1e-5) + 1e-7)
    np.testing.assert_array_equal(fit.active_groups, (norms > 0).sum(axis=1))
    counts = fit.active_groups[::-1]
    assert counts[0] == 6 and counts[-1] == 0 and np.sum(np.diff(counts) > 0) <= 1

"""fit_path with regularizer objects and optimizers: objects against the string penalties they
name (λ multiplies the object's strength), input-feature selection against its null model at
λ_ref, the optimizer rules, and a second call with new data that compiles nothing (counted with
jax.monitoring, the persistent cache off)."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

import jaxreg
from jaxreg.regularizers import L1, L2, Box, GroupLasso

KEY = jax.random.key(1)
SETTINGS = dict(folds=2, key=KEY, steps=8, batch_size=16, learning_rate=0.3)


@pytest.fixture(scope="module")
def data():
    digits = jaxreg.datasets.load("digits", standardize=True)
    return digits.X[:80], digits.y[:80]


@pytest.fixture(scope="module")
def net():
    return jaxreg.models.mlp([64, 8, 10])


def assert_paths_close(a, b, **tolerance):
    for x, y in zip(jax.tree.leaves(a.path_params), jax.tree.leaves(b.path_params), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tolerance)


def test_an_object_scales_its_strength_by_the_grid(data, net):
    X, y = data
    by_name = jaxreg.fit_path(net, X, y, penalty="l1", lambdas=[0.02, 0.005], **SETTINGS)
    by_object = jaxreg.fit_path(net, X, y, penalty=L1(2.0), lambdas=[0.01, 0.0025], **SETTINGS)
    assert_paths_close(by_name, by_object, rtol=1e-5, atol=1e-7)


def test_row_group_lasso_starts_from_the_null_model(data, net):
    """GroupLasso over the rows of every W (the first layer's rows are the input features): at
    λ_ref the proximal steps (learning rate 1, so they prune in time) zero every weight — with
    all weights zero the gradient reaches only the last layer, so the null model is a fixed
    point — and down the path input features come in."""
    X, y = data
    settings = {**SETTINGS, "steps": 30, "learning_rate": 1.0}
    fit = jaxreg.fit_path(
        net, X, y, penalty=GroupLasso(1.0, group_axis=0), lambdas=3, lambda_min_ratio=1e-2,
        **settings,
    )  # fmt: skip
    first_w = np.asarray(fit.path_params[0]["w"])  # [K, 64, 8]
    features = np.count_nonzero(np.linalg.norm(first_w, axis=2), axis=1)
    assert fit.nonzeros[0] == 0 and features[0] == 0
    assert features[-1] > 0 and np.all(np.diff(features) >= 0)
    # λ_ref is the dual norm of the initial data-loss gradient: max over rows of ‖g_row‖/√|row|
    params = net.init(jax.random.split(KEY, 3)[0])
    grads = jax.grad(
        lambda p: optax.softmax_cross_entropy_with_integer_labels(net.apply(p, X), y).mean()
    )(params)
    rows = [np.linalg.norm(np.asarray(g["w"]), axis=1) / np.sqrt(g["w"].shape[1]) for g in grads]
    np.testing.assert_allclose(fit.lambda_ref, max(r.max() for r in rows), rtol=1e-5)


def test_a_callable_optimizer_gets_the_members_regularizer(data, net):
    X, y = data
    seen = []

    def sgd_then_prox(regularizer):
        seen.append(regularizer)
        return optax.chain(optax.sgd(0.3), jaxreg.transforms.proximal(regularizer, 0.3))

    by_callable = jaxreg.fit_path(
        net, X, y, penalty="l1", lambdas=[0.02], optimizer=sgd_then_prox, **SETTINGS
    )
    default = jaxreg.fit_path(net, X, y, penalty="l1", lambdas=[0.02], **SETTINGS)
    assert_paths_close(by_callable, default, rtol=1e-6, atol=1e-8)
    assert all(isinstance(reg, L1) for reg in seen)


def test_an_optax_optimizer_is_for_smooth_penalties_only(data, net):
    X, y = data
    fit = jaxreg.fit_path(
        net, X, y, penalty=L2(1.0), lambdas=[1e-3], optimizer=optax.adam(1e-2), **SETTINGS
    )
    assert np.all(np.isfinite(fit.fold_losses))
    with pytest.raises(TypeError, match="optimizer.*prox_adam"):
        jaxreg.fit_path(net, X, y, penalty="l1", optimizer=optax.adam(1e-2), **SETTINGS)
    with pytest.raises(TypeError, match="optimizer must return"):
        jaxreg.fit_path(net, X, y, penalty="l1", optimizer=lambda reg: "adam", **SETTINGS)
    with pytest.raises(ValueError, match="optimizer"):
        jaxreg.fit_path(net, X, y, penalty="l1", optimizer="rmsprop", **SETTINGS)


@pytest.mark.parametrize(
    ("penalty", "extra", "name"),
    [
        (Box(-1.0, 1.0), {}, "Box"),
        (GroupLasso(1.0, group_axis=0), {"group_axis": 1}, "group_axis"),
        (GroupLasso(1.0, group_axis=0), {"joint": True}, "joint"),
        (jaxreg.regularizers.ElasticNet(1.0, 0.3), {"l1_ratio": 0.5}, "l1_ratio"),
    ],
)
def test_objects_that_cannot_make_a_path_are_type_errors(data, net, penalty, extra, name):
    X, y = data
    with pytest.raises(TypeError, match=name):
        jaxreg.fit_path(net, X, y, penalty=penalty, **extra, **SETTINGS)


def test_a_second_call_with_new_data_compiles_nothing(data, net, compile_counter):
    X, y = data
    settings = dict(penalty=GroupLasso(1.0, group_axis=1), lambdas=3, **SETTINGS)
    first = jaxreg.fit_path(net, X, y, **settings)
    shifted = X + np.float32(0.25)
    before = len(compile_counter)
    second = jaxreg.fit_path(net, shifted, y, **settings)
    assert len(compile_counter) == before
    # and it did train on the new data: another λ_ref, other losses
    assert second.lambda_ref != first.lambda_ref
    assert not np.allclose(second.train_loss, first.train_loss)


def test_fold_ids_takes_n_first_and_keeps_the_old_order_deprecated():
    labels = [7, 7, 3, 9, 3]
    expected = np.array([1, 1, 0, 2, 0])
    np.testing.assert_array_equal(jaxreg.cv.fold_ids(5, labels), expected)
    with pytest.warns(DeprecationWarning, match="fold_ids"):
        np.testing.assert_array_equal(jaxreg.cv.fold_ids(labels, 5), expected)
    with pytest.raises(ValueError, match="order"):
        jaxreg.cv.fold_ids(3, 10)

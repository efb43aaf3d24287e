"""fit_path against independent references: hand-written optax loops that follow the documented
minibatch rule, jax.grad dual norms for λ_ref, cv.summarize on the returned fold losses, numpy
counts of the returned parameters, and glmnet's behaviour at the top of the path."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxreg
from jaxreg import cv

KEY = jax.random.key(0)
STEPS, BATCH, LR = 60, 32, 0.3


@pytest.fixture(scope="module")
def digits():
    data = jaxreg.datasets.load("digits", standardize=True)
    return data.X[:300], data.y[:300]


@pytest.fixture(scope="module")
def l1_fit(digits):
    X, y = digits
    model = jaxreg.models.mlp([64, 16, 10])
    fit = jaxreg.fit_path(
        model,
        X,
        y,
        penalty="l1",
        lambdas=5,
        folds=3,
        key=KEY,
        steps=STEPS,
        batch_size=BATCH,
        learning_rate=LR,
    )
    return model, fit


def weights_mask(params):
    """Hand-written (not jaxreg.masks): the weight matrices of an MLP."""
    return [{"w": True, "b": False} for _ in params]


def mean_cross_entropy(logits, labels):
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def hand_training(
    model,
    X,
    y,
    train_rows,
    *,
    key,
    regularizer,
    steps,
    extra_loss=None,
    data_loss=mean_cross_entropy,
    optimizer=None,
):
    """Plain SGD + a regularizer (or the given optimizer), one model, the minibatch rule
    documented in fit_path."""
    init_key, _, train_key = jax.random.split(key, 3)
    params = jax.jit(model.init)(init_key)
    optimizer = optimizer or optax.chain(optax.sgd(LR), regularizer)
    opt_state = optimizer.init(params)
    rows = jnp.asarray(np.flatnonzero(train_rows))
    X, y = jnp.asarray(X), jnp.asarray(y)

    @jax.jit
    def step(params, opt_state, t):
        batch_key, dropout_key = jax.random.split(jax.random.fold_in(train_key, t))
        batch = rows[jax.random.randint(batch_key, (BATCH,), 0, rows.shape[0])]

        def objective(p):
            value = data_loss(model.apply(p, X[batch], key=dropout_key, train=True), y[batch])
            return value if extra_loss is None else value + extra_loss(p, X[batch])

        updates, opt_state = optimizer.update(jax.grad(objective)(params), opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    for t in range(steps):
        params, opt_state = step(params, opt_state, jnp.int32(t))
    return params


def member(tree, k):
    return jax.tree.map(lambda leaf: leaf[k], tree)


def assert_trees_close(actual, expected, atol=2e-5):
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=1e-4, atol=atol)


def initial_gradient(model, X, y, data_loss=mean_cross_entropy):
    params = jax.jit(model.init)(jax.random.split(KEY, 3)[0])
    mean_loss = jax.jit(jax.grad(lambda p: data_loss(model.apply(p, jnp.asarray(X)), y)))
    return params, mean_loss(params)


# --- the grid -------------------------------------------------------------------------------


def test_lambda_ref_is_the_sup_norm_of_the_initial_gradient(l1_fit, digits):
    model, fit = l1_fit
    _, grads = initial_gradient(model, *digits)
    expected = max(float(np.max(np.abs(layer["w"]))) for layer in grads)
    np.testing.assert_allclose(fit.lambda_ref, expected, rtol=1e-5)


def test_default_grid_is_log_spaced_from_lambda_ref_over_lambda_min_ratio(l1_fit):
    _, fit = l1_fit
    np.testing.assert_allclose(fit.lambdas[0], fit.lambda_ref, rtol=1e-12)
    np.testing.assert_allclose(fit.lambdas[-1], 1e-3 * fit.lambda_ref, rtol=1e-12)
    np.testing.assert_allclose(np.diff(np.log10(fit.lambdas)), -0.75, rtol=1e-10)


# --- cross-validation -------------------------------------------------------------------------


def test_folds_are_kfold_of_the_fold_key_and_summary_is_glmnets(l1_fit, digits):
    _, fit = l1_fit
    n = digits[0].shape[0]
    expected_folds = np.asarray(cv.kfold(n, 3, key=jax.random.split(KEY, 3)[1]))
    np.testing.assert_array_equal(fit.fold_ids, expected_folds)
    reference = cv.summarize(fit.fold_losses, fit.lambdas, weights=np.bincount(expected_folds))
    for name in ("cvm", "cvsd", "cvup", "cvlo"):
        np.testing.assert_allclose(getattr(fit.summary, name), getattr(reference, name))
    assert fit.summary.index_1se == reference.index_1se
    assert fit.summary.index_min == reference.index_min


def test_fold_member_equals_hand_training_and_its_validation_loss(l1_fit, digits):
    model, fit = l1_fit
    X, y = digits
    k, fold = 2, 1
    lam = np.float32(fit.lambdas[k])
    params = hand_training(
        model,
        X,
        y,
        fit.fold_ids != fold,
        key=KEY,
        steps=STEPS,
        regularizer=jaxreg.prox_l1(lam, LR, mask=weights_mask),
    )
    held_out = fit.fold_ids == fold
    logits = model.apply(params, jnp.asarray(X[held_out]))
    np.testing.assert_allclose(
        fit.fold_losses[fold, k], mean_cross_entropy(logits, y[held_out]), rtol=2e-4
    )


def test_full_data_member_equals_hand_training(l1_fit, digits):
    model, fit = l1_fit
    X, y = digits
    k = 2
    params = hand_training(
        model,
        X,
        y,
        np.ones(len(y), bool),
        key=KEY,
        steps=STEPS,
        regularizer=jaxreg.prox_l1(np.float32(fit.lambdas[k]), LR, mask=weights_mask),
    )
    assert_trees_close(member(fit.path_params, k), params)
    # the training loss recorded for step 0 is the loss of the initial params on batch 0
    rows = jax.random.randint(
        jax.random.split(jax.random.fold_in(jax.random.split(KEY, 3)[2], 0))[0],
        (BATCH,),
        0,
        len(y),
    )
    initial = model.init(jax.random.split(KEY, 3)[0])
    expected = mean_cross_entropy(model.apply(initial, jnp.asarray(X)[rows]), y[rows])
    np.testing.assert_allclose(fit.train_loss[0, :, 0], expected, rtol=1e-5)


# --- what the result holds --------------------------------------------------------------------


def test_top_of_the_path_is_the_null_model(l1_fit):
    """With plain SGD every penalized weight is exactly zero at λ_ref, like glmnet's λ_max."""
    _, fit = l1_fit
    assert fit.lambdas[0] >= fit.lambda_ref
    for layer in member(fit.path_params, 0):
        assert np.all(np.asarray(layer["w"]) == 0)
    assert fit.nonzeros[0] == 0
    assert fit.nonzeros[-1] > 0


ADAM_LR = 0.01


@pytest.fixture(scope="module")
def adam_fit(digits):
    X, y = digits
    model = jaxreg.models.mlp([64, 16, 10])
    fit = jaxreg.fit_path(model, X, y, penalty="l1", lambdas=4, folds=2, key=KEY, steps=STEPS,
                          batch_size=BATCH, learning_rate=ADAM_LR, optimizer="adam")  # fmt: skip
    return model, fit


def test_adam_member_equals_a_hand_written_prox_adam_loop(adam_fit, digits):
    model, fit = adam_fit
    X, y = digits
    k = 2
    regularizer = jaxreg.regularizers.L1(np.float32(fit.lambdas[k]), mask=weights_mask)
    params = hand_training(
        model, X, y, np.ones(len(y), bool), key=KEY, steps=STEPS, regularizer=None,
        optimizer=jaxreg.prox_adam(ADAM_LR, regularizer),
    )  # fmt: skip
    assert_trees_close(member(fit.path_params, k), params)


def test_adam_keeps_lambda_ref_the_null_model(adam_fit):
    """prox_adam thresholds in Adam's metric, so λ_ref zeroes every weight as with SGD."""
    _, fit = adam_fit
    for layer in member(fit.path_params, 0):
        assert np.all(np.asarray(layer["w"]) == 0)
    assert fit.nonzeros[0] == 0 < fit.nonzeros[-1]


def test_nonzeros_norms_and_selected_params_come_from_path_params(l1_fit):
    _, fit = l1_fit
    weights = [np.asarray(layer["w"]) for layer in fit.path_params]
    counts = [sum(int(np.count_nonzero(w[k])) for w in weights) for k in range(5)]
    np.testing.assert_array_equal(fit.nonzeros, counts)
    norms = [[np.linalg.norm(w[k]) for w in weights] for k in range(5)]
    np.testing.assert_allclose(fit.norms, norms, rtol=1e-6)
    assert fit.norm_labels == ["0.w", "1.w"]
    assert fit.selected == "1se" and fit.index_selected == fit.summary.index_1se
    assert fit.lambda_selected == fit.lambdas[fit.index_selected]
    jax.tree.map(
        lambda a, b: np.testing.assert_array_equal(a, b),
        fit.params,
        member(fit.path_params, fit.index_selected),
    )
    assert fit.fold_losses.shape == (3, 5) and fit.train_loss.shape == (4, 5, STEPS)
    assert fit.cv_accuracy.shape == (5,) and not fit.diverged.any()
    assert 0.0 <= fit.cv_accuracy.min() <= fit.cv_accuracy.max() <= 1.0


@pytest.mark.slow
def test_digits_cv_curve_has_the_u_shape_and_one_se_rule():
    data = jaxreg.datasets.load("digits", standardize=True)
    fit = jaxreg.fit_path(
        jaxreg.models.mlp([64, 32, 10]),
        data.X[:600],
        data.y[:600],
        penalty="l1",
        lambdas=8,
        lambda_min_ratio=1e-4,
        folds=3,
        key=KEY,
        steps=300,
        batch_size=64,
        learning_rate=0.3,
    )
    summary = fit.summary
    assert summary.lambda_1se >= summary.lambda_min
    assert 0 < summary.index_min < len(fit.lambdas) - 1
    assert summary.cvm[summary.index_min] < summary.cvm[0]
    assert summary.cvm[summary.index_min] < summary.cvm[-1]
    # 1se rule, from its definition
    bound = summary.cvm[summary.index_min] + summary.cvsd[summary.index_min]
    assert summary.index_1se == np.flatnonzero(summary.cvm <= bound)[0]
    # the path grows: the strongest λ keeps fewer weights than the weakest
    assert fit.nonzeros[0] < fit.nonzeros[-1]


# --- every penalty ----------------------------------------------------------------------------


def mlp_params_gradient_dual_norms(grads, l1_ratio):
    weights = [np.asarray(layer["w"]) for layer in grads]
    sup = max(float(np.abs(w).max()) for w in weights)
    groups = max(float(np.max(np.linalg.norm(w, axis=0) / np.sqrt(w.shape[0]))) for w in weights)
    return {"l1": sup, "elastic_net": sup / l1_ratio, "group_lasso": groups}


PENALTY_CASES = {  # l1 is covered by the l1_fit tests above
    "elastic_net": (2, lambda lam: jaxreg.prox_elastic_net(lam, 0.3, LR, mask=weights_mask), None),
    "group_lasso": (
        2,
        lambda lam: jaxreg.prox_group_lasso(lam, LR, group_axis=1, mask=weights_mask),
        None,
    ),
    "l2": (
        [0.2, 0.02],
        lambda lam: optax.identity(),
        lambda lam: lambda p, x: jaxreg.penalties.l2(p, lam, mask=weights_mask(p)),
    ),
    "contractive": (
        [0.5, 0.05],
        lambda lam: optax.identity(),
        lambda lam: (
            lambda p, x: (
                lam
                * jaxreg.penalties.contractive(
                    [p[0]["w"]],
                    jaxreg.models.mlp([64, 8, 10]).apply(p, x, return_activations=True)[1],
                    jax.nn.relu,
                )
            )
        ),
    ),
    "clip": (
        [20.0, 2.0],
        lambda lam: jaxreg.clip_params(-1 / lam, 1 / lam, mask=weights_mask),
        None,
    ),
}


@pytest.mark.parametrize("penalty", list(PENALTY_CASES))
def test_every_penalty_equals_hand_training_under_one_trace(penalty, digits, trace_counter):
    X, y = digits[0][:120], digits[1][:120]
    net = jaxreg.models.mlp([64, 8, 10])
    counted_apply = trace_counter(net.apply)
    model = jaxreg.models.Model(net.init, counted_apply)
    lambdas, regularizer, extra = PENALTY_CASES[penalty]
    fold_labels = np.where(np.arange(len(y)) % 3 == 0, 7, 4)  # user fold ids: any two labels
    steps = 15
    fit = jaxreg.fit_path(
        model,
        X,
        y,
        penalty=penalty,
        lambdas=lambdas,
        folds=fold_labels,
        key=KEY,
        steps=steps,
        batch_size=BATCH,
        learning_rate=LR,
        l1_ratio=0.3,
        chunk_size=4,
    )
    # four chunks, one trace of the training step: apply is traced by the step, the evaluation,
    # and (default grid) the λ_ref gradient and the label check
    assert counted_apply.count <= 4
    np.testing.assert_array_equal(fit.fold_ids, (fold_labels == 7).astype(int))
    if fit.lambda_ref is not None:
        _, grads = initial_gradient(net, X, y)
        expected = mlp_params_gradient_dual_norms(grads, 0.3)[penalty]
        np.testing.assert_allclose(fit.lambda_ref, expected, rtol=1e-5)
    k = 1
    lam = np.float32(fit.lambdas[k])
    params = hand_training(
        net,
        X,
        y,
        np.ones(len(y), bool),
        key=KEY,
        steps=steps,
        regularizer=regularizer(lam),
        extra_loss=None if extra is None else extra(lam),
    )
    assert_trees_close(member(fit.path_params, k), params)
    if penalty == "clip":
        for layer in fit.path_params:
            bound = (1 / fit.lambdas.astype(np.float32))[:, None, None]  # the box fit_path used
            assert np.all(np.abs(np.asarray(layer["w"])) <= bound)


@pytest.mark.slow
def test_group_lasso_of_whole_heads_on_a_transformer(digits):
    X = digits[0][:90].reshape(-1, 8, 8)
    y = digits[1][:90]
    model = jaxreg.models.transformer_classifier(8, 10, d_model=8, num_heads=2)
    mask, group_axis = jaxreg.models.head_groups(jax.eval_shape(model.init, KEY))
    steps = 30
    fit = jaxreg.fit_path(  # learning rate 1: λ_ref's proximal steps prune the heads in time
        model,
        X,
        y,
        penalty="group_lasso",
        lambdas=2,
        lambda_min_ratio=0.1,
        folds=2,
        key=KEY,
        steps=steps,
        batch_size=BATCH,
        learning_rate=1.0,
        mask=mask,
        group_axis=group_axis,
        joint=True,
    )
    _, grads = initial_gradient(model, X, y)
    attention = grads["blocks"][0]["attention"]
    axes = group_axis["blocks"][0]["attention"]
    selected = [name for name, keep in mask["blocks"][0]["attention"].items() if keep]
    assert sorted(selected) == sorted(
        ["query", "key", "value", "query_bias", "key_bias", "value_bias", "out"]
    )
    heads = [
        np.concatenate(
            [np.take(np.asarray(attention[name]), h, axis=axes[name]).ravel() for name in selected]
        )
        for h in range(2)
    ]
    expected = max(np.linalg.norm(head) / np.sqrt(head.size) for head in heads)
    np.testing.assert_allclose(fit.lambda_ref, expected, rtol=1e-5)
    # heads are pruned whole: per head, its slices of every leaf are all zero or none is
    trained = fit.path_params["blocks"][0]["attention"]
    for k in range(len(fit.lambdas)):
        for h in range(2):
            zero = [
                not np.any(np.take(np.asarray(trained[name][k]), h, axis=axes[name]))
                for name in selected
            ]
            assert all(zero) or not any(zero)
    head_size = sum(np.asarray(attention[name]).size // 2 for name in selected)
    assert all(count % head_size == 0 for count in fit.nonzeros)
    assert fit.nonzeros[0] == 0 and fit.nonzeros[1] == 2 * head_size  # λ_ref: no head left


# --- divergence -------------------------------------------------------------------------------


def test_diverged_members_get_nan_losses_and_are_never_selected():
    """Least squares by SGD with an L2 term: the step 1 - lr·(h + λ) explodes for large λ only,
    so the largest λ — the one the 1se rule prefers — diverge and must be skipped."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4)).astype(np.float32)
    y = X @ np.array([1.0, -2.0, 0.5, 0.0], np.float32)
    fit = jaxreg.fit_path(
        jaxreg.models.mlp([4, 1]),
        X,
        y,
        loss="mse",
        penalty="l2",
        lambdas=[100.0, 30.0, 0.1, 0.01],
        folds=3,
        key=KEY,
        steps=40,
        batch_size=16,
        learning_rate=0.5,
        select="min",
    )
    np.testing.assert_array_equal(fit.diverged.all(axis=0), [True, True, False, False])
    assert not fit.diverged[:, 2:].any()
    assert np.all(np.isnan(fit.fold_losses[:, :2]))
    assert np.all(np.isfinite(fit.fold_losses[:, 2:]))
    assert np.all(np.isnan(fit.summary.cvm[:2]))
    assert fit.summary.index_min in (2, 3) and fit.summary.index_1se in (2, 3)
    assert fit.selected == "min" and fit.index_selected == fit.summary.index_min
    weights = np.asarray(fit.path_params[0]["w"])
    assert not np.isfinite(weights[0]).all() and np.isfinite(weights[2:]).all()
    # the members that did not diverge fit the noiseless linear target
    np.testing.assert_allclose(weights[3, :, 0], [1.0, -2.0, 0.5, 0.0], atol=0.05)


def test_a_path_diverged_at_every_lambda_is_a_typed_error_naming_the_learning_rate():
    """The problem above at λ = 100 and 30 only: |1 - 0.5·(h + λ)| > 1, every training
    explodes, and no λ is left to select."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4)).astype(np.float32)
    with pytest.raises(jaxreg.DivergedError, match="learning_rate") as error:
        jaxreg.fit_path(jaxreg.models.mlp([4, 1]), X, X[:, 0], loss="mse", penalty="l2",
                        lambdas=[100.0, 30.0], folds=3, key=KEY, steps=40, batch_size=16,
                        learning_rate=0.5)  # fmt: skip
    assert isinstance(error.value, ValueError)


# --- checkpoints ------------------------------------------------------------------------------


def test_checkpoint_resumes_the_same_fit_and_refuses_another(digits, tmp_path):
    X, y = digits[0][:60], digits[1][:60]
    model = jaxreg.models.mlp([64, 10])
    settings = dict(penalty="l1", lambdas=2, folds=2, key=KEY, steps=6, batch_size=8)
    first = jaxreg.fit_path(model, X, y, checkpoint_dir=tmp_path, **settings)
    # the checkpoint holds the finished sweep: fitting again reads it back, bit for bit
    again = jaxreg.fit_path(model, X, y, checkpoint_dir=tmp_path, **settings)
    jax.tree.map(np.testing.assert_array_equal, again.path_params, first.path_params)
    np.testing.assert_array_equal(again.fold_losses, first.fold_losses)
    # same shapes, same grid and key, other data: resuming it would mix two fits
    other = X.copy()
    other[0, 0] += 1.0
    with pytest.raises(ValueError, match="checkpoint"):
        jaxreg.fit_path(model, other, y, checkpoint_dir=tmp_path, lambdas=list(first.lambdas),
                        **{k: v for k, v in settings.items() if k != "lambdas"})  # fmt: skip


# --- bad input --------------------------------------------------------------------------------


def _bad_nan(X, y):
    X = X.copy()
    X[3, 5] = np.nan
    return dict(X=X)


BAD_INPUTS = {
    "X_nan": (_bad_nan, "X"),
    "y_length": (lambda X, y: dict(y=y[:-1]), "y"),
    "X_features": (lambda X, y: dict(X=X[:, :10]), "X"),
    "mse_targets": (lambda X, y: dict(loss="mse", y=np.zeros((len(y), 3))), "y"),
    "y_float_labels": (lambda X, y: dict(y=y + 0.5), "y"),
    "y_out_of_range": (lambda X, y: dict(y=y + 5), "y"),
    "penalty": (lambda X, y: dict(penalty="l3"), "penalty"),
    "loss": (lambda X, y: dict(loss="hinge"), "loss"),
    "folds_one": (lambda X, y: dict(folds=1), "folds"),
    "folds_too_many": (lambda X, y: dict(folds=len(y) + 1), "folds"),
    "fold_ids_single": (lambda X, y: dict(folds=np.zeros(len(y), int)), "folds"),
    "fold_ids_shape": (lambda X, y: dict(folds=np.zeros(3, int)), "folds"),
    "select": (lambda X, y: dict(select="max"), "select"),
    "steps": (lambda X, y: dict(steps=0), "steps"),
    "learning_rate": (lambda X, y: dict(learning_rate=0.0), "learning_rate"),
    "l2_needs_grid": (lambda X, y: dict(penalty="l2", lambdas=4), "lambdas"),
    "contractive_needs_grid": (lambda X, y: dict(penalty="contractive"), "lambdas"),
    "clip_needs_grid": (lambda X, y: dict(penalty="clip", lambdas=3), "lambdas"),
    "clip_zero": (lambda X, y: dict(penalty="clip", lambdas=[1.0, 0.0]), "lambdas"),
    "negative_lambda": (lambda X, y: dict(lambdas=[1.0, -1.0]), "lambdas"),
    "empty_grid": (lambda X, y: dict(lambdas=[]), "lambdas"),
    "mask_selects_nothing": (lambda X, y: dict(mask=lambda p: [{"w": False, "b": False}]), "mask"),
    "elastic_net_ratio_zero": (lambda X, y: dict(penalty="elastic_net", l1_ratio=0.0), "l1_ratio"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_an_error_naming_the_argument(case, digits):
    X, y = digits[0][:30], digits[1][:30]
    change, name = BAD_INPUTS[case]
    kwargs = dict(X=X, y=y, penalty="l1", lambdas=2, folds=2, steps=2)
    kwargs.update(change(X, y))
    with pytest.raises((ValueError, TypeError), match=name):
        jaxreg.fit_path(jaxreg.models.mlp([64, 10]), key=KEY, **kwargs)

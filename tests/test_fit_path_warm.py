"""fit_path(warm_start=True) against independent references: a hand-written sequential loop of
optax trainings (dense fit, then one training per λ started from the previous one, same
minibatches and keys), a numpy dual norm for λ_ref at the dense fit, numpy counts of the
returned parameters, a synthetic problem whose informative features are known, and trace and
compile counts (one compiled walk for the whole path)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxreg
from jaxreg.regularizers import GroupLasso

KEY = jax.random.key(3)
LR = 0.2
FIRST_LAYER = [{"w": True, "b": False}, {"w": False, "b": False}]
SECOND_LAYER_W = [{"w": False, "b": False}, {"w": True, "b": False}]


@pytest.fixture(scope="module")
def digits():
    data = jaxreg.datasets.load("digits", standardize=True)
    return data.X[:90], data.y[:90]


def mean_cross_entropy(logits, labels):
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def hand_walk(
    model, X, y, train_rows, *, walk, optimizer, steps, dense_steps, batch_size, settle=None
):
    """The documented warm start, written out: a dense fit (λ = 0), then each λ of ``walk`` in
    order for ``steps`` steps, parameters and optimizer state carried over; step t (counted
    over the steps taken) draws its minibatch and dropout key from fold_in(train_key, t)
    (dropout in training only: the stopping rows' loss is read without it); a λ at which W1 is
    zero and λ ≥ the dual norm of the training gradient takes no step. With ``settle`` (a dict
    of patience, dense_patience, tol and stopping rows or None) a stage also ends after
    ``patience`` steps in a row whose F = loss + λ·√8·Σ_j ‖W1[j]‖ (at the parameters each step
    starts from; the loss over the stopping rows, or the step's batch) is not below
    best − tol·|best|, best the last F that was. Returns the dense fit, the parameters after
    each λ, the minibatch losses of the λ stages (NaN: not taken) and the dense steps taken."""
    settle = settle or {}
    init_key, _, train_key = jax.random.split(KEY, 3)
    params = model.init(init_key)
    stopping = settle.get("stopping")
    if stopping is not None:
        held = jnp.asarray(np.flatnonzero(train_rows & stopping))
        train_rows = train_rows & ~stopping
    rows = jnp.asarray(np.flatnonzero(train_rows))
    X, y = jnp.asarray(X), jnp.asarray(y)
    opt_state = optimizer(jnp.float32(0)).init(params)

    @jax.jit
    def step(params, opt_state, t, lam):
        batch_key, dropout_key = jax.random.split(jax.random.fold_in(train_key, t))
        if batch_size is None:
            batch = rows
        else:
            batch = rows[jax.random.randint(batch_key, (batch_size,), 0, rows.shape[0])]
        value, grads = jax.value_and_grad(
            lambda p: mean_cross_entropy(
                model.apply(p, X[batch], key=dropout_key, train=True), y[batch]
            )
        )(params)
        updates, opt_state = optimizer(lam).update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    def stage(params, opt_state, t, lam, budget, patience):
        losses, best, since = [], np.inf, 0
        while len(losses) < budget and not (patience and since >= patience):
            penalty = lam * np.sqrt(8) * np.linalg.norm(np.asarray(params[0]["w"]), axis=1).sum()
            if stopping is not None:
                loss = float(mean_cross_entropy(model.apply(params, X[held]), y[held]))
            params, opt_state, value = step(params, opt_state, t, jnp.float32(lam))
            objective = (loss if stopping is not None else float(value)) + penalty
            if not np.isfinite(best) or objective < best - settle.get("tol", 0) * abs(best):
                best, since = objective, 0
            else:
                since += 1
            losses.append(float(value))
            t += 1
        return params, opt_state, t, losses

    params, opt_state, t, dense_losses = stage(
        params, opt_state, 0, 0.0, dense_steps, settle.get("dense_patience")
    )
    dense, path, losses = params, [], []
    for lam in walk:
        null = not np.any(np.asarray(params[0]["w"]))
        if null and first_layer_dual_norm(model, X[rows], y[rows], params) <= lam:
            taken = []
        else:
            params, opt_state, t, taken = stage(
                params, opt_state, t, lam, steps, settle.get("patience")
            )
        path.append(params)
        losses.append(taken + [np.nan] * (steps - len(taken)))
    return dense, path, np.asarray(losses), len(dense_losses)


def first_layer_dual_norm(model, X, y, params):
    """max_j ‖∂L/∂W1[j, :]‖₂ / √|g| at ``params`` with the first layer's W zeroed, in numpy."""
    zeroed = [{"w": jnp.zeros_like(params[0]["w"]), "b": params[0]["b"]}, *params[1:]]
    grads = jax.grad(lambda p: mean_cross_entropy(model.apply(p, jnp.asarray(X)), y))(zeroed)
    rows = np.asarray(grads[0]["w"], dtype=np.float64)
    return float(np.max(np.linalg.norm(rows, axis=1)) / np.sqrt(rows.shape[1]))


def assert_trees_close(actual, expected, atol=3e-5):
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=2e-4, atol=atol)


def member(tree, k):
    return jax.tree.map(lambda leaf: leaf[k], tree)


OPTIMIZERS = {
    "sgd": lambda lam: optax.chain(
        optax.sgd(LR), jaxreg.proximal(GroupLasso(lam, group_axis=0, mask=FIRST_LAYER), LR)
    ),
    "adam": lambda lam: jaxreg.prox_adam(LR / 10, GroupLasso(lam, group_axis=0, mask=FIRST_LAYER)),
}


@pytest.mark.parametrize(
    ("optimizer", "batch_size", "weight_decay"), [("sgd", 16, 0.0), ("adam", None, 0.05)]
)
def test_warm_start_equals_a_sequential_loop_of_optax_trainings(
    digits, optimizer, batch_size, weight_decay
):
    """``weight_decay`` is optax's add_decayed_weights on the unpenalized weight matrix (the
    second layer's W; not the biases, not the penalized first layer) before the optimizer."""
    X, y = digits
    model = jaxreg.models.mlp([64, 8, 10])
    labels = np.arange(len(y)) % 3  # user folds 0, 1, 2
    steps, dense_steps = 4, 7  # the dense fit ends in a partial stage
    fit = jaxreg.fit_path(
        model, X, y, penalty=GroupLasso(1.0, group_axis=0, mask=FIRST_LAYER), lambdas=3,
        lambda_min_ratio=0.1, folds=labels, key=KEY, steps=steps, dense_steps=dense_steps,
        batch_size=batch_size, learning_rate=LR if optimizer == "sgd" else LR / 10,
        optimizer=optimizer, warm_start=True, chunk_size=2, weight_decay=weight_decay,
    )  # fmt: skip

    def decayed(lam):
        decay = optax.add_decayed_weights(weight_decay, mask=SECOND_LAYER_W)
        return optax.chain(decay, OPTIMIZERS[optimizer](lam))

    size = len(fit.lambdas)
    walk = fit.lambdas[::-1].astype(np.float32)  # walked from the smallest λ up
    for fold, rows in ((-1, np.ones(len(y), bool)), (1, labels != 1)):
        dense, path, losses, _ = hand_walk(
            model, X, y, rows, walk=walk, optimizer=decayed, steps=steps,
            dense_steps=dense_steps, batch_size=batch_size,
        )  # fmt: skip
        for k in range(size):
            params = path[size - 1 - k]
            if fold == -1:
                assert_trees_close(member(fit.path_params, k), params)
                np.testing.assert_allclose(fit.train_loss[0, k], losses[size - 1 - k], rtol=2e-4)
            else:
                held_out = labels == fold
                logits = model.apply(params, jnp.asarray(X[held_out]))
                np.testing.assert_allclose(
                    fit.fold_losses[fold, k], mean_cross_entropy(logits, y[held_out]), rtol=2e-4
                )
    # the default grid: from λ_ref, the dual norm at the full-data dense fit with W1 zeroed,
    # down 3 λ to 0.1·λ_ref, continued above λ_ref at the same spacing (3 λ at most) up to the
    # first λ whose full-data fit has W1 = 0
    dense = hand_walk(
        model, X, y, np.ones(len(y), bool), walk=[], optimizer=decayed, steps=0,
        dense_steps=dense_steps, batch_size=batch_size,
    )[0]  # fmt: skip
    np.testing.assert_allclose(fit.lambda_ref, first_layer_dual_norm(model, X, y, dense), 1e-4)
    assert 3 <= size <= 6
    np.testing.assert_allclose(fit.lambdas, fit.lambda_ref * 0.1 ** (np.arange(3 - size, 3) / 2))
    w1_zero = ~np.any(np.asarray(fit.path_params[0]["w"]), axis=(1, 2))
    assert size == 6 or (w1_zero[0] and not w1_zero[1:].any())
    rows_nonzero = np.linalg.norm(np.asarray(fit.path_params[0]["w"]), axis=2) > 0
    np.testing.assert_array_equal(fit.active_groups, rows_nonzero.sum(axis=1))
    assert fit.train_loss.shape == (4, size, steps) and fit.diverged.shape == (4, size)
    assert not fit.diverged.any()


HELD_OUT = dict(patience=2, dense_patience=3, tol=0.05, validation_fraction=0.25)


@pytest.mark.parametrize(
    ("settle", "batch_size", "dropout_rate"),
    [
        (dict(patience=2, tol=0.02), None, 0.0),  # on the training batch; the dense fit: all
        (HELD_OUT, None, 0.0),
        (HELD_OUT, 16, 0.3),  # trained with dropout, the stopping rows' objective read without
    ],
)
def test_patience_ends_each_stage_as_a_hand_loop_with_the_same_rule(
    digits, settle, batch_size, dropout_rate
):
    X, y = digits
    model = jaxreg.models.mlp([64, 8, 10], dropout_rate=dropout_rate)
    labels = np.arange(len(y)) % 2
    steps, dense_steps = 12, 30
    fit = jaxreg.fit_path(
        model, X, y, penalty=GroupLasso(1.0, group_axis=0, mask=FIRST_LAYER), lambdas=4,
        lambda_min_ratio=0.1, folds=labels, key=KEY, steps=steps, dense_steps=dense_steps,
        batch_size=batch_size, learning_rate=LR, warm_start=True, **settle,
    )  # fmt: skip
    walk = fit.lambdas[::-1].astype(np.float32)
    stopping = None
    if "validation_fraction" in settle:  # the documented draw of the stopping rows
        order = np.asarray(jax.random.permutation(jax.random.fold_in(KEY, 1), len(y)))
        stopping = np.isin(np.arange(len(y)), order[: round(0.25 * len(y))])
    for fold, rows in ((-1, np.ones(len(y), bool)), (1, labels != 1)):
        _, path, losses, dense_taken = hand_walk(
            model, X, y, rows, walk=walk, optimizer=OPTIMIZERS["sgd"], steps=steps,
            dense_steps=dense_steps, batch_size=batch_size, settle={**settle, "stopping": stopping},
        )  # fmt: skip
        taken = np.isfinite(losses).sum(axis=1)[::-1]  # λ descending, as fit_path reports
        assert 0 < taken.min() and taken.max() == steps  # the rule ends some λ early, not all
        assert (taken < steps).any()
        assert (dense_taken < dense_steps) == ("dense_patience" in settle)
        if fold == -1:
            np.testing.assert_array_equal(np.isfinite(fit.train_loss[0]).sum(axis=1), taken)
            for k in range(len(walk)):
                assert_trees_close(member(fit.path_params, k), path[len(walk) - 1 - k])
        else:
            for k in range(len(walk)):
                logits = model.apply(path[len(walk) - 1 - k], jnp.asarray(X[labels == fold]))
                expected = mean_cross_entropy(logits, y[labels == fold])
                np.testing.assert_allclose(fit.fold_losses[fold, k], expected, rtol=2e-4)


def test_the_rule_runs_in_float64_as_in_float32(digits):
    """The rule's carried best objective keeps its dtype when the objective is float64."""
    X, y = digits[0][:60], digits[1][:60]
    settings = dict(
        penalty=GroupLasso(1.0, group_axis=0, mask=FIRST_LAYER), lambdas=[0.05, 0.02], folds=2,
        key=KEY, steps=12, dense_steps=30, batch_size=None, learning_rate=LR, warm_start=True,
        patience=2, dense_patience=3, tol=0.05, validation_fraction=0.25,
    )  # fmt: skip
    model = jaxreg.models.mlp([64, 8, 10])
    single = jaxreg.fit_path(model, X, y, **settings)
    with jax.enable_x64(True):
        double = jaxreg.fit_path(model, X.astype(np.float64), y, **settings)
    taken = np.isfinite(single.train_loss).sum(axis=-1)
    np.testing.assert_array_equal(np.isfinite(double.train_loss).sum(axis=-1), taken)
    assert (taken < 12).any()
    assert_trees_close(double.path_params, single.path_params, atol=1e-4)


def synthetic(n=240, p=8, seed=0):
    """Two classes decided by features 0, 1 and 2 only (an interaction included); 3..7 noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] * X[:, 2] + 0.5 * X[:, 2] > 0).astype(np.int32)
    return X, y


def test_warm_path_is_monotone_and_keeps_the_informative_features_longest():
    X, y = synthetic()
    fit = jaxreg.fit_path(
        jaxreg.models.mlp([8, 16, 2]), X, y, penalty=GroupLasso(1.0, group_axis=0,
        mask=FIRST_LAYER), lambdas=40, lambda_min_ratio=0.01, folds=3, key=KEY, steps=30,
        dense_steps=300, batch_size=None, learning_rate=0.1, warm_start=True,
    )  # fmt: skip
    counts = fit.active_groups[::-1]  # from the smallest λ up
    assert np.sum(np.diff(counts) > 0) <= 1
    assert counts[0] == 8 and counts[-1] == 0  # from the dense fit to the null model
    rows = np.linalg.norm(np.asarray(fit.path_params[0]["w"]), axis=2) > 0  # [K, features]
    for active in rows[(rows.sum(axis=1) > 0) & (rows.sum(axis=1) <= 3)]:
        assert set(np.flatnonzero(active)) <= {0, 1, 2}


@pytest.mark.parametrize(
    ("settle", "applies"),
    [
        ({}, 5),
        (dict(patience=2, tol=1e-2), 5),
        # the stage also applies the model to its stopping rows
        (dict(patience=2, dense_patience=3, tol=1e-2, validation_fraction=0.2), 6),
    ],
)
def test_the_walk_is_traced_once_and_a_second_call_compiles_nothing(
    digits, trace_counter, settle, applies
):
    X, y = digits[0][:60], digits[1][:60]
    net = jaxreg.models.mlp([64, 8, 10])
    counted_apply = trace_counter(net.apply)
    model = jaxreg.models.Model(net.init, counted_apply)
    settings = dict(
        penalty=GroupLasso(1.0, group_axis=0, mask=FIRST_LAYER), lambdas=4, folds=2, key=KEY,
        steps=3, dense_steps=7, batch_size=8, warm_start=True, chunk_size=2,
    )  # fmt: skip
    fit = jaxreg.fit_path(model, X, y, **settings, **settle)
    # with the rule on, other patiences, tol and stopping rows are data too
    changed = {name: 2 * value for name, value in settle.items()}
    # the dense run and the λ run (several chunks each) share one trace of the stage, which
    # applies the model twice (its null-model check and its training step); one more trace
    # each for the output-shape check, λ_ref's gradient and the validation
    assert counted_apply.count == applies
    jax.config.update("jax_enable_compilation_cache", False)
    compiles = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        again = jaxreg.fit_path(
            model, X + np.float32(0.5), y, weight_decay=0.01, **settings, **changed
        )
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == [] and counted_apply.count == applies
    assert again.lambda_ref != fit.lambda_ref  # it did train on the new data


BAD_WARM_INPUTS = {
    "warm_start": (dict(warm_start=1), "warm_start"),
    "dense_steps": (dict(warm_start=True, dense_steps=0), "dense_steps"),
    "weight_decay": (dict(warm_start=True, weight_decay=-0.1), "weight_decay"),
    "weight_decay_nan": (dict(weight_decay=float("nan")), "weight_decay"),
    "dense_steps_float": (dict(warm_start=True, dense_steps=2.5), "dense_steps"),
    "batch_size": (dict(batch_size=0), "batch_size"),
    "patience": (dict(warm_start=True, patience=0), "patience"),
    "patience_float": (dict(warm_start=True, patience=1.5), "patience"),
    "patience_without_warm_start": (dict(patience=3), "patience"),
    "tol": (dict(warm_start=True, patience=3, tol=0.0), "tol"),
    "tol_nan": (dict(warm_start=True, patience=3, tol=float("nan")), "tol"),
    "dense_patience": (dict(warm_start=True, dense_patience=0), "dense_patience"),
    "dense_patience_without_warm_start": (dict(dense_patience=3), "dense_patience"),
    "validation_fraction": (
        dict(warm_start=True, patience=3, validation_fraction=1.0), "validation_fraction"
    ),
    "validation_fraction_str": (
        dict(warm_start=True, patience=3, validation_fraction="0.1"), "validation_fraction"
    ),
    "validation_fraction_without_patience": (
        dict(warm_start=True, validation_fraction=0.1), "validation_fraction"
    ),
    "validation_fraction_too_small": (  # 0.001 of 90 examples is none
        dict(warm_start=True, patience=3, validation_fraction=0.001), "validation_fraction"
    ),
    "full_batch_contractive": (
        dict(penalty="contractive", lambdas=[1.0], batch_size=None),
        "batch_size",
    ),
}


@pytest.mark.parametrize("case", list(BAD_WARM_INPUTS))
def test_bad_input_is_an_error_naming_the_argument(case, digits):
    change, name = BAD_WARM_INPUTS[case]
    kwargs = dict(penalty="l1", lambdas=2, folds=2, steps=2) | change
    with pytest.raises((ValueError, TypeError), match=name):
        jaxreg.fit_path(jaxreg.models.mlp([64, 10]), *digits, key=KEY, **kwargs)


def test_checkpoints_resume_the_walk_and_refuse_another(digits, tmp_path):
    X, y = digits[0][:40], digits[1][:40]
    model = jaxreg.models.mlp([64, 10])
    settings = dict(penalty="l1", lambdas=[0.05, 0.01], folds=2, key=KEY, steps=3,
                    dense_steps=4, batch_size=8, warm_start=True, chunk_size=1)  # fmt: skip
    first = jaxreg.fit_path(model, X, y, checkpoint_dir=tmp_path, **settings)
    assert {p.name for p in tmp_path.iterdir()} == {"dense", "path"}
    again = jaxreg.fit_path(model, X, y, checkpoint_dir=tmp_path, **settings)  # read back
    jax.tree.map(np.testing.assert_array_equal, again.path_params, first.path_params)
    np.testing.assert_array_equal(again.train_loss, first.train_loss)
    other = X.copy()
    other[0, 0] += 1.0
    with pytest.raises(ValueError, match="checkpoint"):
        jaxreg.fit_path(model, other, y, checkpoint_dir=tmp_path, **settings)

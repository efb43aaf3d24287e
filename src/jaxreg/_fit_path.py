"""``fit_path``: the glmnet experience for a neural network.

Folds × λ — and the full-data fit at every λ — are trained in one sweep
(:func:`jaxreg.sweep.run_steps`), the cross-validation curve is summarised with glmnet's
definitions (:func:`jaxreg.cv.summarize`) and the full-data fit at the selected λ is returned.

The pieces: the grid (:func:`_lambda_grid`), one member's training (:class:`_Training`, whose
static description is hashable, so the compiled sweep is reused by a second call with new data
of the same shapes), the evaluation of every member (:func:`_validation`) and the summary
(:func:`_summarize`). How a penalty enters training is read from one registry
(:mod:`jaxreg._path_penalties`) that the CLI reads too.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxreg import _checks, _path_penalties, _tree, cv, masks, sweep, transforms
from jaxreg._path_penalties import PathOptions, PathPenalty
from jaxreg.models import Model
from jaxreg.regularizers import GroupLasso, HierarchicalLasso, Regularizer

PyTree = Any

__all__ = ["FitPathResult", "fit_path"]

LOSSES = ("cross_entropy", "mse")
OPTIMIZERS = ("sgd", "adam")
_DEFAULT_OPTIONS = {"l1_ratio": 0.5, "group_axis": 1, "joint": False}


class DivergedError(ValueError):
    """Raised by :func:`fit_path` when at every λ the training of some fold diverged (a NaN or
    infinite loss or parameter), so that no λ has a cross-validation estimate; a smaller
    ``learning_rate`` is the usual cure. A subclass of ``ValueError``, so code that caught
    ``ValueError`` still catches it."""


class FitPathResult(NamedTuple):
    """What :func:`fit_path` returns: everything a glmnet-style plot or table needs.

    Attributes:
        lambdas: the λ grid ``[K]``, descending.
        summary: the :class:`jaxreg.cv.CVSummary` of the validation losses.
        nonzeros: nonzero penalized weights of the full-data fit at each λ ``[K]``.
        norms: Frobenius norm of each penalized leaf of the full-data fit ``[K, m]``.
        norm_labels: a name per column of ``norms``: its path in the params tree, such as
            ``"0.w"`` (the first layer's weights of an MLP).
        params: the full-data fit at the selected λ.
        path_params: the full-data fits at every λ, stacked ``[K, ...]``.
        fold_losses: validation loss of each fold at each λ ``[folds, K]`` (NaN if diverged).
        cv_accuracy: mean validation accuracy per λ ``[K]`` (None for regression losses).
        selected: ``"1se"`` or ``"min"``: which rule picked ``lambda_selected``.
        lambda_selected: the chosen λ.
        index_selected: its position in ``lambdas``.
        lambda_ref: the reference λ of the default grid (None when the grid was given).
        diverged: bool ``[folds + 1, K]``; row 0 is the full-data fit, row f + 1 fold f.
        train_loss: data loss per step ``[folds + 1, K, steps]`` (rows as in ``diverged``; NaN
            for the steps a warm-started member did not take: at its null model, or after the
            λ settled with ``patience``).
        loss_name: name of the loss, for plot labels.
        fold_ids: the fold of each example ``[n]``, in ``0 .. folds-1`` (glmnet's ``foldid``):
            pass it as ``folds`` to another fit to compare models on the same folds.
        active_groups: active groups of the full-data fit at each λ ``[K]``: groups with a
            nonzero weight for the group lasso (input features with ``group_axis=0`` of the
            first layer's ``W``, units, heads), input features with a nonzero skip row for the
            hierarchical lasso, nonzero penalized weights (``nonzeros``) for every other
            penalty.
    """

    lambdas: np.ndarray
    summary: cv.CVSummary
    nonzeros: np.ndarray
    norms: np.ndarray
    norm_labels: list[str]
    params: PyTree
    path_params: PyTree
    fold_losses: np.ndarray
    cv_accuracy: np.ndarray | None
    selected: str
    lambda_selected: float
    index_selected: int
    lambda_ref: float | None
    diverged: np.ndarray
    train_loss: np.ndarray
    loss_name: str
    fold_ids: np.ndarray
    active_groups: np.ndarray


def half_squared_error(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """½‖output − target‖² per example."""
    outputs = outputs.reshape(targets.shape[0], -1)
    return 0.5 * jnp.sum(jnp.square(outputs - targets.reshape(outputs.shape)), axis=-1)


def _per_example_loss(loss: str | Callable) -> Callable[[jax.Array, jax.Array], jax.Array]:
    if callable(loss):
        return loss
    if loss == "cross_entropy":
        return optax.softmax_cross_entropy_with_integer_labels
    if loss == "mse":
        return half_squared_error
    raise ValueError(f"loss must be one of {LOSSES} or a callable, got {loss!r}")


def _output_shape(model: Model, param_shapes: PyTree, X: np.ndarray) -> tuple[int, ...]:
    """The model's output shape for X, found without computing anything."""
    inputs = jax.ShapeDtypeStruct(X.shape, np.float32)
    try:
        return jax.eval_shape(model.apply, param_shapes, inputs).shape
    except (TypeError, ValueError) as error:
        raise ValueError(f"X of shape {X.shape} does not fit the model: {error}") from None


def _checked_targets(y: np.ndarray, loss: Any, outputs: tuple[int, ...]) -> np.ndarray:
    """Cross-entropy needs integer class ids below the number of outputs; ``"mse"`` one target
    per output."""
    if loss == "mse" and y.size != int(np.prod(outputs)):
        raise ValueError(
            f"y of shape {y.shape} does not match the model's outputs {outputs} for loss='mse'"
        )
    if loss != "cross_entropy":
        return y
    if not np.issubdtype(y.dtype, np.integer):
        if not (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y))):
            raise ValueError(
                f"y must hold integer class ids for loss='cross_entropy', got dtype {y.dtype}"
            )
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D class ids for loss='cross_entropy', got shape {y.shape}")
    classes = outputs[-1]
    if y.min() < 0 or y.max() >= classes:
        raise ValueError(
            f"y must hold class ids in [0, {classes}) for a model with {classes} outputs, got "
            f"values in [{y.min()}, {y.max()}]"
        )
    return y.astype(np.int32)




def _leaf_labels(params: PyTree, selected: list[bool]) -> list[str]:
    names = _tree.leaf_names(params)
    return [name for name, keep in zip(names, selected, strict=True) if keep]


# --------------------------------------------------------------------------------------------
# one member's training


def _member_optimizer(
    optimizer: Any, regularizer: Regularizer | None, learning_rate: Any
) -> optax.GradientTransformation:
    """The optimizer of one member: a proximal step never out of step with the optimizer."""
    if optimizer == "sgd":
        sgd = optax.sgd(learning_rate)
        if regularizer is None:
            return sgd
        return optax.chain(sgd, transforms.proximal(regularizer, learning_rate))
    if optimizer == "adam":
        if regularizer is None:
            return optax.adam(learning_rate)
        return transforms.prox_adam(learning_rate, regularizer)
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer  # only with smooth penalties: checked by _check_optimizer
    chosen = optimizer(regularizer)
    if not isinstance(chosen, optax.GradientTransformation):
        raise TypeError(
            "optimizer must return an optax.GradientTransformation when called with the "
            f"member's regularizer, got {type(chosen).__name__}"
        )
    return chosen


def _check_optimizer(optimizer: Any, regularizer: Regularizer | None, learning_rate: Any) -> None:
    if isinstance(optimizer, optax.GradientTransformation):
        if regularizer is not None:
            raise TypeError(
                f"optimizer: an optax optimizer with the proximal penalty {regularizer!r} would "
                "take proximal steps out of step with its own (an adaptive optimizer rescales "
                "each coordinate). Use optimizer='sgd' or 'adam' (jaxreg.prox_adam: the prox in "
                "Adam's metric), or a callable regularizer -> GradientTransformation such as "
                "lambda reg: jaxreg.prox_adam(learning_rate, reg)"
            )
        return
    if isinstance(optimizer, str) and optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS} or a callable, got {optimizer!r}")
    if not isinstance(optimizer, str) and not callable(optimizer):
        raise TypeError(f"optimizer must be a name, a callable or an optax optimizer, got "
                        f"{optimizer!r}")  # fmt: skip
    _member_optimizer(optimizer, regularizer, learning_rate)  # a bad callable fails here


class _Training(NamedTuple):
    """The static description of one member's training (hashable: jit's cache key).

    Data, initial parameters, learning rate, weight decay and the λ = 1 regularizer travel as
    the sweep's ``data`` argument, so a new call with new values of the same shapes compiles
    nothing.
    """

    model: Model
    per_example_loss: Callable[[jax.Array, jax.Array], jax.Array]
    penalty_at: Callable[[Regularizer | None, Any], Regularizer | None]
    proximal: bool
    loss_term: Callable[..., jax.Array] | None
    needs_activations: bool
    activation: Callable[[jax.Array], jax.Array]
    optimizer: Any
    batch_size: int | None
    decayed: tuple[bool, ...]

    def data_loss(self, params, inputs, targets, dropout_key=None, train=False, weights=None):
        """Mean loss over the batch (weighted by ``weights`` when given), and the hidden
        pre-activations when the penalty reads them."""
        if self.needs_activations:
            outputs, pre_activations = self.model.apply(
                params, inputs, key=dropout_key, train=train, return_activations=True
            )
        else:
            outputs = self.model.apply(params, inputs, key=dropout_key, train=train)
            pre_activations = None
        losses = self.per_example_loss(outputs, targets)
        if weights is None:
            return jnp.mean(losses), pre_activations
        return jnp.sum(losses * weights) / jnp.sum(weights), pre_activations

    def optimizer_at(self, data: dict[str, Any], lam: Any):
        regularizer = self.penalty_at(data["regularizer"], lam)
        proximal = regularizer if self.proximal else None
        optimizer = _member_optimizer(self.optimizer, proximal, data["learning_rate"])
        if not any(self.decayed):
            return regularizer, optimizer
        decay = optax.add_decayed_weights(data["weight_decay"], mask=self.decay_mask)
        return regularizer, optax.chain(decay, optimizer)

    def decay_mask(self, params: PyTree) -> PyTree:
        """The weight matrices ``weight_decay`` acts on, as a mask for :func:`optax.masked`."""
        return jax.tree.unflatten(jax.tree.structure(params), self.decayed)

    @staticmethod
    def rows(data: dict[str, Any], fold: Any) -> tuple[jax.Array, jax.Array | None]:
        """The member's training rows, and its stopping rows (None without ``data["stopping"]``):
        the rows outside its fold, split by the stopping mask."""
        outside = data["fold_ids"] != fold
        if "stopping" not in data:
            return outside, None
        return outside & ~data["stopping"], outside & data["stopping"]

    def init(self, hparams, key, data):
        del key  # every member starts from the same parameters
        train, stopping = self.rows(data, hparams["fold"])
        order = jnp.argsort(~train, stable=True)  # training examples first
        _, optimizer = self.optimizer_at(data, hparams["lam"])
        state = {
            "params": data["params"],
            "opt_state": optimizer.init(data["params"]),
            "order": order.astype(jnp.int32),
            "num_train": jnp.sum(train).astype(jnp.int32),
            "step": jnp.zeros((), jnp.int32),
        }
        if self.batch_size is None:  # full batch: every example, weighted by membership
            state["weights"] = train.astype(jnp.float32)
        if stopping is not None:
            state["stopping_weights"] = stopping.astype(jnp.float32)
        return state

    def batch(self, state, data, batch_key):
        """The step's inputs, targets and weights: ``batch_size`` training examples drawn with
        replacement, or every example with weight 1 for the member's training rows."""
        if self.batch_size is None:
            return data["X"], data["y"], state["weights"]
        positions = jax.random.randint(batch_key, (self.batch_size,), 0, state["num_train"])
        rows = state["order"][positions]
        return data["X"][rows], data["y"][rows], None

    def loss_with_term(self, params, batch, regularizer, lam, dropout_key=None, train=False):
        """``(data loss + the penalty's term in the loss, data loss)`` over ``batch = (inputs,
        targets, weights)``."""
        value, pre_activations = self.data_loss(params, *batch[:2], dropout_key, train, batch[2])
        if self.loss_term is None:
            return value, value
        return value + self.loss_term(regularizer, params, pre_activations, lam, self), value

    def step(self, state, hparams, data, with_objective=False):
        """One optimizer step: the new state and the batch's data loss at the parameters the
        step starts from; with ``with_objective``, also the penalized objective there (data loss
        + the penalty's term in the loss, or λ·R(θ) for a proximal penalty): over the batch, or
        over the member's stopping rows when it has them."""
        step_key = jax.random.fold_in(data["key"], state["step"])
        batch_key, dropout_key = jax.random.split(step_key)
        batch = self.batch(state, data, batch_key)
        lam = hparams["lam"]
        regularizer, optimizer = self.optimizer_at(data, lam)
        (total, value), grads = jax.value_and_grad(
            lambda p: self.loss_with_term(p, batch, regularizer, lam, dropout_key, True),
            has_aux=True,
        )(state["params"])
        updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        new_state = {**state, "params": params, "opt_state": opt_state, "step": state["step"] + 1}
        if not with_objective:
            return new_state, value
        if "stopping_weights" in state:
            held_out = (data["X"], data["y"], state["stopping_weights"])
            total, _ = self.loss_with_term(state["params"], held_out, regularizer, lam)
        if self.proximal:  # λ = 0 has no term (a constraint's value is ∞ outside its set)
            total = total + jnp.where(lam > 0, regularizer.value(state["params"]), 0.0)
        return new_state, (value, total)


class _Method(NamedTuple):
    """``training.<name>`` as a callable equal by value (a bound method compares its object by
    identity, which would make every call's sweep a new cache entry)."""

    training: _Training
    name: str

    def __call__(self, *args: Any) -> Any:
        return getattr(self.training, self.name)(*args)


@partial(jax.jit, static_argnums=0)
def _initial_gradient(training: _Training, data: dict[str, Any]) -> PyTree:
    return jax.grad(lambda p: training.data_loss(p, data["X"], data["y"])[0])(data["params"])


@partial(jax.jit, static_argnums=(0, 1))
def _validation(training: _Training, classification: bool, params, member_folds, data):
    """Per member: mean loss and accuracy over its held-out fold (the full-data member's fold
    id matches no example)."""

    def one(member_params, fold):
        outputs = training.model.apply(member_params, data["X"])
        held_out = (data["fold_ids"] == fold).astype(jnp.float32)
        count = jnp.maximum(jnp.sum(held_out), 1)
        val_loss = jnp.sum(training.per_example_loss(outputs, data["y"]) * held_out) / count
        correct = (jnp.argmax(outputs, axis=-1) == data["y"]) if classification else held_out
        return val_loss, jnp.sum(correct * held_out) / count

    return jax.vmap(one)(params, member_folds)


# --------------------------------------------------------------------------------------------
# the grid and the summary


def _grid_count(lambdas: Any, penalty: PathPenalty) -> int | None:
    """The size of the default grid when ``lambdas`` is an int, None when it is the grid."""
    if not isinstance(lambdas, int | np.integer) or isinstance(lambdas, bool):
        return None
    if not penalty.has_reference:
        raise ValueError(
            f"penalty={penalty.name!r} has no reference λ: give lambdas as an explicit grid"
        )
    return _checks.check_int(lambdas, "lambdas", minimum=1)


def _lambda_grid(
    lambdas: Any,
    penalty: PathPenalty,
    training: _Training,
    data: dict[str, Any],
    lambda_min_ratio: float,
) -> tuple[np.ndarray, float | None]:
    """The grid sorted descending and λ_ref (None for a given grid).

    The default grid is log-spaced from λ_ref, the regularizer's dual norm of the data-loss
    gradient at ``data["params"]``, down to ``lambda_min_ratio · λ_ref``.
    """
    count = _grid_count(lambdas, penalty)
    if count is not None:
        grads = _initial_gradient(training, data)
        lambda_ref = float(data["regularizer"].dual_norm(grads))
        return lambda_ref * np.logspace(0, np.log10(lambda_min_ratio), count), lambda_ref
    grid = np.sort(np.asarray(lambdas, dtype=np.float64).ravel())[::-1]
    if grid.size == 0:
        raise ValueError("lambdas must not be empty")
    _tree.check_nonnegative(grid, "lambdas")
    if penalty.positive_lambdas and np.any(grid <= 0):
        raise ValueError(f"lambdas must be > 0 for penalty={penalty.name!r}")
    return grid, None


def _summarize(
    result: sweep.SweepResult,
    validation: tuple[jax.Array, jax.Array],
    grid: np.ndarray,
    fold_ids: np.ndarray,
    classification: bool,
) -> dict[str, Any]:
    """Fold losses (NaN where diverged), glmnet's summary and the CV accuracy."""
    folds = int(fold_ids.max()) + 1
    shape = (folds + 1, grid.size)
    diverged = np.asarray(result.diverged).reshape(shape)
    val_loss, val_acc = (np.asarray(v).reshape(shape) for v in validation)
    fold_losses = np.where(diverged, np.nan, val_loss)[1:]
    if diverged[1:].any(axis=0).all():
        raise DivergedError(
            "learning_rate: at every λ the training of some fold diverged (NaN or inf), so no λ "
            "has a cross-validation estimate; lower learning_rate"
        )
    fold_sizes = np.bincount(fold_ids, minlength=folds)
    cv_accuracy = None
    if classification:
        accuracy = np.where(diverged[1:], np.nan, val_acc[1:])
        cv_accuracy = np.average(accuracy, axis=0, weights=fold_sizes)
    return {
        "summary": cv.summarize(fold_losses, grid, weights=fold_sizes),
        "fold_losses": fold_losses,
        "cv_accuracy": cv_accuracy,
        "diverged": diverged,
    }


def _path_counts(path_params: PyTree, selected: list[bool], size: int):
    """Nonzero penalized weights ``[K]`` and the norm of each penalized leaf ``[K, m]``."""
    flat = [
        np.asarray(leaf).reshape(size, -1)
        for leaf, keep in zip(jax.tree.leaves(path_params), selected, strict=True)
        if keep
    ]
    nonzeros = np.sum([np.count_nonzero(leaf, axis=1) for leaf in flat], axis=0)
    return nonzeros, np.stack([np.linalg.norm(leaf, axis=1) for leaf in flat], axis=1)


def _active_groups(regularizer: Any, path_params: PyTree, nonzeros: np.ndarray) -> np.ndarray:
    """Groups with a nonzero weight at each λ ``[K]`` for the group lasso (a joint group counts
    once), features with a nonzero skip row for the hierarchical lasso, ``nonzeros`` for every
    other penalty. In numpy: the path's length never compiles."""
    leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(path_params)]
    if isinstance(regularizer, HierarchicalLasso):  # features: nonzero skip rows
        skip = leaves[_tree.leaf_names(path_params).index(regularizer.skip)]
        return np.sum(np.any(skip != 0, axis=2), axis=1)
    if not isinstance(regularizer, GroupLasso):
        return nonzeros
    first = jax.tree.map(lambda leaf: leaf[0], path_params)  # the mask sees one model
    axes = _tree.per_leaf(regularizer.group_axis, first, "group_axis")
    selected = regularizer.selection(first)
    active = []  # per selected leaf: [K, groups], the group axis after the path's
    for leaf, axis, keep in zip(leaves, axes, selected, strict=True):
        if keep:
            axis = 1 + axis % (leaf.ndim - 1)
            others = tuple(a for a in range(1, leaf.ndim) if a != axis)
            active.append(np.any(leaf != 0, axis=others))
    if regularizer.joint:
        return np.sum(np.any(np.stack(active), axis=0), axis=1)
    return np.sum([np.sum(groups, axis=1) for groups in active], axis=0)


class _Setup(NamedTuple):
    training: _Training
    penalty: PathPenalty
    data: dict[str, Any]
    selected: list[bool]
    fold_ids: np.ndarray
    train_key: jax.Array


def _penalty_options(mask: Any, param_shapes: PyTree, **given: Any) -> PathOptions:
    selected = _tree.resolve_mask(mask, param_shapes)
    selected = selected if selected is not None else [True] * len(jax.tree.leaves(param_shapes))
    if not any(selected):
        raise ValueError("mask selects no leaf of the model's params")
    mask_tree = jax.tree.unflatten(jax.tree.structure(param_shapes), selected)
    return PathOptions(mask=mask_tree, **given)


def _decayed(regularizer: Regularizer | None, mask: PyTree, param_shapes: PyTree):
    """Per leaf: a weight matrix (at least two dimensions) the penalty does not act on."""
    penalized = (
        jax.tree.leaves(mask) if regularizer is None else regularizer.selection(param_shapes)
    )
    matrices = [leaf.ndim >= 2 for leaf in jax.tree.leaves(param_shapes)]
    return tuple(m and not p for m, p in zip(matrices, penalized, strict=True))


def _setup(model, X, y, *, loss, penalty, folds, key, optimizer, mask, options, **settings):
    """Everything checkable on shapes alone is checked here, before anything compiles."""
    if not isinstance(model, Model):
        raise TypeError(f"model must be a jaxreg.models.Model, got {type(model).__name__}")
    X, y = _checks.check_data(X, y)
    per_example_loss = _per_example_loss(loss)
    init_key, fold_key, train_key = jax.random.split(key, 3)
    param_shapes = jax.eval_shape(model.init, init_key)
    y = _checked_targets(y, loss, _output_shape(model, param_shapes, X))
    given = _penalty_options(mask, param_shapes, **options)
    path_penalty = _path_penalties.resolve(penalty, given)
    if settings["batch_size"] is None and path_penalty.needs_activations:
        raise ValueError(
            f"batch_size=None (full batch) is not supported with penalty={path_penalty.name!r}: "
            "its term would read the held-out examples' activations; give a batch size"
        )
    defaults = {k: v if v is not None else _DEFAULT_OPTIONS[k] for k, v in options.items()}
    base = path_penalty.base(given._replace(**defaults))
    _check_optimizer(optimizer, base if path_penalty.proximal else None, 0.1)
    fold_ids = cv.fold_ids(X.shape[0], folds, key=fold_key)
    training = _Training(
        model=model,
        per_example_loss=per_example_loss,
        penalty_at=path_penalty.at,
        proximal=path_penalty.proximal,
        loss_term=path_penalty.loss_term,
        needs_activations=path_penalty.needs_activations,
        activation=settings["activation"],
        optimizer="sgd" if optimizer is None else optimizer,
        batch_size=settings["batch_size"],
        decayed=_decayed(base, given.mask, param_shapes),
    )
    data = {
        "X": jnp.asarray(X, dtype=jnp.float32),
        "y": jnp.asarray(y),
        "fold_ids": jnp.asarray(fold_ids),
        "params": jax.jit(model.init)(init_key),
        "key": train_key,
        "learning_rate": jnp.float32(settings["learning_rate"]),
        "weight_decay": jnp.float32(settings["weight_decay"]),
        "regularizer": base,
    }
    selected = jax.tree.leaves(given.mask)
    return _Setup(training, path_penalty, data, selected, fold_ids, train_key)


def _name_of(value: Any) -> str:
    return value if isinstance(value, str) else getattr(value, "__qualname__", type(value).__name__)


def _structure_of(regularizer: Regularizer | None) -> str:
    """The regularizer's class and static structure, without object addresses."""
    static = [getattr(regularizer, name, None) for name in ("group_axis", "joint", "axis")]
    return f"{type(regularizer).__name__}{static}"


def _fingerprint(setup: _Setup, loss: Any, given: Any = None, **own: Any) -> dict[str, Any]:
    """The settings a resumed sweep must share, named after fit_path's arguments (the sweep
    fingerprints its data, grid and key itself), with more of fit_path's own parts in ``own``
    and the caller's in ``given`` (a name of fit_path's own there is a ValueError)."""
    training = setup.training
    parts = {
        "penalty": [setup.penalty.name, _structure_of(setup.data["regularizer"])],
        "loss": _name_of(loss),
        "optimizer": _name_of(training.optimizer),
        "mask": setup.selected,
        "batch_size": "full" if training.batch_size is None else training.batch_size,
        "learning_rate": float(setup.data["learning_rate"]),
        "weight_decay": float(setup.data["weight_decay"]),
    }
    parts.update(own)
    clashing = sorted(set(parts) & set(given or {}))
    if clashing:
        raise ValueError(f"fingerprint: {clashing} are fit_path's own parts; choose other names")
    return {**parts, **(given or {})}


def _train(
    setup: _Setup, grid: np.ndarray, loss: Any, steps: int, fingerprint: Any, **sweep_options
):
    """The sweep of every member, its result as arrays of this process (gathered when the sweep
    spans several processes)."""
    folds = int(setup.fold_ids.max()) + 1
    members = sweep.grid(fold=np.arange(-1, folds), lam=grid.astype(np.float32))
    training = setup.training
    result = sweep.run_steps(
        _Method(training, "init"),
        _Method(training, "step"),
        members,
        num_steps=steps,
        key=setup.train_key,
        data=setup.data,
        fingerprint=_fingerprint(setup, loss, fingerprint),
        **sweep_options,
    )
    return members, jax.tree.map(jnp.asarray, sweep.to_host(result))


def _check_validation_fraction(fraction: Any, patience: Any, dense_patience: Any) -> None:
    if isinstance(fraction, bool) or not isinstance(fraction, int | float | np.floating):
        raise TypeError(f"validation_fraction must be a float in (0, 1), got {fraction!r}")
    if not 0 < fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {fraction}")
    if patience is None and dense_patience is None:
        raise ValueError(
            "validation_fraction: the held-out rows only decide when a stage ends; give "
            "patience or dense_patience"
        )


def _stopping_rows(fraction: float, fold_ids: np.ndarray, key: jax.Array) -> np.ndarray:
    """bool ``[n]``: the first round(fraction·n) examples of a permutation drawn from
    ``fold_in(key, 1)``; every member must keep both stopping and training rows."""
    n = fold_ids.shape[0]
    order = np.asarray(jax.random.permutation(jax.random.fold_in(key, 1), n))
    stopping = np.zeros(n, bool)
    stopping[order[: int(round(fraction * n))]] = True
    for fold in (-1, *np.unique(fold_ids)):
        outside = fold_ids != fold
        if not (stopping & outside).any() or (outside & ~stopping).sum() == 0:
            raise ValueError(
                f"validation_fraction={fraction} leaves a member (fold {fold}) without "
                "stopping rows or without training rows"
            )
    return stopping


def fit_path(
    model: Model,
    X: Any,
    y: Any,
    *,
    loss: str | Callable = "cross_entropy",
    penalty: str | Regularizer = "l1",
    lambdas: int | Sequence[float] = 20,
    lambda_min_ratio: float = 1e-3,
    folds: int | Any = 5,
    key: jax.Array,
    steps: int = 300,
    warm_start: bool = False,
    dense_steps: int | None = None,
    patience: int | None = None,
    dense_patience: int | None = None,
    tol: float = 1e-3,
    validation_fraction: float | None = None,
    batch_size: int | None = 128,
    learning_rate: float = 0.1,
    weight_decay: float = 0.0,
    optimizer: Any = "sgd",
    l1_ratio: float | None = None,
    group_axis: Any = None,
    joint: bool | None = None,
    activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
    mask: Any = masks.weights_only,
    select: str = "1se",
    chunk_size: int | None = None,
    checkpoint_dir: str | None = None,
    progress: bool = False,
    devices: Sequence[Any] | None = None,
    fingerprint: Mapping[str, Any] | None = None,
) -> FitPathResult:
    r"""Fit a regularization path with K-fold cross-validation, glmnet style.

    For every λ of the grid, ``folds`` models are trained with one fold held out and one on all
    the data — ``(folds + 1) × K`` trainings in one compiled sweep, all from the same initial
    parameters and with the same minibatch order at every λ (common random numbers, so the CV
    curve is smooth in λ). The validation losses give the CV curve and its λ selections
    (:func:`jaxreg.cv.summarize`, weighted by fold size), the full-data fits give the nonzero
    counts and norm paths, and the full-data fit at λ_1se (or λ_min) is returned.

    How each penalty enters training (``mask`` selects the penalized leaves; default: weights):

    - ``"l1"``, ``"elastic_net"``, ``"group_lasso"`` (or a regularizer object): a proximal
      step in the optimizer's own metric, so weights become exactly zero — with ``"sgd"`` the
      prox of step ``learning_rate`` after the SGD step (:func:`jaxreg.prox_l1`,
      :func:`jaxreg.prox_elastic_net`, :func:`jaxreg.prox_group_lasso`), with ``"adam"``
      :func:`jaxreg.prox_adam`.
    - ``"l2"``: the term :func:`jaxreg.penalties.l2` (λ/2)‖θ‖² added to the loss.
    - ``"contractive"``: λ times :func:`jaxreg.penalties.contractive` of the hidden layers added
      to the loss (``model`` must be :func:`jaxreg.models.mlp` built with ``activation``).
    - ``"clip"``: the hard regularizer :func:`jaxreg.clip_params` to the box [−1/λ, 1/λ], so that
      a larger λ regularizes more, as for every other penalty, and λ_1se keeps its meaning.

    The default grid (``lambdas`` an int) is log-spaced from λ_ref down to
    ``lambda_min_ratio · λ_ref``, where λ_ref is the dual norm of the data-loss gradient over the
    penalized leaves at the initial parameters: ``‖∇‖_∞`` for L1, ``‖∇‖_∞ / ρ`` for the elastic
    net and ``max_g ‖∇_g‖₂ / √|g|`` for the group lasso. ``"l2"``, ``"contractive"`` and
    ``"clip"`` have no such norm and need a given grid.

    Minibatches (common random numbers): at step ``t`` (from 0),
    ``batch_key, dropout_key = jax.random.split(jax.random.fold_in(train_key, t))`` and the
    batch is ``train_rows[jax.random.randint(batch_key, (batch_size,), 0, len(train_rows))]``,
    where ``train_rows`` lists the member's training examples in increasing order — the same
    positions for every λ and every fold. The loss is the mean over the batch; dropout, if the
    model has any, uses ``dropout_key`` with ``train=True``.

    Warm start (``warm_start=True``), the path LassoNet and glmnet walk: every member (the
    full-data fit and each fold, still vmapped side by side) first fits the dense model (λ = 0,
    ``dense_steps`` steps), then trains at each λ of the grid **from the smallest up**, ``steps``
    steps per λ, starting from the previous λ's parameters and optimizer state (not reset:
    Adam's moments keep their scale from λ to λ). The step count ``t`` above runs over the whole
    walk, dense steps first. A member whose penalized weights are all zero at a λ at least the
    dual norm of its data-loss gradient (zero is a fixed point of the proximal step) has
    reached the null model and takes no step there (its ``train_loss`` is NaN). With
    ``patience=p``, a member also ends a λ early once its objective has settled (LassoNet's
    rule): F(θ_t), the objective at the parameters step t starts from, *improves* when

    .. math::
        F(\theta_t) < F^\star - \mathrm{tol} \cdot |F^\star|, \qquad
        F^\star = \text{the last improving } F \text{ of the λ (the first step always improves)},

    and the λ ends after p steps in a row that do not improve. F is the data loss plus the
    penalty (λ·R(θ) for a proximal penalty, or its term in the loss) over the step's batch, or,
    with ``validation_fraction=f``, over the member's *stopping rows*: a random fraction f of the
    examples (the first round(f·n) of ``jax.random.permutation(jax.random.fold_in(key, 1), n)``)
    that every member leaves out of its training — LassoNet's 10 % held out; a fold's CV
    validation is still its fold. ``dense_patience`` applies the same rule to the dense fit
    (λ = 0, so F is the data loss alone), counted over all its steps; without it the dense fit
    takes ``dense_steps``. Each λ is one
    step of :func:`jaxreg.sweep.run_steps` (two calls of one compiled program: the dense fit,
    then the λ walk), so ``chunk_size``, checkpoints and the progress bar count λ. The default
    grid is taken at the dense fit: λ_ref is the dual norm of the data-loss gradient at the
    full-data dense fit with the penalized weights set to zero (the λ above which the null
    model is a fixed point); the grid runs from λ_ref down to ``lambda_min_ratio · λ_ref`` and
    the walk continues above λ_ref at the same spacing (at most ``lambdas`` more λ) until the
    full-data fit has no penalized weight left, where the path ends — a network's weights can
    outlast λ_ref (the layers after the penalized one grow along the walk), so the reported
    grid holds between ``lambdas`` and ``2 · lambdas`` λ. Walking up from the dense fit gives
    sparser models that fit better than walking down from the null model, and full batches
    (``batch_size=None``) keep the feature counts monotone along λ; see the README.

    Like glmnet's ``cv.glmnet``, the validation loss of a fold is the mean loss over its held-out
    examples, and ``summary`` weighs folds by their size. Members whose training produced
    non-finite values (see :func:`jaxreg.sweep.run_steps`) are flagged in ``diverged``; their
    fold losses are NaN, so such a λ has ``cvm = NaN`` and is never selected.

    Args:
        model: a :class:`jaxreg.models.Model`.
        X: inputs ``[n, ...]``.
        y: integer labels ``[n]`` (``loss="cross_entropy"``) or targets ``[n, ...]``.
        loss: ``"cross_entropy"``, ``"mse"`` (½ squared error) or a callable
            ``loss(outputs, y) -> [batch]`` of per-example losses.
        penalty: one of ``"l1"``, ``"elastic_net"``, ``"group_lasso"``, ``"l2"``,
            ``"contractive"``, ``"clip"``, or a :mod:`jaxreg.regularizers` object (``L1``,
            ``L2``, ``ElasticNet``, ``GroupLasso``) whose strength λ multiplies (strength 1 is
            plain λ, like glmnet's ``penalty.factor``); its mask, when set, replaces ``mask``.
        lambdas: number of λ for the default grid, or the grid itself (sorted descending).
        lambda_min_ratio: smallest λ of the default grid as a fraction of λ_ref.
        folds: number of cross-validation folds (≥ 2, drawn by :func:`jaxreg.cv.kfold`), or
            the fold of each example ``[n]`` (any integer labels, at least two distinct; like
            glmnet's ``foldid``).
        key: PRNG key; ``init_key, fold_key, train_key = jax.random.split(key, 3)`` give the
            initial parameters ``model.init(init_key)``, the folds and the minibatches/dropout.
        steps: optimizer steps per training (with ``warm_start``, per λ).
        warm_start: walk the grid from the dense fit, each λ warm-started from the previous
            one, instead of training every λ from the same random start (see above).
        dense_steps: optimizer steps of the warm start's dense fit (default ``steps``).
        patience: with ``warm_start``, end a λ after ``patience`` steps in a row without a
            relative improvement ``tol`` of its objective (see above); ``steps`` is then the
            most a λ takes. Default None: every λ takes ``steps``.
        dense_patience: the same rule for the dense fit (LassoNet: 100); ``dense_steps`` is
            then the most it takes. Default None: it takes ``dense_steps``.
        tol: the relative improvement of ``patience`` and ``dense_patience``; > 0.
        validation_fraction: in (0, 1): read the objective of ``patience`` and
            ``dense_patience`` on this fraction of the examples, left out of every member's
            training (LassoNet: 0.1). Default None: on the training batch.
        batch_size: minibatch size (examples drawn with replacement from the training folds),
            or None for full batches: every step's loss is the mean over all the member's
            training examples (gradient descent; no sampling noise, the smoothest warm-started
            path; not with ``"contractive"``).
        learning_rate: the optimizer's learning rate, also the proximal step size.
        weight_decay: μ of an L2 term ½·μ·‖W‖² in the training objective of every weight
            matrix (leaf of two or more dimensions) the penalty does not act on, such as the
            layers after a penalized first layer: its gradient μ·W joins the data-loss
            gradient before the optimizer (:func:`optax.add_decayed_weights`). A network is
            unchanged when a penalized layer shrinks by c and the next grows by 1/c, so without
            it the penalty can be traded away along a warm-started path (the next layers grow,
            and features leave and come back); a small μ (1e-3 to 1e-2 on standardized
            inputs) removes that escape. Not in the validation loss, ``train_loss``, λ_ref or
            the null-model test, which read the data loss and the penalized weights only.
        optimizer: ``"sgd"`` (default: proximal gradient descent, the prox of step
            ``learning_rate`` after each SGD step), ``"adam"`` (:func:`jaxreg.prox_adam`, the
            prox in Adam's metric, so λ keeps its meaning and λ_ref still gives the null
            model; ``optax.adam`` for the smooth penalties), a callable
            ``regularizer -> optax.GradientTransformation`` called with each member's
            regularizer object (None for the smooth ``"l2"`` and ``"contractive"``, which enter
            the loss), or an
            optax optimizer — only with a smooth penalty: after an adaptive optimizer a prox of
            step ``learning_rate · λ`` is out of step with each coordinate's own step, so that
            combination is a TypeError.
        l1_ratio: ρ of the elastic net.
        group_axis: the group axis of ``"group_lasso"``: an int (default 1: one group per output
            unit of ``W[in, out]``) or a pytree of ints matching the params.
        joint: join slice g of every penalized leaf into group g (whole attention heads: see
            :func:`jaxreg.models.head_groups` for the matching ``mask`` and ``group_axis``).
        activation: the hidden activation of the MLP, for ``"contractive"``.
        mask: which leaves are penalized (optax convention), default
            :func:`jaxreg.masks.weights_only`.
        select: ``"1se"`` (glmnet's default advice) or ``"min"``.
        chunk_size: steps per compiled chunk of the sweep (with ``warm_start``: λ per chunk).
        checkpoint_dir: checkpoint directory: a killed fit resumes from it.
        progress: show a progress bar.
        devices: devices to shard the sweep over (default all: after
            :func:`jax.distributed.initialize`, every process's; the result is the same on
            every process).
        fingerprint: named parts a checkpoint must also match besides fit_path's own (its
            data, λ grid, key, ``steps``, ``penalty``, ``loss``, ``optimizer``, ``mask``,
            ``batch_size`` and ``learning_rate``), as in :func:`jaxreg.sweep.run_steps`: the
            command-line tool passes its flags, so that a refused resume names the flag that
            changed (:class:`jaxreg.sweep.CheckpointMismatchError`).

    Returns:
        A :class:`FitPathResult`.

    Raises:
        DivergedError: at every λ some fold's training diverged (lower ``learning_rate``); a
            λ with only some diverged trainings is left out of the selection, with a NaN
            fold loss, instead.

    Example:
        >>> import jax
        >>> import jaxreg
        >>> data = jaxreg.datasets.load("digits")
        >>> net = jaxreg.models.mlp([64, 32, 10])
        >>> fit = jaxreg.fit_path(net, data.X[:400], data.y[:400], penalty="l1", lambdas=4,
        ...                       folds=3, steps=60, key=jax.random.key(0))
        >>> fit.fold_losses.shape, fit.lambda_selected >= fit.summary.lambda_min
        ((3, 4), True)
    """
    select = _checks.check_choice(select, "select", ("1se", "min"))
    steps = _checks.check_int(steps, "steps", minimum=1)
    if not isinstance(warm_start, bool):
        raise TypeError(f"warm_start must be a bool, got {warm_start!r}")
    dense_steps = steps if dense_steps is None else dense_steps
    dense_steps = _checks.check_int(dense_steps, "dense_steps", minimum=1)
    for name, value in (("patience", patience), ("dense_patience", dense_patience)):
        if value is not None:
            _checks.check_int(value, name, minimum=1)
            if not warm_start:
                raise ValueError(f"{name}: ending a stage early needs warm_start=True")
            _tree.check_positive(tol, "tol")
    if validation_fraction is not None:
        _check_validation_fraction(validation_fraction, patience, dense_patience)
    if batch_size is not None:
        batch_size = _checks.check_int(batch_size, "batch_size", minimum=1)
    _tree.check_positive(learning_rate, "learning_rate")
    _tree.check_nonnegative(weight_decay, "weight_decay")
    _tree.check_positive(lambda_min_ratio, "lambda_min_ratio")
    if l1_ratio is not None:
        _tree.check_unit_interval(l1_ratio, "l1_ratio")
    setup = _setup(
        model, X, y, loss=loss, penalty=penalty, folds=folds, key=key, optimizer=optimizer,
        mask=mask, options={"l1_ratio": l1_ratio, "group_axis": group_axis, "joint": joint},
        activation=activation, batch_size=batch_size, learning_rate=learning_rate,
        weight_decay=weight_decay,
    )  # fmt: skip
    sweep_options = {"chunk_size": chunk_size, "checkpoint_dir": checkpoint_dir,
                     "progress": progress, "devices": devices}  # fmt: skip
    classification = loss == "cross_entropy"
    if warm_start:
        from jaxreg import _warm_path  # deferred: it builds on this module

        settle = None
        if patience is not None or dense_patience is not None:
            stopping = None
            if validation_fraction is not None:
                stopping = _stopping_rows(validation_fraction, setup.fold_ids, key)
            settle = _warm_path.Settle(
                patience, dense_patience, tol, stopping, validation_fraction
            )
        grid, lambda_ref, result, validation = _warm_path.train(
            setup, lambdas, lambda_min_ratio, loss, steps, dense_steps, classification,
            fingerprint, settle=settle, **sweep_options,
        )  # fmt: skip
    else:
        grid, lambda_ref = _lambda_grid(
            lambdas, setup.penalty, setup.training, setup.data, lambda_min_ratio
        )
        members, result = _train(setup, grid, loss, steps, fingerprint, **sweep_options)
        validation = _validation(
            setup.training, classification, result.state["params"], members["fold"], setup.data
        )
    cv_results = _summarize(result, validation, grid, setup.fold_ids, classification)
    path_params = jax.tree.map(lambda leaf: leaf[: grid.size], result.state["params"])
    nonzeros, norms = _path_counts(path_params, setup.selected, grid.size)
    summary = cv_results["summary"]
    index = summary.index_1se if select == "1se" else summary.index_min
    if cv_results["diverged"][0, index]:
        warnings.warn(
            f"the full-data fit at the selected λ = {grid[index]:.4g} diverged (its "
            "cross-validation folds did not): lower learning_rate",
            RuntimeWarning,
            stacklevel=2,
        )
    return FitPathResult(
        lambdas=grid,
        nonzeros=nonzeros,
        norms=norms,
        norm_labels=_leaf_labels(setup.data["params"], setup.selected),
        params=jax.tree.map(lambda leaf: leaf[index], path_params),
        path_params=path_params,
        selected=select,
        lambda_selected=float(grid[index]),
        index_selected=int(index),
        lambda_ref=lambda_ref,
        train_loss=np.asarray(result.metrics).reshape(*cv_results["diverged"].shape, steps),
        loss_name=loss if isinstance(loss, str) else getattr(loss, "__name__", "loss"),
        fold_ids=setup.fold_ids,
        active_groups=_active_groups(setup.data["regularizer"], path_params, nonzeros),
        **cv_results,
    )

"""``fit_path``: the glmnet experience for a neural network.

Folds × λ — and the full-data fit at every λ — are trained in one sweep
(:func:`jaxreg.sweep.run_steps`), the cross-validation curve is summarised with glmnet's
definitions (:func:`jaxreg.cv.summarize`) and the full-data fit at the selected λ is returned.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxreg import _groups, _tree, cv, masks, penalties, sweep, transforms

# One rule for folds across jaxreg (an int for cv.kfold, or the user's fold ids), shared with
# jaxreg.linear.cv_path.
from jaxreg.models import Model

PyTree = Any

__all__ = ["FitPathResult", "fit_path"]

PENALTIES = ("l1", "elastic_net", "group_lasso", "l2", "contractive", "clip")
LOSSES = ("cross_entropy", "mse")
_FULL_DATA = -1  # the fold id of the member trained on every example


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
        train_loss: data loss per step ``[folds + 1, K, steps]`` (rows as in ``diverged``).
        loss_name: name of the loss, for plot labels.
        fold_ids: the fold of each example ``[n]``, in ``0 .. folds-1`` (glmnet's ``foldid``):
            pass it as ``folds`` to another fit to compare models on the same folds.
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


def _per_example_loss(loss: str | Callable) -> Callable[[jax.Array, jax.Array], jax.Array]:
    if callable(loss):
        return loss
    if loss == "cross_entropy":
        return optax.softmax_cross_entropy_with_integer_labels
    if loss == "mse":

        def half_squared_error(outputs, targets):
            outputs = outputs.reshape(targets.shape[0], -1)
            return 0.5 * jnp.sum(jnp.square(outputs - targets.reshape(outputs.shape)), axis=-1)

        return half_squared_error
    raise ValueError(f"loss must be one of {LOSSES} or a callable, got {loss!r}")


def _check_data(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim < 2:
        raise ValueError(f"X must have a batch axis and features (ndim >= 2), got shape {X.shape}")
    if y.ndim < 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must have one row per example of X ({X.shape[0]}), got {y.shape}")
    for name, array in (("X", X), ("y", y)):
        if not np.issubdtype(array.dtype, np.number):
            raise TypeError(f"{name} must be numeric, got dtype {array.dtype}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} contains NaN or infinite values")
    return X, y


def _given_grid(lambdas: Any, penalty: str) -> np.ndarray | None:
    """The grid sorted descending, or None when only a count for the default grid is given."""
    if isinstance(lambdas, int | np.integer) and not isinstance(lambdas, bool):
        if penalty not in ("l1", "elastic_net", "group_lasso"):
            raise ValueError(
                f"penalty={penalty!r} has no reference λ: give lambdas as an explicit grid"
            )
        if lambdas < 1:
            raise ValueError(f"lambdas must be a positive count or a grid, got {lambdas}")
        return None
    grid = np.sort(np.asarray(lambdas, dtype=np.float64).ravel())[::-1]
    if grid.size == 0:
        raise ValueError("lambdas must not be empty")
    _tree.check_nonnegative(grid, "lambdas")
    if penalty == "clip" and np.any(grid <= 0):
        raise ValueError("lambdas must be > 0 for penalty='clip' (the box is [-1/λ, 1/λ])")
    return grid


def _output_shape(model: Model, param_shapes: PyTree, X: np.ndarray) -> tuple[int, ...]:
    """The model's output shape for X, found without computing anything."""
    inputs = jax.ShapeDtypeStruct(X.shape, np.float32)
    try:
        return jax.eval_shape(model.apply, param_shapes, inputs).shape
    except (TypeError, ValueError) as error:
        raise ValueError(f"X of shape {X.shape} does not fit the model: {error}") from None


def _check_targets(y: np.ndarray, outputs: tuple[int, ...]) -> None:
    """Regression targets need one value per model output."""
    if y.size != int(np.prod(outputs)):
        raise ValueError(
            f"y of shape {y.shape} does not match the model's outputs {outputs} for loss='mse'"
        )


def _check_labels(y: np.ndarray, outputs: tuple[int, ...]) -> None:
    """Cross-entropy needs integer class ids below the model's number of outputs."""
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
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


def _configuration_digest(*parts: Any) -> int:
    """A 31-bit digest of everything a resumed sweep must share besides its grid and key."""
    hasher = hashlib.sha256()
    for part in parts:
        for leaf in jax.tree.leaves(part):
            array = np.asarray(leaf)
            hasher.update(f"{array.dtype}{array.shape}".encode())
            hasher.update(array.tobytes())
    return int.from_bytes(hasher.digest()[:4], "little") >> 1


def _dual_norm(
    penalty: str, grads: list[jax.Array], group_axes: list[Any], l1_ratio: float, joint: bool
) -> float:
    """The smallest λ at which the penalty's subdifferential at 0 contains ``-grads``."""
    if penalty in ("l1", "elastic_net"):
        sup_norm = max(float(np.max(np.abs(np.asarray(g)))) for g in grads)
        return sup_norm if penalty == "l1" else sup_norm / l1_ratio
    axes = [_groups.normalize_axis(g, axis) for g, axis in zip(grads, group_axes, strict=True)]
    groups = _groups.group_sq_norms(grads, axes, joint=joint)
    return max(float(jnp.max(jnp.sqrt(sq / size))) for sq, size in groups)


def _path_name(path: tuple[Any, ...]) -> str:
    """``layers[0]['w']`` reads ``0.w``; ``['blocks'][0]['attention']['query']`` reads
    ``blocks.0.attention.query``."""
    parts = []
    for entry in path:
        for field in ("key", "idx", "name"):
            if hasattr(entry, field):
                parts.append(str(getattr(entry, field)))
                break
        else:
            parts.append(str(entry))
    return ".".join(parts)


def _leaf_labels(params: PyTree, selected: list[bool]) -> list[str]:
    paths = jax.tree_util.tree_flatten_with_path(params)[0]
    return [_path_name(path) for (path, _), keep in zip(paths, selected, strict=True) if keep]


def fit_path(
    model: Model,
    X: Any,
    y: Any,
    *,
    loss: str | Callable = "cross_entropy",
    penalty: str = "l1",
    lambdas: int | Sequence[float] = 20,
    lambda_min_ratio: float = 1e-3,
    folds: int | Any = 5,
    key: jax.Array,
    steps: int = 300,
    batch_size: int = 128,
    learning_rate: float = 0.1,
    optimizer: optax.GradientTransformation | None = None,
    l1_ratio: float = 0.5,
    group_axis: Any = 1,
    joint: bool = False,
    activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
    mask: Any = masks.weights_only,
    select: str = "1se",
    chunk_size: int | None = None,
    checkpoint_dir: str | None = None,
    progress: bool = False,
    devices: Sequence[Any] | None = None,
) -> FitPathResult:
    r"""Fit a regularization path with K-fold cross-validation, glmnet style.

    For every λ of the grid, ``folds`` models are trained with one fold held out and one on all
    the data — ``(folds + 1) × K`` trainings in one compiled sweep, all from the same initial
    parameters and with the same minibatch order at every λ (common random numbers, so the CV
    curve is smooth in λ). The validation losses give the CV curve and its λ selections
    (:func:`jaxreg.cv.summarize`, weighted by fold size), the full-data fits give the nonzero
    counts and norm paths, and the full-data fit at λ_1se (or λ_min) is returned.

    How each penalty enters training (``mask`` selects the penalized leaves; default: weights):

    - ``"l1"``, ``"elastic_net"``, ``"group_lasso"``: a proximal step after the optimizer
      (:func:`jaxreg.prox_l1`, :func:`jaxreg.prox_elastic_net`, :func:`jaxreg.prox_group_lasso`
      with step size ``learning_rate``), so weights become exactly zero.
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
            ``"contractive"``, ``"clip"``.
        lambdas: number of λ for the default grid, or the grid itself (sorted descending).
        lambda_min_ratio: smallest λ of the default grid as a fraction of λ_ref.
        folds: number of cross-validation folds (≥ 2, drawn by :func:`jaxreg.cv.kfold`), or
            the fold of each example ``[n]`` (any integer labels, at least two distinct; like
            glmnet's ``foldid``).
        key: PRNG key; ``init_key, fold_key, train_key = jax.random.split(key, 3)`` give the
            initial parameters ``model.init(init_key)``, the folds and the minibatches/dropout.
        steps: optimizer steps per training.
        batch_size: minibatch size (examples drawn with replacement from the training folds).
        learning_rate: the optimizer's learning rate, also the proximal step size.
        optimizer: an optax optimizer (default ``optax.sgd(learning_rate)``: with plain SGD the
            proximal step ``learning_rate · λ`` is exactly proximal gradient descent, so λ_ref
            zeroes every penalized weight; an adaptive optimizer such as Adam rescales each
            coordinate's step and shifts the effective λ).
        l1_ratio: ρ of the elastic net.
        group_axis: the group axis of ``"group_lasso"``: an int (default 1: one group per output
            unit of ``W[in, out]``) or a pytree of ints matching the params.
        joint: join slice g of every penalized leaf into group g (whole attention heads: see
            :func:`jaxreg.models.head_groups` for the matching ``mask`` and ``group_axis``).
        activation: the hidden activation of the MLP, for ``"contractive"``.
        mask: which leaves are penalized (optax convention), default
            :func:`jaxreg.masks.weights_only`.
        select: ``"1se"`` (glmnet's default advice) or ``"min"``.
        chunk_size: steps per compiled chunk of the sweep.
        checkpoint_dir: checkpoint directory: a killed fit resumes from it.
        progress: show a progress bar.
        devices: devices to shard the sweep over (default all).

    Returns:
        A :class:`FitPathResult`.

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
    if not isinstance(model, Model):
        raise TypeError(f"model must be a jaxreg.models.Model, got {type(model).__name__}")
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {PENALTIES}, got {penalty!r}")
    if select not in ("1se", "min"):
        raise ValueError(f"select must be '1se' or 'min', got {select!r}")
    X, y = _check_data(X, y)
    per_example_loss = _per_example_loss(loss)
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    _tree.check_positive(learning_rate, "learning_rate")
    _tree.check_positive(lambda_min_ratio, "lambda_min_ratio")
    _tree.check_unit_interval(l1_ratio, "l1_ratio")
    if penalty == "elastic_net" and l1_ratio == 0:
        raise ValueError("l1_ratio must be > 0 for penalty='elastic_net' (use 'l2' for ridge)")

    grid_lambdas = _given_grid(lambdas, penalty)

    # Everything that can be checked on shapes alone is checked before anything compiles.
    init_key, fold_key, train_key = jax.random.split(key, 3)
    param_shapes = jax.eval_shape(model.init, init_key)
    outputs = _output_shape(model, param_shapes, X)
    if loss == "cross_entropy":
        _check_labels(y, outputs)
        y = y.astype(np.int32)
    elif loss == "mse":
        _check_targets(y, outputs)
    selected = _tree.resolve_mask(mask, param_shapes)
    selected = selected if selected is not None else [True] * len(jax.tree.leaves(param_shapes))
    if not any(selected):
        raise ValueError("mask selects no leaf of the model's params")
    fold_ids_np = cv.fold_ids(folds, X.shape[0], key=fold_key)
    folds = int(fold_ids_np.max()) + 1
    initial_params = jax.jit(model.init)(init_key)  # one compile instead of one per op
    mask_tree = jax.tree.unflatten(jax.tree.structure(initial_params), selected)
    X_all = jnp.asarray(X, dtype=jnp.float32)
    y_all = jnp.asarray(y)
    fold_ids = jnp.asarray(fold_ids_np)
    optimizer = optimizer if optimizer is not None else optax.sgd(learning_rate)

    def data_loss(params, inputs, targets, dropout_key=None, dropout_on=False):
        if penalty == "contractive":
            outputs, pre_activations = model.apply(
                params, inputs, key=dropout_key, train=dropout_on, return_activations=True
            )
        else:
            outputs = model.apply(params, inputs, key=dropout_key, train=dropout_on)
            pre_activations = None
        return jnp.mean(per_example_loss(outputs, targets)), pre_activations

    lambda_ref = None
    if grid_lambdas is None:
        grads = jax.jit(jax.grad(lambda p: data_loss(p, X_all, y_all)[0]))(initial_params)
        grad_leaves = jax.tree.leaves(grads)
        axes = _tree.per_leaf(group_axis, initial_params, "group_axis")
        penalized = [i for i, keep in enumerate(selected) if keep]
        lambda_ref = _dual_norm(
            penalty,
            [grad_leaves[i] for i in penalized],
            [axes[i] for i in penalized],
            l1_ratio,
            joint,
        )
        grid_lambdas = lambda_ref * np.logspace(0, np.log10(lambda_min_ratio), int(lambdas))

    def regularizer(lam) -> optax.GradientTransformation:
        if penalty == "l1":
            return transforms.prox_l1(lam, learning_rate, mask=mask_tree)
        if penalty == "elastic_net":
            return transforms.prox_elastic_net(lam, l1_ratio, learning_rate, mask=mask_tree)
        if penalty == "group_lasso":
            return transforms.prox_group_lasso(
                lam, learning_rate, group_axis=group_axis, joint=joint, mask=mask_tree
            )
        if penalty == "clip":
            return transforms.clip_params(-1 / lam, 1 / lam, mask=mask_tree)
        return optax.identity()

    def penalty_term(params, pre_activations, lam):
        if penalty == "l2":
            return penalties.l2(params, lam, mask=mask_tree)
        if penalty == "contractive":
            weights = [layer["w"] for layer in params[: len(pre_activations)]]
            return lam * penalties.contractive(weights, pre_activations, activation)
        return 0.0

    def member_optimizer(lam):
        return optax.chain(optimizer, regularizer(lam))

    def init_fn(hparams, member_key):
        del member_key  # every member starts from the same parameters
        train = fold_ids != hparams["fold"]
        order = jnp.argsort(~train, stable=True)  # training examples first
        opt_state = member_optimizer(hparams["lam"]).init(initial_params)
        return {
            "params": initial_params,
            "opt_state": opt_state,
            "order": order.astype(jnp.int32),
            "num_train": jnp.sum(train).astype(jnp.int32),
            "step": jnp.zeros((), jnp.int32),
        }

    def step_fn(state, hparams):
        step_key = jax.random.fold_in(train_key, state["step"])
        batch_key, dropout_key = jax.random.split(step_key)
        positions = jax.random.randint(batch_key, (batch_size,), 0, state["num_train"])
        batch = state["order"][positions]
        lam = hparams["lam"]

        def objective(params):
            value, pre_activations = data_loss(
                params, X_all[batch], y_all[batch], dropout_key, True
            )
            return value + penalty_term(params, pre_activations, lam), value

        grads, value = jax.grad(objective, has_aux=True)(state["params"])
        opt = member_optimizer(lam)
        updates, opt_state = opt.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        new_state = {**state, "params": params, "opt_state": opt_state, "step": state["step"] + 1}
        return new_state, value

    fold_axis = np.arange(-1, folds)
    members = sweep.grid(fold=fold_axis, lam=grid_lambdas.astype(np.float32))
    # init_fn ignores the sweep's key, so it only fingerprints the checkpoint: folding in the
    # data and settings makes resuming a checkpoint of a different fit an error, not a mix.
    configuration = _configuration_digest(
        X,
        y,
        fold_ids_np,
        initial_params,
        [penalty, loss if isinstance(loss, str) else getattr(loss, "__qualname__", "loss")],
        selected,
        [learning_rate, l1_ratio, batch_size, joint],
        _tree.per_leaf(group_axis, initial_params, "group_axis"),
    )
    try:
        result = sweep.run_steps(
            init_fn,
            step_fn,
            members,
            num_steps=steps,
            key=jax.random.fold_in(train_key, configuration),
            chunk_size=chunk_size,
            checkpoint_dir=checkpoint_dir,
            progress=progress,
            devices=devices,
        )
    except ValueError as error:
        if checkpoint_dir is None or "different sweep" not in str(error):
            raise
        raise ValueError(
            f"{error} (for fit_path the sweep's key also covers X, y, the folds, the initial "
            "parameters, penalty, loss, mask and learning rate: one of them changed)"
        ) from error

    classification = loss == "cross_entropy"

    def evaluate(params, fold):
        outputs = model.apply(params, X_all)
        held_out = (fold_ids == fold).astype(jnp.float32)
        count = jnp.maximum(jnp.sum(held_out), 1)
        val_loss = jnp.sum(per_example_loss(outputs, y_all) * held_out) / count
        correct = (jnp.argmax(outputs, axis=-1) == y_all) if classification else held_out
        return val_loss, jnp.sum(correct * held_out) / count

    val_loss, val_acc = jax.jit(jax.vmap(evaluate))(result.state["params"], members["fold"])
    shape = (folds + 1, grid_lambdas.size)
    diverged = np.asarray(result.diverged).reshape(shape)
    val_loss = np.where(diverged, np.nan, np.asarray(val_loss).reshape(shape))
    fold_losses = val_loss[1:]
    fold_sizes = np.bincount(fold_ids_np, minlength=folds)
    summary = cv.summarize(fold_losses, grid_lambdas, weights=fold_sizes)
    cv_accuracy = None
    if classification:
        accuracy = np.asarray(val_acc).reshape(shape)[1:]
        cv_accuracy = np.average(
            np.where(diverged[1:], np.nan, accuracy), axis=0, weights=fold_sizes
        )

    path_params = jax.tree.map(lambda leaf: leaf[: grid_lambdas.size], result.state["params"])
    penalized = [
        np.asarray(leaf)
        for leaf, keep in zip(jax.tree.leaves(path_params), selected, strict=True)
        if keep
    ]
    flat = [leaf.reshape(grid_lambdas.size, -1) for leaf in penalized]
    nonzeros = np.sum([np.count_nonzero(leaf, axis=1) for leaf in flat], axis=0)
    norms = np.stack([np.linalg.norm(leaf, axis=1) for leaf in flat], axis=1)
    index = summary.index_1se if select == "1se" else summary.index_min
    if diverged[0, index]:
        warnings.warn(
            f"the full-data fit at the selected λ = {grid_lambdas[index]:.4g} diverged (its "
            "cross-validation folds did not): lower learning_rate",
            RuntimeWarning,
            stacklevel=2,
        )
    return FitPathResult(
        lambdas=grid_lambdas,
        summary=summary,
        nonzeros=nonzeros,
        norms=norms,
        norm_labels=_leaf_labels(initial_params, selected),
        params=jax.tree.map(lambda leaf: leaf[index], path_params),
        path_params=path_params,
        fold_losses=fold_losses,
        cv_accuracy=cv_accuracy,
        selected=select,
        lambda_selected=float(grid_lambdas[index]),
        index_selected=int(index),
        lambda_ref=lambda_ref,
        diverged=diverged,
        train_loss=np.asarray(result.metrics).reshape(*shape, steps),
        loss_name=loss if isinstance(loss, str) else getattr(loss, "__name__", "loss"),
        fold_ids=fold_ids_np,
    )

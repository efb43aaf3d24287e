"""The warm-started path of ``fit_path(..., warm_start=True)``.

Every member (the full-data fit and one per fold, vmapped as in the parallel path) trains in
*stages*: a dense fit (λ = 0) first, then one stage per λ of the grid, walked in order, each
started from the previous stage's parameters and optimizer state. A stage is one step of
:func:`jaxreg.sweep.run_steps` — a ``lax.while_loop`` of at most ``steps`` optimizer steps of the
member's training (:class:`jaxreg._fit_path._Training`) — so the walk gets the sweep's compiled
chunks, checkpoints and progress bar.

The default grid needs the dense fit (its top, λ_ref, is read there), so the walk runs as two
calls of :func:`jaxreg.sweep.run_steps` with one compiled program: the dense stages, then the λ
stages started from their final state. Both see the same ``data`` structure (the schedule of
every stage and the members' starting states are data), so the second call compiles nothing.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg import _fit_path, sweep

PyTree = Any

# The state a stage hands to the next one; the rest of a member's state (its training rows) is
# rebuilt from its fold.
_CARRIED = ("params", "opt_state", "step", "stage")


class _Walk(NamedTuple):
    """One member's walk, stage by stage (hashable: jit's cache key).

    Stage ``s`` runs ``data["budget"][s]`` optimizer steps (at most ``steps``; 0 past the end of
    the schedule) of ``training`` at λ = ``data["schedule"][s]``. Step ``t`` of the member (its
    count of steps taken, dense steps included) draws its minibatch and dropout key exactly as
    step ``t`` of the parallel path. With ``stops``, a λ stage is skipped when the member is the
    null model and stays it: every penalized weight is zero and λ is at least the dual norm of
    its data-loss gradient (zero is a fixed point of the proximal step). With ``settles``, a
    stage whose ``data["patience"][s]`` is positive ends once its objective has settled
    (:meth:`track`); the dense fit's stages share one count, restarted where
    ``data["fresh"][s]``.
    """

    training: _fit_path._Training
    steps: int
    stops: bool
    settles: bool

    def init(self, hparams, key, data):
        state = self.training.init({**hparams, "lam": data["schedule"][0]}, key, data)
        start = jax.tree.map(lambda leaf: leaf[hparams["fold"] + 1], data["start"])
        if self.settles:
            state = {**state, "best": jnp.float32(jnp.inf), "since": jnp.int32(0)}
        return {**state, **start}

    def at_null_model(self, params, lam, fold, data) -> jax.Array:
        """Every penalized weight is zero and λ keeps them there."""
        regularizer = data["regularizer"]
        zero = jnp.all(jnp.stack([jnp.all(leaf == 0) for leaf in _penalized(regularizer, params)]))
        weights = self.training.rows(data, fold)[0].astype(jnp.float32)
        grads = jax.grad(
            lambda p: self.training.data_loss(p, data["X"], data["y"], weights=weights)[0]
        )(params)
        return zero & (lam > 0) & (regularizer.dual_norm(grads) <= lam)

    @staticmethod
    def track(state: dict[str, Any], objective: jax.Array, tol: jax.Array) -> dict[str, Any]:
        """LassoNet's count: a step whose objective is below (1 − tol) of the best one since the
        count restarted becomes the best; any other adds one to ``since``."""
        best = state["best"]
        better = ~jnp.isfinite(best) | (objective < best - tol * jnp.abs(best))
        since = jnp.where(better, 0, state["since"] + 1)
        best = jnp.where(better, objective, best).astype(best.dtype)  # the loop's carry type
        return {**state, "best": best, "since": since}

    def stage(self, state, hparams, data):
        index = state["stage"]
        within = index < data["budget"].shape[0]
        budget = jnp.where(within, data["budget"][index], 0)
        point = {"lam": data["schedule"][index]}
        if self.stops:
            done = self.at_null_model(state["params"], point["lam"], hparams["fold"], data)
            budget = jnp.where(done, 0, budget)
        patience = jnp.where(within, data["patience"][index], 0)  # 0: the stage takes its budget
        if self.settles:
            fresh = within & data["fresh"][index]
            state = {**state, "best": jnp.where(fresh, jnp.inf, state["best"]),
                     "since": jnp.where(fresh, 0, state["since"])}  # fmt: skip

        def body(carry):
            inner, taken, losses = carry
            inner, out = self.training.step(inner, point, data, with_objective=self.settles)
            if self.settles:  # nothing tracked on the hot path otherwise
                out, objective = out
                inner = self.track(inner, objective, data["tol"])
            return inner, taken + 1, losses.at[taken].set(out.astype(losses.dtype))

        def going(carry):
            inner, taken, _ = carry
            if not self.settles:
                return taken < budget
            return (taken < budget) & ((patience == 0) | (inner["since"] < patience))

        losses = jnp.zeros(self.steps, jnp.float32)
        state, taken, losses = jax.lax.while_loop(going, body, (state, jnp.int32(0), losses))
        metrics = {"loss": losses, "taken": taken, "params": state["params"]}
        return {**state, "stage": index + 1}, metrics


class Settle(NamedTuple):
    """When a stage ends before its budget: after ``patience`` steps (λ stages) or
    ``dense_patience`` steps (the dense fit) without a relative improvement ``tol`` of the
    objective (None: the stage takes every step), read on the ``stopping`` rows (bool ``[n]``,
    left out of every member's training) when given, else on the training batch;
    ``validation_fraction`` is what drew them (for the checkpoint's fingerprint)."""

    patience: int | None = None
    dense_patience: int | None = None
    tol: float = 0.0
    stopping: np.ndarray | None = None
    validation_fraction: float | None = None

    def parts(self) -> list[Any]:
        return [self.patience, self.dense_patience, self.tol, self.validation_fraction]

    def data(self, dense_count: int, walk_size: int) -> dict[str, Any]:
        """The rule as the walk's data: each stage's patience (0: off), where the count
        restarts (the dense fit's first stage and every λ), tol and the stopping rows."""
        stage = np.arange(dense_count + walk_size)
        patience = np.where(stage < dense_count, self.dense_patience or 0, self.patience or 0)
        rule = {
            "patience": jnp.asarray(patience, jnp.int32),
            "fresh": jnp.asarray((stage == 0) | (stage >= dense_count)),
            "tol": jnp.float32(self.tol),
        }
        if self.stopping is not None:
            rule["stopping"] = jnp.asarray(self.stopping)
        return rule


def _initial_states(training: _fit_path._Training, data: dict[str, Any], size: int) -> PyTree:
    """Every member's starting point of the dense fit: the initial parameters, a fresh optimizer
    state, no step taken."""
    _, optimizer = training.optimizer_at(data, jnp.float32(0))
    start = {
        "params": data["params"],
        "opt_state": optimizer.init(data["params"]),
        "step": jnp.int32(0),
        "stage": jnp.int32(0),
    }
    return jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (size, *jnp.shape(leaf))), start)


def _stages(dense_steps: int, steps: int, walk: np.ndarray | None, count: int):
    """λ and budget of every stage: the dense fit in stages of at most ``steps`` optimizer steps,
    then ``count`` λ stages of ``steps`` each (λ = ``walk``; budget 0 while ``walk`` is None,
    so that the dense run never enters them)."""
    full, rest = divmod(dense_steps, steps)
    dense = [steps] * full + ([rest] if rest else [])
    lambdas = np.zeros(count) if walk is None else walk
    budgets = dense + [0 if walk is None else steps] * count
    schedule = np.concatenate([np.zeros(len(dense)), lambdas])
    return len(dense), jnp.asarray(schedule, jnp.float32), jnp.asarray(budgets, jnp.int32)


class _Runner(NamedTuple):
    """What both runs share: the walk, its members, the data (without the members' starting
    states and the schedule), the sweep's key and options."""

    walk: _Walk
    members: dict[str, np.ndarray]
    data: dict[str, Any]
    key: jax.Array
    options: dict[str, Any]

    def __call__(self, start, schedule, budget, num_steps: int, name: str) -> sweep.SweepResult:
        """One run of the walk's stages, its result as numpy arrays of this process."""
        options = dict(self.options)
        if options["checkpoint_dir"] is not None:
            options["checkpoint_dir"] = os.path.join(options["checkpoint_dir"], name)
        return sweep.to_host(
            sweep.run_steps(
                _fit_path._Method(self.walk, "init"),
                _fit_path._Method(self.walk, "stage"),
                self.members,
                num_steps=num_steps,
                key=self.key,
                data={**self.data, "start": start, "schedule": schedule, "budget": budget},
                **options,
            )
        )


def _penalized(regularizer: Any, params: PyTree) -> list[Any]:
    leaves = jax.tree.leaves(params)
    return [leaf for leaf, keep in zip(leaves, regularizer.selection(params), strict=True) if keep]


def _without_penalized(regularizer: Any, params: PyTree) -> PyTree:
    """``params`` with every leaf the regularizer acts on set to zero."""
    leaves, treedef = jax.tree.flatten(params)
    selected = regularizer.selection(params)
    zeroed = [jnp.zeros_like(x) if keep else x for x, keep in zip(leaves, selected, strict=True)]
    return treedef.unflatten(zeroed)


def _walk_lambdas(grid: np.ndarray, extend: bool) -> np.ndarray:
    """The λ of the walk, increasing: the grid, then (``extend``) as many again above its top
    at the grid's own spacing."""
    walk = grid[::-1]
    if not extend:
        return walk
    ratio = grid[0] / grid[1]
    return np.concatenate([walk, grid[0] * ratio ** np.arange(1, grid.size + 1)])


def _path_end(regularizer: Any, path: sweep.SweepResult, walk: np.ndarray, count: int) -> int:
    """How many λ of the walk the path keeps: up to the first at which the full-data fit (member
    0) has no penalized weight left, but at least the ``count`` of the grid."""
    full_data = jax.tree.map(lambda leaf: np.asarray(leaf)[0], path.metrics["params"])
    empty = np.all([np.all(leaf == 0, axis=tuple(range(1, leaf.ndim)))
                    for leaf in _penalized(regularizer, full_data)], axis=0)  # fmt: skip
    if not empty.any():
        if walk.size > count:
            warnings.warn(
                f"the warm-started path still has active groups at λ = {walk[-1]:.4g}, "
                f"{walk[-1] / walk[count - 1]:.3g}× its λ_ref: give a grid reaching higher",
                RuntimeWarning,
                stacklevel=4,
            )
        return walk.size
    return max(count, int(np.argmax(empty)) + 1)


def _nonfinite(metrics: dict[str, Any]) -> np.ndarray:
    """bool ``[members, stages]``: a stage whose parameters or losses hold a NaN or infinity."""
    losses, taken = np.asarray(metrics["loss"]), np.asarray(metrics["taken"])
    ran = np.arange(losses.shape[-1]) < taken[..., None]
    bad = np.any(ran & ~np.isfinite(losses), axis=-1)
    for leaf in jax.tree.leaves(metrics["params"]):
        bad |= ~np.all(np.isfinite(np.asarray(leaf).reshape(*bad.shape, -1)), axis=-1)
    return bad


def _descending(dense: sweep.SweepResult, path: sweep.SweepResult):
    """Parameters, losses and divergence of every member at every λ of the walk, stacked
    ``[members, λ, ...]`` with λ descending. A stage after a non-finite one is diverged too;
    the steps a stage did not take have NaN losses."""
    bad = np.logical_or.accumulate(_nonfinite(path.metrics), axis=1)
    bad |= _nonfinite(dense.metrics).any(axis=1)[:, None]
    losses, taken = np.asarray(path.metrics["loss"]), np.asarray(path.metrics["taken"])
    losses = np.where(np.arange(losses.shape[-1]) < taken[..., None], losses, np.nan)
    params = jax.tree.map(lambda leaf: np.asarray(leaf)[:, ::-1], path.metrics["params"])
    return params, losses[:, ::-1], bad[:, ::-1]


def _kept(array: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` smallest λ of ``[members, λ descending, ...]``, flattened member-major as
    the parallel path's sweep: member (fold f, λ_k) at row ``(f + 1)·size + k``."""
    array = np.asarray(array)
    array = array[:, array.shape[1] - size :]
    return array.reshape(-1, *array.shape[2:])


def train(
    setup: _fit_path._Setup,
    lambdas: Any,
    lambda_min_ratio: float,
    loss: Any,
    steps: int,
    dense_steps: int,
    classification: bool,
    fingerprint: Any,
    settle: Settle | None = None,
    **sweep_options: Any,
):
    """The dense fit, the grid, the walk and its validation: ``(grid, lambda_ref, result,
    validation)`` laid out as the parallel path's sweep and :func:`_fit_path._validation`.
    With ``settle`` a stage ends once its objective has settled."""
    training, penalty = setup.training, setup.penalty
    count = _fit_path._grid_count(lambdas, penalty)
    given = None
    if count is None:
        given = _fit_path._lambda_grid(lambdas, penalty, training, setup.data, lambda_min_ratio)
    size = count if given is None else given[0].size
    walk_size = 2 * size if given is None and size > 1 else size  # the default grid extends
    folds = int(setup.fold_ids.max()) + 1
    dense_count, schedule, budget = _stages(dense_steps, steps, None, walk_size)
    chunk_size = sweep_options.pop("chunk_size") or -(-(dense_count + size) // 10)
    parts = _fit_path._fingerprint(
        setup, loss, fingerprint, warm_start=True, settle=settle.parts() if settle else "off"
    )
    run = _Runner(
        _Walk(training, steps, penalty.has_reference, settle is not None),
        sweep.grid(fold=np.arange(-1, folds)),
        {**setup.data, **(settle or Settle()).data(dense_count, walk_size)},
        setup.train_key,
        {"chunk_size": chunk_size, "fingerprint": parts, **sweep_options},
    )
    dense = run(_initial_states(training, setup.data, folds + 1), schedule, budget, dense_count,
                "dense")  # fmt: skip
    if given is None:
        full_data = jax.tree.map(lambda leaf: leaf[0], dense.state["params"])
        at_dense = _without_penalized(setup.data["regularizer"], full_data)
        given = _fit_path._lambda_grid(
            count, penalty, training, {**setup.data, "params": at_dense}, lambda_min_ratio
        )
    grid, lambda_ref = given
    walk = _walk_lambdas(grid, extend=walk_size > size)
    _, schedule, budget = _stages(dense_steps, steps, walk, walk_size)
    start = {name: dense.state[name] for name in _CARRIED}
    path = run(start, schedule, budget, walk_size, "path")
    end = _path_end(setup.data["regularizer"], path, walk, size) if walk_size > size else size
    params, losses, diverged = _descending(dense, path)
    # validated at every λ walked (one program whatever the path's end), then cut at the end
    validation = _fit_path._validation(
        training, classification, jax.tree.map(lambda leaf: _kept(leaf, walk_size), params),
        np.repeat(np.arange(-1, folds), walk_size), setup.data,
    )  # fmt: skip
    validation = tuple(_kept(np.reshape(v, (folds + 1, walk_size)), end) for v in validation)
    result = sweep.SweepResult(
        {"params": jax.tree.map(lambda leaf: _kept(leaf, end), params)},
        _kept(losses, end),
        _kept(diverged, end),
    )
    return walk[:end][::-1], lambda_ref, result, validation

r"""Whole hyperparameter grids (λ × seeds) trained in one compiled program.

A *grid* is a dict of equal-length 1-D arrays, one entry per hyperparameter; member ``k`` of the
grid is ``{name: grid[name][k]}``. :func:`grid` builds the Cartesian product of a few axes.

- :func:`run` trains every member with one ``jit(vmap(train_fn))``: ``train_fn(hparams, key)`` is
  a whole training (usually a ``lax.scan``) and the result is its output stacked ``[K, ...]``
  (``[K, S, ...]`` with ``seeds=S``).
- :func:`run_steps` is for long trainings: ``init_fn`` / ``step_fn`` run in compiled chunks of
  steps, with a progress bar, an atomic checkpoint after each chunk and resume after a crash; it
  reports the members that diverged.

Hyperparameters are data: they reach ``train_fn`` as 0-d arrays, so a second sweep with new
values (same grid size) reuses the compiled program, and a diverging member (NaN/inf) never
disturbs the others — ``vmap`` keeps the members independent.

Multi-device
------------
The grid axis is sharded over ``devices`` (default: every device JAX sees) with a
:class:`jax.sharding.NamedSharding`; a grid that does not divide evenly is padded with copies of a
real member and the padding is dropped. Nothing else is needed on GPUs and TPUs. On a CPU host,
XLA runs one device on all cores but a vmapped training of small matrices rarely keeps them busy;
*one host device per core* is how a sweep uses every core. Choose the number before JAX starts
(importing :mod:`jaxreg` does not start it):

.. code-block:: python

    import os
    import jax
    jax.config.update("jax_num_cpu_devices", os.cpu_count())  # before any JAX operation
    import jaxreg
    losses = jaxreg.sweep.run(train, jaxreg.sweep.grid(lam=lambdas), key=jax.random.key(0))

or from the shell, ``XLA_FLAGS=--xla_force_host_platform_device_count=8 python train.py``.

Many processes
--------------
For several hosts (or several processes on one machine), call :func:`jax.distributed.initialize`
in every process before any other JAX call and run the same program everywhere. The grid is then
sharded over the devices of all processes: each process places its own shards from its own copy
of the grid, the key and ``data`` (they must be the same in every process), every process takes
part in every call, and the results are *global* arrays, of which each process holds only its
shards. :func:`to_host` turns them into numpy arrays of the whole value on every process.
:func:`run_steps` checkpoints need a directory that every process sees (a shared filesystem):
process 0 writes the checkpoint once every process has finished the chunk, and every process
reads it, and checks its fingerprint, to resume. The results equal those of one process up to
floating-point reassociation; a resumed sweep is bit-identical to an uninterrupted one on the same
processes and devices. If a process dies, the others exit with an error once JAX's coordination
service misses its heartbeat (``heartbeat_timeout_seconds`` of :func:`jax.distributed.initialize`).
CPU processes need JAX's gloo collectives:

.. code-block:: python

    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address="10.0.0.1:1234", num_processes=2, process_id=i)
    import jaxreg
    result = jaxreg.sweep.run_steps(init, step, grid, num_steps=1000, key=jax.random.key(0),
                                    checkpoint_dir="/shared/sweep")
    final = jaxreg.sweep.to_host(result.state)  # numpy, on every process

For grids far larger than fit in memory at once, ``grid_batch_size`` runs :func:`run` in batches
of that many members, all with the same compiled program.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxreg import _checkpoint
from jaxreg._checkpoint import CheckpointError, CheckpointMismatchError

PyTree = Any
Grid = Mapping[str, Any]

_AXIS = "grid"

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "SweepResult",
    "grid",
    "run",
    "run_steps",
    "to_host",
]

CheckpointError.__module__ = __name__
CheckpointMismatchError.__module__ = __name__


class SweepResult(NamedTuple):
    """What :func:`run_steps` returns: arrays on the devices (over several processes, global
    arrays: :func:`to_host` gives their values on every process).

    Attributes:
      state: the final state of every member, stacked ``[K, ...]`` (``[K, S, ...]`` with seeds).
      metrics: the metrics of every step, stacked member-first: ``[K, num_steps, ...]``
        (``[K, S, num_steps, ...]`` with seeds), so ``metrics[k]`` is member ``k``'s history.
      diverged: bool ``[K]`` (``[K, S]``): True where the member's state or metrics held a NaN
        or infinity at any step (its later values are meaningless; the others are unaffected).
    """

    state: PyTree
    metrics: PyTree
    diverged: jax.Array


# ---------------------------------------------------------------------------------------------
# Grids


def grid(**axes: Sequence[Any]) -> dict[str, np.ndarray]:
    """The Cartesian product of hyperparameter axes, as a grid (dict of equal-length arrays).

    Ordered like :func:`itertools.product`: the last axis varies fastest.

    Args:
      **axes: one 1-D sequence of values per hyperparameter.

    Returns:
      ``{name: values[K]}`` with ``K`` the product of the axis lengths.

    Example:
      >>> from jaxreg import sweep
      >>> g = sweep.grid(lam=[0.1, 1.0], seed=[0, 1, 2])
      >>> g["lam"].tolist(), g["seed"].tolist()
      ([0.1, 0.1, 0.1, 1.0, 1.0, 1.0], [0, 1, 2, 0, 1, 2])
    """
    if not axes:
        raise ValueError("grid needs at least one axis, e.g. grid(lam=[0.1, 1.0])")
    columns = {}
    for name, values in axes.items():
        array = np.asarray(values)
        if array.ndim != 1:
            raise ValueError(f"grid axis {name!r} must be a 1-D sequence, got shape {array.shape}")
        if array.size == 0:
            raise ValueError(f"grid axis {name!r} is empty")
        columns[name] = array
    index = np.array(list(itertools.product(*(range(len(a)) for a in columns.values()))))
    return {name: a[index[:, i]] for i, (name, a) in enumerate(columns.items())}


def _check_grid(grid: Grid) -> tuple[dict[str, np.ndarray], int]:
    """Validate a grid; return it as host arrays of JAX's canonical dtypes, and its size."""
    if not isinstance(grid, Mapping):
        raise TypeError(f"grid must be a dict of 1-D arrays, got {type(grid).__name__}")
    if not grid:
        raise ValueError("grid is empty: it needs at least one hyperparameter")
    columns = {}
    for name, values in grid.items():
        if not isinstance(name, str):
            raise TypeError(f"grid keys must be strings, got {name!r}")
        array = np.asarray(values)
        if array.ndim != 1:
            raise ValueError(f"grid[{name!r}] must be 1-D, got shape {array.shape}")
        if array.size == 0:
            raise ValueError(f"grid[{name!r}] is empty")
        if array.dtype.kind not in "biufc":
            raise TypeError(f"grid[{name!r}] must hold numbers, got dtype {array.dtype}")
        columns[name] = array.astype(jax.dtypes.canonicalize_dtype(array.dtype), copy=False)
    sizes = {name: a.size for name, a in columns.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"grid entries must all have the same length, got {sizes}")
    return columns, next(iter(sizes.values()))


def _check_count(value: Any, name: str, *, allow_none: bool) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return int(value)


# ---------------------------------------------------------------------------------------------
# Devices and placement


def _mesh(devices: Sequence[Any] | None) -> Mesh:
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("devices must not be empty")
    return Mesh(np.asarray(devices, dtype=object), (_AXIS,))


def _is_key(leaf: Any) -> bool:
    dtype = getattr(leaf, "dtype", None)
    return dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key)


def _put(array: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array from this process's copy of the whole value: each process places only its
    own shards, so this works across processes."""
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def _put_members(array: np.ndarray, mesh: Mesh) -> jax.Array:
    """Place a host array with the member axis first, sharded over the mesh."""
    return _put(array, NamedSharding(mesh, P(_AXIS)))


def _replicate(leaf: Any, sharding: NamedSharding) -> jax.Array | bool | int | float | complex:
    if _is_key(leaf):  # a key array travels as its key data
        data = _replicate(jax.random.key_data(leaf), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
    if getattr(leaf, "weak_type", False) and leaf.ndim == 0:
        leaf = leaf.item()
    if type(leaf) in (bool, int, float, complex):
        return leaf  # jit takes a Python scalar as a weakly typed value, as it would unplaced
    return _put(_host(leaf), sharding)


def _put_replicated(tree: PyTree, mesh: Mesh) -> PyTree:
    """Every leaf of ``tree`` (this process's copy) as a global array replicated over the mesh."""
    sharding = NamedSharding(mesh, P())
    return jax.tree.map(lambda leaf: _replicate(leaf, sharding), tree)


def _shard_members(tree: PyTree, mesh: Mesh) -> PyTree:
    """Inside a trace: keep the leading (member) axis of every output sharded over the mesh."""
    sharding = NamedSharding(mesh, P(_AXIS))
    return jax.tree.map(lambda leaf: jax.lax.with_sharding_constraint(leaf, sharding), tree)


def _pad_rows(array: np.ndarray, size: int) -> np.ndarray:
    """Pad the leading axis to ``size`` by repeating the last real row (a valid member)."""
    missing = size - array.shape[0]
    if missing <= 0:
        return array
    return np.concatenate([array, np.repeat(array[-1:], missing, axis=0)])


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _host(leaf: Any) -> np.ndarray:
    if _is_key(leaf):
        leaf = jax.random.key_data(leaf)
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        if leaf.is_fully_replicated:
            return np.asarray(leaf.addressable_data(0))
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
    return np.asarray(leaf)


def to_host(tree: PyTree) -> PyTree:
    """Every array of ``tree`` as a numpy array of its whole value, on this process.

    The results of :func:`run` and :func:`run_steps` are sharded over devices; after
    :func:`jax.distributed.initialize` they span several processes and no process holds the whole
    value (``numpy.asarray`` fails on them). ``to_host`` gathers them: call it on *every* process
    with the same tree, since gathering an array that spans processes is a collective operation.
    A PRNG key array becomes its key data (:func:`jax.random.key_data`); other leaves go through
    ``numpy.asarray``.

    Args:
      tree: a pytree of arrays (global or local ``jax.Array``, numpy arrays or scalars).

    Returns:
      The same tree with numpy arrays as leaves.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxreg import sweep
      >>> w = sweep.run(lambda hp, key: 2.0 * hp["lam"], sweep.grid(lam=[1.0, 2.0]),
      ...               key=jax.random.key(0))
      >>> sweep.to_host({"w": w})
      {'w': array([2., 4.], dtype=float32)}
    """
    return jax.tree.map(_host, tree)


# ---------------------------------------------------------------------------------------------
# run


def _per_member(fn: Callable, seeds: int | None) -> Callable:
    """``fn(hparams, key)`` vmapped over grid members (and over ``seeds`` split keys)."""
    if seeds is None:
        return jax.vmap(fn, in_axes=(0, None))

    def with_seeds(hparams, key):
        keys = jax.random.split(key, seeds)
        return jax.vmap(fn, in_axes=(None, 0))(hparams, keys)

    return jax.vmap(with_seeds, in_axes=(0, None))


# train_fn, seeds and mesh are static: the compiled program is cached per train_fn (jit's own
# cache), while hyperparameter values and the key are arguments, so new values never retrace.
@partial(jax.jit, static_argnums=(0,), static_argnames=("seeds", "mesh"))
def _run_batch(train_fn, hparams, key, *, seeds, mesh):
    return _shard_members(_per_member(train_fn, seeds)(hparams, key), mesh)


def run(
    train_fn: Callable[[dict[str, jax.Array], jax.Array], PyTree],
    grid: Grid,
    *,
    key: jax.Array,
    seeds: int | None = None,
    devices: Sequence[Any] | None = None,
    grid_batch_size: int | None = None,
) -> PyTree:
    """Train every member of ``grid`` in one compiled program, sharded over ``devices``.

    Member ``k`` is ``train_fn({name: grid[name][k] for name in grid}, key)``; with ``seeds=S``,
    seed ``s`` of every member uses ``jax.random.split(key, S)[s]`` (common random numbers
    across the grid, so differences between members are not noise between seeds).

    The program is ``jit(vmap(train_fn))`` with the grid axis sharded over a 1-D mesh of
    ``devices``; it is traced and compiled once per ``train_fn``, grid size and batch size, and
    reused for new hyperparameter values and keys (pass the same function object each time: a
    new lambda or ``functools.partial`` per call is a new program). A grid that does not
    divide evenly over the devices (or into batches) is padded with copies of its last member,
    and the padding is dropped.

    Args:
      train_fn: ``train_fn(hparams, key) -> pytree``, a whole training; ``hparams`` is a dict of
        0-d arrays (traced: use them as data, not in Python control flow).
      grid: dict of equal-length 1-D arrays (see :func:`grid`).
      key: a PRNG key (``jax.random.key`` or ``jax.random.PRNGKey``).
      seeds: number of seeds per member, or None for one run per member with ``key`` itself.
      devices: devices to shard the grid over (default ``jax.devices()``).
      grid_batch_size: at most this many members at once (rounded up to a multiple of the
        device count), to bound memory for large grids; every batch runs the same compiled
        program. Default: the whole grid at once.

    Returns:
      ``train_fn``'s output with every leaf stacked ``[K, ...]`` (``[K, S, ...]`` with seeds).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxreg import sweep
      >>> def train(hp, key):  # ridge regression on one feature, by gradient descent
      ...     x = jnp.array([1.0, 2.0, 3.0]); y = 2.0 * x
      ...     def step(w, _):
      ...         grad = jnp.mean((w * x - y) * x) + hp["lam"] * w
      ...         return w - 0.1 * grad, None
      ...     w, _ = jax.lax.scan(step, 0.0, length=200)
      ...     return w
      >>> w = sweep.run(train, sweep.grid(lam=[0.0, 1.0]), key=jax.random.key(0))
      >>> w.shape, [round(float(v), 3) for v in w]  # closed form: 2·(14/3) / (14/3 + λ)
      ((2,), [2.0, 1.647])
    """
    columns, size = _check_grid(grid)
    seeds = _check_count(seeds, "seeds", allow_none=True)
    grid_batch_size = _check_count(grid_batch_size, "grid_batch_size", allow_none=True)
    if not callable(train_fn):
        raise TypeError(f"train_fn must be callable, got {type(train_fn).__name__}")
    mesh = _mesh(devices)
    num_devices = mesh.devices.size
    batch = _round_up(min(grid_batch_size or size, size), num_devices)
    padded = {name: _pad_rows(a, _round_up(size, batch)) for name, a in columns.items()}
    key = _put_replicated(key, mesh)
    outputs = []
    for start in range(0, size, batch):
        hparams = {name: _put_members(a[start : start + batch], mesh) for name, a in padded.items()}
        outputs.append(_run_batch(train_fn, hparams, key, seeds=seeds, mesh=mesh))
    if len(outputs) == 1:
        return jax.tree.map(lambda leaf: leaf[:size], outputs[0])
    return jax.tree.map(lambda *leaves: jnp.concatenate(leaves)[:size], *outputs)


# ---------------------------------------------------------------------------------------------
# run_steps


def _all_finite(tree: PyTree) -> jax.Array:
    flags = [
        jnp.all(jnp.isfinite(leaf))
        for leaf in jax.tree.leaves(tree)
        if jnp.issubdtype(leaf.dtype, jnp.inexact)
    ]
    return jnp.all(jnp.stack(flags)) if flags else jnp.asarray(True)


def _strong(leaf: jax.Array) -> jax.Array:
    """Drop weak typing, so the state from init_fn and from a chunk hit one compiled chunk."""
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        return leaf
    return jax.lax.convert_element_type(leaf, leaf.dtype)


def _with_data(fn: Callable, data: PyTree) -> Callable:
    """``fn`` with the shared ``data`` as its last argument, when there is any."""
    return fn if data is None else (lambda *args: fn(*args, data))


@partial(jax.jit, static_argnums=(0,), static_argnames=("seeds", "mesh"))
def _init_members(init_fn, hparams, key, data, *, seeds, mesh):
    def init_one(hp, member_key):
        state = jax.tree.map(_strong, _with_data(init_fn, data)(hp, member_key))
        return state, ~_all_finite(state)

    return _shard_members(_per_member(init_one, seeds)(hparams, key), mesh)


def _chunk_one(step_fn, chunk_size, state, diverged, hparams, start, num_steps, data):
    """``chunk_size`` steps of one member; steps at or beyond ``num_steps`` leave it unchanged,
    so a last partial chunk reuses the same compiled program."""
    step = _with_data(step_fn, data)

    def body(carry, offset):
        state, diverged = carry
        new_state, metrics = step(state, hparams)
        active = start + offset < num_steps
        state = jax.tree.map(lambda new, old: jnp.where(active, new, old), new_state, state)
        finite = _all_finite(new_state) & _all_finite(metrics)
        return (state, diverged | (active & ~finite)), metrics

    (state, diverged), metrics = jax.lax.scan(
        body, (state, diverged), jnp.arange(chunk_size, dtype=jnp.int32)
    )
    return state, diverged, metrics


@partial(
    jax.jit,
    static_argnums=(0,),
    static_argnames=("chunk_size", "seeds", "mesh"),
    donate_argnums=(1, 2),
)
def _run_chunk(
    step_fn, state, diverged, hparams, start, num_steps, data, *, chunk_size, seeds, mesh
):
    one = partial(_chunk_one, step_fn, chunk_size)
    if seeds is not None:
        one = jax.vmap(one, in_axes=(0, 0, None, None, None, None))
    members = jax.vmap(one, in_axes=(0, 0, 0, None, None, None))
    return _shard_members(members(state, diverged, hparams, start, num_steps, data), mesh)


# run_steps's own fingerprint parts (see _fingerprint); callers name theirs otherwise
_SWEEP_PARTS = (
    "grid", "num_steps", "chunk_size", "seeds", "key", "state/metrics structure", "data",
)  # fmt: skip


def _user_parts(fingerprint: Mapping[str, Any] | None) -> dict[str, str]:
    """The caller's named fingerprint parts, digested (checked before anything compiles)."""
    if fingerprint is None:
        return {}
    if not isinstance(fingerprint, Mapping):
        raise TypeError(
            f"fingerprint must be a dict of named parts, got {type(fingerprint).__name__}"
        )
    parts = {}
    for name, value in fingerprint.items():
        if not isinstance(name, str) or name in _SWEEP_PARTS:
            raise ValueError(
                f"fingerprint: part names must be strings other than run_steps's own parts "
                f"{_SWEEP_PARTS}, got {name!r}"
            )
        try:
            parts[name] = _checkpoint.digest(to_host(value))
        except TypeError as error:
            raise TypeError(
                f"fingerprint[{name!r}]: {error}; give numbers, strings, arrays or lists of them"
            ) from None
    return parts


def _leaf_spec(leaf: Any, member_ndim: int) -> str:
    return f"{tuple(leaf.shape[member_ndim:])}:{leaf.dtype}"


def _fingerprint(
    columns: dict[str, np.ndarray],
    num_steps: int,
    chunk_size: int,
    seeds: int | None,
    key: jax.Array,
    shapes: tuple[PyTree, PyTree],
    member_ndim: int,
    data: PyTree,
) -> dict[str, str]:
    """What a checkpoint must match to be resumed, one digest per part (for the error);
    ``shapes`` are the state's and the metrics'."""
    structures = [
        (str(jax.tree.structure(tree)), [_leaf_spec(leaf, member_ndim) for leaf in leaves])
        for tree in shapes
        for leaves in [jax.tree.leaves(tree)]
    ]
    impl = str(jax.random.key_impl(key)) if _is_key(key) else "raw"
    parts = {
        "grid": _checkpoint.digest(columns),
        "num_steps": str(num_steps),
        "chunk_size": str(chunk_size),
        "seeds": str(seeds),
        "key": _checkpoint.digest([impl, to_host(key)]),
        "state/metrics structure": _checkpoint.digest(structures),
    }
    if data is not None:
        parts["data"] = _checkpoint.digest(to_host(data))
    return parts


def _barrier(name: str) -> None:
    """Wait until every process gets here (nothing to wait for in a single process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _agree(checkpoint_dir: str, steps_done: int, problem: CheckpointError | None) -> None:
    """Every process must have found the same checkpoint; a problem with it is raised on every
    process alike."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        found = np.asarray([steps_done, problem is not None])
        seen = np.asarray(multihost_utils.process_allgather(found))
        if np.any(seen != seen[0]):
            raise CheckpointError(
                f"checkpoint_dir {checkpoint_dir!r}: the processes found different checkpoints "
                f"(steps done per process, -1 for none or unreadable: {seen[:, 0].tolist()}); "
                "it must be a directory every process sees, on a shared filesystem"
            )
    if problem is not None:
        raise problem


def _open_checkpoint(
    checkpoint_dir: str | os.PathLike | None, fingerprint: dict[str, str]
) -> tuple[str | None, dict[str, np.ndarray] | None, int]:
    """The checkpoint's path, and the checkpoint to resume (checked) with its step count."""
    if checkpoint_dir is None:
        return None, None, 0
    checkpoint_dir = os.fspath(checkpoint_dir)
    os.makedirs(checkpoint_dir, exist_ok=True)
    path = os.path.join(checkpoint_dir, _checkpoint.NAME)
    saved, steps_done, problem = None, -1, None
    if os.path.exists(path):
        try:
            saved = _checkpoint.load(path, checkpoint_dir)
            steps_done = _checkpoint.check(saved, fingerprint, checkpoint_dir, path)
        except CheckpointError as error:
            problem = error
    _agree(checkpoint_dir, steps_done, problem)
    return path, saved, max(steps_done, 0)


def _restore_members(
    saved: dict[str, np.ndarray], name: str, like: jax.Array, size: int, mesh: Mesh,
    checkpoint_dir: str,
) -> jax.Array:  # fmt: skip
    """One member-stacked array of the checkpoint, padded and placed as the chunk's outputs are
    (so the compiled chunk is reused)."""
    array = _checkpoint.restore(saved, name, like, size, checkpoint_dir)
    placed = _put_members(_pad_rows(array, like.shape[0]), mesh)
    if _is_key(like):
        return jax.random.wrap_key_data(placed, impl=jax.random.key_impl(like))
    return placed


def _resume(
    saved: dict[str, np.ndarray], state: PyTree, diverged: jax.Array,
    metric_leaves: list[np.ndarray], size: int, mesh: Mesh, checkpoint_dir: str,
) -> tuple[PyTree, jax.Array]:  # fmt: skip
    """The checkpoint's state and divergence flags in place of the initial ones; the metrics so
    far fill ``metric_leaves``."""
    restore = partial(_restore_members, saved, size=size, mesh=mesh, checkpoint_dir=checkpoint_dir)
    leaves, treedef = jax.tree.flatten(state)
    state = treedef.unflatten([restore(f"state/{i}", leaf) for i, leaf in enumerate(leaves)])
    for i, leaf in enumerate(metric_leaves):
        leaf[...] = _checkpoint.restore(saved, f"metrics/{i}", leaf, size, checkpoint_dir)
    return state, restore("diverged", diverged)


def _save(
    path: str, fingerprint: dict[str, str], steps_done: int, state: PyTree,
    diverged: np.ndarray, metric_leaves: list[np.ndarray], size: int,
) -> None:  # fmt: skip
    """Process 0 writes the checkpoint once every process has finished the chunk (gathering the
    state is collective), and every process waits until it is written."""
    arrays = {f"state/{i}": _host(leaf)[:size] for i, leaf in enumerate(jax.tree.leaves(state))}
    arrays["diverged"] = diverged
    arrays.update({f"metrics/{i}": leaf for i, leaf in enumerate(metric_leaves)})
    if jax.process_index() == 0:
        _checkpoint.save(path, _checkpoint.contents(fingerprint, steps_done, arrays))
    _barrier(f"jaxreg.sweep.run_steps checkpoint {steps_done}")


def _record(
    metric_leaves: list[np.ndarray], chunk_metrics: PyTree, steps_done: int, taken: int,
    size: int, step_axis: int,
) -> None:  # fmt: skip
    """Copy a chunk's metrics (its first ``taken`` steps of the real members) to the host."""
    window = (slice(None),) * step_axis + (slice(steps_done, steps_done + taken),)
    first = (slice(None),) * step_axis + (slice(taken),)
    for leaf, new in zip(metric_leaves, jax.tree.leaves(chunk_metrics), strict=True):
        leaf[window] = _host(new)[:size][first]


def _progress_bar(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is an optional extra: no bar without it
        return None
    return tqdm(total=total, initial=initial, unit="step", desc="sweep")


def run_steps(
    init_fn: Callable[[dict[str, jax.Array], jax.Array], PyTree],
    step_fn: Callable[[PyTree, dict[str, jax.Array]], tuple[PyTree, PyTree]],
    grid: Grid,
    *,
    num_steps: int,
    key: jax.Array,
    chunk_size: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    progress: bool = True,
    devices: Sequence[Any] | None = None,
    seeds: int | None = None,
    data: PyTree = None,
    fingerprint: Mapping[str, Any] | None = None,
) -> SweepResult:
    """Train every member of ``grid`` step by step, in compiled chunks, resumable after a crash.

    Member ``k`` starts from ``init_fn(hparams_k, key)`` (seed ``s`` of ``seeds=S``: from
    ``jax.random.split(key, S)[s]``) and takes ``num_steps`` steps
    ``state, metrics = step_fn(state, hparams_k)``. Steps run ``chunk_size`` at a time in one
    compiled chunk (a ``lax.scan`` inside ``jit(vmap)``, the state's buffers donated) that is
    traced once and reused for every chunk, the last partial one included (steps past
    ``num_steps`` are masked). Between chunks a progress bar advances (tqdm, if installed) and,
    with ``checkpoint_dir``, the state, the metrics so far and the step count are written
    atomically to ``checkpoint_dir/sweep_checkpoint.npz`` (no pickle). Started again with the
    same arguments, the sweep resumes from that file and ends bit-identical to an uninterrupted
    run, losing at most one chunk of work.

    A checkpoint is resumed only when its fingerprint matches, part by part: the sweep's own
    parts ``"grid"``, ``"num_steps"``, ``"chunk_size"``, ``"seeds"``, ``"key"``,
    ``"state/metrics structure"`` and ``"data"`` (a digest of ``data``'s values), and the named
    parts given in ``fingerprint``. A mismatch raises :class:`CheckpointMismatchError`, whose
    ``differing`` names the parts that changed; an unreadable file raises
    :class:`CheckpointError`. Never a silent restart. After :func:`jax.distributed.initialize`
    (see the module's notes on many processes) process 0 writes the checkpoint and every process
    checks it and resumes from it, so ``checkpoint_dir`` must be on a filesystem they all see.

    Args:
      init_fn: ``init_fn(hparams, key) -> state`` for one member.
      step_fn: ``step_fn(state, hparams) -> (state, metrics)`` for one member; randomness comes
        from a key kept in the state.
      grid: dict of equal-length 1-D arrays (see :func:`grid`).
      num_steps: number of steps, > 0.
      key: a PRNG key (``jax.random.key`` or ``jax.random.PRNGKey``).
      chunk_size: steps per compiled chunk (default ``ceil(num_steps / 10)``).
      checkpoint_dir: directory for the checkpoint (created if missing), or None for none.
      progress: show a progress bar (needs tqdm; on process 0 only).
      devices: devices to shard the grid over (default ``jax.devices()``: every process's).
      seeds: number of seeds per member, or None for one run per member with ``key`` itself.
      data: a pytree of arrays every member reads (training data, initial parameters),
        replicated to every device and passed as the last argument: ``init_fn(hparams, key,
        data)`` and ``step_fn(state, hparams, data)``. Passed as an argument rather than closed
        over, a second sweep with new values of the same shapes (and the same ``init_fn`` and
        ``step_fn``) reuses the compiled program; a checkpoint remembers a digest of it.
      fingerprint: named parts the checkpoint must also match, ``{name: value}`` with values
        made of numbers, strings and arrays (the settings ``step_fn`` closes over, say): a
        resume after one of them changed raises :class:`CheckpointMismatchError` naming it.

    Returns:
      :class:`SweepResult` ``(state [K, ...], metrics [K, num_steps, ...], diverged [K])``, with
      an extra seed axis after ``K`` when ``seeds`` is given.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxreg import sweep
      >>> def init(hp, key):
      ...     return jnp.zeros(())
      >>> def step(w, hp):  # gradient descent on (w - 3)² / 2 + lam · w² / 2
      ...     w = w - hp["lr"] * ((w - 3.0) + hp["lam"] * w)
      ...     return w, w
      >>> result = sweep.run_steps(
      ...     init, step, sweep.grid(lam=[0.0, 2.0], lr=[0.5, 30.0]), num_steps=50,
      ...     key=jax.random.key(0), progress=False)
      >>> result.metrics.shape, result.diverged.tolist()
      ((4, 50), [False, True, False, True])
      >>> [round(float(w), 3) for w in result.state[::2]]  # 3 / (1 + lam)
      [3.0, 1.0]
    """
    columns, size = _check_grid(grid)
    num_steps = _check_count(num_steps, "num_steps", allow_none=False)
    chunk_size = _check_count(chunk_size, "chunk_size", allow_none=True) or -(-num_steps // 10)
    seeds = _check_count(seeds, "seeds", allow_none=True)
    for name, fn in (("init_fn", init_fn), ("step_fn", step_fn)):
        if not callable(fn):
            raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
    user_parts = _user_parts(fingerprint)
    mesh = _mesh(devices)
    padded_size = _round_up(size, mesh.devices.size)
    member_ndim = 1 if seeds is None else 2
    hparams = {name: _put_members(_pad_rows(a, padded_size), mesh) for name, a in columns.items()}
    shared = None if data is None else _put_replicated(data, mesh)
    limit = np.int32(num_steps)
    chunk = partial(_run_chunk, step_fn, chunk_size=chunk_size, seeds=seeds, mesh=mesh)

    # Initialising is cheap, and its concrete output lets eval_shape share the chunk's trace.
    state, diverged = _init_members(
        init_fn, hparams, _put_replicated(key, mesh), shared, seeds=seeds, mesh=mesh
    )
    start = np.int32(0)
    _, _, metric_shapes = jax.eval_shape(chunk, state, diverged, hparams, start, limit, shared)
    metrics = jax.tree.map(
        lambda m: np.zeros(
            (size,) + m.shape[1:member_ndim] + (num_steps,) + m.shape[member_ndim + 1 :], m.dtype
        ),
        metric_shapes,
    )
    metric_leaves, metric_def = jax.tree.flatten(metrics)
    fingerprint = _fingerprint(
        columns, num_steps, chunk_size, seeds, key, (state, metric_shapes), member_ndim, data
    )
    fingerprint.update(user_parts)
    path, saved, steps_done = _open_checkpoint(checkpoint_dir, fingerprint)
    if saved is not None:
        state, diverged = _resume(
            saved, state, diverged, metric_leaves, size, mesh, os.fspath(checkpoint_dir)
        )

    bar = _progress_bar(progress and jax.process_index() == 0, num_steps, steps_done)
    try:
        while steps_done < num_steps:
            state, diverged, chunk_metrics = chunk(
                state, diverged, hparams, np.int32(steps_done), limit, shared
            )
            taken = min(chunk_size, num_steps - steps_done)
            _record(metric_leaves, chunk_metrics, steps_done, taken, size, member_ndim)
            steps_done += taken
            diverged_now = _host(diverged)[:size]  # on every process: gathering is collective
            if path is not None:
                _save(path, fingerprint, steps_done, state, diverged_now, metric_leaves, size)
            if bar is not None:
                # postfix first without a redraw, so each chunk draws the bar once
                bar.set_postfix(diverged=int(np.sum(diverged_now)), refresh=False)
                bar.update(taken)
    finally:
        if bar is not None:
            bar.close()

    return SweepResult(
        state=jax.tree.map(lambda leaf: leaf[:size], state),
        metrics=_put_replicated(jax.tree.unflatten(metric_def, metric_leaves), mesh),
        diverged=diverged[:size],
    )

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

Multi-device and multi-host
---------------------------
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
For several hosts, call ``jax.distributed.initialize()`` on every host before building the
grid; every process runs the same program and the grid is sharded over all hosts' devices
(outputs are global arrays; :func:`run_steps` gathers them to every host for its checkpoints).

For grids far larger than fit in memory at once, ``grid_batch_size`` runs :func:`run` in batches
of that many members, all with the same compiled program.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

PyTree = Any
Grid = Mapping[str, Any]

_AXIS = "grid"
_CHECKPOINT_NAME = "sweep_checkpoint.npz"
_CHECKPOINT_FORMAT = "jaxreg.sweep.run_steps/1"

__all__ = ["SweepResult", "grid", "run", "run_steps"]


class SweepResult(NamedTuple):
    """What :func:`run_steps` returns.

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


def _put_members(array: np.ndarray, mesh: Mesh) -> jax.Array:
    """Place a host array with the member axis first, sharded over the mesh (multi-host safe)."""
    sharding = NamedSharding(mesh, P(_AXIS))
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def _put_like(array: np.ndarray, like: jax.Array) -> jax.Array:
    """Place a host array exactly like ``like`` (same sharding: the compiled chunk is reused)."""
    return jax.make_array_from_callback(array.shape, like.sharding, lambda index: array[index])


def _put_replicated(tree: PyTree, mesh: Mesh) -> PyTree:
    return jax.device_put(tree, NamedSharding(mesh, P()))


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


def _to_host(leaf: jax.Array) -> np.ndarray:
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    if getattr(leaf, "is_fully_addressable", True):
        return np.asarray(leaf)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))


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


def _leaf_spec(leaf: Any, member_ndim: int) -> str:
    return f"{tuple(leaf.shape[member_ndim:])}:{leaf.dtype}"


def _digest(*parts: Any) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        data = part.tobytes() if isinstance(part, np.ndarray) else repr(part).encode()
        hasher.update(data)
        hasher.update(b"\x00")
    return hasher.hexdigest()


def _fingerprint(
    columns: dict[str, np.ndarray],
    num_steps: int,
    chunk_size: int,
    seeds: int | None,
    key: jax.Array,
    state_shapes: PyTree,
    metric_shapes: PyTree,
    member_ndim: int,
    data: PyTree,
) -> dict[str, str]:
    """What a checkpoint must match to be resumed, one digest per component (for the error)."""
    grid_parts = [(name, a.dtype.str, a.shape) for name, a in columns.items()]
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key_parts = (str(jax.random.key_impl(key)), np.asarray(jax.random.key_data(key)))
    else:
        key_parts = ("raw", np.asarray(key))
    structures = [
        (str(jax.tree.structure(tree)), [_leaf_spec(leaf, member_ndim) for leaf in leaves])
        for tree in (state_shapes, metric_shapes)
        for leaves in [jax.tree.leaves(tree)]
    ]
    parts = {
        "grid": _digest(grid_parts, *columns.values()),
        "num_steps": str(num_steps),
        "chunk_size": str(chunk_size),
        "seeds": str(seeds),
        "key": _digest(*key_parts),
        "state/metrics structure": _digest(structures),
    }
    if data is not None:
        leaves = (
            _to_host(leaf) if isinstance(leaf, jax.Array) else np.asarray(leaf)
            for leaf in jax.tree.leaves(data)
        )
        parts["data"] = _digest(str(jax.tree.structure(data)), *leaves)
    return parts


def _savable(array: np.ndarray) -> np.ndarray:
    """np.save stores only numpy's own dtypes without pickle: keep bfloat16 & co. as raw bits."""
    if array.dtype.kind == "V":
        return array.view(np.dtype(f"u{array.dtype.itemsize}"))
    return array


def _save_checkpoint(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically: a temporary file in the same directory, then ``os.replace``."""
    directory = os.path.dirname(path)
    handle, temporary = tempfile.mkstemp(prefix=".sweep_checkpoint.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **{name: _savable(a) for name, a in arrays.items()})
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise


def _load_checkpoint(path: str, checkpoint_dir: str) -> dict[str, np.ndarray]:
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"checkpoint_dir {checkpoint_dir!r}: {path} is not an npz archive (corrupted, or not "
            "a sweep checkpoint); delete it to start the sweep from scratch"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"checkpoint_dir {checkpoint_dir!r}: {path} is not a readable sweep checkpoint "
            f"({type(error).__name__}: {error}); delete it to start the sweep from scratch"
        ) from error


def _restore_leaf(
    saved: dict[str, np.ndarray], name: str, like: Any, size: int, checkpoint_dir: Any
) -> np.ndarray:
    """One array of a checkpoint, checked against the shape and dtype it must have."""
    if name not in saved:
        raise ValueError(f"checkpoint_dir {checkpoint_dir!r}: the checkpoint lacks {name!r}")
    array = saved[name]
    if like is None:  # a plain scalar
        if array.shape != () or array.dtype.kind not in "iu":
            raise ValueError(f"checkpoint_dir {checkpoint_dir!r}: {name!r} is not an integer")
        return array
    if jnp.issubdtype(like.dtype, jax.dtypes.prng_key):
        like = jax.eval_shape(jax.random.key_data, like)
    shape = (size,) + tuple(like.shape[1:])
    dtype = np.dtype(like.dtype)
    if array.dtype != dtype and array.dtype.itemsize == dtype.itemsize:
        array = array.view(dtype)  # bfloat16 & co. are stored as raw bits
    if array.shape != shape or array.dtype != dtype:
        raise ValueError(
            f"checkpoint_dir {checkpoint_dir!r}: {name!r} has shape {array.shape} and dtype "
            f"{array.dtype}, expected {shape} and {dtype}"
        )
    return array


def _check_resume(
    saved: dict[str, np.ndarray], fingerprint: dict[str, str], checkpoint_dir: str, path: str
) -> None:
    if str(saved.get("format", "")) != _CHECKPOINT_FORMAT:
        raise ValueError(
            f"checkpoint_dir {checkpoint_dir!r}: {path} is not a jaxreg run_steps checkpoint; "
            "delete it or choose another checkpoint_dir"
        )
    differing = [
        part for part, value in fingerprint.items() if str(saved.get(f"fp/{part}", "")) != value
    ]
    if differing:
        raise ValueError(
            f"checkpoint_dir {checkpoint_dir!r} holds a checkpoint of a different sweep "
            f"(differs in: {', '.join(differing)}); resuming it would be wrong. Delete it or "
            "choose another checkpoint_dir"
        )


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
    run, losing at most one chunk of work; a checkpoint of a different sweep (grid, ``num_steps``,
    ``chunk_size``, ``seeds``, key or state structure) or an unreadable file is a ``ValueError``,
    never a silent restart.

    Args:
      init_fn: ``init_fn(hparams, key) -> state`` for one member.
      step_fn: ``step_fn(state, hparams) -> (state, metrics)`` for one member; randomness comes
        from a key kept in the state.
      grid: dict of equal-length 1-D arrays (see :func:`grid`).
      num_steps: number of steps, > 0.
      key: a PRNG key (``jax.random.key`` or ``jax.random.PRNGKey``).
      chunk_size: steps per compiled chunk (default ``ceil(num_steps / 10)``).
      checkpoint_dir: directory for the checkpoint (created if missing), or None for none.
      progress: show a progress bar (needs tqdm).
      devices: devices to shard the grid over (default ``jax.devices()``).
      seeds: number of seeds per member, or None for one run per member with ``key`` itself.
      data: a pytree of arrays every member reads (training data, initial parameters),
        replicated to every device and passed as the last argument: ``init_fn(hparams, key,
        data)`` and ``step_fn(state, hparams, data)``. Passed as an argument rather than closed
        over, a second sweep with new values of the same shapes (and the same ``init_fn`` and
        ``step_fn``) reuses the compiled program; a checkpoint remembers a digest of it.

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
    mesh = _mesh(devices)
    padded_size = _round_up(size, mesh.devices.size)
    member_ndim = 1 if seeds is None else 2
    hparams = {name: _put_members(_pad_rows(a, padded_size), mesh) for name, a in columns.items()}
    key = _put_replicated(key, mesh)
    shared = None if data is None else _put_replicated(data, mesh)
    start = np.int32(0)
    limit = np.int32(num_steps)

    # Initialising is cheap, and its concrete output lets eval_shape share the chunk's trace.
    initial_state, initial_diverged = _init_members(
        init_fn, hparams, key, shared, seeds=seeds, mesh=mesh
    )
    _, _, metric_shapes = jax.eval_shape(
        partial(_run_chunk, step_fn, chunk_size=chunk_size, seeds=seeds, mesh=mesh),
        initial_state,
        initial_diverged,
        hparams,
        start,
        limit,
        shared,
    )
    step_axis = member_ndim
    metrics = jax.tree.map(
        lambda m: np.zeros(
            (size,) + m.shape[1:step_axis] + (num_steps,) + m.shape[step_axis + 1 :], m.dtype
        ),
        metric_shapes,
    )
    fingerprint = _fingerprint(
        columns, num_steps, chunk_size, seeds, key, initial_state, metric_shapes, member_ndim, data
    )

    path = None
    saved = None
    if checkpoint_dir is not None:
        checkpoint_dir = os.fspath(checkpoint_dir)
        os.makedirs(checkpoint_dir, exist_ok=True)
        path = os.path.join(checkpoint_dir, _CHECKPOINT_NAME)
        if os.path.exists(path):
            saved = _load_checkpoint(path, checkpoint_dir)
            _check_resume(saved, fingerprint, checkpoint_dir, path)

    metric_leaves, metric_def = jax.tree.flatten(metrics)
    if saved is None:
        steps_done = 0
        state, diverged = initial_state, initial_diverged
    else:
        steps_done = int(_restore_leaf(saved, "steps_done", None, size, checkpoint_dir))
        state_leaves, state_def = jax.tree.flatten(initial_state)
        restored = []
        for i, like in enumerate(state_leaves):
            leaf = _restore_leaf(saved, f"state/{i}", like, size, checkpoint_dir)
            is_key = jnp.issubdtype(like.dtype, jax.dtypes.prng_key)
            leaf = _put_like(_pad_rows(leaf, padded_size), like)
            if is_key:
                leaf = jax.random.wrap_key_data(leaf, impl=jax.random.key_impl(like))
            restored.append(leaf)
        state = jax.tree.unflatten(state_def, restored)
        diverged = _restore_leaf(saved, "diverged", initial_diverged, size, checkpoint_dir)
        diverged = _put_like(_pad_rows(diverged, padded_size), initial_diverged)
        for i, leaf in enumerate(metric_leaves):
            leaf[...] = _restore_leaf(saved, f"metrics/{i}", leaf, size, checkpoint_dir)
        del initial_state, initial_diverged

    bar = _progress_bar(progress, num_steps, steps_done)
    try:
        while steps_done < num_steps:
            state, diverged, chunk_metrics = _run_chunk(
                step_fn,
                state,
                diverged,
                hparams,
                np.int32(steps_done),
                limit,
                shared,
                chunk_size=chunk_size,
                seeds=seeds,
                mesh=mesh,
            )
            taken = min(chunk_size, num_steps - steps_done)
            window = (slice(None),) * step_axis + (slice(steps_done, steps_done + taken),)
            for leaf, new in zip(metric_leaves, jax.tree.leaves(chunk_metrics), strict=True):
                leaf[window] = _to_host(new)[:size][(slice(None),) * step_axis + (slice(taken),)]
            steps_done += taken
            if path is not None:
                arrays = {
                    "format": np.asarray(_CHECKPOINT_FORMAT),
                    "steps_done": np.asarray(steps_done),
                    "diverged": _to_host(diverged)[:size],
                    **{f"fp/{part}": np.asarray(value) for part, value in fingerprint.items()},
                    **{
                        f"state/{i}": _to_host(leaf)[:size]
                        for i, leaf in enumerate(jax.tree.leaves(state))
                    },
                    **{f"metrics/{i}": leaf for i, leaf in enumerate(metric_leaves)},
                }
                _save_checkpoint(path, arrays)
            if bar is not None:
                # postfix first without a redraw, so each chunk draws the bar once
                bar.set_postfix(diverged=int(np.sum(_to_host(diverged)[:size])), refresh=False)
                bar.update(taken)
    finally:
        if bar is not None:
            bar.close()

    return SweepResult(
        state=jax.tree.map(lambda leaf: leaf[:size], state),
        metrics=jax.tree.unflatten(metric_def, [jnp.asarray(m) for m in metric_leaves]),
        diverged=diverged[:size],
    )

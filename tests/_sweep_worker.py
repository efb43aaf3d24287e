"""Subprocess worker for the sweep tests that need their own process (device count, SIGKILL,
several processes joined by ``jax.distributed``).

Usage: ``python tests/_sweep_worker.py MODE OUT [--devices N] [--checkpoint-dir D]
[--kill-after C] [--shift S] [--coordinator HOST:PORT --num-processes N --process-id I]``.

- ``run``: ``sweep.run``, ``sweep.run_steps`` and (with ``--fit``) ``fit_path`` on small
  problems; writes their results and how the outputs are sharded.
- ``steps``: a checkpointed ``sweep.run_steps``; with ``--kill-after C`` the writing process
  SIGKILLs itself right after writing its C-th checkpoint (while the next chunk may be running).

With ``--coordinator`` the worker is one of ``--num-processes`` processes (CPU devices, gloo
collectives); ``OUT`` may contain ``{process}``, replaced by the process index, and every process
writes the whole results (gathered with ``sweep.to_host``).

The problems are also imported by the tests (one source for both sides); importing this module
does not start a JAX backend, so the device count can still be chosen in ``main``.
"""

from __future__ import annotations

import argparse
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np

X = np.linspace(-1.0, 1.0, 16, dtype=np.float32).reshape(8, 2)
Y = np.array([1.0, -0.5, 0.3, 0.8, -1.2, 0.1, 0.4, -0.9], dtype=np.float32)
DATA = {"X": X, "y": Y, "noise": 0.01}  # a Python float: placed weakly typed, as jit would
NUM_STEPS = 12
CHUNK_SIZE = 2
HEARTBEAT_SECONDS = 5


def make_grid(shift: float = 0.0) -> dict[str, np.ndarray]:
    from jaxreg import sweep

    return sweep.grid(lam=np.array([0.0, 0.1, 1.0]) + shift, lr=[0.1, 0.5])


def train(hp, key):
    def step(w, step_key):
        grad = X.T @ (X @ w - Y) / len(Y) + hp["lam"] * w
        return w - hp["lr"] * grad + 0.01 * jax.random.normal(step_key, w.shape), None

    w, _ = jax.lax.scan(step, jnp.zeros(2), jax.random.split(key, 20))
    return w


def init(hp, key, data):
    return {
        "w": 0.1 * jax.random.normal(key, (2,)),
        "ema": jnp.zeros((2,), jnp.bfloat16),  # exercises a dtype numpy cannot save natively
        "key": key,
    }


def step(state, hp, data):
    key, noise_key = jax.random.split(state["key"])
    w, X, y = state["w"], data["X"], data["y"]
    grad = X.T @ (X @ w - y) / len(y) + hp["lam"] * w
    w = w - hp["lr"] * grad + data["noise"] * jax.random.normal(noise_key, w.shape)
    ema = (0.9 * state["ema"] + 0.1 * w).astype(jnp.bfloat16)
    return {"w": w, "ema": ema, "key": key}, {"loss": jnp.mean((X @ w - y) ** 2)}


def sweep_steps(grid, *, key=0, num_steps=NUM_STEPS, **options):
    """The tests' ``run_steps`` call (``options``: checkpoint_dir, devices, seeds, ...)."""
    from jaxreg import sweep

    return sweep.run_steps(
        init, step, grid, num_steps=num_steps, chunk_size=CHUNK_SIZE, key=jax.random.key(key),
        data=DATA, progress=False, **options,
    )  # fmt: skip


def flatten_result(result) -> dict[str, np.ndarray]:
    """A SweepResult as host arrays on every process (keys as raw data, bfloat16 as float32)."""
    from jaxreg import sweep

    host = sweep.to_host(result)
    return {
        "diverged": host.diverged,
        "loss": host.metrics["loss"],
        "w": host.state["w"],
        "ema": host.state["ema"].astype(np.float32),
        "key": host.state["key"],
    }


def fit(devices=None, **options):
    """A tiny ``fit_path``: 2 λ × (2 folds + all data) = 6 members (``options``: more
    arguments of fit_path)."""
    import jaxreg

    rows = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    labels = (rows[:, 0] + rows[:, 1] > 0).astype(np.int32)
    return jaxreg.fit_path(
        jaxreg.models.mlp([3, 4, 2]), rows, labels, lambdas=[0.1, 0.01], folds=2, steps=6,
        batch_size=8, chunk_size=3, key=jax.random.key(0), devices=devices, **options,
    )  # fmt: skip


def _devices_holding(array: jax.Array) -> int:
    return len({shard.device for shard in array.addressable_shards})


def _start(args) -> None:
    """Choose the device count and, with --coordinator, join the other processes."""
    jax.config.update("jax_num_cpu_devices", args.devices)  # before any JAX operation
    if args.coordinator:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
            heartbeat_timeout_seconds=HEARTBEAT_SECONDS,
        )


def _run(args) -> dict[str, np.ndarray]:
    from jaxreg import sweep

    assert len(jax.local_devices()) == args.devices
    grid = make_grid(args.shift)
    trained = sweep.run(train, grid, key=jax.random.key(0))
    seeded = sweep.run(train, grid, key=jax.random.key(0), seeds=2)
    batched = sweep.run(train, grid, key=jax.random.key(0), grid_batch_size=4)  # 2 batches
    steps = sweep_steps(grid, checkpoint_dir=args.checkpoint_dir)
    results = {
        "run": sweep.to_host(trained),
        "batched": sweep.to_host(batched),
        "seeded": sweep.to_host(seeded),
        "run_devices": _devices_holding(trained),
        "steps_devices": _devices_holding(steps.state["w"]),
        **flatten_result(steps),
    }
    if args.fit:
        fitted = fit()
        results.update(fold_losses=fitted.fold_losses, path_w=fitted.path_params[0]["w"])
    return results


def _steps(args) -> dict[str, np.ndarray]:
    from jaxreg import _checkpoint

    saves = 0
    save = _checkpoint.save

    def counting_save(path, arrays):
        nonlocal saves
        save(path, arrays)
        saves += 1
        if saves == args.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    _checkpoint.save = counting_save
    result = sweep_steps(make_grid(args.shift), checkpoint_dir=args.checkpoint_dir)
    return {"chunks_run": saves, **flatten_result(result)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["run", "steps"])
    parser.add_argument("out")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--checkpoint-dir")
    parser.add_argument("--kill-after", type=int, default=0)
    parser.add_argument("--shift", type=float, default=0.0)
    parser.add_argument("--fit", action="store_true")
    parser.add_argument("--coordinator")
    parser.add_argument("--num-processes", type=int)
    parser.add_argument("--process-id", type=int)
    args = parser.parse_args()
    _start(args)
    results = _run(args) if args.mode == "run" else _steps(args)
    np.savez(args.out.format(process=jax.process_index()), **results)


if __name__ == "__main__":
    main()

"""Subprocess worker for the sweep tests that need their own process (device count, SIGKILL).

Usage: ``python tests/_sweep_worker.py MODE OUT [--devices N] [--checkpoint-dir D]
[--kill-after C] [--shift S]``.

- ``run``: ``sweep.run`` and ``sweep.run_steps`` on a 6-point grid; writes results and how the
  outputs are sharded.
- ``steps``: a checkpointed ``sweep.run_steps``; with ``--kill-after C`` the process SIGKILLs
  itself right after writing its C-th checkpoint (while the next chunk is already running).

The problem is also imported by the tests (one source for both sides); importing this module
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
NUM_STEPS = 12
CHUNK_SIZE = 2


def make_grid(shift: float = 0.0) -> dict[str, np.ndarray]:
    from jaxreg import sweep

    return sweep.grid(lam=np.array([0.0, 0.1, 1.0]) + shift, lr=[0.1, 0.5])


def train(hp, key):
    def step(w, step_key):
        grad = X.T @ (X @ w - Y) / len(Y) + hp["lam"] * w
        return w - hp["lr"] * grad + 0.01 * jax.random.normal(step_key, w.shape), None

    w, _ = jax.lax.scan(step, jnp.zeros(2), jax.random.split(key, 20))
    return w


def init(hp, key):
    return {
        "w": 0.1 * jax.random.normal(key, (2,)),
        "ema": jnp.zeros((2,), jnp.bfloat16),  # exercises a dtype numpy cannot save natively
        "key": key,
    }


def step(state, hp):
    key, noise_key = jax.random.split(state["key"])
    w = state["w"]
    grad = X.T @ (X @ w - Y) / len(Y) + hp["lam"] * w
    w = w - hp["lr"] * grad + 0.01 * jax.random.normal(noise_key, w.shape)
    ema = (0.9 * state["ema"] + 0.1 * w).astype(jnp.bfloat16)
    return {"w": w, "ema": ema, "key": key}, {"loss": jnp.mean((X @ w - Y) ** 2)}


def flatten_result(result) -> dict[str, np.ndarray]:
    """A SweepResult as plain arrays (keys as their raw data, bfloat16 as float32)."""
    arrays = {"diverged": np.asarray(result.diverged), "loss": np.asarray(result.metrics["loss"])}
    arrays["w"] = np.asarray(result.state["w"])
    arrays["ema"] = np.asarray(result.state["ema"].astype(jnp.float32))
    arrays["key"] = np.asarray(jax.random.key_data(result.state["key"]))
    return arrays


def _devices_holding(array: jax.Array) -> int:
    return len({shard.device for shard in array.addressable_shards})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["run", "steps"])
    parser.add_argument("out")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--checkpoint-dir")
    parser.add_argument("--kill-after", type=int, default=0)
    parser.add_argument("--shift", type=float, default=0.0)
    args = parser.parse_args()
    jax.config.update("jax_num_cpu_devices", args.devices)  # before any JAX operation

    from jaxreg import sweep

    grid = make_grid(args.shift)
    key = jax.random.key(0)
    if args.mode == "run":
        assert len(jax.devices()) == args.devices
        trained = sweep.run(train, grid, key=key)
        seeded = sweep.run(train, grid, key=key, seeds=2)
        steps = sweep.run_steps(
            init, step, grid, num_steps=NUM_STEPS, chunk_size=CHUNK_SIZE, key=key, progress=False
        )
        np.savez(
            args.out,
            run=np.asarray(trained),
            seeded=np.asarray(seeded),
            run_devices=_devices_holding(trained),
            steps_devices=_devices_holding(steps.state["w"]),
            **flatten_result(steps),
        )
        return

    saves = 0
    save_checkpoint = sweep._save_checkpoint

    def counting_save(path, arrays):
        nonlocal saves
        save_checkpoint(path, arrays)
        saves += 1
        if saves == args.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    sweep._save_checkpoint = counting_save
    result = sweep.run_steps(
        init,
        step,
        grid,
        num_steps=NUM_STEPS,
        chunk_size=CHUNK_SIZE,
        key=key,
        checkpoint_dir=args.checkpoint_dir,
        progress=False,
    )
    np.savez(args.out, chunks_run=saves, **flatten_result(result))


if __name__ == "__main__":
    main()

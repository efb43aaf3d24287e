"""Benchmark: a λ grid in one compiled sweep vs the Python loops users write.

K = 32 L2 strengths (log-spaced), an MLP 64→128→128→10 on the 8×8 digits (1797×64), batch 128,
400 Adam steps, every λ with the same initialisation and minibatch order (common random
numbers). Compared side by side in one process, one device configuration (one host device per
core, chosen below before any JAX operation), runs interleaved, medians quoted:

  (a) ``jaxreg.sweep.run`` over the 32 λ: one ``jit(vmap(train))`` sharded over the devices;
  (b) a Python loop of the same jitted training (``lax.scan`` over the 400 steps), one λ at a time;
  (c) the per-step loop users write: a jitted step called 400× per λ (timed on a few λ and
      extrapolated to 32, as printed).

Also: the sweep's achieved GFLOP/s (≈ 6·batch·Σ in·out flops per step per member for the
forward + backward matmuls) against the machine's float32 matmul rate measured in the same run,
the trace/compile count, and K = 1024 λ run with ``grid_batch_size`` (bounded memory).

Run: ``python bench/sweep.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import os

import jax

# One host device per core this process may use, set before any JAX operation.
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
jax.config.update("jax_num_cpu_devices", CORES)

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from _common import (  # noqa: E402
    block,
    first_call_seconds,
    matmul_gflops,
    write_json,
)
from jaxreg import sweep  # noqa: E402

SIZES = (64, 128, 128, 10)
BATCH = 128
STEPS = 400
LEARNING_RATE = 1e-3


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from jaxreg import datasets

        data = datasets.load("digits")
        X, y = data.X, data.y
    except (ImportError, AttributeError, ValueError):
        from sklearn.datasets import load_digits as sklearn_digits

        X, y = sklearn_digits(return_X_y=True)
    X = np.asarray(X, np.float32)
    return (X - X.mean(0)) / (X.std(0) + 1e-6), np.asarray(y, np.int32)


def init_mlp(key: jax.Array) -> list[dict[str, jax.Array]]:
    keys = jax.random.split(key, len(SIZES) - 1)
    return [
        {
            "w": jax.random.normal(k, (fan_in, fan_out)) * jnp.sqrt(2.0 / fan_in),
            "b": jnp.zeros(fan_out),
        }
        for k, fan_in, fan_out in zip(keys, SIZES[:-1], SIZES[1:], strict=True)
    ]


def mlp(params, x):
    for layer in params[:-1]:
        x = jax.nn.relu(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def make_training(X: np.ndarray, y: np.ndarray):
    X, y = jnp.asarray(X), jnp.asarray(y)
    optimizer = optax.adam(LEARNING_RATE)

    def loss_fn(params, lam, xb, yb):
        logits = mlp(params, xb)
        data_loss = optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
        return data_loss + 0.5 * lam * sum(jnp.sum(layer["w"] ** 2) for layer in params)

    def step(params, opt_state, lam, batch_key):
        index = jax.random.randint(batch_key, (BATCH,), 0, X.shape[0])
        loss, grads = jax.value_and_grad(loss_fn)(params, lam, X[index], y[index])
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    def start(key):
        init_key, data_key = jax.random.split(key)
        params = init_mlp(init_key)
        return params, optimizer.init(params), jax.random.split(data_key, STEPS)

    def train(hp, key):
        params, opt_state, batch_keys = start(key)

        def body(carry, batch_key):
            params, opt_state, loss = step(*carry, hp["lam"], batch_key)
            return (params, opt_state), loss

        (params, _), losses = jax.lax.scan(body, (params, opt_state), batch_keys)
        accuracy = jnp.mean(jnp.argmax(mlp(params, X), axis=-1) == y)
        return {"final_loss": jnp.mean(losses[-20:]), "train_accuracy": accuracy}

    return train, jax.jit(start), jax.jit(step)


def flops_per_member() -> float:
    matmul_macs = sum(a * b for a, b in zip(SIZES[:-1], SIZES[1:], strict=True))
    return 6.0 * BATCH * matmul_macs * STEPS


def wall_and_cpu_medians(
    fns: dict[str, Callable[[], Any]], *, repeats: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Interleaved median wall time and median process CPU time (all threads) of each function.

    CPU time tells how much of the machine a variant used: wall ≈ CPU / cores when it keeps
    every core busy, and CPU time is what still compares fairly when other jobs share the host.
    """
    walls: dict[str, list[float]] = {name: [] for name in fns}
    cpus: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            block(fn())
            walls[name].append(time.perf_counter() - wall)
            cpus[name].append(time.process_time() - cpu)
    return (
        {name: statistics.median(t) for name, t in walls.items()},
        {name: statistics.median(t) for name, t in cpus.items()},
    )


def matmul_gflops_per_cpu_second(n: int = 1024, repeats: int = 10) -> float:
    """The float32 matmul rate per CPU-second (per core fully used), robust to a shared host."""
    a = jax.random.normal(jax.random.key(0), (n, n))
    matmul = jax.jit(jnp.matmul)
    block(matmul(a, a))
    cpu = time.process_time()
    for _ in range(repeats):
        block(matmul(a, a))
    return 2 * n**3 * repeats / (time.process_time() - cpu) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller K=1024 run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats

    X, y = load_digits()
    lambdas = np.logspace(-5, -1, 32).astype(np.float32)
    grid = sweep.grid(lam=lambdas)
    key = jax.random.key(0)
    train, start, step = make_training(X, y)

    traces = {"count": 0}

    def counted_train(hp, key):
        traces["count"] += 1
        return train(hp, key)

    train_jit = jax.jit(train)

    def run_sweep():
        return sweep.run(counted_train, grid, key=key)

    def loop_of_trainings():
        return [train_jit({"lam": jnp.float32(lam)}, key) for lam in lambdas]

    per_step_lambdas = lambdas[:: len(lambdas) // 4]  # 4 of the 32, extrapolated below

    def per_step_loop():
        losses = []
        for lam in per_step_lambdas:
            params, opt_state, batch_keys = start(key)
            lam = jnp.float32(lam)
            for t in range(STEPS):
                params, opt_state, loss = step(params, opt_state, lam, batch_keys[t])
            losses.append(loss)
        return losses

    rate_before = matmul_gflops()
    print(f"devices: {jax.devices()}  ({CORES} cores)")

    first = {
        "sweep": first_call_seconds(run_sweep),
        "loop_of_trainings": first_call_seconds(loop_of_trainings),
        "per_step_loop": first_call_seconds(per_step_loop),
    }
    traces_after_first = traces["count"]
    medians, cpu_medians = wall_and_cpu_medians(
        {
            "sweep": run_sweep,
            "loop_of_trainings": loop_of_trainings,
            "per_step_loop": per_step_loop,
        },
        repeats=repeats,
    )
    # The machine's rate: the better of two measurements (before and after the timed runs), so
    # that a noisy moment does not flatter the share reported for the sweep.
    rate_after = matmul_gflops()
    rate = max(rate_before, rate_after)
    rate_per_cpu = matmul_gflops_per_cpu_second()
    print(
        f"float32 matmul rate (1024², same process): {rate:.1f} GFLOP/s "
        f"(before {rate_before:.1f}, after {rate_after:.1f})"
    )
    per_step_32 = medians["per_step_loop"] * len(lambdas) / len(per_step_lambdas)
    sweep_flops = flops_per_member() * len(lambdas)
    sweep_gflops = sweep_flops / medians["sweep"] / 1e9
    loop_gflops = sweep_flops / medians["loop_of_trainings"] / 1e9
    per_cpu = {
        "sweep": sweep_flops / cpu_medians["sweep"] / 1e9,
        "loop_of_trainings": sweep_flops / cpu_medians["loop_of_trainings"] / 1e9,
        "per_step_loop": sweep_flops
        * len(per_step_lambdas)
        / len(lambdas)
        / cpu_medians["per_step_loop"]
        / 1e9,
    }
    cores_used = {name: cpu_medians[name] / medians[name] for name in medians}

    # Same answers: member k of the sweep equals the k-th training of the loop.
    swept, looped = run_sweep(), loop_of_trainings()
    max_difference = max(
        float(abs(swept["final_loss"][k] - looped[k]["final_loss"])) for k in range(len(lambdas))
    )

    print(f"\nK = {len(lambdas)} λ, MLP {SIZES}, batch {BATCH}, {STEPS} Adam steps, medians:")
    print(
        f"  (a) sweep.run             {medians['sweep']:8.3f} s   first call {first['sweep']:.2f} s"
    )
    print(
        f"  (b) loop of jitted runs   {medians['loop_of_trainings']:8.3f} s   "
        f"first call {first['loop_of_trainings']:.2f} s"
    )
    print(
        f"  (c) per-step loop         {per_step_32:8.3f} s   (measured on "
        f"{len(per_step_lambdas)} λ: {medians['per_step_loop']:.3f} s, ×{len(lambdas) // 4})"
    )
    print(f"  speed-up vs (b): {medians['loop_of_trainings'] / medians['sweep']:.2f}×")
    print(f"  speed-up vs (c): {per_step_32 / medians['sweep']:.2f}×")
    print(
        f"  sweep: {sweep_gflops:.1f} GFLOP/s = {100 * sweep_gflops / rate:.0f} % of the matmul "
        f"rate (loop of runs: {loop_gflops:.1f} GFLOP/s)"
    )
    print(
        f"  per CPU-second: sweep {per_cpu['sweep']:.1f}, loop of runs "
        f"{per_cpu['loop_of_trainings']:.1f}, per-step loop {per_cpu['per_step_loop']:.1f} "
        f"GFLOP; matmul {rate_per_cpu:.1f} (sweep: {100 * per_cpu['sweep'] / rate_per_cpu:.0f} %)"
    )
    print(
        "  cores kept busy (CPU time / wall): "
        + ", ".join(f"{name} {value:.2f}" for name, value in cores_used.items())
    )
    print(f"  traces of train_fn: {traces_after_first} on the first sweep, {traces['count']} total")
    print(f"  max |final loss sweep − loop| = {max_difference:.2e}")

    # K = 1024 in batches: memory is bounded by the batch, not the grid.
    big_k, big_batch = (128, 64) if args.quick else (1024, 128)
    big_grid = sweep.grid(lam=np.logspace(-6, 0, big_k).astype(np.float32))
    big_traces = traces["count"]
    start_time = time.perf_counter()
    big = block(sweep.run(counted_train, big_grid, key=key, grid_batch_size=big_batch))
    big_seconds = time.perf_counter() - start_time
    big_traces = traces["count"] - big_traces
    mesh = sweep._mesh(None)

    def temp_bytes(members: int) -> int:
        hparams = {"lam": sweep._put_members(np.zeros(members, np.float32), mesh)}
        compiled = sweep._run_batch.lower(train, hparams, key, seeds=None, mesh=mesh).compile()
        return int(compiled.memory_analysis().temp_size_in_bytes)

    batch_memory, whole_memory = temp_bytes(big_batch), temp_bytes(big_k)
    big_gflops = flops_per_member() * big_k / big_seconds / 1e9
    print(
        f"\nK = {big_k} λ with grid_batch_size={big_batch}: {big_seconds:.1f} s including its one "
        f"compile ({big_gflops:.1f} GFLOP/s); traces: {big_traces}; all finite: "
        f"{bool(np.all(np.isfinite(np.asarray(big['final_loss']))))}"
    )
    print(
        f"  XLA temp memory per batch of {big_batch}: {batch_memory / 2**20:.1f} MiB "
        f"(the whole grid at once would need {whole_memory / 2**20:.1f} MiB)"
    )

    write_json(
        "sweep_quick" if args.quick else "sweep",
        {
            "command": "python bench/sweep.py" + (" --quick" if args.quick else ""),
            "config": {
                "K": len(lambdas),
                "sizes": SIZES,
                "batch": BATCH,
                "steps": STEPS,
                "lambdas": "logspace(-5, -1, 32), L2 strength",
                "devices": len(jax.devices()),
                "repeats": repeats,
            },
            "matmul_gflops": rate,
            "matmul_gflops_before_after": [rate_before, rate_after],
            "median_seconds": {**medians, "per_step_loop_32_extrapolated": per_step_32},
            "median_cpu_seconds": cpu_medians,
            "gflops_per_cpu_second": per_cpu,
            "matmul_gflops_per_cpu_second": rate_per_cpu,
            "sweep_share_of_matmul_rate_per_cpu_second": per_cpu["sweep"] / rate_per_cpu,
            "cores_used": cores_used,
            "first_call_seconds": first,
            "per_step_loop_measured_lambdas": len(per_step_lambdas),
            "speedup_vs_loop_of_trainings": medians["loop_of_trainings"] / medians["sweep"],
            "speedup_vs_per_step_loop": per_step_32 / medians["sweep"],
            "sweep_gflops": sweep_gflops,
            "sweep_share_of_matmul_rate": sweep_gflops / rate,
            "loop_of_trainings_gflops": loop_gflops,
            "traces_first_sweep": traces_after_first,
            "traces_total_k32": traces["count"] - big_traces,
            "max_final_loss_difference": max_difference,
            "large_grid": {
                "K": big_k,
                "grid_batch_size": big_batch,
                "seconds_including_compile": big_seconds,
                "gflops": big_gflops,
                "traces": big_traces,
                "xla_temp_bytes_per_batch": batch_memory,
                "xla_temp_bytes_whole_grid": whole_memory,
            },
        },
    )


if __name__ == "__main__":
    main()

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
forward + backward matmuls) against two ceilings measured in the same run: the machine's float32
matmul rate (one 1024² product) and — the realistic one — the *batched-matmul limit at the
members' own shapes*: the same stacked products [members, batch, in] × [members, in, out] (the
forward and both backward products of every layer, scanned over the steps, sharded over the
devices with the sweep's member count per device) with nothing else in between, and as a
profile the same sweep with plain SGD instead of Adam; then the
trace/compile count, K = 1024 λ run with ``grid_batch_size`` (bounded memory), and the same
K = 32 sweep in fresh processes: 2 processes × 1 device (``jax.distributed`` on 127.0.0.1) vs
1 process × 2 devices.

Run: ``python bench/sweep.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from _common import (
    block,
    first_call_seconds,
    matmul_gflops,
    write_json,
)
from jaxreg import sweep

# One host device per core this process may use (set in main, before any JAX operation).
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

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


def make_training(X: np.ndarray, y: np.ndarray, optimizer: Any = None):
    X, y = jnp.asarray(X), jnp.asarray(y)
    optimizer = optax.adam(LEARNING_RATE) if optimizer is None else optimizer

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


def matmul_limit(members: int) -> Callable[[], Any]:
    """The sweep's matmuls alone: for every member and step, the forward product of each layer
    and its two backward products (inputs and weights), as stacked batched products
    [members, batch, in] × [members, in, out], scanned over the steps and sharded over the
    devices like the sweep; its flops are exactly ``flops_per_member() · members``."""
    mesh = sweep._mesh(None)
    sharding = NamedSharding(mesh, P(sweep._AXIS))
    keys = jax.random.split(jax.random.key(1), len(SIZES))
    weights = [
        jax.device_put(jax.random.normal(k, (members, a, b)) * np.sqrt(1.0 / a), sharding)
        for k, a, b in zip(keys[1:], SIZES[:-1], SIZES[1:], strict=True)
    ]
    inputs = jax.device_put(jax.random.normal(keys[0], (members, BATCH, SIZES[0])), sharding)

    def step(carry, _):
        weights, x = carry
        activations = [x]
        for w in weights:
            activations.append(activations[-1] @ w)
        grad, updated = activations[-1], []
        for w, a in zip(weights[::-1], activations[-2::-1], strict=True):
            updated.append(w - 1e-6 * (jnp.swapaxes(a, 1, 2) @ grad))
            grad = grad @ jnp.swapaxes(w, 1, 2)
        return (updated[::-1], x - 1e-6 * grad), None  # every product feeds the next step

    products = jax.jit(lambda w, x: jax.lax.scan(step, (w, x), length=STEPS)[0])
    return lambda: products(weights, inputs)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def processes_worker(args) -> None:
    """One process of the processes comparison: time the K = 32 sweep, print one JSON line."""
    if args.coordinator:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    from jax.experimental import multihost_utils

    X, y = load_digits()
    grid = sweep.grid(lam=np.logspace(-5, -1, 32).astype(np.float32))
    train = make_training(X, y)[0]
    run = lambda: sweep.run(train, grid, key=jax.random.key(0))  # noqa: E731
    first = first_call_seconds(run)
    times = []
    for _ in range(args.repeats):
        multihost_utils.sync_global_devices("bench repeat")  # every process starts together
        start = time.perf_counter()
        block(run())
        times.append(time.perf_counter() - start)
    result = {
        "median_seconds": statistics.median(times),
        "first_call_seconds": first,
        "final_loss": sweep.to_host(run()["final_loss"]).tolist(),
    }
    if jax.process_index() == 0:
        print("RESULT " + json.dumps(result))


def launch(flag_sets: list[list[str]], repeats: int) -> dict[str, Any]:
    """Fresh processes of this script as workers; process 0's result."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    command = [sys.executable, __file__, "--repeats", str(repeats), "--worker"]
    workers = [
        subprocess.Popen([*command, *flags], stdout=subprocess.PIPE, text=True, env=env)
        for flags in flag_sets
    ]
    try:
        outputs = [worker.communicate(timeout=1800)[0] for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
    if any(worker.returncode for worker in workers):
        raise RuntimeError(f"a benchmark worker failed: {[w.returncode for w in workers]}")
    line = next(line for line in outputs[0].splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def processes_figure(repeats: int) -> dict[str, Any]:
    """The same K = 32 sweep on 2 devices: in one process, and in 2 processes of 1 device."""
    one = launch([["--devices", "2"]], repeats)
    address = f"127.0.0.1:{free_port()}"
    two = launch(
        [["--devices", "1", "--coordinator", address, "--num-processes", "2",
          "--process-id", str(i)] for i in range(2)],
        repeats,
    )  # fmt: skip
    difference = float(np.max(np.abs(np.subtract(one["final_loss"], two["final_loss"]))))
    ratio = two["median_seconds"] / one["median_seconds"]
    print(
        f"\nK = 32 on 2 devices, fresh processes: 1 process × 2 devices "
        f"{one['median_seconds']:.3f} s, 2 processes × 1 device {two['median_seconds']:.3f} s "
        f"({ratio:.2f}× the time; first calls {one['first_call_seconds']:.1f} s and "
        f"{two['first_call_seconds']:.1f} s); max |final loss difference| = {difference:.1e}"
    )
    return {
        "one_process_two_devices": one["median_seconds"],
        "two_processes_one_device": two["median_seconds"],
        "first_call_seconds": [one["first_call_seconds"], two["first_call_seconds"]],
        "time_ratio_two_processes_over_one": ratio,
        "max_final_loss_difference": difference,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller K=1024 run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--devices", type=int, default=CORES, help=argparse.SUPPRESS)
    parser.add_argument("--coordinator", help=argparse.SUPPRESS)
    parser.add_argument("--num-processes", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--process-id", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    jax.config.update("jax_num_cpu_devices", args.devices)  # before any JAX operation
    if args.worker:
        processes_worker(args)
        return
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

    # the profile of the sweep beyond its matmuls: the same sweep with plain SGD (no Adam moments)
    train_sgd = make_training(X, y, optax.sgd(LEARNING_RATE))[0]

    def run_sweep_sgd():
        return sweep.run(train_sgd, grid, key=key)

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

    limit = matmul_limit(len(lambdas))
    first = {
        "matmul_limit": first_call_seconds(limit),
        "sweep_sgd": first_call_seconds(run_sweep_sgd),
        "sweep": first_call_seconds(run_sweep),
        "loop_of_trainings": first_call_seconds(loop_of_trainings),
        "per_step_loop": first_call_seconds(per_step_loop),
    }
    traces_after_first = traces["count"]
    medians, cpu_medians = wall_and_cpu_medians(
        {
            "matmul_limit": limit,
            "sweep_sgd": run_sweep_sgd,
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
    limit_gflops = sweep_flops / medians["matmul_limit"] / 1e9
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
    per_device = len(lambdas) // len(jax.devices())
    print(
        f"  sweep: {100 * sweep_gflops / limit_gflops:.0f} % of the batched-matmul limit at its "
        f"shapes ({limit_gflops:.1f} GFLOP/s: the same stacked products, "
        f"[{per_device}, {BATCH}, in] × [{per_device}, in, out] per device, alone; target ≥ 90 %)"
    )
    sgd_share = medians["matmul_limit"] / medians["sweep_sgd"]
    print(
        f"  profile: the same sweep with plain SGD instead of Adam (no moment updates) runs at "
        f"{100 * sgd_share:.0f} % of that limit"
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

    processes = processes_figure(repeats)

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
            "batched_matmul_limit_gflops": limit_gflops,
            "sweep_share_of_batched_matmul_limit": sweep_gflops / limit_gflops,
            "sgd_sweep_share_of_batched_matmul_limit": sgd_share,
            "processes": processes,
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

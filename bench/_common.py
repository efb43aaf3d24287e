"""Shared benchmark plumbing: timing, the machine's matmul rate, JSON output.

Every benchmark times jaxreg and its baseline in the same process, reports the steady-state
median after a warm-up (first call, with compilation, separately) and the machine's float32
matmul GFLOP/s measured in the same run, and writes JSON to ``bench/results/``.
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

RESULTS = pathlib.Path(__file__).parent / "results"


def block(tree: Any) -> Any:
    return jax.block_until_ready(tree)


def first_call_seconds(fn: Callable[[], Any]) -> float:
    """Wall time of the first call (tracing + compilation + one run)."""
    start = time.perf_counter()
    block(fn())
    return time.perf_counter() - start


def median_seconds(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` untimed runs."""
    for _ in range(warmup):
        block(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(
    fns: dict[str, Callable[[], Any]], *, repeats: int = 5, warmup: int = 1
) -> dict[str, float]:
    """Median wall time of each function, runs interleaved so machine noise hits all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            block(fn())
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            block(fn())
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def matmul_gflops(n: int = 1024, *, dtype=jnp.float32, repeats: int = 10) -> float:
    """The machine's dense matmul rate (GFLOP/s) on the default device, in this process."""
    key = jax.random.key(0)
    a = jax.random.normal(key, (n, n), dtype)
    b = jax.random.normal(jax.random.fold_in(key, 1), (n, n), dtype)
    matmul = jax.jit(jnp.matmul)
    seconds = median_seconds(lambda: matmul(a, b), repeats=repeats, warmup=2)
    return 2 * n**3 / seconds / 1e9


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
    }


def _plain(value: Any) -> Any:
    """numpy/JAX scalars and arrays as JSON numbers and lists."""
    return value.tolist() if hasattr(value, "tolist") else float(value)


def write_json(name: str, payload: dict[str, Any]) -> pathlib.Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2, default=_plain))
    print(f"wrote {path}")
    return path

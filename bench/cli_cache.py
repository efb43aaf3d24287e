"""Benchmark: ``jaxreg sweep`` from a cold compilation cache vs a second run that reads it.

The CLI turns on JAX's persistent compilation cache by default (``$XDG_CACHE_HOME/jaxreg``). This
runs the same command as a user would, in subprocesses, side by side:

  (a) ``--no-cache``: every program compiled, nothing stored (the baseline);
  (b) a cold cache: a fresh, empty cache directory; compiles and stores;
  (c) a warm cache: the same command again, with the directory (b) filled.

Rounds are interleaved (a, b, c with a new cache directory per round), so machine noise hits all
three alike; medians are quoted. Each run's wall time includes starting Python and importing JAX;
``seconds`` is the command's own timing from ``results.json`` (loading data to writing plots).
Also: the matmul rate of this machine in the parent process, and the cache's size.

Run: ``python bench/cli_cache.py`` (the default ``jaxreg sweep``), ``--quick`` for a tiny sweep.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

from _common import matmul_gflops, write_json

QUICK = ["--steps", "30", "--lambdas", "3", "--folds", "2"]


def run_sweep(flags: list[str], out: pathlib.Path, cache_home: pathlib.Path) -> dict[str, float]:
    """One ``jaxreg sweep`` in a subprocess: its wall time and its own ``seconds``."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    command = [sys.executable, "-m", "jaxreg", "sweep", *flags, "--no-progress", "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"jaxreg sweep failed:\n{done.stderr}")
    seconds = json.loads((out / "results.json").read_text(encoding="utf-8"))["seconds"]
    return {"wall": wall, "seconds": seconds}


def cache_size(cache_home: pathlib.Path) -> tuple[int, int]:
    files = [path for path in (cache_home / "jaxreg").rglob("*") if path.is_file()]
    return len(files), sum(path.stat().st_size for path in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny sweep (smoke run)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (a, b, c)")
    args = parser.parse_args()
    flags = QUICK if args.quick else []
    gflops = matmul_gflops()
    runs: dict[str, list[dict[str, float]]] = {"no_cache": [], "cold": [], "warm": []}
    entries = (0, 0)
    with tempfile.TemporaryDirectory() as scratch:
        root = pathlib.Path(scratch)
        for round_ in range(args.rounds):
            cache_home = root / f"cache{round_}"
            out = root / "out"
            runs["no_cache"].append(run_sweep([*flags, "--no-cache"], out, root / "unused"))
            runs["cold"].append(run_sweep(flags, out, cache_home))
            runs["warm"].append(run_sweep(flags, out, cache_home))
            entries = cache_size(cache_home)
    medians = {
        name: {field: statistics.median(run[field] for run in values) for field in runs["cold"][0]}
        for name, values in runs.items()
    }
    ratio = medians["warm"]["wall"] / medians["no_cache"]["wall"]
    command = "jaxreg sweep " + " ".join(flags) if flags else "jaxreg sweep"
    print(f"command: {command} --no-progress (cpu_count {os.cpu_count()})")
    print(f"matmul 1024² float32: {gflops:.1f} GFLOP/s")
    for name, values in medians.items():
        print(f"{name:>9}: wall {values['wall']:6.2f} s   command's own {values['seconds']:6.2f} s")
    megabytes = entries[1] / 2**20
    print(f"warm / no-cache wall: {ratio:.2f}×; cache: {entries[0]} files, {megabytes:.1f} MiB")
    write_json(
        "cli_cache",
        {
            "command": command,
            "rounds": args.rounds,
            "matmul_gflops": gflops,
            "runs": runs,
            "medians": medians,
            "warm_over_no_cache_wall": ratio,
            "cache_files": entries[0],
            "cache_bytes": entries[1],
        },
    )


if __name__ == "__main__":
    main()

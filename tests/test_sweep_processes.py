"""Sweeps over several processes joined by ``jax.distributed`` (real processes on 127.0.0.1, CPU
devices, gloo collectives): the same results as one process, one checkpoint written by process
0, a resume after SIGKILL bit-identical to an uninterrupted run, and a dead process stopping the
others instead of leaving them hanging.

Every process is started with a free port and a bounded timeout, and killed and reaped at the
end of its test whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import _sweep_worker as worker
from jaxreg import _checkpoint

WORKER = pathlib.Path(worker.__file__)
TIMEOUT = 240  # seconds for any group of processes: generous for a loaded 2-core machine

pytestmark = pytest.mark.slow  # every test starts two processes that import JAX and compile


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment() -> dict[str, str]:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)  # each process chooses its device count itself
    env.pop("JAX_COORDINATOR_ADDRESS", None)
    return env


@contextlib.contextmanager
def started(commands: list[list[str]], logs: pathlib.Path):
    """Start one process per command (output in ``logs``/p{i}.log); kill and reap them all at
    the end, whatever happened."""
    processes = []
    try:
        for i, command in enumerate(commands):
            with open(logs / f"p{i}.log", "w") as log:
                processes.append(
                    subprocess.Popen(
                        command, stdout=log, stderr=subprocess.STDOUT, env=environment()
                    )
                )
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        for process in processes:
            process.wait()


def wait_all(processes, logs: pathlib.Path, timeout: float = TIMEOUT) -> list[int]:
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            pytest.fail(f"processes still running after {timeout} s:\n{tail(logs)}")
    return [process.returncode for process in processes]


def tail(logs: pathlib.Path) -> str:
    return "\n".join(
        f"--- {path.name}\n" + "\n".join(path.read_text().splitlines()[-15:])
        for path in sorted(logs.glob("p*.log"))
    )


def worker_commands(mode: str, out: pathlib.Path, *args: str, processes: int = 2):
    address = f"127.0.0.1:{free_port()}"
    return [
        [sys.executable, str(WORKER), mode, str(out), *args, "--coordinator", address,
         "--num-processes", str(processes), "--process-id", str(i)]
        for i in range(processes)
    ]  # fmt: skip


def run_workers(tmp_path: pathlib.Path, mode: str, *args: str) -> list[dict[str, np.ndarray]]:
    """Two workers to completion; each one's results."""
    logs = tmp_path / f"logs-{mode}"
    logs.mkdir()
    out = tmp_path / f"{mode}-{{process}}.npz"
    with started(worker_commands(mode, out, *args), logs) as processes:
        codes = wait_all(processes, logs)
    assert codes == [0, 0], tail(logs)
    return [dict(np.load(str(out).format(process=i))) for i in range(2)]


@pytest.fixture(scope="module")
def one_process():
    """The reference: the same problems in this process, on one device."""
    one = jax.devices()[:1]
    grid, key = worker.make_grid(), jax.random.key(0)
    from jaxreg import sweep

    fitted = worker.fit(one)
    return {
        "run": sweep.run(worker.train, grid, key=key, devices=one),
        "seeded": sweep.run(worker.train, grid, key=key, seeds=2, devices=one),
        **worker.flatten_result(worker.sweep_steps(grid, devices=one)),
        "fold_losses": fitted.fold_losses,
        "path_w": fitted.path_params[0]["w"],
    }


@pytest.fixture(scope="module")
def two_by_one(tmp_path_factory):
    """Two processes × one device, run_steps checkpointed: the results and the directory."""
    tmp_path = tmp_path_factory.mktemp("two-by-one")
    directory = tmp_path / "checkpoint"
    return run_workers(tmp_path, "run", "--checkpoint-dir", str(directory)), directory


def assert_like_one_process(results, reference, devices_per_process):
    first, second = results
    for name in first:  # every process holds the whole results (sweep.to_host)
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    # each process held only its own devices' shards of the global outputs
    assert int(first["run_devices"]) == devices_per_process
    assert int(first["steps_devices"]) == devices_per_process
    reference = {**reference, "batched": reference["run"]}  # the grid in batches of 4
    for name, expected in reference.items():
        if name in first:
            np.testing.assert_allclose(
                first[name], np.asarray(expected), rtol=1e-6, atol=1e-7, err_msg=name
            )


def test_two_processes_of_one_device_equal_one_process(two_by_one, one_process):
    results, directory = two_by_one
    assert_like_one_process(results, one_process, devices_per_process=1)
    # process 0 wrote one checkpoint, atomically: no temporary file is left
    assert os.listdir(directory) == [_checkpoint.NAME]
    with np.load(directory / _checkpoint.NAME) as saved:
        assert int(saved["steps_done"]) == worker.NUM_STEPS


def test_two_processes_of_two_devices_equal_one_process(tmp_path, one_process):
    # 6 members on 4 devices: padded to 8, the padding dropped; fit_path too (6 members)
    results = run_workers(tmp_path, "run", "--devices", "2", "--fit")
    assert "fold_losses" in results[0] and "path_w" in results[0]
    assert_like_one_process(results, one_process, devices_per_process=2)


def test_both_processes_killed_then_restarted_end_bit_identical(tmp_path, two_by_one):
    uninterrupted, _ = two_by_one
    directory = tmp_path / "checkpoint"
    logs = tmp_path / "logs-killed"
    logs.mkdir()
    commands = worker_commands(
        "steps", tmp_path / "never-{process}.npz", "--checkpoint-dir", str(directory),
        "--kill-after", "2",
    )  # fmt: skip
    with started(commands, logs) as (writer, other):
        # process 0 kills itself right after writing its second checkpoint; kill the other at once
        writer.wait(timeout=TIMEOUT)
        other.send_signal(signal.SIGKILL)
        other.wait(timeout=TIMEOUT)
    assert writer.returncode == -signal.SIGKILL, tail(logs)
    assert not list(tmp_path.glob("never-*.npz"))
    with np.load(directory / _checkpoint.NAME) as saved:
        assert int(saved["steps_done"]) == 2 * worker.CHUNK_SIZE

    resumed = run_workers(tmp_path, "steps", "--checkpoint-dir", str(directory))
    total_chunks = worker.NUM_STEPS // worker.CHUNK_SIZE
    assert int(resumed[0]["chunks_run"]) == total_chunks - 2  # it resumed, it did not start over
    for results in resumed:
        for name in ("w", "ema", "key", "loss", "diverged"):
            np.testing.assert_array_equal(results[name], uninterrupted[0][name], err_msg=name)


def test_a_dead_process_makes_the_other_exit_with_an_error(tmp_path):
    """The CLI in two processes, the heartbeat timeout set low: process 1 is SIGKILLed after the
    first checkpoint; process 0 must exit non-zero within the timeout + 30 s, not hang."""
    heartbeat = 3
    out = tmp_path / "out"
    address = f"127.0.0.1:{free_port()}"
    flags = [
        "--model", "mlp", "--lambdas", "0.1,0.01", "--folds", "2", "--steps", "20000",
        "--batch-size", "8", "--devices", "1", "--no-progress", "--no-cache", "--out", str(out),
        "--coordinator", address, "--num-processes", "2", "--heartbeat-timeout", str(heartbeat),
    ]  # fmt: skip
    command = [sys.executable, "-m", "jaxreg", "sweep", *flags]
    commands = [[*command, "--process-id", str(i)] for i in range(2)]
    checkpoint = out / "checkpoint" / _checkpoint.NAME
    with started(commands, tmp_path) as (survivor, victim):
        deadline = time.monotonic() + TIMEOUT
        while not checkpoint.exists() and survivor.poll() is None and victim.poll() is None:
            assert time.monotonic() < deadline, tail(tmp_path)
            time.sleep(0.05)
        assert checkpoint.exists(), tail(tmp_path)
        victim.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        try:
            survivor.wait(timeout=heartbeat + 30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"process 0 still running {heartbeat + 30} s after process 1 died")
        waited = time.monotonic() - killed_at
    assert survivor.returncode != 0, tail(tmp_path)
    assert not (out / "results.json").exists()
    assert waited < heartbeat + 30

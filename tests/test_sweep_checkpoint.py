"""run_steps checkpoints: SIGKILL + restart is bit-identical; corrupted or foreign files raise."""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

import _sweep_worker as worker
from jaxreg import _checkpoint, sweep

WORKER = pathlib.Path(worker.__file__)
CHECKPOINT = _checkpoint.NAME


def run_worker(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    return subprocess.run(
        [sys.executable, str(WORKER), *args], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow  # three subprocesses that import JAX and compile: ~10-20 s on 2 cores
def test_killed_and_restarted_sweep_is_bit_identical(tmp_path):
    total_chunks = worker.NUM_STEPS // worker.CHUNK_SIZE
    reference = run_worker(
        "steps", str(tmp_path / "ref.npz"), "--checkpoint-dir", str(tmp_path / "a")
    )
    assert reference.returncode == 0, reference.stderr

    crashed_dir = tmp_path / "b"
    killed = run_worker(
        "steps",
        str(tmp_path / "killed.npz"),
        "--checkpoint-dir",
        str(crashed_dir),
        "--kill-after",
        "2",
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (tmp_path / "killed.npz").exists()
    with np.load(crashed_dir / CHECKPOINT, allow_pickle=False) as saved:
        assert int(saved["steps_done"]) == 2 * worker.CHUNK_SIZE

    resumed = run_worker(
        "steps", str(tmp_path / "resumed.npz"), "--checkpoint-dir", str(crashed_dir)
    )
    assert resumed.returncode == 0, resumed.stderr
    expected, got = np.load(tmp_path / "ref.npz"), np.load(tmp_path / "resumed.npz")
    assert int(expected["chunks_run"]) == total_chunks
    assert int(got["chunks_run"]) == total_chunks - 2  # it resumed, it did not start over
    for name in ("w", "ema", "key", "loss", "diverged"):
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


def small_sweep(checkpoint_dir, *, shift=0.0, **options):
    return worker.sweep_steps(worker.make_grid(shift), checkpoint_dir=checkpoint_dir, **options)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished checkpointed sweep: its directory and result."""
    directory = tmp_path_factory.mktemp("finished")
    return directory, worker.flatten_result(small_sweep(directory))


def test_finished_checkpoint_resumes_to_the_same_result(finished, tmp_path):
    directory, first = finished
    assert sorted(os.listdir(directory)) == [CHECKPOINT]  # no temporary files left behind
    again = worker.flatten_result(small_sweep(directory))
    for name, value in first.items():
        np.testing.assert_array_equal(again[name], value, err_msg=name)
    fresh = worker.flatten_result(small_sweep(None))
    for name, value in first.items():
        np.testing.assert_array_equal(fresh[name], value, err_msg=name)


@pytest.mark.parametrize(
    "change, differs",
    [
        ({"shift": 0.5}, "grid"),
        ({"num_steps": 2 * worker.NUM_STEPS}, "num_steps"),
        ({"key": 1}, "key"),
    ],
)
def test_foreign_checkpoint_is_an_error(finished, tmp_path, change, differs):
    directory, _ = finished
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / CHECKPOINT).write_bytes((directory / CHECKPOINT).read_bytes())
    with pytest.raises(
        sweep.CheckpointMismatchError, match="checkpoint_dir .*different sweep"
    ) as error:
        small_sweep(foreign, **change)
    assert error.value.differing == (differs,)  # that part alone


def test_named_parts_say_what_changed(tmp_path):
    first = worker.flatten_result(small_sweep(tmp_path, fingerprint={"lr": 0.1, "opt": "sgd"}))
    with pytest.raises(sweep.CheckpointMismatchError, match=r"differs in: lr\)") as error:
        small_sweep(tmp_path, fingerprint={"lr": 0.2, "opt": "sgd"})
    assert error.value.differing == ("lr",)
    # a part the checkpoint lacks and one it has that is not given both differ
    with pytest.raises(sweep.CheckpointMismatchError) as error:
        small_sweep(tmp_path, fingerprint={"lr": 0.1, "schedule": "cosine"})
    assert error.value.differing == ("schedule", "opt")
    again = worker.flatten_result(small_sweep(tmp_path, fingerprint={"opt": "sgd", "lr": 0.1}))
    for name, value in first.items():  # the same parts in another order: resumed
        np.testing.assert_array_equal(again[name], value, err_msg=name)


@pytest.mark.parametrize(
    "fingerprint, error, says",
    [
        ({"grid": 1}, ValueError, "'grid'"),
        ({"f": lambda: 0}, TypeError, "fingerprint['f']"),
        (["lr"], TypeError, "fingerprint must be a dict"),
    ],
)
def test_bad_fingerprint_is_an_error_naming_it(fingerprint, error, says):
    with pytest.raises(error, match=re.escape(says)):
        small_sweep(None, fingerprint=fingerprint)


@pytest.mark.slow  # fit_path compiles its sweep: ~5-15 s on 2 cores
def test_fit_path_names_the_setting_that_changed(tmp_path):
    worker.fit(checkpoint_dir=tmp_path, fingerprint={"--lr": "0.1"})
    with pytest.raises(sweep.CheckpointMismatchError) as error:
        worker.fit(checkpoint_dir=tmp_path, learning_rate=0.2, fingerprint={"--lr": "0.2"})
    # the caller's part, fit_path's own, and the data that carries the learning rate
    assert sorted(error.value.differing) == ["--lr", "data", "learning_rate"]
    with pytest.raises(ValueError, match="fit_path's own parts"):
        worker.fit(fingerprint={"learning_rate": 0.1})


@pytest.mark.parametrize("damage", ["garbage", "truncated", "not_ours"])
def test_corrupted_checkpoint_is_an_error(finished, tmp_path, damage):
    directory, _ = finished
    path = tmp_path / CHECKPOINT
    good = (directory / CHECKPOINT).read_bytes()
    if damage == "garbage":
        path.write_bytes(b"definitely not an npz file")
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    else:
        np.savez(path, steps_done=np.asarray(3))
    with pytest.raises(sweep.CheckpointError, match="checkpoint_dir"):
        small_sweep(tmp_path)
    assert path.exists()  # never silently replaced by a fresh start

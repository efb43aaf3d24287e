"""A 6-point grid sharded over 4 forced host devices (in a subprocess) equals a 1-device sweep."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

import _sweep_worker as worker
from jaxreg import sweep

WORKER = pathlib.Path(worker.__file__)


def run_worker(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)  # the worker chooses its device count itself
    return subprocess.run(
        [sys.executable, str(WORKER), *args], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow  # a subprocess that imports JAX and compiles: ~5-15 s on 2 cores
def test_six_point_grid_on_four_devices_equals_one_device(tmp_path):
    out = tmp_path / "four.npz"
    completed = run_worker("run", str(out), "--devices", "4")
    assert completed.returncode == 0, completed.stderr
    sharded = np.load(out)
    # 6 members padded to 8 over 4 devices: the results really were spread over all four.
    assert int(sharded["run_devices"]) == 4 and int(sharded["steps_devices"]) == 4

    one_device = jax.devices()[:1]
    grid, key = worker.make_grid(), jax.random.key(0)
    trained = sweep.run(worker.train, grid, key=key, devices=one_device)
    seeded = sweep.run(worker.train, grid, key=key, seeds=2, devices=one_device)
    steps = worker.flatten_result(worker.sweep_steps(grid, devices=one_device))
    assert sharded["run"].shape == (6, 2) and sharded["seeded"].shape == (6, 2, 2)
    np.testing.assert_allclose(sharded["run"], trained, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(sharded["seeded"], seeded, rtol=1e-6, atol=1e-7)
    for name, expected in steps.items():
        np.testing.assert_allclose(sharded[name], expected, rtol=1e-6, atol=1e-7, err_msg=name)
    # and the 1-device reference is itself right: member 5 equals its own single run
    np.testing.assert_allclose(
        trained[5], worker.train({"lam": grid["lam"][5], "lr": grid["lr"][5]}, key), rtol=1e-5
    )

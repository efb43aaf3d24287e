"""jaxreg.sweep on one device: every member equals an independent run, one trace per sweep."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxreg import sweep

X = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(6, 2)
Y = np.array([1.0, -0.5, 0.3, 0.8, -1.2, 0.1], dtype=np.float32)


def ridge_training(hp, key):
    """Noisy gradient descent on ridge regression: uses the key, the grid values and a scan."""

    def step(w, step_key):
        grad = X.T @ (X @ w - Y) / len(Y) + hp["lam"] * w
        noise = 0.01 * jax.random.normal(step_key, w.shape)
        return w - hp["lr"] * grad + noise, jnp.sum(w**2)

    w, norms = jax.lax.scan(step, jnp.zeros(2), jax.random.split(key, 30))
    return {"w": w, "norms": norms}


def ridge_init(hp, key):
    return {"w": jax.random.normal(key, (2,)) * 0.1, "key": key}


def ridge_step(state, hp):
    key, noise_key = jax.random.split(state["key"])
    w = state["w"]
    grad = X.T @ (X @ w - Y) / len(Y) + hp["lam"] * w
    w = w - hp["lr"] * grad + 0.01 * jax.random.normal(noise_key, w.shape)
    return {"w": w, "key": key}, {"loss": jnp.mean((X @ w - Y) ** 2), "w": w}


# The references are single runs, jitted only to keep the suite fast.
single_training = jax.jit(ridge_training)
single_init, single_step = jax.jit(ridge_init), jax.jit(ridge_step)


def independent_steps(hp, key, num_steps):
    state = single_init(hp, key)
    history = []
    for _ in range(num_steps):
        state, metrics = single_step(state, hp)
        history.append(metrics)
    return state, jax.tree.map(lambda *m: jnp.stack(m), *history)


GRID = sweep.grid(lam=[0.0, 0.1, 1.0], lr=[0.1, 0.5])


def member(grid, k):
    return {name: values[k] for name, values in grid.items()}


def assert_tree_close(actual, expected, **tolerance):
    jax.tree.map(
        lambda a, e: np.testing.assert_allclose(np.asarray(a), np.asarray(e), **tolerance),
        actual,
        expected,
    )


# ------------------------------------------------------------------------------- grid


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3))
def test_grid_is_ordered_like_itertools_product(lengths):
    axes = {f"a{i}": np.arange(n) * 10 + i for i, n in enumerate(lengths)}
    g = sweep.grid(**axes)
    expected = list(itertools.product(*axes.values()))
    assert len(expected) == np.prod(lengths)
    got = list(zip(*(g[name].tolist() for name in axes), strict=True))
    assert got == [tuple(int(v) for v in row) for row in expected]


@pytest.mark.parametrize(
    "axes, match",
    [({}, "at least one axis"), ({"lam": []}, "'lam' is empty"), ({"lam": [[1.0]]}, "'lam'")],
)
def test_grid_rejects_bad_axes(axes, match):
    with pytest.raises(ValueError, match=match):
        sweep.grid(**axes)


@pytest.mark.parametrize(
    "grid, match",
    [
        ({}, "grid is empty"),
        ({"lam": np.array([])}, r"grid\['lam'\] is empty"),
        ({"lam": np.ones((2, 2))}, r"grid\['lam'\] must be 1-D"),
        ({"lam": [1.0, 2.0], "lr": [0.1]}, "grid entries must all have the same length"),
    ],
)
def test_run_and_run_steps_reject_bad_grids(grid, match):
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=match):
        sweep.run(ridge_training, grid, key=key)
    with pytest.raises(ValueError, match=match):
        sweep.run_steps(ridge_init, ridge_step, grid, num_steps=2, key=key, progress=False)


def test_grid_must_be_a_mapping():
    with pytest.raises(TypeError, match="grid"):
        sweep.run(ridge_training, [0.1, 1.0], key=jax.random.key(0))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"num_steps": 0}, ValueError, "num_steps"),
        ({"num_steps": -3}, ValueError, "num_steps"),
        ({"num_steps": 2.5}, TypeError, "num_steps"),
        ({"num_steps": 4, "chunk_size": 0}, ValueError, "chunk_size"),
        ({"num_steps": 4, "seeds": 0}, ValueError, "seeds"),
    ],
)
def test_run_steps_rejects_bad_counts(kwargs, error, match):
    with pytest.raises(error, match=match):
        sweep.run_steps(
            ridge_init, ridge_step, GRID, key=jax.random.key(0), progress=False, **kwargs
        )


@pytest.mark.parametrize(
    "kwargs, match", [({"seeds": 0}, "seeds"), ({"grid_batch_size": -1}, "grid_batch_size")]
)
def test_run_rejects_bad_counts(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sweep.run(ridge_training, GRID, key=jax.random.key(0), **kwargs)


# ------------------------------------------------------------------------------- run


def test_run_member_equals_independent_run():
    key = jax.random.key(3)
    out = sweep.run(ridge_training, GRID, key=key)
    assert out["w"].shape == (6, 2) and out["norms"].shape == (6, 30)
    for k in range(6):
        assert_tree_close(
            jax.tree.map(lambda leaf, k=k: leaf[k], out),
            single_training(member(GRID, k), key),
            rtol=1e-5,
            atol=1e-6,
        )


def test_run_with_seeds_uses_common_random_numbers():
    key = jax.random.PRNGKey(7)  # raw uint32 keys work as well as typed ones
    out = sweep.run(ridge_training, GRID, key=key, seeds=3)
    assert out["w"].shape == (6, 3, 2)
    seed_keys = jax.random.split(key, 3)
    for k in (0, 5):
        for s in range(3):
            expected = single_training(member(GRID, k), seed_keys[s])
            assert_tree_close(out["w"][k, s], expected["w"], rtol=1e-5, atol=1e-6)
    assert not np.allclose(out["w"][0, 0], out["w"][0, 1])


def test_run_traces_once_and_new_values_do_not_retrace(trace_counter):
    train = trace_counter(ridge_training)
    key = jax.random.key(0)
    first = sweep.run(train, GRID, key=key)
    new_grid = {"lam": GRID["lam"] + 0.5, "lr": GRID["lr"] * 0.5}
    second = sweep.run(train, new_grid, key=jax.random.key(1))
    assert train.count == 1
    assert_tree_close(
        second["w"][4],
        single_training(member(new_grid, 4), jax.random.key(1))["w"],
        rtol=1e-5,
        atol=1e-6,
    )
    assert not np.allclose(first["w"], second["w"])


def test_run_in_batches_pads_the_last_batch_and_compiles_once(trace_counter):
    train = trace_counter(ridge_training)
    grid = {"lam": np.linspace(0.0, 1.0, 5), "lr": np.full(5, 0.3)}
    key = jax.random.key(2)
    batched = sweep.run(train, grid, key=key, grid_batch_size=2)  # batches of 2, 2, 1 + padding
    assert train.count == 1
    assert batched["w"].shape == (5, 2)
    whole = sweep.run(ridge_training, grid, key=key)
    assert_tree_close(batched, whole, rtol=1e-6, atol=1e-7)
    assert_tree_close(
        batched["w"][4], single_training(member(grid, 4), key)["w"], rtol=1e-5, atol=1e-6
    )


def test_run_passes_hyperparameters_as_0d_arrays_of_jax_dtypes():
    seen = {}

    def train(hp, key):
        seen.update({name: (value.shape, value.dtype) for name, value in hp.items()})
        return hp["width"] * 2 + hp["lam"]

    out = sweep.run(train, sweep.grid(lam=[0.5, 1.5], width=[1, 2]), key=jax.random.key(0))
    assert seen == {"lam": ((), jnp.float32), "width": ((), jnp.int32)}
    np.testing.assert_allclose(out, [2.5, 4.5, 3.5, 5.5])


def test_run_keeps_float64_under_enable_x64():
    with jax.enable_x64(True):
        out = sweep.run(
            lambda hp, key: hp["lam"] / 3, {"lam": np.array([1.0, 2.0])}, key=jax.random.key(0)
        )
        assert out.dtype == jnp.float64
        np.testing.assert_array_equal(np.asarray(out), np.array([1.0, 2.0]) / 3)


# ------------------------------------------------------------------------------- run_steps


def test_run_steps_member_equals_independent_run(trace_counter):
    step = trace_counter(ridge_step)
    key = jax.random.key(5)
    result = sweep.run_steps(
        ridge_init, step, GRID, num_steps=7, chunk_size=3, key=key, progress=False
    )
    assert step.count == 1  # one compiled chunk, the partial last chunk included
    assert result.metrics["loss"].shape == (6, 7) and result.metrics["w"].shape == (6, 7, 2)
    assert result.state["w"].shape == (6, 2)
    assert result.diverged.shape == (6,) and not np.any(result.diverged)
    for k in range(6):
        state, history = independent_steps(member(GRID, k), key, 7)
        assert_tree_close(result.state["w"][k], state["w"], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(
            jax.random.key_data(result.state["key"][k]), jax.random.key_data(state["key"])
        )
        assert_tree_close(
            jax.tree.map(lambda m, k=k: m[k], result.metrics), history, rtol=1e-5, atol=1e-6
        )


def test_run_steps_second_sweep_with_new_values_does_not_retrace(trace_counter):
    init, step = trace_counter(ridge_init), trace_counter(ridge_step)
    for shift in (0.0, 0.25):
        grid = {"lam": GRID["lam"] + shift, "lr": GRID["lr"]}
        sweep.run_steps(
            init, step, grid, num_steps=4, chunk_size=2, key=jax.random.key(0), progress=False
        )
    assert (init.count, step.count) == (1, 1)


def test_run_steps_with_seeds():
    key = jax.random.key(9)
    result = sweep.run_steps(
        ridge_init, ridge_step, GRID, num_steps=5, chunk_size=5, key=key, seeds=2, progress=False
    )
    assert result.state["w"].shape == (6, 2, 2)
    assert result.metrics["loss"].shape == (6, 2, 5) and result.diverged.shape == (6, 2)
    seed_keys = jax.random.split(key, 2)
    for k, s in ((1, 0), (4, 1)):
        state, history = independent_steps(member(GRID, k), seed_keys[s], 5)
        assert_tree_close(result.state["w"][k, s], state["w"], rtol=1e-5, atol=1e-6)
        assert_tree_close(result.metrics["loss"][k, s], history["loss"], rtol=1e-5, atol=1e-6)


def test_diverging_member_is_flagged_and_does_not_disturb_the_others():
    grid = {"lam": np.array([0.1, 0.1, 0.1, 1.0]), "lr": np.array([0.5, 1e4, 0.2, 0.5])}
    key = jax.random.key(1)
    result = sweep.run_steps(
        ridge_init, ridge_step, grid, num_steps=40, chunk_size=16, key=key, progress=False
    )
    assert result.diverged.tolist() == [False, True, False, False]
    assert not np.all(np.isfinite(result.state["w"][1]))
    for k in (0, 2, 3):
        state, history = independent_steps(member(grid, k), key, 40)
        assert_tree_close(result.state["w"][k], state["w"], rtol=1e-5, atol=1e-6)
        assert_tree_close(result.metrics["loss"][k], history["loss"], rtol=1e-5, atol=1e-6)


def test_diverged_counts_only_real_steps():
    # The value blows up at step 6 of 5 (masked in the partial last chunk): not diverged.
    def step(count, hp):
        count = count + 1
        return count, jnp.where(count > hp["limit"], jnp.inf, 0.0)

    result = sweep.run_steps(
        lambda hp, key: jnp.zeros((), jnp.int32),
        step,
        {"limit": np.array([5, 3])},
        num_steps=5,
        chunk_size=4,
        key=jax.random.key(0),
        progress=False,
    )
    assert result.diverged.tolist() == [False, True]
    np.testing.assert_array_equal(result.state, [5, 5])


def test_run_steps_data_keeps_a_python_scalar_weakly_typed():
    # 0.5 · w stays bfloat16 as it does in plain JAX (a float32 array would promote the state
    # to float32, which a scan carry refuses); the value after n steps is 0.5ⁿ exactly
    def step(w, hp, data):
        w = w * data["factor"]
        return w, w

    result = sweep.run_steps(
        lambda hp, key, data: jnp.ones((2,), jnp.bfloat16), step, {"lam": np.zeros(3)},
        num_steps=4, chunk_size=2, key=jax.random.key(0), progress=False, data={"factor": 0.5},
    )  # fmt: skip
    assert result.state.dtype == jnp.bfloat16 and result.metrics.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(result.state, np.float32), np.full((3, 2), 0.5**4))


def test_to_host_gives_numpy_values_and_key_data():
    keys = jax.random.split(jax.random.key(3), 4)
    trained = sweep.run(lambda hp, key: 2.0 * hp["lam"], {"lam": np.arange(3.0)}, key=keys[0])
    host = sweep.to_host({"trained": trained, "keys": keys, "count": 3})
    assert all(isinstance(leaf, np.ndarray) for leaf in jax.tree.leaves(host))
    np.testing.assert_array_equal(host["trained"], [0.0, 2.0, 4.0])
    np.testing.assert_array_equal(host["keys"], jax.random.key_data(keys))
    assert host["count"] == 3


def test_run_steps_shows_a_progress_bar(capsys):
    pytest.importorskip("tqdm")
    result = sweep.run_steps(
        ridge_init,
        ridge_step,
        GRID,
        num_steps=4,
        chunk_size=2,
        key=jax.random.key(0),
        progress=True,
    )
    assert "4/4" in capsys.readouterr().err
    assert result.metrics["loss"].shape == (6, 4)


def test_import_does_not_start_a_backend():
    code = (
        "import jax._src.xla_bridge as xb, jaxreg, jaxreg.sweep\n"
        "assert not xb._backends, xb._backends\n"
        "import jax; jax.config.update('jax_num_cpu_devices', 3)\n"
        "assert len(jax.devices()) == 3\n"
    )
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    completed = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr

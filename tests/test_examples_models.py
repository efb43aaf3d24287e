"""The model examples run (few steps) and show what their docstrings say."""

from __future__ import annotations

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg import penalties

EXAMPLES = pathlib.Path(__file__).parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_attention_l2(capsys):
    example = _load("attention_l2")
    results = example.main(num_steps=80)
    assert "train acc" in capsys.readouterr().out
    norms = np.asarray(results["weight_norm"])
    assert np.all(np.diff(norms) < 0), "a stronger L2 penalty gives smaller weights"
    assert float(results["train_accuracy"][0]) > 0.75
    # the printed penalty is the seed's λ/(2m)·Σ‖W‖²: recompute it by hand for λ = 10
    params = jax.tree.map(lambda leaf: leaf[2], results["params"])
    by_hand = sum(
        float(jnp.sum(leaf**2)) for leaf in jax.tree.leaves(params) if jnp.ndim(leaf) >= 2
    )
    np.testing.assert_allclose(norms[2] ** 2, by_hand, rtol=1e-4)


@pytest.mark.slow
def test_soft_regularization_mlp(capsys):
    example = _load("soft_regularization_mlp")
    results = example.main(num_steps=400)
    assert "soft term" in capsys.readouterr().out
    soft, jac = np.asarray(results["soft"]), np.asarray(results["jacobian"])
    assert soft[1] < soft[0] and jac[1] < jac[0], "the soft terms make the network smoother"
    assert np.all(np.asarray(results["train_accuracy"]) > 0.75)
    # the reported norm product is ‖W1‖₁‖W2‖₂ with numpy's matrix norms
    params = jax.tree.map(lambda leaf: leaf[1], results["params"])
    w1, w2 = (np.asarray(layer["w"], np.float64) for layer in params)
    expected = np.linalg.norm(w1, 1) * np.linalg.norm(w2, 2)
    np.testing.assert_allclose(results["norm_product"][1], expected, rtol=1e-4)
    # and the soft term matches the contractive penalty recomputed outside the example
    x_test, _ = example.make_spirals(1000, 1)
    _, pre = example.NET.apply(params, x_test, return_activations=True)
    np.testing.assert_allclose(
        soft[1], penalties.contractive(params[0]["w"], pre[0], jax.nn.relu), rtol=1e-5
    )


@pytest.mark.slow
def test_dropout_mlp(capsys):
    example = _load("dropout_mlp")
    results = example.main(num_steps=150)
    assert "test acc" in capsys.readouterr().out
    train_accuracy = np.asarray(results["train_accuracy"])
    test_accuracy = np.asarray(results["test_accuracy"])
    assert train_accuracy[0] > 0.95, "without dropout the wide MLP fits the training set"
    assert np.all(test_accuracy > 0.6)
    assert np.all(train_accuracy >= test_accuracy - 0.05)

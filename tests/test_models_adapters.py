"""from_flax, from_nnx, from_equinox against the libraries themselves: a Model's apply equals the
module applied directly (linen ``module.apply``, an nnx call, an Equinox call per example), init
equals the library's own init (or the module's parameters), dropout keys reach the module, state
is refused; and ``fit_path`` on a Flax linen, an nnx and an Equinox MLP, with λ_ref checked
against the group dual norm of ``jax.grad`` of the module applied directly. The linen and
Equinox fits are the README's own code blocks, run here.

flax and equinox are optional: each test skips when the library it needs is absent.
"""

from __future__ import annotations

import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxreg

X = jnp.asarray(np.random.default_rng(0).standard_normal((6, 4)), jnp.float32)
KEY = jax.random.key(0)
README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture(scope="module")
def linen():
    return pytest.importorskip("flax.linen")


@pytest.fixture(scope="module")
def nnx():
    return pytest.importorskip("flax.nnx")


@pytest.fixture(scope="module")
def eqx():
    return pytest.importorskip("equinox")


def as_numpy(leaf):
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):  # nnx RNG streams
        leaf = jax.random.key_data(leaf)
    return np.asarray(leaf)


def assert_trees_equal(actual, expected):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(as_numpy(a), as_numpy(e))


def assert_dropout_reaches_module(model, params):
    """train=True with a key drops units; the same key gives the same output, another key
    another; no key while training is a ValueError."""
    inference = model.apply(params, X)
    first = model.apply(params, X, key=jax.random.key(1), train=True)
    assert not np.allclose(first, inference)
    np.testing.assert_array_equal(first, model.apply(params, X, key=jax.random.key(1), train=True))
    assert not np.allclose(first, model.apply(params, X, key=jax.random.key(2), train=True))
    # a key without train=True changes nothing
    np.testing.assert_array_equal(model.apply(params, X, key=jax.random.key(1)), inference)
    with pytest.raises(ValueError, match="PRNG key"):
        model.apply(params, X, train=True)


# --- flax.linen --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def linen_mlp(linen):
    class MLP(linen.Module):
        @linen.compact
        def __call__(self, x, deterministic: bool = True):
            x = linen.relu(linen.Dense(16)(x))
            x = linen.Dropout(0.5)(x, deterministic=deterministic)
            return linen.Dense(3)(x)

    return MLP()


def test_from_flax_init_is_the_modules_init_from_the_key(linen_mlp):
    model = jaxreg.models.from_flax(linen_mlp, X[:1])
    assert isinstance(model, jaxreg.models.Model)
    init = jax.jit(model.init)
    params = init(KEY)
    assert_trees_equal(params, linen_mlp.init(KEY, X[:1])["params"])
    assert_trees_equal(params, init(KEY))
    other = init(jax.random.key(1))
    assert not np.allclose(other["Dense_0"]["kernel"], params["Dense_0"]["kernel"])
    # only the shape and dtype of the sample matter
    shaped = jaxreg.models.from_flax(linen_mlp, jax.ShapeDtypeStruct((5, 4), jnp.float32))
    assert_trees_equal(jax.jit(shaped.init)(KEY), params)


def test_from_flax_apply_is_module_apply(linen_mlp):
    model = jaxreg.models.from_flax(linen_mlp, X[:1])
    params = model.init(KEY)
    variables = {"params": params}
    np.testing.assert_array_equal(model.apply(params, X), linen_mlp.apply(variables, X))
    key = jax.random.key(3)
    np.testing.assert_array_equal(
        model.apply(params, X, key=key, train=True),
        linen_mlp.apply(variables, X, deterministic=False, rngs={"dropout": key}),
    )
    assert_dropout_reaches_module(model, params)


def test_from_flax_maps_train_to_a_train_argument(linen):
    class Net(linen.Module):
        @linen.compact
        def __call__(self, x, train: bool = False):
            return linen.Dropout(0.5, deterministic=not train)(linen.Dense(8)(x))

    model = jaxreg.models.from_flax(Net(), X[:1])
    assert_dropout_reaches_module(model, model.init(KEY))


def test_from_flax_refuses_batch_stats_and_nnx_modules(linen, nnx):
    class WithBatchNorm(linen.Module):
        @linen.compact
        def __call__(self, x, train: bool = False):
            return linen.BatchNorm(use_running_average=not train)(linen.Dense(3)(x))

    with pytest.raises(TypeError, match="batch_stats"):
        jaxreg.models.from_flax(WithBatchNorm(), X[:1])
    with pytest.raises(TypeError, match="from_nnx"):
        jaxreg.models.from_flax(nnx.Linear(4, 3, rngs=nnx.Rngs(0)), X[:1])


# --- flax.nnx ----------------------------------------------------------------------------------


def make_nnx_mlp(nnx, *, seed=0, hidden=16, inputs=4, outputs=3, rate=0.5):
    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.hidden = nnx.Linear(inputs, hidden, rngs=rngs)
            self.dropout = nnx.Dropout(rate, rngs=rngs)
            self.out = nnx.Linear(hidden, outputs, rngs=rngs)

        def __call__(self, x):
            return self.out(self.dropout(jax.nn.relu(self.hidden(x))))

    return MLP(nnx.Rngs(seed))


def test_from_nnx_init_is_the_modules_params_and_ignores_the_key(nnx):
    module = make_nnx_mlp(nnx)
    model = jaxreg.models.from_nnx(module)
    params = model.init(KEY)
    assert_trees_equal(params, nnx.state(module, nnx.Param))
    assert_trees_equal(model.init(jax.random.key(1)), params)


def test_from_nnx_apply_is_the_module_call_and_leaves_the_module_alone(nnx):
    module = make_nnx_mlp(nnx)
    model = jaxreg.models.from_nnx(module)
    params = model.init(KEY)
    before = nnx.state(module)
    module.eval()
    expected = module(X)
    np.testing.assert_array_equal(model.apply(params, X), expected)
    assert_dropout_reaches_module(model, params)
    # new parameters go where the module has them: a zero output layer gives its bias
    zeroed = jax.tree.map(jnp.zeros_like, params)
    np.testing.assert_array_equal(model.apply(zeroed, X), np.zeros((6, 3)))
    # applying never changes the module (its RNG counts included)
    assert_trees_equal(nnx.state(module), before)
    np.testing.assert_array_equal(module(X), expected)


def test_from_nnx_passes_rngs_to_a_call_that_takes_them(nnx):
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.linear = nnx.Linear(4, 8, rngs=rngs)
            self.dropout = nnx.Dropout(0.5)  # no RNG stream of its own

        def __call__(self, x, *, rngs=None):
            return self.dropout(self.linear(x), rngs=rngs)

    module = Net(nnx.Rngs(0))
    model = jaxreg.models.from_nnx(module)
    assert_dropout_reaches_module(model, model.init(KEY))


def test_from_nnx_refuses_batch_stats_and_linen_modules(linen, nnx):
    class WithBatchNorm(nnx.Module):
        def __init__(self, rngs):
            self.linear = nnx.Linear(4, 3, rngs=rngs)
            self.norm = nnx.BatchNorm(3, rngs=rngs)

        def __call__(self, x):
            return self.norm(self.linear(x))

    with pytest.raises(TypeError, match="BatchStat"):
        jaxreg.models.from_nnx(WithBatchNorm(nnx.Rngs(0)))
    with pytest.raises(TypeError, match="from_flax"):
        jaxreg.models.from_nnx(linen.Dense(3))


# --- Equinox -----------------------------------------------------------------------------------


def make_eqx_mlp(eqx, key, *, inputs=4, hidden=16, outputs=3, rate=0.5):
    class MLP(eqx.Module):
        hidden: eqx.nn.Linear
        dropout: eqx.nn.Dropout
        out: eqx.nn.Linear

        def __init__(self, key):
            hidden_key, out_key = jax.random.split(key)
            self.hidden = eqx.nn.Linear(inputs, hidden, key=hidden_key)
            self.dropout = eqx.nn.Dropout(rate)
            self.out = eqx.nn.Linear(hidden, outputs, key=out_key)

        def __call__(self, x, *, key=None):
            return self.out(self.dropout(jax.nn.relu(self.hidden(x)), key=key))

    return MLP(key)


def test_from_equinox_init_is_the_modules_float_arrays_and_ignores_the_key(eqx):
    module = make_eqx_mlp(eqx, KEY)
    model = jaxreg.models.from_equinox(module)
    params = model.init(jax.random.key(5))
    assert_trees_equal(params, eqx.filter(module, eqx.is_inexact_array))
    assert_trees_equal(model.init(jax.random.key(6)), params)


def test_from_equinox_apply_is_the_module_per_example(eqx):
    module = make_eqx_mlp(eqx, KEY)
    model = jaxreg.models.from_equinox(module)
    params = model.init(KEY)
    inference = eqx.nn.inference_mode(module)
    inference_one = jax.jit(lambda x: inference(x))  # one example at a time, no vmap
    np.testing.assert_allclose(
        model.apply(params, X),
        np.stack([inference_one(x) for x in X]),
        rtol=1e-6,
        atol=1e-6,
    )
    key = jax.random.key(3)
    keys = jax.random.split(key, X.shape[0])
    one = jax.jit(lambda x, k: module(x, key=k))
    np.testing.assert_allclose(
        model.apply(params, X, key=key, train=True),
        np.stack([one(x, k) for x, k in zip(X, keys, strict=True)]),
        rtol=1e-6,
        atol=1e-6,
    )
    assert_dropout_reaches_module(model, params)


@pytest.mark.filterwarnings("ignore:When `eqx.nn.BatchNorm:UserWarning")
def test_from_equinox_refuses_state_and_other_objects(eqx):
    class WithBatchNorm(eqx.Module):
        linear: eqx.nn.Linear
        norm: eqx.nn.BatchNorm

        def __init__(self, key):
            self.linear = eqx.nn.Linear(4, 3, key=key)
            self.norm = eqx.nn.BatchNorm(3, axis_name="batch")

        def __call__(self, x, state):
            return self.norm(self.linear(x), state)

    module, _ = eqx.nn.make_with_state(WithBatchNorm)(KEY)
    with pytest.raises(TypeError, match="StateIndex"):
        jaxreg.models.from_equinox(module)
    with pytest.raises(TypeError, match="equinox"):
        jaxreg.models.from_equinox(lambda x: x)


# --- fit_path ----------------------------------------------------------------------------------


def readme_block(library: str) -> str:
    """The code block of the README's adapters section that imports ``library``."""
    text = README.read_text()
    section = text.split("## Your Flax, nnx or Equinox model", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    (block,) = [b for b in blocks if re.search(rf"^import {library}", b, flags=re.M)]
    return block


@pytest.fixture(scope="module")
def readme_flax(linen):
    namespace: dict = {}
    exec(readme_block("flax"), namespace)
    return namespace


@pytest.fixture(scope="module")
def readme_equinox(readme_flax, eqx):
    namespace = dict(readme_flax)  # the Equinox block reuses the first block's data
    exec(readme_block("equinox"), namespace)
    return namespace


def group_dual_norm(grads, penalized, group_axis):
    """max_g ‖∇_g‖ / √|g| over the slices along ``group_axis`` of the penalized gradients."""
    norms = []
    for grad, keep in zip(jax.tree.leaves(grads), jax.tree.leaves(penalized), strict=True):
        if keep:
            other = tuple(a for a in range(grad.ndim) if a != group_axis)
            size = np.prod([grad.shape[a] for a in other])
            norms.append(np.max(np.linalg.norm(np.asarray(grad), axis=other)) / np.sqrt(size))
    return max(norms)


def mean_cross_entropy(logits, labels):
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def assert_null_model_then_growing_path(fit, penalized, features_kept, expected_lambda_ref):
    """λ_ref is the hand-computed dual norm; at λ_ref every penalized weight is exactly zero (the
    null model); the path gains nonzeros and input features as λ decreases."""
    np.testing.assert_allclose(fit.lambda_ref, expected_lambda_ref, rtol=1e-5)
    np.testing.assert_allclose(fit.lambdas[0], fit.lambda_ref, rtol=1e-12)
    pairs = zip(jax.tree.leaves(fit.path_params), jax.tree.leaves(penalized), strict=True)
    chosen = [np.asarray(leaf) for leaf, keep in pairs if keep]
    assert all(np.all(leaf[0] == 0) for leaf in chosen)
    counts = [sum(np.count_nonzero(leaf[k]) for leaf in chosen) for k in range(fit.lambdas.size)]
    np.testing.assert_array_equal(fit.nonzeros, counts)
    assert np.all(np.diff(fit.nonzeros) >= 0) and fit.nonzeros[-1] > 0
    kept = np.asarray(features_kept)
    assert kept[0] == 0 and np.all(np.diff(kept) >= 0) and kept[-1] > 0


def test_fit_path_on_the_readme_flax_linen_mlp(readme_flax):
    ns = readme_flax
    fit, module, X, y = ns["flax_fit"], ns["MLP"](), ns["X"], ns["y"]
    initial = module.init(jax.random.split(jax.random.key(0), 3)[0], X[:1])["params"]
    loss = lambda p: mean_cross_entropy(module.apply({"params": p}, X), y)
    grads = jax.jit(jax.grad(loss))(initial)
    penalized = jax.tree.map(lambda leaf: leaf.ndim == 2, initial)  # the two kernels
    kept = (fit.path_params["Dense_0"]["kernel"] != 0).any(axis=2).sum(axis=1)
    expected = group_dual_norm(grads, penalized, group_axis=0)
    assert_null_model_then_growing_path(fit, penalized, kept, expected)
    assert fit.norm_labels == ["Dense_0.kernel", "Dense_1.kernel"]


def test_fit_path_on_the_readme_equinox_mlp(readme_equinox, eqx):
    ns = readme_equinox
    fit, module, X, y = ns["eqx_fit"], ns["EqxMLP"](jax.random.key(1)), ns["X"], ns["y"]
    inference = eqx.nn.inference_mode(module)

    def loss(params):
        combined = eqx.combine(params, eqx.filter(inference, eqx.is_inexact_array, inverse=True))
        return mean_cross_entropy(jax.vmap(combined)(jnp.asarray(X)), y)

    params = eqx.filter(inference, eqx.is_inexact_array)
    penalized = jax.tree.map(lambda leaf: leaf.ndim == 2, params)
    kept = (fit.path_params.hidden.weight != 0).any(axis=1).sum(axis=1)
    expected = group_dual_norm(jax.jit(jax.grad(loss))(params), penalized, group_axis=1)
    assert_null_model_then_growing_path(fit, penalized, kept, expected)


def test_fit_path_on_an_nnx_mlp_with_a_mask_of_its_own(nnx):
    digits = jaxreg.datasets.load("digits", standardize=True)
    X, y = digits.X[:150], digits.y[:150]
    module = make_nnx_mlp(nnx, hidden=8, inputs=64, outputs=10, rate=0.1)
    model = jaxreg.models.from_nnx(module)
    params = nnx.state(module, nnx.Param)
    # a precomputed nnx State of bools (never called): the two kernels
    mask = jax.tree_util.tree_map_with_path(
        lambda path, _: jax.tree_util.keystr(path).endswith("['kernel'].value"), params
    )
    fit = jaxreg.fit_path(
        model,
        X,
        y,
        penalty="group_lasso",
        group_axis=0,
        mask=mask,
        lambdas=3,
        folds=2,
        steps=60,
        batch_size=32,
        learning_rate=0.3,
        key=KEY,
    )
    module.eval()
    graphdef, streams = nnx.graphdef(module), nnx.state(module, nnx.RngState)
    loss = lambda p: mean_cross_entropy(nnx.merge(graphdef, p, streams)(jnp.asarray(X)), y)
    grads = jax.jit(jax.grad(loss))(params)
    kept = (fit.path_params["hidden"]["kernel"][...] != 0).any(axis=2).sum(axis=1)
    assert_null_model_then_growing_path(fit, mask, kept, group_dual_norm(grads, mask, group_axis=0))

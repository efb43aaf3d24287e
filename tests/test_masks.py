"""Masks: which leaves a regularizer touches, in optax's ``mask=`` convention."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxreg
from jaxreg import masks


def _mlp_like_params():
    return [
        {"w": jnp.ones((4, 3)), "b": jnp.ones(3)},
        {"w": jnp.ones((3, 2)), "b": jnp.ones(2), "scale": jnp.ones(())},
        {"kernel": jnp.ones((2, 2, 3))},
    ]


def test_weights_only_selects_leaves_with_two_or_more_dimensions():
    selected = masks.weights_only(_mlp_like_params())
    assert selected == [
        {"w": True, "b": False},
        {"w": True, "b": False, "scale": False},
        {"kernel": True},
    ]


def test_weights_only_works_under_jit():
    # Only shapes are inspected, so the mask is the same when the params are traced.
    params = _mlp_like_params()

    @jax.jit
    def masked_l1(p):
        return jaxreg.penalties.l1(p, 1.0, mask=masks.weights_only)

    expected = sum(x.size for x in jax.tree.leaves(params) if x.ndim >= 2)
    np.testing.assert_allclose(masked_l1(params), expected)


def test_weights_only_is_an_optax_mask():
    # The same callable drives optax.masked: decoupled weight decay on weights, not biases.
    params = _mlp_like_params()
    zeros = jax.tree.map(jnp.zeros_like, params)
    decay = optax.masked(optax.add_decayed_weights(0.1), masks.weights_only)
    updates, _ = decay.update(zeros, decay.init(params), params)
    np.testing.assert_allclose(updates[0]["w"], 0.1)
    np.testing.assert_allclose(updates[2]["kernel"], 0.1)
    np.testing.assert_array_equal(updates[0]["b"], 0.0)
    np.testing.assert_array_equal(updates[1]["scale"], 0.0)


def test_weights_only_with_a_jaxreg_penalty_matches_the_hand_picked_leaves():
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape)), _mlp_like_params())
    by_hand = [params[0]["w"], params[1]["w"], params[2]["kernel"]]
    np.testing.assert_allclose(
        jaxreg.penalties.l2(params, 0.5, mask=masks.weights_only),
        0.25 * sum(float(jnp.sum(w**2)) for w in by_hand),
        rtol=1e-6,
    )

"""jaxreg.cv against glmnet's formulas written out independently."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxreg import cv


def glmnet_reference(raw, lambdas, weights=None):
    """cv.glmnet's cvcompute + getOptcv, transcribed loop by loop from the R definitions."""
    raw = np.asarray(raw, float)
    folds, num = raw.shape
    w = np.ones(folds) if weights is None else np.asarray(weights, float)
    cvm, cvsd = np.empty(num), np.empty(num)
    for k in range(num):
        column = raw[:, k]
        if not np.all(np.isfinite(column)):
            cvm[k] = cvsd[k] = np.nan
            continue
        cvm[k] = np.sum(w * column) / np.sum(w)
        cvsd[k] = np.sqrt(np.sum(w * (column - cvm[k]) ** 2) / np.sum(w) / (folds - 1))
    cvmin = np.nanmin(cvm)
    lambda_min = max(lam for lam, m in zip(lambdas, cvm, strict=True) if m <= cvmin)
    i_min = list(lambdas).index(lambda_min)
    semin = cvm[i_min] + cvsd[i_min]
    lambda_1se = max(lam for lam, m in zip(lambdas, cvm, strict=True) if m <= semin)
    return cvm, cvsd, lambda_min, lambda_1se


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("descending", [True, False])
def test_summarize_matches_glmnet(weighted, descending):
    rng = np.random.default_rng(0)
    lambdas = np.geomspace(1.0, 1e-3, 30)
    if not descending:
        lambdas = lambdas[::-1].copy()
    # A U-shaped curve plus fold noise, so λ_min and λ_1se differ.
    curve = (np.log(lambdas) + 3.5) ** 2 + 1.0
    raw = curve + rng.normal(scale=0.8, size=(5, 30))
    weights = rng.integers(10, 20, size=5) if weighted else None
    s = cv.summarize(raw, lambdas, weights=weights)
    cvm, cvsd, lambda_min, lambda_1se = glmnet_reference(raw, lambdas, weights)
    np.testing.assert_allclose(s.cvm, cvm, rtol=1e-12)
    np.testing.assert_allclose(s.cvsd, cvsd, rtol=1e-12)
    np.testing.assert_allclose(s.cvup, cvm + cvsd, rtol=1e-12)
    np.testing.assert_allclose(s.cvlo, cvm - cvsd, rtol=1e-12)
    assert s.lambda_min == lambda_min and s.lambda_1se == lambda_1se
    assert s.lambdas[s.index_min] == lambda_min and s.lambdas[s.index_1se] == lambda_1se
    assert s.lambda_1se >= s.lambda_min
    assert isinstance(s.lambda_min, float) and isinstance(s.index_1se, int)


def test_summarize_accepts_jax_arrays():
    raw = jnp.array([[2.0, 1.0, 1.5], [2.2, 1.4, 1.3]])
    s = cv.summarize(raw, jnp.array([1.0, 0.1, 0.01]))
    assert isinstance(s.cvm, np.ndarray)
    np.testing.assert_allclose(s.cvm, [2.1, 1.2, 1.4], rtol=1e-6)
    assert s.index_min == 1


def test_ties_pick_largest_lambda():
    raw = np.array([[1.0, 2.0, 1.0, 3.0], [1.0, 2.0, 1.0, 3.0]])
    s = cv.summarize(raw, [0.3, 0.5, 0.7, 0.1])
    assert s.lambda_min == 0.7 and s.index_min == 2
    # zero spread: 1se threshold equals the minimum, so the tie rule applies again
    assert s.lambda_1se == 0.7


def test_diverged_member_never_selected():
    raw = np.array([[5.0, 0.1, 1.0, 2.0], [5.0, np.inf, 1.1, 2.0], [5.0, 0.2, 0.9, 2.1]])
    lambdas = [1.0, 0.5, 0.25, 0.1]
    s = cv.summarize(raw, lambdas)
    assert np.isnan(s.cvm[1]) and np.isnan(s.cvsd[1])
    assert s.index_min == 2 and s.lambda_min == 0.25
    cvm, _, lambda_min, lambda_1se = glmnet_reference(raw, lambdas)
    np.testing.assert_allclose(s.cvm, cvm, rtol=1e-12)
    assert (s.lambda_min, s.lambda_1se) == (lambda_min, lambda_1se)


def test_all_diverged_is_an_error():
    with pytest.raises(ValueError, match="losses"):
        cv.summarize(np.full((3, 2), np.nan), [1.0, 0.5])


@pytest.mark.parametrize(
    ("losses", "lambdas", "weights", "match"),
    [
        (np.ones(4), np.ones(4), None, "losses"),
        (np.ones((1, 4)), np.ones(4), None, "losses"),
        (np.ones((3, 4)), np.ones(3), None, "lambdas"),
        (np.ones((3, 4)), np.ones(4), np.ones(2), "weights"),
        (np.ones((3, 4)), np.ones(4), np.array([1.0, -1.0, 1.0]), "weights"),
        (np.ones((3, 4)), np.ones(4), np.zeros(3), "weights"),
    ],
)
def test_summarize_bad_input(losses, lambdas, weights, match):
    with pytest.raises(ValueError, match=match):
        cv.summarize(losses, lambdas, weights=weights)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 60), k=st.integers(2, 10), seed=st.integers(0, 2**16))
def test_kfold_is_balanced_random_partition(n, k, seed):
    if k > n:
        with pytest.raises(ValueError, match="k"):
            cv.kfold(n, k, key=jax.random.key(seed))
        return
    folds = np.asarray(cv.kfold(n, k, key=jax.random.key(seed)))
    assert folds.shape == (n,) and folds.dtype.kind == "i"
    sizes = np.bincount(folds, minlength=k)
    assert sizes.min() >= 1 and sizes.max() - sizes.min() <= 1 and sizes.sum() == n
    np.testing.assert_array_equal(folds, np.asarray(cv.kfold(n, k, key=jax.random.key(seed))))


def test_kfold_depends_on_key():
    a = np.asarray(cv.kfold(100, 5, key=jax.random.key(0)))
    b = np.asarray(cv.kfold(100, 5, key=jax.random.key(1)))
    assert not np.array_equal(a, b)
    # not the trivial round-robin assignment
    assert not np.array_equal(a, np.arange(100) % 5)
    np.testing.assert_array_equal(a, np.asarray(cv.kfold(100, 5, key=0)))


def test_kfold_bad_input():
    with pytest.raises(ValueError, match="k"):
        cv.kfold(10, 1, key=0)
    with pytest.raises(TypeError, match="n"):
        cv.kfold(10.0, 2, key=0)


def test_fold_ids_from_a_count_is_kfold_and_from_labels_is_a_relabelling():
    key = jax.random.key(3)
    np.testing.assert_array_equal(cv.fold_ids(11, 4, key=key), np.asarray(cv.kfold(11, 4, key=key)))
    labels = np.array([10, -2, 10, 5, 5, -2])
    ids = cv.fold_ids(6, labels)
    # the same partition, numbered 0..k-1 in sorted label order
    for a in range(6):
        for b in range(6):
            assert (ids[a] == ids[b]) == (labels[a] == labels[b])
    assert sorted(set(ids.tolist())) == [0, 1, 2]


@pytest.mark.parametrize(
    "folds, message",
    [
        (1, "folds must be between"),
        (7, "folds must be between"),
        (np.zeros(6, int), "at least 2"),
        (np.arange(5), "shape"),
        (np.ones(6) * 0.5, "integer"),
    ],
)
def test_fold_ids_rejects_bad_folds(folds, message):
    with pytest.raises(ValueError, match=message):
        cv.fold_ids(6, folds)

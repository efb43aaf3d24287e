"""examples/seed_linear.py: the seeds' linear examples reach the exact solutions."""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest
from scipy.optimize import lsq_linear

EXAMPLE = pathlib.Path(__file__).parents[1] / "examples" / "seed_linear.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("seed_linear", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data(example):
    return example.make_data()


LAM = 40.0


def test_prox_l1_reaches_the_exact_lasso_solution(example, data):
    x, y = data
    w_star, b_star = example.lasso_reference(x, y, LAM)
    ista = example.l1_proximal(x, y, LAM)
    np.testing.assert_allclose(ista["w"], w_star, atol=2e-4)
    np.testing.assert_allclose(ista["b"], b_star, atol=2e-4)
    # exact zeros exactly where the lasso has them
    np.testing.assert_array_equal(ista["w"] == 0, w_star == 0)
    assert (w_star == 0).sum() == 2


def test_sign_subgradient_is_only_approximately_optimal(example, data):
    x, y = data
    w_star, b_star = example.lasso_reference(x, y, LAM)
    sign = example.l1_sign_subgradient(x, y, LAM)
    best = example.seed_l1_objective(x, y, w_star, b_star, LAM)
    reached = example.seed_l1_objective(x, y, sign["w"], sign["b"], LAM)
    assert best <= reached <= best * (1 + 1e-2)
    np.testing.assert_allclose(sign["w"], w_star, atol=0.02)
    # oscillation: the zero coefficients hover near zero but are not exactly zero
    assert np.all(np.abs(sign["w"][w_star == 0]) < 0.02)


def test_l2_both_ways_reach_ridge_closed_form(example, data):
    x, y = data
    m = len(y)
    xc, yc = x - x.mean(0), y - y.mean()
    # seed objective (1/(2m))‖r‖² + λ/(2m)‖w‖²  ⇒  (XᵀX + λ I) w = Xᵀy on centred data
    exact = np.linalg.solve(xc.T @ xc + LAM * np.eye(x.shape[1]), xc.T @ yc)
    w_ridge, _ = example.ridge_reference(x, y, LAM / m)
    np.testing.assert_allclose(w_ridge, exact, rtol=1e-8)
    np.testing.assert_allclose(example.l2_decayed_weights(x, y, LAM)["w"], exact, atol=1e-4)
    np.testing.assert_allclose(example.l2_penalty_term(x, y, LAM)["w"], exact, atol=1e-4)


def test_hard_regularization_is_box_constrained_ridge(example, data):
    x, y = data
    n, p = x.shape
    lam = 0.05
    hard = example.hard_regularization(x, y, lam, clip_value=1.0, grad_limit=0.5)
    assert np.all(np.abs(hard["w"]) <= 1.0)
    # independent: (1/(2n))‖y − Xw − b‖² + λ‖w‖², |w| ≤ 1, b free, as bounded least squares
    design = np.block(
        [
            [x / np.sqrt(n), np.ones((n, 1)) / np.sqrt(n)],
            [np.sqrt(2 * lam) * np.eye(p), np.zeros((p, 1))],
        ]
    )
    target = np.concatenate([y / np.sqrt(n), np.zeros(p)])
    lower = np.concatenate([-np.ones(p), [-np.inf]])
    upper = np.concatenate([np.ones(p), [np.inf]])
    solution = lsq_linear(design, target, bounds=(lower, upper), tol=1e-12).x
    np.testing.assert_allclose(hard["w"], solution[:p], atol=2e-4)
    np.testing.assert_allclose(hard["b"], solution[p], atol=2e-4)
    # with an inactive box the same chain lands on the linear.path ridge solution
    loose = example.hard_regularization(x, y, lam, clip_value=5.0, grad_limit=0.5)
    w_ridge, b_ridge = example.ridge_reference(x, y, 2 * lam)
    np.testing.assert_allclose(loose["w"], w_ridge, atol=2e-4)
    np.testing.assert_allclose(loose["b"], b_ridge, atol=2e-4)


def test_example_runs(example, capsys):
    example.main()
    out = capsys.readouterr().out
    assert "prox: objective − optimum" in out and "exact zeros: 2" in out

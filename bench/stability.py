"""Stability selection: B = 100 subsample lasso paths, jaxreg vs a loop of lasso_path.

Meinshausen & Bühlmann (2010): B random halves of the data, a lasso path on each (the full data's
grid, 20 λ from λ_max down to 0.1·λ_max), the fraction of halves selecting each feature at each λ.
``jaxreg.linear.stability_selection`` runs the B paths through the compiled program of
``linear.path`` one after another; measured with it: the alternative not chosen, the B paths
vmapped in one program (their coordinate-descent steps in lockstep), and the same loop through
the public ``jaxreg.linear.path``. The baseline is the loop users write, B calls of
``sklearn.linear_model.lasso_path`` on the same halves (tol 1e-4, its default). Reported:
steady-state medians (interleaved), jaxreg's first call (compilation) separately, the largest
difference between jaxreg's and sklearn's selection probabilities (both stop at tol 1e-4, so
features at the edge of selection can differ), the stable sets, and the matmul GFLOP/s.

Run: /work/venv/bin/python bench/stability.py
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import warnings

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _common import first_call_seconds, interleaved_medians, matmul_gflops, write_json  # noqa: E402

B = 100
NUM_LAMBDAS = 20
EPS = 0.1
THRESHOLD = 0.6
TOL = 1e-4


def make_case(n: int, p: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correlated Gaussian features (AR(1), ρ = 0.5), 10 true features."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, p))
    x = np.empty_like(z)
    x[:, 0] = z[:, 0]
    for j in range(1, p):
        x[:, j] = 0.5 * x[:, j - 1] + np.sqrt(0.75) * z[:, j]
    true = rng.choice(p, 10, replace=False)
    w = np.zeros(p)
    w[true] = rng.choice([-1.0, 1.0], 10) * rng.uniform(0.5, 1.5, 10)
    return x, x @ w + rng.standard_normal(n), np.sort(true)


def sklearn_loop(x, y, subsamples, grid):
    from sklearn.linear_model import lasso_path

    used = np.zeros((len(subsamples), len(grid), x.shape[1]), bool)
    for b, rows in enumerate(subsamples):
        xs, ys = x[rows] - x[rows].mean(0), y[rows] - y[rows].mean()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, coefs, _ = lasso_path(xs, ys, alphas=grid, tol=TOL)
        used[b] = coefs.T != 0
    return used.mean(axis=0)


def jaxreg_loop(x, y, subsamples, grid, dtype):
    from jaxreg import linear

    used = np.zeros((len(subsamples), len(grid), x.shape[1]), bool)
    for b, rows in enumerate(subsamples):
        used[b] = linear.path(x[rows], y[rows], lambdas=grid, tol=TOL, dtype=dtype).coef != 0
    return used.mean(axis=0)


def vmapped(x, y, subsamples, grid, dtype):
    """The alternative not chosen: the B paths vmapped in one program."""
    import jax
    import jax.numpy as jnp

    from jaxreg import _linear_fit as fitting
    from jaxreg import _linear_gaussian as gaussian

    problem = fitting.problem(x, y, "gaussian")
    s = fitting.settings(problem, 1.0, grid, None, True, TOL, None, "auto", dtype)
    s = s._replace(gram=gaussian.choose_gram("auto", len(y) // 2, x.shape[1]))
    with s.x64():
        hyper = (jnp.asarray(grid, s.dtype), jnp.asarray(1.0, s.dtype), jnp.asarray(TOL, s.dtype),
                 jnp.asarray(s.max_iter, jnp.int32))  # fmt: skip
        if s.gram:
            stats = [fitting.statistics(x[rows], y[rows], s) for rows in subsamples]
            stacked = jax.tree.map(lambda *a: jnp.stack(a), *stats)
            coef = jax.vmap(lambda st: gaussian.gram_path_program(st, *hyper)[0])(stacked)
        else:
            masks = np.zeros((len(subsamples), len(y)))
            for b, rows in enumerate(subsamples):
                masks[b, rows] = 1
            xj, yj = jnp.asarray(x, s.dtype), jnp.asarray(y, s.dtype)
            coef = jax.vmap(
                lambda m: gaussian.residual_path_program(xj, yj, m, *hyper, fit_intercept=True)[0]
            )(jnp.asarray(masks, s.dtype))
        return (np.asarray(coef) != 0).mean(axis=0)


def run_case(n: int, p: int, repeats: int) -> dict:
    from jaxreg import linear

    x, y, true = make_case(n, p)

    def stability(dtype):
        return lambda: linear.stability_selection(
            x, y, num_subsamples=B, lambdas=NUM_LAMBDAS, eps=EPS, tol=TOL, key=0, dtype=dtype,
            threshold=THRESHOLD,
        )  # fmt: skip

    first = {dt: first_call_seconds(lambda dt=dt: stability(dt)().probabilities)
             for dt in ("float64", "float32")}  # fmt: skip
    reference = stability("float64")()
    subsamples, grid = reference.subsamples, reference.lambdas
    fns = {
        "sklearn_loop": lambda: sklearn_loop(x, y, subsamples, grid),
        "jaxreg_f64": stability("float64"),
        "jaxreg_f32": stability("float32"),
        "jaxreg_vmapped_program_f64": lambda: vmapped(x, y, subsamples, grid, "float64"),
        "jaxreg_loop_of_path_f64": lambda: jaxreg_loop(x, y, subsamples, grid, "float64"),
    }
    medians = interleaved_medians(fns, repeats=repeats)
    sk = sklearn_loop(x, y, subsamples, grid)
    f32 = stability("float32")()
    return {
        "n": n,
        "p": p,
        "subsamples": B,
        "num_lambdas": NUM_LAMBDAS,
        "tol": TOL,
        "median_s": medians,
        "first_call_s": first,
        "speedup_vs_sklearn_loop": {
            k: medians["sklearn_loop"] / v for k, v in medians.items() if k != "sklearn_loop"
        },
        "max_abs_probability_diff_vs_sklearn": {
            "float64": float(np.max(np.abs(reference.probabilities - sk))),
            "float32": float(np.max(np.abs(f32.probabilities - sk))),
        },
        "true_features": true.tolist(),
        "stable_set": np.flatnonzero(reference.selected).tolist(),
        "stable_set_sklearn": np.flatnonzero(sk.max(axis=0) >= THRESHOLD).tolist(),
        "expected_false_selections_bound": reference.expected_false_selections,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    gflops = matmul_gflops()
    print(f"matmul float32: {gflops:.1f} GFLOP/s")
    cases = {}
    for n, p in ((1000, 200), (200, 1000)):
        name = f"n{n}_p{p}"
        cases[name] = r = run_case(n, p, args.repeats)
        med = r["median_s"]
        print(f"{name}: B={B} subsample paths of {NUM_LAMBDAS} λ; sklearn loop "
              f"{med['sklearn_loop']:.2f} s")  # fmt: skip
        for label, speedup in r["speedup_vs_sklearn_loop"].items():
            print(f"  {label:26s} {med[label]:7.3f} s  {speedup:5.2f}x")
        print(f"  first call: f64 {r['first_call_s']['float64']:.2f} s, "
              f"f32 {r['first_call_s']['float32']:.2f} s")  # fmt: skip
        print(f"  max |Π_jaxreg − Π_sklearn|: {r['max_abs_probability_diff_vs_sklearn']}")
        print(f"  true {r['true_features']}; stable set {r['stable_set']} (sklearn "
              f"{r['stable_set_sklearn']}); E[false] ≤ {r['expected_false_selections_bound']:.2f}")
    write_json("stability", {"matmul_gflops_f32": gflops, "cases": cases})


if __name__ == "__main__":
    main()

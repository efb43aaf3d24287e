"""jaxreg.linear.path vs sklearn.linear_model.lasso_path, side by side in one process.

Cases: n=2000 × p=500 with 20 true nonzeros (the target), diabetes 442 × 10, and a wide
n=200 × p=5000 case; 100 λ on sklearn's grid, tol=1e-4 (sklearn's default) for both. Both
sides get the raw data and centre it (what LassoCV does with an intercept). Reported: steady
state interleaved medians, jaxreg's first call (compilation) separately, the same first call in
fresh processes without / with the persistent compilation cache, the max relative objective gap
(ours − sklearn) / sklearn across λ, and the machine's matmul GFLOP/s. Also measured, as the
alternative that was not chosen: FISTA over the Gram matrix with all 100 λ at once (vmapped).

Run: /work/venv/bin/python bench/linear_path.py
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _common import first_call_seconds, interleaved_medians, matmul_gflops, write_json  # noqa: E402

NUM_LAMBDAS = 100
TOL = 1e-4  # sklearn's default


def make_case(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "diabetes":
        from sklearn.datasets import load_diabetes

        return load_diabetes(return_X_y=True)
    n, p = {"n2000_p500": (2000, 500), "wide_n200_p5000": (200, 5000)}[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, p))
    w = np.zeros(p)
    w[rng.choice(p, 20, replace=False)] = rng.standard_normal(20) * 2
    return x, x @ w + rng.standard_normal(n) + 1.0


def sklearn_path(x, y):
    from sklearn.linear_model import lasso_path

    xc, yc = x - x.mean(0), y - y.mean()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lasso_path(xc, yc, alphas=NUM_LAMBDAS, tol=TOL, return_n_iter=True)


def objective(x, y, w, b, lam):
    r = y - x @ w - b
    return r @ r / (2 * len(y)) + lam * np.abs(w).sum()


@jax.jit
def fista_all_lambdas(xc, yc, grid, tol):
    """Alternative design: accelerated proximal gradient on the Gram form, every λ at once
    (one [K, p] × [p, p] matmul per iteration), stopping when every λ's gap ≤ tol·‖y‖²/n."""
    n = xc.shape[0]
    gram = xc.T @ xc / n
    xty = xc.T @ yc / n
    yy = yc @ yc / n
    lipschitz = jnp.linalg.eigvalsh(gram)[-1]
    lam = grid[:, None]

    def gaps(w):
        corr = xty - w @ gram
        r_norm2 = yy - 2 * w @ xty + jnp.sum(w * (xty - corr), axis=1)
        r_y = yy - w @ xty
        scale = jnp.minimum(1.0, grid / jnp.max(jnp.abs(corr), axis=1))
        primal = 0.5 * r_norm2 + grid * jnp.sum(jnp.abs(w), axis=1)
        return primal - (-0.5 * scale**2 * r_norm2 + scale * r_y)

    def step(state):
        w, z, t, it = state
        v = z - (z @ gram - xty) / lipschitz
        w_new = jnp.sign(v) * jnp.maximum(jnp.abs(v) - lam / lipschitz, 0)
        t_new = (1 + jnp.sqrt(1 + 4 * t * t)) / 2
        return w_new, w_new + (t - 1) / t_new * (w_new - w), t_new, it + 1

    def ten_steps(state):
        return jax.lax.fori_loop(0, 10, lambda _, s: step(s), state)

    def not_done(state):
        return (jnp.max(gaps(state[0])) > tol * yy) & (state[3] < 100_000)

    zeros = jnp.zeros((grid.shape[0], xc.shape[1]), xc.dtype)
    w, _, _, iterations = jax.lax.while_loop(not_done, ten_steps, (zeros, zeros, 1.0, 0))
    return w, iterations


def first_call_child(cache_dir: str | None) -> None:
    """In a fresh process: time import + the first linear.path call (with compilation)."""
    if cache_dir:
        jax.config.update("jax_compilation_cache_dir", cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    start = time.perf_counter()
    from jaxreg import linear

    x, y = make_case("n2000_p500")
    seconds = first_call_seconds(lambda: linear.path(x, y, lambdas=NUM_LAMBDAS, tol=TOL).coef)
    print(
        json.dumps(
            {"first_call_s": seconds, "import_and_first_call_s": time.perf_counter() - start}
        )
    )


def fresh_process_first_call(cache_dir: str | None) -> float:
    cmd = [sys.executable, __file__, "--first-call-child"]
    if cache_dir:
        cmd += ["--cache-dir", cache_dir]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ.copy())
    return json.loads(out.stdout.strip().splitlines()[-1])["first_call_s"]


CONFIGS = {  # name: (dtype, tol)
    "jaxreg_f64": ("float64", TOL),
    "jaxreg_f32": ("float32", TOL),
    # sklearn's solutions are usually well inside its tolerance; one decade tighter gives
    # jaxreg an objective at least as good at every λ on the target case
    "jaxreg_f64_tol1e-5": ("float64", 1e-5),
    "jaxreg_f32_tol1e-5": ("float32", 1e-5),
}


def run_case(name: str, repeats: int) -> dict:
    from jaxreg import linear

    x, y = make_case(name)
    n, p = x.shape

    def jaxreg_fn(dtype, tol):
        return lambda: linear.path(x, y, lambdas=NUM_LAMBDAS, tol=tol, dtype=dtype)

    first = {
        dt: first_call_seconds(lambda dt=dt: jaxreg_fn(dt, TOL)().coef)
        for dt in ("float64", "float32")
    }
    fns = {"sklearn": lambda: sklearn_path(x, y)}
    fns.update({label: jaxreg_fn(dt, tol) for label, (dt, tol) in CONFIGS.items()})
    alternative = None
    if n >= p:
        with jax.enable_x64(True):
            grid = jnp.asarray(linear.path(x, y, lambdas=NUM_LAMBDAS, dtype=jnp.float64).lambdas)
            xc, yc = jnp.asarray(x - x.mean(0)), jnp.asarray(y - y.mean())
            fista_all_lambdas(xc, yc, grid, TOL)  # compile
            fns["fista_vmapped_f64"] = lambda: fista_all_lambdas(xc, yc, grid, TOL)
            medians = interleaved_medians(fns, repeats=repeats)
            alternative = int(fista_all_lambdas(xc, yc, grid, TOL)[1])
    else:
        medians = interleaved_medians(fns, repeats=repeats)

    alphas, coefs, _, sk_iters = sklearn_path(x, y)
    xc, yc = x - x.mean(0), y - y.mean()
    sk_obj = np.array([objective(xc, yc, coefs[:, k], 0.0, a) for k, a in enumerate(alphas)])
    result = {
        "n": n,
        "p": p,
        "num_lambdas": NUM_LAMBDAS,
        "sklearn_tol": TOL,
        "median_s": medians,
        "first_call_s": first,
        "sklearn_epochs": int(np.sum(sk_iters)),
    }
    if alternative is not None:
        result["fista_vmapped_iterations"] = alternative
    for label, (dt, tol) in CONFIGS.items():
        res = jaxreg_fn(dt, tol)()
        ours = np.array(
            [
                objective(x, y, res.coef[k].astype(float), float(res.intercept[k]), a)
                for k, a in enumerate(alphas)
            ]
        )
        result[label] = {
            "tol": tol,
            "grid_max_rel_diff": float(np.max(np.abs(res.lambdas / alphas - 1))),
            # > 0: jaxreg's objective is above sklearn's at some λ
            "max_rel_objective_gap": float(np.max((ours - sk_obj) / sk_obj)),
            "converged": int(res.converged.sum()),
            "epochs": int(res.n_iter.sum()),
            "speedup_vs_sklearn": medians["sklearn"] / medians[label],
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first-call-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    if args.first_call_child:
        first_call_child(args.cache_dir)
        return

    gflops = matmul_gflops()
    print(f"matmul float32: {gflops:.1f} GFLOP/s")
    cases = {}
    for name in ("n2000_p500", "diabetes", "wide_n200_p5000"):
        cases[name] = r = run_case(name, args.repeats)
        med = r["median_s"]
        print(f"{name} (n={r['n']}, p={r['p']}): sklearn {med['sklearn'] * 1e3:.1f} ms")
        for label in CONFIGS:
            c = r[label]
            print(
                f"  {label:20s} {med[label] * 1e3:8.1f} ms  {c['speedup_vs_sklearn']:5.2f}x  "
                f"max rel objective gap {c['max_rel_objective_gap']:+.1e}  "
                f"converged {c['converged']}/{NUM_LAMBDAS}"
            )
        if "fista_vmapped_f64" in med:
            print(f"  {'FISTA all-λ (alt.)':20s} {med['fista_vmapped_f64'] * 1e3:8.1f} ms")
        first = r["first_call_s"]
        print(f"  first call: f64 {first['float64']:.2f} s, f32 {first['float32']:.2f} s")

    with tempfile.TemporaryDirectory() as cache:
        cold = {
            "no_cache": fresh_process_first_call(None),
            "cache_cold": fresh_process_first_call(cache),
            "cache_warm": fresh_process_first_call(cache),
        }
    print(
        "first call in a fresh process (n2000_p500, default float32): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in cold.items())
    )
    write_json(
        "linear_path",
        {"matmul_gflops_f32": gflops, "cases": cases, "fresh_process_first_call_s": cold},
    )


if __name__ == "__main__":
    main()

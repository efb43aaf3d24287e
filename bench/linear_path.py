"""jaxreg.linear.path vs sklearn.linear_model.lasso_path, side by side in one process.

Cases: n=2000 × p=500 with 20 true nonzeros (the target), diabetes 442 × 10, and a wide
n=200 × p=5000 case; 100 λ on sklearn's grid (eps 1e-3), sklearn at its default tol=1e-4. Both
sides get the raw data and centre it (what LassoCV does with an intercept).

"Equal objective": jaxreg's float64 objective ≤ sklearn's × (1 + 1e-9) at every λ. sklearn's
iterates are usually far inside its tolerance, so jaxreg runs at a ladder of tolerances and the
ratio is reported at the loosest one with equal objective (its tol reported with it), per dtype.

Reported: steady-state interleaved medians (wall clock, or CPU seconds of this process with
--cpu-time: robust on a shared machine, set OPENBLAS_NUM_THREADS=1 and
XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" with it),
jaxreg's first call (compilation) separately, the same first call in fresh processes without /
with the persistent compilation cache, the max relative objective gap (ours − sklearn) / sklearn
across λ, a profile of the target case (Gram statistics vs the compiled program), and the
machine's matmul GFLOP/s. Also measured, as the alternative that was not chosen: FISTA over the
Gram matrix with all 100 λ at once (vmapped).

Run: /work/venv/bin/python bench/linear_path.py
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
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
EQUALITY = 1e-9  # "equal objective": ours <= sklearn's * (1 + 1e-9) at every λ
TOLERANCES = (1e-4, 5e-5, 3e-5, 1e-5, 3e-6, 1e-6)


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


def medians(fns: dict, repeats: int, cpu_time: bool) -> dict[str, float]:
    """Interleaved medians of wall seconds, or of this process's CPU seconds."""
    if not cpu_time:
        return interleaved_medians(fns, repeats=repeats)
    for fn in fns.values():
        jax.block_until_ready(fn())
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.process_time()
            jax.block_until_ready(fn())
            times[name].append(time.process_time() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def objectives(x, y, res, alphas) -> np.ndarray:
    return np.array(
        [
            objective(x, y, res.coef[k].astype(float), float(res.intercept[k]), a)
            for k, a in enumerate(alphas)
        ]
    )


def run_case(name: str, repeats: int, cpu_time: bool) -> dict:
    from jaxreg import linear

    x, y = make_case(name)
    n, p = x.shape

    def jaxreg_fn(dtype, tol):
        return lambda: linear.path(x, y, lambdas=NUM_LAMBDAS, tol=tol, dtype=dtype)

    first = {
        dt: first_call_seconds(lambda dt=dt: jaxreg_fn(dt, TOL)().coef)
        for dt in ("float64", "float32")
    }
    alphas, coefs, _, sk_iters = sklearn_path(x, y)
    xc, yc = x - x.mean(0), y - y.mean()
    sk_obj = np.array([objective(xc, yc, coefs[:, k], 0.0, a) for k, a in enumerate(alphas)])
    # the loosest tolerance with an objective equal to or below sklearn's at every λ
    configs = {}
    for dt in ("float64", "float32"):
        for tol in TOLERANCES:
            res = jaxreg_fn(dt, tol)()
            gap = float(np.max((objectives(x, y, res, alphas) - sk_obj) / sk_obj))
            configs[f"jaxreg_{dt}_tol{tol:g}"] = (dt, tol, res, gap)
            if gap <= EQUALITY:
                break
    fns = {"sklearn": lambda: sklearn_path(x, y)}
    fns.update({label: jaxreg_fn(dt, tol) for label, (dt, tol, _, _) in configs.items()})
    alternative = None
    if n >= p:
        with jax.enable_x64(True):
            grid = jnp.asarray(alphas)
            xcj, ycj = jnp.asarray(xc), jnp.asarray(yc)
            fista_all_lambdas(xcj, ycj, grid, TOL)  # compile
            fns["fista_vmapped_f64"] = lambda: fista_all_lambdas(xcj, ycj, grid, TOL)
            timed = medians(fns, repeats, cpu_time)
            alternative = int(fista_all_lambdas(xcj, ycj, grid, TOL)[1])
    else:
        timed = medians(fns, repeats, cpu_time)
    result = {
        "n": n,
        "p": p,
        "num_lambdas": NUM_LAMBDAS,
        "sklearn_tol": TOL,
        "clock": "cpu" if cpu_time else "wall",
        "median_s": timed,
        "first_call_s": first,
        "sklearn_epochs": int(np.sum(sk_iters)),
        "equal_objective": {},
    }
    if alternative is not None:
        result["fista_vmapped_iterations"] = alternative
    for label, (dt, tol, res, gap) in configs.items():
        result[label] = {
            "tol": tol,
            "grid_max_rel_diff": float(np.max(np.abs(res.lambdas / alphas - 1))),
            # > 0: jaxreg's objective is above sklearn's at some λ
            "max_rel_objective_gap": gap,
            "converged": int(res.converged.sum()),
            "epochs": int(res.n_iter.sum()),
            "speedup_vs_sklearn": timed["sklearn"] / timed[label],
        }
        if gap <= EQUALITY:
            result["equal_objective"][dt] = {"tol": tol, "speedup": timed["sklearn"] / timed[label]}
    if name == "n2000_p500":
        result["profile_s"] = profile(x, y, repeats, cpu_time)
    return result


def profile(x, y, repeats: int, cpu_time: bool) -> dict:
    """Where the target case's time goes: the Gram statistics (numpy's BLAS) and the compiled
    program (coordinate descent), at the equal-objective tolerance."""
    return {dt: _profile_one(x, y, dt, repeats, cpu_time) for dt in ("float64", "float32")}


def _profile_one(x, y, dtype, repeats: int, cpu_time: bool) -> dict:
    from jaxreg import _linear_fit as fitting
    from jaxreg import _linear_gaussian as gaussian

    problem = fitting.problem(x, y, "gaussian")
    s = fitting.settings(problem, 1.0, NUM_LAMBDAS, None, True, 3e-5, None, "auto", dtype)
    grid = fitting.grid(problem, s)
    with s.x64():
        stats = fitting.statistics(problem.x, problem.targets, s)
        hyper = (jnp.asarray(grid, s.dtype), jnp.asarray(1.0, s.dtype),
                 jnp.asarray(3e-5, s.dtype), jnp.asarray(1000, jnp.int32))  # fmt: skip
        parts = {
            "statistics": lambda: fitting.statistics(problem.x, problem.targets, s),
            "program": lambda: gaussian.gram_path_program(stats, *hyper),
        }
        return medians(parts, repeats, cpu_time)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first-call-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--cpu-time", action="store_true", help="time CPU seconds, not wall")
    args = parser.parse_args()
    if args.first_call_child:
        first_call_child(args.cache_dir)
        return

    gflops = matmul_gflops()
    print(f"matmul float32: {gflops:.1f} GFLOP/s")
    cases = {}
    for name in ("n2000_p500", "diabetes", "wide_n200_p5000"):
        cases[name] = r = run_case(name, args.repeats, args.cpu_time)
        med = r["median_s"]
        print(f"{name} (n={r['n']}, p={r['p']}): sklearn {med['sklearn'] * 1e3:.1f} ms "
              f"({r['clock']} clock)")  # fmt: skip
        for label, c in r.items():
            if not label.startswith("jaxreg_"):
                continue
            print(
                f"  {label:26s} {med[label] * 1e3:8.1f} ms  {c['speedup_vs_sklearn']:5.2f}x  "
                f"max rel objective gap {c['max_rel_objective_gap']:+.1e}  "
                f"converged {c['converged']}/{NUM_LAMBDAS}"
            )
        for dt, eq in r["equal_objective"].items():
            print(f"  equal objective, {dt}: {eq['speedup']:.2f}x at tol {eq['tol']:g}")
        if "fista_vmapped_f64" in med:
            print(f"  {'FISTA all-λ (alt.)':26s} {med['fista_vmapped_f64'] * 1e3:8.1f} ms")
        for dt, parts in r.get("profile_s", {}).items():
            shares = ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in parts.items())
            print(f"  profile {dt}: {shares}")
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

"""``fit_path`` on digits with ``optimizer="sgd"`` vs ``"adam"`` (``prox_adam``), and the
heuristic ``chain(adam, prox)`` for contrast: CV curve, accuracy at λ_1se, nonzeros, time.

The CLI's default job (MLP 64→64→64→10, L1 on the weights, the default 20-λ grid from λ_ref,
5 folds, 400 steps of batch 128) on a 75/25 split of the embedded digits (standardized on the
training part); each optimizer with its own learning rate (SGD 0.3, the CLI's default; Adam
0.01, optax's usual scale). Wall time is the second call (the program compiled); the first
call, with compilation, is reported too.

Run: /work/venv/bin/python bench/fit_path_optimizers.py [--steps N] [--adam-lr LR]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
import optax

import _common
import jaxreg

TARGET = "choose the default by CV error at λ_1se, test accuracy and time"


def split_digits(seed: int = 0):
    data = jaxreg.datasets.load("digits")
    order = np.random.default_rng(seed).permutation(len(data.y))
    cut = int(0.75 * len(order))
    train, test = order[:cut], order[cut:]
    mean, std = data.X[train].mean(0), data.X[train].std(0)
    std = np.where(std > 0, std, 1.0)
    scale = lambda X: ((X - mean) / std).astype(np.float32)
    return scale(data.X[train]), data.y[train], scale(data.X[test]), data.y[test]


def heuristic_adam(learning_rate: float):
    """chain(adam, prox) with the prox of step lr·λ: out of step with Adam's own steps."""
    return lambda reg: optax.chain(optax.adam(learning_rate), jaxreg.proximal(reg, learning_rate))


def run_one(name, optimizer, learning_rate, data, args) -> dict:
    X, y, X_test, y_test = data
    model = jaxreg.models.mlp([64, 64, 64, 10])

    def fit():
        return jaxreg.fit_path(
            model, X, y, penalty="l1", lambdas=20, folds=5, key=jax.random.key(0),
            steps=args.steps, batch_size=128, learning_rate=learning_rate, optimizer=optimizer,
        )  # fmt: skip

    start = time.perf_counter()
    fit()
    first = time.perf_counter() - start
    start = time.perf_counter()
    result = fit()
    wall = time.perf_counter() - start
    logits = model.apply(result.params, X_test)
    test_accuracy = float(np.mean(np.argmax(np.asarray(logits), -1) == y_test))
    summary, k = result.summary, result.index_selected
    row = {
        "optimizer": name,
        "learning_rate": learning_rate,
        "first_call_s": first,
        "wall_s": wall,
        "lambda_ref": result.lambda_ref,
        "lambdas": result.lambdas,
        "cvm": summary.cvm,
        "cv_accuracy": result.cv_accuracy,
        "nonzeros": result.nonzeros,
        "index_1se": int(k),
        "cvm_min": float(np.nanmin(summary.cvm)),
        "cvm_1se": float(summary.cvm[k]),
        "cv_accuracy_1se": float(result.cv_accuracy[k]),
        "test_accuracy_1se": test_accuracy,
        "nonzeros_1se": int(result.nonzeros[k]),
        "nonzeros_at_lambda_ref": int(result.nonzeros[0]),
        "diverged": int(np.sum(result.diverged)),
    }
    print(
        f"{name:22s} lr {learning_rate:<6g} wall {wall:6.1f} s (first {first:5.1f} s)  "
        f"CV loss min {row['cvm_min']:.3f}, at 1se {row['cvm_1se']:.3f}  "
        f"CV acc 1se {row['cv_accuracy_1se']:.3f}  test acc 1se {test_accuracy:.3f}  "
        f"nonzeros 1se {row['nonzeros_1se']:5d} / at λ_ref {row['nonzeros_at_lambda_ref']}"
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--sgd-lr", type=float, default=0.3)
    parser.add_argument("--adam-lr", type=float, default=0.01)
    args = parser.parse_args()
    jax.config.update("jax_num_cpu_devices", 2)  # the CLI's default: one device per core
    gflops = _common.matmul_gflops()
    data = split_digits()
    rows = [
        run_one("sgd (prox step)", "sgd", args.sgd_lr, data, args),
        run_one("adam (prox_adam)", "adam", args.adam_lr, data, args),
        run_one("chain(adam, prox)", heuristic_adam(args.adam_lr), args.adam_lr, data, args),
    ]
    ratio = rows[1]["wall_s"] / rows[0]["wall_s"]
    print(f"matmul rate: {gflops:.1f} GFLOP/s; adam/sgd wall time {ratio:.2f}")
    _common.write_json(
        "fit_path_optimizers",
        {
            "command": "/work/venv/bin/python bench/fit_path_optimizers.py",
            "steps": args.steps,
            "matmul_gflops": gflops,
            "rows": rows,
            "target": TARGET,
        },
    )


if __name__ == "__main__":
    main()

"""The ``jaxreg`` command line: ``jaxreg sweep`` runs a cross-validated regularization path.

With no arguments it trains an MLP with an L1 penalty on the embedded 8×8 digits over a λ grid ×
5 folds in one compiled sweep, prints a glmnet-style table with λ_min and λ_1se marked and writes
``results.json``, ``cv_curve.png`` and ``path.png``. Bad flags or data exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

MODELS = ("mlp", "attention", "linear")
PENALTY_NAMES = {
    "l1": "l1",
    "l2": "l2",
    "elastic-net": "elastic_net",
    "group-lasso": "group_lasso",
    "contractive": "contractive",
    "clip": "clip",
}
# Penalties without a reference λ get this grid (log-spaced) when only a count is given.
DEFAULT_SPANS = {"l2": (1.0, 1e-4), "contractive": (1.0, 1e-4), "clip": (10.0, 0.1)}


class UsageError(Exception):
    """A bad flag or bad data: reported in one line, exit status 2."""


def _lambdas(text: str) -> int | list[float]:
    try:
        if "," in text:
            values = [float(v) for v in text.split(",") if v.strip()]
            if not values or any(not np.isfinite(v) or v < 0 for v in values):
                raise ValueError
            return values
        count = int(text)
        if count < 1:
            raise ValueError
        return count
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive count or a comma-separated list of λ >= 0, got {text!r}"
        ) from None


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a value > 0, got {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxreg", description="Regularization paths for JAX models, cross-validated."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sweep = commands.add_parser(
        "sweep",
        help="train a λ grid × folds in one compiled sweep and pick λ by cross-validation",
        description=(
            "Train every λ of a grid on every cross-validation fold (and on all the data) in "
            "one compiled program, sharded over all devices, then print the CV table with "
            "λ_min and λ_1se (glmnet's rules) and write results.json, cv_curve.png and "
            "path.png. With no flags: an MLP with an L1 penalty on the embedded digits."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sweep.add_argument(
        "--model",
        choices=MODELS,
        default="mlp",
        help="mlp: 2 hidden layers; attention: a transformer classifier over the rows of an "
        "image (or features as tokens); linear: jaxreg.linear coordinate descent on a "
        "regression set, a linear softmax model on a classification set",
    )
    sweep.add_argument(
        "--penalty",
        choices=tuple(PENALTY_NAMES),
        default="l1",
        help="l1/elastic-net/group-lasso: proximal steps (exact zeros); l2: (λ/2)‖W‖² in the "
        "loss; contractive: λ·½‖∂h/∂x‖² of the hidden layers (mlp only); clip: weights "
        "clipped to [-1/λ, 1/λ]. group-lasso groups: hidden units (mlp), heads (attention)",
    )
    sweep.add_argument(
        "--lambdas",
        type=_lambdas,
        default=12,
        help="number of λ (log-spaced down 3 decades from the data's reference λ) or a "
        "comma-separated list",
    )
    sweep.add_argument("--folds", type=_positive(int), default=5, help="cross-validation folds")
    sweep.add_argument("--steps", type=_positive(int), default=400, help="SGD steps")
    sweep.add_argument("--batch-size", type=_positive(int), default=128, help="minibatch size")
    sweep.add_argument(
        "--lr", type=_positive(float), default=0.3, help="SGD learning rate (and proximal step)"
    )
    sweep.add_argument("--seed", type=int, default=0, help="PRNG seed")
    sweep.add_argument(
        "--data",
        default="digits",
        help="an embedded dataset (digits, diabetes) or a .npz (keys X, y) / .csv (last column "
        "is the target) file",
    )
    sweep.add_argument("--out", default="jaxreg-out", help="output directory")
    sweep.add_argument(
        "--resume",
        action="store_true",
        help="resume from the checkpoint in OUT/checkpoint (without it a new sweep starts)",
    )
    sweep.add_argument(
        "--devices",
        type=_positive(int),
        default=None,
        help="number of devices to shard the grid over (default: all; on a CPU one host "
        "device per core)",
    )
    sweep.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    return parser


def _configure_devices(requested: int | None) -> None:
    """One host device per core on CPU; must run before JAX starts a backend."""
    import jax

    count = requested or os.cpu_count() or 1
    if jax.config.jax_platforms in (None, "", "cpu"):
        jax.config.update("jax_num_cpu_devices", count)


def _load(name: str):
    from jaxreg import datasets

    try:
        if name.endswith((".npz", ".csv")) or os.sep in name:
            return datasets.load_file(name)
        return datasets.load(name)
    except (ValueError, FileNotFoundError) as error:
        raise UsageError(f"--data: {error}") from None


def _grid_for(args, penalty: str) -> Any:
    if isinstance(args.lambdas, list) or penalty not in DEFAULT_SPANS:
        return args.lambdas
    high, low = DEFAULT_SPANS[penalty]
    return np.geomspace(high, low, args.lambdas)


def _as_tokens(X: np.ndarray) -> np.ndarray:
    """Square images become one token per row; other feature vectors one token per feature."""
    side = int(round(np.sqrt(X.shape[1])))
    if side * side == X.shape[1]:
        return X.reshape(X.shape[0], side, side)
    return X[:, :, None]


def _standardize(X: np.ndarray) -> np.ndarray:
    scale = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(scale > 0, scale, 1)


def _run_network(args, data, penalty: str, devices) -> dict[str, Any]:
    import jax

    import jaxreg

    X = _standardize(data.X)
    key = jax.random.key(args.seed)
    classification = data.task == "classification"
    outputs = int(data.y.max()) + 1 if classification else 1
    options: dict[str, Any] = {}
    if args.model == "attention":
        if penalty == "contractive":
            raise UsageError("--penalty contractive needs --model mlp")
        X = _as_tokens(X)
        model = jaxreg.models.transformer_classifier(
            X.shape[-1], outputs, d_model=32, num_heads=4, dropout_rate=0.1
        )
        if penalty == "group_lasso":
            mask, group_axis = jaxreg.models.head_groups(model.init(key))
            options.update(mask=mask, group_axis=group_axis, joint=True)
    else:
        hidden = [64, 64] if args.model == "mlp" else []
        if args.model == "linear" and penalty == "contractive":
            raise UsageError("--penalty contractive needs a hidden layer (--model mlp)")
        model = jaxreg.models.mlp([X.shape[1], *hidden, outputs])
        options["group_axis"] = 0 if args.model == "linear" else 1
    fit = jaxreg.fit_path(
        model,
        X,
        data.y,
        loss="cross_entropy" if classification else "mse",
        penalty=penalty,
        lambdas=_grid_for(args, penalty),
        folds=args.folds,
        key=key,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        checkpoint_dir=str(pathlib.Path(args.out) / "checkpoint"),
        progress=not args.no_progress,
        devices=devices,
        **options,
    )
    total = sum(
        int(np.size(leaf))
        for leaf, keep in zip(
            jax.tree.leaves(fit.params),
            jax.tree.leaves(options.get("mask", jaxreg.masks.weights_only(fit.params))),
            strict=True,
        )
        if keep
    )
    return {
        "fit": fit,
        "accuracy": fit.cv_accuracy,
        "zero_fraction": 1 - fit.nonzeros / total,
        "loss_name": fit.loss_name,
    }


def _run_linear_regression(args, data, penalty: str) -> dict[str, Any]:
    import jax

    from jaxreg import linear

    ratios = {"l1": 1.0, "elastic_net": 0.5, "l2": 0.0}
    if penalty not in ratios:
        raise UsageError(
            f"--model linear on a regression set supports l1, elastic-net and l2, "
            f"not {args.penalty}"
        )
    lambdas = args.lambdas
    if penalty == "l2" and not isinstance(lambdas, list):
        lambdas = np.geomspace(1.0, 1e-4, lambdas)
    fit = linear.cv_path(
        _standardize(data.X),
        data.y,
        folds=args.folds,
        key=jax.random.key(args.seed),
        l1_ratio=ratios[penalty],
        lambdas=lambdas,
    )
    return {
        "fit": fit,
        "accuracy": None,
        "zero_fraction": np.mean(np.asarray(fit.path.coef) == 0, axis=1),
        "loss_name": "mse",
    }


def _table(summary, accuracy, zero_fraction, loss_name: str) -> str:
    header = f"{'':3}{'lambda':>11}  {'CV ' + loss_name:>16}  {'± SE':>8}"
    header += f"  {'accuracy':>8}" if accuracy is not None else ""
    header += f"  {'zero weights':>12}"
    rows = [header]
    for k, lam in enumerate(summary.lambdas):
        mark = "min" if k == summary.index_min else ("1se" if k == summary.index_1se else "")
        if k == summary.index_min == summary.index_1se:
            mark = "both"
        row = f"{mark:>4} {lam:10.4g}  {summary.cvm[k]:16.4f}  {summary.cvsd[k]:8.4f}"
        if accuracy is not None:
            row += f"  {accuracy[k]:8.3f}"
        row += f"  {zero_fraction[k]:12.1%}"
        rows.append(row)
    return "\n".join(rows)


def _write_outputs(out: pathlib.Path, args, data_name: str, run: dict[str, Any]) -> None:
    from jaxreg import plot

    fit = run["fit"]
    summary = fit.summary
    results = {
        "command": vars(args),
        "data": data_name,
        "lambdas": np.asarray(summary.lambdas).tolist(),
        "cv_mean": np.asarray(summary.cvm).tolist(),
        "cv_se": np.asarray(summary.cvsd).tolist(),
        "lambda_min": float(summary.lambda_min),
        "lambda_1se": float(summary.lambda_1se),
        "index_min": int(summary.index_min),
        "index_1se": int(summary.index_1se),
        "accuracy": None if run["accuracy"] is None else np.asarray(run["accuracy"]).tolist(),
        "zero_fraction": np.asarray(run["zero_fraction"]).tolist(),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, allow_nan=True))
    plot.cv_curve(fit).savefig(out / "cv_curve.png", dpi=110)
    plot.path(fit).savefig(out / "path.png", dpi=110)


def sweep_command(args) -> None:
    penalty = PENALTY_NAMES[args.penalty]
    out = pathlib.Path(args.out)
    checkpoint = out / "checkpoint"
    if checkpoint.exists() and not args.resume:
        shutil.rmtree(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    _configure_devices(args.devices)
    import jax

    devices = jax.devices()[: args.devices] if args.devices else None
    used = devices or jax.devices()
    print(
        f"devices: {len(used)} × {used[0].platform} ({', '.join(str(d) for d in used[:4])}"
        f"{', …' if len(used) > 4 else ''})"
    )
    data = _load(args.data)
    print(
        f"data: {args.data} — {data.X.shape[0]} examples × {data.X.shape[1]} features, {data.task}"
    )
    print(f"model: {args.model}, penalty: {args.penalty}, folds: {args.folds}, steps: {args.steps}")
    if args.model == "linear" and data.task == "regression":
        run = _run_linear_regression(args, data, penalty)
    else:
        run = _run_network(args, data, penalty, devices)
    summary = run["fit"].summary
    print(_table(summary, run["accuracy"], run["zero_fraction"], run["loss_name"]))
    print(f"lambda_min = {summary.lambda_min:.4g}   lambda_1se = {summary.lambda_1se:.4g}")
    _write_outputs(out, args, args.data, run)
    print(f"wrote {out / 'results.json'}, {out / 'cv_curve.png'}, {out / 'path.png'}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "sweep":
            sweep_command(args)
    except UsageError as error:
        print(f"jaxreg: error: {error}", file=sys.stderr)
        return 2
    except (ValueError, TypeError) as error:
        print(f"jaxreg: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

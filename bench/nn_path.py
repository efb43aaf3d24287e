"""Benchmark: a neural-net feature-selection path, jaxreg vs LassoNet (Lemhadri et al., 2021).

The protocol, the same for every method: scikit-learn's digits (1797×64, 10 classes) and breast
cancer (569×30, 2 classes); a 75/25 train/test split (stratified, ``random_state=0``);
standardization fitted on the training part; the same 5 folds (``KFold(5, shuffle=True,
random_state=0)`` of the training part) for every cross-validation; an MLP with one hidden
layer of width 32; sparsity from a group lasso on the rows of the first layer's W (one group per
input feature).

- jaxreg, parallel grid: ``fit_path`` with ``GroupLasso(1.0, group_axis=0, mask=<first layer
  W>)``, the default 20-λ grid, 3000 SGD steps of batch 128 at learning rate 0.1 per member,
  every (fold, λ) from the same random start.
- jaxreg, warm-started path: the same call with ``warm_start=True`` and the settings in
  ``WARM`` below (a dense fit, then the λ grid walked from small to large, each λ started from
  the previous solution; ``weight_decay`` on the unpenalized second layer keeps it from growing
  as the first layer shrinks: the smallest of 1e-3, 3e-3, 1e-2 with at most one reversal of the
  feature count on every warm path here, a choice that reads no test label).
- jaxreg, warm-started path with LassoNet's hierarchy: ``jaxreg.models.skip_mlp`` (the same MLP
  plus a linear skip layer) and ``HierarchicalLasso(1.0, multiplier=10)`` instead of the group
  lasso, the ``WARM`` settings otherwise: LassoNet's penalty on jaxreg's path.
- LassoNet: ``LassoNetClassifierCV(hidden_dims=(32,), cv=<the same folds>)`` with its defaults
  (hierarchical prox with M = 10, path multiplier 1.02, dense fit by Adam, path by SGD with
  momentum, full batches, early stopping) for the CV choice and its wall time; and
  ``LassoNetClassifier(hidden_dims=(32,)).path(X_train, y_train)`` for the whole path
  (``LassoNetClassifierCV`` only walks up to its chosen λ), timed separately.

Printed per data set: wall time (jaxreg: first call with compilation, and second call), test
accuracy at the CV choice (jaxreg: λ_1se) with its number of features, the best test accuracy
among path models with ≤ 10 and ≤ 20 features, how often the feature count along the path
goes the wrong way (up as λ grows), and test accuracy against the number of features. JSON:
``bench/results/nn_path.json``.

Run (LassoNet and torch live in the benchmark's own environment, not in jaxreg's)::

    python3 -m venv /work/venvs/nnbench
    /work/venvs/nnbench/bin/pip install torch==2.13.0      # the CPU wheel
    /work/venvs/nnbench/bin/pip install lassonet jax==0.10.2 jaxlib==0.10.2 optax chex \\
        numpy scikit-learn matplotlib tqdm
    PYTHONPATH=src /work/venvs/nnbench/bin/python bench/nn_path.py

``--skip-lassonet`` runs the jaxreg side only (any environment with scikit-learn).
``--patience P --tol T`` adds the two warm paths with ``fit_path(patience=P, tol=T)`` (a λ
ends once its training objective has fallen by at most a relative T over P steps; at most
``steps``), side by side with the same paths without it; JSON:
``bench/results/nn_path_patience.json``.
``--splits K`` runs, instead of the table, the two warm paths and LassoNet's path on K splits
(seeds 0..K-1 for the split, the folds and the initial weights; settings unchanged) and prints
the mean and range of the best test accuracy with ≤ 10 / ≤ 20 features and the reversals per
split, and with LassoNet each warm path's difference from it paired by split (mean, 95 %
t-interval, splits above / equal / below). JSON: ``bench/results/nn_path_splits_<K>.json``
(``_<dataset>`` added when ``--datasets`` names a subset). ``--warm JSON`` changes the warm paths'
settings (``WARM`` below), e.g. ``--warm '{"learning_rate": 0.01}'``; its JSON file name ends in
``_trial``. ``--recipe`` adds LassoNet's recipe on jaxreg's warm path (``RECIPE`` below: torch's
initialization, 10 % held out for the dense fit's early stopping, an Adam dense fit, λ × 1.02)
to the table or to ``--splits``; its JSON file name gains ``_recipe``.
"""

from __future__ import annotations

import os

import jax

# One host device per core this process may use, set before any JAX operation: the members of
# a path (folds + 1) are sharded over them, as LassoNet's torch uses every core.
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
jax.config.update("jax_num_cpu_devices", CORES)

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_digits  # noqa: E402
from sklearn.model_selection import KFold, PredefinedSplit, train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import _common  # noqa: E402
import jaxreg  # noqa: E402
from jaxreg.regularizers import GroupLasso, HierarchicalLasso  # noqa: E402

SEED = 0
WIDTH = 32
FOLDS = 5
LOADERS = {"digits": load_digits, "breast_cancer": load_breast_cancer}
PARALLEL = {"steps": 3000, "batch_size": 128, "learning_rate": 0.1}
WARM = {
    "warm_start": True,
    "lambdas": 100,
    "lambda_min_ratio": 0.05,
    "dense_steps": 1000,
    "steps": 50,
    "batch_size": None,
    "learning_rate": 0.03,
    "weight_decay": 3e-3,
}
DENSE_LEARNING_RATE = 1e-3


def adam_dense_then_sgd(regularizer: Any) -> optax.GradientTransformation:
    """LassoNet's optimizers as one: Adam with the prox at λ = 0 (the dense fit), proximal SGD
    at λ > 0 (the walk); both states are kept, the stage's λ picks the update."""
    dense_lr, walk_lr = DENSE_LEARNING_RATE, WARM["learning_rate"]
    dense = optax.chain(optax.adam(dense_lr), jaxreg.proximal(regularizer, dense_lr))
    walk = optax.chain(optax.sgd(walk_lr), jaxreg.proximal(regularizer, walk_lr))

    def update(grads, state, params=None):
        dense_updates, dense_state = dense.update(grads, state[0], params)
        walk_updates, walk_state = walk.update(grads, state[1], params)
        at_dense = regularizer.strength == 0
        updates = jax.tree.map(
            lambda a, b: jnp.where(at_dense, a, b), dense_updates, walk_updates
        )
        return updates, (dense_state, walk_state)

    return optax.GradientTransformation(lambda p: (dense.init(p), walk.init(p)), update)


# LassoNet's recipe on jaxreg's warm path (its defaults where it has them): torch's initial
# parameters, 10 % of the rows held out for the dense fit's early stopping (Adam at lr 1e-3,
# patience 100, 1 %), λ × 1.02 from 0.02·λ_ref; the walk as WARM (50 SGD steps per λ).
RECIPE = {
    **WARM,
    "lambdas": 199,  # 1.02 ** 198 = 50: the grid from 0.02·λ_ref to λ_ref at ratio 1.02
    "lambda_min_ratio": 0.02,
    "dense_patience": 100,
    "tol": 0.01,
    "validation_fraction": 0.1,
    "optimizer": adam_dense_then_sgd,
}
METHODS = (
    "jaxreg parallel", "jaxreg warm", "jaxreg warm + hierarchy", "jaxreg warm, patience",
    "jaxreg warm + hierarchy, patience", "jaxreg LassoNet's recipe", "LassoNet",
)  # fmt: skip
FEATURE_LIMITS = (1, 2, 3, 5, 10, 15, 20, 30, 40, 50, 64)


class Split(dict):
    """The protocol's data: ``X_train, y_train, X_test, y_test, fold_ids``."""


def protocol(name: str, seed: int = SEED) -> Split:
    X, y = LOADERS[name](return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=seed, stratify=y
    )
    scaler = StandardScaler().fit(X_train)
    fold_ids = np.empty(len(y_train), np.int64)
    for fold, (_, held_out) in enumerate(
        KFold(FOLDS, shuffle=True, random_state=seed).split(X_train)
    ):
        fold_ids[held_out] = fold
    return Split(
        X_train=scaler.transform(X_train).astype(np.float32),
        y_train=y_train.astype(np.int64),
        X_test=scaler.transform(X_test).astype(np.float32),
        y_test=y_test.astype(np.int64),
        fold_ids=fold_ids,
    )


def path_summary(features: np.ndarray, accuracy: np.ndarray, chosen: int, walk_up: np.ndarray):
    """The table's numbers from per-model feature counts and test accuracies; ``walk_up``
    orders the models by increasing λ."""
    best = {}
    for limit in FEATURE_LIMITS:
        within = features <= limit
        if within.any():
            i = np.flatnonzero(within)[np.argmax(accuracy[within])]
            best[limit] = (float(accuracy[i]), int(features[i]))
        else:
            best[limit] = None
    counts = features[walk_up]
    return {
        "cv_choice": (float(accuracy[chosen]), int(features[chosen])),
        "best": best,
        "wrong_way": int(np.sum(np.diff(counts) > 0)),
        "fewest_features": int(features.min()),
        "features": features.tolist(),
        "accuracy": accuracy.tolist(),
    }


def run_jaxreg(
    split: Split, settings: dict[str, Any], hierarchy: bool = False, seed: int = SEED,
    timed: bool = True,
) -> dict[str, Any]:
    X, y = split["X_train"], split["y_train"]
    sizes = [X.shape[1], WIDTH, int(y.max()) + 1]
    if settings.get("optimizer") is adam_dense_then_sgd:
        model = jaxreg.models.skip_mlp(sizes, init="uniform")
        penalty = HierarchicalLasso(1.0, multiplier=10.0)
    elif hierarchy:
        model, penalty = jaxreg.models.skip_mlp(sizes), HierarchicalLasso(1.0, multiplier=10.0)
    else:
        first_w = [{"w": True, "b": False}, {"w": False, "b": False}]
        model, penalty = jaxreg.models.mlp(sizes), GroupLasso(1.0, group_axis=0, mask=first_w)

    def fit():
        return jaxreg.fit_path(
            model, X, y, penalty=penalty, folds=split["fold_ids"], key=jax.random.key(seed),
            **settings,
        )  # fmt: skip

    first = _common.first_call_seconds(fit) if timed else None
    start = time.perf_counter()
    result = _common.block(fit())
    wall = time.perf_counter() - start
    accuracy = np.array(
        [
            np.mean(np.argmax(model.apply(params, split["X_test"]), -1) == split["y_test"])
            for params in (
                jax.tree.map(lambda leaf, k=k: leaf[k], result.path_params)
                for k in range(len(result.lambdas))
            )
        ]
    )
    increasing = np.arange(len(accuracy))[::-1]  # the grid is reported descending
    summary = path_summary(result.active_groups, accuracy, result.index_selected, increasing)
    taken = np.sum(np.isfinite(result.train_loss), axis=-1)  # steps per member and λ
    return {"first_call_s": first, "wall_s": wall, "lambda_ref": result.lambda_ref,
            "steps_per_lambda": float(taken.mean()), **summary}  # fmt: skip


def _lassonet_options(seed: int) -> dict[str, Any]:
    return {"hidden_dims": (WIDTH,), "random_state": seed, "torch_seed": seed, "verbose": 0}


def lassonet_path(split: Split, seed: int = SEED) -> dict[str, Any]:
    """LassoNet's whole path on the training part: the path summary and its wall time."""
    from lassonet import LassoNetClassifier

    start = time.perf_counter()
    estimator = LassoNetClassifier(**_lassonet_options(seed))
    path = estimator.path(split["X_train"], split["y_train"], return_state_dicts=True)
    path_wall = time.perf_counter() - start
    features, accuracy = [], []
    for item in path:
        estimator.load(item.state_dict)
        features.append(int(item.selected.sum()))
        accuracy.append(float(np.mean(estimator.predict(split["X_test"]) == split["y_test"])))
    summary = path_summary(np.array(features), np.array(accuracy), 0, np.arange(len(path)))
    epochs = float(np.mean([item.n_iters for item in path[1:]]))  # full batches: 1 step each
    return {"path_wall_s": path_wall, "steps_per_lambda": epochs, **summary}


def run_lassonet(split: Split) -> dict[str, Any] | None:
    try:
        from lassonet import LassoNetClassifierCV
    except ImportError:
        print("lassonet is not installed here: LassoNet skipped (see the module docstring)")
        return None
    X, y, X_test = split["X_train"], split["y_train"], split["X_test"]
    options = _lassonet_options(SEED)
    start = time.perf_counter()
    cross_validated = LassoNetClassifierCV(cv=PredefinedSplit(split["fold_ids"]), **options)
    cross_validated.fit(X, y)
    cv_wall = time.perf_counter() - start
    cv_choice = (
        float(np.mean(cross_validated.predict(X_test) == split["y_test"])),
        int(cross_validated.best_selected_.sum()),
    )
    return {"wall_s": cv_wall, **lassonet_path(split), "cv_choice": cv_choice}


def _fmt_best(best: tuple[float, int] | None) -> str:
    return "none" if best is None else f"{best[0]:.3f} @ {best[1]}"


def _fmt_wall(result: dict[str, Any]) -> str:
    if "first_call_s" in result:
        return f"{result['wall_s']:.1f} s (1st call {result['first_call_s']:.1f} s)"
    return f"{result['wall_s']:.1f} s CV (+{result['path_wall_s']:.1f} s path)"


def print_table(name: str, results: dict[str, dict[str, Any]]) -> None:
    methods = [m for m in METHODS if results.get(m)]
    print(f"\n{name}\n| | " + " | ".join(methods) + " |\n|---|" + "---|" * len(methods))

    def row(label: str, cell) -> None:
        print(f"| {label} | " + " | ".join(cell(results[m]) for m in methods) + " |")

    row("wall time", _fmt_wall)
    row("test acc at the CV choice", lambda r: _fmt_best(r["cv_choice"]))
    row("best test acc ≤ 10 / ≤ 20 features",
        lambda r: f"{_fmt_best(r['best'][10])} / {_fmt_best(r['best'][20])}")  # fmt: skip
    row("models on the path / fewest features",
        lambda r: f"{len(r['features'])} / {r['fewest_features']}")  # fmt: skip
    row("feature count up as λ grows", lambda r: str(r["wrong_way"]))
    row("mean optimizer steps per λ", lambda r: f"{r['steps_per_lambda']:.1f}")
    lassonet = results.get("LassoNet")
    for method in methods[:-1]:
        if lassonet:
            print(f"wall time {method} / LassoNet CV: "
                  f"{results[method]['wall_s'] / lassonet['wall_s']:.3f}")  # fmt: skip
    print("\nbest test accuracy with ≤ k features (k: " + ", ".join(map(str, FEATURE_LIMITS)) + ")")
    for method in methods:
        cells = [_fmt_best(results[method]["best"][k]).split(" @")[0] for k in FEATURE_LIMITS]
        print(f"  {method:24s} " + " ".join(f"{c:>5s}" for c in cells))


def _accuracy_at(result: dict[str, Any], limit: int) -> float:
    best = result["best"][limit]
    return float("nan") if best is None else best[0]


def repeated_splits(name: str, count: int, with_lassonet: bool, recipe: bool) -> dict[str, Any]:
    """The ≤ 10 / ≤ 20 accuracies and reversals of the warm paths (and LassoNet's path) over
    ``count`` splits (seeds 0, 1, …: the split, the folds, the initial weights), settings fixed:
    how much of a one-split difference is the split's."""
    methods = ["jaxreg warm", "jaxreg warm + hierarchy"] + ["jaxreg LassoNet's recipe"] * recipe
    rows: dict[str, list[list[float]]] = {m: [] for m in methods + ["LassoNet"] * with_lassonet}
    for seed in range(count):
        split = protocol(name, seed)
        results = {
            "jaxreg warm": run_jaxreg(split, WARM, seed=seed, timed=False),
            "jaxreg warm + hierarchy": run_jaxreg(split, WARM, True, seed=seed, timed=False),
        }
        if recipe:
            results["jaxreg LassoNet's recipe"] = run_jaxreg(split, RECIPE, seed=seed, timed=False)
        if with_lassonet:
            results["LassoNet"] = lassonet_path(split, seed)
        for method, result in results.items():
            rows[method].append(
                [_accuracy_at(result, 10), _accuracy_at(result, 20), result["wrong_way"]]
            )
    print(f"\n{name}, {count} splits: mean (min–max) of best test acc ≤ 10 / ≤ 20, reversals")
    for method, values in rows.items():
        table = np.array(values)
        cells = [f"{np.nanmean(c):.3f} ({np.nanmin(c):.3f}–{np.nanmax(c):.3f})"
                 for c in table.T[:2]]  # fmt: skip
        reversals = table[:, 2].astype(int).tolist()
        print(f"  {method:24s} {cells[0]} / {cells[1]}   reversals {reversals}")
    if with_lassonet:
        print("jaxreg − LassoNet paired by split: mean [95 % t-interval], splits above/equal/below")
        reference = np.array(rows["LassoNet"])
        for method in methods:
            table = np.array(rows[method])
            cells = [_paired(table[:, k] - reference[:, k]) for k in (0, 1)]
            print(f"  {method:24s} ≤ 10: {cells[0]}   ≤ 20: {cells[1]}")
    return rows


def _paired(differences: np.ndarray) -> str:
    """Mean, 95 % t-interval and signs of per-split differences (NaN splits left out)."""
    from scipy import stats

    # accuracies are counts over the same test set (jaxreg's in float32): below 1e-6 is noise
    differences = np.round(differences[np.isfinite(differences)], 6)
    mean = differences.mean()
    half = stats.t.ppf(0.975, differences.size - 1) * stats.sem(differences)
    signs = [int(np.sum(differences > 0)), int(np.sum(differences == 0)),
             int(np.sum(differences < 0))]  # fmt: skip
    return f"{mean:+.3f} [{mean - half:+.3f}, {mean + half:+.3f}], {'/'.join(map(str, signs))}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(LOADERS), choices=list(LOADERS))
    parser.add_argument("--skip-lassonet", action="store_true")
    parser.add_argument(
        "--splits", type=int, default=0, metavar="K",
        help="instead of the table: the warm paths and LassoNet's path on K splits (seeds 0..K-1)",
    )  # fmt: skip
    parser.add_argument(
        "--warm", type=json.loads, default={}, metavar="JSON",
        help='changes to the warm paths\' settings, e.g. \'{"learning_rate": 0.01}\'',
    )  # fmt: skip
    parser.add_argument("--patience", type=int, help="fit_path's patience for the warm paths")
    parser.add_argument("--tol", type=float, default=1e-3, help="fit_path's tol with --patience")
    parser.add_argument("--recipe", action="store_true", help="add LassoNet's recipe (RECIPE)")
    args = parser.parse_args()
    WARM.update(args.warm)
    print(f"devices: {jax.devices()}  ({CORES} cores)")
    gflops = _common.matmul_gflops()
    print(f"float32 matmul 1024²: {gflops:.1f} GFLOP/s")
    payload: dict[str, Any] = {"matmul_gflops": gflops, "warm": WARM, "parallel": PARALLEL}
    if args.recipe:
        payload["recipe"] = {**RECIPE, "optimizer": f"adam_dense_then_sgd (dense lr "
                             f"{DENSE_LEARNING_RATE})", "init": "uniform"}  # fmt: skip
    if args.splits:
        payload["splits"] = {
            name: repeated_splits(name, args.splits, not args.skip_lassonet, args.recipe)
            for name in args.datasets
        }
        subset = "".join(f"_{name}" for name in args.datasets) * (args.datasets != list(LOADERS))
        suffix = subset + "_recipe" * args.recipe + "_trial" * bool(args.warm)
        _common.write_json(f"nn_path_splits_{args.splits}" + suffix, payload)
        return
    for name in args.datasets:
        split = protocol(name)
        results = {
            "jaxreg parallel": run_jaxreg(split, PARALLEL),
            "jaxreg warm": run_jaxreg(split, WARM),
            "jaxreg warm + hierarchy": run_jaxreg(split, WARM, hierarchy=True),
        }
        if args.patience is not None:
            settled = {**WARM, "patience": args.patience, "tol": args.tol}
            results["jaxreg warm, patience"] = run_jaxreg(split, settled)
            results["jaxreg warm + hierarchy, patience"] = run_jaxreg(split, settled, True)
        if args.recipe:
            results["jaxreg LassoNet's recipe"] = run_jaxreg(split, RECIPE)
        results["LassoNet"] = None if args.skip_lassonet else run_lassonet(split)
        print_table(name, results)
        payload[name] = results
    name = "nn_path" + "_patience" * (args.patience is not None) + "_recipe" * args.recipe
    _common.write_json(name + "_trial" * bool(args.warm), payload)


if __name__ == "__main__":
    main()

"""The ``jaxreg`` command line: ``jaxreg sweep`` runs a cross-validated regularization path.

With no arguments it trains an MLP with an L1 penalty on the embedded 8×8 digits over a λ grid ×
5 folds in one compiled sweep, prints a glmnet-style table with λ_min and λ_1se marked and writes
``results.json``, ``cv_curve.png`` and ``path.png``. Bad flags or data exit with status 2.

Compiled programs are kept in JAX's persistent compilation cache, under
``$XDG_CACHE_HOME/jaxreg`` (default ``~/.cache/jaxreg``), so a second run with the same shapes
skips most of the compilation; ``--no-cache`` turns that off.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import pathlib
import re
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

MODELS = ("mlp", "attention", "linear")
GROUPS = ("units", "features")
TASKS = ("classification", "regression")
# the learning rate when --lr is not given (SGD on standardized data; Adam at its usual scale)
# SGD at 0.3 diverges on some members of the diabetes MLP's path (standardized targets)
DEFAULT_LEARNING_RATES = {
    "sgd": {"classification": 0.3, "regression": 0.1},
    "adam": {"classification": 0.01, "regression": 0.01},
}
# Compilations shorter than this are not worth a cache entry (JAX's default is 1 s).
CACHE_MIN_COMPILE_SECONDS = 0.2
PROCESS_FLAGS = ("coordinator", "num_processes", "process_id")
# Flags that do not change what a sweep computes. Every other flag is part of its checkpoint's
# fingerprint, so that a refused --resume names the flag that changed.
RUN_ONLY_FLAGS = (
    "command", "out", "resume", "keep_checkpoint", "devices", "no_progress", "no_cache",
    "distributed", "heartbeat_timeout", *PROCESS_FLAGS,
)  # fmt: skip


def _penalties() -> dict[str, Any]:
    """The CLI's spelling (``elastic-net``) of each entry of fit_path's penalty registry."""
    from jaxreg._path_penalties import PATH_PENALTIES

    return {name.replace("_", "-"): entry for name, entry in PATH_PENALTIES.items()}


class UsageError(Exception):
    """A bad flag or bad data: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (no usage dump) pointing at ``--help``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _lambdas(text: str) -> int | list[float]:
    """An integer is a count; anything else (``0.1``, ``1e-3``, ``1,0.1``) is the grid itself."""
    try:
        if text.strip().isdigit():
            count = int(text)
            if count < 1:
                raise ValueError
            return count
        values = [float(v) for v in text.split(",") if v.strip()]
        if not values or any(not np.isfinite(v) or v < 0 for v in values):
            raise ValueError
        return values
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a count (e.g. 12) or comma-separated λ values >= 0 (e.g. 1,0.1,0.01), "
            f"got {text!r}"
        ) from None


def _at_least(kind, minimum, *, strict=False):
    """A parser of finite values ``>= minimum`` (``> minimum`` when ``strict``)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if not (np.isfinite(value) and value >= minimum) or (strict and value == minimum):
            bound = f"> {minimum}" if strict else f">= {minimum}"
            raise argparse.ArgumentTypeError(f"expected a value {bound}, got {text!r}")
        return value

    return parse


def _positive(kind):
    return _at_least(kind, 1) if kind is int else _at_least(kind, 0, strict=True)


def _batch_size(text: str) -> int | None:
    """A positive int, or ``all`` (None: fit_path's full batches)."""
    return None if text == "all" else _positive(int)(text)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown where they say something (not for on/off switches or 'automatic')."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


EXAMPLES = """\
examples:
  jaxreg sweep                                  MLP + L1 on the digits: 12 λ × 5 folds
  jaxreg sweep --model linear --data diabetes   lasso path by coordinate descent
  jaxreg sweep --model linear                   multinomial lasso path on the digits
  jaxreg sweep --model attention --penalty group-lasso --steps 200
                                                prune whole attention heads
  jaxreg sweep --penalty l2 --lambdas 1,0.1,0.01,0.001
  jaxreg sweep --warm-start --steps 50 --dense-steps 400 --patience 10
                                                walk λ up from the dense fit
  jaxreg sweep --penalty group-lasso --groups features --weight-decay 1e-2 --warm-start
               --batch-size all --lr 0.03 --dense-steps 1000 --lambdas 50
                                                select input features along the path
  jaxreg sweep --data my.csv --out results      your data: last column is the target
  jaxreg sweep --data iris.csv --target species --task classification
  jaxreg sweep --out results --resume           continue a run that was interrupted
  jaxreg sweep --coordinator 10.0.0.1:1234 --num-processes 2 --process-id 0
                                                process 0 of two (start process 1 likewise)
"""


def build_parser() -> argparse.ArgumentParser:
    from jaxreg import __version__

    parser = _Parser(
        prog="jaxreg", description="Regularization paths for JAX models, cross-validated."
    )
    parser.add_argument("--version", action="version", version=f"jaxreg {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sweep = commands.add_parser(
        "sweep",
        help="train a λ grid × folds in one compiled sweep and pick λ by cross-validation",
        description=(
            "Train every λ of a grid on every cross-validation fold (and on all the data) in\n"
            "one compiled program, sharded over all devices; print the CV table with λ_min and\n"
            "λ_1se (glmnet's rules) and write OUT/results.json, OUT/cv_curve.png and\n"
            "OUT/path.png. With no flags: an MLP with an L1 penalty on the embedded digits."
        ),
        epilog=EXAMPLES,
        formatter_class=_HelpFormatter,
    )
    sweep.add_argument(
        "--model",
        choices=MODELS,
        default="mlp",
        help="mlp: two hidden layers of 64 ReLU units; attention: a one-block transformer "
        "(d_model 32, 4 heads, dropout 0.1) over the rows of an image (or one token per "
        "feature); linear: the convex path of jaxreg.linear (coordinate descent to a "
        "duality-gap certificate): least squares on a regression set, logistic (2 classes) or "
        "multinomial regression on a classification set; --steps, --batch-size and --lr do "
        "not apply",
    )
    sweep.add_argument(
        "--penalty",
        choices=tuple(_penalties()),
        default=None,
        help="l1/elastic-net/group-lasso: proximal steps (exact zeros); l2: (λ/2)‖W‖² in the "
        "loss; contractive: λ·½‖∂h/∂x‖² of the hidden layers (mlp only); clip: weights "
        "clipped to [-1/λ, 1/λ]. group-lasso groups: output units (mlp; --groups features for "
        "input features), heads (attention). Default: group-lasso (whole heads) for --model "
        "attention, l1 otherwise",
    )
    sweep.add_argument(
        "--groups",
        choices=GROUPS,
        default=None,
        help="the group lasso's groups for --model mlp: units (default: the output units of "
        "every layer) or features (the rows of the first layer's W, one group per input "
        "feature, the first layer alone penalized: feature selection, as LassoNet; "
        "results.json lists the features kept at the chosen λ). With features, --weight-decay "
        "(1e-2 on the digits) keeps the next layers from growing to undo the penalty, and "
        "--batch-size all keeps the feature count from going back up along the path",
    )
    sweep.add_argument(
        "--lambdas",
        type=_lambdas,
        metavar="N|λ,λ,...",
        default=12,
        help="number of λ (log-spaced down 3 decades from the data's reference λ; for l2 and "
        "contractive from 1 to 1e-4, for clip from 10 to 0.1) or the λ values themselves, "
        "comma-separated (e.g. 1,0.1,0.01); 0 is the unregularized fit, drawn at the left edge "
        "of the plots",
    )
    sweep.add_argument(
        "--folds",
        type=_at_least(int, 2),
        default=5,
        metavar="K",
        help="cross-validation folds (>= 2)",
    )
    sweep.add_argument(
        "--steps", type=_positive(int), default=400, metavar="N", help="optimizer steps per fit"
    )
    sweep.add_argument(
        "--optimizer",
        choices=tuple(DEFAULT_LEARNING_RATES),
        default="sgd",
        help="sgd: proximal gradient descent (the prox after each SGD step); adam: "
        "jaxreg.prox_adam, the proximal step in Adam's own metric (l2 and contractive: plain Adam)",
    )
    sweep.add_argument(
        "--batch-size",
        type=_batch_size,
        default=128,
        metavar="B|all",
        help="minibatch size, or all: full batches (gradient descent: no sampling noise, the "
        "smoothest --warm-start path; not with --penalty contractive)",
    )
    sweep.add_argument(
        "--lr",
        type=_positive(float),
        default=None,
        help="learning rate (default: for sgd 0.3 on classification, 0.1 on regression; 0.01 "
        "for adam); for sgd also the proximal step size",
    )
    sweep.add_argument(
        "--weight-decay",
        type=_at_least(float, 0),
        default=0.0,
        metavar="MU",
        help="L2 ½·MU·‖W‖² on the weight matrices the penalty leaves alone (default 0)",
    )
    sweep.add_argument(
        "--seed", type=int, default=0, help="PRNG seed (initial weights, folds, minibatches)"
    )
    sweep.add_argument(
        "--data",
        default="digits",
        metavar="NAME|FILE",
        help="an embedded dataset (digits, diabetes) or a .npz (keys X, y) / .csv (last column "
        "is the target) file",
    )
    sweep.add_argument(
        "--target",
        default=None,
        metavar="COL",
        help="your file's target: a .csv column name or 0-based number, or an .npz key "
        "(default: the last column, or y)",
    )
    sweep.add_argument(
        "--task",
        choices=TASKS,
        default=None,
        help="for your file (default: string labels, or integers with at most 20 values, are "
        "classes; anything else is regression)",
    )
    sweep.add_argument(
        "--header",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether your .csv's first row names the columns (default: detected: a header when "
        "its cells are not numbers while the rest of their column is)",
    )
    sweep.add_argument("--out", default="jaxreg-out", metavar="DIR", help="output directory")
    sweep.add_argument(
        "--resume",
        action="store_true",
        help="resume an interrupted sweep from its checkpoint in OUT/checkpoint (written "
        "after every tenth of the steps, removed after a successful run); without --resume a "
        "new sweep starts",
    )
    sweep.add_argument(
        "--keep-checkpoint",
        action="store_true",
        help="keep OUT/checkpoint after a successful run",
    )
    sweep.add_argument(
        "--devices",
        type=_positive(int),
        default=None,
        metavar="N",
        help="number of devices of each process to shard the grid over (default: all; on a CPU "
        "host one device per core, or as set by XLA_FLAGS=--xla_force_host_platform_device_count)",
    )
    _add_warm_start_flags(sweep)
    _add_process_flags(sweep)
    sweep.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    sweep.add_argument(
        "--no-cache",
        action="store_true",
        help="do not use the persistent compilation cache in $XDG_CACHE_HOME/jaxreg "
        "(~/.cache/jaxreg), which lets a second run with the same shapes skip compiling",
    )
    return parser


def _add_warm_start_flags(sweep: argparse.ArgumentParser) -> None:
    warm = sweep.add_argument_group(
        "warm-started path (mlp, attention)",
        "Fit the dense model (λ = 0) first, then walk the grid upwards, each λ started from the "
        "previous λ's weights, as glmnet and LassoNet do: the count of active weights and "
        "groups falls along the path instead of jumping between neighbouring λ. All folds and "
        "the full-data fit walk in parallel, in one compiled program. With the default grid, "
        "λ_ref is read at the dense fit and the walk goes on above it until the full-data fit "
        "has no penalized weight left.",
    )
    warm.add_argument(
        "--warm-start",
        action="store_true",
        help="walk λ from the dense fit (--steps is then per λ; the benchmarks use 50)",
    )
    warm.add_argument(
        "--dense-steps",
        type=_positive(int),
        metavar="N",
        help="optimizer steps of the dense fit (default: --steps)",
    )
    warm.add_argument(
        "--patience",
        type=_positive(int),
        metavar="P",
        help="end a λ after P steps in a row that do not lower its training objective by 0.1 %% "
        "of the best so far (default: every λ takes --steps)",
    )


def _add_process_flags(sweep: argparse.ArgumentParser) -> None:
    processes = sweep.add_argument_group(
        "many processes",
        "One sweep over the devices of several processes (hosts) with jax.distributed: start the "
        "same command in every process; process 0 writes OUT and the checkpoint, which must be "
        "on a filesystem every process sees. On SLURM, Open MPI and Cloud TPU --distributed "
        "detects the rest; elsewhere give all three of --coordinator, --num-processes and "
        "--process-id (or JAX's JAX_COORDINATOR_ADDRESS).",
    )
    processes.add_argument(
        "--distributed",
        action="store_true",
        help="join a multi-process run (implied by the three flags below or by "
        "JAX_COORDINATOR_ADDRESS)",
    )
    processes.add_argument(
        "--coordinator", metavar="HOST:PORT", help="address of process 0, the coordinator"
    )
    processes.add_argument(
        "--num-processes", type=_positive(int), metavar="N", help="number of processes"
    )
    processes.add_argument("--process-id", type=int, metavar="I", help="this process: 0 .. N-1")
    processes.add_argument(
        "--heartbeat-timeout",
        type=_positive(int),
        default=100,
        metavar="SECONDS",
        help="a process silent this long is declared dead, and the others exit with an error",
    )


def _start_processes(args) -> None:
    """Join the other processes of a multi-process run (before JAX starts a backend)."""
    import jax

    given = [flag for flag in PROCESS_FLAGS if getattr(args, flag) is not None]
    if not (args.distributed or given or os.environ.get("JAX_COORDINATOR_ADDRESS")):
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes need it
    try:
        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
            heartbeat_timeout_seconds=args.heartbeat_timeout,
        )
    except (RuntimeError, ValueError, TypeError) as error:
        raise UsageError(
            f"could not join the other processes ({error}): outside SLURM, Open MPI and Cloud "
            "TPU give --coordinator HOST:PORT, --num-processes N and --process-id I"
        ) from None


def _configure_devices(args) -> list[Any]:
    """The devices to use: on CPU one host device per core (set before JAX starts a backend);
    ``--devices`` counts each process's devices."""
    import jax

    requested = args.devices
    user_count = "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
    user_count = user_count or jax.config.jax_num_cpu_devices != -1
    if jax.config.jax_platforms in (None, "", "cpu") and (requested or not user_count):
        jax.config.update("jax_num_cpu_devices", requested or os.cpu_count() or 1)
    _start_processes(args)
    local = jax.local_devices()
    if requested and requested > len(local):
        raise UsageError(f"--devices {requested}: only {len(local)} {local[0].platform} found")
    cores = os.cpu_count() or 1
    if requested and local[0].platform == "cpu" and requested > cores:
        print(
            f"warning: --devices {requested} on {cores} CPU cores: the host devices share the "
            f"cores, so more than {cores} adds no speed",
            file=sys.stderr,
        )
    return _first_devices(requested)


def _first_devices(count: int | None) -> list[Any]:
    """The first ``count`` devices of every process (all of them for None), in JAX's order."""
    import jax

    taken: collections.Counter[int] = collections.Counter()
    chosen = []
    for device in jax.devices():
        taken[device.process_index] += 1
        if count is None or taken[device.process_index] <= count:
            chosen.append(device)
    return chosen


def cache_dir() -> pathlib.Path:
    """Where the CLI keeps compiled programs: ``$XDG_CACHE_HOME/jaxreg`` or ``~/.cache/jaxreg``."""
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "jaxreg"


def _configure_cache(enabled: bool) -> str | None:
    """Turn on JAX's persistent compilation cache (a directory the user set wins); its path."""
    import jax

    if not enabled:
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(cache_dir()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_SECONDS)
    return jax.config.jax_compilation_cache_dir


def _load(args):
    from jaxreg import datasets

    name = args.data
    is_file = name.endswith((".npz", ".csv")) or os.sep in name
    file_flags = [flag for flag in ("target", "task", "header") if getattr(args, flag) is not None]
    if file_flags and not is_file:
        flags = ", ".join(f"--{flag}" for flag in file_flags)
        raise UsageError(f"{flags}: only for your own .csv/.npz file, not the embedded {name!r}")
    try:
        if is_file:
            return datasets.load_file(name, target=args.target, task=args.task, header=args.header)
        return datasets.load(name)
    except (ValueError, TypeError, OSError) as error:
        message = str(error).removeprefix("path: ")
        if message.startswith("target: "):
            message = message.removeprefix("target: ")
            raise UsageError(f"--target {args.target}: {message}") from None
        raise UsageError(f"--data {name}: {message}") from None


def _check_combination(args, penalty: Any, task: str) -> None:
    """Reject flag combinations that cannot run, before training starts."""
    if penalty.needs_activations and args.model != "mlp":
        raise UsageError(f"--penalty {args.penalty} needs hidden layers: use --model mlp")
    if penalty.needs_activations and args.batch_size is None:
        raise UsageError(f"--batch-size all: not with --penalty {args.penalty} (use a number)")
    if args.model == "linear" and penalty.linear_l1_ratio is None:
        linear = [name for name, entry in _penalties().items() if entry.linear_l1_ratio is not None]
        raise UsageError(
            f"--model linear supports --penalty {', '.join(linear)}, not {args.penalty}"
        )
    if args.groups is not None and (penalty.name != "group_lasso" or args.model != "mlp"):
        raise UsageError("--groups is for --penalty group-lasso with --model mlp")
    warm_flags = [f"--{flag.replace('_', '-')}" for flag in ("dense_steps", "patience")
                  if getattr(args, flag) is not None]  # fmt: skip
    if warm_flags and not args.warm_start:
        raise UsageError(f"{', '.join(warm_flags)}: only with --warm-start")
    if args.warm_start and args.model == "linear":
        raise UsageError(
            "--warm-start is for --model mlp and attention: the linear path is warm-started "
            "already (coordinate descent from the largest λ down)"
        )
    if penalty.positive_lambdas and isinstance(args.lambdas, list) and min(args.lambdas) <= 0:
        raise UsageError(f"--lambdas must be > 0 for --penalty {args.penalty}")


def _grid_for(args, penalty: Any) -> Any:
    """A given grid, a count for the default grid from λ_ref, or (penalties without λ_ref) the
    registry's log-spaced span."""
    if isinstance(args.lambdas, list) or penalty.default_span is None:
        return args.lambdas
    return np.geomspace(*penalty.default_span, args.lambdas)


def _as_tokens(X: np.ndarray) -> np.ndarray:
    """Square images become one token per row; other feature vectors one token per feature."""
    side = int(round(np.sqrt(X.shape[1])))
    if side * side == X.shape[1]:
        return X.reshape(X.shape[0], side, side)
    return X[:, :, None]


def _standardize(X: np.ndarray) -> np.ndarray:
    scale = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(scale > 0, scale, 1)


def _run_network(args, data, penalty: Any, devices) -> dict[str, Any]:
    import jax

    import jaxreg

    X = _standardize(data.X)
    y = data.y
    key = jax.random.key(args.seed)
    classification = data.task == "classification"
    if not classification:
        # SGD with one learning rate for every data set needs targets of unit scale; the CV loss
        # (½ squared error) is then 0.5 for a model that predicts the mean
        y = _standardize(y[:, None])[:, 0]
    outputs = int(data.y.max()) + 1 if classification else 1
    options: dict[str, Any] = {}
    if args.model == "attention":
        X = _as_tokens(X)
        model = jaxreg.models.transformer_classifier(
            X.shape[-1], outputs, d_model=32, num_heads=4, dropout_rate=0.1
        )
        description = f"transformer: {X.shape[1]} tokens × {X.shape[2]} → d_model 32, 4 heads"
        if penalty.name == "group_lasso":
            mask, group_axis = jaxreg.models.head_groups(jax.eval_shape(model.init, key))
            options.update(mask=mask, group_axis=group_axis, joint=True)
    else:
        hidden = [64, 64] if args.model == "mlp" else []
        sizes = [X.shape[1], *hidden, outputs]
        model = jaxreg.models.mlp(sizes)
        description = f"{args.model} {'→'.join(map(str, sizes))}"
        options["group_axis"] = 0 if args.model == "linear" else 1
        if args.groups == "features":  # the first layer's rows: one group per input feature
            first_w = [{"w": layer == 0, "b": False} for layer in range(len(sizes) - 1)]
            options.update(mask=first_w, group_axis=0)
    print(f"model: {description}; penalty: {args.penalty}\n{_training_plan(args)}")
    fit = jaxreg.fit_path(
        model,
        X,
        y,
        loss="cross_entropy" if classification else "mse",
        penalty=penalty.name,
        lambdas=_grid_for(args, penalty),
        folds=args.folds,
        key=key,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        optimizer=args.optimizer,
        warm_start=args.warm_start,
        dense_steps=args.dense_steps,
        patience=args.patience,
        checkpoint_dir=str(pathlib.Path(args.out) / "checkpoint"),
        progress=not args.no_progress,
        devices=devices,
        fingerprint=_result_flags(args),
        **options,
    )
    mask = options.get("mask", jaxreg.masks.weights_only(fit.params))
    total = sum(
        int(np.size(leaf))
        for leaf, keep in zip(jax.tree.leaves(fit.params), jax.tree.leaves(mask), strict=True)
        if keep
    )
    run = {
        "fit": fit,
        "model": description,
        "accuracy": fit.cv_accuracy,
        "nonzeros": np.asarray(fit.nonzeros),
        "active_groups": np.asarray(fit.active_groups),
        "group_name": _group_name(args, penalty),
        "penalized_weights": total,
        "fold_losses": fit.fold_losses,
        "lambda_ref": fit.lambda_ref,
        "diverged": int(np.sum(fit.diverged)),
        "loss_name": fit.loss_name if classification else "½ squared error, standardized y",
    }
    if args.groups == "features":
        kept = np.flatnonzero(np.any(np.asarray(fit.params[0]["w"]) != 0, axis=1))
        names = data.feature_names or tuple(f"x{j}" for j in range(X.shape[1]))
        run["features_selected"] = [names[j] for j in kept]
    if args.warm_start:  # the steps each λ took: fewer than --steps where --patience ended it
        run["steps_taken"] = np.sum(np.isfinite(fit.train_loss[0]), axis=-1)
    return run


def _training_plan(args) -> str:
    """What the sweep trains, in one line."""
    full_batch = "full-batch " if args.batch_size is None else ""
    networks = f"{full_batch}{args.optimizer} steps (lr {args.lr:g})"
    if not args.warm_start:
        members = _grid_size(args) * (args.folds + 1)
        return (f"training {members} networks ({_grid_size(args)} λ × ({args.folds} folds + "
                f"all data)) × {args.steps} {networks} in one compiled sweep")  # fmt: skip
    dense = args.steps if args.dense_steps is None else args.dense_steps
    per_lambda = f"up to {args.steps}" if args.patience else f"{args.steps}"
    return (f"training {args.folds + 1} networks ({args.folds} folds + all data) in parallel, "
            f"each a dense fit of {dense} then {per_lambda} {networks} per λ, warm-started "
            "along the λ grid upwards, in one compiled program")  # fmt: skip


def _group_name(args, penalty: Any) -> str | None:
    """What the group lasso's groups are (the table's extra column), None for other penalties."""
    if penalty.name != "group_lasso":
        return None
    return "heads" if args.model == "attention" else args.groups or "units"


def _result_flags(args) -> dict[str, Any]:
    """The flags that decide the results, by name (``--lr``): the checkpoint's fingerprint."""
    return {
        f"--{name.replace('_', '-')}": value
        for name, value in vars(args).items()
        if name not in RUN_ONLY_FLAGS
    }


def _grid_size(args) -> int:
    return len(args.lambdas) if isinstance(args.lambdas, list) else args.lambdas


def _run_linear(args, data, penalty: Any) -> dict[str, Any]:
    """The convex path: least squares (regression), or logistic / multinomial regression
    (classification), on standardized features, λ by glmnet's rule on CV deviance / MSE."""
    import jax

    from jaxreg import linear

    if data.task == "regression":
        family, outputs = "gaussian", 1
    else:
        classes = len(data.target_names or np.unique(data.y))
        family = "binomial" if classes == 2 else "multinomial"
        outputs = 1 if classes == 2 else classes
    print(
        f"model: linear, {family} family (coordinate descent, jaxreg.linear); penalty: "
        f"{args.penalty} (--steps, --batch-size, --optimizer and --lr do not apply)"
    )
    fit = linear.cv_path(
        _standardize(data.X),
        data.y,
        family=family,
        folds=args.folds,
        key=jax.random.key(args.seed),
        l1_ratio=penalty.linear_l1_ratio,
        lambdas=_grid_for(args, penalty),
        eps=1e-3,  # three decades below λ_max, as the help of --lambdas says
    )
    return {
        "fit": fit,
        "model": f"linear {data.X.shape[1]}→{outputs} (jaxreg.linear.cv_path, {family})",
        "accuracy": fit.cv_accuracy,
        "nonzeros": fit.nonzeros,  # features used (by any class)
        "penalized_weights": data.X.shape[1],
        "fold_losses": np.asarray(fit.fold_losses),
        "lambda_ref": None,
        "diverged": 0,
        "loss_name": fit.loss_name,
        "certificate": {
            "max_dual_gap": float(np.max(fit.path.dual_gap)),
            "converged": int(np.sum(fit.path.converged)),
        },
        "labels": data.feature_names,
    }


def _loss_label(run: dict[str, Any]) -> str:
    return "CV " + run["loss_name"].replace("_", "-")


def _table(summary, run: dict[str, Any], folds: int) -> str:
    """glmnet's printout: one row per λ, the selections marked in the first column.

    A line above the header says which columns come from the fold fits (held-out loss) and
    which from the fit on all the data (the weights it keeps).
    """
    loss = _loss_label(run)
    width = max(len(loss), 10)
    cv_width = width + 10 + (10 if run["accuracy"] is not None else 0)
    groups = run.get("group_name") and f"active {run['group_name']}"
    full_width = 22 + (len(groups) + 2 if groups else 0)
    spans = (
        f"{'':16}{f' {folds}-fold CV, held-out ':─^{cv_width}}  "
        f"{' fit on all data ':─^{full_width}}"
    )
    header = f"{'':4}{'lambda':>10}  {loss:>{width}}  {'± SE':>8}"
    if run["accuracy"] is not None:
        header += f"  {'accuracy':>8}"
    header += f"  {'nonzero':>8}  {'zero weights':>12}"
    if groups:
        header += f"  {groups}"
    rows = [spans, header]
    for k, lam in enumerate(summary.lambdas):
        is_min, is_1se = k == summary.index_min, k == summary.index_1se
        mark = "both" if is_min and is_1se else "min" if is_min else "1se" if is_1se else ""
        row = f"{mark:<4}{lam:>10.3e}  {summary.cvm[k]:>{width}.4f}  {summary.cvsd[k]:>8.4f}"
        if run["accuracy"] is not None:
            row += f"  {run['accuracy'][k]:>8.1%}"
        zero_fraction = 1 - run["nonzeros"][k] / run["penalized_weights"]
        row += f"  {run['nonzeros'][k]:>8d}  {zero_fraction:>12.1%}"
        if groups:
            row += f"  {run['active_groups'][k]:>{len(groups)}d}"
        rows.append(row)
    return "\n".join(rows)


def _finite_or_none(values: Any) -> Any:
    """JSON has no NaN: a diverged (NaN) entry becomes null."""
    array = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(array), array, None).tolist()


def _write_outputs(out: pathlib.Path, args, run: dict[str, Any], extra: dict[str, Any]) -> None:
    from jaxreg import plot

    fit = run["fit"]
    summary = fit.summary
    selected = summary.index_1se
    results = {
        "command": vars(args),
        **extra,
        "penalty": args.penalty,
        "model": run["model"],
        "loss": run["loss_name"],
        "lambdas": np.asarray(summary.lambdas).tolist(),
        "lambda_ref": run["lambda_ref"],
        "cv_mean": _finite_or_none(summary.cvm),
        "cv_se": _finite_or_none(summary.cvsd),
        "fold_losses": _finite_or_none(run["fold_losses"]),
        "lambda_min": float(summary.lambda_min),
        "lambda_1se": float(summary.lambda_1se),
        "index_min": int(summary.index_min),
        "index_1se": int(summary.index_1se),
        "lambda_selected": float(summary.lambdas[selected]),
        "accuracy": None if run["accuracy"] is None else _finite_or_none(run["accuracy"]),
        "nonzeros": np.asarray(run["nonzeros"]).astype(int).tolist(),
        "penalized_weights": int(run["penalized_weights"]),
        "zero_fraction": (1 - np.asarray(run["nonzeros"]) / run["penalized_weights"]).tolist(),
        "diverged_members": run["diverged"],
    }
    if "certificate" in run:  # the convex path: its duality gaps (objective units) per λ
        results["certificate"] = run["certificate"]
    if "active_groups" in run:
        results["active_groups"] = np.asarray(run["active_groups"]).astype(int).tolist()
    if "features_selected" in run:  # the input features the chosen model reads
        results["features_selected"] = run["features_selected"]
    if "steps_taken" in run:
        results["steps_taken"] = np.asarray(run["steps_taken"]).astype(int).tolist()
    (out / "results.json").write_text(
        json.dumps(results, indent=2, allow_nan=False, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    name = f"{extra['data']} · {run['model']} · {args.penalty}"
    cv_title = f"{name}\n{args.folds}-fold CV: held-out loss of the fold fits"
    plot.cv_curve(fit, title=cv_title, ylabel=_loss_label(run)).savefig(
        out / "cv_curve.png", dpi=110, bbox_inches="tight"
    )
    path_title = f"{name}\npath of the fits on all {extra['data_shape'][0]} examples"
    figure = plot.path(fit, title=path_title, labels=run.get("labels"))
    figure.savefig(out / "path.png", dpi=110, bbox_inches="tight")


def sweep_command(args, argv: Sequence[str] = ()) -> None:
    """``jaxreg sweep``; ``argv`` (the command's arguments) makes the hint after a refused
    ``--resume``."""
    import jax

    started = time.perf_counter()
    args.penalty = args.penalty or ("group-lasso" if args.model == "attention" else "l1")
    penalty = _penalties()[args.penalty]
    data = _load(args)  # bad data fails before JAX starts
    _check_combination(args, penalty, data.task)
    if args.lr is None:
        args.lr = DEFAULT_LEARNING_RATES[args.optimizer][data.task]
    cache = _configure_cache(not args.no_cache)
    devices = _configure_devices(args)
    leader = jax.process_index() == 0
    # every process trains its share; process 0 alone reports and writes OUT
    with contextlib.redirect_stdout(sys.stdout if leader else io.StringIO()):
        _prepare_checkpoint(args, leader)
        _print_setup(args, data, devices, cache)
        run = _fit(args, data, penalty, devices, argv)
        if leader:
            _report(args, data, run, devices, started)


def _prepare_checkpoint(args, leader: bool) -> None:
    """``--resume`` keeps OUT/checkpoint; otherwise process 0 removes it before any process
    looks for it."""
    from jaxreg.sweep import _barrier

    checkpoint = pathlib.Path(args.out) / "checkpoint"
    if args.resume and not checkpoint.exists():
        print(f"no checkpoint in {checkpoint}: starting a new sweep")
    elif args.resume:
        print(f"resuming from the checkpoint in {checkpoint}")
    elif leader and checkpoint.exists():
        shutil.rmtree(checkpoint)
    pathlib.Path(args.out).mkdir(parents=True, exist_ok=True)
    _barrier("jaxreg sweep: checkpoint prepared")


def _fit(args, data, penalty: Any, devices, argv: Sequence[str]) -> dict[str, Any]:
    """The path of the chosen model; a checkpoint that cannot be resumed is a usage error that
    says why and how to start afresh."""
    from jaxreg import DivergedError
    from jaxreg.sweep import CheckpointError

    if args.model == "linear":
        return _run_linear(args, data, penalty)
    try:
        return _run_network(args, data, penalty, devices)
    except CheckpointError as error:
        raise UsageError(_refused_resume(error, args, argv)) from None
    except DivergedError:
        raise UsageError(
            f"--lr {args.lr:g}: at every λ the training of some fold diverged (NaN or inf); "
            "try a smaller --lr"
        ) from None


def _refused_resume(error: Exception, args, argv: Sequence[str]) -> str:
    """Which flags differ from the checkpoint's sweep (read from its fingerprint), or why the
    checkpoint cannot be read, and the command that starts afresh."""
    checkpoint = pathlib.Path(args.out) / "checkpoint"
    differing = getattr(error, "differing", None)
    flags = [part for part in differing or () if part.startswith("--")]
    if flags:
        why = f"was written with a different {', '.join(flags)}"
    elif differing:
        why = f"is of a different sweep (it differs in: {', '.join(differing)})"
    else:
        why = "cannot be read back (damaged, written by another jaxreg version, or not seen by "
        why += "every process)"
    afresh = shlex.join(["jaxreg", *(arg for arg in argv if arg != "--resume")])
    flag = "--resume: " if args.resume else ""
    return f"{flag}the checkpoint in {checkpoint} {why}; to start afresh: {afresh}"


def _report(args, data, run: dict[str, Any], devices, started: float) -> None:
    """The table and the selected λ on stdout; results.json and the plots in OUT."""
    import jax

    summary = run["fit"].summary
    print(_table(summary, run, args.folds))
    print(f"lambda_min = {summary.lambda_min:.4g}  (lowest CV loss)")
    print(
        f"lambda_1se = {summary.lambda_1se:.4g}  (largest λ within one standard error of the "
        "lowest: the chosen model)"
    )
    if "features_selected" in run:
        kept = run["features_selected"]
        listed = ": " + ", ".join(kept) if 0 < len(kept) <= 20 else ""
        print(f"features kept at lambda_1se: {len(kept)} of {data.X.shape[1]}{listed}")
    if "steps_taken" in run:
        taken = run["steps_taken"]
        print(f"warm-started path: {taken.size} λ, {taken.mean():.1f} steps per λ on average "
              "(full-data fit)")  # fmt: skip
    if run["diverged"]:
        print(f"warning: {run['diverged']} trainings diverged (NaN): lower --lr")
    extra = {
        "data": args.data,
        "data_shape": list(data.X.shape),
        "task": data.task,
        "classes": None if data.task != "classification" else list(data.target_names),
        "devices": [str(device) for device in devices],
        "processes": jax.process_count(),
        "seconds": round(time.perf_counter() - started, 3),
    }
    out = pathlib.Path(args.out)
    _write_outputs(out, args, run, extra)
    checkpoint = out / "checkpoint"
    if checkpoint.exists() and not args.keep_checkpoint:
        shutil.rmtree(checkpoint)  # the run is complete: nothing left to resume
    print(f"wrote {out / 'results.json'}, {out / 'cv_curve.png'}, {out / 'path.png'}")


def _print_setup(args, data, devices, cache: str | None) -> None:
    """The devices, the data, the compilation cache, and a warning for the costly model."""
    kind = devices[0].platform.upper() if devices[0].platform == "cpu" else devices[0].device_kind
    how = "" if args.devices else " (all; --devices N to use fewer)"
    print(f"devices: {len(devices)} × {kind}{how}")
    _print_data(args, data)
    if cache:
        print(f"compilation cache: {cache} (--no-cache to turn it off)")
    if args.model == "attention":
        print(
            "warning: --model attention costs several times the MLP's time per step; try fewer "
            "--steps or --lambdas first",
            file=sys.stderr,
        )


def _print_data(args, data) -> None:
    n, features = data.X.shape
    what = data.task
    if data.task == "classification":
        what += f", {len(data.target_names)} classes"
    print(f"data: {args.data}: {n} examples × {features} features, {what}")
    # load_file names the columns of a headerless file x0, x1, ... by position
    headerless = all(re.fullmatch(r"x\d+", name) for name in data.feature_names or ("",))
    if args.data.endswith(".csv") and args.header is None and headerless:
        print("  no header row detected: every row is data (--header if the first row is names)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "sweep":
            sweep_command(args, sys.argv[1:] if argv is None else argv)
    except (UsageError, ValueError, TypeError) as error:
        print(f"jaxreg: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\njaxreg: interrupted; rerun the same command with --resume to continue from the "
            "last checkpoint",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``jaxreg sweep`` command, run as a user runs it (``python -m jaxreg`` in a subprocess),
checked against its own JSON, glmnet's summary recomputed from the fold losses, sklearn's λ grid
and an uninterrupted run for ``--resume``."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxreg import cli, cv
from jaxreg.sweep import CheckpointError, CheckpointMismatchError

TINY = ["--steps", "30", "--lambdas", "3", "--folds", "2", "--no-progress", "--no-cache"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def jaxreg_sweep(*flags, cwd, timeout=600, cache_home=None):
    """The command in a subprocess; its user cache directory is ``cache_home`` (or ``cwd``)."""
    import matplotlib

    # matplotlib keeps its font cache where it already is (no rebuild per test)
    env = {"MPLCONFIGDIR": matplotlib.get_cachedir(), **os.environ}
    env["XDG_CACHE_HOME"] = str(cache_home or cwd / "user-cache")
    return subprocess.run(
        [sys.executable, "-m", "jaxreg", "sweep", *flags],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=env,
    )


def results_of(out):
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


def numbers_of(results):
    """The fields a rerun must reproduce exactly (not the command line, timing or devices)."""
    return {k: v for k, v in results.items() if k not in ("command", "seconds")}


def table_rows(stdout):
    """The printed table's rows, split into fields (a row starts with its mark or its λ)."""
    return [line.split() for line in stdout.splitlines() if re.match(r"\S*\s+\d\.\d+e", line)]


def assert_png(path, min_bytes=10_000):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 400 and height >= 250 and len(data) >= min_bytes


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "out"
    done = jaxreg_sweep(*TINY, "--keep-checkpoint", "--out", str(out), cwd=out.parent)
    assert done.returncode == 0, done.stderr
    return done, out


def test_tiny_sweep_writes_consistent_results(tiny_run):
    done, out = tiny_run
    results = results_of(out)
    lambdas = np.array(results["lambdas"])
    assert len(lambdas) == 3 and np.all(np.diff(lambdas) < 0)
    np.testing.assert_allclose(lambdas[-1] / lambdas[0], 1e-3, rtol=1e-6)
    assert results["lambda_1se"] >= results["lambda_min"]
    assert results["lambda_min"] == lambdas[results["index_min"]]
    assert results["lambda_1se"] == lambdas[results["index_1se"]] == results["lambda_selected"]
    # glmnet's summary, recomputed from the fold losses with fold-size weights (1797 = 899 + 898)
    summary = cv.summarize(np.array(results["fold_losses"]), lambdas, weights=[899, 898])
    np.testing.assert_allclose(results["cv_mean"], summary.cvm, rtol=1e-12)
    np.testing.assert_allclose(results["cv_se"], summary.cvsd, rtol=1e-12)
    assert (results["index_min"], results["index_1se"]) == (summary.index_min, summary.index_1se)
    # the MLP 64→64→64→10 has 64·64 + 64·64 + 64·10 penalized weights
    assert results["penalized_weights"] == 64 * 64 + 64 * 64 + 64 * 10
    np.testing.assert_allclose(
        results["zero_fraction"], 1 - np.array(results["nonzeros"]) / results["penalized_weights"]
    )
    assert results["nonzeros"][0] == 0  # λ_ref: the null model
    assert results["command"]["folds"] == 2 and results["data"] == "digits"
    assert results["data_shape"] == [1797, 64] and results["penalty"] == "l1"
    assert results["classes"] == [str(digit) for digit in range(10)]
    assert_png(out / "cv_curve.png")
    assert_png(out / "path.png")
    # --keep-checkpoint kept it; --no-cache wrote no compilation cache
    assert (out / "checkpoint" / "sweep_checkpoint.npz").exists()
    assert not (out.parent / "user-cache" / "jaxreg").exists()


def test_tiny_sweep_prints_devices_and_the_table_of_the_json(tiny_run):
    done, out = tiny_run
    results = results_of(out)
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"devices: {os.cpu_count()} × CPU")
    header = next(i for i, line in enumerate(lines) if "lambda" in line and "± SE" in line)
    # the line above says which columns are the fold fits' and which the full-data fit's
    spans = lines[header - 1]
    cv_span = re.search(r"─+ 2-fold CV, held-out ─+", spans).span()
    full_span = re.search(r"─+ fit on all data ─+", spans).span()
    for column in ("CV cross-entropy", "± SE", "accuracy"):
        start = lines[header].index(column)
        assert cv_span[0] <= start and start + len(column) <= cv_span[1]
    for column in ("nonzero", "zero weights"):
        start = lines[header].index(column)
        assert full_span[0] <= start and start + len(column) <= full_span[1]
    rows = lines[header + 1 : header + 4]
    for k, row in enumerate(rows):
        fields = row.split()
        mark = fields.pop(0) if fields[0] in ("min", "1se", "both") else ""
        expected_mark = {
            (True, True): "both",
            (True, False): "min",
            (False, True): "1se",
            (False, False): "",
        }[(k == results["index_min"], k == results["index_1se"])]
        assert mark == expected_mark
        lam, loss, se, accuracy, nonzero, zeros = fields
        np.testing.assert_allclose(float(lam), results["lambdas"][k], rtol=1e-3)
        np.testing.assert_allclose(float(loss), results["cv_mean"][k], atol=6e-5)
        np.testing.assert_allclose(float(se), results["cv_se"][k], atol=6e-5)
        np.testing.assert_allclose(float(accuracy[:-1]) / 100, results["accuracy"][k], atol=6e-4)
        assert int(nonzero) == results["nonzeros"][k]
        np.testing.assert_allclose(float(zeros[:-1]) / 100, results["zero_fraction"][k], atol=6e-4)
    selected = re.search(r"lambda_min = (\S+).*\nlambda_1se = (\S+)", done.stdout)
    np.testing.assert_allclose(float(selected[1]), results["lambda_min"], rtol=1e-3)
    np.testing.assert_allclose(float(selected[2]), results["lambda_1se"], rtol=1e-3)
    assert f"wrote {out / 'results.json'}" in done.stdout


@pytest.mark.slow  # another CLI process that compiles the sweep's first program: ~6 s
def test_resume_after_a_changed_flag_names_it_and_the_command_that_starts_afresh(tiny_run):
    _, out = tiny_run
    flags = [*TINY, "--lr", "0.5", "--out", str(out)]
    refused = jaxreg_sweep(*flags, "--resume", cwd=out.parent)
    assert refused.returncode == 2
    message = refused.stderr.strip()
    assert len(message.splitlines()) == 1
    # the one flag that changed (read from the checkpoint's fingerprint), no other
    assert "a different --lr;" in message
    assert message.endswith("to start afresh: jaxreg sweep " + shlex.join(flags))
    assert (out / "checkpoint" / "sweep_checkpoint.npz").exists()  # left as it was


@pytest.mark.parametrize(
    "error, says",
    [
        (CheckpointMismatchError("raw", ["data", "--seed", "--lr"]), "a different --seed, --lr;"),
        (CheckpointMismatchError("raw", ["data"]), "of a different sweep (it differs in: data)"),
        (CheckpointError("raw"), "cannot be read back"),
    ],
)
def test_refused_resume_says_why_from_the_typed_error(error, says):
    args = cli.build_parser().parse_args(["sweep", "--out", "o", "--resume", "--lr", "0.5"])
    message = cli._refused_resume(error, args, ["sweep", "--out", "o", "--resume", "--lr", "0.5"])
    assert message.startswith("--resume: the checkpoint in o/checkpoint ")
    assert says in message and "raw" not in message  # said for the flags, not passed through
    assert message.endswith("; to start afresh: jaxreg sweep --out o --lr 0.5")


def test_the_checkpoint_remembers_the_flags_that_decide_the_results():
    def flags(*argv):
        return cli._result_flags(cli.build_parser().parse_args(["sweep", *argv]))

    base = flags()
    for run_only in (["--out", "x"], ["--devices", "1"], ["--no-progress"], ["--no-cache"],
                     ["--keep-checkpoint"], ["--heartbeat-timeout", "5"]):  # fmt: skip
        assert flags(*run_only) == base, run_only
    for name, value in (("--lr", "0.5"), ("--seed", "1"), ("--steps", "9"), ("--data", "x.csv")):
        changed = flags(name, value)
        assert [flag for flag in base if changed[flag] != base[flag]] == [name]


def test_process_flags_reach_jax_distributed(monkeypatch):
    import jax

    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
    monkeypatch.setattr(jax.config, "update", lambda *option: calls.append(option))
    monkeypatch.delenv("JAX_COORDINATOR_ADDRESS", raising=False)
    parse = cli.build_parser().parse_args
    cli._start_processes(parse(["sweep"]))
    assert calls == []  # one process: nothing to join
    flags = ["--coordinator", "10.0.0.1:1234", "--num-processes", "4", "--process-id", "3"]
    cli._start_processes(parse(["sweep", *flags, "--heartbeat-timeout", "7"]))
    assert calls == [
        ("jax_cpu_collectives_implementation", "gloo"),
        {"coordinator_address": "10.0.0.1:1234", "num_processes": 4, "process_id": 3,
         "heartbeat_timeout_seconds": 7},
    ]  # fmt: skip
    # JAX's own variable, or --distributed alone (SLURM, Open MPI): JAX detects the rest
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:1234")
    for argv in (["sweep"], ["sweep", "--distributed"]):
        calls.clear()
        cli._start_processes(parse(argv))
        assert calls[1] == {"coordinator_address": None, "num_processes": None,
                            "process_id": None, "heartbeat_timeout_seconds": 100}  # fmt: skip


def test_processes_that_cannot_start_are_a_usage_error(monkeypatch):
    import jax

    def refuse(**options):
        raise ValueError("Number of processes must be defined.")

    monkeypatch.setattr(jax.distributed, "initialize", refuse)
    monkeypatch.setattr(jax.config, "update", lambda *option: None)
    with pytest.raises(cli.UsageError, match="--num-processes N"):
        cli._start_processes(cli.build_parser().parse_args(["sweep", "--distributed"]))


def test_help_lists_every_flag(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "jaxreg", "sweep", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    flags = [
        "--model", "--penalty", "--lambdas", "--folds", "--steps", "--batch-size", "--lr",
        "--seed", "--data", "--out", "--resume", "--devices", "--no-progress",
        "--target", "--task", "--header", "--no-header", "--keep-checkpoint", "--no-cache",
        "--optimizer", "--weight-decay", "--warm-start", "--dense-steps", "--patience", "--groups",
        "--distributed", "--coordinator", "--num-processes", "--process-id", "--heartbeat-timeout",
    ]  # fmt: skip
    for flag in flags:
        assert flag in done.stdout
    for choice in ("mlp", "attention", "linear", "elastic-net", "group-lasso", "contractive"):
        assert choice in done.stdout


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--folds", "0"], "--folds"),
        (["--folds", "1"], "--folds"),
        (["--lambdas", "x"], "--lambdas"),
        (["--lambdas", "0"], "--lambdas"),
        (["--lambdas", "1,-1"], "--lambdas"),
        (["--model", "foo"], "--model"),
        (["--penalty", "l3"], "--penalty"),
        (["--lr", "-0.1"], "--lr"),
        (["--lr", "0"], "--lr"),
        (["--weight-decay", "-0.1"], "--weight-decay"),
        (["--steps", "0"], "--steps"),
        (["--dense-steps", "0"], "--dense-steps"),
        (["--patience", "-1"], "--patience"),
        (["--batch-size", "0"], "--batch-size"),
        (["--batch-size", "every"], "--batch-size"),
        (["--devices", "0"], "--devices"),
        (["--unknown"], "--unknown"),
    ],
)
def test_bad_flags_are_one_line_and_status_2(flags, named, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sweep", *flags])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and named in captured.err


def test_version_is_the_package_version():
    import jaxreg

    done = subprocess.run(
        [sys.executable, "-m", "jaxreg", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout == f"jaxreg {jaxreg.__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+)?", jaxreg.__version__)


def _nan_csv(tmp_path):
    path = tmp_path / "nan.csv"
    path.write_text("a,b,target\n1,2,0\nnan,3,1\n4,5,0\n")
    return str(path)


@pytest.mark.parametrize(
    "make_flags, says",
    [
        (lambda tmp: ["--data", str(tmp / "missing.npz")], "--data"),
        (lambda tmp: ["--data", _nan_csv(tmp)], "--data"),
        (lambda tmp: ["--data", "no-such-dataset"], "--data"),
        (lambda tmp: ["--model", "attention", "--penalty", "contractive"], "contractive"),
        (lambda tmp: ["--model", "linear", "--penalty", "contractive"], "contractive"),
        (lambda tmp: ["--model", "linear", "--data", "diabetes", "--penalty", "clip"], "linear"),
        (lambda tmp: ["--penalty", "clip", "--lambdas", "1,0"], "--lambdas"),
        (lambda tmp: ["--patience", "5"], "--patience: only with --warm-start"),
        (lambda tmp: ["--dense-steps", "9", "--patience", "5"], "--dense-steps, --patience"),
        (lambda tmp: ["--model", "linear", "--warm-start"], "--warm-start is for --model mlp"),
        (lambda tmp: ["--groups", "features"], "--groups is for --penalty group-lasso"),
        (lambda tmp: ["--penalty", "contractive", "--batch-size", "all"], "--batch-size all"),
        (lambda tmp: ["--model", "attention", "--groups", "units"], "--groups"),
        (lambda tmp: ["--target", "species"], "--target"),
        (lambda tmp: ["--data", _nan_csv(tmp), "--target", "kind"], "--target kind: no column"),
        (lambda tmp: ["--data", _nan_csv(tmp), "--task", "regression", "--header"], "NaN"),
    ],
)
def test_bad_data_and_combinations_are_one_line_and_status_2(make_flags, says, tmp_path, capsys):
    status = cli.main(["sweep", *make_flags(tmp_path), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert status == 2
    assert len(captured.err.strip().splitlines()) == 1 and says in captured.err
    assert "Traceback" not in captured.err and "Errno" not in captured.err
    assert not re.search(r"(?<![-\w])(path|target): ", captured.err)  # flags, not Python names
    assert not (tmp_path / "out").exists()  # nothing is written for a command that cannot run


def test_a_sweep_diverged_at_every_lambda_names_lr(tmp_path):
    """L2 at λ = 1000 and 100 with SGD at lr 0.3: the weights grow by |1 - 0.3·λ| ≥ 29 a step,
    past float32 in 30 steps, so no λ has a CV estimate."""
    flags = ["--penalty", "l2", "--lambdas", "1000,100", *TINY[:2], *TINY[4:]]
    done = jaxreg_sweep(*flags, "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "--lr 0.3: " in done.stderr
    assert "Traceback" not in done.stderr and "learning_rate" not in done.stderr


def test_console_process_exits_2_on_bad_flag_and_bad_data(tmp_path):
    bad_flag = jaxreg_sweep("--folds", "0", cwd=tmp_path)
    bad_data = jaxreg_sweep("--data", "missing.npz", cwd=tmp_path)
    for done in (bad_flag, bad_data):
        assert done.returncode == 2
        assert len(done.stderr.strip().splitlines()) == 1 and "error" in done.stderr


def test_linear_on_diabetes_uses_jaxreg_linear_with_sklearns_grid(tmp_path):
    # the one CLI test with the compilation cache on: in its own cache directory
    out, flags = tmp_path / "out", [flag for flag in TINY if flag != "--no-cache"]
    done = jaxreg_sweep("--model", "linear", "--data", "diabetes", *flags, "--out", str(out),
                        cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    cache = tmp_path / "user-cache" / "jaxreg"
    assert f"compilation cache: {cache}" in done.stdout
    assert any(path.is_file() for path in cache.rglob("*"))  # compiled programs were stored
    results = results_of(out)
    assert "jaxreg.linear" in results["model"] and results["accuracy"] is None
    # sklearn's lasso_path grid on the standardized, centred data: λ_max = max |Xᵀy| / n
    from jaxreg import datasets

    data = datasets.load("diabetes")
    X = (data.X - data.X.mean(0)) / data.X.std(0)
    y = data.y - data.y.mean()
    lambda_max = np.max(np.abs(X.T @ y)) / len(y)
    np.testing.assert_allclose(results["lambdas"][0], lambda_max, rtol=1e-4)
    np.testing.assert_allclose(results["lambdas"][-1], 1e-3 * lambda_max, rtol=1e-4)
    assert results["nonzeros"][0] == 0 and results["penalized_weights"] == 10
    assert results["lambda_1se"] >= results["lambda_min"]
    assert_png(out / "cv_curve.png")


def test_mlp_regression_on_a_users_csv(tmp_path):
    from jaxreg import datasets

    data = datasets.load("diabetes")
    table = np.column_stack([data.X, data.y])
    path = tmp_path / "diabetes.csv"
    header = ",".join([*data.feature_names, "target"])
    np.savetxt(path, table, delimiter=",", header=header, comments="")
    out = tmp_path / "out"
    done = jaxreg_sweep("--data", str(path), *TINY, "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "442 examples × 10 features, regression" in done.stdout
    assert "sgd steps (lr 0.1)" in done.stdout  # regression's default: 0.3 diverges here
    results = results_of(out)
    assert results["command"]["lr"] == 0.1
    assert results["accuracy"] is None and results["penalized_weights"] == 10 * 64 + 64 * 64 + 64
    # targets are standardized: the null model at λ_ref has ½·E[y²] = 0.5 on held-out data
    np.testing.assert_allclose(results["cv_mean"][0], 0.5, atol=0.1)
    assert min(results["cv_mean"]) < 0.4  # the features explain about half the variance


@pytest.mark.slow
def test_adam_takes_its_own_learning_rate_and_keeps_the_null_model(tmp_path):
    """--optimizer adam is jaxreg.prox_adam (lr 0.01 unless given): λ_ref zeroes every weight."""
    out = tmp_path / "out"
    flags = ["--steps", "60", "--lambdas", "3", "--folds", "2", "--no-progress", "--no-cache"]
    done = jaxreg_sweep(*flags, "--optimizer", "adam", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "adam steps (lr 0.01)" in done.stdout
    results = results_of(out)
    assert results["command"]["optimizer"] == "adam" and results["command"]["lr"] == 0.01
    assert results["nonzeros"][0] == 0 < results["nonzeros"][-1]


def test_headerless_csv_with_string_labels_and_an_unregularized_lambda(tmp_path):
    # 3 well-separated classes named by strings, the target first, no header row
    rng = np.random.default_rng(0)
    names = np.array(["setosa", "versicolor", "virginica"])
    classes = rng.integers(0, 3, size=90)
    X = rng.normal(size=(90, 4)) + 3.0 * classes[:, None]
    path = tmp_path / "iris.csv"
    rows = [f"{names[c]},{','.join(map(str, x))}\n" for c, x in zip(classes, X, strict=True)]
    path.write_text("".join(rows))
    out = tmp_path / "out"
    done = jaxreg_sweep("--data", str(path), "--target", "0", "--lambdas", "0.1,0.01,0",
                        "--steps", "40", "--folds", "2", "--batch-size", "32", "--no-progress",
                        "--no-cache", "--devices", str(os.cpu_count() + 1), "--out", str(out),
                        cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "90 examples × 4 features, classification, 3 classes" in done.stdout
    assert "no header row detected" in done.stdout
    assert f"warning: --devices {os.cpu_count() + 1} on {os.cpu_count()} CPU" in done.stderr
    results = results_of(out)
    assert results["data_shape"] == [90, 4] and results["classes"] == names.tolist()
    assert results["lambdas"] == [0.1, 0.01, 0.0]
    # λ = 0 penalizes nothing: all 4·64 + 64·64 + 64·3 weights stay nonzero
    assert results["nonzeros"][-1] == results["penalized_weights"] == 4 * 64 + 64 * 64 + 64 * 3
    assert max(results["accuracy"]) > 0.9  # the classes are separable: the labels were kept
    assert not (out / "checkpoint").exists()  # removed after the successful run
    assert_png(out / "cv_curve.png")
    assert_png(out / "path.png")


@pytest.mark.slow
def test_linear_on_digits_is_the_multinomial_path_on_one_device(tmp_path):
    out = tmp_path / "out"
    done = jaxreg_sweep("--model", "linear", *TINY, "--devices", "1", "--out", str(out),
                        cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("devices: 1 × CPU")
    assert "multinomial family" in done.stdout
    results = results_of(out)
    assert results["devices"] == ["cpu:0"] or len(results["devices"]) == 1
    assert "multinomial" in results["model"] and results["loss"] == "multinomial deviance"
    # glmnet's λ_max of the standardized digits: max_jk |X_jᵀ(Y_k − ȳ_k)| / n, the null model
    from jaxreg import datasets

    data = datasets.load("digits")
    scale = data.X.std(0)
    X = (data.X - data.X.mean(0)) / np.where(scale > 0, scale, 1)
    onehot = np.eye(10)[data.y]
    lambda_max = np.max(np.abs(X.T @ (onehot - onehot.mean(0)))) / len(data.y)
    np.testing.assert_allclose(results["lambdas"][0], lambda_max, rtol=1e-4)
    np.testing.assert_allclose(results["lambdas"][-1], 1e-3 * lambda_max, rtol=1e-4)
    # nonzeros count pixels used by any class, out of 64; none at λ_max
    assert results["penalized_weights"] == 64
    assert results["nonzeros"][0] == 0 < results["nonzeros"][-1] <= 64
    assert results["accuracy"][0] < 0.2 < 0.9 < results["accuracy"][-1]
    assert results["certificate"]["converged"] == 3
    assert_png(out / "cv_curve.png")
    assert_png(out / "path.png")


@pytest.mark.slow
def test_attention_with_head_group_lasso_on_digits(tmp_path):
    out = tmp_path / "out"
    # no --penalty: attention defaults to the head-wise group lasso, with a warning about cost
    done = jaxreg_sweep("--model", "attention", "--steps", "10", "--lambdas", "2", "--folds",
                        "2", "--no-progress", "--no-cache", "--out", str(out),
                        cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "warning: --model attention" in done.stderr
    results = results_of(out)
    assert results["penalty"] == "group-lasso"
    # one head's query/key/value [32, 4, 8] and biases [4, 8], and out [4, 8, 32]: 4 heads
    assert results["penalized_weights"] == 3 * 32 * 4 * 8 + 3 * 4 * 8 + 4 * 8 * 32
    # the joint group lasso removes whole heads: nonzero counts are whole heads (1048 each)
    assert all(count % 1048 == 0 for count in results["nonzeros"])
    assert results["active_groups"] == [count // 1048 for count in results["nonzeros"]]
    table = table_rows(done.stdout)
    assert [int(row[-1]) for row in table] == results["active_groups"]  # the "active heads"
    assert "transformer" in results["model"]
    assert_png(out / "path.png")


def test_warm_start_selecting_features_is_fit_paths_warm_path(tmp_path):
    """--groups features --warm-start --dense-steps --patience --batch-size all are fit_path's
    full-batch warm path with a group lasso on the rows of the first layer's W, on the
    standardized data; the table counts the features the full-data fit keeps, and results.json
    names those of the chosen model."""
    import jax

    import jaxreg

    out = tmp_path / "out"
    flags = ["--penalty", "group-lasso", "--groups", "features", "--weight-decay", "0.003",
             "--warm-start", "--steps", "20", "--dense-steps", "60", "--patience", "4",
             "--batch-size", "all", *TINY[2:]]  # fmt: skip
    done = jaxreg_sweep(*flags, "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "each a dense fit of 60 then up to 20 full-batch sgd steps (lr 0.3) per λ" in done.stdout
    results = results_of(out)
    data = jaxreg.datasets.load("digits")
    first_w = [{"w": True, "b": False}, {"w": False, "b": False}, {"w": False, "b": False}]
    feature_rows = jaxreg.regularizers.GroupLasso(1.0, group_axis=0, mask=first_w)
    fit = jaxreg.fit_path(
        jaxreg.models.mlp([64, 64, 64, 10]), cli._standardize(data.X), data.y,
        loss="cross_entropy", penalty=feature_rows,
        lambdas=3, folds=2, key=jax.random.key(0), steps=20, batch_size=None, learning_rate=0.3,
        weight_decay=0.003, warm_start=True, dense_steps=60, patience=4,
    )  # fmt: skip
    np.testing.assert_allclose(results["lambdas"], fit.lambdas, rtol=1e-6)
    np.testing.assert_allclose(results["fold_losses"], fit.fold_losses, rtol=1e-4)
    assert results["penalized_weights"] == 64 * 64  # the first layer alone
    assert results["steps_taken"] == np.isfinite(fit.train_loss[0]).sum(axis=-1).tolist()
    # features kept: the nonzero rows of the first layer's W, at every λ and at λ_1se by name
    rows = np.any(np.asarray(fit.path_params[0]["w"]) != 0, axis=2)
    assert results["active_groups"] == rows.sum(axis=1).tolist()
    kept = np.flatnonzero(rows[results["index_1se"]])
    assert results["features_selected"] == [data.feature_names[j] for j in kept]
    # the walk goes on above λ_ref to the empty model; patience ended some λ early
    assert len(results["lambdas"]) > 3 and results["active_groups"][0] == 0
    assert min(results["steps_taken"]) < 20 == max(results["steps_taken"])
    table = table_rows(done.stdout)
    assert [int(row[-1]) for row in table] == results["active_groups"]
    assert "active features" in done.stdout
    assert f"features kept at lambda_1se: {kept.size} of 64" in done.stdout


@pytest.mark.slow
def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path):
    flags = ["--steps", "400", "--lambdas", "3", "--folds", "2", "--no-progress", "--no-cache"]
    fresh, killed = tmp_path / "fresh", tmp_path / "killed"

    # a foreign checkpoint: --resume refuses it in one line, a run without --resume starts fresh
    (fresh / "checkpoint").mkdir(parents=True)
    (fresh / "checkpoint" / "sweep_checkpoint.npz").write_bytes(b"not a checkpoint")
    refused = jaxreg_sweep(*flags, "--out", str(fresh), "--resume", cwd=tmp_path)
    assert refused.returncode == 2 and "checkpoint" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    uninterrupted = jaxreg_sweep(*flags, "--out", str(fresh), cwd=tmp_path)
    assert uninterrupted.returncode == 0, uninterrupted.stderr

    process = subprocess.Popen(
        [sys.executable, "-m", "jaxreg", "sweep", *flags, "--out", str(killed)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint = killed / "checkpoint" / "sweep_checkpoint.npz"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert checkpoint.exists() and not (killed / "results.json").exists()
    with np.load(checkpoint) as saved:
        assert 0 < int(saved["steps_done"]) < 400

    resumed = jaxreg_sweep(*flags, "--out", str(killed), "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout and not (killed / "checkpoint").exists()
    assert numbers_of(results_of(killed)) == numbers_of(results_of(fresh))

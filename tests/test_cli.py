"""The ``jaxreg sweep`` command, run as a user runs it (``python -m jaxreg`` in a subprocess),
checked against its own JSON, glmnet's summary recomputed from the fold losses, sklearn's λ grid
and an uninterrupted run for ``--resume``."""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxreg import cli, cv

TINY = ["--steps", "30", "--lambdas", "3", "--folds", "2", "--no-progress"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def jaxreg_sweep(*flags, cwd, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "jaxreg", "sweep", *flags],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )


def results_of(out):
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


def numbers_of(results):
    """The fields a rerun must reproduce exactly (not the command line, timing or devices)."""
    return {k: v for k, v in results.items() if k not in ("command", "seconds")}


def assert_png(path, min_bytes=10_000):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 400 and height >= 250 and len(data) >= min_bytes


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "out"
    done = jaxreg_sweep(*TINY, "--out", str(out), cwd=out.parent)
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
    assert_png(out / "cv_curve.png")
    assert_png(out / "path.png")


def test_tiny_sweep_prints_devices_and_the_table_of_the_json(tiny_run):
    done, out = tiny_run
    results = results_of(out)
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"devices: {os.cpu_count()} × CPU")
    header = next(i for i, line in enumerate(lines) if "lambda" in line and "± SE" in line)
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


def test_help_lists_every_flag(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "jaxreg", "sweep", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    flags = [
        "--model", "--penalty", "--lambdas", "--folds", "--steps", "--batch-size", "--lr",
        "--seed", "--data", "--out", "--resume", "--devices", "--no-progress",
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
        (["--steps", "0"], "--steps"),
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
    ],
)
def test_bad_data_and_combinations_are_one_line_and_status_2(make_flags, says, tmp_path, capsys):
    status = cli.main(["sweep", *make_flags(tmp_path), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert status == 2
    assert len(captured.err.strip().splitlines()) == 1 and says in captured.err
    assert "Traceback" not in captured.err
    assert not (tmp_path / "out").exists()  # nothing is written for a command that cannot run


def test_console_process_exits_2_on_bad_flag_and_bad_data(tmp_path):
    bad_flag = jaxreg_sweep("--folds", "0", cwd=tmp_path)
    bad_data = jaxreg_sweep("--data", "missing.npz", cwd=tmp_path)
    for done in (bad_flag, bad_data):
        assert done.returncode == 2
        assert len(done.stderr.strip().splitlines()) == 1 and "error" in done.stderr


def test_linear_on_diabetes_uses_jaxreg_linear_with_sklearns_grid(tmp_path):
    out = tmp_path / "out"
    done = jaxreg_sweep("--model", "linear", "--data", "diabetes", *TINY, "--out", str(out),
                        cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
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
    results = results_of(out)
    assert results["accuracy"] is None and results["penalized_weights"] == 10 * 64 + 64 * 64 + 64
    # targets are standardized: the null model at λ_ref has ½·E[y²] = 0.5 on held-out data
    np.testing.assert_allclose(results["cv_mean"][0], 0.5, atol=0.1)
    assert min(results["cv_mean"]) < 0.4  # the features explain about half the variance


@pytest.mark.slow
def test_linear_softmax_on_digits_on_one_device(tmp_path):
    out = tmp_path / "out"
    done = jaxreg_sweep("--model", "linear", *TINY, "--devices", "1", "--out", str(out),
                        cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("devices: 1 × CPU")
    results = results_of(out)
    assert results["devices"] == ["cpu:0"] or len(results["devices"]) == 1
    # a 64→10 softmax regression: 640 weights; λ_ref (taken at the random initial weights) leaves
    # at most a handful of them after 30 steps, the weakest λ nearly all
    assert results["penalized_weights"] == 64 * 10
    assert results["nonzeros"][0] <= 10 < 500 <= results["nonzeros"][-1]
    assert results["lambda_1se"] >= results["lambda_min"]


@pytest.mark.slow
def test_attention_with_head_group_lasso_on_digits(tmp_path):
    out = tmp_path / "out"
    done = jaxreg_sweep("--model", "attention", "--penalty", "group-lasso", "--steps", "10",
                        "--lambdas", "2", "--folds", "2", "--no-progress", "--out", str(out),
                        cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = results_of(out)
    # one head's query/key/value [32, 4, 8] and biases [4, 8], and out [4, 8, 32]: 4 heads
    assert results["penalized_weights"] == 3 * 32 * 4 * 8 + 3 * 4 * 8 + 4 * 8 * 32
    # the joint group lasso removes whole heads: nonzero counts are whole heads (1048 each)
    assert all(count % 1048 == 0 for count in results["nonzeros"])
    assert "transformer" in results["model"]
    assert_png(out / "path.png")


@pytest.mark.slow
def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path):
    flags = ["--steps", "400", "--lambdas", "3", "--folds", "2", "--no-progress"]
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
    assert "resuming" in resumed.stdout
    assert numbers_of(results_of(killed)) == numbers_of(results_of(fresh))

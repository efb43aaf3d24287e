"""Tests for jaxreg.plot: the artists drawn match the data given, PNG output, bad input."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

from jaxreg import cv, plot

K = 8
P = 5


def _cv_summary(seed: int = 0) -> cv.CVSummary:
    rng = np.random.default_rng(seed)
    lambdas = np.logspace(1, -2, K)
    losses = (np.log10(lambdas) + 0.5) ** 2 + 0.3 * rng.random((4, K))
    return cv.summarize(losses, lambdas)


def _linear_path() -> SimpleNamespace:
    lambdas = np.logspace(1, -2, K)
    thresholds = np.array([5.0, 1.0, 0.3, 0.05, 0.02])
    coef = np.maximum(0.0, 1.0 - lambdas[:, None] / thresholds) * np.arange(1, P + 1)
    return SimpleNamespace(lambdas=lambdas, coef=coef)


def _vline_positions(ax) -> dict[str, float]:
    return {line.get_gid(): line.get_xdata()[0] for line in ax.lines if line.get_gid()}


def _top_labels(figure: Figure) -> list[str]:
    figure.draw_without_rendering()
    (top,) = figure.axes[0].child_axes
    return [label.get_text() for label in top.get_xticklabels()]


def test_cv_curve_draws_glmnet_artists():
    summary = _cv_summary()
    nonzeros = np.arange(K)[::-1] * 3
    result = SimpleNamespace(summary=summary, nonzeros=nonzeros, loss_name="cross-entropy")
    figure = plot.cv_curve(result, title="digits")
    assert isinstance(figure, Figure)
    ax = figure.axes[0]
    (bars,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    data_line, _, (segments,) = bars.lines
    np.testing.assert_allclose(data_line.get_xdata(), np.log(summary.lambdas))
    np.testing.assert_allclose(data_line.get_ydata(), summary.cvm)
    ends = np.array(segments.get_segments())  # [K, 2 points, (x, y)]
    np.testing.assert_allclose(ends[:, 0, 1], summary.cvlo)
    np.testing.assert_allclose(ends[:, 1, 1], summary.cvup)
    assert data_line.get_color() == "red"
    marks = _vline_positions(ax)
    assert marks["lambda_min"] == pytest.approx(np.log(summary.lambda_min))
    assert marks["lambda_1se"] == pytest.approx(np.log(summary.lambda_1se))
    assert all(line.get_linestyle() == ":" for line in ax.lines if line.get_gid())
    assert _top_labels(figure) == [str(n) for n in nonzeros[::-1]]  # left to right: λ ascending
    assert ax.get_ylabel() == "cross-entropy" and ax.get_title() == "digits"
    assert ax.get_xlabel() == "log(λ)"


def test_cv_curve_bare_summary_has_no_count_axis_and_ylabel_argument():
    figure = plot.cv_curve(_cv_summary(), ylabel="MSE")
    ax = figure.axes[0]
    assert ax.child_axes == [] and ax.get_ylabel() == "MSE"
    assert len(_vline_positions(ax)) == 2


def test_cv_curve_counts_from_linear_path_and_reverse():
    linear = _linear_path()
    result = SimpleNamespace(summary=_cv_summary(), path=linear)
    figure = plot.cv_curve(result, reverse=True)
    left, right = figure.axes[0].get_xlim()
    assert left > right  # λ decreases left to right
    counts = np.count_nonzero(linear.coef, axis=1)
    # Tick labels are listed in ascending data order whatever the axis direction.
    assert _top_labels(figure) == [str(n) for n in counts[::-1]]


def test_cv_curve_skips_diverged_lambda(tmp_path):
    lambdas = np.logspace(0, -2, K)
    losses = np.tile((np.log10(lambdas) + 1.0) ** 2, (3, 1)) + np.arange(3)[:, None] * 0.1
    losses[1, 0] = np.nan  # one fold diverged at the largest λ
    summary = cv.summarize(losses, lambdas)
    figure = plot.cv_curve(summary)
    (bars,) = figure.axes[0].containers
    assert np.isnan(bars.lines[0].get_ydata()[0])
    figure.savefig(tmp_path / "diverged.png")
    assert (tmp_path / "diverged.png").stat().st_size > 0


def test_path_one_line_per_coefficient_with_counts_and_marks():
    linear = _linear_path()
    figure = plot.path(linear)
    ax = figure.axes[0]
    assert len(ax.lines) == P
    for column, line in enumerate(ax.lines):
        np.testing.assert_allclose(line.get_xdata(), np.log(linear.lambdas))
        np.testing.assert_allclose(line.get_ydata(), linear.coef[:, column])
    counts = np.count_nonzero(linear.coef, axis=1)
    assert _top_labels(figure) == [str(n) for n in counts[::-1]]
    assert ax.get_legend() is None and ax.get_ylabel() == "coefficient"

    summary = _cv_summary()
    cv_result = SimpleNamespace(summary=summary, path=linear)
    ax = plot.path(cv_result).axes[0]
    assert len(ax.lines) == P + 2
    marks = _vline_positions(ax)
    assert marks == pytest.approx(
        {"lambda_min": np.log(summary.lambda_min), "lambda_1se": np.log(summary.lambda_1se)}
    )


def test_path_norms_with_labels(tmp_path):
    lambdas = np.logspace(0, -3, K)
    norms = np.stack([1.0 / (1.0 + lambdas), 2.0 / (1.0 + lambdas), 0.5 / (1.0 + lambdas)], 1)
    nonzeros = np.arange(K) + 10
    result = SimpleNamespace(
        lambdas=lambdas,
        norms=norms,
        norm_labels=["layer 0", "layer 1", "layer 2"],
        nonzeros=nonzeros,
        summary=_cv_summary(),
    )
    figure = plot.path(result)
    ax = figure.axes[0]
    norm_lines = [line for line in ax.lines if not line.get_gid()]
    assert len(norm_lines) == 3
    np.testing.assert_allclose(norm_lines[1].get_ydata(), norms[:, 1])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["layer 0", "layer 1", "layer 2"]
    assert _top_labels(figure) == [str(n) for n in nonzeros[::-1]]
    assert ax.get_ylabel() == "norm"
    figure.savefig(tmp_path / "norms.png")
    assert (tmp_path / "norms.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_draws_into_given_axes_and_saves_png(tmp_path):
    import matplotlib.image

    figure = Figure()
    left, right = figure.subplots(1, 2)
    assert plot.cv_curve(_cv_summary(), ax=left) is figure
    assert plot.path(_linear_path(), ax=right) is figure
    assert len(right.lines) == P and len(left.containers) == 1
    figure.savefig(tmp_path / "both.png", dpi=50)
    image = matplotlib.image.imread(tmp_path / "both.png")
    assert image.shape[:2] == (int(figure.get_figheight() * 50), int(figure.get_figwidth() * 50))


def test_many_lambdas_label_a_subset_of_counts():
    lambdas = np.logspace(1, -3, 100)
    summary = cv.summarize(np.tile((np.log10(lambdas) + 1) ** 2, (3, 1)) + np.eye(3, 100), lambdas)
    nonzeros = np.arange(100)  # the largest λ has the fewest nonzeros
    labels = _top_labels(plot.cv_curve(SimpleNamespace(summary=summary, nonzeros=nonzeros)))
    assert 2 <= len(labels) <= 12
    assert labels[0] == "99" and labels[-1] == "0"  # both ends of the path are labelled


def test_bad_input():
    summary = _cv_summary()
    with pytest.raises(ValueError, match=r"summary.cvm must have shape \[8\]"):
        plot.cv_curve(summary._replace(cvm=summary.cvm[:-1]))
    with pytest.raises(ValueError, match=r"nonzeros must have shape \[8\]"):
        plot.cv_curve(SimpleNamespace(summary=summary, nonzeros=np.zeros(3)))
    with pytest.raises(ValueError, match=r"must be finite and > 0"):
        plot.cv_curve(summary._replace(lambdas=-summary.lambdas))
    with pytest.raises(TypeError, match="CVSummary"):
        plot.cv_curve(SimpleNamespace(lambdas=summary.lambdas))
    linear = _linear_path()
    with pytest.raises(ValueError, match=r"coef must have shape \[8, p\]"):
        plot.path(SimpleNamespace(lambdas=linear.lambdas, coef=linear.coef.T))
    with pytest.raises(ValueError, match=r"norms must have shape \[8, p\]"):
        plot.path(SimpleNamespace(lambdas=linear.lambdas, norms=np.ones(K)))
    with pytest.raises(ValueError, match=r"labels must have one entry per line \(5\)"):
        plot.path(linear, labels=["a", "b"])
    with pytest.raises(TypeError, match=r"\.coef \[K, p\] or \.norms"):
        plot.path(SimpleNamespace(lambdas=linear.lambdas))
    with pytest.raises(TypeError, match=r"\.lambdas"):
        plot.path(SimpleNamespace(coef=linear.coef))


def test_missing_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install jaxreg\[plot\]"):
        plot.cv_curve(_cv_summary())

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
    assert ax.get_xlabel() == "ln λ (natural log)"


def test_cv_curve_bare_summary_has_no_count_axis_and_ylabel_argument():
    figure = plot.cv_curve(_cv_summary(), ylabel="MSE")
    ax = figure.axes[0]
    assert ax.child_axes == [] and ax.get_ylabel() == "MSE"
    assert len(_vline_positions(ax)) == 2


def test_cv_curve_counts_from_the_results_nonzeros_and_reverse():
    linear = _linear_path()
    counts = np.count_nonzero(linear.coef, axis=1)
    # the protocol of fit_path and cv_path results: summary and nonzeros
    result = SimpleNamespace(summary=_cv_summary(), nonzeros=counts)
    figure = plot.cv_curve(result, reverse=True)
    left, right = figure.axes[0].get_xlim()
    assert left > right  # λ decreases left to right
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
    assert ax.get_ylabel() == r"Frobenius norm $\|W\|_F$"
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
    with pytest.raises(ValueError, match=r"must be finite and >= 0"):
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


def _labels_by_gid(ax):
    return {text.get_gid(): text for text in ax.texts if text.get_gid()}


def test_unregularized_lambda_is_drawn_one_grid_step_left_of_the_smallest():
    lambdas = np.array([1.0, 0.1, 0.01, 0.0])
    losses = np.array([[3.0, 2.0, 1.5, 1.0], [3.2, 2.1, 1.4, 1.1]])
    summary = cv.summarize(losses, lambdas)
    assert summary.lambda_min == 0.0  # the unregularized fit wins here
    ax = plot.cv_curve(summary).axes[0]
    (bars,) = ax.containers
    expected = [0.0, np.log(0.1), np.log(0.01), np.log(0.01) - np.log(10)]  # ln steps of ln 10
    np.testing.assert_allclose(bars.lines[0].get_xdata(), expected)
    assert _vline_positions(ax)["lambda_min"] == pytest.approx(expected[-1])
    (band,) = [patch for patch in ax.patches if patch.get_gid() == "lambda_zero"]
    # the band's corners (a Rectangle from matplotlib 3.9 on, a Polygon before)
    corners = band.get_path().transformed(band.get_patch_transform()).vertices[:, 0]
    left, right = corners.min(), corners.max()
    assert left < expected[-1] < right < expected[2]
    assert any("λ = 0" in text.get_text() for text in ax.texts)
    path_ax = plot.path(SimpleNamespace(lambdas=lambdas, coef=np.ones((4, 2)))).axes[0]
    np.testing.assert_allclose(path_ax.lines[0].get_xdata(), expected)


@pytest.mark.parametrize("reverse", [False, True])
def test_selection_labels_never_overlap_and_merge_when_equal(reverse):
    lambdas = np.logspace(0, -3, 30)
    losses = np.tile((np.log10(lambdas) + 1.5) ** 2, (4, 1))
    losses += 0.05 * np.random.default_rng(0).standard_normal(losses.shape)
    summary = cv.summarize(losses, lambdas)
    # adjacent grid points: the closest two distinct selections can be
    summary = summary._replace(lambda_min=lambdas[15], lambda_1se=lambdas[14])
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = plot.cv_curve(summary, reverse=reverse)
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    labels = _labels_by_gid(figure.axes[0])
    box_min = labels["lambda_min_label"].get_window_extent(renderer)
    box_1se = labels["lambda_1se_label"].get_window_extent(renderer)
    assert not box_min.overlaps(box_1se)
    # λ_1se > λ_min: its label is on the larger-λ side (the right unless reversed)
    assert (box_1se.x0 > box_min.x1) != reverse
    assert labels["lambda_min_label"].get_fontsize() >= 10

    equal = plot.cv_curve(summary._replace(lambda_min=lambdas[14])).axes[0]
    texts = _labels_by_gid(equal)
    assert list(texts) == ["lambda_min_label"]
    assert "min" in texts["lambda_min_label"].get_text()
    assert "1se" in texts["lambda_min_label"].get_text()
    assert set(_vline_positions(equal)) == {"lambda_min", "lambda_1se"}


@pytest.mark.parametrize("lines", [15, 40])
def test_many_lines_get_distinct_colours(lines, tmp_path):
    from matplotlib.colors import to_hex

    lambdas = np.logspace(0, -2, K)
    coef = np.outer(1 - lambdas / 2, np.arange(1, lines + 1))
    labels = [f"feature {j}" for j in range(lines)]
    figure = plot.path(SimpleNamespace(lambdas=lambdas, coef=coef), labels=labels)
    ax = figure.axes[0]
    colours = {to_hex(line.get_color()) for line in ax.lines if not line.get_gid()}
    assert len(colours) == lines
    if lines > 20:  # a colour bar names the lines instead of a 40-entry legend
        assert ax.get_legend() is None and len(figure.axes) == 2
        ticks = [t.get_text() for t in figure.axes[1].get_yticklabels()]
        assert ticks[0] == "feature 0" and ticks[-1] == "feature 39"
    else:
        assert len(ax.get_legend().get_texts()) == lines
    figure.savefig(tmp_path / f"lines{lines}.png")


def test_unregularized_slot_is_ticked_and_no_tick_of_ln_lambda_falls_inside_it():
    lambdas = np.array([0.1, 0.01, 0.0])
    ax = plot.cv_curve(cv.summarize(np.array([[2.3, 0.5, 0.3], [2.2, 0.6, 0.2]]), lambdas)).axes[0]
    x0 = np.log(0.01) - np.log(10)  # one grid step (ln 10) left of the smallest positive λ
    ticks, labels = ax.get_xticks(), [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "λ=0" and ticks[0] == pytest.approx(x0)
    # every other tick keeps its ln λ value as label and lies beyond the λ = 0 slot
    for tick, label in zip(ticks[1:], labels[1:], strict=True):
        assert float(label.replace("\N{MINUS SIGN}", "-")) == pytest.approx(tick)
        assert tick > x0 + np.log(10) / 2  # right of the slot: smaller λ do not exist

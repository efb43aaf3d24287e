"""glmnet-style plots of cross-validation curves and regularization paths.

Matplotlib is an optional extra (``pip install jaxreg[plot]``), imported only when a function
here is called. The functions build plain :class:`matplotlib.figure.Figure` objects (no pyplot
state, nothing is shown), so they work headless, in notebooks and in the CLI alike; save one
with ``figure.savefig("cv.png")``.

The x-axis is the natural logarithm ln(λ), increasing left to right as in ``plot.cv.glmnet``;
``reverse=True`` flips it so that λ decreases left to right (the order a path is computed in,
from the empty model to the least regularized one). A λ of exactly 0 (the unregularized fit)
has no logarithm: it is drawn one grid step beyond the smallest positive λ, at the
least-regularized edge, and labelled "λ = 0".

Up to 10 lines take matplotlib's default colours, up to 20 the ``tab20`` palette; more lines are
coloured along the ``viridis`` colour map with a colour bar naming them, instead of a legend.

References:
  Friedman, Hastie & Tibshirani (2010), *Regularization Paths for Generalized Linear Models via
  Coordinate Descent*, J. Stat. Softw. 33(1) (``plot.cv.glmnet`` and ``plot.glmnet``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["cv_curve", "path"]

_SUMMARY_FIELDS = ("lambdas", "cvm", "cvup", "cvlo", "lambda_min", "lambda_1se")
# glmnet labels at most about a dozen λ on the top axis; more would overlap.
_MAX_TOP_TICKS = 12
XLABEL = "ln λ (natural log)"
NORM_YLABEL = r"Frobenius norm $\|W\|_F$"
CLASS_NORM_YLABEL = r"coefficient norm over classes $\|w_j\|_2$"
# Line colours: the default cycle (tab10) up to 10 lines, tab20 up to 20, a colour map beyond.
_MAX_CYCLE_LINES = 10
_MAX_PALETTE_LINES = 20


def cv_curve(
    result: Any,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    ylabel: str | None = None,
    reverse: bool = False,
) -> Figure:
    """Plot a cross-validation curve the way ``plot(cv.glmnet(...))`` does.

    Red dots at the mean CV loss ``cvm`` for each λ, grey error bars from ``cvlo`` to ``cvup``
    (``cvm ± cvsd``), dotted vertical lines at ln λ_min and ln λ_1se (one label
    "λ_min = λ_1se" when they coincide), and, when the result
    knows them, the number of nonzero coefficients at each λ on a top axis. A λ with a
    diverged fold (``cvm`` NaN) is left out of the curve.

    Args:
      result: a ``jaxreg.cv.CVSummary`` (fields ``lambdas, cvm, cvsd, cvup, cvlo, lambda_min,
        lambda_1se, ...``), or an object with such a ``.summary`` and optionally ``.nonzeros``
        ``[K]``, ``.loss_name`` (the y label) or ``.path`` (a linear path whose ``.coef``
        ``[K, p]`` gives the nonzero counts) — the results of ``jaxreg.fit_path`` and
        ``jaxreg.linear.cv_path``.
      ax: axes to draw into; by default a new figure is made.
      title: optional title.
      ylabel: the y label; default ``result.loss_name`` or ``"CV loss"``.
      reverse: if True, λ decreases from left to right.

    Returns:
      The :class:`matplotlib.figure.Figure` holding the plot.

    Raises:
      ImportError: if matplotlib is not installed.
      TypeError: if ``result`` carries no CV summary.
      ValueError: if the summary's arrays do not all have the shape ``[K]`` of ``lambdas`` or a
        λ is negative or not finite.

    Example:
      >>> import numpy as np
      >>> from jaxreg import cv, plot
      >>> lambdas = np.logspace(0, -3, 20)
      >>> losses = (np.log10(lambdas) + 1.5) ** 2 + np.random.default_rng(0).random((5, 20))
      >>> figure = plot.cv_curve(cv.summarize(losses, lambdas))
      >>> figure.axes[0].get_xlabel()
      'ln λ (natural log)'
    """
    summary = _summary_of(result)
    if summary is None:
        raise TypeError(
            "result must be a CVSummary or have a .summary (fields "
            f"{', '.join(_SUMMARY_FIELDS)}), got {type(result).__name__}"
        )
    lambdas = _vector(summary.lambdas, "summary.lambdas")
    size = lambdas.shape[0]
    cvm = _vector(summary.cvm, "summary.cvm", size)
    cvup = _vector(summary.cvup, "summary.cvup", size)
    cvlo = _vector(summary.cvlo, "summary.cvlo", size)
    log_lambdas = _positions(lambdas, "summary.lambdas")
    figure, ax = _figure_and_axes(ax)

    # Errors are drawn relative to cvm; NaN (diverged) points simply are not drawn.
    below = np.where(np.isfinite(cvm), cvm - cvlo, 0.0)
    above = np.where(np.isfinite(cvm), cvup - cvm, 0.0)
    ax.errorbar(
        log_lambdas,
        cvm,
        yerr=np.vstack([below, above]),
        fmt="o",
        color="red",
        markersize=4,
        ecolor="darkgrey",
        elinewidth=1.2,
        capsize=2.5,
        zorder=3,
    )
    _mark_selection(ax, summary, lambdas, log_lambdas, reverse)
    counts = _nonzero_counts(result, size)
    if counts is not None:
        _top_count_axis(ax, log_lambdas, counts)
    loss_name = getattr(result, "loss_name", None)
    ax.set_ylabel(ylabel or loss_name or "CV loss")
    _finish(ax, title, reverse, lambdas, log_lambdas)
    return figure


def path(
    result: Any,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    ylabel: str | None = None,
    labels: Sequence[str] | None = None,
    reverse: bool = False,
) -> Figure:
    """Plot a regularization path against ln(λ), like ``plot(glmnet(...), xvar="lambda")``.

    One line per coefficient for a linear path (``.coef`` ``[K, p]``), one line per feature for a
    multinomial path (``.coef`` ``[K, C, p]``: the feature's Euclidean norm over the C classes'
    coefficients, zero exactly when no class uses it — glmnet draws one panel per class
    instead), or one line per weight norm for a neural network's path (``.norms`` ``[K, m]``:
    ``jaxreg.fit_path`` records the Frobenius norm of each penalized leaf, labelled by
    ``.norm_labels``). Pass feature names as ``labels`` (e.g. ``labels=data.feature_names`` of
    :func:`jaxreg.datasets.load`). The number of nonzero coefficients (features) per λ goes on a
    top axis (taken from ``.nonzeros``, or counted from ``.coef``). When the result carries a CV
    summary, dotted lines mark λ_min and λ_1se.

    Args:
      result: an object with ``.lambdas`` ``[K]`` and ``.coef`` ``[K, p]`` or ``[K, C, p]``
        (``jaxreg.linear.path``) or ``.norms`` ``[K, m]`` (``jaxreg.fit_path``), optionally
        ``.summary`` and ``.nonzeros``; or a CV result whose ``.path`` holds such a path
        (``linear.cv_path``).
      ax: axes to draw into; by default a new figure is made.
      title: optional title.
      ylabel: the y label; default ``"coefficient"``, "coefficient norm over classes ‖w_j‖₂"
        for multinomial paths, or "Frobenius norm ‖W‖_F" for norms.
      labels: a label per line (e.g. feature names), shown in a legend (or, past 20 lines, on
        the colour bar); default ``.norm_labels`` for norm paths, none for coefficients.
      reverse: if True, λ decreases from left to right.

    Returns:
      The :class:`matplotlib.figure.Figure` holding the plot.

    Raises:
      ImportError: if matplotlib is not installed.
      TypeError: if ``result`` has neither ``.coef`` nor ``.norms``.
      ValueError: for shapes that do not match ``lambdas`` ``[K]``, a wrong number of
        ``labels`` or a λ that is negative or not finite.

    Example:
      >>> import numpy as np
      >>> from types import SimpleNamespace
      >>> from jaxreg import plot
      >>> lambdas = np.logspace(0, -2, 30)
      >>> coef = np.maximum(0.0, 1.0 - lambdas[:, None] / [1.0, 0.3, 0.1]) * [1.0, -2.0, 0.5]
      >>> figure = plot.path(SimpleNamespace(lambdas=lambdas, coef=coef))
      >>> len(figure.axes[0].lines)
      3
    """
    source = result
    inner = getattr(result, "path", None)
    if inner is not None and (hasattr(inner, "coef") or hasattr(inner, "norms")):
        source = inner
    lambdas = getattr(source, "lambdas", None)
    if lambdas is None:
        lambdas = getattr(result, "lambdas", None)
    if lambdas is None:
        raise TypeError(f"result must have .lambdas [K], got {type(result).__name__}")
    lambdas = _vector(lambdas, "lambdas")
    size = lambdas.shape[0]
    coef = getattr(source, "coef", None)
    if coef is not None:
        coef = np.asarray(coef)
        default_ylabel = "coefficient"
        if coef.ndim == 3:  # multinomial [K, C, p]: one line per feature
            coef = np.linalg.norm(coef, axis=1)
            default_ylabel = CLASS_NORM_YLABEL
        values = _matrix(coef, "coef", size)
        counts = _nonzero_counts(result, size)
        if counts is None:
            counts = np.count_nonzero(values, axis=1)
    elif getattr(source, "norms", None) is not None:
        values = _matrix(source.norms, "norms", size)
        default_ylabel = NORM_YLABEL
        labels = labels if labels is not None else getattr(source, "norm_labels", None)
        counts = _nonzero_counts(result, size)
    else:
        raise TypeError(
            "result must have .coef [K, p] or .norms [K, m] (or a .path holding them), "
            f"got {type(result).__name__}"
        )
    if labels is not None and len(labels) != values.shape[1]:
        raise ValueError(
            f"labels must have one entry per line ({values.shape[1]}), got {len(labels)}"
        )
    log_lambdas = _positions(lambdas, "lambdas")
    figure, ax = _figure_and_axes(ax)
    _draw_lines(ax, log_lambdas, values, labels)
    summary = _summary_of(result)
    if summary is not None:
        _mark_selection(ax, summary, lambdas, log_lambdas, reverse)
    if counts is not None:
        _top_count_axis(ax, log_lambdas, counts)
    ax.set_ylabel(ylabel or default_ylabel)
    _finish(ax, title, reverse, lambdas, log_lambdas)
    return figure


def _draw_lines(ax: Axes, x: np.ndarray, values: np.ndarray, labels: Sequence[str] | None) -> None:
    """One line per column; colours and legend (or colour bar) that stay readable past 10."""
    import matplotlib

    count = values.shape[1]
    lines = ax.plot(x, values, linewidth=1.2)
    if count > _MAX_PALETTE_LINES:
        colormap = matplotlib.colormaps["viridis"]
        for index, line in enumerate(lines):
            line.set_color(colormap(index / (count - 1)))
        _line_colorbar(ax, colormap, count, labels)
        return
    if count > _MAX_CYCLE_LINES:
        palette = matplotlib.colormaps["tab20"]
        for index, line in enumerate(lines):
            line.set_color(palette(index))
    if labels is not None:
        for line, label in zip(lines, labels, strict=True):
            line.set_label(str(label))
        # Outside the axes: a path fills the whole plot, so any inside spot hides some lines.
        ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))


def _line_colorbar(ax: Axes, colormap: Any, count: int, labels: Sequence[str] | None) -> None:
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    mappable = ScalarMappable(Normalize(0, count - 1), colormap)
    bar = ax.figure.colorbar(mappable, ax=ax, pad=0.02)
    every = -(-count // _MAX_PALETTE_LINES)  # at most about 20 evenly spaced ticks, both ends
    ticks = np.unique(np.append(np.arange(0, count, every), count - 1))
    bar.set_ticks(ticks)
    if labels is None:
        bar.set_label("line (column index)")
        bar.set_ticklabels([str(int(t)) for t in ticks])
    else:
        bar.set_ticklabels([str(labels[int(t)]) for t in ticks])
    bar.ax.tick_params(labelsize="small")


def _figure_and_axes(ax: Axes | None) -> tuple[Figure, Axes]:
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            "jaxreg.plot needs matplotlib: pip install jaxreg[plot] (or pip install matplotlib)"
        ) from err
    if ax is None:
        figure = Figure(figsize=(6.4, 4.4), layout="constrained")
        return figure, figure.add_subplot()
    figure = ax.figure
    while not isinstance(figure, Figure):  # axes inside a SubFigure: return the root figure
        figure = figure.figure
    return figure, ax


def _summary_of(result: Any) -> Any:
    if all(hasattr(result, field) for field in _SUMMARY_FIELDS):
        return result
    summary = getattr(result, "summary", None)
    if summary is not None and all(hasattr(summary, field) for field in _SUMMARY_FIELDS):
        return summary
    return None


def _vector(value: Any, name: str, size: int | None = None) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 1 or (size is not None and array.shape[0] != size):
        expected = "[K]" if size is None else f"[{size}] (one per λ)"
        raise ValueError(f"{name} must have shape {expected}, got {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    return array


def _matrix(value: Any, name: str, size: int) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != size:
        raise ValueError(f"{name} must have shape [{size}, p] (one row per λ), got {array.shape}")
    return array


def _positions(lambdas: np.ndarray, name: str) -> np.ndarray:
    """ln λ, with λ = 0 one grid step below the smallest positive λ's logarithm."""
    if not np.all(np.isfinite(lambdas)) or np.any(lambdas < 0):
        raise ValueError(f"{name} must be finite and >= 0 to plot ln(λ), got {lambdas}")
    positive = lambdas > 0
    if not positive.any():
        raise ValueError(f"{name} needs a positive λ to place ln(λ), got {lambdas}")
    logs = np.log(np.where(positive, lambdas, 1.0))
    steps = np.diff(np.unique(logs[positive]))
    step = float(np.median(steps)) if steps.size else 1.0
    return np.where(positive, logs, logs[positive].min() - step)


def _nonzero_counts(result: Any, size: int) -> np.ndarray | None:
    """``result.nonzeros`` (fit_path and cv_path results both carry it), or None."""
    counts = getattr(result, "nonzeros", None)
    if counts is None:
        return None
    return _vector(counts, "nonzeros", size).astype(np.int64)


def _mark_selection(
    ax: Axes, summary: Any, lambdas: np.ndarray, positions: np.ndarray, reverse: bool
) -> None:
    """Dotted lines at λ_min and λ_1se, labelled on either side (one label when they coincide).

    λ_min's label sits on the side of the smaller λ, λ_1se's (λ_1se >= λ_min) on the side of the
    larger, so the two never overlap however close the lines are.
    """
    minimum, one_se = float(summary.lambda_min), float(summary.lambda_1se)
    low_side, high_side = ("left", "right") if reverse else ("right", "left")  # text alignment
    if minimum == one_se:
        marks = [(minimum, "lambda_min", r"$\lambda_{\min} = \lambda_{\mathrm{1se}}$", high_side)]
        marks.append((one_se, "lambda_1se", None, None))
    else:
        marks = [
            (minimum, "lambda_min", r"$\lambda_{\min}$", low_side),
            (one_se, "lambda_1se", r"$\lambda_{\mathrm{1se}}$", high_side),
        ]
    for value, name, label, align in marks:
        x = _position_of(value, lambdas, positions)
        if x is None:
            continue  # e.g. every λ diverged (NaN): nothing was selected
        ax.axvline(x, linestyle=":", color="black", linewidth=1.2, gid=name)
        if label is None:
            continue
        # Axes-fraction y keeps the label inside the top edge whatever the data range.
        ax.text(
            x,
            0.97,
            f" {label} ",
            transform=ax.get_xaxis_transform(),
            rotation=90,
            ha=align,
            va="top",
            fontsize="medium",
            gid=f"{name}_label",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.5},
        )


def _position_of(value: float, lambdas: np.ndarray, positions: np.ndarray) -> float | None:
    """Where λ = value is drawn: at its grid point (λ = 0 too), else at ln(value)."""
    if not np.isfinite(value) or value < 0:
        return None
    close = np.flatnonzero(np.isclose(lambdas, value, rtol=1e-6, atol=0))
    if close.size:
        return float(positions[close[0]])
    return float(np.log(value)) if value > 0 else None


def _top_count_axis(ax: Axes, log_lambdas: np.ndarray, counts: np.ndarray) -> None:
    top = ax.secondary_xaxis("top")
    order = np.argsort(log_lambdas)
    positions = np.linspace(0, len(order) - 1, min(len(order), _MAX_TOP_TICKS))
    shown = order[np.unique(positions.round().astype(int))]
    top.set_xticks(log_lambdas[shown], labels=[str(int(counts[i])) for i in shown])
    top.tick_params(labelsize="small")
    top.set_xlabel("nonzeros", fontsize="small")


def _finish(
    ax: Axes, title: str | None, reverse: bool, lambdas: np.ndarray, positions: np.ndarray
) -> None:
    ax.set_xlabel(XLABEL)
    if title is not None:
        ax.set_title(title)
    if reverse:
        ax.invert_xaxis()
    ax.grid(alpha=0.25)
    if np.any(lambdas == 0):
        x = float(positions[lambdas == 0][0])
        _mark_unregularized(ax, x, float(positions[lambdas > 0].min()) - x)


def _mark_unregularized(ax: Axes, x: float, step: float) -> None:
    """λ = 0 has no logarithm: its slot at the edge is shaded, ticked "0" and labelled."""
    ax.axvspan(x - step / 2, x + step / 2, color="0.9", zorder=0, gid="lambda_zero")
    ax.autoscale_view()
    high = max(ax.get_xlim())
    # ln λ ticks only right of the slot: left of it lies nothing but λ = 0
    ticks = [t for t in ax.get_xticks() if x + step / 2 < t <= high]
    labels = [f"{t:g}".replace("-", "\N{MINUS SIGN}") for t in ticks]
    ax.set_xticks([x, *ticks], labels=["λ=0", *labels])
    # Left of centre: the points (and a selection line) at λ = 0 stay clear of the label.
    ax.text(
        x - 0.3 * step,
        0.03,
        "λ = 0 (unregularized)",
        transform=ax.get_xaxis_transform(),
        rotation=90,
        ha="center",
        va="bottom",
        fontsize="small",
        color="dimgrey",
    )

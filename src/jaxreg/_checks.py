"""Validation of concrete arguments shared across jaxreg: counts, choices and data.

Each check raises a ``TypeError`` (wrong kind) or ``ValueError`` (wrong value) whose message
names the argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def check_int(value: Any, name: str, *, minimum: int) -> int:
    """``value`` as a Python int ≥ ``minimum``; bools and floats are refused."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_data(X: Any, y: Any, *, matrix: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``X`` and ``y`` as numpy arrays with one row of ``y`` per example of ``X``, real numeric
    and finite. ``matrix=True`` asks for a design matrix ``X[n, p]`` (n ≥ 2) and 1-D ``y``."""
    X = np.asarray(X)
    y = np.asarray(y)
    if matrix and (X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1):
        raise ValueError(f"X must be 2-D [n, p] with n >= 2 and p >= 1, got shape {X.shape}")
    if X.ndim < 2:
        raise ValueError(f"X must have a batch axis and features (ndim >= 2), got shape {X.shape}")
    if y.ndim < 1 or y.shape[0] != X.shape[0] or (matrix and y.ndim != 1):
        expected = "1-D" if matrix else "at least 1-D"
        raise ValueError(f"y must be {expected} with one entry per row of X ({X.shape[0]}), got "
                         f"shape {y.shape}")  # fmt: skip
    for name, array in (("X", X), ("y", y)):
        if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
            raise TypeError(f"{name} must be real numeric, got dtype {array.dtype}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} contains NaN or infinite values")
    return X, y

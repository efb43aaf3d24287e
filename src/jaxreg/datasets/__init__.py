"""Small real datasets shipped with jaxreg, and loading of a user's ``.npz`` / ``.csv`` files.

Embedded sets (compressed ``.npz`` inside the package; sources and licences in
``jaxreg/datasets/data/README.md``):

- ``"digits"``: 8x8 handwritten digits, 1797 x 64, 10 classes (UCI, CC BY 4.0).
- ``"diabetes"``: 442 x 10 raw baseline measurements, a regression target (Efron et al., 2004).

Everything is plain numpy (``X`` float32, ``y`` int32 for classification or float32 for
regression), so loading a dataset does not start a JAX backend. Nothing here loads pickles.
"""

from __future__ import annotations

import csv
import importlib.resources
import os
import zipfile
from typing import NamedTuple

import numpy as np

__all__ = ["Dataset", "available", "load", "load_file"]

_EMBEDDED = ("diabetes", "digits")
_TASKS = ("classification", "regression")
# An integer-valued target with at most this many distinct values is taken for class labels when
# the task is not given (diabetes' integer-valued target has 214 distinct values: regression).
_MAX_INFERRED_CLASSES = 20


class Dataset(NamedTuple):
    """A dataset as numpy arrays.

    Attributes:
      X: features, float32 ``[n, p]``.
      y: targets ``[n]``: int32 class ids ``0..C-1`` for classification, float32 for regression.
      task: ``"classification"`` or ``"regression"``.
      feature_names: one name per column of ``X``, or None.
      target_names: for classification, the name of each class id (class ``c`` is
        ``target_names[c]``), or None.
      description: source, citation and licence (embedded sets) or the file it came from.
    """

    X: np.ndarray
    y: np.ndarray
    task: str
    feature_names: tuple[str, ...] | None
    target_names: tuple[str, ...] | None
    description: str


class _MissingFileError(FileNotFoundError, ValueError):
    """A missing data file; a ``ValueError`` too, so one ``except ValueError`` catches bad data."""


def available() -> tuple[str, ...]:
    """Names accepted by :func:`load`.

    Example:
      >>> import jaxreg
      >>> jaxreg.datasets.available()
      ('diabetes', 'digits')
    """
    return _EMBEDDED


def load(name: str, *, standardize: bool = False) -> Dataset:
    """Load a dataset shipped with jaxreg.

    Args:
      name: one of :func:`available` (``"digits"``, ``"diabetes"``).
      standardize: if True, centre each feature to mean 0 and scale it to unit (population)
        standard deviation; constant features are only centred. scikit-learn's default diabetes
        copy is instead centred and scaled to unit *sum of squares*, i.e. our standardized
        columns divided by ``sqrt(n)``.

    Returns:
      A :class:`Dataset`.

    Raises:
      ValueError: for an unknown ``name`` (the message lists the available names).

    Example:
      >>> import jaxreg
      >>> digits = jaxreg.datasets.load("digits")
      >>> digits.X.shape, digits.X.dtype, digits.task, len(digits.target_names)
      ((1797, 64), dtype('float32'), 'classification', 10)
      >>> diabetes = jaxreg.datasets.load("diabetes")
      >>> diabetes.X.shape, diabetes.task, diabetes.feature_names[:3]
      ((442, 10), 'regression', ('age', 'sex', 'bmi'))
    """
    if not isinstance(name, str) or name.lower() not in _EMBEDDED:
        raise ValueError(
            f"name: unknown dataset {name!r}; available: {', '.join(_EMBEDDED)} "
            "(use jaxreg.datasets.load_file for a .npz or .csv file)"
        )
    name = name.lower()
    resource = importlib.resources.files(__name__).joinpath("data", f"{name}.npz")
    with resource.open("rb") as stream, np.load(stream, allow_pickle=False) as archive:
        X = archive["X"]
        y = archive["y"]
        feature_names = _names(archive, "feature_names")
        target_names = _names(archive, "target_names")
        description = str(archive["description"])
    task = "classification" if name == "digits" else "regression"
    X = X.astype(np.float32)
    if standardize:
        X = _standardize(X)
    y = y.astype(np.int32 if task == "classification" else np.float32)
    return Dataset(X, y, task, feature_names, target_names, description)


def load_file(
    path: str | os.PathLike,
    *,
    target: str | int | None = None,
    task: str | None = None,
    header: bool | None = None,
) -> Dataset:
    """Load a user's dataset from a ``.npz`` or ``.csv`` file (never a pickle).

    - ``.npz``: arrays ``X`` ``[n, p]`` and ``y`` ``[n]`` (the target key is ``target``, default
      ``"y"``); optional string arrays ``feature_names`` and ``target_names``. Read with
      ``np.load(allow_pickle=False)``, so object arrays are refused.
    - ``.csv``: comma-separated, numeric features; the target is the column named (or numbered,
      from 0) ``target``, default the last column, and every other column is a feature. The
      first row is a header when some of its cells are not numbers while the rest of their
      column is (so a headerless file of numbers loads every row); ``header`` overrides that.
      Without a header the columns are named ``x0, x1, ...`` by position.

    Classification labels — numbers or strings such as ``"setosa"`` — are mapped to class ids
    ``0..C-1`` in sorted order and the original labels kept in ``target_names``.

    Args:
      path: the file, ending in ``.npz`` or ``.csv``.
      target: the target's key (``.npz``), or column name or 0-based column number (``.csv``).
      task: ``"classification"``, ``"regression"`` or None to infer it: a string target, or an
        integer-valued one with at most 20 distinct values, is taken for class labels; anything
        else is regression.
      header: ``.csv`` only: True if the first row holds the column names, False if it is data,
        None to detect it as above.

    Returns:
      A :class:`Dataset` with float32 ``X``.

    Raises:
      ValueError: naming the problem (the path, a missing key or column, X not 2-D, ``len(y) !=
        len(X)``, NaN, infinite, empty or non-numeric feature values, pickled data, a bad
        ``task``). A missing file raises an error that is both ``FileNotFoundError`` and
        ``ValueError``.

    Example:
      >>> import os, tempfile
      >>> import jaxreg
      >>> path = os.path.join(tempfile.mkdtemp(), "toy.csv")
      >>> with open(path, "w") as f:
      ...     _ = f.write("height,weight,label\\n1.5,50,0\\n1.8,80,1\\n1.7,65,1\\n")
      >>> data = jaxreg.datasets.load_file(path, target="label")
      >>> data.X.shape, data.y.tolist(), data.task, data.feature_names
      ((3, 2), [0, 1, 1], 'classification', ('height', 'weight'))
      >>> with open(path, "w") as f:   # no header, string labels
      ...     _ = f.write("5.1,3.5,setosa\\n7.0,3.2,versicolor\\n6.3,3.3,virginica\\n")
      >>> data = jaxreg.datasets.load_file(path)
      >>> data.X.shape, data.y.tolist(), data.target_names, data.feature_names
      ((3, 2), [0, 1, 2], ('setosa', 'versicolor', 'virginica'), ('x0', 'x1'))
    """
    if task is not None and task not in _TASKS:
        raise ValueError(f"task must be one of {_TASKS} or None, got {task!r}")
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    if extension not in (".npz", ".csv"):
        raise ValueError(f"path must end in .npz or .csv, got {path!r}")
    if not os.path.isfile(path):
        raise _MissingFileError(f"path: no such data file {path!r}")
    if extension == ".npz":
        X, y, feature_names, target_names = _read_npz(path, target)
    else:
        X, y, feature_names = _read_csv(path, target, header)
        target_names = None
    X, y = _validate(X, y, path)
    task = task or _infer_task(y)
    if task == "classification":
        if y.dtype.kind not in "US" and not np.array_equal(y, np.round(y)):
            raise ValueError(f"task='classification' needs integer-valued labels in {path!r}")
        labels, y = np.unique(y, return_inverse=True)
        if target_names is None or len(target_names) != len(labels):
            target_names = tuple(_format_label(label) for label in labels)
        y = y.astype(np.int32)
    elif y.dtype.kind in "US":
        raise ValueError(
            f"task='regression' needs a numeric target; {path!r} has labels such as {y[0]!r}"
        )
    else:
        y = y.astype(np.float32)
        target_names = None
    description = f"loaded from {path}"
    return Dataset(X.astype(np.float32), y, task, feature_names, target_names, description)


def _names(archive: np.lib.npyio.NpzFile, key: str) -> tuple[str, ...] | None:
    if key not in archive.files:
        return None
    return tuple(str(name) for name in archive[key].ravel())


def _standardize(X: np.ndarray) -> np.ndarray:
    mean = X.mean(axis=0, dtype=np.float64)
    std = X.std(axis=0, dtype=np.float64)
    # Constant columns (e.g. the always-blank corner pixels of digits) would divide by zero.
    std = np.where(std > 0, std, 1.0)
    return ((X - mean) / std).astype(np.float32)


def _read_npz(
    path: str, target: str | None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None, tuple[str, ...] | None]:
    target_key = "y" if target is None else target
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise ValueError(f"path: {path!r} is not a readable .npz archive ({err})") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"path: {path!r} holds a single .npy array, not an .npz archive")
    with archive:
        missing = [key for key in ("X", target_key) if key not in archive.files]
        if missing:
            raise ValueError(
                f"path: {path!r} has no array {missing} (found keys: {sorted(archive.files)}); "
                f"an .npz needs X and {target_key!r}"
            )
        try:
            X = archive["X"]
            y = archive[target_key]
            feature_names = _names(archive, "feature_names")
            target_names = _names(archive, "target_names")
        except ValueError as err:
            # np.load raises this for object arrays, which can only be read by unpickling.
            raise ValueError(
                f"path: {path!r} holds pickled (object) arrays: refused ({err})"
            ) from err
    if feature_names is not None and len(feature_names) != (X.shape[1] if X.ndim == 2 else -1):
        feature_names = None
    return X, y, feature_names, target_names


def _read_csv(
    path: str, target: str | int | None, header: bool | None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    with open(path, newline="") as stream:
        rows = [[cell.strip() for cell in row] for row in csv.reader(stream) if row]
    if header is None:
        header = _looks_like_header(rows)
    names = rows[0] if header and rows else [f"x{c}" for c in range(len(rows[0]) if rows else 0)]
    first_line = 2 if header else 1
    cells = rows[1:] if header else rows
    if not cells:
        raise ValueError(f"path: {path!r} needs a header row and at least one data row")
    if len(names) < 2:
        raise ValueError(f"path: {path!r} needs at least one feature column and a target column")
    table = _table(cells, names, path, first_line, "the header" if header else "the first row")
    target_column = _target_column(target, names, path)
    features = [c for c in range(len(names)) if c != target_column]
    X = np.empty((len(cells), len(features)), dtype=np.float64)
    for j, column in enumerate(features):
        X[:, j] = _numbers(table[:, column], path, names[column], first_line)
    labels = table[:, target_column]
    if all(_is_number(cell) for cell in labels):
        labels = labels.astype(np.float64)
    return X, labels, tuple(names[c] for c in features)


def _table(cells: list[list[str]], names: list[str], path: str, first_line: int, what: str):
    """The cells as a string array [rows, columns]: every row complete, no cell empty."""
    for line, row in enumerate(cells, start=first_line):
        if len(row) != len(names):
            raise ValueError(
                f"path: {path!r} line {line} has {len(row)} fields, {what} has {len(names)}"
            )
    table = np.array(cells, dtype=str)
    for column, name in enumerate(names):
        empty = np.flatnonzero(table[:, column] == "")
        if empty.size:
            raise ValueError(
                f"path: {path!r} line {first_line + empty[0]}, column {name!r}: empty value ''"
            )
    return table


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _looks_like_header(rows: list[list[str]]) -> bool:
    """A header when a cell of the first row is no number while the rest of its column is."""
    if not rows:
        return False
    first, rest = rows[0], rows[1:]
    for column, cell in enumerate(first):
        below = [row[column] for row in rest if column < len(row)]
        if not _is_number(cell) and all(_is_number(value) for value in below):
            return True
    return False


def _target_column(target: str | int | None, names: list[str], path: str) -> int:
    if target is None:
        return len(names) - 1
    if target in names:
        return names.index(target)
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        if 0 <= int(target) < len(names):
            return int(target)
    raise ValueError(
        f"target: no column {target!r} in {path!r} (columns: {names}; a column may also be "
        "given by its 0-based number)"
    )


def _numbers(cells: np.ndarray, path: str, name: str, first_line: int) -> np.ndarray:
    try:
        return cells.astype(np.float64)
    except ValueError:
        row = next(i for i, cell in enumerate(cells) if not _is_number(cell))
        raise ValueError(
            f"path: {path!r} line {first_line + row}, column {name!r}: "
            f"non-numeric value {str(cells[row])!r}"
        ) from None


def _validate(X: np.ndarray, y: np.ndarray, path: str) -> tuple[np.ndarray, np.ndarray]:
    if X.dtype.kind not in "buif":
        raise ValueError(f"X in {path!r} must be numeric, got dtype {X.dtype}")
    if y.dtype.kind not in "buifUS":
        raise ValueError(f"y in {path!r} must be numeric or string labels, got dtype {y.dtype}")
    if X.ndim != 2:
        raise ValueError(f"X in {path!r} must be 2-D [n, p], got shape {X.shape}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y in {path!r} must be 1-D [n], got shape {y.shape}")
    if len(y) != len(X):
        raise ValueError(f"len(y) != len(X) in {path!r}: {len(y)} != {len(X)}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X in {path!r} is empty, shape {X.shape}")
    X = X.astype(np.float64)
    y = y.astype(str) if y.dtype.kind in "US" else y.astype(np.float64)
    numeric = (("X", X),) if y.dtype.kind == "U" else (("X", X), ("y", y))
    for name, array in numeric:
        bad = ~np.isfinite(array)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{name} in {path!r} has {int(bad.sum())} NaN/inf values (first at {first})"
            )
    return X, y


def _infer_task(y: np.ndarray) -> str:
    if y.dtype.kind == "U":
        return "classification"
    integer_valued = np.array_equal(y, np.round(y))
    if integer_valued and len(np.unique(y)) <= _MAX_INFERRED_CLASSES:
        return "classification"
    return "regression"


def _format_label(label: float | str) -> str:
    if isinstance(label, str):
        return str(label)  # a plain str, not numpy's str_
    return str(int(label)) if float(label).is_integer() else str(label)

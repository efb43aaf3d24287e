"""Tests for jaxreg.datasets: embedded sets against scikit-learn's copies, file loading, errors."""

from __future__ import annotations

import pathlib
import pickle

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_digits

from jaxreg import datasets


def test_digits_matches_sklearn_exactly():
    reference = load_digits()
    data = datasets.load("digits")
    assert data.X.shape == (1797, 64) and data.X.dtype == np.float32
    assert data.y.shape == (1797,) and data.y.dtype == np.int32
    np.testing.assert_array_equal(data.X, reference.data.astype(np.float32))
    np.testing.assert_array_equal(data.y, reference.target)
    assert data.task == "classification"
    assert data.target_names == tuple(str(t) for t in reference.target_names)
    assert data.feature_names == tuple(reference.feature_names)
    assert sorted(np.unique(data.y).tolist()) == list(range(10))
    assert "CC BY 4.0" in data.description


def test_diabetes_matches_sklearn_raw_exactly():
    reference = load_diabetes(scaled=False)
    data = datasets.load("diabetes")
    assert data.X.shape == (442, 10) and data.X.dtype == np.float32
    assert data.y.shape == (442,) and data.y.dtype == np.float32
    np.testing.assert_array_equal(data.X, reference.data.astype(np.float32))
    np.testing.assert_array_equal(data.y, reference.target.astype(np.float32))
    assert data.task == "regression"
    assert data.feature_names == tuple(reference.feature_names)
    assert data.target_names is None
    assert "Least Angle Regression" in data.description


def test_standardize_agrees_with_sklearn_scaled_copy():
    # sklearn's default diabetes columns have unit sum of squares: z-scores divided by sqrt(n).
    scaled = load_diabetes(scaled=True).data
    data = datasets.load("diabetes", standardize=True)
    np.testing.assert_allclose(data.X / np.sqrt(442), scaled, atol=1e-6)
    digits = datasets.load("digits", standardize=True)
    assert np.all(np.isfinite(digits.X))  # constant (blank) pixels do not divide by zero
    np.testing.assert_allclose(digits.X.mean(axis=0), 0.0, atol=1e-5)


def test_available_and_unknown_name():
    assert datasets.available() == ("diabetes", "digits")
    assert datasets.load("DIGITS").X.shape == (1797, 64)
    with pytest.raises(ValueError, match=r"name: unknown dataset 'mnist'.*diabetes, digits"):
        datasets.load("mnist")


def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 3))
    y = rng.normal(size=12)
    path = tmp_path / "reg.npz"
    np.savez_compressed(path, X=X, y=y, feature_names=np.array(["a", "b", "c"]))
    data = datasets.load_file(path)
    np.testing.assert_array_equal(data.X, X.astype(np.float32))
    np.testing.assert_array_equal(data.y, y.astype(np.float32))
    assert data.task == "regression" and data.feature_names == ("a", "b", "c")


def test_npz_labels_are_mapped_to_class_ids(tmp_path):
    X = np.arange(12.0).reshape(6, 2)
    labels = np.array([-1, 1, 1, -1, 5, 1])
    path = tmp_path / "cls.npz"
    np.savez(path, X=X, labels=labels)
    data = datasets.load_file(str(path), target="labels")
    assert data.task == "classification" and data.y.dtype == np.int32
    assert data.target_names == ("-1", "1", "5")
    np.testing.assert_array_equal(np.array(data.target_names)[data.y], labels.astype(str))


def test_csv_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(9, 3))
    y = rng.integers(0, 3, size=9)
    path = tmp_path / "data.csv"
    table = np.column_stack([X[:, :1], y, X[:, 1:]])
    np.savetxt(path, table, delimiter=",", header="f0,label,f1,f2", comments="")
    data = datasets.load_file(path, target="label")
    np.testing.assert_allclose(data.X, X.astype(np.float32), rtol=1e-6)
    np.testing.assert_array_equal(data.y, y)
    assert data.feature_names == ("f0", "f1", "f2")
    assert data.task == "classification"
    # Default target = last column; the task can be forced.
    last = datasets.load_file(path, task="regression")
    np.testing.assert_allclose(last.y, X[:, 2].astype(np.float32), rtol=1e-6)
    assert last.feature_names == ("f0", "label", "f1") and last.y.dtype == np.float32


def test_task_inference_many_integer_values_is_regression(tmp_path):
    path = tmp_path / "counts.csv"
    rows = "\n".join(f"{i},{i * 7}" for i in range(30))
    path.write_text("x,count\n" + rows + "\n")
    assert datasets.load_file(path).task == "regression"


def test_headerless_csv_uses_every_row_and_header_flag_overrides(tmp_path):
    rng = np.random.default_rng(2)
    table = np.column_stack([rng.normal(size=(300, 2)), rng.normal(size=300)])
    path = tmp_path / "headerless.csv"
    np.savetxt(path, table, delimiter=",")
    data = datasets.load_file(path)
    assert data.X.shape == (300, 2) and data.feature_names == ("x0", "x1")
    np.testing.assert_allclose(data.X, table[:, :2].astype(np.float32))
    np.testing.assert_allclose(data.y, table[:, 2].astype(np.float32))
    by_number = datasets.load_file(path, target=0)
    np.testing.assert_allclose(by_number.y, table[:, 0].astype(np.float32))
    assert by_number.feature_names == ("x1", "x2")
    forced = datasets.load_file(path, header=True)  # the first row becomes the column names
    assert forced.X.shape == (299, 2)
    np.testing.assert_allclose(forced.X, table[1:, :2].astype(np.float32))
    named = _write(tmp_path / "named.csv", "a,b,c\n1,2,3\n4,5,6\n")
    assert datasets.load_file(named).X.shape == (2, 2)
    with pytest.raises(ValueError, match="line 1, column 'x0': non-numeric value 'a'"):
        datasets.load_file(named, header=False)


@pytest.mark.parametrize("header", ["sepal,petal,species\n", ""])
def test_string_labels_become_sorted_class_ids(tmp_path, header):
    species = ["versicolor", "setosa", "virginica", "setosa", "versicolor", "virginica"]
    rows = [f"{i}.5,{i % 3}.25,{name}" for i, name in enumerate(species)]
    path = _write(tmp_path / "iris.csv", header + "\n".join(rows) + "\n")
    data = datasets.load_file(path)
    assert data.task == "classification" and data.X.shape == (6, 2)
    assert data.target_names == ("setosa", "versicolor", "virginica")
    assert [data.target_names[c] for c in data.y] == species
    assert data.y.dtype == np.int32
    npz = tmp_path / "iris.npz"
    np.savez(npz, X=data.X, y=np.array(species))  # a unicode array needs no pickle
    from_npz = datasets.load_file(npz)
    np.testing.assert_array_equal(from_npz.y, data.y)
    assert from_npz.target_names == data.target_names


def _write(path: pathlib.Path, text: str) -> pathlib.Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("a,b\n1,2\n", {"target": "c"}, r"target: no column 'c'"),
        ("a,b\nx,1\n", {}, r"line 2, column 'a': non-numeric value 'x'"),
        ("a,b\n1,\n", {}, r"line 2, column 'b': empty value ''"),
        ("1,2,3\n4,x,5\n", {}, r"line 2, column 'x1': non-numeric value 'x'"),
        ("a,b\n1,2\n", {"target": 2}, r"target: no column 2"),
        ("a,b\n1,x\n", {"task": "regression"}, r"task='regression' needs a numeric target"),
        ("a,b\n1,nan\n", {}, r"y in .* NaN/inf"),
        ("a,b\ninf,1\n", {}, r"X in .* NaN/inf"),
        ("a,b\n1,2,3\n", {}, r"line 2 has 3 fields, the header has 2"),
        ("a,b\n", {}, r"header row and at least one data row"),
        ("a\n1\n", {}, r"at least one feature column"),
        ("a,b\n1,0.5\n", {"task": "classification"}, r"integer-valued labels"),
        ("a,b\n1,2\n", {"task": "ranking"}, r"task must be one of"),
    ],
)
def test_csv_errors(tmp_path, text, kwargs, message):
    path = _write(tmp_path / "bad.csv", text)
    with pytest.raises(ValueError, match=message):
        datasets.load_file(path, **kwargs)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"X": np.zeros((3, 2))}, r"no array \['y'\].*found keys: \['X'\]"),
        ({"X": np.zeros(3), "y": np.zeros(3)}, r"X in .* must be 2-D"),
        ({"X": np.zeros((3, 2)), "y": np.zeros(4)}, r"len\(y\) != len\(X\).*4 != 3"),
        ({"X": np.zeros((3, 2)), "y": np.zeros((3, 2))}, r"y in .* must be 1-D"),
        ({"X": np.full((3, 2), np.nan), "y": np.zeros(3)}, r"X in .* 6 NaN/inf"),
        ({"X": np.array([["a", "b"]] * 3), "y": np.zeros(3)}, r"X in .* must be numeric"),
        ({"X": np.zeros((0, 2)), "y": np.zeros(0)}, r"is empty"),
    ],
)
def test_npz_errors(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message):
        datasets.load_file(path)


def test_missing_file_and_wrong_extension(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such data file"):
        datasets.load_file(tmp_path / "absent.npz")
    with pytest.raises(ValueError, match="no such data file"):
        datasets.load_file(tmp_path / "absent.csv")
    with pytest.raises(ValueError, match=r"path must end in .npz or .csv"):
        datasets.load_file(_write(tmp_path / "data.txt", "a,b\n1,2\n"))


def test_pickled_object_array_is_refused(tmp_path):
    marker = tmp_path / "unpickled"
    path = tmp_path / "evil.npz"
    X = np.empty((2, 1), dtype=object)
    X[0, 0] = _Exploit(str(marker))
    X[1, 0] = 1.0
    np.savez(path, X=X, y=np.zeros(2))
    with pytest.raises(ValueError, match="pickled"):
        datasets.load_file(path)
    assert not marker.exists()  # the payload never ran


def test_pickle_file_named_npz_is_refused(tmp_path):
    marker = tmp_path / "unpickled"
    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps({"X": _Exploit(str(marker)), "y": [0]}))
    with pytest.raises(ValueError, match=r"not a readable .npz archive"):
        datasets.load_file(path)
    assert not marker.exists()


def test_single_npy_array_is_refused(tmp_path):
    path = tmp_path / "array.npz"
    with open(path, "wb") as stream:
        np.save(stream, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="single .npy array"):
        datasets.load_file(path)


class _Exploit:
    """Unpickling this creates a marker file: proof that a pickle was (not) loaded."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))

"""Rebuild the embedded datasets in ``data/`` from scikit-learn's bundled copies.

This script documents where the shipped ``.npz`` files come from; it is never run on import and
scikit-learn is needed only to rebuild them::

    python -m jaxreg.datasets._build

Both sets are taken from the copies bundled with scikit-learn (no download):

- ``digits.npz``: ``sklearn.datasets.load_digits()``, the test set of the UCI "Optical
  Recognition of Handwritten Digits" data (Alpaydin & Kaynak, 1998; CC BY 4.0). Pixels are
  integers 0..16, stored as ``uint8``.
- ``diabetes.npz``: ``sklearn.datasets.load_diabetes(scaled=False)``, the raw, unscaled data of
  Efron, Hastie, Johnstone & Tibshirani (2004), "Least Angle Regression". scikit-learn's default
  copy is mean-centred and scaled; we ship the raw measurements so that nothing is hidden
  (``jaxreg.datasets.load("diabetes", standardize=True)`` z-scores them).

See ``data/README.md`` for sources, citations and licences.
"""

from __future__ import annotations

import pathlib

import numpy as np

DATA_DIR = pathlib.Path(__file__).parent / "data"

DIGITS_DESCRIPTION = (
    "8x8 handwritten digits: 1797 images, 64 pixel features (integers 0..16), 10 classes. "
    "Test set of the UCI 'Optical Recognition of Handwritten Digits' data "
    "(E. Alpaydin, C. Kaynak, 1998, https://doi.org/10.24432/C50P49), "
    "licence CC BY 4.0, via scikit-learn's bundled copy."
)

DIABETES_DESCRIPTION = (
    "Diabetes: 442 patients, 10 raw (unscaled) baseline features (age, sex, bmi, bp, s1..s6), "
    "target = disease progression one year after baseline. "
    "B. Efron, T. Hastie, I. Johnstone, R. Tibshirani (2004), 'Least Angle Regression', "
    "Annals of Statistics 32(2):407-499; data from "
    "https://www4.stat.ncsu.edu/~boos/var.select/diabetes.html, via scikit-learn's bundled copy "
    "(BSD-3-Clause distribution)."
)


def build(data_dir: pathlib.Path = DATA_DIR) -> None:
    """Write ``digits.npz`` and ``diabetes.npz`` into ``data_dir``."""
    from sklearn.datasets import load_diabetes, load_digits

    digits = load_digits()
    pixels = digits.data
    if not np.array_equal(pixels, np.round(pixels)) or pixels.min() < 0 or pixels.max() > 16:
        raise RuntimeError("unexpected digits pixel values; refusing to store them as uint8")
    np.savez_compressed(
        data_dir / "digits.npz",
        X=pixels.astype(np.uint8),
        y=digits.target.astype(np.uint8),
        feature_names=np.asarray(digits.feature_names, dtype=str),
        target_names=np.asarray([str(t) for t in digits.target_names], dtype=str),
        description=np.asarray(DIGITS_DESCRIPTION),
    )

    diabetes = load_diabetes(scaled=False)
    np.savez_compressed(
        data_dir / "diabetes.npz",
        X=diabetes.data.astype(np.float64),
        y=diabetes.target.astype(np.float64),
        feature_names=np.asarray(diabetes.feature_names, dtype=str),
        description=np.asarray(DIABETES_DESCRIPTION),
    )


if __name__ == "__main__":
    build()

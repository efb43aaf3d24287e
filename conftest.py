"""Doctests that import an optional library (flax, equinox) skip when it is not installed.

The dependency lower-bounds leg of CI installs neither, and importing jaxreg never needs them;
their docstring examples still run wherever the library is present.
"""

from __future__ import annotations

import importlib.util
import re

import pytest

OPTIONAL = ("flax", "equinox")
_IMPORT = re.compile(r"^\s*(?:import|from)\s+(\w+)", re.MULTILINE)


def _missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if not isinstance(item, pytest.DoctestItem):
            continue
        imported = {
            name
            for example in item.dtest.examples
            for name in _IMPORT.findall(example.source)
            if name in OPTIONAL
        }
        absent = sorted(name for name in imported if _missing(name))
        if absent:
            item.add_marker(pytest.mark.skip(reason=f"needs {', '.join(absent)}"))

"""Shared test fixtures and helpers."""

from __future__ import annotations

import functools

import pytest


class TraceCounter:
    """Wrap a function and count how many times its Python body runs (= traces under jit)."""

    def __init__(self, fn):
        self.fn = fn
        self.count = 0
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        self.count += 1
        return self.fn(*args, **kwargs)


@pytest.fixture
def trace_counter():
    """``trace_counter(fn)`` returns a :class:`TraceCounter` around ``fn``."""
    return TraceCounter

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


@pytest.fixture
def compile_counter():
    """Backend compilations while the test runs (persistent cache off): a list, one entry per
    compiled program (its compile seconds). Snapshot it (``len``) around the code to check."""
    import jax

    compiles = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    jax.config.update("jax_enable_compilation_cache", False)
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield compiles
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)

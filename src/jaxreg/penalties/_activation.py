"""Activation penalties (placeholder: being written)."""


def contractive(*args, **kwargs):
    raise NotImplementedError


def jacobian(*args, **kwargs):
    raise NotImplementedError

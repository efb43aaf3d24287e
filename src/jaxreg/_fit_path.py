"""fit_path (placeholder: being written)."""


class FitPathResult:
    pass


def fit_path(*args, **kwargs):
    raise NotImplementedError

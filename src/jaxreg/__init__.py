"""jaxreg: regularization for JAX.

One regularizer, three views under one scaling convention: a :mod:`jaxreg.regularizers` object
has its value, its proximal step and its dual norm as methods; the same views are functions in
:mod:`jaxreg.penalties` and :mod:`jaxreg.prox`, and optax gradient transformations in
:mod:`jaxreg.transforms` (re-exported here). Around them: jitted models with dropout
(:mod:`jaxreg.models`), whole hyperparameter grids trained in one compiled program
(:mod:`jaxreg.sweep`), glmnet-style cross-validation (:mod:`jaxreg.cv`, :func:`fit_path`),
convex linear paths (:mod:`jaxreg.linear`), plots (:mod:`jaxreg.plot`) and small datasets
(:mod:`jaxreg.datasets`).

Importing jaxreg does not start a JAX backend, so the number of host devices can still be chosen
afterwards (``jax.config.update("jax_num_cpu_devices", n)``).
"""

from jaxreg import (
    cv,
    datasets,
    linear,
    masks,
    models,
    penalties,
    plot,
    prox,
    regularizers,
    sweep,
    transforms,
)
from jaxreg._fit_path import DivergedError, FitPathResult, fit_path
from jaxreg.transforms import (
    add_l1_sign,
    clip_params,
    max_norm,
    prox_adam,
    prox_elastic_net,
    prox_group_lasso,
    prox_l1,
    proximal,
)

__version__ = "0.2.0.dev0"  # the one version source: pyproject.toml reads it

__all__ = [
    "DivergedError",
    "FitPathResult",
    "add_l1_sign",
    "clip_params",
    "cv",
    "datasets",
    "fit_path",
    "linear",
    "masks",
    "max_norm",
    "models",
    "penalties",
    "plot",
    "prox",
    "prox_adam",
    "prox_elastic_net",
    "prox_group_lasso",
    "prox_l1",
    "proximal",
    "regularizers",
    "sweep",
    "transforms",
]

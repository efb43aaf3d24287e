"""Penalties: pure functions returning a scalar to add to a loss.

Parameter penalties take ``(params, strength, *, mask=None)`` under one scaling convention
(squared norms carry ½, so value, gradient and proximal step agree); activation penalties
(:func:`contractive`, :func:`jacobian`) measure how fast the network's function changes with its
input (the seeds' "soft" regularization).
"""

from jaxreg.penalties._activation import contractive, jacobian
from jaxreg.penalties._parameter import elastic_net, group_lasso, l1, l2, norm_product

__all__ = ["contractive", "elastic_net", "group_lasso", "jacobian", "l1", "l2", "norm_product"]

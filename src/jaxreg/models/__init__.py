"""Jitted models with dropout: an MLP, scaled dot-product and multi-head attention, and a small
transformer classifier.

A model is a :class:`Model` — a pair ``init(key) -> params`` and
``apply(params, x, *, key=None, train=False, ...)`` of pure functions, as optax's
``GradientTransformation`` pairs ``init`` and ``update``. Dropout rates are data: ``apply`` takes
a ``dropout_rate`` that overrides the built-in one and may be traced, so a sweep can vary it
inside one compiled program. Parameter layouts are chosen for regularization: MLP layers are
``{"w": W[in, out], "b": b[out]}``, and attention keeps each head on its own axis so that a joint
group lasso (:func:`head_groups`) prunes whole heads.

:func:`from_flax`, :func:`from_nnx` and :func:`from_equinox` turn a Flax (linen or nnx) or
Equinox module into a :class:`Model` (flax and equinox are optional and imported only there).
"""

from jaxreg.models._adapters import from_equinox, from_flax, from_nnx
from jaxreg.models._attention import dot_product_attention, head_groups, multi_head_attention
from jaxreg.models._core import Model, dropout
from jaxreg.models._mlp import mlp
from jaxreg.models._skip import skip_mlp
from jaxreg.models._transformer import transformer_classifier

__all__ = [
    "Model",
    "dot_product_attention",
    "dropout",
    "from_equinox",
    "from_flax",
    "from_nnx",
    "head_groups",
    "mlp",
    "multi_head_attention",
    "skip_mlp",
    "transformer_classifier",
]

"""optax transforms (placeholder: being written)."""


def _todo(*args, **kwargs):
    raise NotImplementedError


add_l1_sign = prox_l1 = prox_elastic_net = prox_group_lasso = clip_params = max_norm = _todo
